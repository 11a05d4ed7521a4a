//! rtpengine control: the ng protocol's codec and the engine that drives the worker's media relay
//! with it, so Kamailio's or OpenSIPS's `rtpengine` module can use the SBC as its media proxy.
//!
//! - [`codec`]: the ng wire format (cookie + bencode over UDP): the bounded decoder, typed
//!   requests and replies. Shared with the load tester, which drives rtpengine with it.
//! - the engine ([`NgEngine`]): the ng calls of one worker (offer, answer, delete, query, list),
//!   their expiry and the reply cache.

mod calls;
pub mod codec;
mod engine;

pub use calls::MAX_ID_LEN;
pub use engine::{NgConfig, NgCounters, NgEngine, MAX_LIST_BYTES, MAX_REPLY};
