//! A cross-process lock on one 32-bit word that survives the death of its holder.
//!
//! The word holds the *token* of the holding handle (0 = free) and a [`CONTENDED`] bit set
//! by anyone who parks, so the holder only makes a wake syscall when someone is waiting
//! (Drepper, "Futexes Are Tricky", mutex #2). The uncontended path is one compare-and-swap
//! to lock and one swap to unlock: no syscall.
//!
//! Every open handle holds a kernel lock on its own liveness byte (see `layout.rs`), which
//! the kernel drops when the handle's process dies. A waiter that finds the word owned by a
//! token whose liveness byte is free knows the holder is gone and takes the lock over,
//! reporting [`Acquired::OwnerDied`] so the caller can repair what the holder left half-done.
//! How to test liveness and how to park are passed in, so the algorithm is unit-tested here
//! without processes.
//!
//! Invariant: the word is only ever changed by compare-and-swap from a value the changer
//! read, except by its holder's release.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// High bit of a lock word: some thread is (or was) parked waiting for it.
pub const CONTENDED: u32 = 1 << 31;

/// How long a parked waiter sleeps before it re-checks whether the holder is alive.
pub const LIVENESS_POLL: Duration = Duration::from_millis(20);

/// Spins on a held lock before parking (bounded: on a busy 2-core machine the holder may
/// need our core to finish).
const SPINS: u32 = 100;

/// How the lock was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// From a holder that released it.
    Clean,
    /// Taken over from a holder that died while holding it.
    OwnerDied,
}

/// Why acquiring failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockError {
    /// The deadline passed while a live holder kept the lock.
    TimedOut,
    /// This token already holds the lock (the caller keeps its own recursion count).
    AlreadyHeld,
    /// The cancel flag of [`acquire_cancellable`] was set.
    Cancelled,
}

/// The token in a lock word, without the [`CONTENDED`] bit.
pub fn owner(word_value: u32) -> u32 {
    word_value & !CONTENDED
}

/// Acquires the lock for token `me` (non-zero, without the [`CONTENDED`] bit).
///
/// `is_alive(token)` says whether the handle with that token still lives; `park(word,
/// expected, timeout)` sleeps while `word == expected` (a futex wait, or a test double).
pub fn acquire(
    word: &AtomicU32,
    me: u32,
    deadline: Option<Instant>,
    is_alive: &dyn Fn(u32) -> bool,
    park: &dyn Fn(&AtomicU32, u32, Duration),
) -> Result<Acquired, LockError> {
    debug_assert!(me != 0 && me & CONTENDED == 0);
    // SYNC POINT: Acquire on success pairs with the Release swap in `release`, so the
    // previous holder's writes to the protected data are visible to us.
    if word
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return Ok(Acquired::Clean);
    }
    let mut spins = 0;
    // Once we have parked, others may be parked too: keep CONTENDED when we take the lock
    // so our release wakes the next one.
    let mut mark = 0;
    loop {
        // SYNC POINT: Relaxed: only chooses the next step; every step that takes the lock
        // is an Acquire compare-and-swap.
        let current = word.load(Ordering::Relaxed);
        if current == 0 {
            // SYNC POINT: as above, Acquire pairs with `release`'s Release swap.
            if word
                .compare_exchange(0, me | mark, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(Acquired::Clean);
            }
            continue;
        }
        let holder = owner(current);
        if holder == me {
            return Err(LockError::AlreadyHeld);
        }
        if spins < SPINS {
            spins += 1;
            std::hint::spin_loop();
            continue;
        }
        if holder == 0 || !is_alive(holder) {
            // The holder died (or the word holds a bare CONTENDED bit): take it over,
            // keeping CONTENDED so parked waiters are woken by our release.
            // SYNC POINT: Acquire pairs with whatever Release the dead holder managed;
            // the caller treats the protected data as possibly half-written.
            if word
                .compare_exchange(
                    current,
                    me | (current & CONTENDED),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return Ok(if holder == 0 {
                    Acquired::Clean
                } else {
                    Acquired::OwnerDied
                });
            }
            continue;
        }
        // SYNC POINT: Relaxed: setting CONTENDED publishes nothing; it only tells the
        // holder's `release` (which sees it through its swap) to wake someone.
        if current & CONTENDED == 0
            && word
                .compare_exchange(
                    current,
                    current | CONTENDED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            continue;
        }
        let mut nap = LIVENESS_POLL;
        if let Some(deadline) = deadline {
            let now = Instant::now();
            if now >= deadline {
                return Err(LockError::TimedOut);
            }
            nap = nap.min(deadline - now);
        }
        park(word, current | CONTENDED, nap);
        mark = CONTENDED;
    }
}

