//! A channel segment: a bounded message queue between processes (many producers, one
//! consumer at a time) over the ring in `ring.rs`.
//!
//! Invariants kept here:
//! - Only the handle holding the consumer lock (`lock.rs`, taken over when its holder dies)
//!   moves `head`.
//! - A producer never blocks: a full ring is reported, and waiting for room is a separate,
//!   bounded call.
//! - Producers wake a parked consumer (and the consumer parked producers) only when the
//!   other side has announced that it waits, with a SeqCst fence between publishing and
//!   checking (an event count), so the fast path makes no syscall.
//! - A record whose producer died mid-write is skipped once the producer's liveness byte
//!   is gone; claimed space left unwritten is revoked after [`UNBLOCK_AFTER`].

use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod ring;

use ring::{Next, Ring, RingError};

use crate::error::{Error, Result};
use crate::segment::layout::{ChannelHeader, KIND_CHANNEL};
use crate::sync::futex;
use crate::sync::lock::{self, LockError};

use crate::segment::{Liveness, Mapping, OpenOptions, Segment};
use crate::sync::waiters::Announcements;

/// Default ring size.
pub const DEFAULT_CAPACITY: u64 = 1 << 20;
/// How long claimed space may stay unwritten before the consumer revokes it.
pub const UNBLOCK_AFTER: Duration = Duration::from_millis(100);
/// How often a parked waiter re-checks conditions no futex announces (a dead producer, an
/// unwritten claim, cancellation).
const POLL: Duration = Duration::from_millis(20);
/// Longest a notifier thread waits for JS to act on a notification before it looks again.
pub const MOVE_WAIT: Duration = Duration::from_millis(2);
/// How long a blocking receive busy-waits before it parks.
pub const WAIT_SPIN: Duration = Duration::from_micros(20);

fn wake_one(word: &AtomicU32) {
    futex::wake(word, 1);
}

/// A receive sink's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// The message was copied; take the next.
    Taken,
    /// No room for this message: leave it queued and stop.
    NoRoom,
}

/// An open channel segment.
pub struct ChannelSegment {
    seg: Segment,
    capacity: u64,
    consumer: bool,
    /// Where and since when the consumer has faced unwritten space at head.
    unwritten: Option<(u64, Instant)>,
    /// Records handed out by [`borrow`](Self::borrow) and not yet released, from
    /// `borrow_start` on: (record length, header word before it was marked taken). Private
    /// memory: releasing never trusts lengths read back from the ring.
    borrowed: Vec<(u64, u64)>,
    borrow_start: u64,
}

impl ChannelSegment {
    /// Opens or creates the channel at `path` (`capacity` is used when creating).
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self> {
        let name = path.display().to_string();
        let open = channel_options(&name, opts)?;
        Self::adopt(Segment::open(path, &open)?)
    }

    /// A new anonymous channel (memfd) to hand to child processes by descriptor.
    pub fn anonymous(opts: &OpenOptions) -> Result<Self> {
        let open = channel_options("memfd", opts)?;
        Self::adopt(Segment::anonymous(&open)?)
    }

    /// Opens the channel behind an inherited descriptor (reopened, see `Segment::from_fd`).
    pub fn from_fd(fd: std::os::fd::BorrowedFd<'_>, opts: &OpenOptions) -> Result<Self> {
        let open = channel_options("fd", opts)?;
        Self::adopt(Segment::from_fd(fd, &open)?)
    }

