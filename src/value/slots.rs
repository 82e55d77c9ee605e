//! The commit protocol of a format-2 value segment (`DESIGN.md`): three slots, each a whole
//! copy of a value in a region of its own, and the `current` word that names the committed
//! one (LMDB's meta pages, with a third copy so that a reader never has to wait).
//!
//! Invariants this module keeps, on which every reader relies:
//! - A writer (the writer-lock holder) never stores into the slot `current` names, nor into
//!   its region: it fills one of the two others and then commits with one store.
//! - A slot's `seq` is odd while it is being filled; its `commit` field says which commit
//!   the fill is for, so a reader accepts a slot only if `commit == current >> 2` and `seq`
//!   was the same even number before and after its copy.
//! - Commit numbers only grow, so `current` never takes a value twice.
//!
//! Everything read from the header is untrusted: lengths are checked against the region,
//! regions against the mapping, with checked arithmetic. The bytes are copied through raw
//! pointers only (other processes change them underneath).
//!
//! The functions here take the header and the mapped data area, not a segment, so that the
//! model checker in `hostile_tests.rs` runs them one step at a time on heap memory.

use std::ptr;
use std::sync::atomic::{fence, Ordering};

use crate::segment::layout::{region_bytes, SlotHeader, ValueHeader, SLOTS};
use crate::sync::seqlock;

/// A reader of a value at least this long pins its slot while it copies, and a writer looks
/// for pins only on slots holding a value at least this long (`DESIGN.md`, "Pins").
pub const PIN_MIN: u64 = 256 << 10;

/// The largest commit number: `commit << 2` must fit in 64 bits.
pub const MAX_COMMIT: u64 = (1 << 62) - 1;

/// The slot `current` names, or `None` for the damaged value 3.
pub fn slot_of(current: u64) -> Option<usize> {
    let slot = (current & 3) as usize;
    (slot < SLOTS).then_some(slot)
}

/// The `current` word of commit `commit` in slot `slot`.
pub fn current_word(commit: u64, slot: usize) -> u64 {
    debug_assert!(commit <= MAX_COMMIT && slot < SLOTS);
    commit << 2 | slot as u64
}

/// Where a read copies the value: private memory that no other process sees.
pub trait Sink {
    /// Room for `n` bytes: where to copy them, or `None` if this sink cannot hold them.
    fn room(&mut self, n: usize) -> Option<*mut u8>;
    /// The copy of `n` bytes into the room given was whole.
    fn filled(&mut self, n: usize);
}

impl Sink for Vec<u8> {
    fn room(&mut self, n: usize) -> Option<*mut u8> {
        self.clear();
        self.reserve(n);
        Some(self.as_mut_ptr())
    }

    fn filled(&mut self, n: usize) {
        // SAFETY: `room(n)` reserved `n` bytes and the caller copied `n` bytes into them.
        unsafe { self.set_len(n) }
    }
}

/// A fixed area of private memory (a JS Buffer passed in): the value is copied there only
/// if it fits.
pub struct Area {
    ptr: *mut u8,
    cap: usize,
}

impl Area {
    /// # Safety
    /// `ptr` must be valid for writes of `cap` bytes, and no other reference to them may be
    /// used, while the `Area` lives.
    pub unsafe fn new(ptr: *mut u8, cap: usize) -> Self {
        Area { ptr, cap }
    }
}

impl Sink for Area {
    fn room(&mut self, n: usize) -> Option<*mut u8> {
        (n <= self.cap).then_some(self.ptr)
    }

    fn filled(&mut self, _: usize) {}
}

/// What one read attempt found (small and `Copy`: it is returned on every read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAttempt {
    /// The sink holds the whole value of commit `commit`, whose type tag is `tag`.
    Done { commit: u64, tag: u32 },
    /// The committed value is `len` bytes, more than the sink can hold (nothing copied).
    NoRoom { len: u64 },
    /// `current` moved on while we looked (a newer commit): look again.
    Moved,
    /// The slot's region ends at data-area byte `end`, beyond the mapping: another process
    /// grew the file. Map more and look again (if the header's capacity covers it).
    Beyond { end: u64 },
    /// `current` did not move, yet its slot is not a whole commit of it: damage (or a
    /// foreign process writing the header), never a state that share-object leaves. The
    /// text says what was wrong; [`damage_message`] makes the whole message.
    Damaged(&'static str),
}

