//! Each shard's change log: a ring of `MAP_LOG_BYTES` bytes of records `{position, length,
//! op, key}`, appended by the shard's lock holder after every change, read by watchers.
//!
//! Record (16-byte aligned, never wrapping round the ring's end: a PAD record fills the
//! rest of the ring first):
//!
//! ```text
//! 0  u64  position   the record's position in the log (checks that it is current)
//! 8  u32  length     of the whole record, a multiple of 16
//! 12 u8   op         [`ChangeOp`]
//! 13 u8   reserved
//! 14 u16  key length
//! 16      key bytes, padded
//! ```
//!
//! The writer first stores how far it will write (`log_wend`, then a Release fence), then
//! the record, then publishes it with `log_tail` (Release). A reader copies records from its
//! cursor, then (Acquire fence) re-reads `log_wend`: if the writer may since have
//! overwritten them (it claimed bytes a whole ring ahead), the copy is discarded and the
//! shard reported as overflowed, never torn.

use std::sync::atomic::{fence, Ordering};

use super::format::MAX_KEY;
use super::mem::Mem;
use super::MapSegment;
use crate::segment::layout::{ShardHeader, MAP_LOG_BYTES};

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// Set (set, incr, update, getOrSet's result).
    Set = 1,
    /// Deleted.
    Delete = 2,
    /// The whole shard was cleared (no key).
    Clear = 3,
    /// Evicted to make room.
    Evict = 4,
    /// Removed because its ttl passed.
    Expire = 5,
    /// A getOrSet() claim was given up (its waiters try again).
    Unclaim = 6,
    /// Filler to the ring's end (never reported).
    Pad = 15,
}

impl ChangeOp {
    fn from_u8(op: u8) -> Option<Self> {
        Some(match op {
            1 => ChangeOp::Set,
            2 => ChangeOp::Delete,
            3 => ChangeOp::Clear,
            4 => ChangeOp::Evict,
            5 => ChangeOp::Expire,
            6 => ChangeOp::Unclaim,
            15 => ChangeOp::Pad,
            _ => return None,
        })
    }
}

/// A change read from a shard's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub shard: u32,
    pub op: ChangeOp,
    pub key: Vec<u8>,
}

const RECORD_HEADER: u64 = 16;

fn record_len(key_len: usize) -> u64 {
    (RECORD_HEADER + key_len as u64).next_multiple_of(16)
}

impl MapSegment {
    /// Appends a record to shard `s`'s log. Called with the shard lock held.
    pub(super) fn log_change(&self, s: u32, op: ChangeOp, key: &[u8]) {
        debug_assert!(key.len() <= MAX_KEY);
        let mem = self.mem();
        let sh = self.shard(s);
        let base = self.geo.log_at(s);
        // SYNC POINT: Relaxed: only the shard's lock holder stores it; the lock's Acquire
        // orders the previous holder's store before this load.
        let pos = sh.log_tail.load(Ordering::Relaxed);
        let len = record_len(key.len());
        let at = pos % MAP_LOG_BYTES;
        let pad = if at + len > MAP_LOG_BYTES {
            MAP_LOG_BYTES - at
        } else {
            0
        };
        let end = pos + pad + len;
        // SYNC POINT: Relaxed store, then a Release fence: pairs with the reader's Acquire
        // fence before its re-read of `log_wend` in `read_changes`. A reader whose copy saw
        // any byte stored below sees this `log_wend` (or a later one) and discards the copy.
        sh.log_wend.store(end, Ordering::Relaxed);
        fence(Ordering::Release);
        if pad > 0 {
            write_record(&mem, base, pos, pad, ChangeOp::Pad, &[]);
        }
        write_record(&mem, base, pos + pad, len, op, key);
        // SYNC POINT: Release pairs with the Acquire load of `log_tail` by readers: the
        // records are complete.
        sh.log_tail.store(end, Ordering::Release);
    }

