//! The hot calls as plain napi callbacks, handed to JS as one object by [`fast_api`].
//!
//! napi-rs's generated glue opens a "native borrow scope" for every call with arguments
//! (a heap allocation, a thread-local stack and, for each typed array, an entry in a
//! process-wide mutex-guarded map). That costs more than a whole 64-byte send or receive,
//! so the few calls made once per message or per read are written against napi directly
//! here. Errors carry the same codes as everywhere else (`to_js`); argument types are
//! checked by `lib/`, and checked again here (a wrong type is a coded error); a panic
//! becomes `ERR_INTERNAL` (see [`run`]). These callbacks are private to `lib/`: the
//! receive area and the `lens`/`meta` arrays must be `lib/`'s own, distinct, private
//! typed arrays (they become slices here), which `lib/` guarantees and a caller of the raw
//! binding could break.
//!
//! Typed arrays from JS are read and written through raw pointers only: a `Uint8Array`
//! passed to `send` may be a view of shared memory (`buffer()` or a `consume()` view).

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use std::time::{Duration, Instant};

use napi::{sys, Env};

use super::scratch::Scratch;
use super::{
    bind_meta, deadline_after, js_error, millis, parked, release_mapping, set_meta, tag, to_js,
    with_channel, with_value, ChannelEntry, Code, JsError, Meta, SCRATCH,
};
use crate::channel::{self, Accept};
use crate::value;

pub(super) type Raw = sys::napi_value;
pub(super) type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> Raw;

/// Messages larger than this are received straight into a Buffer of their own: above half
/// of `Buffer.poolSize` JS allocates a fresh ArrayBuffer anyway, so copying into the
/// receive area first would only add a copy.
pub const DIRECT_MIN: usize = 4096;

/// Reads a call's first `N` arguments (missing ones are `undefined`).
///
/// # Safety
/// `env` and `info` are the values napi passed to the running callback.
pub(super) unsafe fn args<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Result<[Raw; N], JsError> {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    // SAFETY: `env`/`info` are live (caller's contract); `argv` has room for `argc` values.
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    check(status, "arguments")?;
    Ok(argv)
}

pub(super) fn check(status: sys::napi_status, what: &str) -> Result<(), JsError> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(js_error(
            "ERR_INVALID_ARG_TYPE",
            format!("{what}: wrong type (napi status {status})"),
        ))
    }
}

/// A napi call that creates a value failed (out of memory, a pending exception).
pub(super) fn made(status: sys::napi_status, what: &str) -> Result<(), JsError> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            Code::from(napi::Status::from(status)),
            format!("cannot create the {what} (napi status {status})"),
        ))
    }
}

pub(super) fn get_u32(env: sys::napi_env, value: Raw, what: &str) -> Result<u32, JsError> {
    let mut out = 0u32;
    // SAFETY: `env` is live and `value` one of this call's arguments.
    check(
        unsafe { sys::napi_get_value_uint32(env, value, &mut out) },
        what,
    )?;
    Ok(out)
}

pub(super) fn get_f64(env: sys::napi_env, value: Raw, what: &str) -> Result<f64, JsError> {
    let mut out = 0f64;
    // SAFETY: as in `get_u32`.
    check(
        unsafe { sys::napi_get_value_double(env, value, &mut out) },
        what,
    )?;
    Ok(out)
}

pub(super) fn get_bool(env: sys::napi_env, value: Raw, what: &str) -> Result<bool, JsError> {
    let mut out = false;
    // SAFETY: as in `get_u32`.
    check(
        unsafe { sys::napi_get_value_bool(env, value, &mut out) },
        what,
    )?;
    Ok(out)
}

