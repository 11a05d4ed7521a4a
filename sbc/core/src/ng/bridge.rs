//! SRTP bridging over ng, as rtpengine does it: an `offer` whose `transport-protocol` asks for
//! `RTP/SAVP` (`RTP/SAVPF`) toward the other side while the SDP is `RTP/AVP` (or the reverse) makes
//! the relay terminate SDES-SRTP on the secure side. The SDP work and the keys are the B2BUA's
//! ([`CallSrtp`], [`crate::media::sdes`]); this module only turns the ng request into the plan of
//! each side and filters the offered suites by the `SDES` options.
//!
//! - The plan is fixed by the offer that converts and kept for the call: the answer (which names no
//!   protocol, as Kamailio sends it) and later re-offers from either side follow it. An offer whose
//!   `transport-protocol` equals its SDP's protocol ends the bridging: the legs' stages are put
//!   back to plain relaying at once, and a later conversion starts with fresh keys.
//! - Toward a secure side the relay offers one `a=crypto` line per suite it terminates, each with a
//!   fresh key of its own, less those the `SDES` options exclude (`no-<suite>`, `only-<suite>`);
//!   from a secure side it takes the first usable line of the SDP.
//! - `SDES-off` toward a secure side leaves the protocol unchanged, with a warning: without SDES
//!   the secure side would need DTLS-SRTP, which the relay does not speak.
//! - When the answer settles the keys, the stages of the streams' legs are given to the relay:
//!   what arrives on the secure leg is unprotected with that side's key, what leaves toward it is
//!   protected with the relay's.

use sbc_sip::sdp::Sdp;

use super::calls::Failure;
use super::codec::{Request, TransportProtocol};
use crate::media::anchor::{MediaPlan, Transport};
use crate::media::sdes::{canonical_suite, LegPlan};
use crate::media::srtp::CallSrtp;
use crate::media::{MediaControl, MediaSide, SessionHandle};

/// The `SDES` options of a request that the bridge reads.
#[derive(Debug, Default)]
pub(super) struct SdesOptions<'a> {
    /// `off`: no SDES toward the other side.
    pub(super) off: bool,
    /// `no-<suite>`: suites not offered.
    pub(super) no: Vec<&'a str>,
    /// `only-<suite>`: only these suites offered (when any is given).
    pub(super) only: Vec<&'a str>,
}

impl<'a> SdesOptions<'a> {
    pub(super) fn of(req: &Request<'a>) -> Self {
        let mut o = Self::default();
        for raw in &req.sdes {
            let Ok(s) = std::str::from_utf8(raw) else {
                continue;
            };
            if s.eq_ignore_ascii_case("off") {
                o.off = true;
            } else if let Some(suite) = strip_prefix_ci(s, "no-") {
                o.no.push(suite);
            } else if let Some(suite) = strip_prefix_ci(s, "only-") {
                o.only.push(suite);
            }
        }
        o
    }

