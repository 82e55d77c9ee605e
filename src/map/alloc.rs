//! The unit allocator: hands runs of heap units to shards and takes them back, growing the
//! file when no run is free. Everything here runs under the map's alloc lock, which nests
//! inside a shard lock (never the other way round).
//!
//! A unit's descriptor changes generation every time the unit changes hands, and a chunk's
//! units are freed in ascending order, so its HEAD unit first: a reader that validates an
//! entry against its unit's descriptor sees any recycling of the chunk (DESIGN.md).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::format::{self, desc_owner, make_desc, next_gen, DESC_HEAD, DESC_TABLE};
use super::MapSegment;
use crate::error::{Error, Result};
use crate::sync::futex;
use crate::sync::lock::{self, Acquired, LockError};

/// How long a writer waits for a lock held by a live process before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Sorted, disjoint runs of units `(first, count)`: what a shard still uses.
pub struct UnitSet(Vec<(u64, u64)>);

impl UnitSet {
    pub fn new(mut runs: Vec<(u64, u64)>) -> Self {
        runs.sort_unstable();
        UnitSet(runs)
    }

    pub fn contains(&self, unit: u64) -> bool {
        let i = self.0.partition_point(|&(first, _)| first <= unit);
        i > 0 && {
            let (first, n) = self.0[i - 1];
            unit < first + n
        }
    }
}

pub(super) fn park(word: &AtomicU32, value: u32, nap: Duration) {
    futex::wait(word, value, Some(nap));
}

pub(super) fn wake_one(word: &AtomicU32) {
    futex::wake(word, 1);
}

