//! The napi surface: value segments and channels.
//!
//! This module is the napi surface only: it converts arguments, calls the plain Rust modules
//! that do the work, and maps their errors to JS errors with a stable `code` (in one place,
//! [`to_js`]). The public API is `index.js`, which wraps these functions in the
//! `SharedObject` class and adds promises, `AbortSignal`, watchers and argument checks.
//!
//! Open segments live in a per-thread [`registry::Registry`] and JS refers to them by
//! number: a napi class unwrap costs more than a whole read. Every function catches panics
//! (`catch_unwind`): a broken internal assertion is an `ERR_INTERNAL` error, not an abort.

mod fast;
mod interrupt;
pub mod map;
pub mod registry;
pub mod scratch;

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{Uint8ArraySlice, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, Result};
use napi_derive::napi;

use crate::channel::{self, ChannelSegment, DataState};
use crate::error::Error;
use crate::napi::interrupt::Stepped;
use crate::napi::registry::Registry;
use crate::napi::scratch::Scratch;
use crate::segment::layout;
use crate::segment::{Mapping, OpenOptions};
use crate::sync::lock::Acquired;
use crate::value::upgrade::{self, UpgradeOptions};
use crate::value::{ValueOptions, ValueSegment, Watcher};

/// The `code` a JS error carries: `ERR_…` or an errno name.
pub struct Code(String);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<napi::Status> for Code {
    fn from(status: napi::Status) -> Self {
        match status {
            // What `#[napi(catch_unwind)]` reports a panic (a broken internal assertion) as.
            napi::Status::GenericFailure => Code("ERR_INTERNAL".into()),
            _ => Code(format!("ERR_NAPI_{}", status.as_ref())),
        }
    }
}

/// What native calls fail with: a JS error whose `code` is a [`Code`].
type JsError = napi::Error<Code>;

/// The one place core errors become JS errors: `err.code` is [`Error::code`], the message
/// names the path and the cause.
fn to_js(err: Error) -> JsError {
    napi::Error::new(Code(err.code().to_owned()), err.to_string())
}

fn js_error(code: &str, message: String) -> JsError {
    napi::Error::new(Code(code.to_owned()), message)
}

/// One open value segment of this thread.
struct ValueEntry {
    seg: ValueSegment,
    /// Set to stop this entry's notifier thread.
    notifier: Option<Arc<AtomicBool>>,
    /// Set when the handle closes: its background lock waits give up.
    closed: Arc<AtomicBool>,
    /// The header page behind `index.js`'s version view; unmapped when the entry goes.
    header_view: Option<Mapping>,
}

impl ValueEntry {
    fn stop_notifier(&mut self) {
        if let Some(stop) = self.notifier.take() {
            // SYNC POINT: Release pairs with the Acquire load of the flag in
            // `Watcher::wait_for_change`, which the wake below interrupts.
            stop.store(true, Ordering::Release);
            self.seg.watcher().wake_all();
        }
    }
}

impl Drop for ValueEntry {
    fn drop(&mut self) {
        self.stop_notifier();
        // SYNC POINT: Release pairs with the Acquire loads of the flag in
        // `lock::acquire_cancellable` and `UserLocker::lock`.
        self.closed.store(true, Ordering::Release);
        // Closing inside a lock() section hands the lock on (rather than leaving it to
        // be found orphaned when this handle's liveness byte goes); so does a lock a
        // background wait took for this handle (one that takes it after this sees the flag).
        self.seg.unlock_user();
    }
}

thread_local! {
    static VALUES: RefCell<Registry<ValueEntry>> = RefCell::new(Registry::default());
    /// Reused for reads and string writes, so a hot loop does not allocate (released after
    /// a use that grew it beyond `scratch::KEEP_BYTES`).
    static SCRATCH: Scratch<u8> = const { Scratch::new() };
    /// The bound `Uint32Array`s results' tags go to, one per structure (data pointer,
    /// elements): see [`set_meta`].
    static META: [Cell<(*mut u32, usize)>; 2] =
        const { [Cell::new((ptr::null_mut(), 0)), Cell::new((ptr::null_mut(), 0))] };
}

/// The type tags of `lib/codec.js` (part of the file format: never renumber them). Tag 0 is
/// bytes (a Buffer).
pub(crate) mod tag {
    pub const STRING: u32 = 1;
    pub const NUMBER: u32 = 2;
    pub const TRUE: u32 = 3;
    pub const FALSE: u32 = 4;
    pub const NULL: u32 = 5;
    pub const JSON: u32 = 6;
    pub const V8: u32 = 7;
    pub const CUSTOM: u32 = 8;
    pub const UINT8ARRAY: u32 = 9;
}

/// Which structure's bound meta array a call writes to. SharedMap and SharedObject each
/// bind their own `Uint32Array` once per thread (`mapBindMeta`, `valueBindMeta`), so a call
/// returns the tag of the value it returns without an extra argument or result object.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Meta {
    Map = 0,
    Value = 1,
}

