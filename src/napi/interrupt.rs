//! Blocking waits on a JS thread that give way when its environment shuts down.
//!
//! `waitForChangeSync()`, `lockSync()` and `receiveSync()` park the JS thread itself. While
//! it is parked no JavaScript runs on it, so nothing in that thread can end the wait, and
//! Node's own ways of ending a thread wait for the thread: `worker.terminate()` waits for the
//! worker to return to JavaScript, and `process.exit()` in the main thread joins every
//! worker. A wait without a timeout in a worker would hold both up for ever.
//!
//! So these waits run in steps of at most [`POLL`]; between steps they ask the environment
//! whether it is stopping. Node sets that flag from the thread that stops it (before it
//! waits for this one), and from then on refuses to call into JavaScript: an otherwise
//! side-effect-free call of an empty function fails, and that failure is the answer
//! ([`env_stopping`]). The wait then returns at once; no JavaScript sees its result.
//! (An environment cleanup hook cannot do this: it runs on this same thread, after the
//! call that is parked has returned.)

use std::ptr;
use std::time::{Duration, Instant};

use napi::sys;

/// How often a parked wait asks whether its environment is stopping.
pub const POLL: Duration = Duration::from_millis(50);

/// How a wait in steps ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stepped<T> {
    /// A step finished the wait.
    Done(T),
    /// The deadline passed first.
    TimedOut,
    /// The environment began to stop: the wait was abandoned.
    Stopped,
}

/// Waits until `deadline` (`None`: without limit) in steps of at most `poll`:
/// `step(until)` waits until `until` and returns `Some` when the wait is over, `None`
/// when `until` passed first. Between steps `stopping()` is asked.
pub fn in_steps<T>(
    deadline: Option<Instant>,
    poll: Duration,
    mut stopping: impl FnMut() -> bool,
    mut step: impl FnMut(Instant) -> Option<T>,
) -> Stepped<T> {
    loop {
        let next = Instant::now() + poll;
        let until = deadline.map_or(next, |d| d.min(next));
        if let Some(done) = step(until) {
            return Stepped::Done(done);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Stepped::TimedOut;
        }
        if stopping() {
            return Stepped::Stopped;
        }
    }
}

/// The body of the empty function [`env_stopping`] calls.
///
/// # Safety
/// Called by napi only.
unsafe extern "C" fn nothing(
    _env: sys::napi_env,
    _info: sys::napi_callback_info,
) -> sys::napi_value {
    ptr::null_mut()
}

/// Whether the JavaScript environment `env` is stopping (`worker.terminate()`, or
/// `process.exit()` in the main thread while this worker waits): Node then refuses to call
/// into JavaScript, so a call of an empty function fails. Costs about a microsecond.
///
/// # Safety
/// `env` is the environment of the napi callback that is running on this thread.
pub unsafe fn env_stopping(env: sys::napi_env) -> bool {
    let mut scope = ptr::null_mut();
    // SAFETY: `env` is live on this thread (our contract); the scope is closed below, so the
    // handles made here do not pile up in the callback's scope over a long wait.
    if unsafe { sys::napi_open_handle_scope(env, &mut scope) } != sys::Status::napi_ok {
        return true;
    }
    // SAFETY: as above; `nothing` has the signature napi expects and the name is empty.
    let refused = unsafe {
        let mut function = ptr::null_mut();
        let mut receiver = ptr::null_mut();
        let mut result = ptr::null_mut();
        sys::napi_create_function(
            env,
            c"".as_ptr(),
            0,
            Some(nothing),
            ptr::null_mut(),
            &mut function,
        ) != sys::Status::napi_ok
            || sys::napi_get_undefined(env, &mut receiver) != sys::Status::napi_ok
            || sys::napi_call_function(env, receiver, function, 0, ptr::null(), &mut result)
                != sys::Status::napi_ok
    };
    if refused {
        // Leave nothing pending for the caller's own napi calls.
        let mut pending = ptr::null_mut();
        // SAFETY: `env` is live; this only takes (and drops) a pending exception, if any.
        let _ = unsafe { sys::napi_get_and_clear_last_exception(env, &mut pending) };
    }
    // SAFETY: `scope` was opened above on this env and is the innermost one.
    unsafe { sys::napi_close_handle_scope(env, scope) };
    refused
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_step_that_finishes_ends_the_wait() {
        let steps = Cell::new(0);
        let got = in_steps(
            None,
            POLL,
            || false,
            |_| {
                steps.set(steps.get() + 1);
                (steps.get() == 3).then_some(42)
            },
        );
        assert_eq!(got, Stepped::Done(42));
        assert_eq!(steps.get(), 3);
    }

    #[test]
    fn no_step_runs_past_the_poll_interval_or_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(30);
        let poll = Duration::from_millis(10);
        let got = in_steps(
            Some(deadline),
            poll,
            || false,
            |until| {
                assert!(until <= deadline);
                assert!(until <= Instant::now() + poll);
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                None::<()>
            },
        );
        assert_eq!(got, Stepped::TimedOut);
    }

    #[test]
    fn a_stopping_environment_abandons_a_wait_without_deadline() {
        let asked = Cell::new(0);
        let got = in_steps(
            None,
            Duration::from_millis(1),
            || {
                asked.set(asked.get() + 1);
                asked.get() == 2
            },
            |_| None::<()>,
        );
        assert_eq!(got, Stepped::Stopped);
        assert_eq!(asked.get(), 2);
    }
}
