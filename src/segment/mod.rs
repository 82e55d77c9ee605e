//! Open, create, validate, map and grow a segment file.
//!
//! Invariants this module keeps:
//! - A file is only ever written by us if its header is ours, or if it is entirely zero
//!   bytes, at most [`BLANK_MAX`] of them (the article's pre-made `share-data`), and no one
//!   else has it open. Deciding so reads at most `BLANK_MAX` bytes, whatever the file's size.
//! - A file is only ever removed by us ([`unlink`]) if its first bytes are the magic.
//! - A new file is created under a temporary name, fully initialised, then renamed into
//!   place without replacing anything, so no opener ever sees a half-written header.
//! - Every opener holds a shared OFD lock on [`LOCK_OPEN`] for as long as it has the file
//!   open, so nobody re-initialises a file that is in use; and an exclusive lock on its own
//!   liveness byte, so lock words naming its token can be recognised as orphaned when it dies.
//!   Each handle takes them through an open file description of its own (`os` says how on
//!   each OS), so they conflict with every other handle's, in this process or another.
//! - The library never shrinks a file; growth reserves the blocks first ([`os::reserve`]).
//! - Shared bytes are reached only through raw pointers into a [`memmap2::MmapRaw`].

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

pub mod layout;

use crate::error::{Error, Result};
use crate::os::{self, LockKind, OpenMode};
use layout::{
    kind_name, IdentityFields, HEADER_SIZE, LIVENESS_BASE, LOCK_OPEN, MAGIC_U64, MAX_CAPACITY,
};

/// How many times an opener opens the path again after finding, once it held its open lock,
/// that the path had been replaced by another file (an upgrade renames a new file over it).
const REPLACED_RETRIES: u32 = 100;

/// How long an opener waits for another process to finish initialising a file in place.
const INIT_WAIT: Duration = Duration::from_secs(5);

/// What the caller asks of `Segment::open`.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The kind of segment expected (and created): `layout::KIND_VALUE` or `KIND_CHANNEL`.
    pub kind: u32,
    /// Data-area bytes of a new segment.
    pub capacity: u64,
    /// Create the file if it does not exist.
    pub create: bool,
    /// Map read-only; writes are refused.
    pub read_only: bool,
    /// Permission bits of a new file (before the umask). Group or other bits here also
    /// accept an existing file with those bits, and one owned by another user.
    pub mode: u32,
    /// The whole header of a new segment, for kinds whose header is more than line 0 (a
    /// value's slots, a map's config, seed and regions). Its line 0 must name `kind` and
    /// `capacity`; `None` builds the standard 256-byte header from `kind` and `capacity`
    /// (channels).
    pub header: Option<Arc<[u8]>>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            kind: layout::KIND_VALUE,
            capacity: layout::DEFAULT_CAPACITY,
            create: true,
            read_only: false,
            mode: 0o600,
            header: None,
        }
    }
}

/// One mapping of a segment file. Shared (`Arc`) so that zero-copy buffers and background
/// threads keep it alive after the segment moved on to a larger mapping or was closed.
pub struct Mapping {
    raw: MmapRaw,
    /// Where the data area starts (the segment's `header_size`).
    header_size: usize,
}

