//! A value segment: one value shared by every process that opens the file (format 2,
//! `DESIGN.md`).
//!
//! The value lives in three slots (`slots.rs`): a writer fills one that no reader is being
//! given and commits it with one store of the `current` word, so a writer killed at any
//! moment leaves the last commit whole, and a reader copies a slot no writer touches while
//! it is current. Readers of large values pin their slot with a kernel read lock, which
//! writers look at before choosing a slot. Writers exclude each other with a lock word that
//! survives their death (`lock.rs`); every commit bumps a futex word that waiters park on
//! (`futex.rs`); a value larger than its slot's region gets a new region at the end of the
//! file, and every other process re-maps on its next access. Everything read from the
//! header is untrusted: lengths are checked against regions, regions against the mapping
//! and each other, capacities against the file.

pub mod slots;
pub mod upgrade;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::os;
use crate::segment::layout::{
    region_bytes, region_word, ValueHeader, DEFAULT_MAX_SIZE, KIND_VALUE, MAX_CAPACITY, PAGE,
    PIN_BASE, SLOTS, VALUE_HEADER_SIZE,
};
use crate::segment::{Liveness, Mapping, OpenOptions, Segment};
use crate::sync::futex;
use crate::sync::lock::{self, Acquired, LockError};
use crate::sync::waiters::Announcements;
use slots::{ReadAttempt, Sink, PIN_MIN};

/// How long a writer waits for the writer lock held by a live process before giving up.
const WRITE_LOCK_WAIT: Duration = Duration::from_secs(10);
/// How long a reader keeps starting over (the value changing under every copy) before it
/// reports the segment as damaged: only a process rewriting the header for ever does that.
const READ_WAIT: Duration = Duration::from_secs(10);
/// Start-overs a read makes before it looks at the clock (the fast path reads no clock).
const READ_RETRIES_BEFORE_CLOCK: u32 = 64;
/// How often a writer that found both free slots pinned looks again.
const PIN_POLL: Duration = Duration::from_micros(50);
/// How long a writer waits for a pinned slot to be released: this plus [`PIN_WAIT_PER_MIB`]
/// for each MiB of the larger pinned value, then it takes the older one anyway.
const PIN_WAIT_BASE: Duration = Duration::from_millis(10);
const PIN_WAIT_PER_MIB: Duration = Duration::from_millis(1);
/// How long a blocking wait busy-waits before it parks (bounded and yielding, so a busy
/// 2-core machine is not starved).
pub const WAIT_SPIN: Duration = Duration::from_micros(20);

/// Options for opening a value segment.
#[derive(Debug, Clone)]
pub struct ValueOptions {
    /// `open.capacity` is the initial size of each slot's region (rounded up to pages).
    pub open: OpenOptions,
    /// Largest value the segment may grow to hold.
    pub max_size: u64,
}

