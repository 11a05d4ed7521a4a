//! Codec policy in SDP: what the SBC lets through toward each side (allow, strip, prefer), the
//! codecs it offers in addition because it can transcode to them (transcode-to), and, once the
//! answer has chosen, the formats of both legs of each stream ([`StreamCodecs`]) for the relay's
//! codec stage.
//!
//! Offer (toward side S, with S's [`CodecPolicy`]): for each relayed plain RTP stream, formats
//! named in `strip` are removed, and when `allow` is not empty only its formats (and
//! telephone-event, comfort noise) stay; then every `transcode_to` codec the offer lacks is added
//! when the offer holds a codec the SBC can transcode from; `prefer` moves its formats first.
//! What the offerer listed is kept for the answer ([`OfferState`]).
//!
//! Answer: when the answerer chose a codec the SBC added, the answer sent back to the offerer
//! names the offerer's first transcodable codec instead (and keeps the offerer's telephone-event,
//! which the relay then relays, plays as tones or detects), and the relay gets the plan of both
//! legs. Otherwise the answer passes as it is and the relay gets no plan.
//!
//! SRTP streams are left alone (the relay cannot read their payload).

use sbc_sip::sdp::{RtpMap, Sdp};

use super::anchor::{static_encoding, MediaPlan};
use super::MediaSide;

/// An audio codec the relay can transcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 μ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl AudioCodec {
    /// The `rtpmap` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    /// The codec of an encoding name (ASCII case-insensitive) at 8 kHz.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Pcmu, Self::Pcma]
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    fn static_pt(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }
}

/// One leg's negotiated formats in a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegCodecs {
    /// The audio codec.
    pub codec: AudioCodec,
    /// Its payload type on the leg.
    pub payload_type: u8,
    /// The leg's telephone-event payload type, if negotiated.
    pub telephone_event: Option<u8>,
}

/// The formats of both legs of a stream: what the relay's codec stage carries out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamCodecs {
    /// Leg A.
    pub a: LegCodecs,
    /// Leg B.
    pub b: LegCodecs,
}

/// The codec policy for descriptions sent toward one side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecPolicy {
    /// When not empty, only these encodings (and telephone-event, CN) are offered to the side.
    pub allow: Vec<String>,
    /// Encodings never offered to the side.
    pub strip: Vec<String>,
    /// Encodings moved to the front, in this order.
    pub prefer: Vec<String>,
    /// Codecs offered to the side in addition, transcoded by the SBC when chosen.
    pub transcode_to: Vec<AudioCodec>,
}

impl CodecPolicy {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty()
            && self.strip.is_empty()
            && self.prefer.is_empty()
            && self.transcode_to.is_empty()
    }
}

/// The policies of the two routing sides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecPolicies {
    /// For descriptions sent to the outside.
    pub outside: CodecPolicy,
    /// For descriptions sent to the inside.
    pub inside: CodecPolicy,
}

/// What an offer's stream held, kept for its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct StreamOffer {
    index: usize,
    /// The offerer's transcodable codecs, in its order.
    offered: Vec<(u8, AudioCodec)>,
    /// The offerer's telephone-event.
    telephone_event: Option<u8>,
    /// Codecs the SBC added.
    added: Vec<(u8, AudioCodec)>,
}

/// An offer's codec state, until its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferState {
    from: MediaSide,
    streams: Vec<StreamOffer>,
}

impl OfferState {
    /// The side that sent the offer.
    pub fn from(&self) -> MediaSide {
        self.from
    }
}

/// The encoding name of format `pt` of media `m`.
fn encoding<'s>(sdp: &'s Sdp<'_>, m: usize, pt: u8) -> Option<&'s str> {
    sdp.rtpmap(m, pt)
        .map(|r| r.encoding)
        .or_else(|| static_encoding(pt))
}

fn payload_types(sdp: &Sdp<'_>, m: usize) -> Vec<u8> {
    sdp.media(m)
        .map(|l| l.formats().filter_map(|f| f.parse::<u8>().ok()).collect())
        .unwrap_or_default()
}

fn telephone_event(sdp: &Sdp<'_>, m: usize) -> Option<u8> {
    payload_types(sdp, m).into_iter().find(|&pt| {
        sdp.rtpmap(m, pt)
            .is_some_and(|r| r.encoding.eq_ignore_ascii_case("telephone-event"))
    })
}

fn transcodable(sdp: &Sdp<'_>, m: usize) -> Vec<(u8, AudioCodec)> {
    payload_types(sdp, m)
        .into_iter()
        .filter_map(|pt| Some((pt, AudioCodec::from_name(encoding(sdp, m, pt)?)?)))
        .collect()
}