    fn adopt(seg: Segment) -> Result<Self> {
        // SAFETY: ChannelHeader is a repr(C) struct of atomics of HEADER_SIZE bytes and the
        // segment was validated as a channel at least that long.
        let h = unsafe { seg.mapping().header::<ChannelHeader>() };
        // SYNC POINT: Acquire pairs with no atomic store: a channel's capacity is written once,
        // by `initialise` in `segment.rs` (pwrite, before the magic), and never changes; the
        // mapping was made after `Segment::adopt` validated that header, which is what makes
        // it visible here. Relaxed would do.
        let capacity = h.identity.capacity.load(Ordering::Acquire);
        if !valid_capacity(capacity) || capacity > seg.mapping().data_len() as u64 {
            return Err(Error::corrupt(
                seg.path(),
                format!("channel capacity {capacity} is not a power of two within the file"),
            ));
        }
        Ok(ChannelSegment {
            seg,
            capacity,
            consumer: false,
            unwritten: None,
            borrowed: Vec::new(),
            borrow_start: 0,
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

    /// Ring size in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The largest message accepted.
    pub fn max_message(&self) -> u64 {
        ring::max_message(self.capacity)
    }

    fn header(&self) -> &ChannelHeader {
        // SAFETY: see `adopt`.
        unsafe { self.seg.mapping().header::<ChannelHeader>() }
    }

    fn ring(&self) -> Ring<'_> {
        ring_of(self.seg.mapping(), self.header(), self.capacity)
    }

    fn ring_error(&self, e: RingError) -> Error {
        match e {
            RingError::Corrupt(reason) => Error::corrupt(self.path(), reason),
        }
    }

    /// Bytes queued (claimed and not yet consumed).
    pub fn queued(&self) -> Result<u64> {
        self.ring().used().map_err(|e| self.ring_error(e))
    }

    /// Sends one message; `Ok(false)` if the ring has no room for it now.
    pub fn send(&self, msg: &[u8]) -> Result<bool> {
        // SAFETY: a slice is readable for its length.
        unsafe { self.send_from(msg.as_ptr(), msg.len()) }
    }

    /// Sends messages in order until one does not fit; returns how many were sent.
    /// Claims space for many records at once (one contended compare-and-swap per batch).
    pub fn send_many(&self, msgs: &[&[u8]]) -> Result<usize> {
        self.check_sendable(msgs.iter().map(|m| m.len() as u64))?;
        let ring = self.ring();
        let lens: Vec<u64> = msgs.iter().map(|m| m.len() as u64).collect();
        let mut claims = Vec::new();
        let mut sent = 0;
        while sent < msgs.len() {
            if let Err(e) = ring.claim_batch(&lens[sent..], self.seg.token(), &mut claims) {
                if sent == 0 {
                    return Err(self.ring_error(e));
                }
                // Some were sent: say how many (and wake the consumer for them); the
                // damage shows again on the next call.
                break;
            }
            if claims.is_empty() {
                break;
            }
            for (claim, msg) in claims.iter().zip(&msgs[sent..]) {
                // SAFETY: the claim reserved `len` bytes at `payload` for us alone; `msg` is
                // private memory, so the regions do not overlap.
                unsafe {
                    std::ptr::copy_nonoverlapping(msg.as_ptr(), ring.payload(claim), msg.len())
                };
                ring.commit(claim);
            }
            sent += claims.len();
        }
        if sent > 0 {
            self.announce_data();
        }
        Ok(sent)
    }

    /// Whether a message of `len` bytes may be sent through this handle.
    pub fn check_size(&self, len: u64) -> Result<()> {
        self.check_sendable(std::iter::once(len))
    }

    fn check_sendable(&self, lens: impl Iterator<Item = u64>) -> Result<()> {
        if self.seg.read_only() {
            return Err(Error::ReadOnly {
                path: self.path().to_owned(),
            });
        }
        let max = self.max_message();
        for len in lens {
            if len > max {
                return Err(Error::MessageTooLarge {
                    path: self.path().to_owned(),
                    len,
                    max,
                });
            }
        }
        Ok(())
    }

    /// Sends the `len` bytes at `src`; `Ok(false)` if the ring has no room for them now.
    ///
    /// # Safety
    /// `src` must be valid for reads of `len` bytes during the call. It may point into
    /// shared memory (another segment, or a message borrowed from this ring): the bytes
    /// are copied with raw pointers and never viewed as a slice.
    pub unsafe fn send_from(&self, src: *const u8, len: usize) -> Result<bool> {
        self.check_sendable(std::iter::once(len as u64))?;
        let ring = self.ring();
        let Some(claim) = ring
            .claim(len as u64, self.seg.token())
            .map_err(|e| self.ring_error(e))?
        else {
            return Ok(false);
        };
        // SAFETY: the claim reserved `len` bytes at `payload` for us alone, and `src` is
        // readable for `len` bytes (caller's contract). `copy` rather than
        // `copy_nonoverlapping`: `src` may be shared memory we cannot vouch for.
        unsafe { std::ptr::copy(src, ring.payload(&claim), len) };
        ring.commit(&claim);
        self.announce_data();
        Ok(true)
    }

    /// Wakes a parked consumer, if one announced itself.
    fn announce_data(&self) {
        let h = self.header();
        self.announce(&h.data_notify, data_announcements(h));
    }

    /// Wakes parked producers, if any announced themselves.
    fn announce_space(&self) {
        let h = self.header();
        self.announce(&h.space_notify, space_announcements(h));
    }

    /// Bumps `word` and wakes its waiters, with a syscall only if one announced itself;
    /// frees the announcements of waiters that died parked.
    fn announce(&self, word: &AtomicU32, waiters: Announcements<'_>) {
        // SYNC POINT: this SeqCst fence orders what we published (records, or freed space)
        // before the loads in `any`; it pairs with the SeqCst announcement in `wait`
        // (event count): either the waiter sees our change, or we see it and wake it.
        fence(Ordering::SeqCst);
        if waiters.any() {
            // SYNC POINT: SeqCst bump pairs with the Acquire load of `word` in
            // `ChannelWatcher::wait` and the kernel's compare in `futex::wait`: a waiter that
            // read the old value before announcing itself returns from its park at once.
            word.fetch_add(1, Ordering::SeqCst);
            waiters.wake(word, &|token| self.seg.is_alive(token));
        }
    }

    /// Becomes the consumer. With `wait`, blocks until the current consumer closes or dies
    /// (or `deadline` passes); without, fails with `ERR_CONSUMER_BUSY` if a live one exists.
    pub fn claim_consumer(&mut self, wait: bool, deadline: Option<Instant>) -> Result<()> {
        if self.consumer {
            return Ok(());
        }
        self.consumer_claimer().claim(wait, deadline, None)?;
        self.consumer = true;
        Ok(())
    }

    /// What a background thread needs to become this handle's consumer.
    pub fn consumer_claimer(&self) -> ConsumerClaimer {
        ConsumerClaimer {
            map: Arc::clone(self.seg.mapping()),
            liveness: self.seg.liveness(),
            path: self.path().to_owned(),
        }
    }

    /// Records that a background claim succeeded.
    pub fn set_consumer(&mut self) {
        self.consumer = true;
    }

    /// Whether this handle is the consumer.
    pub fn is_consumer(&self) -> bool {
        self.consumer
    }

    /// Whether a live handle (any process) is the consumer.
    pub fn consumer_held(&self) -> bool {
        // SYNC POINT: Acquire pairs with the Release that frees the word in `lock::release`
        // or `lock::release_if_held`; a token stored by `lock::acquire` (an Acquire-only CAS)
        // publishes nothing. Only the token is used, for a liveness check: Relaxed would do.
        let holder = lock::owner(self.header().consumer_lock.load(Ordering::Acquire));
        holder != 0 && self.seg.is_alive(holder)
    }

    /// Gives up the consumer role.
    pub fn release_consumer(&mut self) {
        if self.consumer {
            let borrowed = self.borrowed.len();
            self.release_borrowed(borrowed);
            self.consumer = false;
            lock::release(&self.header().consumer_lock, self.seg.token(), &wake_one);
        }
    }

    /// Hands up to `max_msgs` committed messages, in order, to `sink(ptr, len)`, which must
    /// copy the `len` bytes at `ptr` (shared memory: copy with raw pointers, never a slice)
    /// or return [`Accept::NoRoom`] to leave that message queued. Returns how many were
    /// taken. Claims the consumer role first if this handle does not hold it.
    pub fn receive(
        &mut self,
        max_msgs: usize,
        sink: &mut dyn FnMut(*const u8, usize) -> Accept,
    ) -> Result<usize> {
        self.take(max_msgs, sink, false)
    }

    /// Zero-copy receive: like [`receive`](Self::receive), but the messages handed to
    /// `sink` stay in the ring, where `sink` may keep pointing at them, until
    /// [`release_borrowed`](Self::release_borrowed). They are a run of adjacent records
    /// (it ends early rather than wrap around the ring's end), so one view spans them all.
    /// They count as taken at once: a consumer that dies before releasing them loses them
    /// rather than have its successor deliver them twice.
    pub fn borrow(
        &mut self,
        max_msgs: usize,
        sink: &mut dyn FnMut(*const u8, usize) -> Accept,
    ) -> Result<usize> {
        self.take(max_msgs, sink, true)
    }

    /// Frees the space of the first `delivered` messages of the last [`borrow`](Self::borrow)
    /// and puts the others back in the queue (their views must no longer be read). A
    /// receive or borrow releases whatever is still borrowed (all of it) first.
    pub fn release_borrowed(&mut self, delivered: usize) {
        if self.borrowed.is_empty() {
            return;
        }
        // The records are ours only while we hold the consumer lock (it could have been
        // taken over, e.g. by a process that rewrote the lock word): otherwise leave them.
        // SYNC POINT: Acquire pairs with the Release that frees the word in `lock::release`
        // or `lock::release_if_held`; otherwise it reads our own token (our CAS in
        // `lock::acquire`) or a takeover's (an Acquire-only CAS, which publishes nothing).
        // Only compared with our token: Relaxed would do.
        let holder = lock::owner(self.header().consumer_lock.load(Ordering::Acquire));
        if holder != self.seg.token() {
            self.borrowed.clear();
            return;
        }
        let mut borrowed = std::mem::take(&mut self.borrowed);
        let ring = self.ring();
        let mut pos = self.borrow_start;
        let mut head = pos;
        for (i, &(record, word)) in borrowed.iter().enumerate() {
            if i < delivered {
                ring.clear(pos, record);
                head = pos + record;
            } else {
                ring.restore(pos, word);
            }
            pos += record;
        }
        borrowed.clear();
        if head != self.borrow_start {
            ring.consume(head);
            self.announce_space();
        }
        self.borrowed = borrowed; // keeps its allocation for the next borrow
    }

    /// Messages borrowed and not yet released.
    pub fn borrowed(&self) -> usize {
        self.borrowed.len()
    }

    fn take(
        &mut self,
        max_msgs: usize,
        sink: &mut dyn FnMut(*const u8, usize) -> Accept,
        keep: bool,
    ) -> Result<usize> {
        if !self.consumer {
            self.claim_consumer(false, None)?;
        }
        let borrowed = self.borrowed.len();
        self.release_borrowed(borrowed);
        let mut kept = std::mem::take(&mut self.borrowed);
        let h = self.header();
        let ring = self.ring();
        let mut unwritten = self.unwritten;
        // SYNC POINT: Relaxed: only the consumer-lock holder (us) stores head, in
        // `Ring::consume`; this reads our own last store, or a previous holder's, which its
        // Release in `lock::release` ordered before our lock CAS in `lock::acquire` (or which
        // its detected death left final, for a takeover).
        let start = h.head.load(Ordering::Relaxed);
        let mut head = start;
        let mut tail = ring.tail();
        let mut count = 0;
        let mut result = Ok(());
        // Where the borrowed run starts: head stays there until it is released.
        let mut run_start = start;
        while count < max_msgs {
            if head == tail {
                tail = ring.tail();
            }
            let next = match ring.peek_within(head, tail) {
                Ok(next) => next,
                Err(e) => {
                    result = Err(self.ring_error(e));
                    break;
                }
            };
            // A borrowed run is adjacent messages only, and never wraps.
            if keep && count > 0 && (!matches!(next, Next::Message { .. }) || ring.at_start(head)) {
                break;
            }
            match next {
                Next::Message {
                    payload,
                    len,
                    record,
                } => {
                    if sink(ring.payload_at(payload, len), len as usize) == Accept::NoRoom {
                        break;
                    }
                    if keep {
                        if count == 0 {
                            run_start = head;
                        }
                        kept.push((record, ring.mark_taken(head, record)));
                    } else {
                        ring.clear(head, record);
                    }
                    head += record;
                    count += 1;
                }
                Next::Skip { record } => {
                    ring.clear(head, record);
                    head += record;
                }
                Next::Gap { record } => head = ring.skip_gap(head, record),
                Next::InProgress { token, record } => {
                    if self.seg.is_alive(token) {
                        break;
                    }
                    // Its producer died mid-write: the record will never be committed.
                    ring.clear(head, record);
                    head += record;
                }
                Next::Unwritten => {
                    let since = match unwritten {
                        Some((at, since)) if at == head => since,
                        _ => {
                            unwritten = Some((head, Instant::now()));
                            break;
                        }
                    };
                    if since.elapsed() < UNBLOCK_AFTER {
                        break;
                    }
                    match ring.unblock(head) {
                        // A producer wrote its header meanwhile (or the tail moved back):
                        // look again on the next call rather than spin here.
                        Ok(0) => break,
                        Ok(_) => unwritten = None,
                        Err(e) => {
                            result = Err(self.ring_error(e));
                            break;
                        }
                    }
                }
                Next::Empty => break,
            }
        }
        // Free what was consumed; a borrowed run keeps its space until it is released.
        let consumed = if keep && count > 0 { run_start } else { head };
        if consumed != start {
            ring.consume(consumed);
            self.announce_space();
        }
        self.unwritten = unwritten;
        self.borrow_start = run_start;
        self.borrowed = kept;
        // Messages taken before a problem are delivered (they are already off the queue,
        // or lent); the problem is still there for the next call to report.
        if count > 0 {
            return Ok(count);
        }
        result.map(|()| count)
    }

    /// A handle for waiting on this channel from other threads.
    pub fn watcher(&self) -> ChannelWatcher {
        ChannelWatcher {
            map: Arc::clone(self.seg.mapping()),
            liveness: self.seg.liveness(),
            capacity: self.capacity,
        }
    }
}

fn data_announcements(h: &ChannelHeader) -> Announcements<'_> {
    Announcements::new(&h.data_slots, &h.data_waiters)
}

fn space_announcements(h: &ChannelHeader) -> Announcements<'_> {
    Announcements::new(&h.space_slots, &h.space_waiters)
}

