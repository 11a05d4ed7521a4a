//! The relay's packet path allocates nothing: a counting global allocator watches 100,000
//! `MediaShard::on_packet` calls covering every outcome (RTP and RTCP both ways, rtcp-mux, latching,
//! each drop reason) and must see zero allocations. A hostile-input sweep through the same path
//! must neither panic nor allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_plane::codec::{Codec, CodecPlan, G722Narrowband, LegFormat};
use media_plane::shard::{DropReason, RemoteSdp, ShardConfig, Side};
use media_plane::{Action, MediaShard};

/// Counts allocations made by threads that switched counting on; the test harness's own threads
/// (and other tests running in parallel) are not counted.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the thread-locals may be gone while a thread shuts down.
    let counting = COUNTING.try_with(Cell::get).unwrap_or(false);
    if counting {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counting touches only
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
fn t0() -> Instant {
    Instant::now()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn rtp(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xd5; 160]);
    p
}

fn set_seq(p: &mut [u8], seq: u16, ts: u32) {
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
}

/// SR with one report block, then SDES with a CNAME: a typical compound.
fn compound() -> Vec<u8> {
    let mut p = vec![0x81, 200, 0, 12, 0, 0, 0, 1];
    p.extend_from_slice(&[0; 44]);
    p.extend_from_slice(&[0x81, 202, 0, 3, 0, 0, 0, 1, 1, 2, b'a', b'b', 0, 0, 0, 0]);
    p
}