fn plain_rtp(plan: &MediaPlan) -> impl Iterator<Item = usize> + '_ {
    plan.entries()
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_relayed() && e.transport.is_rtp() && !e.transport.is_secure())
        .map(|(k, _)| k)
}

/// Apply `policy` to an offer from `from` before it is sent on (see the module doc). Returns the
/// state its answer needs; the SDP is changed only where the policy says.
pub fn apply_offer(
    sdp: &mut Sdp<'_>,
    plan: &MediaPlan,
    policy: &CodecPolicy,
    from: MediaSide,
) -> OfferState {
    let mut state = OfferState {
        from,
        streams: Vec::new(),
    };
    for m in plain_rtp(plan) {
        let offered = transcodable(sdp, m);
        let te = telephone_event(sdp, m);
        if !policy.is_empty() {
            let names: Vec<(u8, String)> = payload_types(sdp, m)
                .into_iter()
                .map(|pt| (pt, encoding(sdp, m, pt).unwrap_or("").to_ascii_uppercase()))
                .collect();
            let listed = |l: &[String], n: &str| l.iter().any(|x| x.eq_ignore_ascii_case(n));
            let keep: Vec<u8> = names
                .iter()
                .filter(|(_, n)| {
                    let always = n == "TELEPHONE-EVENT" || n == "CN";
                    !listed(&policy.strip, n)
                        && (policy.allow.is_empty() || always || listed(&policy.allow, n))
                })
                .map(|(pt, _)| *pt)
                .collect();
            let _ = sdp.retain_payload_types(m, &keep);
        }
        let mut added = Vec::new();
        if !offered.is_empty() {
            let mut pts = payload_types(sdp, m);
            for &c in &policy.transcode_to {
                if transcodable(sdp, m).iter().any(|(_, x)| *x == c) {
                    continue;
                }
                let pt = if !pts.contains(&c.static_pt()) {
                    c.static_pt()
                } else {
                    match (96..=127).find(|p| !pts.contains(p)) {
                        Some(p) => p,
                        None => continue,
                    }
                };
                pts.push(pt);
                added.push((pt, c));
                let map = RtpMap {
                    payload_type: pt,
                    encoding: c.name(),
                    clock_rate: 8000,
                    params: None,
                };
                let _ = sdp.set_rtpmap(m, &map);
            }
            // Formats the policy prefers first, then the offer's, then the added ones.
            let rank = |pt: &u8| {
                let name = encoding(sdp, m, *pt).unwrap_or("");
                policy
                    .prefer
                    .iter()
                    .position(|p| p.eq_ignore_ascii_case(name))
                    .unwrap_or(usize::MAX)
            };
            let mut order = pts.clone();
            order.sort_by_key(rank);
            if order != payload_types(sdp, m) {
                let text: Vec<String> = order.iter().map(u8::to_string).collect();
                let refs: Vec<&str> = text.iter().map(String::as_str).collect();
                let _ = sdp.set_media_formats(m, &refs);
            }
        }
        state.streams.push(StreamOffer {
            index: m,
            offered,
            telephone_event: te,
            added,
        });
    }
    state
}

