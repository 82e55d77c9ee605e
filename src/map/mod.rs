//! A map segment: one hash map in one file, read and written by any number of processes.
//!
//! The design (shards with their own lock and table, write-once entries in a per-shard log
//! of chunks, lock-free readers that validate what they copied, a cleaner that is both
//! compaction and CLOCK eviction, recovery after a writer's death) is written down in
//! `DESIGN.md` beside this file; the on-file format is in `segment/layout.rs`.
//!
//! Invariants this module keeps:
//! - An entry's bytes never change while its unit keeps its descriptor, except its `meta`
//!   word (compare-and-swap only). Every change is published by one Release store: of a
//!   table slot, of a table descriptor, or of a chunk's `used`.
//! - Only the holder of a shard's lock changes anything of that shard; only the holder of
//!   the alloc lock changes unit descriptors and the heap's size.
//! - Nothing read from the file is trusted: every offset is bounds-checked (`mem.rs`),
//!   every chain walk is bounded, and a reader declares `ERR_CORRUPT` only after seeing the
//!   same damaged state twice (a moving one is a race, retried).

mod alloc;
mod clean;
pub mod format;
mod log;
mod mem;
mod read;
mod watch;
mod write;

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::segment::layout::{
    MapHeader, ShardHeader, KIND_MAP, MAP_FORMAT_VERSION, MAP_LOG_BYTES, MAP_PAGE,
};
use crate::segment::{identity_line, OpenOptions, Segment};
use crate::sync::waiters::Announcements;
use format::{Geometry, POLICY_EVICT, POLICY_UPDATE_AGE};
use mem::Mem;

pub use log::{Change, ChangeOp};
pub use read::{Found, Touch};
pub use watch::MapWatcher;
pub use write::Claim;

/// Default `maxSize` of a new map: bytes of keys and values.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;
/// Codec ids stored in the header.
pub const CODEC_DEFAULT: u32 = 0;
pub const CODEC_JSON: u32 = 1;
pub const CODEC_V8: u32 = 2;
pub const CODEC_CUSTOM: u32 = 3;
/// The value tag of numbers (a little-endian f64), which `incr` reads and writes. The other
/// tags are the JS codec's business (`lib/codec.js`).
pub const TAG_NUMBER: u8 = 2;
/// Longest codec name stored in the header.
pub const MAX_CODEC_NAME: usize = 64;

/// What the caller asks of a map (each `None` adopts the file's value, or the default when
/// the map is created).
#[derive(Debug, Clone, Default)]
pub struct MapOptions {
    pub create: Option<bool>,
    pub read_only: Option<bool>,
    pub mode: Option<u32>,
    /// `max`: most live entries.
    pub max_entries: Option<u64>,
    /// `maxSize`: most bytes of keys + values.
    pub max_bytes: Option<u64>,
    /// Default ttl in ms (0 = none).
    pub ttl_ms: Option<u64>,
    /// Evict (CLOCK) when a budget is reached, instead of failing with ERR_MAP_FULL.
    pub evict: Option<bool>,
    /// A get refreshes the entry's expiry.
    pub update_age_on_get: Option<bool>,
    /// Codec id and name.
    pub codec: Option<(u32, String)>,
}

/// The options a map was created with (read from its header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapConfig {
    pub max_entries: u64,
    pub max_bytes: u64,
    pub ttl_ms: u64,
    pub evict: bool,
    pub update_age_on_get: bool,
    pub codec: u32,
    pub codec_name: String,
}

/// Counts of a map, for `info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapStats {
    pub entries: u64,
    pub pending: u64,
    pub live_bytes: u64,
    pub entry_bytes: u64,
    pub garbage: u64,
    pub tombstones: u64,
    pub heap_bytes: u64,
    pub heap_limit: u64,
    pub shards: u32,
    pub unit: u64,
    pub file_bytes: u64,
}

/// An open map segment.
pub struct MapSegment {
    seg: Segment,
    geo: Geometry,
    seed: [u64; 2],
    config: MapConfig,
}

