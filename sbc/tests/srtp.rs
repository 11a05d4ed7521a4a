//! SRTP interop with an independent implementation: libsrtp, driven through `pylibsrtp`
//! (`sbc/tests/srtp/libsrtp_peer.py`). libsrtp protects, the relay's SRTP contexts unprotect and
//! must give back the exact packets; and the reverse. Tampered and replayed packets are refused.
//! First without sockets, the cipher code the relay runs against libsrtp, suite by suite; then on
//! the wire through the real binary (`[srtp] outside = "sdes"`, `inside = "plain"`): libsrtp
//! protects and unprotects for an SDES caller on the outside, a plain RTP PBX on the inside, both
//! on raw UDP (`common/rtp.rs` for SIP); and the reverse: the plain PBX calls an SDES phone on the
//! outside, libsrtp again on the phone's side; and SDES on both sides, each leg re-keyed.
//! Addresses 127.46.<n>.x:
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside SIP; `.21` its media address |
//! | `.11:5080` | the SBC, inside SIP |
//! | `.2:5090` | the PBX; its RTP on `.2:6000` |
//! | `.3:5070` | the caller; its SRTP on `.3:7000` |
//! | `.4:5070` | the phone the PBX calls (a UDP trunk); its SRTP on `.4:7000` |

mod common;
#[path = "common/libsrtp.rs"]
mod libsrtp_peer;
#[path = "common/rtp.rs"]
mod rtp;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Sbc, TempDir};
use libsrtp_peer::unhex;
use media_plane::srtp::{Reject, SrtpContext, Suite};
use rtp::{counter, udp, SdpSeen, Sink, Ua};
use sbc_sip::sdp::sdes::InlineKey;
use sbc_sip::sdp::{Crypto, Sdp};

/// Run libsrtp in `suite` over `packets` ("rtp"/"rtcp", bytes); one output line per packet.
fn libsrtp(suite: Suite, key: &[u8], mode: &str, packets: &[(&str, Vec<u8>)]) -> Vec<String> {
    libsrtp_peer::libsrtp(suite.name(), key, mode, packets)
}

/// RTP `packets` protected by libsrtp in `suite` with `key`.
fn sealed_rtp(suite: Suite, key: &[u8], packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let input: Vec<(&str, Vec<u8>)> = packets.iter().map(|p| ("rtp", p.clone())).collect();
    libsrtp(suite, key, "protect", &input)
        .iter()
        .map(|l| unhex(l))
        .collect()
}

/// SRTP `packets` unprotected by libsrtp in `suite` with `key`; each must open.
fn opened_rtp(suite: Suite, key: &[u8], packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let input: Vec<(&str, Vec<u8>)> = packets.iter().map(|p| ("rtp", p.clone())).collect();
    libsrtp(suite, key, "unprotect", &input)
        .iter()
        .map(|l| {
            assert!(!l.starts_with("error"), "libsrtp refused: {l}");
            unhex(l)
        })
        .collect()
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x5eed_1234u32.to_be_bytes());
    p.extend((0..160u32).map(|i| (i * 7 + u32::from(seq)) as u8));
    p
}

fn rtcp_sr() -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&0x5eed_1234u32.to_be_bytes());
    p.extend((0..20u8).map(|i| i.wrapping_mul(13)));
    p
}

/// Sequence numbers across the wrap, so the rollover counter is exercised both ways.
fn stream() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<_> = (65530u16..=65535)
        .chain(0..6)
        .map(|s| ("rtp", rtp(s)))
        .collect();
    v.insert(3, ("rtcp", rtcp_sr()));
    v.push(("rtcp", rtcp_sr()));
    v
}

const SUITES: [Suite; 4] = [
    Suite::AesCm128HmacSha1_80,
    Suite::AesCm128HmacSha1_32,
    Suite::AeadAes128Gcm,
    Suite::AeadAes256Gcm,
];

fn key(suite: Suite) -> Vec<u8> {
    (0..suite.master_len() as u8)
        .map(|i| i.wrapping_mul(29) ^ 0x5a)
        .collect()
}

