//! Every call share-object makes to the operating system, behind one interface.
//!
//! The floors above (`sync`, `segment`) see only this module's items, which mean the same on
//! every supported OS:
//!
//! | item | Linux (`linux.rs`) | macOS (`macos.rs`) |
//! | --- | --- | --- |
//! | [`open`], [`facts`], [`rename_noreplace`], … | POSIX (`posix.rs`) | the same |
//! | [`lock_byte`], [`pin_byte`], [`byte_is_locked_by_other`] | OFD byte-range locks (`posix.rs`) | the same kernel facility (see `macos.rs`) |
//! | [`path_facts`], [`set_mode`], [`set_owner`], [`rename_replace`], [`sync`] | POSIX (`posix.rs`) | the same |
//! | [`reserve`] | `fallocate` | `F_PREALLOCATE` + `ftruncate` |
//! | [`anonymous_file`] | `memfd_create` | a `0600` file in the temp folder, named while its creator is open |
//! | [`reopen`] | `/proc/self/fd/N` | the path `F_GETPATH` gives |
//! | [`futex_wait`], [`futex_wake`] | `futex` (shared) | `os_sync_*_SHARED` (14.4+), else `__ulock_*` `UL_COMPARE_AND_WAIT_SHARED` |
//! | randomness ([`random_token`], [`random_u64`]) | `getrandom` | `getentropy` |
//!
//! The invariant every OS must keep, because `segment` and `sync::lock` are built on it: a
//! lock taken through [`lock_byte`] belongs to the *open file description* it was taken
//! through — it conflicts with every other description of the file, in this process or
//! another, is invisible to [`byte_is_locked_by_other`] asked through its own description, and
//! is released by the kernel when the last descriptor of that description closes, including
//! when its process dies. [`reopen`] and [`anonymous_file`] each return a *new* description.
//!
//! The wait/wake call lives here with every other OS call, so a port touches this folder
//! only; `sync::futex` keeps the contract the lock and notification algorithms rely on (and
//! tests it on whichever OS runs the suite), the same for every OS.
//!
//! `macos_rules.rs` (the arithmetic of the macOS calls) and `named_temp.rs` (the macOS
//! anonymous file) are plain Rust and POSIX: they are compiled on every OS under `cargo test`,
//! so their unit tests run where no macOS code can.
//!
//! Other systems are refused at the crate root (`lib.rs`; README, "Platforms"): on Windows,
//! for one, a wait on a word of shared memory cannot be woken from another process
//! (`WaitOnAddress` is per process), so it would be another design, not a port of this floor.

use std::fs::File;
use std::io;

mod posix;

#[cfg(any(target_os = "macos", test))]
mod macos_rules;
#[cfg(any(target_os = "macos", test))]
mod named_temp;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as platform;

pub use platform::{futex_wait, futex_wake, reopen, reserve, NameGuard, REOPEN_HOW, RESERVE_HOW};
pub use posix::{
    byte_is_locked_by_other, euid, facts, lock_byte, open, path_facts, pin_byte, read_at,
    rename_noreplace, rename_replace, set_mode, set_owner, sync, unlink, unlock_byte, write_at,
};

/// How to open a path.
#[derive(Debug, Clone, Copy)]
pub struct OpenMode {
    pub write: bool,
    pub create_exclusive: bool,
    /// Permission bits of a new file (only the low 12 bits are used).
    pub mode: u32,
}

/// What `fstat` says that matters for safety and sizing.
#[derive(Debug, Clone, Copy)]
pub struct FileFacts {
    pub size: u64,
    pub is_regular: bool,
    pub is_dir: bool,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// Device and inode: which file this is (the same pair = the same file).
    pub dev: u64,
    pub ino: u64,
}

impl FileFacts {
    /// Whether `self` and `other` describe the same file.
    pub fn same_file(&self, other: &FileFacts) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// Kind of byte-range lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Shared,
    Exclusive,
}

/// Why a [`futex_wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Woken, or the word no longer held the expected value, or the sleep ended early for
    /// any other reason (a signal, a timeout the OS had to shorten): the caller re-checks its
    /// condition in every case.
    Woken,
    /// The whole timeout passed.
    TimedOut,
}

/// A new anonymous segment file: no other process can open it by a path it guesses.
pub struct AnonymousFile {
    pub file: File,
    /// What messages call it (`memfd:…`, or the temporary path on macOS).
    pub name: String,
    /// Keep for as long as the creating handle is open: on macOS, dropping it removes the
    /// file's name (the file lives on while any descriptor refers to it).
    pub guard: NameGuard,
}

/// A new anonymous segment file, read-write, close-on-exec, empty.
pub fn anonymous_file(label: &str) -> io::Result<AnonymousFile> {
    platform::anonymous_file(label)
}

