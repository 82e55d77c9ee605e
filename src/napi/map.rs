//! The napi surface of `SharedMap` (`src/map/`): argument conversion and error mapping only.
//!
//! The per-key calls (get, set, has, delete, incr, update's halves, getOrSet's claim) are
//! plain napi callbacks, handed to `lib/` in the `fastApi()` object: napi-rs's generated
//! glue costs more than a whole lookup. Values cross as the codec's type tag plus a payload
//! the native side can make or read directly (a string for text and JSON, a number, a
//! Buffer for bytes; `lib/codec.js` does the rest). The tag of the value a call returns is
//! written to the first element of the `Uint32Array` that `lib/` binds once per thread
//! (`mapBindMeta`, see `set_meta` in `mod.rs`), which saves passing it on every call.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::sys;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use super::fast::{
    args, array, boolean, buffer_copy, bytes, get_bool, get_f64, get_u32, is_undefined, js_string,
    null, number, run, undefined, with_path, with_utf8, Callback, Raw,
};
use super::registry::Registry;
use super::scratch::Scratch;
use super::{
    check_mode, insert_handle, js_error, millis, remove_handle, set_meta, to_js, with_handle,
    with_inherited_fd, JsError, Meta, NotifyFn, SCRATCH,
};
use crate::error::Error;
use crate::map::format::MAX_KEY;
use crate::map::{self, Claim, MapOptions, MapSegment, Touch};

/// One open map of this thread.
struct MapEntry {
    map: MapSegment,
    /// Set to stop the notifier thread.
    notifier: Option<Arc<AtomicBool>>,
    /// Where this handle has read each shard's change log up to.
    cursors: Vec<u64>,
}

impl MapEntry {
    fn stop_notifier(&mut self) {
        if let Some(stop) = self.notifier.take() {
            // SYNC POINT: Release pairs with the Acquire load of the flag in
            // `MapWatcher::wait`, which the wake below interrupts.
            stop.store(true, Ordering::Release);
            self.map.watcher().wake_all();
        }
    }
}

impl Drop for MapEntry {
    fn drop(&mut self) {
        self.stop_notifier();
    }
}

thread_local! {
    static MAPS: RefCell<Registry<MapEntry>> = RefCell::new(Registry::default());
    /// Reused for the UTF-16 units of string values (`with_value_utf8`).
    static UTF16: Scratch<u16> = const { Scratch::new() };
}

fn with_map<T>(id: u32, f: impl FnOnce(&mut MapEntry) -> Result<T, JsError>) -> Result<T, JsError> {
    with_handle(&MAPS, id, f)
}

/// `err` with the path of map `id` in front of its message (for errors made in this layer).
fn at_map(id: u32, err: JsError) -> JsError {
    with_path(with_map(id, |e| Ok(e.map.path().to_owned())), err)
}

fn register(map: MapSegment) -> Result<u32, JsError> {
    insert_handle(
        &MAPS,
        MapEntry {
            map,
            notifier: None,
            cursors: Vec::new(),
        },
    )
}

/// Errors of the per-key callbacks, boxed: a `Result` of a pointer travels in registers,
/// where one holding a 64-byte error was copied through every closure and layer of a call
/// (store-forwarding stalls: a third of the cost of a get that misses, measured).
type Fail = Box<JsError>;

/// Boxes an error (off the hot path).
#[cold]
#[inline(never)]
fn fail(err: JsError) -> Fail {
    Box::new(err)
}

/// Runs `f` on the map of handle `id`, converting its errors.
fn map_op<T>(
    id: u32,
    f: impl FnOnce(&mut MapSegment) -> crate::error::Result<T>,
) -> Result<T, Fail> {
    MAPS.with(|maps| match maps.borrow_mut().get_mut(id) {
        Some(e) => f(&mut e.map).map_err(|err| fail(to_js(err))),
        None => Err(fail(js_error(
            "ERR_CLOSED",
            format!("handle {id} is closed"),
        ))),
    })
}

/// Room on the stack for a key argument: its UTF-16 units and its UTF-8 bytes.
struct KeyBuf {
    units: [MaybeUninit<u16>; MAX_KEY + 2],
    bytes: [MaybeUninit<u8>; MAX_KEY],
}

impl KeyBuf {
    fn new() -> Self {
        KeyBuf {
            units: [MaybeUninit::uninit(); MAX_KEY + 2],
            bytes: [MaybeUninit::uninit(); MAX_KEY],
        }
    }
}

/// Why a key's UTF-16 does not make a key.
#[derive(Debug, PartialEq, Eq)]
enum KeyFault {
    /// More than MAX_KEY bytes of UTF-8 (this many).
    TooLong(usize),
    /// A lone surrogate.
    Lone,
}

