//! The cleaner (compaction and CLOCK eviction in one walk of a shard's oldest chunk), and
//! the repairs after a death: shard recovery and the sweep of units nobody references.
//! Everything here runs under the shard's lock.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::alloc::UnitSet;
use super::format::{
    self, desc_gen, entry_size, lens, make_slot, meta_expires, slot_heap, slot_live, slot_tag,
    stamp, table_parts, user_bytes, FLAG_PENDING, MAX_KEY, MAX_PROBE, MAX_VALUE, META_REF,
    SLOT_TOMBSTONE,
};
use super::log::ChangeOp;
use super::read::Found;
use super::write::NewEntry;
use super::{now_ms, MapSegment};
use crate::error::{Error, Result};
use crate::segment::layout::{EntryHeader, CHUNK_DATA, CHUNK_HEADER_SIZE, ENTRY_HEADER_SIZE};

/// What the cleaner is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Free the oldest chunk: move its live entries to the tail.
    Compact,
    /// Evict one entry (CLOCK: referenced entries get a second chance at the tail).
    Evict,
}

/// An entry as the cleaner sees it (its shard is locked: it cannot change under us).
struct Walked {
    heap: u64,
    size: u64,
    hash: u64,
    key: Vec<u8>,
    tag: u8,
    flags: u8,
    meta: u64,
    ttl: u64,
    val_len: u64,
}

// SYNC POINT (whole file): Relaxed loads and stores of a shard's own fields (chunk headers,
// counters, cursor) are made under the shard's lock, whose Acquire/Release orders them
// between holders; slots and table descriptors that readers follow are stored with Release.
fn get(w: &AtomicU64) -> u64 {
    w.load(Ordering::Relaxed)
}

fn put(w: &AtomicU64, v: u64) {
    w.store(v, Ordering::Relaxed)
}

impl MapSegment {
    /// The data chunks of shard `s`, oldest first, as `(first unit, units)`. A link that
    /// does not lead to a sound chunk of this shard (damage, or a death mid-link) ends the
    /// chain there, and the chain is cut at that point.
    pub(super) fn chain(&self, s: u32) -> Result<Vec<(u64, u64)>> {
        let sh = self.shard(s);
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut link = get(&sh.head);
        let mut prev: Option<u64> = None;
        while link != 0 {
            let unit = link - 1;
            let sound = seen.insert(unit)
                && self.chunk(unit).ok().is_some_and(|ch| {
                    // SYNC POINT: Relaxed, see the top of the file.
                    let units = u64::from(ch.units.load(Ordering::Relaxed));
                    let used = get(&ch.used);
                    ch.kind.load(Ordering::Relaxed) == CHUNK_DATA
                        && units > 0
                        && used >= CHUNK_HEADER_SIZE
                        && used <= units << self.geo.unit_shift
                        && self.chunk_desc(s, unit, units, false).is_some()
                });
            if !sound {
                match prev {
                    Some(p) => put(&self.chunk(p)?.next, 0),
                    None => put(&sh.head, 0),
                }
                break;
            }
            let ch = self.chunk(unit)?;
            // SYNC POINT: Relaxed, see the top of the file.
            out.push((unit, u64::from(ch.units.load(Ordering::Relaxed))));
            prev = Some(unit);
            link = get(&ch.next);
        }
        Ok(out)
    }

