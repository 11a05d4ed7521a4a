//! Registrations: the bindings of the user agents registered through the SBC, the SBC's own
//! registrations with carrier trunks, and the digest answers both need.
//!
//! - [`registrar`]: the SBC's own binding table of registered user agents (bounded, expiring).
//! - [`trunkreg`]: the SBC's own registration with carrier trunks that require one (digest
//!   challenge answered with the trunk's credentials, refreshed halfway to expiry).
//! - [`digest`]: the client side of SIP digest authentication (answering a 401/407).

pub mod digest;
pub mod registrar;
pub mod trunkreg;
