//! The on-file format of a segment: one place to read it.
//!
//! Every segment file starts with a header made of 64-byte cache lines, followed by the data
//! area. Line 0 is the same for every kind: it says what the file is and where its data area
//! starts (`header_size`). All integers are little-endian (the format is defined for the host
//! it was created on; share-object is one-host IPC). Every header field is an atomic, because
//! other processes change them while we read: no plain reference to shared bytes is ever
//! formed.
//!
//! `format_version` is per kind ([`format_version`]): values are at 2, channels at 1, maps at
//! their own 1.
//!
//! A value segment (kind 1, format 2, `src/value/DESIGN.md`): three slots, each a complete
//! copy of a value in a region of its own, and one word that names the committed one.
//!
//! ```text
//! offset size field            meaning
//! ---- line 0: identity (written once, before the file is visible) ----
//!   0    8   magic            b"SHAREOBJ"
//!   8    4   format_version   2 (VALUE_FORMAT_VERSION); 0x1_0002 while an upgrade from 1 runs
//!  12    4   kind             1 = value, 2 = channel, 3 = map
//!  16    4   header_size      512 (VALUE_HEADER_SIZE): where the data area starts
//!  20    4   flags            reserved, 0
//!  24    8   capacity         bytes of the data area (regions, live and abandoned); only grows
//!  32   32   reserved, 0
//! ---- line 1: commit ----
//!  64    8   current          commit << 2 | slot (slot 0..2; 3 is damage); version = commit
//!  72   56   reserved, 0
//! ---- line 2: locks and notification ----
//! 128    4   writer_lock      token of the writing handle | CONTENDED, 0 = free
//! 132    4   user_lock        token of the lock() holder | CONTENDED, 0 = free
//! 136    4   notify           futex word: +1 after every commit
//! 140    4   notify_waiters   threads parked on `notify` beyond those in `waiter_slots`
//! 144   48   reserved, 0
//! ---- line 3: waiters ----
//! 192   64   waiter_slots     16 × u32: token of a handle with a thread parked on
//!                             `notify`, 0 = free (see `waiters.rs`)
//! ---- lines 4, 5, 6: slot i at 256 + 64·i ----
//!  +0    8   seq              odd while a writer fills the slot; +2 per fill
//!  +8    8   commit           the commit number this fill is for
//! +16    8   region           offset in pages << 32 | size in pages (PAGE = 4096 bytes),
//!                             from the data area's start
//! +24    8   len              value length (untrusted: checked against the region)
//! +32    4   tag              the codec's type tag of the value (lib/codec.js)
//! +36   28   reserved, 0
//! ---- line 7: reserved, 0 ----
//! ---- data area ----
//! 512   capacity bytes: regions of whole PAGEs, each starting on a PAGE from here
//! ```
//!
//! Format 1 of a value segment (read only by the upgrade, `src/value/upgrade.rs`) had a
//! 256-byte header: line 1 held a seqlock word `seq` (offset 64, version = seq / 2) and the
//! value's `len` (offset 72); lines 2 and 3 were as above; the value itself started at 256.
//!
//! A channel segment (kind 2) shares line 0; `capacity` is the ring size (a power of two)
//! and the rest of the header holds the ring's positions, one writer side per line:
//!
//! ```text
//! ---- line 1: producers ----
//!  64    8   tail             bytes ever claimed by producers (position, not index)
//!  72   56   reserved, 0
//! ---- line 2: consumer ----
//! 128    8   head             bytes ever consumed (position); head <= tail <= head + capacity
//! 136    4   consumer_lock    token of the consuming handle | CONTENDED, 0 = none
//! 140    4   space_notify     futex word: bumped when the consumer frees space
//! 144    4   space_waiters    producers parked on `space_notify` beyond `space_slots`
//! 148   44   space_slots      11 × u32: tokens of handles parked on `space_notify`
//! ---- line 3: data notification ----
//! 192    4   data_notify      futex word: bumped when a producer commits and someone waits
//! 196    4   data_waiters     consumers parked on `data_notify` beyond `data_slots`
//! 200   56   data_slots       14 × u32: tokens of handles parked on `data_notify`
//! ---- ring ----
//! 256   capacity bytes of records (see `ring.rs`)
//! ```
//!
//!
//! A map segment (kind 3, `src/map/DESIGN.md`) has a larger header whose size depends on
//! options fixed at creation (`header_size` says where the heap starts). Page 0:
//!
//! ```text
//! ---- line 1: config (written once, before the file is visible) ----
//!  64   16   seed             SipHash-1-3 key (128 random bits)
//!  80    8   max_entries      `max` (0 = none)
//!  88    8   max_bytes        `maxSize`: bytes of keys + values
//!  96    8   ttl_ms           default ttl (0 = none)
//! 104    8   heap_limit_units units the heap may grow to (sizes the descriptor table)
//! 112    4   shards           number of shards, a power of two
//! 116    4   unit_shift       log2 of the unit size
//! 120    4   policy           1 = evict (LRU/CLOCK), 2 = updateAgeOnGet
//! 124    4   codec            0 default, 1 json, 2 v8, 3 custom
//! ---- line 2: allocator ----
//! 128    4   alloc_lock       token of the allocating handle | CONTENDED
//! 136    8   units_total      heap units the file holds (grows; capacity = units_total << unit_shift)
//! 144    8   units_used       high-water mark: units at or past it were never handed out
//! 152    8   free_hint        where the next search for free units starts
//! 160    8   sweep_epoch      bumped when an allocator died: shards sweep their units
//! 168    8   entries          budget counter: live entries (re-derived after a death)
//! 176    8   live_bytes       budget counter: bytes of keys + values
//! 184    8   free_units       free units below units_used + units the heap may still grow by
//! ---- line 3: notification ----
//! 192    4   notify           futex word: bumped after a change when a watcher waits
//! 196    4   notify_waiters   watchers parked beyond `waiter_slots`
//! 200   56   waiter_slots     14 × u32: tokens of handles with a watcher parked
//! ---- line 4: codec name ----
//! 256   64   codec_name       UTF-8, NUL-padded (a custom codec's `name`)
//! ---- then, each region starting on a page ----
//! 4096       unit descriptors  heap_limit_units × u64: gen (48) | flags (4) | owner (12)
//!            shard headers     shards × 256 bytes ([`ShardHeader`])
//!            change logs       shards × MAP_LOG_BYTES
//! header_size heap             units of 2^unit_shift bytes: chunks of entries and tables
//! ```
//!
//! A shard header (256 bytes, four lines so that readers and writers do not share one):
//!
//! ```text
//!   0    8   table            current hash table: first unit << 8 | log2(slots); 0 = none
//!   8    8   frees            bumped before any unit of the shard is freed (readers check it)
//!  64    4   lock             token of the shard's writer | CONTENDED
//!  68    4   flags            1 = dirty: a repair began and did not finish
//!  72    8   count            live entries (getOrSet claims excluded)
//!  80    8   pending          getOrSet claims
//!  88    8   live_bytes       keys + values of live entries
//!  96    8   garbage          bytes of dead entries still in the shard's chunks
//! 104    8   tombstones       tombstone slots in the table
//! 112    8   swept_epoch      the allocator's sweep_epoch this shard last swept for
//! 120    8   entry_bytes      bytes of live entries in chunks (headers and padding included)
//! 128    8   log_tail         change-log position after the last published record
//! 136    8   log_wend         change-log position the writer may be writing up to
//! 192    8   head             oldest data chunk: first unit + 1 (0 = none)
//! 200    8   tail             newest data chunk (appended to): first unit + 1
//! 208    8   hand             the CLOCK hand: heap offset + 1 of the next entry eviction examines
//! 216    8   data_units       units held by the shard's data chunks
//! ```
//!
//! Beyond the file's bytes, the segment uses open-file-description (OFD) byte-range locks on
//! offsets past any real data, which the kernel drops when the holder dies:
//! [`LOCK_OPEN`] (shared by every opener; exclusive while a file is initialised in place or
//! upgraded), one byte per value slot at [`PIN_BASE`]` + slot` (read-locked by a reader while
//! it copies that slot's value, see `src/value/DESIGN.md`), and one byte per open handle at
//! [`LIVENESS_BASE`]` + token` (held for the handle's life, so anyone can tell whether the
//! holder of a lock word is still alive).