/// A typed array argument of type `kind`: (data, byte length). Any other value, another
/// element type included, is a coded error.
pub(super) fn typed_array(
    env: sys::napi_env,
    value: Raw,
    kind: sys::napi_typedarray_type,
    what: &str,
) -> Result<(*mut u8, usize), JsError> {
    let mut found = 0;
    let mut len = 0usize;
    let mut data = ptr::null_mut::<c_void>();
    // SAFETY: as in `get_u32`; napi fails (rather than misbehave) on a non-typed-array.
    check(
        unsafe {
            sys::napi_get_typedarray_info(
                env,
                value,
                &mut found,
                &mut len,
                &mut data,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        },
        what,
    )?;
    let width = match kind {
        sys::TypedarrayType::uint8_array if found == kind => 1,
        sys::TypedarrayType::uint32_array if found == kind => 4,
        _ => {
            return Err(js_error(
                "ERR_INVALID_ARG_TYPE",
                format!("{what}: wrong kind of typed array"),
            ))
        }
    };
    // A detached or empty array reports a null pointer: use a dangling, aligned one.
    let data = if data.is_null() {
        ptr::NonNull::<u64>::dangling().as_ptr().cast()
    } else {
        data.cast()
    };
    Ok((data, len * width))
}

/// A `Uint8Array` argument's bytes (read through the pointer only: it may be a view of
/// shared memory).
pub(super) fn bytes(
    env: sys::napi_env,
    value: Raw,
    what: &str,
) -> Result<(*const u8, usize), JsError> {
    let (data, len) = typed_array(env, value, sys::TypedarrayType::uint8_array, what)?;
    Ok((data, len))
}

/// A `Uint32Array` argument as a slice (private JS memory: `lib/` passes its own arrays).
///
/// # Safety
/// No other reference to the array's memory may exist while the slice lives.
unsafe fn u32_array<'a>(
    env: sys::napi_env,
    value: Raw,
    what: &str,
) -> Result<&'a mut [u32], JsError> {
    let (data, bytes) = typed_array(env, value, sys::TypedarrayType::uint32_array, what)?;
    // SAFETY: napi reported `bytes` valid bytes at `data`, 4-aligned for a Uint32Array (or
    // a dangling aligned pointer when empty); exclusivity is the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(data.cast::<u32>(), bytes / 4) })
}

/// A `Uint8Array` argument as a mutable slice (the receive area `lib/` owns).
///
/// # Safety
/// As for [`u32_array`].
unsafe fn u8_array<'a>(
    env: sys::napi_env,
    value: Raw,
    what: &str,
) -> Result<&'a mut [u8], JsError> {
    let (data, bytes) = typed_array(env, value, sys::TypedarrayType::uint8_array, what)?;
    // SAFETY: as in `u32_array`.
    Ok(unsafe { std::slice::from_raw_parts_mut(data, bytes) })
}

pub(super) fn number(env: sys::napi_env, n: f64) -> Result<Raw, JsError> {
    let mut out = ptr::null_mut();
    // SAFETY: `env` is live for this call.
    check(
        unsafe { sys::napi_create_double(env, n, &mut out) },
        "result",
    )?;
    Ok(out)
}

pub(super) fn boolean(env: sys::napi_env, b: bool) -> Result<Raw, JsError> {
    let mut out = ptr::null_mut();
    // SAFETY: `env` is live for this call.
    made(unsafe { sys::napi_get_boolean(env, b, &mut out) }, "result")?;
    Ok(out)
}

pub(super) fn array(env: sys::napi_env, items: &[Raw]) -> Result<Raw, JsError> {
    let mut out = ptr::null_mut();
    // SAFETY: `env` is live for this call.
    made(
        unsafe { sys::napi_create_array_with_length(env, items.len(), &mut out) },
        "result",
    )?;
    for (i, &item) in items.iter().enumerate() {
        // SAFETY: `out` and `item` are live values of this call.
        made(
            unsafe { sys::napi_set_element(env, out, i as u32, item) },
            "result",
        )?;
    }
    Ok(out)
}

pub(super) fn null(env: sys::napi_env) -> Result<Raw, JsError> {
    let mut out = ptr::null_mut();
    // SAFETY: `env` is live for this call.
    made(unsafe { sys::napi_get_null(env, &mut out) }, "result")?;
    Ok(out)
}

pub(super) fn is_undefined(env: sys::napi_env, value: Raw) -> Result<bool, JsError> {
    let mut kind = 0;
    // SAFETY: `env` is live and `value` one of this call's arguments.
    check(
        unsafe { sys::napi_typeof(env, value, &mut kind) },
        "argument",
    )?;
    Ok(kind == sys::ValueType::napi_undefined)
}

pub(super) fn undefined(env: sys::napi_env) -> Result<Raw, JsError> {
    let mut out = ptr::null_mut();
    // SAFETY: `env` is live for this call.
    made(unsafe { sys::napi_get_undefined(env, &mut out) }, "result")?;
    Ok(out)
}

/// Runs a callback's body and hands its result to napi, throwing the error if there is
/// one. A panic (a broken internal assertion) becomes an `ERR_INTERNAL` error rather than
/// unwinding into V8, which would abort the process.
pub(super) fn run(env: sys::napi_env, body: impl FnOnce() -> Result<Raw, JsError>) -> Raw {
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(js_error("ERR_INTERNAL", format!("internal error: {what}")))
        });
    match result {
        Ok(value) => value,
        Err(err) => {
            // SAFETY: `env` is live; throwing leaves a pending exception for napi to report.
            unsafe { napi::JsError::from(err).throw_into(env) };
            ptr::null_mut()
        }
    }
}

