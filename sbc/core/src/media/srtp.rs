//! SDES-SRTP termination applied to a call's descriptions (RFC 4568, RFC 3711): the decisions of
//! [`super::sdes`] carried out on the SDP and turned into the keys of the relay's stages.
//!
//! Per relayed RTP stream (`RTP/AVP`, `RTP/AVPF`, `RTP/SAVP`, `RTP/SAVPF`; DTLS-SRTP and non-RTP
//! streams are left alone) and per leg, with the plan of the side the leg is on ([`LegPlan`]):
//!
//! - **Offer from X** (plan `Sdes`): the first usable `a=crypto` line is chosen
//!   ([`super::sdes::choose_crypto`]), or the offer is refused (488 with the reason). The SBC draws
//!   its own key for X in the chosen suite (kept for the call: a re-offer in the same suite keeps
//!   it). An offer from a `Plain` side that is `RTP/SAVP` is refused; its `a=crypto` lines, if any
//!   (best effort), are ignored.
//! - **Toward Y**: every `a=crypto` line is removed; `Plain`: `RTP/AVP` (`RTP/AVPF`); `Sdes`:
//!   `RTP/SAVP` (`RTP/SAVPF`) with one line per supported suite, each with a key of the SBC's
//!   (`optional`: the profile stays `RTP/AVP`).
//! - **Answer from Y**: `Sdes`: the line Y kept must repeat the tag and suite of one the SBC
//!   offered; its key is Y's. Toward X the answer gets X's profile back and, when X is `Sdes`, one
//!   line: the tag and suite X's chosen line had, with the SBC's key.
//! - **Stages**, once the answer settled the keys: the stage on leg L unprotects what arrives on L
//!   with L's remote key and protects what leaves toward the other leg with the SBC's key for it
//!   ([`StageKeys`]). Only stages whose keys changed are given to the relay again, so a re-INVITE
//!   that keeps the keys keeps the contexts (rollover counters, replay windows).
//!
//! Keys never appear in `Debug` output.

use sbc_sip::sdp::sdes::crypto_value;
use sbc_sip::sdp::{Crypto, Scope, Sdp};

use super::anchor::{MediaPlan, Transport};
use super::sdes::{self, canonical_suite, choose_crypto, LegPlan, Refusal, SrtpMode, SUITES};
use super::{MediaSide, SessionHandle};
pub use super::{SrtpKey, StageKeys};

/// The SRTP settings of the anchor: the mode of each routing side and whether its SIP is TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SrtpPolicy {
    /// Mode of the outside.
    pub outside: SrtpMode,
    /// Mode of the inside.
    pub inside: SrtpMode,
    /// Every SIP path of the outside is TLS.
    pub outside_tls: bool,
    /// Every SIP path of the inside is TLS.
    pub inside_tls: bool,
    /// Never write SDES keys toward a side that is not TLS ([`Refusal::NotTls`]).
    pub require_tls_for_sdes: bool,
}

impl SrtpPolicy {
    /// Both sides pass: descriptions are not touched.
    pub fn is_pass(&self) -> bool {
        self.outside == SrtpMode::Pass && self.inside == SrtpMode::Pass
    }

    /// The plan of a leg of side `outside` in `mode` (a trunk's or target group's own mode, over
    /// the side's), with the side's TLS rule.
    pub fn plan_mode(&self, outside: bool, mode: SrtpMode) -> Result<LegPlan, Refusal> {
        let tls = if outside {
            self.outside_tls
        } else {
            self.inside_tls
        };
        sdes::plan(mode, tls, self.require_tls_for_sdes)
    }

    /// The plan of the outside (`true`) or the inside.
    pub fn plan(&self, outside: bool) -> Result<LegPlan, Refusal> {
        if outside {
            sdes::plan(self.outside, self.outside_tls, self.require_tls_for_sdes)
        } else {
            sdes::plan(self.inside, self.inside_tls, self.require_tls_for_sdes)
        }
    }
}

