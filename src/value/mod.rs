//! A value segment: one byte string shared by every process that opens the file.
//!
//! Reads are torn-free copies (`seqlock.rs`); writers exclude each other with a lock word
//! that survives their death (`lock.rs`); every completed write bumps a futex word that
//! waiters park on (`futex.rs`); a value larger than the capacity grows the file, and
//! every other process re-maps on its next access. Everything read from the header is
//! untrusted: lengths are checked against the mapping, capacities against the file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::segment::layout::{
    ValueHeader, DEFAULT_MAX_SIZE, HEADER_SIZE, KIND_VALUE, MAX_CAPACITY,
};
use crate::segment::{Liveness, Mapping, OpenOptions, Segment};
use crate::sync::futex;
use crate::sync::lock::{self, Acquired, LockError};
use crate::sync::seqlock::{self, ReadAttempt};
use crate::sync::waiters::Announcements;

/// How long a writer waits for the writer lock held by a live process before giving up.
const WRITE_LOCK_WAIT: Duration = Duration::from_secs(10);
/// How long a reader waits for a live writer that is mid-copy before giving up.
const READ_WAIT: Duration = Duration::from_secs(10);
/// Busy-wait iterations of a reader facing a mid-copy writer before it sleeps between looks.
const READ_SPINS: u32 = 2_000;
/// How long a blocking wait busy-waits before it parks (bounded and yielding, so a busy
/// 2-core machine is not starved).
pub const WAIT_SPIN: Duration = Duration::from_micros(20);

/// Options for opening a value segment.
#[derive(Debug, Clone)]
pub struct ValueOptions {
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
        // SAFETY: ValueHeader is a repr(C) struct of atomics of exactly HEADER_SIZE bytes,
        // and the segment was validated as a value segment at least that long.
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

    /// The number of completed writes, the same in every process.
    pub fn version(&self) -> u64 {
        version_of(self.header())
    }

