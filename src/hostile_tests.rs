//! Property tests and interleaving checks over hostile segment bytes (issue 6). Filled in
//! by the reliability work.
