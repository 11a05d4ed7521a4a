//! Signal tests of the pipelines: a 1004 Hz tone at about -12 dBFS is encoded in the sending
//! codec, sent through the stage in 20 (or 30) ms packets, and what comes out is checked as RTP
//! (payload type, sequence numbers one apart, timestamps as far apart as the audio sent) and
//! decoded: its strongest frequency within 5 Hz, its level within a tolerance, its SNR against the
//! reference (at the best alignment, the codecs and filters delaying it) above a threshold per
//! pair. The thresholds sit a few dB under what was measured (in the table of docs/codecs.md).

use core::f64::consts::TAU;

use super::super::measure::{energy, level_db};
use super::super::{
    g711, g722, opus, Codec, CodecCounters, CodecPlan, CodecStage, G722Narrowband, LegFormat,
    StageResult, Way,
};

const FREQ: f64 = 1004.0;
const AMP: f64 = 8000.0;

fn tone(rate: u32, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (AMP * (TAU * FREQ * i as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The rate the test decodes a codec at (Opus: `opus_rate`).
fn rate_of(codec: Codec, opus_rate: u32) -> u32 {
    match codec {
        Codec::Pcmu | Codec::Pcma => 8000,
        Codec::G722 => 16000,
        Codec::Opus => opus_rate,
    }
}

/// A reference encoder of whole streams.
#[allow(clippy::large_enum_variant)]
enum RefEnc {
    Law(Codec),
    G722(g722::Encoder),
    Opus(opus::Encoder),
}

impl RefEnc {
    fn new(codec: Codec, rate: u32) -> Self {
        match codec {
            Codec::G722 => Self::G722(g722::Encoder::new()),
            Codec::Opus => Self::Opus(
                opus::Encoder::new(rate, 5, &Default::default()).expect("libopus encoder"),
            ),
            law => Self::Law(law),
        }
    }

    fn encode(&mut self, pcm: &[i16]) -> Vec<u8> {
        let mut out = vec![0u8; 1500];
        let n = match self {
            Self::Law(Codec::Pcma) => {
                g711::encode_alaw(pcm, &mut out);
                pcm.len()
            }
            Self::Law(_) => {
                g711::encode_ulaw(pcm, &mut out);
                pcm.len()
            }
            Self::G722(e) => e.encode(pcm, &mut out),
            Self::Opus(e) => e.encode(pcm, &mut out).expect("encode"),
        };
        out.truncate(n);
        out
    }
}

/// A reference decoder.
#[allow(clippy::large_enum_variant)]
enum RefDec {
    Law(Codec),
    G722(g722::Decoder),
    Opus(opus::Decoder),
}

impl RefDec {
    fn new(codec: Codec, rate: u32) -> Self {
        match codec {
            Codec::G722 => Self::G722(g722::Decoder::new()),
            Codec::Opus => Self::Opus(opus::Decoder::new(rate).expect("libopus decoder")),
            law => Self::Law(law),
        }
    }

    fn decode(&mut self, payload: &[u8]) -> Vec<i16> {
        let mut out = vec![0i16; 5760];
        let n = match self {
            Self::Law(Codec::Pcma) => {
                g711::decode_alaw(payload, &mut out);
                payload.len()
            }
            Self::Law(_) => {
                g711::decode_ulaw(payload, &mut out);
                payload.len()
            }
            Self::G722(d) => d.decode(payload, &mut out),
            Self::Opus(d) => d.decode(payload, &mut out, false).expect("decode"),
        };
        out.truncate(n);
        out
    }
}

/// The power of `freq` in `x` sampled at `rate` (Goertzel).
fn power(x: &[i16], rate: u32, freq: f64) -> f64 {
    let k = 2.0 * (TAU * freq / f64::from(rate)).cos();
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for &s in x {
        let n = f64::from(s) + k * a - b;
        b = a;
        a = n;
    }
    a * a + b * b - k * a * b
}

/// The strongest frequency in 300-3400 Hz, 2 Hz steps, over 100 ms.
fn peak(x: &[i16], rate: u32) -> f64 {
    let n = usize::try_from(rate / 10).unwrap();
    let x = x.get(..n).unwrap_or(x);
    (150..=1700)
        .map(|i| f64::from(i) * 2.0)
        .max_by(|a, b| power(x, rate, *a).total_cmp(&power(x, rate, *b)))
        .unwrap()
}

/// The SNR of `got` against `reference` at the best delay of up to 50 ms (and that delay).
fn best_snr(reference: &[i16], got: &[i16], rate: u32) -> (f64, usize) {
    let span = usize::try_from(rate / 2).unwrap();
    let r = &reference[..span];
    (0..usize::try_from(rate / 20).unwrap())
        .filter_map(|lag| {
            let g = got.get(lag..lag + span)?;
            let noise: f64 = r
                .iter()
                .zip(g)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum();
            Some((10.0 * (energy(r) / noise.max(1e-9)).log10(), lag))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap()
}

/// `pkt` through `stage` travelling A to B, with 2048 bytes of room: every packet it produced
/// (the first, then those [`CodecStage::next_packet`] gives).
fn process_all(stage: &mut CodecStage, pkt: &[u8], totals: &mut CodecCounters) -> Vec<Vec<u8>> {
    let mut room = vec![0u8; 2048];
    room[..pkt.len()].copy_from_slice(pkt);
    let mut out = Vec::new();
    if let StageResult::Forward(n) = stage.process(Way::AToB, &mut room, pkt.len(), totals) {
        out.push(room[..n].to_vec());
        while stage.pending(Way::AToB) {
            let mut more = vec![0u8; 2048];
            let n = stage
                .next_packet(Way::AToB, &mut more, totals)
                .expect("a packet due");
            out.push(more[..n].to_vec());
        }
    }
    assert!(!stage.pending(Way::AToB));
    out
}

struct Case {
    from: LegFormat,
    to: LegFormat,
    /// The rate the Opus end of the test encodes or decodes at.
    opus_rate: u32,
    g722: G722Narrowband,
}

/// What came out of the stage: the packets and the decoded audio.
struct Out {
    packets: Vec<Vec<u8>>,
    pcm: Vec<i16>,
    rate: u32,
    stage: CodecStage,
}

/// 1.2 s of the tone from `from` through the stage to `to`, in `from`'s packet time.
fn run(case: &Case) -> Out {
    let Case {
        from,
        to,
        opus_rate,
        g722,
    } = *case;
    let mut plan = CodecPlan::new(from, to);
    plan.g722_narrowband = g722;
    let mut stage = CodecStage::new(plan);
    let in_rate = rate_of(from.codec, opus_rate);
    let reference = tone(in_rate, usize::try_from(in_rate * 12 / 10).unwrap());
    let mut enc = RefEnc::new(from.codec, in_rate);
    let out_rate = rate_of(to.codec, opus_rate);
    let mut dec = RefDec::new(to.codec, out_rate);
    let frame = usize::try_from(in_rate * from.packet_ms() / 1000).unwrap();
    let ticks = from.codec.clock_rate() * from.packet_ms() / 1000;
    let (mut packets, mut pcm) = (Vec::new(), Vec::new());
    let mut totals = CodecCounters::default();
    for (i, chunk) in reference.chunks_exact(frame).enumerate() {
        let pkt = rtp(
            from.payload_type,
            1000 + i as u16,
            5000 + i as u32 * ticks,
            &enc.encode(chunk),
        );
        for p in process_all(&mut stage, &pkt, &mut totals) {
            pcm.extend(dec.decode(&p[12..]));
            packets.push(p);
        }
    }
    Out {
        packets,
        pcm,
        rate: out_rate,
        stage,
    }
}

/// RTP of what came out: `to`'s payload type, sequence numbers one apart, timestamps as far
/// apart as the previous packet's audio; returns the packets' durations in ms.
fn check_rtp(out: &Out, to: &LegFormat) -> Vec<u32> {
    let mut durations = Vec::new();
    let clock = to.codec.clock_rate();
    let mut dec = RefDec::new(to.codec, 48000);
    for w in out.packets.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert_eq!(a[1] & 0x7f, to.payload_type);
        let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert_eq!(seq(b), seq(a).wrapping_add(1), "sequence numbers one apart");
        // The audio of `a` in the receiver's clock.
        let samples = match to.codec {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => a.len() - 12,
            Codec::Opus => dec.decode(&a[12..]).len(),
        };
        assert_eq!(
            ts(b).wrapping_sub(ts(a)),
            samples as u32,
            "timestamps as far apart as the audio"
        );
        durations.push(samples as u32 * 1000 / clock);
    }
    durations
}

/// Frequency within 5 Hz, level within `level_tol` dB, SNR at least `min_snr` dB (after the
/// first 200 ms, the codecs settling).
fn check_tone(out: &Out, level_tol: f64, min_snr: f64, what: &str) -> f64 {
    let rate = out.rate;
    let skip = usize::try_from(rate / 5).unwrap();
    let got = &out.pcm[skip..];
    let f = peak(got, rate);
    assert!((f - FREQ).abs() <= 5.0, "{what}: peak at {f} Hz");
    let reference = tone(rate, usize::try_from(rate).unwrap());
    let (snr, lag) = best_snr(&reference, got, rate);
    let span = usize::try_from(rate / 2).unwrap();
    let level = level_db(&reference[..span], &got[lag..lag + span]);
    eprintln!("{what}: peak {f} Hz, level {level:.2} dB, SNR {snr:.1} dB, lag {lag}");
    assert!(
        level.abs() <= level_tol,
        "{what}: level off by {level:.2} dB"
    );
    assert!(snr >= min_snr, "{what}: SNR {snr:.1} dB < {min_snr}");
    snr
}

fn leg(codec: Codec, pt: u8) -> LegFormat {
    LegFormat::new(codec, pt, None)
}

fn with_ptime(mut l: LegFormat, ms: u16) -> LegFormat {
    l.ptime = ms;
    l
}

/// G.722 <-> G.711, both ways of meeting 8 kHz. Through the lower sub-band (the default):
/// measured 35.8 dB (G.722 -> PCMU) and 37.9 dB (PCMA -> G.722). Through the full codec and the
/// half-band filter: 38.7 and 38.2 dB (G.722's 47 dB on its own, g722.rs, meets the law's 39).
#[test]
fn g722_and_g711() {
    for (mode, min_snr) in [
        (G722Narrowband::SubBand, 33.0),
        (G722Narrowband::Resample, 35.0),
    ] {
        for (from, to) in [
            (leg(Codec::G722, 9), leg(Codec::Pcmu, 0)),
            (leg(Codec::Pcma, 8), leg(Codec::G722, 9)),
        ] {
            let case = Case {
                from,
                to,
                opus_rate: 8000,
                g722: mode,
            };
            let out = run(&case);
            assert_eq!(check_rtp(&out, &to).iter().max(), Some(&20));
            let what = format!("{:?}->{:?} ({mode:?})", from.codec, to.codec);
            check_tone(&out, 0.5, min_snr, &what);
            assert_eq!(out.stage.counters().transcoded_frames, 60);
        }
    }
}

/// Opus <-> G.711 (8 kHz working rate, Opus narrowband at 16 kbit/s, complexity 3): Opus is a
/// perceptual codec, yet on a steady tone it keeps the waveform: measured 29.3-30.1 dB.
#[test]
fn opus_and_g711() {
    for (from, to) in [
        (leg(Codec::Opus, 111), leg(Codec::Pcmu, 0)),
        (leg(Codec::Pcma, 8), leg(Codec::Opus, 96)),
    ] {
        let case = Case {
            from,
            to,
            opus_rate: 8000,
            g722: G722Narrowband::SubBand,
        };
        let out = run(&case);
        assert_eq!(check_rtp(&out, &to).iter().max(), Some(&20));
        check_tone(
            &out,
            1.0,
            25.0,
            &format!("{:?}->{:?}", from.codec, to.codec),
        );
    }
}

/// Opus <-> G.722 (16 kHz working rate, Opus wideband at 24 kbit/s): measured 42.5-42.8 dB.
#[test]
fn opus_and_g722() {
    for (from, to) in [
        (leg(Codec::Opus, 111), leg(Codec::G722, 9)),
        (leg(Codec::G722, 9), leg(Codec::Opus, 96)),
    ] {
        let case = Case {
            from,
            to,
            opus_rate: 16000,
            g722: G722Narrowband::SubBand,
        };
        let out = run(&case);
        assert_eq!(check_rtp(&out, &to).iter().max(), Some(&20));
        check_tone(
            &out,
            1.0,
            38.0,
            &format!("{:?}->{:?}", from.codec, to.codec),
        );
    }
}

/// 20 ms in, 30 ms out: two packets out for three in, 240 samples each, the tone intact (the
/// same law: the stage decodes and re-encodes, which is lossless for μ-law; measured 36.9 dB,
/// the law's own quantisation of the reference).
#[test]
fn twenty_to_thirty_ms() {
    let from = leg(Codec::Pcmu, 0);
    let to = with_ptime(leg(Codec::Pcmu, 0), 30);
    let out = run(&Case {
        from,
        to,
        opus_rate: 8000,
        g722: G722Narrowband::SubBand,
    });
    let d = check_rtp(&out, &to);
    assert!(d.iter().all(|&ms| ms == 30), "{d:?}");
    assert_eq!(out.packets.len(), 40);
    check_tone(&out, 0.5, 35.0, "PCMU 20 -> 30 ms");
}

/// 30 ms in, 20 ms out: one packet out, then two, in turn, every one of them 20 ms (160 octets),
/// numbered and stamped one after the other, the marker bit on the first alone; and A-law to
/// μ-law on the way (measured 31.3 dB).
#[test]
fn thirty_to_twenty_ms() {
    let from = with_ptime(leg(Codec::Pcma, 8), 30);
    let to = leg(Codec::Pcmu, 0);
    let out = run(&Case {
        from,
        to,
        opus_rate: 8000,
        g722: G722Narrowband::SubBand,
    });
    let d = check_rtp(&out, &to);
    assert!(d.iter().all(|&ms| ms == 20), "{d:?}");
    assert_eq!(out.packets.len(), 60, "1.2 s in 20 ms packets");
    assert!(out.packets.iter().all(|p| p.len() == 12 + 160));
    let marked: Vec<bool> = out.packets.iter().map(|p| p[1] & 0x80 != 0).collect();
    assert!(marked[0] && !marked[1..].contains(&true), "{marked:?}");
    check_tone(&out, 0.5, 28.0, "PCMA 30 -> PCMU 20 ms");
}

/// The other way, with the law changing too: PCMU 20 ms to PCMA 30 ms (two out for three in, 240
/// octets each), and PCMU 30 ms to PCMA 20 ms.
#[test]
fn twenty_and_thirty_ms_between_the_laws() {
    for (from_ms, to_ms, packets) in [(20u16, 30u16, 40usize), (30, 20, 60)] {
        let from = with_ptime(leg(Codec::Pcmu, 0), from_ms);
        let to = with_ptime(leg(Codec::Pcma, 8), to_ms);
        let out = run(&Case {
            from,
            to,
            opus_rate: 8000,
            g722: G722Narrowband::SubBand,
        });
        let d = check_rtp(&out, &to);
        assert!(d.iter().all(|&ms| ms == u32::from(to_ms)), "{d:?}");
        assert_eq!(out.packets.len(), packets);
        check_tone(
            &out,
            0.5,
            28.0,
            &format!("PCMU {from_ms} -> PCMA {to_ms} ms"),
        );
    }
}

/// Opus 30 ms is no Opus frame size, but 20 and 40 are: PCMA 30 ms in, Opus 20 ms out gives
/// one or two Opus packets of 20 ms per packet in.
#[test]
fn pcma_thirty_to_opus_twenty() {
    let from = with_ptime(leg(Codec::Pcma, 8), 30);
    let to = leg(Codec::Opus, 96);
    let out = run(&Case {
        from,
        to,
        opus_rate: 8000,
        g722: G722Narrowband::SubBand,
    });
    let d = check_rtp(&out, &to);
    assert!(d.iter().all(|&ms| ms == 20), "{d:?}");
    assert_eq!(out.packets.len(), 60);
    check_tone(&out, 1.0, 25.0, "PCMA 30 -> Opus 20 ms");
}

/// Opus 20 ms to PCMA 30 ms: both changes at once (measured 30.3 dB).
#[test]
fn opus_twenty_to_pcma_thirty() {
    let from = leg(Codec::Opus, 111);
    let to = with_ptime(leg(Codec::Pcma, 8), 30);
    let out = run(&Case {
        from,
        to,
        opus_rate: 8000,
        g722: G722Narrowband::SubBand,
    });
    assert!(check_rtp(&out, &to).iter().all(|&ms| ms == 30));
    check_tone(&out, 1.0, 25.0, "Opus 20 -> PCMA 30 ms");
}

/// A lost packet: the output's sequence number jumps by one and its timestamp by the time lost
/// (the buffered audio dropped); a late packet is consumed.
#[test]
fn losses_stay_visible_and_late_packets_are_dropped() {
    let plan = CodecPlan::new(leg(Codec::G722, 9), leg(Codec::Pcmu, 0));
    let mut stage = CodecStage::new(plan);
    let mut totals = CodecCounters::default();
    let mut send = |seq: u16, ts: u32| {
        let pkt = rtp(9, seq, ts, &[0u8; 160]);
        let mut room = vec![0u8; 2048];
        room[..pkt.len()].copy_from_slice(&pkt);
        match stage.process(Way::AToB, &mut room, pkt.len(), &mut totals) {
            StageResult::Forward(n) => Some((
                u16::from_be_bytes([room[2], room[3]]),
                u32::from_be_bytes([room[4], room[5], room[6], room[7]]),
                n - 12,
            )),
            StageResult::Consumed => None,
        }
    };
    assert_eq!(send(10, 1600), Some((10, 1600, 160)));
    assert_eq!(send(11, 1760), Some((11, 1760, 160)));
    // 12 lost.
    assert_eq!(send(13, 2080), Some((13, 2080, 160)));
    // 12 arrives late.
    assert_eq!(send(12, 1920), None);
    assert_eq!(send(14, 2240), Some((14, 2240, 160)));
}

/// The receiving Opus leg's fmtp sets the encoder: `maxaveragebitrate` caps the bit rate,
/// `useinbandfec=1` turns FEC on.
#[test]
fn opus_fmtp_sets_the_encoder() {
    let mut to = leg(Codec::Opus, 96);
    to.opus.max_average_bitrate = 12000;
    to.opus.inband_fec = true;
    let mut stage = CodecStage::new(CodecPlan::new(leg(Codec::Pcmu, 0), to));
    let e = stage
        .pipeline(Way::AToB)
        .and_then(|p| p.opus_encoder())
        .expect("an Opus encoder");
    assert_eq!(e.bitrate(), Some(12000));
    assert_eq!(e.inband_fec(), Some(true));
    let mut stage = CodecStage::new(CodecPlan::new(leg(Codec::Pcmu, 0), leg(Codec::Opus, 96)));
    let e = stage
        .pipeline(Way::AToB)
        .and_then(|p| p.opus_encoder())
        .unwrap();
    assert_eq!(e.bitrate(), Some(16000));
    assert_eq!(e.inband_fec(), Some(false));
}

/// An Opus caller's RFC 4733 digits (telephone-event at its 48 kHz clock) toward a PCMU PBX
/// without telephone-event: played as in-band tones through the pipeline, each heard once, in
/// order, by the detector; the caller's audio around them keeps flowing, numbered consistently.
#[test]
fn opus_events_become_tones_toward_pcmu() {
    use super::super::dtmf::{Detected, Detector, Event};
    let from = LegFormat::new(Codec::Opus, 111, Some(101));
    let to = leg(Codec::Pcmu, 0);
    let mut stage = CodecStage::new(CodecPlan::new(from, to));
    let mut enc = RefEnc::new(Codec::Opus, 8000);
    let mut totals = CodecCounters::default();
    let mut out = Vec::new();
    let (mut seq, mut ts) = (100u16, 48000u32);
    let mut send = |stage: &mut CodecStage, pkt: Vec<u8>| {
        out.extend(process_all(stage, &pkt, &mut totals));
    };
    let silence = vec![0i16; 160];
    let digits = [3u8, 7, 11];
    for &d in &digits {
        for _ in 0..5 {
            send(&mut stage, rtp(111, seq, ts, &enc.encode(&silence)));
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(960);
        }
        let start = ts;
        for i in 1..=5u16 {
            let ev = Event {
                event: d,
                end: i == 5,
                volume: 10,
                duration: i * 960,
            };
            send(&mut stage, rtp(101, seq, start, &ev.to_bytes()));
            seq = seq.wrapping_add(1);
        }
        ts = start.wrapping_add(5 * 960);
    }
    for _ in 0..5 {
        send(&mut stage, rtp(111, seq, ts, &enc.encode(&silence)));
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(960);
    }
    let mut det = Detector::new();
    let mut heard = Vec::new();
    for w in out.windows(2) {
        assert_eq!(w[0][1] & 0x7f, 0, "PCMU only");
        let s = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
        let t = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert_eq!(s(&w[1]), s(&w[0]).wrapping_add(1));
        assert_eq!(t(&w[1]).wrapping_sub(t(&w[0])), (w[0].len() - 12) as u32);
    }
    for p in &out {
        let mut pcm = vec![0i16; p.len() - 12];
        g711::decode_ulaw(&p[12..], &mut pcm);
        if let Detected::Start(d) = det.push(&pcm) {
            heard.push(d);
        }
    }
    assert_eq!(heard, digits);
    assert_eq!(stage.counters().dtmf_generated, 3);
}

/// An Opus sender's lost packet (its encoder putting in-band FEC in, as `useinbandfec=1` asks) is
/// rebuilt from the next packet: the PCMU output stays continuous, 20 ms packets (sequence
/// numbers one apart, each timestamp where the previous packet's audio ended: the packet after the
/// loss gives two, the rebuilt frame and its own), and the tone holds across it.
#[test]
fn a_lost_opus_packet_is_rebuilt_from_fec() {
    let from = leg(Codec::Opus, 111);
    let to = leg(Codec::Pcmu, 0);
    let mut stage = CodecStage::new(CodecPlan::new(from, to));
    let fec = super::super::OpusParams {
        inband_fec: true,
        ..Default::default()
    };
    let mut enc = opus::Encoder::new(8000, 5, &fec).unwrap();
    let reference = tone(8000, 8000);
    let mut totals = CodecCounters::default();
    let mut out = Vec::new();
    for (i, chunk) in reference.chunks_exact(160).enumerate() {
        let mut payload = [0u8; 400];
        let n = enc.encode(chunk, &mut payload).unwrap();
        if i == 25 {
            continue;
        }
        let pkt = rtp(111, 7 + i as u16, 960 * i as u32, &payload[..n]);
        out.extend(process_all(&mut stage, &pkt, &mut totals));
    }
    assert_eq!(out.len(), 50, "the lost one rebuilt, sent after the next");
    assert!(out.iter().all(|p| p.len() == 12 + 160), "20 ms packets");
    let mut pcm = Vec::new();
    for (k, p) in out.iter().enumerate() {
        let s = u16::from_be_bytes([p[2], p[3]]);
        let t = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert_eq!(s, 7 + k as u16, "no sequence gap");
        assert_eq!(t, pcm.len() as u32, "no timestamp jump");
        let mut d = vec![0i16; p.len() - 12];
        g711::decode_ulaw(&p[12..], &mut d);
        pcm.extend(d);
    }
    assert_eq!(pcm.len(), 8000, "all the audio");
    // The 100 ms around the loss still carry the tone at its level.
    let around = &pcm[3600..4400];
    assert!((peak(around, 8000) - FREQ).abs() <= 5.0);
    let level = level_db(&tone(8000, 800), around);
    // Measured -1.56 dB: the redundant copy is coded at a lower rate.
    assert!(level.abs() < 3.0, "level around the loss {level:.2} dB");
}

/// `digits` as in-band DTMF at `rate` (-10 dBm0 per tone): 100 ms of silence, then each digit for
/// 100 ms followed by 100 ms of silence.
fn dtmf_signal(digits: &[u8], rate: u32) -> Vec<i16> {
    let per = |ms: u32| usize::try_from(rate * ms / 1000).unwrap();
    let mut pcm = vec![0i16; per(100)];
    for &d in digits {
        let (lo, hi) = super::super::dtmf::frequencies(d).unwrap();
        pcm.extend((0..per(100)).map(|i| {
            let t = i as f64 / f64::from(rate);
            (7000.0 * ((TAU * f64::from(lo) * t).sin() + (TAU * f64::from(hi) * t).sin())) as i16
        }));
        pcm.extend(std::iter::repeat_n(0i16, per(100)));
    }
    pcm
}

/// A G.722 or Opus caller without telephone-event sends "1234#" in-band toward a leg with
/// telephone-event 101: the pipeline's detector hears them in the decoded PCM (at 8 kHz, or at
/// 16 kHz brought down by the half-band filter when both legs are wideband) and each digit goes
/// out as RFC 4733 events, once (one start with the marker bit, three ends, one event
/// timestamp), in order; the audio sent around them carries no digit the far end could detect
/// again. Numbering stays continuous across audio and events.
#[test]
fn inband_digits_from_g722_and_opus_become_events_once_each() {
    use super::super::dtmf::{Detected, Detector, Event, EVENT_CHARS};
    use super::super::resample::Decimator;
    let digits = [1u8, 2, 3, 4, 11];
    let cases = [
        (Codec::G722, 9u8, Codec::Pcmu, 0u8),
        (Codec::Opus, 111, Codec::Pcmu, 0),
        (Codec::G722, 9, Codec::Opus, 96),
        (Codec::Opus, 111, Codec::G722, 9),
        (Codec::G722, 9, Codec::G722, 9),
    ];
    for (from_codec, from_pt, to_codec, to_pt) in cases {
        let what = format!("{from_codec:?} -> {to_codec:?}");
        let from = LegFormat::new(from_codec, from_pt, None);
        let to = LegFormat::new(to_codec, to_pt, Some(101));
        let mut stage = CodecStage::new(CodecPlan::new(from, to));
        let wide = from_codec.is_wideband() && to_codec.is_wideband();
        let in_rate = match from_codec {
            Codec::G722 => 16000,
            _ if wide => 16000,
            _ => 8000,
        };
        let signal = dtmf_signal(&digits, in_rate);
        let mut enc = RefEnc::new(from_codec, in_rate);
        let frame = usize::try_from(in_rate / 50).unwrap();
        let ticks = from_codec.clock_rate() / 50;
        let mut totals = CodecCounters::default();
        let mut out = Vec::new();
        for (i, chunk) in signal.chunks_exact(frame).enumerate() {
            let pkt = rtp(
                from_pt,
                40 + i as u16,
                9000 + i as u32 * ticks,
                &enc.encode(chunk),
            );
            out.extend(process_all(&mut stage, &pkt, &mut totals));
        }
        // Events: one start each, in order, three ends each.
        let events: Vec<(u32, bool, Event)> = out
            .iter()
            .filter(|p| p[1] & 0x7f == 101)
            .map(|p| {
                let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                (ts, p[1] & 0x80 != 0, Event::parse(&p[12..]).unwrap())
            })
            .collect();
        let starts: Vec<u8> = events.iter().filter(|e| e.1).map(|e| e.2.event).collect();
        assert_eq!(starts, digits, "{what}: {events:?}");
        let mut stamps: Vec<u32> = events.iter().map(|e| e.0).collect();
        stamps.dedup();
        assert_eq!(
            stamps.len(),
            digits.len(),
            "{what}: one timestamp per digit"
        );
        for &d in &digits {
            let ends = events.iter().filter(|e| e.2.event == d && e.2.end).count();
            assert_eq!(ends, 3, "{what}: ends of {}", EVENT_CHARS[usize::from(d)]);
        }
        assert_eq!(stage.counters().dtmf_detected, 5, "{what}");
        // Numbering: one sequence across audio and events, no gap, no repeat.
        for w in out.windows(2) {
            let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
            assert_eq!(seq(&w[1]), seq(&w[0]).wrapping_add(1), "{what}");
        }
        // The audio relayed holds no digit of its own.
        let out_rate = if to_codec == Codec::Pcmu {
            8000
        } else {
            rate_of(to_codec, 16000)
        };
        let mut dec = RefDec::new(to_codec, out_rate);
        let mut down = Decimator::new();
        let mut det = Detector::new();
        let mut heard = Vec::new();
        for p in out.iter().filter(|p| p[1] & 0x7f == to_pt) {
            let pcm = dec.decode(&p[12..]);
            let mut narrow = vec![0i16; pcm.len()];
            let n = if out_rate == 16000 {
                down.process(&pcm, &mut narrow)
            } else {
                narrow.copy_from_slice(&pcm);
                pcm.len()
            };
            if let Detected::Start(d) = det.push(&narrow[..n]) {
                heard.push(d);
            }
        }
        assert!(
            heard.is_empty(),
            "{what}: digits left in the audio {heard:?}"
        );
        let audio = out.iter().filter(|p| p[1] & 0x7f == to_pt).count();
        assert!(audio >= 10, "{what}: {audio} audio packets");
    }
}

/// A sender that negotiated telephone-event is not listened to: its in-band tones are relayed as
/// audio and only its events count (no digit twice).
#[test]
fn a_sender_with_telephone_event_is_not_listened_to() {
    let from = LegFormat::new(Codec::G722, 9, Some(101));
    let to = LegFormat::new(Codec::Pcmu, 0, Some(100));
    let mut stage = CodecStage::new(CodecPlan::new(from, to));
    let signal = dtmf_signal(&[5], 16000);
    let mut enc = RefEnc::new(Codec::G722, 16000);
    let mut totals = CodecCounters::default();
    let mut out = Vec::new();
    for (i, chunk) in signal.chunks_exact(320).enumerate() {
        let pkt = rtp(9, i as u16, i as u32 * 160, &enc.encode(chunk));
        out.extend(process_all(&mut stage, &pkt, &mut totals));
    }
    assert!(out.iter().all(|p| p[1] & 0x7f == 0), "audio only");
    assert_eq!(stage.counters().dtmf_detected, 0);
}

/// Hostile input on the new paths (the detector on decoded G.722 and Opus, repacketisation with
/// its further packets): payloads of any length and content, sequence numbers and timestamps
/// jumping anywhere; nothing panics, and every audio packet out is exactly the receiver's
/// packet time.
#[test]
fn hostile_payloads_through_detecting_and_repacketising_pipelines() {
    let mut pcmu_30 = LegFormat::new(Codec::Pcmu, 0, Some(101));
    pcmu_30.ptime = 30;
    let plans = [
        CodecPlan::new(LegFormat::new(Codec::G722, 9, None), pcmu_30),
        CodecPlan::new(LegFormat::new(Codec::Opus, 111, None), pcmu_30),
        CodecPlan::new(
            with_ptime(LegFormat::new(Codec::Pcma, 8, None), 30),
            LegFormat::new(Codec::Opus, 96, Some(101)),
        ),
    ];
    // A small xorshift: the same sequence every run.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for plan in plans {
        let mut stage = CodecStage::new(plan);
        let mut totals = CodecCounters::default();
        let (seq0, ts0) = (rnd() as u16, rnd() as u32);
        for i in 0..3000u32 {
            let r = rnd();
            let len = (r % 1400) as usize;
            let payload: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            // Mostly in order, sometimes anywhere.
            let (seq, ts) = if r % 17 == 0 {
                (rnd() as u16, rnd() as u32)
            } else {
                (
                    seq0.wrapping_add(i as u16),
                    ts0.wrapping_add(i.wrapping_mul(240)),
                )
            };
            let pt = if r % 23 == 0 {
                101
            } else {
                plan.a.payload_type
            };
            let mut pkt = rtp(pt, seq, ts, &payload);
            if r % 29 == 0 {
                pkt[0] |= 0x20; // padding, maybe invalid
            }
            for p in process_all(&mut stage, &pkt, &mut totals) {
                if p[1] & 0x7f == plan.b.payload_type && plan.b.codec.is_g711() {
                    assert_eq!(p.len(), 12 + 8 * plan.b.packet_ms() as usize);
                }
            }
        }
    }
}
