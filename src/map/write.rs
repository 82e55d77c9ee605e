//! Writing: everything here runs under one shard's lock (`lock_shard`), which survives its
//! holder's death (the next holder recovers the shard first, `clean.rs`).
//!
//! A change writes a new entry at the shard's log tail, then publishes it with one Release
//! store of its table slot; the old copy becomes garbage in place. Deletes store a
//! tombstone; clear publishes "no table". Every change is logged (`log.rs`) and, after the
//! unlock, wakes watchers that announced themselves.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::alloc::wake_one;
use super::format::{
    self, entry_size, make_lens, make_meta, make_slot, make_table, slot_heap, slot_live, slot_tag,
    stamp, table_parts, user_bytes, FLAG_PENDING, MAX_KEY, MAX_PROBE, MAX_TABLE_BITS, SLOT_EMPTY,
    SLOT_TOMBSTONE,
};
use super::log::ChangeOp;
use super::read::Found;
use super::{expiry_after, MapSegment, TAG_NUMBER};
use crate::error::{Error, Result};
use crate::segment::layout::{
    ChunkHeader, EntryHeader, CHUNK_DATA, CHUNK_HEADER_SIZE, ENTRY_HEADER_SIZE, SHARD_DIRTY,
};
use crate::sync::lock::{self, Acquired};

/// What `claim` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The key has a value (copied into the caller's buffer).
    Value(Found),
    /// Another live handle (this token) is computing the value.
    Pending(u32),
    /// This handle now holds the claim: compute the value and `set` it (or `unclaim`).
    Claimed,
}

/// The slots a write needs, found by one probe under the lock.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    /// File offset of the table's slot array and log2 of its slots.
    pub table: Option<(u64, u32)>,
    /// The key's slot index and its entry.
    pub existing: Option<(u64, Found, u64)>,
    /// Where a new key would go (first tombstone or empty slot on the way).
    pub free: Option<u64>,
}

/// What a new entry is made of.
pub(super) struct NewEntry<'k> {
    pub key: &'k [u8],
    pub tag: u8,
    pub flags: u8,
    /// The value's bytes (may be a view of shared memory: read through the pointer only).
    pub src: *const u8,
    pub len: u64,
    pub expires_ms: u64,
    pub ttl_ms: u64,
}

impl<'k> NewEntry<'k> {
    /// A plain value (no flags) of `len` bytes at `src`, expiring at `expires_ms` (0: never).
    fn value(
        key: &'k [u8],
        tag: u8,
        src: *const u8,
        len: u64,
        expires_ms: u64,
        ttl_ms: u64,
    ) -> Self {
        NewEntry {
            key,
            tag,
            flags: 0,
            src,
            len,
            expires_ms,
            ttl_ms,
        }
    }
}

impl MapSegment {
    /// Takes shard `s`'s lock, recovering the shard if its holder died and sweeping it if
    /// an allocator died since it last swept.
    pub(super) fn lock_shard(&mut self, s: u32) -> Result<()> {
        if self.seg.read_only() {
            return Err(Error::ReadOnly {
                path: self.path().to_owned(),
            });
        }
        let acquired = {
            let word = &self.shard(s).lock;
            self.take_lock(word, "a shard lock")?
        };
        let ready = self.cover_heap().and_then(|()| {
            // SYNC POINT: Relaxed: the shard's own flag, read under its lock.
            let dirty = self.shard(s).flags.load(Ordering::Relaxed) & SHARD_DIRTY != 0;
            if acquired == Acquired::OwnerDied || dirty {
                self.recover_shard(s)?;
                self.notify();
            }
            // SYNC POINT: Acquire pairs with the Release bump in `recover_alloc`; Relaxed:
            // `swept_epoch` is this shard's, read under its lock.
            let epoch = self.header().alloc.sweep_epoch.load(Ordering::Acquire);
            if self.shard(s).swept_epoch.load(Ordering::Relaxed) != epoch {
                self.sweep_shard(s)?;
            }
            Ok(())
        });
        if let Err(e) = ready {
            self.unlock_shard(s);
            return Err(e);
        }
        Ok(())
    }

    pub(super) fn unlock_shard(&self, s: u32) {
        lock::release(&self.shard(s).lock, self.seg.token(), &wake_one);
    }

    /// Maps the whole heap as it is now (a writer may follow any of its shard's chunks).
    fn cover_heap(&mut self) -> Result<()> {
        // SYNC POINT: Acquire pairs with the Release store of `units_total` in `alloc.rs`.
        let units = self
            .header()
            .alloc
            .units_total
            .load(Ordering::Acquire)
            .min(self.geo.heap_limit_units);
        let end = self.geo.heap_at(units << self.geo.unit_shift);
        if !self.cover(end)? {
            return Err(Error::corrupt(
                self.path(),
                "the file is shorter than the map's heap says",
            ));
        }
        Ok(())
    }

    /// Wakes watchers after a change, with a syscall only if one announced itself.
    pub(super) fn notify(&self) {
        // SYNC POINT: this SeqCst fence and the SeqCst loads in `any` pair with the SeqCst
        // announcement of a parked watcher (`MapWatcher::wait`), which then re-reads the
        // log tails (Dekker): either we see it and wake it, or it sees our log record.
        fence(Ordering::SeqCst);
        let waiters = self.announcements();
        if waiters.any() {
            let word = &self.header().notify.notify;
            // SYNC POINT: SeqCst, as above; the futex re-check pairs with it.
            word.fetch_add(1, Ordering::SeqCst);
            let liveness = self.seg.liveness();
            waiters.wake(word, &|t| liveness.is_alive(t));
        }
    }

