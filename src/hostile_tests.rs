//! Property tests and interleaving checks over hostile segment bytes (issue 6).
//!
//! Three kinds of tests live here:
//!
//! 1. **Fuzzing** (`fuzz_*`, proptest): arbitrary header and record bytes are written into
//!    segment files (value segments of format 2 — `current`, the three slots' words — and
//!    channels) and into an in-memory ring, then the real open / read / write / send /
//!    receive code runs over them. What must hold: only typed errors
//!    ([`crate::error::Error`], with a code from a short list), never a panic, never a hang,
//!    and a successful write is read back exactly, with its tag and version. The number of cases comes from
//!    `PROPTEST_CASES` (default: 600, 600 and 1000, fit for `cargo test`); the long run is
//!
//!    ```sh
//!    PROPTEST_CASES=1000000 cargo test --release hostile_tests::fuzz
//!    ```
//!
//!    Failures are not persisted to files (`failure_persistence: None`): proptest prints the
//!    shrunk input instead.
//!
//! 2. **Model checking** (`model_*`): a small explicit-state model checker ([`explore`])
//!    enumerates every reachable state (so every interleaving, with identical states merged)
//!    of a few threads running the value commit protocol (`value/slots.rs`: writers killed
//!    at every step, a reader's sub-steps), the seqlock and the ring protocols, and checks
//!    invariants in
//!    every state and at every end state. Where the real code can be called one operation at
//!    a time it is, on a heap stand-in for the mapping: `seqlock::begin_write`/`copy_in`
//!    (byte by byte)/`end_write`/`try_read`, and `ring::Ring::claim`/`payload`/`commit`/
//!    `peek_within`/`payload_at`/`consume`, plus `clear`/`skip_gap`/`unblock` as whole steps
//!    in one configuration. What the real code cannot pause inside is modelled statement by
//!    statement after it: the reader's copy between its two loads of `seq`; a producer's
//!    claim between its tail CAS, its padding `take_header` and check, its header
//!    `take_header` and its head check; the consumer inside `clear`, `unblock` and
//!    `skip_gap` (where a consumer may also be killed). These mirrors follow `src/ring.rs`
//!    as of the change that left skipped gaps' revoked words in place (no zeroing) and had
//!    `take_header` leave alone what a later lap wrote, and say which statements they
//!    reproduce. The exploration is
//!    exhaustive for the bounds stated in each test (threads, messages, retries, unblocks,
//!    crashes) under sequential consistency; memory ordering (fences, Acquire/Release) is
//!    not what these check — the multi-thread and multi-process stress tests exercise that.
//!
//!    `fuzz_borrow_and_receive_against_a_model` drives one channel through random sends,
//!    receives and zero-copy borrows with partial releases, checked against a queue model
//!    (exactly once, in order, whole; queued bytes match).
//!
//! 3. **Reproductions** (`ring_*`, `channel_*`, named after what must hold): the shortest
//!    sequence of real calls (with the same statement mirrors where a thread must stop
//!    inside one) showing each defect the fuzzers and the models found.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::channel::ring::{self, Next, Ring, RingError};
use crate::channel::{Accept, ChannelSegment};
use crate::error::Error;
use crate::segment::layout::ValueHeader;
use crate::segment::layout::{self, HEADER_SIZE, VALUE_HEADER_SIZE};
use crate::segment::OpenOptions;
use crate::sync::seqlock::{self, ReadAttempt};
use crate::test_support::{RingMem, TempDir};
use crate::value::slots::{self, ReadAttempt as ReadAttempt2};
use crate::value::{ValueOptions, ValueSegment};

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// Cases per property test: `PROPTEST_CASES`, or `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fuzz_config(default: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default),
        // Never write `proptest-regressions/` files into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Error codes a damaged segment may produce. Anything else (an OS error, ERR_LOCK_HELD…)
/// from an operation on garbage is a finding.
/// (No ERR_WRITER_DIED: format 2 never reports a value as torn; only the upgrade of a
/// format-1 file can, and it is not exercised here.)
const HOSTILE_CODES: &[&str] = &[
    "ERR_CORRUPT",
    "ERR_NOT_A_SEGMENT",
    "ERR_UNSUPPORTED_VERSION",
    "ERR_WRONG_KIND",
    "ERR_TIMEOUT",
    "ERR_CONSUMER_BUSY",
];

fn typed<T>(what: &str, r: &Result<T, Error>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert!(
            HOSTILE_CODES.contains(&e.code()),
            "{what}: unexpected error code {} ({e})",
            e.code()
        );
    }
    Ok(())
}

/// Values that tend to sit on edges of the checks.
fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            0u64,
            1,
            2,
            3,
            7,
            8,
            16,
            24,
            255,
            256,
            1023,
            1024,
            1025,
            2048,
            4096,
            (1 << 31) - 1,
            1 << 31,
            (1 << 31) | 5,
            u32::MAX as u64,
            1 << 30,
            layout::MAX_CAPACITY,
            layout::MAX_CAPACITY + 1,
            i64::MAX as u64,
            u64::MAX - 7,
            u64::MAX,
        ]),
        3 => 0u64..8192,
        2 => any::<u64>(),
    ]
}

/// One overwrite of `width` bytes at `offset` in the header.
#[derive(Debug, Clone)]
struct Mutation {
    offset: usize,
    width: usize,
    value: u64,
}

fn mutation(fields: &'static [usize], header: usize) -> impl Strategy<Value = Mutation> {
    (
        prop_oneof![3 => proptest::sample::select(fields), 1 => 0usize..header],
        proptest::sample::select(vec![1usize, 4, 8]),
        interesting_u64(),
    )
        .prop_map(|(offset, width, value)| Mutation {
            offset,
            width,
            value,
        })
}

fn apply(header: &mut [u8], m: &Mutation) {
    let end = (m.offset + m.width).min(header.len());
    for (i, b) in header[m.offset..end].iter_mut().enumerate() {
        *b = (m.value >> (8 * i)) as u8;
    }
}

/// Offsets of the value header's fields (layout.rs, format 2): line 0, `current`, the locks
/// and notification words, and each slot's seq, commit, region, len and tag.
const VALUE_FIELDS: &[usize] = &[
    0, 8, 12, 16, 24, 64, 128, 132, 136, 140, 256, 264, 272, 280, 288, 320, 328, 336, 344, 352,
    384, 392, 400, 408, 416,
];
/// Offsets of the channel header's fields (layout.rs).
const CHANNEL_FIELDS: &[usize] = &[0, 8, 12, 16, 24, 64, 128, 136, 140, 144, 192, 196];

#[derive(Debug, Clone)]
enum HeaderBase {
    /// A header as `initialise` writes it, with `capacity` = the data area (for a value:
    /// three regions of a third of it each, when it has whole pages for them).
    Valid,
    /// All zero (initialised in place if the whole file is zero).
    Zero,
    /// Arbitrary bytes.
    Random(Vec<u8>),
}

#[derive(Debug, Clone)]
struct FileSpec {
    kind: u32,
    base: HeaderBase,
    data_len: usize,
    mutations: Vec<Mutation>,
    /// Sparse writes into the data area: (8-byte word index, value).
    words: Vec<(usize, u64)>,
    /// Arbitrary bytes repeated over the data area before `words`.
    fill: Vec<u8>,
    /// Cut the file to this many bytes (a short file).
    cut: Option<usize>,
}

impl FileSpec {
    fn header_size(&self) -> usize {
        header_size_of(self.kind)
    }

    fn bytes(&self) -> Vec<u8> {
        let header = self.header_size();
        let mut bytes = vec![0u8; header + self.data_len];
        match &self.base {
            HeaderBase::Valid => {
                let pages = self.data_len as u64 / 3 / layout::PAGE;
                if self.kind == layout::KIND_VALUE && pages > 0 {
                    bytes[..header].copy_from_slice(&crate::value::header_image(pages, 0, 0, 0));
                }
                bytes[..8].copy_from_slice(&layout::MAGIC);
                let version = layout::format_version(self.kind);
                bytes[8..12].copy_from_slice(&version.to_le_bytes());
                bytes[12..16].copy_from_slice(&self.kind.to_le_bytes());
                bytes[16..20].copy_from_slice(&(header as u32).to_le_bytes());
                bytes[24..32].copy_from_slice(&(self.data_len as u64).to_le_bytes());
            }
            HeaderBase::Zero => {}
            HeaderBase::Random(r) => {
                let n = r.len().min(header);
                bytes[..n].copy_from_slice(&r[..n]);
            }
        }
        for m in &self.mutations {
            apply(&mut bytes[..header], m);
        }
        if !self.fill.is_empty() {
            for (i, b) in bytes[header..].iter_mut().enumerate() {
                *b = self.fill[i % self.fill.len()];
            }
        }
        let words = self.data_len / 8;
        for &(i, w) in &self.words {
            if words > 0 {
                let at = header + (i % words) * 8;
                bytes[at..at + 8].copy_from_slice(&w.to_le_bytes());
            }
        }
        if let Some(n) = self.cut {
            bytes.truncate(n);
        }
        bytes
    }
}

/// A record header word (len | state << 32) biased towards the states the ring knows.
fn record_word() -> impl Strategy<Value = u64> {
    let state = prop_oneof![
        proptest::sample::select(vec![ring::MSG, ring::PAD, ring::REVOKED, 0u32]),
        1u32..(1 << 31),
        any::<u32>(),
    ];
    let len = prop_oneof![0u32..64, 0u32..2048, any::<u32>()];
    prop_oneof![
        3 => (len, state).prop_map(|(l, s)| u64::from(l) | (u64::from(s) << 32)),
        1 => any::<u64>(),
    ]
}

/// The header size of a segment kind's files.
fn header_size_of(kind: u32) -> usize {
    if kind == layout::KIND_VALUE {
        VALUE_HEADER_SIZE
    } else {
        HEADER_SIZE
    }
}

fn header_base(header: usize) -> impl Strategy<Value = HeaderBase> {
    prop_oneof![
        6 => Just(HeaderBase::Valid),
        1 => Just(HeaderBase::Zero),
        1 => proptest::collection::vec(any::<u8>(), header).prop_map(HeaderBase::Random),
    ]
}

fn cut(header: usize) -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        8 => Just(None),
        1 => (1usize..header).prop_map(Some),
        1 => (header..header + 4096).prop_map(Some),
    ]
}

fn value_file() -> impl Strategy<Value = FileSpec> {
    (
        header_base(VALUE_HEADER_SIZE),
        // Three regions of 1 or 2 pages, or data areas they cannot be made of.
        proptest::sample::select(vec![0usize, 100, 4096, 3 * 4096, 6 * 4096]),
        proptest::collection::vec(mutation(VALUE_FIELDS, VALUE_HEADER_SIZE), 0..6),
        prop_oneof![Just(vec![]), proptest::collection::vec(any::<u8>(), 1..16)],
        cut(VALUE_HEADER_SIZE),
    )
        .prop_map(|(base, data_len, mutations, fill, cut)| FileSpec {
            kind: layout::KIND_VALUE,
            base,
            data_len,
            mutations,
            words: vec![],
            fill,
            cut,
        })
}

fn channel_file() -> impl Strategy<Value = FileSpec> {
    (
        header_base(HEADER_SIZE),
        proptest::sample::select(vec![1024usize, 2048]),
        proptest::collection::vec(mutation(CHANNEL_FIELDS, HEADER_SIZE), 0..6),
        proptest::collection::vec((0usize..256, record_word()), 0..12),
        prop_oneof![
            4 => Just(vec![]),
            1 => proptest::collection::vec(any::<u8>(), 1..16)
        ],
        cut(HEADER_SIZE),
    )
        .prop_map(|(base, data_len, mutations, words, fill, cut)| FileSpec {
            kind: layout::KIND_CHANNEL,
            base,
            data_len,
            mutations,
            words,
            fill,
            cut,
        })
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write the fuzzed file");
}

// ---------------------------------------------------------------------------------------
// 1. Fuzzing: files with arbitrary header and record bytes
// ---------------------------------------------------------------------------------------