/// Writes `values` to the start of `which`'s bound meta array (nothing if none is bound).
pub(crate) fn set_meta(which: Meta, values: &[u32]) {
    META.with(|m| {
        let (data, len) = m[which as usize].get();
        if data.is_null() {
            return;
        }
        for (i, &v) in values.iter().enumerate().take(len) {
            // SAFETY: `data` points at `len` u32s of a typed array that `bind_meta` holds a
            // reference to (so its backing store lives for the env); JS does not run while
            // this thread is in a native call.
            unsafe { data.add(i).write(v) };
        }
    });
}

/// Binds `array` (a `Uint32Array` of `lib/`'s own) as `which`'s meta array on this thread;
/// a reference keeps it alive for the life of the env.
fn bind_meta(env: sys::napi_env, which: Meta, array: fast::Raw) -> Result<(), Code> {
    let (data, len) = fast::typed_array(env, array, sys::TypedarrayType::uint32_array, "meta")?;
    let mut reference = ptr::null_mut();
    // SAFETY: `env` is live and `array` an argument of the running call; the reference keeps
    // the array (and its backing store) alive until the env is torn down.
    fast::made(
        unsafe { sys::napi_create_reference(env, array, 1, &mut reference) },
        "reference",
    )?;
    META.with(|m| m[which as usize].set((data.cast(), len / 4)));
    Ok(())
}

type Handles<E> = &'static std::thread::LocalKey<RefCell<Registry<E>>>;

/// Runs `f` on the open handle `id` of `handles`.
fn with_handle<E, T>(
    handles: Handles<E>,
    id: u32,
    f: impl FnOnce(&mut E) -> Result<T, Code>,
) -> Result<T, Code> {
    handles.with(|handles| match handles.borrow_mut().get_mut(id) {
        Some(entry) => f(entry),
        None => Err(js_error("ERR_CLOSED", format!("handle {id} is closed"))),
    })
}

/// Stores a new handle; returns its number.
fn insert_handle<E>(handles: Handles<E>, entry: E) -> Result<u32, Code> {
    handles.with(|handles| {
        handles
            .borrow_mut()
            .insert(entry)
            .ok_or_else(|| js_error("ERR_OS", "this thread has opened 2^32 handles".into()))
    })
}

/// Removes a handle; dropping it closes the segment.
fn remove_handle<E>(handles: Handles<E>, id: u32) {
    let entry = handles.with(|handles| handles.borrow_mut().remove(id));
    drop(entry);
}

/// Runs `f` on the open value segment `id`.
fn with_value<T>(id: u32, f: impl FnOnce(&mut ValueEntry) -> Result<T, Code>) -> Result<T, Code> {
    with_handle(&VALUES, id, f)
}

fn register(seg: ValueSegment) -> Result<u32, Code> {
    insert_handle(
        &VALUES,
        ValueEntry {
            seg,
            notifier: None,
            closed: Arc::new(AtomicBool::new(false)),
            header_view: None,
        },
    )
}

/// Runs `f` with a descriptor the caller passed in, after checking that it is open.
fn with_inherited_fd<T>(
    fd: i32,
    f: impl FnOnce(BorrowedFd<'_>) -> Result<T, Code>,
) -> Result<T, Code> {
    // SAFETY: F_GETFD only inspects the descriptor table; a closed fd gives EBADF.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(to_js(Error::os(
            &format!("fd:{fd}"),
            "fcntl",
            std::io::Error::from_raw_os_error(libc::EBADF),
        )));
    }
    // SAFETY: the descriptor was just checked to be open, and it is only used (reopened)
    // within `f`, during which this thread closes nothing.
    f(unsafe { BorrowedFd::borrow_raw(fd) })
}

fn check_mode(name: &str, mode: u32) -> Result<u32, Code> {
    if mode & !0o777 != 0 {
        return Err(to_js(Error::invalid(
            name,
            format!("mode 0o{mode:o} has bits beyond 0o777"),
        )));
    }
    Ok(mode)
}

/// Options accepted when opening a segment (checked again, with friendlier messages, in
/// `index.js`).
#[napi(object)]
pub struct NativeOpenOptions {
    /// Initial value capacity in bytes.
    pub size: Option<f64>,
    /// Largest value the segment may grow to hold, in bytes.
    pub max_size: Option<f64>,
    /// Create the file if missing.
    pub create: Option<bool>,
    /// Open read-only.
    pub read_only: Option<bool>,
    /// Permission bits of a new file.
    pub mode: Option<u32>,
}

fn byte_count(name: &str, what: &str, v: Option<f64>, default: u64) -> Result<u64, Code> {
    match v {
        None => Ok(default),
        Some(x)
            if x.is_finite()
                && x >= 0.0
                && x.fract() == 0.0
                && x <= layout::MAX_CAPACITY as f64 =>
        {
            Ok(x as u64)
        }
        Some(x) => Err(to_js(Error::invalid(
            name,
            format!(
                "{what} must be a whole number of bytes from 0 to {}, got {x}",
                layout::MAX_CAPACITY
            ),
        ))),
    }
}