impl Mapping {
    /// Start of the mapping (the header).
    pub fn base(&self) -> *mut u8 {
        self.raw.as_mut_ptr()
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the mapping is empty (never, for a validated segment).
    pub fn is_empty(&self) -> bool {
        self.raw.len() == 0
    }

    /// Where the data area starts: the segment's header size (256 for channels, 512 for
    /// values, more for maps).
    pub fn header_size(&self) -> usize {
        self.header_size
    }

    /// Data-area bytes this mapping covers.
    pub fn data_len(&self) -> usize {
        self.raw.len().saturating_sub(self.header_size)
    }

    /// Start of the data area.
    pub fn data(&self) -> *mut u8 {
        // SAFETY: a validated mapping is at least `header_size` bytes long (checked at
        // validation against the file's size), so the offset stays inside the same
        // allocation; a header-only mapping (`map_header`) is exactly that long.
        unsafe { self.base().add(self.header_size.min(self.raw.len())) }
    }

    /// The header, viewed as a `T` made only of atomics.
    ///
    /// # Safety
    /// `T` must be a `#[repr(C)]` struct of atomics no larger than this segment's header
    /// and no more aligned than a page.
    pub unsafe fn header<T>(&self) -> &T {
        debug_assert!(
            std::mem::size_of::<T>() <= self.header_size && self.len() >= self.header_size
        );
        // SAFETY: the mapping is page-aligned and at least `header_size` long (checked at
        // validation); `T` is all atomics (caller's contract), so a shared reference to it
        // allows concurrent changes by other processes; it lives as long as `self`.
        unsafe { &*(self.base() as *const T) }
    }
}

/// An open segment: its file, its current mapping and this handle's liveness token.
pub struct Segment {
    path: String,
    file: Arc<File>,
    map: Arc<Mapping>,
    token: u32,
    read_only: bool,
    /// Where the data area starts (line 0's `header_size`, validated at open).
    header_size: u64,
    /// The descriptor handed out for passing to children, opened on first use.
    shared_fd: OnceLock<File>,
    /// For an anonymous segment this handle created: keeps what `fromFd()` needs to open it
    /// afresh (on macOS, its name in the temp folder) until the handle closes.
    _name_guard: Option<os::NameGuard>,
}

impl Segment {
    /// Opens (and, with `create`, creates) the segment at `path`.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Segment> {
        let name = path.display().to_string();
        if path.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(Error::invalid(&name, "path contains a NUL byte"));
        }
        if path.as_os_str().is_empty() {
            return Err(Error::invalid(&name, "path is empty"));
        }
        check_names_a_file(path, &name)?;
        for _ in 0..REPLACED_RETRIES {
            let file = match open_existing(path, &name, opts) {
                Ok(file) => file,
                // A read-only open never creates anything: it could not initialise what it
                // made.
                Err(e)
                    if e.raw_os_error() == Some(libc::ENOENT) && opts.create && !opts.read_only =>
                {
                    create_new(path, &name, opts)?
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let why = if opts.read_only {
                        "the file does not exist, and a read-only open never creates one"
                    } else {
                        "the file does not exist, and `create: false` was given"
                    };
                    return Err(Error::NotFound {
                        path: name,
                        reason: why.into(),
                    });
                }
                Err(e) => return Err(e),
            };
            check_file_safety(&file, &name, opts)?;
            match Segment::adopt(file, name.clone(), opts, Some(path))? {
                Adopted::Open(seg) => return Ok(seg),
                Adopted::Replaced => continue,
            }
        }
        // Another process kept replacing the file faster than this one could open it.
        Err(Error::os(
            &name,
            "open (the path kept being replaced)",
            std::io::Error::from_raw_os_error(libc::EAGAIN),
        ))
    }

    /// A new anonymous segment, for sharing with children: a memfd on Linux, a `0600` file
    /// in the temp folder named while this handle is open on macOS (see `os`).
    pub fn anonymous(opts: &OpenOptions) -> Result<Segment> {
        let label = kind_name(opts.kind);
        let anon = os::anonymous_file(label)
            .map_err(|e| Error::os(&format!("anonymous {label}"), "create", e))?;
        initialise(&anon.file, &anon.name, opts)?;
        let mut seg = Segment::adopt(anon.file, anon.name, opts, None)?.opened();
        seg._name_guard = Some(anon.guard);
        Ok(seg)
    }

    /// Adopts a descriptor another process passed us. The file is opened afresh (the
    /// caller keeps its descriptor): this handle's locks must be on an open file description
    /// of its own, since locks taken through a shared one do not conflict, so the handles
    /// on either side would take each other for dead.
    pub fn from_fd(fd: BorrowedFd<'_>, opts: &OpenOptions) -> Result<Segment> {
        let name = format!("fd:{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let file = os::reopen(fd).map_err(|e| Error::os(&name, os::REOPEN_HOW, e))?;
        let facts = os::facts(file.as_fd()).map_err(|e| Error::os(&name, "fstat", e))?;
        if !facts.is_regular {
            return Err(Error::NotASegment {
                path: name,
                reason: "descriptor is not a regular file or memfd".into(),
            });
        }
        Ok(Segment::adopt(file, name, opts, None)?.opened())
    }

    /// Takes the locks, validates (or initialises an all-zero file) and maps. With `path`
    /// (a file opened by name), first checks, holding the open lock, that the path still
    /// names this file: an upgrade renames a new file over it while holding that lock
    /// exclusively, so an opener that opened the old one just before finds it replaced here.
    fn adopt(file: File, name: String, opts: &OpenOptions, path: Option<&Path>) -> Result<Adopted> {
        let writable = !opts.read_only;
        let share = LockKind::Shared;
        let started = Instant::now();
        loop {
            os::lock_byte(file.as_fd(), LOCK_OPEN, share, true)
                .map_err(|e| Error::os(&name, "lock (open)", e))?;
            if let Some(path) = path {
                if !still_at_path(&file, path, &name)? {
                    return Ok(Adopted::Replaced);
                }
            }
            match inspect(&file, &name, opts)? {
                Inspection::Valid(fields) => {
                    let map = map_file(&file, &name, writable, fields)?;
                    let token = take_liveness(&file, &name, writable)?;
                    return Ok(Adopted::Open(Segment {
                        path: name,
                        file: Arc::new(file),
                        map: Arc::new(map),
                        token,
                        read_only: opts.read_only,
                        header_size: u64::from(fields.header_size),
                        shared_fd: OnceLock::new(),
                        _name_guard: None,
                    }));
                }
                Inspection::AllZero => {
                    if opts.read_only {
                        return Err(Error::NotASegment {
                            path: name,
                            reason: "file is empty or all zero bytes and the segment is opened read-only, so it cannot be initialised".into(),
                        });
                    }
                    // Initialise in place only as the sole opener: convert to exclusive
                    // without waiting (two openers waiting on each other would deadlock).
                    if os::lock_byte(file.as_fd(), LOCK_OPEN, LockKind::Exclusive, false)
                        .map_err(|e| Error::os(&name, "lock (initialise)", e))?
                    {
                        if let Inspection::AllZero = inspect(&file, &name, opts)? {
                            initialise(&file, &name, opts)?;
                        }
                        // Back to shared (atomic conversion) and validate as any opener.
                        continue;
                    }
                    os::unlock_byte(file.as_fd(), LOCK_OPEN)
                        .map_err(|e| Error::os(&name, "unlock (open)", e))?;
                    if started.elapsed() > INIT_WAIT {
                        return Err(Error::Timeout {
                            path: name,
                            what: "another process to initialise the file",
                            ms: INIT_WAIT.as_millis() as u64,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// The path (or `memfd:`/`fd:` name) used in messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// This handle's liveness token (what it writes into lock words).
    pub fn token(&self) -> u32 {
        self.token
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Where the data area starts: 512 for values, 256 for channels, more for maps.
    pub fn header_size(&self) -> u64 {
        self.header_size
    }

    /// The descriptor this handle takes its locks through.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// A descriptor of the segment to pass to another process (opened once, on first use,
    /// closed with the handle). It is a separate open file description holding none of
    /// this handle's locks: a child that keeps it open cannot keep this handle's liveness
    /// byte held after this handle is gone.
    pub fn shared_fd(&self) -> Result<BorrowedFd<'_>> {
        if let Some(file) = self.shared_fd.get() {
            return Ok(file.as_fd());
        }
        let file = os::reopen(self.fd()).map_err(|e| Error::os(&self.path, os::REOPEN_HOW, e))?;
        Ok(self.shared_fd.get_or_init(|| file).as_fd())
    }

    /// The current mapping.
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }

    /// Whether the handle owning `token` is alive (holds its liveness byte). Our own token
    /// is alive by definition.
    pub fn is_alive(&self, token: u32) -> bool {
        self.liveness().is_alive(token)
    }

    /// A `Send` handle for liveness checks from other threads (keeps the file open).
    pub fn liveness(&self) -> Liveness {
        Liveness {
            file: Arc::clone(&self.file),
            token: self.token,
        }
    }

    /// A separate read-only mapping of just the header's page. It never moves when the
    /// segment grows (the file never shrinks), so it can back a long-lived view of the
    /// header whose lifetime is exactly the handle's.
    pub fn map_header(&self) -> Result<Mapping> {
        let len = self.header_size as usize;
        let mut options = MmapOptions::new();
        options.len(len);
        let raw = options
            .map_raw_read_only(&*self.file)
            .map_err(|e| Error::os(&self.path, "mmap", e))?;
        Ok(Mapping {
            raw,
            header_size: len,
        })
    }

    /// Re-maps after another process grew the file. `capacity` is what the header says
    /// now (untrusted); it must fit in the file.
    pub fn remap(&mut self, capacity: u64) -> Result<()> {
        let size = os::facts(self.file.as_fd())
            .map_err(|e| Error::os(&self.path, "fstat", e))?
            .size;
        let needed = checked_total(self.header_size, capacity).ok_or_else(|| {
            Error::corrupt(&self.path, format!("capacity {capacity} is out of range"))
        })?;
        if needed > size {
            return Err(Error::corrupt(
                &self.path,
                format!("header claims {capacity} bytes of data but the file holds {size} bytes"),
            ));
        }
        if needed as usize <= self.map.len() {
            return Ok(());
        }
        let map = map_len(
            &self.file,
            &self.path,
            !self.read_only,
            size,
            self.header_size,
        )?;
        self.map = Arc::new(map);
        Ok(())
    }

    /// Grows the file so the data area holds at least `capacity` bytes (blocks reserved),
    /// and maps it. Call with the writer lock held; publishing the new capacity in the
    /// header is the caller's job.
    pub fn grow(&mut self, capacity: u64) -> Result<()> {
        let needed = checked_total(self.header_size, capacity).ok_or_else(|| {
            Error::invalid(&self.path, format!("capacity {capacity} is too large"))
        })?;
        os::reserve(self.file.as_fd(), needed)
            .map_err(|e| Error::os(&self.path, os::RESERVE_HOW, e))?;
        let size = os::facts(self.file.as_fd())
            .map_err(|e| Error::os(&self.path, "fstat", e))?
            .size;
        let map = map_len(&self.file, &self.path, true, size, self.header_size)?;
        self.map = Arc::new(map);
        Ok(())
    }
}

/// Removes the segment file at `path`, of any kind (value, channel, or a kind this build
/// does not know): a regular file whose first bytes are the share-object magic. Anything
/// else is refused with `ERR_NOT_A_SEGMENT` and left as it is: a symlink (never followed:
/// neither the link nor its target is removed), a directory, a FIFO or device, an empty or
/// all-zero file, another program's file. Handles already open keep working on the removed
/// file. Reads the first eight bytes through a descriptor opened with `O_NOFOLLOW`, and
/// removes the path only if it still names that same file.
pub fn unlink(path: &Path) -> Result<()> {
    unlink_kind(path, None)
}

/// [`unlink`], removing only a segment of `kind` when one is given (a segment of another
/// kind is `ERR_WRONG_KIND`, left in place).
pub fn unlink_kind(path: &Path, kind: Option<u32>) -> Result<()> {
    let name = path.display().to_string();
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(Error::invalid(&name, "path contains a NUL byte"));
    }
    if path.as_os_str().is_empty() {
        return Err(Error::invalid(&name, "path is empty"));
    }
    check_names_a_file(path, &name)?;
    let refuse = |reason: &str| Error::NotASegment {
        path: name.clone(),
        reason: reason.to_owned(),
    };
    let how = OpenMode {
        write: false,
        create_exclusive: false,
        mode: 0,
    };
    let file = os::open(path, how).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NotFound {
            path: name.clone(),
            reason: "nothing exists at the path".into(),
        },
        Some(libc::ELOOP) => refuse("it is a symbolic link, which is never followed"),
        Some(libc::ENXIO) => refuse("it is a socket or a device, not a regular file"),
        _ => Error::os(&name, "open", e),
    })?;
    let facts = os::facts(file.as_fd()).map_err(|e| Error::os(&name, "fstat", e))?;
    if facts.is_dir {
        return Err(refuse("it is a directory"));
    }
    if !facts.is_regular {
        return Err(refuse("it is not a regular file"));
    }
    let mut magic = [0u8; 8];
    let got = os::read_at(&file, &mut magic, 0).map_err(|e| Error::os(&name, "read", e))?;
    if got == 0 {
        return Err(refuse("the file is empty"));
    }
    if got < magic.len() || magic != layout::MAGIC {
        return Err(refuse("its first bytes are not the share-object magic"));
    }
    if let Some(expected) = kind {
        let mut kind_bytes = [0u8; 4];
        let got = os::read_at(&file, &mut kind_bytes, layout::offsets::KIND as u64)
            .map_err(|e| Error::os(&name, "read", e))?;
        let found = u32::from_le_bytes(kind_bytes);
        if got < kind_bytes.len() || found != expected {
            return Err(Error::WrongKind {
                path: name,
                found: kind_name(found),
                expected: kind_name(expected),
            });
        }
    }
    // The check above was made on what the descriptor opened: remove the path only if it
    // still names that file (another process may have replaced it meanwhile).
    let same = os::path_facts(path)
        .map_err(|e| Error::os(&name, "lstat", e))?
        .same_file(&facts);
    if !same {
        return Err(refuse(
            "the path was replaced by another file while it was checked",
        ));
    }
    os::unlink(path).map_err(|e| Error::os(&name, "unlink", e))
}

/// Refuses a path that names a directory rather than a file: one ending in `/`, `.` or
/// `..` (the JS layer resolves paths, which would silently drop such an ending).
fn check_names_a_file(path: &Path, name: &str) -> Result<()> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let last = bytes.rsplit(|&b| b == b'/').next().unwrap_or(bytes);
    if last.is_empty() || last == b"." || last == b".." {
        return Err(Error::invalid(
            name,
            "the path must name a file, but it ends with \"/\", \".\" or \"..\"",
        ));
    }
    Ok(())
}

/// What `adopt` found.
enum Adopted {
    Open(Segment),
    /// The path names another file now: open it again.
    Replaced,
}

impl Adopted {
    /// The segment of an adoption that had no path to re-check.
    fn opened(self) -> Segment {
        match self {
            Adopted::Open(seg) => seg,
            Adopted::Replaced => unreachable!("only a segment opened by path can be replaced"),
        }
    }
}

/// Whether `path` still names `file` (same device and inode). A path that no longer exists
/// counts as replaced: opening it again creates it or reports that it is gone.
fn still_at_path(file: &File, path: &Path, name: &str) -> Result<bool> {
    let mine = os::facts(file.as_fd()).map_err(|e| Error::os(name, "fstat", e))?;
    match os::path_facts(path) {
        Ok(there) => Ok(there.same_file(&mine)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(Error::os(name, "lstat", e)),
    }
}

/// Tells whether the handle behind a token is alive, from any thread.
#[derive(Clone)]
pub struct Liveness {
    file: Arc<File>,
    token: u32,
}

impl Liveness {
    /// This handle's own token.
    pub fn token(&self) -> u32 {
        self.token
    }

    /// Whether the handle owning `token` still holds its liveness byte.
    pub fn is_alive(&self, token: u32) -> bool {
        if token == self.token {
            return true;
        }
        // An error here (it cannot happen on a live descriptor) counts as alive: the
        // caller then waits on its deadline rather than stealing a live holder's lock.
        os::byte_is_locked_by_other(self.file.as_fd(), LIVENESS_BASE + u64::from(token))
            .unwrap_or(true)
    }
}

/// `header_size + capacity`, if the capacity is within the format's limit.
fn checked_total(header_size: u64, capacity: u64) -> Option<u64> {
    (capacity <= MAX_CAPACITY && header_size <= MAX_HEADER_SIZE).then(|| header_size + capacity)
}

/// The largest header any kind may have (a map's grows with its options; this bounds the
/// arithmetic on an untrusted `header_size`).
const MAX_HEADER_SIZE: u64 = 1 << 32;

/// Whether `header_size` (from line 0, untrusted) is one this kind may have.
fn header_size_ok(kind: u32, header_size: u32) -> bool {
    match layout::header_size(kind) {
        Some(fixed) => header_size as usize == fixed,
        None => {
            header_size as usize >= layout::MAP_PAGE && header_size as usize % layout::MAP_PAGE == 0
        }
    }
}

fn open_existing(path: &Path, name: &str, opts: &OpenOptions) -> Result<File> {
    let how = OpenMode {
        write: !opts.read_only,
        create_exclusive: false,
        mode: 0,
    };
    os::open(path, how).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => Error::UnsafePath {
            path: name.to_owned(),
            reason: "the path is a symbolic link, which is never followed".into(),
        },
        Some(libc::EISDIR) => Error::NotASegment {
            path: name.to_owned(),
            reason: "it is a directory".into(),
        },
        _ => Error::os(name, "open", e),
    })
}

/// Creates the segment under a temporary name next to `path`, initialises it, and renames
/// it into place unless something appeared there meanwhile (then opens that instead).
fn create_new(path: &Path, name: &str, opts: &OpenOptions) -> Result<File> {
    let temp = sibling(path, "creating");
    let how = OpenMode {
        write: true,
        create_exclusive: true,
        mode: opts.mode & 0o777,
    };
    let file = os::open(&temp, how).map_err(|e| Error::os(name, "create", e))?;
    let placed = initialise(&file, name, opts).and_then(|()| {
        os::rename_noreplace(&temp, path).map_err(|e| Error::os(name, "rename into place", e))
    });
    match placed {
        Ok(true) => Ok(file),
        Ok(false) => {
            // Another process created it first: use theirs.
            let _ = os::unlink(&temp);
            drop(file);
            open_existing(path, name, opts)
        }
        Err(e) => {
            let _ = os::unlink(&temp);
            Err(e)
        }
    }
}

/// A temporary name beside `path`: `.<name>.<pid>-<random>.<suffix>`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    path.with_file_name(format!(
        ".{}.{}-{:08x}.{suffix}",
        file_name_of(path),
        std::process::id(),
        os::random_token()
    ))
}

fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "segment".into())
}

/// Removes the regular files [`sibling`] named beside `path` with `suffix` (what a process
/// killed between creating and renaming one left behind). Call only while holding what
/// keeps every other creator of such a sibling out (an upgrade's exclusive open lock).
pub fn remove_leftover_siblings(path: &Path, suffix: &str) {
    let prefix = format!(".{}.", file_name_of(path));
    let ending = format!(".{suffix}");
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(&prefix) && name.ends_with(&ending)) {
            continue;
        }
        let leftover = dir.join(&*name);
        if os::path_facts(&leftover).is_ok_and(|f| f.is_regular) {
            let _ = os::unlink(&leftover);
        }
    }
}

/// A segment file held by this process alone: opened by path (read-write, no symlink),
/// with the open lock taken exclusively, so no other handle has it open or can open it
/// until this is dropped.
pub struct Exclusive {
    pub file: File,
    /// What `fstat` said once the lock was held.
    pub facts: os::FileFacts,
}

/// Takes the file at `path` for this process alone, without waiting: `ERR_IN_USE` if any
/// handle (of any version of share-object) has it open. `what` names the operation in that
/// message. Refuses symlinks, non-regular files and hard-linked files, as `open` does.
pub fn take_exclusive(path: &Path, what: &'static str) -> Result<Exclusive> {
    let name = path.display().to_string();
    for _ in 0..REPLACED_RETRIES {
        let how = OpenMode {
            write: true,
            create_exclusive: false,
            mode: 0,
        };
        let file = os::open(path, how).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::UnsafePath {
                path: name.clone(),
                reason: "the path is a symbolic link, which is never followed".into(),
            },
            Some(libc::EISDIR) => Error::NotASegment {
                path: name.clone(),
                reason: "it is a directory".into(),
            },
            Some(libc::ENOENT) => Error::NotFound {
                path: name.clone(),
                reason: "nothing exists at the path".into(),
            },
            _ => Error::os(&name, "open", e),
        })?;
        let facts = os::facts(file.as_fd()).map_err(|e| Error::os(&name, "fstat", e))?;
        if !facts.is_regular {
            return Err(Error::NotASegment {
                path: name,
                reason: "it is not a regular file".into(),
            });
        }
        if facts.nlink > 1 {
            return Err(Error::UnsafePath {
                path: name,
                reason: format!(
                    "the file has {} hard links; a segment must have exactly one",
                    facts.nlink
                ),
            });
        }
        if !os::lock_byte(file.as_fd(), LOCK_OPEN, LockKind::Exclusive, false)
            .map_err(|e| Error::os(&name, "lock (exclusive open)", e))?
        {
            return Err(Error::InUse { path: name, what });
        }
        if still_at_path(&file, path, &name)? {
            let facts = os::facts(file.as_fd()).map_err(|e| Error::os(&name, "fstat", e))?;
            return Ok(Exclusive { file, facts });
        }
    }
    Err(Error::os(
        &name,
        "open (the path kept being replaced)",
        std::io::Error::from_raw_os_error(libc::EAGAIN),
    ))
}

