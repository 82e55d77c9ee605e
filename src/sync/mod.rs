//! The synchronisation primitives every shared structure is built from. Each keeps one
//! invariant, stated at the top of its file, and takes "how to wait" as a parameter where it
//! parks, so it is unit-tested without the OS.

pub mod futex;
pub mod lock;
pub mod seqlock;
pub mod waiters;