use std::sync::atomic::{AtomicU32, AtomicU64};

/// The first eight bytes of every segment.
pub const MAGIC: [u8; 8] = *b"SHAREOBJ";
/// [`MAGIC`] as the little-endian integer stored in [`Identity::magic`].
pub const MAGIC_U64: u64 = u64::from_le_bytes(MAGIC);
/// The format of channel segments (and of value segments before format 2).
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the data area of a channel (and of a format-1 value).
pub const HEADER_SIZE: usize = 256;
/// The format of value segments this build reads and writes.
pub const VALUE_FORMAT_VERSION: u32 = 2;
/// The format version an upgrade from value format 1 writes into the old file before it
/// builds the new one: "format 1, upgrade in progress". Format-1 code refuses it, and so
/// does every opener of this build except the upgrade, which takes it up again.
pub const VALUE_UPGRADING_VERSION: u32 = 0x1_0002;
/// Bytes before the data area of a value segment (format 2).
pub const VALUE_HEADER_SIZE: usize = 512;
/// The unit of a value region's offset and size, from the data area's start. A region thus
/// starts at `512 + k · 4096` in the file: 512-byte aligned in memory (the mapping starts on
/// an OS page), so cache-line aligned and fit for `BigInt64Array` and `Atomics` views.
pub const PAGE: u64 = 4096;
/// Number of value slots.
pub const SLOTS: usize = 3;
/// Value capacity of a new segment unless the caller asks for another.
pub const DEFAULT_CAPACITY: u64 = 1024;
/// Ceiling a value segment may grow to unless the caller asks for another.
pub const DEFAULT_MAX_SIZE: u64 = 64 << 20;
/// The largest capacity any segment may claim (guards size arithmetic on untrusted input).
pub const MAX_CAPACITY: u64 = 1 << 39;