fn value_options(name: &str, o: Option<NativeOpenOptions>) -> Result<ValueOptions, Code> {
    let o = o.unwrap_or(NativeOpenOptions {
        size: None,
        max_size: None,
        create: None,
        read_only: None,
        mode: None,
    });
    // An explicit maxSize below the default size lowers the default size with it.
    let given_max = byte_count(name, "maxSize", o.max_size, u64::MAX)?;
    let capacity = byte_count(
        name,
        "size",
        o.size,
        layout::DEFAULT_CAPACITY.min(given_max),
    )?;
    let max_size = if o.max_size.is_some() {
        given_max
    } else {
        layout::DEFAULT_MAX_SIZE.max(capacity)
    };
    let mode = check_mode(name, o.mode.unwrap_or(0o600))?;
    Ok(ValueOptions {
        open: OpenOptions {
            kind: layout::KIND_VALUE,
            capacity,
            create: o.create.unwrap_or(true),
            read_only: o.read_only.unwrap_or(false),
            mode,
            header: None,
        },
        max_size,
    })
}

/// A wait longer than this (about a century, `Infinity` included) has no limit; this also
/// keeps `Instant` arithmetic from overflowing on huge timeouts.
const FOREVER_MS: f64 = 3.2e12;

/// A timeout in milliseconds (`None`: no limit). NaN and negative values mean "now".
fn millis(ms: Option<f64>) -> Option<Duration> {
    let ms = ms?;
    if ms > FOREVER_MS {
        return None;
    }
    // `f64::max` maps NaN to 0 as well.
    Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0))
}

/// Opens or creates the value segment at `path`; returns its handle number.
#[napi(catch_unwind)]
pub fn value_open(path: String, options: Option<NativeOpenOptions>) -> Result<u32, Code> {
    let opts = value_options(&path, options)?;
    register(ValueSegment::open(Path::new(&path), &opts).map_err(to_js)?)
}

/// Creates an anonymous (memfd) value segment; returns its handle number.
#[napi(catch_unwind)]
pub fn value_anonymous(options: Option<NativeOpenOptions>) -> Result<u32, Code> {
    let opts = value_options("memfd", options)?;
    register(ValueSegment::anonymous(&opts).map_err(to_js)?)
}

/// Opens the value segment behind an inherited descriptor (reopened: the caller keeps
/// its own); returns its handle number.
#[napi(catch_unwind)]
pub fn value_from_fd(fd: i32, options: Option<NativeOpenOptions>) -> Result<u32, Code> {
    let opts = value_options(&format!("fd:{fd}"), options)?;
    let opened = with_inherited_fd(fd, |fd| ValueSegment::from_fd(fd, &opts).map_err(to_js))?;
    register(opened)
}

/// Closes a handle: unmaps (unless zero-copy buffers still hold the mapping), closes the
/// file and so releases the handle's locks. Closing twice is harmless.
#[napi(catch_unwind)]
pub fn value_close(id: u32) {
    remove_handle(&VALUES, id);
}

/// Removes a share-object segment file of any kind; anything else at the path (a symlink,
/// which is never followed, a directory, another program's file) is refused with
/// ERR_NOT_A_SEGMENT and left as it is.
#[napi(catch_unwind)]
pub fn unlink(path: String) -> Result<(), Code> {
    crate::segment::unlink(Path::new(&path)).map_err(to_js)
}

/// The hot calls as plain napi callbacks (`fast.rs`), as an object. `maxStringLength` is
/// the runtime's longest string (`buffer.constants.MAX_STRING_LENGTH`), named in the
/// error of a read too long for a string.
#[napi(catch_unwind)]
pub fn fast_api<'env>(
    env: &'env Env,
    max_string_length: Option<f64>,
) -> Result<Unknown<'env>, Code> {
    if let Some(max) = max_string_length.filter(|m| m.is_finite() && *m > 0.0) {
        fast::set_max_string_length(max as usize);
    }
    let object = fast::fast_api(env)?;
    // SAFETY: `object` is the live object `fast_api` just created in this env.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), object) })
}

/// Copies the committed value's bytes into `target` if they fit, straight from the mapping
/// (one copy); returns their length either way (a length above `target.length` means
/// nothing was copied: retry with more room). `lib/` builds `readBuffer()` on this, with a
/// target of its own: a pooled JS Buffer is much cheaper to allocate than one napi creates.
#[napi(catch_unwind)]
pub fn value_read_into(id: u32, mut target: Uint8ArraySlice<'_>) -> Result<f64, Code> {
    // SAFETY: `target` is a live JS typed array owned by the JS heap (not shared memory: lib/
    // passes Buffers of its own) and no other reference to its bytes exists during this
    // call; the area is dropped before it returns.
    let out: &mut [u8] = unsafe { target.as_mut() };
    // SAFETY: as above: `out` is valid for writes of its length for this call.
    let mut area = unsafe { crate::value::slots::Area::new(out.as_mut_ptr(), out.len()) };
    let read = with_value(id, |e| e.seg.read_into_area(&mut area).map_err(to_js))?;
    Ok(match read {
        Ok((_, len)) => len as f64,
        Err(len) => len as f64,
    })
}

