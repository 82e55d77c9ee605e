//! Converts a format-1 value segment into format 2, in place (`DESIGN.md`, "Format 1 files").
//!
//! Format 1 kept the value in one place under a seqlock; format 2 keeps three slots. The
//! conversion cannot be done inside the old file while anything maps it, so it builds a
//! complete format-2 file beside it and renames it over the path:
//!
//! 1. take the file for this process alone (`segment::take_exclusive`: the open lock,
//!    exclusively, without waiting; every opener of either format holds it shared, so a
//!    segment in use is refused with `ERR_IN_USE`), after checking that the path still names
//!    the file;
//! 2. read the format-1 header and value from the file's bytes (nobody can be writing: they
//!    would hold the open lock); a torn value is refused unless `discard_torn`;
//! 3. create the new file under a temporary name beside it, give it the old one's mode and
//!    group (and owner, when run as root), fill it, flush it;
//! 4. mark the old file "format 1, upgrade in progress" (`VALUE_UPGRADING_VERSION`): from
//!    then on format-1 code refuses it, so no old process can go on writing the old inode
//!    after the rename;
//! 5. rename the new file over the path (atomic). A process that opened the old file by
//!    name and waited for the open lock finds, holding it, that the path names another
//!    file, and opens that (`segment::adopt`).
//!
//! Killed at any step, it leaves either the old file (marked or not; `upgrade` accepts both
//! and removes the temporary file a killed run left) or the new one. Only the mode, the
//! group and (as root) the owner are carried over: ACLs, extended attributes and security
//! labels of the old file are not.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use crate::error::{Error, Result};
use crate::os::{self, OpenMode};
use crate::segment::layout::{
    self, kind_name, value_v1, IdentityFields, HEADER_SIZE, KIND_VALUE, MAGIC_U64, MAX_CAPACITY,
    PAGE, SLOTS, VALUE_FORMAT_VERSION, VALUE_HEADER_SIZE, VALUE_UPGRADING_VERSION,
};
use crate::segment::{self, Exclusive};

/// What the caller asks of [`upgrade`].
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeOptions {
    /// Upgrade a segment whose format-1 value is torn (a writer died mid-write) with an
    /// empty value instead of refusing it.
    pub discard_torn: bool,
}

/// What [`upgrade`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgraded {
    /// The segment's version (commit number) now.
    pub version: u64,
    /// False if the file was already format 2 (nothing was changed).
    pub converted: bool,
    /// True if a torn format-1 value was replaced by an empty one.
    pub discarded_torn: bool,
}

impl Upgraded {
    /// The answer for a file that was already format 2.
    fn unchanged(version: u64) -> Self {
        Upgraded {
            version,
            converted: false,
            discarded_torn: false,
        }
    }
}

/// The codec tag of a format-1 value: bytes (format 1 kept no type).
const TAG_BYTES: u32 = 0;

