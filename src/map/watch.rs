//! Waiting for changes to a map, from any thread: a parked watcher announces itself in the
//! header's waiter slots, compares every shard's change-log tail with what it last saw, and
//! sleeps on the header's futex word, which writers bump (and wake) only when a watcher is
//! announced (`MapSegment::notify`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::Geometry;
use super::mem::Mem;
use super::MapSegment;
use crate::segment::layout::{MapHeader, ShardHeader};
use crate::segment::Mapping;
use crate::sync::futex;
use crate::sync::waiters::Announcements;

/// The longest a watcher sleeps before it looks again, woken or not (an announcement
/// zeroed by a foreign process must not strand it).
const LONGEST_PARK: Duration = Duration::from_secs(1);
/// How often a cancellable wait looks at its flag.
const CANCEL_POLL: Duration = Duration::from_millis(100);
/// How often a read-only handle looks (it cannot announce itself, so nobody wakes it).
const READ_ONLY_POLL: Duration = Duration::from_millis(2);

/// What another thread needs to wait for a map's changes. Keeps the mapping alive.
#[derive(Clone)]
pub struct MapWatcher {
    map: Arc<Mapping>,
    geo: Geometry,
    token: u32,
    read_only: bool,
}

impl MapSegment {
    /// A watcher for this map (for a notifier thread).
    pub fn watcher(&self) -> MapWatcher {
        MapWatcher {
            map: Arc::clone(self.seg.mapping()),
            geo: self.geo,
            token: self.seg.token(),
            read_only: self.seg.read_only(),
        }
    }
}

impl MapWatcher {
    fn mem(&self) -> Mem<'_> {
        Mem::new(&self.map)
    }

    fn header(&self) -> &MapHeader {
        // SAFETY: MapHeader is all atomics; page 0 is mapped (a validated map).
        unsafe { self.mem().at::<MapHeader>(0) }.expect("page 0 is mapped")
    }

    fn shard(&self, s: u32) -> &ShardHeader {
        // SAFETY: ShardHeader is all atomics; the header region is mapped.
        unsafe { self.mem().at::<ShardHeader>(self.geo.shard_at(s)) }.expect("shards are mapped")
    }

    /// Every shard's change-log tail now.
    pub fn tails(&self, out: &mut Vec<u64>) {
        out.clear();
        for s in 0..self.geo.shards {
            // SYNC POINT: Acquire pairs with the Release store of `log_tail` in `log_change`.
            out.push(self.shard(s).log_tail.load(Ordering::Acquire));
        }
    }

    fn changed(&self, seen: &[u64]) -> bool {
        (0..self.geo.shards).any(|s| {
            // SYNC POINT: SeqCst pairs with the writer's SeqCst fence in `notify` (Dekker,
            // with our SeqCst announcement before it); see the module doc.
            self.shard(s).log_tail.load(Ordering::SeqCst)
                != seen.get(s as usize).copied().unwrap_or(0)
        })
    }

    /// Blocks until some shard's log tail differs from `seen`; true if so, false on timeout
    /// or once `cancel` is set.
    pub fn wait(
        &self,
        seen: &[u64],
        timeout: Option<Duration>,
        cancel: Option<&AtomicBool>,
    ) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let h = self.header();
        let waiters = Announcements::new(&h.notify.waiter_slots, &h.notify.notify_waiters);
        loop {
            // Read the futex word before looking: a change in between bumps it (if we are
            // announced) and the park returns at once.
            // SYNC POINT: Acquire pairs with the SeqCst bump in `notify`.
            let observed = h.notify.notify.load(Ordering::Acquire);
            let at = (!self.read_only).then(|| waiters.enter(self.token));
            let changed = self.changed(seen);
            // SYNC POINT: Acquire pairs with the Release store of the flag by whoever stops
            // the notifier; nothing else is published through it.
            let cancelled = cancel.is_some_and(|c| c.load(Ordering::Acquire));
            let mut nap = LONGEST_PARK;
            let mut expired = false;
            if let Some(deadline) = deadline {
                let now = Instant::now();
                expired = now >= deadline;
                nap = nap.min(deadline.saturating_duration_since(now));
            }
            if cancel.is_some() {
                nap = nap.min(CANCEL_POLL);
            }
            if self.read_only {
                nap = nap.min(READ_ONLY_POLL);
            }
            if !changed && !cancelled && !expired {
                futex::wait(&h.notify.notify, observed, Some(nap));
            }
            if let Some(at) = at {
                waiters.leave(at, self.token);
            }
            if changed {
                return true;
            }
            if cancelled || expired {
                return self.changed(seen);
            }
            if self.changed(seen) {
                return true;
            }
        }
    }

    /// Wakes every thread parked on this map's futex word (to cancel a wait).
    pub fn wake_all(&self) {
        futex::wake_all(&self.header().notify.notify);
    }
}
