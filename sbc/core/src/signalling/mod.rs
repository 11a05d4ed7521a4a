//! What crosses between the sides: the header policy of topology hiding, far-end NAT fixing, and the
//! identifiers the SBC generates (Via branch, tags, leg-B Call-ID).
//!
//! - [`topology`]: topology hiding, the header policy applied at each crossing between sides.
//! - [`nat`]: far-end NAT (RFC 3581 response routing, private-address detection, Contact rewriting).
//! - [`ids`]: identifiers the SBC generates, carrying the owning worker and a keyed MAC, so a message
//!   landing on another worker is handed over in O(1) and forged ones are dropped, while nothing in
//!   them correlates to the inside.

pub mod ids;
pub mod nat;
pub mod topology;

pub use topology::Side;
