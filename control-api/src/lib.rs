//! `control-api`: the HTTP control API and the Prometheus exposition of the SBC.
//!
//! It will define the narrow `Control` handle that the `sbc` binary implements (commands over bounded
//! channels, answers as snapshots) and depend on no other workspace crate. Built with the control issue.
#![deny(missing_docs)]