/// Opens a value segment over arbitrary bytes and runs every operation on it.
fn exercise_value_file(path: &Path, spec: &FileSpec) -> Result<(), TestCaseError> {
    write_file(path, &spec.bytes());
    let opened = ValueSegment::open(path, &ValueOptions::default());
    typed("open", &opened)?;
    let Ok(mut v) = opened else { return Ok(()) };
    let _ = v.version();
    let _ = v.capacity();
    let mut out = Vec::new();
    typed("read", &v.read_into(&mut out))?;
    let _ = v.user_lock_held();
    let locked = v.lock_user(Some(Instant::now() + Duration::from_millis(5)));
    typed("lock", &locked)?;
    if locked.is_ok() {
        v.unlock_user();
    }
    let _ = v
        .watcher()
        .wait_for_change(v.version(), Some(Duration::ZERO), Duration::ZERO, None);
    let large = vec![3u8; crate::value::slots::PIN_MIN as usize + 1];
    for (tag, value) in [
        (1, &b"hello"[..]),
        (0, &[7u8; 5000][..]),
        (6, &large[..]),
        (5, &b""[..]),
    ] {
        let written = v.write(tag, value);
        typed("write", &written)?;
        if let Ok(version) = written {
            // A successful write commits a whole slot: it is read back exactly, with its
            // tag, as the version it returned (whatever else the header holds).
            let read = v.read_into(&mut out);
            prop_assert!(read.is_ok(), "read after a successful write: {read:?}");
            prop_assert_eq!(&out[..], value, "read after a successful write");
            let read = read.unwrap();
            prop_assert_eq!((read.commit, read.tag), (version, tag));
        }
    }
    Ok(())
}

/// Opens a channel over arbitrary bytes and sends / receives on it.
fn exercise_channel_file(path: &Path, spec: &FileSpec) -> Result<(), TestCaseError> {
    write_file(path, &spec.bytes());
    let opts = OpenOptions {
        capacity: 1024,
        ..OpenOptions::default()
    };
    let opened = ChannelSegment::open(path, &opts);
    typed("open", &opened)?;
    let Ok(mut c) = opened else { return Ok(()) };
    let max = c.max_message() as usize;
    typed("queued", &c.queued())?;
    typed("send", &c.send(b"abc"))?;
    typed("send_many", &c.send_many(&[&b"x"[..], &[9u8; 40][..], b""]))?;
    for _ in 0..3 {
        let mut lens = Vec::new();
        let got = c.receive(64, &mut |ptr, len| {
            let mut m = vec![0u8; len];
            // SAFETY: `receive` passes a pointer valid for `len` bytes of the ring.
            unsafe { std::ptr::copy_nonoverlapping(ptr, m.as_mut_ptr(), len) };
            lens.push(len);
            Accept::Taken
        });
        typed("receive", &got)?;
        prop_assert!(lens.iter().all(|&l| l <= max), "message beyond maxMessage");
    }
    let _ = c.watcher().data_state();
    let _ = c.consumer_held();
    typed("queued", &c.queued())?;
    Ok(())
}

proptest! {
    #![proptest_config(fuzz_config(600))]

    /// Arbitrary value-segment files: open, read, lock, wait, write (with growth), read back.
    #[test]
    fn fuzz_value_segment_files(spec in value_file()) {
        let dir = TempDir::new("fuzz-value");
        exercise_value_file(&dir.path().join("s"), &spec)?;
    }

    /// Arbitrary channel files: open, queued, send, send_many, receive.
    #[test]
    fn fuzz_channel_segment_files(spec in channel_file()) {
        let dir = TempDir::new("fuzz-chan");
        exercise_channel_file(&dir.path().join("c"), &spec)?;
    }
}

// --- in-memory ring: arbitrary head, tail and record words ----------------------------

fn word_of(len: u64, state: u32) -> u64 {
    len | (u64::from(state) << 32)
}

/// Copies a message's bytes out of the ring.
fn copy_out(ring: &Ring<'_>, payload: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    // SAFETY: `peek` checked that the payload lies inside the ring.
    unsafe {
        std::ptr::copy_nonoverlapping(ring.payload_at(payload, len), v.as_mut_ptr(), len as usize)
    };
    v
}

/// Drains like `ChannelSegment::receive`, with every call bounded; returns the messages.
fn drain_bounded(ring: &Ring<'_>, head: &mut u64, dead: bool, unblock: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..1024 {
        let next = match ring.peek(*head) {
            Ok(n) => n,
            Err(RingError::Corrupt(_)) => break,
        };
        match next {
            Next::Message {
                payload,
                len,
                record,
            } => {
                assert!(payload + len <= ring.capacity() && record % 8 == 0);
                out.push(copy_out(ring, payload, len));
                ring.clear(*head, record);
                *head += record;
            }
            Next::Skip { record } => {
                ring.clear(*head, record);
                *head += record;
            }
            Next::Gap { record } => *head = ring.skip_gap(*head, record),
            Next::InProgress { record, .. } if dead => {
                ring.clear(*head, record);
                *head += record;
            }
            Next::Unwritten if unblock => match ring.unblock(*head) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ => break,
        }
    }
    ring.consume(*head);
    out
}

fn position() -> impl Strategy<Value = u64> {
    // Realistic positions (below 2^60, so no arithmetic near u64::MAX: that edge has its
    // own test below), aligned or not.
    prop_oneof![
        3 => (0u64..4096).prop_map(|p| p * 8),
        1 => 0u64..4096,
        1 => (0u64..(1 << 57)).prop_map(|p| p * 8),
        1 => 0u64..(1 << 60),
    ]
}

proptest! {
    #![proptest_config(fuzz_config(1000))]

    /// Arbitrary head, tail and ring words: every Ring operation returns, without a panic,
    /// and nothing is read or written outside the ring (`Ring` asserts every index).
    #[test]
    fn fuzz_ring_words(
        head in position(),
        delta in prop_oneof![0u64..1100, position()],
        tail_below in any::<bool>(),
        words in proptest::collection::vec(prop_oneof![4 => Just(0u64), 3 => record_word()], 128),
        dead in any::<bool>(),
        lens in proptest::collection::vec(0u64..=128, 1..6),
    ) {
        let tail = if tail_below { head.saturating_sub(delta) } else { head.saturating_add(delta) };
        let mem = RingMem::new(1024, head, tail, &words);
        let ring = mem.ring();
        let _ = ring.used();
        // `unblock` is only ever called where `peek` found unwritten space (its contract).
        if let Ok(Next::Unwritten) = ring.peek(head) {
            let _ = ring.unblock(head);
        }
        let mut h = mem.head.load(Ordering::Relaxed);
        let got = drain_bounded(&ring, &mut h, dead, true);
        prop_assert!(got.iter().all(|m| m.len() as u64 <= ring::max_message(1024)));
        for (i, &len) in lens.iter().enumerate() {
            if let Ok(Some(c)) = ring.claim(len, 1 + i as u32) {
                let p = ring.payload(&c);
                // SAFETY: the claim reserved `len` bytes at `p`.
                unsafe { std::ptr::write_bytes(p, 0xAB, len as usize) };
                ring.commit(&c);
            }
        }
        let mut claims = Vec::new();
        if ring.claim_batch(&lens, 77, &mut claims).is_ok() {
            for c in &claims {
                ring.commit(c);
            }
        }
        let mut h = mem.head.load(Ordering::Relaxed);
        drain_bounded(&ring, &mut h, dead, true);
    }
}

// ---------------------------------------------------------------------------------------
// 2. Model checking
// ---------------------------------------------------------------------------------------

/// A system of threads whose steps can be enumerated.
trait Model: Clone {
    /// The steps enabled in this state (empty: an end state).
    fn actions(&self) -> Vec<u8>;
    /// Takes one step; `Err` names a violated invariant.
    fn apply(&mut self, action: u8) -> Result<(), String>;
    /// Checked in every end state.
    fn at_end(&self) -> Result<(), String>;
    /// A description of a step, for traces.
    fn describe(&self, action: u8) -> String;
    /// Everything that determines the future: equal keys are merged.
    fn key(&self, out: &mut Vec<u64>);
}

/// What an exploration found.
#[derive(Debug, Default)]
struct Exploration {
    states: usize,
    ends: usize,
    /// First counterexample trace of each kind of violation.
    violations: BTreeMap<String, Vec<String>>,
    truncated: bool,
}

impl Exploration {
    fn report(&self) -> String {
        let mut s = format!(
            "{} states, {} end states, {} kinds of violation{}\n",
            self.states,
            self.ends,
            self.violations.len(),
            if self.truncated {
                " (state bound reached)"
            } else {
                ""
            }
        );
        for (kind, trace) in &self.violations {
            s += &format!("--- {kind}\n");
            for (i, step) in trace.iter().enumerate() {
                s += &format!("  {:>2}. {step}\n", i + 1);
            }
        }
        s
    }
}

/// Depth-first search over every reachable state of `init` (visited states are merged by a
/// 128-bit fingerprint of `Model::key`). Exhaustive unless `max_states` is reached.
fn explore<M: Model>(init: M, max_states: usize) -> Exploration {
    struct Search<M> {
        seen: HashSet<u128>,
        hashers: (RandomState, RandomState),
        found: Exploration,
        max_states: usize,
        path: Vec<String>,
        _m: std::marker::PhantomData<M>,
    }
    impl<M: Model> Search<M> {
        fn fingerprint(&self, m: &M) -> u128 {
            let mut key = Vec::with_capacity(256);
            m.key(&mut key);
            let mut a = self.hashers.0.build_hasher();
            let mut b = self.hashers.1.build_hasher();
            for &k in &key {
                a.write_u64(k);
                b.write_u64(k);
            }
            (u128::from(a.finish()) << 64) | u128::from(b.finish())
        }
        fn visit(&mut self, m: &M) {
            if !self.seen.insert(self.fingerprint(m)) {
                return;
            }
            if self.seen.len() > self.max_states {
                self.found.truncated = true;
                return;
            }
            self.found.states += 1;
            let actions = m.actions();
            if actions.is_empty() {
                self.found.ends += 1;
                if let Err(kind) = m.at_end() {
                    self.record(kind, "(end state)".into());
                }
                return;
            }
            for a in actions {
                let mut next = m.clone();
                let what = m.describe(a);
                match next.apply(a) {
                    Ok(()) => {
                        self.path.push(what);
                        self.visit(&next);
                        self.path.pop();
                    }
                    Err(kind) => self.record(kind, what),
                }
            }
        }
        fn record(&mut self, what: String, last: String) {
            // One trace per kind of violation: the message up to its first colon.
            let kind = what.split(':').next().unwrap_or_default().to_owned();
            self.found.violations.entry(kind).or_insert_with(|| {
                let mut trace = self.path.clone();
                trace.push(last);
                trace.push(format!("=> {what}"));
                trace
            });
        }
    }
    let mut search = Search::<M> {
        seen: HashSet::new(),
        hashers: (RandomState::new(), RandomState::new()),
        found: Exploration::default(),
        max_states,
        path: Vec::new(),
        _m: std::marker::PhantomData,
    };
    search.visit(&init);
    eprintln!(
        "explored {} states, {} end states, {} kinds of violation",
        search.found.states,
        search.found.ends,
        search.found.violations.len()
    );
    search.found
}

// --- the seqlock ----------------------------------------------------------------------

/// Bytes of the model's value area.
const SEQ_CAP: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WStep {
    /// Takes the writer lock (a dead holder's lock is taken over), then `begin_write`.
    Begin,
    /// `copy_in` of byte `i` (a memcpy in progress, one byte per step).
    Copy(usize),
    /// `end_write`.
    End,
    Done,
    Dead,
}

#[derive(Clone, Debug)]
struct SeqWriter {
    values: Vec<Vec<u8>>,
    next: usize,
    step: WStep,
    odd: u64,
    /// May die after any of its steps (at most once in the model).
    may_die: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RStep {
    /// Reader sub-steps mirroring `seqlock::try_read`: load `seq` (Acquire).
    LoadSeq1,
    /// Load `len`; check it against the mapping.
    LoadLen {
        s1: u64,
    },
    /// Copy byte `i` of `n` into private memory.
    Copy {
        s1: u64,
        n: u64,
        i: u64,
    },
    /// Fence, load `seq` again; accept if unchanged.
    LoadSeq2 {
        s1: u64,
        n: u64,
    },
    /// The whole `try_read` as one step (real code).
    Whole,
    Done,
}

#[derive(Clone, Debug)]
struct SeqModel {
    seq: u64,
    len: u64,
    data: [u8; SEQ_CAP],
    /// Writers in order: the second takes over if the first dies.
    writers: Vec<SeqWriter>,
    /// Index of the writer holding the writer lock, if any (a dead holder keeps it).
    lock: Option<usize>,
    r_step: RStep,
    reads_left: u8,
    out: Vec<u8>,
    /// The even `seq` completed when the current read began (no read may return older).
    floor: u64,
    /// Value of each completed version: (even seq, bytes).
    history: Vec<(u64, Vec<u8>)>,
    results: Vec<String>,
    whole_reads: bool,
}

impl SeqModel {
    fn new(writers: Vec<SeqWriter>, reads: u8, whole_reads: bool) -> SeqModel {
        SeqModel {
            seq: 0,
            len: 0,
            data: [0; SEQ_CAP],
            writers,
            lock: None,
            r_step: if whole_reads {
                RStep::Whole
            } else {
                RStep::LoadSeq1
            },
            reads_left: reads,
            out: Vec::new(),
            floor: 0,
            history: vec![(0, vec![])],
            results: Vec::new(),
            whole_reads,
        }
    }