/// `kind` of a segment holding one value.
pub const KIND_VALUE: u32 = 1;
/// `kind` of a segment holding a message channel.
pub const KIND_CHANNEL: u32 = 2;
/// `kind` of a segment holding a keyed map (`src/map/`).
pub const KIND_MAP: u32 = 3;

/// The format version of each kind this build reads and writes.
pub fn format_version(kind: u32) -> u32 {
    match kind {
        KIND_VALUE => VALUE_FORMAT_VERSION,
        KIND_MAP => MAP_FORMAT_VERSION,
        _ => FORMAT_VERSION,
    }
}

/// The header size a kind's files have (`None` for a map, whose header size depends on its
/// options: a multiple of [`MAP_PAGE`]).
pub fn header_size(kind: u32) -> Option<usize> {
    match kind {
        KIND_VALUE => Some(VALUE_HEADER_SIZE),
        KIND_MAP => None,
        _ => Some(HEADER_SIZE),
    }
}

/// High bit of a lock word: some thread is (or was) parked waiting for it (`sync::lock`).
pub use crate::sync::lock::CONTENDED;

/// OFD lock byte that every opener holds shared, and an in-place initialiser holds exclusive.
pub const LOCK_OPEN: u64 = 1 << 40;
/// Base of the per-handle liveness bytes: a handle with token `t` holds `LIVENESS_BASE + t`.
pub const LIVENESS_BASE: u64 = 1 << 41;
/// Base of a value segment's pin bytes: a reader copying slot `i` holds a read lock on
/// `PIN_BASE + i` (`src/value/DESIGN.md`).
pub const PIN_BASE: u64 = LOCK_OPEN + 64;

/// Human name of a segment kind, for messages.
pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        KIND_VALUE => "value",
        KIND_CHANNEL => "channel",
        KIND_MAP => "map",
        _ => "unknown kind",
    }
}

/// Line 0: what the segment is. Written before the file becomes visible, then only
/// `capacity` changes (grows, under the writer lock).
#[repr(C, align(64))]
#[derive(Default)]
pub struct Identity {
    pub magic: AtomicU64,
    pub format_version: AtomicU32,
    pub kind: AtomicU32,
    pub header_size: AtomicU32,
    pub flags: AtomicU32,
    pub capacity: AtomicU64,
    pub reserved: [AtomicU64; 4],
}

