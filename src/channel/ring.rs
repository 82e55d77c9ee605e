//! A many-producer, one-consumer ring of variable-length records in shared memory.
//!
//! Follows Agrona's `ManyToOneRingBuffer` (Real Logic; `org.agrona.concurrent.ringbuffer`):
//! producers claim space by compare-and-swap on a shared `tail` position, write the record,
//! then publish it by storing its header; the single consumer reads committed records from
//! `head`, zeroes the records it consumed and advances `head`. A record that would straddle
//! the end of the buffer is preceded by a padding record. Free space is zero, except for
//! the revoked words of gaps (below), which the consumer leaves as they are and a producer
//! of a later lap overwrites or takes over.
//!
//! Two changes make it safe against producers that die, which Agrona leaves to a timeout:
//! - A claimed record's header is written by compare-and-swap from zero, carrying the
//!   producer's liveness token while the record is being written. A consumer that finds a
//!   record in progress skips it only once its producer is dead (`Next::InProgress`).
//! - A record whose header is still zero (its producer is between claiming and writing the
//!   header, or died there) is "unblocked" by the consumer after a bounded time: it revokes
//!   every zero word of the gap by compare-and-swap and turns the gap into padding. A live
//!   producer whose header CAS then fails knows its claim was revoked and claims again, so
//!   nothing is lost or overwritten. Revoked words carry their lap, and a producer that
//!   finds a leftover of another lap at its header checks `head` to tell whether the
//!   leftover is stale (it takes it over) or it is (its claim was revoked long ago: it
//!   leaves the word alone and claims again).
//!
//! Known limit: a producer suspended between its tail CAS and its header CAS for longer than
//! `UNBLOCK_AFTER` *and* a whole lap of traffic can, in the instant between its header CAS
//! and its `head` check, hold a word that is by then a zero payload word of another
//! producer's record (see `claim`); nothing in a shared-memory protocol without per-claim
//! fencing can rule that out.
//!
//! Record layout (8-byte aligned; positions only grow, index = position % capacity):
//!
//! ```text
//! header: u64 = len (low 32 bits) | state (high 32 bits)
//!   state = producer token (1..2^31)  record being written, `len` payload bytes
//!         = MSG                        committed message of `len` bytes
//!         = PAD                        padding: skip `len` bytes after the header
//!         = GAP                        space the consumer revoked: skip `len` bytes
//!         = REVOKED                    a revoked word; `len` holds its ring lap
//!   word 0                             free space
//! payload: len bytes, then padding to the next multiple of 8 (never read)
//! ```
//!
//! Everything read from the ring is untrusted: positions, lengths and states are checked
//! before use and any inconsistency is [`RingError::Corrupt`], never an access outside the
//! buffer.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of a record header.
pub const HEADER: u64 = 8;
/// Records start at multiples of this.
pub const ALIGN: u64 = 8;
/// State of a committed message.
pub const MSG: u32 = 0x8000_0001;
/// State of a padding record.
pub const PAD: u32 = 0x8000_0002;
/// State of a word the consumer revoked; the low 32 bits hold the ring lap of its position,
/// so a producer can tell its own revoked claim from a leftover of an earlier lap.
pub const REVOKED: u32 = 0x8000_0003;
/// State of the header of a gap the consumer revoked (`len` bytes follow, all REVOKED).
pub const GAP: u32 = 0x8000_0004;
/// Positions beyond this are corruption (so position arithmetic can never overflow).
pub const MAX_POSITION: u64 = 1 << 62;

/// Smallest and largest ring capacities accepted.
pub const MIN_CAPACITY: u64 = 1024;
pub const MAX_CAPACITY: u64 = 1 << 30;

/// The largest payload a ring of `capacity` bytes accepts (an eighth of it, as Agrona).
pub fn max_message(capacity: u64) -> u64 {
    capacity / 8
}

/// Bytes a record of `len` payload bytes takes.
pub fn record_len(len: u64) -> u64 {
    (HEADER + len).next_multiple_of(ALIGN)
}

fn word_of(len: u64, state: u32) -> u64 {
    len | (u64::from(state) << 32)
}

fn split(word: u64) -> (u64, u32) {
    (word & 0xFFFF_FFFF, (word >> 32) as u32)
}

/// Why a ring operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingError {
    /// A position, length or record state that cannot be right.
    Corrupt(String),
}

/// A space reserved by [`Ring::claim`]: write `len` bytes at [`Ring::payload`], then
/// [`Ring::commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub pos: u64,
    pub len: u64,
    token: u32,
}

/// What the consumer finds at `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing to read.
    Empty,
    /// A committed message: `len` bytes at index `payload`; the record takes `record` bytes.
    Message { payload: u64, len: u64, record: u64 },
    /// Padding of `record` bytes to skip.
    Skip { record: u64 },
    /// A gap of `record` bytes the consumer revoked: skip it with [`Ring::skip_gap`].
    Gap { record: u64 },
    /// A record still being written by the producer with `token` (`record` bytes).
    InProgress { token: u32, record: u64 },
    /// Claimed space whose header is not written yet.
    Unwritten,
}

/// A ring over `capacity` bytes at `data`, with its positions elsewhere in shared memory.
pub struct Ring<'a> {
    head: &'a AtomicU64,
    tail: &'a AtomicU64,
    data: *mut u8,
    capacity: u64,
}