thread_local! {
    /// Reused to hand non-ASCII text to V8 as UTF-16 (released after a large use).
    static UTF16: Scratch<u16> = const { Scratch::new() };
}

/// The runtime's longest string in UTF-16 code units (`buffer.constants.MAX_STRING_LENGTH`,
/// given by `lib/` through `fastApi()`); 0 until then.
static MAX_STRING_LENGTH: AtomicUsize = AtomicUsize::new(0);

/// Records the runtime's longest string, for [`js_string`] to check against and name.
pub fn set_max_string_length(units: usize) {
    // SYNC POINT: Relaxed: a constant of the runtime, stored before any read uses it (the
    // same JS thread calls fastApi() first) and only ever the same value.
    MAX_STRING_LENGTH.store(units, Ordering::Relaxed);
}

/// The length in UTF-16 code units of the string V8 makes of `bytes` (each invalid
/// sequence becomes one U+FFFD).
fn utf16_len(bytes: &[u8]) -> usize {
    if bytes.is_ascii() {
        return bytes.len();
    }
    String::from_utf8_lossy(bytes)
        .chars()
        .map(char::len_utf16)
        .sum()
}

/// The error for a value whose string would exceed the runtime's longest string.
fn too_long(bytes: &[u8]) -> JsError {
    // SYNC POINT: Relaxed: see `set_max_string_length`.
    let max = MAX_STRING_LENGTH.load(Ordering::Relaxed);
    let limit = if max > 0 {
        format!("the longest string this runtime can make, {max} UTF-16 code units")
    } else {
        "the longest string this runtime can make".to_owned()
    };
    js_error(
        "ERR_STRING_TOO_LONG",
        format!(
            "the value of {} bytes is {} UTF-16 code units as a string, more than {limit}",
            bytes.len(),
            utf16_len(bytes)
        ),
    )
}

/// Creates a JS string from UTF-8 bytes (invalid sequences become U+FFFD).
///
/// V8's own UTF-8 decoder is slow outside ASCII (~4 µs for 1 KiB of accented text), so
/// valid text is decoded here: ASCII goes in as Latin-1 (a plain copy), other valid
/// UTF-8 as UTF-16. Only invalid input is left to V8, for its U+FFFD replacement. A string
/// longer than the runtime allows is `ERR_STRING_TOO_LONG` (found before any conversion
/// when the limit is known); its message does not name the path: the caller adds it.
#[inline]
pub(super) fn js_string(env: sys::napi_env, bytes: &[u8]) -> Result<Raw, JsError> {
    // The common short ASCII value first, in one napi call: this test (an OR over the bytes,
    // which vectorises) cost a twentieth of what the general path's did on a map get of a
    // 100-byte string; a string this short is far below the runtime's limit.
    if bytes.len() <= SHORT_TEXT && bytes.iter().fold(0u8, |all, &b| all | b) < 0x80 {
        let mut value = ptr::null_mut();
        // SAFETY: `bytes` is private memory valid for its length; V8 copies it.
        let status = unsafe {
            sys::napi_create_string_latin1(
                env,
                bytes.as_ptr().cast(),
                bytes.len() as isize,
                &mut value,
            )
        };
        made(status, "string")?;
        return Ok(value);
    }
    // SYNC POINT: Relaxed: see `set_max_string_length`.
    let max = MAX_STRING_LENGTH.load(Ordering::Relaxed);
    // A string has at most as many UTF-16 units as its UTF-8 has bytes: only a value of
    // more bytes than the limit needs counting.
    if max > 0 && bytes.len() > max && utf16_len(bytes) > max {
        return Err(too_long(bytes));
    }
    let mut value = ptr::null_mut();
    let status = if bytes.is_ascii() {
        // SAFETY: `bytes` is private memory valid for its length; V8 copies it.
        unsafe {
            sys::napi_create_string_latin1(
                env,
                bytes.as_ptr().cast(),
                bytes.len() as isize,
                &mut value,
            )
        }
    } else if let Ok(text) = std::str::from_utf8(bytes) {
        UTF16.with(|scratch| {
            scratch.with(|units| {
                units.clear();
                units.extend(text.encode_utf16());
                // SAFETY: `units` is private memory valid for its length; V8 copies it.
                unsafe {
                    sys::napi_create_string_utf16(
                        env,
                        units.as_ptr(),
                        units.len() as isize,
                        &mut value,
                    )
                }
            })
        })
    } else {
        // SAFETY: `bytes` is private memory valid for its length; V8 copies it.
        unsafe {
            sys::napi_create_string_utf8(
                env,
                bytes.as_ptr().cast(),
                bytes.len() as isize,
                &mut value,
            )
        }
    };
    if status != sys::Status::napi_ok {
        return Err(too_long(bytes));
    }
    Ok(value)
}