/// One attempt to copy the value of `current` (just loaded with Acquire) out of its slot.
///
/// # Safety
/// `data` must be valid for reads of `mapped` bytes for the duration of the call.
pub unsafe fn try_read<S: Sink + ?Sized>(
    h: &ValueHeader,
    current: u64,
    data: *const u8,
    mapped: usize,
    out: &mut S,
) -> ReadAttempt {
    let Some(slot) = slot_of(current) else {
        return ReadAttempt::Damaged("the current word names slot 3");
    };
    let d = &h.slots[slot];
    // SYNC POINT: Acquire pairs with the Release store of the even `seq` in `end_fill` (and
    // the caller's Acquire load of `current` with the Release store in `commit`): the fill
    // that `current` names is visible below.
    let q1 = d.seq.load(Ordering::Acquire);
    if q1 & 1 == 1 {
        return moved_or_damaged(h, current, "its slot is being filled");
    }
    // SYNC POINT: Relaxed, the four of them: checked like the bytes. If one came from a
    // later fill (stored after that writer's Release fence in `begin_fill`), the Acquire
    // fence before the re-read of `seq` pairs with that fence and the re-read sees its odd
    // `seq`; `moved_or_damaged` then finds `current` moved.
    let commit = d.commit.load(Ordering::Relaxed);
    let region = d.region.load(Ordering::Relaxed);
    let len = d.len.load(Ordering::Relaxed);
    let tag = d.tag.load(Ordering::Relaxed);
    if commit != current >> 2 {
        return moved_or_damaged(h, current, "its slot holds another commit");
    }
    let (offset, size) = region_bytes(region);
    if len > size {
        return moved_or_damaged(h, current, "its length exceeds its region");
    }
    let end = offset + size; // no overflow: both are below 2^44
    if end > mapped as u64 {
        // SYNC POINT: as after the copy below: a region word of a later fill shows as an
        // odd or changed `seq`.
        fence(Ordering::Acquire);
        if d.seq.load(Ordering::Relaxed) != q1 {
            return moved_or_damaged(h, current, "its slot changed");
        }
        return ReadAttempt::Beyond { end };
    }
    let n = len as usize;
    let Some(dst) = out.room(n) else {
        // SYNC POINT: as after the copy below: a length of a later fill shows as a changed
        // `seq`, so the length reported is the committed value's.
        fence(Ordering::Acquire);
        if d.seq.load(Ordering::Relaxed) != q1 {
            return moved_or_damaged(h, current, "its slot changed");
        }
        return ReadAttempt::NoRoom { len };
    };
    // SAFETY: `offset + len <= end <= mapped`, so the source range is inside the mapping
    // (caller's contract); the sink gave room for `n` bytes of private memory. Bytes a
    // racing writer changes may be a mix; the `seq` check below discards them.
    unsafe { ptr::copy_nonoverlapping(data.add(offset as usize), dst, n) };
    // SYNC POINT: this Acquire fence pairs with the Release fence in `begin_fill`: if the
    // copy (or a field above) saw anything a later fill stored, the re-read sees its odd
    // `seq` (or a later one).
    fence(Ordering::Acquire);
    // SYNC POINT: Relaxed: kept after the copy by the fence above.
    let q2 = d.seq.load(Ordering::Relaxed);
    if q1 != q2 {
        return moved_or_damaged(h, current, "its slot changed during the copy");
    }
    out.filled(n);
    ReadAttempt::Done {
        commit: current >> 2,
        tag,
    }
}

/// A slot that does not hold a whole copy of commit `current >> 2`: `Moved` if `current`
/// moved on (a legitimate race), `Damaged` if it did not.
///
/// Why no legitimate state can be damaged: a writer fills only slots that are not current,
/// after taking the writer lock, which it took after the writer before it stored the newer
/// `current`. Whatever the reader saw of such a fill it saw through a load followed by the
/// Acquire fence below, which therefore also makes that newer `current` visible.
fn moved_or_damaged(h: &ValueHeader, current: u64, why: &'static str) -> ReadAttempt {
    // SYNC POINT: this Acquire fence pairs with the Release fence in `begin_fill` (and the
    // Release store of its odd `seq`) of any later fill the caller's loads observed: the
    // newer `current`, stored before that fill's writer took the lock, is visible below.
    fence(Ordering::Acquire);
    // SYNC POINT: Relaxed: ordered by the fence above; only compared.
    let now = h.current.load(Ordering::Relaxed);
    if now != current {
        ReadAttempt::Moved
    } else {
        ReadAttempt::Damaged(why)
    }
}

/// The message of a [`ReadAttempt::Damaged`] found for `current`.
pub fn damage_message(current: u64, why: &str) -> String {
    format!(
        "the committed value (commit {}, slot {}) is not whole: {why}",
        current >> 2,
        current & 3
    )
}

