//! `sbc-core`: the pure signalling core of the SBC (sans-IO: no sockets, threads or clock).
//!
//! - [`anchor`]: SDP media anchoring: what a received description asks of the media relay, and the
//!   rewrite that puts the SBC's addresses and ports in the description sent on the other leg.
//! - [`b2bua`]: the back-to-back user agent relaying calls between leg A (outside) and leg B (inside)
//!   over the transaction layer, with topology hiding and a bounded, deadline-driven dialog table.
//! - [`callmedia`]: the B2BUA's media anchor: the worker's relay shard and the per-call state that
//!   ties each relayed SDP to the call's relay ports, freed on every way a call ends.
//! - [`cidr`]: IP networks, the stuff of trunks' source ACLs and the guard's trusted sources.
//! - [`guard`]: admission before state: what a packet must pass before it is parsed into a
//!   transaction or dialog (the new-call rate, trusted sources).
//! - [`ids`]: identifiers the SBC generates (Via branch, tags, leg-B Call-ID) carrying the owning worker
//!   and a keyed MAC, so a message landing on another worker is handed over in O(1) and forged ones are
//!   dropped, while nothing in them correlates to the inside.
//! - [`nat`]: far-end NAT (RFC 3581 response routing, private-address detection, Contact rewriting).
//! - [`ng`]: the rtpengine-compatible control engine: Kamailio's or OpenSIPS's `rtpengine` module
//!   drives the media relay over the ng protocol (offer, answer, delete, query, list), with a bounded,
//!   expiring call table and a reply cache for retransmissions.
//! - [`registrar`]: the SBC's own binding table of registered user agents (bounded, expiring).
//! - [`routing`]: routing rules, number normalization, inside targets with health and fail-over.
//! - [`routing_policy`]: a worker's routing policy: trunk by source, its number rules, the route, the
//!   target by health and priority as a B2BUA target, and the health probes of the targets.
//! - [`trunkreg`]: the SBC's own registration with carrier trunks that require one (digest
//!   challenge answered with the trunk's credentials, refreshed halfway to expiry).
//! - [`topology`]: topology hiding, the header policy applied at each crossing between sides.
//! - [`table`]: a bounded table whose entries carry an absolute deadline, for dialogs, registrations and
//!   bans alike.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

pub mod anchor;
pub mod b2bua;
pub mod callmedia;
pub mod cidr;
pub mod digest;
pub mod guard;
pub mod ids;
pub mod nat;
pub mod ng;
pub mod registrar;
pub mod routing;
pub mod routing_policy;
pub mod table;
pub mod topology;
pub mod trunkreg;