    /// Runs `f` on atomics holding this state's `seq` and `len`, then stores them back.
    fn with_words<T>(&mut self, f: impl FnOnce(&AtomicU64, &AtomicU64, *mut u8) -> T) -> T {
        let seq = AtomicU64::new(self.seq);
        let len = AtomicU64::new(self.len);
        let r = f(&seq, &len, self.data.as_mut_ptr());
        self.seq = seq.load(Ordering::Relaxed);
        self.len = len.load(Ordering::Relaxed);
        r
    }

    fn writer_alive(&self, w: usize) -> bool {
        self.writers[w].step != WStep::Dead
    }

    fn value_of(&self, even: u64) -> Option<&Vec<u8>> {
        self.history
            .iter()
            .find(|(s, _)| *s == even)
            .map(|(_, v)| v)
    }

    fn start_next_read(&mut self) {
        self.reads_left -= 1;
        self.floor = self.history.last().unwrap().0;
        self.r_step = if self.reads_left == 0 {
            RStep::Done
        } else if self.whole_reads {
            RStep::Whole
        } else {
            RStep::LoadSeq1
        };
    }

    /// The reader found `seq` odd: what a plain seqlock reader does about a writer that may
    /// have died (format 1 reported ERR_WRITER_DIED; format 2 never reads a slot being filled).
    fn odd_seq(&mut self, odd: u64) -> Result<bool, String> {
        let holder = self.lock;
        let dead = holder.is_none_or(|w| !self.writer_alive(w));
        if dead && self.seq == odd {
            // ERR_WRITER_DIED: allowed only if a writer really died mid-write.
            if !self.writers.iter().any(|w| w.step == WStep::Dead) {
                return Err("ERR_WRITER_DIED reported with no dead writer".into());
            }
            self.results.push("WriterDied".into());
            self.start_next_read();
            return Ok(true);
        }
        Ok(false) // wait: the reader retries once something changes
    }

    fn accept(&mut self, s: u64) -> Result<(), String> {
        let Some(expected) = self.value_of(s) else {
            return Err(format!("a read accepted a seq no write completed: {s}"));
        };
        if &self.out != expected {
            return Err(format!(
                "a torn read was accepted: {:?} at seq {s}, the value was {:?}",
                self.out, expected
            ));
        }
        if s < self.floor {
            return Err(format!(
                "a stale read: seq {s} although seq {} had completed before the read",
                self.floor
            ));
        }
        self.results.push(format!("Done({s})"));
        self.start_next_read();
        Ok(())
    }
}

const SEQ_READER: u8 = 100;
const SEQ_DIE: u8 = 50;

impl Model for SeqModel {
    fn actions(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, w) in self.writers.iter().enumerate() {
            let enabled = match w.step {
                WStep::Done | WStep::Dead => false,
                // The next writer starts only once the previous one is done or dead (it
                // would wait on the writer lock otherwise).
                WStep::Begin => self.writers[..i]
                    .iter()
                    .all(|p| matches!(p.step, WStep::Done | WStep::Dead)),
                _ => true,
            };
            if enabled {
                out.push(i as u8);
                if w.may_die {
                    out.push(SEQ_DIE + i as u8);
                }
            }
        }
        let reader = match self.r_step {
            RStep::Done => false,
            // A read facing an odd seq waits unless it may decide (see `odd_seq`).
            RStep::LoadSeq1 | RStep::Whole if self.seq & 1 == 1 => {
                self.lock.is_none_or(|w| !self.writer_alive(w))
            }
            _ => true,
        };
        if reader {
            out.push(SEQ_READER);
        }
        out
    }

    fn apply(&mut self, action: u8) -> Result<(), String> {
        if action == SEQ_READER {
            return self.read_step();
        }
        if action >= SEQ_DIE {
            let w = (action - SEQ_DIE) as usize;
            self.writers[w].step = WStep::Dead;
            return Ok(());
        }
        let i = action as usize;
        let step = self.writers[i].step;
        match step {
            WStep::Begin => {
                self.lock = Some(i);
                let odd = self.with_words(|seq, _, _| seqlock::begin_write(seq));
                self.writers[i].odd = odd;
                self.writers[i].step = if self.writers[i].values[self.writers[i].next].is_empty() {
                    WStep::End
                } else {
                    WStep::Copy(0)
                };
            }
            WStep::Copy(b) => {
                let byte = self.writers[i].values[self.writers[i].next][b];
                self.with_words(|_, _, data| {
                    // SAFETY: `b < SEQ_CAP`; the source is a private byte.
                    unsafe { seqlock::copy_in(data.add(b), &byte, 1) }
                });
                let n = self.writers[i].values[self.writers[i].next].len();
                self.writers[i].step = if b + 1 < n {
                    WStep::Copy(b + 1)
                } else {
                    WStep::End
                };
            }
            WStep::End => {
                let w = &self.writers[i];
                let value = w.values[w.next].clone();
                let odd = w.odd;
                let even = self.with_words(|seq, len, _| {
                    seqlock::end_write(seq, len, value.len() as u64, odd)
                });
                self.history.push((even, value));
                let w = &mut self.writers[i];
                w.next += 1;
                w.step = if w.next < w.values.len() {
                    WStep::Begin
                } else {
                    WStep::Done
                };
                // `write` releases the writer lock after every write.
                self.lock = None;
            }
            WStep::Done | WStep::Dead => unreachable!(),
        }
        Ok(())
    }

    fn at_end(&self) -> Result<(), String> {
        if self.r_step != RStep::Done {
            return Err(format!(
                "the reader never finished (step {:?}, seq {})",
                self.r_step, self.seq
            ));
        }
        Ok(())
    }

    fn describe(&self, action: u8) -> String {
        if action == SEQ_READER {
            return format!("reader {:?} (seq {})", self.r_step, self.seq);
        }
        if action >= SEQ_DIE {
            return format!("writer {} dies", action - SEQ_DIE);
        }
        let w = &self.writers[action as usize];
        format!("writer {action} {:?} of value {}", w.step, w.next)
    }

    fn key(&self, out: &mut Vec<u64>) {
        out.extend([self.seq, self.len]);
        out.extend(self.data.iter().map(|&b| u64::from(b)));
        for w in &self.writers {
            let step = match w.step {
                WStep::Begin => 0,
                WStep::Copy(b) => 10 + b as u64,
                WStep::End => 1,
                WStep::Done => 2,
                WStep::Dead => 3,
            };
            out.extend([step, w.next as u64, w.odd]);
        }
        out.push(self.lock.map_or(99, |l| l as u64));
        let (a, b, c, d) = match self.r_step {
            RStep::LoadSeq1 => (0, 0, 0, 0),
            RStep::LoadLen { s1 } => (1, s1, 0, 0),
            RStep::Copy { s1, n, i } => (2, s1, n, i),
            RStep::LoadSeq2 { s1, n } => (3, s1, n, 0),
            RStep::Whole => (4, 0, 0, 0),
            RStep::Done => (5, 0, 0, 0),
        };
        out.extend([a, b, c, d, u64::from(self.reads_left), self.floor]);
        out.extend(self.out.iter().map(|&b| u64::from(b)));
        out.push(self.results.len() as u64);
    }
}

impl SeqModel {
    fn read_step(&mut self) -> Result<(), String> {
        match self.r_step {
            RStep::Whole => {
                let mut out = std::mem::take(&mut self.out);
                let attempt = self.with_words(|seq, len, data| {
                    // SAFETY: `data` is valid for SEQ_CAP bytes.
                    unsafe { seqlock::try_read(seq, len, data, SEQ_CAP, &mut out) }
                });
                self.out = out;
                match attempt {
                    ReadAttempt::Done { seq } => self.accept(seq)?,
                    ReadAttempt::WriterActive { seq } => {
                        self.odd_seq(seq)?;
                    }
                    ReadAttempt::Raced => {}
                    ReadAttempt::TooLong { len, .. } => {
                        return Err(format!("length {len} beyond the value area"))
                    }
                }
            }
            RStep::LoadSeq1 => {
                let s1 = self.seq;
                if s1 & 1 == 1 {
                    self.odd_seq(s1)?;
                } else {
                    self.r_step = RStep::LoadLen { s1 };
                }
            }
            RStep::LoadLen { s1 } => {
                let n = self.len;
                if n > SEQ_CAP as u64 {
                    return Err(format!("length {n} beyond the value area"));
                }
                self.out.clear();
                self.r_step = if n == 0 {
                    RStep::LoadSeq2 { s1, n }
                } else {
                    RStep::Copy { s1, n, i: 0 }
                };
            }
            RStep::Copy { s1, n, i } => {
                self.out.push(self.data[i as usize]);
                self.r_step = if i + 1 < n {
                    RStep::Copy { s1, n, i: i + 1 }
                } else {
                    RStep::LoadSeq2 { s1, n }
                };
            }
            RStep::LoadSeq2 { s1, .. } => {
                if self.seq == s1 {
                    self.accept(s1)?;
                } else {
                    self.r_step = RStep::LoadSeq1; // raced: retry
                }
            }
            RStep::Done => unreachable!(),
        }
        Ok(())
    }
}

fn seq_writer(values: &[&[u8]], may_die: bool) -> SeqWriter {
    SeqWriter {
        values: values.iter().map(|v| v.to_vec()).collect(),
        next: 0,
        step: WStep::Begin,
        odd: 0,
        may_die,
    }
}

/// The seqlock under every interleaving of one writer's real steps (`begin_write`, a
/// byte-by-byte `copy_in`, `end_write`) with a reader's modelled sub-steps of `try_read`
/// (load seq, load len, copy byte by byte, load seq): no torn or stale read is accepted.
/// Exhaustive: 1 writer × 4 values of lengths 3, 5, 0 and 2; 1 reader × 4 reads.
#[test]
fn model_seqlock_reader_substeps_never_accept_a_torn_value() {
    let w = seq_writer(&[&[1, 1, 1], &[2, 2, 2, 2, 2], &[], &[4, 4]], false);
    let found = explore(SeqModel::new(vec![w], 4, false), 2_000_000);
    assert!(
        found.violations.is_empty() && !found.truncated,
        "{}",
        found.report()
    );
    assert!(found.states > 1_000, "{}", found.report());
}

/// The same with the real `try_read` as one step at every writer sub-state.
#[test]
fn model_seqlock_real_try_read_at_every_writer_state() {
    let w = seq_writer(&[&[1, 1, 1], &[2, 2, 2, 2, 2], &[3], &[], &[5, 5]], false);
    let found = explore(SeqModel::new(vec![w], 5, true), 2_000_000);
    assert!(
        found.violations.is_empty() && !found.truncated,
        "{}",
        found.report()
    );
}

/// A writer that may die after any of its steps (keeping the writer lock, `seq` odd), and a
/// second writer that takes over: readers accept only whole values, report
/// ERR_WRITER_DIED only when a writer really died mid-write, and always finish.
#[test]
fn model_seqlock_writer_killed_at_every_step_then_taken_over() {
    let first = seq_writer(&[&[1, 1, 1], &[2, 2, 2, 2]], true);
    let second = seq_writer(&[&[3, 3], &[4, 4, 4, 4, 4]], false);
    for whole in [false, true] {
        let found = explore(
            SeqModel::new(vec![first.clone(), second.clone()], 3, whole),
            4_000_000,
        );
        assert!(
            found.violations.is_empty() && !found.truncated,
            "whole reads: {whole}\n{}",
            found.report()
        );
    }
}

// --- the format-2 value protocol (three slots and `current`) ---------------------------

/// Bytes of each slot's region in the model.
const V2_CAP: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V2W {
    /// Takes the writer lock (a dead holder's is taken over), loads `current`, picks the
    /// slot (`slots::candidates`) and calls `slots::begin_fill`.
    Begin,
    /// `slots::copy_in` of byte `i`.
    Copy(usize),
    /// `slots::end_fill`.
    End,
    /// `slots::commit`, then the lock is released.
    Commit,
    Done,
    Dead,
}

