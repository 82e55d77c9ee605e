//! Torn-free copies of a value in shared memory: a sequence lock (Lamport; Boehm, "Can
//! Seqlocks Get Along With Programming Language Memory Models?", 2012).
//!
//! `seq` is even while the value is stable and odd while a writer is copying. A reader
//! copies the value into private memory between two reads of `seq` and keeps the copy only
//! if both saw the same even number, so it never returns half of one value and half of
//! another. Writers exclude each other with a separate lock (see `lock.rs`), so `seq` has
//! one writer at a time.
//!
//! A writer that dies mid-copy leaves `seq` odd. The next writer starts from that odd value
//! and bumps it by two (still odd), so readers can tell a new writer is at work.
//!
//! Value segments of format 2 (`src/value/slots.rs`) use the writer half for each slot's
//! `seq` (`begin_write`, `copy_in`); their reader is `slots::try_read`, this reader with the
//! slot's commit number checked too. A dead writer's odd `seq` is then never seen by a
//! reader: the slot it filled is not the current one.
//!
//! The bytes are copied with raw pointers: the region is never viewed as a slice, because
//! other processes change it underneath.

use std::ptr;
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Outcome of one read attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAttempt {
    /// `out` holds a whole value; `seq` was this even number throughout.
    Done { seq: u64 },
    /// A writer is mid-copy (odd `seq`): retry, or decide it died.
    WriterActive { seq: u64 },
    /// `seq` changed during the copy: retry.
    Raced,
    /// The length the header gives does not fit the mapped area (after a stable `seq`):
    /// either the file grew and we must re-map, or the header is corrupt.
    TooLong { len: u64, seq: u64 },
}

/// One attempt to copy the value out.
///
/// # Safety
/// `data` must be valid for reads of `mapped` bytes for the duration of the call.
pub unsafe fn try_read(
    seq: &AtomicU64,
    len: &AtomicU64,
    data: *const u8,
    mapped: usize,
    out: &mut Vec<u8>,
) -> ReadAttempt {
    // SYNC POINT: Acquire pairs with the Release store of the even `seq` in `end_write`:
    // everything the writer copied before it is visible below.
    let s1 = seq.load(Ordering::Acquire);
    if s1 & 1 == 1 {
        return ReadAttempt::WriterActive { seq: s1 };
    }
    // SYNC POINT: Relaxed: checked like the bytes. If this saw the `len` of a later writer
    // (stored after its Release fence in `begin_write`), the Acquire fence before the re-read
    // of `seq` pairs with that fence and the re-read sees its odd `seq`. The Acquire load of
    // `s1` keeps this load after it.
    let n = len.load(Ordering::Relaxed);
    if n > mapped as u64 {
        // Decide on a stable snapshot: a racing writer may have changed both.
        // SYNC POINT: this Acquire fence and the Relaxed re-read of `seq` after it pair with
        // the Release fence in `begin_write`, as after the copy below: if `n` came from a
        // later writer, the re-read sees its odd `seq`.
        fence(Ordering::Acquire);
        if seq.load(Ordering::Relaxed) != s1 {
            return ReadAttempt::Raced;
        }
        return ReadAttempt::TooLong { len: n, seq: s1 };
    }
    let n = n as usize;
    out.clear();
    out.reserve(n);
    // SAFETY: `n <= mapped` so the source range is inside the mapping (caller's contract);
    // `out` has capacity for `n` bytes and does not overlap shared memory. Bytes a racing
    // writer changes may be a mix of old and new; the `seq` check below discards them.
    unsafe {
        ptr::copy_nonoverlapping(data, out.as_mut_ptr(), n);
        out.set_len(n);
    }
    // SYNC POINT: this Acquire fence pairs with the Release fence in `begin_write`: if the
    // copy saw any byte the writer stored after it marked `seq` odd, the load below sees
    // that odd value (or later).
    fence(Ordering::Acquire);
    // SYNC POINT: Relaxed: kept after the copy by the Acquire fence above (see there).
    let s2 = seq.load(Ordering::Relaxed);
    if s1 == s2 {
        ReadAttempt::Done { seq: s1 }
    } else {
        ReadAttempt::Raced
    }
}

