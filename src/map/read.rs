//! Reading without a lock: lookups, iteration, and the one store a reader may make (the
//! reference bit / refreshed expiry of the entry it read, by compare-and-swap).
//!
//! A reader copies a table slot, then the entry it points at, and keeps the copy only if the
//! entry's unit kept its descriptor throughout and the entry's stamp matches that
//! descriptor (DESIGN.md, "Reading"). It never waits for a writer: a copy spoiled by a
//! recycled unit is retried, and a state that looks damaged is reported as `ERR_CORRUPT`
//! only once the same state has been seen twice.

use std::collections::HashSet;
use std::sync::atomic::{fence, Ordering};

use super::format::{
    self, desc_flags, desc_gen, desc_owner, entry_size, lens, make_desc, meta_expires, slot_heap,
    slot_live, slot_tag, stamp, table_parts, DESC_HEAD, DESC_TABLE, MAX_KEY, MAX_PROBE, MAX_VALUE,
    META_REF, SLOT_EMPTY,
};
use super::mem::Mem;
use super::{now_ms, MapSegment};
use crate::error::{Error, Result};
use crate::segment::layout::{EntryHeader, ENTRY_HEADER_SIZE};

/// What a lookup does besides reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// Nothing (`peek`, `has`, iteration, the writer's own reads).
    None,
    /// A `get`: mark the entry referenced (eviction) and refresh its expiry
    /// (`updateAgeOnGet`), as the map's policy says. Read-only handles never store.
    Get,
}

/// An entry found by a lookup (its value, if asked for, is in the caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub tag: u8,
    pub flags: u8,
    /// Expiry in ms since the epoch, 0 = never.
    pub expires_ms: u64,
    /// The entry's own ttl (for updateAgeOnGet).
    pub ttl_ms: u64,
    /// Where the entry is (with `gen`, its identity: another write makes another one).
    pub heap: u64,
    pub gen: u64,
    /// The `meta` word as read (for a compare-and-swap).
    pub(super) meta: u64,
    /// The shard's `frees` when the entry was read (a touch is skipped if it moved).
    pub(super) frees: u64,
}

impl Found {
    /// Whether the entry's ttl has passed at `now` (ms since the epoch).
    pub fn expired_at(&self, now: u64) -> bool {
        self.expires_ms != 0 && self.expires_ms <= now
    }

    /// Whether the entry's ttl has passed now (no clock read for an entry without one).
    pub fn expired_now(&self) -> bool {
        self.expires_ms != 0 && self.expired_at(now_ms())
    }

    /// A value (not a claim) whose ttl has not passed.
    pub fn live_now(&self) -> bool {
        !self.pending() && !self.expired_now()
    }

    /// Whether this is a getOrSet() claim rather than a value.
    pub fn pending(&self) -> bool {
        self.flags & format::FLAG_PENDING != 0
    }
}