impl Default for ValueOptions {
    fn default() -> Self {
        ValueOptions {
            open: OpenOptions::default(),
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

/// A value read out of a segment: which commit it is, and its codec type tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadValue {
    /// The commit number (the version).
    pub commit: u64,
    /// The type tag the writer stored with it (`lib/codec.js`).
    pub tag: u32,
}

/// An open value segment.
pub struct ValueSegment {
    seg: Segment,
    max_size: u64,
}

impl ValueSegment {
    /// Opens or creates the value segment at `path`.
    pub fn open(path: &Path, opts: &ValueOptions) -> Result<Self> {
        let name = path.display().to_string();
        let open = checked_options(&name, opts)?;
        Ok(ValueSegment {
            seg: Segment::open(path, &open)?,
            max_size: opts.max_size,
        })
    }

    /// A new anonymous value segment (memfd) to hand to child processes by descriptor.
    pub fn anonymous(opts: &ValueOptions) -> Result<Self> {
        let open = checked_options("memfd", opts)?;
        Ok(ValueSegment {
            seg: Segment::anonymous(&open)?,
            max_size: opts.max_size,
        })
    }

    /// Opens the value segment behind an inherited descriptor (reopened, see `Segment::from_fd`).
    pub fn from_fd(fd: std::os::fd::BorrowedFd<'_>, opts: &ValueOptions) -> Result<Self> {
        let open = checked_options("fd", opts)?;
        Ok(ValueSegment {
            seg: Segment::from_fd(fd, &open)?,
            max_size: opts.max_size,
        })
    }

    /// The segment underneath.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The path used in messages.
    pub fn path(&self) -> &str {
        self.seg.path()
    }

    fn header(&self) -> &ValueHeader {
        // SAFETY: ValueHeader is a repr(C) struct of atomics of exactly VALUE_HEADER_SIZE
        // bytes, and the segment was validated as a value segment at least that long.
        unsafe { self.seg.mapping().header::<ValueHeader>() }
    }

    /// A handle on the header for waiting from other threads; keeps the mapping alive.
    pub fn watcher(&self) -> Watcher {
        Watcher {
            map: Arc::clone(self.seg.mapping()),
            read_only: self.seg.read_only(),
            token: self.seg.token(),
        }
    }

    /// The number of commits, the same in every process.
    pub fn version(&self) -> u64 {
        version_of(self.header())
    }

    /// Bytes a value may take without the file growing: the smallest of the three slots'
    /// regions (a value is written to one of the two slots that are not current).
    pub fn capacity(&self) -> u64 {
        let h = self.header();
        // Regions another process placed beyond our mapping count (the file was grown for
        // them before `capacity` was raised); regions beyond `capacity` are damage.
        let limit = self
            .claimed_capacity()
            .max(self.seg.mapping().data_len() as u64);
        (0..SLOTS)
            .map(|i| {
                // SYNC POINT: Relaxed: a size report; the region is checked, not followed.
                let (offset, size) = region_bytes(h.slots[i].region.load(Ordering::Relaxed));
                if offset + size <= limit {
                    size
                } else {
                    0
                }
            })
            .min()
            .unwrap_or(0)
    }

    /// The current capacity, after adopting a growth made by another process (re-mapping
    /// the larger file), so that it and a `buffer` made after it cover the whole value area.
    pub fn current_capacity(&mut self) -> Result<u64> {
        // SYNC POINT: Acquire pairs with the Release store of `capacity` in
        // `ensure_capacity`: the file was grown before it, so `remap` finds it large enough.
        let claimed = self.header().identity.capacity.load(Ordering::Acquire);
        if claimed > self.seg.mapping().data_len() as u64 {
            self.seg.remap(claimed)?;
        }
        Ok(self.capacity())
    }

    /// Maps the larger file if another process grew the data area beyond this mapping.
    fn adopt_growth(&mut self) -> Result<()> {
        let claimed = self.claimed_capacity();
        if claimed > self.seg.mapping().data_len() as u64 {
            self.seg.remap(claimed)?;
        }
        Ok(())
    }

    /// The largest value this handle will grow the segment for.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// `(offset from the file's start, length)` of the current slot's region, for a
    /// zero-copy view of the committed value's bytes (`buffer`).
    pub fn current_region(&mut self) -> Result<(usize, usize)> {
        self.adopt_growth()?;
        let h = self.header();
        // SYNC POINT: Acquire pairs with the Release store in `slots::commit`: the region
        // word of the committed fill is visible.
        let current = h.current.load(Ordering::Acquire);
        let slot = slots::slot_of(current)
            .ok_or_else(|| Error::corrupt(self.path(), "the current word names slot 3"))?;
        // SYNC POINT: Relaxed: ordered after the Acquire above; checked below.
        let (offset, size) = region_bytes(h.slots[slot].region.load(Ordering::Relaxed));
        if offset + size > self.seg.mapping().data_len() as u64 {
            return Err(Error::corrupt(
                self.path(),
                format!(
                    "the current slot's region ends at {} bytes, beyond the file",
                    offset + size
                ),
            ));
        }
        Ok((VALUE_HEADER_SIZE + offset as usize, size as usize))
    }

    fn claimed_capacity(&self) -> u64 {
        // SYNC POINT: Acquire pairs with the Release store of `capacity` in `new_region`
        // (the file was grown before it).
        self.header()
            .identity
            .capacity
            .load(Ordering::Acquire)
            .min(MAX_CAPACITY)
    }

    /// Copies the committed value into `out` (replacing its contents); returns its commit
    /// number and type tag.
    pub fn read_into(&mut self, out: &mut Vec<u8>) -> Result<ReadValue> {
        match self.read_with(out)? {
            Ok(read) => Ok(read),
            Err(_) => unreachable!("a Vec always has room"),
        }
    }

    /// Copies the committed value into `area` if it fits (one copy, straight from the
    /// mapping): its commit number and type tag, or `Err(len)` (nothing copied) if the area
    /// is smaller than the value.
    pub fn read_into_area(
        &mut self,
        area: &mut slots::Area,
    ) -> Result<std::result::Result<(ReadValue, usize), u64>> {
        let mut sink = Measured { area, len: 0 };
        Ok(self.read_with(&mut sink)?.map(|read| (read, sink.len)))
    }

    fn read_with<S: Sink + ?Sized>(
        &mut self,
        out: &mut S,
    ) -> Result<std::result::Result<ReadValue, u64>> {
        let mut retries = 0u32;
        let mut started: Option<Instant> = None;
        let mut remapped_to = 0u64;
        loop {
            // Borrowed, not cloned: the hot path touches no reference count.
            let map = self.seg.mapping();
            // SAFETY: ValueHeader is all atomics and the mapping is a validated value segment.
            let h = unsafe { map.header::<ValueHeader>() };
            // SYNC POINT: Acquire pairs with the Release store in `slots::commit`.
            let current = h.current.load(Ordering::Acquire);
            let attempt = match self.pin_if_large(h, current) {
                // `current` moved while we pinned: look again (a start-over like any other).
                Pin::Stale => ReadAttempt::Moved,
                pinned => {
                    // SAFETY: `data()` is valid for `data_len()` bytes while `map` lives.
                    let attempt =
                        unsafe { slots::try_read(h, current, map.data(), map.data_len(), out) };
                    if let Pin::Held(slot) = pinned {
                        self.unpin(slot);
                    }
                    attempt
                }
            };
            match attempt {
                ReadAttempt::Done { commit, tag } => return Ok(Ok(ReadValue { commit, tag })),
                ReadAttempt::NoRoom { len } => return Ok(Err(len)),
                ReadAttempt::Moved => {}
                ReadAttempt::Damaged(why) => {
                    return Err(Error::corrupt(
                        self.path(),
                        slots::damage_message(current, why),
                    ))
                }
                ReadAttempt::Beyond { end } => {
                    // Another process grew the file (its capacity store came before the
                    // commit we read): map the larger size, once for each size claimed.
                    let claimed = self.claimed_capacity();
                    if end > claimed || claimed <= remapped_to {
                        if self.version_word() == current {
                            return Err(Error::corrupt(
                                self.path(),
                                format!("the committed value's region ends at {end} bytes, beyond the capacity of {claimed} bytes"),
                            ));
                        }
                    } else {
                        self.seg.remap(claimed)?;
                        remapped_to = claimed;
                    }
                }
            }
            retries += 1;
            if retries >= READ_RETRIES_BEFORE_CLOCK {
                let since = *started.get_or_insert_with(Instant::now);
                if since.elapsed() > READ_WAIT {
                    return Err(Error::corrupt(
                        self.path(),
                        format!(
                            "the value changed under every copy for {} s",
                            READ_WAIT.as_secs()
                        ),
                    ));
                }
                std::thread::yield_now();
            }
        }
    }

    fn version_word(&self) -> u64 {
        // SYNC POINT: Acquire pairs with the Release store in `slots::commit`.
        self.header().current.load(Ordering::Acquire)
    }

    /// Pins the current slot if its value is large (`DESIGN.md`, "Pins"), then checks that
    /// it is still current.
    #[inline]
    fn pin_if_large(&self, h: &ValueHeader, current: u64) -> Pin {
        let Some(slot) = slots::slot_of(current) else {
            return Pin::None;
        };
        // SYNC POINT: Relaxed: a hint only (which reads are worth a syscall); the copy
        // checks the length again under the slot's seqlock.
        if h.slots[slot].len.load(Ordering::Relaxed) < PIN_MIN {
            return Pin::None;
        }
        self.pin(h, current, slot)
    }

    /// The syscall half of [`pin_if_large`](Self::pin_if_large).
    #[inline(never)]
    fn pin(&self, h: &ValueHeader, current: u64, slot: usize) -> Pin {
        // A failure to pin (a foreign write lock on the byte) just means reading unpinned.
        if !os::pin_byte(self.seg.fd(), PIN_BASE + slot as u64).unwrap_or(false) {
            return Pin::None;
        }
        // SYNC POINT: SeqCst: the pin (a syscall, ordered by the kernel's lock list against
        // the writer's F_OFD_GETLK) comes before this load. A writer that committed a newer
        // value before looking at the pins is seen here; one that looks after sees the pin.
        if h.current.load(Ordering::SeqCst) != current {
            self.unpin(slot);
            return Pin::Stale;
        }
        Pin::Held(slot)
    }

    fn unpin(&self, slot: usize) {
        let _ = os::unlock_byte(self.seg.fd(), PIN_BASE + slot as u64);
    }

    /// Whether a value of `len` bytes may be written through this handle (writable, and
    /// within the maximum size).
    pub fn check_size(&self, len: u64) -> Result<()> {
        if self.seg.read_only() {
            return Err(Error::ReadOnly {
                path: self.path().to_owned(),
            });
        }
        if len > self.max_size {
            return Err(Error::ValueTooLarge {
                path: self.path().to_owned(),
                len,
                max: self.max_size,
            });
        }
        Ok(())
    }

    /// Replaces the value (bytes of type `tag`); returns the new version. Grows the segment
    /// if needed (up to the maximum size). On any error the previous value is intact.
    pub fn write(&mut self, tag: u32, value: &[u8]) -> Result<u64> {
        // SAFETY: a slice is readable for its length.
        unsafe { self.write_from(tag, value.as_ptr(), value.len()) }
    }

    /// [`write`](Self::write) from a raw source.
    ///
    /// # Safety
    /// `src` must be valid for reads of `len` bytes during the call. It may be shared
    /// memory (a view of this or another segment): it is copied with raw pointers only.
    pub unsafe fn write_from(&mut self, tag: u32, src: *const u8, len: usize) -> Result<u64> {
        self.check_size(len as u64)?;
        self.lock_writer()?;
        // SAFETY: forwarded from our caller.
        let result = unsafe { self.write_locked(tag, src, len) };
        self.unlock_writer();
        result
    }

    fn lock_writer(&self) -> Result<Acquired> {
        let h = self.header();
        // The uncontended path first: no clock read.
        // SYNC POINT: Acquire pairs with the Release swap in `lock::release`.
        if h.writer_lock
            .compare_exchange(0, self.seg.token(), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(Acquired::Clean);
        }
        let deadline = Instant::now() + WRITE_LOCK_WAIT;
        lock::acquire(
            &h.writer_lock,
            self.seg.token(),
            Some(deadline),
            &|t| self.seg.is_alive(t),
            &|w, v, d| {
                futex::wait(w, v, Some(d));
            },
        )
        .map_err(|e| match e {
            LockError::TimedOut => Error::Timeout {
                path: self.path().to_owned(),
                what: "the writer lock",
                ms: WRITE_LOCK_WAIT.as_millis() as u64,
            },
            LockError::AlreadyHeld => Error::corrupt(
                self.path(),
                "the writer lock already names this handle (overwritten by another process?)",
            ),
            LockError::Cancelled => unreachable!("the writer lock is not taken with a cancel flag"),
        })
    }

    fn unlock_writer(&self) {
        lock::release(&self.header().writer_lock, self.seg.token(), &|w| {
            futex::wake(w, 1);
        });
    }

    /// # Safety
    /// As for [`write_from`](Self::write_from); the writer lock is held.
    unsafe fn write_locked(&mut self, tag: u32, src: *const u8, len: usize) -> Result<u64> {
        // Adopt a growth made by another process before looking at any region.
        self.adopt_growth()?;
        // SYNC POINT: Acquire pairs with the Release store in `slots::commit` by the previous
        // writer (the writer lock orders it as well).
        let current = self.header().current.load(Ordering::Acquire);
        // A damaged `current` (slot 3) commits nothing readers accept: this write repairs
        // it, sparing the slot that holds the highest commit number.
        let cur = slots::slot_of(current).unwrap_or_else(|| slots::newest(self.header()));
        let next = (current >> 2) + 1;
        if next > slots::MAX_COMMIT {
            return Err(Error::corrupt(
                self.path(),
                "the commit number is exhausted",
            ));
        }
        let slot = self.choose_slot(cur);
        let (region, offset) = self.region_for(slot, len as u64)?;
        let map = self.seg.mapping();
        // SAFETY: ValueHeader is all atomics and the mapping is a validated value segment.
        let h = unsafe { map.header::<ValueHeader>() };
        let d = &h.slots[slot];
        let odd = slots::begin_fill(d, next, region);
        // SAFETY: `region_for` checked that `offset + len` lies inside the mapped data area
        // and that the region overlaps neither other slot's; the writer lock makes us the
        // only writer; `src` is readable for `len` bytes (our contract), and `copy_in`
        // tolerates a source that is a view of this segment.
        unsafe { slots::copy_in(map.data().add(offset as usize), src, len) };
        slots::end_fill(d, odd, len as u64, tag);
        slots::commit(h, next, slot);
        notify_waiters(h, &|token| self.seg.is_alive(token));
        Ok(next)
    }

    /// The slot to fill, of the two that are not current: the older one, so that a reader
    /// copying the newer (unpinned: a small value) is spoiled only by two more commits. If
    /// both hold large values, every reader of them pins what it copies: then the newer
    /// one, unless pinned, so that writes of large values take turns between two regions
    /// and the third stays out of the caches. A pinned slot is never chosen while another
    /// is free (only large values are pinned, so small writes make no syscall).
    fn choose_slot(&self, cur: usize) -> usize {
        let h = self.header();
        let mut order = slots::candidates(h, cur);
        let len_of = |i: usize| {
            // SYNC POINT: Relaxed: we are the only writer (writer lock).
            h.slots[i].len.load(Ordering::Relaxed)
        };
        if len_of(order[0]) >= PIN_MIN && len_of(order[1]) >= PIN_MIN {
            order.swap(0, 1);
        }
        let pinned = |i: usize| {
            len_of(i) >= PIN_MIN
                // An error (it cannot happen on a live descriptor) counts as unpinned: the
                // reader then starts over, never hangs.
                && os::byte_is_locked_by_other(self.seg.fd(), PIN_BASE + i as u64)
                    .unwrap_or(false)
        };
        if let Some(&free) = order.iter().find(|&&i| !pinned(i)) {
            return free;
        }
        // Both pinned (two readers still copying older values): give them time to finish.
        let largest = len_of(order[0]).max(len_of(order[1]));
        let wait = PIN_WAIT_BASE + PIN_WAIT_PER_MIB * (largest >> 20).min(1 << 16) as u32;
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            std::thread::sleep(PIN_POLL);
            if let Some(&free) = order.iter().find(|&&i| !pinned(i)) {
                return free;
            }
        }
        order[0] // its reader starts over
    }

    /// The region slot `slot` will hold a value of `len` bytes in: its own if that is sound
    /// and large enough, else a new one at the end of the file (the old one is abandoned).
    /// Returns the region word and the region's offset in the data area.
    fn region_for(&mut self, slot: usize, len: u64) -> Result<(u64, u64)> {
        let claimed = self.claimed_capacity();
        let mapped = self.seg.mapping().data_len() as u64;
        let limit = claimed.min(mapped);
        let h = self.header();
        // SYNC POINT: Relaxed, all: we are the only writer (writer lock); the words are
        // checked, not trusted.
        let word = |i: usize| h.slots[i].region.load(Ordering::Relaxed);
        let sound = |w: u64| {
            let (offset, size) = region_bytes(w);
            (size > 0 && offset + size <= limit).then_some((offset, size))
        };
        let own = sound(word(slot));
        let overlaps = |(o, s): (u64, u64)| {
            (0..SLOTS)
                .filter(|&i| i != slot)
                .any(|i| sound(word(i)).is_some_and(|(oo, os)| o < oo + os && oo < o + s))
        };
        if let Some((offset, size)) = own {
            if size >= len && !overlaps((offset, size)) {
                return Ok((word(slot), offset));
            }
        }
        let old = own.map_or(0, |(_, size)| size);
        self.new_region(len, old)
    }

    /// Places a new region at the end of the data area, grows the file for it (blocks
    /// reserved: a full disk fails here, not later) and publishes the larger capacity.
    fn new_region(&mut self, len: u64, old: u64) -> Result<(u64, u64)> {
        let want = len.max(old.saturating_mul(2).min(self.max_size)).max(1);
        let size = want.div_ceil(PAGE) * PAGE;
        // SYNC POINT: Relaxed: a damage check only; `claimed_capacity` below is the
        // synchronising load.
        let raw = self.header().identity.capacity.load(Ordering::Relaxed);
        if raw > MAX_CAPACITY {
            // Damage, not a value too large: no write could have published this.
            return Err(Error::corrupt(
                self.path(),
                format!("the header's capacity ({raw} bytes) is beyond the format's limit"),
            ));
        }
        let start = self.claimed_capacity().div_ceil(PAGE) * PAGE;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= MAX_CAPACITY)
            .ok_or_else(|| Error::ValueTooLarge {
                path: self.path().to_owned(),
                len,
                max: MAX_CAPACITY.saturating_sub(start),
            })?;
        self.seg.grow(end)?;
        // SYNC POINT: Release pairs with the Acquire loads of `capacity` in
        // `claimed_capacity` by readers and writers in other processes, who then find the
        // file already grown (the blocks were reserved first).
        self.header()
            .identity
            .capacity
            .store(end, Ordering::Release);
        Ok((region_word(start / PAGE, size / PAGE), start))
    }