/// Refuses files an attacker could have planted or could change under us.
fn check_file_safety(file: &File, name: &str, opts: &OpenOptions) -> Result<()> {
    let facts = os::facts(file.as_fd()).map_err(|e| Error::os(name, "fstat", e))?;
    let refuse = |reason: String| {
        Err(Error::UnsafePath {
            path: name.to_owned(),
            reason,
        })
    };
    if facts.is_dir {
        return Err(Error::NotASegment {
            path: name.to_owned(),
            reason: "it is a directory".into(),
        });
    }
    if !facts.is_regular {
        return Err(Error::NotASegment {
            path: name.to_owned(),
            reason: "it is not a regular file".into(),
        });
    }
    if facts.nlink > 1 {
        return refuse(format!(
            "the file has {} hard links; a segment must have exactly one",
            facts.nlink
        ));
    }
    let shared_with_others = opts.mode & 0o077 != 0;
    let me = os::euid();
    if facts.uid != me && !shared_with_others {
        return refuse(format!(
            "the file is owned by uid {}, not by this process (uid {me}); pass a group/other `mode` to share across users",
            facts.uid
        ));
    }
    let loose = facts.mode & 0o022 & !opts.mode;
    if loose != 0 {
        return refuse(format!(
            "the file is group- or world-writable (mode 0o{:o}) beyond the requested mode 0o{:o}",
            facts.mode, opts.mode
        ));
    }
    Ok(())
}