/// 64 random bits (a map's hash seed). Falls back to the clock, pid and an address if the
/// kernel's generator is unavailable (the seed then only resists casual collisions).
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if platform::fill_random(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let here = &bytes as *const _ as u64;
    t ^ u64::from(std::process::id()).rotate_left(32) ^ here.rotate_left(17)
}

/// A process-unique, non-zero 31-bit number, for liveness tokens.
pub fn random_token() -> u32 {
    let mut bytes = [0u8; 4];
    loop {
        if platform::fill_random(&mut bytes).is_err() {
            // Fall back to the clock and pid: the token is checked for collisions anyway.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            bytes = (t ^ std::process::id().rotate_left(16)).to_le_bytes();
        }
        // 31 bits: the high bit of a lock word is its CONTENDED flag (`sync::lock`).
        let token = u32::from_le_bytes(bytes) & 0x7FFF_FFFF;
        if token != 0 {
            return token;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, BorrowedFd};

    fn fd(file: &File) -> BorrowedFd<'_> {
        file.as_fd()
    }

    fn temp_file(name: &str) -> (std::path::PathBuf, File) {
        let dir = std::env::temp_dir().join(format!("so-os-{}-{}", name, std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("f");
        let _ = std::fs::remove_file(&path);
        let f = open(
            &path,
            OpenMode {
                write: true,
                create_exclusive: true,
                mode: 0o600,
            },
        )
        .unwrap();
        (path, f)
    }

    fn existing() -> OpenMode {
        OpenMode {
            write: true,
            create_exclusive: false,
            mode: 0,
        }
    }

    #[test]
    fn ofd_locks_conflict_between_descriptions_and_not_within_one() {
        let (path, a) = temp_file("ofd");
        let b = open(&path, existing()).unwrap();
        assert!(lock_byte(fd(&a), 7, LockKind::Exclusive, false).unwrap());
        assert!(!lock_byte(fd(&b), 7, LockKind::Shared, false).unwrap());
        assert!(byte_is_locked_by_other(fd(&b), 7).unwrap());
        assert!(!byte_is_locked_by_other(fd(&a), 7).unwrap());
        drop(a); // closing the last descriptor drops the lock, as a killed process does
        assert!(!byte_is_locked_by_other(fd(&b), 7).unwrap());
        assert!(lock_byte(fd(&b), 7, LockKind::Exclusive, false).unwrap());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn closing_another_description_of_the_file_keeps_our_locks() {
        // The trap of process-associated (F_SETLK) locks: closing *any* descriptor of the
        // file would drop them all. Ours belong to their description only.
        let (path, a) = temp_file("ofd-close");
        assert!(lock_byte(fd(&a), 9, LockKind::Exclusive, false).unwrap());
        drop(open(&path, existing()).unwrap());
        let c = open(&path, existing()).unwrap();
        assert!(byte_is_locked_by_other(fd(&c), 9).unwrap());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn symlinks_are_not_followed() {
        let (path, _f) = temp_file("nofollow");
        let link = path.with_file_name("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = open(&link, existing()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn rename_noreplace_never_replaces() {
        let (path, _f) = temp_file("rename");
        let other = path.with_file_name("other");
        std::fs::write(&other, b"keep").unwrap();
        assert!(!rename_noreplace(&path, &other).unwrap());
        assert_eq!(std::fs::read(&other).unwrap(), b"keep");
        let fresh = path.with_file_name("fresh");
        assert!(rename_noreplace(&path, &fresh).unwrap());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn reserve_grows_and_never_shrinks() {
        let (path, f) = temp_file("reserve");
        reserve(fd(&f), 10_000).unwrap();
        assert_eq!(facts(fd(&f)).unwrap().size, 10_000);
        reserve(fd(&f), 100).unwrap();
        assert_eq!(facts(fd(&f)).unwrap().size, 10_000);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn reopen_gives_a_new_description_of_the_same_file() {
        let anon = anonymous_file("test").unwrap();
        reserve(fd(&anon.file), 4096).unwrap();
        let again = reopen(fd(&anon.file)).unwrap();
        // A new description: our lock conflicts with it, as with any other holder's.
        assert!(lock_byte(fd(&anon.file), 3, LockKind::Exclusive, false).unwrap());
        assert!(byte_is_locked_by_other(fd(&again), 3).unwrap());
        assert!(!lock_byte(fd(&again), 3, LockKind::Shared, false).unwrap());
        write_at(&anon.file, b"same", 100).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(read_at(&again, &mut buf, 100).unwrap(), 4);
        assert_eq!(&buf, b"same");
    }

    #[test]
    fn random_tokens_are_nonzero_31_bit_and_vary() {
        let tokens: std::collections::HashSet<u32> = (0..64).map(|_| random_token()).collect();
        assert!(tokens.iter().all(|&t| t != 0 && t & 0x8000_0000 == 0));
        assert!(tokens.len() > 1);
    }
}