    /// Takes the cross-process lock behind `lock()`/`lockSync()` for this handle.
    pub fn lock_user(&self, deadline: Option<Instant>) -> Result<Acquired> {
        self.user_locker()?.lock(deadline, false, None)
    }

    /// What a background thread needs to take the `lock()` lock for this handle.
    pub fn user_locker(&self) -> Result<UserLocker> {
        if self.seg.read_only() {
            // Taking the lock stores into the header, which this handle maps read-only.
            return Err(Error::ReadOnly {
                path: self.path().to_owned(),
            });
        }
        Ok(UserLocker {
            watcher: self.watcher(),
            liveness: self.seg.liveness(),
            path: self.path().to_owned(),
        })
    }

    /// Releases the lock taken by `lock_user`, if this handle still holds it (a word that
    /// names another token is left alone). A handle that closes calls this too.
    pub fn unlock_user(&self) {
        if self.seg.read_only() {
            return; // it can never have taken it
        }
        lock::release_if_held(&self.header().user_lock, self.seg.token(), &|w| {
            futex::wake(w, 1);
        });
    }

    /// Whether a live handle (in any process) holds the `lock()` lock.
    pub fn user_lock_held(&self) -> bool {
        // SYNC POINT: Acquire pairs with the Release that frees the word in `lock::release`
        // or `lock::release_if_held`; a token stored by `lock::acquire` (an Acquire-only CAS)
        // publishes nothing. Only the token is used, for a liveness check: Relaxed would do.
        let holder = lock::owner(self.header().user_lock.load(Ordering::Acquire));
        holder != 0 && self.seg.is_alive(holder)
    }