/// The header of a value segment (kind 1, format 2): see the table at the top of this file.
/// (`Default` is an all-zero header, for tests that run the protocol on heap memory.)
#[repr(C, align(64))]
#[derive(Default)]
pub struct ValueHeader {
    pub identity: Identity,
    /// `commit << 2 | slot`: the committed value is slot `current & 3`, and `current >> 2`
    /// (its commit number) is the version. Changed only by the writer-lock holder.
    pub current: AtomicU64,
    pub reserved1: [AtomicU64; 7],
    /// Token of the writing handle, or 0; [`CONTENDED`] set when someone may be parked.
    pub writer_lock: AtomicU32,
    /// Token of the handle inside `lock()`, or 0; [`CONTENDED`] as above.
    pub user_lock: AtomicU32,
    /// Futex word bumped after every commit; waiters park on it.
    pub notify: AtomicU32,
    /// Threads parked on `notify` that found no free slot in `waiter_slots`.
    pub notify_waiters: AtomicU32,
    pub reserved2: [AtomicU32; 12],
    /// Tokens of handles with a thread parked on `notify` (0 = free): writers wake only
    /// when a slot or `notify_waiters` is non-zero (`waiters.rs`).
    pub waiter_slots: [AtomicU32; 16],
    /// The three copies of the value.
    pub slots: [SlotHeader; SLOTS],
    pub reserved3: [AtomicU64; 8],
}

/// One slot of a value segment: where a copy of the value lies and whether it is whole.
/// Every field is untrusted when read: the reader checks it (`src/value/slots.rs`).
#[repr(C, align(64))]
#[derive(Default)]
pub struct SlotHeader {
    /// Seqlock word of the slot: odd while a writer fills it; +2 per fill.
    pub seq: AtomicU64,
    /// The commit number this fill is for. A reader accepts the slot only if it equals the
    /// `current` word's commit.
    pub commit: AtomicU64,
    /// `offset in pages << 32 | size in pages`, from the data area's start (one word, so a
    /// death never leaves half of it).
    pub region: AtomicU64,
    /// Length of the value in the region.
    pub len: AtomicU64,
    /// The codec's type tag of the value (`lib/codec.js`).
    pub tag: AtomicU32,
    pub reserved0: AtomicU32,
    pub reserved1: [AtomicU64; 3],
}

/// The region word of a value slot: `offset << 32 | size`, both in [`PAGE`]s.
pub fn region_word(offset_pages: u64, size_pages: u64) -> u64 {
    offset_pages << 32 | (size_pages & 0xFFFF_FFFF)
}

/// `(offset, size)` in bytes from the data area's start of a region word.
pub fn region_bytes(word: u64) -> (u64, u64) {
    ((word >> 32) * PAGE, (word & 0xFFFF_FFFF) * PAGE)
}

/// The header of a format-1 value segment, as the upgrade reads it (offsets only: the
/// upgrade copies the file's bytes, it never maps a format-1 file).
pub mod value_v1 {
    /// `seq`: even = stable, odd = a writer was (or died) mid-copy; version = seq / 2.
    pub const SEQ: usize = 64;
    /// `len`: the value's length.
    pub const LEN: usize = 72;
    /// Where the value starts.
    pub const DATA: usize = 256;
}

/// The header of a channel segment (kind 2).
#[repr(C, align(64))]
pub struct ChannelHeader {
    pub identity: Identity,
    /// Bytes ever claimed by producers (a position: index = tail % capacity).
    pub tail: AtomicU64,
    pub reserved1: [AtomicU64; 7],
    /// Bytes ever consumed.
    pub head: AtomicU64,
    /// Token of the consuming handle | [`CONTENDED`], 0 = none.
    pub consumer_lock: AtomicU32,
    /// Futex word bumped when the consumer frees space and producers wait.
    pub space_notify: AtomicU32,
    /// Producers parked on `space_notify` that found no free slot in `space_slots`.
    pub space_waiters: AtomicU32,
    /// Tokens of handles with a producer parked on `space_notify` (0 = free).
    pub space_slots: [AtomicU32; 11],
    /// Futex word bumped when a producer commits and a consumer waits.
    pub data_notify: AtomicU32,
    /// Consumers parked on `data_notify` that found no free slot in `data_slots`.
    pub data_waiters: AtomicU32,
    /// Tokens of handles with a consumer parked on `data_notify` (0 = free).
    pub data_slots: [AtomicU32; 14],
}