/// `err` with the path of value `id` in front of its message (for errors made here, which
/// do not know it).
fn at_value(id: u32, err: JsError) -> JsError {
    with_path(with_value(id, |e| Ok(e.seg.path().to_owned())), err)
}

/// As [`at_value`], for channel `id`.
fn at_channel(id: u32, err: JsError) -> JsError {
    with_path(with_channel(id, |e| Ok(e.chan.path().to_owned())), err)
}

/// `err` with `<path>: ` before its reason, when the handle's path could be found.
pub(super) fn with_path(path: Result<String, JsError>, err: JsError) -> JsError {
    match path {
        Ok(path) => napi::Error::new(err.status, format!("{path}: {}", err.reason)),
        Err(_) => err,
    }
}

/// Values up to this many bytes that are all ASCII become a string in one napi call.
const SHORT_TEXT: usize = 64 * 1024;

/// Strings up to this many UTF-16 units are converted in one pass into room for the worst
/// case; longer ones are measured first, so no more than their size is ever reserved.
const ONE_PASS_UNITS: usize = 64 * 1024;

/// Runs `f` on the UTF-8 encoding of the string argument `value` (in the thread's reused
/// scratch buffer). A long string is measured first and `fits(bytes)` may refuse it before
/// any room is made for it.
pub(super) fn with_utf8<T>(
    env: sys::napi_env,
    value: Raw,
    fits: impl FnOnce(u64) -> Result<(), JsError>,
    f: impl FnOnce(&[u8]) -> Result<T, JsError>,
) -> Result<T, JsError> {
    let not_a_string = || js_error("ERR_INVALID_ARG_TYPE", "the value must be a string".into());
    let mut units = 0usize;
    // SAFETY: with a null buffer napi only reports the string's length in UTF-16 units.
    let status =
        unsafe { sys::napi_get_value_string_utf16(env, value, ptr::null_mut(), 0, &mut units) };
    if status != sys::Status::napi_ok {
        return Err(not_a_string());
    }
    let room = if units <= ONE_PASS_UNITS {
        // Each UTF-16 unit takes at most 3 UTF-8 bytes, plus napi's terminating NUL: the
        // copy below can never be truncated.
        units * 3 + 1
    } else {
        let mut bytes = 0usize;
        // SAFETY: with a null buffer napi only reports the UTF-8 length (without the NUL).
        let status =
            unsafe { sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut bytes) };
        if status != sys::Status::napi_ok {
            return Err(not_a_string());
        }
        fits(bytes as u64)?;
        bytes + 1
    };
    SCRATCH.with(|scratch| {
        scratch.with(|out| {
            out.clear();
            out.try_reserve(room).map_err(|_| {
                js_error(
                    "ERR_OUT_OF_MEMORY",
                    format!("no memory to convert a string of {units} UTF-16 units to UTF-8"),
                )
            })?;
            let mut written = 0usize;
            // SAFETY: `out` has capacity for `room` bytes and napi writes at most `room`
            // (including the NUL); `written` excludes the NUL and is at most `room - 1`.
            unsafe {
                let status = sys::napi_get_value_string_utf8(
                    env,
                    value,
                    out.as_mut_ptr().cast(),
                    room,
                    &mut written,
                );
                if status != sys::Status::napi_ok {
                    return Err(not_a_string());
                }
                out.set_len(written);
            }
            f(out)
        })
    })
}

/// `valueRead(id)`: the committed value, made from its bytes as its type tag says, with
/// the tag in the bound value meta array's first element (`valueBindMeta`): text, JSON
/// text and bytes as a string (bytes read as text, as format 1 did), a number, a boolean,
/// null, or (v8, custom) a Buffer for `lib/codec.js` to decode.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn value_read_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id] = unsafe { args::<1>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        SCRATCH.with(|scratch| {
            scratch.with(|scratch| {
                let (read, path) = with_value(id, |e| {
                    let read = e.seg.read_into(scratch).map_err(to_js)?;
                    // A path only for the rare message below (no allocation otherwise).
                    let path =
                        (!tag_fits(read.tag, scratch.len())).then(|| e.seg.path().to_owned());
                    Ok((read, path))
                })?;
                if let Some(path) = path {
                    return Err(js_error(
                        "ERR_CORRUPT",
                        format!(
                        "{path}: corrupt segment: a value of type tag {} cannot be {} bytes long",
                        read.tag,
                        scratch.len()
                    ),
                    ));
                }
                set_meta(Meta::Value, &[read.tag]);
                match read.tag {
                    tag::NUMBER => {
                        let bytes: [u8; 8] = scratch[..].try_into().expect("checked by tag_fits");
                        number(env, f64::from_le_bytes(bytes))
                    }
                    tag::TRUE => boolean(env, true),
                    tag::FALSE => boolean(env, false),
                    tag::NULL => null(env),
                    tag::V8 | tag::CUSTOM => buffer_copy(env, scratch),
                    _ => js_string(env, scratch).map_err(|err| {
                        let err = at_value(id, err);
                        napi::Error::new(err.status, format!("{}; use readBuffer()", err.reason))
                    }),
                }
            })
        })
    })
}