    /// The entry at `at` bytes into the chunk starting at `unit`, if it is a sound entry
    /// ending by `used`.
    fn walk_entry(&self, unit: u64, at: u64, used: u64) -> Option<Walked> {
        let heap = self.geo.unit_start(unit) + at;
        let off = self.geo.heap_at(heap);
        let mem = self.mem();
        // SAFETY: EntryHeader is all atomics; `at` is 8-aligned (entry sizes are).
        let hdr = unsafe { mem.at::<EntryHeader>(off) }?;
        // SYNC POINT: Acquire pairs with the Release store of the stamp in `append_entry`
        // (by an earlier holder of the lock, also ordered by the lock itself).
        let d = self.desc(self.geo.unit_of(heap))?.load(Ordering::Acquire);
        if hdr.stamp.load(Ordering::Acquire) != stamp(d, heap) {
            return None;
        }
        let l = lens(get(&hdr.lens));
        let size = entry_size(l.key_len, l.val_len);
        if l.key_len == 0 || l.key_len > MAX_KEY || l.val_len > MAX_VALUE || at + size > used {
            return None;
        }
        let mut key = Vec::new();
        if !mem.copy_out(off + ENTRY_HEADER_SIZE, l.key_len as u64, &mut key) {
            return None;
        }
        Some(Walked {
            heap,
            size,
            hash: self.hash(&key),
            key,
            tag: l.tag,
            flags: l.flags,
            meta: get(&hdr.meta),
            ttl: get(&hdr.ttl),
            val_len: l.val_len,
        })
    }

    /// The slot (table offset, index) of shard `s` that points at `heap`, if any.
    fn slot_of(&self, s: u32, hash: u64, heap: u64) -> Option<(u64, u64, u64)> {
        let (unit, bits) = table_parts(get(&self.shard(s).table))?;
        let toff = self.geo.heap_at(self.geo.unit_start(unit));
        let mask = (1u64 << bits) - 1;
        let mem = self.mem();
        for i in 0..(MAX_PROBE as u64).min(1 << bits) {
            let idx = (hash + i) & mask;
            let slot = get(mem.u64(toff + idx * 8)?);
            if slot == 0 {
                return None;
            }
            if slot_live(slot) && slot_heap(slot) == heap {
                return Some((toff, idx, slot));
            }
        }
        None
    }

    fn found_of(&self, w: &Walked) -> Found {
        // The `Found` the writer-side helpers take; `meta` is not used by them.
        let d = self
            .desc(self.geo.unit_of(w.heap))
            .map_or(0, |d| d.load(Ordering::Relaxed));
        Found {
            tag: w.tag,
            flags: w.flags,
            expires_ms: meta_expires(w.meta),
            ttl_ms: w.ttl,
            heap: w.heap,
            gen: desc_gen(d),
            meta: w.meta,
        }
    }