/// Writes the UTF-8 encoding of the UTF-16 `units` to the start of `out`; returns its
/// length.
fn encode_key(units: &[u16], out: &mut [MaybeUninit<u8>]) -> Result<usize, KeyFault> {
    if units.len() <= out.len() && units.iter().fold(0u16, |all, &u| all | u) < 0x80 {
        for (o, &u) in out.iter_mut().zip(units) {
            o.write(u as u8);
        }
        return Ok(units.len());
    }
    let mut len = 0;
    for c in char::decode_utf16(units.iter().copied()) {
        let c = c.map_err(|_| KeyFault::Lone)?;
        let mut bytes = [0u8; 4];
        let bytes = c.encode_utf8(&mut bytes).as_bytes();
        let Some(room) = out.get_mut(len..len + bytes.len()) else {
            let whole = char::decode_utf16(units.iter().copied())
                .map(|c| c.map_or(3, char::len_utf8))
                .sum();
            return Err(KeyFault::TooLong(whole));
        };
        for (o, &b) in room.iter_mut().zip(bytes) {
            o.write(b);
        }
        len += bytes.len();
    }
    Ok(len)
}

/// The UTF-8 bytes of the key argument (1 to MAX_KEY bytes, well-formed: a lone surrogate
/// is refused, as `lib/` refuses it), made in `buf`.
///
/// One napi call copies the key's UTF-16 units onto the stack (a key of more than MAX_KEY
/// units has more than MAX_KEY bytes of UTF-8), and the UTF-8 is made here: V8's own UTF-8
/// writer, plus the call that measured the string first, cost more than the whole lookup
/// of a short key.
fn key_arg(env: sys::napi_env, value: Raw, buf: &mut KeyBuf) -> Result<&[u8], Fail> {
    let too_long = |bytes: usize| {
        fail(js_error(
            "ERR_INVALID_ARG_VALUE",
            format!("a key must be 1 to {MAX_KEY} bytes of UTF-8, got {bytes} bytes"),
        ))
    };
    let mut copied = 0usize;
    // SAFETY: `units` has room for `units.len()` units; napi writes at most
    // `units.len() - 1` of them plus a NUL, and reports how many it copied (without the NUL).
    let status = unsafe {
        sys::napi_get_value_string_utf16(
            env,
            value,
            buf.units.as_mut_ptr().cast(),
            buf.units.len(),
            &mut copied,
        )
    };
    if status != sys::Status::napi_ok {
        return Err(fail(js_error(
            "ERR_INVALID_ARG_TYPE",
            "the key must be a string".into(),
        )));
    }
    if copied > MAX_KEY {
        // Every UTF-16 unit is at least one UTF-8 byte.
        let mut bytes = 0usize;
        // SAFETY: with a null buffer napi only reports the UTF-8 length.
        unsafe { sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut bytes) };
        return Err(too_long(bytes.max(copied)));
    }
    // SAFETY: napi initialised the first `copied` units (at most `units.len() - 1`).
    let units = unsafe { std::slice::from_raw_parts(buf.units.as_ptr().cast::<u16>(), copied) };
    match encode_key(units, &mut buf.bytes) {
        Ok(0) => Err(too_long(0)),
        // SAFETY: `encode_key` initialised the first `len` bytes.
        Ok(len) => Ok(unsafe { std::slice::from_raw_parts(buf.bytes.as_ptr().cast(), len) }),
        Err(KeyFault::TooLong(bytes)) => Err(too_long(bytes)),
        Err(KeyFault::Lone) => Err(fail(js_error(
            "ERR_INVALID_ARG_VALUE",
            "a key must be well-formed Unicode (it has a lone surrogate)".into(),
        ))),
    }
}

/// Runs `f` on the UTF-8 bytes of the key argument (see [`key_arg`]).
fn with_key<T>(
    env: sys::napi_env,
    value: Raw,
    f: impl FnOnce(&[u8]) -> Result<T, JsError>,
) -> Result<T, JsError> {
    let mut buf = KeyBuf::new();
    let key = key_arg(env, value, &mut buf).map_err(|e| *e)?;
    f(key)
}

/// Writes the UTF-8 encoding of the UTF-16 `units` to `out` (replacing its contents). A
/// lone surrogate becomes U+FFFD when `lossy` (as V8's own conversion does), else the
/// result is false (and `out` holds a part).
fn encode_utf8(units: &[u16], out: &mut Vec<u8>, lossy: bool) -> bool {
    out.clear();
    if units.iter().fold(0u16, |all, &u| all | u) < 0x80 {
        out.extend(units.iter().map(|&u| u as u8));
        return true;
    }
    out.reserve(units.len() * 3);
    for c in char::decode_utf16(units.iter().copied()) {
        let c = match c {
            Ok(c) => c,
            Err(_) if lossy => char::REPLACEMENT_CHARACTER,
            Err(_) => return false,
        };
        let mut bytes = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut bytes).as_bytes());
    }
    true
}

