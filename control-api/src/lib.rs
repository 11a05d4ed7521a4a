//! `control-api`: the HTTP control API and the Prometheus exposition of the SBC, and its command-line
//! client.
//!
//! The crate defines the narrow [`Control`] handle the `sbc` binary implements (commands over
//! bounded channels to the workers, answers as snapshots) and the serde types of every endpoint
//! ([`dto`]); it depends on no other workspace crate. [`server::serve`] runs the HTTP/1.1 server
//! (HTTPS with rustls when a certificate is given) on the caller's current-thread runtime: it
//! authenticates with a bearer token compared in constant time, bounds request bodies, connections
//! and header read time, and answers errors as `{"error": "...", "field": "..."}`. The routes and
//! the OpenAPI document (`openapi.json`, served at `/openapi.json`) are listed once in [`routes`];
//! a test keeps them equal. [`cli`] is `sbc ctl`, a client over the same API.
#![deny(missing_docs)]

pub mod cli;
pub mod dto;
mod handle;
mod query;
pub mod routes;
pub mod server;
#[cfg(test)]
mod testing;

pub use handle::{ApiError, Control};

/// The OpenAPI 3 document of the API, as served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");