/// Marks a write in progress and returns the odd sequence number to finish with.
/// The caller must hold the writer lock.
pub fn begin_write(seq: &AtomicU64) -> u64 {
    // SYNC POINT: Relaxed: only the writer-lock holder (us) stores `seq`; a previous
    // writer's last store was ordered before our lock CAS (`ValueSegment::lock_writer`, or
    // `lock::acquire`) by the Release in `lock::release` (or left final by its death).
    let current = seq.load(Ordering::Relaxed);
    // After a writer died mid-copy `seq` is already odd: move to the next odd value so
    // readers waiting on the dead one see that a new writer is at work.
    let odd = if current & 1 == 1 {
        current.wrapping_add(2)
    } else {
        current.wrapping_add(1)
    };
    // SYNC POINT: Release pairs with the Acquire load of `seq` in `try_read`: a reader that
    // sees the odd value also sees our writer-lock CAS, so `check_writer_alive` finds us
    // holding the lock (never a stale 0 that would read as a dead writer). The Release
    // fence below orders the odd value before the stores that follow.
    seq.store(odd, Ordering::Release);
    // SYNC POINT: Release fence pairs with the reader's Acquire fence in `try_read`: the odd
    // value is ordered before every byte stored into the value below.
    fence(Ordering::Release);
    odd
}

/// Copies `len` bytes from `src` into the value area.
///
/// # Safety
/// `dst` must be valid for writes of `len` bytes and `src` for reads of `len` bytes; the
/// caller holds the writer lock and has called `begin_write`. The regions may overlap (a
/// JS caller can pass a view of the segment's own zero-copy buffer).
pub unsafe fn copy_in(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract; `ptr::copy` is defined for overlapping regions.
    unsafe { ptr::copy(src, dst, len) }
}

