//! The words of a map segment and the arithmetic on them: geometry of the regions, the keyed
//! hash, table slots, unit descriptors, entry stamps and `meta` words, entry sizes.
//!
//! Everything here is pure (no shared memory), so it is unit-tested directly. Every value
//! decoded from the file is untrusted: decoders return `None` (or the caller checks bounds)
//! rather than trusting a field.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

use crate::segment::layout::{
    CHUNK_HEADER_SIZE, ENTRY_HEADER_SIZE, MAP_LOG_BYTES, MAP_PAGE, SHARD_HEADER_SIZE,
};

/// Longest key, in UTF-8 bytes.
pub const MAX_KEY: usize = 1024;
/// Longest encoded value (its length is a u32 in the entry header).
pub const MAX_VALUE: u64 = u32::MAX as u64;
/// Most slots a lookup inspects: an insert that would need more grows the table.
pub const MAX_PROBE: usize = 64;
/// Most shards a map may have (a unit descriptor's 12-bit owner field holds shard + 1).
pub const MAX_SHARDS: u32 = 2048;
/// Smallest and largest unit sizes (log2).
pub const MIN_UNIT_SHIFT: u32 = 12;
pub const MAX_UNIT_SHIFT: u32 = 24;
/// Heap bytes a slot can address (36 bits of offset / 8).
pub const MAX_HEAP: u64 = 1 << 39;
/// Smallest table (log2 of its slots).
pub const MIN_TABLE_BITS: u32 = 4;
/// Largest table (log2 of its slots).
pub const MAX_TABLE_BITS: u32 = 30;

/// `policy` bit: evict least recently used entries (CLOCK) when a budget is reached.
pub const POLICY_EVICT: u32 = 1;
/// `policy` bit: a get refreshes the entry's expiry.
pub const POLICY_UPDATE_AGE: u32 = 2;

/// Entry flag: a getOrSet() claim (its value is the claimant's token), not a value.
pub const FLAG_PENDING: u8 = 1;

/// Slot value of a never-used slot.
pub const SLOT_EMPTY: u64 = 0;
/// Slot value of a deleted entry's slot.
pub const SLOT_TOMBSTONE: u64 = 1;

/// Unit descriptor flag: the first unit of a chunk.
pub const DESC_HEAD: u64 = 1;
/// Unit descriptor flag: the unit belongs to a hash table chunk.
pub const DESC_TABLE: u64 = 2;

/// Where the regions of a map file lie, from the config line (validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub shards: u32,
    pub shard_bits: u32,
    pub unit_shift: u32,
    pub heap_limit_units: u64,
    pub desc_off: u64,
    pub shards_off: u64,
    pub logs_off: u64,
    /// Where the heap starts: the segment's `header_size`.
    pub heap_off: u64,
}

fn page_align(x: u64) -> u64 {
    x.next_multiple_of(MAP_PAGE as u64)
}

impl Geometry {
    /// The geometry for these parameters, or why they cannot be (all untrusted).
    pub fn new(shards: u32, unit_shift: u32, heap_limit_units: u64) -> Result<Self, String> {
        if shards == 0 || shards > MAX_SHARDS || !shards.is_power_of_two() {
            return Err(format!(
                "{shards} shards (a power of two up to {MAX_SHARDS})"
            ));
        }
        if !(MIN_UNIT_SHIFT..=MAX_UNIT_SHIFT).contains(&unit_shift) {
            return Err(format!("unit shift {unit_shift}"));
        }
        if heap_limit_units == 0 || heap_limit_units > MAX_HEAP >> unit_shift {
            return Err(format!("heap limit of {heap_limit_units} units"));
        }
        let desc_off = MAP_PAGE as u64;
        let shards_off = page_align(desc_off + heap_limit_units * 8);
        let logs_off = page_align(shards_off + u64::from(shards) * SHARD_HEADER_SIZE);
        let heap_off = page_align(logs_off + u64::from(shards) * MAP_LOG_BYTES);
        if heap_off > u64::from(u32::MAX) {
            return Err(format!("header of {heap_off} bytes"));
        }
        Ok(Geometry {
            shards,
            shard_bits: shards.trailing_zeros(),
            unit_shift,
            heap_limit_units,
            desc_off,
            shards_off,
            logs_off,
            heap_off,
        })
    }

