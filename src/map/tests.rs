//! The map's promises, tested on the Rust core (the multi-process cases are in
//! `__test__/map*.test.js`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::*;
use crate::map::read::Touch;
use crate::test_support::TempDir;

const TAG_STRING: u8 = 1;

fn open(dir: &TempDir, opts: &MapOptions) -> MapSegment {
    MapSegment::open(&dir.path().join("m"), opts).unwrap()
}

fn get(m: &mut MapSegment, key: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    m.get(key.as_bytes(), &mut out, Touch::Get)
        .unwrap()
        .map(|_| out)
}

fn set(m: &mut MapSegment, key: &str, value: &str) {
    m.set(key.as_bytes(), TAG_STRING, value.as_bytes(), None)
        .unwrap();
}

#[test]
fn set_get_overwrite_delete_and_size() {
    let dir = TempDir::new("map-basic");
    let mut m = open(&dir, &MapOptions::default());
    assert_eq!(get(&mut m, "a"), None);
    set(&mut m, "a", "1");
    set(&mut m, "b", "22");
    assert_eq!(get(&mut m, "a").as_deref(), Some(&b"1"[..]));
    set(&mut m, "a", "333");
    assert_eq!(get(&mut m, "a").as_deref(), Some(&b"333"[..]));
    assert_eq!(m.size(), 2);
    assert!(m.has(b"b").unwrap());
    assert!(m.delete(b"b").unwrap());
    assert!(!m.delete(b"b").unwrap());
    assert!(!m.has(b"b").unwrap());
    assert_eq!(m.size(), 1);
    let st = m.stats();
    assert_eq!(
        st.live_bytes,
        4 + 32,
        "keys and values, and a 32-byte header each"
    );
}

#[test]
fn another_handle_sees_every_change() {
    let dir = TempDir::new("map-two");
    let mut a = open(&dir, &MapOptions::default());
    let mut b = open(&dir, &MapOptions::default());
    set(&mut a, "k", "v1");
    assert_eq!(get(&mut b, "k").as_deref(), Some(&b"v1"[..]));
    b.delete(b"k").unwrap();
    assert_eq!(get(&mut a, "k"), None);
    set(&mut a, "x", "1");
    a.clear().unwrap();
    assert_eq!(get(&mut b, "x"), None);
    assert_eq!(b.size(), 0);
}

#[test]
fn grows_to_a_hundred_thousand_entries_read_back_by_another_handle() {
    let dir = TempDir::new("map-grow");
    let mut a = open(&dir, &MapOptions::default());
    let before = std::fs::metadata(dir.path().join("m")).unwrap().len();
    for i in 0..100_000u32 {
        set(&mut a, &format!("user:{i}"), &format!("value-{i}"));
    }
    let after = std::fs::metadata(dir.path().join("m")).unwrap().len();
    assert!(after > before, "the file grew");
    let mut b = open(&dir, &MapOptions::default());
    assert_eq!(b.size(), 100_000);
    for i in (0..100_000u32).step_by(7) {
        assert_eq!(
            get(&mut b, &format!("user:{i}")),
            Some(format!("value-{i}").into_bytes())
        );
    }
    let mut seen = 0;
    for s in 0..b.shards() {
        b.visit_shard(s, true, &mut |k, _, v| {
            let k = std::str::from_utf8(k).unwrap();
            let i = k.strip_prefix("user:").unwrap();
            assert_eq!(v, format!("value-{i}").as_bytes());
            seen += 1;
        })
        .unwrap();
    }
    assert_eq!(seen, 100_000);
}

#[test]
fn overwriting_one_key_keeps_the_file_small() {
    let dir = TempDir::new("map-churn");
    let mut m = open(&dir, &MapOptions::default());
    for i in 0..200_000u32 {
        set(&mut m, "hot", &format!("{i:0100}"));
    }
    assert_eq!(
        get(&mut m, "hot"),
        Some(format!("{:0100}", 199_999).into_bytes())
    );
    let st = m.stats();
    assert!(
        st.heap_bytes < 4 << 20,
        "heap {} bytes for one key",
        st.heap_bytes
    );
    assert_eq!(m.size(), 1);
}

#[test]
fn max_evicts_the_least_recently_used_and_spares_a_read_key() {
    let dir = TempDir::new("map-lru");
    let mut m = open(
        &dir,
        &MapOptions {
            max_entries: Some(3),
            ..MapOptions::default()
        },
    );
    set(&mut m, "a", "1");
    set(&mut m, "b", "2");
    set(&mut m, "c", "3");
    assert!(get(&mut m, "a").is_some()); // a is used again
    set(&mut m, "d", "4");
    assert_eq!(m.size(), 3);
    assert!(get(&mut m, "a").is_some(), "the recently read key survives");
    assert!(get(&mut m, "b").is_none(), "the least recently used goes");
    assert!(get(&mut m, "c").is_some() && get(&mut m, "d").is_some());
    for i in 0..1000 {
        set(&mut m, &format!("k{i}"), "x");
        assert!(m.size() <= 3);
    }
}