/// Strings up to this many UTF-16 units are copied in one napi call into a reused buffer
/// and encoded here (`with_value_utf8`); longer ones go through `fast::with_utf8`, which
/// measures them first.
const SMALL_VALUE_UNITS: usize = 16 * 1024;

/// Runs `f` on the UTF-8 encoding of the string argument `value` (lone surrogates become
/// U+FFFD). `fits(bytes)` may refuse a long string before room is made for it.
fn with_value_utf8<T>(
    env: sys::napi_env,
    value: Raw,
    fits: impl FnOnce(u64) -> Result<(), JsError>,
    f: impl FnOnce(&[u8]) -> Result<T, Fail>,
) -> Result<T, Fail> {
    let whole = UTF16.with(|scratch| {
        scratch.with(|units| {
            units.clear();
            units.try_reserve(SMALL_VALUE_UNITS + 1).map_err(|_| {
                fail(js_error(
                    "ERR_OUT_OF_MEMORY",
                    "no memory to convert a string".into(),
                ))
            })?;
            let mut copied = 0usize;
            // SAFETY: `units` has capacity for SMALL_VALUE_UNITS + 1 units; napi writes at
            // most that many (the last a NUL) and reports how many it copied before it.
            let status = unsafe {
                sys::napi_get_value_string_utf16(
                    env,
                    value,
                    units.as_mut_ptr(),
                    SMALL_VALUE_UNITS + 1,
                    &mut copied,
                )
            };
            if status != sys::Status::napi_ok {
                return Err(fail(js_error(
                    "ERR_INVALID_ARG_TYPE",
                    "the value must be a string".into(),
                )));
            }
            if copied >= SMALL_VALUE_UNITS {
                return Ok(false); // perhaps cut short: the long way
            }
            // SAFETY: napi initialised the first `copied` units.
            unsafe { units.set_len(copied) };
            SCRATCH.with(|scratch| scratch.with(|out| encode_utf8(units, out, true)));
            Ok(true)
        })
    })?;
    if whole {
        SCRATCH.with(|scratch| scratch.with(|out| f(out)))
    } else {
        with_utf8(env, value, fits, |bytes| f(bytes).map_err(|e| *e)).map_err(fail)
    }
}

/// A JS value for a value of type `tag` with these bytes (see `lib/codec.js`).
fn tagged_value(env: sys::napi_env, tag: u8, value: &[u8]) -> Result<Raw, JsError> {
    match tag {
        // ERR_STRING_TOO_LONG: the callers add the map's path.
        TAG_STRING | TAG_JSON => js_string(env, value),
        map::TAG_NUMBER => match <[u8; 8]>::try_from(value) {
            Ok(b) => number(env, f64::from_le_bytes(b)),
            Err(_) => Err(js_error(
                "ERR_CORRUPT",
                format!("a number value of {} bytes", value.len()),
            )),
        },
        TAG_TRUE => boolean(env, true),
        TAG_FALSE => boolean(env, false),
        TAG_NULL => null(env),
        _ => buffer_copy(env, value),
    }
}

const TAG_STRING: u8 = 1;
const TAG_TRUE: u8 = 3;
const TAG_FALSE: u8 = 4;
const TAG_NULL: u8 = 5;
const TAG_JSON: u8 = 6;

fn ttl_arg(env: sys::napi_env, value: Raw) -> Result<Option<u64>, JsError> {
    if is_undefined(env, value)? {
        return Ok(None);
    }
    let ms = get_f64(env, value, "ttl")?;
    Ok(Some(
        millis(Some(ms)).map_or(u64::MAX, |d| d.as_millis() as u64),
    ))
}

/// Calls `store(tag, src, len)` with the value argument's bytes as its tag says.
fn with_value_bytes<T>(
    env: sys::napi_env,
    id: u32,
    key_len: usize,
    tag: u8,
    value: Raw,
    store: impl FnOnce(*const u8, u64) -> Result<T, Fail>,
) -> Result<T, Fail> {
    match tag {
        TAG_STRING | TAG_JSON => {
            let fits = |len| with_map(id, |e| e.map.check_len(key_len, len).map_err(to_js));
            with_value_utf8(env, value, fits, |bytes| {
                store(bytes.as_ptr(), bytes.len() as u64)
            })
        }
        map::TAG_NUMBER => {
            let n = get_f64(env, value, "value")?.to_le_bytes();
            store(n.as_ptr(), 8)
        }
        TAG_TRUE | TAG_FALSE | TAG_NULL => store(ptr::NonNull::<u8>::dangling().as_ptr(), 0),
        _ => {
            let (data, len) = bytes(env, value, "value")?;
            store(data, len as u64)
        }
    }
}

