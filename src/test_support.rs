//! Helpers for the unit tests: a private temporary folder per test, and a heap stand-in
//! for a channel's mapping.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::channel::ring::Ring;

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "share-object-{tag}-{}-{:08x}",
            std::process::id(),
            crate::os::random_token()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A heap stand-in for a channel mapping: positions and the ring's words.
pub struct RingMem {
    pub head: AtomicU64,
    pub tail: AtomicU64,
    pub words: Vec<AtomicU64>,
}

// SAFETY: the words are only touched through `Ring` (atomics and raw copies into claimed
// space) or through atomics, as on shared memory.
unsafe impl Sync for RingMem {}

impl RingMem {
    /// A ring of `capacity` bytes (a power of two) with these positions, its first words
    /// set from `words` and the rest zero.
    pub fn new(capacity: u64, head: u64, tail: u64, words: &[u64]) -> RingMem {
        let n = (capacity / 8) as usize;
        RingMem {
            head: AtomicU64::new(head),
            tail: AtomicU64::new(tail),
            words: (0..n)
                .map(|i| AtomicU64::new(words.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    pub fn ring(&self) -> Ring<'_> {
        // SAFETY: `words` is 8-aligned and `capacity` bytes long, a power of two in range.
        unsafe {
            Ring::new(
                &self.head,
                &self.tail,
                self.words.as_ptr() as *mut u8,
                self.words.len() as u64 * 8,
            )
        }
    }

    /// The ring's first byte.
    pub fn bytes(&self) -> *mut u8 {
        self.words.as_ptr() as *mut u8
    }

    /// The word holding byte `i` of the ring (wrapping).
    pub fn word(&self, i: u64) -> &AtomicU64 {
        &self.words[(i / 8) as usize % self.words.len()]
    }

    /// Head, tail and every word, as plain numbers.
    pub fn snapshot(&self) -> (u64, u64, Vec<u64>) {
        (
            self.head.load(Ordering::Relaxed),
            self.tail.load(Ordering::Relaxed),
            self.words
                .iter()
                .map(|w| w.load(Ordering::Relaxed))
                .collect(),
        )
    }
}
