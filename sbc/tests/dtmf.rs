//! DTMF interworking and media settings per trunk, end to end through the real `sbc` binary,
//! with the peers written here on raw UDP (`common/rtp.rs` for SIP):
//!
//! - `[dtmf] outside = "info"`, `inside = "rfc4733"`: the phone's INFO digits reach the PBX as
//!   RFC 4733 events in its RTP stream (payload type 101, marker on the first packet, three end
//!   packets each, in order, once), and the PBX's RFC 4733 digits reach the phone as one INFO
//!   each, in order, with no telephone-event packet toward the phone.
//! - `inside = "inband"`: the phone's INFO digits reach the PBX as DTMF tones in its PCMU audio,
//!   heard once each and in order by a detector; the PBX's tones reach the phone as INFOs.
//! - `[[trunk]] srtp = "sdes"` on one of two outside trunks: calls from the PBX to it are offered
//!   RTP/SAVP with a key, calls to the other trunk plain RTP/AVP.
//!
//! Addresses 127.52.<n>.x (DTMF) and 127.53.<n>.x (trunks):
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside SIP; `.21` its media address |
//! | `.11:5080` | the SBC, inside SIP |
//! | `.2:5090` | the PBX; its RTP on `.2:6000` |
//! | `.3:5070` | the phone; its RTP on `.3:7000` |
//! | `.5:5090`, `.6:5090` | the trunks' proxies (trunk test) |

mod common;
#[path = "common/rtp.rs"]
mod rtp;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::{Sbc, TempDir};
use media_plane::codec::dtmf::Event;
use rtp::{counter, rtp_with, udp, Got, SdpSeen, Sink, Ua};
use sbc_sip::Method;

const T: Duration = Duration::from_secs(5);