/// Converts the format-1 value segment at `path` to format 2 (see the module's doc).
pub fn upgrade(path: &Path, opts: UpgradeOptions) -> Result<Upgraded> {
    let name = path.display().to_string();
    if path.as_os_str().is_empty() || path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(Error::invalid(
            &name,
            "the path is empty or contains a NUL byte",
        ));
    }
    let held = match segment::take_exclusive(path, "cannot upgrade") {
        Ok(held) => held,
        // In use: fine if there is nothing to convert (another upgrader finished first).
        Err(e @ Error::InUse { .. }) => match peek(path) {
            Some(version) => return Ok(Upgraded::unchanged(version)),
            None => return Err(e),
        },
        Err(e) => return Err(e),
    };
    let me = os::euid();
    if held.facts.uid != me && me != 0 {
        return Err(Error::UnsafePath {
            path: name,
            reason: format!(
                "the file is owned by uid {}; only its owner or root can upgrade it",
                held.facts.uid
            ),
        });
    }
    // Any earlier upgrader of this path that left a temporary file was killed: one that is
    // alive would hold the lock we hold.
    segment::remove_leftover_siblings(path, "upgrading");
    let (version, len, capacity, torn, marked) = match read_format1(&held, &name)? {
        Old::Current { version } => return Ok(Upgraded::unchanged(version)),
        Old::Format1 {
            version,
            len,
            capacity,
            torn,
            marked,
        } => (version, len, capacity, torn, marked),
    };
    if torn && !opts.discard_torn {
        return Err(Error::WriterDied { path: name });
    }
    let (commit, len) = if torn {
        (version + 1, 0)
    } else {
        (version, len)
    };
    let mut value = vec![0u8; len as usize];
    let got = os::read_at(&held.file, &mut value, value_v1::DATA as u64)
        .map_err(|e| Error::os(&name, "read", e))?;
    if got != value.len() {
        return Err(Error::corrupt(
            &name,
            "the value is cut short by the file's end",
        ));
    }
    let pages = capacity.max(len).div_ceil(PAGE).max(1);
    let temp = segment::sibling(path, "upgrading");
    let built = build(&temp, &name, &held, pages, commit, &value).and_then(|new| {
        if !marked {
            mark(&held.file, &name)?;
        }
        os::rename_replace(&temp, path).map_err(|e| Error::os(&name, "rename into place", e))?;
        drop(new);
        Ok(())
    });
    if let Err(e) = built {
        let _ = os::unlink(&temp);
        return Err(e);
    }
    Ok(Upgraded {
        version: commit,
        converted: true,
        discarded_torn: torn,
    })
}

/// The version of the format-2 value segment at `path`, read from its header (no lock);
/// `None` if it is anything else.
fn peek(path: &Path) -> Option<u64> {
    let how = OpenMode {
        write: false,
        create_exclusive: false,
        mode: 0,
    };
    let file = os::open(path, how).ok()?;
    let mut head = [0u8; 80];
    if os::read_at(&file, &mut head, 0).ok()? < head.len() {
        return None;
    }
    let mut line = [0u8; 64];
    line.copy_from_slice(&head[..64]);
    let fields = IdentityFields::parse(&line);
    let current = u64::from_le_bytes(head[64..72].try_into().ok()?);
    (fields.magic == MAGIC_U64
        && fields.kind == KIND_VALUE
        && fields.format_version == VALUE_FORMAT_VERSION)
        .then_some(current >> 2)
}

/// What the file held.
enum Old {
    /// Already format 2.
    Current { version: u64 },
    /// A format-1 value (`marked`: by an interrupted upgrade).
    Format1 {
        version: u64,
        len: u64,
        capacity: u64,
        torn: bool,
        marked: bool,
    },
}

fn read_format1(held: &Exclusive, name: &str) -> Result<Old> {
    let size = held.facts.size;
    let mut head = [0u8; HEADER_SIZE];
    let got = os::read_at(&held.file, &mut head, 0).map_err(|e| Error::os(name, "read", e))?;
    let mut line = [0u8; 64];
    line.copy_from_slice(&head[..64]);
    let fields = IdentityFields::parse(&line);
    if got < 8 || fields.magic != MAGIC_U64 {
        return Err(Error::NotASegment {
            path: name.to_owned(),
            reason: "its first bytes are not the share-object magic".into(),
        });
    }
    if got < HEADER_SIZE {
        return Err(Error::corrupt(
            name,
            format!("the file is {size} bytes, shorter than a header"),
        ));
    }
    if fields.kind != KIND_VALUE {
        return Err(Error::WrongKind {
            path: name.to_owned(),
            found: kind_name(fields.kind),
            expected: kind_name(KIND_VALUE),
        });
    }
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().unwrap());
    match fields.format_version {
        VALUE_FORMAT_VERSION => {
            return Ok(Old::Current {
                version: u64_at(64) >> 2,
            })
        }
        1 | VALUE_UPGRADING_VERSION => {}
        found => {
            return Err(Error::UnsupportedVersion {
                path: name.to_owned(),
                found,
                supported: 1,
                hint: "; only format-1 value segments can be upgraded".into(),
            })
        }
    }
    if fields.header_size as usize != HEADER_SIZE {
        return Err(Error::corrupt(
            name,
            format!("header size {} is not format 1's", fields.header_size),
        ));
    }
    let capacity = fields.capacity;
    if capacity > MAX_CAPACITY || HEADER_SIZE as u64 + capacity > size {
        return Err(Error::corrupt(
            name,
            format!("header claims {capacity} bytes of data but the file holds {size} bytes"),
        ));
    }
    let seq = u64_at(value_v1::SEQ);
    let len = u64_at(value_v1::LEN);
    let torn = seq & 1 == 1;
    if !torn && len > capacity {
        return Err(Error::corrupt(
            name,
            format!("value length {len} exceeds the capacity of {capacity} bytes"),
        ));
    }
    Ok(Old::Format1 {
        version: seq / 2,
        len: if torn { 0 } else { len },
        capacity: capacity.min(MAX_CAPACITY / SLOTS as u64),
        torn,
        marked: fields.format_version == VALUE_UPGRADING_VERSION,
    })
}