/// The keys of one leg of a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct LegKeys {
    /// The remote's key (what it sends with).
    remote: Option<SrtpKey>,
    /// The SBC's key for the remote (what the SBC sends to it with).
    local: Option<SrtpKey>,
}

/// What an offer did to one stream, for its answer.
#[derive(Clone, Debug)]
struct StreamOffer {
    index: usize,
    /// The offerer's `m=` proto, written back in the answer it gets.
    proto: String,
    /// The offerer's chosen line: its tag, the offerer's key and the SBC's key for the offerer.
    chosen: Option<(u32, SrtpKey, SrtpKey)>,
    /// The lines the SBC offered the answerer: tag and the SBC's key.
    offered: Vec<(u32, SrtpKey)>,
}

#[derive(Clone, Debug)]
struct PendingOffer {
    from: MediaSide,
    streams: Vec<StreamOffer>,
}

/// The SRTP state of one call.
#[derive(Clone, Debug, Default)]
pub struct CallSrtp {
    /// Per stream: leg A's and leg B's keys, as the last answer settled them.
    legs: Vec<PerLeg<LegKeys>>,
    /// The last offer, until the next one.
    offer: Option<PendingOffer>,
    /// Per stream: the stage keys the relay holds for leg A and leg B, on `installed_on`.
    installed: Vec<PerLeg<StageKeys>>,
    installed_on: Option<SessionHandle>,
}

/// One value per leg.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PerLeg<T> {
    a: T,
    b: T,
}

impl<T> PerLeg<T> {
    fn of(&self, side: MediaSide) -> &T {
        match side {
            MediaSide::A => &self.a,
            MediaSide::B => &self.b,
        }
    }

    fn of_mut(&mut self, side: MediaSide) -> &mut T {
        match side {
            MediaSide::A => &mut self.a,
            MediaSide::B => &mut self.b,
        }
    }
}

/// The streams SDES applies to: relayed, and RTP over `RTP/AVP(F)` or `RTP/SAVP(F)`.
fn sdes_streams(plan: &MediaPlan) -> impl Iterator<Item = (usize, Transport)> + '_ {
    plan.entries()
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e.is_relayed()
                && matches!(
                    e.transport,
                    Transport::RtpAvp
                        | Transport::RtpAvpf
                        | Transport::RtpSavp
                        | Transport::RtpSavpf
                )
        })
        .map(|(k, e)| (k, e.transport))
}

fn profile(secure: bool, feedback: bool) -> &'static str {
    match (secure, feedback) {
        (false, false) => "RTP/AVP",
        (false, true) => "RTP/AVPF",
        (true, false) => "RTP/SAVP",
        (true, true) => "RTP/SAVPF",
    }
}

fn add_line(sdp: &mut Sdp<'_>, k: usize, tag: u32, key: &SrtpKey) -> Result<(), Refusal> {
    let value = crypto_value(tag, &key.suite, &key.key_salt);
    sdp.add_attribute(Scope::Media(k), "crypto", Some(&value))
        .map_err(|_| Refusal::Internal)
}

fn fresh(suite: &str) -> Result<SrtpKey, Refusal> {
    let len = sdes::suite_key_len(suite).ok_or(Refusal::NoSupportedSuite)?;
    let key_salt = sdes::new_key(len).ok_or(Refusal::Internal)?;
    Ok(SrtpKey {
        suite: suite.to_owned(),
        key_salt,
        lifetime: None,
    })
}

impl CallSrtp {
    /// Whether a description sent to `to` answers the pending offer (the offer came from `to`).
    pub fn answers(&self, to: MediaSide) -> bool {
        self.offer.as_ref().is_some_and(|o| o.from == to)
    }

    /// The SBC's key for the remote of leg `side` in stream `k`, in `suite`: the one it has when
    /// the suite is the same (a re-offer keeps the key), else a fresh one.
    fn local_key(&self, k: usize, side: MediaSide, suite: &str) -> Result<SrtpKey, Refusal> {
        let have = self
            .legs
            .get(k)
            .and_then(|l| l.of(side).local.as_ref())
            .filter(|key| canonical_suite(&key.suite) == canonical_suite(suite));
        match have {
            Some(key) => Ok(SrtpKey {
                suite: suite.to_owned(),
                key_salt: key.key_salt.clone(),
                lifetime: None,
            }),
            None => fresh(suite),
        }
    }