fn valid_capacity(capacity: u64) -> bool {
    capacity.is_power_of_two() && (ring::MIN_CAPACITY..=ring::MAX_CAPACITY).contains(&capacity)
}

fn channel_options(name: &str, opts: &OpenOptions) -> Result<OpenOptions> {
    let mut open = opts.clone();
    open.kind = KIND_CHANNEL;
    if !valid_capacity(open.capacity) {
        return Err(Error::invalid(
            name,
            format!(
                "capacity {} must be a power of two from {} to {}",
                open.capacity,
                ring::MIN_CAPACITY,
                ring::MAX_CAPACITY
            ),
        ));
    }
    Ok(open)
}

fn ring_of<'a>(map: &'a Mapping, h: &'a ChannelHeader, capacity: u64) -> Ring<'a> {
    // SAFETY: the data area starts 256 bytes into a page-aligned mapping (8-aligned) and
    // holds at least `capacity` bytes (checked in `adopt`); `capacity` is a valid power of
    // two; the mapping outlives the borrow.
    unsafe { Ring::new(&h.head, &h.tail, map.data(), capacity) }
}

/// Takes a channel's consumer role from any thread.
pub struct ConsumerClaimer {
    map: Arc<Mapping>,
    liveness: Liveness,
    path: String,
}

