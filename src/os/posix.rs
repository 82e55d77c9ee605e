//! The calls that are the same on Linux and macOS: open, `fstat`, rename, unlink, positioned
//! reads and writes, and open-file-description (OFD) byte-range locks.
//!
//! Files are opened with `O_NOFOLLOW | O_CLOEXEC`. Locks are OFD locks (`F_OFD_SETLK`,
//! `F_OFD_SETLKW`, `F_OFD_GETLK`), owned by the open file description they were taken
//! through and dropped when its last descriptor closes, including when its holder is killed.
//! Linux has them since 3.15 (`fcntl(2)`); XNU since OS X 10.11 with the same commands and
//! semantics (`macos.rs` says where that is written down). `rustix` covers everything but
//! the OFD commands, which go through `libc::fcntl`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags};

use super::{FileFacts, LockKind, OpenMode};

/// Opens `path` without following a final symlink, close-on-exec.
pub fn open(path: &Path, how: OpenMode) -> io::Result<File> {
    // NONBLOCK: opening a FIFO planted at the path must not block (it is then refused as
    // not a regular file); it changes nothing for regular files and mmap.
    let mut flags = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    flags |= if how.write {
        OFlags::RDWR
    } else {
        OFlags::RDONLY
    };
    if how.create_exclusive {
        flags |= OFlags::CREATE | OFlags::EXCL;
    }
    // `mode_t` is 32 bits on Linux and 16 on macOS; permission bits fit either.
    let mode = Mode::from_raw_mode((how.mode & 0o7777) as rfs::RawMode);
    let fd = rfs::open(path, flags, mode)?;
    Ok(File::from(fd))
}

/// `fstat` on an open file.
pub fn facts(fd: BorrowedFd<'_>) -> io::Result<FileFacts> {
    Ok(facts_of(&rfs::fstat(fd)?))
}

/// `lstat` of a path (a final symlink is described, not followed).
pub fn path_facts(path: &Path) -> io::Result<FileFacts> {
    Ok(facts_of(&rfs::statat(
        rfs::CWD,
        path,
        rfs::AtFlags::SYMLINK_NOFOLLOW,
    )?))
}

// The casts are no-ops on Linux and widenings on macOS (see below): one source for both.
#[allow(clippy::unnecessary_cast)]
fn facts_of(st: &rfs::Stat) -> FileFacts {
    let file_type = rfs::FileType::from_raw_mode(st.st_mode);
    // Field widths differ (`st_mode` and `st_nlink` are 16 bits on macOS, `st_dev` is
    // signed there); every value fits.
    let mode = st.st_mode as u32;
    FileFacts {
        size: st.st_size as u64,
        is_regular: file_type == rfs::FileType::RegularFile,
        is_dir: file_type == rfs::FileType::Directory,
        nlink: st.st_nlink as u64,
        uid: st.st_uid,
        gid: st.st_gid,
        mode: mode & 0o7777,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
    }
}

/// Sets a file's permission bits (`fchmod`: the umask does not apply).
pub fn set_mode(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(rfs::fchmod(
        fd,
        Mode::from_raw_mode((mode & 0o7777) as rfs::RawMode),
    )?)
}

/// Sets a file's owner and group (`fchown`; `None` leaves one as it is).
pub fn set_owner(fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    // `from_raw` panics on -1 (the "leave as is" value of chown(2)): `None` says that here.
    let valid = |id: u32| id != u32::MAX;
    if uid.is_some_and(|u| !valid(u)) || gid.is_some_and(|g| !valid(g)) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let uid = uid.map(rustix::fs::Uid::from_raw);
    let gid = gid.map(rustix::fs::Gid::from_raw);
    Ok(rfs::fchown(fd, uid, gid)?)
}

/// Moves `from` over `to`, replacing what is there in one step (`rename(2)`).
pub fn rename_replace(from: &Path, to: &Path) -> io::Result<()> {
    Ok(rfs::rename(from, to)?)
}