#[derive(Clone, Debug)]
struct V2Writer {
    values: Vec<Vec<u8>>,
    next: usize,
    step: V2W,
    slot: usize,
    odd: u64,
    commit: u64,
    may_die: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V2R {
    /// Load `current` (Acquire).
    LoadCurrent,
    /// Load the slot's `seq` (Acquire); odd: `moved_or_damaged`.
    LoadSeq1 {
        c: u64,
    },
    /// Load commit, len (region fixed); check them.
    LoadFields {
        c: u64,
        q1: u64,
    },
    /// Copy byte `i` of `n`.
    Copy {
        c: u64,
        q1: u64,
        n: u64,
        i: u64,
    },
    /// Fence; reload `seq`; accept if unchanged.
    LoadSeq2 {
        c: u64,
        q1: u64,
        n: u64,
    },
    /// `moved_or_damaged`: fence; reload `current`.
    Check {
        c: u64,
    },
    /// Load `current`, then the real `slots::try_read` as one step.
    Whole,
    Done,
}

/// Plain words of the model's header.
#[derive(Clone, Debug, Default)]
struct V2Words {
    current: u64,
    seq: [u64; 3],
    commit: [u64; 3],
    len: [u64; 3],
    tag: [u32; 3],
}

#[derive(Clone, Debug)]
struct V2Model {
    w: V2Words,
    data: [[u8; V2_CAP]; 3],
    writers: Vec<V2Writer>,
    r_step: V2R,
    reads_left: u8,
    out: Vec<u8>,
    /// The last commit completed when the current read began.
    floor: u64,
    /// The value of each commit.
    history: Vec<Vec<u8>>,
    results: u64,
    whole_reads: bool,
}

impl V2Model {
    fn new(writers: Vec<V2Writer>, reads: u8, whole_reads: bool) -> Self {
        V2Model {
            w: V2Words::default(),
            data: [[0; V2_CAP]; 3],
            writers,
            r_step: if whole_reads {
                V2R::Whole
            } else {
                V2R::LoadCurrent
            },
            reads_left: reads,
            out: vec![],
            floor: 0,
            history: vec![vec![]],
            results: 0,
            whole_reads,
        }
    }

    /// Runs `f` on a heap header holding this state's words (regions: one model page per
    /// slot, so region `i` starts at `i * PAGE`), then stores the words back.
    fn with_header<T>(&mut self, f: impl FnOnce(&ValueHeader, &mut [u8]) -> T) -> T {
        let h: Box<ValueHeader> = Box::default();
        // The data area as the real code sees it: regions of a PAGE each (only the first
        // V2_CAP bytes of each are modelled).
        let mut area = vec![0u8; 3 * layout::PAGE as usize];
        // SYNC POINT: Relaxed, all: a single-threaded stand-in for the mapping; the model
        // orders the steps itself.
        h.current.store(self.w.current, Ordering::Relaxed);
        for i in 0..3 {
            let s = &h.slots[i];
            s.seq.store(self.w.seq[i], Ordering::Relaxed);
            s.commit.store(self.w.commit[i], Ordering::Relaxed);
            s.region
                .store(layout::region_word(i as u64, 1), Ordering::Relaxed);
            s.len.store(self.w.len[i], Ordering::Relaxed);
            s.tag.store(self.w.tag[i], Ordering::Relaxed);
            let at = i * layout::PAGE as usize;
            area[at..at + V2_CAP].copy_from_slice(&self.data[i]);
        }
        let r = f(&h, &mut area);
        // SYNC POINT: Relaxed, all: as above.
        self.w.current = h.current.load(Ordering::Relaxed);
        for i in 0..3 {
            let s = &h.slots[i];
            self.w.seq[i] = s.seq.load(Ordering::Relaxed);
            self.w.commit[i] = s.commit.load(Ordering::Relaxed);
            self.w.len[i] = s.len.load(Ordering::Relaxed);
            self.w.tag[i] = s.tag.load(Ordering::Relaxed);
            let at = i * layout::PAGE as usize;
            self.data[i].copy_from_slice(&area[at..at + V2_CAP]);
        }
        r
    }

    fn start_next_read(&mut self) {
        self.reads_left -= 1;
        self.results += 1;
        self.floor = (self.w.current >> 2).max(self.floor);
        self.r_step = if self.reads_left == 0 {
            V2R::Done
        } else if self.whole_reads {
            V2R::Whole
        } else {
            V2R::LoadCurrent
        };
    }

    fn accept(&mut self, commit: u64, tag: u32) -> Result<(), String> {
        let Some(expected) = self.history.get(commit as usize) else {
            return Err(format!(
                "a read accepted commit {commit}, which never happened"
            ));
        };
        if &self.out != expected {
            return Err(format!(
                "a torn read was accepted: {:?} as commit {commit}, which was {:?}",
                self.out, expected
            ));
        }
        if tag != commit as u32 {
            return Err(format!(
                "commit {commit} read with the tag of another ({tag})"
            ));
        }
        if commit < self.floor {
            return Err(format!(
                "a stale read: commit {commit} although {} had completed before the read",
                self.floor
            ));
        }
        self.start_next_read();
        Ok(())
    }

    fn restart(&mut self) {
        self.r_step = if self.whole_reads {
            V2R::Whole
        } else {
            V2R::LoadCurrent
        };
    }

    fn read_step(&mut self) -> Result<(), String> {
        match self.r_step {
            V2R::Whole => {
                let mut out = std::mem::take(&mut self.out);
                let attempt = self.with_header(|h, area| {
                    // SYNC POINT: Acquire, as `ValueSegment::read_into` loads it.
                    let c = h.current.load(Ordering::Acquire);
                    // SAFETY: `area` is valid for its length.
                    unsafe { slots::try_read(h, c, area.as_ptr(), area.len(), &mut out) }
                });
                self.out = out;
                match attempt {
                    ReadAttempt2::Done { commit, tag } => self.accept(commit, tag)?,
                    ReadAttempt2::Moved => {}
                    other => return Err(format!("a read found {other:?}")),
                }
            }
            V2R::LoadCurrent => {
                self.r_step = V2R::LoadSeq1 { c: self.w.current };
            }
            V2R::LoadSeq1 { c } => {
                let q1 = self.w.seq[(c & 3) as usize];
                self.r_step = if q1 & 1 == 1 {
                    V2R::Check { c }
                } else {
                    V2R::LoadFields { c, q1 }
                };
            }
            V2R::LoadFields { c, q1 } => {
                let s = (c & 3) as usize;
                let (commit, n) = (self.w.commit[s], self.w.len[s]);
                self.out.clear();
                self.r_step = if commit != c >> 2 || n > V2_CAP as u64 {
                    V2R::Check { c }
                } else if n == 0 {
                    V2R::LoadSeq2 { c, q1, n }
                } else {
                    V2R::Copy { c, q1, n, i: 0 }
                };
            }
            V2R::Copy { c, q1, n, i } => {
                self.out.push(self.data[(c & 3) as usize][i as usize]);
                self.r_step = if i + 1 < n {
                    V2R::Copy { c, q1, n, i: i + 1 }
                } else {
                    V2R::LoadSeq2 { c, q1, n }
                };
            }
            V2R::LoadSeq2 { c, q1, .. } => {
                let s = (c & 3) as usize;
                if self.w.seq[s] == q1 {
                    let tag = self.w.tag[s];
                    self.accept(c >> 2, tag)?;
                } else {
                    self.r_step = V2R::Check { c };
                }
            }
            V2R::Check { c } => {
                if self.w.current == c {
                    return Err(format!(
                        "a read found commit {} not whole with `current` unchanged",
                        c >> 2
                    ));
                }
                self.restart();
            }
            V2R::Done => unreachable!(),
        }
        Ok(())
    }
}

const V2_READER: u8 = 100;
const V2_DIE: u8 = 50;
/// Writer `i`'s `Begin` choosing the other free slot (`V2_ALT + i`): which of the two free
/// slots a writer fills is a policy (older first; newer first for large values, see
/// `ValueSegment::choose_slot`); the protocol must hold for either.
const V2_ALT: u8 = 20;

impl Model for V2Model {
    fn actions(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, w) in self.writers.iter().enumerate() {
            let enabled = match w.step {
                V2W::Done | V2W::Dead => false,
                // A writer starts once the previous one is done or dead (it would wait on
                // the writer lock otherwise); its first step takes the lock.
                V2W::Begin => self.writers[..i]
                    .iter()
                    .all(|p| matches!(p.step, V2W::Done | V2W::Dead)),
                _ => true,
            };
            if enabled {
                out.push(i as u8);
                if w.step == V2W::Begin {
                    out.push(V2_ALT + i as u8);
                }
                if w.may_die {
                    out.push(V2_DIE + i as u8);
                }
            }
        }
        if self.r_step != V2R::Done {
            out.push(V2_READER);
        }
        out
    }

    fn apply(&mut self, action: u8) -> Result<(), String> {
        if action == V2_READER {
            return self.read_step();
        }
        if action >= V2_DIE {
            self.writers[(action - V2_DIE) as usize].step = V2W::Dead;
            return Ok(());
        }
        let (i, choice) = if action >= V2_ALT {
            ((action - V2_ALT) as usize, 1)
        } else {
            (action as usize, 0)
        };
        match self.writers[i].step {
            V2W::Begin => {
                let (slot, odd, commit) = self.with_header(|h, _| {
                    // SYNC POINT: Acquire, as `write_locked` loads it.
                    let c = h.current.load(Ordering::Acquire);
                    let cur = slots::slot_of(c).unwrap_or_else(|| slots::newest(h));
                    let slot = slots::candidates(h, cur)[choice];
                    let next = (c >> 2) + 1;
                    let d = &h.slots[slot];
                    // SYNC POINT: Relaxed: the model's single writer.
                    let odd = slots::begin_fill(d, next, d.region.load(Ordering::Relaxed));
                    (slot, odd, next)
                });
                let w = &mut self.writers[i];
                (w.slot, w.odd, w.commit) = (slot, odd, commit);
                w.step = if w.values[w.next].is_empty() {
                    V2W::End
                } else {
                    V2W::Copy(0)
                };
            }
            V2W::Copy(b) => {
                let w = &self.writers[i];
                let (byte, slot, n) = (w.values[w.next][b], w.slot, w.values[w.next].len());
                self.with_header(|_, area| {
                    let at = slot * layout::PAGE as usize + b;
                    // SAFETY: `at` is inside `area`; the source is a private byte.
                    unsafe { slots::copy_in(area.as_mut_ptr().add(at), &byte, 1) }
                });
                self.writers[i].step = if b + 1 < n {
                    V2W::Copy(b + 1)
                } else {
                    V2W::End
                };
            }
            V2W::End => {
                let w = &self.writers[i];
                let (slot, odd, len, tag) = (
                    w.slot,
                    w.odd,
                    w.values[w.next].len() as u64,
                    w.commit as u32,
                );
                self.with_header(|h, _| slots::end_fill(&h.slots[slot], odd, len, tag));
                self.writers[i].step = V2W::Commit;
            }
            V2W::Commit => {
                let w = &self.writers[i];
                let (slot, commit, value) = (w.slot, w.commit, w.values[w.next].clone());
                self.with_header(|h, _| slots::commit(h, commit, slot));
                if self.history.len() as u64 != commit {
                    return Err(format!(
                        "commit {commit} after {} commits",
                        self.history.len() - 1
                    ));
                }
                self.history.push(value);
                let w = &mut self.writers[i];
                w.next += 1;
                w.step = if w.next < w.values.len() {
                    V2W::Begin
                } else {
                    V2W::Done
                };
            }
            V2W::Done | V2W::Dead => unreachable!(),
        }
        Ok(())
    }

    fn at_end(&self) -> Result<(), String> {
        if self.r_step != V2R::Done {
            return Err(format!(
                "the reader never finished (step {:?})",
                self.r_step
            ));
        }
        Ok(())
    }

    fn describe(&self, action: u8) -> String {
        if action == V2_READER {
            return format!("reader {:?} (current {:#x})", self.r_step, self.w.current);
        }
        if action >= V2_DIE {
            return format!("writer {} dies", action - V2_DIE);
        }
        if action >= V2_ALT {
            return format!(
                "writer {} Begin, filling the other free slot",
                action - V2_ALT
            );
        }
        let w = &self.writers[action as usize];
        format!(
            "writer {action} {:?} of value {} (slot {})",
            w.step, w.next, w.slot
        )
    }