/// The outcome of one attempt.
enum Attempt {
    /// Found (or not): the answer.
    Done(Option<Found>),
    /// A unit or table changed hands during the attempt: try again.
    Retry,
    /// Something lies beyond this handle's mapping: map more, then try again.
    Remap(u64),
    /// The state looks damaged; the words that say so (compared across attempts).
    Suspect([u64; 3], &'static str),
}

/// How one slot's entry turned out.
enum EntryRead {
    Match(Found),
    Mismatch,
    Remap(u64),
    Suspect(&'static str),
}

/// What `visit_shard` calls for each entry: `(key, found, value)`.
pub type Visitor<'a> = dyn FnMut(&[u8], &Found, &[u8]) + 'a;

/// Attempts after which a lookup that keeps being disturbed yields the CPU between tries.
const YIELD_AFTER: u32 = 64;
/// Attempts after which a lookup gives up (never reached unless the file is being damaged
/// or recycled continuously faster than one copy).
const GIVE_UP_AFTER: u32 = 100_000;

impl MapSegment {
    /// Looks `key` up (hash `hash`) without a lock, and copies its value into `out` when
    /// given. Returns claims and expired entries too: the caller decides what they mean.
    pub fn lookup(
        &mut self,
        key: &[u8],
        hash: u64,
        mut out: Option<&mut Vec<u8>>,
    ) -> Result<Option<Found>> {
        let s = self.geo.shard_of(hash);
        let mut suspect: Option<[u64; 3]> = None;
        let mut attempts = 0u32;
        let result = loop {
            attempts += 1;
            if attempts > YIELD_AFTER {
                std::thread::yield_now();
            }
            if attempts > GIVE_UP_AFTER {
                break Err(Error::corrupt(
                    self.path(),
                    "a lookup kept meeting a changing table (the file is being damaged?)",
                ));
            }
            let attempt = self.try_lookup(s, hash, key, out.as_deref_mut());
            match attempt {
                Attempt::Done(found) => break Ok(found),
                Attempt::Retry => suspect = None,
                Attempt::Remap(end) => match self.cover(end) {
                    Ok(true) => {}
                    Ok(false) => {
                        break Err(Error::corrupt(
                            self.path(),
                            "an entry or table lies beyond the map's heap",
                        ))
                    }
                    Err(e) => break Err(e),
                },
                Attempt::Suspect(state, why) => {
                    if suspect == Some(state) {
                        break Err(Error::corrupt(self.path(), why));
                    }
                    suspect = Some(state);
                }
            }
        };
        result
    }

    /// `get`: the live value of `key` (not a claim, not expired) into `out`, touching it as
    /// `touch` says.
    pub fn get(&mut self, key: &[u8], out: &mut Vec<u8>, touch: Touch) -> Result<Option<Found>> {
        let hash = self.hash(key);
        let Some(found) = self.lookup(key, hash, Some(out))? else {
            return Ok(None);
        };
        if found.pending() {
            return Ok(None);
        }
        if found.expired_now() {
            return Ok(None);
        }
        if touch == Touch::Get {
            self.touch(self.geo.shard_of(hash), &found);
        }
        Ok(Some(found))
    }

    /// Whether `key` has a live value (not a claim, not expired). Touches nothing.
    pub fn has(&mut self, key: &[u8]) -> Result<bool> {
        let hash = self.hash(key);
        let found = self.lookup(key, hash, None)?;
        Ok(found.is_some_and(|f| f.live_now()))
    }

    /// The keyed hash of `key` in this map.
    pub fn hash(&self, key: &[u8]) -> u64 {
        format::hash_key(self.seed, key)
    }