    /// Apply the plans to an offer from leg `from` (planned as `plan`) before it is sent to the
    /// other leg. On a refusal the description may be half edited (discard it) and the state is
    /// unchanged.
    pub fn offer(
        &mut self,
        sdp: &mut Sdp<'_>,
        plan: &MediaPlan,
        from: MediaSide,
        from_plan: LegPlan,
        to_plan: LegPlan,
    ) -> Result<(), Refusal> {
        let to = from.other();
        let mut streams = Vec::new();
        if from_plan == LegPlan::Pass || to_plan == LegPlan::Pass {
            self.offer = None;
            return Ok(());
        }
        for (k, transport) in sdes_streams(plan) {
            let proto = sdp.media(k).map(|m| m.proto.to_owned()).unwrap_or_default();
            let chosen = match from_plan {
                LegPlan::Plain if transport.is_secure() => return Err(Refusal::PlainOnly),
                LegPlan::Sdes { best_effort } => match choose_crypto(sdp.cryptos(k)) {
                    Ok(c) => {
                        let local = self.local_key(k, from, &c.suite)?;
                        let remote = SrtpKey {
                            suite: c.suite,
                            key_salt: c.key_salt,
                            lifetime: c.lifetime,
                        };
                        Some((c.tag, remote, local))
                    }
                    Err(_) if best_effort && !transport.is_secure() => None,
                    Err(r) => return Err(r),
                },
                _ => None,
            };
            sdp.remove_crypto(k, None);
            let feedback = matches!(transport, Transport::RtpAvpf | Transport::RtpSavpf);
            let mut offered = Vec::new();
            let secure = match to_plan {
                LegPlan::Sdes { best_effort } => {
                    for (tag, (name, _)) in (1u32..).zip(SUITES.iter()) {
                        let key = self.local_key(k, to, name)?;
                        add_line(sdp, k, tag, &key)?;
                        offered.push((tag, key));
                    }
                    !best_effort
                }
                _ => false,
            };
            sdp.set_media_proto(k, profile(secure, feedback))
                .map_err(|_| Refusal::Internal)?;
            streams.push(StreamOffer {
                index: k,
                proto,
                chosen,
                offered,
            });
        }
        self.offer = Some(PendingOffer { from, streams });
        Ok(())
    }

    /// Apply the plans to the answer (planned as `plan`) from the leg the pending offer was sent
    /// to, before it is sent to the offerer, and settle the keys of both legs. A refusal (the
    /// answerer kept no line the SBC offered, on a side where SRTP is required) leaves the state
    /// unchanged.
    pub fn answer(
        &mut self,
        sdp: &mut Sdp<'_>,
        plan: &MediaPlan,
        answerer_plan: LegPlan,
    ) -> Result<(), Refusal> {
        let Some(offer) = self.offer.as_ref() else {
            return Ok(());
        };
        let offerer = offer.from;
        let mut settled = Vec::with_capacity(offer.streams.len());
        for so in &offer.streams {
            let k = so.index;
            if k >= sdp.media_count() {
                continue;
            }
            let relayed = plan.entries().get(k).is_some_and(|e| e.is_relayed());
            let theirs = match answerer_plan {
                LegPlan::Sdes { best_effort } if relayed => {
                    match answer_crypto(sdp.cryptos(k), &so.offered) {
                        Ok(keys) => Some(keys),
                        Err(_) if best_effort => None,
                        Err(r) => return Err(r),
                    }
                }
                _ => None,
            };
            sdp.remove_crypto(k, None);
            sdp.set_media_proto(k, &so.proto)
                .map_err(|_| Refusal::Internal)?;
            let mut legs = PerLeg::<LegKeys>::default();
            if relayed {
                if let Some((tag, remote, local)) = &so.chosen {
                    add_line(sdp, k, *tag, local)?;
                    *legs.of_mut(offerer) = LegKeys {
                        remote: Some(remote.clone()),
                        local: Some(local.clone()),
                    };
                }
                if let Some((remote, local)) = theirs {
                    *legs.of_mut(offerer.other()) = LegKeys {
                        remote: Some(remote),
                        local: Some(local),
                    };
                }
            }
            settled.push((k, legs));
        }
        for (k, legs) in settled {
            if self.legs.len() <= k {
                self.legs.resize_with(k + 1, Default::default);
            }
            if let Some(slot) = self.legs.get_mut(k) {
                *slot = legs;
            }
        }
        Ok(())
    }