/// How a wait for the lock may be cancelled (by a closing handle, from another thread).
pub struct Cancel<'a> {
    /// Set to cancel.
    pub flag: &'a AtomicBool,
    /// How often the flag is looked at while waiting.
    pub poll: Duration,
    /// Wakes one parked waiter (to hand on a lock taken after the flag was set).
    pub wake_one: &'a dyn Fn(&AtomicU32),
}

/// Like [`acquire`], but with `cancel`, gives up with [`LockError::Cancelled`] once its flag
/// is set: the wait is cut into steps of at most `poll`, and the flag is looked at before
/// each and after the lock is taken (a lock taken once the flag is set is handed on at once,
/// never returned). Without `cancel`, exactly [`acquire`].
pub fn acquire_cancellable(
    word: &AtomicU32,
    me: u32,
    deadline: Option<Instant>,
    cancel: Option<&Cancel<'_>>,
    is_alive: &dyn Fn(u32) -> bool,
    park: &dyn Fn(&AtomicU32, u32, Duration),
) -> Result<Acquired, LockError> {
    let Some(cancel) = cancel else {
        return acquire(word, me, deadline, is_alive, park);
    };
    // SYNC POINT: Acquire pairs with the Release store of the flag by whoever cancels (a
    // closing handle, which stores it before it releases a lock held for it with
    // `release_if_held`): a lock our compare-and-swap took after that release is followed
    // by a load that sees the flag.
    let cancelled = || cancel.flag.load(Ordering::Acquire);
    loop {
        if cancelled() {
            return Err(LockError::Cancelled);
        }
        let step = Instant::now() + cancel.poll;
        let step = deadline.map_or(step, |d| d.min(step));
        match acquire(word, me, Some(step), is_alive, park) {
            Err(LockError::TimedOut) if deadline.map_or(true, |d| Instant::now() < d) => continue,
            Ok(_) if cancelled() => {
                release_if_held(word, me, cancel.wake_one);
                return Err(LockError::Cancelled);
            }
            other => return other,
        }
    }
}

/// Releases the lock only if `me` holds it (a handle closing with the lock still held).
/// Returns whether it did.
pub fn release_if_held(word: &AtomicU32, me: u32, wake_one: &dyn Fn(&AtomicU32)) -> bool {
    // SYNC POINT: Relaxed: the value only decides whether to try; the CAS below orders.
    let mut current = word.load(Ordering::Relaxed);
    while owner(current) == me {
        // SYNC POINT: Release pairs with the Acquire compare-and-swap in `acquire`, as in
        // `release`.
        match word.compare_exchange(current, 0, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => {
                if current & CONTENDED != 0 {
                    wake_one(word);
                }
                return true;
            }
            Err(now) => current = now, // a waiter set CONTENDED meanwhile
        }
    }
    false
}