fn tag_arg(env: sys::napi_env, value: Raw) -> Result<u8, JsError> {
    let tag = get_u32(env, value, "tag")?;
    u8::try_from(tag).map_err(|_| js_error("ERR_INVALID_ARG_VALUE", format!("tag {tag}")))
}

/// `mapGet(id, key, touch)`: the value, or undefined; its tag in meta[0].
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_get_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    // SAFETY: napi passed `env`/`info` to this callback.
    run(env, || unsafe { map_get(env, info) }.map_err(|e| *e))
}

/// `mapGet`'s body.
///
/// # Safety
/// `env` and `info` are those napi passed to the running callback.
unsafe fn map_get(env: sys::napi_env, info: sys::napi_callback_info) -> Result<Raw, Fail> {
    // SAFETY: the caller's contract.
    let [id, key, touch] = unsafe { args::<3>(env, info) }?;
    let id = get_u32(env, id, "handle")?;
    let touch = if get_bool(env, touch, "touch")? {
        Touch::Get
    } else {
        Touch::None
    };
    let mut buf = KeyBuf::new();
    let key = key_arg(env, key, &mut buf)?;
    SCRATCH.with(|scratch| {
        scratch.with(|out| {
            let found = map_op(id, |m| m.get(key, out, touch))?;
            match found {
                None => Ok(undefined(env)?),
                Some(f) => {
                    set_meta(Meta::Map, &[u32::from(f.tag)]);
                    tagged_value(env, f.tag, out).map_err(|err| fail(at_map(id, err)))
                }
            }
        })
    })
}

/// `mapHas(id, key)`: whether the key has a live value.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_has_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, key] = unsafe { args::<2>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let has = with_key(env, key, |key| {
            with_map(id, |e| e.map.has(key).map_err(to_js))
        })?;
        boolean(env, has)
    })
}

/// `mapSet(id, key, tag, value, ttl)`: stores the value (ttl undefined: the map's default).
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_set_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    // SAFETY: napi passed `env`/`info` to this callback.
    run(env, || unsafe { map_set(env, info) }.map_err(|e| *e))
}

/// `mapSet`'s body.
///
/// # Safety
/// `env` and `info` are those napi passed to the running callback.
unsafe fn map_set(env: sys::napi_env, info: sys::napi_callback_info) -> Result<Raw, Fail> {
    // SAFETY: the caller's contract.
    let [id, key, tag, value, ttl] = unsafe { args::<5>(env, info) }?;
    let id = get_u32(env, id, "handle")?;
    let tag = tag_arg(env, tag)?;
    let ttl = ttl_arg(env, ttl)?;
    let mut buf = KeyBuf::new();
    let key = key_arg(env, key, &mut buf)?;
    with_value_bytes(env, id, key.len(), tag, value, |src, len| {
        // SAFETY: `src` is readable for `len` bytes for this call (a private buffer, or the
        // argument's typed array, which may be shared memory and is only read through the
        // pointer).
        map_op(id, |m| unsafe { m.set_raw(key, tag, src, len, ttl) })
    })?;
    Ok(undefined(env)?)
}

/// `mapDelete(id, key)`: whether a live value was removed.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_delete_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, key] = unsafe { args::<2>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let removed = with_key(env, key, |key| {
            with_map(id, |e| e.map.delete(key).map_err(to_js))
        })?;
        boolean(env, removed)
    })
}

/// `mapIncr(id, key, by, ttl)`: the new number.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_incr_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, key, by, ttl] = unsafe { args::<4>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let by = get_f64(env, by, "by")?;
        let ttl = ttl_arg(env, ttl)?;
        let n = with_key(env, key, |key| {
            with_map(id, |e| e.map.incr(key, by, ttl).map_err(to_js))
        })?;
        number(env, n)
    })
}

/// `mapClaim(id, key)`: getOrSet's claim. meta[1] = 0 (a value: returned, its tag in
/// meta[0]), 1 (another live process computes it), 2 (this handle computes it).
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_claim_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, key] = unsafe { args::<2>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        with_key(env, key, |key| {
            SCRATCH.with(|scratch| {
                scratch.with(|out| {
                    let claim = with_map(id, |e| e.map.claim(key, out).map_err(to_js))?;
                    match claim {
                        Claim::Value(f) => {
                            set_meta(Meta::Map, &[u32::from(f.tag), 0]);
                            tagged_value(env, f.tag, out).map_err(|err| at_map(id, err))
                        }
                        Claim::Pending(_) => {
                            set_meta(Meta::Map, &[0, 1]);
                            undefined(env)
                        }
                        Claim::Claimed => {
                            set_meta(Meta::Map, &[0, 2]);
                            undefined(env)
                        }
                    }
                })
            })
        })
    })
}

