//! The operating-system calls a segment needs, in one small Linux-specific file.
//!
//! Files are opened with `O_NOFOLLOW | O_CLOEXEC`; space is reserved with `fallocate` so a
//! full filesystem fails here and never as a bus error later; cross-process locks are
//! open-file-description (OFD) byte-range locks, which the kernel drops when the last
//! descriptor of their holder closes — including when the holder is killed.
//!
//! `rustix` covers everything but byte-range OFD locks, which go through `libc::fcntl`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags};

/// How to open a path.
#[derive(Debug, Clone, Copy)]
pub struct OpenMode {
    pub write: bool,
    pub create_exclusive: bool,
    pub mode: u32,
}

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
    let fd = rfs::open(path, flags, Mode::from_raw_mode(how.mode))?;
    Ok(File::from(fd))
}

/// What `fstat` says that matters for safety and sizing.
#[derive(Debug, Clone, Copy)]
pub struct FileFacts {
    pub size: u64,
    pub is_regular: bool,
    pub is_dir: bool,
    pub nlink: u64,
    pub uid: u32,
    pub mode: u32,
}

/// `fstat` on an open file.
pub fn facts(fd: BorrowedFd<'_>) -> io::Result<FileFacts> {
    let st = rfs::fstat(fd)?;
    let file_type = rfs::FileType::from_raw_mode(st.st_mode);
    Ok(FileFacts {
        size: st.st_size as u64,
        is_regular: file_type == rfs::FileType::RegularFile,
        is_dir: file_type == rfs::FileType::Directory,
        nlink: st.st_nlink as u64,
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
    })
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

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

/// An anonymous memory file (`memfd_create`), close-on-exec.
pub fn memfd(name: &str) -> io::Result<File> {
    let fd = rfs::memfd_create(name, rfs::MemfdFlags::CLOEXEC)?;
    Ok(File::from(fd))
}

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

/// Moves `from` to `to` only if `to` does not exist (`renameat2(RENAME_NOREPLACE)`).
/// Returns `Ok(false)` when `to` already exists.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<bool> {
    match rfs::renameat_with(rfs::CWD, from, rfs::CWD, to, rfs::RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::EXIST => Ok(false),
        // Filesystems without renameat2 flags: link(2) is atomic and fails on an existing name.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            match rfs::link(from, to) {
                Ok(()) => {
                    let _ = rfs::unlink(from);
                    Ok(true)
                }
                Err(e) if e == rustix::io::Errno::EXIST => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
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

/// Kind of OFD lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Shared,
    Exclusive,
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
/// descriptor already holds converts it atomically.
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

/// Releases this descriptor's OFD lock on the byte at `offset`.
pub fn unlock_byte(fd: BorrowedFd<'_>, offset: u64) -> io::Result<()> {
    let mut fl = flock_struct(None, offset);
    fcntl_lock(fd, libc::F_OFD_SETLK, &mut fl)
}

/// Whether some other open file description holds any lock on the byte at `offset`.
pub fn byte_is_locked_by_other(fd: BorrowedFd<'_>, offset: u64) -> io::Result<bool> {
    let mut fl = flock_struct(Some(LockKind::Exclusive), offset);
    fcntl_lock(fd, libc::F_OFD_GETLK, &mut fl)?;
    Ok(fl.l_type != libc::F_UNLCK as _)
}

/// 64 random bits (a map's hash seed). Falls back to the clock, pid and an address if the
/// kernel's generator is unavailable (the seed then only resists casual collisions).
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_ok() {
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
        if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_err() {
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

    fn fd(file: &File) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(file)
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

    #[test]
    fn ofd_locks_conflict_between_descriptions_and_not_within_one() {
        let (path, a) = temp_file("ofd");
        let how = OpenMode {
            write: true,
            create_exclusive: false,
            mode: 0,
        };
        let b = open(&path, how).unwrap();
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
    fn symlinks_are_not_followed() {
        let (path, _f) = temp_file("nofollow");
        let link = path.with_file_name("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let how = OpenMode {
            write: true,
            create_exclusive: false,
            mode: 0,
        };
        let err = open(&link, how).unwrap_err();
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
}
