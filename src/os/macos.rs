//! The macOS calls, and how the Linux design carries over to macOS.
//!
//! Nothing here can run where the test suite runs; it is type-checked for
//! `aarch64-apple-darwin` and `x86_64-apple-darwin` by `.ci/run`, its arithmetic is in
//! `macos_rules.rs` and its anonymous files in `named_temp.rs`, both unit-tested on Linux.
//! The sources each choice follows are named where it is made.
//!
//! # Locks and liveness
//!
//! `segment` and `sync::lock` need one lock byte per open handle (its liveness byte, and the
//! shared [`LOCK_OPEN`](crate::segment::layout::LOCK_OPEN) byte) that
//! 1. every other handle sees as held, in another process *and in this one*;
//! 2. its own handle does not see (so [`byte_is_locked_by_other`](super::byte_is_locked_by_other)
//!    and lock conversion work);
//! 3. the kernel releases when the handle's descriptor closes or its process dies;
//! 4. nothing else the process does with the file releases.
//!
//! What macOS offers:
//! - Process-associated `F_SETLK` locks, the documented POSIX ones, fail 1 and 4: locks of one
//!   process never conflict with each other (two handles in one process would take each
//!   other for dead and steal each other's locks), and closing *any* descriptor of the file
//!   drops all of the process's locks on it (`fcntl(2)`), so one `fs.readFileSync()` of the
//!   segment, or closing one of two handles, would make every handle of the process look dead.
//! - `flock(2)` keeps 1–4 but locks whole files only: it would take a lock file per handle
//!   (a folder of token files beside each segment, which anonymous and `fromFd()` segments
//!   have no place for and a crash leaves behind), and its upgrade is not atomic ("the
//!   previous lock being released and the new lock applied", `flock(2)`), which the in-place
//!   initialisation relies on.
//! - Open-file-description locks: `fcntl` with `F_OFD_SETLK` (90), `F_OFD_SETLKW` (91) and
//!   `F_OFD_GETLK` (92). XNU has them since OS X 10.11 (xnu-3247), with Linux's semantics,
//!   which keep 1–4: `bsd/kern/kern_descrip.c` passes the fileglob (the open file
//!   description) as the lock's owner; `lf_getblock` in `bsd/kern/kern_lockf.c` skips locks
//!   of the same owner and conflicts with every other one; `vn_closefile` in
//!   `bsd/vfs/vfs_vnops.c` releases the fileglob's locks at its last close, which process
//!   exit performs; no other descriptor's close touches them. They sit in the `PRIVATE` part of
//!   `sys/fcntl.h`, so no SDK header declares them, but the numbers are fixed ABI: Apple's
//!   swift-system builds its public `FileDescriptor.lock()` on them (`Sources/System/FileLock.swift`,
//!   inlined into client binaries), ncruces/go-sqlite3 locks databases with them on macOS
//!   (`vfs/os_darwin.go`), and the `libc` crate defines them for Apple targets.
//!
//! So macOS takes the same OFD locks as Linux (`posix.rs`), and the invariants of
//! `segment/mod.rs` and `sync/lock.rs` hold unchanged. They are advisory locks on the file's
//! vnode: a filesystem without advisory locking (some network mounts) refuses them, and
//! opening a segment there fails with that errno.
//!
//! # A new open file description for `fromFd()` ([`reopen`])
//!
//! A handle adopting a passed descriptor must take its locks through a description of its
//! own: through the shared one, its liveness byte would stay held while the parent (or a
//! sibling) keeps the descriptor open — so its death would never be seen — and two handles
//! on it could not see each other at all (rule 2). `dup`, `F_DUPFD` and opening `/dev/fd/N`
//! all share the description on macOS (`/dev/fd` is `fdesc`, whose open is a dup:
//! `dupfdopen` in `bsd/kern/kern_descrip.c`), and `openbyid_np` needs a privilege. What
//! remains is the file's name: `fcntl(F_GETPATH)` gives it, `open` makes a new description,
//! and the device and inode are compared with the original's. A file that no longer has a
//! name cannot be adopted on macOS (it can on Linux, through `/proc/self/fd`).
//!
//! # Anonymous segments ([`anonymous_file`])
//!
//! `memfd_create` does not exist. `shm_open` objects are not files on macOS: they can be
//! sized once only (`pshm_truncate` refuses a second `ftruncate`, so a segment could never
//! grow), have no `read`/`pread` (the header is validated from a private copy), and take no
//! `fcntl` locks (`F_OFD_SETLK` wants a vnode: `EBADF`). An unlinked temporary file has
//! no name, so children could not adopt it (above). So an anonymous segment is a `0600` file
//! in the temp folder, named while the handle that created it is open (`named_temp.rs`).
//!
//! # Waits ([`futex_wait`], [`futex_wake`])
//!
//! On macOS 14.4 and later, `os_sync_wait_on_address(_with_timeout)` and
//! `os_sync_wake_by_address_any/all` with `OS_SYNC_WAIT_ON_ADDRESS_SHARED` /
//! `OS_SYNC_WAKE_BY_ADDRESS_SHARED` (public, `<os/os_sync_wait_on_address.h>`; the flags
//! make the kernel key the wait by the memory object and offset, so processes mapping the
//! same file meet). Before 14.4, the calls those wrap: `__ulock_wait` / `__ulock_wake` with
//! `UL_COMPARE_AND_WAIT_SHARED` (`bsd/sys/ulock.h`, in libSystem since 10.12), as libc++'s
//! `std::atomic::wait` and rust-lang/rust#122408 use them. Both are looked up with `dlsym`
//! when first needed, as that pull request does: the binary then loads on any macOS, and
//! refers to no private symbol (which the Mac App Store rejects). Return codes, as the
//! header documents and Miri's shim of these calls checks (`src/shims/unix/macos/sync.rs`):
//! a wait returns >= 0 when woken or when the word differs, else -1 with `ETIMEDOUT`,
//! `EINTR`, or `EFAULT` when the word's page is not resident (the kernel reads it without
//! faulting; the caller's next read brings it back); a timeout of 0 is `EINVAL` for `os_sync`
//! but "no timeout" for `__ulock_wait` (`sys_ulock.c`); a wake returns 0, or -1 with
//! `ENOENT` when nobody waited. A wake cannot
//! count whom it woke, so [`futex_wake`] returns 0 (nobody) or 1 (at least one), which is all
//! its callers ask. Should neither be found (not on any macOS Node runs on), waits degrade to
//! 1 ms polling.
//!
//! # The rest
//!
//! [`reserve`]: `fcntl(F_PREALLOCATE)` with `F_ALLOCATEALL | F_PEOFPOSMODE` for the growth,
//! then `ftruncate` (macOS has no `fallocate`; rustix's emulation truncates, which could
//! shrink). It reserves blocks for growth only, not for holes an existing sparse file has,
//! and on APFS a snapshot or clone can still make a later write need new blocks. Randomness:
//! `getentropy(2)` (10.12+). `mode_t` and `st_nlink` are 16 bits (`posix.rs` converts).