    /// Whether the relay may offer `suite`.
    fn allows(&self, suite: &str) -> bool {
        let is = |s: &&str| canonical_suite(s).eq_ignore_ascii_case(canonical_suite(suite));
        !self.no.iter().any(is) && (self.only.is_empty() || self.only.iter().any(is))
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// What the request's `transport-protocol` asks of the streams: secure (`Some(true)`), plain
/// (`Some(false)`) or nothing the bridge does (`None`: absent, `accept`, DTLS).
fn target(proto: Option<TransportProtocol>) -> Option<bool> {
    match proto? {
        TransportProtocol::RtpAvp | TransportProtocol::RtpAvpf => Some(false),
        TransportProtocol::RtpSavp | TransportProtocol::RtpSavpf => Some(true),
        _ => None,
    }
}

/// The plan of `side` among the plans of side A and side B.
fn plan_of(plans: [LegPlan; 2], side: MediaSide) -> LegPlan {
    let [a, b] = plans;
    match side {
        MediaSide::A => a,
        MediaSide::B => b,
    }
}

/// Whether the SDP's relayed RTP streams are SDES-SRTP (`RTP/SAVP`, `RTP/SAVPF`).
fn secure(plan: &MediaPlan) -> bool {
    plan.entries()
        .iter()
        .any(|e| e.is_relayed() && matches!(e.transport, Transport::RtpSavp | Transport::RtpSavpf))
}

/// The plans of side A and side B for an offer from `sender`: a new conversion, the call's stored
/// one, or none. `off_warning` is set when `SDES-off` kept the relay from converting.
pub(super) fn offer_plans(
    req: &Request<'_>,
    sdes: &SdesOptions<'_>,
    plan: &MediaPlan,
    stored: Option<[LegPlan; 2]>,
    sender: MediaSide,
    off_warning: &mut bool,
) -> Option<[LegPlan; 2]> {
    let now_secure = secure(plan);
    match target(req.transport_protocol) {
        Some(t) if t == now_secure => None,
        Some(true) if sdes.off => {
            *off_warning = true;
            None
        }
        Some(t) => {
            let side = |s: bool| {
                if s {
                    LegPlan::Sdes { best_effort: false }
                } else {
                    LegPlan::Plain
                }
            };
            Some(match sender {
                MediaSide::A => [side(now_secure), side(t)],
                MediaSide::B => [side(t), side(now_secure)],
            })
        }
        None => stored,
    }
}

/// Apply the plans to an offer from `sender` (see [`CallSrtp::offer`]) and drop the offered lines
/// the `SDES` options exclude.
pub(super) fn offer(
    state: &mut CallSrtp,
    plans: [LegPlan; 2],
    sdes: &SdesOptions<'_>,
    sdp: &mut Sdp<'_>,
    plan: &MediaPlan,
    sender: MediaSide,
) -> Result<(), Failure> {
    let from_plan = plan_of(plans, sender);
    let to_plan = plan_of(plans, sender.other());
    state
        .offer(sdp, plan, sender, from_plan, to_plan)
        .map_err(|r| Failure::from(r.reason()))?;
    if !matches!(to_plan, LegPlan::Sdes { .. }) {
        return Ok(());
    }
    for k in 0..sdp.media_count() {
        let excluded: Vec<u32> = sdp
            .cryptos(k)
            .filter(|c| !sdes.allows(c.suite))
            .map(|c| c.tag)
            .collect();
        let had = sdp.cryptos(k).count();
        if had > 0 && excluded.len() == had {
            return Err("SDES options exclude every crypto suite the relay offers".into());
        }
        for tag in excluded {
            sdp.remove_crypto(k, Some(tag));
        }
    }
    Ok(())
}

/// Apply the plans to the answer from `answerer` (see [`CallSrtp::answer`]) and give the relay the
/// stages whose keys changed. Returns how many stages were given.
pub(super) fn answer(
    state: &mut CallSrtp,
    plans: [LegPlan; 2],
    relay: &mut dyn MediaControl,
    session: Option<SessionHandle>,
    sdp: &mut Sdp<'_>,
    plan: &MediaPlan,
    answerer: MediaSide,
) -> Result<usize, Failure> {
    if !state.answers(answerer.other()) {
        return Ok(0);
    }
    state
        .answer(sdp, plan, plan_of(plans, answerer))
        .map_err(|r| Failure::from(r.reason()))?;
    let Some(h) = session else {
        return Ok(0);
    };
    let mut given = 0;
    for (k, side, keys) in state.changed_stages(h) {
        let keys = (!keys.is_plain()).then_some(&keys);
        relay
            .set_srtp(h, k, side, keys)
            .map_err(|e| Failure::from(format!("Media relay error: SRTP stage: {e}")))?;
        given += 1;
    }
    Ok(given)
}

/// Put every leg of session `h` back to plain relaying (the bridge ended).
pub(super) fn unstage(relay: &mut dyn MediaControl, h: SessionHandle) -> Result<(), Failure> {
    let streams = relay
        .stream_count(h)
        .map_err(|e| Failure::from(format!("Media relay error: {e}")))?;
    for k in 0..streams {
        for side in [MediaSide::A, MediaSide::B] {
            relay
                .set_srtp(h, k, side, None)
                .map_err(|e| Failure::from(format!("Media relay error: SRTP stage: {e}")))?;
        }
    }
    Ok(())
}
