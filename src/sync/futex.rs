//! Wait and wake on a 32-bit word in shared memory (Linux futex, process-shared).
//!
//! The only OS call behind change notification and lock parking. The algorithms above it
//! take "how to wait" as a parameter, so they are tested without the OS.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::thread::futex;

/// Why a wait returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Woken, or the word no longer held the expected value, or a signal interrupted the
    /// sleep: the caller re-checks its condition in every case.
    Woken,
    /// The timeout passed.
    TimedOut,
}

/// Parks the calling thread while `word == expected`, for at most `timeout`.
///
/// The word lives in a `MAP_SHARED` mapping, so this is the shared (not process-private)
/// futex: a `wake` from any process that maps the same file page reaches it.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts = timeout.map(|d| futex::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as _,
        tv_nsec: d.subsec_nanos() as _,
    });
    // SYNC POINT: the kernel compares `word` with `expected` atomically with queueing this
    // thread, which pairs with the store that precedes every `wake` below.
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Err(e) if e == rustix::io::Errno::TIMEDOUT => Wake::TimedOut,
        _ => Wake::Woken,
    }
}

/// Wakes up to `n` threads parked on `word`, in any process; returns how many woke.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    // A failure here (EFAULT cannot happen on a live mapping) is reported as "one woke", so
    // that callers never conclude from it that their waiters are gone.
    futex::wake(word, futex::Flags::empty(), n).unwrap_or(1)
}

/// Wakes every thread parked on `word`; returns how many woke.
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