/// Writes a found entry's identity (heap offset and generation, exact in f64) to meta[2..6]
/// and meta[6] = 1; or meta[6] = 0 for "no value".
fn set_identity(found: Option<&map::Found>) {
    match found {
        Some(f) => set_meta(
            Meta::Map,
            &[
                u32::from(f.tag),
                0,
                f.heap as u32,
                (f.heap >> 32) as u32,
                f.gen as u32,
                (f.gen >> 32) as u32,
                1,
            ],
        ),
        None => set_meta(Meta::Map, &[0, 0, 0, 0, 0, 0, 0]),
    }
}

/// The identity argument pair `(heap, gen)` of update()'s second half: `heap < 0` means
/// "no value".
fn identity_arg(env: sys::napi_env, heap: Raw, gen: Raw) -> Result<Option<(u64, u64)>, JsError> {
    let heap = get_f64(env, heap, "heap")?;
    let gen = get_f64(env, gen, "gen")?;
    Ok((heap >= 0.0).then_some((heap as u64, gen as u64)))
}

/// `mapPeekIdentity(id, key)`: update()'s read: the live value (or undefined) without
/// touching it; its tag in meta[0], its identity in meta[2..7] (see `set_identity`).
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_peek_identity_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, key] = unsafe { args::<2>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        with_key(env, key, |key| {
            SCRATCH.with(|scratch| {
                scratch.with(|out| {
                    let found = with_map(id, |e| e.map.get(key, out, Touch::None).map_err(to_js))?;
                    set_identity(found.as_ref());
                    match found {
                        None => undefined(env),
                        Some(f) => tagged_value(env, f.tag, out).map_err(|err| at_map(id, err)),
                    }
                })
            })
        })
    })
}

/// `mapCompareSet(id, key, heap, gen, tag, value, ttl)`: update()'s write: stores the value
/// only if the key still holds the entry `(heap, gen)` (heap < 0: no value); whether it did.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_compare_set_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, key, heap, gen, tag, value, ttl] = unsafe { args::<7>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let expect = identity_arg(env, heap, gen)?;
        let tag = tag_arg(env, tag)?;
        let ttl = ttl_arg(env, ttl)?;
        let stored = with_key(env, key, |key| {
            with_value_bytes(env, id, key.len(), tag, value, |src, len| {
                // SAFETY: as in `map_set`.
                map_op(id, |m| unsafe {
                    m.compare_set_raw(key, expect, tag, src, len, ttl)
                })
            })
            .map_err(|e| *e)
        })?;
        boolean(env, stored)
    })
}

/// `mapCompareDelete(id, key, heap, gen)`: update()'s write of `undefined`.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_compare_delete_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, key, heap, gen] = unsafe { args::<4>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let expect = identity_arg(env, heap, gen)?;
        let done = with_key(env, key, |key| {
            with_map(id, |e| e.map.compare_delete(key, expect).map_err(to_js))
        })?;
        boolean(env, done)
    })
}

/// `mapFulfill(id, key, tag, value, ttl)`: getOrSet()'s result, stored only over this
/// handle's own claim; whether it was.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_fulfill_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, key, tag, value, ttl] = unsafe { args::<5>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let tag = tag_arg(env, tag)?;
        let ttl = ttl_arg(env, ttl)?;
        let stored = with_key(env, key, |key| {
            with_value_bytes(env, id, key.len(), tag, value, |src, len| {
                // SAFETY: as in `map_set`.
                map_op(id, |m| unsafe { m.fulfill_raw(key, tag, src, len, ttl) })
            })
            .map_err(|e| *e)
        })?;
        boolean(env, stored)
    })
}