/// Number of completed writes, the same in every process.
#[napi(catch_unwind)]
pub fn value_version(id: u32) -> Result<f64, Code> {
    with_value(id, |e| Ok(e.seg.version() as f64))
}

/// Facts about an open handle.
#[napi(object)]
pub struct NativeValueInfo {
    pub path: String,
    pub capacity: f64,
    pub max_size: f64,
    pub read_only: bool,
}

/// Path, capacity, size limit and mode of a handle.
#[napi(catch_unwind)]
pub fn value_info(id: u32) -> Result<NativeValueInfo, Code> {
    with_value(id, |e| {
        Ok(NativeValueInfo {
            path: e.seg.path().to_owned(),
            capacity: e.seg.capacity() as f64,
            max_size: e.seg.max_size() as f64,
            read_only: e.seg.segment().read_only(),
        })
    })
}

/// A descriptor of the segment to pass to a child process (opened on first use, closed
/// with the handle; it holds none of this handle's locks).
#[napi(catch_unwind)]
pub fn value_fd(id: u32) -> Result<i32, Code> {
    with_value(id, |e| {
        let fd = e.seg.segment().shared_fd().map_err(to_js)?;
        Ok(fd.as_raw_fd())
    })
}

/// Bytes the value may take before the segment grows, now: a growth made by another
/// process is adopted (re-mapped) first.
#[napi(catch_unwind)]
pub fn value_capacity(id: u32) -> Result<f64, Code> {
    with_value(id, |e| Ok(e.seg.current_capacity().map_err(to_js)? as f64))
}

type NotifyFn = ThreadsafeFunction<(), (), (), Code, false, true, 1>;

/// How long a notifier thread busy-waits for the next change before it parks: a peer that
/// answers within this window is seen without a futex wake-up (ping-pong latency).
const NOTIFY_SPIN: Duration = Duration::from_micros(30);

/// Starts a native thread that calls `callback()` after writes (coalesced: at most one
/// call is queued; the callback reads the latest version itself). Does not keep the
/// process alive on its own.
#[napi(catch_unwind)]
pub fn value_start_notifier(id: u32, callback: NotifyFn) -> Result<(), Code> {
    with_value(id, |e| {
        e.stop_notifier();
        let watcher = e.seg.watcher();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("share-object-notify".into())
            .spawn(move || notify_loop(watcher, flag, callback))
            .map_err(|err| to_js(Error::os(e.seg.path(), "spawn notifier thread", err)))?;
        e.notifier = Some(stop);
        Ok(())
    })
}

/// Stops the notifier thread, if any.
#[napi(catch_unwind)]
pub fn value_stop_notifier(id: u32) {
    let _ = with_value(id, |e| {
        e.stop_notifier();
        Ok(())
    });
}

fn notify_loop(watcher: Watcher, stop: Arc<AtomicBool>, callback: NotifyFn) {
    let mut last = watcher.version();
    // A write may have landed between the JS side's last look and this thread's first:
    // one call now lets JS compare against the current version.
    let _ = callback.call((), ThreadsafeFunctionCallMode::NonBlocking);
    while let Some(v) = watcher.wait_for_change(last, None, NOTIFY_SPIN, Some(&stop)) {
        last = v;
        // A full queue means a call is already pending; it reads the latest version when
        // it runs, so this change is delivered with it (coalesced), not lost.
        let _ = callback.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }
}

fn deadline_after(timeout_ms: Option<f64>) -> Option<Instant> {
    millis(timeout_ms).map(|d| Instant::now() + d)
}

/// Takes the cross-process lock, blocking; returns true if its previous holder had died.
/// Gives way if this thread's JS environment stops meanwhile (`interrupt.rs`).
#[napi(catch_unwind)]
pub fn value_lock_sync(env: Env, id: u32, timeout_ms: Option<f64>) -> Result<bool, Code> {
    let (locker, path) = with_value(id, |e| {
        Ok((e.seg.user_locker().map_err(to_js)?, e.seg.path().to_owned()))
    })?;
    let deadline = deadline_after(timeout_ms);
    let got = parked(env.raw(), deadline, |until| {
        match locker.lock(Some(until), false, None) {
            Err(Error::Timeout { .. }) => None,
            other => Some(other),
        }
    })?;
    match got {
        Some(acquired) => Ok(acquired.map_err(to_js)? == Acquired::OwnerDied),
        None => Err(to_js(Error::Timeout {
            path,
            what: "the lock",
            ms: timeout_ms.map_or(0, |ms| ms as u64),
        })),
    }
}

