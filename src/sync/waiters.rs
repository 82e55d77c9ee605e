//! Who is parked on a futex word, kept so that a waiter's death cannot leave it wrong.
//!
//! A waiter announces itself before it parks, and a writer makes the wake syscall only when
//! someone announced: the fast path is a load of one cache line. A plain counter of waiters
//! stays raised for ever once a waiter is killed while parked (Ctrl-C on a process inside
//! `watch()` is enough), and from then on every write pays a syscall it does not need, about
//! five times the cost of the write itself. So a waiter announces itself with its handle's
//! token in a free slot; a writer whose wake woke nobody while slots were taken checks those
//! tokens' liveness (`segment.rs`) and frees the slots of dead handles. Only when every slot
//! is taken does a waiter fall back to the counter, which a death can still leave raised.
//!
//! Slots and counter are untrusted shared memory like everything in the header: a garbage
//! token costs at most a liveness check and a needless wake, never a missed one. Zeroed
//! slots can make a writer skip a wake; waiters bound every park for that reason (value
//! waits look again at least every second, channel waits every 20 ms).

use std::sync::atomic::{AtomicU32, Ordering};

use crate::sync::futex;

/// The slots and overflow counter of one futex word, borrowed from a segment header.
pub struct Announcements<'a> {
    slots: &'a [AtomicU32],
    overflow: &'a AtomicU32,
}

/// Where a waiter announced itself (to withdraw it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    Slot(usize),
    Counter,
}

impl<'a> Announcements<'a> {
    pub fn new(slots: &'a [AtomicU32], overflow: &'a AtomicU32) -> Self {
        Announcements { slots, overflow }
    }

    /// Announces a waiter of the handle `token` (non-zero), before it parks.
    pub fn enter(&self, token: u32) -> Announced {
        debug_assert!(token != 0);
        for (i, slot) in self.slots.iter().enumerate() {
            // SYNC POINT: SeqCst pairs with the writer's SeqCst bump of the futex word and
            // its SeqCst loads in `any` (Dekker): either the writer sees this slot and
            // wakes us, or our park sees the bumped word and returns at once.
            if slot
                .compare_exchange(0, token, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                return Announced::Slot(i);
            }
        }
        // SYNC POINT: as above.
        self.overflow.fetch_add(1, Ordering::SeqCst);
        Announced::Counter
    }

    /// Withdraws what [`enter`](Self::enter) announced, after the park.
    pub fn leave(&self, at: Announced, token: u32) {
        match at {
            // A compare-and-swap: never free a slot someone else holds now.
            // SYNC POINT: Relaxed is enough; writers only ever wake too often because of a
            // late withdrawal.
            Announced::Slot(i) => {
                let _ =
                    self.slots[i].compare_exchange(token, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
            // SYNC POINT: as in `enter`.
            Announced::Counter => {
                self.overflow.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Whether any waiter announced itself (the writer's check after bumping the word).
    pub fn any(&self) -> bool {
        // SYNC POINT: SeqCst loads pair with the SeqCst announcements in `enter`.
        self.overflow.load(Ordering::SeqCst) != 0
            || self.slots.iter().any(|s| s.load(Ordering::SeqCst) != 0)
    }

    /// Wakes every thread parked on `word` (after the writer bumped it, having seen
    /// [`any`](Self::any)). If nobody woke although waiters were announced, they are
    /// either about to park (alive) or dead: frees the slots of the dead.
    pub fn wake(&self, word: &AtomicU32, is_alive: &dyn Fn(u32) -> bool) {
        if futex::wake_all(word) == 0 {
            self.reap(is_alive);
        }
    }

    /// Frees the slots of dead handles. Called by a writer whose wake woke nobody although
    /// waiters were announced: either they are about to park (alive: kept) or they died.
    pub fn reap(&self, is_alive: &dyn Fn(u32) -> bool) {
        for slot in self.slots {
            // SYNC POINT: Relaxed: a stale read only makes us check a token for nothing.
            let token = slot.load(Ordering::Relaxed);
            if token != 0 && !is_alive(token) {
                // Only that dead token: a slot retaken meanwhile is left alone.
                let _ = slot.compare_exchange(token, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words<const N: usize>() -> [AtomicU32; N] {
        std::array::from_fn(|_| AtomicU32::new(0))
    }

    #[test]
    fn waiters_take_slots_then_the_counter_and_leave_them_free() {
        let slots = words::<2>();
        let overflow = AtomicU32::new(0);
        let a = Announcements::new(&slots, &overflow);
        assert!(!a.any());
        let first = a.enter(7);
        let second = a.enter(7); // a second thread of the same handle
        let third = a.enter(9);
        assert_eq!(
            (first, second, third),
            (Announced::Slot(0), Announced::Slot(1), Announced::Counter)
        );
        assert!(a.any());
        a.leave(second, 7);
        a.leave(third, 9);
        assert!(a.any());
        a.leave(first, 7);
        assert!(!a.any());
    }

    #[test]
    fn dead_waiters_are_reaped_live_ones_kept() {
        let slots = words::<4>();
        let overflow = AtomicU32::new(0);
        let a = Announcements::new(&slots, &overflow);
        a.enter(3); // dies while parked: never leaves
        let live = a.enter(5);
        a.reap(&|token| token == 5);
        assert_eq!(
            slots[0].load(Ordering::Relaxed),
            0,
            "the dead waiter's slot is free"
        );
        assert!(a.any(), "the live waiter stays announced");
        a.leave(live, 5);
        assert!(!a.any());
    }

    #[test]
    fn a_slot_retaken_by_another_token_is_not_freed_by_a_late_leave() {
        let slots = words::<1>();
        let overflow = AtomicU32::new(0);
        let a = Announcements::new(&slots, &overflow);
        let at = a.enter(3);
        a.reap(&|_| false); // wrongly thought dead (e.g. a garbage token)
        assert_eq!(a.enter(4), Announced::Slot(0));
        a.leave(at, 3);
        assert_eq!(slots[0].load(Ordering::Relaxed), 4);
    }
}
