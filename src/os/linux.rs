//! The Linux-only calls: `fallocate`, `memfd_create`, reopening through `/proc/self/fd`,
//! the shared futex, and `getrandom`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::thread::futex;

use super::{AnonymousFile, Wake};

/// What [`reserve`] calls, for messages.
pub const RESERVE_HOW: &str = "fallocate";

/// Grows the file to at least `len` bytes with the blocks reserved, so a later store into
/// the mapping cannot fault for lack of space. Never shrinks.
pub fn reserve(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    match rfs::fallocate(fd, rfs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        // Filesystems without fallocate: grow without reserving (documented limit).
        Err(e) if e == rustix::io::Errno::OPNOTSUPP => {
            let size = rfs::fstat(fd)?.st_size as u64;
            if size < len {
                rfs::ftruncate(fd, len)?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Nothing to keep on Linux: a memfd never had a name in any folder.
pub struct NameGuard;

/// An anonymous memory file (`memfd_create`), close-on-exec.
pub fn anonymous_file(label: &str) -> io::Result<AnonymousFile> {
    let fd = rfs::memfd_create("share-object", rfs::MemfdFlags::CLOEXEC)?;
    Ok(AnonymousFile {
        file: File::from(fd),
        name: format!("memfd:share-object-{label}"),
        guard: NameGuard,
    })
}

/// How [`reopen`] finds the file, for messages.
pub const REOPEN_HOW: &str = "reopen (through /proc/self/fd)";

/// Opens the file behind `fd` afresh, through `/proc/self/fd`, with the access mode `fd`
/// has, close-on-exec. Unlike `dup`, this makes a new open file description: OFD locks taken
/// through it are its own, and are dropped when it closes, whatever happens to `fd`. Fails
/// if what opened is not the same file.
pub fn reopen(fd: BorrowedFd<'_>) -> io::Result<File> {
    let access = rfs::fcntl_getfl(fd)? & OFlags::RWMODE;
    let flags = access | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let file = File::from(rfs::open(link.as_str(), flags, Mode::empty())?);
    let (was, now) = (rfs::fstat(fd)?, rfs::fstat(&file)?);
    if (was.st_dev, was.st_ino) != (now.st_dev, now.st_ino) {
        return Err(io::Error::other(format!("{link} opened another file")));
    }
    Ok(file)
}

/// Parks the calling thread while `word == expected`, for at most `timeout` (the shared, not
/// process-private, futex: a wake from any process that maps the same file page reaches it).
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts = timeout.map(|d| futex::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as _,
        tv_nsec: d.subsec_nanos() as _,
    });
    // SYNC POINT: the kernel compares `word` with `expected` atomically with queueing this
    // thread, which pairs with the store that precedes every `futex_wake`.
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Err(e) if e == rustix::io::Errno::TIMEDOUT => Wake::TimedOut,
        _ => Wake::Woken,
    }
}

/// Wakes up to `n` threads parked on `word`, in any process; returns how many woke.
pub fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    // A failure here (EFAULT cannot happen on a live mapping) is reported as "one woke", so
    // that callers never conclude from it that their waiters are gone.
    futex::wake(word, futex::Flags::empty(), n).unwrap_or(1)
}

/// Fills `buf` from the kernel's random source.
pub fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        done += rustix::rand::getrandom(&mut buf[done..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(())
}
