//! Shared by the benches and their helper binaries.
//!
//! - [`callflow`]: whole calls through the B2BUA, sans-IO (the `b2bua_call` bench and the
//!   `callflow` binary, which runs a fixed number of calls for an instruction-count profile).
//! - [`owner`]: the hand-over look-up of a datagram (the `owner_lookup` bench and the
//!   `owner_instructions` binary).

pub mod callflow;
pub mod owner;