/// Whether `len` bytes can be a value of type `tag` (a known tag, 8 bytes for a number,
/// none for true/false/null).
fn tag_fits(tag: u32, len: usize) -> bool {
    match tag {
        tag::NUMBER => len == 8,
        tag::TRUE | tag::FALSE | tag::NULL => len == 0,
        t => t <= tag::UINT8ARRAY,
    }
}

/// A new Buffer holding a copy of `value` (private memory).
pub(super) fn buffer_copy(env: sys::napi_env, value: &[u8]) -> Result<Raw, JsError> {
    let mut data = ptr::null_mut();
    let mut out = ptr::null_mut();
    // SAFETY: `value` is private memory valid for its length; napi copies it.
    let status = unsafe {
        sys::napi_create_buffer_copy(env, value.len(), value.as_ptr().cast(), &mut data, &mut out)
    };
    if status != sys::Status::napi_ok {
        return Err(js_error(
            "ERR_OUT_OF_MEMORY",
            format!("cannot allocate a Buffer of {} bytes", value.len()),
        ));
    }
    Ok(out)
}

/// The type tag argument of a value write, checked against what the payload may be.
fn value_tag(env: sys::napi_env, value: Raw, text: bool) -> Result<u32, JsError> {
    let t = get_u32(env, value, "tag")?;
    let ok = if text {
        matches!(t, tag::STRING | tag::JSON)
    } else {
        t <= tag::UINT8ARRAY && !matches!(t, tag::STRING | tag::JSON)
    };
    if !ok {
        return Err(js_error(
            "ERR_INVALID_ARG_VALUE",
            format!("type tag {t} does not go with this payload"),
        ));
    }
    Ok(t)
}

/// `valueWriteString(id, string, tag)`: stores the string as UTF-8 with type tag `tag`
/// (text or JSON); returns its byte length.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn value_write_string_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, value, t] = unsafe { args::<3>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let t = value_tag(env, t, true)?;
        let fits = |len| with_value(id, |e| e.seg.check_size(len).map_err(to_js));
        let mut made_here = true;
        let written = with_utf8(env, value, fits, |bytes| {
            made_here = false;
            with_value(id, |e| e.seg.write(t, bytes).map_err(to_js))?;
            Ok(bytes.len())
        })
        .map_err(|err| if made_here { at_value(id, err) } else { err })?;
        number(env, written as f64)
    })
}

/// `valueWriteBytes(id, bytes, tag)`: stores the bytes with type tag `tag` (bytes, a
/// number's 8 bytes, none for true/false/null, v8 or custom codec bytes); returns their
/// length.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn value_write_bytes_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, value, t] = unsafe { args::<3>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let t = value_tag(env, t, false)?;
        let (data, len) = bytes(env, value, "value")?;
        if !tag_fits(t, len) {
            return Err(js_error(
                "ERR_INVALID_ARG_VALUE",
                format!("a value of type tag {t} cannot be {len} bytes long"),
            ));
        }
        // SAFETY: napi reported `len` readable bytes at `data`, alive for this call;
        // `write_from` copies them with raw pointers only (they may be shared memory).
        with_value(id, |e| {
            unsafe { e.seg.write_from(t, data, len) }.map_err(to_js)
        })?;
        number(env, len as f64)
    })
}

/// `valueBindMeta(array)`: the `Uint32Array` (of `lib/`'s own) that value reads' tags go to
/// on this thread.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn value_bind_meta_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [array] = unsafe { args::<1>(env, info) }?;
        bind_meta(env, Meta::Value, array)?;
        undefined(env)
    })
}

/// `mapBindMeta(array)`: the `Uint32Array` (of `lib/`'s own) that map results' tags go to
/// on this thread.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn map_bind_meta_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [array] = unsafe { args::<1>(env, info) }?;
        bind_meta(env, Meta::Map, array)?;
        undefined(env)
    })
}