    /// One pass of the cleaner over shard `s`'s oldest chunk. `Compact`: until that chunk
    /// is freed (true) or nothing more can be done (false). `Evict`: until one entry is
    /// evicted (true) or the shard has none to give (false).
    fn clean(&mut self, s: u32, mode: Mode) -> Result<bool> {
        let sh = self.shard(s);
        let mut steps = 2 * (get(&sh.count) + get(&sh.pending)) + 64;
        let now = now_ms();
        loop {
            if steps == 0 {
                return Ok(false);
            }
            steps -= 1;
            let sh = self.shard(s);
            let head = get(&sh.head);
            if head == 0 {
                return Ok(false);
            }
            let unit = head - 1;
            let ch = self.chunk(unit)?;
            // SYNC POINT: Relaxed, see the top of the file.
            let units = u64::from(ch.units.load(Ordering::Relaxed));
            let used = get(&ch.used).min(units << self.geo.unit_shift);
            let next = get(&ch.next);
            let mut cursor = get(&sh.cursor);
            if cursor < CHUNK_HEADER_SIZE || cursor > used || cursor % 8 != 0 {
                cursor = CHUNK_HEADER_SIZE;
            }
            if cursor >= used {
                if head == get(&sh.tail) || next == 0 {
                    put(&sh.cursor, cursor);
                    return Ok(false);
                }
                // Everything in this chunk is dead or moved: free it.
                put(&sh.head, next);
                put(&sh.cursor, CHUNK_HEADER_SIZE);
                put(&sh.data_units, get(&sh.data_units).saturating_sub(units));
                put(
                    &sh.garbage,
                    get(&sh.garbage).saturating_sub(used - CHUNK_HEADER_SIZE),
                );
                self.free_units(unit, units)?;
                if mode == Mode::Compact {
                    return Ok(true);
                }
                continue;
            }
            let Some(w) = self.walk_entry(unit, cursor, used) else {
                // Damage (or a stamp that does not match): the rest of the chunk is lost.
                put(&self.chunk(unit)?.used, cursor);
                continue;
            };
            put(&self.shard(s).cursor, cursor + w.size);
            let Some((toff, idx, _)) = self.slot_of(s, w.hash, w.heap) else {
                continue; // garbage
            };
            let found = self.found_of(&w);
            if w.flags & FLAG_PENDING != 0 {
                let token = self.pending_token_at(&w);
                if token == 0 || !self.seg.is_alive(token) {
                    self.kill_slot(s, toff, idx, &found)?;
                    self.log_change(s, ChangeOp::Unclaim, &w.key);
                    continue;
                }
            } else if found.expired_at(now) {
                self.kill_slot(s, toff, idx, &found)?;
                self.log_change(s, ChangeOp::Expire, &w.key);
                continue;
            } else if mode == Mode::Evict && w.meta & META_REF == 0 {
                self.kill_slot(s, toff, idx, &found)?;
                self.log_change(s, ChangeOp::Evict, &w.key);
                return Ok(true);
            }
            match self.move_entry(s, &w, toff, idx) {
                Ok(()) => {}
                Err(Error::MapFull { .. })
                    if mode == Mode::Evict && w.flags & FLAG_PENDING == 0 =>
                {
                    // No room to give it a second chance: it goes.
                    self.kill_slot(s, toff, idx, &found)?;
                    self.log_change(s, ChangeOp::Evict, &w.key);
                    return Ok(true);
                }
                Err(Error::MapFull { .. }) => {
                    // Cannot move it (no space): leave the chunk for later.
                    put(&self.shard(s).cursor, cursor);
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn pending_token_at(&self, w: &Walked) -> u32 {
        let mut v = Vec::new();
        let off = self.geo.heap_at(w.heap) + ENTRY_HEADER_SIZE + w.key.len() as u64;
        if w.val_len >= 4 && self.mem().copy_out(off, 4, &mut v) {
            u32::from_le_bytes(v[..4].try_into().expect("4 bytes"))
        } else {
            0
        }
    }

    /// Copies the live entry `w` to the shard's tail (reference bit cleared) and switches
    /// its slot to the copy; the old copy becomes garbage.
    fn move_entry(&mut self, s: u32, w: &Walked, toff: u64, idx: u64) -> Result<()> {
        // The source is the old copy, in the mapping: keep that mapping alive even if
        // appending grows the file and re-maps.
        let keep = Arc::clone(self.seg.mapping());
        let src_off = self.geo.heap_at(w.heap) + ENTRY_HEADER_SIZE + w.key.len() as u64;
        if src_off + w.val_len > keep.len() as u64 {
            return Err(Error::corrupt(
                self.path(),
                "an entry's value lies outside the mapping",
            ));
        }
        // SAFETY: `src_off + val_len` is inside `keep`'s mapping (checked), which lives until
        // the end of this function.
        let src = unsafe { keep.base().add(src_off as usize) };
        let entry = NewEntry {
            key: &w.key,
            tag: w.tag,
            flags: w.flags,
            src,
            len: w.val_len,
            expires_ms: meta_expires(w.meta),
            ttl_ms: w.ttl,
        };
        let heap = self.append_entry(s, &entry)?;
        let slot = self.slot_word(toff, idx)?;
        // SYNC POINT: Release pairs with readers' Acquire slot loads: the copy is complete.
        slot.store(make_slot(format::tag_of(w.hash), heap), Ordering::Release);
        let sh = self.shard(s);
        put(&sh.garbage, get(&sh.garbage) + w.size);
        drop(keep);
        Ok(())
    }

    /// Evicts until the budgets hold (this shard first, then others whose lock is free):
    /// false if nothing more could be evicted. Only for maps with an eviction policy.
    pub(super) fn make_room(&mut self, s: u32) -> Result<bool> {
        if !self.config.evict {
            return Ok(false);
        }
        while self.over_budget() {
            if self.clean(s, Mode::Evict)? {
                continue;
            }
            if !self.evict_elsewhere(s)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Evicts one entry from another shard whose lock is free right now (never waits: we
    /// hold a shard lock already).
    fn evict_elsewhere(&mut self, s: u32) -> Result<bool> {
        let me = self.seg.token();
        for k in 1..self.geo.shards {
            let t = (s + k) % self.geo.shards;
            let word = &self.shard(t).lock;
            // SYNC POINT: Acquire pairs with the Release swap in `lock::release`.
            if word
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let evicted = self.clean(t, Mode::Evict);
            self.unlock_shard(t);
            if evicted? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Compacts shard `s` when its garbage outweighs its live entries (at most two chunks
    /// per call, so one write never pays for a whole shard).
    pub(super) fn maybe_compact(&mut self, s: u32) -> Result<()> {
        for _ in 0..2 {
            let sh = self.shard(s);
            let garbage = get(&sh.garbage);
            if get(&sh.head) == get(&sh.tail)
                || garbage < 4 * self.geo.unit()
                || garbage <= get(&sh.entry_bytes)
            {
                return Ok(());
            }
            if !self.clean(s, Mode::Compact)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Removes shard `s`'s entries whose ttl has passed; returns how many.
    pub(super) fn purge_locked(&mut self, s: u32) -> Result<u64> {
        let Some((unit, bits)) = table_parts(get(&self.shard(s).table)) else {
            return Ok(0);
        };
        let toff = self.geo.heap_at(self.geo.unit_start(unit));
        let now = now_ms();
        let mut purged = 0;
        for idx in 0..1u64 << bits {
            let slot = get(self.slot_word(toff, idx)?);
            if !slot_live(slot) {
                continue;
            }
            let found = self.found_at(s, slot_heap(slot))?;
            if !found.pending() && found.expired_at(now) {
                let mut key = Vec::new();
                self.entry_key(found.heap, &mut key)?;
                self.kill_slot(s, toff, idx, &found)?;
                self.log_change(s, ChangeOp::Expire, &key);
                purged += 1;
            }
        }
        Ok(purged)
    }

    /// Frees the units shard `s` owns but no longer references (after an allocator died).
    pub(super) fn sweep_shard(&mut self, s: u32) -> Result<()> {
        let mut keep = self.chain(s)?;
        if let Some((unit, bits)) = table_parts(get(&self.shard(s).table)) {
            keep.push((unit, self.geo.units_for_table(bits)));
        }
        self.sweep_units(s, &UnitSet::new(keep))
    }

    /// Repairs shard `s` after its lock's holder died (DESIGN.md, "What a process killed at
    /// each step leaves behind"): validates the table and the chain, walks every entry,
    /// drops slots that point at anything but a sound entry, recounts, sweeps.
    pub(super) fn recover_shard(&mut self, s: u32) -> Result<()> {
        let sh = self.shard(s);
        // 1. The table.
        let mut table = table_parts(get(&sh.table));
        if let Some((unit, bits)) = table {
            let units = self.geo.units_for_table(bits);
            let toff = self.geo.heap_at(self.geo.unit_start(unit));
            if self.chunk_desc(s, unit, units, true).is_none()
                || !self.mem().contains(toff, 8u64 << bits)
            {
                // SYNC POINT: Release pairs with readers' Acquire load of the descriptor.
                sh.table.store(0, Ordering::Release);
                table = None;
            }
        } else if get(&sh.table) != 0 {
            // SYNC POINT: as above.
            sh.table.store(0, Ordering::Release);
        }
        // 2. The chain, and every entry in it.
        let chunks = self.chain(s)?;
        let mut entries: HashMap<u64, (u64, u64, u8)> = HashMap::new(); // heap -> (size, user bytes, flags)
        let mut appended = 0u64;
        let mut head_bounds = HashSet::new();
        for (i, &(unit, _)) in chunks.iter().enumerate() {
            let ch = self.chunk(unit)?;
            let used = get(&ch.used);
            let mut at = CHUNK_HEADER_SIZE;
            while at < used {
                if i == 0 {
                    head_bounds.insert(at);
                }
                let Some(w) = self.walk_entry(unit, at, used) else {
                    put(&self.chunk(unit)?.used, at); // a torn or damaged tail: cut it off
                    break;
                };
                entries.insert(
                    w.heap,
                    (w.size, user_bytes(w.key.len(), w.val_len), w.flags),
                );
                appended += w.size;
                at += w.size;
            }
            if i == 0 {
                head_bounds.insert(at);
            }
        }
        // 3. Slots: keep those that point at a sound entry of this shard, once.
        let (mut count, mut pending, mut live, mut entry_bytes, mut tombstones) = (0, 0, 0, 0, 0);
        if let Some((unit, bits)) = table {
            let toff = self.geo.heap_at(self.geo.unit_start(unit));
            let mut referenced = HashSet::new();
            for idx in 0..1u64 << bits {
                let w = self.slot_word(toff, idx)?;
                let slot = get(w);
                if slot == SLOT_TOMBSTONE {
                    tombstones += 1;
                    continue;
                }
                if !slot_live(slot) {
                    continue;
                }
                let heap = slot_heap(slot);
                let sound = entries.get(&heap).copied().filter(|_| {
                    referenced.insert(heap)
                        && self.entry_hash(s, heap).is_ok_and(|h| {
                            format::tag_of(h) == slot_tag(slot) && self.geo.shard_of(h) == s
                        })
                });
                match sound {
                    Some((size, user, flags)) => {
                        entry_bytes += size;
                        if flags & FLAG_PENDING != 0 {
                            pending += 1;
                        } else {
                            count += 1;
                            live += user;
                        }
                    }
                    None => {
                        // SYNC POINT: Release pairs with readers' Acquire slot loads.
                        w.store(SLOT_TOMBSTONE, Ordering::Release);
                        tombstones += 1;
                    }
                }
            }
        }
        // 4. The shard's fields.
        let sh = self.shard(s);
        put(&sh.count, count);
        put(&sh.pending, pending);
        put(&sh.live_bytes, live);
        put(&sh.entry_bytes, entry_bytes);
        put(&sh.garbage, appended.saturating_sub(entry_bytes));
        put(&sh.tombstones, tombstones);
        put(&sh.data_units, chunks.iter().map(|&(_, n)| n).sum());
        match (chunks.first(), chunks.last()) {
            (Some(&(first, _)), Some(&(last, _))) => {
                put(&sh.head, first + 1);
                put(&sh.tail, last + 1);
                if !head_bounds.contains(&get(&sh.cursor)) {
                    put(&sh.cursor, CHUNK_HEADER_SIZE);
                }
            }
            _ => {
                put(&sh.head, 0);
                put(&sh.tail, 0);
                put(&sh.cursor, 0);
            }
        }
        // 5. The change log: a record the dead holder was writing is abandoned.
        put(&sh.log_wend, get(&sh.log_tail));
        // 6. Units it held but nothing references.
        self.sweep_shard(s)?;
        // 7. The global budgets, re-derived from every shard's counts.
        let (mut all_entries, mut all_bytes) = (0u64, 0u64);
        for t in 0..self.geo.shards {
            let sh = self.shard(t);
            all_entries = all_entries.wrapping_add(get(&sh.count));
            all_bytes = all_bytes.wrapping_add(get(&sh.live_bytes));
        }
        let a = &self.header().alloc;
        // SYNC POINT: Relaxed: budget counters (see `reserve`).
        a.entries.store(all_entries, Ordering::Relaxed);
        a.live_bytes.store(all_bytes, Ordering::Relaxed);
        Ok(())
    }
}
