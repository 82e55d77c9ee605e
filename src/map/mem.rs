//! Checked access to a map segment's mapping by file offset.
//!
//! Every offset a map follows comes from the file (untrusted) or is computed from fields
//! that did, so every access is bounds-checked against the mapping and alignment-checked
//! here, and fails (`None` / `false`) rather than fault. Words are reached as atomics
//! (other processes change them while we look); byte ranges are copied with raw pointers and
//! never viewed as slices.

use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::segment::Mapping;

/// A view of one mapping of a map segment.
#[derive(Clone, Copy)]
pub struct Mem<'a> {
    map: &'a Mapping,
}

impl<'a> Mem<'a> {
    pub fn new(map: &'a Mapping) -> Self {
        Mem { map }
    }

    /// Bytes mapped.
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Whether `len` bytes at `off` lie inside the mapping.
    pub fn contains(&self, off: u64, len: u64) -> bool {
        off.checked_add(len).is_some_and(|end| end <= self.len())
    }

    /// The 8-byte word at `off`, if inside the mapping and 8-aligned.
    pub fn u64(&self, off: u64) -> Option<&'a AtomicU64> {
        if off % 8 != 0 || !self.contains(off, 8) {
            return None;
        }
        // SAFETY: the word lies inside the mapping (checked) and is 8-aligned (the mapping
        // is page-aligned); the mapping lives for 'a; an AtomicU64 may be shared with other
        // processes that change it.
        Some(unsafe { &*(self.map.base().add(off as usize) as *const AtomicU64) })
    }

    /// A `#[repr(C)]` struct made only of atomics at `off` (8-aligned, inside the mapping).
    ///
    /// # Safety
    /// `T` must consist only of atomics (any bytes are a valid value, shared mutation is
    /// sound) and need at most 64-byte alignment, with `off` aligned to it.
    pub unsafe fn at<T>(&self, off: u64) -> Option<&'a T> {
        let align = std::mem::align_of::<T>() as u64;
        if off % align != 0 || !self.contains(off, std::mem::size_of::<T>() as u64) {
            return None;
        }
        // SAFETY: inside the mapping and aligned (checked); `T` is all atomics (contract).
        Some(unsafe { &*(self.map.base().add(off as usize) as *const T) })
    }

    /// Copies `len` bytes at `off` into `out` (replacing its contents). False if out of
    /// bounds. The bytes may be changing: the caller validates what it copied.
    pub fn copy_out(&self, off: u64, len: u64, out: &mut Vec<u8>) -> bool {
        if !self.contains(off, len) {
            return false;
        }
        let n = len as usize;
        out.clear();
        // A length read from the file (bounded by the mapping, which may be large) must
        // not abort the process if memory is short: it fails like a damaged length.
        if out.try_reserve(n).is_err() {
            return false;
        }
        // SAFETY: the source range is inside the mapping (checked); `out` has room for `n`
        // bytes and is private memory, disjoint from the mapping.
        unsafe {
            ptr::copy_nonoverlapping(self.map.base().add(off as usize), out.as_mut_ptr(), n);
            out.set_len(n);
        }
        true
    }

    /// Copies `len` bytes from `src` to `off`. False if out of bounds.
    ///
    /// # Safety
    /// `src` must be valid for reads of `len` bytes. It may itself be shared memory (a view
    /// of a segment): it is only read through the pointer.
    pub unsafe fn copy_in(&self, off: u64, src: *const u8, len: u64) -> bool {
        if !self.contains(off, len) {
            return false;
        }
        // SAFETY: the destination is inside the mapping (checked); `src` is readable for
        // `len` bytes (contract); `ptr::copy` allows overlap (a source that is a view of
        // this very mapping).
        unsafe { ptr::copy(src, self.map.base().add(off as usize), len as usize) };
        true
    }

    /// Whether the `key.len()` bytes at `off` equal `key`, or `None` if they lie outside the
    /// mapping. Read with atomic loads, a word at a time where `off` allows: no copy, no
    /// call (copying a short key out to compare it cost more than the comparison). The
    /// bytes may be changing: the caller validates what it concluded.
    pub fn equals(&self, off: u64, key: &[u8]) -> Option<bool> {
        if !self.contains(off, key.len() as u64) {
            return None;
        }
        let mut at = 0usize;
        if off % 8 == 0 {
            for word in key.chunks_exact(8) {
                let w = self.u64(off + at as u64)?;
                // SYNC POINT: Relaxed: the caller orders this after the Acquire load that
                // published the bytes (an entry's stamp) and checks afterwards that they
                // were not recycled.
                if w.load(Ordering::Relaxed) != u64::from_ne_bytes(word.try_into().ok()?) {
                    return Some(false);
                }
                at += 8;
            }
        }
        for &b in &key[at..] {
            // SAFETY: the byte lies inside the mapping (checked above), which lives for 'a;
            // an AtomicU8 may be shared with other processes that change it.
            let byte = unsafe { &*(self.map.base().add((off as usize) + at) as *const AtomicU8) };
            // SYNC POINT: Relaxed, as above.
            if byte.load(Ordering::Relaxed) != b {
                return Some(false);
            }
            at += 1;
        }
        Some(true)
    }
}