    /// Bytes the value may take without growing the file.
    pub fn capacity(&self) -> u64 {
        // SYNC POINT: Acquire pairs with the Release store of `capacity` in `ensure_capacity`
        // (the file was grown before it); the value is clamped to our mapping all the same.
        let claimed = self.header().identity.capacity.load(Ordering::Acquire);
        claimed.min(self.seg.mapping().data_len() as u64)
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

    /// The largest value this handle will grow the segment for.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// Copies the current value into `out` (replacing its contents); returns its version.
    pub fn read_into(&mut self, out: &mut Vec<u8>) -> Result<u64> {
        let mut waited_since: Option<Instant> = None;
        let mut spins = 0u32;
        loop {
            // Borrowed, not cloned: the hot path touches no reference count.
            let map = self.seg.mapping();
            // SAFETY: ValueHeader is all atomics and the mapping is a validated value segment.
            let h = unsafe { map.header::<ValueHeader>() };
            // SAFETY: `data()` is valid for `data_len()` bytes while `map` lives.
            let attempt =
                unsafe { seqlock::try_read(&h.seq, &h.len, map.data(), map.data_len(), out) };
            match attempt {
                ReadAttempt::Done { seq } => return Ok(seq / 2),
                ReadAttempt::Raced => spins = 0,
                ReadAttempt::TooLong { len, .. } => {
                    // SYNC POINT: Acquire pairs with the Release store of `capacity` in
                    // `ensure_capacity`: the file grew before that store, so `remap` finds it
                    // large enough.
                    let claimed = h.identity.capacity.load(Ordering::Acquire);
                    if len > claimed || claimed <= map.data_len() as u64 {
                        return Err(Error::corrupt(
                            self.path(),
                            format!("value length {len} exceeds the capacity of {claimed} bytes"),
                        ));
                    }
                    // Another process grew the file: map the larger size and retry.
                    self.seg.remap(claimed)?;
                }
                ReadAttempt::WriterActive { seq } => {
                    if spins < READ_SPINS {
                        spins += 1;
                        std::hint::spin_loop();
                        continue;
                    }
                    let since = *waited_since.get_or_insert_with(Instant::now);
                    self.check_writer_alive(self.header(), seq, since)?;
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
    }

    /// A writer has held `seq` odd for a while: fail if it died, or if it takes too long.
    fn check_writer_alive(&self, h: &ValueHeader, odd: u64, since: Instant) -> Result<()> {
        // SYNC POINT: the caller saw `odd` through an Acquire load of `seq`, which pairs with
        // the Release store of the odd value in `begin_write`: the writer's lock CAS, made
        // before it, is visible here. Acquire keeps the `seq` re-load below after this one.
        let holder = lock::owner(h.writer_lock.load(Ordering::Acquire));
        if holder == 0 || !self.seg.is_alive(holder) {
            // No live writer. If `seq` is still the same odd value, its writer died mid-copy;
            // if it moved, a new writer took over and we retry.
            // SYNC POINT: Acquire pairs with the Release store of the even `seq` in
            // `end_write`; only the value is compared, nothing is read through it. The
            // Acquire load of the lock word above keeps this load after that one.
            if h.seq.load(Ordering::Acquire) == odd {
                return Err(Error::WriterDied {
                    path: self.path().to_owned(),
                });
            }
            return Ok(());
        }
        if since.elapsed() > READ_WAIT {
            return Err(Error::Timeout {
                path: self.path().to_owned(),
                what: "a writer to finish its write",
                ms: READ_WAIT.as_millis() as u64,
            });
        }
        Ok(())
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

    /// Replaces the value; returns the new version. Grows the segment if needed (up to the
    /// maximum size). On any error the previous value is intact.
    pub fn write(&mut self, value: &[u8]) -> Result<u64> {
        // SAFETY: a slice is readable for its length.
        unsafe { self.write_from(value.as_ptr(), value.len()) }
    }

    /// [`write`](Self::write) from a raw source.
    ///
    /// # Safety
    /// `src` must be valid for reads of `len` bytes during the call. It may be shared
    /// memory (a view of this or another segment): it is copied with raw pointers only.
    pub unsafe fn write_from(&mut self, src: *const u8, len: usize) -> Result<u64> {
        self.check_size(len as u64)?;
        self.lock_writer()?;
        // SAFETY: forwarded from our caller.
        let result = unsafe { self.write_locked(src, len) };
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
    unsafe fn write_locked(&mut self, src: *const u8, len: usize) -> Result<u64> {
        self.ensure_capacity(len as u64)?;
        let map = self.seg.mapping();
        // SAFETY: ValueHeader is all atomics and the mapping is a validated value segment.
        let h = unsafe { map.header::<ValueHeader>() };
        let odd = seqlock::begin_write(&h.seq);
        // SAFETY: `ensure_capacity` made the mapping's data area at least `len` bytes; the
        // writer lock makes us the only writer; `src` is readable for `len` bytes (our
        // contract), and `ptr::copy` in `copy_in` tolerates a source that is itself a view
        // of this segment.
        unsafe { seqlock::copy_in(map.data(), src, len) };
        let seq = seqlock::end_write(&h.seq, &h.len, len as u64, odd);
        notify_waiters(h, &|token| self.seg.is_alive(token));
        Ok(seq / 2)
    }

    /// Makes the mapped data area hold `len` bytes: adopt a growth made by another process,
    /// or grow the file ourselves. Called with the writer lock held.
    fn ensure_capacity(&mut self, len: u64) -> Result<()> {
        // SYNC POINT: Acquire pairs with the Release store of `capacity` at the end of this
        // function by an earlier writer (likely another process); the writer lock we hold
        // (Release in `lock::release`, Acquire CAS in `lock_writer` or `lock::acquire`)
        // orders it as well.
        let claimed = self.header().identity.capacity.load(Ordering::Acquire);
        if claimed > self.seg.mapping().data_len() as u64 {
            self.seg.remap(claimed)?;
        }
        if len <= claimed.min(self.seg.mapping().data_len() as u64) {
            return Ok(());
        }
        let target = len
            .max(claimed.saturating_mul(2))
            .min(self.max_size.max(len));
        // Keep the file a whole number of pages.
        let total = (HEADER_SIZE as u64 + target).next_multiple_of(4096);
        let capacity = (total - HEADER_SIZE as u64).min(MAX_CAPACITY);
        self.seg.grow(capacity)?;
        // SYNC POINT: Release pairs with the Acquire load of `capacity` by readers in other
        // processes, who then find the file already grown (fallocate came first).
        self.header()
            .identity
            .capacity
            .store(capacity, Ordering::Release);
        Ok(())
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
    if open.capacity > MAX_CAPACITY || opts.max_size > MAX_CAPACITY {
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
    Ok(open)
}

fn version_of(h: &ValueHeader) -> u64 {
    // SYNC POINT: Acquire pairs with the Release store of the even `seq` in `end_write`.
    h.seq.load(Ordering::Acquire) / 2
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

    fn open(dir: &TempDir, name: &str) -> ValueSegment {
        ValueSegment::open(&dir.path().join(name), &ValueOptions::default()).unwrap()
    }

    #[test]
    fn a_new_segment_reads_empty_at_version_zero() {
        let dir = TempDir::new("val-new");
        let mut v = open(&dir, "s");
        let mut out = vec![9];
        assert_eq!(v.read_into(&mut out).unwrap(), 0);
        assert!(out.is_empty());
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
        open(&dir, "s").write(b"changed").unwrap();
        let woke = rx.recv_timeout(LONGEST_PARK * 10);
        assert_eq!(woke, Ok(Some(1)), "the waiter looks again by itself");
    }

    #[test]
    fn a_write_is_read_back_exactly_by_another_handle() {
        let dir = TempDir::new("val-rt");
        let mut a = open(&dir, "s");
        let mut b = open(&dir, "s");
        let value = "héllo\0wörld 你好 🎉".as_bytes();
        assert_eq!(a.write(value).unwrap(), 1);
        let mut out = vec![];
        assert_eq!(b.read_into(&mut out).unwrap(), 1);
        assert_eq!(out, value);
        assert_eq!(b.version(), 1);
    }

    #[test]
    fn growth_is_adopted_by_other_handles() {
        let dir = TempDir::new("val-grow");
        let mut a = open(&dir, "s");
        let mut b = open(&dir, "s");
        let big = vec![7u8; 100_000];
        a.write(&big).unwrap();
        assert!(a.capacity() >= 100_000);
        let mut out = vec![];
        b.read_into(&mut out).unwrap();
        assert_eq!(out, big);
        b.write(&vec![8u8; 150_000]).unwrap();
        a.read_into(&mut out).unwrap();
        assert_eq!(out.len(), 150_000);
    }

    #[test]
    fn current_capacity_adopts_a_growth_made_through_another_handle() {
        let dir = TempDir::new("val-cap");
        let mut a = open(&dir, "s");
        let mut b = open(&dir, "s");
        assert_eq!(a.current_capacity().unwrap(), 1024);
        b.write(&vec![1u8; 100_000]).unwrap();
        let grown = b.capacity();
        assert!(grown >= 100_000);
        assert_eq!(a.current_capacity().unwrap(), grown);
        assert!(a.segment().mapping().data_len() as u64 >= grown);
    }

    #[test]
    fn a_value_beyond_max_size_is_refused_and_the_old_value_kept() {
        let dir = TempDir::new("val-max");
        let opts = ValueOptions {
            max_size: 4096,
            ..ValueOptions::default()
        };
        let mut v = ValueSegment::open(&dir.path().join("s"), &opts).unwrap();
        v.write(b"old").unwrap();
        let err = v.write(&[1u8; 4097]).unwrap_err();
        assert_eq!(err.code(), "ERR_VALUE_TOO_LARGE");
        let mut out = vec![];
        v.read_into(&mut out).unwrap();
        assert_eq!(out, b"old");
    }

    #[test]
    fn a_garbage_length_is_corrupt_not_followed() {
        let dir = TempDir::new("val-len");
        let mut v = open(&dir, "s");
        // SYNC POINT: Relaxed: single-threaded test; the read below is in this thread.
        v.header().len.store(u64::MAX, Ordering::Relaxed);
        let err = v.read_into(&mut vec![]).unwrap_err();
        assert_eq!(err.code(), "ERR_CORRUPT");
    }

    #[test]
    fn a_writer_that_died_mid_write_is_reported_and_the_next_writer_recovers() {
        let dir = TempDir::new("val-dead");
        let mut reader = open(&dir, "s");
        {
            let writer = open(&dir, "s");
            let h = writer.header();
            // SYNC POINT: Release pairs with the Acquire load of the lock word in
            // `check_writer_alive`; single-threaded test, so program order already orders it.
            h.writer_lock
                .store(writer.segment().token(), Ordering::Release);
            seqlock::begin_write(&h.seq);
            // `writer` is dropped here holding the lock mid-write: its liveness byte goes.
        }
        let err = reader.read_into(&mut vec![]).unwrap_err();
        assert_eq!(err.code(), "ERR_WRITER_DIED");
        let mut next = open(&dir, "s");
        next.write(b"fresh").unwrap();
        let mut out = vec![];
        reader.read_into(&mut out).unwrap();
        assert_eq!(out, b"fresh");
    }

    #[test]
    fn read_only_handles_refuse_writes_and_locks_but_can_wait() {
        let dir = TempDir::new("val-ro");
        let path = dir.path().join("s");
        let mut writer = open(&dir, "s");
        let mut opts = ValueOptions::default();
        opts.open.read_only = true;
        let mut ro = ValueSegment::open(&path, &opts).unwrap();
        assert_eq!(ro.write(b"x").unwrap_err().code(), "ERR_READ_ONLY");
        assert_eq!(ro.lock_user(None).unwrap_err().code(), "ERR_READ_ONLY");
        // Waiting must not store into the read-only mapping (that would fault).
        let w = ro.watcher();
        let t = std::thread::spawn(move || {
            w.wait_for_change(0, Some(Duration::from_secs(10)), Duration::ZERO, None)
        });
        std::thread::sleep(Duration::from_millis(10));
        writer.write(b"seen").unwrap();
        assert_eq!(t.join().unwrap(), Some(1));
        let mut out = vec![];
        ro.read_into(&mut out).unwrap();
        assert_eq!(out, b"seen");
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
        a.write(b"x").unwrap();
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
}
