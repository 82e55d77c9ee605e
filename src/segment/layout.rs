//! The on-file format of a segment: one place to read it.
//!
//! Every segment file starts with a 256-byte header made of four 64-byte cache lines, followed
//! by the data area. All integers are little-endian (the format is defined for the host it was
//! created on; share-object is one-host IPC). Every header field is an atomic, because other
//! processes change them while we read: no plain reference to shared bytes is ever formed.
//!
//! ```text
//! offset size field            meaning
//! ---- line 0: identity (written once, before the file is visible) ----
//!   0    8   magic            b"SHAREOBJ"
//!   8    4   format_version   FORMAT_VERSION (1)
//!  12    4   kind             1 = value, 2 = channel
//!  16    4   header_size      HEADER_SIZE: where the data area starts
//!  20    4   flags            reserved, 0
//!  24    8   capacity         bytes in the data area; a value segment's only ever grows
//!  32   32   reserved, 0
//! ---- line 1: value seqlock (kind 1) ----
//!  64    8   seq              even = stable, odd = write in progress; version = seq / 2
//!  72    8   len              length of the value (untrusted: checked against capacity)
//!  80   48   reserved, 0
//! ---- line 2: locks and notification ----
//! 128    4   writer_lock      token of the writing handle | CONTENDED, 0 = free
//! 132    4   user_lock        token of the lock() holder | CONTENDED, 0 = free
//! 136    4   notify           futex word: +1 after every completed write
//! 140    4   notify_waiters   threads parked on `notify` beyond those in `waiter_slots`
//! 144   48   reserved, 0
//! ---- line 3: waiters ----
//! 192   64   waiter_slots     16 × u32: token of a handle with a thread parked on
//!                             `notify`, 0 = free (see `waiters.rs`)
//! ---- data area ----
//! 256   capacity bytes
//! ```
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
//! Beyond the file's bytes, the segment uses open-file-description (OFD) byte-range locks on
//! offsets past any real data, which the kernel drops when the holder dies:
//! [`LOCK_OPEN`] (shared by every opener; exclusive while a file is initialised in place) and
//! one byte per open handle at [`LIVENESS_BASE`]` + token` (held for the handle's life, so
//! anyone can tell whether the holder of a lock word is still alive).

use std::sync::atomic::{AtomicU32, AtomicU64};

/// The first eight bytes of every segment.
pub const MAGIC: [u8; 8] = *b"SHAREOBJ";
/// [`MAGIC`] as the little-endian integer stored in [`Identity::magic`].
pub const MAGIC_U64: u64 = u64::from_le_bytes(MAGIC);
/// The format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the data area.
pub const HEADER_SIZE: usize = 256;
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

/// High bit of a lock word: some thread is (or was) parked waiting for it (`sync::lock`).
pub use crate::sync::lock::CONTENDED;

/// OFD lock byte that every opener holds shared, and an in-place initialiser holds exclusive.
pub const LOCK_OPEN: u64 = 1 << 40;
/// Base of the per-handle liveness bytes: a handle with token `t` holds `LIVENESS_BASE + t`.
pub const LIVENESS_BASE: u64 = 1 << 41;

/// Human name of a segment kind, for messages.
pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        KIND_VALUE => "value",
        KIND_CHANNEL => "channel",
        _ => "unknown kind",
    }
}

/// Line 0: what the segment is. Written before the file becomes visible, then only
/// `capacity` changes (grows, under the writer lock).
#[repr(C, align(64))]
pub struct Identity {
    pub magic: AtomicU64,
    pub format_version: AtomicU32,
    pub kind: AtomicU32,
    pub header_size: AtomicU32,
    pub flags: AtomicU32,
    pub capacity: AtomicU64,
    pub reserved: [AtomicU64; 4],
}

/// The header of a value segment (kind 1).
#[repr(C, align(64))]
pub struct ValueHeader {
    pub identity: Identity,
    /// Seqlock word: even = stable, odd = write in progress. `version = seq / 2`.
    pub seq: AtomicU64,
    /// Length of the current value. Untrusted: always checked against the capacity.
    pub len: AtomicU64,
    pub reserved1: [AtomicU64; 6],
    /// Token of the writing handle, or 0; [`CONTENDED`] set when someone may be parked.
    pub writer_lock: AtomicU32,
    /// Token of the handle inside `lock()`, or 0; [`CONTENDED`] as above.
    pub user_lock: AtomicU32,
    /// Futex word bumped after every completed write; waiters park on it.
    pub notify: AtomicU32,
    /// Threads parked on `notify` that found no free slot in `waiter_slots`.
    pub notify_waiters: AtomicU32,
    pub reserved2: [AtomicU32; 12],
    /// Tokens of handles with a thread parked on `notify` (0 = free): writers wake only
    /// when a slot or `notify_waiters` is non-zero (`waiters.rs`).
    pub waiter_slots: [AtomicU32; 16],
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
    assert!(size_of::<ValueHeader>() == HEADER_SIZE);
    assert!(offset_of!(ValueHeader, seq) == 64);
    assert!(offset_of!(ValueHeader, len) == 72);
    assert!(offset_of!(ValueHeader, writer_lock) == 128);
    assert!(offset_of!(ValueHeader, user_lock) == 132);
    assert!(offset_of!(ValueHeader, notify) == 136);
    assert!(offset_of!(ValueHeader, notify_waiters) == 140);
    assert!(offset_of!(ValueHeader, waiter_slots) == 192);
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
    assert!(LOCK_OPEN >= HEADER_SIZE as u64 + MAX_CAPACITY);
    assert!(LIVENESS_BASE > LOCK_OPEN && LIVENESS_BASE < i64::MAX as u64 - u32::MAX as u64);
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