    /// Busy-waits up to `budget` for the version to differ from `since` (no allocation, no
    /// syscall on the fast path); returns the new version if it did.
    pub fn spin_for_change(&self, since: u64, budget: Duration) -> Option<u64> {
        let h = self.header();
        futex::spin_until(budget, &|| version_of(h) != since).then(|| version_of(h))
    }
}

fn checked_options(name: &str, opts: &ValueOptions) -> Result<OpenOptions> {
    let mut open = opts.open.clone();
    open.kind = KIND_VALUE;
    if open.capacity > MAX_CAPACITY / 4 || opts.max_size > MAX_CAPACITY {
        return Err(Error::invalid(
            name,
            format!("size must be at most {MAX_CAPACITY} bytes"),
        ));
    }
    if open.capacity > opts.max_size {
        return Err(Error::invalid(
            name,
            format!(
                "size {} is larger than maxSize {}",
                open.capacity, opts.max_size
            ),
        ));
    }
    let pages = open.capacity.div_ceil(PAGE).max(1);
    let image = header_image(pages, 0, 0, 0);
    open.capacity = SLOTS as u64 * pages * PAGE;
    open.header = Some(image.into());
    Ok(open)
}

/// The header of a new value segment whose three slots have regions of `pages` pages each,
/// one after the other; slot 0 is current, at commit `commit`, holding `len` bytes of type
/// `tag` (the bytes themselves go into the data area, at its start).
pub(crate) fn header_image(pages: u64, commit: u64, len: u64, tag: u32) -> Vec<u8> {
    let mut head = vec![0u8; VALUE_HEADER_SIZE];
    let capacity = SLOTS as u64 * pages * PAGE;
    crate::segment::identity_line(&mut head, KIND_VALUE, VALUE_HEADER_SIZE as u32, capacity);
    let put =
        |head: &mut [u8], at: usize, v: u64| head[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut head, 64, slots::current_word(commit, 0));
    for i in 0..SLOTS {
        let at = 256 + 64 * i;
        put(&mut head, at + 16, region_word(i as u64 * pages, pages));
        if i == 0 {
            put(&mut head, at + 8, commit);
            put(&mut head, at + 24, len);
            head[at + 32..at + 36].copy_from_slice(&tag.to_le_bytes());
        }
    }
    head
}