/// `valueWaitSync(id, since, timeoutMs)`: blocks until the version differs from `since`;
/// returns it, or null after `timeoutMs` (`undefined`: no limit).
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn value_wait_sync_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, since, timeout] = unsafe { args::<3>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let since = get_f64(env, since, "since")?;
        let timeout = if is_undefined(env, timeout)? {
            None
        } else {
            Some(get_f64(env, timeout, "timeoutMs")?)
        };
        match wait_for_change(env, id, since as u64, millis(timeout))? {
            Some(version) => number(env, version as f64),
            None => null(env),
        }
    })
}

/// Blocks until the version of value `id` differs from `since`; returns it, or `None`
/// after `timeout`. Gives way if the JS environment of `env` stops (`interrupt.rs`).
fn wait_for_change(
    env: sys::napi_env,
    id: u32,
    since: u64,
    timeout: Option<Duration>,
) -> Result<Option<u64>, JsError> {
    let spin = timeout.map_or(value::WAIT_SPIN, |t| t.min(value::WAIT_SPIN));
    // The fast path: the other side answers while we spin, inside the registry borrow
    // (no reference count taken on the mapping).
    if let Some(v) = with_value(id, |e| Ok(e.seg.spin_for_change(since, spin)))? {
        return Ok(Some(v));
    }
    // Park outside the registry borrow, so nothing else on this thread is held.
    let watcher = with_value(id, |e| Ok(e.seg.watcher()))?;
    let deadline = timeout.map(|t| Instant::now() + t.saturating_sub(spin));
    let changed = parked(env, deadline, |until| {
        let left = until.saturating_duration_since(Instant::now());
        watcher.wait_for_change(since, Some(left), Duration::ZERO, None)
    })?;
    Ok(changed)
}

/// `channelSendString(id, string)`: sends a string as UTF-8; false if the ring is full.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn channel_send_string_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, msg] = unsafe { args::<2>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let fits = |len| with_channel(id, |e| e.chan.check_size(len).map_err(to_js));
        let mut made_here = true;
        let sent = with_utf8(env, msg, fits, |bytes| {
            made_here = false;
            with_channel(id, |e| e.chan.send(bytes).map_err(to_js))
        })
        .map_err(|err| if made_here { at_channel(id, err) } else { err })?;
        boolean(env, sent)
    })
}

/// `channelSend(id, bytes)`: sends one message; false if the ring is full.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn channel_send_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, msg] = unsafe { args::<2>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let (data, len) = bytes(env, msg, "msg")?;
        // SAFETY: napi reported `len` readable bytes at `data`, alive for this call (the
        // array is an argument); `send_from` copies them with raw pointers only.
        let sent = with_channel(id, |e| {
            unsafe { e.chan.send_from(data, len) }.map_err(to_js)
        })?;
        boolean(env, sent)
    })
}

/// `channelReceive(id, area, lens, max, direct, timeoutMs)`: takes up to `max` messages.
///
/// Returns how many were copied, one after another, into `area` (their lengths in
/// `lens`); or, with `direct`, when the first message is larger than [`DIRECT_MIN`], the
/// run of such messages as Buffers of their own (one copy each): the Buffer itself when
/// `max` is 1, else an array; or `-(length)` when the first message fits neither. `timeoutMs` < 0 returns at once; otherwise the call blocks until a message
/// arrives or the time passes (`Infinity`: no limit), returning 0 on timeout.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn channel_receive_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, area, lens, max, direct, timeout] = unsafe { args::<6>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        // SAFETY: `lib/` passes its own receive area and lengths array, two distinct
        // ArrayBuffers nothing else touches during this call.
        let (area, lens) = unsafe { (u8_array(env, area, "area")?, u32_array(env, lens, "lens")?) };
        let max = (get_u32(env, max, "max")? as usize).min(lens.len());
        let direct = get_bool(env, direct, "direct")?;
        let timeout = get_f64(env, timeout, "timeoutMs")?;
        if max == 0 {
            return number(env, 0.0); // waiting would spin: data is "ready" but never taken
        }
        let mut deadline = None;
        loop {
            let mut got = Got::Copied(0);
            let watcher = with_channel(id, |e| {
                got = receive(env, e, area, lens, max, direct)?;
                Ok((matches!(got, Got::Copied(0)) && timeout >= 0.0).then(|| e.chan.watcher()))
            })?;
            let Some(watcher) = watcher else {
                return match got {
                    Got::Copied(n) => number(env, n as f64),
                    Got::TooLarge(len) => number(env, -(len as f64)),
                    Got::Buffers(buffers) if max == 1 => Ok(buffers[0]),
                    Got::Buffers(buffers) => array(env, &buffers),
                };
            };
            // Only a call that found nothing reads the clock.
            let deadline = *deadline.get_or_insert_with(|| deadline_after(Some(timeout)));
            // Spin once, then park in steps that give way if the JS environment stops.
            let mut spin = channel::WAIT_SPIN;
            let ready = parked(env, deadline, |until| {
                let spun = std::mem::take(&mut spin);
                watcher.wait_data(Some(until), spun, None).then_some(())
            })?;
            if ready.is_none() {
                return number(env, 0.0);
            }
        }
    })
}

