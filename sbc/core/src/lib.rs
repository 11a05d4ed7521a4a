//! `sbc-core`: the pure signalling core of the SBC (sans-IO: no sockets, threads or clock).
//!
//! - [`b2bua`]: the back-to-back user agent relaying calls between leg A (outside) and leg B (inside)
//!   over the transaction layer, with topology hiding and a bounded, deadline-driven dialog table.
//! - [`ids`]: identifiers the SBC generates (Via branch, tags, leg-B Call-ID) carrying the owning worker
//!   and a keyed MAC, so a message landing on another worker is handed over in O(1) and forged ones are
//!   dropped, while nothing in them correlates to the inside.
//! - [`media`]: media anchoring: the relay interface the core needs ([`media::MediaControl`], which
//!   the worker's relay implements), the SDP plan and rewrite that put the relay between the
//!   parties, and the B2BUA's per-call media state, freed on every way a call ends.
//! - [`nat`]: far-end NAT (RFC 3581 response routing, private-address detection, Contact rewriting).
//! - [`ng`]: rtpengine control: the ng protocol's codec, and the engine through which Kamailio's or
//!   OpenSIPS's `rtpengine` module drives the media relay (offer, answer, delete, query, list), with
//!   a bounded, expiring call table and a reply cache for retransmissions.
//! - [`registrar`]: the SBC's own binding table of registered user agents (bounded, expiring).
//! - [`routing`]: routing rules, number normalization, inside targets with health and fail-over.
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

pub mod b2bua;
pub mod digest;
pub mod ids;
pub mod media;
pub mod nat;
pub mod ng;
pub mod registrar;
pub mod routing;
pub mod table;
pub mod topology;
pub mod trunkreg;