fn version_of(h: &ValueHeader) -> u64 {
    // SYNC POINT: Acquire pairs with the Release store in `slots::commit`.
    h.current.load(Ordering::Acquire) >> 2
}

/// An [`slots::Area`] that remembers how many bytes it was filled with.
struct Measured<'a> {
    area: &'a mut slots::Area,
    len: usize,
}

impl Sink for Measured<'_> {
    fn room(&mut self, n: usize) -> Option<*mut u8> {
        self.area.room(n)
    }

    fn filled(&mut self, n: usize) {
        self.len = n;
        self.area.filled(n);
    }
}

/// Whether a read pinned its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pin {
    None,
    Held(usize),
    /// Pinned, but `current` had moved on: released, look again.
    Stale,
}

fn announcements(h: &ValueHeader) -> Announcements<'_> {
    Announcements::new(&h.waiter_slots, &h.notify_waiters)
}

/// Wakes waiters after a completed write, with a syscall only if someone is parked; frees
/// the announcements of waiters that died parked (`waiters.rs`).
fn notify_waiters(h: &ValueHeader, is_alive: &dyn Fn(u32) -> bool) {
    // SYNC POINT: this SeqCst bump and the SeqCst loads in `any` pair with the SeqCst
    // announcement in `Watcher::park` and the kernel's re-check of `notify` (Dekker):
    // either we see the waiter and wake it, or it sees the new `notify` and does not sleep.
    h.notify.fetch_add(1, Ordering::SeqCst);
    let waiters = announcements(h);
    if waiters.any() {
        waiters.wake(&h.notify, is_alive);
    }
}

/// How often a read-only handle re-checks the version while waiting: it cannot announce
/// itself in the header (its mapping is read-only), so writers do not wake it.
pub const READ_ONLY_POLL: Duration = Duration::from_millis(2);

/// The part of a value segment other threads need to wait on it. Holds the mapping alive.
#[derive(Clone)]
pub struct Watcher {
    map: Arc<Mapping>,
    /// The mapping is read-only: never store into the header.
    read_only: bool,
    /// The handle's token, announced while a thread parks.
    token: u32,
}

impl Watcher {
    fn header(&self) -> &ValueHeader {
        // SAFETY: built from a validated value segment's mapping, which `self` keeps alive.
        unsafe { self.map.header::<ValueHeader>() }
    }

    /// The current version.
    pub fn version(&self) -> u64 {
        version_of(self.header())
    }

    /// Blocks until the version differs from `since` (returns it), the timeout passes or
    /// `cancel` is set (`None`). Busy-waits up to `spin` before parking on the futex.
    pub fn wait_for_change(
        &self,
        since: u64,
        timeout: Option<Duration>,
        spin: Duration,
        cancel: Option<&AtomicBool>,
    ) -> Option<u64> {
        let h = self.header();
        let deadline = timeout.map(|t| Instant::now() + t);
        let spin = timeout.map_or(spin, |t| spin.min(t));
        if futex::spin_until(spin, &|| version_of(h) != since) {
            return Some(version_of(h));
        }
        loop {
            // Read the futex word before the version: a write completing in between
            // changes the word, and the park below returns at once.
            // SYNC POINT: Acquire pairs with the SeqCst bump in `notify_waiters` (made after the
            // Release store of `seq` in `end_write`) and keeps the version load below after it.
            let observed = h.notify.load(Ordering::Acquire);
            let v = version_of(h);
            if v != since {
                return Some(v);
            }
            // SYNC POINT: Acquire pairs with the Release store of the flag in
            // `ValueEntry::stop_notifier` (napi/mod.rs); nothing else is published through it.
            if cancel.is_some_and(|c| c.load(Ordering::Acquire)) {
                return None;
            }
            let mut nap = None;
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                nap = Some(deadline - now);
            }
            if cancel.is_some() {
                // Cancellation is a local flag the futex cannot see: poll it.
                nap = Some(nap.map_or(CANCEL_POLL, |n: Duration| n.min(CANCEL_POLL)));
            }
            if self.read_only {
                nap = Some(nap.map_or(READ_ONLY_POLL, |n: Duration| n.min(READ_ONLY_POLL)));
            }
            // The announcement lives in memory any process may overwrite: zeroed, it would
            // leave this waiter unwoken, so no park lasts longer than LONGEST_PARK.
            let nap = Some(nap.map_or(LONGEST_PARK, |n: Duration| n.min(LONGEST_PARK)));
            self.park(observed, nap);
        }
    }

    fn park(&self, observed: u32, nap: Option<Duration>) {
        let h = self.header();
        if self.read_only {
            // No announcement possible: sleep until the poll interval (set by the caller).
            futex::wait(&h.notify, observed, nap);
            return;
        }
        // SYNC POINT: the announcement pairs with `notify_waiters` (see there).
        let waiters = announcements(h);
        let at = waiters.enter(self.token);
        futex::wait(&h.notify, observed, nap);
        waiters.leave(at, self.token);
    }

    /// Wakes every thread parked on this segment's futex word (used to cancel a wait).
    pub fn wake_all(&self) {
        futex::wake_all(&self.header().notify);
    }
}