/// Releases the lock held by `me`. Returns false if the word did not name `me` (someone
/// declared us dead, or the word was overwritten): the lock is released all the same.
pub fn release(word: &AtomicU32, me: u32, wake_one: &dyn Fn(&AtomicU32)) -> bool {
    // SYNC POINT: Release pairs with the Acquire compare-and-swap in `acquire`.
    let previous = word.swap(0, Ordering::Release);
    if previous & CONTENDED != 0 {
        wake_one(word);
    }
    owner(previous) == me
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    fn futex_park(w: &AtomicU32, expected: u32, d: Duration) {
        crate::sync::futex::wait(w, expected, Some(d));
    }
    fn futex_wake(w: &AtomicU32) {
        crate::sync::futex::wake(w, 1);
    }

    fn cancellation(flag: &AtomicBool, poll: Duration) -> Cancel<'_> {
        Cancel {
            flag,
            poll,
            wake_one: &futex_wake,
        }
    }

    #[test]
    fn uncontended_acquire_and_release() {
        let w = AtomicU32::new(0);
        let alive = |_| true;
        assert_eq!(
            acquire(&w, 7, None, &alive, &futex_park),
            Ok(Acquired::Clean)
        );
        assert_eq!(w.load(Ordering::Relaxed), 7);
        assert_eq!(
            acquire(&w, 7, None, &alive, &futex_park),
            Err(LockError::AlreadyHeld)
        );
        assert!(release(&w, 7, &futex_wake));
        assert_eq!(w.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_dead_holder_is_taken_over_and_reported() {
        let w = AtomicU32::new(42 | CONTENDED);
        let dead: HashSet<u32> = [42].into();
        let alive = |t| !dead.contains(&t);
        assert_eq!(
            acquire(&w, 9, None, &alive, &futex_park),
            Ok(Acquired::OwnerDied)
        );
        assert_eq!(w.load(Ordering::Relaxed), 9 | CONTENDED);
    }

    #[test]
    fn a_live_holder_makes_a_bounded_wait_time_out() {
        let w = AtomicU32::new(42);
        let alive = |_| true;
        let deadline = Instant::now() + Duration::from_millis(30);
        assert_eq!(
            acquire(&w, 9, Some(deadline), &alive, &futex_park),
            Err(LockError::TimedOut)
        );
        assert_eq!(owner(w.load(Ordering::Relaxed)), 42, "the holder keeps it");
    }

    #[test]
    fn threads_exclude_each_other() {
        let w = Arc::new(AtomicU32::new(0));
        let inside = Arc::new(Mutex::new(0u64));
        let counter = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (1..=4u32)
            .map(|me| {
                let (w, inside, counter) = (w.clone(), inside.clone(), counter.clone());
                std::thread::spawn(move || {
                    let alive = |_| true;
                    for _ in 0..5_000 {
                        acquire(&w, me, None, &alive, &futex_park).unwrap();
                        // A non-atomic read-modify-write, safe only under the lock.
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                        *inside.lock().unwrap() += 1;
                        assert!(release(&w, me, &futex_wake));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 20_000);
    }

    #[test]
    fn a_cancelled_wait_gives_up_and_leaves_the_lock_alone() {
        let w = Arc::new(AtomicU32::new(42)); // a live holder that never lets go
        let cancel = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (w, cancel) = (w.clone(), cancel.clone());
            std::thread::spawn(move || {
                let alive = |_| true;
                let cancel = cancellation(&cancel, Duration::from_millis(5));
                acquire_cancellable(&w, 7, None, Some(&cancel), &alive, &futex_park)
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        cancel.store(true, Ordering::Release);
        assert_eq!(waiter.join().unwrap(), Err(LockError::Cancelled));
        assert_eq!(owner(w.load(Ordering::Relaxed)), 42);
    }

    #[test]
    fn a_cancellable_wait_keeps_its_deadline_and_takes_a_freed_lock() {
        let w = AtomicU32::new(42);
        let flag = AtomicBool::new(false);
        let cancel = cancellation(&flag, Duration::from_millis(2));
        let alive = |_| true;
        let deadline = Some(Instant::now() + Duration::from_millis(10));
        let got = acquire_cancellable(&w, 7, deadline, Some(&cancel), &alive, &futex_park);
        assert_eq!(got, Err(LockError::TimedOut));
        w.store(0, Ordering::Relaxed);
        let got = acquire_cancellable(&w, 7, None, Some(&cancel), &alive, &futex_park);
        assert_eq!(got, Ok(Acquired::Clean));
    }

    #[test]
    fn a_lock_freed_after_the_cancel_is_handed_on_not_returned() {
        let w = AtomicU32::new(42);
        let flag = AtomicBool::new(false);
        let cancel = cancellation(&flag, Duration::from_secs(10));
        let alive = |_| true;
        // While we are parked, the handle closes and the holder releases.
        let park = |w: &AtomicU32, _: u32, _: Duration| {
            flag.store(true, Ordering::Release);
            w.store(0, Ordering::Release);
        };
        let got = acquire_cancellable(&w, 7, None, Some(&cancel), &alive, &park);
        assert_eq!(got, Err(LockError::Cancelled));
        assert_eq!(w.load(Ordering::Relaxed), 0, "the lock is free again");
    }

    #[test]
    fn release_if_held_frees_only_its_own_lock() {
        let w = AtomicU32::new(42 | CONTENDED);
        let woken = AtomicU32::new(0);
        let wake = |_: &AtomicU32| {
            woken.fetch_add(1, Ordering::Relaxed);
        };
        assert!(!release_if_held(&w, 7, &wake));
        assert_eq!(w.load(Ordering::Relaxed), 42 | CONTENDED);
        assert!(release_if_held(&w, 42, &wake));
        assert_eq!(w.load(Ordering::Relaxed), 0);
        assert_eq!(
            woken.load(Ordering::Relaxed),
            1,
            "the parked waiter is woken"
        );
    }
}