    fn key(&self, out: &mut Vec<u64>) {
        out.push(self.w.current);
        for i in 0..3 {
            out.extend([
                self.w.seq[i],
                self.w.commit[i],
                self.w.len[i],
                u64::from(self.w.tag[i]),
            ]);
            out.extend(self.data[i].iter().map(|&b| u64::from(b)));
        }
        for w in &self.writers {
            let step = match w.step {
                V2W::Begin => 0,
                V2W::Copy(b) => 10 + b as u64,
                V2W::End => 1,
                V2W::Commit => 2,
                V2W::Done => 3,
                V2W::Dead => 4,
            };
            out.extend([step, w.next as u64, w.slot as u64, w.odd, w.commit]);
        }
        let r = match self.r_step {
            V2R::LoadCurrent => [0, 0, 0, 0, 0],
            V2R::LoadSeq1 { c } => [1, c, 0, 0, 0],
            V2R::LoadFields { c, q1 } => [2, c, q1, 0, 0],
            V2R::Copy { c, q1, n, i } => [3, c, q1, n, i],
            V2R::LoadSeq2 { c, q1, n } => [4, c, q1, n, 0],
            V2R::Check { c } => [5, c, 0, 0, 0],
            V2R::Whole => [6, 0, 0, 0, 0],
            V2R::Done => [7, 0, 0, 0, 0],
        };
        out.extend(r);
        out.extend([u64::from(self.reads_left), self.floor, self.results]);
        out.extend(self.out.iter().map(|&b| u64::from(b)));
    }
}

fn v2_writer(values: &[&[u8]], may_die: bool) -> V2Writer {
    V2Writer {
        values: values.iter().map(|v| v.to_vec()).collect(),
        next: 0,
        step: V2W::Begin,
        slot: 0,
        odd: 0,
        commit: 0,
        may_die,
    }
}

/// Format 2 under every interleaving of a writer's real steps (`begin_fill`, a byte-by-byte
/// `copy_in`, `end_fill`, `commit`; either free slot) with a reader's modelled sub-steps of
/// `try_read` and of `moved_or_damaged`: no torn, stale or foreign-tagged read is accepted,
/// a read never finds damage, and it always finishes. Exhaustive: 1 writer × 5 values; 1
/// reader × 4 reads.
#[test]
fn model_value_slots_reader_substeps_never_accept_a_torn_or_stale_value() {
    let w = v2_writer(&[&[1, 1, 1], &[2, 2, 2, 2], &[], &[4, 4], &[5]], false);
    let found = explore(V2Model::new(vec![w], 4, false), 4_000_000);
    assert!(
        found.violations.is_empty() && !found.truncated,
        "{}",
        found.report()
    );
    assert!(found.states > 1_000, "{}", found.report());
}

/// Writers that may die after any of their steps (holding the lock, a slot half filled),
/// each followed by one that takes over, with the real `try_read` as one step and with its
/// sub-steps: every read returns the last commit (never ERR_WRITER_DIED, never an older
/// one), and a write killed before its commit costs only itself.
#[test]
fn model_value_slots_writers_killed_at_every_step_lose_only_their_own_write() {
    let first = v2_writer(&[&[1, 1, 1], &[2, 2]], true);
    let second = v2_writer(&[&[3, 3, 3, 3], &[4]], true);
    let third = v2_writer(&[&[5, 5]], false);
    for whole in [true, false] {
        let found = explore(
            V2Model::new(vec![first.clone(), second.clone(), third.clone()], 3, whole),
            6_000_000,
        );
        assert!(
            found.violations.is_empty() && !found.truncated,
            "whole reads: {whole}\n{}",
            found.report()
        );
    }
}

// --- the ring -------------------------------------------------------------------------
//
// Mirrors of the ring's statements the real code cannot pause between. Each names the
// function and statements of `src/ring.rs` it reproduces; if those change, these must too.

const MCAP: u64 = 1024;

/// `Ring::lap` for a ring of `MCAP` bytes.
fn lap(pos: u64) -> u64 {
    (pos / MCAP) & 0xFFFF_FFFF
}

/// `Ring::revoked_word`.
fn revoked_word(pos: u64) -> u64 {
    word_of(lap(pos), ring::REVOKED)
}