/// Writes the complete format-2 file at `temp`: mode, group (and owner, as root) of the old
/// one, the header, the value; flushed to the device before the rename.
fn build(
    temp: &Path,
    name: &str,
    held: &Exclusive,
    pages: u64,
    commit: u64,
    value: &[u8],
) -> Result<File> {
    let how = OpenMode {
        write: true,
        create_exclusive: true,
        mode: 0o600,
    };
    let file = os::open(temp, how).map_err(|e| Error::os(name, "create", e))?;
    let old = &held.facts;
    let owner = (os::euid() == 0).then_some(old.uid);
    os::set_owner(file.as_fd(), owner, Some(old.gid))
        .map_err(|e| Error::os(name, "give the new file the old one's group (fchown)", e))?;
    os::set_mode(file.as_fd(), old.mode).map_err(|e| Error::os(name, "fchmod", e))?;
    let image = super::header_image(pages, commit, value.len() as u64, TAG_BYTES);
    let total = VALUE_HEADER_SIZE as u64 + SLOTS as u64 * pages * PAGE;
    os::reserve(file.as_fd(), total).map_err(|e| Error::os(name, os::RESERVE_HOW, e))?;
    os::write_at(&file, value, VALUE_HEADER_SIZE as u64)
        .map_err(|e| Error::os(name, "write", e))?;
    os::write_at(&file, &image[8..], 8).map_err(|e| Error::os(name, "write header", e))?;
    os::write_at(&file, &layout::MAGIC, 0).map_err(|e| Error::os(name, "write header", e))?;
    os::sync(&file).map_err(|e| Error::os(name, "fsync", e))?;
    Ok(file)
}