// The format is fixed: these fail the build if a field moves.
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<Identity>() == 64);
    assert!(offset_of!(Identity, format_version) == 8);
    assert!(offset_of!(Identity, kind) == 12);
    assert!(offset_of!(Identity, header_size) == 16);
    assert!(offset_of!(Identity, flags) == 20);
    assert!(offset_of!(Identity, capacity) == 24);
    assert!(size_of::<ValueHeader>() == VALUE_HEADER_SIZE);
    assert!(offset_of!(ValueHeader, current) == 64);
    assert!(offset_of!(ValueHeader, writer_lock) == 128);
    assert!(offset_of!(ValueHeader, user_lock) == 132);
    assert!(offset_of!(ValueHeader, notify) == 136);
    assert!(offset_of!(ValueHeader, notify_waiters) == 140);
    assert!(offset_of!(ValueHeader, waiter_slots) == 192);
    assert!(offset_of!(ValueHeader, slots) == 256);
    assert!(offset_of!(ValueHeader, reserved3) == 448);
    assert!(size_of::<SlotHeader>() == 64);
    assert!(offset_of!(SlotHeader, seq) == 0);
    assert!(offset_of!(SlotHeader, commit) == 8);
    assert!(offset_of!(SlotHeader, region) == 16);
    assert!(offset_of!(SlotHeader, len) == 24);
    assert!(offset_of!(SlotHeader, tag) == 32);
    // Format 1's header is the 256-byte one; its seq and len lay where `current` lies now.
    assert!(value_v1::SEQ == 64 && value_v1::LEN == 72 && value_v1::DATA == HEADER_SIZE);
    // Regions are addressed in pages by 32-bit numbers: the format's limit fits.
    assert!(MAX_CAPACITY / PAGE < 1 << 32);
    assert!(VALUE_HEADER_SIZE % 64 == 0);
    assert!(size_of::<ChannelHeader>() == HEADER_SIZE);
    assert!(offset_of!(ChannelHeader, tail) == 64);
    assert!(offset_of!(ChannelHeader, head) == 128);
    assert!(offset_of!(ChannelHeader, consumer_lock) == 136);
    assert!(offset_of!(ChannelHeader, space_notify) == 140);
    assert!(offset_of!(ChannelHeader, space_waiters) == 144);
    assert!(offset_of!(ChannelHeader, space_slots) == 148);
    assert!(offset_of!(ChannelHeader, data_notify) == 192);
    assert!(offset_of!(ChannelHeader, data_waiters) == 196);
    assert!(offset_of!(ChannelHeader, data_slots) == 200);
    // Lock bytes lie beyond any data a segment can hold, and liveness bytes beyond those.
    assert!(LOCK_OPEN >= VALUE_HEADER_SIZE as u64 + MAX_CAPACITY);
    assert!(PIN_BASE > LOCK_OPEN && PIN_BASE + (SLOTS as u64) < LIVENESS_BASE);
    assert!(LIVENESS_BASE > LOCK_OPEN && LIVENESS_BASE < i64::MAX as u64 - u32::MAX as u64);
};

// ---- map segments (kind 3) ---------------------------------------------------------

/// The format version of map segments.
pub const MAP_FORMAT_VERSION: u32 = 1;
/// Bytes of page 0 of a map segment (the [`MapHeader`] and reserved space).
pub const MAP_PAGE: usize = 4096;
/// Bytes of one shard's change log.
pub const MAP_LOG_BYTES: u64 = 4096;
/// Bytes of one shard header.
pub const SHARD_HEADER_SIZE: u64 = 256;
/// Bytes of a chunk header (at the start of every chunk).
pub const CHUNK_HEADER_SIZE: u64 = 32;
/// Bytes of an entry header (before its key and value).
pub const ENTRY_HEADER_SIZE: u64 = 32;

