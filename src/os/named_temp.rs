//! Anonymous segment files where there is no `memfd_create` (macOS).
//!
//! An anonymous segment is a regular file `share-object-anon-<pid>-<random>` created `0600`
//! with `O_CREAT | O_EXCL | O_NOFOLLOW` in the temp folder (`$TMPDIR`, private to the user on
//! macOS). It keeps that name while the handle that created it is open, because `fromFd()`
//! must open the file afresh (a new open file description, see `macos.rs`) and macOS can
//! only do that by name. [`NameGuard`] removes the name when the creating handle closes; the
//! file itself lives on, like a memfd, while any descriptor or mapping refers to it.
//!
//! A creator killed before it could remove the name leaves it behind. The first anonymous
//! segment a process creates removes every such name whose creator process is gone
//! ([`sweep`]): only regular files of this user, with one link, named exactly by the pattern.
//!
//! Plain POSIX: compiled on macOS, and on every OS for the tests.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs as rfs;

use super::{posix, OpenMode};

const PREFIX: &str = "share-object-anon-";

/// Removes the anonymous file's name when dropped, if the name still refers to that file.
pub struct NameGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl NameGuard {
    /// Where the name is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        // lstat: never follows a symlink; a name that now refers to another file is left alone.
        if let Ok(st) = rfs::lstat(&self.path) {
            if file_id(&st) == (self.dev, self.ino) {
                let _ = rfs::unlink(&self.path);
            }
        }
    }
}

/// Creates a new, empty anonymous file in `dir`, read-write and close-on-exec, and the guard
/// of its name. Sweeps stale names first (once per process).
pub fn create(dir: &Path) -> io::Result<(File, NameGuard)> {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    // SYNC POINT: Relaxed: only decides whether this process sweeps once more; a second
    // sweep would be harmless.
    if !SWEPT.swap(true, Ordering::Relaxed) {
        sweep(dir);
    }
    let how = OpenMode {
        write: true,
        create_exclusive: true,
        mode: 0o600,
    };
    let mut tries = 0;
    loop {
        let path = dir.join(name_for(std::process::id(), random64()));
        match posix::open(&path, how) {
            Ok(file) => {
                let (dev, ino) = file_id(&rfs::fstat(&file)?);
                let guard = NameGuard { path, dev, ino };
                return Ok((file, guard));
            }
            // A name taken (62 random bits: only by someone planting names): another one.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 16 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Device and inode, which tell files apart.
// The field widths differ by OS (`st_dev` is 32 bits on macOS); a cast is needed there.
#[allow(clippy::unnecessary_cast)]
fn file_id(st: &rfs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

fn random64() -> u64 {
    (u64::from(super::random_token()) << 31) | u64::from(super::random_token())
}

/// The file name of an anonymous file of process `pid`.
fn name_for(pid: u32, random: u64) -> String {
    format!("{PREFIX}{pid}-{random:016x}")
}

/// The creator's pid, if `name` is exactly what [`name_for`] makes.
fn creator_pid(name: &str) -> Option<u32> {
    let (pid, random) = name.strip_prefix(PREFIX)?.split_once('-')?;
    if pid.is_empty() || pid.len() > 10 || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if random.len() != 16 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` exists (`kill(pid, 0)`: only `ESRCH` says it does not).
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes the names of anonymous files in `dir` whose creator process is gone. Best effort:
/// anything unexpected is left alone.
pub fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = posix::euid();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(creator_pid) else {
            continue;
        };
        if pid == std::process::id() || process_exists(pid) {
            continue;
        }
        let path = entry.path();
        let Ok(st) = rfs::lstat(&path) else {
            continue;
        };
        let regular = rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::RegularFile;
        if regular && st.st_uid == me && st.st_nlink == 1 {
            let _ = rfs::unlink(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    /// A pid that no process has: one that just exited and was reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn names_round_trip_and_nothing_else_matches() {
        let name = name_for(4242, 0xdead_beef);
        assert_eq!(creator_pid(&name), Some(4242));
        for other in [
            "share-object-anon-",
            "share-object-anon-12",
            "share-object-anon-12-abc",
            "share-object-anon-x2-00000000deadbeef",
            "share-object-anon-12-00000000deadbeefX",
            "share-object-anon-12-00000000deadbee-",
            "share-object-anon-123456789012-00000000deadbeef",
            "my-share-object-anon-12-00000000deadbeef",
        ] {
            assert_eq!(creator_pid(other), None, "{other}");
        }
    }

    #[test]
    fn the_name_lives_while_the_guard_does_and_the_file_after_it() {
        let dir = TempDir::new("named-temp");
        let (file, guard) = create(dir.path()).unwrap();
        let path = guard.path().to_owned();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::symlink_metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            creator_pid(path.file_name().unwrap().to_str().unwrap()),
            Some(std::process::id())
        );
        drop(guard);
        assert!(!path.exists());
        // The file itself is still there for whoever has it open.
        posix::write_at(&file, b"still here", 0).unwrap();
        let mut buf = [0u8; 10];
        assert_eq!(posix::read_at(&file, &mut buf, 0).unwrap(), 10);
        assert_eq!(&buf, b"still here");
    }

    #[test]
    fn a_guard_leaves_a_name_that_now_means_another_file() {
        let dir = TempDir::new("named-temp-swap");
        let (_file, guard) = create(dir.path()).unwrap();
        let path = guard.path().to_owned();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        drop(guard);
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    }

    #[test]
    fn sweep_removes_only_names_of_dead_creators() {
        let dir = TempDir::new("named-temp-sweep");
        let dead = dir.path().join(name_for(dead_pid(), 1));
        let alive = dir.path().join(name_for(std::process::id(), 2));
        let parent = dir
            .path()
            .join(name_for(std::os::unix::process::parent_id(), 3));
        let unrelated = dir.path().join(format!("x{}", name_for(dead_pid(), 4)));
        let linked = dir.path().join(name_for(dead_pid(), 5));
        for p in [&dead, &alive, &parent, &unrelated, &linked] {
            std::fs::write(p, b"").unwrap();
        }
        std::fs::hard_link(&linked, dir.path().join("second-link")).unwrap();
        let symlink = dir.path().join(name_for(dead_pid(), 6));
        std::os::unix::fs::symlink(&alive, &symlink).unwrap();
        sweep(dir.path());
        assert!(!dead.exists());
        assert!(alive.exists() && parent.exists() && unrelated.exists() && linked.exists());
        assert!(std::fs::symlink_metadata(&symlink).is_ok());
    }
}