#[test]
fn libsrtp_protects_the_relay_unprotects_exactly() {
    for suite in SUITES {
        let packets = stream();
        let sealed = libsrtp(suite, &key(suite), "protect", &packets);
        assert_eq!(sealed.len(), packets.len());
        let mut rx: SrtpContext = SrtpContext::new(suite, &key(suite)).unwrap();
        for ((kind, plain), s) in packets.iter().zip(&sealed) {
            let wire = unhex(s);
            let mut buf = wire.clone();
            let n = if *kind == "rtp" {
                rx.unprotect_rtp(&mut buf, wire.len())
            } else {
                rx.unprotect_rtcp(&mut buf, wire.len())
            }
            .unwrap_or_else(|e| panic!("{suite:?} {kind}: {e:?}"));
            assert_eq!(&buf[..n], &plain[..], "{suite:?} {kind}");
            // The same packet again is a replay; a flipped bit fails authentication.
            let mut again = wire.clone();
            let mut flipped = wire.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            if *kind == "rtp" {
                assert_eq!(
                    rx.unprotect_rtp(&mut again, wire.len()),
                    Err(Reject::Replayed)
                );
                assert_eq!(
                    rx.unprotect_rtp(&mut flipped, wire.len()),
                    Err(Reject::Replayed)
                );
            } else {
                assert_eq!(
                    rx.unprotect_rtcp(&mut again, wire.len()),
                    Err(Reject::Replayed)
                );
            }
        }
    }
}

#[test]
fn the_relay_protects_libsrtp_unprotects_exactly() {
    for suite in SUITES {
        let packets = stream();
        let mut tx: SrtpContext = SrtpContext::new(suite, &key(suite)).unwrap();
        let mut sealed = Vec::new();
        for (kind, plain) in &packets {
            let mut buf = plain.clone();
            buf.resize(plain.len() + Suite::max_overhead(), 0);
            let n = if *kind == "rtp" {
                tx.protect_rtp(&mut buf, plain.len())
            } else {
                tx.protect_rtcp(&mut buf, plain.len())
            }
            .unwrap();
            buf.truncate(n);
            sealed.push((*kind, buf));
        }
        // One tampered copy of the first RTP packet, sent first: libsrtp must refuse it.
        let mut tampered = sealed[0].1.clone();
        tampered[20] ^= 0x40;
        let mut input = vec![("rtp", tampered)];
        input.extend(sealed.iter().cloned());
        let out = libsrtp(suite, &key(suite), "unprotect", &input);
        assert!(out[0].starts_with("error"), "{suite:?}: tampered accepted");
        for ((kind, plain), line) in packets.iter().zip(&out[1..]) {
            assert_eq!(unhex(line), *plain, "{suite:?} {kind}");
        }
    }
}

// -------------------------------------------------------------------------------------------------
// On the wire, through the binary

const T: Duration = Duration::from_secs(5);

fn ip(n: u8, host: u8) -> String {
    format!("127.46.{n}.{host}")
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn config(n: u8, require_tls: bool) -> String {
    config_inside(n, require_tls, "plain")
}

/// [`config`] with `[srtp] inside = inside`.
fn config_inside(n: u8, require_tls: bool, inside_mode: &str) -> String {
    format!(
        "workers = 1\n\
         [sip]\nudp = [\"{out}:5060\"]\n\
         [inside]\naddress = \"{inside}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [limits]\nmax_cps = 0\n\
         [media]\nenabled = true\naddress = \"{media}\"\nport_min = 20400\nport_max = 20799\n\
         [srtp]\noutside = \"sdes\"\ninside = \"{inside_mode}\"\nrequire_tls_for_sdes = {require_tls}\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{pbx}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [api]\nenabled = true\nlisten = \"{out}:8080\"\ntoken = \"{API_TOKEN}\"\n",
        out = ip(n, 1),
        inside = ip(n, 11),
        media = ip(n, 21),
        pbx = ip(n, 2),
    )
}

const API_TOKEN: &str = "srtp-test-token-0123456789";

fn audio(user: &str, ip: &str, port: u16, proto: &str, extra: &str) -> String {
    format!(
        "v=0\r\no={user} 4711 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}a=sendrecv\r\n"
    )
}

/// An RTP packet of PCMU with a payload that names `ssrc` and `seq`.
fn pcmu(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160u32).map(|i| (i ^ u32::from(seq) ^ ssrc) as u8));
    p
}

