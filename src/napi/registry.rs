//! Open handles of one JS thread, by number.
//!
//! The JS side holds a plain number per open segment instead of a wrapped native object:
//! looking a number up here costs a few nanoseconds, where unwrapping a napi class instance
//! costs about 200 ns per call — more than the whole read or write it guards. Numbers are
//! never reused within a thread, so a stale number finds nothing (`ERR_CLOSED`) rather than
//! another segment.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hasher for the registry's keys: they are distinct counters, so mixing them is enough.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Handles by number; numbers start at 1 and only grow.
pub struct Registry<T> {
    next: u32,
    entries: HashMap<u32, T, BuildHasherDefault<IdHasher>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            next: 1,
            entries: HashMap::default(),
        }
    }
}

impl<T> Registry<T> {
    /// Stores `value`; returns its number, or `None` when this thread has used up 2^32 − 1
    /// numbers.
    pub fn insert(&mut self, value: T) -> Option<u32> {
        let id = self.next;
        self.next = self.next.checked_add(1)?;
        self.entries.insert(id, value);
        Some(id)
    }

    /// The entry with this number, if still open.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.entries.get_mut(&id)
    }

    /// Removes and returns the entry.
    pub fn remove(&mut self, id: u32) -> Option<T> {
        self.entries.remove(&id)
    }

    /// Number of open entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is open.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_never_reused() {
        let mut r = Registry::default();
        let a = r.insert("a").unwrap();
        assert_eq!(r.remove(a), Some("a"));
        let b = r.insert("b").unwrap();
        assert_ne!(a, b);
        assert!(r.get_mut(a).is_none(), "a stale number finds nothing");
        assert_eq!(r.get_mut(b), Some(&mut "b"));
        assert_eq!(r.len(), 1);
    }
}