fn state_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// `Ring::take_header`: the header word at `pos` becomes `mine` unless the consumer revoked
/// this very claim (a word revoked in this lap, a gap header, or — a lap late — anything
/// non-zero once head has passed `pos`); anything else there is a leftover of an earlier
/// lap and is taken over. One step: its retry loop only re-reads.
fn take_header(mem: &RingMem, pos: u64, mine: u64) -> bool {
    let w = mem.word(pos % MCAP);
    let found = w.load(Ordering::Acquire);
    let revoked_here = (state_of(found) == ring::REVOKED && (found & 0xFFFF_FFFF) == lap(pos))
        || state_of(found) == ring::GAP;
    let stale = found != 0 && mem.head.load(Ordering::Acquire) > pos;
    if revoked_here || stale {
        false
    } else {
        w.store(mine, Ordering::Release);
        true
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PStep {
    /// `Ring::claim` up to its tail CAS (read head and tail, compute the padding, CAS tail),
    /// merged into one step: a CAS failure there only retries. For a real producer: the
    /// whole `Ring::claim` call.
    Claim,
    /// `claim`: `take_header` for the padding record.
    PadTake,
    /// `claim`: if the padding was taken and `head > tail`, take it back (a consumer
    /// skipped that space meanwhile).
    PadCheck,
    /// `claim`: `take_header` for the record ("in progress"); fails: claim again.
    HeaderTake,
    /// `claim`: `if head > pos` undo the header and claim again.
    HeadCheck,
    /// Copy the payload, then `commit` (the real `Ring::payload` + `Ring::commit` for a
    /// real producer; the payload is private until the commit, so one step).
    Commit,
    Done,
    Dead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dies {
    /// A live producer.
    Never,
    /// Dies right after its tail CAS (before any padding or header).
    AfterTail,
    /// Dies right after its header `take_header` (its record stays "in progress"); until
    /// then it is a live producer.
    AfterHeader,
}

#[derive(Clone, Debug)]
struct Prod {
    id: u8,
    token: u32,
    /// Uses the real `Ring::claim` (atomic) instead of the modelled sub-steps.
    real: bool,
    msgs: u8,
    sent: u8,
    step: PStep,
    tail_at: u64,
    pad: u64,
    pos: u64,
    retries: u8,
    claim: Option<ring::Claim>,
    dies: Dies,
}

impl Prod {
    fn new(id: u8, msgs: u8, real: bool, dies: Dies) -> Prod {
        Prod {
            id,
            token: 100 + u32::from(id),
            real,
            msgs,
            sent: 0,
            step: PStep::Claim,
            tail_at: 0,
            pad: 0,
            pos: 0,
            retries: 0,
            claim: None,
            dies,
        }
    }

    fn len(&self) -> u64 {
        8 + 4 * u64::from((self.id + self.sent) % 2)
    }
}

/// The bytes of message `seq` of producer `id`.
fn model_payload(id: u8, seq: u8, len: u64) -> Vec<u8> {
    (0..len as u8)
        .map(|i| match i {
            0 => id,
            1 => seq,
            _ => id.wrapping_mul(31) ^ seq.wrapping_mul(7) ^ i,
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CStep {
    /// Between records: `peek_within` and the decision `ChannelSegment::receive` makes.
    Peek,
    /// `Ring::clear`, first statement: the header becomes padding.
    ClearPad(u64),
    /// `clear`: zero the payload.
    ClearPayload(u64),
    /// `clear`: zero the header; then `head += record`.
    ClearHeader(u64),
    /// `Ring::unblock`: revoke the word at `gap` (compare-and-swap from zero or from a
    /// revoked word), up to `limit`.
    UnblockScan { limit: u64, gap: u64 },
    /// `unblock`: publish the gap's header.
    UnblockFinish(u64),
    /// `Ring::skip_gap`: the gap's header becomes a revoked word.
    GapHeader(u64),
    /// `skip_gap`: publish head past the gap (`consume`); the gap's words stay revoked.
    GapConsume(u64),
    /// The real `Ring::clear` as one step, then `head += record`.
    RealClear(u64),
    /// The real `Ring::skip_gap` as one step.
    RealGap(u64),
    /// The real `Ring::unblock` as one step.
    RealUnblock,
}

#[derive(Clone, Copy, Debug)]
struct RingCfg {
    /// Let the consumer revoke unwritten space even while a live producer is between its
    /// tail CAS and its header (in the real code: whenever that space has been unwritten
    /// for `UNBLOCK_AFTER`, e.g. behind a dead producer's claim, or a live producer was
    /// suspended that long).
    revoke_live: bool,
    /// Consumer crashes allowed (each starts a new consumer at the shared head).
    crashes: u8,
    unblocks: u8,
    max_retries: u8,
    /// The consumer calls the real `clear`, `skip_gap` and `unblock`, one step each,
    /// instead of their statements one by one.
    real_consumer: bool,
}

#[derive(Clone, Debug)]
struct RingModel {
    cfg: RingCfg,
    head: u64,
    tail: u64,
    words: Vec<u64>,
    prods: Vec<Prod>,
    c_gen: u8,
    c_head: u64,
    c_step: CStep,
    in_flight: Vec<(u8, u8)>,
    unblocks_left: u8,
    crashes_left: u8,
    delivered: Vec<(u8, u8)>,
    maybe_lost: Vec<(u8, u8)>,
    committed: Vec<(u8, u8)>,
}

/// The consumer's next sub-step.
const A_STEP: u8 = 200;
/// The end of a `receive` call: head published, the batch handed to the caller.
const A_RETURN: u8 = 201;
/// The consumer is SIGKILLed; a new one starts at the shared head.
const A_CRASH: u8 = 202;

impl RingModel {
    fn new(cfg: RingCfg, start: u64, prods: Vec<Prod>) -> RingModel {
        RingModel {
            cfg,
            head: start,
            tail: start,
            words: vec![0; (MCAP / 8) as usize],
            prods,
            c_gen: 0,
            c_head: start,
            c_step: CStep::Peek,
            in_flight: vec![],
            unblocks_left: cfg.unblocks,
            crashes_left: cfg.crashes,
            delivered: vec![],
            maybe_lost: vec![],
            committed: vec![],
        }
    }

    fn mem(&self) -> RingMem {
        RingMem::new(MCAP, self.head, self.tail, &self.words)
    }

    fn store(&mut self, mem: &RingMem) {
        let (h, t, w) = mem.snapshot();
        self.head = h;
        self.tail = t;
        self.words = w;
    }

    fn alive(&self, token: u32) -> bool {
        self.prods
            .iter()
            .any(|p| p.token == token && p.step != PStep::Dead)
    }

    fn peek(&self) -> Result<Next, RingError> {
        let mem = self.mem();
        let ring = mem.ring();
        ring.peek_within(self.c_head, self.tail)
    }

    /// Whether the consumer may revoke the unwritten space at its head now.
    fn may_unblock(&self) -> bool {
        self.unblocks_left > 0
            && (self.cfg.revoke_live
                || !self.prods.iter().any(|p| {
                    matches!(p.step, PStep::PadTake | PStep::PadCheck | PStep::HeaderTake)
                }))
    }

    fn claim_fits(&self, p: &Prod) -> bool {
        let record = ring::record_len(p.len());
        let index = self.tail % MCAP;
        let to_end = MCAP - index;
        let pad = if record > to_end { to_end } else { 0 };
        self.tail - self.head + pad + record <= MCAP
    }

    /// Whether the consumer's next sub-step is enabled.
    fn consumer_can_step(&self) -> bool {
        match self.c_step {
            CStep::Peek => match self.peek() {
                Ok(Next::Message { .. }) | Ok(Next::Skip { .. }) | Ok(Next::Gap { .. }) => true,
                Ok(Next::InProgress { token, .. }) => !self.alive(token),
                Ok(Next::Unwritten) => self.may_unblock(),
                Ok(Next::Empty) => false,
                Err(_) => true, // the step reports it
            },
            _ => true,
        }
    }

    fn crash(&mut self) {
        self.maybe_lost.append(&mut self.in_flight);
        self.c_gen += 1;
        self.crashes_left -= 1;
        self.c_head = self.head;
        self.c_step = CStep::Peek;
    }

    fn producer_step(&mut self, i: usize) -> Result<(), String> {
        let mem = self.mem();
        let ring = mem.ring();
        let mut p = self.prods[i].clone();
        let len = p.len();
        match p.step {
            PStep::Claim if p.real => match ring.claim(len, p.token) {
                Ok(Some(c)) => {
                    p.pos = c.pos;
                    p.claim = Some(c);
                    p.step = PStep::Commit;
                }
                Ok(None) => return Err("a real claim was refused with room in the ring".into()),
                Err(e) => return Err(format!("claim on a healthy ring: {e:?}")),
            },
            PStep::Claim => {
                // `claim`: positions(), padding, tail CAS.
                let record = ring::record_len(len);
                let tail = mem.tail.load(Ordering::Acquire);
                let to_end = MCAP - tail % MCAP;
                let pad = if record > to_end { to_end } else { 0 };
                mem.tail.store(tail + pad + record, Ordering::Release);
                p.tail_at = tail;
                p.pad = pad;
                p.pos = tail + pad;
                p.step = match (p.dies, pad) {
                    (Dies::AfterTail, _) => PStep::Dead,
                    (_, 0) => PStep::HeaderTake,
                    _ => PStep::PadTake,
                };
            }
            PStep::PadTake => {
                let taken = take_header(&mem, p.tail_at, word_of(p.pad - ring::HEADER, ring::PAD));
                p.step = if taken {
                    PStep::PadCheck
                } else {
                    PStep::HeaderTake
                };
            }
            PStep::PadCheck => {
                if mem.head.load(Ordering::Acquire) > p.tail_at {
                    let _ = mem.word(p.tail_at % MCAP).compare_exchange(
                        word_of(p.pad - ring::HEADER, ring::PAD),
                        0,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
                p.step = PStep::HeaderTake;
            }
            PStep::HeaderTake => {
                let ok = take_header(&mem, p.pos, word_of(len, p.token));
                p.step = match (ok, p.dies) {
                    (_, Dies::AfterHeader) => PStep::Dead,
                    (true, _) => PStep::HeadCheck,
                    (false, _) => {
                        p.retries += 1;
                        PStep::Claim
                    }
                };
            }
            PStep::HeadCheck => {
                if mem.head.load(Ordering::Acquire) > p.pos {
                    let _ = mem.word(p.pos % MCAP).compare_exchange(
                        word_of(len, p.token),
                        0,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                    p.retries += 1;
                    p.step = PStep::Claim;
                } else {
                    p.step = PStep::Commit;
                }
            }
            PStep::Commit => {
                let bytes = model_payload(p.id, p.sent, len);
                if let Some(c) = p.claim.take() {
                    // SAFETY: the claim reserved `len` bytes at `payload`.
                    unsafe {
                        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ring.payload(&c), bytes.len())
                    };
                    ring.commit(&c);
                } else {
                    let at = (p.pos % MCAP + ring::HEADER) as usize;
                    // SAFETY: the claimed record lies inside the ring (no record straddles
                    // the end) and is ours until committed.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            bytes.as_ptr(),
                            mem.bytes().add(at),
                            bytes.len(),
                        )
                    };
                    mem.word(p.pos % MCAP)
                        .store(word_of(len, ring::MSG), Ordering::Release);
                }
                self.committed.push((p.id, p.sent));
                p.sent += 1;
                p.step = if p.sent == p.msgs {
                    PStep::Done
                } else {
                    PStep::Claim
                };
            }
            PStep::Done | PStep::Dead => unreachable!(),
        }
        self.prods[i] = p;
        self.store(&mem);
        Ok(())
    }

    /// `peek_within` and what `ChannelSegment::receive` does with its answer.
    fn peek_step(&mut self, mem: &RingMem) -> Result<(), String> {
        let ring = mem.ring();
        let next = ring
            .peek_within(self.c_head, self.tail)
            .map_err(|e| format!("ERR_CORRUPT on a ring only the protocol touched: {e:?}"))?;
        self.c_step = match next {
            Next::Message {
                payload,
                len,
                record,
            } => {
                let bytes = copy_out(&ring, payload, len);
                let (Some(&id), Some(&seq)) = (bytes.first(), bytes.get(1)) else {
                    return Err(format!("a damaged message was delivered: {bytes:?}"));
                };
                if bytes != model_payload(id, seq, len) {
                    return Err(format!("a damaged message was delivered: {bytes:?}"));
                }
                let mut seen = self
                    .delivered
                    .iter()
                    .chain(&self.in_flight)
                    .filter(|m| m.0 == id);
                if let Some(m) = seen.find(|m| m.1 >= seq) {
                    return Err(format!(
                        "a message was delivered twice or out of order: {id}/{seq} after {id}/{}",
                        m.1
                    ));
                }
                self.in_flight.push((id, seq));
                self.clear_step(record)
            }
            Next::Skip { record } => self.clear_step(record),
            Next::InProgress { token, record } => {
                if self.alive(token) {
                    return Err("skipped a live producer's record".into());
                }
                self.clear_step(record)
            }
            Next::Gap { record } if self.cfg.real_consumer => CStep::RealGap(record),
            Next::Gap { record } => CStep::GapHeader(record),
            Next::Unwritten if self.cfg.real_consumer => {
                self.unblocks_left -= 1;
                CStep::RealUnblock
            }
            Next::Unwritten => {
                // `unblock`: the limit comes from the tail it loads first.
                self.unblocks_left -= 1;
                let tail = mem.tail.load(Ordering::Acquire);
                let limit = (tail - self.c_head).min(MCAP - self.c_head % MCAP);
                CStep::UnblockScan { limit, gap: 0 }
            }
            Next::Empty => return Err("a step on an empty ring".into()),
        };
        Ok(())
    }

    fn clear_step(&self, record: u64) -> CStep {
        if self.cfg.real_consumer {
            CStep::RealClear(record)
        } else {
            CStep::ClearPad(record)
        }
    }

    fn consumer_step(&mut self) -> Result<(), String> {
        let mem = self.mem();
        let index = self.c_head % MCAP;
        match self.c_step {
            CStep::Peek => self.peek_step(&mem)?,
            CStep::RealClear(record) => {
                mem.ring().clear(self.c_head, record);
                self.c_head += record;
                self.c_step = CStep::Peek;
            }
            CStep::RealGap(record) => {
                self.c_head = mem.ring().skip_gap(self.c_head, record);
                self.c_step = CStep::Peek;
            }
            CStep::RealUnblock => {
                if let Err(e) = mem.ring().unblock(self.c_head) {
                    return Err(format!("ERR_CORRUPT from unblock on a healthy ring: {e:?}"));
                }
                self.c_step = CStep::Peek;
            }
            CStep::ClearPad(record) => {
                mem.word(index)
                    .store(word_of(record - ring::HEADER, ring::PAD), Ordering::Relaxed);
                self.c_step = CStep::ClearPayload(record);
            }
            CStep::ClearPayload(record) => {
                // SAFETY: `peek` checked the record lies inside the ring.
                unsafe {
                    std::ptr::write_bytes(
                        mem.bytes().add((index + ring::HEADER) as usize),
                        0,
                        (record - ring::HEADER) as usize,
                    )
                };
                self.c_step = CStep::ClearHeader(record);
            }
            CStep::ClearHeader(record) => {
                mem.word(index).store(0, Ordering::Relaxed);
                self.c_head += record;
                self.c_step = CStep::Peek;
            }
            CStep::UnblockScan { limit, gap } => {
                let w = mem.word(index + gap);
                let found = w.load(Ordering::Acquire);
                if gap < limit && (found == 0 || state_of(found) == ring::REVOKED) {
                    w.store(revoked_word(self.c_head), Ordering::Release);
                    self.c_step = CStep::UnblockScan {
                        limit,
                        gap: gap + ring::ALIGN,
                    };
                    if gap + ring::ALIGN >= limit {
                        self.c_step = CStep::UnblockFinish(gap + ring::ALIGN);
                    }
                } else {
                    self.c_step = CStep::UnblockFinish(gap);
                }
            }
            CStep::UnblockFinish(gap) => {
                if gap > 0 {
                    mem.word(index)
                        .store(word_of(gap - ring::HEADER, ring::GAP), Ordering::Release);
                }
                self.c_step = CStep::Peek; // `Ok(0)`: the real call returns, then peeks again
            }
            CStep::GapHeader(record) => {
                mem.word(index)
                    .store(revoked_word(self.c_head), Ordering::Relaxed);
                self.c_step = CStep::GapConsume(record);
            }
            CStep::GapConsume(record) => {
                mem.ring().consume(self.c_head + record);
                self.c_head += record;
                self.c_step = CStep::Peek;
            }
        }
        self.store(&mem);
        Ok(())
    }
}

impl Model for RingModel {
    fn actions(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, p) in self.prods.iter().enumerate() {
            let enabled = match p.step {
                PStep::Done | PStep::Dead => false,
                PStep::Claim => p.retries <= self.cfg.max_retries && self.claim_fits(p),
                _ => true,
            };
            if enabled {
                out.push(i as u8);
            }
        }
        if self.consumer_can_step() {
            out.push(A_STEP);
        }
        let pending = self.c_head != self.head || !self.in_flight.is_empty();
        if self.c_step == CStep::Peek && pending {
            out.push(A_RETURN);
        }
        if self.crashes_left > 0 && (pending || self.c_step != CStep::Peek) {
            out.push(A_CRASH);
        }
        out
    }

    fn apply(&mut self, action: u8) -> Result<(), String> {
        match action {
            A_STEP => self.consumer_step(),
            A_RETURN => {
                let mem = self.mem();
                if self.c_head != self.head {
                    mem.ring().consume(self.c_head);
                }
                self.store(&mem);
                self.delivered.append(&mut self.in_flight);
                Ok(())
            }
            A_CRASH => {
                self.crash();
                Ok(())
            }
            i => self.producer_step(i as usize),
        }
    }

    fn at_end(&self) -> Result<(), String> {
        let blocked_by_bounds = self
            .prods
            .iter()
            .any(|p| p.step == PStep::Claim && p.retries > self.cfg.max_retries)
            || (self.unblocks_left == 0 && matches!(self.peek(), Ok(Next::Unwritten)));
        if blocked_by_bounds {
            return Ok(()); // the bounds of the model stopped it, not the protocol
        }
        if self.head != self.tail {
            return Err(format!(
                "the consumer cannot drain the ring: head {} tail {}, next {:?}",
                self.head,
                self.tail,
                self.peek()
            ));
        }
        for m in &self.committed {
            if !self.delivered.contains(m) && !self.maybe_lost.contains(m) {
                return Err(format!(
                    "a committed message was never delivered (lost): {}/{}",
                    m.0, m.1
                ));
            }
        }
        // Free space is zero, but for revoked words a killed consumer left behind (by
        // design: a producer of a later lap takes them over).
        if let Some(i) = self
            .words
            .iter()
            .position(|&w| w != 0 && state_of(w) != ring::REVOKED)
        {
            return Err(format!(
                "free space is not zero after draining: word {i} = {:#x}",
                self.words[i]
            ));
        }
        Ok(())
    }

    fn describe(&self, action: u8) -> String {
        match action {
            A_STEP => format!(
                "consumer{} {:?} at {} ({})",
                self.c_gen,
                self.c_step,
                self.c_head,
                match self.c_step {
                    CStep::Peek => format!("{:?}", self.peek()),
                    _ => String::new(),
                }
            ),
            A_RETURN => format!("consumer{} returns (head := {})", self.c_gen, self.c_head),
            A_CRASH => format!("consumer{} is killed in {:?}", self.c_gen, self.c_step),
            i => {
                let p = &self.prods[i as usize];
                format!(
                    "producer{} (token {}) {:?} msg {} len {} pos {} (head {}, tail {})",
                    p.id,
                    p.token,
                    p.step,
                    p.sent,
                    p.len(),
                    p.pos,
                    self.head,
                    self.tail
                )
            }
        }
    }

    fn key(&self, out: &mut Vec<u64>) {
        out.extend([self.head, self.tail]);
        for (i, &w) in self.words.iter().enumerate() {
            if w != 0 {
                out.extend([i as u64, w]);
            }
        }
        out.push(u64::MAX);
        for p in &self.prods {
            out.extend([
                p.step as u64,
                u64::from(p.sent),
                p.tail_at,
                p.pad,
                p.pos,
                u64::from(p.retries),
                p.claim.map_or(u64::MAX, |c| c.pos),
            ]);
        }
        let (a, b, c) = match self.c_step {
            CStep::Peek => (0, 0, 0),
            CStep::ClearPad(r) => (1, r, 0),
            CStep::ClearPayload(r) => (2, r, 0),
            CStep::ClearHeader(r) => (3, r, 0),
            CStep::UnblockScan { limit, gap } => (4, limit, gap),
            CStep::UnblockFinish(g) => (5, g, 0),
            CStep::GapHeader(r) => (6, r, 0),
            CStep::GapConsume(r) => (7, r, 0),
            CStep::RealClear(r) => (9, r, 0),
            CStep::RealGap(r) => (10, r, 0),
            CStep::RealUnblock => (11, 0, 0),
        };
        out.extend([
            u64::from(self.c_gen),
            self.c_head,
            a,
            b,
            c,
            u64::from(self.unblocks_left),
            u64::from(self.crashes_left),
        ]);
        for list in [
            &self.in_flight,
            &self.delivered,
            &self.maybe_lost,
            &self.committed,
        ] {
            out.push(list.len() as u64);
            out.extend(list.iter().map(|&(a, b)| u64::from(a) << 8 | u64::from(b)));
        }
    }
}

fn ring_cfg(revoke_live: bool, crashes: u8) -> RingCfg {
    RingCfg {
        revoke_live,
        crashes,
        unblocks: 3,
        max_retries: 2,
        real_consumer: false,
    }
}

fn check_ring(cfg: RingCfg, start: u64, prods: Vec<Prod>, bound: usize) -> Exploration {
    explore(RingModel::new(cfg, start, prods), bound)
}

/// Two producers calling the real `Ring::claim` / `payload` / `commit` (2 messages each), a
/// producer that dies right after its tail CAS, and a consumer doing what
/// `ChannelSegment::receive` does — with the real `peek_within`, `clear`, `skip_gap` and
/// `unblock` as whole steps, and again with `clear`, `unblock` and `skip_gap` statement by
/// statement — in every order they can: every committed message is delivered exactly once,
/// whole, in producer order; the dead producer's space is skipped; the ring drains to zeroed
/// free space. Exhaustive, from position 0 and from just before the wrap (padding records).
#[test]
fn model_ring_real_claims_two_producers_and_a_dead_one() {
    for real_consumer in [true, false] {
        for start in [0, MCAP - 24] {
            let prods = vec![
                Prod::new(1, 2, true, Dies::Never),
                Prod::new(2, 2, true, Dies::Never),
                Prod::new(3, 1, false, Dies::AfterTail),
            ];
            let cfg = RingCfg {
                real_consumer,
                ..ring_cfg(false, 0)
            };
            let found = check_ring(cfg, start, prods, 3_000_000);
            assert!(
                found.violations.is_empty() && !found.truncated,
                "start {start}, real consumer calls: {real_consumer}: {}",
                found.report()
            );
        }
    }
}

/// Claim modelled step by step (tail CAS, padding, header, head check, commit) for two
/// producers (2 messages each) and a producer dying after its tail CAS or after its header,
/// with the consumer revoking only space no live producer is about to write: the same
/// guarantees. Exhaustive from position 0 and from just before the wrap.
#[test]
fn model_ring_claim_substeps_with_dead_producers() {
    for start in [0, MCAP - 24] {
        for dies in [Dies::AfterTail, Dies::AfterHeader] {
            let prods = vec![
                Prod::new(1, 2, false, Dies::Never),
                Prod::new(2, 2, false, Dies::Never),
                Prod::new(3, 1, false, dies),
            ];
            let found = check_ring(ring_cfg(false, 0), start, prods, 3_000_000);
            assert!(
                found.violations.is_empty() && !found.truncated,
                "start {start}, {dies:?}: {}",
                found.report()
            );
        }
    }
}

/// As above, but the consumer's unblock may revoke space a live producer claimed and has
/// not written yet — which the real consumer does whenever that space has been unwritten for
/// `UNBLOCK_AFTER` (the producer was suspended, or its claim lies in the gap behind a dead
/// producer's). What must hold: the revoked producer claims again and nothing is lost, and
/// no stale record is left in free space. Exhaustive (1 message per producer, at most 2
/// unblocks and 1 retry each) from position 0 and from just before the wrap.
#[test]
fn model_ring_live_producer_revoked_by_unblock_loses_nothing() {
    let mut report = String::new();
    for start in [0, MCAP - 24] {
        let prods = vec![
            Prod::new(1, 1, false, Dies::Never),
            Prod::new(2, 1, false, Dies::Never),
            Prod::new(3, 1, false, Dies::AfterTail),
        ];
        let cfg = RingCfg {
            unblocks: 2,
            max_retries: 1,
            ..ring_cfg(true, 0)
        };
        let found = check_ring(cfg, start, prods, 3_000_000);
        if !found.violations.is_empty() || found.truncated {
            report += &format!("start {start}: {}", found.report());
        }
    }
    assert!(report.is_empty(), "{report}");
}

/// The consumer may be killed once at any sub-step — between records, with a batch taken
/// but not returned, inside `clear`, inside `unblock`, inside `skip_gap` — and a new
/// consumer takes over at the shared head. What must hold: nothing is delivered twice or
/// damaged, the messages the dead consumer had taken are the only ones that may be
/// missing, and the channel keeps working. Exhaustive (1 crash).
#[test]
fn model_ring_consumer_killed_at_every_step() {
    let mut report = String::new();
    for start in [0, MCAP - 24] {
        let prods = vec![
            Prod::new(1, 2, true, Dies::Never),
            Prod::new(2, 1, true, Dies::Never),
            Prod::new(3, 1, false, Dies::AfterTail),
        ];
        let found = check_ring(ring_cfg(false, 1), start, prods, 3_000_000);
        if !found.violations.is_empty() || found.truncated {
            report += &format!("start {start}: {}", found.report());
        }
    }
    assert!(report.is_empty(), "{report}");
}

// ---------------------------------------------------------------------------------------
// 3. Reproductions of what the fuzzers and the models found
// ---------------------------------------------------------------------------------------

fn send(ring: &Ring<'_>, token: u32, msg: &[u8]) {
    let c = ring.claim(msg.len() as u64, token).unwrap().unwrap();
    // SAFETY: the claim reserved `len` bytes at `payload`.
    unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), ring.payload(&c), msg.len()) };
    ring.commit(&c);
}

/// A consumer SIGKILLed inside `Ring::clear` — after its first statements, before it zeroed
/// the header — must not leave a committed header over zeroed bytes: the next consumer
/// would deliver a message whose bytes are all zero.
#[test]
fn ring_consumer_killed_inside_clear_never_leaves_a_zeroed_message() {
    let mem = RingMem::new(1024, 0, 0, &[]);
    let ring = mem.ring();
    send(&ring, 5, b"payload that matters");
    let Next::Message {
        payload,
        len,
        record,
    } = ring.peek(0).unwrap()
    else {
        panic!("expected the message")
    };
    assert_eq!(copy_out(&ring, payload, len), b"payload that matters");
    // `clear` up to the payload: the header becomes padding, the payload zero. Killed here.
    mem.word(0)
        .store(word_of(record - 8, ring::PAD), Ordering::Relaxed);
    // SAFETY: inside the record `peek` checked.
    unsafe { std::ptr::write_bytes(mem.bytes().add(8), 0, (record - 8) as usize) };
    // The next consumer starts at the shared head (0).
    let mut head = mem.head.load(Ordering::Relaxed);
    let got = drain_bounded(&ring, &mut head, true, true);
    for m in &got {
        assert_eq!(
            m.as_slice(),
            b"payload that matters",
            "the next consumer received a damaged message {m:?}"
        );
    }
}

/// A consumer SIGKILLed inside `Ring::unblock` — after revoking a word, before writing the
/// gap's header — must not wedge the channel: the next consumer must get past it.
#[test]
fn ring_consumer_killed_inside_unblock_does_not_wedge_the_channel() {
    let mem = RingMem::new(1024, 0, 0, &[]);
    let ring = mem.ring();
    mem.tail.store(24, Ordering::Relaxed); // a producer died after its tail CAS
    send(&ring, 6, b"after the gap");
    assert_eq!(ring.peek(0).unwrap(), Next::Unwritten);
    // `unblock`'s first revoke, then the consumer dies.
    mem.word(0).store(revoked_word(0), Ordering::Release);
    let mut head = 0;
    let next = ring.peek(head);
    assert!(
        next.is_ok(),
        "the next consumer finds the channel corrupt for good: {next:?}"
    );
    let got = drain_bounded(&ring, &mut head, true, true);
    assert_eq!(got, vec![b"after the gap".to_vec()]);
}

/// A producer whose claimed space the consumer revoked (it was suspended between its tail
/// CAS and its header, or its claim lay behind a dead producer's) resumes while the
/// consumer skips the gap. Whenever it resumes, its message must not end up behind the
/// consumer: it must back off and claim again.
#[test]
fn ring_revoked_producer_resuming_late_does_not_lose_its_message() {
    // Every point of `skip_gap` at which producer A may resume.
    for resume_at in 0..=2 {
        let mem = RingMem::new(1024, 0, 0, &[]);
        let ring = mem.ring();
        // Producer A: `claim`'s tail CAS for an 8-byte message at position 0 (record 16).
        mem.tail.store(16, Ordering::Release);
        // ... A is suspended. Producer B sends a message after it.
        send(&ring, 2, b"from B");
        // The consumer, after UNBLOCK_AFTER, revokes A's space and skips it as `receive`
        // does: unblock, peek (a gap), skip_gap, which is modelled statement by statement
        // so that A can resume between any two.
        assert_eq!(ring.peek(0).unwrap(), Next::Unwritten);
        assert_eq!(ring.unblock(0).unwrap(), 16);
        assert_eq!(ring.peek(0).unwrap(), Next::Gap { record: 16 });
        let a_resumes = || {
            // The rest of A's `claim`: take_header, then `if head > pos` undo and retry.
            let pos = 0;
            let mine = word_of(8, 1);
            if !take_header(&mem, pos, mine) {
                return false;
            }
            if mem.head.load(Ordering::Acquire) > pos {
                let _ =
                    mem.word(pos)
                        .compare_exchange(mine, 0, Ordering::AcqRel, Ordering::Relaxed);
                return false;
            }
            // A owns the space: payload, commit.
            // SAFETY: bytes 8..16 are A's claimed payload.
            unsafe { std::ptr::copy_nonoverlapping(b"from A!!".as_ptr(), mem.bytes().add(8), 8) };
            mem.word(pos)
                .store(word_of(8, ring::MSG), Ordering::Release);
            true
        };
        let mut a_committed = false;
        let steps: [&dyn Fn(); 2] = [
            &|| mem.word(0).store(revoked_word(0), Ordering::Relaxed),
            &|| ring.consume(16),
        ];
        for (i, step) in steps.iter().enumerate() {
            if i == resume_at {
                a_committed = a_resumes();
            }
            step();
        }
        if resume_at == 2 {
            a_committed = a_resumes();
        }
        let mut head = 16;
        let got = drain_bounded(&ring, &mut head, true, true);
        if a_committed {
            assert!(
                got.contains(&b"from A!!".to_vec()),
                "resuming at step {resume_at}, A committed a message that was never delivered \
                 (got {got:?}); word 0 holds {:#x} behind head {head}",
                mem.word(0).load(Ordering::Relaxed)
            );
        }
        assert!(
            (0..128).all(|i| {
                let word = mem.words[i].load(Ordering::Relaxed);
                word == 0 || state_of(word) == ring::REVOKED
            }),
            "resuming at step {resume_at}: free space holds more than zeroes and revoked words"
        );
    }
}

/// A producer suspended between its tail CAS and its padding record, whose space the
/// consumer revoked and skipped meanwhile, must not leave its padding header in free space
/// when it resumes: a lap later that stale padding would swallow whatever other producers
/// committed after it up to the end of the ring. (Before commit 47eee98 `claim` took the
/// padding's header with no `head` check and this lost both of B's messages.)
#[test]
fn ring_stale_padding_from_a_revoked_producer_loses_no_message_a_lap_later() {
    let start = 960; // 64 bytes before the end of a 1024-byte ring
    let mem = RingMem::new(1024, start, start, &[]);
    let ring = mem.ring();
    // Producer A claims a 64-byte message (record 72): padding of 64, record at 1024.
    // `claim`'s tail CAS, then A is suspended.
    mem.tail.store(start + 64 + 72, Ordering::Release);
    // The consumer revokes the unwritten space up to the end of the ring and skips it,
    // exactly as `receive` does (real calls).
    let mut head = start;
    assert_eq!(ring.peek(head).unwrap(), Next::Unwritten);
    assert_eq!(ring.unblock(head).unwrap(), 64);
    let Next::Gap { record } = ring.peek(head).unwrap() else {
        panic!("expected the gap")
    };
    head = ring.skip_gap(head, record);
    assert_eq!(head, 1024);
    // A resumes: the rest of `claim` — the padding's take_header (taken back if head has
    // passed it), the record's take_header, `if head > pos` — then its payload and commit.
    let padding = word_of(64 - 8, ring::PAD);
    if take_header(&mem, start, padding) && mem.head.load(Ordering::Acquire) > start {
        let _ = mem.word(start % 1024).compare_exchange(
            padding,
            0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
    let pos = 1024;
    assert!(take_header(&mem, pos, word_of(64, 1)));
    assert!(mem.head.load(Ordering::Acquire) <= pos);
    // SAFETY: bytes 8..72 are A's payload.
    unsafe { std::ptr::write_bytes(mem.bytes().add(8), b'A', 64) };
    mem.word(0).store(word_of(64, ring::MSG), Ordering::Release);
    assert_eq!(
        drain_bounded(&ring, &mut head, true, true),
        vec![vec![b'A'; 64]]
    );
    // Traffic goes on until the next lap reaches the same place (position 1984).
    let mut sent = 0u32;
    while mem.tail.load(Ordering::Acquire) < 1024 + start {
        let left = 1024 + start - mem.tail.load(Ordering::Acquire);
        let len = if left >= 32 { 8 } else { left - 8 };
        send(&ring, 3, &vec![7u8; len as usize]);
        sent += 1;
        assert_eq!(drain_bounded(&ring, &mut head, true, true).len(), 1);
    }
    assert!(sent > 0 && head == 1024 + start);
    // Producer B sends two 8-byte messages there.
    send(&ring, 4, b"B first!");
    send(&ring, 4, b"B second");
    let got = drain_bounded(&ring, &mut head, true, true);
    assert_eq!(
        got,
        vec![b"B first!".to_vec(), b"B second".to_vec()],
        "messages committed in the next lap were swallowed by a stale padding record"
    );
}

/// The same producer, suspended a little later: after its padding's `take_header` (which
/// succeeded on the zeroed word) and before its `head > tail` check takes it back. If the
/// ring goes round a whole lap meanwhile, the stale padding must still not swallow the
/// records other producers commit there.
#[test]
fn ring_padding_written_late_loses_nothing_even_if_a_lap_passes_before_it_is_taken_back() {
    let start = 960;
    let mem = RingMem::new(1024, start, start, &[]);
    let ring = mem.ring();
    // A: tail CAS for a 64-byte message (padding 64, record 72 at 1024); suspended.
    mem.tail.store(start + 64 + 72, Ordering::Release);
    // The consumer revokes and skips the space up to the end of the ring (real calls).
    let mut head = start;
    assert_eq!(ring.unblock(head).unwrap(), 64);
    let Next::Gap { record } = ring.peek(head).unwrap() else {
        panic!("expected the gap")
    };
    head = ring.skip_gap(head, record);
    // A resumes for one statement: the padding's take_header. The consumer leaves the
    // gap's revoked words in place, so it fails (before, it took the zeroed word).
    let padding = word_of(64 - 8, ring::PAD);
    assert!(!take_header(&mem, start, padding));
    // ... and is suspended again. The consumer revokes and skips A's unwritten record too.
    assert_eq!(ring.peek(head).unwrap(), Next::Unwritten);
    assert_eq!(ring.unblock(head).unwrap(), 72);
    let Next::Gap { record } = ring.peek(head).unwrap() else {
        panic!("expected the gap")
    };
    head = ring.skip_gap(head, record);
    // Traffic goes on until the next lap reaches the padding's place (position 1984).
    while mem.tail.load(Ordering::Acquire) < 1024 + start {
        let left = 1024 + start - mem.tail.load(Ordering::Acquire);
        let len = if left >= 32 { 8 } else { left - 8 };
        send(&ring, 3, &vec![7u8; len as usize]);
        assert_eq!(drain_bounded(&ring, &mut head, true, true).len(), 1);
    }
    // Producer B sends two messages there; then A's check runs (`head > tail`: take back).
    send(&ring, 4, b"B first!");
    send(&ring, 4, b"B second");
    let got = drain_bounded(&ring, &mut head, true, true);
    if mem.head.load(Ordering::Acquire) > start {
        let _ = mem.word(start % 1024).compare_exchange(
            padding,
            0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
    assert_eq!(
        got,
        vec![b"B first!".to_vec(), b"B second".to_vec()],
        "messages committed in the next lap were swallowed by a padding record a suspended \
         producer wrote into free space"
    );
}

/// Positions near `u64::MAX` (a damaged header) are reported as corruption, never an
/// arithmetic overflow (a panic in a debug build, a silent wrap in a release build).
#[test]
fn ring_positions_near_u64_max_are_errors_not_overflows() {
    let top = u64::MAX - 7;
    let outcome = std::panic::catch_unwind(|| {
        let mem = RingMem::new(1024, top, top, &[]);
        let ring = mem.ring();
        let claim = ring.claim(8, 1);
        let mem = RingMem::new(1024, top - 8, u64::MAX - 7, &[word_of(40, ring::MSG)]);
        let peek = mem.ring().peek(top - 8);
        (format!("{claim:?}"), format!("{peek:?}"))
    });
    assert!(
        outcome.is_ok(),
        "a Ring operation overflowed on positions near u64::MAX"
    );
}

/// A consumer must return from `receive` even if a damaged (or hostile) tail drops back to
/// head while it faces unwritten space: `unblock` then revokes nothing (`Ok(0)`), and
/// `receive` retries with the tail it read at the start of the call, forever.
///
/// The hostile write lands at a deterministic moment: from inside the receive sink (which
/// runs after `receive` has read the tail and before it reaches the unwritten space), as
/// another process's write to the mapped file would at some moment.
#[test]
fn channel_receive_returns_when_the_tail_drops_back_to_head() {
    let dir = TempDir::new("hostile-tail");
    let path = dir.path().join("c");
    let opts = OpenOptions {
        capacity: 1024,
        ..OpenOptions::default()
    };
    let mut consumer = ChannelSegment::open(&path, &opts).unwrap();
    // A second mapping of the same file, to write the header and ring underneath.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let map = memmap2::MmapOptions::new()
        .len(HEADER_SIZE + 1024)
        .map_raw(&file)
        .unwrap();
    let at = |offset: usize| -> &AtomicU64 {
        // SAFETY: every offset used is 8-aligned and inside the mapping, which outlives the
        // references (the consumer thread is joined before `map` is dropped).
        unsafe { AtomicU64::from_ptr(map.as_mut_ptr().add(offset).cast()) }
    };
    let (tail, head) = (at(64), at(128));
    // One committed 8-byte message at position 0, then 16 bytes claimed by a producer that
    // vanished before writing its header.
    let plant = || {
        head.store(0, Ordering::Release);
        at(HEADER_SIZE + 8).store(0x0102_0304_0506_0708, Ordering::Release);
        at(HEADER_SIZE).store(word_of(8, ring::MSG), Ordering::Release);
        tail.store(32, Ordering::Release);
    };
    plant();
    let mut taken = 0;
    let got = consumer.receive(64, &mut |_, _| {
        taken += 1;
        Accept::Taken
    });
    assert_eq!(got.unwrap(), 1, "the first message");
    assert_eq!(head.load(Ordering::Acquire), 16);
    // The consumer now waits for the unwritten space at 16 to age past UNBLOCK_AFTER.
    std::thread::sleep(crate::channel::UNBLOCK_AFTER + Duration::from_millis(20));
    plant();

    let done = AtomicBool::new(false);
    let stuck = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let r = consumer.receive(64, &mut |_, _| {
                tail.store(16, Ordering::Release); // the hostile write: tail := head
                Accept::Taken
            });
            done.store(true, Ordering::Release);
            r.map_err(|e| e.code())
        });
        let deadline = Instant::now() + Duration::from_secs(3);
        while !done.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let stuck = !done.load(Ordering::Acquire);
        // Let a stuck receive out: with the tail above head again, `unblock` revokes.
        tail.store(32, Ordering::Release);
        let result = worker.join().unwrap();
        eprintln!("receive returned {result:?} (stuck for 3 s: {stuck})");
        stuck
    });
    assert!(
        !stuck,
        "receive() spun for 3 s without returning after the tail dropped back to head"
    );
}

// ---------------------------------------------------------------------------------------
// Zero-copy receive against a model queue
// ---------------------------------------------------------------------------------------

/// One step of a single-process channel session.
#[derive(Debug, Clone)]
enum Step {
    Send(usize),
    SendMany(Vec<usize>),
    Receive(usize),
    /// Borrow up to `max`, then release the first `delivered` (clamped to what was lent).
    Borrow {
        max: usize,
        delivered: usize,
    },
    /// Borrow and leave it lent: the next step releases it in full.
    BorrowAndKeep(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..=128).prop_map(Step::Send),
        2 => proptest::collection::vec(0usize..=128, 1..6).prop_map(Step::SendMany),
        2 => (1usize..6).prop_map(Step::Receive),
        3 => (1usize..8, 0usize..8).prop_map(|(max, delivered)| Step::Borrow { max, delivered }),
        1 => (1usize..4).prop_map(Step::BorrowAndKeep),
    ]
}

/// A message carrying its sequence number in every byte it has room for, so a wrong, torn
/// or out-of-order message shows.
fn model_message(seq: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as usize).wrapping_add(i * 7) as u8)
        .collect()
}