    /// Bytes in a unit.
    pub fn unit(&self) -> u64 {
        1 << self.unit_shift
    }

    /// File offset of unit `u`'s descriptor.
    pub fn desc_at(&self, unit: u64) -> u64 {
        self.desc_off + unit * 8
    }

    /// File offset of shard `s`'s header.
    pub fn shard_at(&self, shard: u32) -> u64 {
        self.shards_off + u64::from(shard) * SHARD_HEADER_SIZE
    }

    /// File offset of shard `s`'s change log.
    pub fn log_at(&self, shard: u32) -> u64 {
        self.logs_off + u64::from(shard) * MAP_LOG_BYTES
    }

    /// File offset of heap offset `h`.
    pub fn heap_at(&self, heap: u64) -> u64 {
        self.heap_off + heap
    }

    /// Heap offset of the start of unit `u`.
    pub fn unit_start(&self, unit: u64) -> u64 {
        unit << self.unit_shift
    }

    /// The unit holding heap offset `h`.
    pub fn unit_of(&self, heap: u64) -> u64 {
        heap >> self.unit_shift
    }

    /// Which shard a hash belongs to (its top bits).
    pub fn shard_of(&self, hash: u64) -> u32 {
        if self.shard_bits == 0 {
            0
        } else {
            (hash >> (64 - self.shard_bits)) as u32
        }
    }

    /// Units a chunk needs to hold `bytes` after its chunk header.
    pub fn units_for(&self, bytes: u64) -> u64 {
        (CHUNK_HEADER_SIZE + bytes).div_ceil(self.unit())
    }
}

/// The keyed hash of a key (SipHash-1-3 with the map's seed).
pub fn hash_key(seed: [u64; 2], key: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(seed[0], seed[1]);
    h.write(key);
    h.finish()
}

/// The 28-bit tag a slot keeps of a hash (never 0, so a live slot is never empty or a
/// tombstone).
pub fn tag_of(hash: u64) -> u64 {
    let tag = (hash >> 24) & 0x0FFF_FFFF;
    if tag == 0 {
        1
    } else {
        tag
    }
}

/// A live slot pointing at the entry at heap offset `heap` (8-aligned, below [`MAX_HEAP`]).
pub fn make_slot(tag: u64, heap: u64) -> u64 {
    debug_assert!(heap % 8 == 0 && heap < MAX_HEAP && tag != 0 && tag < 1 << 28);
    tag << 36 | heap >> 3
}

/// The tag of a live slot.
pub fn slot_tag(slot: u64) -> u64 {
    slot >> 36
}

/// The heap offset a live slot points at.
pub fn slot_heap(slot: u64) -> u64 {
    (slot & ((1 << 36) - 1)) << 3
}

/// Whether a slot holds an entry (not empty, not a tombstone).
pub fn slot_live(slot: u64) -> bool {
    slot > SLOT_TOMBSTONE
}

/// A table descriptor: the table's first unit and log2 of its slot count.
pub fn make_table(unit: u64, bits: u32) -> u64 {
    debug_assert!((MIN_TABLE_BITS..=MAX_TABLE_BITS).contains(&bits));
    unit << 8 | u64::from(bits)
}

/// Decodes a table descriptor (untrusted): `(first unit, bits)`, or `None` for "no table"
/// or an impossible one (the caller reports the latter).
pub fn table_parts(td: u64) -> Option<(u64, u32)> {
    let bits = (td & 0xFF) as u32;
    (td != 0 && (MIN_TABLE_BITS..=MAX_TABLE_BITS).contains(&bits)).then_some((td >> 8, bits))
}