/// Takes a value segment's `lock()` lock, from any thread.
pub struct UserLocker {
    watcher: Watcher,
    liveness: Liveness,
    path: String,
}

impl UserLocker {
    /// Blocks until the lock is ours (or `deadline` passes, or `cancel` is set: then
    /// `ERR_CLOSED`). If this same handle holds it already, fails with `ERR_LOCK_HELD`, or
    /// with `wait_for_self` waits for that section to end (for a background thread, whose
    /// wait cannot block the section's thread).
    pub fn lock(
        &self,
        deadline: Option<Instant>,
        wait_for_self: bool,
        cancel: Option<&AtomicBool>,
    ) -> Result<Acquired> {
        let started = Instant::now();
        loop {
            match self.lock_once(deadline, cancel, started) {
                Err(Error::LockHeld { .. }) if wait_for_self => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Error::Timeout {
                            path: self.path.clone(),
                            what: "the lock",
                            ms: started.elapsed().as_millis() as u64,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }

    fn lock_once(
        &self,
        deadline: Option<Instant>,
        cancel: Option<&AtomicBool>,
        started: Instant,
    ) -> Result<Acquired> {
        let word = &self.watcher.header().user_lock;
        let me = self.liveness.token();
        let is_alive = |t| self.liveness.is_alive(t);
        let park = |w: &AtomicU32, v, d| {
            futex::wait(w, v, Some(d));
        };
        // A lock taken after the handle closed is handed on at once, not when JS runs
        // again (it may be blocked waiting for this very lock).
        let cancel = cancel.map(|flag| lock::Cancel {
            flag,
            poll: CANCEL_POLL,
            wake_one: &wake_one,
        });
        lock::acquire_cancellable(word, me, deadline, cancel.as_ref(), &is_alive, &park).map_err(
            |e| match e {
                LockError::TimedOut => Error::Timeout {
                    path: self.path.clone(),
                    what: "the lock",
                    ms: started.elapsed().as_millis() as u64,
                },
                LockError::AlreadyHeld => Error::LockHeld {
                    path: self.path.clone(),
                },
                LockError::Cancelled => Error::Closed {
                    path: self.path.clone(),
                },
            },
        )
    }

    /// Releases the lock if this handle holds it (for a background thread whose handle
    /// closed before the lock could be handed over).
    pub fn unlock(&self) {
        let word = &self.watcher.header().user_lock;
        lock::release_if_held(word, self.liveness.token(), &wake_one);
    }
}

fn wake_one(word: &AtomicU32) {
    futex::wake(word, 1);
}

/// The longest a waiter sleeps before it looks at the version again, woken or not.
const LONGEST_PARK: Duration = Duration::from_secs(1);

/// How often a cancellable wait re-checks its flag.
const CANCEL_POLL: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    const TEXT: u32 = 1;

    fn open(dir: &TempDir, name: &str) -> ValueSegment {
        ValueSegment::open(&dir.path().join(name), &ValueOptions::default()).unwrap()
    }

    fn read(v: &mut ValueSegment) -> (Vec<u8>, ReadValue) {
        let mut out = vec![];
        let r = v.read_into(&mut out).unwrap();
        (out, r)
    }

    #[test]
    fn a_new_segment_reads_empty_at_version_zero() {
        let dir = TempDir::new("val-new");
        let mut v = open(&dir, "s");
        let mut out = vec![9];
        assert_eq!(
            v.read_into(&mut out).unwrap(),
            ReadValue { commit: 0, tag: 0 }
        );
        assert!(out.is_empty());
        assert_eq!(v.capacity(), PAGE, "size 1024 rounds up to a page per slot");
        let len = std::fs::metadata(dir.path().join("s")).unwrap().len();
        assert_eq!(len, VALUE_HEADER_SIZE as u64 + 3 * PAGE);
    }

    #[test]
    fn a_waiter_whose_announcement_was_zeroed_still_sees_the_next_write() {
        let dir = TempDir::new("val-zeroed-slots");
        let a = open(&dir, "s");
        let watcher = a.watcher();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(watcher.wait_for_change(0, None, Duration::ZERO, None));
        });
        std::thread::sleep(Duration::from_millis(100)); // parked and announced
                                                        // Another process zeroes the announcements: the writer below wakes nobody.
        for slot in &a.header().waiter_slots {
            // SYNC POINT: Relaxed: stands for a foreign process's plain store.
            slot.store(0, Ordering::Relaxed);
        }
        // SYNC POINT: Relaxed: as above.
        a.header().notify_waiters.store(0, Ordering::Relaxed);
        open(&dir, "s").write(TEXT, b"changed").unwrap();
        let woke = rx.recv_timeout(LONGEST_PARK * 10);
        assert_eq!(woke, Ok(Some(1)), "the waiter looks again by itself");
    }

    #[test]
    fn a_write_is_read_back_exactly_by_another_handle_with_its_tag() {
        let dir = TempDir::new("val-rt");
        let mut a = open(&dir, "s");
        let mut b = open(&dir, "s");
        let value = "héllo\0wörld 你好 🎉".as_bytes();
        assert_eq!(a.write(6, value).unwrap(), 1);
        assert_eq!(
            read(&mut b),
            (value.to_vec(), ReadValue { commit: 1, tag: 6 })
        );
        assert_eq!(b.version(), 1);
    }

    #[test]
    fn a_read_into_an_area_too_small_copies_nothing_and_says_how_much_room_it_needs() {
        let dir = TempDir::new("val-area");
        let mut v = open(&dir, "s");
        v.write(0, &[5u8; 100]).unwrap();
        let mut small = [0u8; 10];
        // SAFETY: `small` is private memory valid for its length while the area lives.
        let mut area = unsafe { slots::Area::new(small.as_mut_ptr(), small.len()) };
        assert_eq!(v.read_into_area(&mut area).unwrap(), Err(100));
        assert_eq!(small, [0u8; 10], "nothing copied");
        let mut big = [0u8; 200];
        // SAFETY: as above.
        let mut area = unsafe { slots::Area::new(big.as_mut_ptr(), big.len()) };
        let (read, len) = v.read_into_area(&mut area).unwrap().unwrap();
        assert_eq!((read.commit, len), (1, 100));
        assert_eq!(&big[..100], &[5u8; 100][..]);
    }

