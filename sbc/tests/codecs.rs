//! Transcoding and DTMF interworking end to end: the real `sbc` binary between a PCMA-only caller
//! (with telephone-event) and a PCMU-only PBX (without), both written here on raw UDP
//! (`common/rtp.rs` for SIP). `[codecs.inside] transcode_to = ["PCMU"]` makes the SBC offer PCMU
//! to the PBX, answer PCMA to the caller and transcode between them; DTMF crosses as RFC 4733 on
//! the caller's leg and as in-band tones on the PBX's. Addresses 127.45.<n>.x:
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside SIP; `.21` its media address |
//! | `.11:5080` | the SBC, inside SIP |
//! | `.2:5090` | the PBX; its RTP on `.2:6000` |
//! | `.3:5070` | the caller; its RTP on `.3:7000` |

mod common;
#[path = "common/rtp.rs"]
mod rtp;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Sbc, TempDir};
use media_plane::codec::dtmf::{self, Detected, Detector, Event};
use media_plane::codec::g711;
use media_plane::codec::measure::{level_db, peak_frequency, sine, snr_db};
use rtp::{counter, rtp_with, udp, Got, SdpSeen, Sink, Ua};

const T: Duration = Duration::from_secs(5);

fn ip(n: u8, host: u8) -> String {
    format!("127.45.{n}.{host}")
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn config(n: u8) -> String {
    format!(
        "workers = 1\n\
         [sip]\nudp = [\"{out}:5060\"]\n\
         [inside]\naddress = \"{inside}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [limits]\nmax_cps = 0\n\
         [media]\nenabled = true\naddress = \"{media}\"\nport_min = 20000\nport_max = 20399\n\
         [codecs.inside]\ntranscode_to = [\"PCMU\"]\n\
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

const API_TOKEN: &str = "codecs-test-token-0123456789";

fn sdp(user: &str, ip: &str, port: u16, formats: &str, maps: &str) -> String {
    format!(
        "v=0\r\no={user} 4711 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\n{maps}a=ptime:20\r\na=sendrecv\r\n"
    )
}

/// Paced sender: one packet every 20 ms.
struct Pacer(Instant, u32);

impl Pacer {
    fn tick(&mut self) {
        self.1 += 1;
        let next = self.0 + Duration::from_millis(20) * self.1;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Digits one way: (1) the caller's PCMA 1004 Hz tone reaches the PCMU-only PBX in PCMU, with its
/// frequency, level and an SNR above 30 dB; (2) the caller's RFC 4733 digits reach the PBX as
/// in-band PCMU tones, each detected exactly once, in order; (3) the PBX's in-band digits reach
/// the caller as RFC 4733 events at its payload type 101, each once, in order.
fn pcma_caller_pcmu_pbx(n: u8, driver: &str) {
    let dir = TempDir::new(&format!("codecs-pcma-pcmu-{driver}"));
    let sbc = Sbc::start_in(dir, driver, 5060, &config(n));
    let media = ip(n, 21);
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut caller = Ua::caller(sa(&caller_ip, 5070), sa(&ip(n, 1), 5060), "1000");
    let mut pbx = Ua::pbx(sa(&pbx_ip, 5090));
    let maps = "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";
    caller.send_invite(&sdp("caller", &caller_ip, 7000, "8 101", maps));
    let invite = pbx.answer_invite(T, |_| {
        sdp("pbx", &pbx_ip, 6000, "0", "a=rtpmap:0 PCMU/8000\r\n")
    });
    let ok = caller.finish_invite(T);
    let trace = format!("{}{}", caller.sip.trace(), pbx.sip.trace());
    assert_eq!(ok.status(), Some(200), "{trace}");
    pbx.expect_ack(T);
    let offer = SdpSeen::of(&invite);
    let answer = SdpSeen::of(&ok);
    assert!(
        offer.text.contains("a=rtpmap:0 PCMU/8000"),
        "the PBX is offered PCMU: {trace}"
    );
    assert!(
        answer.text.contains("RTP/AVP 8 101") && answer.text.contains("a=rtpmap:8 PCMA/8000"),
        "the caller is answered PCMA and telephone-event: {trace}"
    );
    assert!(!answer.text.contains("PCMU"), "{trace}");
    let (port_a, port_b) = (answer.port, offer.port);

    let at_pbx = Sink::spawn(&pbx_rtp);
    let at_caller = Sink::spawn(&caller_rtp);
    let mut pace = Pacer(Instant::now(), 0);
    // (1) 1 s of the 1004 Hz tone from the caller, in PCMA.
    let tone = sine(1004.0, 8000.0, 0, 8000);
    let mut seq = 100u16;
    let mut ts = 0u32;
    for frame in tone.chunks(160) {
        let mut code = vec![0u8; 160];
        g711::encode_alaw(frame, &mut code);
        let p = rtp_with(8, false, seq, ts, 0xCA11, &code);
        caller_rtp.send_to(&p, sa(&media, port_a)).unwrap();
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
        pace.tick();
    }
    // (2) the caller's digits as RFC 4733: 100 ms each, three end packets, 100 ms of silence.
    let digits_out = [1u8, 5, 11, 0];
    let silence = [0xd5u8; 160];
    for &d in &digits_out {
        let start = ts;
        for i in 1..=5u16 {
            let ev = Event {
                event: d,
                end: false,
                volume: 10,
                duration: i * 160,
            };
            let p = rtp_with(101, i == 1, seq, start, 0xCA11, &ev.to_bytes());
            caller_rtp.send_to(&p, sa(&media, port_a)).unwrap();
            seq = seq.wrapping_add(1);
            pace.tick();
        }
        for _ in 0..3 {
            let ev = Event {
                event: d,
                end: true,
                volume: 10,
                duration: 800,
            };
            let p = rtp_with(101, false, seq, start, 0xCA11, &ev.to_bytes());
            caller_rtp.send_to(&p, sa(&media, port_a)).unwrap();
            seq = seq.wrapping_add(1);
        }
        ts = start.wrapping_add(800);
        for _ in 0..5 {
            let p = rtp_with(8, false, seq, ts, 0xCA11, &silence);
            caller_rtp.send_to(&p, sa(&media, port_a)).unwrap();
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
            pace.tick();
        }
    }
    // (3) the PBX's digits in-band, in PCMU: 100 ms of tone, 100 ms of silence.
    let digits_back = [9u8, 10, 3];
    let (mut pseq, mut pts) = (5000u16, 0u32);
    for &d in &digits_back {
        let (lo, hi) = dtmf::frequencies(d).unwrap();
        let t: Vec<i16> = sine(f64::from(lo), 6000.0, 0, 800)
            .iter()
            .zip(sine(f64::from(hi), 5000.0, 0, 800))
            .map(|(a, b)| a + b)
            .chain(std::iter::repeat_n(0, 800))
            .collect();
        for frame in t.chunks(160) {
            let mut code = vec![0u8; 160];
            g711::encode_ulaw(frame, &mut code);
            let p = rtp_with(0, false, pseq, pts, 0x0BB0, &code);
            pbx_rtp.send_to(&p, sa(&media, port_b)).unwrap();
            pseq = pseq.wrapping_add(1);
            pts = pts.wrapping_add(160);
            pace.tick();
        }
    }
    let bytes = |got: Vec<Got>| got.into_iter().map(|g| g.bytes).collect::<Vec<_>>();
    let at_pbx = bytes(at_pbx.finish(Duration::from_millis(300)));
    let at_caller = bytes(at_caller.finish(Duration::from_millis(300)));
    // Per leg, in the API: the caller's PCMA frames transcoded to PCMU, the PBX's PCMU to PCMA.
    let legs = common::legs_media(sa(&ip(n, 1), 8080), API_TOKEN);
    let frames = |l: &serde_json::Value| l["transcoded_frames"].as_u64().unwrap_or(0);
    assert!(frames(&legs[0]) >= 50, "{legs:?}");
    assert!(frames(&legs[1]) >= 1, "{legs:?}");
    assert_eq!(legs[0]["srtp_packets"], 0, "{legs:?}");
    caller.send_bye();
    assert!(pbx.expect_bye(T).is_some());
    let _ = caller.finish_bye(T);
    std::thread::sleep(Duration::from_millis(300));
    let log = sbc.stop();

    // (1) The PBX got PCMU only, and the tone in it.
    assert!(
        at_pbx.iter().all(|p| p[1] & 0x7f == 0),
        "PCMU only to the PBX"
    );
    let decoded: Vec<i16> = at_pbx
        .iter()
        .take(50)
        .flat_map(|p| {
            let mut pcm = vec![0i16; p.len() - 12];
            g711::decode_ulaw(&p[12..], &mut pcm);
            pcm
        })
        .collect();
    assert_eq!(decoded.len(), 8000, "the whole tone arrived");
    let peak = peak_frequency(&decoded);
    assert!((peak - 1004.0).abs() <= 5.0, "peak at {peak} Hz");
    let level = level_db(&tone, &decoded);
    assert!(level.abs() < 0.5, "level off by {level:.2} dB");
    let snr = snr_db(&tone, &decoded);
    assert!(snr >= 30.0, "SNR {snr:.1} dB");

    // (2) The caller's digits, in-band at the PBX, once each, in order.
    let mut det = Detector::new();
    let mut heard = Vec::new();
    for p in &at_pbx[50..] {
        let mut pcm = vec![0i16; p.len() - 12];
        g711::decode_ulaw(&p[12..], &mut pcm);
        if let Detected::Start(d) = det.push(&pcm) {
            heard.push(d);
        }
    }
    assert_eq!(heard, digits_out, "digits heard by the PBX");

    // (3) The PBX's digits at the caller as RFC 4733 at 101, once each, in order; the rest is
    // PCMA.
    let mut events = Vec::new();
    for p in &at_caller {
        match p[1] & 0x7f {
            8 => {}
            101 => {
                let ev = Event::parse(&p[12..]).unwrap();
                if p[1] & 0x80 != 0 {
                    events.push(ev.event);
                }
            }
            other => panic!("payload type {other} to the caller"),
        }
    }
    assert_eq!(events, digits_back, "events at the caller");

    assert!(counter(&log, "media_transcoded_frames") >= 50, "{log}");
    assert_eq!(counter(&log, "media_transcoded_streams"), 1, "{log}");
    assert_eq!(
        counter(&log, "media_dtmf_events"),
        (digits_out.len() + digits_back.len()) as u64,
        "{log}"
    );
    // The same, by what was done with them.
    assert_eq!(
        counter(&log, "media_dtmf_generated"),
        digits_out.len() as u64,
        "{log}"
    );
    assert_eq!(
        counter(&log, "media_dtmf_detected"),
        digits_back.len() as u64,
        "{log}"
    );
    assert_eq!(counter(&log, "media_dtmf_relayed"), 0, "{log}");
    assert_eq!(counter(&log, "media_repacketised_packets"), 0, "{log}");
}

#[test]
fn a_pcma_caller_talks_to_a_pcmu_pbx_with_dtmf_both_ways_epoll() {
    pcma_caller_pcmu_pbx(1, "epoll");
}

#[test]
fn a_pcma_caller_talks_to_a_pcmu_pbx_with_dtmf_both_ways_io_uring() {
    pcma_caller_pcmu_pbx(2, "io_uring");
}

/// The SNR of `got` against a 1004 Hz `reference` at the best alignment within 50 ms (codec and
/// network delays), and the level there.
fn snr_and_level(reference: &[i16], got: &[i16]) -> (f64, f64) {
    let span = 4000;
    (0..400)
        .filter_map(|lag| {
            let g = got.get(lag..lag + span)?;
            Some((
                snr_db(&reference[..span], g),
                level_db(&reference[..span], g),
            ))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap()
}

/// An Opus caller (opus/48000/2, its fmtp asking for FEC and at most 20 kbit/s, 20 ms) in front
/// of a PCMU-only PBX (30 ms): the SBC offers PCMU to the PBX, answers Opus to the caller, and
/// transcodes. The caller's 1004 Hz tone, Opus-encoded at 16 kHz, reaches the PBX as PCMU in 30 ms
/// packets (sequence numbers one apart, timestamps 240 apart) with its frequency within 5 Hz,
/// its level within 1 dB and an SNR of at least 30 dB (measured 36.5 dB); the PBX's 30 ms
/// reach the caller repacketised as Opus packets of 20 ms each (the caller's ptime: three for
/// every two of the PBX's), numbered one apart and stamped 960 apart, that decode to the same
/// frequency.
#[test]
fn an_opus_caller_talks_to_a_pcmu_pbx_at_another_packet_time() {
    opus_caller_pcmu_pbx(3, "epoll");
}

/// The same through the io_uring driver (its further packets sent from its spare buffer).
#[test]
fn an_opus_caller_talks_to_a_pcmu_pbx_at_another_packet_time_io_uring() {
    opus_caller_pcmu_pbx(4, "io_uring");
}

fn opus_caller_pcmu_pbx(n: u8, driver: &str) {
    use media_plane::codec::opus;
    let dir = TempDir::new(&format!("codecs-opus-pcmu-{driver}"));
    let sbc = Sbc::start_in(dir, driver, 5060, &config(n));
    let media = ip(n, 21);
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut caller = Ua::caller(sa(&caller_ip, 5070), sa(&ip(n, 1), 5060), "1000");
    let mut pbx = Ua::pbx(sa(&pbx_ip, 5090));
    let maps = "a=rtpmap:111 opus/48000/2\r\n\
                a=fmtp:111 useinbandfec=1;maxaveragebitrate=20000\r\n";
    caller.send_invite(&sdp("caller", &caller_ip, 7000, "111", maps));
    let invite = pbx.answer_invite(T, |_| {
        sdp("pbx", &pbx_ip, 6000, "0", "a=rtpmap:0 PCMU/8000\r\n").replace("ptime:20", "ptime:30")
    });
    let ok = caller.finish_invite(T);
    let trace = format!("{}{}", caller.sip.trace(), pbx.sip.trace());
    assert_eq!(ok.status(), Some(200), "{trace}");
    pbx.expect_ack(T);
    let offer = SdpSeen::of(&invite);
    let answer = SdpSeen::of(&ok);
    assert!(offer.text.contains("a=rtpmap:0 PCMU/8000"), "{trace}");
    assert!(
        answer.text.contains("RTP/AVP 111") && answer.text.contains("a=rtpmap:111 opus/48000/2"),
        "the caller is answered Opus: {trace}"
    );
    assert!(answer.text.contains("a=ptime:20"), "{trace}");
    let (port_a, port_b) = (answer.port, offer.port);

    let at_pbx = Sink::spawn(&pbx_rtp);
    let at_caller = Sink::spawn(&caller_rtp);
    let mut enc = opus::Encoder::new(16000, 5, &Default::default()).unwrap();
    // 1 s of the tone at 16 kHz from the caller (Opus, 20 ms), and at 8 kHz from the PBX (PCMU,
    // 30 ms), interleaved on one clock.
    let wide: Vec<i16> = (0..16000)
        .map(|i| (8000.0 * (std::f64::consts::TAU * 1004.0 * f64::from(i) / 16000.0).sin()) as i16)
        .collect();
    let narrow = sine(1004.0, 8000.0, 0, 8000);
    let mut pace = Pacer(Instant::now(), 0);
    let mut pbx_frames = narrow.chunks(240);
    for (i, frame) in wide.chunks(320).enumerate() {
        let mut code = vec![0u8; 400];
        let len = enc.encode(frame, &mut code).unwrap();
        let p = rtp_with(
            111,
            i == 0,
            300 + i as u16,
            9600 * 7 + 960 * i as u32,
            0x0B05,
            &code[..len],
        );
        caller_rtp.send_to(&p, sa(&media, port_a)).unwrap();
        // The PBX sends 30 ms every 30 ms: two packets per three of the caller's.
        if i % 3 != 2 {
            if let Some(f) = pbx_frames.next() {
                let k = (i / 3 * 2 + i % 3) as u32;
                let mut c = vec![0u8; f.len()];
                g711::encode_ulaw(f, &mut c);
                let p = rtp_with(0, false, 7000 + k as u16, 240 * k, 0x0BB0, &c);
                pbx_rtp.send_to(&p, sa(&media, port_b)).unwrap();
            }
        }
        pace.tick();
    }
    let bytes = |got: Vec<Got>| got.into_iter().map(|g| g.bytes).collect::<Vec<_>>();
    let at_pbx = bytes(at_pbx.finish(Duration::from_millis(300)));
    let at_caller = bytes(at_caller.finish(Duration::from_millis(300)));
    caller.send_bye();
    assert!(pbx.expect_bye(T).is_some());
    let _ = caller.finish_bye(T);
    let log = sbc.stop();

    // At the PBX: PCMU in 30 ms packets, numbered and stamped consistently, the tone in them.
    assert!(at_pbx.len() >= 30, "{} packets at the PBX", at_pbx.len());
    for w in at_pbx.windows(2) {
        let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert_eq!(w[0][1] & 0x7f, 0, "PCMU to the PBX");
        assert_eq!(w[0].len(), 12 + 240, "30 ms packets");
        assert_eq!(seq(&w[1]), seq(&w[0]).wrapping_add(1));
        assert_eq!(ts(&w[1]).wrapping_sub(ts(&w[0])), 240);
    }
    let decoded: Vec<i16> = at_pbx
        .iter()
        .flat_map(|p| {
            let mut pcm = vec![0i16; p.len() - 12];
            g711::decode_ulaw(&p[12..], &mut pcm);
            pcm
        })
        .collect();
    let settled = &decoded[1600..];
    let peak = peak_frequency(settled);
    assert!((peak - 1004.0).abs() <= 5.0, "peak at {peak} Hz at the PBX");
    let (snr, level) = snr_and_level(&narrow, settled);
    eprintln!("Opus -> PCMU through the SBC: SNR {snr:.1} dB, level {level:.2} dB");
    assert!(level.abs() <= 1.0, "level off by {level:.2} dB");
    assert!(snr >= 30.0, "SNR {snr:.1} dB");

    // At the caller: Opus packets of 20 ms, stamped in 48 kHz ticks, decoding to the tone; the
    // PBX's 33 packets of 30 ms make 49 or 50 of 20 ms (the last 10 ms may wait in the FIFO).
    assert!(
        (45..=50).contains(&at_caller.len()),
        "{} packets at the caller",
        at_caller.len()
    );
    let mut dec = opus::Decoder::new(8000).unwrap();
    let mut back = Vec::new();
    for w in at_caller.windows(2) {
        assert_eq!(w[0][1] & 0x7f, 111, "Opus to the caller");
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        let mut pcm = vec![0i16; 960];
        let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
        let got = dec.decode(&w[0][12..], &mut pcm, false).unwrap();
        assert_eq!(got, 160, "20 ms packets");
        assert_eq!(ts(&w[1]).wrapping_sub(ts(&w[0])), 960);
        assert_eq!(seq(&w[1]), seq(&w[0]).wrapping_add(1));
        back.extend_from_slice(&pcm[..got]);
    }
    let peak = peak_frequency(&back[1600..]);
    assert!(
        (peak - 1004.0).abs() <= 5.0,
        "peak at {peak} Hz at the caller"
    );
    assert!(counter(&log, "media_transcoded_frames") >= 80, "{log}");
    assert_eq!(counter(&log, "media_transcoded_streams"), 1, "{log}");
    // Every other packet of the PBX's gave a second 20 ms packet to the caller.
    let more = counter(&log, "media_repacketised_packets");
    assert!((14..=17).contains(&more), "{more} further packets\n{log}");
    assert_eq!(at_caller.len(), 50, "1 s in 20 ms packets\n{log}");
}