impl<'a> Ring<'a> {
    /// # Safety
    /// `data` must be 8-aligned and valid for reads and writes of `capacity` bytes for `'a`,
    /// and used only through rings (all bytes are accessed as `AtomicU64` words or by raw
    /// copies into claimed space). `capacity` must be a power of two within
    /// [`MIN_CAPACITY`]..=[`MAX_CAPACITY`].
    pub unsafe fn new(
        head: &'a AtomicU64,
        tail: &'a AtomicU64,
        data: *mut u8,
        capacity: u64,
    ) -> Self {
        debug_assert!(
            capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
        );
        debug_assert!(data as usize % 8 == 0);
        Ring {
            head,
            tail,
            data,
            capacity,
        }
    }

    /// The ring size in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    fn word(&self, index: u64) -> &AtomicU64 {
        assert!(
            index % ALIGN == 0 && index + 8 <= self.capacity,
            "ring word out of range"
        );
        // SAFETY: the index is 8-aligned and inside the buffer (asserted); `data` is 8-aligned
        // and valid for `capacity` bytes for 'a (constructor contract); the memory is only
        // accessed atomically or by raw copies into space nobody else uses.
        unsafe { AtomicU64::from_ptr(self.data.add(index as usize).cast()) }
    }

    fn index(&self, pos: u64) -> u64 {
        pos & (self.capacity - 1)
    }

    /// The ring lap of a position (truncated: only compared for equality).
    fn lap(&self, pos: u64) -> u64 {
        (pos / self.capacity) & 0xFFFF_FFFF
    }

    /// The word a revoked position holds.
    fn revoked_word(&self, pos: u64) -> u64 {
        word_of(self.lap(pos), REVOKED)
    }

    /// Makes the header word at `pos` ours (`pos` was claimed by us). Fails if the consumer
    /// revoked this claim: a word revoked in this lap, the header of a gap it is
    /// unblocking, or — if we were suspended for more than a lap — anything at all once
    /// `head` has passed `pos` (the word then belongs to a later lap: a committed message,
    /// another producer's header or payload, which must not be touched). Anything else
    /// found there is a leftover of an earlier lap — a revoked word of a gap, or the header
    /// of a producer suspended across a lap, which then backs off — and is taken over.
    fn take_header(&self, pos: u64, mine: u64) -> bool {
        let header = self.word(self.index(pos));
        let mut expected = 0;
        loop {
            // SYNC POINT: races with the consumer's revoking CAS in `unblock` (exactly one
            // side wins each word); Acquire on failure pairs with the Release of whoever
            // wrote what we found (a header CAS, a commit, a revoking CAS).
            match header.compare_exchange(expected, mine, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(found) => {
                    let (lap, state) = split(found);
                    let revoked_here = (state == REVOKED && lap == self.lap(pos)) || state == GAP;
                    // SYNC POINT: Acquire pairs with the Release store of head in `consume`.
                    // A word of a later lap was written by a producer that claimed after
                    // reading head past `pos` (its Acquire load in `positions`), and our
                    // failed CAS read that write: head past `pos` is visible here too.
                    if revoked_here || self.head.load(Ordering::Acquire) > pos {
                        return false;
                    }
                    expected = found;
                }
            }
        }
    }

    fn corrupt<T>(&self, what: String) -> Result<T, RingError> {
        Err(RingError::Corrupt(what))
    }

    /// Reads and checks head and tail as a producer sees them.
    ///
    /// The two are read one after the other while both move, so a healthy ring can show
    /// `tail - head > capacity` (head read first, then both advanced): head is re-read
    /// then. Only what cannot happen in any interleaving is corruption.
    fn positions(&self) -> Result<(u64, u64), RingError> {
        loop {
            // SYNC POINT: Acquire on head pairs with the consumer's Release store in
            // `consume`: the zeroed bytes behind it are visible before we write into them.
            let head = self.head.load(Ordering::Acquire);
            // SYNC POINT: Acquire on tail pairs with producers' AcqRel claims.
            let tail = self.tail.load(Ordering::Acquire);
            // Head never passes tail, and tail only grows: read in this order, tail < head
            // is impossible unless the words were overwritten.
            if tail < head || tail > MAX_POSITION || head % ALIGN != 0 || tail % ALIGN != 0 {
                return self.corrupt(format!(
                    "ring positions head {head} and tail {tail} are inconsistent"
                ));
            }
            if tail - head <= self.capacity {
                return Ok((head, tail));
            }
            // Head may be stale. Read after tail, a healthy head is within capacity of it
            // (or already past it, when the ring moved on: then read both again).
            // SYNC POINT: Acquire pairs with the consumer's Release store in `consume`, as for
            // the first load of head above.
            let fresh = self.head.load(Ordering::Acquire);
            if fresh <= tail && tail - fresh > self.capacity {
                return self.corrupt(format!(
                    "ring positions head {fresh} and tail {tail} are more than the capacity apart"
                ));
            }
        }
    }

    /// Bytes claimed but not yet consumed.
    pub fn used(&self) -> Result<u64, RingError> {
        let (head, tail) = self.positions()?;
        Ok(tail - head)
    }

    /// Reserves room for a `len`-byte message for the producer `token`; `None` when full.
    pub fn claim(&self, len: u64, token: u32) -> Result<Option<Claim>, RingError> {
        debug_assert!(len <= max_message(self.capacity) && token != 0 && token < 1 << 31);
        let record = record_len(len);
        loop {
            let (head, tail) = self.positions()?;
            let index = self.index(tail);
            let to_end = self.capacity - index;
            let pad = if record > to_end { to_end } else { 0 };
            if tail - head + pad + record > self.capacity {
                return Ok(None);
            }
            // SYNC POINT: AcqRel pairs with other producers' claims and with the
            // consumer's Acquire load of tail in `peek`.
            if self
                .tail
                .compare_exchange_weak(
                    tail,
                    tail + pad + record,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            if pad > 0 {
                self.put_padding(tail, pad);
            }
            let pos = tail + pad;
            let header = self.word(self.index(pos));
            let in_progress = word_of(len, token);
            if !self.take_header(pos, in_progress) {
                continue; // revoked: the consumer turned our space into a gap
            }
            // SYNC POINT: Acquire pairs with the Release store of head in `consume`, as for
            // the padding above (the zero our CAS may have read is a lap younger).
            if self.head.load(Ordering::Acquire) > pos {
                // The consumer passed over this space while we were suspended (it revoked and
                // consumed it): undo our header in what is now free space, and claim again.
                // SYNC POINT: AcqRel, though nothing needs it: the CAS reads back our own
                // in-progress header and publishes nothing (no payload was written yet); a
                // later lap's producer finds the zero with its own CAS in `take_header`.
                let _ =
                    header.compare_exchange(in_progress, 0, Ordering::AcqRel, Ordering::Relaxed);
                continue;
            }
            return Ok(Some(Claim { pos, len, token }));
        }
    }

    /// Where to write a claim's payload.
    pub fn payload(&self, claim: &Claim) -> *mut u8 {
        let index = self.index(claim.pos) + HEADER;
        assert!(index + claim.len <= self.capacity, "claim beyond the ring");
        // SAFETY: `index + len <= capacity` (asserted) keeps the pointer inside the buffer.
        unsafe { self.data.add(index as usize) }
    }

    /// Publishes a claimed record: the consumer may read it from now on.
    pub fn commit(&self, claim: &Claim) {
        debug_assert!(claim.token != 0);
        let header = self.word(self.index(claim.pos));
        // The header holds our token, and nobody changes a live producer's record (the
        // consumer only skips records whose producer is dead), so a plain store suffices.
        // SYNC POINT: Release pairs with the consumer's Acquire load of the header in `peek`:
        // the payload written before this store is visible to it.
        header.store(word_of(claim.len, MSG), Ordering::Release);
    }

    /// Reserves consecutive records for as many of `lens` (in order) as fit now, with one
    /// claim of tail; returns them in `out` (cleared first). Empty when the first does not
    /// fit. A batch never straddles the end of the buffer: it stops there, and the next
    /// call pads the wrap.
    pub fn claim_batch(
        &self,
        lens: &[u64],
        token: u32,
        out: &mut Vec<Claim>,
    ) -> Result<(), RingError> {
        out.clear();
        let Some(&first) = lens.first() else {
            return Ok(());
        };
        loop {
            let (head, tail) = self.positions()?;
            let index = self.index(tail);
            let to_end = self.capacity - index;
            let free = self.capacity - (tail - head);
            let room = to_end.min(free);
            let mut total = 0;
            let mut count = 0;
            for &len in lens {
                let record = record_len(len);
                if total + record > room {
                    break;
                }
                total += record;
                count += 1;
            }
            if count == 0 {
                // The first record does not fit before the end: pad the wrap if there is
                // room for both, through the single-record path.
                if record_len(first) > to_end && free >= to_end + record_len(first) {
                    if let Some(claim) = self.claim(first, token)? {
                        out.push(claim);
                    }
                }
                return Ok(());
            }
            // SYNC POINT: as in `claim`.
            if self
                .tail
                .compare_exchange_weak(tail, tail + total, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let mut pos = tail;
            for &len in &lens[..count] {
                out.push(Claim { pos, len, token });
                pos += record_len(len);
            }
            self.own_headers(out);
            return Ok(());
        }
    }

    /// Writes the in-progress headers of freshly claimed records. If the consumer revoked
    /// one of them (we were suspended past `UNBLOCK_AFTER`), that record and all after it
    /// are given up — turned into padding where we still own them — so that messages keep
    /// their order; `claims` is truncated to the records that are ours.
    fn own_headers(&self, claims: &mut Vec<Claim>) {
        let mut lost = None;
        for (i, c) in claims.iter().enumerate() {
            if !self.take_header(c.pos, word_of(c.len, c.token)) {
                lost = Some(i);
                break;
            }
        }
        // SYNC POINT: Acquire pairs with the Release store of head in `consume`, as in
        // `claim`.
        let head = self.head.load(Ordering::Acquire);
        let behind = claims.iter().position(|c| c.pos < head);
        let owned_until = lost.unwrap_or(claims.len());
        let Some(first_lost) = [lost, behind].into_iter().flatten().min() else {
            return;
        };
        self.pad_unowned(&claims[owned_until..]);
        for c in &claims[first_lost..owned_until] {
            let header = self.word(self.index(c.pos));
            let mine = word_of(c.len, c.token);
            if c.pos < head {
                // Already consumed space: restore it to free (zero).
                // SYNC POINT: AcqRel, as for the undo in `claim`: it reads back our own header
                // and publishes nothing (no payload was written); a later lap's producer finds
                // the zero with its own CAS in `take_header`.
                let _ = header.compare_exchange(mine, 0, Ordering::AcqRel, Ordering::Relaxed);
            } else {
                // Still ahead of the consumer: leave padding it will skip.
                // SYNC POINT: Release pairs with the consumer's Acquire load of the header in
                // `peek_within`; a padding has no payload, so the header is all it publishes.
                let _ = header.compare_exchange(
                    mine,
                    word_of(record_len(c.len) - HEADER, PAD),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
            }
        }
        claims.truncate(first_lost);
    }

    /// The claims of a batch from the first one the consumer revoked onward (never written
    /// by us): pad them now rather than leave the consumer to revoke them after a delay (if
    /// it already did, this fails and that is fine).
    fn pad_unowned(&self, claims: &[Claim]) {
        for c in claims {
            self.put_padding(c.pos, record_len(c.len));
        }
    }

    /// Commits `record` bytes of our claim at `pos` as padding at once. If the consumer
    /// revoked it meanwhile, its own gap covers the same bytes: nothing to do. If we were
    /// suspended so long that the space was consumed and a later lap's record cleared it
    /// back to zero, the padding landed in free space: it is taken back (a stale padding
    /// there would swallow a later lap's records).
    fn put_padding(&self, pos: u64, record: u64) {
        let padding = word_of(record - HEADER, PAD);
        // SYNC POINT: Acquire pairs with the Release store of head in `consume`; the store
        // of head past `pos` is a lap older than the zero our CAS read.
        if self.take_header(pos, padding) && self.head.load(Ordering::Acquire) > pos {
            // SYNC POINT: AcqRel, though nothing needs it: the CAS reads back the padding we
            // just wrote and publishes nothing (a padding has no payload); a later lap's
            // producer finds the zero with its own CAS in `take_header`.
            let _ = self.word(self.index(pos)).compare_exchange(
                padding,
                0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// The producers' position (for [`peek_within`](Self::peek_within)).
    pub fn tail(&self) -> u64 {
        // SYNC POINT: Acquire pairs with producers' AcqRel claims of tail.
        self.tail.load(Ordering::Acquire)
    }

    /// What the consumer finds at `head` (the consumer's own position).
    pub fn peek(&self, head: u64) -> Result<Next, RingError> {
        self.peek_within(head, self.tail())
    }

    /// Like [`peek`](Self::peek) with a `tail` read earlier: a consumer draining a batch
    /// re-reads the contended tail only when it reaches it.
    pub fn peek_within(&self, head: u64, tail: u64) -> Result<Next, RingError> {
        if tail < head || tail > MAX_POSITION || tail - head > self.capacity || head % ALIGN != 0 {
            return self.corrupt(format!(
                "ring positions head {head} and tail {tail} are inconsistent"
            ));
        }
        if tail == head {
            return Ok(Next::Empty);
        }
        let index = self.index(head);
        // SYNC POINT: Acquire pairs with the Release commit in `commit` (and in `claim` for
        // padding): the payload is visible once the header says MSG.
        let (len, state) = split(self.word(index).load(Ordering::Acquire));
        // A revoked word at head: a consumer died inside `unblock`; unblocking again
        // finishes its work.
        if (len == 0 && state == 0) || state == REVOKED {
            return Ok(Next::Unwritten);
        }
        let record = record_len(len);
        let fits = index + record <= self.capacity && head + record <= tail;
        let limit = match state {
            PAD | GAP => self.capacity,
            _ => max_message(self.capacity),
        };
        if len > limit || !fits {
            return self.corrupt(format!(
                "record at position {head} claims {len} bytes (state {state:#x}), beyond the ring"
            ));
        }
        match state {
            MSG => Ok(Next::Message {
                payload: index + HEADER,
                len,
                record,
            }),
            PAD => Ok(Next::Skip { record }),
            GAP => Ok(Next::Gap { record }),
            token if token != 0 && token < 1 << 31 => Ok(Next::InProgress { token, record }),
            other => self.corrupt(format!(
                "record at position {head} has unknown state {other:#x}"
            )),
        }
    }

    /// Pointer to `len` payload bytes at `index` (from [`Next::Message`]).
    pub fn payload_at(&self, index: u64, len: u64) -> *const u8 {
        assert!(index + len <= self.capacity, "payload beyond the ring");
        // SAFETY: inside the buffer (asserted).
        unsafe { self.data.add(index as usize) }
    }

    /// Whether `pos` is the first byte of the buffer (a run of records that reaches it has
    /// wrapped around the end).
    pub fn at_start(&self, pos: u64) -> bool {
        self.index(pos) == 0
    }

    /// Marks the message record at `pos` as taken without freeing it: its header becomes
    /// padding, so a successor consumer (if this one dies) skips it, while its payload
    /// stays in place until [`clear`](Self::clear). Returns the header word it replaced, for
    /// [`restore`](Self::restore).
    pub fn mark_taken(&self, pos: u64, record: u64) -> u64 {
        let index = self.index(pos);
        assert!(index + record <= self.capacity, "record beyond the ring");
        // SYNC POINT: Relaxed: until head moves only the consumer (us) reads these headers;
        // the payload was already ordered by the Acquire in `peek_within`. A successor reads
        // the mark only after our death was detected (the kernel dropped our liveness lock):
        // that, not a Release of ours, is what makes the store visible to it.
        self.word(index)
            .swap(word_of(record - HEADER, PAD), Ordering::Relaxed)
    }

    /// Puts back a header [`mark_taken`](Self::mark_taken) replaced (the message was not
    /// delivered after all and stays queued).
    pub fn restore(&self, pos: u64, word: u64) {
        // SYNC POINT: Relaxed, as in `mark_taken`: only the consumer (us) reads it before
        // head moves.
        self.word(self.index(pos)).store(word, Ordering::Relaxed);
    }

    /// Zeroes one consumed record at `pos` (`record` bytes, not crossing the end).
    pub fn clear(&self, pos: u64, record: u64) {
        let index = self.index(pos);
        assert!(index + record <= self.capacity, "record beyond the ring");
        // Turn the record into padding first: a consumer killed while zeroing leaves a
        // record its successor skips (the message was taken), never a header over zeroes.
        // SYNC POINT: Relaxed: consumed space that only the consumer touches until `consume`
        // moves head (its Release store publishes this to producers); a successor reads it
        // only after our death was detected, as in `mark_taken`.
        self.word(index)
            .store(word_of(record - HEADER, PAD), Ordering::Relaxed);
        // Then the payload, and the header last, so the header word stays non-zero until
        // the bytes after it are free again.
        // SAFETY: the range is inside the buffer (asserted) and is consumed space that only
        // the consumer touches until `consume` advances head past it.
        unsafe {
            std::ptr::write_bytes(
                self.data.add((index + HEADER) as usize),
                0,
                (record - HEADER) as usize,
            )
        };
        // SYNC POINT: Relaxed: published with the zeroed payload by the Release store of head
        // in `consume`, which pairs with the Acquire load of head in `positions`.
        self.word(index).store(0, Ordering::Relaxed);
    }

    /// Advances head to `to` after the records before it were cleared.
    pub fn consume(&self, to: u64) {
        // SYNC POINT: Release pairs with the Acquire load of head in `positions` (producers):
        // the zeroes written by `clear` are visible before the space is reused.
        self.head.store(to, Ordering::Release);
    }

    /// Turns unwritten claimed space at `head` into a gap, up to the next record or the end
    /// of the buffer: each word is revoked by compare-and-swap (so a producer that later
    /// tries to write its header there fails and claims again), then the gap's header is
    /// published. Returns the bytes revoked (0 if a producer wrote its header first).
    /// Words a killed consumer revoked are taken over.
    pub fn unblock(&self, head: u64) -> Result<u64, RingError> {
        // SYNC POINT: Acquire pairs with producers' AcqRel claims of tail in `claim` and
        // `claim_batch`, as in `tail`.
        let tail = self.tail.load(Ordering::Acquire);
        if tail < head || tail > MAX_POSITION || tail - head > self.capacity {
            return self.corrupt(format!(
                "ring positions head {head} and tail {tail} are inconsistent"
            ));
        }
        let index = self.index(head);
        let limit = (tail - head).min(self.capacity - index);
        let revoked = self.revoked_word(head);
        let mut gap = 0;
        while gap < limit {
            let word = self.word(index + gap);
            // SYNC POINT: Acquire pairs with the Release side of a producer's header CAS in
            // `take_header` (or the Release store in `commit`), though only the value is used:
            // the CAS below decides, and a word found non-revocable just ends the gap.
            let found = word.load(Ordering::Acquire);
            let revocable = found == 0 || split(found).1 == REVOKED;
            // SYNC POINT: races only with a producer's CAS in `take_header`.
            if !revocable
                || word
                    .compare_exchange(found, revoked, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                break;
            }
            gap += ALIGN;
        }
        if gap > 0 {
            // SYNC POINT: Release pairs with our own later Acquire in `peek`.
            self.word(index)
                .store(word_of(gap - HEADER, GAP), Ordering::Release);
        }
        Ok(gap)
    }

    /// Skips a revoked gap of `record` bytes at `pos` and publishes head just past it
    /// (returned). The gap's words stay revoked (its header becomes a revoked word too):
    /// a producer whose claim there was revoked finds a word revoked in its own lap and
    /// claims again, however late it resumes in this lap; a producer of a later lap
    /// overwrites them with its payload, or takes one over as its header. They are never
    /// zeroed: a zeroing compare-and-swap after head moved would race with a later lap's
    /// payload copy (and zero a payload word that happened to equal a revoked word), and
    /// zeroing before head moved would let a revoked producer take a zeroed header.
    pub fn skip_gap(&self, pos: u64, record: u64) -> u64 {
        let index = self.index(pos);
        assert!(index + record <= self.capacity, "record beyond the ring");
        // SYNC POINT: Relaxed: the word holds our GAP header, which no producer takes over
        // (`take_header` gives up on GAP as on a word revoked in this lap); the Release
        // store of head in `consume` below orders this store before the space is reused.
        self.word(index)
            .store(self.revoked_word(pos), Ordering::Relaxed);
        let to = pos + record;
        self.consume(to);
        to
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::RingMem;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn send(ring: &Ring<'_>, token: u32, msg: &[u8]) -> bool {
        match ring.claim(msg.len() as u64, token).unwrap() {
            None => false,
            Some(c) => {
                // SAFETY: the claim reserved `len` bytes at `payload`.
                unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), ring.payload(&c), msg.len()) };
                ring.commit(&c);
                true
            }
        }
    }

    /// Consumes what is committed; returns the messages and how many waits were seen.
    fn drain(ring: &Ring<'_>, head: &mut u64, out: &mut Vec<Vec<u8>>) -> Next {
        loop {
            match ring.peek(*head).unwrap() {
                Next::Message {
                    payload,
                    len,
                    record,
                } => {
                    let mut v = vec![0u8; len as usize];
                    // SAFETY: `peek` checked the payload lies inside the ring.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            ring.payload_at(payload, len),
                            v.as_mut_ptr(),
                            len as usize,
                        )
                    };
                    out.push(v);
                    ring.clear(*head, record);
                    *head += record;
                    ring.consume(*head);
                }
                Next::Skip { record } => {
                    ring.clear(*head, record);
                    *head += record;
                    ring.consume(*head);
                }
                Next::Gap { record } => *head = ring.skip_gap(*head, record),
                other => return other,
            }
        }
    }

    #[test]
    fn messages_come_out_in_order_and_whole_across_the_wrap() {
        let mem = Arc::new(RingMem::new(1024, 0, 0, &[]));
        let ring = mem.ring();
        let mut head = 0;
        let mut out = vec![];
        for round in 0..200u32 {
            let msg: Vec<u8> = (0..(round % 97) as u8).collect();
            assert!(send(&ring, 5, &msg));
            assert_eq!(drain(&ring, &mut head, &mut out), Next::Empty);
            assert_eq!(out.pop().unwrap(), msg);
        }
        assert!(
            // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
            mem.words.iter().all(|w| w.load(Ordering::Relaxed) == 0),
            "free space is zero"
        );
    }

    #[test]
    fn a_full_ring_refuses_and_accepts_again_once_drained() {
        let mem = Arc::new(RingMem::new(1024, 0, 0, &[]));
        let ring = mem.ring();
        let msg = [7u8; 120]; // 128-byte records: 8 fit
        let mut sent = 0;
        while send(&ring, 5, &msg) {
            sent += 1;
        }
        assert_eq!(sent, 8);
        let (mut head, mut out) = (0, vec![]);
        drain(&ring, &mut head, &mut out);
        assert_eq!(out.len(), 8);
        assert!(send(&ring, 5, &msg));
    }

    #[test]
    fn a_record_in_progress_is_reported_with_its_producer() {
        let mem = Arc::new(RingMem::new(1024, 0, 0, &[]));
        let ring = mem.ring();
        let claim = ring.claim(10, 42).unwrap().unwrap();
        assert_eq!(
            ring.peek(0).unwrap(),
            Next::InProgress {
                token: 42,
                record: 24
            }
        );
        ring.commit(&claim);
        assert!(matches!(
            ring.peek(0).unwrap(),
            Next::Message { len: 10, .. }
        ));
    }

    #[test]
    fn unwritten_space_is_revoked_and_the_late_producer_claims_again() {
        let mem = Arc::new(RingMem::new(1024, 0, 0, &[]));
        let ring = mem.ring();
        // A producer that claimed 24 bytes of tail and was suspended before its header.
        // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
        mem.tail.store(24, Ordering::Relaxed);
        assert_eq!(ring.peek(0).unwrap(), Next::Unwritten);
        assert!(send(&ring, 6, b"after"));
        assert_eq!(
            ring.unblock(0).unwrap(),
            24,
            "the gap ends at the next record"
        );
        let (mut head, mut out) = (0, vec![]);
        assert_eq!(drain(&ring, &mut head, &mut out), Next::Empty);
        assert_eq!(out, vec![b"after".to_vec()]);
        // The suspended producer's header CAS now fails on a revoked word, or (after the
        // consumer freed it) it finds head past its position: either way it claims again.
        assert!(send(&ring, 7, b"late"));
        drain(&ring, &mut head, &mut out);
        assert_eq!(out[1], b"late");
    }

    #[test]
    fn a_batch_claim_takes_what_fits_before_the_end_and_pads_the_wrap() {
        let mem = Arc::new(RingMem::new(1024, 0, 0, &[]));
        let ring = mem.ring();
        let mut claims = vec![];
        // 120-byte payloads take 128-byte records: 8 fill the ring.
        ring.claim_batch(&[120; 10], 3, &mut claims).unwrap();
        assert_eq!(claims.len(), 8);
        for c in &claims {
            ring.commit(c);
        }
        let (mut head, mut out) = (0, vec![]);
        // Consume 3, leaving 384 bytes free at the start and none at the end.
        for _ in 0..3 {
            let Next::Message { record, .. } = ring.peek(head).unwrap() else {
                panic!()
            };
            ring.clear(head, record);
            head += record;
        }
        ring.consume(head);
        ring.claim_batch(&[120; 10], 3, &mut claims).unwrap();
        assert_eq!(claims.len(), 3, "fills the freed space after the wrap");
        for c in &claims {
            ring.commit(c);
        }
        assert_eq!(drain(&ring, &mut head, &mut out), Next::Empty);
        assert_eq!(out.len(), 8);
    }

    #[test]
    fn a_batch_whose_first_header_was_revoked_gives_up_all_of_it_in_order() {
        let mem = Arc::new(RingMem::new(1024, 0, 0, &[]));
        let ring = mem.ring();
        // The consumer revoked the word where the batch's first header goes.
        // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
        mem.words[0].store(word_of(0, REVOKED), Ordering::Relaxed); // revoked in lap 0
        let mut claims = vec![
            Claim {
                pos: 0,
                len: 8,
                token: 3,
            },
            Claim {
                pos: 16,
                len: 8,
                token: 3,
            },
        ];
        // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
        mem.tail.store(32, Ordering::Relaxed);
        ring.own_headers(&mut claims);
        assert!(claims.is_empty(), "nothing may be sent out of order");
        assert_eq!(
            // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
            split(mem.words[2].load(Ordering::Relaxed)).1,
            PAD,
            "the later record is padding"
        );
    }

    #[test]
    fn garbage_positions_and_headers_are_corrupt_errors() {
        let mem = Arc::new(RingMem::new(1024, 0, 0, &[]));
        let ring = mem.ring();
        // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
        mem.tail.store(5000, Ordering::Relaxed);
        assert!(matches!(ring.peek(0), Err(RingError::Corrupt(_))));
        assert!(matches!(ring.claim(8, 1), Err(RingError::Corrupt(_))));
        // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
        mem.tail.store(64, Ordering::Relaxed);
        // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
        mem.words[0].store(word_of(100_000, MSG), Ordering::Relaxed);
        assert!(matches!(ring.peek(0), Err(RingError::Corrupt(_))));
        // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
        mem.words[0].store(word_of(8, 0x7000_0000_u32 | 0x8000_0000), Ordering::Relaxed);
        assert!(matches!(ring.peek(0), Err(RingError::Corrupt(_))));
    }

    /// Every word of the ring is free: zero, or a revoked word a skipped gap left.
    fn all_free(mem: &RingMem) -> bool {
        mem.words.iter().all(|w| {
            // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
            let word = w.load(Ordering::Relaxed);
            word == 0 || split(word).1 == REVOKED
        })
    }

    /// A full ring behind a gap: once the consumer skips the gap, a producer of the next
    /// lap claims its space at once. The gap's revoked words are left in place (a zeroing
    /// compare-and-swap after head moved would race with this copy and zero a payload word
    /// equal to a revoked word): a message made of exactly that word arrives whole, sent
    /// with `claim` or with `claim_batch`.
    #[test]
    fn a_payload_over_a_skipped_gap_arrives_whole_even_if_it_equals_a_revoked_word() {
        for batch in [false, true] {
            let mem = Arc::new(RingMem::new(1024, 0, 0, &[]));
            let ring = mem.ring();
            // A producer claimed 16 bytes at 0 (tail CAS) and died before its header.
            // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
            mem.tail.store(16, Ordering::Relaxed);
            for i in 0..63u8 {
                assert!(send(&ring, 5, &[i; 8]));
            }
            assert_eq!(ring.used().unwrap(), 1024, "full");
            assert_eq!(ring.peek(0).unwrap(), Next::Unwritten);
            assert_eq!(ring.unblock(0).unwrap(), 16);
            assert_eq!(ring.peek(0).unwrap(), Next::Gap { record: 16 });
            let mut head = ring.skip_gap(0, 16);
            let msg = ring.revoked_word(0).to_le_bytes();
            if batch {
                let mut claims = vec![];
                ring.claim_batch(&[8], 9, &mut claims).unwrap();
                assert_eq!(claims.len(), 1, "the gap's space is claimed");
                // SAFETY: the claim reserved 8 bytes at `payload`.
                unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), ring.payload(&claims[0]), 8) };
                ring.commit(&claims[0]);
            } else {
                assert!(send(&ring, 9, &msg), "the gap's space is claimed");
            }
            let mut out = vec![];
            assert_eq!(drain(&ring, &mut head, &mut out), Next::Empty);
            assert_eq!(out.len(), 64);
            assert_eq!(out.last().unwrap().as_slice(), &msg, "batch {batch}");
            assert!(
                all_free(&mem),
                "batch {batch}: free space is zero or revoked"
            );
        }
    }

    /// A batch whose first claim was revoked: `own_headers` finds the revoked word, the
    /// consumer then skips the gap (head moves past the batch), and only then does
    /// `own_headers` pad the claims it never owned. None of that padding may stay in
    /// consumed space: a lap later it would swallow other producers' messages.
    #[test]
    fn a_revoked_batch_leaves_no_padding_in_space_the_consumer_freed() {
        let mem = Arc::new(RingMem::new(1024, 0, 0, &[]));
        let ring = mem.ring();
        // `claim_batch`'s tail CAS for [56, 8] (records 64 + 16 at 0 and 64); then the
        // producer is suspended for UNBLOCK_AFTER.
        let claims = vec![
            Claim {
                pos: 0,
                len: 56,
                token: 3,
            },
            Claim {
                pos: 64,
                len: 8,
                token: 3,
            },
        ];
        // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
        mem.tail.store(80, Ordering::Relaxed);
        // The consumer revokes the unwritten space (the whole batch).
        assert_eq!(ring.peek(0).unwrap(), Next::Unwritten);
        assert_eq!(ring.unblock(0).unwrap(), 80);
        // The producer resumes: `own_headers`' first loop fails at claim 0 (revoked) ...
        assert!(!ring.take_header(0, word_of(56, 3)));
        // ... the consumer skips and zeroes the gap (real call) ...
        assert_eq!(ring.peek(0).unwrap(), Next::Gap { record: 80 });
        let mut head = ring.skip_gap(0, 80);
        assert_eq!(head, 80);
        // ... and `own_headers` goes on: lost = 0, so it pads claims[0..] (the real code),
        // owns nothing to undo, and returns no claims.
        ring.pad_unowned(&claims);
        let free_was_zero = all_free(&mem);
        // Traffic for the rest of the lap (one message at a time, drained each).
        let mut out = vec![];
        while ring.tail() < 1024 {
            assert!(send(&ring, 5, &[1; 8]));
            assert_eq!(drain(&ring, &mut head, &mut out), Next::Empty);
        }
        assert_eq!(head, 1024);
        // Lap 1: producer X does its tail CAS for 8 bytes at 1024 and is suspended there;
        // producer Y sends three messages after it.
        // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
        mem.tail.store(1040, Ordering::Relaxed);
        for m in [b"Y first!", b"Y second", b"Y third!"] {
            assert!(send(&ring, 4, m));
        }
        out.clear();
        let next = drain(&ring, &mut head, &mut out);
        // X's space is unwritten: the consumer must wait at 1024, with Y's messages queued.
        assert!(
            free_was_zero && (next, head) == (Next::Unwritten, 1024),
            "free space zero after own_headers: {free_was_zero}; consumer at {head} on {next:?} \
             having delivered {out:?}, tail {}",
            ring.tail()
        );
    }

    /// A producer whose claim was revoked and skipped, suspended for a whole lap before its
    /// header `take_header`, must leave alone what the next lap committed there.
    #[test]
    fn a_producer_resuming_a_lap_late_does_not_destroy_a_committed_message() {
        let mem = Arc::new(RingMem::new(1024, 0, 0, &[]));
        let ring = mem.ring();
        // S: `claim`'s tail CAS for 8 bytes at 0; suspended.
        // SYNC POINT: Relaxed: single-threaded test; only this thread touches the ring.
        mem.tail.store(16, Ordering::Relaxed);
        assert_eq!(ring.unblock(0).unwrap(), 16);
        let mut head = ring.skip_gap(0, 16);
        let mut out = vec![];
        while ring.tail() < 1024 {
            assert!(send(&ring, 5, &[1; 8]));
            assert_eq!(drain(&ring, &mut head, &mut out), Next::Empty);
        }
        // Lap 1: R commits a message at 1024 (index 0, S's old header word).
        assert!(send(&ring, 6, b"R's msg!"));
        // S resumes: the rest of `claim` (its header `take_header`, then `head > pos`: undo).
        let mine = word_of(8, 7);
        if ring.take_header(0, mine) && ring.head.load(Ordering::Acquire) > 0 {
            let _ = ring
                .word(0)
                .compare_exchange(mine, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
        out.clear();
        let next = drain(&ring, &mut head, &mut out);
        if out.is_empty() && next == Next::Unwritten {
            // What `receive` does after UNBLOCK_AFTER.
            let gap = ring.unblock(head).unwrap();
            let after = ring.peek(head).map(|n| match n {
                Next::Gap { record } => ring.peek(ring.skip_gap(head, record)),
                other => Ok(other),
            });
            panic!("R's message was lost: unblock revoked {gap} bytes, then {after:?}");
        }
        assert_eq!(out, vec![b"R's msg!".to_vec()]);
    }

    #[test]
    fn four_producers_one_consumer_exactly_once_in_producer_order() {
        let mem = Arc::new(RingMem::new(4096, 0, 0, &[]));
        const PER: u32 = 20_000;
        let producers: Vec<_> = (1..=4u32)
            .map(|p| {
                let mem = mem.clone();
                std::thread::spawn(move || {
                    let ring = mem.ring();
                    for seq in 0..PER {
                        let mut msg = p.to_le_bytes().to_vec();
                        msg.extend_from_slice(&seq.to_le_bytes());
                        msg.extend(std::iter::repeat_n((seq % 251) as u8, (seq % 40) as usize));
                        while !send(&ring, p, &msg) {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let ring = mem.ring();
        let (mut head, mut out) = (0u64, Vec::new());
        let mut next: HashMap<u32, u32> = HashMap::new();
        let mut total = 0;
        let mut last_progress = std::time::Instant::now();
        let mut last_total = 0;
        while total < 4 * PER {
            let state = drain(&ring, &mut head, &mut out);
            if state != Next::Empty {
                std::thread::yield_now();
            }
            if total != last_total {
                last_total = total;
                last_progress = std::time::Instant::now();
            }
            assert!(
                last_progress.elapsed() < std::time::Duration::from_secs(20),
                "stalled at head {head} (tail {}) on {state:?} after {total} messages",
                // SYNC POINT: Relaxed: only printed in the failure message.
                mem.tail.load(Ordering::Relaxed)
            );
            for msg in out.drain(..) {
                let p = u32::from_le_bytes(msg[0..4].try_into().unwrap());
                let seq = u32::from_le_bytes(msg[4..8].try_into().unwrap());
                assert_eq!(
                    *next.entry(p).or_default(),
                    seq,
                    "producer {p} out of order"
                );
                assert!(
                    msg[8..].iter().all(|&b| b == (seq % 251) as u8)
                        && msg.len() == 8 + (seq % 40) as usize
                );
                *next.get_mut(&p).unwrap() += 1;
                total += 1;
            }
        }
        for t in producers {
            t.join().unwrap();
        }
        assert_eq!(drain(&ring, &mut head, &mut out), Next::Empty);
    }
}