/// Config line of a map header: written once, before the file is visible.
#[repr(C, align(64))]
pub struct MapConfig {
    pub seed: [AtomicU64; 2],
    pub max_entries: AtomicU64,
    pub max_bytes: AtomicU64,
    pub ttl_ms: AtomicU64,
    pub heap_limit_units: AtomicU64,
    pub shards: AtomicU32,
    pub unit_shift: AtomicU32,
    pub policy: AtomicU32,
    pub codec: AtomicU32,
}

/// Allocator line of a map header (under `alloc_lock`, except the budget counters).
#[repr(C, align(64))]
pub struct MapAllocator {
    pub lock: AtomicU32,
    pub reserved0: AtomicU32,
    pub units_total: AtomicU64,
    pub units_used: AtomicU64,
    pub free_hint: AtomicU64,
    pub sweep_epoch: AtomicU64,
    pub entries: AtomicU64,
    pub live_bytes: AtomicU64,
    /// Free units below `units_used` plus the units the heap may still grow by.
    pub free_units: AtomicU64,
}

/// Notification line of a map header.
#[repr(C, align(64))]
pub struct MapNotify {
    pub notify: AtomicU32,
    pub notify_waiters: AtomicU32,
    pub waiter_slots: [AtomicU32; 14],
}

/// The fixed part of a map segment's page 0.
#[repr(C, align(64))]
pub struct MapHeader {
    pub identity: Identity,
    pub config: MapConfig,
    pub alloc: MapAllocator,
    pub notify: MapNotify,
    pub codec_name: [AtomicU64; 8],
}

/// One shard's header (see the table at the top of this file).
#[repr(C, align(64))]
pub struct ShardHeader {
    /// Current hash table: `first unit << 8 | log2(slots)`, 0 = none. Read by every reader.
    pub table: AtomicU64,
    /// Bumped before any unit of this shard is freed: a reader that sees it unchanged
    /// across its lookup read memory nobody recycled.
    pub frees: AtomicU64,
    pub reserved0: [AtomicU64; 6],
    pub lock: AtomicU32,
    /// [`SHARD_DIRTY`]: a repair began and has not finished (the next holder repairs).
    pub flags: AtomicU32,
    pub count: AtomicU64,
    pub pending: AtomicU64,
    pub live_bytes: AtomicU64,
    pub garbage: AtomicU64,
    pub tombstones: AtomicU64,
    pub swept_epoch: AtomicU64,
    pub entry_bytes: AtomicU64,
    pub log_tail: AtomicU64,
    pub log_wend: AtomicU64,
    pub reserved2: [AtomicU64; 6],
    pub head: AtomicU64,
    pub tail: AtomicU64,
    /// The CLOCK hand: heap offset + 1 of the next entry eviction looks at (0 = the oldest).
    pub hand: AtomicU64,
    pub data_units: AtomicU64,
    pub reserved3: [AtomicU64; 4],
}

/// `ShardHeader::flags`: a repair of the shard began and did not finish.
pub const SHARD_DIRTY: u32 = 1;

/// The header at the start of every chunk (written only by its shard's lock holder).
#[repr(C)]
pub struct ChunkHeader {
    /// The next (newer) data chunk of the shard's log: first unit + 1, 0 = none.
    pub next: AtomicU64,
    /// Units in this chunk.
    pub units: AtomicU32,
    /// [`CHUNK_DATA`] or [`CHUNK_TABLE`].
    pub kind: AtomicU32,
    /// Bytes from the chunk's start up to the end of its last complete entry.
    pub used: AtomicU64,
    pub reserved: AtomicU64,
}

/// `ChunkHeader::kind` of a piece of a shard's log.
pub const CHUNK_DATA: u32 = 1;
/// `ChunkHeader::kind` of a hash table.
pub const CHUNK_TABLE: u32 = 2;