use std::ffi::{c_int, c_void, CStr};
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use rustix::fs::{self as rfs, Mode, OFlags};

use super::macos_rules::{self, WaitResult};
use super::{named_temp, AnonymousFile, Wake};

pub use super::named_temp::NameGuard;

/// How long a wait sleeps when the OS has no way to wait on an address, or refused one.
const POLL: Duration = Duration::from_millis(1);

/// What [`reserve`] calls, for messages.
pub const RESERVE_HOW: &str = "preallocate (F_PREALLOCATE)";

/// Grows the file to at least `len` bytes, reserving the blocks of the growth first, so a
/// later store into the mapping cannot fault for lack of space. Never shrinks (growth is
/// serialised by the segment's writer lock, so the size read here stays true).
pub fn reserve(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let size = rfs::fstat(fd)?.st_size as u64;
    let Some(grow) = macos_rules::preallocate_len(size, len) else {
        return Ok(());
    };
    let mut store = libc::fstore_t {
        fst_flags: libc::F_ALLOCATEALL,
        fst_posmode: libc::F_PEOFPOSMODE,
        fst_offset: 0,
        fst_length: libc::off_t::try_from(grow)
            .map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?,
        fst_bytesalloc: 0,
    };
    loop {
        // SAFETY: `fd` is live for the borrow; `store` is a valid, exclusively borrowed
        // `fstore_t`, which F_PREALLOCATE reads and updates (`fst_bytesalloc`).
        let rc = unsafe {
            libc::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                libc::F_PREALLOCATE,
                &mut store as *mut libc::fstore_t,
            )
        };
        if rc != -1 {
            break;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Filesystems without preallocation: grow without reserving (documented limit).
            Some(libc::ENOTSUP | libc::EOPNOTSUPP) => break,
            _ => return Err(err),
        }
    }
    rfs::ftruncate(fd, len)?;
    Ok(())
}

/// A new anonymous segment file: `0600` in the temp folder, named while `guard` lives.
pub fn anonymous_file(_label: &str) -> io::Result<AnonymousFile> {
    let (file, guard) = named_temp::create(&std::env::temp_dir())?;
    Ok(AnonymousFile {
        name: guard.path().display().to_string(),
        file,
        guard,
    })
}

