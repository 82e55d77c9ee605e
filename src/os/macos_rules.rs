//! The decisions of the macOS port that are plain arithmetic on durations and return codes,
//! kept apart from the calls so that they compile, and are unit-tested, on every OS (no
//! macOS code can run where the suite runs).

use std::time::Duration;

/// What the return of a wait call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken, value already changed, interrupted, or a timeout shorter than asked ran out:
    /// return at once, the caller re-checks.
    Woken,
    /// The whole timeout passed.
    TimedOut,
    /// Any other error (`EINVAL`, which correct arguments never get): return after a short
    /// sleep, so a caller looping on its condition polls instead of spinning.
    Failed,
}

/// The `timeout` argument of `__ulock_wait` (microseconds, 32 bits, 0 = no timeout) for a
/// wait of at most `timeout`, and whether it had to be shortened (about 71 minutes at most).
/// Rounded up: a wait never ends before its time only because of the unit.
pub fn ulock_timeout_us(timeout: Option<Duration>) -> (u32, bool) {
    let Some(d) = timeout else {
        return (0, false);
    };
    let us = d.as_nanos().div_ceil(1000);
    match u32::try_from(us) {
        // 0 would mean "for ever".
        Ok(0) => (1, false),
        Ok(us) => (us, false),
        Err(_) => (u32::MAX, true),
    }
}

/// The `timeout_ns` argument of `os_sync_wait_on_address_with_timeout` (nanoseconds, must
/// not be 0), and whether it had to be shortened (beyond 584 years).
pub fn os_sync_timeout_ns(d: Duration) -> (u64, bool) {
    match u64::try_from(d.as_nanos()) {
        Ok(0) => (1, false),
        Ok(ns) => (ns, false),
        Err(_) => (u64::MAX, true),
    }
}

/// Reads the return of `os_sync_wait_on_address*` or `__ulock_wait`: a count (>= 0) when
/// woken or when the word no longer held the value, else -1 and `errno`.
pub fn wait_result(rc: i32, errno: Option<i32>, shortened: bool) -> WaitResult {
    if rc >= 0 {
        return WaitResult::Woken;
    }
    match errno {
        Some(libc::ETIMEDOUT) if !shortened => WaitResult::TimedOut,
        // EFAULT: the word's page was not resident, and the kernel reads it with faults
        // disabled ("let the user level code fault it in", `bsd/kern/sys_ulock.c`). The
        // caller's re-check reads the word, which brings the page back.
        Some(libc::ETIMEDOUT | libc::EINTR | libc::EFAULT) => WaitResult::Woken,
        _ => WaitResult::Failed,
    }
}

/// Reads the return of `os_sync_wake_by_address_*` or `__ulock_wake` as "how many woke":
/// 0 only when the OS said no thread waited (`ENOENT`); else 1, meaning "at least one", so
/// that no caller concludes from an error that its waiters are gone.
pub fn woke(rc: i32, errno: Option<i32>) -> usize {
    if rc < 0 && errno == Some(libc::ENOENT) {
        0
    } else {
        1
    }
}

/// The bytes `F_PREALLOCATE` (`F_PEOFPOSMODE`: counted from the end of the file's
/// allocation) must add to grow a file of `size` bytes to `len`; `None` when it is big
/// enough, since [`reserve`](super::reserve) never shrinks.
pub fn preallocate_len(size: u64, len: u64) -> Option<u64> {
    (size < len).then(|| len - size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulock_timeouts_are_never_zero_never_early_and_say_when_shortened() {
        assert_eq!(ulock_timeout_us(None), (0, false));
        assert_eq!(ulock_timeout_us(Some(Duration::ZERO)), (1, false));
        assert_eq!(ulock_timeout_us(Some(Duration::from_nanos(1))), (1, false));
        assert_eq!(
            ulock_timeout_us(Some(Duration::from_nanos(1500))),
            (2, false)
        );
        assert_eq!(
            ulock_timeout_us(Some(Duration::from_millis(20))),
            (20_000, false)
        );
        let limit = Duration::from_micros(u64::from(u32::MAX));
        assert_eq!(ulock_timeout_us(Some(limit)), (u32::MAX, false));
        assert_eq!(
            ulock_timeout_us(Some(limit + Duration::from_micros(1))),
            (u32::MAX, true)
        );
        assert_eq!(ulock_timeout_us(Some(Duration::MAX)), (u32::MAX, true));
    }

    #[test]
    fn os_sync_timeouts_are_never_zero_and_say_when_shortened() {
        assert_eq!(os_sync_timeout_ns(Duration::ZERO), (1, false));
        assert_eq!(
            os_sync_timeout_ns(Duration::from_secs(1)),
            (1_000_000_000, false)
        );
        assert_eq!(os_sync_timeout_ns(Duration::MAX), (u64::MAX, true));
    }

    #[test]
    fn only_a_full_timeout_reads_as_timed_out() {
        assert_eq!(wait_result(0, None, false), WaitResult::Woken);
        assert_eq!(wait_result(3, None, true), WaitResult::Woken);
        let timedout = Some(libc::ETIMEDOUT);
        assert_eq!(wait_result(-1, timedout, false), WaitResult::TimedOut);
        assert_eq!(wait_result(-1, timedout, true), WaitResult::Woken);
        assert_eq!(wait_result(-1, Some(libc::EINTR), false), WaitResult::Woken);
        assert_eq!(
            wait_result(-1, Some(libc::EINVAL), false),
            WaitResult::Failed
        );
        // A page that was not resident: retry at once (the caller's read faults it in).
        assert_eq!(
            wait_result(-1, Some(libc::EFAULT), false),
            WaitResult::Woken
        );
        assert_eq!(wait_result(-1, None, false), WaitResult::Failed);
    }

    #[test]
    fn only_enoent_means_nobody_woke() {
        assert_eq!(woke(0, None), 1);
        assert_eq!(woke(-1, Some(libc::ENOENT)), 0);
        assert_eq!(woke(-1, Some(libc::EINVAL)), 1);
        assert_eq!(woke(-1, None), 1);
    }

    #[test]
    fn preallocation_covers_only_the_growth() {
        assert_eq!(preallocate_len(0, 4096), Some(4096));
        assert_eq!(preallocate_len(1000, 4096), Some(3096));
        assert_eq!(preallocate_len(4096, 4096), None);
        assert_eq!(preallocate_len(8192, 4096), None);
    }
}
