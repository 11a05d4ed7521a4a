//! rtpengine control: the ng protocol's codec and the engine that drives the worker's media relay
//! with it, so Kamailio's or OpenSIPS's `rtpengine` module can use the SBC as its media proxy.
//!
//! - [`codec`]: the ng wire format (cookie + bencode over UDP): the bounded decoder, typed
//!   requests and replies. Shared with the load tester, which drives rtpengine with it.
//! - the engine ([`NgEngine`]): the ng calls of one worker (offer, answer, delete, query, list),
//!   their expiry and the reply cache.

//!
//! # The engine
//! The rtpengine-compatible control engine: Kamailio's and OpenSIPS's `rtpengine` modules drive the
//! SBC's media relay over the ng protocol as they would drive rtpengine, so the relay is a drop-in
//! media proxy behind an existing SIP proxy.
//!
//! [`NgEngine`] is sans-IO: the driver hands it each ng datagram with its source and `now`, and sends
//! back what [`NgEngine::handle`] wrote; it arms a timer with [`NgEngine::poll_timeout`] and calls
//! [`NgEngine::handle_timeout`] when it fires. The engine owns a bounded table of ng calls keyed by
//! Call-ID and works on the worker's relay, passed in as `&mut dyn MediaControl`: one session per
//! call, one stream per `m=` line, and the SDP [plan and rewrite](crate::media::anchor) per offer and
//! answer.
//!
//! # Calls, tags and sides
//! A call has two parties, each known by its SIP tag. The party whose `from-tag` opened the call with
//! an `offer` is on [`MediaSide::A`](crate::media::MediaSide::A) (the caller), the party that answers it on [`MediaSide::B`](crate::media::MediaSide::B) (the callee).
//!
//! - `offer` carries the SDP of the party named by `from-tag`: the relay learns that party's media
//!   address on its side, and the returned SDP, which goes to the other party, carries the relay's
//!   ports of the other side. For the initial INVITE: caller's SDP in, ports of leg B out.
//! - `answer` carries the SDP of the party named by `to-tag` (the offer's `from-tag` is repeated
//!   in `from-tag`): the answerer's address is learned on its side and the returned SDP carries the
//!   ports of the offerer's side. For the 200 OK: callee's SDP in, ports of leg A out.
//! - A re-INVITE from the callee is an `offer` whose `from-tag` is the callee's tag: roles follow the
//!   tags, not the order of the messages.
//! - A repeated `offer` or `answer` (re-INVITE, hold, Kamailio retrying with a new cookie) re-uses
//!   the call's session: stream `k` keeps its ports for the whole call, so the returned ports are the
//!   same. A re-offer with more `m=` lines than the session has streams gets a new, larger session;
//!   the old one carries media until the answer arrives and is released then.
//! - An answer from a second forked branch (another `to-tag`) replaces the first: the last answer
//!   wins, the relay sends the callee's media where that answer says.
//! - `delete` ends the call at once, or after `delete-delay` seconds (the request's, else
//!   [`NgConfig::delete_delay`]), and replies with the call's statistics. Its tags must match the
//!   call: the `487` of a cancelled fork branch (an unknown `to-tag` once the call is answered) leaves
//!   the call alone. An unknown call is a warning, or with the `fatal` flag an error, as rtpengine
//!   does.
//! - `query` replies with the statistics of a call (`created`, `last signal`, `tags` and `totals`
//!   from the relay's per-leg counters), `list` with the Call-IDs of live calls (at most `limit`,
//!   default 32), `ping` with `pong`.
//!
//! # Expiry and bounds
//! Every table is bounded and every entry expires:
//! - calls: at most [`NgConfig::max_calls`] (an offer beyond it is refused with rtpengine's
//!   `Parallel session limit reached`); a call with no signal and no media for
//!   [`NgConfig::idle_timeout`] ([`NgConfig::hold_timeout`] while a side holds) is released (a lost
//!   BYE never leaks ports); a deleted call lingers for its delete delay, capped by
//!   [`NgConfig::max_delete_delay`];
//! - replies: the reply to each `offer`, `answer` and `delete` is kept for
//!   [`NgConfig::reply_cache_ttl`] under the client's address and cookie, so a retransmission (a
//!   client that timed out waiting) gets the same bytes again without a second allocation; at most
//!   [`NgConfig::reply_cache`] replies and [`NgConfig::reply_cache_bytes`] bytes, oldest dropped
//!   first;
//! - Call-IDs and tags are at most [`MAX_ID_LEN`] bytes; `list` replies stay below
//!   [`MAX_LIST_BYTES`].
//!
//! Nothing here panics on peer input: every fault is an ng error reply with a reason.
//!
//! # Options
//! | ng option | effect |
//! |---|---|
//! | `trust-address` (default) / `SIP-source-address` + `received-from` | the peer's media IP: the SDP's, or the SIP source's ([`RemoteAddress`](crate::media::anchor::RemoteAddress)) |
//! | `media-address` | overrides both |
//! | `replace: origin` / `origin-full` | `o=` address replaced / the relay's own `o=` per side ([`OriginMode`](crate::media::anchor::OriginMode)); default: kept |
//! | `replace: session-connection`, `zero-address` | one session-level `c=`; `c=0.0.0.0` rewritten too |
//! | `ICE` absent, `remove`, `default` | ICE attributes removed (the relay is the only address) |
//! | `ICE=force`, `force-relay`, `optional` | the relay does not speak ICE: attributes passed through unchanged, with a warning |
//! | `rtcp-mux: demux` / `reject` | `a=rtcp-mux` not offered onward; the relay demuxes |
//! | `rtcp-mux: offer` / `require` | `a=rtcp-mux` offered onward, and removed from the answer if the offerer had not offered it |
//! | `full-rtcp-attribute`, `no-rtcp-attribute` | `a=rtcp` with the address / removed |
//! | `label` | remembered per party and reported by `query` |
//! | `direction`, `from-interface`, `to-interface` | accepted: the relay has one interface, [`NgConfig::media_ip`] |
//! | `symmetric`, `asymmetric`, `strict-source`, `media-handover`, `port-latching` | accepted; latching is configured per worker relay (its latch mode), not per call |
//! | `transport-protocol: RTP/SAVP` on an `RTP/AVP` SDP (or the reverse) | SRTP bridging: the relay terminates SDES-SRTP on the secure side, its own keys offered, the peer's taken from the SDP, SRTP stages on the legs once the answer settles them; kept for the call's re-offers, ended (stages back to plain) by one asking its SDP's own protocol (module `bridge`) |
//! | `SDES-no-<suite>`, `SDES-only-<suite>`, `SDES-off` | suites left out of / kept in the relay's offer; `off`: no conversion to SRTP (no DTLS), with a warning |
//! | `address-family`, `transport-protocol` to DTLS-SRTP | accepted; a family or protocol change the relay cannot make is reported in `warning` |
//! | other flags and keys (`record-call`, `via-branch`, ...) | ignored, counted in [`NgCounters::ignored_options`] |

mod bridge;
mod calls;
pub mod codec;
mod engine;

pub use calls::MAX_ID_LEN;
pub use engine::{NgConfig, NgCounters, NgEngine, MAX_LIST_BYTES, MAX_REPLY};