/// The two slots a writer may fill when `current` names slot `cur`, the one holding the
/// older commit first (ties: the lower index).
pub fn candidates(h: &ValueHeader, cur: usize) -> [usize; 2] {
    let mut c = [0usize; 2];
    let mut k = 0;
    for i in 0..SLOTS {
        if i != cur {
            c[k] = i;
            k += 1;
        }
    }
    // SYNC POINT: Relaxed: the writer-lock holder (our caller) is the only writer of
    // `commit`; earlier writers' stores are ordered before the lock by its Acquire.
    let commit = |i: usize| h.slots[i].commit.load(Ordering::Relaxed);
    if commit(c[1]) < commit(c[0]) {
        c.swap(0, 1);
    }
    c
}

/// The slot whose `commit` field is the highest (ties: the lower index).
pub fn newest(h: &ValueHeader) -> usize {
    // SYNC POINT: Relaxed: called by the writer-lock holder, the only writer of `commit`.
    let commit = |i: usize| h.slots[i].commit.load(Ordering::Relaxed);
    (0..SLOTS).rev().max_by_key(|&i| commit(i)).unwrap_or(0)
}

/// Starts filling slot `d` for commit `commit` in region `region`: marks the slot as being
/// filled (`seq` odd) before anything else of it changes. Returns the odd `seq` to end with.
/// The caller holds the writer lock and `d` is not the current slot.
pub fn begin_fill(d: &SlotHeader, commit: u64, region: u64) -> u64 {
    // `begin_write` stores the odd `seq` with Release, then a Release fence.
    let odd = seqlock::begin_write(&d.seq);
    // SYNC POINT: Relaxed, both: after the Release fence in `begin_write` (a reader that sees
    // them also sees the odd `seq`), published by the Release store of the even `seq` in
    // `end_fill`.
    d.commit.store(commit, Ordering::Relaxed);
    d.region.store(region, Ordering::Relaxed);
    odd
}

/// Copies `len` bytes from `src` into a slot's region at `dst`.
///
/// # Safety
/// `dst` must be valid for writes and `src` for reads of `len` bytes; the caller holds the
/// writer lock and called `begin_fill` on the slot. The regions may overlap (a JS caller can
/// pass a view of the segment's own buffer).
pub unsafe fn copy_in(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { seqlock::copy_in(dst, src, len) }
}

/// Ends a fill: the value's length and tag, then `seq` even (the slot is whole).
pub fn end_fill(d: &SlotHeader, odd: u64, len: u64, tag: u32) {
    // SYNC POINT: Relaxed, both: published by the Release store of the even `seq` below;
    // a reader that sees them early is caught by the fence pairing of `begin_fill` and
    // `try_read`.
    d.len.store(len, Ordering::Relaxed);
    d.tag.store(tag, Ordering::Relaxed);
    // SYNC POINT: Release pairs with the Acquire load of `seq` in `try_read`.
    d.seq.store(odd.wrapping_add(1), Ordering::Release);
}

