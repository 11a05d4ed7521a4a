//! Shared by the benches and their helper binaries.
//!
//! - [`callflow`]: whole calls through the B2BUA, sans-IO (the `b2bua_call` bench and the
//!   `callflow` binary, which runs a fixed number of calls for an instruction-count profile).

pub mod callflow;
