//! The B2BUA's DTMF interworking against a recording relay: INFO digits from an `info` caller
//! played toward an `rfc4733` PBX, the PBX's telephone-events sent to the caller as INFOs one at a
//! time, and the INFOs the interworking does not take relayed or refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_sip::transaction::Flow;
use sbc_sip::{build, HeaderName, Message, Method};

use crate::b2bua::{B2bua, B2buaConfig, Origin, Target};
use crate::media::callmedia::{LegOverrides, MediaAnchor, MediaSettings};
use crate::media::codecs::CodecPolicy;
use crate::media::dtmf_relay::{DtmfMode, DtmfPolicy};
use crate::media::testing::FakeMedia;
use crate::media::{DtmfDigit, MediaSide};
use crate::signalling::ids::WorkerId;
use crate::signalling::topology::Side;

const PHONE: &str = "198.51.100.7:5060";
const PBX: &str = "10.0.0.2:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn sdp(port: u16, te: bool) -> String {
    let (fmts, te_lines) = if te {
        (
            "0 101",
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
        )
    } else {
        ("0", "")
    };
    format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {fmts}\r\na=rtpmap:0 PCMU/8000\r\n{te_lines}"
    )
}

struct Rig {
    /// The PBX target group's own media settings.
    pbx_media: Option<Arc<LegOverrides>>,
    sbc: B2bua,
    relay: FakeMedia,
    now: Instant,
    /// What the SBC sent, parsed, with its destination.
    sent: Vec<(SocketAddr, Message)>,
}

impl Rig {
    fn new(policy: DtmfPolicy) -> Self {
        #[allow(clippy::disallowed_methods)] // the one origin of test time
        let now = Instant::now();
        let config = B2buaConfig::new(
            addr("203.0.113.1:5060"),
            addr("10.0.0.1:5060"),
            WorkerId(1),
            [5; 32],
        );
        let mut sbc = B2bua::new(config);
        let mut anchor = MediaAnchor::new(MediaSettings {
            address: "203.0.113.1".parse().unwrap(),
            no_media_timeout: None,
        });
        anchor.set_dtmf_policy(policy);
        sbc.attach_media(anchor);
        Self {
            pbx_media: None,
            sbc,
            relay: FakeMedia::new(30_000, 30_100),
            now,
            sent: Vec::new(),
        }
    }

    fn deliver(&mut self, text: String, from: &str) {
        let side = if from == PBX {
            Side::Inside
        } else {
            Side::Outside
        };
        let msg = Message::parse(Bytes::from(text)).unwrap();
        let origin = Origin {
            source: addr(from),
            side,
            reliable: false,
            flow: Flow::default(),
        };
        let media = self.pbx_media.clone();
        let pbx = move |_: &Message, _: Side| {
            Some(Target {
                media: media.clone(),
                ..Target::udp(Side::Inside, addr(PBX), Flow::default())
            })
        };
        self.sbc
            .handle_message(self.now, msg, origin, &pbx, &mut self.relay);
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(t) = self.sbc.poll_transmit() {
            self.sent.push((t.dest, Message::parse(t.bytes).unwrap()));
        }
    }

    /// The last request of `method` sent to `dest`.
    fn last_request(&self, dest: &str, method: &Method) -> Option<Message> {
        self.sent
            .iter()
            .rev()
            .find(|(d, m)| *d == addr(dest) && m.method() == Some(method))
            .map(|(_, m)| m.clone())
    }

    /// The statuses sent to `dest` for requests with CSeq method `method`.
    fn statuses(&self, dest: &str, method: &str) -> Vec<u16> {
        self.sent
            .iter()
            .filter(|(d, m)| *d == addr(dest) && !m.is_request())
            .filter(|(_, m)| {
                m.header(HeaderName::CSeq)
                    .is_some_and(|c| c.ends_with(method))
            })
            .filter_map(|(_, m)| m.status())
            .collect()
    }

    /// Answer `req` (sent to the PBX or the phone) with `code`, `body` as SDP when given.
    fn answer(&mut self, req: &Message, code: u16, tag: &str, body: Option<String>, from: &str) {
        let mut out = Vec::new();
        let mut w = build::response(req, code, "OK", Some(tag), &mut out);
        w.header("Contact", &format!("<sip:x@{from}>"));
        match &body {
            Some(b) => w.finish(Some("application/sdp"), b.as_bytes()),
            None => w.finish(None, b""),
        }
        self.deliver(String::from_utf8(out).unwrap(), from);
    }