    /// Runs `f` holding shard `s`'s lock, then unlocks and notifies. A panic inside (a
    /// broken internal assertion) marks the shard dirty before it lets go, so the next
    /// holder repairs it rather than trust a half-done change.
    fn in_shard<T>(&mut self, s: u32, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.lock_shard(s)?;
        let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(result) => result,
            Err(panic) => {
                // SYNC POINT: Relaxed: the shard's own flag; the unlock's Release publishes it.
                self.shard(s).flags.fetch_or(SHARD_DIRTY, Ordering::Relaxed);
                self.unlock_shard(s);
                std::panic::resume_unwind(panic);
            }
        };
        self.unlock_shard(s);
        self.notify();
        result
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(Error::invalid(
                self.path(),
                format!(
                    "a key must be 1 to {MAX_KEY} bytes of UTF-8, got {} bytes",
                    key.len()
                ),
            ));
        }
        Ok(())
    }

    fn check_value(&self, key: &[u8], len: u64) -> Result<()> {
        self.check_len(key.len(), len)
    }

    /// `set(key, value)`: stores `len` bytes from `src` with type `tag`. `ttl_ms`: `None`
    /// is the map's default, `Some(0)` none.
    ///
    /// # Safety
    /// `src` must be valid for reads of `len` bytes (it may be shared memory).
    pub unsafe fn set_raw(
        &mut self,
        key: &[u8],
        tag: u8,
        src: *const u8,
        len: u64,
        ttl_ms: Option<u64>,
    ) -> Result<()> {
        self.check_key(key)?;
        self.check_value(key, len)?;
        let hash = self.hash(key);
        let s = self.geo.shard_of(hash);
        let ttl = ttl_ms.unwrap_or(self.config.ttl_ms);
        let entry = NewEntry::value(key, tag, src, len, expiry_after(ttl), ttl);
        self.in_shard(s, |m| m.write_locked(s, hash, &entry, ChangeOp::Set))
    }

    /// `set` from a private slice.
    pub fn set(&mut self, key: &[u8], tag: u8, value: &[u8], ttl_ms: Option<u64>) -> Result<()> {
        // SAFETY: a slice is readable for its length.
        unsafe { self.set_raw(key, tag, value.as_ptr(), value.len() as u64, ttl_ms) }
    }

    /// `delete(key)`: whether a live value was removed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool> {
        self.check_key(key)?;
        let hash = self.hash(key);
        let s = self.geo.shard_of(hash);
        self.in_shard(s, |m| {
            m.delete_locked(s, hash, key, ChangeOp::Delete, false)
        })
    }

    /// `clear()`: empties every shard, one after another.
    pub fn clear(&mut self) -> Result<()> {
        for s in 0..self.geo.shards {
            self.in_shard(s, |m| m.clear_locked(s))?;
        }
        Ok(())
    }

    /// `incr(key, by)`: adds `by` to the number at `key` (a missing or expired key starts
    /// at 0 and gets `ttl_ms`, else the map's ttl; an existing one keeps its expiry).
    pub fn incr(&mut self, key: &[u8], by: f64, ttl_ms: Option<u64>) -> Result<f64> {
        self.check_key(key)?;
        let hash = self.hash(key);
        let s = self.geo.shard_of(hash);
        self.in_shard(s, |m| {
            let mut value = Vec::new();
            let current = m.current_locked(s, hash, key, Some(&mut value))?;
            let (base, expires, ttl) = match current {
                Some(found) => {
                    if found.tag != TAG_NUMBER || value.len() != 8 {
                        return Err(Error::NotANumber {
                            path: m.path().to_owned(),
                            key: String::from_utf8_lossy(key).into_owned(),
                        });
                    }
                    let n = f64::from_le_bytes(value[..8].try_into().expect("8 bytes"));
                    (n, found.expires_ms, found.ttl_ms)
                }
                None => {
                    let ttl = ttl_ms.unwrap_or(m.config.ttl_ms);
                    (0.0, expiry_after(ttl), ttl)
                }
            };
            let next = base + by;
            let bytes = next.to_le_bytes();
            let entry = NewEntry::value(key, TAG_NUMBER, bytes.as_ptr(), 8, expires, ttl);
            m.write_locked(s, hash, &entry, ChangeOp::Set)?;
            Ok(next)
        })
    }

    /// getOrSet's claim: the value if there is one, else who computes it (taking the claim
    /// over from a dead claimant, or making a new one for this handle).
    pub fn claim(&mut self, key: &[u8], out: &mut Vec<u8>) -> Result<Claim> {
        self.check_key(key)?;
        let hash = self.hash(key);
        let s = self.geo.shard_of(hash);
        let me = self.seg.token();
        self.in_shard(s, |m| {
            let probe = m.probe(s, hash, key, Some(out))?;
            if let Some((_, found, _)) = probe.existing {
                if found.pending() {
                    let token = pending_token(out);
                    if token == me {
                        return Ok(Claim::Claimed);
                    }
                    if token != 0 && m.seg.is_alive(token) {
                        return Ok(Claim::Pending(token));
                    }
                } else if !found.expired_now() {
                    return Ok(Claim::Value(found));
                }
            }
            let token = me.to_le_bytes();
            let entry = NewEntry {
                key,
                tag: 0,
                flags: FLAG_PENDING,
                src: token.as_ptr(),
                len: 4,
                expires_ms: 0,
                ttl_ms: 0,
            };
            m.write_probed(s, hash, &entry, probe, None)?;
            Ok(Claim::Claimed)
        })
    }

    /// Gives up this handle's claim on `key` (its computation failed); waiters try again.
    pub fn unclaim(&mut self, key: &[u8]) -> Result<bool> {
        self.check_key(key)?;
        let hash = self.hash(key);
        let s = self.geo.shard_of(hash);
        let me = self.seg.token();
        self.in_shard(s, |m| {
            let mut value = Vec::new();
            let probe = m.probe(s, hash, key, Some(&mut value))?;
            match probe.existing {
                Some((_, found, _)) if found.pending() && pending_token(&value) == me => {
                    m.delete_locked(s, hash, key, ChangeOp::Unclaim, true)
                }
                _ => Ok(false),
            }
        })
    }

    /// update()'s second half: stores the value only if the key still holds what the
    /// caller read (`expect`: the entry's identity, `None` for no live value), else returns
    /// false (the caller reads again and calls its function again). `ttl_ms`: `None` keeps
    /// an existing entry's expiry (a new one gets the map's ttl).
    ///
    /// # Safety
    /// As for [`set_raw`](Self::set_raw).
    pub unsafe fn compare_set_raw(
        &mut self,
        key: &[u8],
        expect: Option<(u64, u64)>,
        tag: u8,
        src: *const u8,
        len: u64,
        ttl_ms: Option<u64>,
    ) -> Result<bool> {
        self.check_key(key)?;
        self.check_value(key, len)?;
        let hash = self.hash(key);
        let s = self.geo.shard_of(hash);
        self.in_shard(s, |m| {
            let current = m.current_locked(s, hash, key, None)?;
            if current.map(|f| (f.heap, f.gen)) != expect {
                return Ok(false);
            }
            let (expires, ttl) = match (ttl_ms, current) {
                (None, Some(found)) => (found.expires_ms, found.ttl_ms),
                (ttl, _) => {
                    let ttl = ttl.unwrap_or(m.config.ttl_ms);
                    (expiry_after(ttl), ttl)
                }
            };
            let entry = NewEntry::value(key, tag, src, len, expires, ttl);
            m.write_locked(s, hash, &entry, ChangeOp::Set)?;
            Ok(true)
        })
    }

    /// update()'s second half when the new value is `undefined`: deletes the key only if it
    /// still holds what the caller read; false if it changed meanwhile.
    pub fn compare_delete(&mut self, key: &[u8], expect: Option<(u64, u64)>) -> Result<bool> {
        self.check_key(key)?;
        let hash = self.hash(key);
        let s = self.geo.shard_of(hash);
        self.in_shard(s, |m| {
            let current = m.current_locked(s, hash, key, None)?;
            if current.map(|f| (f.heap, f.gen)) != expect {
                return Ok(false);
            }
            if current.is_some() {
                m.delete_locked(s, hash, key, ChangeOp::Delete, false)?;
            }
            Ok(true)
        })
    }

    /// getOrSet()'s result: stores the value only if the key still holds this handle's
    /// claim (nobody set or deleted the key meanwhile); returns whether it did.
    ///
    /// # Safety
    /// As for [`set_raw`](Self::set_raw).
    pub unsafe fn fulfill_raw(
        &mut self,
        key: &[u8],
        tag: u8,
        src: *const u8,
        len: u64,
        ttl_ms: Option<u64>,
    ) -> Result<bool> {
        self.check_key(key)?;
        self.check_value(key, len)?;
        let hash = self.hash(key);
        let s = self.geo.shard_of(hash);
        let me = self.seg.token();
        let ttl = ttl_ms.unwrap_or(self.config.ttl_ms);
        self.in_shard(s, |m| {
            let mut value = Vec::new();
            let probe = m.probe(s, hash, key, Some(&mut value))?;
            match probe.existing {
                Some((_, found, _)) if found.pending() && pending_token(&value) == me => {}
                _ => return Ok(false),
            }
            let entry = NewEntry::value(key, tag, src, len, expiry_after(ttl), ttl);
            m.write_probed(s, hash, &entry, probe, Some(ChangeOp::Set))?;
            Ok(true)
        })
    }

    /// Removes entries whose ttl has passed; returns how many.
    pub fn purge_stale(&mut self) -> Result<u64> {
        let mut purged = 0;
        for s in 0..self.geo.shards {
            purged += self.in_shard(s, |m| m.purge_locked(s))?;
        }
        Ok(purged)
    }

    // ---- under the lock -------------------------------------------------------------

    /// The key's live value (not a claim, not expired), read under the lock.
    fn current_locked(
        &mut self,
        s: u32,
        hash: u64,
        key: &[u8],
        out: Option<&mut Vec<u8>>,
    ) -> Result<Option<Found>> {
        let probe = self.probe(s, hash, key, out)?;
        Ok(probe
            .existing
            .map(|(_, found, _)| found)
            .filter(Found::live_now))
    }

    /// Finds the key's slot and the first free slot on its probe run.
    pub(super) fn probe(
        &mut self,
        s: u32,
        hash: u64,
        key: &[u8],
        mut out: Option<&mut Vec<u8>>,
    ) -> Result<Probe> {
        // SYNC POINT: Relaxed: only this shard's lock holder (us) stores its table, slots
        // and entries; the lock's Acquire ordered every earlier holder's stores before us.
        let td = self.shard(s).table.load(Ordering::Relaxed);
        let Some((unit, bits)) = table_parts(td) else {
            return Ok(Probe {
                table: None,
                existing: None,
                free: None,
            });
        };
        let toff = self.geo.heap_at(self.geo.unit_start(unit));
        if !self.cover(toff + (8u64 << bits))? {
            return Err(Error::corrupt(self.path(), "a table lies beyond the heap"));
        }
        let mask = (1u64 << bits) - 1;
        let tag = format::tag_of(hash);
        let mut free = None;
        let mut existing = None;
        for i in 0..(MAX_PROBE as u64).min(1 << bits) {
            let idx = (hash + i) & mask;
            let w = self.slot_word(toff, idx)?;
            // SYNC POINT: Relaxed: see above.
            let slot = w.load(Ordering::Relaxed);
            if slot == SLOT_EMPTY {
                free.get_or_insert(idx);
                break;
            }
            if slot == SLOT_TOMBSTONE {
                free.get_or_insert(idx);
                continue;
            }
            if slot_tag(slot) != tag {
                continue;
            }
            // Our shard's entry: checked against its unit (damage is reported, not followed).
            let heap = slot_heap(slot);
            let found = self.found_at(s, heap)?;
            let l = self.entry_lens(heap)?;
            let key_off = self.geo.heap_at(heap) + ENTRY_HEADER_SIZE;
            if l.key_len != key.len() || self.mem().equals(key_off, key) != Some(true) {
                continue;
            }
            if let Some(out) = out.as_deref_mut() {
                if !self
                    .mem()
                    .copy_out(key_off + key.len() as u64, l.val_len, out)
                {
                    return Err(Error::corrupt(
                        self.path(),
                        "an entry's value lies outside the mapping",
                    ));
                }
            }
            existing = Some((idx, found, slot));
            break;
        }
        Ok(Probe {
            table: Some((toff, bits)),
            existing,
            free,
        })
    }

    /// Writes `entry` as the key's value (budgets, eviction, table growth included).
    pub(super) fn write_locked(
        &mut self,
        s: u32,
        hash: u64,
        entry: &NewEntry<'_>,
        op: ChangeOp,
    ) -> Result<()> {
        let probe = self.probe(s, hash, entry.key, None)?;
        self.write_probed(s, hash, entry, probe, Some(op))
    }

    pub(super) fn write_probed(
        &mut self,
        s: u32,
        hash: u64,
        entry: &NewEntry<'_>,
        mut probe: Probe,
        op: Option<ChangeOp>,
    ) -> Result<()> {
        let is_value = entry.flags & FLAG_PENDING == 0;
        let new_user = if is_value {
            user_bytes(entry.key.len(), entry.len)
        } else {
            0
        };
        // Budgets: a new value takes an entry, and any growth of the bytes. Eviction may
        // remove or move this very key, so the deltas are worked out again after it.
        let mut deltas = self.deltas(&probe, is_value, new_user)?;
        let mut rounds = 0;
        let mut purged = false;
        while self.over_budget(deltas.0, deltas.1) {
            if !purged {
                // Entries whose ttl has passed still count until purged: a map that does
                // not evict must not refuse a write while dead entries hold its budget.
                purged = true;
                let mut n = self.purge_locked(s)?;
                if self.over_budget(deltas.0, deltas.1) {
                    self.elsewhere(s, |m, t| {
                        n += m.purge_locked(t)?;
                        Ok(!m.over_budget(deltas.0, deltas.1))
                    })?;
                }
                if n > 0 {
                    probe = self.probe(s, hash, entry.key, None)?;
                    deltas = self.deltas(&probe, is_value, new_user)?;
                    continue;
                }
            }
            if !self.config.evict {
                return Err(self.full_error());
            }
            // With an eviction policy a write is never refused for its budget: if nothing
            // could be evicted (other shards busy, or only claims left) it goes over by
            // this value, and later writes evict.
            let room = self.make_room(s, deltas.0, deltas.1)?;
            probe = self.probe(s, hash, entry.key, None)?;
            deltas = self.deltas(&probe, is_value, new_user)?;
            rounds += 1;
            if !room || rounds >= 3 {
                break;
            }
        }
        self.place(s, hash, entry, &mut probe)?;
        self.adjust_budget(deltas.0, deltas.1);
        if let Some(op) = op {
            self.log_change(s, op, entry.key);
        }
        self.maybe_compact(s)?;
        Ok(())
    }

    /// How a write changes the budget counters: (entries, bytes).
    fn deltas(&self, probe: &Probe, is_value: bool, new_user: u64) -> Result<(i64, i64)> {
        let old_value = probe.existing.map(|(_, f, _)| f).filter(|f| !f.pending());
        let old_user = match old_value {
            Some(f) => self.entry_user_bytes(f.heap)?,
            None => 0,
        };
        Ok((
            i64::from(is_value) - i64::from(old_value.is_some()),
            new_user as i64 - old_user as i64,
        ))
    }

    /// Appends the entry and switches the key's slot to it (growing the table first if
    /// needed), with the shard's counters.
    fn place(&mut self, s: u32, hash: u64, entry: &NewEntry<'_>, probe: &mut Probe) -> Result<()> {
        if probe.existing.is_none() && !self.table_has_room(s, probe)? {
            let grown = self.rebuild_table(s, 1)?;
            debug_assert!(grown);
            *probe = self.probe(s, hash, entry.key, None)?;
            if probe.free.is_none() {
                // Still no room within MAX_PROBE (a pathological run): grow again.
                self.rebuild_table(s, 2)?;
                *probe = self.probe(s, hash, entry.key, None)?;
            }
        }
        let heap = self.append_entry(s, entry, false)?;
        let size = entry_size(entry.key.len(), entry.len);
        let (toff, _) = probe.table.expect("a table exists after table_has_room");
        let idx = match probe.existing {
            Some((idx, _, _)) => idx,
            None => probe.free.ok_or_else(|| {
                Error::corrupt(self.path(), "no free slot after growing the table")
            })?,
        };
        let w = self.slot_word(toff, idx)?;
        // SYNC POINT: Relaxed: only the lock holder stores slots of this shard.
        let was = w.load(Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire load of the slot by readers
        // (`read.rs`): the entry (stamp last, Release) is complete before it is reachable.
        w.store(make_slot(format::tag_of(hash), heap), Ordering::Release);
        let sh = self.shard(s);
        let is_value = entry.flags & FLAG_PENDING == 0;
        // SYNC POINT: Relaxed for the shard's counters: only the lock holder writes them,
        // and the lock's Release/Acquire orders them between holders.
        let add = |w: &AtomicU64, d: u64| {
            w.store(w.load(Ordering::Relaxed).wrapping_add(d), Ordering::Relaxed)
        };
        let sub = |w: &AtomicU64, d: u64| {
            w.store(
                w.load(Ordering::Relaxed).saturating_sub(d),
                Ordering::Relaxed,
            )
        };
        if was == SLOT_TOMBSTONE {
            sub(&sh.tombstones, 1);
        }
        add(&sh.entry_bytes, size);
        if is_value {
            add(&sh.count, 1);
            add(&sh.live_bytes, user_bytes(entry.key.len(), entry.len));
        } else {
            add(&sh.pending, 1);
        }
        if let Some((_, old, _)) = probe.existing {
            let old_size = self.entry_size_at(old.heap)?;
            let sh = self.shard(s);
            sub(&sh.entry_bytes, old_size);
            add(&sh.garbage, old_size);
            if old.pending() {
                sub(&sh.pending, 1);
            } else {
                sub(&sh.count, 1);
                let old_user = self.entry_user_bytes(old.heap)?;
                sub(&self.shard(s).live_bytes, old_user);
            }
        }
        Ok(())
    }

    /// Removes the key (a tombstone in its slot). `claims`: remove a claim too.
    pub(super) fn delete_locked(
        &mut self,
        s: u32,
        hash: u64,
        key: &[u8],
        op: ChangeOp,
        claims: bool,
    ) -> Result<bool> {
        let probe = self.probe(s, hash, key, None)?;
        let Some((idx, found, _)) = probe.existing else {
            return Ok(false);
        };
        if found.pending() && !claims {
            return Ok(false);
        }
        let was_live = found.live_now();
        let (toff, _) = probe.table.expect("an existing key has a table");
        self.kill_slot(s, toff, idx, &found)?;
        self.log_change(s, op, key);
        Ok(was_live || op == ChangeOp::Expire || claims)
    }

    /// Turns slot `idx` (holding `found`) into a tombstone, with the counters and budgets.
    pub(super) fn kill_slot(&mut self, s: u32, toff: u64, idx: u64, found: &Found) -> Result<()> {
        let size = self.entry_size_at(found.heap)?;
        let user = if found.pending() {
            0
        } else {
            self.entry_user_bytes(found.heap)?
        };
        let w = self.slot_word(toff, idx)?;
        // SYNC POINT: Release pairs with readers' Acquire slot loads (a tombstone publishes
        // nothing, but keeps the slot's history in order with the entry stores before it).
        w.store(SLOT_TOMBSTONE, Ordering::Release);
        let sh = self.shard(s);
        // SYNC POINT: Relaxed: the shard's own counters, under its lock.
        let add = |w: &AtomicU64, d: u64| {
            w.store(w.load(Ordering::Relaxed).wrapping_add(d), Ordering::Relaxed)
        };
        let sub = |w: &AtomicU64, d: u64| {
            w.store(
                w.load(Ordering::Relaxed).saturating_sub(d),
                Ordering::Relaxed,
            )
        };
        add(&sh.tombstones, 1);
        sub(&sh.entry_bytes, size);
        add(&sh.garbage, size);
        if found.pending() {
            sub(&sh.pending, 1);
        } else {
            sub(&sh.count, 1);
            sub(&sh.live_bytes, user);
            self.adjust_budget(-1, -(user as i64));
        }
        Ok(())
    }

    fn clear_locked(&mut self, s: u32) -> Result<()> {
        let chunks = self.chain(s)?;
        let table = table_parts(self.shard(s).table.load(Ordering::Relaxed));
        let sh = self.shard(s);
        // SYNC POINT: Relaxed loads of the shard's own counters (under its lock).
        let count = sh.count.load(Ordering::Relaxed);
        let live = sh.live_bytes.load(Ordering::Relaxed);
        // SYNC POINT: Release pairs with readers' Acquire load of the table descriptor:
        // from here they find nothing in this shard.
        sh.table.store(0, Ordering::Release);
        // SYNC POINT: Relaxed: the shard's own fields, under its lock; a holder that dies
        // after this finds the shard empty and sweeps the units below (`recover_shard`).
        sh.head.store(0, Ordering::Relaxed);
        sh.tail.store(0, Ordering::Relaxed);
        sh.hand.store(0, Ordering::Relaxed);
        for w in [
            &sh.count,
            &sh.pending,
            &sh.live_bytes,
            &sh.garbage,
            &sh.tombstones,
            &sh.entry_bytes,
            &sh.data_units,
        ] {
            w.store(0, Ordering::Relaxed);
        }
        self.adjust_budget(-(count as i64), -(live as i64));
        self.log_change(s, ChangeOp::Clear, &[]);
        self.bump_frees(s);
        for (first, units) in chunks {
            self.free_units(first, units)?;
        }
        if let Some((unit, bits)) = table {
            let units = self.geo.units_for_table(bits);
            self.free_units(unit, units)?;
        }
        Ok(())
    }

    /// Whether the table has room for one more key without breaking its load limit (and a
    /// free slot on the key's run).
    fn table_has_room(&mut self, s: u32, probe: &Probe) -> Result<bool> {
        let Some((_, bits)) = probe.table else {
            return Ok(false);
        };
        let sh = self.shard(s);
        // SYNC POINT: Relaxed: the shard's own counters, under its lock.
        let used = sh.count.load(Ordering::Relaxed)
            + sh.pending.load(Ordering::Relaxed)
            + sh.tombstones.load(Ordering::Relaxed)
            + 1;
        Ok(probe.free.is_some() && used * 4 <= 3u64 << bits)
    }

    /// Builds a new table for shard `s` holding its live slots, `grow` (0 = as large as the
    /// live keys need, 1 = at least double for a new key, 2 = four times) and publishes it.
    pub(super) fn rebuild_table(&mut self, s: u32, grow: u32) -> Result<bool> {
        let old = table_parts(self.shard(s).table.load(Ordering::Relaxed));
        let sh = self.shard(s);
        // SYNC POINT: Relaxed: the shard's own counters, under its lock.
        let keys = sh.count.load(Ordering::Relaxed) + sh.pending.load(Ordering::Relaxed) + 1;
        // Sized to the keys (load at most 1/2 after a rebuild), not to the unit it sits in:
        // a dense table keeps a shard's slots on few cache lines, which is most of what a
        // lookup costs once a map outgrows the CPU's cache (a 16 KiB unit holds 2,048 slots;
        // spread over them, 150 keys would touch 150 lines instead of about 40).
        let mut bits = format::MIN_TABLE_BITS;
        while (1u64 << bits) < keys * 2 && bits < MAX_TABLE_BITS {
            bits += 1;
        }
        if let Some((_, old_bits)) = old {
            if grow > 0 {
                bits = bits.max(old_bits + grow - 1);
                if (keys + self.shard(s).tombstones.load(Ordering::Relaxed)) * 4 > 3u64 << old_bits
                {
                    bits = bits.max(old_bits + grow.min(1));
                }
                if grow == 2 {
                    bits = bits.max(old_bits + 1);
                }
            }
        }
        let mut live = Vec::new();
        if let Some((unit, old_bits)) = old {
            let toff = self.geo.heap_at(self.geo.unit_start(unit));
            let mem = self.mem();
            for i in 0..1u64 << old_bits {
                let w = mem.u64(toff + i * 8).ok_or_else(|| {
                    Error::corrupt(self.path(), "a table lies outside the mapping")
                })?;
                // SYNC POINT: Relaxed: our shard's slots, under its lock.
                let slot = w.load(Ordering::Relaxed);
                if slot_live(slot) {
                    let hash = self.entry_hash(s, slot_heap(slot))?;
                    live.push((hash, slot));
                }
            }
        }
        loop {
            if bits > MAX_TABLE_BITS {
                return Err(Error::MapFull {
                    path: self.path().to_owned(),
                    reason: "a shard's table cannot grow further".into(),
                });
            }
            let units = self.geo.units_for_table(bits);
            let first = self.alloc_units(s, units, true, true)?;
            let toff = self.geo.heap_at(self.geo.unit_start(first));
            if !self.cover(toff + (8u64 << bits))? {
                return Err(Error::corrupt(
                    self.path(),
                    "a new table lies beyond the heap",
                ));
            }
            let mem = self.mem();
            let mask = (1u64 << bits) - 1;
            for i in 0..1u64 << bits {
                // SYNC POINT: Relaxed: the table is not published yet.
                mem.u64(toff + i * 8)
                    .expect("covered")
                    .store(SLOT_EMPTY, Ordering::Relaxed);
            }
            let mut fits = true;
            'keys: for &(hash, slot) in &live {
                for i in 0..(MAX_PROBE as u64).min(1 << bits) {
                    let w = mem.u64(toff + ((hash + i) & mask) * 8).expect("covered");
                    // SYNC POINT: Relaxed: the table is not published yet.
                    if w.load(Ordering::Relaxed) == SLOT_EMPTY {
                        w.store(slot, Ordering::Relaxed);
                        continue 'keys;
                    }
                }
                fits = false;
                break;
            }
            if !fits {
                self.free_units(first, units)?;
                bits += 1;
                continue;
            }
            let sh = self.shard(s);
            // SYNC POINT: Release pairs with readers' Acquire load of the table descriptor:
            // every slot above is visible to whoever sees the new descriptor.
            sh.table.store(make_table(first, bits), Ordering::Release);
            // SYNC POINT: Relaxed: the shard's own counter, under its lock.
            sh.tombstones.store(0, Ordering::Relaxed);
            if let Some((unit, old_bits)) = old {
                let units = self.geo.units_for_table(old_bits);
                self.free_chunk(s, unit, units)?;
            }
            return Ok(true);
        }
    }

    /// Appends an entry at shard `s`'s log tail (a new chunk if it does not fit); returns
    /// its heap offset. The entry is complete (stamp stored last) when this returns, but not
    /// reachable until its slot is stored. `use_reserve`: the cleaner's moves may take the
    /// allocator's last units.
    pub(super) fn append_entry(
        &mut self,
        s: u32,
        entry: &NewEntry<'_>,
        use_reserve: bool,
    ) -> Result<u64> {
        let size = entry_size(entry.key.len(), entry.len);
        let (chunk, used) = self.tail_with_room(s, size, use_reserve)?;
        let heap = self.geo.unit_start(chunk) + used;
        let off = self.geo.heap_at(heap);
        let mem = self.mem();
        let unit = self.geo.unit_of(heap);
        // SYNC POINT: Relaxed: our shard's unit, under its lock (the allocator's stores to
        // it happened before our lock was taken or in this thread).
        let desc = self
            .desc(unit)
            .expect("allocated unit")
            .load(Ordering::Relaxed);
        let st = stamp(self.seed, desc, heap);
        // SAFETY: EntryHeader is all atomics; `tail_with_room` checked that `size` bytes from
        // `heap` lie in the chunk, which is mapped.
        let hdr = unsafe { mem.at::<EntryHeader>(off) }.expect("in the mapped chunk");
        // SYNC POINT: Relaxed stores, published by the Release store of the stamp below.
        hdr.meta
            .store(make_meta(st, entry.expires_ms, false), Ordering::Relaxed);
        hdr.ttl.store(entry.ttl_ms, Ordering::Relaxed);
        hdr.lens.store(
            make_lens(entry.key.len(), entry.tag, entry.flags, entry.len),
            Ordering::Relaxed,
        );
        let key_off = off + ENTRY_HEADER_SIZE;
        // SAFETY: `key` is a private slice; `src` is readable for `len` bytes (the caller's
        // contract); both destinations are inside the chunk (checked by `tail_with_room`).
        unsafe {
            mem.copy_in(key_off, entry.key.as_ptr(), entry.key.len() as u64);
            mem.copy_in(key_off + entry.key.len() as u64, entry.src, entry.len);
        }
        // SYNC POINT: Release pairs with the Acquire load of the stamp in `read_entry`: the
        // fields, key and value above are visible to whoever sees this stamp.
        hdr.stamp.store(st, Ordering::Release);
        let ch = self.chunk(chunk)?;
        // SYNC POINT: Release: pairs with the Acquire walks of a later lock holder (the
        // cleaner, recovery); the lock orders them too.
        ch.used.store(used + size, Ordering::Release);
        Ok(heap)
    }

    /// The tail chunk of shard `s` with `size` bytes free at its end (a new chunk, linked
    /// after the old tail, if it has not): `(first unit, used)`. When the heap has no room,
    /// makes some (compaction, and eviction if the map evicts) and tries again.
    fn tail_with_room(&mut self, s: u32, size: u64, use_reserve: bool) -> Result<(u64, u64)> {
        let mut attempts = 0;
        loop {
            // SYNC POINT: Relaxed: the shard's own fields, under its lock.
            let tail = self.shard(s).tail.load(Ordering::Relaxed);
            let mut rest = 0;
            if tail != 0 {
                let unit = tail - 1;
                let ch = self.chunk(unit)?;
                // SYNC POINT: Relaxed: written by lock holders only (the lock orders them).
                let units = u64::from(ch.units.load(Ordering::Relaxed));
                let used = ch.used.load(Ordering::Relaxed);
                let bytes = units << self.geo.unit_shift;
                if used >= CHUNK_HEADER_SIZE && used <= bytes && bytes - used >= size {
                    return Ok((unit, used));
                }
                rest = bytes.saturating_sub(used);
            }
            let units = self.geo.units_for(size);
            match self.alloc_units(s, units, false, use_reserve) {
                Ok(first) => return self.new_tail(s, tail, first, units, rest),
                Err(Error::MapFull { .. }) if !use_reserve && attempts < 4 => {
                    attempts += 1;
                    if !self.make_space(s)? && attempts > 1 {
                        return Err(self.heap_full());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes the fresh chunk `first` (of `units`) the shard's tail, after the old tail
    /// (`tail`: unit + 1, 0 = none), whose unused `rest` becomes garbage: a chunk is only
    /// ever appended to at its tail, and freed whole.
    fn new_tail(
        &mut self,
        s: u32,
        tail: u64,
        first: u64,
        units: u64,
        rest: u64,
    ) -> Result<(u64, u64)> {
        let start = self.geo.heap_at(self.geo.unit_start(first));
        if !self.cover(start + (units << self.geo.unit_shift))? {
            return Err(Error::corrupt(
                self.path(),
                "a new chunk lies beyond the heap",
            ));
        }
        let ch = self.chunk(first)?;
        // SYNC POINT: Relaxed: the chunk is not linked yet; linking it (below) and every
        // later use happen under this shard's lock.
        ch.next.store(0, Ordering::Relaxed);
        ch.units.store(units as u32, Ordering::Relaxed);
        ch.kind.store(CHUNK_DATA, Ordering::Relaxed);
        ch.used.store(CHUNK_HEADER_SIZE, Ordering::Relaxed);
        if tail != 0 {
            // SYNC POINT: Relaxed: read by this shard's lock holders only.
            self.chunk(tail - 1)?
                .next
                .store(first + 1, Ordering::Relaxed);
        }
        let sh = self.shard(s);
        // SYNC POINT: Relaxed: the shard's own fields, under its lock.
        if sh.head.load(Ordering::Relaxed) == 0 {
            sh.head.store(first + 1, Ordering::Relaxed);
        }
        sh.tail.store(first + 1, Ordering::Relaxed);
        let du = sh.data_units.load(Ordering::Relaxed);
        sh.data_units.store(du + units, Ordering::Relaxed);
        let garbage = sh.garbage.load(Ordering::Relaxed);
        sh.garbage.store(garbage + rest, Ordering::Relaxed);
        Ok((first, CHUNK_HEADER_SIZE))
    }

    /// The chunk header of the chunk starting at `unit`.
    pub(super) fn chunk(&self, unit: u64) -> Result<&ChunkHeader> {
        let off = self.geo.heap_at(self.geo.unit_start(unit));
        // SAFETY: ChunkHeader is all atomics, 8-aligned at a unit start.
        unsafe { self.mem().at::<ChunkHeader>(off) }
            .ok_or_else(|| Error::corrupt(self.path(), "a chunk lies outside the mapping"))
    }

    pub(super) fn slot_word(&self, toff: u64, idx: u64) -> Result<&AtomicU64> {
        self.mem()
            .u64(toff + idx * 8)
            .ok_or_else(|| Error::corrupt(self.path(), "a table slot lies outside the mapping"))
    }

    /// The header fields of the entry at `heap` of our own shard (under its lock).
    pub(super) fn entry_lens(&self, heap: u64) -> Result<format::Lens> {
        // SAFETY: EntryHeader is all atomics.
        let hdr = unsafe { self.mem().at::<EntryHeader>(self.geo.heap_at(heap)) }
            .ok_or_else(|| Error::corrupt(self.path(), "an entry lies outside the mapping"))?;
        // SYNC POINT: Relaxed: an entry of our shard, complete since before our lock.
        Ok(format::lens(hdr.lens.load(Ordering::Relaxed)))
    }

    /// The entry at `heap` of our own shard `s` (under its lock), checked against its unit.
    /// Inlined: returned through memory, its `Result` stalled the probe (measured).
    #[inline(always)]
    pub(super) fn found_at(&self, s: u32, heap: u64) -> Result<Found> {
        let corrupt = || Error::corrupt(self.path(), "a slot points at a damaged entry");
        let unit = self.geo.unit_of(heap);
        // SYNC POINT: Acquire pairs with the allocator's Release stores of descriptors.
        let d = self.desc(unit).ok_or_else(corrupt)?.load(Ordering::Acquire);
        // SAFETY: EntryHeader is all atomics.
        let hdr =
            unsafe { self.mem().at::<EntryHeader>(self.geo.heap_at(heap)) }.ok_or_else(corrupt)?;
        // SYNC POINT: Acquire pairs with the Release store of the stamp in `append_entry`.
        if format::desc_owner(d) != s + 1
            || hdr.stamp.load(Ordering::Acquire) != stamp(self.seed, d, heap)
        {
            return Err(corrupt());
        }
        // SYNC POINT: Relaxed: after the stamp's Acquire load (see `read_entry`).
        let l = format::lens(hdr.lens.load(Ordering::Relaxed));
        let meta = hdr.meta.load(Ordering::Relaxed);
        Ok(Found {
            tag: l.tag,
            flags: l.flags,
            expires_ms: format::meta_expires(meta),
            ttl_ms: hdr.ttl.load(Ordering::Relaxed),
            heap,
            gen: format::desc_gen(d),
            meta,
            frees: 0,
        })
    }

    /// Copies the key of our shard's entry at `heap` into `out`.
    pub(super) fn entry_key(&self, heap: u64, out: &mut Vec<u8>) -> Result<()> {
        let l = self.entry_lens(heap)?;
        if l.key_len > MAX_KEY
            || !self.mem().copy_out(
                self.geo.heap_at(heap) + ENTRY_HEADER_SIZE,
                l.key_len as u64,
                out,
            )
        {
            return Err(Error::corrupt(
                self.path(),
                "an entry's key is out of bounds",
            ));
        }
        Ok(())
    }

    pub(super) fn entry_size_at(&self, heap: u64) -> Result<u64> {
        let l = self.entry_lens(heap)?;
        Ok(entry_size(l.key_len, l.val_len))
    }

    fn entry_user_bytes(&self, heap: u64) -> Result<u64> {
        let l = self.entry_lens(heap)?;
        Ok(user_bytes(l.key_len, l.val_len))
    }

    /// The keyed hash of the key of our shard's entry at `heap`.
    pub(super) fn entry_hash(&self, _s: u32, heap: u64) -> Result<u64> {
        let mut key = Vec::new();
        self.entry_key(heap, &mut key)?;
        Ok(self.hash(&key))
    }

    /// Moves the global budget counters by these deltas (a hint of the shards' exact sums:
    /// they can drift only by what a killed writer had in flight).
    pub(super) fn adjust_budget(&self, d_entries: i64, d_bytes: i64) {
        let a = &self.header().alloc;
        // SYNC POINT: Relaxed: budget counters; only their values are compared with the
        // limits (no data is published through them).
        if d_entries != 0 {
            a.entries.fetch_add(d_entries as u64, Ordering::Relaxed);
        }
        if d_bytes != 0 {
            a.live_bytes.fetch_add(d_bytes as u64, Ordering::Relaxed);
        }
    }

    /// Whether a write of these deltas would take a budget over its limit. The global
    /// counters decide when they are clearly within; near or over a limit the shards'
    /// exact counts are summed (and the counters corrected by the difference, never
    /// overwritten).
    pub(super) fn over_budget(&self, d_entries: i64, d_bytes: i64) -> bool {
        let max_e = self.config.max_entries as i64;
        let max_b = self.config.max_bytes as i64;
        let over = |entries: i64, bytes: i64| {
            (max_e > 0 && d_entries > 0 && entries + d_entries > max_e)
                || (d_bytes > 0 && bytes + d_bytes > max_b)
        };
        let a = &self.header().alloc;
        // SYNC POINT: Relaxed: see `adjust_budget`.
        let (hint_e, hint_b) = (
            a.entries.load(Ordering::Relaxed) as i64,
            a.live_bytes.load(Ordering::Relaxed) as i64,
        );
        if !over(hint_e, hint_b) {
            return false;
        }
        let (mut exact_e, mut exact_b) = (0i64, 0i64);
        for t in 0..self.geo.shards {
            let sh = self.shard(t);
            // SYNC POINT: Relaxed: each shard's counts, exact once its writer unlocked.
            exact_e = exact_e.wrapping_add(sh.count.load(Ordering::Relaxed) as i64);
            exact_b = exact_b.wrapping_add(sh.live_bytes.load(Ordering::Relaxed) as i64);
        }
        if exact_e != hint_e || exact_b != hint_b {
            self.adjust_budget(exact_e - hint_e, exact_b - hint_b);
        }
        over(exact_e, exact_b)
    }

    fn full_error(&self) -> Error {
        let reason = if self.config.max_entries > 0 && {
            // SYNC POINT: Relaxed: see `reserve`.
            self.header().alloc.entries.load(Ordering::Relaxed) as i64
                >= self.config.max_entries as i64
        } {
            format!("it holds its max of {} entries", self.config.max_entries)
        } else {
            format!(
                "its keys and values would exceed its maxSize of {} bytes",
                self.config.max_bytes
            )
        };
        Error::MapFull {
            path: self.path().to_owned(),
            reason: if self.config.evict {
                format!("{reason}, and nothing could be evicted")
            } else {
                format!("{reason} (pass evict: true or a max to evict least recently used entries)")
            },
        }
    }
}

/// The claimant's token in a claim's value.
fn pending_token(value: &[u8]) -> u32 {
    value
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .unwrap_or(0)
}
