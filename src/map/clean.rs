//! Keeping a shard in shape: compaction (moving the live entries out of the oldest chunk so
//! it can be freed), CLOCK eviction (a hand over the shard's entries in log order: a
//! referenced entry loses its bit and stays, an unreferenced one goes), and the repairs
//! after a death: shard recovery and the sweep of units nobody references. Everything here
//! runs under the shard's lock.

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
use crate::segment::layout::{
    EntryHeader, CHUNK_DATA, CHUNK_HEADER_SIZE, ENTRY_HEADER_SIZE, MAP_LOG_BYTES, SHARD_DIRTY,
};

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
// counters, hand) are made under the shard's lock, whose Acquire/Release orders them
// between holders; slots and table descriptors that readers follow are stored with Release,
// and `frees` is bumped with Release before any of the shard's units is freed.
fn get(w: &AtomicU64) -> u64 {
    w.load(Ordering::Relaxed)
}

fn put(w: &AtomicU64, v: u64) {
    w.store(v, Ordering::Relaxed)
}

/// Most entries one eviction looks at before it gives up (two sweeps of the hand over a
/// large shard; more would make one `set` pay for the whole shard).
const HAND_STEPS: u64 = 1 << 16;

impl MapSegment {
    /// The data chunks of shard `s`, oldest first, as `(first unit, units)`. A link that
    /// does not lead to a sound chunk of this shard (damage, or a death mid-link) ends the
    /// chain there, and the chain is cut at that point. Bounded by a visited set.
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
        // SYNC POINT: Acquire pairs with the allocator's Release stores of descriptors, and
        // the stamp's Acquire with its Release store in `append_entry`.
        let d = self.desc(self.geo.unit_of(heap))?.load(Ordering::Acquire);
        if hdr.stamp.load(Ordering::Acquire) != stamp(self.seed, d, heap) {
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

    /// The slot (table offset, index) of shard `s` that points at `heap`, if any: whether
    /// the entry is live.
    fn slot_of(&self, s: u32, hash: u64, heap: u64) -> Option<(u64, u64)> {
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
                return Some((toff, idx));
            }
        }
        None
    }

    fn found_of(&self, w: &Walked) -> Found {
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
            frees: 0,
        }
    }

    /// Tells readers of shard `s` that its units are about to change hands.
    pub(super) fn bump_frees(&self, s: u32) {
        // SYNC POINT: Release pairs with the Acquire loads of `frees` by readers (before and,
        // after an Acquire fence, after their lookup): made before the units are freed, so a
        // reader that copied from them after they were reused sees it moved.
        self.shard(s).frees.fetch_add(1, Ordering::Release);
    }

    /// Frees a chunk of shard `s` (readers told first).
    pub(super) fn free_chunk(&mut self, s: u32, unit: u64, units: u64) -> Result<()> {
        self.bump_frees(s);
        self.free_units(unit, units)
    }

    /// Compaction: moves the live entries of shard `s`'s oldest chunk to the tail (drops
    /// expired entries and dead claims on the way) and frees the chunk. Never touches the
    /// tail chunk. Moves may use the allocator's reserve (freeing space must not need
    /// space writes took). Returns whether a chunk was freed.
    pub(super) fn compact_head(&mut self, s: u32) -> Result<bool> {
        let sh = self.shard(s);
        let head = get(&sh.head);
        if head == 0 || head == get(&sh.tail) {
            return Ok(false);
        }
        let unit = head - 1;
        let ch = self.chunk(unit)?;
        // SYNC POINT: Relaxed, see the top of the file.
        let units = u64::from(ch.units.load(Ordering::Relaxed));
        let bytes = units << self.geo.unit_shift;
        let used = get(&ch.used).min(bytes);
        let next = get(&ch.next);
        if next == 0 {
            return Ok(false); // a broken chain: recovery's business
        }
        let now = now_ms();
        let mut at = CHUNK_HEADER_SIZE;
        while at < used {
            let Some(w) = self.walk_entry(unit, at, used) else {
                // Damage inside the log: leave the chunk, and let the next holder's repair
                // cut it and drop the slots that point past the damage.
                // SYNC POINT: Relaxed: the shard's own flag, under its lock.
                self.shard(s).flags.fetch_or(SHARD_DIRTY, Ordering::Relaxed);
                return Err(Error::corrupt(
                    self.path(),
                    "a damaged entry in a shard's log",
                ));
            };
            at += w.size;
            let Some((toff, idx)) = self.slot_of(s, w.hash, w.heap) else {
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
            }
            self.move_entry(s, &w, toff, idx)?;
        }
        // Everything in the chunk is dead or moved: free it.
        let sh = self.shard(s);
        put(&sh.head, next);
        put(&sh.data_units, get(&sh.data_units).saturating_sub(units));
        put(
            &sh.garbage,
            get(&sh.garbage).saturating_sub(bytes - CHUNK_HEADER_SIZE),
        );
        if (get(&sh.hand) >> 32).saturating_sub(1) == unit {
            put(&sh.hand, 0);
        }
        self.free_chunk(s, unit, units)?;
        Ok(true)
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

    /// Copies the live entry `w` to the shard's tail and switches its slot to the copy; the
    /// old copy becomes garbage.
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
        let heap = self.append_entry(s, &entry, true)?;
        let slot = self.slot_word(toff, idx)?;
        // SYNC POINT: Release pairs with readers' Acquire slot loads: the copy is complete.
        slot.store(make_slot(format::tag_of(w.hash), heap), Ordering::Release);
        let sh = self.shard(s);
        put(&sh.garbage, get(&sh.garbage) + w.size);
        drop(keep);
        Ok(())
    }

    /// CLOCK: moves shard `s`'s hand over its entries in log order until it evicts one
    /// (true) — an entry read since the hand last passed loses its bit and stays, an
    /// expired one goes first — or finds none to evict (false). Claims are never evicted.
    /// Eviction needs no space: the evicted entry's bytes become garbage for compaction.
    pub(super) fn evict_one(&mut self, s: u32) -> Result<bool> {
        let chunks = self.chain(s)?;
        if chunks.is_empty() {
            return Ok(false);
        }
        let sh = self.shard(s);
        let hand = get(&sh.hand);
        // The hand names (chunk's first unit + 1) << 32 | offset in the chunk.
        let mut ci = chunks
            .iter()
            .position(|&(u, _)| hand >> 32 == u + 1)
            .unwrap_or(0);
        let mut at = if hand >> 32 == chunks[ci].0 + 1 {
            hand & 0xFFFF_FFFF
        } else {
            CHUNK_HEADER_SIZE
        };
        let now = now_ms();
        let budget =
            (2 * (get(&sh.count) + get(&sh.pending)) + chunks.len() as u64 + 2).min(HAND_STEPS);
        let mut steps = 0u64;
        let mut result = false;
        while steps < budget {
            let (unit, _) = chunks[ci];
            let used = get(&self.chunk(unit)?.used);
            let walked = if at >= CHUNK_HEADER_SIZE && at < used && at % 8 == 0 {
                self.walk_entry(unit, at, used)
            } else {
                None
            };
            let Some(w) = walked else {
                // The end of this chunk (or a spot that is not an entry): the next chunk,
                // round to the oldest after the newest.
                ci = (ci + 1) % chunks.len();
                at = CHUNK_HEADER_SIZE;
                steps += 1;
                continue;
            };
            steps += 1;
            at += w.size;
            let Some((toff, idx)) = self.slot_of(s, w.hash, w.heap) else {
                continue; // garbage
            };
            if w.flags & FLAG_PENDING != 0 {
                continue;
            }
            let found = self.found_of(&w);
            if found.expired_at(now) {
                self.kill_slot(s, toff, idx, &found)?;
                self.log_change(s, ChangeOp::Expire, &w.key);
                result = true;
                break;
            }
            if w.meta & META_REF != 0 {
                // A second chance: clear the bit in place (a reader may set it again).
                if let Some(hdr) = self.entry_header(w.heap) {
                    // SYNC POINT: Relaxed: the bit publishes nothing (see `touch`).
                    let _ = hdr.meta.compare_exchange(
                        w.meta,
                        w.meta & !META_REF,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                continue;
            }
            self.kill_slot(s, toff, idx, &found)?;
            self.log_change(s, ChangeOp::Evict, &w.key);
            result = true;
            break;
        }
        let (unit, _) = chunks[ci];
        put(&self.shard(s).hand, (unit + 1) << 32 | at);
        Ok(result)
    }

    fn entry_header(&self, heap: u64) -> Option<&EntryHeader> {
        // SAFETY: EntryHeader is all atomics.
        unsafe { self.mem().at::<EntryHeader>(self.geo.heap_at(heap)) }
    }

    /// Evicts (CLOCK) until a write of these deltas fits the budgets: this shard first,
    /// then other shards whose lock is free right now. False if nothing more could be
    /// evicted. Only for maps with an eviction policy.
    pub(super) fn make_room(&mut self, s: u32, d_entries: i64, d_bytes: i64) -> Result<bool> {
        if !self.config.evict {
            return Ok(false);
        }
        let mut rounds = 0u64;
        while self.over_budget(d_entries, d_bytes) {
            rounds += 1;
            if rounds > HAND_STEPS {
                return Ok(false);
            }
            if self.evict_one(s)? {
                continue;
            }
            if !self.elsewhere(s, |m, t| m.evict_one(t))? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Runs `f` on another shard whose lock is free right now (never waits: we hold a shard
    /// lock already, and two waiters each holding one would deadlock) until it returns true.
    pub(super) fn elsewhere(
        &mut self,
        s: u32,
        mut f: impl FnMut(&mut Self, u32) -> Result<bool>,
    ) -> Result<bool> {
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
            // SYNC POINT: Relaxed: the shard's own flag, under its lock.
            let dirty = self.shard(t).flags.load(Ordering::Relaxed) & SHARD_DIRTY != 0;
            let done = if dirty { Ok(false) } else { f(self, t) };
            self.unlock_shard(t);
            if done? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// After the heap had no room for a chunk of shard `s`: compacts this shard's oldest
    /// chunks (each compaction frees a chunk and fills part of another: it gains space only
    /// where there is garbage, so it goes round the shard's chunks until the heap gained a
    /// unit), evicting first if the map evicts, then other shards whose lock is free. True
    /// if the heap gained room.
    pub(super) fn make_space(&mut self, s: u32) -> Result<bool> {
        let before = self.free_unit_count();
        if self.compact_round(s, before)? {
            return Ok(true);
        }
        if self.config.evict {
            for _ in 0..HAND_STEPS {
                if get(&self.shard(s).garbage) >= 4 * self.geo.unit() || !self.evict_one(s)? {
                    break;
                }
            }
            if self.compact_round(s, before)? {
                return Ok(true);
            }
        }
        self.elsewhere(s, |m, t| m.compact_round(t, before))
    }

    /// Compacts shard `s`'s oldest chunks, at most once round, until the heap has more free
    /// units than `before`.
    fn compact_round(&mut self, s: u32, before: u64) -> Result<bool> {
        let rounds = self.chain(s)?.len();
        for _ in 0..rounds {
            match self.compact_head(s) {
                Ok(true) => {}
                Ok(false) | Err(Error::MapFull { .. }) => return Ok(false),
                Err(e) => return Err(e),
            }
            if self.free_unit_count() > before {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Compacts shard `s` when its garbage outweighs half its live entries (at most two
    /// chunks per call, so one write never pays for a whole shard).
    pub(super) fn maybe_compact(&mut self, s: u32) -> Result<()> {
        for _ in 0..2 {
            let sh = self.shard(s);
            let garbage = get(&sh.garbage);
            if get(&sh.head) == get(&sh.tail)
                || garbage < 4 * self.geo.unit()
                || garbage * 2 <= get(&sh.entry_bytes)
            {
                return Ok(());
            }
            match self.compact_head(s) {
                Ok(true) => {}
                Ok(false) | Err(Error::MapFull { .. }) => return Ok(()),
                Err(e) => return Err(e),
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
        self.bump_frees(s);
        self.sweep_units(s, &UnitSet::new(keep))
    }

    /// Repairs shard `s` after its lock's holder died or a repair was cut short (DESIGN.md,
    /// "What a process killed at each step leaves behind"): validates the table and the
    /// chain, walks every entry, drops slots that point at anything but a sound entry,
    /// recounts, forces watchers to re-check, sweeps. Idempotent: a death during it is
    /// repaired by the next holder (the dirty flag stays until the end).
    pub(super) fn recover_shard(&mut self, s: u32) -> Result<()> {
        let sh = self.shard(s);
        // SYNC POINT: Relaxed: the shard's own flag, under its lock.
        sh.flags.fetch_or(SHARD_DIRTY, Ordering::Relaxed);
        self.bump_frees(s);
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
        let mut spent = 0u64; // bytes of the chunks given to entries (sealed chunks whole)
        for (i, &(unit, units)) in chunks.iter().enumerate() {
            let ch = self.chunk(unit)?;
            let used = get(&ch.used);
            let mut at = CHUNK_HEADER_SIZE;
            while at < used {
                let Some(w) = self.walk_entry(unit, at, used) else {
                    put(&self.chunk(unit)?.used, at); // a torn or damaged tail: cut it off
                    break;
                };
                entries.insert(
                    w.heap,
                    (w.size, user_bytes(w.key.len(), w.val_len), w.flags),
                );
                at += w.size;
            }
            spent += if i + 1 == chunks.len() {
                at - CHUNK_HEADER_SIZE
            } else {
                (units << self.geo.unit_shift) - CHUNK_HEADER_SIZE
            };
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
        // 4. The shard's fields, and the global budgets by the difference.
        let sh = self.shard(s);
        let (old_count, old_live) = (get(&sh.count), get(&sh.live_bytes));
        put(&sh.count, count);
        put(&sh.pending, pending);
        put(&sh.live_bytes, live);
        put(&sh.entry_bytes, entry_bytes);
        put(&sh.garbage, spent.saturating_sub(entry_bytes));
        put(&sh.tombstones, tombstones);
        put(&sh.data_units, chunks.iter().map(|&(_, n)| n).sum());
        put(&sh.hand, 0);
        match (chunks.first(), chunks.last()) {
            (Some(&(first, _)), Some(&(last, _))) => {
                put(&sh.head, first + 1);
                put(&sh.tail, last + 1);
            }
            _ => {
                put(&sh.head, 0);
                put(&sh.tail, 0);
            }
        }
        self.adjust_budget(
            count as i64 - old_count as i64,
            live as i64 - old_live as i64,
        );
        // 5. The change log: the dead holder may have claimed ring bytes (overwriting old
        // records) and may have committed a change it never logged. Move both ends a whole
        // ring ahead: every watcher then finds the shard overflowed and re-checks it.
        let tail = get(&sh.log_tail);
        let wend = get(&sh.log_wend).clamp(tail, tail + MAP_LOG_BYTES);
        let end = wend + MAP_LOG_BYTES;
        put(&sh.log_wend, end);
        std::sync::atomic::fence(Ordering::Release);
        // SYNC POINT: Release pairs with watchers' Acquire load of `log_tail`.
        sh.log_tail.store(end, Ordering::Release);
        // 6. Units it held but nothing references.
        self.sweep_shard(s)?;
        // SYNC POINT: Relaxed: the shard's own flag, under its lock.
        self.shard(s)
            .flags
            .fetch_and(!SHARD_DIRTY, Ordering::Relaxed);
        Ok(())
    }
}