impl ConsumerClaimer {
    /// Takes the consumer lock (see [`ChannelSegment::claim_consumer`]); `cancel` ends a
    /// wait early.
    pub fn claim(
        &self,
        wait: bool,
        deadline: Option<Instant>,
        cancel: Option<&AtomicBool>,
    ) -> Result<()> {
        let h = self.header();
        let deadline = if wait { deadline } else { Some(Instant::now()) };
        let word = &h.consumer_lock;
        let me = self.liveness.token();
        let is_alive = |t| self.liveness.is_alive(t);
        let park = |w: &AtomicU32, v, d: Duration| {
            futex::wait(w, v, Some(d.min(POLL)));
        };
        // A role taken after the handle closed is handed on at once.
        let cancel = cancel.map(|flag| lock::Cancel {
            flag,
            poll: POLL,
            wake_one: &wake_one,
        });
        let outcome =
            lock::acquire_cancellable(word, me, deadline, cancel.as_ref(), &is_alive, &park);
        match outcome {
            Ok(_) | Err(LockError::AlreadyHeld) => Ok(()),
            Err(LockError::Cancelled) => Err(Error::Closed {
                path: self.path.clone(),
            }),
            Err(LockError::TimedOut) if !wait => Err(Error::ConsumerBusy {
                path: self.path.clone(),
            }),
            Err(LockError::TimedOut) => Err(Error::Timeout {
                path: self.path.clone(),
                what: "the consumer role",
                ms: 0,
            }),
        }
    }