/// Bytes of a table chunk of `2^bits` slots (chunk header included).
pub fn table_bytes(bits: u32) -> u64 {
    CHUNK_HEADER_SIZE + (8u64 << bits)
}

/// A unit descriptor.
pub fn make_desc(gen: u64, flags: u64, owner: u32) -> u64 {
    debug_assert!(gen < 1 << 48 && flags < 16 && owner < 1 << 12);
    gen << 16 | flags << 12 | u64::from(owner)
}

/// The generation of a unit descriptor.
pub fn desc_gen(desc: u64) -> u64 {
    desc >> 16
}

/// The flags of a unit descriptor.
pub fn desc_flags(desc: u64) -> u64 {
    (desc >> 12) & 0xF
}

/// The owner of a unit descriptor: shard + 1, 0 = free.
pub fn desc_owner(desc: u64) -> u32 {
    (desc & 0xFFF) as u32
}

/// The next generation after `desc`'s (wraps at 2^48, which no unit reaches).
pub fn next_gen(desc: u64) -> u64 {
    (desc_gen(desc) + 1) & ((1 << 48) - 1)
}

/// The stamp of an entry written at heap offset `heap` while its unit had descriptor
/// `desc`, in a map whose seed is `seed`: a 64-bit mix (SplitMix64's finaliser) keyed with
/// the seed, so that no two ownership periods of a unit and no two offsets share one, and
/// whoever chooses values cannot plant bytes that pass for an entry.
pub fn stamp(seed: [u64; 2], desc: u64, heap: u64) -> u64 {
    let mut z = desc ^ heap.rotate_left(29) ^ seed[0];
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= seed[1];
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 15 check bits `meta` carries of an entry's stamp (never 0).
pub fn meta_check(stamp: u64) -> u64 {
    ((stamp >> 48) & 0x7FFF) | 1
}

/// Reference bit of `meta`: read since the cleaner last looked.
pub const META_REF: u64 = 1 << 63;
const META_EXPIRY: u64 = (1 << 48) - 1;

/// A `meta` word: check bits of the stamp, expiry (ms since the epoch, 0 = never), ref bit.
pub fn make_meta(stamp: u64, expires_ms: u64, referenced: bool) -> u64 {
    let r = if referenced { META_REF } else { 0 };
    r | meta_check(stamp) << 48 | (expires_ms & META_EXPIRY)
}

/// The expiry in `meta` (ms since the epoch, 0 = never).
pub fn meta_expires(meta: u64) -> u64 {
    meta & META_EXPIRY
}

/// Whether `meta` belongs to the entry with this stamp.
pub fn meta_matches(meta: u64, stamp: u64) -> bool {
    (meta >> 48) & 0x7FFF == meta_check(stamp)
}

/// An entry's length word.
pub fn make_lens(key_len: usize, tag: u8, flags: u8, val_len: u64) -> u64 {
    debug_assert!(key_len <= MAX_KEY && val_len <= MAX_VALUE);
    key_len as u64 | u64::from(tag) << 16 | u64::from(flags) << 24 | val_len << 32
}

/// The fields of an entry's length word (untrusted: the caller bounds them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lens {
    pub key_len: usize,
    pub tag: u8,
    pub flags: u8,
    pub val_len: u64,
}

/// Decodes an entry's length word.
pub fn lens(word: u64) -> Lens {
    Lens {
        key_len: (word & 0xFFFF) as usize,
        tag: (word >> 16) as u8,
        flags: (word >> 24) as u8,
        val_len: word >> 32,
    }
}

/// Bytes an entry with this key and value takes in a chunk (8-aligned).
pub fn entry_size(key_len: usize, val_len: u64) -> u64 {
    (ENTRY_HEADER_SIZE + key_len as u64 + val_len).next_multiple_of(8)
}