impl MapSegment {
    /// Opens (or creates) the map at `path`.
    pub fn open(path: &Path, opts: &MapOptions) -> Result<Self> {
        let name = path.display().to_string();
        let open = open_options(&name, opts)?;
        Self::adopt(Segment::open(path, &open)?, opts)
    }

    /// A new anonymous map (memfd) to hand to child processes by descriptor.
    pub fn anonymous(opts: &MapOptions) -> Result<Self> {
        let open = open_options("memfd", opts)?;
        Self::adopt(Segment::anonymous(&open)?, opts)
    }

    /// Opens the map behind an inherited descriptor (reopened, see `Segment::from_fd`).
    pub fn from_fd(fd: std::os::fd::BorrowedFd<'_>, opts: &MapOptions) -> Result<Self> {
        let open = open_options("fd", opts)?;
        Self::adopt(Segment::from_fd(fd, &open)?, opts)
    }

    fn adopt(seg: Segment, opts: &MapOptions) -> Result<Self> {
        let path = seg.path().to_owned();
        let mem = Mem::new(seg.mapping());
        // SAFETY: MapHeader is a repr(C) struct of atomics; page 0 is inside any validated
        // map segment (its header_size is at least a page).
        let h = unsafe { mem.at::<MapHeader>(0) }
            .ok_or_else(|| Error::corrupt(&path, "the map header is not mapped"))?;
        let c = &h.config;
        // SYNC POINT: Relaxed: the config line was written before the file became visible
        // (rename, or the exclusive initialisation lock), which the open's locks order.
        let load = |w: &std::sync::atomic::AtomicU64| w.load(Ordering::Relaxed);
        let geo = Geometry::new(
            c.shards.load(Ordering::Relaxed),
            c.unit_shift.load(Ordering::Relaxed),
            load(&c.heap_limit_units),
        )
        .map_err(|why| Error::corrupt(&path, format!("impossible map geometry: {why}")))?;
        if geo.heap_off != seg.header_size() {
            return Err(Error::corrupt(
                &path,
                format!(
                    "header size {} does not match the map's geometry ({})",
                    seg.header_size(),
                    geo.heap_off
                ),
            ));
        }
        let policy = c.policy.load(Ordering::Relaxed);
        let codec = c.codec.load(Ordering::Relaxed);
        if codec > CODEC_CUSTOM || policy > (POLICY_EVICT | POLICY_UPDATE_AGE) {
            return Err(Error::corrupt(
                &path,
                "unknown codec or policy in the header",
            ));
        }
        let config = MapConfig {
            max_entries: load(&c.max_entries),
            max_bytes: load(&c.max_bytes),
            ttl_ms: load(&c.ttl_ms),
            evict: policy & POLICY_EVICT != 0,
            update_age_on_get: policy & POLICY_UPDATE_AGE != 0,
            codec,
            codec_name: codec_name(h),
        };
        let seed = [load(&c.seed[0]), load(&c.seed[1])];
        check_adopted(&path, &config, opts)?;
        Ok(MapSegment {
            seg,
            geo,
            seed,
            config,
        })
    }

    /// The path (or `memfd:`/`fd:` name) used in messages.
    pub fn path(&self) -> &str {
        self.seg.path()
    }

    /// The segment underneath (descriptor, liveness, read-only flag).
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The options the map was created with.
    pub fn config(&self) -> &MapConfig {
        &self.config
    }

    /// Number of shards.
    pub fn shards(&self) -> u32 {
        self.geo.shards
    }

    /// The shard `key` belongs to.
    pub fn shard_of_key(&self, key: &[u8]) -> u32 {
        self.geo.shard_of(self.hash(key))
    }

    /// Whether a value of `len` bytes under a key of `key_len` bytes fits the map's limits.
    pub fn check_len(&self, key_len: usize, len: u64) -> Result<()> {
        if format::user_bytes(key_len, len) > self.config.max_bytes || len > format::MAX_VALUE {
            let room = self
                .config
                .max_bytes
                .saturating_sub(format::user_bytes(key_len, 0));
            return Err(Error::ValueTooLarge {
                path: self.path().to_owned(),
                len,
                max: room.min(format::MAX_VALUE),
            });
        }
        Ok(())
    }