#[test]
fn max_size_without_eviction_is_map_full_and_keeps_the_old_value() {
    let dir = TempDir::new("map-full");
    let mut m = open(
        &dir,
        &MapOptions {
            max_bytes: Some(100),
            ..MapOptions::default()
        },
    );
    set(&mut m, "a", &"x".repeat(50));
    let err = m
        .set(b"b", TAG_STRING, "y".repeat(60).as_bytes(), None)
        .unwrap_err();
    assert_eq!(err.code(), "ERR_MAP_FULL");
    assert_eq!(get(&mut m, "a"), Some("x".repeat(50).into_bytes()));
    // Replacing a value by a smaller one needs no room.
    set(&mut m, "a", "small");
    let err = m.set(b"c", TAG_STRING, &[0u8; 200], None).unwrap_err();
    assert_eq!(err.code(), "ERR_VALUE_TOO_LARGE");
}

#[test]
fn max_size_with_eviction_stays_within_budget() {
    let dir = TempDir::new("map-evict-bytes");
    let mut m = open(
        &dir,
        &MapOptions {
            max_bytes: Some(10_000),
            evict: Some(true),
            ..MapOptions::default()
        },
    );
    for i in 0..2000 {
        set(&mut m, &format!("k{i}"), &"v".repeat(90));
        assert!(m.stats().live_bytes <= 10_000);
    }
    assert!(get(&mut m, "k1999").is_some());
}

#[test]
fn ttl_expires_entries_and_update_age_on_get_refreshes_them() {
    let dir = TempDir::new("map-ttl");
    let mut m = open(
        &dir,
        &MapOptions {
            update_age_on_get: Some(true),
            ..MapOptions::default()
        },
    );
    m.set(b"short", TAG_STRING, b"1", Some(40)).unwrap();
    m.set(b"kept", TAG_STRING, b"2", Some(150)).unwrap();
    m.set(b"forever", TAG_STRING, b"3", None).unwrap();
    for _ in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(get(&mut m, "kept").is_some(), "each get moves its expiry");
    }
    assert!(get(&mut m, "short").is_none());
    assert!(!m.has(b"short").unwrap());
    assert!(get(&mut m, "forever").is_some());
    assert_eq!(m.purge_stale().unwrap(), 1);
    assert_eq!(m.size(), 2);
}