/// How [`reopen`] finds the file, for messages.
pub const REOPEN_HOW: &str = "reopen by the file's name (F_GETPATH; on macOS an anonymous \
     segment has a name only while the handle that created it is open)";

/// Opens the file behind `fd` afresh by the name `fcntl(F_GETPATH)` gives, with the access
/// mode `fd` has, close-on-exec: a new open file description, so OFD locks taken through it
/// are its own. Fails if the file has no name any more, or if what opened is not the same
/// file.
pub fn reopen(fd: BorrowedFd<'_>) -> io::Result<File> {
    let access = rfs::fcntl_getfl(fd)? & OFlags::RWMODE;
    let flags = access | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::NOFOLLOW;
    let path = rfs::getpath(fd)?;
    let file = File::from(rfs::open(path.as_c_str(), flags, Mode::empty())?);
    let (was, now) = (rfs::fstat(fd)?, rfs::fstat(&file)?);
    if (was.st_dev, was.st_ino) != (now.st_dev, now.st_ino) {
        return Err(io::Error::other(format!(
            "{} now names another file",
            path.to_string_lossy()
        )));
    }
    Ok(file)
}

/// Fills `buf` from the kernel's random source (`getentropy`, at most 256 bytes a call).
pub fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    for chunk in buf.chunks_mut(256) {
        // SAFETY: `chunk` is a valid, exclusively borrowed buffer of `chunk.len()` <= 256
        // bytes, as getentropy(2) requires.
        if unsafe { libc::getentropy(chunk.as_mut_ptr().cast(), chunk.len()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

// `<os/os_sync_wait_on_address.h>` (macOS 14.4).
type OsSyncWait = unsafe extern "C" fn(*mut c_void, u64, usize, u32) -> c_int;
type OsSyncWaitTimeout = unsafe extern "C" fn(*mut c_void, u64, usize, u32, u32, u64) -> c_int;
type OsSyncWake = unsafe extern "C" fn(*mut c_void, usize, u32) -> c_int;
// `bsd/sys/ulock.h`: `__ulock_wait(operation, addr, value, timeout_us)`,
// `__ulock_wake(operation, addr, wake_value)`.
type UlockWait = unsafe extern "C" fn(u32, *mut c_void, u64, u32) -> c_int;
type UlockWake = unsafe extern "C" fn(u32, *mut c_void, u64) -> c_int;

/// `UL_COMPARE_AND_WAIT_SHARED` (`bsd/sys/ulock.h`): a 32-bit compare-and-wait keyed by
/// memory object and offset, so it meets waiters of other processes.
const UL_COMPARE_AND_WAIT_SHARED: u32 = 3;
/// `ULF_WAKE_ALL` (`bsd/sys/ulock.h`).
const ULF_WAKE_ALL: u32 = 0x0000_0100;

/// The wait primitives this macOS has, resolved once.
enum Waits {
    OsSync {
        wait: OsSyncWait,
        wait_timeout: OsSyncWaitTimeout,
        wake_any: OsSyncWake,
        wake_all: OsSyncWake,
    },
    Ulock {
        wait: UlockWait,
        wake: UlockWake,
    },
    Poll,
}

fn symbol(name: &CStr) -> Option<NonNull<c_void>> {
    // SAFETY: RTLD_DEFAULT with a NUL-terminated name only looks the name up in the images
    // loaded in the process (libSystem among them); it calls nothing.
    NonNull::new(unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) })
}

fn waits() -> &'static Waits {
    static WAITS: OnceLock<Waits> = OnceLock::new();
    WAITS.get_or_init(|| {
        if let (Some(wait), Some(wait_timeout), Some(wake_any), Some(wake_all)) = (
            symbol(c"os_sync_wait_on_address"),
            symbol(c"os_sync_wait_on_address_with_timeout"),
            symbol(c"os_sync_wake_by_address_any"),
            symbol(c"os_sync_wake_by_address_all"),
        ) {
            // SAFETY: these libSystem functions have exactly the C signatures above (their
            // header, and the `libc` crate's declarations); a function pointer and a data
            // pointer have the same size on Apple targets.
            return unsafe {
                Waits::OsSync {
                    wait: std::mem::transmute::<*mut c_void, OsSyncWait>(wait.as_ptr()),
                    wait_timeout: std::mem::transmute::<*mut c_void, OsSyncWaitTimeout>(
                        wait_timeout.as_ptr(),
                    ),
                    wake_any: std::mem::transmute::<*mut c_void, OsSyncWake>(wake_any.as_ptr()),
                    wake_all: std::mem::transmute::<*mut c_void, OsSyncWake>(wake_all.as_ptr()),
                }
            };
        }
        if let (Some(wait), Some(wake)) = (symbol(c"__ulock_wait"), symbol(c"__ulock_wake")) {
            // SAFETY: as above, with the signatures of `bsd/sys/ulock.h`.
            return unsafe {
                Waits::Ulock {
                    wait: std::mem::transmute::<*mut c_void, UlockWait>(wait.as_ptr()),
                    wake: std::mem::transmute::<*mut c_void, UlockWake>(wake.as_ptr()),
                }
            };
        }
        Waits::Poll
    })
}