/// What the `maxSize` budget counts of an entry: its key and value bytes and its 32-byte
/// header (what it takes in memory, so that a budget spent on tiny entries cannot fill the
/// heap with headers).
pub fn user_bytes(key_len: usize, val_len: u64) -> u64 {
    ENTRY_HEADER_SIZE + key_len as u64 + val_len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_places_regions_on_pages_in_order() {
        let g = Geometry::new(64, 14, 10_000).unwrap();
        assert_eq!(g.desc_off, 4096);
        assert!(g.shards_off >= g.desc_off + 80_000 && g.shards_off % 4096 == 0);
        assert!(g.logs_off >= g.shards_off + 64 * 256);
        assert!(g.heap_off >= g.logs_off + 64 * MAP_LOG_BYTES && g.heap_off % 4096 == 0);
        assert_eq!(g.shard_of(u64::MAX), 63);
        assert_eq!(g.shard_of(0), 0);
        assert_eq!(Geometry::new(1, 14, 1).unwrap().shard_of(u64::MAX), 0);
    }

    #[test]
    fn impossible_geometries_are_refused() {
        assert!(Geometry::new(0, 14, 1).is_err());
        assert!(Geometry::new(3, 14, 1).is_err());
        assert!(Geometry::new(4096, 14, 1).is_err());
        assert!(Geometry::new(1, 11, 1).is_err());
        assert!(Geometry::new(1, 14, 0).is_err());
        assert!(Geometry::new(1, 14, u64::MAX).is_err());
    }

    #[test]
    fn slots_round_trip_and_are_never_empty_or_tombstones() {
        for (hash, heap) in [(0u64, 0u64), (u64::MAX, MAX_HEAP - 8), (12345 << 24, 4096)] {
            let s = make_slot(tag_of(hash), heap);
            assert!(slot_live(s));
            assert_eq!(slot_heap(s), heap);
            assert_eq!(slot_tag(s), tag_of(hash));
        }
    }

    #[test]
    fn stamps_differ_across_generations_and_offsets() {
        let d1 = make_desc(1, DESC_HEAD, 3);
        let d2 = make_desc(2, DESC_HEAD, 3);
        let seed = [1, 2];
        assert_ne!(stamp(seed, d1, 64), stamp(seed, d2, 64));
        assert_ne!(stamp(seed, d1, 64), stamp(seed, d1, 72));
        assert_ne!(stamp(seed, d1, 64), stamp([1, 3], d1, 64));
        let m = make_meta(stamp(seed, d1, 64), 0, false);
        assert_ne!(m, 0, "meta is never zero");
        assert!(meta_matches(m, stamp(seed, d1, 64)));
        assert_eq!(
            meta_expires(make_meta(5, 1_700_000_000_000, true)),
            1_700_000_000_000
        );
    }

    #[test]
    fn descriptors_and_lens_round_trip() {
        let d = make_desc(0xABCDEF, DESC_HEAD | DESC_TABLE, 4095);
        assert_eq!(
            (desc_gen(d), desc_flags(d), desc_owner(d)),
            (0xABCDEF, 3, 4095)
        );
        let l = lens(make_lens(1024, 7, FLAG_PENDING, MAX_VALUE));
        assert_eq!(
            l,
            Lens {
                key_len: 1024,
                tag: 7,
                flags: FLAG_PENDING,
                val_len: MAX_VALUE
            }
        );
        assert_eq!(entry_size(3, 5), 40);
        assert_eq!(table_parts(make_table(0, 4)), Some((0, 4)));
        assert_eq!(table_parts(0), None);
        assert_eq!(table_parts(3), None);
    }

    #[test]
    fn the_keyed_hash_depends_on_the_seed() {
        assert_ne!(hash_key([1, 2], b"user:1"), hash_key([1, 3], b"user:1"));
        assert_eq!(hash_key([1, 2], b"user:1"), hash_key([1, 2], b"user:1"));
    }
}