/// Runs a blocking wait of the JS thread of `env` in steps (see `interrupt.rs`): `Some`
/// when a step finished it, `None` when `deadline` passed, and an error (which no
/// JavaScript will see) when the environment began to stop.
fn parked<T>(
    env: sys::napi_env,
    deadline: Option<Instant>,
    step: impl FnMut(Instant) -> Option<T>,
) -> Result<Option<T>, Code> {
    // SAFETY: `env` is the environment of the callback running on this thread.
    let stopping = || unsafe { interrupt::env_stopping(env) };
    match interrupt::in_steps(deadline, interrupt::POLL, stopping, step) {
        Stepped::Done(done) => Ok(Some(done)),
        Stepped::TimedOut => Ok(None),
        Stepped::Stopped => Err(js_error(
            "ERR_INTERRUPTED",
            "the wait was abandoned: this thread's JavaScript environment is stopping".into(),
        )),
    }
}

/// A callback told `(err, value)` that answers whether it takes what it was given: a
/// background wait that succeeded after JS stopped wanting it (the handle closed) gives
/// back what it got when the answer is not `true`.
type HandOver = ThreadsafeFunction<bool, bool, bool, Code, true>;

/// Gives `callback` the outcome of a background wait; if the wait got what it waited for
/// and JS does not answer `true`, `give_back` returns it.
fn hand_over(
    callback: &HandOver,
    result: std::result::Result<bool, Error>,
    give_back: impl FnOnce() + 'static,
) {
    let got = result.is_ok();
    callback.call_with_return_value(
        result.map_err(to_js),
        ThreadsafeFunctionCallMode::Blocking,
        move |kept, _env| {
            if got && !matches!(kept, Ok(true)) {
                give_back();
            }
            Ok(())
        },
    );
}

/// Takes the cross-process lock on a native thread, then calls `callback(err, ownerDied)`,
/// which returns `true` to keep the lock (anything else releases it). Closing the handle
/// ends the wait with ERR_CLOSED. The pending call keeps the process alive.
#[napi(catch_unwind)]
pub fn value_lock_async(id: u32, timeout_ms: Option<f64>, callback: HandOver) -> Result<(), Code> {
    let (locker, closed) = with_value(id, |e| {
        Ok((e.seg.user_locker().map_err(to_js)?, Arc::clone(&e.closed)))
    })?;
    let deadline = deadline_after(timeout_ms);
    std::thread::Builder::new()
        .name("share-object-lock".into())
        .spawn(move || {
            let result = locker
                .lock(deadline, true, Some(&closed))
                .map(|a| a == Acquired::OwnerDied);
            hand_over(&callback, result, move || locker.unlock());
        })
        .map_err(|err| js_error("ERR_OS", format!("cannot start a lock thread: {err}")))?;
    Ok(())
}

/// Releases the cross-process lock held by this handle.
#[napi(catch_unwind)]
pub fn value_unlock(id: u32) -> Result<(), Code> {
    with_value(id, |e| {
        e.seg.unlock_user();
        Ok(())
    })
}

/// Whether a live handle in any process holds the lock.
#[napi(catch_unwind)]
pub fn value_locked(id: u32) -> Result<bool, Code> {
    with_value(id, |e| Ok(e.seg.user_lock_held()))
}

/// Finalizer of a Buffer or ArrayBuffer over a mapping: drops the mapping reference that
/// kept it mapped.
///
/// # Safety
/// Called by napi only, once, with the `hint` given when the buffer was created.
unsafe extern "C" fn release_mapping(
    _env: sys::napi_env,
    _data: *mut std::ffi::c_void,
    hint: *mut std::ffi::c_void,
) {
    // SAFETY: `hint` is the `Box<Arc<Mapping>>` leaked for exactly this buffer (in
    // `external_buffer` or `fast::channel_borrow_cb`), and napi runs a finalizer once.
    drop(unsafe { Box::from_raw(hint.cast::<Arc<Mapping>>()) });
}

/// A Buffer over `len` bytes at `offset` of `map`, owning a reference to the mapping.
fn external_buffer<'env>(
    env: &'env Env,
    path: &str,
    map: Arc<Mapping>,
    offset: usize,
    len: usize,
) -> Result<Unknown<'env>, Code> {
    assert!(offset + len <= map.len(), "buffer beyond the mapping");
    // SAFETY: `offset + len <= map.len()` (asserted), so the pointer stays in the mapping.
    let data = unsafe { map.base().add(offset) };
    let hint = Box::into_raw(Box::new(map));
    let mut value = ptr::null_mut();
    // SAFETY: `data` is valid for `len` bytes for as long as the `Arc<Mapping>` in `hint`
    // lives, and `release_mapping` drops it only when V8 collects the buffer.
    let status = unsafe {
        sys::napi_create_external_buffer(
            env.raw(),
            len,
            data.cast(),
            Some(release_mapping),
            hint.cast(),
            &mut value,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: no buffer was created, so the finalizer will never run: reclaim the box.
        drop(unsafe { Box::from_raw(hint) });
        if status == sys::Status::napi_no_external_buffers_allowed {
            return Err(to_js(Error::ExternalBufferUnsupported {
                path: path.to_owned(),
            }));
        }
        return Err(js_error(
            "ERR_OS",
            format!("{path}: could not create an external buffer (napi status {status})"),
        ));
    }
    // SAFETY: `value` is the live buffer created just above.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}

/// A zero-copy Buffer over the committed value's region (its whole size). It keeps the
/// mapping alive by itself, after `close()` too.
#[napi(catch_unwind)]
pub fn value_buffer<'env>(env: &'env Env, id: u32) -> Result<Unknown<'env>, Code> {
    let (path, map, offset, len) = with_value(id, |e| {
        if e.seg.segment().read_only() {
            return Err(to_js(Error::ReadOnly {
                path: e.seg.path().to_owned(),
            }));
        }
        let (offset, len) = e.seg.current_region().map_err(to_js)?;
        Ok((
            e.seg.path().to_owned(),
            Arc::clone(e.seg.segment().mapping()),
            offset,
            len,
        ))
    })?;
    external_buffer(env, &path, map, offset, len)
}

