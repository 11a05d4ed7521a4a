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
//! Codecs the SBC transcodes: PCMU and PCMA (static 0 and 8), G722/8000 (static 9; 16 kHz audio
//! on an 8000 Hz clock, RFC 3551) and opus/48000/2 (a dynamic payload type, RFC 7587). Each leg's
//! plan also carries its `a=ptime` (the stage repacketises when the legs' differ) and, for Opus,
//! its `fmtp` (`maxplaybackrate`, `maxaveragebitrate`, `useinbandfec`), which set the encoder of
//! what is sent to that leg. Opus added to an offer, or answered to an Opus offerer, says
//! `useinbandfec=1` (the stage rebuilds a lost frame from the next packet's FEC) and
//! `maxplaybackrate=16000` (it decodes at 16 kHz at most).
//!
//! SRTP streams are left alone (the relay cannot read their payload).

use sbc_sip::sdp::{RtpMap, Scope, Sdp};

use super::anchor::{static_encoding, MediaPlan};
use super::MediaSide;

/// An audio codec the relay can transcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 μ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 (`G722/8000`).
    G722,
    /// Opus (`opus/48000/2`).
    Opus,
}

/// What the SDP policy writes into an Opus `fmtp` it sends (see the module doc).
const OPUS_FMTP: &str = "maxplaybackrate=16000;useinbandfec=1";

impl AudioCodec {
    /// Every codec, in order.
    pub const ALL: [Self; 4] = [Self::Pcmu, Self::Pcma, Self::G722, Self::Opus];

    /// The `rtpmap` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::G722 => "G722",
            Self::Opus => "opus",
        }
    }

    /// The `rtpmap` clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Opus => 48000,
            _ => 8000,
        }
    }

    /// The `rtpmap` encoding parameters (channels).
    fn params(self) -> Option<&'static str> {
        match self {
            Self::Opus => Some("2"),
            _ => None,
        }
    }

    /// The codec of an encoding name (ASCII case-insensitive), as configured.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The codec of an `rtpmap` (name and clock rate).
    pub fn from_rtpmap(name: &str, clock_rate: u32) -> Option<Self> {
        Self::from_name(name).filter(|c| c.clock_rate() == clock_rate)
    }

    fn static_pt(self) -> Option<u8> {
        match self {
            Self::Pcmu => Some(0),
            Self::Pcma => Some(8),
            Self::G722 => Some(9),
            Self::Opus => None,
        }
    }

    fn rtpmap(self, payload_type: u8) -> RtpMap<'static> {
        RtpMap {
            payload_type,
            encoding: self.name(),
            clock_rate: self.clock_rate(),
            params: self.params(),
        }
    }
}

/// A leg's Opus `fmtp` (RFC 7587 §6.1); zero: not given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpusFmtp {
    /// `maxplaybackrate` (Hz).
    pub max_playback_rate: u32,
    /// `maxaveragebitrate` (bit/s).
    pub max_average_bitrate: u32,
    /// `useinbandfec=1`.
    pub inband_fec: bool,
}