    fn mem(&self) -> Mem<'_> {
        Mem::new(self.seg.mapping())
    }

    fn header(&self) -> &MapHeader {
        // SAFETY: MapHeader is all atomics; page 0 was validated as mapped at open and the
        // mapping only grows.
        unsafe { self.mem().at::<MapHeader>(0) }.expect("page 0 is mapped")
    }

    fn shard(&self, s: u32) -> &ShardHeader {
        debug_assert!(s < self.geo.shards);
        // SAFETY: ShardHeader is all atomics; the shard headers lie inside the header region,
        // which is mapped (the mapping covers at least `header_size`).
        unsafe { self.mem().at::<ShardHeader>(self.geo.shard_at(s)) }
            .expect("shard headers are mapped")
    }

    fn announcements(&self) -> Announcements<'_> {
        let n = &self.header().notify;
        Announcements::new(&n.waiter_slots, &n.notify_waiters)
    }

    /// Number of live entries (the sum of the shards' exact counts). A shard whose writer
    /// died mid-change is repaired first (by a writable handle), so its count is right.
    pub fn size(&mut self) -> u64 {
        if !self.seg.read_only() {
            for s in 0..self.geo.shards {
                // SYNC POINT: Relaxed: only tells whether to look closer; `lock_shard`
                // takes the lock properly.
                let holder = crate::sync::lock::owner(self.shard(s).lock.load(Ordering::Relaxed));
                if holder != 0 && !self.seg.is_alive(holder) && self.lock_shard(s).is_ok() {
                    self.unlock_shard(s);
                }
            }
        }
        (0..self.geo.shards)
            // SYNC POINT: Relaxed: a count; each shard's is exact once its writer unlocked
            // (Release in `lock::release`), and a sum across shards is a snapshot anyway.
            .map(|s| self.shard(s).count.load(Ordering::Relaxed))
            .fold(0u64, u64::saturating_add)
    }

    /// Counts for `info`.
    pub fn stats(&self) -> MapStats {
        let mut st = MapStats {
            shards: self.geo.shards,
            unit: self.geo.unit(),
            heap_limit: self.geo.heap_limit_units << self.geo.unit_shift,
            ..MapStats::default()
        };
        for s in 0..self.geo.shards {
            let sh = self.shard(s);
            // SYNC POINT: Relaxed: statistics; see `size`.
            let l = |w: &std::sync::atomic::AtomicU64| w.load(Ordering::Relaxed);
            st.entries = st.entries.saturating_add(l(&sh.count));
            st.pending = st.pending.saturating_add(l(&sh.pending));
            st.live_bytes = st.live_bytes.saturating_add(l(&sh.live_bytes));
            st.entry_bytes = st.entry_bytes.saturating_add(l(&sh.entry_bytes));
            st.garbage = st.garbage.saturating_add(l(&sh.garbage));
            st.tombstones = st.tombstones.saturating_add(l(&sh.tombstones));
        }
        // SYNC POINT: Acquire pairs with the Release store of `units_total` in `alloc.rs`.
        let units = self.header().alloc.units_total.load(Ordering::Acquire);
        st.heap_bytes = units.min(self.geo.heap_limit_units) << self.geo.unit_shift;
        st.file_bytes = self.geo.heap_off + st.heap_bytes;
        st
    }

    /// Makes the mapping cover file offset `end` if the heap has grown that far (another
    /// process grew it). False if it has not: the offset is beyond the heap.
    fn cover(&mut self, end: u64) -> Result<bool> {
        if end <= self.seg.mapping().len() as u64 {
            return Ok(true);
        }
        // SYNC POINT: Acquire pairs with the Release store of `units_total` after the file
        // grew (`alloc.rs`): the file is at least that large.
        let units = self
            .header()
            .alloc
            .units_total
            .load(Ordering::Acquire)
            .min(self.geo.heap_limit_units);
        let capacity = units << self.geo.unit_shift;
        if self.geo.heap_off + capacity < end {
            return Ok(false);
        }
        self.seg.remap(capacity)?;
        Ok(end <= self.seg.mapping().len() as u64)
    }
}