/// What `value_upgrade` did.
#[napi(object)]
pub struct NativeUpgraded {
    /// The segment's version now.
    pub version: f64,
    /// False if it was format 2 already.
    pub converted: bool,
    /// True if a torn format-1 value was replaced by an empty one.
    pub discarded_torn: bool,
}

/// Converts the format-1 value segment at `path` to format 2 in place (`value/upgrade.rs`).
#[napi(catch_unwind)]
pub fn value_upgrade(path: String, discard_torn: Option<bool>) -> Result<NativeUpgraded, Code> {
    let opts = UpgradeOptions {
        discard_torn: discard_torn.unwrap_or(false),
    };
    let done = upgrade::upgrade(Path::new(&path), opts).map_err(to_js)?;
    Ok(NativeUpgraded {
        version: done.version as f64,
        converted: done.converted,
        discarded_torn: done.discarded_torn,
    })
}

/// A Buffer over the header, for `index.js` to read the version without a native call.
///
/// It views a small mapping of its own that lives exactly as long as the handle: closing
/// the handle unmaps it at once (a view that kept a mapping alive would hold every closed
/// segment mapped until garbage collection). `index.js` keeps the Buffer private, reads it
/// only with `Atomics.load`, and drops it before closing. The mapping is read-only.
#[napi(catch_unwind)]
pub fn value_header<'env>(env: &'env Env, id: u32) -> Result<Unknown<'env>, Code> {
    let (data, len) = with_value(id, |e| {
        if e.header_view.is_none() {
            e.header_view = Some(e.seg.segment().map_header().map_err(to_js)?);
        }
        Ok(e.header_view
            .as_ref()
            .map(|m| (m.base(), m.len()))
            .unwrap_or((ptr::null_mut(), 0)))
    })?;
    let mut value = ptr::null_mut();
    // SAFETY: `data` is the start of a live mapping of `len` bytes owned by the handle;
    // no finalizer is attached, and the JS side drops the view before closing the handle,
    // after which nothing reads through it.
    let status = unsafe {
        sys::napi_create_external_buffer(
            env.raw(),
            len,
            data.cast(),
            None,
            ptr::null_mut(),
            &mut value,
        )
    };
    if status != sys::Status::napi_ok {
        return Err(js_error(
            "ERR_EXTERNAL_BUFFER_UNSUPPORTED",
            format!("cannot create a view of the header (napi status {status})"),
        ));
    }
    // SAFETY: `value` is the live buffer created just above.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}

// ---- channels ----------------------------------------------------------------------

/// One open channel of this thread.
struct ChannelEntry {
    chan: ChannelSegment,
    /// Stop flags of the data and space notifier threads.
    notifiers: [Option<Arc<AtomicBool>>; 2],
    /// The message size the space notifier waits for room for (JS keeps it current).
    space_need: Arc<AtomicU64>,
    /// Set when the handle closes: its background consumer claim gives up.
    closed: Arc<AtomicBool>,
}

impl ChannelEntry {
    fn stop_notifier(&mut self, which: usize) {
        if let Some(stop) = self.notifiers[which].take() {
            // SYNC POINT: Release pairs with the Acquire load of the flag in
            // `ChannelWatcher::wait`, which the wake below interrupts.
            stop.store(true, Ordering::Release);
            self.chan.watcher().wake_all();
        }
    }
}

impl Drop for ChannelEntry {
    fn drop(&mut self) {
        self.stop_notifier(0);
        self.stop_notifier(1);
        // SYNC POINT: Release pairs with the Acquire loads of the flag in
        // `lock::acquire_cancellable` and `ConsumerClaimer::claim`.
        self.closed.store(true, Ordering::Release);
        self.chan.release_consumer();
        // A background claim may have taken the role for this handle without JS knowing
        // yet: that goes too (a claim that takes it after this sees the flag). Only here:
        // `releaseConsumer()` must not, since that claim's callback still records the role.
        self.chan.consumer_claimer().release();
    }
}

thread_local! {
    static CHANNELS: RefCell<Registry<ChannelEntry>> = RefCell::new(Registry::default());
}

