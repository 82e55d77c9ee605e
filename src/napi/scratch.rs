//! Per-thread scratch buffers that do not keep a large size for the thread's life.
//!
//! The hot calls copy a value or a string through a buffer reused from call to call, so a
//! loop of small reads or writes allocates nothing. One large value must not pin its size
//! in memory afterwards (a 40 MiB value once left 80–120 MiB resident for good): after
//! every use, a buffer that grew beyond [`KEEP_BYTES`] is released.

use std::cell::RefCell;

/// The most a scratch buffer keeps between calls, in bytes.
pub const KEEP_BYTES: usize = 1 << 20;

/// A reused buffer of `T`, released after a use that grew it beyond [`KEEP_BYTES`].
pub struct Scratch<T> {
    buf: RefCell<Vec<T>>,
}

impl<T> Scratch<T> {
    pub const fn new() -> Self {
        Scratch {
            buf: RefCell::new(Vec::new()),
        }
    }

    /// Runs `f` on the buffer (its contents are whatever the last use left: clear it first
    /// if that matters), then releases the buffer if it is now larger than [`KEEP_BYTES`].
    ///
    /// Panics if called again from inside `f` (the buffer is borrowed).
    pub fn with<R>(&self, f: impl FnOnce(&mut Vec<T>) -> R) -> R {
        let mut buf = self.buf.borrow_mut();
        let out = f(&mut buf);
        if buf.capacity().saturating_mul(std::mem::size_of::<T>()) > KEEP_BYTES {
            *buf = Vec::new();
        }
        out
    }

    /// The buffer's capacity now, in elements.
    pub fn capacity(&self) -> usize {
        self.buf.borrow().capacity()
    }
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_buffer_is_kept_between_uses() {
        let s = Scratch::<u8>::new();
        s.with(|b| b.extend_from_slice(&[1; 4096]));
        assert!(s.capacity() >= 4096);
        let before = s.capacity();
        s.with(|b| {
            b.clear();
            b.extend_from_slice(&[2; 100]);
        });
        assert_eq!(s.capacity(), before, "no reallocation for a smaller use");
    }

    #[test]
    fn a_buffer_grown_beyond_the_limit_is_released_after_the_use() {
        let s = Scratch::<u8>::new();
        let len = s.with(|b| {
            b.resize(40 << 20, 7);
            b.len()
        });
        assert_eq!(len, 40 << 20, "the use itself sees the whole buffer");
        assert_eq!(s.capacity(), 0);
        let wide = Scratch::<u16>::new();
        wide.with(|b| b.resize(KEEP_BYTES / 2 + 1, 0));
        assert_eq!(wide.capacity(), 0, "the limit is in bytes, not elements");
    }
}