/// The header of an entry (8-aligned in a data chunk; written once, except `meta`).
#[repr(C)]
pub struct EntryHeader {
    /// `mix(descriptor of the entry's unit, offset)`, stored last with Release.
    pub stamp: AtomicU64,
    /// `[63]` reference bit | `[62:48]` check bits (from the stamp, never 0) | `[47:0]`
    /// expiry in ms since the epoch (0 = never). Changed by compare-and-swap only.
    pub meta: AtomicU64,
    /// The entry's ttl in ms (0 = none), for updateAgeOnGet.
    pub ttl: AtomicU64,
    /// `key_len (u16) | tag (u8) << 16 | flags (u8) << 24 | val_len (u32) << 32`.
    pub lens: AtomicU64,
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(MapHeader, config) == 64);
    assert!(offset_of!(MapConfig, max_entries) == 16);
    assert!(offset_of!(MapConfig, heap_limit_units) == 40);
    assert!(offset_of!(MapConfig, shards) == 48);
    assert!(offset_of!(MapConfig, codec) == 60);
    assert!(offset_of!(MapHeader, alloc) == 128);
    assert!(offset_of!(MapAllocator, units_total) == 8);
    assert!(offset_of!(MapAllocator, live_bytes) == 48);
    assert!(offset_of!(MapHeader, notify) == 192);
    assert!(offset_of!(MapNotify, waiter_slots) == 8);
    assert!(offset_of!(MapHeader, codec_name) == 256);
    assert!(size_of::<MapHeader>() <= MAP_PAGE);
    assert!(size_of::<ShardHeader>() as u64 == SHARD_HEADER_SIZE);
    assert!(offset_of!(ShardHeader, lock) == 64);
    assert!(offset_of!(ShardHeader, count) == 72);
    assert!(offset_of!(ShardHeader, entry_bytes) == 120);
    assert!(offset_of!(ShardHeader, log_tail) == 128);
    assert!(offset_of!(ShardHeader, head) == 192);
    assert!(offset_of!(ShardHeader, data_units) == 216);
    assert!(size_of::<ChunkHeader>() as u64 == CHUNK_HEADER_SIZE);
    assert!(size_of::<EntryHeader>() as u64 == ENTRY_HEADER_SIZE);
};

/// Byte offsets of line 0, for code that parses a header from a plain copy of the bytes.
pub mod offsets {
    pub const MAGIC: usize = 0;
    pub const FORMAT_VERSION: usize = 8;
    pub const KIND: usize = 12;
    pub const HEADER_SIZE: usize = 16;
    pub const CAPACITY: usize = 24;
}

/// What line 0 says, parsed from a private copy of the first bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityFields {
    pub magic: u64,
    pub format_version: u32,
    pub kind: u32,
    pub header_size: u32,
    pub capacity: u64,
}

impl IdentityFields {
    /// Parses line 0 from `bytes` (at least 64 bytes, a private copy).
    pub fn parse(bytes: &[u8; 64]) -> Self {
        let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
        IdentityFields {
            magic: u64_at(offsets::MAGIC),
            format_version: u32_at(offsets::FORMAT_VERSION),
            kind: u32_at(offsets::KIND),
            header_size: u32_at(offsets::HEADER_SIZE),
            capacity: u64_at(offsets::CAPACITY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_words_round_trip() {
        let w = region_word(3, 5);
        assert_eq!(region_bytes(w), (3 * PAGE, 5 * PAGE));
        assert_eq!(region_bytes(0), (0, 0));
    }

    #[test]
    fn magic_reads_back_from_the_file_bytes() {
        let mut line = [0u8; 64];
        line[..8].copy_from_slice(&MAGIC);
        line[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        line[12..16].copy_from_slice(&KIND_VALUE.to_le_bytes());
        line[16..20].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        line[24..32].copy_from_slice(&1024u64.to_le_bytes());
        let f = IdentityFields::parse(&line);
        assert_eq!(f.magic, MAGIC_U64);
        assert_eq!(f.format_version, FORMAT_VERSION);
        assert_eq!(f.kind, KIND_VALUE);
        assert_eq!(f.header_size as usize, HEADER_SIZE);
        assert_eq!(f.capacity, 1024);
    }
}