fn with_channel<T>(
    id: u32,
    f: impl FnOnce(&mut ChannelEntry) -> Result<T, Code>,
) -> Result<T, Code> {
    with_handle(&CHANNELS, id, f)
}

fn register_channel(chan: ChannelSegment) -> Result<u32, Code> {
    insert_handle(
        &CHANNELS,
        ChannelEntry {
            chan,
            notifiers: [None, None],
            space_need: Arc::new(AtomicU64::new(0)),
            closed: Arc::new(AtomicBool::new(false)),
        },
    )
}

/// Options accepted when opening a channel.
#[napi(object)]
pub struct NativeChannelOptions {
    /// Ring size in bytes (a power of two; used when creating).
    pub capacity: Option<f64>,
    /// Create the file if missing.
    pub create: Option<bool>,
    /// Permission bits of a new file.
    pub mode: Option<u32>,
}

fn channel_options(name: &str, o: Option<NativeChannelOptions>) -> Result<OpenOptions, Code> {
    let o = o.unwrap_or(NativeChannelOptions {
        capacity: None,
        create: None,
        mode: None,
    });
    let capacity = byte_count(name, "capacity", o.capacity, channel::DEFAULT_CAPACITY)?;
    let mode = check_mode(name, o.mode.unwrap_or(0o600))?;
    Ok(OpenOptions {
        kind: layout::KIND_CHANNEL,
        capacity,
        create: o.create.unwrap_or(true),
        read_only: false,
        mode,
        header: None,
    })
}

/// Opens or creates the channel at `path`; returns its handle number.
#[napi(catch_unwind)]
pub fn channel_open(path: String, options: Option<NativeChannelOptions>) -> Result<u32, Code> {
    let opts = channel_options(&path, options)?;
    register_channel(ChannelSegment::open(Path::new(&path), &opts).map_err(to_js)?)
}

/// Creates an anonymous (memfd) channel; returns its handle number.
#[napi(catch_unwind)]
pub fn channel_anonymous(options: Option<NativeChannelOptions>) -> Result<u32, Code> {
    let opts = channel_options("memfd", options)?;
    register_channel(ChannelSegment::anonymous(&opts).map_err(to_js)?)
}

/// Opens the channel behind an inherited descriptor (reopened: the caller keeps its own).
#[napi(catch_unwind)]
pub fn channel_from_fd(fd: i32, options: Option<NativeChannelOptions>) -> Result<u32, Code> {
    let opts = channel_options(&format!("fd:{fd}"), options)?;
    let opened = with_inherited_fd(fd, |fd| ChannelSegment::from_fd(fd, &opts).map_err(to_js))?;
    register_channel(opened)
}

/// Closes a channel handle (giving up the consumer role). Closing twice is harmless.
#[napi(catch_unwind)]
pub fn channel_close(id: u32) {
    remove_handle(&CHANNELS, id);
}

/// Facts about an open channel handle.
#[napi(object)]
pub struct NativeChannelInfo {
    pub path: String,
    pub capacity: f64,
    pub max_message: f64,
    pub is_consumer: bool,
    pub consumer_held: bool,
}

/// Path, sizes and consumer state of a channel handle.
#[napi(catch_unwind)]
pub fn channel_info(id: u32) -> Result<NativeChannelInfo, Code> {
    with_channel(id, |e| {
        let c = &e.chan;
        Ok(NativeChannelInfo {
            path: c.path().to_owned(),
            capacity: c.capacity() as f64,
            max_message: c.max_message() as f64,
            is_consumer: c.is_consumer(),
            consumer_held: c.consumer_held(),
        })
    })
}

/// Whether a message (or something the consumer must act on: padding, a dead producer's
/// record) waits at the head of the ring now. Takes nothing.
#[napi(catch_unwind)]
pub fn channel_has_message(id: u32) -> Result<bool, Code> {
    with_channel(
        id,
        |e| Ok(e.chan.watcher().data_state() == DataState::Ready),
    )
}

/// Ring bytes in use (ERR_CORRUPT if the ring's positions cannot be).
#[napi(catch_unwind)]
pub fn channel_queued(id: u32) -> Result<f64, Code> {
    with_channel(id, |e| Ok(e.chan.queued().map_err(to_js)? as f64))
}

/// A descriptor of the channel to pass to a child process (opened on first use, closed
/// with the handle; it holds none of this handle's locks).
#[napi(catch_unwind)]
pub fn channel_fd(id: u32) -> Result<i32, Code> {
    with_channel(id, |e| {
        let fd = e.chan.segment().shared_fd().map_err(to_js)?;
        Ok(fd.as_raw_fd())
    })
}