    /// Gives the consumer role back if this handle holds it (for a background claim whose
    /// handle closed before the role could be handed over).
    pub fn release(&self) {
        lock::release_if_held(
            &self.header().consumer_lock,
            self.liveness.token(),
            &wake_one,
        );
    }

    fn header(&self) -> &ChannelHeader {
        // SAFETY: the mapping is a validated channel segment, kept alive by `self`.
        unsafe { self.map.header::<ChannelHeader>() }
    }
}

/// Waits on a channel from any thread. Keeps the mapping alive.
#[derive(Clone)]
pub struct ChannelWatcher {
    map: Arc<Mapping>,
    liveness: Liveness,
    capacity: u64,
}

/// What a consumer-side wait found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataState {
    /// A committed record (or padding, or a dead producer's record to skip) at head.
    Ready,
    /// Nothing at head, or a record still being written.
    NotYet,
    /// Claimed space at `head` whose header is not written yet: the consumer revokes it
    /// once it has been there for [`UNBLOCK_AFTER`].
    Unwritten { head: u64 },
}

impl ChannelWatcher {
    fn header(&self) -> &ChannelHeader {
        // SAFETY: built from a validated channel segment's mapping, which `self` keeps alive.
        unsafe { self.map.header::<ChannelHeader>() }
    }

    /// Whether the consumer would make progress at head now.
    pub fn data_state(&self) -> DataState {
        let h = self.header();
        let ring = ring_of(&self.map, h, self.capacity);
        // SYNC POINT: Acquire pairs with the consumer's Release store of `head` in
        // `Ring::consume`: the bytes it freed before moving head read as freed here.
        let head = h.head.load(Ordering::Acquire);
        match ring.peek(head) {
            Ok(Next::Empty) => DataState::NotYet,
            Ok(Next::Unwritten) => DataState::Unwritten { head },
            Ok(Next::InProgress { token, .. }) if self.liveness.is_alive(token) => {
                DataState::NotYet
            }
            // Messages, padding, dead producers' records and corruption all need the
            // consumer to act (corruption so that it reports the error).
            _ => DataState::Ready,
        }
    }

    /// Blocks until there is something for the consumer, `deadline` passes or `cancel` is
    /// set. Returns whether there is.
    pub fn wait_data(
        &self,
        deadline: Option<Instant>,
        spin: Duration,
        cancel: Option<&AtomicBool>,
    ) -> bool {
        let h = self.header();
        // Where and since when this wait has seen unwritten space at head: a claim whose
        // producer vanished before writing its header wakes nobody, so it becomes something
        // for the consumer to do (revoke it) once it has stayed for UNBLOCK_AFTER.
        let stuck: Cell<Option<(u64, Instant)>> = Cell::new(None);
        self.wait(
            &h.data_notify,
            data_announcements(h),
            deadline,
            spin,
            cancel,
            &|| match self.data_state() {
                DataState::Ready => true,
                DataState::NotYet => false,
                DataState::Unwritten { head } => match stuck.get() {
                    Some((at, since)) if at == head => since.elapsed() >= UNBLOCK_AFTER,
                    _ => {
                        stuck.set(Some((head, Instant::now())));
                        false
                    }
                },
            },
        )
    }

    /// Blocks until a message of `bytes` bytes would fit, `deadline` passes or `cancel` is
    /// set. `bytes` is read afresh every time the wait looks (another thread may change
    /// it: the sender it waits for may give up, and the next one need less room).
    pub fn wait_space(
        &self,
        bytes: &AtomicU64,
        deadline: Option<Instant>,
        cancel: Option<&AtomicBool>,
    ) -> bool {
        let h = self.header();
        self.wait(
            &h.space_notify,
            space_announcements(h),
            deadline,
            Duration::ZERO,
            cancel,
            &|| {
                // SYNC POINT: Relaxed: a size hint; no other memory is read through it.
                let bytes = bytes.load(Ordering::Relaxed);
                let needed = ring::record_len(bytes) * 2; // room even if the claim must pad the wrap
                let ring = ring_of(&self.map, h, self.capacity);
                match ring.used() {
                    Ok(used) => self.capacity - used >= needed.min(self.capacity),
                    Err(_) => true, // let the sender report the corruption
                }
            },
        )
    }