fn copy_msg(ptr: *const u8, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len];
    // SAFETY: the channel passes a pointer valid for `len` bytes.
    unsafe { std::ptr::copy_nonoverlapping(ptr, m.as_mut_ptr(), len) };
    m
}

proptest! {
    #![proptest_config(fuzz_config(500))]

    /// Sends, receives and borrows with partial releases on a small ring (it wraps often):
    /// messages come out exactly once, in order, whole, whichever way they are taken, and
    /// the ring's queued bytes always match the model's.
    #[test]
    fn fuzz_borrow_and_receive_against_a_model(steps in proptest::collection::vec(step(), 1..80)) {
        let dir = TempDir::new("hostile-borrow");
        let opts = OpenOptions { capacity: 1024, ..OpenOptions::default() };
        let mut c = ChannelSegment::open(&dir.path().join("c"), &opts).unwrap();
        let mut queue: std::collections::VecDeque<Vec<u8>> = Default::default();
        let mut seq = 0u32;
        let mut kept = 0usize; // lent by the last BorrowAndKeep, not yet released
        let expect_taken = |queue: &mut std::collections::VecDeque<Vec<u8>>, got: &[Vec<u8>]| {
            for m in got {
                assert_eq!(Some(m), queue.front(), "out of order, lost or damaged");
                queue.pop_front();
            }
        };
        for step in steps {
            if kept > 0 {
                // What the next call does first: release the whole loan (all delivered).
                for _ in 0..kept { queue.pop_front(); }
                kept = 0;
            }
            match step {
                Step::Send(len) => {
                    let m = model_message(seq, len);
                    if c.send(&m).unwrap() { queue.push_back(m); seq += 1; }
                }
                Step::SendMany(lens) => {
                    let msgs: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &l)| model_message(seq + i as u32, l)).collect();
                    let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
                    let n = c.send_many(&refs).unwrap();
                    for m in msgs.into_iter().take(n) { queue.push_back(m); }
                    seq += n as u32;
                }
                Step::Receive(max) => {
                    let mut got = vec![];
                    c.receive(max, &mut |p, l| { got.push(copy_msg(p, l)); Accept::Taken }).unwrap();
                    prop_assert!(got.len() <= max);
                    prop_assert!(got.len() == max.min(queue.len()), "a receive takes what waits");
                    expect_taken(&mut queue, &got);
                }
                Step::Borrow { max, delivered } => {
                    let mut got = vec![];
                    let mut last_end = None;
                    c.borrow(max, &mut |p, l| {
                        // Adjacent in memory: one view can span the run.
                        if let Some(end) = last_end { assert!(p as usize >= end); }
                        last_end = Some(p as usize + l);
                        got.push(copy_msg(p, l));
                        Accept::Taken
                    }).unwrap();
                    prop_assert!(got.len() <= max && (!got.is_empty() || queue.is_empty()));
                    prop_assert_eq!(c.borrowed(), got.len());
                    let delivered = delivered.min(got.len());
                    c.release_borrowed(delivered);
                    expect_taken(&mut queue, &got[..delivered]);
                    // The rest are queued again, unchanged, at the front.
                    for (m, q) in got[delivered..].iter().zip(queue.iter()) { prop_assert_eq!(m, q); }
                }
                Step::BorrowAndKeep(max) => {
                    let mut got = vec![];
                    c.borrow(max, &mut |p, l| { got.push(copy_msg(p, l)); Accept::Taken }).unwrap();
                    for (m, q) in got.iter().zip(queue.iter()) { prop_assert_eq!(m, q); }
                    kept = got.len();
                }
            }
            let bytes: u64 = queue.iter().map(|m| ring::record_len(m.len() as u64)).sum();
            let used = c.queued().unwrap();
            // Padding at the wrap is queued space too, so used may exceed the records.
            prop_assert!(used >= bytes && used <= bytes + 1024, "queued {} for records of {}", used, bytes);
        }
        // Drain: what is left comes out in order.
        if kept > 0 { for _ in 0..kept { queue.pop_front(); } }
        let mut got = vec![];
        c.receive(usize::MAX, &mut |p, l| { got.push(copy_msg(p, l)); Accept::Taken }).unwrap();
        expect_taken(&mut queue, &got);
        prop_assert!(queue.is_empty());
    }
}