/// `mapShardEntries(id, shard, wantValues)`: `[keys, values, tags]` of one shard's live
/// entries (values converted as `mapGet` does; empty when not wanted).
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_shard_entries_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, shard, want] = unsafe { args::<3>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let shard = get_u32(env, shard, "shard")?;
        let want = get_bool(env, want, "wantValues")?;
        let mut entries: Vec<(Vec<u8>, u8, Vec<u8>)> = Vec::new();
        with_map(id, |e| {
            if shard >= e.map.shards() {
                return Err(js_error("ERR_OUT_OF_RANGE", format!("shard {shard}")));
            }
            e.map
                .visit_shard(shard, want, &mut |k, f, v| {
                    entries.push((k.to_vec(), f.tag, v.to_vec()))
                })
                .map_err(to_js)
        })?;
        let mut keys = Vec::with_capacity(entries.len());
        let mut values = Vec::with_capacity(entries.len());
        let mut tags = Vec::with_capacity(entries.len());
        for (k, tag, v) in &entries {
            keys.push(js_string(env, k)?);
            if want {
                values.push(tagged_value(env, *tag, v).map_err(|err| at_map(id, err))?);
            }
            tags.push(number(env, f64::from(*tag))?);
        }
        let parts = [array(env, &keys)?, array(env, &values)?, array(env, &tags)?];
        array(env, &parts)
    })
}

pub(super) const FAST_FUNCTIONS: [(&std::ffi::CStr, Callback); 11] = [
    (c"mapGet", map_get_cb),
    (c"mapHas", map_has_cb),
    (c"mapSet", map_set_cb),
    (c"mapDelete", map_delete_cb),
    (c"mapIncr", map_incr_cb),
    (c"mapClaim", map_claim_cb),
    (c"mapPeekIdentity", map_peek_identity_cb),
    (c"mapCompareSet", map_compare_set_cb),
    (c"mapCompareDelete", map_compare_delete_cb),
    (c"mapFulfill", map_fulfill_cb),
    (c"mapShardEntries", map_shard_entries_cb),
];

// ---- the rest, through napi-rs ------------------------------------------------------

/// Options accepted when opening a map (checked again, with friendlier messages, in
/// `lib/shared-map.js`).
#[napi(object)]
pub struct NativeMapOptions {
    pub create: Option<bool>,
    pub read_only: Option<bool>,
    pub mode: Option<u32>,
    pub max: Option<f64>,
    pub max_size: Option<f64>,
    pub ttl: Option<f64>,
    pub evict: Option<bool>,
    pub update_age_on_get: Option<bool>,
    /// 0 default, 1 json, 2 v8, 3 custom.
    pub codec: Option<u32>,
    pub codec_name: Option<String>,
}

fn count(name: &str, what: &str, v: Option<f64>) -> Result<Option<u64>, JsError> {
    match v {
        None => Ok(None),
        Some(x) if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x < 2f64.powi(53) => {
            Ok(Some(x as u64))
        }
        Some(x) => Err(to_js(Error::invalid(
            name,
            format!("{what} must be a whole non-negative number, got {x}"),
        ))),
    }
}

fn map_options(name: &str, o: Option<NativeMapOptions>) -> Result<MapOptions, JsError> {
    let Some(o) = o else {
        return Ok(MapOptions::default());
    };
    let mode = match o.mode {
        Some(m) => Some(check_mode(name, m)?),
        None => None,
    };
    Ok(MapOptions {
        create: o.create,
        read_only: o.read_only,
        mode,
        max_entries: count(name, "max", o.max)?,
        max_bytes: count(name, "maxSize", o.max_size)?,
        ttl_ms: count(name, "ttl", o.ttl)?,
        evict: o.evict,
        update_age_on_get: o.update_age_on_get,
        codec: o
            .codec
            .map(|c| (c, o.codec_name.clone().unwrap_or_default())),
    })
}

/// Opens or creates the map at `path`; returns its handle number.
#[napi(catch_unwind)]
pub fn map_open(path: String, options: Option<NativeMapOptions>) -> Result<u32, JsError> {
    let opts = map_options(&path, options)?;
    register(MapSegment::open(Path::new(&path), &opts).map_err(to_js)?)
}

/// Creates an anonymous (memfd) map; returns its handle number.
#[napi(catch_unwind)]
pub fn map_anonymous(options: Option<NativeMapOptions>) -> Result<u32, JsError> {
    let opts = map_options("memfd", options)?;
    register(MapSegment::anonymous(&opts).map_err(to_js)?)
}

/// Opens the map behind an inherited descriptor (reopened: the caller keeps its own).
#[napi(catch_unwind)]
pub fn map_from_fd(fd: i32, options: Option<NativeMapOptions>) -> Result<u32, JsError> {
    let opts = map_options(&format!("fd:{fd}"), options)?;
    let opened = with_inherited_fd(fd, |fd| MapSegment::from_fd(fd, &opts).map_err(to_js))?;
    register(opened)
}

/// Closes a map handle (an update() in progress gives its lock back). Twice is harmless.
#[napi(catch_unwind)]
pub fn map_close(id: u32) {
    remove_handle(&MAPS, id);
}