    fn phone_request(&mut self, method: &str, cseq: u32, extra: &str, body: &str) {
        let ok = self
            .sent
            .iter()
            .find(|(d, m)| *d == addr(PHONE) && m.status() == Some(200))
            .map(|(_, m)| m.clone())
            .unwrap();
        let to = ok.header(HeaderName::To).unwrap().to_owned();
        let text = format!(
            "{method} sip:203.0.113.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE};branch=z9hG4bKp{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=ph1\r\nTo: {to}\r\n\
             Call-ID: dtmf-call-1\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.deliver(text, PHONE);
    }
}

/// A confirmed call phone (outside) -> PBX (inside): the phone offers PCMU only, the PBX answers
/// with telephone-event 101.
fn call(policy: DtmfPolicy) -> Rig {
    call_with(Rig::new(policy), sdp(4000, false), sdp(6000, true))
}

/// The same call with the phone's offer `body` and the PBX's answer `answer`.
fn call_with(mut r: Rig, body: String, answer: String) -> Rig {
    let invite = format!(
        "INVITE sip:200@203.0.113.1 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE};branch=z9hG4bKi1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=ph1\r\nTo: <sip:200@203.0.113.1>\r\n\
         Call-ID: dtmf-call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{PHONE}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    r.deliver(invite, PHONE);
    let inv = r.last_request(PBX, &Method::Invite).unwrap();
    r.answer(&inv, 200, "pbx1", Some(answer), PBX);
    r.phone_request("ACK", 1, "", "");
    r
}

fn both(outside: DtmfMode, inside: DtmfMode) -> DtmfPolicy {
    DtmfPolicy { outside, inside }
}

#[test]
fn info_digits_become_events_toward_an_rfc4733_leg() {
    let mut r = call(both(DtmfMode::Info, DtmfMode::Rfc4733));
    // The phone offered no telephone-event: the PBX is offered one, the phone's answer has none.
    let offer = r.last_request(PBX, &Method::Invite).unwrap();
    let offer = String::from_utf8_lossy(offer.body()).into_owned();
    assert!(offer.contains("RTP/AVP 0 101\r\n"), "{offer}");
    assert!(
        offer.contains("a=rtpmap:101 telephone-event/8000"),
        "{offer}"
    );
    let ok = r
        .sent
        .iter()
        .find(|(d, m)| *d == addr(PHONE) && m.status() == Some(200))
        .map(|(_, m)| String::from_utf8_lossy(m.body()).into_owned())
        .unwrap();
    assert!(ok.contains("RTP/AVP 0\r\n"), "{ok}");
    assert!(!ok.contains("telephone-event"), "{ok}");
    let relayed_before = r.sent.iter().filter(|(d, _)| *d == addr(PBX)).count();
    for (cseq, digit) in [(2, "1"), (3, "2"), (4, "3"), (5, "#")] {
        r.phone_request(
            "INFO",
            cseq,
            "Content-Type: application/dtmf-relay\r\n",
            &format!("Signal={digit}\r\nDuration=160\r\n"),
        );
    }
    assert_eq!(r.statuses(PHONE, "INFO"), vec![200; 4]);
    let played: Vec<(MediaSide, u8, u8, u16)> = r
        .relay
        .dtmf_sent
        .iter()
        .map(|&(_, stream, to, pt, ev, dur)| {
            assert_eq!(stream, 0);
            (to, pt, ev, dur)
        })
        .collect();
    assert_eq!(
        played,
        vec![
            (MediaSide::B, 101, 1, 1280),
            (MediaSide::B, 101, 2, 1280),
            (MediaSide::B, 101, 3, 1280),
            (MediaSide::B, 101, 11, 1280),
        ]
    );
    // Nothing went to the PBX for them.
    assert_eq!(
        r.sent.iter().filter(|(d, _)| *d == addr(PBX)).count(),
        relayed_before
    );
    assert_eq!(r.sbc.dtmf_stats().info_to_events, 4);

    // A malformed DTMF body: 400; the DTMF package in another type: 415; another package: relayed.
    r.phone_request(
        "INFO",
        6,
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=XY\r\n",
    );
    r.phone_request(
        "INFO",
        7,
        "Info-Package: dtmf\r\nContent-Type: text/plain\r\n",
        "5",
    );
    assert_eq!(
        r.statuses(PHONE, "INFO"),
        vec![200, 200, 200, 200, 400, 415]
    );
    r.phone_request(
        "INFO",
        8,
        "Content-Type: application/media_control+xml\r\n",
        "<media_control/>",
    );
    let relayed = r.last_request(PBX, &Method::Info).unwrap();
    assert_eq!(relayed.body(), b"<media_control/>");
    assert_eq!(r.relay.dtmf_sent.len(), 4);
}

#[test]
fn pbx_events_become_infos_one_at_a_time() {
    let mut r = call(both(DtmfMode::Info, DtmfMode::Rfc4733));
    let session = *r
        .relay
        .dtmf_reported
        .iter()
        .find(|(&(_, stream, side), &pt)| stream == 0 && side == MediaSide::B && pt == 101)
        .map(|((h, _, _), _)| h)
        .expect("the PBX leg's events are reported");
    assert!(!r.relay.dtmf_reported.keys().any(|k| k.2 == MediaSide::A));
    for (event, duration) in [(4, 800), (11, 1600)] {
        r.relay.dtmf_events.push_back(DtmfDigit {
            session,
            stream: 0,
            from: MediaSide::B,
            event,
            duration,
        });
    }
    r.sbc.handle_media_events(r.now, &mut r.relay);
    r.collect();
    let infos = |r: &Rig| -> Vec<Message> {
        r.sent
            .iter()
            .filter(|(d, m)| *d == addr(PHONE) && m.method() == Some(&Method::Info))
            .map(|(_, m)| m.clone())
            .collect()
    };
    let first = infos(&r);
    assert_eq!(first.len(), 1, "the second waits for the first's answer");
    assert_eq!(
        first[0].header(HeaderName::ContentType),
        Some("application/dtmf-relay")
    );
    assert_eq!(first[0].body(), b"Signal=4\r\nDuration=100\r\n");
    let info = first[0].clone();
    r.answer(&info, 200, "ph1", None, PHONE);
    let all = infos(&r);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].body(), b"Signal=#\r\nDuration=200\r\n");
    let cseq = |m: &Message| m.header(HeaderName::CSeq).unwrap().to_owned();
    assert_ne!(cseq(&all[0]), cseq(&all[1]));
    // Its retransmissions are absorbed by the transaction; an answer moves nothing else.
    let second = all[1].clone();
    r.answer(&second, 200, "ph1", None, PHONE);
    r.now += Duration::from_secs(1);
    r.sbc.handle_timeout(r.now, &mut r.relay);
    r.collect();
    assert_eq!(infos(&r).len(), 2);
    assert_eq!(r.sbc.dtmf_stats().events_to_info, 2);
    // A digit for a session no call holds is dropped and counted.
    r.relay.dtmf_events.push_back(DtmfDigit {
        session: crate::media::SessionHandle::from_raw(999_999),
        stream: 0,
        from: MediaSide::B,
        event: 1,
        duration: 800,
    });
    r.sbc.handle_media_events(r.now, &mut r.relay);
    assert_eq!(r.sbc.dtmf_stats().dropped, 1);
}