impl MapSegment {
    /// Takes a lock word of this map for this handle (a shard's or the allocator's).
    pub(super) fn take_lock(&self, word: &AtomicU32, what: &'static str) -> Result<Acquired> {
        let me = self.seg.token();
        // The uncontended path first: no clock read.
        // SYNC POINT: Acquire pairs with the Release swap in `lock::release`.
        if word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(Acquired::Clean);
        }
        let liveness = self.seg.liveness();
        lock::acquire(
            word,
            me,
            Some(Instant::now() + LOCK_WAIT),
            &|t| liveness.is_alive(t),
            &park,
        )
        .map_err(|e| match e {
            LockError::TimedOut => Error::Timeout {
                path: self.path().to_owned(),
                what,
                ms: LOCK_WAIT.as_millis() as u64,
            },
            LockError::AlreadyHeld => Error::InvalidState {
                path: self.path().to_owned(),
                reason: format!("this handle already holds {what} (a write inside update()?)"),
            },
            LockError::Cancelled => unreachable!("map locks are not taken with a cancel flag"),
        })
    }

    fn lock_alloc(&mut self) -> Result<()> {
        let acquired = {
            let word = &self.header().alloc.lock;
            self.take_lock(word, "the map's allocator lock")?
        };
        if acquired == Acquired::OwnerDied {
            if let Err(e) = self.recover_alloc() {
                self.unlock_alloc();
                return Err(e);
            }
        }
        Ok(())
    }

    fn unlock_alloc(&self) {
        lock::release(&self.header().alloc.lock, self.seg.token(), &wake_one);
    }

    /// The allocator's holder died: the file may have grown without `units_total` saying
    /// so, and units may be marked owned without their shard knowing. Re-derive the size
    /// and ask every shard to sweep.
    fn recover_alloc(&mut self) -> Result<()> {
        let size = crate::os::facts(self.seg.fd())
            .map_err(|e| Error::os(self.path(), "fstat", e))?
            .size;
        let in_file = size.saturating_sub(self.geo.heap_off) >> self.geo.unit_shift;
        let total = in_file.min(self.geo.heap_limit_units);
        let a = &self.header().alloc;
        // SYNC POINT: Relaxed loads: we hold the alloc lock, and its Acquire orders every
        // earlier holder's stores before us.
        let recorded = a.units_used.load(Ordering::Relaxed).min(total);
        let mut used = recorded;
        for unit in recorded..total {
            if let Some(d) = self.mem().u64(self.geo.desc_at(unit)) {
                // SYNC POINT: Relaxed: under the alloc lock (see above).
                if desc_owner(d.load(Ordering::Relaxed)) != 0 {
                    used = unit + 1;
                }
            }
        }
        let mut free = self.geo.heap_limit_units - used;
        for unit in 0..used {
            // SYNC POINT: Relaxed: under the alloc lock.
            if let Some(d) = self.mem().u64(self.geo.desc_at(unit)) {
                if desc_owner(d.load(Ordering::Relaxed)) == 0 {
                    free += 1;
                }
            }
        }
        // SYNC POINT: Release pairs with the Acquire loads of `units_total` by readers that
        // re-map (`MapSegment::cover`): the file already holds these units.
        a.units_total.store(total, Ordering::Release);
        // SYNC POINT: Relaxed: read under the alloc lock only.
        a.units_used.store(used, Ordering::Relaxed);
        a.free_units.store(free, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the Acquire load in `MapSegment::lock_shard`, which
        // then sweeps.
        a.sweep_epoch.fetch_add(1, Ordering::Release);
        // SYNC POINT: Release: read with Acquire by openers (segment inspection uses a
        // private copy; this keeps line 0 in step with units_total).
        self.header()
            .identity
            .capacity
            .store(total << self.geo.unit_shift, Ordering::Release);
        Ok(())
    }

    /// Allocates `n` contiguous units for shard `s`; returns the first. The units' bytes
    /// are whatever they held before: the caller initialises what it needs. Only the
    /// cleaner and table rebuilds (`use_reserve`) may take the last [`reserve`] free units:
    /// freeing space must never need space that writes already took.
    pub(super) fn alloc_units(
        &mut self,
        s: u32,
        n: u64,
        table: bool,
        use_reserve: bool,
    ) -> Result<u64> {
        debug_assert!(n > 0);
        self.lock_alloc()?;
        let result = self.alloc_locked(s, n, table, use_reserve);
        self.unlock_alloc();
        // SYNC POINT: Release fence between taking the units and the caller's first store
        // into them: pairs with the Acquire fence a reader makes after copying, before it
        // re-reads its shard's `frees` (`read.rs`). A reader that copied any byte stored
        // after this fence sees every free that preceded our allocation (the alloc lock
        // orders the freeing holder before us), so it retries rather than trust the copy.
        std::sync::atomic::fence(Ordering::Release);
        result
    }

    /// Free units now (a snapshot: other shards allocate and free meanwhile).
    pub(super) fn free_unit_count(&self) -> u64 {
        // SYNC POINT: Relaxed: a count compared before and after compaction; the alloc lock
        // orders its changes.
        self.header().alloc.free_units.load(Ordering::Relaxed)
    }

    /// Units kept for the cleaner and table rebuilds: one per shard, and two more.
    pub(super) fn reserve_units(&self) -> u64 {
        u64::from(self.geo.shards) + 2
    }

    fn alloc_locked(&mut self, s: u32, n: u64, table: bool, use_reserve: bool) -> Result<u64> {
        // SYNC POINT: Relaxed: under the alloc lock.
        let free = self.header().alloc.free_units.load(Ordering::Relaxed);
        let keep = if use_reserve { 0 } else { self.reserve_units() };
        if free < n.saturating_add(keep) {
            return Err(self.heap_full());
        }
        let limit = self.geo.heap_limit_units;
        let (total, used, hint) = {
            let a = &self.header().alloc;
            // SYNC POINT: Relaxed: under the alloc lock, whose Acquire orders the previous
            // holder's stores.
            let total = a.units_total.load(Ordering::Relaxed).min(limit);
            (
                total,
                a.units_used.load(Ordering::Relaxed).min(total),
                a.free_hint.load(Ordering::Relaxed),
            )
        };
        let first = match self.find_free_run(n, used, hint) {
            Some(first) => first,
            None => {
                if used + n > limit {
                    return Err(self.heap_full());
                }
                if used + n > total {
                    self.grow_heap(total, used + n)?;
                }
                used
            }
        };
        let mem = self.mem();
        let mut gen = 0;
        for unit in first..first + n {
            let d = mem
                .u64(self.geo.desc_at(unit))
                .ok_or_else(|| Error::corrupt(self.path(), "unit descriptor beyond the header"))?;
            // SYNC POINT: Relaxed: under the alloc lock.
            gen = gen.max(next_gen(d.load(Ordering::Relaxed)));
        }
        let table_flag = if table { DESC_TABLE } else { 0 };
        for unit in first..first + n {
            let flags = table_flag | if unit == first { DESC_HEAD } else { 0 };
            // SYNC POINT: Release pairs with the Acquire loads of descriptors by readers; no
            // reader can reach these units before an entry or table in them is published.
            mem.u64(self.geo.desc_at(unit))
                .expect("checked above")
                .store(make_desc(gen, flags, s + 1), Ordering::Release);
        }
        let a = &self.header().alloc;
        // SYNC POINT: Relaxed: read under the alloc lock only.
        a.units_used.store(used.max(first + n), Ordering::Relaxed);
        a.free_hint.store(first + n, Ordering::Relaxed);
        a.free_units
            .store(free.saturating_sub(n), Ordering::Relaxed);
        Ok(first)
    }

    /// The error of a heap with no room left.
    pub(super) fn heap_full(&self) -> Error {
        Error::MapFull {
            path: self.path().to_owned(),
            reason: format!(
                "its file has reached the {} bytes of heap its options allow (keys and values, their headers, tables and not yet compacted garbage)",
                self.geo.heap_limit_units << self.geo.unit_shift
            ),
        }
    }

    /// The first run of `n` free units below `used`, searching from `hint` round.
    fn find_free_run(&self, n: u64, used: u64, hint: u64) -> Option<u64> {
        if used < n {
            return None;
        }
        let mem = self.mem();
        let start = if hint < used { hint } else { 0 };
        let mut run = 0u64;
        let mut at = start;
        let mut scanned = 0u64;
        while scanned < used {
            if at >= used {
                // Wrap round: a run never spans the end.
                at = 0;
                run = 0;
            }
            // SYNC POINT: Relaxed: under the alloc lock.
            let free = mem
                .u64(self.geo.desc_at(at))
                .is_some_and(|d| desc_owner(d.load(Ordering::Relaxed)) == 0);
            run = if free { run + 1 } else { 0 };
            at += 1;
            scanned += 1;
            if run == n {
                return Some(at - n);
            }
        }
        None
    }

    /// Grows the file so the heap holds at least `needed` units (by at least an eighth).
    fn grow_heap(&mut self, total: u64, needed: u64) -> Result<()> {
        let limit = self.geo.heap_limit_units;
        let new_total = needed.max(total + total / 8).max(total + 4).min(limit);
        self.seg.grow(new_total << self.geo.unit_shift)?;
        let h = self.header();
        // SYNC POINT: Release pairs with the Acquire load in `MapSegment::cover`: the file
        // was grown (fallocate) before this store.
        h.alloc.units_total.store(new_total, Ordering::Release);
        // SYNC POINT: Release, as above, for line 0's capacity.
        h.identity
            .capacity
            .store(new_total << self.geo.unit_shift, Ordering::Release);
        Ok(())
    }

    /// Frees `n` units from `first` (a chunk: its HEAD unit goes first).
    pub(super) fn free_units(&mut self, first: u64, n: u64) -> Result<()> {
        self.lock_alloc()?;
        self.free_locked(first, n);
        self.unlock_alloc();
        Ok(())
    }

    fn free_locked(&self, first: u64, n: u64) {
        let mem = self.mem();
        for unit in first..first + n {
            if let Some(d) = mem.u64(self.geo.desc_at(unit)) {
                // SYNC POINT: Relaxed load under the alloc lock; the Release store pairs
                // with the Acquire re-load of the descriptor after a reader's copy: a reader
                // still copying from this unit sees the generation move and retries.
                let old = d.load(Ordering::Relaxed);
                d.store(make_desc(next_gen(old), 0, 0), Ordering::Release);
            }
        }
        let a = &self.header().alloc;
        // SYNC POINT: Relaxed: read under the alloc lock only.
        let hint = a.free_hint.load(Ordering::Relaxed);
        a.free_hint.store(hint.min(first), Ordering::Relaxed);
        let free = a.free_units.load(Ordering::Relaxed);
        a.free_units
            .store(free.saturating_add(n), Ordering::Relaxed);
    }

    /// Frees every unit shard `s` owns that `keep` does not list (units a dead writer left
    /// behind). Ascending order: a chunk's HEAD unit goes before its other units.
    pub(super) fn sweep_units(&mut self, s: u32, keep: &UnitSet) -> Result<()> {
        self.lock_alloc()?;
        let used = {
            let a = &self.header().alloc;
            // SYNC POINT: Relaxed: under the alloc lock.
            a.units_used
                .load(Ordering::Relaxed)
                .min(a.units_total.load(Ordering::Relaxed))
                .min(self.geo.heap_limit_units)
        };
        let mem = self.mem();
        for unit in 0..used {
            let Some(d) = mem.u64(self.geo.desc_at(unit)) else {
                break;
            };
            // SYNC POINT: Relaxed: under the alloc lock.
            if desc_owner(d.load(Ordering::Relaxed)) == s + 1 && !keep.contains(unit) {
                self.free_locked(unit, 1);
            }
        }
        // SYNC POINT: Acquire pairs with the Release bump in `recover_alloc`; Relaxed store:
        // read by this shard's lock holders only.
        let epoch = self.header().alloc.sweep_epoch.load(Ordering::Acquire);
        self.shard(s).swept_epoch.store(epoch, Ordering::Relaxed);
        self.unlock_alloc();
        Ok(())
    }

    /// The descriptor word of `unit`, if the unit can exist.
    pub(super) fn desc(&self, unit: u64) -> Option<&std::sync::atomic::AtomicU64> {
        if unit >= self.geo.heap_limit_units {
            return None;
        }
        self.mem().u64(self.geo.desc_at(unit))
    }

    /// Whether `n` units from `first` all belong to shard `s` as one chunk (HEAD on the
    /// first only, TABLE as asked), with one generation. Returns the HEAD descriptor.
    pub(super) fn chunk_desc(&self, s: u32, first: u64, n: u64, table: bool) -> Option<u64> {
        if n == 0 || first.checked_add(n)? > self.geo.heap_limit_units {
            return None;
        }
        // SYNC POINT: Acquire pairs with the Release stores of descriptors in the allocator.
        let head = self.desc(first)?.load(Ordering::Acquire);
        let want_flags = DESC_HEAD | if table { DESC_TABLE } else { 0 };
        if desc_owner(head) != s + 1 || format::desc_flags(head) != want_flags {
            return None;
        }
        for unit in first + 1..first + n {
            // SYNC POINT: Acquire, as above.
            let d = self.desc(unit)?.load(Ordering::Acquire);
            if d != make_desc(format::desc_gen(head), want_flags & !DESC_HEAD, s + 1) {
                return None;
            }
        }
        Some(head)
    }
}