enum Inspection {
    Valid(IdentityFields),
    AllZero,
}

/// The largest file with an all-zero header that counts as blank (and is initialised in
/// place): an empty or zeroed file made ahead of time, as the article's `share-data` was,
/// or a segment of share-object's default sizes (1 KiB values, 1 MiB channels) zeroed by
/// another program. Deciding reads at most this much, so its cost is bounded whatever the
/// file's size; a larger file whose header is all zero is refused as not a segment, never
/// scanned (a sparse 64 GiB file once took minutes) and never written to.
pub const BLANK_MAX: u64 = 4 << 20;

/// Reads and checks the header from a private copy of the file's first bytes.
fn inspect(file: &File, name: &str, opts: &OpenOptions) -> Result<Inspection> {
    let size = os::facts(file.as_fd())
        .map_err(|e| Error::os(name, "fstat", e))?
        .size;
    let mut head = [0u8; HEADER_SIZE];
    let got = os::read_at(file, &mut head, 0).map_err(|e| Error::os(name, "read", e))?;
    if got == 0 {
        return Ok(Inspection::AllZero);
    }
    if head[..got].iter().all(|&b| b == 0) {
        if size > BLANK_MAX {
            return Err(Error::NotASegment {
                path: name.to_owned(),
                reason: format!(
                    "its header is all zero bytes but the file holds {size} bytes: only an empty or all-zero file of at most {BLANK_MAX} bytes is initialised"
                ),
            });
        }
        if all_zero(file, name, size)? {
            return Ok(Inspection::AllZero);
        }
    }
    let mut line = [0u8; 64];
    line.copy_from_slice(&head[..64]);
    let fields = IdentityFields::parse(&line);
    if got < 8 || fields.magic != MAGIC_U64 {
        return Err(Error::NotASegment {
            path: name.to_owned(),
            reason: "its first bytes are not the share-object magic".into(),
        });
    }
    if (got as u64) < HEADER_SIZE as u64 {
        return Err(Error::corrupt(
            name,
            format!("the file is {size} bytes, shorter than the {HEADER_SIZE}-byte header"),
        ));
    }

    if fields.kind != opts.kind {
        if matches!(
            fields.kind,
            layout::KIND_VALUE | layout::KIND_CHANNEL | layout::KIND_MAP
        ) {
            return Err(Error::WrongKind {
                path: name.to_owned(),
                found: kind_name(fields.kind),
                expected: kind_name(opts.kind),
            });
        }
        return Err(Error::corrupt(
            name,
            format!("unknown segment kind {}", fields.kind),
        ));
    }
    let supported = layout::format_version(fields.kind);
    if fields.format_version != supported && fields.kind == layout::KIND_VALUE {
        return Err(old_value_format(name, fields.format_version));
    }
    if fields.format_version != supported {
        return Err(Error::UnsupportedVersion {
            path: name.to_owned(),
            found: fields.format_version,
            supported,
            hint: String::new(),
        });
    }
    if !header_size_ok(fields.kind, fields.header_size) {
        return Err(Error::corrupt(
            name,
            format!(
                "header size {} is not one a {} segment can have",
                fields.header_size,
                kind_name(fields.kind)
            ),
        ));
    }
    if size < u64::from(fields.header_size) {
        return Err(Error::corrupt(
            name,
            format!(
                "the file is {size} bytes, shorter than the {}-byte header",
                fields.header_size
            ),
        ));
    }
    match checked_total(u64::from(fields.header_size), fields.capacity) {
        Some(total) if total <= size => Ok(Inspection::Valid(fields)),
        _ => Err(Error::corrupt(
            name,
            format!(
                "header claims {} bytes of data but the file holds only {size} bytes",
                fields.capacity
            ),
        )),
    }
}