    fn wait(
        &self,
        word: &AtomicU32,
        waiters: Announcements<'_>,
        deadline: Option<Instant>,
        spin: Duration,
        cancel: Option<&AtomicBool>,
        ready: &dyn Fn() -> bool,
    ) -> bool {
        let token = self.liveness.token();
        let spin = deadline.map_or(spin, |d| {
            spin.min(d.saturating_duration_since(Instant::now()))
        });
        if futex::spin_until(spin, ready) {
            return true;
        }
        loop {
            // SYNC POINT: Acquire pairs with the SeqCst bump of the word in `announce_*`.
            let observed = word.load(Ordering::Acquire);
            // SYNC POINT: the SeqCst announcement, and the SeqCst fence after it, pair with
            // the SeqCst fence in `announce_*` (Dekker): either the announcer sees this
            // waiter, or the `ready()` loads below (plain Acquire loads, which the fence keeps
            // after the announcement) see what it published.
            let at = waiters.enter(token);
            // SYNC POINT: SeqCst fence, the waiter's half of the Dekker pair described above.
            fence(Ordering::SeqCst);
            let now_ready = ready();
            let mut nap = POLL;
            let mut expired = false;
            if let Some(deadline) = deadline {
                let now = Instant::now();
                expired = now >= deadline;
                nap = nap.min(deadline.saturating_duration_since(now));
            }
            // SYNC POINT: Acquire pairs with the Release store of the flag in
            // `ChannelEntry::stop_notifier` (napi/mod.rs); nothing else is published through it.
            let stop = cancel.is_some_and(|c| c.load(Ordering::Acquire));
            if !now_ready && !expired && !stop {
                futex::wait(word, observed, Some(nap));
            }
            waiters.leave(at, token);
            if now_ready || ready() {
                return true;
            }
            if expired || stop {
                return false;
            }
        }
    }

    /// The position that moves when the JS side acts on a notification: head (the consumer
    /// took data) for data waits, tail (a producer sent) for space waits.
    pub fn position(&self, space: bool) -> u64 {
        let h = self.header();
        if space {
            // SYNC POINT: Acquire pairs with producers' AcqRel claims of tail in `Ring::claim`
            // and `Ring::claim_batch`; only compared for movement, nothing is read through it.
            h.tail.load(Ordering::Acquire)
        } else {
            // SYNC POINT: Acquire pairs with the Release store of head in `Ring::consume`; only
            // compared for movement, nothing is read through it.
            h.head.load(Ordering::Acquire)
        }
    }

