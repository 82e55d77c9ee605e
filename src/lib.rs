//! share-object: Node.js processes sharing memory through a file mapped with `MAP_SHARED`.
//!
//! The crate is built in floors; a room imports from the floors below it, never back up,
//! and a structure never reaches into another structure's folder:
//!
//! ```text
//! napi/      the #[napi] surface: argument conversion, error mapping, the raw hot-path callbacks
//! value/     one value shared by every process (a segment of kind 1)
//! channel/   a many-producer, one-consumer message ring (kind 2)
//! segment/   the on-file format (layout.rs) and open / validate / map / grow
//! sync/      seqlock, the death-surviving lock, futex waits, waiter announcements
//! os/        the operating-system calls, one small file per OS
//! error.rs   one error type, each variant with a stable JS code
//! ```

#![deny(clippy::all)]
#![deny(unsafe_op_in_unsafe_fn)]

// Linux and macOS only (README, "Platforms"). Elsewhere the crate is this one error rather
// than every use of a file descriptor failing to compile.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
compile_error!(
    "share-object runs on Linux and macOS only: it needs waits on shared memory that wake \
     other processes (futex, os_sync_wait_on_address) and byte-range locks owned by an open \
     file description, which this OS does not offer (see README, \"Platforms\")"
);

#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod channel;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod error;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod map;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod napi;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod os;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod segment;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod sync;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod value;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod test_support;
