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

pub mod channel;
pub mod error;
pub mod map;
pub mod napi;
pub mod os;
pub mod segment;
pub mod sync;
pub mod value;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod test_support;