    /// Waits (briefly spinning, then sleeping with backoff) until
    /// [`position`](Self::position) moves from `from`, `cancel` is set, or at most
    /// [`MOVE_WAIT`] passes. The bound matters: JS may have acted before `from` was read
    /// (its synchronous path took the message), and then nothing moves until the notifier
    /// looks again.
    pub fn wait_moved(&self, space: bool, from: u64, cancel: &AtomicBool) {
        // SYNC POINT: the flag's Acquire load pairs with the Release store in
        // `ChannelEntry::stop_notifier` (napi/mod.rs); `position` documents its own loads.
        let moved = || self.position(space) != from || cancel.load(Ordering::Acquire);
        if futex::spin_until(Duration::from_micros(10), &moved) {
            return;
        }
        let started = Instant::now();
        let mut nap = Duration::from_micros(20);
        while !moved() && started.elapsed() < MOVE_WAIT {
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_micros(500));
        }
    }

    /// Wakes every thread parked on this channel (used to cancel a wait).
    pub fn wake_all(&self) {
        let h = self.header();
        futex::wake_all(&h.data_notify);
        futex::wake_all(&h.space_notify);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    fn opts(capacity: u64) -> OpenOptions {
        OpenOptions {
            capacity,
            ..OpenOptions::default()
        }
    }

    fn recv_all(c: &mut ChannelSegment) -> Vec<Vec<u8>> {
        let mut got = vec![];
        c.receive(usize::MAX, &mut |ptr, len| {
            let mut m = vec![0u8; len];
            // SAFETY: `receive` passes a pointer valid for `len` bytes.
            unsafe { std::ptr::copy_nonoverlapping(ptr, m.as_mut_ptr(), len) };
            got.push(m);
            Accept::Taken
        })
        .unwrap();
        got
    }

    #[test]
    fn messages_cross_handles_in_order() {
        let dir = TempDir::new("chan-basic");
        let path = dir.path().join("c");
        let producer = ChannelSegment::open(&path, &opts(4096)).unwrap();
        let mut consumer = ChannelSegment::open(&path, &opts(4096)).unwrap();
        assert!(producer.send(b"one").unwrap());
        assert_eq!(producer.send_many(&[&b"two"[..], b"", b"four"]).unwrap(), 3);
        assert_eq!(
            recv_all(&mut consumer),
            vec![b"one".to_vec(), b"two".to_vec(), vec![], b"four".to_vec()]
        );
        assert!(recv_all(&mut consumer).is_empty());
    }

    #[test]
    fn a_second_consumer_is_busy_until_the_first_is_gone() {
        let dir = TempDir::new("chan-consumer");
        let path = dir.path().join("c");
        let mut a = ChannelSegment::open(&path, &opts(4096)).unwrap();
        let mut b = ChannelSegment::open(&path, &opts(4096)).unwrap();
        a.claim_consumer(false, None).unwrap();
        assert_eq!(
            b.claim_consumer(false, None).unwrap_err().code(),
            "ERR_CONSUMER_BUSY"
        );
        drop(a);
        b.claim_consumer(false, None).unwrap();
    }

    #[test]
    fn oversize_messages_and_full_rings() {
        let dir = TempDir::new("chan-size");
        let path = dir.path().join("c");
        let c = ChannelSegment::open(&path, &opts(1024)).unwrap();
        assert_eq!(c.max_message(), 128);
        assert_eq!(
            c.send(&[0u8; 129]).unwrap_err().code(),
            "ERR_MESSAGE_TOO_LARGE"
        );
        let mut n = 0;
        while c.send(&[1u8; 120]).unwrap() {
            n += 1;
        }
        assert_eq!(n, 8);
    }

    #[test]
    fn a_dead_producers_record_is_skipped() {
        let dir = TempDir::new("chan-dead");
        let path = dir.path().join("c");
        let mut consumer = ChannelSegment::open(&path, &opts(4096)).unwrap();
        {
            let dying = ChannelSegment::open(&path, &opts(4096)).unwrap();
            dying.ring().claim(10, dying.seg.token()).unwrap().unwrap(); // never committed
        }
        let producer = ChannelSegment::open(&path, &opts(4096)).unwrap();
        producer.send(b"alive").unwrap();
        assert_eq!(recv_all(&mut consumer), vec![b"alive".to_vec()]);
    }

    /// A consumer (open in `dir`) facing a claim whose producer vanished before writing its
    /// header, with a message queued behind it that it cannot take yet.
    fn behind_a_vanished_claim(dir: &TempDir) -> ChannelSegment {
        let mut consumer = ChannelSegment::open(&dir.path().join("c"), &opts(4096)).unwrap();
        // SYNC POINT: Release pairs with the Acquire loads of tail in `Ring::tail` and
        // `Ring::positions`; single-threaded test, so program order already orders them.
        consumer.header().tail.store(32, Ordering::Release);
        consumer.send(b"behind").unwrap();
        assert!(recv_all(&mut consumer).is_empty());
        consumer
    }

    #[test]
    fn unwritten_space_is_revoked_after_the_bound() {
        let dir = TempDir::new("chan-unwritten");
        let mut consumer = behind_a_vanished_claim(&dir);
        std::thread::sleep(UNBLOCK_AFTER + Duration::from_millis(10));
        assert_eq!(recv_all(&mut consumer), vec![b"behind".to_vec()]);
    }

    #[test]
    fn a_blocking_wait_is_not_stalled_by_a_vanished_claim() {
        let dir = TempDir::new("chan-unwritten-wait");
        let mut consumer = behind_a_vanished_claim(&dir);
        // Nothing will ever wake this wait: it must end by itself once the claim is stale.
        let deadline = Instant::now() + Duration::from_secs(20);
        assert!(consumer
            .watcher()
            .wait_data(Some(deadline), Duration::ZERO, None));
        assert!(Instant::now() < deadline);
        assert_eq!(recv_all(&mut consumer), vec![b"behind".to_vec()]);
    }

    #[test]
    fn a_waiting_consumer_is_woken_by_a_send() {
        let dir = TempDir::new("chan-wake");
        let path = dir.path().join("c");
        let consumer = ChannelSegment::open(&path, &opts(4096)).unwrap();
        let w = consumer.watcher();
        let t = std::thread::spawn(move || {
            w.wait_data(
                Some(Instant::now() + Duration::from_secs(10)),
                Duration::ZERO,
                None,
            )
        });
        std::thread::sleep(Duration::from_millis(20));
        ChannelSegment::open(&path, &opts(4096))
            .unwrap()
            .send(b"x")
            .unwrap();
        assert!(t.join().unwrap());
    }

    /// Borrows up to `max` messages, copying each out (as a JS view would read it).
    fn borrow_all(c: &mut ChannelSegment, max: usize) -> Vec<(usize, Vec<u8>)> {
        let mut got = vec![];
        c.borrow(max, &mut |ptr, len| {
            let mut m = vec![0u8; len];
            // SAFETY: `borrow` passes a pointer valid for `len` bytes.
            unsafe { std::ptr::copy_nonoverlapping(ptr, m.as_mut_ptr(), len) };
            got.push((ptr as usize, m));
            Accept::Taken
        })
        .unwrap();
        got
    }

    #[test]
    fn borrowed_messages_stay_in_place_until_released() {
        let dir = TempDir::new("chan-borrow");
        let path = dir.path().join("c");
        let producer = ChannelSegment::open(&path, &opts(4096)).unwrap();
        let mut consumer = ChannelSegment::open(&path, &opts(4096)).unwrap();
        assert_eq!(
            producer
                .send_many(&[&b"one"[..], b"two", b"three"])
                .unwrap(),
            3
        );
        let queued = producer.queued().unwrap();
        let got = borrow_all(&mut consumer, 8);
        let msgs: Vec<_> = got.iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(
            msgs,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        // Adjacent records: one view can span them.
        assert_eq!(got[1].0 - got[0].0, 16);
        assert_eq!(got[2].0 - got[1].0, 16);
        assert_eq!(consumer.borrowed(), 3);
        // Still occupying the ring, and the bytes are untouched.
        assert_eq!(producer.queued().unwrap(), queued);
        // SAFETY: the record is borrowed, so nothing writes it until the release.
        let still = unsafe { std::slice::from_raw_parts(got[2].0 as *const u8, 5) }.to_vec();
        assert_eq!(still, b"three");
        consumer.release_borrowed(3);
        assert_eq!(consumer.borrowed(), 0);
        assert_eq!(producer.queued().unwrap(), 0);
        assert!(recv_all(&mut consumer).is_empty());
    }

    #[test]
    fn a_partial_release_requeues_the_rest_in_order() {
        let dir = TempDir::new("chan-borrow-partial");
        let path = dir.path().join("c");
        let mut c = ChannelSegment::open(&path, &opts(4096)).unwrap();
        assert_eq!(c.send_many(&[&b"a"[..], b"b", b"c", b"d"]).unwrap(), 4);
        assert_eq!(borrow_all(&mut c, 3).len(), 3);
        c.release_borrowed(1); // only "a" was delivered
        assert_eq!(
            recv_all(&mut c),
            vec![b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
        // A receive releases an unreleased borrow in full first.
        c.send_many(&[&b"e"[..], b"f"]).unwrap();
        assert_eq!(borrow_all(&mut c, 1).len(), 1);
        assert_eq!(recv_all(&mut c), vec![b"f".to_vec()]);
        assert_eq!(c.queued().unwrap(), 0);
    }

    #[test]
    fn a_borrowed_run_never_wraps_around_the_end() {
        let dir = TempDir::new("chan-borrow-wrap");
        let path = dir.path().join("c");
        let mut c = ChannelSegment::open(&path, &opts(1024)).unwrap();
        // Move head and tail to 512, then queue 8 records of 128 bytes: 4 before the end,
        // 4 after it.
        c.send_many(&[&[0u8; 120][..]; 4]).unwrap();
        assert_eq!(recv_all(&mut c).len(), 4);
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 120]).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
        assert_eq!(c.send_many(&refs).unwrap(), 8);
        let first = borrow_all(&mut c, 8);
        assert_eq!(first.len(), 4);
        assert_eq!(first[3].1, msgs[3]);
        let second = borrow_all(&mut c, 8); // releases the first run
        assert_eq!(second.len(), 4);
        assert_eq!(second[0].1, msgs[4]);
        assert!(
            second[0].0 < first[0].0,
            "the second run starts at the buffer's start"
        );
        c.release_borrowed(4);
        assert_eq!(c.queued().unwrap(), 0);
    }

    #[test]
    fn a_successor_skips_records_its_predecessor_borrowed() {
        let dir = TempDir::new("chan-borrow-death");
        let path = dir.path().join("c");
        let mut c = ChannelSegment::open(&path, &opts(4096)).unwrap();
        c.send_many(&[&b"taken"[..], b"next"]).unwrap();
        assert_eq!(borrow_all(&mut c, 1).len(), 1);
        // What a successor finds if this consumer dies now: padding, then the next message.
        let ring = c.ring();
        // SYNC POINT: Relaxed: single-threaded test; head was stored by this thread.
        let head = c.header().head.load(Ordering::Relaxed);
        assert!(matches!(ring.peek(head), Ok(Next::Skip { record: 16 })));
        assert!(matches!(
            ring.peek(head + 16),
            Ok(Next::Message { len: 4, .. })
        ));
    }

    #[test]
    fn messages_before_a_corrupt_record_are_delivered_then_it_is_reported() {
        let dir = TempDir::new("chan-partial");
        let path = dir.path().join("c");
        let mut c = ChannelSegment::open(&path, &opts(4096)).unwrap();
        c.send_many(&[&b"ok"[..], b"bad"]).unwrap();
        // The second record (at 16) claims a length far beyond the ring.
        let word = 1_000_000u64 | (u64::from(ring::MSG) << 32);
        // SAFETY: the data area holds the ring; offset 16 is an aligned record header.
        unsafe { (c.seg.mapping().data().add(16) as *mut u64).write_volatile(word) };
        assert_eq!(borrow_all(&mut c, 8).len(), 1, "the good message is lent");
        c.release_borrowed(1);
        assert_eq!(
            c.borrow(8, &mut |_, _| Accept::Taken).unwrap_err().code(),
            "ERR_CORRUPT"
        );
        assert_eq!(c.borrowed(), 0);
    }
}