fn ip(net: u8, n: u8, host: u8) -> String {
    format!("127.{net}.{n}.{host}")
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn sdp(user: &str, ip: &str, port: u16, proto: &str, extra: &str) -> String {
    format!(
        "v=0\r\no={user} 4711 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} {proto} 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n{extra}a=ptime:20\r\na=sendrecv\r\n"
    )
}

/// PCMU silence, `count` packets from `sock` to `to`, one every 20 ms, from `seq`/`ts` (returned
/// advanced).
fn audio(
    sock: &std::net::UdpSocket,
    to: SocketAddr,
    ssrc: u32,
    count: u32,
    seq: &mut u16,
    ts: &mut u32,
) {
    let start = Instant::now();
    for k in 0..count {
        let p = rtp_with(0, false, *seq, *ts, ssrc, &[0xFF; 160]);
        sock.send_to(&p, to).unwrap();
        *seq = seq.wrapping_add(1);
        *ts = ts.wrapping_add(160);
        let next = start + Duration::from_millis(20) * (k + 1);
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

fn dtmf_config(n: u8) -> String {
    dtmf_config_inside(n, "rfc4733")
}

/// [`dtmf_config`] with the inside's DTMF mode `inside`.
fn dtmf_config_inside(n: u8, inside_mode: &str) -> String {
    format!(
        "workers = 1\n\
         [sip]\nudp = [\"{out}:5060\"]\n\
         [inside]\naddress = \"{inside}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [limits]\nmax_cps = 0\n\
         [media]\nenabled = true\naddress = \"{media}\"\nport_min = 21000\nport_max = 21399\n\
         [dtmf]\noutside = \"info\"\ninside = \"{inside_mode}\"\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{pbx}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n",
        out = ip(52, n, 1),
        inside = ip(52, n, 11),
        media = ip(52, n, 21),
        pbx = ip(52, n, 2),
    )
}

/// The telephone-event packets (payload type `pt`) among `got`: (marker, timestamp, event).
fn events(got: &[Got], pt: u8) -> Vec<(bool, u32, Event, u16)> {
    got.iter()
        .filter(|g| !g.rtcp && g.bytes.len() >= 16 && g.bytes[1] & 0x7F == pt)
        .map(|g| {
            let b = &g.bytes;
            let ts = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            (b[1] & 0x80 != 0, ts, Event::parse(&b[12..]).unwrap(), g.seq)
        })
        .collect()
}

/// The phone sends 2.5 s of PCMU silence from `rtp` to `to` and meanwhile, 200 ms in, one INFO
/// (`application/dtmf-relay`, 100 ms) per digit, each answered 200 before the next. Returns what
/// the PBX's RTP socket got meanwhile; no INFO reaches the PBX.
fn phone_infos(
    phone: &mut Ua,
    rtp: &std::net::UdpSocket,
    to: SocketAddr,
    digits: &[&str],
    (pbx, pbx_rtp): (&mut Ua, &std::net::UdpSocket),
) -> Vec<Got> {
    let at_pbx = Sink::spawn(pbx_rtp);
    let sender = {
        let sock = rtp.try_clone().unwrap();
        thread::spawn(move || {
            let (mut seq, mut ts) = (1000u16, 16_000u32);
            audio(&sock, to, 0x1111, 125, &mut seq, &mut ts);
        })
    };
    thread::sleep(Duration::from_millis(200));
    for digit in digits {
        phone.send_request_typed(
            "INFO",
            "application/dtmf-relay",
            &format!("Signal={digit}\r\nDuration=100\r\n"),
        );
        let r = phone.finish(T);
        assert_eq!(r.status(), Some(200), "{}", phone.sip.trace());
    }
    sender.join().unwrap();
    let got = at_pbx.finish(Duration::from_millis(200));
    assert!(
        pbx.recv_request(&Method::Info, Duration::from_millis(100))
            .is_none(),
        "no INFO reaches the PBX"
    );
    got
}

/// The first `n` distinct INFOs the phone receives (within [`T`]), each answered 200, as
/// (CSeq number, body) in arrival order; every one is `application/dtmf-relay`.
fn phone_gets_infos(phone: &mut Ua, n: usize) -> Vec<(u32, String)> {
    let mut infos: Vec<(u32, String)> = Vec::new();
    let deadline = Instant::now() + T;
    while infos.len() < n && Instant::now() < deadline {
        let Some((req, from)) = phone.recv_request(&Method::Info, Duration::from_millis(500))
        else {
            continue;
        };
        phone.respond(&req, from, 200, None);
        let seq = req.cseq().seq;
        if !infos.iter().any(|(s, _)| *s == seq) {
            assert_eq!(
                req.header(sbc_sip::HeaderName::ContentType),
                Some("application/dtmf-relay")
            );
            infos.push((seq, String::from_utf8_lossy(req.body()).into_owned()));
        }
    }
    infos
}

/// Late retransmissions of the INFOs already taken are answered too; none is a new one.
fn drain_infos(phone: &mut Ua, infos: &[(u32, String)]) {
    while let Some((req, from)) = phone.recv_request(&Method::Info, Duration::from_millis(300)) {
        phone.respond(&req, from, 200, None);
        assert!(
            infos.iter().any(|(s, _)| *s == req.cseq().seq),
            "one INFO per digit"
        );
    }
}

/// One call of test `n` (127.52.`n`.x) through the SBC of [`dtmf_config_inside`] with the inside
/// `inside_mode`, answered and acknowledged: the phone offers PCMU without telephone-event (it
/// sends INFO), the PBX answers PCMU, with telephone-event when `pbx_events`.
struct InfoCall {
    sbc: Sbc,
    /// The SBC's media address.
    media: String,
    phone: Ua,
    pbx: Ua,
    phone_rtp: std::net::UdpSocket,
    pbx_rtp: std::net::UdpSocket,
    /// The INVITE as the PBX got it.
    invite: sbc_sip::Message,
    /// The 200 as the phone got it.
    ok: sbc_sip::Message,
}

/// PCMU alone in `sdp`'s description (no telephone-event).
fn pcmu_only(who: &str, ip: &str, port: u16) -> String {
    sdp(who, ip, port, "RTP/AVP", "")
        .replace(" 0 101\r\n", " 0\r\n")
        .replace(
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
            "",
        )
}

fn info_call(n: u8, inside_mode: &str, pbx_events: bool) -> InfoCall {
    let sbc = Sbc::start_in(
        TempDir::new(&format!("dtmf-info-{inside_mode}")),
        "auto",
        5060,
        &dtmf_config_inside(n, inside_mode),
    );
    let (phone_ip, pbx_ip) = (ip(52, n, 3), ip(52, n, 2));
    let phone_rtp = udp(&phone_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut phone = Ua::caller(sa(&phone_ip, 5070), sa(&ip(52, n, 1), 5060), "1000");
    let mut pbx = Ua::pbx(sa(&pbx_ip, 5090));
    phone.send_invite(&pcmu_only("phone", &phone_ip, 7000));
    let invite = pbx.answer_invite(T, |_| match pbx_events {
        true => sdp("pbx", &pbx_ip, 6000, "RTP/AVP", ""),
        false => pcmu_only("pbx", &pbx_ip, 6000),
    });
    let ok = phone.finish_invite(T);
    let trace = format!("{}{}", phone.sip.trace(), pbx.sip.trace());
    assert_eq!(ok.status(), Some(200), "{trace}");
    pbx.expect_ack(T);
    InfoCall {
        sbc,
        media: ip(52, n, 21),
        phone,
        pbx,
        phone_rtp,
        pbx_rtp,
        invite,
        ok,
    }
}

#[test]
fn info_and_rfc4733_interwork_between_phone_and_pbx() {
    let InfoCall {
        sbc,
        media,
        mut phone,
        mut pbx,
        phone_rtp,
        pbx_rtp,
        invite,
        ok,
    } = info_call(1, "rfc4733", true);
    let (port_a, port_b) = (SdpSeen::of(&ok).port, SdpSeen::of(&invite).port);
    let offer = String::from_utf8_lossy(invite.body()).into_owned();
    let answer = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(
        offer.contains("a=rtpmap:101 telephone-event/8000"),
        "the rfc4733 PBX is offered telephone-event: {offer}"
    );
    assert!(!answer.contains("telephone-event"), "{answer}");

    // (1) Phone -> PBX: audio from the phone carries the events; the INFOs go meanwhile.
    let got = phone_infos(
        &mut phone,
        &phone_rtp,
        sa(&media, port_a),
        &["1", "2", "3", "#"],
        (&mut pbx, &pbx_rtp),
    );
    let evs = events(&got, 101);
    // Group by timestamp, in arrival order.
    let mut digits: Vec<(u32, Vec<(bool, Event)>)> = Vec::new();
    for &(marker, ts, ev, _) in &evs {
        match digits.iter_mut().find(|(t, _)| *t == ts) {
            Some((_, v)) => v.push((marker, ev)),
            None => digits.push((ts, vec![(marker, ev)])),
        }
    }
    let chars: String = digits.iter().map(|(_, v)| v[0].1.char().unwrap()).collect();
    assert_eq!(chars, "123#", "{evs:?}");
    for (_, v) in &digits {
        assert!(v[0].0, "marker on the first packet: {v:?}");
        assert!(v[1..].iter().all(|(m, _)| !m), "{v:?}");
        let ends: Vec<&Event> = v.iter().filter(|(_, e)| e.end).map(|(_, e)| e).collect();
        assert_eq!(ends.len(), 3, "three end packets: {v:?}");
        assert!(ends.iter().all(|e| e.duration == 800), "{v:?}");
        assert!(v.iter().all(|(_, e)| e.event == v[0].1.event));
        let last = v.last().unwrap();
        assert!(last.1.end, "the ends come last: {v:?}");
    }
    // The events take the place of audio in the same numbering: no sequence number twice.
    let seqs: HashSet<u16> = got.iter().filter(|g| !g.rtcp).map(|g| g.seq).collect();
    assert_eq!(seqs.len(), got.iter().filter(|g| !g.rtcp).count());
    assert!(got
        .iter()
        .any(|g| g.bytes.len() == 172 && g.bytes[1] & 0x7F == 0));

    // (2) PBX -> phone: RFC 4733 digits 4, 7, * become INFOs, in order; no event reaches the
    // phone.
    let at_phone = Sink::spawn(&phone_rtp);
    let to = sa(&media, port_b);
    let pbx_sock = pbx_rtp.try_clone().unwrap();
    let sender = thread::spawn(move || pbx_digits(&pbx_sock, to));
    let infos = phone_gets_infos(&mut phone, 3);
    sender.join().unwrap();
    let got = at_phone.finish(Duration::from_millis(300));
    drain_infos(&mut phone, &infos);
    let bodies: Vec<&str> = infos.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "Signal=4\r\nDuration=120\r\n",
            "Signal=7\r\nDuration=120\r\n",
            "Signal=*\r\nDuration=120\r\n"
        ],
        "{}",
        phone.sip.trace()
    );
    assert!(infos.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(
        events(&got, 101).is_empty(),
        "no telephone-event toward the info phone"
    );
    assert!(got.iter().any(|g| !g.rtcp), "the PBX's audio still flows");

    phone.send_bye();
    assert!(pbx.expect_bye(T).is_some());
    let _ = phone.finish_bye(T);
    let log = sbc.stop();
    assert_eq!(counter(&log, "live_calls"), 0, "{log}");
    assert_eq!(counter(&log, "dtmf_info_to_events"), 4, "{log}");
    assert_eq!(counter(&log, "dtmf_events_to_info"), 3, "{log}");
    assert_eq!(counter(&log, "dtmf_info_refused"), 0, "{log}");
}

/// `[dtmf] inside = "inband"`: the phone's INFO digits reach a PBX without telephone-event as
/// DTMF tones in its PCMU audio, which a detector hears once each, in order; no INFO reaches it.
/// The PBX's tones reach the phone as one INFO each, in order, muted in the phone's audio.
#[test]
fn info_and_tones_interwork_with_an_inband_pbx() {
    use media_plane::codec::dtmf::{Detected, Detector};
    use media_plane::codec::g711;
    let InfoCall {
        sbc,
        media,
        mut phone,
        mut pbx,
        phone_rtp,
        pbx_rtp,
        invite: pbx_invite,
        ok,
    } = info_call(3, "inband", false);
    let port_a = SdpSeen::of(&ok).port;

    let got = phone_infos(
        &mut phone,
        &phone_rtp,
        sa(&media, port_a),
        &["1", "5", "5", "#"],
        (&mut pbx, &pbx_rtp),
    );
    let mut det = Detector::new();
    let mut heard = String::new();
    for g in got.iter().filter(|g| !g.rtcp) {
        assert_eq!(g.bytes[1] & 0x7F, 0, "PCMU only toward the PBX");
        let mut pcm = vec![0i16; g.bytes.len() - 12];
        g711::decode_ulaw(&g.bytes[12..], &mut pcm);
        if let Detected::Start(d) = det.push(&pcm) {
            heard.push(
                Event {
                    event: d,
                    end: false,
                    volume: 0,
                    duration: 0,
                }
                .char()
                .unwrap(),
            );
        }
    }
    assert_eq!(heard, "155#", "digits heard by the PBX");

    // (2) PBX -> phone: the PBX's tones 4, 7, * in its PCMU audio reach the phone as one INFO
    // each, in order, and are muted in the audio the phone gets.
    let port_b = SdpSeen::of(&pbx_invite).port;
    let at_phone = Sink::spawn(&phone_rtp);
    let sender = {
        let sock = pbx_rtp.try_clone().unwrap();
        let to = sa(&media, port_b);
        thread::spawn(move || pbx_tones(&sock, to))
    };
    let infos = phone_gets_infos(&mut phone, 3);
    sender.join().unwrap();
    let got = at_phone.finish(Duration::from_millis(300));
    drain_infos(&mut phone, &infos);
    let signals: Vec<&str> = infos
        .iter()
        .map(|(_, b)| b.lines().next().unwrap_or(""))
        .collect();
    assert_eq!(signals, ["Signal=4", "Signal=7", "Signal=*"], "{infos:?}");
    let mut det = Detector::new();
    let mut leaked = String::new();
    for g in got.iter().filter(|g| !g.rtcp) {
        let mut pcm = vec![0i16; g.bytes.len() - 12];
        g711::decode_ulaw(&g.bytes[12..], &mut pcm);
        if let Detected::Start(d) = det.push(&pcm) {
            leaked.push(char::from(b"0123456789*#ABCD"[usize::from(d)]));
        }
    }
    assert_eq!(leaked, "", "the tones are muted toward the info phone");
    assert!(
        got.iter().filter(|g| !g.rtcp).count() >= 40,
        "the audio still flows"
    );

    phone.send_bye();
    assert!(pbx.expect_bye(T).is_some());
    let _ = phone.finish_bye(T);
    let log = sbc.stop();
    assert_eq!(counter(&log, "dtmf_info_to_tones"), 4, "{log}");
    assert_eq!(counter(&log, "dtmf_info_to_events"), 0, "{log}");
    assert_eq!(counter(&log, "dtmf_events_to_info"), 3, "{log}");
}

/// The PBX's DTMF tones `4`, `7`, `*` in PCMU, 100 ms each with 100 ms of silence between and
/// around them, toward `to`, paced at 20 ms.
fn pbx_tones(sock: &std::net::UdpSocket, to: SocketAddr) {
    use media_plane::codec::dtmf::tone;
    use media_plane::codec::g711;
    let start = Instant::now();
    let mut k = 0u32;
    for event in [None, Some(4u8), None, Some(7), None, Some(10), None, None] {
        for n in 0..5u32 {
            let mut pcm = [0i16; 160];
            if let Some(e) = event {
                tone(e, n * 160, &mut pcm);
            }
            let mut code = [0u8; 160];
            g711::encode_ulaw(&pcm, &mut code);
            let p = rtp_with(0, false, 5000 + k as u16, 80_000 + k * 160, 0x2222, &code);
            sock.send_to(&p, to).unwrap();
            k += 1;
            thread::sleep(
                (start + Duration::from_millis(20) * k).saturating_duration_since(Instant::now()),
            );
        }
    }
}

/// The PBX's RFC 4733 digits `4`, `7`, `*` (with audio between them) toward `to`, paced.
fn pbx_digits(sock: &std::net::UdpSocket, to: SocketAddr) {
    let (mut seq, mut ts) = (5000u16, 80_000u32);
    audio(sock, to, 0x2222, 5, &mut seq, &mut ts);
    for d in [4u8, 7, 10] {
        let start = ts;
        let begin = Instant::now();
        for i in 1..=5u16 {
            let ev = Event {
                event: d,
                end: false,
                volume: 10,
                duration: i * 160,
            };
            let p = rtp_with(101, i == 1, seq, start, 0x2222, &ev.to_bytes());
            sock.send_to(&p, to).unwrap();
            seq = seq.wrapping_add(1);
            let next = begin + Duration::from_millis(20) * u32::from(i);
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        for _ in 0..3 {
            let ev = Event {
                event: d,
                end: true,
                volume: 10,
                duration: 960,
            };
            let p = rtp_with(101, false, seq, start, 0x2222, &ev.to_bytes());
            sock.send_to(&p, to).unwrap();
            seq = seq.wrapping_add(1);
        }
        ts = start.wrapping_add(960);
        audio(sock, to, 0x2222, 5, &mut seq, &mut ts);
    }
}

/// The reverse direction with a sipp phone (`uac_dtmf_info.xml`) that expects exactly three
/// INFOs, `4`, `7`, `*`, in order, while the PBX sends them as RFC 4733 events.
#[test]
fn sipp_phone_gets_the_pbx_digits_as_info() {
    let n = 2;
    let sbc = Sbc::start_in(
        TempDir::new("dtmf-sipp-info"),
        "auto",
        5060,
        &dtmf_config(n),
    );
    let dir = sbc.dir.path().to_owned();
    let media = ip(52, n, 21);
    let pbx_ip = ip(52, n, 2);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut pbx = Ua::pbx(sa(&pbx_ip, 5090));
    let target = format!("{}:5060", ip(52, n, 1));
    let phone = common::sipp(
        &dir,
        "uac_dtmf_info.xml",
        (&ip(52, n, 3), 5070),
        Some(&target),
        &["-s", "1000", "-mp", "7000"],
    );
    let invite = pbx.answer_invite(T, |_| sdp("pbx", &pbx_ip, 6000, "RTP/AVP", ""));
    let offer = String::from_utf8_lossy(invite.body()).into_owned();
    assert!(offer.contains("telephone-event/8000"), "{offer}");
    pbx.expect_ack(T);
    pbx_digits(&pbx_rtp, sa(&media, SdpSeen::of(&invite).port));
    assert!(pbx.expect_bye(T).is_some(), "{}", pbx.sip.trace());
    let (status, err) = common::finish(phone);
    let phone_log = common::logs(&dir, "uac_dtmf_info");
    let log = sbc.stop();
    assert!(
        status.success(),
        "phone: {status} {err}\n{phone_log}\n{log}"
    );
    assert_eq!(counter(&log, "dtmf_events_to_info"), 3, "{log}");
}

fn trunks_config(n: u8) -> String {
    format!(
        "workers = 1\n\
         [sip]\nudp = [\"{out}:5060\"]\n\
         [inside]\naddress = \"{inside}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [limits]\nmax_cps = 0\n\
         [guard]\ninside_networks = [\"{pbx}\"]\n\
         [media]\nenabled = true\naddress = \"{media}\"\nport_min = 21400\nport_max = 21799\n\
         [srtp]\noutside = \"plain\"\ninside = \"plain\"\nrequire_tls_for_sdes = false\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{pbx}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[trunk]]\nname = \"secure\"\noutbound = {{ proxy = \"{secure}:5090\" }}\n\
         options_interval_secs = 0\nsrtp = \"sdes\"\n\
         [[trunk]]\nname = \"plain\"\noutbound = {{ proxy = \"{plain}:5090\" }}\n\
         options_interval_secs = 0\n\
         [[route]]\nname = \"secure\"\nfrom = \"inside\"\nprefix = \"1\"\ntrunk = \"secure\"\n\
         [[route]]\nname = \"plain\"\nfrom = \"inside\"\nprefix = \"2\"\ntrunk = \"plain\"\n",
        out = ip(53, n, 1),
        inside = ip(53, n, 11),
        media = ip(53, n, 21),
        pbx = ip(53, n, 2),
        secure = ip(53, n, 5),
        plain = ip(53, n, 6),
    )
}

#[test]
fn a_trunk_with_srtp_sdes_gets_savp_and_another_of_the_same_side_plain() {
    let n = 1;
    let sbc = Sbc::start_in(
        TempDir::new("dtmf-trunk-srtp"),
        "auto",
        5060,
        &trunks_config(n),
    );
    let pbx_ip = ip(53, n, 2);
    let sbc_inside = sa(&ip(53, n, 11), 5080);
    let key =
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
    for (called, host, port, sip, secure) in [
        ("1555", 5, 6100u16, 5071u16, true),
        ("2555", 6, 6200, 5072, false),
    ] {
        let trunk_ip = ip(53, n, host);
        let mut pbx = Ua::caller(sa(&pbx_ip, sip), sbc_inside, called);
        let mut trunk = Ua::pbx(sa(&trunk_ip, 5090));
        pbx.send_invite(&sdp("pbx", &pbx_ip, port, "RTP/AVP", ""));
        let invite = trunk.answer_invite(T, |inv| {
            let offered = String::from_utf8_lossy(inv.body()).into_owned();
            if offered.contains("RTP/SAVP") {
                sdp("trunk", &trunk_ip, 7100, "RTP/SAVP", key)
            } else {
                sdp("trunk", &trunk_ip, 7100, "RTP/AVP", "")
            }
        });
        let ok = pbx.finish_invite(T);
        let trace = format!("{}{}", pbx.sip.trace(), trunk.sip.trace());
        assert_eq!(ok.status(), Some(200), "{trace}");
        trunk.expect_ack(T);
        let offer = String::from_utf8_lossy(invite.body()).into_owned();
        let answer = String::from_utf8_lossy(ok.body()).into_owned();
        if secure {
            assert!(
                offer.contains("m=audio") && offer.contains("RTP/SAVP"),
                "the sdes trunk is offered SRTP: {offer}"
            );
            assert!(offer.contains("a=crypto:"), "{offer}");
        } else {
            assert!(
                offer.contains("RTP/AVP") && !offer.contains("SAVP"),
                "{offer}"
            );
            assert!(!offer.contains("a=crypto"), "{offer}");
        }
        // The PBX's side stays plain either way.
        assert!(
            answer.contains("RTP/AVP") && !answer.contains("crypto"),
            "{answer}"
        );
        pbx.send_bye();
        assert!(trunk.expect_bye(T).is_some());
        let _ = pbx.finish_bye(T);
    }
    let log = sbc.stop();
    assert_eq!(counter(&log, "live_calls"), 0, "{log}");
}
