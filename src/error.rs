//! One error type for the whole core, each variant with a stable JS `code`.
//!
//! The napi layer (`napi/mod.rs`) turns an [`Error`] into a JS `Error` whose `code` is
//! [`Error::code`] and whose message is the `Display` text below, which always names the
//! segment's path and the cause. OS failures keep their errno name as the code (`EACCES`,
//! `ENOSPC`, …), as Node's own `fs` errors do.

use std::io;

/// Everything that can go wrong in share-object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file holds data that is not a share-object segment; it was not modified.
    #[error("{path}: not a share-object segment ({reason}); the file was left unchanged")]
    NotASegment { path: String, reason: String },

    /// Nothing exists at the path, and the call may not create it (a read-only open, an
    /// open with `create: false`, a removal).
    #[error("{path}: no such segment: {reason}")]
    NotFound { path: String, reason: String },

    /// The header is ours but inconsistent (a length beyond the file, a bad counter, …).
    #[error("{path}: corrupt segment: {reason}")]
    Corrupt { path: String, reason: String },

    /// A segment written by an incompatible version of share-object; `hint` (empty, or
    /// starting with "; ") says what to do about it.
    #[error(
        "{path}: unsupported segment format version {found} (this build reads version {supported}){hint}"
    )]
    UnsupportedVersion {
        path: String,
        found: u32,
        supported: u32,
        hint: String,
    },

    /// An operation that needs a segment to itself (an upgrade) found it open elsewhere.
    #[error("{path}: {what}: the segment is open in another process or handle; close every process that has it open, then try again")]
    InUse { path: String, what: &'static str },

    /// The segment holds another kind of object (a channel opened as a value, …).
    #[error("{path}: segment is a {found}, not a {expected}")]
    WrongKind {
        path: String,
        found: &'static str,
        expected: &'static str,
    },

    /// A value larger than the segment may grow to.
    #[error("{path}: value of {len} bytes exceeds the limit of {max} bytes; the previous value is intact")]
    ValueTooLarge { path: String, len: u64, max: u64 },

    /// A message larger than the channel accepts.
    #[error("{path}: message of {len} bytes exceeds the channel's limit of {max} bytes")]
    MessageTooLarge { path: String, len: u64, max: u64 },

    /// The path is refused for safety (symlink, hard link, foreign owner, loose mode, …).
    #[error("{path}: refused: {reason}")]
    UnsafePath { path: String, reason: String },

    /// An argument is out of range or malformed.
    #[error("{path}: invalid argument: {reason}")]
    InvalidArgument { path: String, reason: String },

    /// A write on a segment opened with `readOnly: true`.
    #[error("{path}: segment is open read-only")]
    ReadOnly { path: String },

    /// A format-1 value left torn by a writer that died in the middle of a write (found by
    /// the upgrade: format 2 never tears a value).
    #[error("{path}: the format-1 value is torn (its last writer died in the middle of a write); pass --discard-torn (`{{ discardTorn: true }}`) to upgrade it with an empty value")]
    WriterDied { path: String },

    /// A bounded wait ran out.
    #[error("{path}: timed out after {ms} ms waiting for {what}")]
    Timeout {
        path: String,
        what: &'static str,
        ms: u64,
    },

    /// Another consumer holds the channel.
    #[error("{path}: another consumer holds this channel")]
    ConsumerBusy { path: String },

    /// The lock is already held by this same handle (a section that has not finished).
    #[error("{path}: this handle already holds the lock in an unfinished section; waiting for it here would deadlock")]
    LockHeld { path: String },

    /// Use after `close()`.
    #[error("{path}: segment is closed")]
    Closed { path: String },

    /// The runtime does not allow buffers over external memory (Electron's memory cage).
    #[error("{path}: this runtime does not allow zero-copy external buffers; use readBuffer() for a copy")]
    ExternalBufferUnsupported { path: String },

    /// A map has no room: its `max` or `maxSize` budget is spent (and it does not evict),
    /// or its file has reached the size its options allow.
    #[error("{path}: map is full: {reason}")]
    MapFull { path: String, reason: String },

    /// An option given when opening an existing map differs from the one it was created with.
    #[error("{path}: option {option} is {given} here but the map was created with {stored}; omit it to adopt the map's, or use another file")]
    OptionMismatch {
        path: String,
        option: &'static str,
        stored: String,
        given: String,
    },

    /// `incr()` of a value that is not a number.
    #[error("{path}: the value of key {key:?} is not a number, so it cannot be incremented")]
    NotANumber { path: String, key: String },

    /// A call made in a state that forbids it (a write inside `update()`'s function, …).
    #[error("{path}: {reason}")]
    InvalidState { path: String, reason: String },

    /// An operating-system call failed. The errno name is the `code` (not repeated in the
    /// message, as no other error repeats its code).
    #[error("{path}: {op} failed: {}", describe_os_error(source))]
    Os {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// `Result` with share-object's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable code the JS error carries in `err.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotASegment { .. } => "ERR_NOT_A_SEGMENT",
            Error::NotFound { .. } => "ERR_NOT_FOUND",
            Error::Corrupt { .. } => "ERR_CORRUPT",
            Error::UnsupportedVersion { .. } => "ERR_UNSUPPORTED_VERSION",
            Error::WrongKind { .. } => "ERR_WRONG_KIND",
            Error::ValueTooLarge { .. } => "ERR_VALUE_TOO_LARGE",
            Error::MessageTooLarge { .. } => "ERR_MESSAGE_TOO_LARGE",
            Error::UnsafePath { .. } => "ERR_UNSAFE_PATH",
            Error::InvalidArgument { .. } => "ERR_INVALID_ARG_VALUE",
            Error::ReadOnly { .. } => "ERR_READ_ONLY",
            Error::WriterDied { .. } => "ERR_WRITER_DIED",
            Error::InUse { .. } => "ERR_IN_USE",
            Error::Timeout { .. } => "ERR_TIMEOUT",
            Error::ConsumerBusy { .. } => "ERR_CONSUMER_BUSY",
            Error::LockHeld { .. } => "ERR_LOCK_HELD",
            Error::Closed { .. } => "ERR_CLOSED",
            Error::ExternalBufferUnsupported { .. } => "ERR_EXTERNAL_BUFFER_UNSUPPORTED",
            Error::MapFull { .. } => "ERR_MAP_FULL",
            Error::OptionMismatch { .. } => "ERR_OPTION_MISMATCH",
            Error::NotANumber { .. } => "ERR_NOT_A_NUMBER",
            Error::InvalidState { .. } => "ERR_INVALID_STATE",
            Error::Os { source, .. } => errno_name(source),
        }
    }

    /// Wraps an OS error with the path and the operation that failed.
    pub fn os(path: &str, op: &'static str, source: impl Into<io::Error>) -> Self {
        Error::Os {
            path: path.to_owned(),
            op,
            source: source.into(),
        }
    }

    /// A corrupt-segment error.
    pub fn corrupt(path: &str, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    /// An invalid-argument error.
    pub fn invalid(path: &str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    /// The errno of an OS failure, if this is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// What an OS error says, without Rust's " (os error N)" suffix: "No such file or directory".
pub fn describe_os_error(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(errno) => text
            .strip_suffix(&format!(" (os error {errno})"))
            .map(str::to_owned)
            .unwrap_or(text),
        None => text,
    }
}

/// The symbolic name of an errno (`EACCES`), as Node's `fs` errors use for `code`.
pub fn errno_name(err: &io::Error) -> &'static str {
    let Some(errno) = err.raw_os_error() else {
        return "ERR_OS";
    };
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ELOOP => "ELOOP",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENODEV => "ENODEV",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        // A value of its own on macOS (on Linux, the same as EOPNOTSUPP).
        #[cfg(target_os = "macos")]
        libc::ENOTSUP => "ENOTSUP",
        libc::EDQUOT => "EDQUOT",
        libc::ENOSYS => "ENOSYS",
        libc::EXDEV => "EXDEV",
        libc::ENXIO => "ENXIO",
        _ => "ERR_OS",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_carry_the_errno_name_as_code_and_the_cause_once_in_the_message() {
        let err = Error::os("/x/seg", "open", io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(err.code(), "EACCES");
        // The CLI prints `<code>: <message>`: the message must not say the code again.
        assert_eq!(err.to_string(), "/x/seg: open failed: Permission denied");
    }

    #[test]
    fn every_message_names_the_path() {
        let err = Error::corrupt("/tmp/s", "length 99 beyond capacity 10");
        assert_eq!(err.code(), "ERR_CORRUPT");
        assert!(err.to_string().starts_with("/tmp/s: "));
    }
}