/// Commits: `current` names slot `slot`, commit `commit`. One store: a writer killed before
/// it leaves the previous commit current, after it the new one.
pub fn commit(h: &ValueHeader, commit: u64, slot: usize) {
    // SYNC POINT: Release pairs with the Acquire load of `current` by readers (before
    // `try_read`) and by the next writer: the slot's fill (ended by its Release store of the
    // even `seq`) is visible to whoever sees this commit.
    h.current
        .store(current_word(commit, slot), Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::layout::region_word;

    fn header() -> Box<ValueHeader> {
        let h: Box<ValueHeader> = Box::default();
        for (i, s) in h.slots.iter().enumerate() {
            // SYNC POINT: Relaxed: single-threaded set-up.
            s.region.store(region_word(i as u64, 1), Ordering::Relaxed);
        }
        h
    }

    fn write(h: &ValueHeader, data: &mut [u8], value: &[u8], tag: u32) {
        // SYNC POINT: Relaxed: a single-threaded test is its own writer.
        let c = h.current.load(Ordering::Relaxed);
        let slot = candidates(h, slot_of(c).unwrap())[0];
        let d = &h.slots[slot];
        // SYNC POINT: Relaxed: as above.
        let region = d.region.load(Ordering::Relaxed);
        let odd = begin_fill(d, (c >> 2) + 1, region);
        let (offset, _) = region_bytes(region);
        // SAFETY: the test's regions lie inside `data`, and `value` fits a page.
        unsafe {
            copy_in(
                data.as_mut_ptr().add(offset as usize),
                value.as_ptr(),
                value.len(),
            )
        };
        end_fill(d, odd, value.len() as u64, tag);
        commit(h, (c >> 2) + 1, slot);
    }

    fn read(h: &ValueHeader, data: &[u8]) -> ReadAttempt {
        let mut out = Vec::new();
        // SYNC POINT: Acquire, as a reader loads it.
        let c = h.current.load(Ordering::Acquire);
        // SAFETY: `data` is valid for its length.
        let r = unsafe { try_read(h, c, data.as_ptr(), data.len(), &mut out) };
        if let ReadAttempt::Done { .. } = r {
            assert_eq!(out, b"abc".repeat(out.len() / 3));
        }
        r
    }

    #[test]
    fn writes_rotate_through_the_slots_and_count_commits() {
        let h = header();
        let mut data = vec![0u8; 3 * 4096];
        assert_eq!(read(&h, &data), ReadAttempt::Done { commit: 0, tag: 0 });
        let mut seen = vec![];
        for i in 1..=6u64 {
            write(&h, &mut data, &b"abc".repeat(i as usize), 1);
            // SYNC POINT: Relaxed: single-threaded test.
            let c = h.current.load(Ordering::Relaxed);
            assert_eq!(c >> 2, i);
            seen.push(c & 3);
            assert_eq!(read(&h, &data), ReadAttempt::Done { commit: i, tag: 1 });
        }
        // Never the same slot twice in a row; every slot used.
        assert!(seen.windows(2).all(|w| w[0] != w[1]));
        assert!((0..3).all(|s| seen.contains(&s)));
    }

    #[test]
    fn a_fill_killed_at_any_step_leaves_the_last_commit_readable() {
        let h = header();
        let mut data = vec![0u8; 3 * 4096];
        write(&h, &mut data, b"abcabc", 1);
        // A writer dies after starting a fill of the next slot (seq odd, bytes half copied).
        let next = candidates(&h, 1)[0];
        let d = &h.slots[next];
        // SYNC POINT: Relaxed: single-threaded test.
        let odd = begin_fill(d, 2, d.region.load(Ordering::Relaxed));
        assert_eq!(odd & 1, 1);
        assert_eq!(read(&h, &data), ReadAttempt::Done { commit: 1, tag: 1 });
        // The next writer picks that slot again (oldest commit first is the other one) and
        // moves its seq on from odd.
        write(&h, &mut data, b"abc", 6);
        assert_eq!(read(&h, &data), ReadAttempt::Done { commit: 2, tag: 6 });
        write(&h, &mut data, b"abcabcabc", 1);
        assert_eq!(read(&h, &data), ReadAttempt::Done { commit: 3, tag: 1 });
        // The dead fill's slot claimed commit 2, which another slot then committed: it is
        // chosen again once it is the oldest, and its seq moves on to even.
        write(&h, &mut data, b"abc", 1);
        assert_eq!(read(&h, &data), ReadAttempt::Done { commit: 4, tag: 1 });
        for s in &h.slots {
            // SYNC POINT: Relaxed: single-threaded test.
            assert_eq!(s.seq.load(Ordering::Relaxed) & 1, 0);
        }
    }

    #[test]
    fn a_current_slot_that_is_not_whole_is_damage_not_a_retry() {
        let h = header();
        let data = vec![0u8; 3 * 4096];
        // SYNC POINT: Relaxed, all: single-threaded test standing for a foreign process.
        h.slots[0].commit.store(7, Ordering::Relaxed);
        assert!(matches!(read(&h, &data), ReadAttempt::Damaged(_)));
        h.slots[0].commit.store(0, Ordering::Relaxed);
        h.slots[0].len.store(4097, Ordering::Relaxed);
        assert!(matches!(read(&h, &data), ReadAttempt::Damaged(_)));
        h.slots[0].len.store(0, Ordering::Relaxed);
        h.slots[0].seq.store(3, Ordering::Relaxed);
        assert!(matches!(read(&h, &data), ReadAttempt::Damaged(_)));
        h.slots[0].seq.store(0, Ordering::Relaxed);
        h.current.store(3, Ordering::Relaxed);
        assert!(matches!(read(&h, &data), ReadAttempt::Damaged(_)));
        h.current.store(0, Ordering::Relaxed);
        // SYNC POINT: Relaxed, both: as above.
        h.slots[0]
            .region
            .store(region_word(5, 1), Ordering::Relaxed);
        assert_eq!(read(&h, &data), ReadAttempt::Beyond { end: 6 * 4096 });
        h.slots[0].region.store(u64::MAX, Ordering::Relaxed);
        assert!(matches!(read(&h, &data), ReadAttempt::Beyond { .. }));
    }
}