enum Got {
    Copied(usize),
    TooLarge(usize),
    Buffers(Vec<Raw>),
}

fn receive(
    env: sys::napi_env,
    e: &mut ChannelEntry,
    area: &mut [u8],
    lens: &mut [u32],
    max: usize,
    direct: bool,
) -> Result<Got, JsError> {
    let mut used = 0usize;
    let mut taken = 0usize;
    let mut too_big = 0usize;
    let mut buffers = Vec::new();
    let mut failed = None;
    e.chan
        .receive(max, &mut |src, len| {
            // A run of large messages comes back as Buffers, a run of small ones through
            // `area`: the first message decides, the first of the other kind ends the call.
            let large = direct && len > DIRECT_MIN;
            if taken > 0 && large == buffers.is_empty() {
                return Accept::NoRoom;
            }
            if large {
                let mut data = ptr::null_mut::<c_void>();
                let mut value = ptr::null_mut();
                // SAFETY: `env` is live for this call; napi allocates `len` bytes at `data`.
                let status = unsafe { sys::napi_create_buffer(env, len, &mut data, &mut value) };
                if status != sys::Status::napi_ok {
                    failed = Some(js_error(
                        "ERR_OUT_OF_MEMORY",
                        format!("cannot allocate a Buffer of {len} bytes (napi status {status})"),
                    ));
                    return Accept::NoRoom;
                }
                // SAFETY: `src` is valid for `len` bytes of the ring (`receive`'s contract)
                // and `data` for `len` fresh bytes; they cannot overlap.
                unsafe { ptr::copy_nonoverlapping(src, data.cast::<u8>(), len) };
                buffers.push(value);
                taken += 1;
                return Accept::Taken;
            }
            if used + len > area.len() {
                if taken == 0 {
                    too_big = len;
                }
                return Accept::NoRoom;
            }
            // SAFETY: `src` is valid for `len` bytes of the ring and the destination range
            // is inside `area` (checked above); the two never overlap.
            unsafe { ptr::copy_nonoverlapping(src, area.as_mut_ptr().add(used), len) };
            used += len;
            lens[taken] = len as u32;
            taken += 1;
            Accept::Taken
        })
        .map_err(to_js)?;
    // Messages already taken are returned even if a later allocation failed; the error
    // shows on the next call.
    if !buffers.is_empty() {
        return Ok(Got::Buffers(buffers));
    }
    if let Some(err) = failed {
        return Err(err);
    }
    Ok(if taken == 0 && too_big > 0 {
        Got::TooLarge(too_big)
    } else {
        Got::Copied(taken)
    })
}

/// `channelBorrow(id, meta, max)`: zero-copy receive of up to `max` adjacent messages.
///
/// Returns an ArrayBuffer over the ring bytes that hold them (or `undefined` if none
/// waits) and writes `meta[0] = count`, then `(offset, length)` of each message in it. The
/// messages stay in the ring until `channelRelease`, which detaches the ArrayBuffer.
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn channel_borrow_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, meta, max] = unsafe { args::<3>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        // SAFETY: `lib/` passes its own array, which nothing else touches during this call.
        let meta = unsafe { u32_array(env, meta, "meta")? };
        if meta.is_empty() {
            return Err(js_error(
                "ERR_INVALID_ARG_VALUE",
                "meta must not be empty".into(),
            ));
        }
        let room = meta.len().saturating_sub(1) / 2;
        let max = (get_u32(env, max, "max")? as usize).min(room);
        with_channel(id, |e| {
            let capacity = e.chan.capacity() as usize;
            let mut first = ptr::null::<u8>();
            let mut end = 0usize;
            let mut n = 0usize;
            e.chan
                .borrow(max, &mut |src, len| {
                    if first.is_null() {
                        first = src;
                    }
                    // Adjacent records of one run, in order, never wrapping (`borrow`'s
                    // contract): offsets grow and stay within the ring.
                    assert!(src >= first, "a borrowed run wrapped around the ring");
                    let offset = src as usize - first as usize;
                    assert!(offset + len <= capacity, "a borrowed run left the ring");
                    meta[1 + 2 * n] = offset as u32;
                    meta[2 + 2 * n] = len as u32;
                    end = offset + len;
                    n += 1;
                    Accept::Taken
                })
                .map_err(to_js)?;
            meta[0] = n as u32;
            if n == 0 {
                return undefined(env);
            }
            let hint = Box::into_raw(Box::new(Arc::clone(e.chan.segment().mapping())));
            let mut value = ptr::null_mut();
            // SAFETY: the run's `end` bytes from `first` lie in the ring, which stays
            // mapped while the `Arc<Mapping>` in `hint` lives; `release_mapping` drops it only
            // when V8 collects the ArrayBuffer. The bytes are not reused before
            // `channelRelease` detaches the ArrayBuffer.
            let status = unsafe {
                sys::napi_create_external_arraybuffer(
                    env,
                    first.cast_mut().cast(),
                    end,
                    Some(release_mapping),
                    hint.cast(),
                    &mut value,
                )
            };
            if status != sys::Status::napi_ok {
                // SAFETY: napi did not take `hint`; reclaim it.
                drop(unsafe { Box::from_raw(hint) });
                e.chan.release_borrowed(0); // nothing was delivered: all stay queued
                if status == sys::Status::napi_no_external_buffers_allowed {
                    return Err(js_error(
                        "ERR_EXTERNAL_BUFFER_UNSUPPORTED",
                        format!(
                            "{}: this runtime forbids views of shared memory; use receive()",
                            e.chan.path()
                        ),
                    ));
                }
                made(status, "view")?;
            }
            Ok(value)
        })
    })
}