/// Marks the old file "format 1, upgrade in progress".
fn mark(file: &File, name: &str) -> Result<()> {
    os::write_at(
        file,
        &VALUE_UPGRADING_VERSION.to_le_bytes(),
        layout::offsets::FORMAT_VERSION as u64,
    )
    .map_err(|e| Error::os(name, "mark the old file", e))?;
    os::sync(file).map_err(|e| Error::os(name, "fsync", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use crate::value::{ValueOptions, ValueSegment};

    /// A format-1 value segment as format-1 code wrote it.
    pub(crate) fn format1_file(path: &Path, value: &[u8], seq: u64, capacity: u64) {
        let mut bytes = vec![0u8; HEADER_SIZE + capacity as usize];
        bytes[..8].copy_from_slice(&layout::MAGIC);
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        bytes[12..16].copy_from_slice(&KIND_VALUE.to_le_bytes());
        bytes[16..20].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        bytes[24..32].copy_from_slice(&capacity.to_le_bytes());
        bytes[64..72].copy_from_slice(&seq.to_le_bytes());
        bytes[72..80].copy_from_slice(&(value.len() as u64).to_le_bytes());
        bytes[HEADER_SIZE..HEADER_SIZE + value.len()].copy_from_slice(value);
        std::fs::write(path, &bytes).unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
    }

    fn read(path: &Path) -> (Vec<u8>, u64) {
        let mut opts = ValueOptions::default();
        opts.open.mode = 0o640;
        let mut v = ValueSegment::open(path, &opts).unwrap();
        let mut out = vec![];
        let r = v.read_into(&mut out).unwrap();
        (out, r.commit)
    }

    #[test]
    fn upgrading_a_missing_path_is_not_found_and_creates_nothing() {
        let dir = TempDir::new("up-missing");
        let err = upgrade(&dir.path().join("nope"), UpgradeOptions::default())
            .err()
            .unwrap();
        assert_eq!(err.code(), "ERR_NOT_FOUND", "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_format1_file_is_refused_with_the_way_to_upgrade_it() {
        let dir = TempDir::new("up-refuse");
        let path = dir.path().join("v1");
        format1_file(&path, b"old value", 14, 1024);
        let before = std::fs::read(&path).unwrap();
        let mut opts = ValueOptions::default();
        opts.open.mode = 0o640;
        let err = ValueSegment::open(&path, &opts).err().unwrap();
        assert_eq!(err.code(), "ERR_UNSUPPORTED_VERSION");
        assert!(err.to_string().contains("share-object upgrade"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "left as it was");
    }

    #[test]
    fn upgrade_keeps_the_value_the_version_and_the_mode() {
        let dir = TempDir::new("up-keep");
        let path = dir.path().join("v1");
        format1_file(&path, b"old value", 14, 100_000);
        let done = upgrade(&path, UpgradeOptions::default()).unwrap();
        assert_eq!(
            done,
            Upgraded {
                version: 7,
                converted: true,
                discarded_torn: false
            }
        );
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o640
        );
        assert_eq!(read(&path), (b"old value".to_vec(), 7));
        // Again: nothing to do.
        let again = upgrade(&path, UpgradeOptions::default()).unwrap();
        assert!(!again.converted);
        assert_eq!(again.version, 7);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn a_torn_value_is_refused_unless_discarded() {
        let dir = TempDir::new("up-torn");
        let path = dir.path().join("v1");
        format1_file(&path, b"half", 9, 1024);
        let before = std::fs::read(&path).unwrap();
        let err = upgrade(&path, UpgradeOptions::default()).unwrap_err();
        assert_eq!(err.code(), "ERR_WRITER_DIED");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "a refused upgrade changes nothing"
        );
        let done = upgrade(&path, UpgradeOptions { discard_torn: true }).unwrap();
        assert!(done.discarded_torn);
        assert_eq!(read(&path), (vec![], 5));
    }

    #[test]
    fn an_interrupted_upgrade_is_finished_by_the_next() {
        let dir = TempDir::new("up-interrupted");
        let path = dir.path().join("v1");
        format1_file(&path, b"kept", 4, 1024);
        // What a run killed after marking the file leaves: the mark and a temporary file.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&VALUE_UPGRADING_VERSION.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let leftover = segment::sibling(&path, "upgrading");
        std::fs::write(&leftover, b"half-built").unwrap();
        let mut opts = ValueOptions::default();
        opts.open.mode = 0o640;
        let err = ValueSegment::open(&path, &opts).err().unwrap();
        assert!(err.to_string().contains("interrupted"), "{err}");
        assert!(upgrade(&path, UpgradeOptions::default()).unwrap().converted);
        assert_eq!(read(&path), (b"kept".to_vec(), 2));
        assert!(!leftover.exists());
    }

    #[test]
    fn a_segment_in_use_is_not_upgraded() {
        let dir = TempDir::new("up-busy");
        let path = dir.path().join("v2");
        let _open = ValueSegment::open(&path, &ValueOptions::default()).unwrap();
        format1_file(&dir.path().join("v1"), b"x", 2, 1024);
        let holder = File::open(dir.path().join("v1")).unwrap();
        assert!(os::lock_byte(
            holder.as_fd(),
            layout::LOCK_OPEN,
            os::LockKind::Shared,
            false
        )
        .unwrap());
        let err = upgrade(&dir.path().join("v1"), UpgradeOptions::default()).unwrap_err();
        assert_eq!(err.code(), "ERR_IN_USE");
        drop(holder);
        assert!(
            upgrade(&dir.path().join("v1"), UpgradeOptions::default())
                .unwrap()
                .converted
        );
        // An open format-2 segment: nothing to convert.
        assert!(!upgrade(&path, UpgradeOptions::default()).unwrap().converted);
    }

    /// What format-1 code did to write a value, step for step: open the file, hold the
    /// open lock shared (waiting for it), check the format, take the writer lock (`lock`
    /// stands for the header's lock word, which excluded format-1 writers from each other),
    /// then seq odd, bytes, len, seq even. Returns false if the file was refused (not format
    /// 1 any more); records the value in `lock` once written.
    fn format1_write(path: &Path, value: &str, lock: &std::sync::Mutex<Option<String>>) -> bool {
        let how = OpenMode {
            write: true,
            create_exclusive: false,
            mode: 0,
        };
        let Ok(file) = os::open(path, how) else {
            return false;
        };
        os::lock_byte(file.as_fd(), layout::LOCK_OPEN, os::LockKind::Shared, true).unwrap();
        let mut head = [0u8; 80];
        os::read_at(&file, &mut head, 0).unwrap();
        if u32::from_le_bytes(head[8..12].try_into().unwrap()) != 1 {
            return false;
        }
        let mut last = lock.lock().unwrap();
        os::read_at(&file, &mut head, 0).unwrap();
        let seq = u64::from_le_bytes(head[64..72].try_into().unwrap());
        os::write_at(&file, &(seq + 1).to_le_bytes(), 64).unwrap();
        os::write_at(&file, value.as_bytes(), HEADER_SIZE as u64).unwrap();
        os::write_at(&file, &(value.len() as u64).to_le_bytes(), 72).unwrap();
        os::write_at(&file, &(seq + 2).to_le_bytes(), 64).unwrap();
        *last = Some(value.to_owned());
        true
    }

    #[test]
    fn format1_writers_racing_the_upgrade_never_lose_a_write() {
        for round in 0..20 {
            let dir = TempDir::new("up-race");
            let path = dir.path().join("v1");
            format1_file(&path, b"", 0, 1024);
            let last = std::sync::Arc::new(std::sync::Mutex::new(None));
            let writers: Vec<_> = (0..3)
                .map(|w| {
                    let (path, last) = (path.clone(), std::sync::Arc::clone(&last));
                    std::thread::spawn(move || {
                        let mut done = 0u64;
                        for i in 0..10_000u32 {
                            if !format1_write(&path, &format!("w{w}-{i:08}"), &last) {
                                break;
                            }
                            done += 1;
                        }
                        done
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_micros(200 * round));
            let upgraded = loop {
                match upgrade(&path, UpgradeOptions::default()) {
                    Ok(u) => break u,
                    Err(e) if e.code() == "ERR_IN_USE" => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            };
            let total: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
            let (value, version) = read(&path);
            // Every write a format-1 writer completed is in the upgraded file (the last one's
            // value, and the count in the version): none went to the old file after the
            // upgrade read it, and none was refused after it had begun.
            assert!(upgraded.converted);
            assert_eq!(
                version, total,
                "round {round}: every completed write counted"
            );
            let last = last.lock().unwrap().clone().unwrap_or_default();
            assert_eq!(String::from_utf8(value).unwrap(), last, "round {round}");
        }
    }

    use std::time::Duration;
}
