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
use rtp::{counter, udp, Got, SdpSeen, Sink, Ua};

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
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n",
        out = ip(n, 1),
        inside = ip(n, 11),
        media = ip(n, 21),
        pbx = ip(n, 2),
    )
}

fn sdp(user: &str, ip: &str, port: u16, formats: &str, maps: &str) -> String {
    format!(
        "v=0\r\no={user} 4711 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\n{maps}a=ptime:20\r\na=sendrecv\r\n"
    )
}

fn rtp_packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
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
        let p = rtp_packet(8, false, seq, ts, 0xCA11, &code);
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
            let p = rtp_packet(101, i == 1, seq, start, 0xCA11, &ev.to_bytes());
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
            let p = rtp_packet(101, false, seq, start, 0xCA11, &ev.to_bytes());
            caller_rtp.send_to(&p, sa(&media, port_a)).unwrap();
            seq = seq.wrapping_add(1);
        }
        ts = start.wrapping_add(800);
        for _ in 0..5 {
            let p = rtp_packet(8, false, seq, ts, 0xCA11, &silence);
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
            let p = rtp_packet(0, false, pseq, pts, 0x0BB0, &code);
            pbx_rtp.send_to(&p, sa(&media, port_b)).unwrap();
            pseq = pseq.wrapping_add(1);
            pts = pts.wrapping_add(160);
            pace.tick();
        }
    }
    let bytes = |got: Vec<Got>| got.into_iter().map(|g| g.bytes).collect::<Vec<_>>();
    let at_pbx = bytes(at_pbx.finish(Duration::from_millis(300)));
    let at_caller = bytes(at_caller.finish(Duration::from_millis(300)));
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
}

#[test]
fn a_pcma_caller_talks_to_a_pcmu_pbx_with_dtmf_both_ways_epoll() {
    pcma_caller_pcmu_pbx(1, "epoll");
}

#[test]
fn a_pcma_caller_talks_to_a_pcmu_pbx_with_dtmf_both_ways_io_uring() {
    pcma_caller_pcmu_pbx(2, "io_uring");
}