    /// Whether the pending offer terminates SRTP on stream `k` (keys from the offerer, or lines
    /// offered to the answerer).
    fn offered_srtp(&self, k: usize) -> bool {
        self.offer.as_ref().is_some_and(|o| {
            o.streams
                .iter()
                .any(|s| s.index == k && (s.chosen.is_some() || !s.offered.is_empty()))
        })
    }

    /// The streams the keys or the pending offer name.
    fn stream_count(&self) -> usize {
        let offered = self
            .offer
            .as_ref()
            .and_then(|o| o.streams.iter().map(|s| s.index.saturating_add(1)).max())
            .unwrap_or(0);
        self.legs.len().max(offered)
    }

    /// The stage keys of leg `side` of stream `k` as the keys stand: withheld while an offer
    /// terminates SRTP on a stream no answer has settled yet.
    fn stage(&self, k: usize, side: MediaSide) -> StageKeys {
        let Some(legs) = self.legs.get(k) else {
            if self.offered_srtp(k) {
                return StageKeys::withheld();
            }
            return StageKeys::default();
        };
        StageKeys {
            unprotect: legs.of(side).remote.clone(),
            protect: legs.of(side.other()).local.clone(),
            withheld: false,
        }
    }

    /// The stages of session `h` that differ from what the relay was given: (stream, leg, keys),
    /// noted as given. A session other than the last one given starts from plain stages.
    pub fn changed_stages(&mut self, h: SessionHandle) -> Vec<(usize, MediaSide, StageKeys)> {
        if self.installed_on != Some(h) {
            self.installed.clear();
            self.installed_on = Some(h);
        }
        let count = self.stream_count();
        if self.installed.len() < count {
            self.installed.resize_with(count, Default::default);
        }
        let mut out = Vec::new();
        for k in 0..count {
            for side in [MediaSide::A, MediaSide::B] {
                let want = self.stage(k, side);
                if let Some(have) = self.installed.get_mut(k).map(|s| s.of_mut(side)) {
                    if *have != want {
                        *have = want.clone();
                        out.push((k, side, want));
                    }
                }
            }
        }
        out
    }
}

/// The answerer's line: one that repeats the tag and suite of a line the SBC offered, with a
/// usable key. Returns the answerer's key and the SBC's key of that line.
fn answer_crypto<'a>(
    lines: impl Iterator<Item = Crypto<'a>>,
    offered: &[(u32, SrtpKey)],
) -> Result<(SrtpKey, SrtpKey), Refusal> {
    let mut refusal = Refusal::NoCrypto;
    for line in lines {
        let Some((_, local)) = offered.iter().find(|(tag, key)| {
            *tag == line.tag && canonical_suite(&key.suite) == canonical_suite(line.suite)
        }) else {
            refusal = Refusal::NoSupportedSuite;
            continue;
        };
        match choose_crypto(std::iter::once(line)) {
            Ok(c) => {
                let remote = SrtpKey {
                    suite: c.suite,
                    key_salt: c.key_salt,
                    lifetime: c.lifetime,
                };
                return Ok((remote, local.clone()));
            }
            Err(r) => refusal = r,
        }
    }
    Err(refusal)
}

#[cfg(test)]
pub(crate) mod tests;
