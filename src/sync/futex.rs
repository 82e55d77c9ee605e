//! Wait and wake on a 32-bit word in shared memory, across processes.
//!
//! The only wait behind change notification and lock parking. The OS call is in the `os`
//! floor (Linux futex, macOS `os_sync_wait_on_address` / `__ulock_wait`); this file holds
//! the contract the algorithms above rely on, the same on every OS, and the tests that check
//! it wherever the suite runs:
//! - a wait returns at once if the word no longer holds the expected value, and may return
//!   early for any reason ([`Wake::Woken`]): every caller re-checks its condition;
//! - [`Wake::TimedOut`] only once the whole timeout passed;
//! - a wake reaches waiters in every process that maps the same file page, and returns 0
//!   only when the OS said that nobody waited.
//!
//! The algorithms take "how to wait" as a parameter, so they are tested without the OS.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use crate::os;

pub use crate::os::Wake;

/// Parks the calling thread while `word == expected`, for at most `timeout`.
///
/// The word lives in a `MAP_SHARED` mapping, so this is the process-shared wait: a `wake`
/// from any process that maps the same file page reaches it.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    // SYNC POINT: the OS compares `word` with `expected` atomically with queueing this
    // thread, which pairs with the store that precedes every `wake` below.
    os::futex_wait(word, expected, timeout)
}

/// Wakes up to `n` threads parked on `word`, in any process (macOS wakes one, or all when
/// `n > 1`). Returns how many woke: 0 only when nobody waited; on macOS, which cannot count,
/// 1 stands for "at least one".
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    os::futex_wake(word, n)
}

/// Wakes every thread parked on `word`; returns how many woke (see [`wake`]).
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, i32::MAX as u32)
}

/// Busy-waits up to `budget` for `ready()`, the cheapest wait when the other side answers
/// within microseconds. Yields the CPU between short bursts, so on a busy machine the
/// thread it waits for can run on this core. Returns whether `ready()` became true.
pub fn spin_until(budget: std::time::Duration, ready: &dyn Fn() -> bool) -> bool {
    if budget.is_zero() {
        return ready();
    }
    let started = std::time::Instant::now();
    loop {
        for _ in 0..32 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if started.elapsed() >= budget {
            return ready();
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn a_wait_on_a_changed_word_returns_at_once() {
        let w = AtomicU32::new(5);
        assert_eq!(wait(&w, 4, Some(Duration::from_secs(10))), Wake::Woken);
    }

    #[test]
    fn a_wait_times_out() {
        let w = AtomicU32::new(5);
        assert_eq!(wait(&w, 5, Some(Duration::from_millis(5))), Wake::TimedOut);
    }

    #[test]
    fn a_wake_with_nobody_waiting_says_so() {
        // `Announcements::wake` relies on it to find waiters that died while parked.
        let w = AtomicU32::new(0);
        assert_eq!(wake_all(&w), 0);
        assert_eq!(wake(&w, 1), 0);
    }

    #[test]
    fn a_wake_through_another_mapping_of_the_file_reaches_the_waiter() {
        // Two mappings of one file at two addresses, as two processes have: the wait is
        // keyed by the file's page, not by the address.
        let dir = crate::test_support::TempDir::new("futex-two-maps");
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("f"))
            .unwrap();
        file.set_len(4096).unwrap();
        let a = memmap2::MmapOptions::new()
            .len(4096)
            .map_raw(&file)
            .unwrap();
        let b = memmap2::MmapOptions::new()
            .len(4096)
            .map_raw(&file)
            .unwrap();
        assert_ne!(a.as_ptr(), b.as_ptr());
        // SAFETY: both mappings are page-aligned, 4096 bytes long and live until the end of
        // the test (the thread is joined first); an AtomicU32 at offset 64 is in bounds and
        // aligned, and the file's bytes are only ever accessed atomically here.
        let (wa, wb) = unsafe {
            (
                &*(a.as_mut_ptr().add(64) as *const AtomicU32),
                &*(b.as_mut_ptr().add(64) as *const AtomicU32),
            )
        };
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                // SYNC POINT: Acquire pairs with the Release store through `wb` below.
                while wa.load(Ordering::Acquire) == 0 {
                    // Only a wake that missed us lets the 10 s run out.
                    if wait(wa, 0, Some(Duration::from_secs(10))) == Wake::TimedOut {
                        return false;
                    }
                }
                true
            });
            std::thread::sleep(Duration::from_millis(20));
            // SYNC POINT: Release pairs with the waiter's Acquire load through `wa`.
            wb.store(1, Ordering::Release);
            wake_all(wb);
            assert!(waiter.join().unwrap(), "the wake did not reach the waiter");
        });
    }

    #[test]
    fn wake_reaches_a_parked_thread() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            // SYNC POINT: Acquire pairs with the Release store of 1 by the main thread below.
            while w2.load(Ordering::Acquire) == 0 {
                wait(&w2, 0, Some(Duration::from_secs(10)));
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        // SYNC POINT: Release pairs with the Acquire load in the spawned thread's loop.
        w.store(1, Ordering::Release);
        wake_all(&w);
        t.join().unwrap();
    }
}
