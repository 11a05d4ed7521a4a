//! `sbc-core`: the pure signalling core of the SBC (sans-IO: no sockets, threads or clock).
//!
//! Its files are grouped by concern, one folder per room:
//!
//! - [`b2bua`]: the back-to-back user agent relaying calls between leg A (outside) and leg B (inside)
//!   over the transaction layer: a dispatcher, one file per conversation (INVITE dialogs, in-dialog
//!   requests, REGISTER relay, trunks, probes) over one sending layer, and the glue to the media anchor.
//! - [`signalling`]: what crosses between the sides: topology hiding (the header policy at each
//!   crossing), far-end NAT fixing, and the identifiers the SBC generates (worker id and keyed MAC).
//! - [`registration`]: the binding table of registered user agents, the SBC's own registrations with
//!   carrier trunks, and digest answers to their challenges.
//! - [`routing`]: routing rules, number normalization, inside targets with health and fail-over.
//! - [`media`]: media anchoring: the relay interface the core needs ([`media::MediaControl`], which
//!   the worker's relay implements), the SDP plan and rewrite that put the relay between the
//!   parties, and the B2BUA's per-call media state, freed on every way a call ends.
//! - [`ng`]: rtpengine control: the ng protocol's codec, and the engine through which Kamailio's or
//!   OpenSIPS's `rtpengine` module drives the media relay (offer, answer, delete, query, list), with
//!   a bounded, expiring call table and a reply cache for retransmissions.
//! - [`guard`]: admission before state: what a packet must pass before it is parsed into a
//!   transaction or dialog (the inside ACL, per-source budgets, bans, scanners, the new-call rate),
//!   and the behaviour bans it learns from the answers the outside gets.
//! - [`cidr`]: IP networks, the stuff of trunks' source ACLs and the guard's trusted sources.
//! - [`table`]: a bounded table whose entries carry an absolute deadline, for dialogs, registrations and
//!   bans alike.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

pub mod b2bua;
pub mod cidr;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod media;
pub mod ng;
pub mod registration;
pub mod routing;
pub mod signalling;
pub mod table;