/// `channelRelease(id, arrayBuffer, delivered)`: ends a borrow. Detaches the view (every
/// Buffer over it reads as empty from now on), frees the first `delivered` messages and
/// puts the rest back in the queue. Harmless on a closed handle (closing released them).
///
/// # Safety
/// Called by napi only, with the live `env` and `info` of this call.
unsafe extern "C" fn channel_release_cb(env: sys::napi_env, info: sys::napi_callback_info) -> Raw {
    run(env, || {
        // SAFETY: napi passed `env`/`info` to this callback.
        let [id, view, delivered] = unsafe { args::<3>(env, info) }?;
        let id = get_u32(env, id, "handle")?;
        let delivered = get_u32(env, delivered, "delivered")? as usize;
        // SAFETY: `env` is live and `view` is the ArrayBuffer `channelBorrow` returned.
        let status = unsafe { sys::napi_detach_arraybuffer(env, view) };
        // A view that stayed attached must not see its bytes reused: then nothing is freed
        // (all go back to the queue, delivered ones included) and the error says why.
        let delivered = if status == sys::Status::napi_ok {
            delivered
        } else {
            0
        };
        let released = with_channel(id, |e| {
            e.chan.release_borrowed(delivered);
            Ok(())
        });
        // A closed handle released everything when it closed.
        if let Err(err) = released {
            if err.status.as_ref() != "ERR_CLOSED" {
                return Err(err);
            }
        }
        made(status, "detached view")?;
        undefined(env)
    })
}

const FUNCTIONS: [(&std::ffi::CStr, Callback); 11] = [
    (c"valueRead", value_read_cb),
    (c"valueBindMeta", value_bind_meta_cb),
    (c"mapBindMeta", map_bind_meta_cb),
    (c"valueWriteString", value_write_string_cb),
    (c"valueWriteBytes", value_write_bytes_cb),
    (c"valueWaitSync", value_wait_sync_cb),
    (c"channelSendString", channel_send_string_cb),
    (c"channelSend", channel_send_cb),
    (c"channelReceive", channel_receive_cb),
    (c"channelBorrow", channel_borrow_cb),
    (c"channelRelease", channel_release_cb),
];

/// The functions of this module as one object (`lib/` calls them instead of the
/// `#[napi]` ones).
pub fn fast_api(env: &Env) -> Result<Raw, JsError> {
    let env = env.raw();
    let mut object = ptr::null_mut();
    // SAFETY: `env` is live for this call.
    check(
        unsafe { sys::napi_create_object(env, &mut object) },
        "object",
    )?;
    for (name, callback) in FUNCTIONS.into_iter().chain(super::map::FAST_FUNCTIONS) {
        let mut function = ptr::null_mut();
        // SAFETY: `env` is live; the name is a NUL-terminated static string and the
        // callback has the signature napi expects.
        let status = unsafe {
            sys::napi_create_function(
                env,
                name.as_ptr(),
                name.to_bytes().len() as isize,
                Some(callback),
                ptr::null_mut(),
                &mut function,
            )
        };
        made(status, "function")?;
        // SAFETY: `object` and `function` are live values created above.
        let status = unsafe { sys::napi_set_named_property(env, object, name.as_ptr(), function) };
        made(status, "property")?;
    }
    Ok(object)
}