/// The error for a value segment of another format: what it is and what to do about it.
pub fn old_value_format(name: &str, found: u32) -> Error {
    let by_name = !(name.starts_with("fd:") || name.starts_with("memfd:"));
    let how = if by_name {
        format!("npx share-object upgrade {name}")
    } else {
        "npx share-object upgrade <the path it was opened from>".to_owned()
    };
    let hint = match found {
        1 => format!(
            "; it is a format-1 value segment of an earlier share-object: close every process that uses it, then convert it with `{how}`"
        ),
        layout::VALUE_UPGRADING_VERSION => format!(
            "; an upgrade of it from format 1 was interrupted: run `{how}` again to finish it"
        ),
        v if v > layout::VALUE_FORMAT_VERSION => {
            "; it was written by a later share-object: use that version".to_owned()
        }
        _ => String::new(),
    };
    Error::UnsupportedVersion {
        path: name.to_owned(),
        found,
        supported: layout::VALUE_FORMAT_VERSION,
        hint,
    }
}

/// Whether every byte of the file is zero (read in chunks through a private buffer). Only
/// called for files of at most [`BLANK_MAX`] bytes, and reads no further than that.
fn all_zero(file: &File, name: &str, size: u64) -> Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    while offset < size.min(BLANK_MAX) {
        let n = os::read_at(file, &mut buf, offset).map_err(|e| Error::os(name, "read", e))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        offset += n as u64;
    }
    Ok(true)
}

/// Writes a fresh header and reserves the data area. The file is either not yet visible
/// or held exclusively; the magic goes last all the same.
fn initialise(file: &File, name: &str, opts: &OpenOptions) -> Result<()> {
    let capacity = opts.capacity;
    let image: Arc<[u8]> = match &opts.header {
        Some(image) => Arc::clone(image),
        None => standard_header(opts.kind, capacity).into(),
    };
    if layout::header_size(opts.kind).is_some_and(|size| size != image.len()) {
        return Err(Error::invalid(
            name,
            format!(
                "a {} segment's header is {} bytes, not {}",
                kind_name(opts.kind),
                layout::header_size(opts.kind).unwrap_or(0),
                image.len()
            ),
        ));
    }
    let total = checked_total(image.len() as u64, capacity)
        .ok_or_else(|| Error::invalid(name, format!("size {capacity} is too large")))?;
    os::reserve(file.as_fd(), total).map_err(|e| Error::os(name, os::RESERVE_HOW, e))?;
    os::write_at(file, &image[8..], 8).map_err(|e| Error::os(name, "write header", e))?;
    os::write_at(file, &layout::MAGIC, 0).map_err(|e| Error::os(name, "write header", e))?;
    Ok(())
}

/// Line 0 of a value or channel segment, and the zeroed rest of its 256-byte header.
fn standard_header(kind: u32, capacity: u64) -> Vec<u8> {
    let mut head = vec![0u8; HEADER_SIZE];
    identity_line(&mut head, kind, HEADER_SIZE as u32, capacity);
    head
}

/// Writes line 0 (without the magic, which goes last) into a header image.
pub fn identity_line(head: &mut [u8], kind: u32, header_size: u32, capacity: u64) {
    let version = layout::format_version(kind);
    head[layout::offsets::FORMAT_VERSION..][..4].copy_from_slice(&version.to_le_bytes());
    head[layout::offsets::KIND..][..4].copy_from_slice(&kind.to_le_bytes());
    head[layout::offsets::HEADER_SIZE..][..4].copy_from_slice(&header_size.to_le_bytes());
    head[layout::offsets::CAPACITY..][..8].copy_from_slice(&capacity.to_le_bytes());
}

fn map_file(file: &File, name: &str, writable: bool, fields: IdentityFields) -> Result<Mapping> {
    // Map the whole file: the data area may already be larger than the header says if a
    // writer is between growing the file and publishing the new capacity.
    let size = os::facts(file.as_fd())
        .map_err(|e| Error::os(name, "fstat", e))?
        .size;
    debug_assert!(u64::from(fields.header_size) + fields.capacity <= size);
    map_len(file, name, writable, size, u64::from(fields.header_size))
}