#[test]
fn the_counter_counts() {
    let n = allocations_in(|| {
        let v: Vec<u8> = Vec::with_capacity(64);
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}

#[test]
fn on_packet_does_not_allocate() {
    let t = t0();
    let caller = addr("198.51.100.7:4000");
    let caller_rtcp = addr("198.51.100.7:4001");
    let pbx = addr("10.0.0.2:30000");
    let attacker = addr("203.0.113.66:5555");

    // Everything that may allocate happens before counting starts: shard, sessions, buffers.
    let mut shard = MediaShard::new(ShardConfig::new(20000, 20199)).unwrap();
    let call = shard.allocate_session(t, 2).unwrap();
    shard.set_remote(call, 0, Side::A, caller, t).unwrap();
    shard.set_remote(call, 0, Side::B, pbx, t).unwrap();
    shard.set_clock_rate(call, 0, 8000).unwrap();
    let mux = RemoteSdp {
        rtp: addr("198.51.100.7:4002"),
        rtcp: None,
        rtcp_mux: true,
    };
    shard.set_remote(call, 1, Side::A, mux, t).unwrap();
    shard
        .set_remote(call, 1, Side::B, addr("10.0.0.2:30002"), t)
        .unwrap();
    // a second session whose B side never answers: NoDestination
    let ringing = shard.allocate_session(t, 1).unwrap();
    shard.set_remote(ringing, 0, Side::A, caller, t).unwrap();

    let streams = shard.streams(call).unwrap();
    let (a, b) = (
        streams[0].leg(Side::A).ports(),
        streams[0].leg(Side::B).ports(),
    );
    let (va, vb) = (
        streams[1].leg(Side::A).ports(),
        streams[1].leg(Side::B).ports(),
    );
    let ringing_a = shard.streams(ringing).unwrap()[0].leg(Side::A).ports();

    let mut from_caller = rtp(0, 0, 0x1111);
    let mut from_pbx = rtp(0, 0, 0x2222);
    let mut rtcp = compound();
    let mut junk = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];

    const CALLS: u64 = 100_000;
    let mut forwarded = 0u64;
    let mut forwarded_bytes = 0u64;
    let mut dropped = [0u64; DropReason::COUNT];
    let allocations = allocations_in(|| {
        for i in 0..CALLS {
            let now = t + Duration::from_micros(200 * i);
            // from 60000, so the sequence number wraps past 65535 along the way
            let seq = 60_000u16.wrapping_add((i / 8) as u16);
            let ts = (i as u32 / 8).wrapping_mul(160);
            let action = match i % 8 {
                0 => {
                    set_seq(&mut from_caller, seq, ts);
                    shard.on_packet(a.rtp(), caller, &mut from_caller, now)
                }
                1 => {
                    set_seq(&mut from_pbx, seq, ts);
                    shard.on_packet(b.rtp(), pbx, &mut from_pbx, now)
                }
                2 => shard.on_packet(a.rtcp(), caller_rtcp, &mut rtcp, now),
                3 => shard.on_packet(va.rtp(), mux.rtp, &mut rtcp, now),
                4 => shard.on_packet(vb.rtp(), addr("10.0.0.2:30002"), &mut from_pbx, now),
                5 => shard.on_packet(a.rtp(), attacker, &mut from_caller, now),
                6 => {
                    if i % 16 == 6 {
                        shard.on_packet(b.rtp(), pbx, &mut junk, now)
                    } else {
                        shard.on_packet(20198, caller, &mut from_caller, now)
                    }
                }
                _ => shard.on_packet(ringing_a.rtp(), caller, &mut from_caller, now),
            };
            match action {
                Action::Forward { len, .. } => {
                    forwarded += 1;
                    forwarded_bytes += len as u64;
                }
                Action::Drop(reason) => {
                    let k = DropReason::ALL.iter().position(|r| *r == reason).unwrap();
                    dropped[k] += 1;
                }
                Action::Consumed => panic!("no stream has a codec stage"),
            }
        }
    });
    assert_eq!(allocations, 0, "on_packet allocated");

    // Every outcome was exercised, and the shard's counters agree with what the calls returned.
    let eighth = CALLS / 8;
    assert_eq!(forwarded, 5 * eighth);
    assert_eq!(dropped, [eighth / 2, eighth / 2, eighth, eighth, 0]);
    let c = shard.counters();
    assert_eq!(c.forwarded, forwarded);
    assert_eq!(c.forwarded_bytes, forwarded_bytes);
    for (k, reason) in DropReason::ALL.into_iter().enumerate() {
        assert_eq!(c.dropped(reason), dropped[k], "{}", reason.as_str());
    }
    let rx = shard.streams(call).unwrap()[0].leg(Side::A).rx();
    assert_eq!(rx.packets(), eighth);
    assert_eq!(rx.sequence().lost(), 0);
    assert_eq!(rx.sequence().restarts(), 0);
    assert!(rx.sequence().extended_max().unwrap() > 65536);
}

/// Transcoding and DTMF interworking on the packet path allocate nothing either: PCMA from the
/// caller becomes PCMU with in-band DTMF detected into RFC 4733 events; RFC 4733 from the PBX
/// becomes tones in the caller's PCMA.
#[test]
fn codec_stages_do_not_allocate() {
    let t = t0();
    let caller = addr("198.51.100.7:4000");
    let pbx = addr("10.0.0.2:30000");
    let mut shard = MediaShard::new(ShardConfig::new(20000, 20019)).unwrap();
    let call = shard.allocate_session(t, 1).unwrap();
    shard.set_remote(call, 0, Side::A, caller, t).unwrap();
    shard.set_remote(call, 0, Side::B, pbx, t).unwrap();
    let plan = CodecPlan::new(
        LegFormat::new(Codec::Pcma, 8, None),
        LegFormat::new(Codec::Pcmu, 0, Some(101)),
    );
    shard.set_codecs(call, 0, Some(plan)).unwrap();
    let streams = shard.streams(call).unwrap();
    let (a, b) = (
        streams[0].leg(Side::A).ports(),
        streams[0].leg(Side::B).ports(),
    );
    // The caller's audio: 100 ms of the digit 5 (770 + 1336 Hz), then 100 ms of silence.
    let tone: Vec<u8> = (0..800)
        .map(|i| {
            let t = f64::from(i) / 8000.0;
            let x = 6000.0 * (std::f64::consts::TAU * 770.0 * t).sin()
                + 5000.0 * (std::f64::consts::TAU * 1336.0 * t).sin();
            media_plane::codec::g711::linear_to_alaw(x as i16)
        })
        .chain(std::iter::repeat_n(0xd5, 800))
        .collect();
    let mut room = vec![0u8; 2048];
    let mut audio = rtp(0, 0, 0x1111);
    audio[1] = 8;
    let mut event = rtp(0, 0, 0x2222);
    event[1] = 101;
    event.truncate(16);
    let mut consumed = 0u64;
    let allocations = allocations_in(|| {
        for i in 0..10_000u32 {
            let now = t + Duration::from_millis(10 * u64::from(i));
            let seq = i as u16;
            let ts = i.wrapping_mul(160);
            let k = (i % 10) as usize * 160;
            room[..12].copy_from_slice(&audio[..12]);
            set_seq(&mut room, seq, ts);
            room[12..172].copy_from_slice(&tone[k..k + 160]);
            let _ = shard.on_packet_in(a.rtp(), caller, &mut room, 172, now);
            // The PBX: one event of 100 ms every 200 ms, its end sent three times.
            let step = i % 10;
            let (end, duration) = if step < 5 {
                (0, 160 * (step + 1))
            } else {
                (0x80, 800)
            };
            set_seq(&mut event, seq, (i / 10) * 1600);
            event[12..16].copy_from_slice(&[5, end | 10, (duration >> 8) as u8, duration as u8]);
            room[..16].copy_from_slice(&event);
            if shard.on_packet_in(b.rtp(), pbx, &mut room, 16, now) == Action::Consumed {
                consumed += 1;
            }
        }
    });
    assert_eq!(allocations, 0, "a codec stage allocated");
    let c = shard.counters().codec;
    assert_eq!(c.dtmf_detected, 1000, "{c:?}");
    assert_eq!(c.dtmf_generated, 1000, "{c:?}");
    assert!(
        c.transcoded_frames >= 1000,
        "the audio between digits: {c:?}"
    );
    assert!(
        consumed >= 2000,
        "the repeated ends are consumed: {consumed}"
    );
}

/// The pipelines (G.722, Opus, packet times that differ) allocate nothing on the packet path
/// either: a G.722 caller against a PCMU PBX at 30 ms (its 30 ms repacketised into two 20 ms
/// packets every other packet, through `next_packet`), the same with the caller listened to for
/// in-band DTMF (the PBX has telephone-event), an Opus caller against a PCMA PBX, and a G.722
/// caller against a PCMA PBX through the full codec and the half-band FIR, both ways, with
/// losses; everything they need was allocated by `set_codecs`.
#[test]
fn transcoding_pipelines_do_not_allocate() {
    let t = t0();
    let caller = addr("198.51.100.7:4000");
    let pbx = addr("10.0.0.2:30000");
    let mut shard = MediaShard::new(ShardConfig::new(20000, 20019)).unwrap();
    let mut pbx_30 = LegFormat::new(Codec::Pcmu, 0, None);
    pbx_30.ptime = 30;
    let mut g722_resampled = CodecPlan::new(
        LegFormat::new(Codec::G722, 9, None),
        LegFormat::new(Codec::Pcma, 8, None),
    );
    g722_resampled.g722_narrowband = G722Narrowband::Resample;
    let mut pbx_30_te = pbx_30;
    pbx_30_te.telephone_event = Some(101);
    let plans = [
        (
            CodecPlan::new(LegFormat::new(Codec::G722, 9, None), pbx_30),
            9u8,
            0u8,
            160usize,
        ),
        (
            CodecPlan::new(LegFormat::new(Codec::G722, 9, None), pbx_30_te),
            9u8,
            0u8,
            160usize,
        ),
        (
            CodecPlan::new(
                LegFormat::new(Codec::Opus, 111, None),
                LegFormat::new(Codec::Pcma, 8, None),
            ),
            111,
            8,
            0,
        ),
        (g722_resampled, 9, 8, 160),
    ];
    for (plan, pt_a, pt_b, a_len) in plans {
        let call = shard.allocate_session(t, 1).unwrap();
        shard.set_remote(call, 0, Side::A, caller, t).unwrap();
        shard.set_remote(call, 0, Side::B, pbx, t).unwrap();
        shard.set_codecs(call, 0, Some(plan)).unwrap();
        let streams = shard.streams(call).unwrap();
        let (a, b) = (
            streams[0].leg(Side::A).ports(),
            streams[0].leg(Side::B).ports(),
        );
        // The caller's payload: G.722 octets, or a 20 ms Opus packet made beforehand.
        let caller_payload: Vec<u8> = if a_len > 0 {
            (0..a_len).map(|i| (i * 37 % 256) as u8).collect()
        } else {
            let mut e =
                media_plane::codec::opus::Encoder::new(8000, 3, &Default::default()).unwrap();
            let pcm: Vec<i16> = (0..160)
                .map(|i| (8000.0 * (f64::from(i) * 0.79).sin()) as i16)
                .collect();
            let mut out = vec![0u8; 400];
            let n = e.encode(&pcm, &mut out).unwrap();
            out.truncate(n);
            out
        };
        let b_len = if pt_b == 0 { 240 } else { 160 };
        let mut room = vec![0u8; 2048];
        let mut spare = vec![0u8; 2048];
        let (head_a, head_b) = (rtp(0, 0, 0x1111), rtp(0, 0, 0x2222));
        let mut forwarded = 0u64;
        let mut further = 0u64;
        let allocations = allocations_in(|| {
            for i in 0..3000u32 {
                let now = t + Duration::from_millis(20 * u64::from(i));
                // Every 50th packet of each side is lost.
                if i % 50 != 7 {
                    room[..12].copy_from_slice(&head_a[..12]);
                    room[1] = pt_a;
                    set_seq(
                        &mut room,
                        i as u16,
                        i.wrapping_mul(if pt_a == 111 { 960 } else { 160 }),
                    );
                    room[12..12 + caller_payload.len()].copy_from_slice(&caller_payload);
                    let len = 12 + caller_payload.len();
                    if let Action::Forward { .. } =
                        shard.on_packet_in(a.rtp(), caller, &mut room, len, now)
                    {
                        forwarded += 1;
                    }
                }
                if i % 50 != 9 {
                    room[..12].copy_from_slice(&head_b[..12]);
                    room[1] = pt_b;
                    set_seq(&mut room, i as u16, i.wrapping_mul(b_len as u32));
                    room[12..12 + b_len].fill(0x55);
                    if let Action::Forward { .. } =
                        shard.on_packet_in(b.rtp(), pbx, &mut room, 12 + b_len, now)
                    {
                        forwarded += 1;
                    }
                    while let Some(Action::Forward { len, .. }) = shard.next_packet(&mut spare) {
                        assert!(len > 12);
                        further += 1;
                    }
                }
            }
        });
        assert_eq!(allocations, 0, "a pipeline allocated ({plan:?})");
        assert!(forwarded > 4000, "{forwarded} packets out ({plan:?})");
        if pt_b == 0 {
            // 30 ms from the PBX to a 20 ms caller: half as many again.
            assert!(further > 1300, "{further} further packets ({plan:?})");
        }
    }
}

#[test]
fn hostile_input_neither_panics_nor_allocates() {
    let t = t0();
    let caller = addr("198.51.100.7:4000");
    let mut shard = MediaShard::new(ShardConfig::new(20000, 20019)).unwrap();
    let call = shard.allocate_session(t, 1).unwrap();
    shard.set_remote(call, 0, Side::A, caller, t).unwrap();
    shard
        .set_remote(call, 0, Side::B, addr("10.0.0.2:30000"), t)
        .unwrap();
    let a = shard.streams(call).unwrap()[0].leg(Side::A).ports();

    // Truncations of valid packets and a sweep of header bytes, on RTP and RTCP ports.
    let mut templates = vec![rtp(1, 160, 7), compound()];
    let mut ext = vec![0xbf, 0x80, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    ext.extend_from_slice(&[0; 60]);
    ext.extend_from_slice(&[0xbe, 0xde, 0xff, 0xff]);
    templates.push(ext);
    let mut buf = vec![0u8; 256];
    let allocations = allocations_in(|| {
        for template in &templates {
            for len in 0..=template.len() {
                for first in [0x80u8, 0x81, 0x9f, 0xa0, 0xbf, 0x40, 0x00, 0xff] {
                    for port in [a.rtp(), a.rtcp()] {
                        let pkt = &mut buf[..len];
                        pkt.copy_from_slice(&template[..len]);
                        if let Some(b0) = pkt.first_mut() {
                            *b0 = first;
                        }
                        let _ = shard.on_packet(port, caller, pkt, t);
                    }
                }
            }
        }
    });
    assert_eq!(allocations, 0);
    assert!(shard.counters().dropped(DropReason::Malformed) > 0);
}