#[test]
fn info_digits_become_tones_toward_an_inband_leg() {
    // The PBX takes DTMF in-band (G.711): the phone's INFOs are answered and played as tones on
    // the PBX's leg, in order; nothing reaches the PBX as INFO.
    let mut r = call(both(DtmfMode::Info, DtmfMode::Inband));
    let relayed_before = r.sent.iter().filter(|(d, _)| *d == addr(PBX)).count();
    for (cseq, digit) in [(2, "4"), (3, "*")] {
        r.phone_request(
            "INFO",
            cseq,
            "Content-Type: application/dtmf-relay\r\n",
            &format!("Signal={digit}\r\nDuration=100\r\n"),
        );
    }
    assert_eq!(r.statuses(PHONE, "INFO"), vec![200; 2]);
    let played: Vec<(usize, MediaSide, u8, u16)> = r
        .relay
        .dtmf_tones
        .iter()
        .map(|&(_, stream, to, ev, dur)| (stream, to, ev, dur))
        .collect();
    assert_eq!(
        played,
        vec![(0, MediaSide::B, 4, 800), (0, MediaSide::B, 10, 800)]
    );
    assert!(r.relay.dtmf_sent.is_empty());
    assert_eq!(
        r.sent.iter().filter(|(d, _)| *d == addr(PBX)).count(),
        relayed_before
    );
    assert_eq!(r.sbc.dtmf_stats().info_to_tones, 2);

    // A PBX that answers in another codec than G.711 gets no tones: the INFO is relayed.
    let r = Rig::new(both(DtmfMode::Info, DtmfMode::Inband));
    let g722 = |port| {
        sdp(port, false)
            .replace("RTP/AVP 0", "RTP/AVP 9")
            .replace(":0 PCMU", ":9 G722")
    };
    let mut r = call_with(r, g722(4000), g722(6000));
    r.phone_request(
        "INFO",
        2,
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=5\r\nDuration=160\r\n",
    );
    assert!(r.relay.dtmf_tones.is_empty());
    assert!(r.last_request(PBX, &Method::Info).is_some());
}