/// An SDES caller on the outside, a plain PBX on the inside: the caller's SRTP arrives in clear at
/// the PBX, byte for byte; the PBX's RTP reaches the caller as SRTP under the key the SBC answered
/// with, which libsrtp opens to the exact packets; a tampered packet is dropped and counted.
fn sdes_caller_plain_pbx(n: u8, driver: &str) {
    let dir = TempDir::new(&format!("srtp-sdes-plain-{driver}"));
    let sbc = Sbc::start_in(dir, driver, 5060, &config(n, false));
    let media = ip(n, 21);
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut caller = Ua::caller(sa(&caller_ip, 5070), sa(&ip(n, 1), 5060), "1000");
    let mut pbx = Ua::pbx(sa(&pbx_ip, 5090));
    let suite = Suite::AesCm128HmacSha1_80;
    let caller_key = key(suite);
    let line = format!(
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 {}\r\n",
        InlineKey::write(&caller_key)
    );
    caller.send_invite(&audio("caller", &caller_ip, 7000, "RTP/SAVP", &line));
    let invite = pbx.answer_invite(T, |offer| {
        // Media before the answer: the caller has no key for it yet, so none of it may reach
        // the caller (in clear it would be a leak); refused and counted as no key.
        let port = SdpSeen::of(offer).port;
        for s in 0..3u16 {
            pbx_rtp
                .send_to(&pcmu(0x0BB0, 6990 + s), sa(&media, port))
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        audio("pbx", &pbx_ip, 6000, "RTP/AVP", "")
    });
    let ok = caller.finish_invite(T);
    let trace = format!("{}{}", caller.sip.trace(), pbx.sip.trace());
    assert_eq!(ok.status(), Some(200), "{trace}");
    pbx.expect_ack(T);
    let offer = SdpSeen::of(&invite);
    let answer = SdpSeen::of(&ok);
    assert!(
        offer.text.contains("RTP/AVP 0") && !offer.text.contains("crypto"),
        "the PBX is offered plain RTP: {trace}"
    );
    assert!(answer.text.contains("RTP/SAVP 0"), "{trace}");
    let sdp = Sdp::parse(ok.body()).unwrap();
    let lines: Vec<Crypto<'_>> = sdp.cryptos(0).collect();
    assert_eq!(lines.len(), 1, "{trace}");
    assert_eq!(
        (lines[0].tag, lines[0].suite),
        (1, "AES_CM_128_HMAC_SHA1_80")
    );
    let sbc_key = InlineKey::parse(lines[0].key_params).unwrap().key_salt;
    assert_eq!(sbc_key.len(), 30);
    assert_ne!(sbc_key, caller_key, "the SBC answers with its own key");
    let (port_a, port_b) = (answer.port, offer.port);

    // The caller's packets, protected by libsrtp; one tampered copy after the first ten.
    let plain_out: Vec<Vec<u8>> = (0..40u16).map(|s| pcmu(0xCA11, 1000 + s)).collect();
    let sealed = sealed_rtp(suite, &caller_key, &plain_out);
    let at_pbx = Sink::spawn(&pbx_rtp);
    let at_caller = Sink::spawn(&caller_rtp);
    let plain_back: Vec<Vec<u8>> = (0..40u16).map(|s| pcmu(0x0BB0, 7000 + s)).collect();
    for (k, (s, p)) in sealed.iter().zip(&plain_back).enumerate() {
        if k == 10 {
            let mut bad = sealed[20].clone();
            bad[30] ^= 0x01;
            caller_rtp.send_to(&bad, sa(&media, port_a)).unwrap();
        }
        if k == 20 {
            // A replay of a packet already relayed.
            caller_rtp.send_to(&sealed[5], sa(&media, port_a)).unwrap();
        }
        caller_rtp.send_to(s, sa(&media, port_a)).unwrap();
        pbx_rtp.send_to(p, sa(&media, port_b)).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let at_pbx: Vec<Vec<u8>> = at_pbx
        .finish(Duration::from_millis(300))
        .into_iter()
        .map(|g| g.bytes)
        .collect();
    let at_caller: Vec<Vec<u8>> = at_caller
        .finish(Duration::from_millis(300))
        .into_iter()
        .map(|g| g.bytes)
        .collect();
    // Per leg, in the API: the caller's packets through the SRTP stage (one tampered, one
    // replayed, refused), the PBX's protected toward the caller; nothing transcoded.
    let legs = common::legs_media(sa(&ip(n, 1), 8080), API_TOKEN);
    let (a, b) = (&legs[0], &legs[1]);
    assert_eq!(a["srtp_packets"], 40, "{a}");
    assert_eq!(a["srtp_auth_failures"], 1, "{a}");
    assert_eq!(a["srtp_replays"], 1, "{a}");
    assert_eq!(a["srtp_refused"], 2, "{a}");
    assert_eq!(b["srtp_packets"], 40, "{b}");
    assert_eq!(
        b["srtp_refused"], 3,
        "the PBX's packets before its answer: {b}"
    );
    assert_eq!(
        (
            a["transcoded_frames"].clone(),
            b["transcoded_frames"].clone()
        ),
        (0.into(), 0.into())
    );
    caller.send_bye();
    assert!(pbx.expect_bye(T).is_some());
    let _ = caller.finish_bye(T);
    std::thread::sleep(Duration::from_millis(300));
    let log = sbc.stop();

    // In clear at the PBX, exactly what the caller protected, the tampered and replayed copies
    // missing.
    assert_eq!(at_pbx, plain_out, "{log}");
    // SRTP at the caller: 10 bytes of tag more, opened by libsrtp with the SBC's key.
    assert_eq!(at_caller.len(), plain_back.len(), "{log}");
    assert!(at_caller
        .iter()
        .zip(&plain_back)
        .all(|(s, p)| s.len() == p.len() + 10 && s[..12] == p[..12]));
    let opened = opened_rtp(suite, &sbc_key, &at_caller);
    assert_eq!(opened, plain_back);
    assert_eq!(counter(&log, "media_srtp_auth_failures"), 1, "{log}");
    assert_eq!(counter(&log, "media_srtp_replays"), 1, "{log}");
    assert_eq!(counter(&log, "media_srtp_no_key"), 3, "{log}");
    // Both directions' stages given to the relay; every packet through them counted.
    assert!(counter(&log, "media_srtp_stages") >= 2, "{log}");
    assert!(
        counter(&log, "media_srtp_packets") >= (plain_out.len() + plain_back.len()) as u64,
        "{log}"
    );
    assert_eq!(counter(&log, "media_srtp_refused"), 0, "{log}");
    assert_eq!(counter(&log, "media_srtp_no_room"), 0, "{log}");
}

#[test]
fn an_sdes_caller_talks_to_a_plain_pbx_epoll() {
    sdes_caller_plain_pbx(1, "epoll");
}

#[test]
fn an_sdes_caller_talks_to_a_plain_pbx_io_uring() {
    sdes_caller_plain_pbx(2, "io_uring");
}

/// SDES on both sides (`inside = "sdes"`): the caller's SRTP reaches the PBX as SRTP under the key
/// the SBC offered the PBX, the PBX's SRTP reaches the caller under the key the SBC answered the
/// caller with; each opened by libsrtp to the exact packets sent, and the four keys all differ
/// (SRTP to SRTP with a different key per leg and direction).
#[test]
fn sdes_on_both_sides_rekeys_each_leg() {
    let n = 6;
    let text = config_inside(n, false, "sdes");
    let sbc = Sbc::start_in(TempDir::new("srtp-sdes-sdes"), "auto", 5060, &text);
    let media = ip(n, 21);
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut caller = Ua::caller(sa(&caller_ip, 5070), sa(&ip(n, 1), 5060), "1000");
    let mut pbx = Ua::pbx(sa(&pbx_ip, 5090));
    let suite = Suite::AesCm128HmacSha1_80;
    let caller_key = key(suite);
    let pbx_key: Vec<u8> = caller_key.iter().map(|b| b ^ 0xA5).collect();
    let line = |k: &[u8]| {
        format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 {}\r\n",
            InlineKey::write(k)
        )
    };
    caller.send_invite(&audio(
        "caller",
        &caller_ip,
        7000,
        "RTP/SAVP",
        &line(&caller_key),
    ));
    let invite = pbx.answer_invite(T, |_| {
        audio("pbx", &pbx_ip, 6000, "RTP/SAVP", &line(&pbx_key))
    });
    let ok = caller.finish_invite(T);
    let trace = format!("{}{}", caller.sip.trace(), pbx.sip.trace());
    assert_eq!(ok.status(), Some(200), "{trace}");
    pbx.expect_ack(T);
    // The PBX was offered the SBC's lines and answered tag 1 (AES_CM_128_HMAC_SHA1_80): the SBC's
    // key toward the PBX is that line's; the caller got the SBC's own key in the answer.
    let offer_sdp = Sdp::parse(invite.body()).unwrap();
    let to_pbx = offer_sdp
        .cryptos(0)
        .find(|c| c.tag == 1)
        .map(|c| InlineKey::parse(c.key_params).unwrap().key_salt)
        .unwrap_or_else(|| panic!("{trace}"));
    let answer_sdp = Sdp::parse(ok.body()).unwrap();
    let to_caller: Vec<Vec<u8>> = answer_sdp
        .cryptos(0)
        .map(|c| InlineKey::parse(c.key_params).unwrap().key_salt)
        .collect();
    assert_eq!(to_caller.len(), 1, "{trace}");
    let to_caller = to_caller[0].clone();
    let keys = [&caller_key, &pbx_key, &to_pbx, &to_caller];
    for (i, a) in keys.iter().enumerate() {
        assert!(keys[i + 1..].iter().all(|b| b != a), "four different keys");
    }
    let (port_a, port_b) = (SdpSeen::of(&ok).port, SdpSeen::of(&invite).port);

    let plain_out: Vec<Vec<u8>> = (0..30u16).map(|s| pcmu(0xCA11, 1000 + s)).collect();
    let plain_back: Vec<Vec<u8>> = (0..30u16).map(|s| pcmu(0x0BB0, 7000 + s)).collect();
    let sealed_out = sealed_rtp(suite, &caller_key, &plain_out);
    let sealed_back = sealed_rtp(suite, &pbx_key, &plain_back);
    let at_pbx = Sink::spawn(&pbx_rtp);
    let at_caller = Sink::spawn(&caller_rtp);
    for (o, b) in sealed_out.iter().zip(&sealed_back) {
        caller_rtp.send_to(o, sa(&media, port_a)).unwrap();
        pbx_rtp.send_to(b, sa(&media, port_b)).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let bytes = |got: Vec<rtp::Got>| got.into_iter().map(|g| g.bytes).collect::<Vec<_>>();
    let at_pbx = bytes(at_pbx.finish(Duration::from_millis(300)));
    let at_caller = bytes(at_caller.finish(Duration::from_millis(300)));
    caller.send_bye();
    assert!(pbx.expect_bye(T).is_some());
    let _ = caller.finish_bye(T);
    let log = sbc.stop();

    // Each side gets SRTP it opens with the SBC's key toward it, to exactly what the other sent.
    assert_eq!(at_pbx.len(), plain_out.len(), "{log}");
    assert_eq!(opened_rtp(suite, &to_pbx, &at_pbx), plain_out);
    assert_eq!(at_caller.len(), plain_back.len(), "{log}");
    assert_eq!(opened_rtp(suite, &to_caller, &at_caller), plain_back);
    // Not the bytes the other side sent: re-encrypted under another key.
    assert!(at_pbx.iter().zip(&sealed_out).all(|(a, b)| a != b));
    assert_eq!(counter(&log, "media_srtp_auth_failures"), 0, "{log}");
}

/// [`config`] with the other direction's route: calls of the PBX go to the phone at `.4:5070`,
/// reached as a UDP trunk on the outside.
fn config_to_phone(n: u8) -> String {
    format!(
        "{}\n[[trunk]]\nname = \"phone\"\noutbound = {{ proxy = \"{}:5070\" }}\n\
         options_interval_secs = 0\n\
         [[route]]\nname = \"to-phone\"\nfrom = \"inside\"\nprefix = \"\"\ntrunk = \"phone\"\n",
        config(n, false),
        ip(n, 4)
    )
}

/// A plain PBX calls an SDES phone on the outside (`inside = "plain"`, `outside = "sdes"`): the
/// SBC offers the phone `RTP/SAVP` with one `a=crypto` line per suite, each with a key of its
/// own, and takes the key of the line the phone answers (`suite`, not necessarily the first);
/// the PBX is answered plain `RTP/AVP`. The phone's SRTP (libsrtp, the phone's key) reaches the
/// PBX in clear byte for byte; the PBX's RTP reaches the phone as SRTP that libsrtp opens with
/// the key the SBC offered on that line; a replayed packet is dropped and counted.
fn plain_pbx_calls_an_sdes_phone(n: u8, driver: &str, suite: Suite) {
    let dir = TempDir::new(&format!("srtp-plain-sdes-{driver}"));
    let sbc = Sbc::start_in(dir, driver, 5060, &config_to_phone(n));
    let media = ip(n, 21);
    let (phone_ip, pbx_ip) = (ip(n, 4), ip(n, 2));
    let phone_rtp = udp(&phone_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut pbx = Ua::caller(sa(&pbx_ip, 5090), sa(&ip(n, 11), 5080), "2000");
    let mut phone = Ua::pbx(sa(&phone_ip, 5070));
    let phone_key = key(suite);
    let mut chosen_tag = 0;
    pbx.send_invite(&audio("pbx", &pbx_ip, 6000, "RTP/AVP", ""));
    let invite = phone.answer_invite(T, |offer| {
        let sdp = Sdp::parse(offer.body()).unwrap();
        chosen_tag = sdp
            .cryptos(0)
            .find(|c| c.suite == suite.name())
            .map_or(0, |c| c.tag);
        let line = format!(
            "a=crypto:{chosen_tag} {} {}\r\n",
            suite.name(),
            InlineKey::write(&phone_key)
        );
        audio("phone", &phone_ip, 7000, "RTP/SAVP", &line)
    });
    let ok = pbx.finish_invite(T);
    let trace = format!("{}{}", pbx.sip.trace(), phone.sip.trace());
    assert_eq!(ok.status(), Some(200), "{trace}");
    phone.expect_ack(T);
    let offer = SdpSeen::of(&invite);
    let answer = SdpSeen::of(&ok);
    assert!(offer.text.contains("RTP/SAVP 0"), "{trace}");
    assert!(
        answer.text.contains("RTP/AVP 0") && !answer.text.contains("crypto"),
        "the PBX is answered plain RTP: {trace}"
    );
    // One line per suite the relay terminates, tags from 1, every key the SBC's own and fresh.
    let sdp = Sdp::parse(invite.body()).unwrap();
    let lines: Vec<Crypto<'_>> = sdp.cryptos(0).collect();
    let names: Vec<&str> = lines.iter().map(|c| c.suite).collect();
    assert_eq!(
        names,
        [
            "AES_CM_128_HMAC_SHA1_80",
            "AES_CM_128_HMAC_SHA1_32",
            "AEAD_AES_128_GCM",
            "AEAD_AES_256_GCM",
            "AES_256_CM_HMAC_SHA1_80",
            "AES_256_CM_HMAC_SHA1_32",
        ],
        "{trace}"
    );
    assert!(lines.iter().zip(1u32..).all(|(c, t)| c.tag == t), "{trace}");
    let keys: Vec<Vec<u8>> = lines
        .iter()
        .map(|c| InlineKey::parse(c.key_params).unwrap().key_salt)
        .collect();
    for (k, a) in keys.iter().enumerate() {
        assert!(keys[k + 1..].iter().all(|b| b[..16] != a[..16]), "{trace}");
    }
    assert_ne!(chosen_tag, 0, "{trace}");
    let sbc_key = keys[chosen_tag as usize - 1].clone();
    assert_eq!(sbc_key.len(), suite.master_len(), "{trace}");
    let (port_phone, port_pbx) = (offer.port, answer.port);

    // The phone's packets, protected by libsrtp with its key; the 5th sent again after the 10th.
    let plain_out: Vec<Vec<u8>> = (0..40u16).map(|s| pcmu(0xF0E5, 500 + s)).collect();
    let sealed = sealed_rtp(suite, &phone_key, &plain_out);
    let at_pbx = Sink::spawn(&pbx_rtp);
    let at_phone = Sink::spawn(&phone_rtp);
    let plain_back: Vec<Vec<u8>> = (0..40u16).map(|s| pcmu(0x0BB1, 9000 + s)).collect();
    for (k, (s, p)) in sealed.iter().zip(&plain_back).enumerate() {
        if k == 10 {
            phone_rtp
                .send_to(&sealed[4], sa(&media, port_phone))
                .unwrap();
        }
        phone_rtp.send_to(s, sa(&media, port_phone)).unwrap();
        pbx_rtp.send_to(p, sa(&media, port_pbx)).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let bytes = |got: Vec<rtp::Got>| got.into_iter().map(|g| g.bytes).collect::<Vec<_>>();
    let at_pbx = bytes(at_pbx.finish(Duration::from_millis(300)));
    let at_phone = bytes(at_phone.finish(Duration::from_millis(300)));
    pbx.send_bye();
    assert!(phone.expect_bye(T).is_some());
    let _ = pbx.finish_bye(T);
    std::thread::sleep(Duration::from_millis(300));
    let log = sbc.stop();

    // In clear at the PBX, exactly what the phone protected, the replay missing.
    assert_eq!(at_pbx, plain_out, "{log}");
    // SRTP at the phone under the SBC's key of the line it answered, opened by libsrtp.
    assert_eq!(at_phone.len(), plain_back.len(), "{log}");
    let opened = opened_rtp(suite, &sbc_key, &at_phone);
    assert_eq!(opened, plain_back);
    assert_eq!(counter(&log, "media_srtp_replays"), 1, "{log}");
    assert_eq!(counter(&log, "media_srtp_auth_failures"), 0, "{log}");
}

#[test]
fn a_plain_pbx_calls_an_sdes_phone_epoll() {
    plain_pbx_calls_an_sdes_phone(4, "epoll", Suite::AesCm128HmacSha1_80);
}

#[test]
fn a_plain_pbx_calls_an_sdes_phone_that_answers_gcm_io_uring() {
    plain_pbx_calls_an_sdes_phone(5, "io_uring", Suite::AeadAes128Gcm);
}

/// With `require_tls_for_sdes` and the outside on UDP, the SBC will not answer with a key: 488
/// with a Warning naming the reason, and nothing reaches the PBX.
#[test]
fn sdes_keys_are_refused_over_udp_when_tls_is_required() {
    let n = 3;
    let dir = TempDir::new("srtp-require-tls");
    let sbc = Sbc::start_in(dir, "epoll", 5060, &config(n, true));
    let caller_ip = ip(n, 3);
    let mut caller = Ua::caller(sa(&caller_ip, 5070), sa(&ip(n, 1), 5060), "1000");
    let line = format!(
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 {}\r\n",
        InlineKey::write(&key(Suite::AesCm128HmacSha1_80))
    );
    caller.send_invite(&audio("caller", &caller_ip, 7000, "RTP/SAVP", &line));
    let refused = caller.finish_invite(T);
    let text = String::from_utf8_lossy(refused.raw()).into_owned();
    assert_eq!(refused.status(), Some(488), "{text}");
    assert!(
        text.contains(
            "Warning: 399 sbc \"SRTP: SDES keys refused over a transport that is not TLS\""
        ),
        "{text}"
    );
    let log = sbc.stop();
    assert_eq!(counter(&log, "media_offers_refused"), 1, "{log}");
    assert_eq!(counter(&log, "media_srtp_refused"), 1, "{log}");
    assert_eq!(counter(&log, "media_srtp_stages"), 0, "{log}");
}