/// Publishes the write that `begin_write` started: the value becomes visible as a whole.
pub fn end_write(seq: &AtomicU64, len: &AtomicU64, new_len: u64, odd: u64) -> u64 {
    // SYNC POINT: Relaxed: published by the Release store of the even `seq` below (for the
    // Acquire load of `s1` in `try_read`); a reader that sees it early is caught by the
    // fence pairing of `begin_write` and `try_read`.
    len.store(new_len, Ordering::Relaxed);
    let even = odd.wrapping_add(1);
    // SYNC POINT: Release pairs with the Acquire load of `seq` at the start of `try_read`.
    seq.store(even, Ordering::Release);
    even
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    struct Cell {
        seq: AtomicU64,
        len: AtomicU64,
        data: Box<[std::cell::UnsafeCell<u8>]>,
    }
    // SAFETY: the data bytes are only touched through raw pointers under the seqlock
    // protocol, exactly as shared memory is.
    unsafe impl Sync for Cell {}

    impl Cell {
        fn new(cap: usize) -> Self {
            Cell {
                seq: AtomicU64::new(0),
                len: AtomicU64::new(0),
                data: (0..cap).map(|_| std::cell::UnsafeCell::new(0)).collect(),
            }
        }
        fn ptr(&self) -> *mut u8 {
            self.data.as_ptr() as *mut u8
        }
        fn write(&self, value: &[u8]) {
            let odd = begin_write(&self.seq);
            // SAFETY: value fits (tests only write up to cap) and the writer is unique.
            unsafe { copy_in(self.ptr(), value.as_ptr(), value.len()) };
            end_write(&self.seq, &self.len, value.len() as u64, odd);
        }
        fn read(&self, out: &mut Vec<u8>) -> u64 {
            loop {
                // SAFETY: `ptr()` is valid for `data.len()` bytes.
                match unsafe { try_read(&self.seq, &self.len, self.ptr(), self.data.len(), out) } {
                    ReadAttempt::Done { seq } => return seq,
                    ReadAttempt::TooLong { .. } => panic!("length beyond capacity"),
                    _ => std::hint::spin_loop(),
                }
            }
        }
    }

    #[test]
    fn a_new_cell_reads_empty_at_version_zero() {
        let c = Cell::new(16);
        let mut out = vec![1, 2, 3];
        assert_eq!(c.read(&mut out), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn each_write_advances_seq_by_two() {
        let c = Cell::new(16);
        c.write(b"abc");
        let mut out = vec![];
        assert_eq!(c.read(&mut out), 2);
        assert_eq!(out, b"abc");
    }

    #[test]
    fn a_dead_writer_leaves_seq_odd_and_the_next_writer_moves_past_it() {
        let c = Cell::new(16);
        let odd = begin_write(&c.seq); // the writer "dies" here
        let mut out = vec![];
        // SAFETY: valid pointer and capacity.
        let r = unsafe { try_read(&c.seq, &c.len, c.ptr(), 16, &mut out) };
        assert_eq!(r, ReadAttempt::WriterActive { seq: odd });
        let next = begin_write(&c.seq);
        assert_eq!(next, odd + 2);
        end_write(&c.seq, &c.len, 0, next);
        // SYNC POINT: Relaxed: single-threaded test; `seq` was stored by this thread.
        assert_eq!(c.seq.load(Ordering::Relaxed) % 2, 0);
    }

    #[test]
    fn a_length_beyond_the_mapping_is_reported_not_followed() {
        let c = Cell::new(8);
        // SYNC POINT: Relaxed: single-threaded test; the read below is in this thread.
        c.len.store(1 << 40, Ordering::Relaxed);
        let mut out = vec![];
        // SAFETY: valid pointer and capacity.
        let r = unsafe { try_read(&c.seq, &c.len, c.ptr(), 8, &mut out) };
        assert_eq!(
            r,
            ReadAttempt::TooLong {
                len: 1 << 40,
                seq: 0
            }
        );
    }

    #[test]
    fn concurrent_readers_never_see_a_torn_value() {
        // Each value is N copies of one byte; a torn read would mix two bytes.
        const CAP: usize = 4096;
        let c = Arc::new(Cell::new(CAP));
        let stop = Arc::new(AtomicBool::new(false));
        let reads_done = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (c, stop, reads_done) = (c.clone(), stop.clone(), reads_done.clone());
                std::thread::spawn(move || {
                    let mut out = Vec::new();
                    let mut reads = 0u64;
                    // At least one read each, even for a reader first scheduled after the
                    // writer stopped (a loaded machine).
                    loop {
                        // SYNC POINT: Relaxed: a counter; only its value is used.
                        reads_done.fetch_add(1, Ordering::Relaxed);
                        c.read(&mut out);
                        if let Some(&first) = out.first() {
                            assert!(out.iter().all(|&b| b == first), "torn read");
                            assert_eq!(out.len(), 100 + first as usize * 7 % 3000);
                        }
                        reads += 1;
                        // SYNC POINT: Relaxed: a stop flag; nothing is read through it, and
                        // the `join` below orders the rest.
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    reads
                })
            })
            .collect();
        // Keep writing until the readers have overlapped many writes (whatever the
        // scheduler does), with a fixed upper bound on the work.
        let mut i = 0u32;
        // SYNC POINT: Relaxed: the readers' counter (Relaxed `fetch_add` above), only a loop
        // bound; nothing is read through it.
        while i < 20_000 || (reads_done.load(Ordering::Relaxed) < 20_000 && i < 20_000_000) {
            let b = (i % 251) as u8 + 1;
            c.write(&vec![b; 100 + b as usize * 7 % 3000]);
            i += 1;
        }
        // SYNC POINT: Relaxed: pairs with the Relaxed load of the flag in the readers, which
        // need nothing from us; `join` orders what they did.
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    }
}