fn errno() -> Option<i32> {
    io::Error::last_os_error().raw_os_error()
}

/// Parks the calling thread while `word == expected`, for at most `timeout`, woken by a
/// [`futex_wake`] from any process that maps the same file.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let addr = word.as_ptr().cast::<c_void>();
    let value = u64::from(expected);
    let result = match waits() {
        Waits::OsSync {
            wait, wait_timeout, ..
        } => {
            let flags = libc::OS_SYNC_WAIT_ON_ADDRESS_SHARED;
            let clock = libc::OS_CLOCK_MACH_ABSOLUTE_TIME;
            // SYNC POINT (both calls): the kernel compares the word with `expected`
            // atomically with queueing this thread, which pairs with the store that precedes
            // every wake.
            match timeout {
                None => {
                    // SAFETY: `addr` is a live, 4-byte aligned `AtomicU32` (in a MAP_SHARED
                    // mapping the caller keeps) for the whole call; size 4 and SHARED
                    // describe it; the call only reads the word.
                    let rc = unsafe { wait(addr, value, 4, flags) };
                    macos_rules::wait_result(rc, errno(), false)
                }
                Some(d) => {
                    let (ns, shortened) = macos_rules::os_sync_timeout_ns(d);
                    // SAFETY: as above; `ns` is not 0 and `clock` is the one clock the call
                    // accepts.
                    let rc = unsafe { wait_timeout(addr, value, 4, flags, clock, ns) };
                    macos_rules::wait_result(rc, errno(), shortened)
                }
            }
        }
        Waits::Ulock { wait, .. } => {
            let (us, shortened) = macos_rules::ulock_timeout_us(timeout);
            // SYNC POINT: as above.
            // SAFETY: as above; UL_COMPARE_AND_WAIT_SHARED compares 4 bytes at `addr`.
            let rc = unsafe { wait(UL_COMPARE_AND_WAIT_SHARED, addr, value, us) };
            macos_rules::wait_result(rc, errno(), shortened)
        }
        Waits::Poll => {
            // SYNC POINT: Relaxed: only decides whether to sleep; the caller re-checks its
            // condition with its own ordering.
            if word.load(Ordering::Relaxed) != expected {
                return Wake::Woken;
            }
            WaitResult::Failed
        }
    };
    match result {
        WaitResult::Woken => Wake::Woken,
        WaitResult::TimedOut => Wake::TimedOut,
        WaitResult::Failed => {
            let nap = timeout.map_or(POLL, |d| d.min(POLL));
            std::thread::sleep(nap);
            if timeout.is_some_and(|d| d <= POLL) {
                Wake::TimedOut
            } else {
                Wake::Woken
            }
        }
    }
}

/// Wakes one thread (`n == 1`) or every thread (`n > 1`; macOS cannot wake exactly `n`,
/// and an extra wake is allowed) parked on `word`, in any process. Returns 0 when nobody
/// waited, 1 when at least one did (or when it cannot tell).
pub fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    if n == 0 {
        return 0;
    }
    let addr = word.as_ptr().cast::<c_void>();
    let all = n > 1;
    let rc = match waits() {
        Waits::OsSync {
            wake_any, wake_all, ..
        } => {
            let flags = libc::OS_SYNC_WAKE_BY_ADDRESS_SHARED;
            // SAFETY: `addr` is a live, 4-byte aligned `AtomicU32` for the call; size 4 and
            // SHARED match every waiter's; the call does not touch the word.
            unsafe {
                if all {
                    wake_all(addr, 4, flags)
                } else {
                    wake_any(addr, 4, flags)
                }
            }
        }
        Waits::Ulock { wake, .. } => {
            let op = UL_COMPARE_AND_WAIT_SHARED | if all { ULF_WAKE_ALL } else { 0 };
            // SAFETY: as above, with the operation every waiter used.
            unsafe { wake(op, addr, 0) }
        }
        Waits::Poll => return 1,
    };
    macos_rules::woke(rc, errno())
}