impl OpusFmtp {
    /// Parse the parameters of an Opus `fmtp` (`key=value` separated by `;`, spaces allowed);
    /// unknown keys and bad values are ignored.
    pub fn parse(params: &str) -> Self {
        let mut f = Self::default();
        for kv in params.split(';') {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("maxplaybackrate") {
                f.max_playback_rate = v.parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("maxaveragebitrate") {
                f.max_average_bitrate = v.parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("useinbandfec") {
                f.inband_fec = v == "1";
            }
        }
        f
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
    /// The leg's `a=ptime` in ms (0: not given).
    pub ptime: u16,
    /// The leg's Opus `fmtp` (Opus legs).
    pub opus: OpusFmtp,
}

/// The formats of both legs of a stream: what the relay's codec stage carries out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamCodecs {
    /// Leg A.
    pub a: LegCodecs,
    /// Leg B.
    pub b: LegCodecs,
    /// The Opus encoder complexity (0-10).
    pub opus_complexity: u8,
    /// G.722 against a narrowband leg through the full codec and a 16 <-> 8 kHz resampler
    /// (`true`), or through its lower sub-band alone (`false`, the default: half the cost).
    pub g722_resample: bool,
}

/// The codec policy for descriptions sent toward one side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecPolicy {
    /// When not empty, only these encodings (and telephone-event, CN) are offered to the side.
    pub allow: Vec<String>,
    /// Encodings never offered to the side.
    pub strip: Vec<String>,
    /// Encodings moved to the front, in this order.
    pub prefer: Vec<String>,
    /// Codecs offered to the side in addition, transcoded by the SBC when chosen.
    pub transcode_to: Vec<AudioCodec>,
    /// The Opus encoder complexity (0-10) of the streams this policy makes transcode.
    pub opus_complexity: u8,
    /// How their G.722 meets a narrowband leg ([`StreamCodecs::g722_resample`]).
    pub g722_resample: bool,
}

/// The Opus encoder complexity unless configured: 3 (cheap enough for hundreds of channels per
/// core, see BENCHMARKS.md; 10 is libopus' best and slowest).
pub const DEFAULT_OPUS_COMPLEXITY: u8 = 3;

impl Default for CodecPolicy {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            strip: Vec::new(),
            prefer: Vec::new(),
            transcode_to: Vec::new(),
            opus_complexity: DEFAULT_OPUS_COMPLEXITY,
            g722_resample: false,
        }
    }
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
    /// The offerer's telephone-event (payload type, clock rate).
    telephone_event: Option<(u8, u32)>,
    /// The offerer's `a=ptime` (0: none) and Opus `fmtp` (of its first Opus format).
    ptime: u16,
    opus: OpusFmtp,
    /// Codecs the SBC added.
    added: Vec<(u8, AudioCodec)>,
}

/// An offer's codec state, until its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferState {
    from: MediaSide,
    streams: Vec<StreamOffer>,
    opus_complexity: u8,
    g722_resample: bool,
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

/// The payload type of `telephone-event/8000` on stream `m`, if offered.
pub(crate) fn telephone_event_pt(sdp: &Sdp<'_>, m: usize) -> Option<u8> {
    telephone_event(sdp, m)
        .filter(|&(_, rate)| rate == 8000)
        .map(|(pt, _)| pt)
}

fn telephone_event(sdp: &Sdp<'_>, m: usize) -> Option<(u8, u32)> {
    payload_types(sdp, m).into_iter().find_map(|pt| {
        sdp.rtpmap(m, pt)
            .filter(|r| r.encoding.eq_ignore_ascii_case("telephone-event"))
            .map(|r| (pt, r.clock_rate))
    })
}

/// The transcodable codec of format `pt`: by its `rtpmap` (name and clock), else by its static
/// number.
fn codec_of(sdp: &Sdp<'_>, m: usize, pt: u8) -> Option<AudioCodec> {
    match sdp.rtpmap(m, pt) {
        Some(r) => AudioCodec::from_rtpmap(r.encoding, r.clock_rate),
        None => AudioCodec::ALL
            .into_iter()
            .find(|c| c.static_pt() == Some(pt)),
    }
}

fn transcodable(sdp: &Sdp<'_>, m: usize) -> Vec<(u8, AudioCodec)> {
    payload_types(sdp, m)
        .into_iter()
        .filter_map(|pt| Some((pt, codec_of(sdp, m, pt)?)))
        .collect()
}