#[test]
fn incr_counts_exactly_across_threads_and_keeps_the_first_expiry() {
    let dir = TempDir::new("map-incr");
    let path = dir.path().join("m");
    drop(MapSegment::open(&path, &MapOptions::default()).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut m = MapSegment::open(&path, &MapOptions::default()).unwrap();
                for _ in 0..2_500 {
                    m.incr(b"hits", 1.0, Some(60_000)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut m = MapSegment::open(&path, &MapOptions::default()).unwrap();
    assert_eq!(m.incr(b"hits", 0.0, None).unwrap(), 10_000.0);
    let mut out = Vec::new();
    let found = m.get(b"hits", &mut out, Touch::None).unwrap().unwrap();
    assert!(found.expires_ms > now_ms() + 50_000);
    m.set(b"text", TAG_STRING, b"abc", None).unwrap();
    assert_eq!(
        m.incr(b"text", 1.0, None).unwrap_err().code(),
        "ERR_NOT_A_NUMBER"
    );
}

#[test]
fn claims_are_invisible_and_belong_to_one_live_handle() {
    let dir = TempDir::new("map-claim");
    let mut a = open(&dir, &MapOptions::default());
    let mut b = open(&dir, &MapOptions::default());
    let mut out = Vec::new();
    assert_eq!(a.claim(b"k", &mut out).unwrap(), Claim::Claimed);
    assert!(matches!(
        b.claim(b"k", &mut out).unwrap(),
        Claim::Pending(_)
    ));
    assert_eq!(get(&mut b, "k"), None);
    assert_eq!(b.size(), 0);
    assert!(a.unclaim(b"k").unwrap());
    assert_eq!(b.claim(b"k", &mut out).unwrap(), Claim::Claimed);
    set(&mut b, "k", "computed");
    assert!(matches!(a.claim(b"k", &mut out).unwrap(), Claim::Value(_)));
    assert_eq!(out, b"computed");
    // A claimant that dies leaves a claim the next one takes over.
    let mut c = open(&dir, &MapOptions::default());
    assert_eq!(c.claim(b"j", &mut out).unwrap(), Claim::Claimed);
    drop(c);
    assert_eq!(a.claim(b"j", &mut out).unwrap(), Claim::Claimed);
}

#[test]
fn compare_set_stores_only_over_what_was_read() {
    let dir = TempDir::new("map-cas");
    let mut a = open(&dir, &MapOptions::default());
    set(&mut a, "n", "1");
    let mut out = Vec::new();
    let seen = a.get(b"n", &mut out, Touch::None).unwrap().unwrap();
    let id = Some((seen.heap, seen.gen));
    // SAFETY: slices are readable for their length.
    assert!(unsafe { a.compare_set_raw(b"n", id, TAG_STRING, b"2".as_ptr(), 1, None) }.unwrap());
    // The same identity again is stale now: refused, value unchanged.
    assert!(!unsafe { a.compare_set_raw(b"n", id, TAG_STRING, b"3".as_ptr(), 1, None) }.unwrap());
    assert_eq!(get(&mut a, "n").as_deref(), Some(&b"2"[..]));
    // "No value" as the expectation: only for a missing key.
    assert!(!unsafe { a.compare_set_raw(b"n", None, TAG_STRING, b"4".as_ptr(), 1, None) }.unwrap());
    assert!(
        unsafe { a.compare_set_raw(b"new", None, TAG_STRING, b"5".as_ptr(), 1, None) }.unwrap()
    );
    let seen = a.get(b"new", &mut out, Touch::None).unwrap().unwrap();
    assert!(a
        .compare_delete(b"new", Some((seen.heap, seen.gen)))
        .unwrap());
    assert!(!a.has(b"new").unwrap());
}

#[test]
fn a_full_heap_makes_room_again_once_keys_are_deleted() {
    let dir = TempDir::new("map-jam");
    let mut m = open(
        &dir,
        &MapOptions {
            max_bytes: Some(200_000),
            ..MapOptions::default()
        },
    );
    let value = "v".repeat(900);
    let mut stored = 0;
    for i in 0..10_000 {
        match m.set(
            format!("k{i}").as_bytes(),
            TAG_STRING,
            value.as_bytes(),
            None,
        ) {
            Ok(()) => stored += 1,
            Err(e) => {
                assert_eq!(e.code(), "ERR_MAP_FULL");
                break;
            }
        }
    }
    assert!(stored > 100, "{stored}");
    // Overwrite in place many times: garbage must be reclaimed, never a jam.
    for round in 0..20 {
        for i in 0..stored / 2 {
            m.set(
                format!("k{i}").as_bytes(),
                TAG_STRING,
                format!("{round}{value}").as_bytes()[..900].as_ref(),
                None,
            )
            .unwrap();
        }
    }
    for i in 0..stored {
        m.delete(format!("k{i}").as_bytes()).unwrap();
    }
    for i in 0..stored {
        m.set(
            format!("a{i}").as_bytes(),
            TAG_STRING,
            value.as_bytes(),
            None,
        )
        .unwrap();
    }
    assert_eq!(m.size(), stored);
}

#[test]
fn a_dirty_shard_is_repaired_by_the_next_writer() {
    let dir = TempDir::new("map-dirty");
    let mut m = open(&dir, &MapOptions::default());
    for i in 0..100 {
        set(&mut m, &format!("k{i}"), "v");
    }
    let s = m.shard_of_key(b"k1");
    let sh = m.shard(s);
    let right = sh.count.load(Ordering::Relaxed);
    sh.count.store(right + 50, Ordering::Relaxed);
    sh.flags
        .store(crate::segment::layout::SHARD_DIRTY, Ordering::Relaxed);
    set(&mut m, "k1", "w");
    assert_eq!(m.shard(s).count.load(Ordering::Relaxed), right);
    assert_eq!(m.size(), 100);
}

#[test]
fn budget_counters_that_drifted_are_corrected_not_trusted() {
    let dir = TempDir::new("map-drift");
    let mut m = open(
        &dir,
        &MapOptions {
            max_entries: Some(10),
            ..MapOptions::default()
        },
    );
    for i in 0..5 {
        set(&mut m, &format!("k{i}"), "v");
    }
    // A killed writer left the hint far too high: the exact count decides, nothing evicted.
    m.header().alloc.entries.store(1_000, Ordering::Relaxed);
    set(&mut m, "k5", "v");
    assert_eq!(m.size(), 6);
    assert_eq!(m.header().alloc.entries.load(Ordering::Relaxed), 6);
}

#[test]
fn options_are_stored_and_a_conflict_names_the_option() {
    let dir = TempDir::new("map-opts");
    let opts = MapOptions {
        max_entries: Some(100),
        ttl_ms: Some(5000),
        ..MapOptions::default()
    };
    drop(open(&dir, &opts));
    let m = open(&dir, &MapOptions::default());
    assert_eq!(m.config().max_entries, 100);
    assert_eq!(m.config().ttl_ms, 5000);
    assert!(m.config().evict);
    let err = MapSegment::open(
        &dir.path().join("m"),
        &MapOptions {
            max_entries: Some(200),
            ..MapOptions::default()
        },
    )
    .err()
    .unwrap();
    assert_eq!(err.code(), "ERR_OPTION_MISMATCH");
    assert!(err.to_string().contains("max"), "{err}");
}

#[test]
fn the_change_log_reports_each_change_and_overflow() {
    let dir = TempDir::new("map-log");
    let mut m = open(&dir, &MapOptions::default());
    let hash = m.hash(b"k");
    let s = m.geo.shard_of(hash);
    let mut tails = Vec::new();
    m.log_tails(&mut tails);
    set(&mut m, "k", "1");
    m.delete(b"k").unwrap();
    let mut out = Vec::new();
    let (cursor, lost) = m.read_changes(s, tails[s as usize], &mut out);
    assert!(!lost);
    assert_eq!(
        out.iter()
            .map(|c| (c.op, c.key.as_slice()))
            .collect::<Vec<_>>(),
        vec![(ChangeOp::Set, &b"k"[..]), (ChangeOp::Delete, &b"k"[..])]
    );
    for i in 0..1000 {
        set(&mut m, "k", &i.to_string());
    }
    out.clear();
    let (_, lost) = m.read_changes(s, cursor, &mut out);
    assert!(lost, "a reader lapped by the writer is told so");
}

#[test]
fn a_writer_killed_mid_write_is_repaired_by_the_next_without_leaks() {
    let dir = TempDir::new("map-dead");
    let mut a = open(&dir, &MapOptions::default());
    for i in 0..1000 {
        set(&mut a, &format!("k{i}"), "v");
    }
    let hash = a.hash(b"k1");
    let s = a.geo.shard_of(hash);
    {
        // A writer that appends an entry and dies before publishing it, holding the lock.
        let mut dead = open(&dir, &MapOptions::default());
        dead.lock_shard(s).unwrap();
        let entry = write::NewEntry {
            key: b"k1",
            tag: TAG_STRING,
            flags: 0,
            src: b"torn".as_ptr(),
            len: 4,
            expires_ms: 0,
            ttl_ms: 0,
        };
        dead.append_entry(s, &entry, false).unwrap();
        // Its lock word still names it; dropping the handle would release the lock (as no
        // kill does): forget the handle.
        std::mem::forget(dead);
    }
    // The liveness byte of a forgotten handle is still held (its descriptor is open), so
    // stand in for the kernel: mark the lock word with a token nobody holds.
    let shard = a.shard(s);
    shard.lock.store(0x7123_4567, Ordering::SeqCst);
    let hash_tail = a.shard(s).log_tail.load(Ordering::Relaxed);
    let before = a.size();
    set(&mut a, "k1", "after");
    // Recovery moved the change log a whole ring ahead: watchers re-check the shard.
    let mut out = Vec::new();
    let (_, lost) = a.read_changes(s, hash_tail, &mut out);
    assert!(lost, "a watcher of the shard is told to re-check it");
    assert_eq!(get(&mut a, "k1").as_deref(), Some(&b"after"[..]));
    assert_eq!(a.size(), before);
    let st = a.stats();
    assert_eq!(st.entries, 1000);
}

#[test]
fn damaged_headers_and_heaps_give_errors_never_panics() {
    let dir = TempDir::new("map-damage");
    let path = dir.path().join("m");
    {
        let mut m = MapSegment::open(&path, &MapOptions::default()).unwrap();
        for i in 0..500 {
            set(&mut m, &format!("k{i}"), "value");
        }
    }
    let clean = std::fs::read(&path).unwrap();
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..60 {
        let mut bytes = clean.clone();
        for _ in 0..(1 + round % 8) {
            let at = (next() % bytes.len() as u64) as usize & !7;
            let word = next().to_le_bytes();
            bytes[at..at + 8].copy_from_slice(&word);
        }
        std::fs::write(&path, &bytes).unwrap();
        let Ok(mut m) = MapSegment::open(&path, &MapOptions::default()) else {
            continue;
        };
        for i in 0..50 {
            let key = format!("k{i}");
            let mut out = Vec::new();
            match m.get(key.as_bytes(), &mut out, Touch::Get) {
                Ok(_) => {}
                Err(e) => assert!(matches!(e.code(), "ERR_CORRUPT" | "ERR_MAP_FULL"), "{e}"),
            }
            match m.set(key.as_bytes(), TAG_STRING, b"new", None) {
                Ok(()) => {}
                Err(e) => assert!(
                    matches!(e.code(), "ERR_CORRUPT" | "ERR_MAP_FULL" | "ERR_TIMEOUT"),
                    "{e}"
                ),
            }
        }
        for s in 0..m.shards() {
            let _ = m.visit_shard(s, true, &mut |_, _, _| {});
        }
    }
}

#[test]
fn iteration_sees_every_entry_once_while_another_handle_writes() {
    let dir = TempDir::new("map-iter");
    let mut a = open(&dir, &MapOptions::default());
    for i in 0..5000 {
        set(&mut a, &format!("stable:{i}"), "s");
    }
    let path = dir.path().join("m");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut w = MapSegment::open(&path, &MapOptions::default()).unwrap();
            let mut i = 0u64;
            // SYNC POINT: Relaxed: a stop flag only.
            while !stop.load(Ordering::Relaxed) {
                let k = format!("churn:{}", i % 500);
                w.set(k.as_bytes(), TAG_STRING, &i.to_le_bytes(), None)
                    .unwrap();
                i += 1;
            }
        })
    };
    for _ in 0..5 {
        let mut seen: HashMap<Vec<u8>, u32> = HashMap::new();
        for s in 0..a.shards() {
            a.visit_shard(s, true, &mut |k, _, _| {
                *seen.entry(k.to_vec()).or_default() += 1;
            })
            .unwrap();
        }
        for i in 0..5000 {
            assert_eq!(seen.get(format!("stable:{i}").as_bytes()), Some(&1));
        }
        assert!(seen.values().all(|&n| n == 1));
    }
    // SYNC POINT: Relaxed: a stop flag only.
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn a_heap_full_of_small_entries_never_jams_updates_or_new_keys_after_deletes() {
    let dir = TempDir::new("map-heapjam");
    let mut m = open(
        &dir,
        &MapOptions {
            max_bytes: Some(100_000),
            ..MapOptions::default()
        },
    );
    let mut stored = 0u32;
    let mut why = String::new();
    for i in 0..100_000u32 {
        match m.set(format!("{i:06}").as_bytes(), TAG_STRING, b"abcd", None) {
            Ok(()) => stored += 1,
            Err(e) => {
                assert_eq!(e.code(), "ERR_MAP_FULL");
                why = e.to_string();
                break;
            }
        }
    }
    assert!(stored > 1000, "{stored}: {why}");
    // Rewriting every key many times leaves garbage that must be compacted away.
    for round in 0..10u32 {
        for i in 0..stored {
            m.set(
                format!("{i:06}").as_bytes(),
                TAG_STRING,
                &round.to_le_bytes(),
                None,
            )
            .unwrap_or_else(|e| panic!("round {round}, key {i}: {e}"));
        }
    }
    for i in 0..stored / 2 {
        assert!(m.delete(format!("{i:06}").as_bytes()).unwrap());
    }
    for i in 0..stored / 2 {
        m.set(format!("n{i:05}").as_bytes(), TAG_STRING, b"abcd", None)
            .unwrap_or_else(|e| panic!("new key {i}: {e}"));
    }
    assert_eq!(m.size(), u64::from(stored / 2 * 2 + stored % 2));
}

#[test]
fn expired_entries_do_not_hold_the_budget_of_a_map_that_does_not_evict() {
    let dir = TempDir::new("map-expired-budget");
    let mut m = open(
        &dir,
        &MapOptions {
            max_bytes: Some(4096),
            ..MapOptions::default()
        },
    );
    let mut stored = 0;
    for i in 0..1000 {
        match m.set(
            format!("k{i}").as_bytes(),
            TAG_STRING,
            &[b'x'; 40],
            Some(50),
        ) {
            Ok(()) => stored += 1,
            Err(e) => {
                assert_eq!(e.code(), "ERR_MAP_FULL");
                break;
            }
        }
    }
    assert!(stored > 10);
    std::thread::sleep(std::time::Duration::from_millis(120));
    // Every entry has expired: new ones fit without an explicit purgeStale().
    for i in 0..stored {
        m.set(format!("n{i}").as_bytes(), TAG_STRING, &[b'y'; 40], None)
            .unwrap_or_else(|e| panic!("entry {i}: {e}"));
    }
}