/// What a map was created with, and its counts.
#[napi(object)]
pub struct NativeMapInfo {
    pub path: String,
    pub read_only: bool,
    pub max: f64,
    pub max_size: f64,
    pub ttl: f64,
    pub evict: bool,
    pub update_age_on_get: bool,
    pub codec: u32,
    pub codec_name: String,
    pub size: f64,
    pub pending: f64,
    pub bytes: f64,
    pub entry_bytes: f64,
    pub garbage: f64,
    pub heap_bytes: f64,
    pub heap_limit: f64,
    pub file_bytes: f64,
    pub shards: u32,
    pub unit: f64,
}

/// Options and counts of a map handle.
#[napi(catch_unwind)]
pub fn map_info(id: u32) -> Result<NativeMapInfo, JsError> {
    with_map(id, |e| {
        let c = e.map.config();
        let st = e.map.stats();
        Ok(NativeMapInfo {
            path: e.map.path().to_owned(),
            read_only: e.map.segment().read_only(),
            max: c.max_entries as f64,
            max_size: c.max_bytes as f64,
            ttl: c.ttl_ms as f64,
            evict: c.evict,
            update_age_on_get: c.update_age_on_get,
            codec: c.codec,
            codec_name: c.codec_name.clone(),
            size: st.entries as f64,
            pending: st.pending as f64,
            bytes: st.live_bytes as f64,
            entry_bytes: st.entry_bytes as f64,
            garbage: st.garbage as f64,
            heap_bytes: st.heap_bytes as f64,
            heap_limit: st.heap_limit as f64,
            file_bytes: st.file_bytes as f64,
            shards: st.shards,
            unit: st.unit as f64,
        })
    })
}

/// Number of live entries.
#[napi(catch_unwind)]
pub fn map_size(id: u32) -> Result<f64, JsError> {
    with_map(id, |e| Ok(e.map.size() as f64))
}

/// Number of shards (for iteration).
#[napi(catch_unwind)]
pub fn map_shards(id: u32) -> Result<u32, JsError> {
    with_map(id, |e| Ok(e.map.shards()))
}

/// Empties the map.
#[napi(catch_unwind)]
pub fn map_clear(id: u32) -> Result<(), JsError> {
    with_map(id, |e| e.map.clear().map_err(to_js))
}

/// Removes entries whose ttl has passed; returns how many.
#[napi(catch_unwind)]
pub fn map_purge_stale(id: u32) -> Result<f64, JsError> {
    with_map(id, |e| Ok(e.map.purge_stale().map_err(to_js)? as f64))
}

/// Gives up this handle's getOrSet() claim on `key`.
#[napi(catch_unwind)]
pub fn map_unclaim(id: u32, key: String) -> Result<bool, JsError> {
    with_map(id, |e| e.map.unclaim(key.as_bytes()).map_err(to_js))
}

/// The key's expiry in ms since the epoch: 0 = none, -1 = no live value.
#[napi(catch_unwind)]
pub fn map_expiry(id: u32, key: String) -> Result<f64, JsError> {
    with_map(id, |e| {
        let mut out = Vec::new();
        let found = e
            .map
            .get(key.as_bytes(), &mut out, Touch::None)
            .map_err(to_js)?;
        Ok(found.map_or(-1.0, |f| f.expires_ms as f64))
    })
}

/// A descriptor of the map to pass to a child (opened on first use, closed with the handle).
#[napi(catch_unwind)]
pub fn map_fd(id: u32) -> Result<i32, JsError> {
    with_map(id, |e| {
        let fd = e.map.segment().shared_fd().map_err(to_js)?;
        Ok(std::os::fd::AsRawFd::as_raw_fd(&fd))
    })
}

/// Removes a map file, refusing any file that is not a map segment.
#[napi(catch_unwind)]
pub fn map_unlink(path: String) -> Result<(), JsError> {
    map::unlink(Path::new(&path)).map_err(to_js)
}

/// Starts reading changes from now on (this handle's cursors at every shard's log end).
#[napi(catch_unwind)]
pub fn map_watch_start(id: u32) -> Result<(), JsError> {
    with_map(id, |e| {
        e.map.log_tails(&mut e.cursors);
        Ok(())
    })
}

/// Changes since the last call: keys and ops (1 set, 2 delete, 3 clear, 4 evict, 5 expire,
/// 6 unclaim), and the shards whose log lapped this handle (re-check what is watched there).
#[napi(object)]
pub struct NativeMapChanges {
    pub ops: Vec<u32>,
    pub keys: Vec<String>,
    pub shards: Vec<u32>,
    pub lost: Vec<u32>,
}