    /// The change log's current end for every shard (what a watcher compares with).
    pub fn log_tails(&self, out: &mut Vec<u64>) {
        out.clear();
        for s in 0..self.geo.shards {
            // SYNC POINT: Acquire pairs with the Release store in `log_change`.
            out.push(self.shard(s).log_tail.load(Ordering::Acquire));
        }
    }

    /// Reads shard `s`'s changes after `cursor` into `out`; returns the new cursor and
    /// whether records were lost (the writer lapped the reader, or a record was damaged):
    /// then the caller re-checks what it watches in that shard.
    pub fn read_changes(&self, s: u32, cursor: u64, out: &mut Vec<Change>) -> (u64, bool) {
        read_log(
            &self.mem(),
            self.shard(s),
            self.geo.log_at(s),
            s,
            cursor,
            out,
        )
    }
}

fn write_record(mem: &Mem<'_>, base: u64, pos: u64, len: u64, op: ChangeOp, key: &[u8]) {
    let at = base + pos % MAP_LOG_BYTES;
    // The log region lies inside the header, which is mapped in full.
    if let (Some(p), Some(l)) = (mem.u64(at), mem.u64(at + 8)) {
        // SYNC POINT: Relaxed: published by the Release store of `log_tail`.
        p.store(pos, Ordering::Relaxed);
        let word = len | (op as u64) << 32 | (key.len() as u64) << 48;
        l.store(word, Ordering::Relaxed);
        // SAFETY: `key` is a private slice, readable for its length.
        unsafe { mem.copy_in(at + RECORD_HEADER, key.as_ptr(), key.len() as u64) };
    }
}

fn read_log(
    mem: &Mem<'_>,
    sh: &ShardHeader,
    base: u64,
    s: u32,
    mut cursor: u64,
    out: &mut Vec<Change>,
) -> (u64, bool) {
    // SYNC POINT: Acquire pairs with the Release store of `log_tail` in `log_change`.
    let tail = sh.log_tail.load(Ordering::Acquire);
    if tail < cursor || tail - cursor > MAP_LOG_BYTES {
        // Lapped (or a log that went backwards: damage). Start again from the end.
        return (tail, true);
    }
    let start = out.len();
    let mut key = Vec::new();
    while cursor < tail {
        let at = base + cursor % MAP_LOG_BYTES;
        let (Some(p), Some(l)) = (mem.u64(at), mem.u64(at + 8)) else {
            return (tail, true);
        };
        // SYNC POINT: Relaxed: the Acquire load of `log_tail` above orders these after the
        // writer's stores; a lapping writer is caught by the `log_wend` check below.
        let (pos, word) = (p.load(Ordering::Relaxed), l.load(Ordering::Relaxed));
        let len = word & 0xFFFF_FFFF;
        let op = ((word >> 32) & 0xFF) as u8;
        let key_len = (word >> 48) as usize;
        let sane = pos == cursor
            && len >= RECORD_HEADER
            && len % 16 == 0
            && cursor % MAP_LOG_BYTES + len <= MAP_LOG_BYTES
            && key_len <= MAX_KEY
            && record_len(key_len) <= len;
        let op = ChangeOp::from_u8(op);
        if !sane || op.is_none() || !mem.copy_out(at + RECORD_HEADER, key_len as u64, &mut key) {
            out.truncate(start);
            return (tail, true);
        }
        // SYNC POINT: this Acquire fence and the Relaxed re-read of `log_wend` pair with
        // the Release fence in `log_change`: if the copy saw bytes of a later record, this
        // sees the `log_wend` stored before them.
        fence(Ordering::Acquire);
        if sh.log_wend.load(Ordering::Relaxed) > cursor + MAP_LOG_BYTES {
            out.truncate(start);
            return (tail, true);
        }
        let op = op.expect("checked above");
        if op != ChangeOp::Pad {
            out.push(Change {
                shard: s,
                op,
                key: key.clone(),
            });
        }
        cursor += len;
    }
    (cursor, false)
}