/// Sends messages packed as `[u32 length (LE)][bytes]…` (`count` of them), in order, until
/// one does not fit; returns how many were sent.
#[napi(catch_unwind)]
pub fn channel_send_packed(id: u32, packed: Uint8ArraySlice<'_>, count: u32) -> Result<u32, Code> {
    let bytes: &[u8] = &packed;
    with_channel(id, |e| {
        let path = e.chan.path().to_owned();
        // Each packed message takes at least its 4-byte length: a larger count is a lie.
        let mut msgs = Vec::with_capacity((count as usize).min(bytes.len() / 4));
        let mut at = 0usize;
        for _ in 0..count {
            let len = bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
                .ok_or_else(|| to_js(Error::invalid(&path, "packed batch is truncated")))?;
            let msg = bytes
                .get(at + 4..at + 4 + len)
                .ok_or_else(|| to_js(Error::invalid(&path, "packed batch is truncated")))?;
            msgs.push(msg);
            at += 4 + len;
        }
        e.chan.send_many(&msgs).map(|n| n as u32).map_err(to_js)
    })
}

/// Becomes the consumer now, or fails with ERR_CONSUMER_BUSY.
#[napi(catch_unwind)]
pub fn channel_claim_consumer(id: u32) -> Result<(), Code> {
    with_channel(id, |e| e.chan.claim_consumer(false, None).map_err(to_js))
}

/// Waits on a native thread to become the consumer, then calls `callback(err)`, which
/// returns `true` to keep the role (anything else gives it back). Closing the handle ends
/// the wait with ERR_CLOSED.
#[napi(catch_unwind)]
pub fn channel_claim_consumer_async(
    id: u32,
    timeout_ms: Option<f64>,
    callback: HandOver,
) -> Result<(), Code> {
    let (claimer, closed) = with_channel(id, |e| {
        Ok((e.chan.consumer_claimer(), Arc::clone(&e.closed)))
    })?;
    let deadline = deadline_after(timeout_ms);
    std::thread::Builder::new()
        .name("share-object-consumer".into())
        .spawn(move || {
            let result = claimer.claim(true, deadline, Some(&closed)).map(|()| true);
            hand_over(&callback, result, move || claimer.release());
        })
        .map_err(|err| js_error("ERR_OS", format!("cannot start a thread: {err}")))?;
    Ok(())
}

/// Records that a background claim made this handle the consumer.
#[napi(catch_unwind)]
pub fn channel_set_consumer(id: u32) -> Result<(), Code> {
    with_channel(id, |e| {
        e.chan.set_consumer();
        Ok(())
    })
}

/// Gives up the consumer role.
#[napi(catch_unwind)]
pub fn channel_release_consumer(id: u32) -> Result<(), Code> {
    with_channel(id, |e| {
        e.chan.release_consumer();
        Ok(())
    })
}

/// Starts a native thread that calls `callback()` (coalesced) whenever there is data for
/// the consumer (`space == false`) or room for `bytes` more (`space == true`).
#[napi(catch_unwind)]
pub fn channel_start_notifier(
    id: u32,
    space: bool,
    bytes: f64,
    callback: NotifyFn,
) -> Result<(), Code> {
    with_channel(id, |e| {
        let which = usize::from(space);
        e.stop_notifier(which);
        let watcher = e.chan.watcher();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        // SYNC POINT: Relaxed: a size hint (see `channel_set_space_need`).
        e.space_need.store(bytes.max(0.0) as u64, Ordering::Relaxed);
        let need = Arc::clone(&e.space_need);
        std::thread::Builder::new()
            .name("share-object-channel".into())
            .spawn(move || loop {
                let ready = if space {
                    // For room for the first waiting send, whose size JS keeps current
                    // (`channelSetSpaceNeed`).
                    watcher.wait_space(&need, None, Some(&flag))
                } else {
                    watcher.wait_data(None, NOTIFY_SPIN, Some(&flag))
                };
                // SYNC POINT: Acquire pairs with the Release store in
                // `ChannelEntry::stop_notifier`.
                if flag.load(Ordering::Acquire) {
                    return;
                }
                if ready {
                    // Call JS, then let it act (consume, or send) before looking again, so a
                    // state JS leaves as it is does not turn into a busy loop.
                    let before = watcher.position(space);
                    let _ = callback.call((), ThreadsafeFunctionCallMode::NonBlocking);
                    watcher.wait_moved(space, before, &flag);
                }
            })
            .map_err(|err| js_error("ERR_OS", format!("cannot start a thread: {err}")))?;
        e.notifiers[which] = Some(stop);
        Ok(())
    })
}

/// Sets the message size the space notifier waits for room for (the first waiting send).
#[napi(catch_unwind)]
pub fn channel_set_space_need(id: u32, bytes: f64) -> Result<(), Code> {
    with_channel(id, |e| {
        // SYNC POINT: Relaxed pairs with the Relaxed load in `ChannelWatcher::wait_space`
        // (a hint).
        e.space_need.store(bytes.max(0.0) as u64, Ordering::Relaxed);
        Ok(())
    })
}

/// Stops a notifier thread started by `channel_start_notifier`.
#[napi(catch_unwind)]
pub fn channel_stop_notifier(id: u32, space: bool) {
    let _ = with_channel(id, |e| {
        e.stop_notifier(usize::from(space));
        Ok(())
    });
}