/// Reads every shard's change log from this handle's cursors.
#[napi(catch_unwind)]
pub fn map_changes(id: u32) -> Result<NativeMapChanges, JsError> {
    with_map(id, |e| {
        let mut out = NativeMapChanges {
            ops: Vec::new(),
            keys: Vec::new(),
            shards: Vec::new(),
            lost: Vec::new(),
        };
        let shards = e.map.shards();
        if e.cursors.len() != shards as usize {
            e.map.log_tails(&mut e.cursors);
            return Ok(out);
        }
        let mut changes = Vec::new();
        for s in 0..shards {
            changes.clear();
            let (cursor, lost) = e.map.read_changes(s, e.cursors[s as usize], &mut changes);
            e.cursors[s as usize] = cursor;
            if lost {
                out.lost.push(s);
            }
            for c in &changes {
                out.ops.push(c.op as u32);
                out.keys.push(String::from_utf8_lossy(&c.key).into_owned());
                out.shards.push(c.shard);
            }
        }
        Ok(out)
    })
}

/// The shard a key belongs to.
#[napi(catch_unwind)]
pub fn map_shard_of(id: u32, key: String) -> Result<u32, JsError> {
    with_map(id, |e| Ok(e.map.shard_of_key(key.as_bytes())))
}

/// Starts a native thread that calls `callback()` (coalesced) after changes.
#[napi(catch_unwind)]
pub fn map_start_notifier(id: u32, callback: NotifyFn) -> Result<(), JsError> {
    with_map(id, |e| {
        e.stop_notifier();
        let watcher = e.map.watcher();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("share-object-map".into())
            .spawn(move || {
                let mut seen = Vec::new();
                watcher.tails(&mut seen);
                // A change may have landed between JS's last look and this thread's first.
                let _ = callback.call((), ThreadsafeFunctionCallMode::NonBlocking);
                loop {
                    let changed = watcher.wait(&seen, None, Some(&flag));
                    // SYNC POINT: Acquire pairs with the Release store in `stop_notifier`.
                    if flag.load(Ordering::Acquire) {
                        return;
                    }
                    if changed {
                        watcher.tails(&mut seen);
                        let _ = callback.call((), ThreadsafeFunctionCallMode::NonBlocking);
                    }
                }
            })
            .map_err(|err| to_js(Error::os(e.map.path(), "spawn notifier thread", err)))?;
        e.notifier = Some(stop);
        Ok(())
    })
}

/// Stops the notifier thread, if any.
#[napi(catch_unwind)]
pub fn map_stop_notifier(id: u32) {
    let _ = with_map(id, |e| {
        e.stop_notifier();
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::{encode_key, encode_utf8, KeyBuf, KeyFault, MAX_KEY};

    fn utf16(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn utf16_becomes_the_same_utf8_as_rust_makes() {
        let mut out = vec![9, 9, 9];
        for s in ["", "user:1", "é", "日本語のキー", "a😀b", &"x".repeat(1024)] {
            assert!(encode_utf8(&utf16(s), &mut out, false), "{s}");
            assert_eq!(out, s.as_bytes(), "{s}");
        }
    }

    #[test]
    fn a_lone_surrogate_is_refused_or_replaced() {
        let mut out = Vec::new();
        for units in [vec![0xD800], vec![0x61, 0xDC00], vec![0xD83D, 0x61]] {
            assert!(!encode_utf8(&units, &mut out, false));
            assert!(encode_utf8(&units, &mut out, true));
            assert!(String::from_utf8(out.clone()).unwrap().contains('\u{FFFD}'));
        }
    }

    fn key(s: &str) -> Result<Vec<u8>, KeyFault> {
        let mut buf = KeyBuf::new();
        let len = encode_key(&utf16(s), &mut buf.bytes)?;
        // SAFETY: `encode_key` initialised the first `len` bytes.
        Ok(unsafe { std::slice::from_raw_parts(buf.bytes.as_ptr().cast::<u8>(), len) }.to_vec())
    }

    #[test]
    fn keys_are_encoded_up_to_the_limit_and_refused_beyond() {
        for s in ["user:1", "é", "日本語のキー", "a😀b", &"x".repeat(MAX_KEY)] {
            assert_eq!(key(s).as_deref(), Ok(s.as_bytes()), "{s}");
        }
        assert_eq!(key(&"é".repeat(512)).map(|k| k.len()), Ok(MAX_KEY));
        assert_eq!(key(&"é".repeat(513)), Err(KeyFault::TooLong(1026)));
        assert_eq!(
            key(&format!("{}😀", "x".repeat(1021))),
            Err(KeyFault::TooLong(1025))
        );
        let mut buf = KeyBuf::new();
        assert_eq!(
            encode_key(&[0x61, 0xD800], &mut buf.bytes),
            Err(KeyFault::Lone)
        );
    }
}