fn map_len(file: &File, name: &str, writable: bool, len: u64, header_size: u64) -> Result<Mapping> {
    let len = usize::try_from(len).map_err(|_| Error::corrupt(name, "file too large to map"))?;
    let mut options = MmapOptions::new();
    options.len(len);
    let raw = if writable {
        options.map_raw(file)
    } else {
        options.map_raw_read_only(file)
    }
    .map_err(|e| Error::os(name, "mmap", e))?;
    Ok(Mapping {
        raw,
        header_size: header_size as usize,
    })
}

/// Picks a random token and holds its liveness byte for the life of the descriptor.
fn take_liveness(file: &File, name: &str, writable: bool) -> Result<u32> {
    // A read-only descriptor may only take read locks; either kind shows up in F_OFD_GETLK.
    let kind = if writable {
        LockKind::Exclusive
    } else {
        LockKind::Shared
    };
    for _ in 0..64 {
        let token = os::random_token();
        let byte = LIVENESS_BASE + u64::from(token);
        // A token in use by another handle shows up as a held byte: pick another.
        if os::byte_is_locked_by_other(file.as_fd(), byte)
            .map_err(|e| Error::os(name, "lock (liveness)", e))?
        {
            continue;
        }
        if os::lock_byte(file.as_fd(), byte, kind, false)
            .map_err(|e| Error::os(name, "lock (liveness)", e))?
        {
            return Ok(token);
        }
    }
    Err(Error::corrupt(name, "could not find a free liveness token"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    /// Options for a segment of the standard 256-byte header (a channel's).
    fn opts() -> OpenOptions {
        OpenOptions {
            kind: layout::KIND_CHANNEL,
            ..OpenOptions::default()
        }
    }

    #[test]
    fn creates_a_missing_file_with_a_valid_header_and_mode_0600() {
        let dir = TempDir::new("seg-create");
        let path = dir.path().join("share-data");
        let seg = Segment::open(&path, &opts()).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), HEADER_SIZE as u64 + 1024);
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"SHAREOBJ");
        assert!(seg.mapping().len() >= HEADER_SIZE + 1024);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn empty_and_all_zero_files_are_initialised() {
        let dir = TempDir::new("seg-zero");
        for (i, content) in [vec![], vec![0u8; 1024]].into_iter().enumerate() {
            let path = dir.path().join(format!("z{i}"));
            std::fs::write(&path, &content).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            Segment::open(&path, &opts()).unwrap();
            assert_eq!(&std::fs::read(&path).unwrap()[..8], b"SHAREOBJ");
        }
    }

    #[test]
    fn foreign_files_are_refused_and_left_byte_for_byte_intact() {
        let dir = TempDir::new("seg-foreign");
        let path = dir.path().join("foreign");
        let content: Vec<u8> = (0..4000u32).map(|i| (i * 7 + 1) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let err = Segment::open(&path, &opts()).err().unwrap();
        assert_eq!(err.code(), "ERR_NOT_A_SEGMENT");
        assert_eq!(std::fs::read(&path).unwrap(), content);
    }

    #[test]
    fn a_header_claiming_more_than_the_file_holds_is_corrupt() {
        let dir = TempDir::new("seg-short");
        let path = dir.path().join("s");
        drop(Segment::open(&path, &opts()).unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[24..32].copy_from_slice(&(1u64 << 30).to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = Segment::open(&path, &opts()).err().unwrap();
        assert_eq!(err.code(), "ERR_CORRUPT");
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn another_format_version_is_refused() {
        let dir = TempDir::new("seg-version");
        let path = dir.path().join("s");
        drop(Segment::open(&path, &opts()).unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = Segment::open(&path, &opts()).err().unwrap();
        assert_eq!(err.code(), "ERR_UNSUPPORTED_VERSION");
    }

    #[test]
    fn liveness_tracks_open_handles() {
        let dir = TempDir::new("seg-live");
        let path = dir.path().join("s");
        let a = Segment::open(&path, &opts()).unwrap();
        let b = Segment::open(&path, &opts()).unwrap();
        assert_ne!(a.token(), b.token());
        assert!(b.is_alive(a.token()));
        let gone = a.token();
        drop(a);
        assert!(!b.is_alive(gone));
    }

    #[test]
    fn missing_file_without_create_is_not_found() {
        let dir = TempDir::new("seg-nocreate");
        let opts = OpenOptions {
            create: false,
            ..opts()
        };
        let err = Segment::open(&dir.path().join("nope"), &opts)
            .err()
            .unwrap();
        assert_eq!(err.code(), "ERR_NOT_FOUND");
    }

    #[test]
    fn a_read_only_open_of_a_missing_file_creates_nothing() {
        let dir = TempDir::new("seg-ro-missing");
        let path = dir.path().join("nope");
        let opts = OpenOptions {
            read_only: true,
            ..OpenOptions::default() // create: true, as the JS default
        };
        let err = Segment::open(&path, &opts).err().unwrap();
        assert_eq!(err.code(), "ERR_NOT_FOUND");
        assert!(err.to_string().contains(&path.display().to_string()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    fn write_private(path: &Path, content: &[u8]) {
        std::fs::write(path, content).unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }

    #[test]
    fn a_large_file_with_an_all_zero_header_is_refused_without_being_read_or_changed() {
        let dir = TempDir::new("seg-sparse");
        let path = dir.path().join("sparse");
        write_private(&path, &[]);
        // 1 TiB of holes: reading it all would take hours.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(1 << 40).unwrap();
        drop(file);
        // A watchdog: scanning the holes would take hours, not fail.
        let (tx, rx) = std::sync::mpsc::channel();
        let opening = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Segment::open(&opening, &OpenOptions::default()).err());
        });
        let err = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("open() read the whole file")
            .expect("a sparse file was accepted");
        assert_eq!(err.code(), "ERR_NOT_A_SEGMENT");
        assert!(err.to_string().contains("1099511627776 bytes"), "{err}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 1 << 40);
        let mut head = [1u8; 64];
        std::os::unix::fs::FileExt::read_exact_at(
            &std::fs::File::open(&path).unwrap(),
            &mut head,
            0,
        )
        .unwrap();
        assert_eq!(head, [0u8; 64], "the file was written to");
    }

    #[test]
    fn an_all_zero_file_up_to_blank_max_is_initialised_and_one_byte_more_is_refused() {
        let dir = TempDir::new("seg-blank-max");
        let small = dir.path().join("small");
        write_private(&small, &vec![0u8; BLANK_MAX as usize]);
        Segment::open(&small, &opts()).unwrap();
        assert_eq!(&std::fs::read(&small).unwrap()[..8], b"SHAREOBJ");
        let large = dir.path().join("large");
        write_private(&large, &vec![0u8; BLANK_MAX as usize + 1]);
        let err = Segment::open(&large, &opts()).err().unwrap();
        assert_eq!(err.code(), "ERR_NOT_A_SEGMENT");
        assert!(std::fs::read(&large).unwrap().iter().all(|&b| b == 0));
    }

    #[test]
    fn a_path_ending_in_a_slash_dot_or_dot_dot_is_refused_not_shortened() {
        let dir = TempDir::new("seg-slash");
        for tail in ["seg/", "seg/.", "seg/.."] {
            let path = PathBuf::from(format!("{}/{tail}", dir.path().display()));
            let err = Segment::open(&path, &OpenOptions::default()).err().unwrap();
            assert_eq!(err.code(), "ERR_INVALID_ARG_VALUE", "{tail}");
            assert!(err.to_string().contains(tail), "{err}");
            assert_eq!(unlink(&path).unwrap_err().code(), "ERR_INVALID_ARG_VALUE");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn unlink_removes_segments_of_every_kind() {
        let dir = TempDir::new("seg-unlink");
        let value = dir.path().join("value");
        let open = crate::value::ValueSegment::open(&value, &Default::default()).unwrap();
        unlink(&value).unwrap();
        assert!(!value.exists());
        drop(open);
        let channel = dir.path().join("channel");
        let opts = OpenOptions {
            capacity: 4096,
            ..opts()
        };
        let open = Segment::open(&channel, &opts).unwrap();
        unlink(&channel).unwrap();
        assert!(!channel.exists());
        drop(open);
        // A kind this build does not know (a later structure) is still a segment.
        let future = dir.path().join("future");
        let mut bytes = vec![0u8; HEADER_SIZE + 64];
        bytes[..8].copy_from_slice(&layout::MAGIC);
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        bytes[12..16].copy_from_slice(&3u32.to_le_bytes());
        write_private(&future, &bytes);
        unlink(&future).unwrap();
        assert!(!future.exists());
    }

    #[test]
    fn unlink_refuses_what_is_not_a_segment_and_leaves_it_in_place() {
        let dir = TempDir::new("seg-unlink-refuse");
        let segment = dir.path().join("segment");
        drop(Segment::open(&segment, &opts()).unwrap());
        let foreign = dir.path().join("foreign");
        write_private(&foreign, b"precious data, not a segment");
        let empty = dir.path().join("empty");
        write_private(&empty, b"");
        let zeros = dir.path().join("zeros");
        write_private(&zeros, &[0u8; 4096]);
        let short = dir.path().join("short");
        write_private(&short, b"SHARE");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&segment, &link).unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for path in [&foreign, &empty, &zeros, &short, &link, &sub, &fifo] {
            let err = unlink(path).unwrap_err();
            assert_eq!(err.code(), "ERR_NOT_A_SEGMENT", "{}", path.display());
            assert!(err.to_string().contains(&path.display().to_string()));
            assert!(
                std::fs::symlink_metadata(path).is_ok(),
                "{} removed",
                path.display()
            );
        }
        assert_eq!(
            std::fs::read(&foreign).unwrap(),
            b"precious data, not a segment"
        );
        assert!(segment.exists(), "the symlink's target was removed");
        let missing = unlink(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.code(), "ERR_NOT_FOUND");
    }

    #[test]
    fn a_value_header_of_the_wrong_size_is_refused_when_creating() {
        let dir = TempDir::new("seg-value-header");
        let err = Segment::open(&dir.path().join("v"), &OpenOptions::default())
            .err()
            .unwrap();
        assert_eq!(err.code(), "ERR_INVALID_ARG_VALUE");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_opener_waiting_while_the_path_is_replaced_opens_the_new_file() {
        let dir = TempDir::new("seg-replaced");
        let path = dir.path().join("s");
        drop(Segment::open(&path, &opts()).unwrap());
        // Another process holds the old file exclusively (as an upgrade does) ...
        let held = take_exclusive(&path, "test").unwrap();
        let opener = {
            let path = path.clone();
            std::thread::spawn(move || {
                Segment::open(&path, &opts()).map(|s| os::facts(s.fd()).unwrap().ino)
            })
        };
        std::thread::sleep(Duration::from_millis(50)); // the opener waits for the open lock
                                                       // ... and renames a new segment over the path before letting go.
        let fresh = dir.path().join("fresh");
        drop(Segment::open(&fresh, &opts()).unwrap());
        let new_ino = os::path_facts(&fresh).unwrap().ino;
        os::rename_replace(&fresh, &path).unwrap();
        drop(held);
        assert_eq!(opener.join().unwrap().unwrap(), new_ino);
    }
}