/// Apply an answer to `offer`: where the answerer chose a codec the SBC added, rewrite the answer
/// for the offerer and return the plan of each such stream (`(m= index, plan)`); streams not
/// listed need no stage.
pub fn apply_answer(sdp: &mut Sdp<'_>, offer: &OfferState) -> Vec<(usize, StreamCodecs)> {
    let mut out = Vec::new();
    for s in &offer.streams {
        let m = s.index;
        let Some(&first) = payload_types(sdp, m).first() else {
            continue;
        };
        let Some(codec) = encoding(sdp, m, first).and_then(AudioCodec::from_name) else {
            continue;
        };
        if !s.added.iter().any(|(_, c)| *c == codec) {
            continue;
        }
        let Some(&(src_pt, src)) = s.offered.first() else {
            continue;
        };
        let answer_te = telephone_event(sdp, m);
        let answerer = LegCodecs {
            codec,
            payload_type: first,
            telephone_event: answer_te,
        };
        let offerer = LegCodecs {
            codec: src,
            payload_type: src_pt,
            telephone_event: s.telephone_event,
        };
        // The offerer's own formats back: its codec, and its telephone-event when it had one.
        let mut formats = vec![src_pt.to_string()];
        if let Some(te) = s.telephone_event {
            formats.push(te.to_string());
        }
        let refs: Vec<&str> = formats.iter().map(String::as_str).collect();
        // Listed with the answer's own formats first, so that filtering removes their rtpmaps.
        let mut all = formats.clone();
        all.extend(
            payload_types(sdp, m)
                .iter()
                .map(u8::to_string)
                .filter(|f| !formats.contains(f)),
        );
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        if sdp.set_media_formats(m, &all).is_err() {
            continue;
        }
        let _ = sdp.retain_formats(m, |f| refs.contains(&f));
        let _ = sdp.set_rtpmap(
            m,
            &RtpMap {
                payload_type: src_pt,
                encoding: src.name(),
                clock_rate: 8000,
                params: None,
            },
        );
        if let Some(te) = s.telephone_event {
            let _ = sdp.set_rtpmap(
                m,
                &RtpMap {
                    payload_type: te,
                    encoding: "telephone-event",
                    clock_rate: 8000,
                    params: None,
                },
            );
            let _ = sdp.set_fmtp(m, &te.to_string(), "0-15");
        }
        let plan = match offer.from {
            MediaSide::A => StreamCodecs {
                a: offerer,
                b: answerer,
            },
            MediaSide::B => StreamCodecs {
                a: answerer,
                b: offerer,
            },
        };
        out.push((m, plan));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::anchor::{plan, PlanOptions};

    fn sdp(formats: &str, maps: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP {formats}\r\n{maps}"
        )
    }

    fn formats(s: &Sdp<'_>) -> Vec<u8> {
        payload_types(s, 0)
    }

    /// `text` parsed and offered by `from` under a policy that transcodes to PCMU.
    fn offered_pcmu(text: &str, from: MediaSide) -> (Sdp<'_>, OfferState) {
        let mut offer = Sdp::parse(text.as_bytes()).unwrap();
        let p = plan(&offer, &PlanOptions::default()).unwrap();
        let policy = CodecPolicy {
            transcode_to: vec![AudioCodec::Pcmu],
            ..CodecPolicy::default()
        };
        let state = apply_offer(&mut offer, &p, &policy, from);
        (offer, state)
    }

    #[test]
    fn a_pcma_only_caller_and_a_pcmu_only_pbx() {
        let text = sdp(
            "8 101",
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
        let (offer, state) = offered_pcmu(&text, MediaSide::A);
        assert_eq!(formats(&offer), vec![8, 101, 0]);
        assert_eq!(offer.rtpmap(0, 0).unwrap().encoding, "PCMU");

        // The PBX answers PCMU alone, without telephone-event.
        let text = sdp("0", "a=rtpmap:0 PCMU/8000\r\n");
        let mut answer = Sdp::parse(text.as_bytes()).unwrap();
        let plans = apply_answer(&mut answer, &state);
        assert_eq!(formats(&answer), vec![8, 101]);
        assert_eq!(answer.rtpmap(0, 8).unwrap().encoding, "PCMA");
        assert!(answer.rtpmap(0, 0).is_none());
        assert_eq!(answer.fmtp(0, "101"), Some("0-15"));
        assert_eq!(
            plans,
            vec![(
                0,
                StreamCodecs {
                    a: LegCodecs {
                        codec: AudioCodec::Pcma,
                        payload_type: 8,
                        telephone_event: Some(101)
                    },
                    b: LegCodecs {
                        codec: AudioCodec::Pcmu,
                        payload_type: 0,
                        telephone_event: None
                    },
                }
            )]
        );
    }

    #[test]
    fn an_answer_with_a_shared_codec_needs_no_stage() {
        let text = sdp("8 0", "");
        let (offer, state) = offered_pcmu(&text, MediaSide::A);
        assert_eq!(formats(&offer), vec![8, 0], "PCMU was offered already");
        let text = sdp("0", "");
        let mut answer = Sdp::parse(text.as_bytes()).unwrap();
        assert!(apply_answer(&mut answer, &state).is_empty());
        assert_eq!(formats(&answer), vec![0]);
    }

    #[test]
    fn strip_allow_and_prefer() {
        let maps = "a=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        let text = sdp("18 8 0 9 101", maps);
        let mut offer = Sdp::parse(text.as_bytes()).unwrap();
        let p = plan(&offer, &PlanOptions::default()).unwrap();
        let policy = CodecPolicy {
            allow: vec!["PCMU".into(), "PCMA".into(), "G729".into()],
            strip: vec!["g729".into()],
            prefer: vec!["PCMU".into()],
            transcode_to: Vec::new(),
        };
        apply_offer(&mut offer, &p, &policy, MediaSide::B);
        assert_eq!(formats(&offer), vec![0, 8, 101]);
        assert!(offer.rtpmap(0, 18).is_none());
    }

    #[test]
    fn a_taken_static_number_gets_a_dynamic_one() {
        let text = sdp("8 0", "a=rtpmap:0 X-OTHER/8000\r\n");
        let (offer, _) = offered_pcmu(&text, MediaSide::A);
        assert_eq!(formats(&offer), vec![8, 0, 96]);
        assert_eq!(offer.rtpmap(0, 96).unwrap().encoding, "PCMU");
    }
}