/// The name of the map's codec, from the header (NUL-padded UTF-8).
fn codec_name(h: &MapHeader) -> String {
    let mut bytes = Vec::with_capacity(MAX_CODEC_NAME);
    for w in &h.codec_name {
        // SYNC POINT: Relaxed: written once before the file became visible (see `adopt`).
        bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Refuses options that conflict with those the map was created with, naming the option.
fn check_adopted(path: &str, have: &MapConfig, want: &MapOptions) -> Result<()> {
    let mismatch = |option: &'static str, stored: String, given: String| {
        Err(Error::OptionMismatch {
            path: path.to_owned(),
            option,
            stored,
            given,
        })
    };
    if let Some(max) = want.max_entries {
        if max != have.max_entries {
            return mismatch("max", show_limit(have.max_entries), show_limit(max));
        }
    }
    if let Some(max) = want.max_bytes {
        if max != have.max_bytes {
            return mismatch("maxSize", have.max_bytes.to_string(), max.to_string());
        }
    }
    if let Some(ttl) = want.ttl_ms {
        if ttl != have.ttl_ms {
            return mismatch("ttl", have.ttl_ms.to_string(), ttl.to_string());
        }
    }
    if let Some(evict) = want.evict {
        if evict != have.evict {
            return mismatch("evict", have.evict.to_string(), evict.to_string());
        }
    }
    if let Some(age) = want.update_age_on_get {
        if age != have.update_age_on_get {
            return mismatch(
                "updateAgeOnGet",
                have.update_age_on_get.to_string(),
                age.to_string(),
            );
        }
    }
    if let Some((codec, name)) = &want.codec {
        if *codec != have.codec || (*codec == CODEC_CUSTOM && *name != have.codec_name) {
            return mismatch(
                "codec",
                show_codec(have.codec, &have.codec_name),
                show_codec(*codec, name),
            );
        }
    }
    Ok(())
}

fn show_limit(n: u64) -> String {
    if n == 0 {
        "none".into()
    } else {
        n.to_string()
    }
}

/// How a codec is named in messages.
pub fn show_codec(codec: u32, name: &str) -> String {
    match codec {
        CODEC_DEFAULT => "'default'".into(),
        CODEC_JSON => "'json'".into(),
        CODEC_V8 => "'v8'".into(),
        _ if name.is_empty() => "a custom codec".into(),
        _ => format!("a custom codec named '{name}'"),
    }
}

/// The segment options of a map, with the header image a new file starts from.
fn open_options(name: &str, o: &MapOptions) -> Result<OpenOptions> {
    let header = new_header(name, o)?;
    Ok(OpenOptions {
        kind: KIND_MAP,
        capacity: 0,
        create: o.create.unwrap_or(true),
        read_only: o.read_only.unwrap_or(false),
        mode: o.mode.unwrap_or(0o600),
        header: Some(header.into()),
    })
}

/// How many shards a new map gets: enough that writers of different keys rarely meet, few
/// enough that each holds a good sample for its CLOCK (a `max` of 2,048 entries or less is
/// one shard, so eviction order is exact CLOCK over the whole map).
fn shards_for(max_entries: u64, max_bytes: u64) -> u32 {
    let wanted = if max_entries > 0 {
        max_entries / 2048
    } else {
        max_bytes / (4 << 20)
    };
    let capped = wanted.clamp(1, 64);
    1 << (63 - capped.leading_zeros())
}

/// The header image of a new map: line 0, the config, a fresh random seed; the rest zero.
fn new_header(name: &str, o: &MapOptions) -> Result<Vec<u8>> {
    let max_entries = o.max_entries.unwrap_or(0);
    let max_bytes = o.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes == 0 || max_bytes > format::MAX_HEAP / 4 {
        return Err(Error::invalid(
            name,
            format!(
                "maxSize must be from 1 to {} bytes, got {max_bytes}",
                format::MAX_HEAP / 4
            ),
        ));
    }
    let shards = shards_for(max_entries, max_bytes);
    // Room for the budget twice over (garbage awaiting the cleaner), entry headers for the
    // entries the budget allows (or for average entries of 64 bytes), and two units a shard.
    // The heap holds the budget (entries, headers included), as much garbage again awaiting
    // compaction, and the tables (at most 16 bytes an entry, and an entry takes at least 33
    // bytes of the budget): live data never takes more than 40 % of it, so the cleaner
    // always finds space to reclaim.
    let want = max_bytes
        .saturating_mul(5)
        .saturating_div(2)
        .min(format::MAX_HEAP);
    // At most about a million units: the descriptor table stays under 8 MiB.
    let mut unit_shift = format::MIN_UNIT_SHIFT + 2;
    while unit_shift < format::MAX_UNIT_SHIFT && want >> unit_shift > 1 << 20 {
        unit_shift += 1;
    }
    let min_units = u64::from(shards) * 4;
    let limit_units = (want >> unit_shift).max(min_units) + min_units;
    let geo = Geometry::new(shards, unit_shift, limit_units)
        .map_err(|why| Error::invalid(name, format!("options give an impossible map: {why}")))?;
    let mut policy = 0;
    if o.evict.unwrap_or(max_entries > 0) {
        policy |= POLICY_EVICT;
    }
    if o.update_age_on_get.unwrap_or(false) {
        policy |= POLICY_UPDATE_AGE;
    }
    let (codec, codec_name) = o.codec.clone().unwrap_or((CODEC_DEFAULT, String::new()));
    if codec_name.len() > MAX_CODEC_NAME {
        return Err(Error::invalid(
            name,
            format!("codec name is longer than {MAX_CODEC_NAME} bytes"),
        ));
    }
    let mut head = vec![0u8; geo.heap_off as usize];
    identity_line(&mut head, KIND_MAP, geo.heap_off as u32, 0);
    debug_assert_eq!(
        crate::segment::layout::format_version(KIND_MAP),
        MAP_FORMAT_VERSION
    );
    let mut put = |off: usize, bytes: &[u8]| head[off..off + bytes.len()].copy_from_slice(bytes);
    let seed = [crate::os::random_u64(), crate::os::random_u64()];
    put(64, &seed[0].to_le_bytes());
    put(72, &seed[1].to_le_bytes());
    put(80, &max_entries.to_le_bytes());
    put(88, &max_bytes.to_le_bytes());
    put(96, &o.ttl_ms.unwrap_or(0).to_le_bytes());
    put(104, &limit_units.to_le_bytes());
    put(112, &shards.to_le_bytes());
    put(116, &unit_shift.to_le_bytes());
    put(120, &policy.to_le_bytes());
    put(124, &codec.to_le_bytes());
    put(184, &limit_units.to_le_bytes()); // free_units: the whole heap is free
    put(256, codec_name.as_bytes());
    debug_assert!(geo.logs_off + u64::from(shards) * MAP_LOG_BYTES <= geo.heap_off);
    debug_assert!(MAP_PAGE <= head.len());
    Ok(head)
}

/// Removes the map file at `path`, refusing (and leaving untouched) anything that is not a
/// map segment (`segment::unlink_kind`: the header is read without following a symlink,
/// and the path removed only if it still names the file checked).
pub fn unlink(path: &Path) -> Result<()> {
    crate::segment::unlink_kind(path, Some(KIND_MAP))
}

/// Milliseconds since the Unix epoch (the timebase of expiries, shared by every process).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The expiry of an entry written now with this ttl (0 = never).
pub fn expiry_after(ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
        0
    } else {
        now_ms().saturating_add(ttl_ms).min((1 << 48) - 1)
    }
}

#[cfg(test)]
mod tests;