    #[test]
    fn growth_is_adopted_by_other_handles() {
        let dir = TempDir::new("val-grow");
        let mut a = open(&dir, "s");
        let mut b = open(&dir, "s");
        let big = vec![7u8; 100_000];
        a.write(0, &big).unwrap();
        assert_eq!(read(&mut b).0, big);
        b.write(0, &vec![8u8; 150_000]).unwrap();
        assert_eq!(read(&mut a).0.len(), 150_000);
        for i in 0..4u8 {
            a.write(0, &vec![i; 150_000]).unwrap();
        }
        assert!(a.capacity() >= 150_000, "every slot grew: {}", a.capacity());
        assert_eq!(read(&mut b).0, vec![3u8; 150_000]);
    }

    #[test]
    fn a_damaged_capacity_makes_a_growing_write_corrupt_not_too_large() {
        let dir = TempDir::new("val-cap-damage");
        let mut v = open(&dir, "s");
        v.write(0, b"kept").unwrap();
        v.header()
            .identity
            .capacity
            .store(u64::MAX, Ordering::Relaxed);
        let err = v.write(0, &vec![1u8; 100_000]).unwrap_err();
        assert_eq!(err.code(), "ERR_CORRUPT", "{err}");
    }

    #[test]
    fn current_capacity_adopts_a_growth_made_through_another_handle() {
        let dir = TempDir::new("val-cap");
        let mut a = open(&dir, "s");
        let mut b = open(&dir, "s");
        let before = a.segment().mapping().data_len();
        b.write(0, &vec![1u8; 100_000]).unwrap();
        let claimed = b.claimed_capacity();
        assert!(claimed > before as u64 && claimed >= 100_000);
        assert_eq!(a.current_capacity().unwrap(), b.capacity());
        assert!(a.segment().mapping().data_len() as u64 >= claimed);
    }

    #[test]
    fn a_value_beyond_max_size_is_refused_and_the_old_value_kept() {
        let dir = TempDir::new("val-max");
        let opts = ValueOptions {
            max_size: 4096,
            ..ValueOptions::default()
        };
        let mut v = ValueSegment::open(&dir.path().join("s"), &opts).unwrap();
        v.write(TEXT, b"old").unwrap();
        let err = v.write(TEXT, &[1u8; 4097]).unwrap_err();
        assert_eq!(err.code(), "ERR_VALUE_TOO_LARGE");
        assert_eq!(read(&mut v).0, b"old");
        assert_eq!(v.version(), 1);
    }

    #[test]
    fn a_garbage_length_or_region_is_corrupt_not_followed() {
        let dir = TempDir::new("val-len");
        let mut v = open(&dir, "s");
        let h = v.header();
        // SYNC POINT: Relaxed: single-threaded test; the read below is in this thread.
        h.slots[0].len.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(v.read_into(&mut vec![]).unwrap_err().code(), "ERR_CORRUPT");
        let h = v.header();
        // SYNC POINT: Relaxed: as above.
        h.slots[0].len.store(0, Ordering::Relaxed);
        // SYNC POINT: Relaxed: as above.
        h.slots[0]
            .region
            .store(region_word(1 << 20, 4), Ordering::Relaxed);
        assert_eq!(v.read_into(&mut vec![]).unwrap_err().code(), "ERR_CORRUPT");
        // A writer does not trust it either: the next write goes elsewhere and reads back.
        v.write(TEXT, b"repaired").unwrap();
        assert_eq!(read(&mut v).0, b"repaired");
    }

    #[test]
    fn overlapping_regions_are_never_written_into() {
        let dir = TempDir::new("val-overlap");
        let mut v = open(&dir, "s");
        v.write(TEXT, b"committed").unwrap();
        // A foreign process aims the other two slots at the committed slot's region.
        let h = v.header();
        // SYNC POINT: Relaxed: single-threaded test.
        let cur = (h.current.load(Ordering::Relaxed) & 3) as usize;
        // SYNC POINT: Relaxed: as above.
        let region = h.slots[cur].region.load(Ordering::Relaxed);
        for i in (0..SLOTS).filter(|&i| i != cur) {
            // SYNC POINT: Relaxed: as above.
            h.slots[i].region.store(region, Ordering::Relaxed);
        }
        let mut other = open(&dir, "s");
        other.write(TEXT, b"next").unwrap();
        assert_eq!(read(&mut v).0, b"next");
        let h = v.header();
        // SYNC POINT: Relaxed: as above.
        let now = (h.current.load(Ordering::Relaxed) & 3) as usize;
        // SYNC POINT: Relaxed: as above.
        assert_ne!(h.slots[now].region.load(Ordering::Relaxed), region);
    }

    #[test]
    fn a_writer_killed_mid_write_costs_only_its_own_write() {
        let dir = TempDir::new("val-dead");
        let mut reader = open(&dir, "s");
        open(&dir, "s").write(TEXT, b"committed").unwrap();
        {
            let writer = open(&dir, "s");
            let h = writer.header();
            // SYNC POINT: Release: stands for the writer's lock CAS; single-threaded test.
            h.writer_lock
                .store(writer.segment().token(), Ordering::Release);
            // SYNC POINT: Relaxed: single-threaded test.
            let c = h.current.load(Ordering::Relaxed);
            let slot = slots::candidates(h, (c & 3) as usize)[0];
            let d = &h.slots[slot];
            // SYNC POINT: Relaxed: as above.
            slots::begin_fill(d, (c >> 2) + 1, d.region.load(Ordering::Relaxed));
            // `writer` is dropped here holding the lock mid-fill: its liveness byte goes.
        }
        assert_eq!(
            read(&mut reader),
            (
                b"committed".to_vec(),
                ReadValue {
                    commit: 1,
                    tag: TEXT
                }
            )
        );
        let mut next = open(&dir, "s");
        assert_eq!(
            next.write(TEXT, b"fresh").unwrap(),
            2,
            "version counts commits"
        );
        assert_eq!(read(&mut reader).0, b"fresh");
    }