    /// A get's one store: the reference bit (eviction) and the refreshed expiry
    /// (updateAgeOnGet), by compare-and-swap from the `meta` the lookup read.
    fn touch(&self, s: u32, found: &Found) {
        if self.seg.read_only() {
            return;
        }
        let evict = self.config.evict;
        let age = self.config.update_age_on_get && found.ttl_ms > 0;
        if !evict && !age {
            return;
        }
        let mut meta = found.meta;
        if evict {
            meta |= META_REF;
        }
        if age {
            let expires = super::expiry_after(found.ttl_ms);
            meta = (meta & !((1 << 48) - 1)) | expires;
        }
        if meta == found.meta {
            return;
        }
        // The narrowest window: skip the mark if the shard freed anything since the lookup.
        // SYNC POINT: Acquire pairs with the Release bump of `frees` before a free.
        if self.shard(s).frees.load(Ordering::Acquire) != found.frees {
            return;
        }
        let mem = self.mem();
        // SAFETY: EntryHeader is all atomics; the offset was bounds-checked by the lookup.
        if let Some(hdr) = unsafe { mem.at::<EntryHeader>(self.geo.heap_at(found.heap)) } {
            // SYNC POINT: Relaxed: the mark publishes nothing; the cleaner reads it under
            // the shard lock and tolerates a mark that arrives late or is lost. The expected
            // value is the exact word the lookup read (never 0, carries stamp bits), so a
            // CAS that lands after the unit was recycled cannot match ordinary new bytes.
            let _ =
                hdr.meta
                    .compare_exchange(found.meta, meta, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    // Inlined into `lookup` (and `read_entry` into it): returning their enums through
    // memory cost more than the probe itself (store-forwarding stalls, measured).
    #[inline(always)]
    fn try_lookup(&self, s: u32, hash: u64, key: &[u8], mut out: Option<&mut Vec<u8>>) -> Attempt {
        let mem = self.mem();
        let sh = self.shard(s);
        // SYNC POINT: Acquire pairs with the Release bump of `frees` before any of this
        // shard's units is freed (`bump_frees`); re-read below after an Acquire fence.
        let f1 = sh.frees.load(Ordering::Acquire);
        // SYNC POINT: Acquire pairs with the Release store that published the table
        // (`write.rs`, `rebuild_table`): its slots were zeroed and filled before.
        let td = sh.table.load(Ordering::Acquire);
        if td == 0 {
            return Attempt::Done(None);
        }
        let (toff, bits) = match self.table_view(&mem, s, td) {
            Ok(t) => t,
            Err(Attempt::Suspect(state, why)) => {
                return if self.recycled(s, f1) {
                    Attempt::Retry
                } else {
                    Attempt::Suspect(state, why)
                }
            }
            Err(a) => return a,
        };
        let mask = (1u64 << bits) - 1;
        let tag = format::tag_of(hash);
        let probes = (MAX_PROBE as u64).min(1 << bits);
        let mut result = None;
        for i in 0..probes {
            let at = toff + ((hash + i) & mask) * 8;
            let Some(w) = mem.u64(at) else {
                return Attempt::Suspect([td, f1, at], "a table slot lies outside the mapping");
            };
            // SYNC POINT: Acquire pairs with the Release store that published the slot
            // (`write.rs`): the entry it points at was completely written before.
            let slot = w.load(Ordering::Acquire);
            if slot == SLOT_EMPTY {
                break;
            }
            if !slot_live(slot) || slot_tag(slot) != tag {
                continue;
            }
            match self.read_entry(
                &mem,
                s,
                slot,
                Some(key),
                out.as_deref_mut(),
                &mut Vec::new(),
            ) {
                EntryRead::Match(found) => {
                    result = Some(Found { frees: f1, ..found });
                    break;
                }
                EntryRead::Mismatch => {}
                EntryRead::Remap(end) => return Attempt::Remap(end),
                EntryRead::Suspect(why) => {
                    return if self.recycled(s, f1) || w.load(Ordering::Acquire) != slot {
                        Attempt::Retry
                    } else {
                        Attempt::Suspect([td, f1, slot], why)
                    };
                }
            }
        }
        // Whatever the probe found (or did not), it stands only if none of the memory it
        // read was recycled meanwhile.
        if self.recycled(s, f1) {
            Attempt::Retry
        } else {
            Attempt::Done(result)
        }
    }

    /// Whether shard `s` freed units since its `frees` read `f1` (then anything read from
    /// them may be another owner's bytes).
    fn recycled(&self, s: u32, f1: u64) -> bool {
        // SYNC POINT: this Acquire fence and the Relaxed re-load pair with the Release fence
        // a new owner makes before writing into units (`alloc_units`) and with the Release
        // bump of `frees` before the free: if anything we copied was written by a later
        // owner, this load sees the bump.
        fence(Ordering::Acquire);
        self.shard(s).frees.load(Ordering::Relaxed) != f1
    }

    /// The file offset and size (bits) of the table `td` of shard `s`.
    fn table_view(&self, mem: &Mem<'_>, s: u32, td: u64) -> Result<(u64, u32), Attempt> {
        let Some((unit, bits)) = table_parts(td) else {
            return Err(Attempt::Suspect([td, 0, 0], "impossible table descriptor"));
        };
        let units = self.geo.units_for_table(bits);
        if self.chunk_desc(s, unit, units, true).is_none() {
            return Err(Attempt::Suspect(
                [td, 1, 0],
                "the table's units do not belong to its shard",
            ));
        }
        let toff = self.geo.heap_at(self.geo.unit_start(unit));
        let end = toff + (8u64 << bits);
        if !mem.contains(toff, 8u64 << bits) {
            return Err(Attempt::Remap(end));
        }
        Ok((toff, bits))
    }

    /// Copies the entry `slot` points at (key compared with `want`, or copied into
    /// `scratch` when `want` is `None`; value into `out` when given). The caller then checks
    /// that the shard recycled nothing meanwhile (`recycled`).
    #[inline(always)]
    fn read_entry(
        &self,
        mem: &Mem<'_>,
        s: u32,
        slot: u64,
        want: Option<&[u8]>,
        out: Option<&mut Vec<u8>>,
        scratch: &mut Vec<u8>,
    ) -> EntryRead {
        let heap = slot_heap(slot);
        let unit = self.geo.unit_of(heap);
        let Some(dw) = self.desc(unit) else {
            return EntryRead::Suspect("a slot points beyond the heap");
        };
        // SYNC POINT: Acquire pairs with the allocator's Release stores of descriptors.
        let d1 = dw.load(Ordering::Acquire);
        if desc_owner(d1) != s + 1 || desc_flags(d1) & DESC_TABLE != 0 {
            return EntryRead::Suspect("a slot points into a unit its shard does not own");
        }
        let off = self.geo.heap_at(heap);
        if !mem.contains(off, ENTRY_HEADER_SIZE) {
            return EntryRead::Remap(off + ENTRY_HEADER_SIZE);
        }
        // SAFETY: EntryHeader is all atomics; its 32 bytes are inside the mapping (checked)
        // and 8-aligned (slot offsets are multiples of 8 from a page-aligned heap).
        let Some(hdr) = (unsafe { mem.at::<EntryHeader>(off) }) else {
            return EntryRead::Suspect("misaligned entry");
        };
        // SYNC POINT: Acquire, and first: pairs with the Release store of the stamp in
        // `append_entry`, so the fields, key and value loaded after it are the writer's.
        let st = hdr.stamp.load(Ordering::Acquire);
        if st != stamp(self.seed, d1, heap) {
            return EntryRead::Suspect("an entry's stamp does not match its unit");
        }
        // SYNC POINT: Relaxed: ordered after the stamp's Acquire load; written before it.
        let l = lens(hdr.lens.load(Ordering::Relaxed));
        if l.key_len > MAX_KEY || l.key_len == 0 || l.val_len > MAX_VALUE {
            return EntryRead::Suspect("an entry's lengths are impossible");
        }
        let end = heap + entry_size(l.key_len, l.val_len);
        let last = self.geo.unit_of(end - 1);
        for u in unit + 1..=last {
            // SYNC POINT: Acquire, as for `d1`.
            let ok = self.desc(u).is_some_and(|d| {
                d.load(Ordering::Acquire)
                    == make_desc(desc_gen(d1), desc_flags(d1) & !DESC_HEAD, s + 1)
            });
            if !ok {
                return EntryRead::Suspect("an entry runs past its chunk");
            }
        }
        if !mem.contains(off, end - heap) {
            return EntryRead::Remap(self.geo.heap_at(end));
        }
        let key_off = off + ENTRY_HEADER_SIZE;
        let matched = match want {
            Some(key) => l.key_len == key.len() && mem.equals(key_off, key) == Some(true),
            None => mem.copy_out(key_off, l.key_len as u64, scratch),
        };
        if !matched {
            return EntryRead::Mismatch;
        }
        if let Some(out) = out {
            if !mem.copy_out(key_off + l.key_len as u64, l.val_len, out) {
                return EntryRead::Suspect("an entry's value lies outside the mapping");
            }
        }
        // SYNC POINT: Relaxed: after the stamp's Acquire load; `meta` changes at any time
        // (readers' marks) and is only used as a CAS's expected value.
        let meta = hdr.meta.load(Ordering::Relaxed);
        // SYNC POINT: Relaxed: written before the stamp, read after its Acquire load.
        let ttl = hdr.ttl.load(Ordering::Relaxed);
        EntryRead::Match(Found {
            tag: l.tag,
            flags: l.flags,
            expires_ms: meta_expires(meta),
            ttl_ms: ttl,
            heap,
            gen: desc_gen(d1),
            meta,
            frees: 0,
        })
    }

    /// Every live entry of shard `s` (claims and expired entries excluded):
    /// `visit(key, found, value)`. Slot by slot: a slot whose copy was spoiled by recycling
    /// is read again (a live key keeps its slot index within one table); if the table was
    /// replaced, the shard is read again from its new table, skipping keys already visited.
    /// So an entry present for the whole visit is visited exactly once, whole; one that
    /// changes meanwhile at most once.
    pub fn visit_shard(
        &mut self,
        s: u32,
        want_values: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        let now = now_ms();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut key = Vec::new();
        let mut value = Vec::new();
        let mut restarts = 0u32;
        'table: loop {
            restarts += 1;
            if restarts > GIVE_UP_AFTER {
                return Err(Error::corrupt(
                    self.path(),
                    "a shard kept changing its table during iteration",
                ));
            }
            let sh = self.shard(s);
            // SYNC POINT: Acquire pairs with the Release store that published the table.
            let td = sh.table.load(Ordering::Acquire);
            if td == 0 {
                return Ok(());
            }
            let mem = self.mem();
            let (toff, bits) = match self.table_view(&mem, s, td) {
                Ok(t) => t,
                Err(Attempt::Remap(end)) => {
                    if !self.cover(end)? {
                        return Err(Error::corrupt(self.path(), "a table lies beyond the heap"));
                    }
                    continue;
                }
                Err(Attempt::Suspect(_, why)) if restarts > 2 => {
                    return Err(Error::corrupt(self.path(), why))
                }
                Err(_) => continue,
            };
            let mut i = 0u64;
            let mut tries = 0u32;
            while i < 1u64 << bits {
                let mem = self.mem();
                let sh = self.shard(s);
                // SYNC POINT: Acquire, as in `try_lookup`.
                let f1 = sh.frees.load(Ordering::Acquire);
                // SYNC POINT: Acquire pairs with the Release store that published the table.
                if sh.table.load(Ordering::Acquire) != td {
                    continue 'table;
                }
                // SYNC POINT: Acquire pairs with the Release store that published the slot.
                let slot = mem
                    .u64(toff + i * 8)
                    .map_or(SLOT_EMPTY, |w| w.load(Ordering::Acquire));
                if !slot_live(slot) {
                    i += 1;
                    tries = 0;
                    continue;
                }
                let out = if want_values { Some(&mut value) } else { None };
                let read = self.read_entry(&mem, s, slot, None, out, &mut key);
                if self.recycled(s, f1) {
                    tries += 1;
                    if tries > GIVE_UP_AFTER {
                        return Err(Error::corrupt(
                            self.path(),
                            "iteration kept meeting recycled memory",
                        ));
                    }
                    continue; // read the same slot again
                }
                match read {
                    EntryRead::Match(found) => {
                        if !found.pending() && !found.expired_at(now) && seen.insert(key.clone()) {
                            visit(&key, &found, if want_values { &value } else { &[] });
                        }
                    }
                    EntryRead::Remap(end) => {
                        if !self.cover(end)? {
                            return Err(Error::corrupt(
                                self.path(),
                                "an entry lies beyond the heap",
                            ));
                        }
                        continue;
                    }
                    EntryRead::Suspect(why) => return Err(Error::corrupt(self.path(), why)),
                    EntryRead::Mismatch => unreachable!("no key to mismatch"),
                }
                i += 1;
                tries = 0;
            }
            return Ok(());
        }
    }
}

impl format::Geometry {
    /// Units of a table of `2^bits` slots.
    pub fn units_for_table(&self, bits: u32) -> u64 {
        (8u64 << bits).div_ceil(self.unit())
    }
}