#[test]
fn digits_heard_in_an_inband_leg_become_infos() {
    // The PBX (inside, PCMU) is inband, the phone info: the relay hears the PBX leg's audio, and
    // what it hears goes to the phone as INFO.
    let mut r = call(both(DtmfMode::Info, DtmfMode::Inband));
    let &(session, stream, side) = r
        .relay
        .dtmf_heard
        .first()
        .expect("the PBX leg's audio is heard");
    assert_eq!(
        (stream, side, r.relay.dtmf_heard.len()),
        (0, MediaSide::B, 1)
    );
    r.relay.dtmf_events.push_back(DtmfDigit {
        session,
        stream: 0,
        from: MediaSide::B,
        event: 9,
        duration: 960,
    });
    r.sbc.handle_media_events(r.now, &mut r.relay);
    r.collect();
    let info = r
        .last_request(PHONE, &Method::Info)
        .expect("an INFO to the phone");
    assert_eq!(info.body(), b"Signal=9\r\nDuration=120\r\n");
    // The same PBX toward an rfc4733 phone: nothing is heard (the codec stage does that).
    let r = call(both(DtmfMode::Rfc4733, DtmfMode::Inband));
    assert!(r.relay.dtmf_heard.is_empty());
}

#[test]
fn pass_and_same_modes_convert_nothing() {
    for policy in [
        DtmfPolicy::default(),
        both(DtmfMode::Rfc4733, DtmfMode::Rfc4733),
        both(DtmfMode::Info, DtmfMode::Info),
    ] {
        let mut r = call(policy);
        assert!(r.relay.dtmf_reported.is_empty(), "{policy:?}");
        let offer = r.last_request(PBX, &Method::Invite).unwrap();
        assert!(
            !String::from_utf8_lossy(offer.body()).contains("telephone-event"),
            "{policy:?}: the offer as the phone made it"
        );
        r.phone_request(
            "INFO",
            2,
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=5\r\nDuration=160\r\n",
        );
        assert!(r.relay.dtmf_sent.is_empty(), "{policy:?}");
        let relayed = r.last_request(PBX, &Method::Info).unwrap();
        assert_eq!(relayed.body(), b"Signal=5\r\nDuration=160\r\n");
    }
    // auto: the phone negotiated no telephone-event (info), the PBX did (rfc4733).
    let mut r = call(both(DtmfMode::Auto, DtmfMode::Auto));
    r.phone_request("INFO", 2, "Content-Type: application/dtmf\r\n", "9");
    assert_eq!(r.relay.dtmf_sent.len(), 1);
    assert_eq!(r.statuses(PHONE, "INFO"), vec![200]);
}

#[test]
fn a_target_group_overrides_the_side_codec_policy_and_dtmf_mode() {
    // The inside's default passes DTMF; the PBX group wants RFC 4733 and no PCMU.
    let mut r = Rig::new(both(DtmfMode::Info, DtmfMode::Pass));
    r.pbx_media = Some(Arc::new(LegOverrides {
        codecs: Some(CodecPolicy {
            strip: vec!["PCMU".into()],
            ..CodecPolicy::default()
        }),
        dtmf: Some(DtmfMode::Rfc4733),
        srtp: None,
    }));
    let body = sdp(4000, false)
        .replace("RTP/AVP 0\r\n", "RTP/AVP 0 8\r\n")
        .replace(
            "a=rtpmap:0 PCMU/8000\r\n",
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n",
        );
    let mut r = call_with(r, body, sdp(6000, true));
    let offer = r.last_request(PBX, &Method::Invite).unwrap();
    let offer = String::from_utf8_lossy(offer.body()).into_owned();
    assert!(
        offer.contains("RTP/AVP 8 101\r\n"),
        "PCMU stripped, te added: {offer}"
    );
    assert!(!offer.contains("PCMU"), "{offer}");
    r.phone_request(
        "INFO",
        2,
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=5\r\nDuration=160\r\n",
    );
    assert_eq!(r.relay.dtmf_sent.len(), 1);
    assert_eq!(r.statuses(PHONE, "INFO"), vec![200]);
    // Without the group's settings the same call passes INFO and keeps PCMU.
    let plain = call_with(
        Rig::new(both(DtmfMode::Info, DtmfMode::Pass)),
        sdp(4000, false),
        sdp(6000, true),
    );
    let offer = plain.last_request(PBX, &Method::Invite).unwrap();
    assert!(String::from_utf8_lossy(offer.body()).contains("RTP/AVP 0\r\n"));
}