    #[test]
    fn a_writer_avoids_a_slot_a_reader_pins_and_a_dead_readers_pin_goes() {
        let dir = TempDir::new("val-pin");
        let mut w = open(&dir, "s");
        let big = vec![1u8; PIN_MIN as usize];
        w.write(0, &big).unwrap(); // commit 1
        let pinned_slot = (w.version_word() & 3) as usize;
        let pinner = open(&dir, "s");
        assert!(os::pin_byte(pinner.seg.fd(), PIN_BASE + pinned_slot as u64).unwrap());
        // The pinned slot stops being current; the two writes after it would refill it
        // (oldest first), but the pin sends them to the other slots.
        for i in 2..6u8 {
            w.write(0, &vec![i; PIN_MIN as usize]).unwrap();
            assert_ne!((w.version_word() & 3) as usize, pinned_slot);
        }
        let h = w.header();
        // SYNC POINT: Relaxed: single-threaded test.
        assert_eq!(h.slots[pinned_slot].commit.load(Ordering::Relaxed), 1);
        let pin = PIN_BASE + pinned_slot as u64;
        assert!(os::byte_is_locked_by_other(w.seg.fd(), pin).unwrap());
        drop(pinner); // the kernel drops the pin with the descriptor
        assert!(!os::byte_is_locked_by_other(w.seg.fd(), pin).unwrap());
    }

    #[test]
    fn a_writer_facing_two_pinned_slots_waits_then_goes_on() {
        let dir = TempDir::new("val-pin-two");
        let mut w = open(&dir, "s");
        let mut pinners = vec![];
        for i in 0..3u8 {
            w.write(0, &vec![i; PIN_MIN as usize]).unwrap();
            if i < 2 {
                let p = open(&dir, "s");
                let slot = w.version_word() & 3;
                assert!(os::pin_byte(p.seg.fd(), PIN_BASE + slot).unwrap());
                pinners.push(p);
            }
        }
        // The two slots that are not current are both pinned (by readers that never
        // finish): the write waits PIN_WAIT, then overwrites the older one.
        let started = Instant::now();
        w.write(0, &vec![9u8; PIN_MIN as usize]).unwrap();
        assert!(started.elapsed() >= PIN_WAIT_BASE);
        assert_eq!(read(&mut w).0, vec![9u8; PIN_MIN as usize]);
    }

    #[test]
    fn read_only_handles_read_large_values_refuse_writes_and_locks_but_can_wait() {
        let dir = TempDir::new("val-ro");
        let path = dir.path().join("s");
        let mut writer = open(&dir, "s");
        let mut opts = ValueOptions::default();
        opts.open.read_only = true;
        let mut ro = ValueSegment::open(&path, &opts).unwrap();
        assert_eq!(ro.write(TEXT, b"x").unwrap_err().code(), "ERR_READ_ONLY");
        assert_eq!(ro.lock_user(None).unwrap_err().code(), "ERR_READ_ONLY");
        // Waiting must not store into the read-only mapping (that would fault).
        let w = ro.watcher();
        let t = std::thread::spawn(move || {
            w.wait_for_change(0, Some(Duration::from_secs(10)), Duration::ZERO, None)
        });
        std::thread::sleep(Duration::from_millis(10));
        writer.write(TEXT, b"seen").unwrap();
        assert_eq!(t.join().unwrap(), Some(1));
        assert_eq!(read(&mut ro).0, b"seen");
        // A large value: the read-only handle pins (a read lock) and reads it whole.
        let big = vec![5u8; 2 * PIN_MIN as usize];
        writer.write(0, &big).unwrap();
        assert_eq!(read(&mut ro).0, big);
    }

    #[test]
    fn a_waiter_in_another_thread_wakes_on_write() {
        let dir = TempDir::new("val-wait");
        let mut a = open(&dir, "s");
        let w = a.watcher();
        let t = std::thread::spawn(move || {
            w.wait_for_change(0, Some(Duration::from_secs(10)), Duration::ZERO, None)
        });
        std::thread::sleep(Duration::from_millis(20));
        a.write(TEXT, b"x").unwrap();
        assert_eq!(t.join().unwrap(), Some(1));
        let quiet = a.watcher();
        let waited = quiet.wait_for_change(1, Some(Duration::from_millis(10)), WAIT_SPIN, None);
        assert_eq!(waited, None);
    }

    #[test]
    fn the_user_lock_is_taken_over_from_a_dead_handle() {
        let dir = TempDir::new("val-userlock");
        let a = open(&dir, "s");
        let b = open(&dir, "s");
        assert_eq!(a.lock_user(None).unwrap(), Acquired::Clean);
        assert!(b.user_lock_held());
        drop(a);
        assert!(!b.user_lock_held());
        assert_eq!(b.lock_user(None).unwrap(), Acquired::OwnerDied);
        b.unlock_user();
    }

    #[test]
    fn readers_in_threads_never_see_a_torn_or_older_value_under_a_busy_writer() {
        let dir = TempDir::new("val-threads");
        let path = dir.path().join("s");
        let mut w = open(&dir, "s");
        w.write(0, &[0u8; 8]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (path, stop) = (path.clone(), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut r = ValueSegment::open(&path, &ValueOptions::default()).unwrap();
                    let (mut reads, mut last) = (0u64, 0u64);
                    let mut out = vec![];
                    loop {
                        let got = r.read_into(&mut out).unwrap();
                        let first = out[0];
                        assert!(out.iter().all(|&b| b == first), "torn read");
                        assert!(got.commit >= last, "older value after a newer one");
                        let expected = (got.commit - 1) % 251;
                        assert_eq!(u64::from(first), expected, "value of another commit");
                        last = got.commit;
                        reads += 1;
                        // SYNC POINT: Relaxed: a stop flag; `join` orders the rest.
                        if stop.load(Ordering::Relaxed) && reads > 100 {
                            return reads;
                        }
                    }
                })
            })
            .collect();
        for i in 1..20_000u64 {
            let len = 8 + (i as usize * 7919) % 600_000;
            w.write(0, &vec![(i % 251) as u8; len]).unwrap();
        }
        // SYNC POINT: Relaxed: see the load in the readers.
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 100);
        }
    }
}