/// Writes the file's data and metadata to its device (`fsync`).
pub fn sync(file: &File) -> io::Result<()> {
    file.sync_all()
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Moves `from` to `to` only if `to` does not exist: `renameat2(RENAME_NOREPLACE)` on Linux,
/// `renameatx_np(RENAME_EXCL)` on macOS (rustix picks). Returns `Ok(false)` when `to`
/// already exists.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<bool> {
    match rfs::renameat_with(rfs::CWD, from, rfs::CWD, to, rfs::RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::EXIST => Ok(false),
        // Filesystems without the flag: link(2) is atomic and fails on an existing name.
        Err(e) if flag_unsupported(e.raw_os_error()) => match rfs::link(from, to) {
            Ok(()) => {
                let _ = rfs::unlink(from);
                Ok(true)
            }
            Err(e) if e == rustix::io::Errno::EXIST => Ok(false),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Whether a rename failed only because the filesystem (or kernel) lacks the no-replace
/// flag: `EINVAL`/`ENOSYS` on Linux, `ENOTSUP` on macOS (`rename(2)`).
fn flag_unsupported(errno: i32) -> bool {
    errno == libc::EINVAL
        || errno == libc::ENOSYS
        || errno == libc::ENOTSUP
        || errno == libc::EOPNOTSUPP
}

/// Removes a path (never follows a symlink: `unlink` acts on the link itself).
pub fn unlink(path: &Path) -> io::Result<()> {
    Ok(rfs::unlink(path)?)
}

/// Reads up to `buf.len()` bytes at `offset` into a private buffer; returns how many.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Writes all of `buf` at `offset` (used only on files not yet visible or exclusively locked).
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
}

fn flock_struct(kind: Option<LockKind>, offset: u64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = match kind {
        Some(LockKind::Shared) => libc::F_RDLCK,
        Some(LockKind::Exclusive) => libc::F_WRLCK,
        None => libc::F_UNLCK,
    } as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = offset as libc::off_t;
    fl.l_len = 1;
    fl.l_pid = 0; // required to be 0 for OFD locks
    fl
}

fn fcntl_lock(fd: BorrowedFd<'_>, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
    loop {
        // SAFETY: `fd` is a live descriptor for the duration of the borrow, and `fl` is a
        // valid, exclusively borrowed `struct flock` as F_OFD_* commands require.
        let rc = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, fl as *mut libc::flock) };
        if rc != -1 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Takes an OFD lock on the byte at `offset`. With `wait == false` returns `Ok(false)`
/// when another holder conflicts. Taking a lock of the other kind on a byte this
/// description already holds converts it atomically.
pub fn lock_byte(fd: BorrowedFd<'_>, offset: u64, kind: LockKind, wait: bool) -> io::Result<bool> {
    let mut fl = flock_struct(Some(kind), offset);
    let cmd = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    match fcntl_lock(fd, cmd, &mut fl) {
        Ok(()) => Ok(true),
        Err(e) if !wait && matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Releases this description's OFD lock on the byte at `offset`.
pub fn unlock_byte(fd: BorrowedFd<'_>, offset: u64) -> io::Result<()> {
    let mut fl = flock_struct(None, offset);
    fcntl_lock(fd, libc::F_OFD_SETLK, &mut fl)
}

/// Whether some other open file description holds any lock on the byte at `offset`
/// (a read lock included: the probe asks whether a write lock could be taken). Asking
/// needs no write access, so read-only descriptors may ask too.
pub fn byte_is_locked_by_other(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    let mut fl = flock_struct(Some(LockKind::Exclusive), offset);
    fcntl_lock(fd, libc::F_OFD_GETLK, &mut fl)?;
    Ok(fl.l_type != libc::F_UNLCK as _)
}

/// Takes a read lock on the byte at `offset` without waiting: a value reader's pin
/// (`src/value/DESIGN.md`). Returns `Ok(false)` if a writer holds a write lock there (none
/// does in share-object; a foreign process might). A read-only descriptor can take it.
pub fn pin_byte(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    lock_byte(fd, offset, LockKind::Shared, false)
}