/// The media's `a=ptime` in ms (0: none or not a number).
fn ptime(sdp: &Sdp<'_>, m: usize) -> u16 {
    sdp.attribute(Scope::Media(m), "ptime")
        .and_then(|a| a.value)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The Opus `fmtp` of format `pt`.
fn opus_fmtp(sdp: &Sdp<'_>, m: usize, pt: u8) -> OpusFmtp {
    sdp.fmtp(m, &pt.to_string())
        .map(OpusFmtp::parse)
        .unwrap_or_default()
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
        opus_complexity: policy.opus_complexity,
        g722_resample: policy.g722_resample,
    };
    for m in plain_rtp(plan) {
        let offered = transcodable(sdp, m);
        let te = telephone_event(sdp, m);
        let opus = offered
            .iter()
            .find(|(_, c)| *c == AudioCodec::Opus)
            .map(|(pt, _)| opus_fmtp(sdp, m, *pt))
            .unwrap_or_default();
        let offer_ptime = ptime(sdp, m);
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
                let pt = match c.static_pt().filter(|p| !pts.contains(p)) {
                    Some(p) => p,
                    None => match (96..=127).find(|p| !pts.contains(p)) {
                        Some(p) => p,
                        None => continue,
                    },
                };
                pts.push(pt);
                added.push((pt, c));
                let _ = sdp.set_rtpmap(m, &c.rtpmap(pt));
                if c == AudioCodec::Opus {
                    let _ = sdp.set_fmtp(m, &pt.to_string(), OPUS_FMTP);
                }
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
            ptime: offer_ptime,
            opus,
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
        let Some(codec) = codec_of(sdp, m, first) else {
            continue;
        };
        if !s.added.iter().any(|(_, c)| *c == codec) {
            continue;
        }
        let Some(&(src_pt, src)) = s.offered.first() else {
            continue;
        };
        let answer_te = telephone_event(sdp, m).map(|(pt, _)| pt);
        let answerer = LegCodecs {
            codec,
            payload_type: first,
            telephone_event: answer_te,
            ptime: ptime(sdp, m),
            opus: if codec == AudioCodec::Opus {
                opus_fmtp(sdp, m, first)
            } else {
                OpusFmtp::default()
            },
        };
        let offerer = LegCodecs {
            codec: src,
            payload_type: src_pt,
            telephone_event: s.telephone_event.map(|(pt, _)| pt),
            ptime: s.ptime,
            opus: if src == AudioCodec::Opus {
                s.opus
            } else {
                OpusFmtp::default()
            },
        };
        // The offerer's own formats back: its codec, and its telephone-event when it had one.
        let mut formats = vec![src_pt.to_string()];
        if let Some((te, _)) = s.telephone_event {
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
        let _ = sdp.set_rtpmap(m, &src.rtpmap(src_pt));
        if src == AudioCodec::Opus {
            let _ = sdp.set_fmtp(m, &src_pt.to_string(), OPUS_FMTP);
        }
        if let Some((te, clock_rate)) = s.telephone_event {
            let _ = sdp.set_rtpmap(
                m,
                &RtpMap {
                    payload_type: te,
                    encoding: "telephone-event",
                    clock_rate,
                    params: None,
                },
            );
            let _ = sdp.set_fmtp(m, &te.to_string(), "0-15");
        }
        // The packet time the offerer asked for (the stage sends it that), or none.
        let _ = match s.ptime {
            0 => sdp.remove_attribute(Scope::Media(m), "ptime") > 0,
            p => sdp
                .set_attribute(Scope::Media(m), "ptime", Some(&p.to_string()))
                .is_ok(),
        };
        let (a, b) = match offer.from {
            MediaSide::A => (offerer, answerer),
            MediaSide::B => (answerer, offerer),
        };
        let plan = StreamCodecs {
            a,
            b,
            opus_complexity: offer.opus_complexity,
            g722_resample: offer.g722_resample,
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
                        telephone_event: Some(101),
                        ptime: 0,
                        opus: OpusFmtp::default(),
                    },
                    b: LegCodecs {
                        codec: AudioCodec::Pcmu,
                        payload_type: 0,
                        telephone_event: None,
                        ptime: 0,
                        opus: OpusFmtp::default(),
                    },
                    opus_complexity: DEFAULT_OPUS_COMPLEXITY,
                    g722_resample: false,
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
            ..CodecPolicy::default()
        };
        apply_offer(&mut offer, &p, &policy, MediaSide::B);
        assert_eq!(formats(&offer), vec![0, 8, 101]);
        assert!(offer.rtpmap(0, 18).is_none());
    }

    /// An Opus caller (with telephone-event/48000 and its fmtp) in front of a PCMU PBX at 30 ms:
    /// the PBX is offered PCMU, the caller answered opus/48000/2 with the SBC's fmtp, and the plan
    /// carries both packet times and the caller's Opus parameters.
    #[test]
    fn an_opus_caller_and_a_pcmu_pbx() {
        let text = sdp(
            "111 101",
            "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1; maxaveragebitrate=20000\r\n\
             a=rtpmap:101 telephone-event/48000\r\na=ptime:20\r\n",
        );
        let (offer, state) = offered_pcmu(&text, MediaSide::A);
        assert_eq!(formats(&offer), vec![111, 101, 0]);
        let text = sdp("0", "a=rtpmap:0 PCMU/8000\r\na=ptime:30\r\n");
        let mut answer = Sdp::parse(text.as_bytes()).unwrap();
        let plans = apply_answer(&mut answer, &state);
        assert_eq!(formats(&answer), vec![111, 101]);
        let map = answer.rtpmap(0, 111).unwrap();
        assert_eq!(
            (map.encoding, map.clock_rate, map.params),
            ("opus", 48000, Some("2"))
        );
        assert_eq!(answer.fmtp(0, "111"), Some(OPUS_FMTP));
        assert_eq!(answer.rtpmap(0, 101).unwrap().clock_rate, 48000);
        assert_eq!(
            answer
                .attribute(Scope::Media(0), "ptime")
                .and_then(|a| a.value),
            Some("20")
        );
        let (_, plan) = plans[0];
        assert_eq!(plan.a.codec, AudioCodec::Opus);
        assert_eq!((plan.a.payload_type, plan.a.ptime), (111, 20));
        assert_eq!(
            plan.a.opus,
            OpusFmtp {
                max_playback_rate: 0,
                max_average_bitrate: 20000,
                inband_fec: true
            }
        );
        assert_eq!((plan.b.codec, plan.b.ptime), (AudioCodec::Pcmu, 30));
    }

    /// `transcode_to = ["G722", "opus"]` on a PCMA offer: G722 at its static 9, Opus at the first
    /// free dynamic number with the SBC's fmtp; a PBX choosing G722 gets a plan.
    #[test]
    fn g722_and_opus_can_be_offered() {
        let text = sdp("8", "");
        let mut offer = Sdp::parse(text.as_bytes()).unwrap();
        let p = plan(&offer, &PlanOptions::default()).unwrap();
        let policy = CodecPolicy {
            transcode_to: vec![AudioCodec::G722, AudioCodec::Opus],
            opus_complexity: 5,
            ..CodecPolicy::default()
        };
        let state = apply_offer(&mut offer, &p, &policy, MediaSide::A);
        assert_eq!(formats(&offer), vec![8, 9, 96]);
        assert_eq!(offer.rtpmap(0, 9).unwrap().encoding, "G722");
        assert_eq!(offer.rtpmap(0, 96).unwrap().encoding, "opus");
        assert_eq!(offer.fmtp(0, "96"), Some(OPUS_FMTP));
        let text = sdp("9", "");
        let mut answer = Sdp::parse(text.as_bytes()).unwrap();
        let plans = apply_answer(&mut answer, &state);
        assert_eq!(formats(&answer), vec![8]);
        let (_, plan) = plans[0];
        assert_eq!(
            (plan.a.codec, plan.b.codec),
            (AudioCodec::Pcma, AudioCodec::G722)
        );
        assert_eq!(plan.opus_complexity, 5);
        // Opus at 8000 is not Opus.
        assert_eq!(AudioCodec::from_rtpmap("OPUS", 8000), None);
        assert_eq!(
            OpusFmtp::parse("maxplaybackrate=16000;useinbandfec=0"),
            OpusFmtp {
                max_playback_rate: 16000,
                max_average_bitrate: 0,
                inband_fec: false
            }
        );
    }

    #[test]
    fn a_taken_static_number_gets_a_dynamic_one() {
        let text = sdp("8 0", "a=rtpmap:0 X-OTHER/8000\r\n");
        let (offer, _) = offered_pcmu(&text, MediaSide::A);
        assert_eq!(formats(&offer), vec![8, 0, 96]);
        assert_eq!(offer.rtpmap(0, 96).unwrap().encoding, "PCMU");
    }
}
