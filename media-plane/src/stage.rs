//! The per-stream-direction stage: what the relay does to a packet's bytes between receiving it on
//! one leg and sending it out of the other. [`Stage::Plain`] (the default) forwards as is; the
//! other variants rewrite the packet in place and may change its length, which
//! [`crate::Action::Forward`]'s `len` carries. The decision is explicit per direction, so a plain
//! stream can later be offloaded.

use crate::srtp::{Reject, SrtpContext};

/// What happens to the packets arriving on one leg before they leave by the other.
#[derive(Debug, Default)]
pub enum Stage {
    /// Forwarded unchanged.
    #[default]
    Plain,
    /// SRTP termination: unprotect with the arriving leg's key, protect with the leaving leg's
    /// key, or both (SRTP to SRTP with a different key per leg).
    Srtp(Box<SrtpStage>),
    /// SRTP termination whose keys an offer/answer has not settled yet: every packet is refused
    /// ([`Reject::NoKey`]), so that nothing leaves in clear toward a leg that was offered SRTP and
    /// nothing encrypted reaches a plain leg undecrypted.
    Withheld(SrtpCounters),
}

impl Stage {
    /// Run the stage over `buf[..len]` (an RTCP compound when `rtcp`); `buf` extends past `len`
    /// with room to grow. Returns the length to send.
    pub fn apply(&mut self, rtcp: bool, buf: &mut [u8], len: usize) -> Result<usize, Reject> {
        let len = self.inbound(rtcp, buf, len)?;
        self.outbound(rtcp, buf, len)
    }

    /// The arriving half of [`Stage::apply`]: unprotect `buf[..len]` when it arrives encrypted.
    /// What runs between the halves (a codec stage) sees the plain packet.
    pub fn inbound(&mut self, rtcp: bool, buf: &mut [u8], len: usize) -> Result<usize, Reject> {
        match self {
            Self::Plain => Ok(len),
            Self::Srtp(s) => s.inbound(rtcp, buf, len),
            Self::Withheld(c) => {
                c.count(Reject::NoKey);
                Err(Reject::NoKey)
            }
        }
    }

    /// The leaving half of [`Stage::apply`]: protect `buf[..len]` for the other leg when it
    /// leaves encrypted; a packet that passes both halves is counted once.
    pub fn outbound(&mut self, rtcp: bool, buf: &mut [u8], len: usize) -> Result<usize, Reject> {
        match self {
            Self::Plain => Ok(len),
            Self::Srtp(s) => s.outbound(rtcp, buf, len),
            Self::Withheld(c) => {
                c.count(Reject::NoKey);
                Err(Reject::NoKey)
            }
        }
    }

    /// The packets arrive encrypted (their payload cannot be checked before the stage).
    pub fn decrypts(&self) -> bool {
        matches!(self, Self::Srtp(s) if s.unprotect.is_some()) || matches!(self, Self::Withheld(_))
    }

    /// The SRTP refusals counted by this stage.
    pub fn srtp_counters(&self) -> SrtpCounters {
        match self {
            Self::Plain => SrtpCounters::default(),
            Self::Srtp(s) => s.counters,
            Self::Withheld(c) => *c,
        }
    }
}

/// One direction's SRTP contexts.
#[derive(Debug, Default)]
pub struct SrtpStage {
    /// Unprotects what arrives (the sending leg's remote key); `None`: it arrives in clear.
    pub unprotect: Option<SrtpContext>,
    /// Protects what leaves (the key the SBC gave the other leg's remote); `None`: it leaves in
    /// clear.
    pub protect: Option<SrtpContext>,
    counters: SrtpCounters,
}

impl SrtpStage {
    /// A stage from its two optional contexts.
    pub fn new(unprotect: Option<SrtpContext>, protect: Option<SrtpContext>) -> Self {
        Self {
            unprotect,
            protect,
            counters: SrtpCounters::default(),
        }
    }

    fn count<T>(&mut self, r: Result<T, Reject>) -> Result<T, Reject> {
        if let Err(reason) = &r {
            self.counters.count(*reason);
        }
        r
    }

    fn inbound(&mut self, rtcp: bool, buf: &mut [u8], len: usize) -> Result<usize, Reject> {
        let r = match &mut self.unprotect {
            Some(rx) if rtcp => rx.unprotect_rtcp(buf, len),
            Some(rx) => rx.unprotect_rtp(buf, len),
            None => Ok(len),
        };
        self.count(r)
    }

    fn outbound(&mut self, rtcp: bool, buf: &mut [u8], len: usize) -> Result<usize, Reject> {
        let r = match &mut self.protect {
            Some(tx) if rtcp => tx.protect_rtcp(buf, len),
            Some(tx) => tx.protect_rtp(buf, len),
            None => Ok(len),
        };
        if r.is_ok() {
            self.counters.packets += 1;
        }
        self.count(r)
    }
}

/// SRTP counters of one direction (and, summed, of a shard).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SrtpCounters {
    /// Packets that passed the stage.
    pub packets: u64,
    rejected: [u64; Reject::ALL.len()],
}

impl SrtpCounters {
    fn count(&mut self, reason: Reject) {
        if let Some(c) = self.rejected.get_mut(reason.index()) {
            *c += 1;
        }
    }

    /// Packets refused for `reason`.
    pub fn rejected(&self, reason: Reject) -> u64 {
        self.rejected.get(reason.index()).copied().unwrap_or(0)
    }

    /// Packets whose tag did not verify (tampered, or another key).
    pub fn auth_failures(&self) -> u64 {
        self.rejected(Reject::AuthFailed)
    }

    /// Packets refused as replays.
    pub fn replays(&self) -> u64 {
        self.rejected(Reject::Replayed)
    }

    /// Packets refused for any reason.
    pub fn refused(&self) -> u64 {
        self.rejected.iter().fold(0u64, |n, &r| n.saturating_add(r))
    }

    /// Add `other` into these counters.
    pub fn add(&mut self, other: &Self) {
        self.packets += other.packets;
        for (a, b) in self.rejected.iter_mut().zip(other.rejected) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::srtp::Suite;
    use crate::{Action, DropReason, MediaShard, ShardConfig, Side};

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 7];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend((0..160).map(|i| i as u8));
        p
    }

    fn ctx(fill: u8) -> SrtpContext {
        let suite = Suite::AesCm128HmacSha1_80;
        SrtpContext::new(suite, &vec![fill; suite.master_len()]).unwrap()
    }

    /// A shard with one session of one stream, both remotes set: leg A's at `a`, leg B's at `b`.
    struct Call {
        t: Instant,
        shard: MediaShard,
        h: crate::SessionHandle,
        a: SocketAddr,
        b: SocketAddr,
        port_a: u16,
        port_b: u16,
    }

    impl Call {
        fn new() -> Self {
            #[allow(clippy::disallowed_methods)]
            let t = Instant::now();
            let mut shard = MediaShard::new(ShardConfig::new(30000, 30099)).unwrap();
            let h = shard.allocate_session(t, 1).unwrap();
            let (a, b): (SocketAddr, SocketAddr) = (
                "192.0.2.1:4000".parse().unwrap(),
                "192.0.2.2:5000".parse().unwrap(),
            );
            shard.set_remote(h, 0, Side::A, a, t).unwrap();
            shard.set_remote(h, 0, Side::B, b, t).unwrap();
            let stream = &shard.streams(h).unwrap()[0];
            let (port_a, port_b) = (
                stream.leg(Side::A).ports().rtp(),
                stream.leg(Side::B).ports().rtp(),
            );
            Self {
                t,
                shard,
                h,
                a,
                b,
                port_a,
                port_b,
            }
        }
    }

    /// Before the answer settles the keys, neither leg's packets cross: the plain leg's would
    /// leave in clear toward a leg offered SRTP, the SRTP leg's would reach the plain one
    /// undecrypted. Each refusal counted as no key; then the keys arrive and packets cross.
    #[test]
    fn withheld_stages_refuse_both_ways_until_the_keys_are_set() {
        let Call {
            t,
            mut shard,
            h,
            a,
            b,
            port_a,
            port_b,
        } = Call::new();
        for side in [Side::A, Side::B] {
            let withheld = Stage::Withheld(SrtpCounters::default());
            shard.set_stage(h, 0, side, withheld).unwrap();
        }
        for (port, from) in [(port_a, a), (port_b, b), (port_b, b)] {
            let mut buf = rtp(1);
            let n = buf.len();
            buf.resize(2048, 0);
            assert_eq!(
                shard.on_packet_in(port, from, &mut buf, n, t),
                Action::Drop(DropReason::Stage)
            );
        }
        let no_key = |shard: &MediaShard, side| {
            let streams = shard.streams(h).unwrap();
            streams[0].leg(side).srtp_counters().rejected(Reject::NoKey)
        };
        assert_eq!((no_key(&shard, Side::A), no_key(&shard, Side::B)), (1, 2));
        // The answer: leg B's packets are protected toward A and relayed.
        shard
            .set_stage(
                h,
                0,
                Side::B,
                Stage::Srtp(Box::new(SrtpStage::new(None, Some(ctx(2))))),
            )
            .unwrap();
        let mut buf = rtp(2);
        let n = buf.len();
        buf.resize(2048, 0);
        assert!(matches!(
            shard.on_packet_in(port_b, b, &mut buf, n, t),
            Action::Forward { len, .. } if len == n + 10
        ));
        // The replaced stage's refusals stay the leg's, and in the shard's totals.
        assert_eq!(no_key(&shard, Side::B), 2);
        assert_eq!(shard.counters().srtp.rejected(Reject::NoKey), 3);
    }

    /// Leg A speaks SRTP (its key 1 toward the SBC, the SBC's key 2 toward it), leg B plain RTP.
    #[test]
    fn srtp_on_one_leg_is_terminated_both_ways_and_refusals_are_counted() {
        let Call {
            t,
            mut shard,
            h,
            a,
            b,
            port_a,
            port_b,
        } = Call::new();
        shard
            .set_stage(
                h,
                0,
                Side::A,
                Stage::Srtp(Box::new(SrtpStage::new(Some(ctx(1)), None))),
            )
            .unwrap();
        shard
            .set_stage(
                h,
                0,
                Side::B,
                Stage::Srtp(Box::new(SrtpStage::new(None, Some(ctx(2))))),
            )
            .unwrap();

        // The phone's SRTP arrives in clear on leg B, shorter by the tag.
        let mut phone = ctx(1);
        let plain = rtp(10);
        let mut buf = plain.clone();
        buf.resize(2048, 0);
        let n = phone.protect_rtp(&mut buf, plain.len()).unwrap();
        let sealed = buf[..n].to_vec();
        let act = shard.on_packet_in(port_a, a, &mut buf, n, t);
        assert_eq!(
            act,
            Action::Forward {
                from_port: port_b,
                to: b,
                len: plain.len()
            }
        );
        assert_eq!(buf[..plain.len()], plain[..]);

        // Replayed, tampered: dropped as the stage's, counted by reason.
        let mut again = sealed.clone();
        again.resize(2048, 0);
        let t1 = t + Duration::from_millis(20);
        assert_eq!(
            shard.on_packet_in(port_a, a, &mut again, n, t1),
            Action::Drop(DropReason::Stage)
        );
        let mut forged = sealed.clone();
        forged[2..4].copy_from_slice(&11u16.to_be_bytes());
        forged.resize(2048, 0);
        assert_eq!(
            shard.on_packet_in(port_a, a, &mut forged, n, t1),
            Action::Drop(DropReason::Stage)
        );

        // The PBX's RTP leaves toward the phone protected with the SBC's key.
        let mut buf = plain.clone();
        buf.resize(2048, 0);
        let Action::Forward { len, to, .. } =
            shard.on_packet_in(port_b, b, &mut buf, plain.len(), t1)
        else {
            panic!("relayed");
        };
        assert_eq!((len, to), (plain.len() + 10, a));
        let mut phone_rx = ctx(2);
        let m = phone_rx.unprotect_rtp(&mut buf, len).unwrap();
        assert_eq!(buf[..m], plain[..]);

        // A packet too big to grow is dropped, not truncated.
        let mut tight = plain.clone();
        assert_eq!(
            shard.on_packet(port_b, b, &mut tight, t1),
            Action::Drop(DropReason::Stage)
        );

        let side_a = shard.streams(h).unwrap()[0]
            .leg(Side::A)
            .stage()
            .srtp_counters();
        assert_eq!(
            (side_a.packets, side_a.replays(), side_a.auth_failures()),
            (1, 1, 1)
        );
        assert_eq!(shard.counters().dropped(DropReason::Stage), 3);
        let live = shard.counters().srtp;
        shard.release(h, t1).unwrap();
        assert_eq!(shard.counters().srtp, live);
        let c = shard.counters().srtp;
        assert_eq!((c.packets, c.replays(), c.auth_failures()), (2, 1, 1));
        assert_eq!(c.rejected(Reject::NoRoom), 1);
    }

    /// PCMA at 30 ms from leg A (plain) to leg B (PCMU at 20 ms, SRTP toward it): every packet in
    /// gives one or two packets out through `on_packet_in` then `next_packet`, each protected on
    /// its own (the remote's context unprotects every one, in order), 20 ms each, sequence
    /// numbers and timestamps continuous, the marker on the first alone; RTCP is relayed as it
    /// is, with no further packet.
    #[test]
    fn repacketised_packets_are_each_protected_and_numbered() {
        use crate::codec::{g711, Codec, CodecPlan, LegFormat};
        let Call {
            t,
            mut shard,
            h,
            a,
            b,
            ..
        } = Call::new();
        let mut from = LegFormat::new(Codec::Pcma, 8, None);
        from.ptime = 30;
        let plan = CodecPlan::new(from, LegFormat::new(Codec::Pcmu, 0, None));
        shard.set_codecs(h, 0, Some(plan)).unwrap();
        shard
            .set_stage(
                h,
                0,
                Side::A,
                Stage::Srtp(Box::new(SrtpStage::new(None, Some(ctx(2))))),
            )
            .unwrap();
        let port_a = shard.streams(h).unwrap()[0].leg(Side::A).ports().rtp();
        let mut remote = ctx(2);
        let mut out = Vec::new();
        let mut more_buf = vec![0u8; 2048];
        for i in 0..30u32 {
            let mut p = vec![0x80, 8 | if i == 0 { 0x80 } else { 0 }];
            p.extend_from_slice(&(500 + i as u16).to_be_bytes());
            p.extend_from_slice(&(240 * i).to_be_bytes());
            p.extend_from_slice(&7u32.to_be_bytes());
            p.extend((0..240).map(|k| {
                let x = 5000.0 * (f64::from(240 * i + k) * 0.3).sin();
                g711::linear_to_alaw(x as i16)
            }));
            let mut room = p.clone();
            room.resize(2048, 0);
            let t1 = t + Duration::from_millis(30 * u64::from(i));
            let mut got = 0;
            if let Action::Forward { len, to, .. } =
                shard.on_packet_in(port_a, a, &mut room, p.len(), t1)
            {
                assert_eq!(to, b);
                out.push(room[..len].to_vec());
                got += 1;
            }
            while let Some(act) = shard.next_packet(&mut more_buf) {
                let Action::Forward { len, to, .. } = act else {
                    panic!("{act:?}");
                };
                assert_eq!(to, b);
                out.push(more_buf[..len].to_vec());
                got += 1;
            }
            assert_eq!(got, if i % 2 == 0 { 1 } else { 2 }, "packet {i}");
        }
        assert_eq!(out.len(), 45);
        let mut last: Option<(u16, u32)> = None;
        for (k, sealed) in out.iter().enumerate() {
            let mut buf = sealed.clone();
            let n = remote.unprotect_rtp(&mut buf, sealed.len()).unwrap();
            assert_eq!(n, 12 + 160, "20 ms of PCMU");
            assert_eq!(buf[1] & 0x7f, 0);
            assert_eq!(buf[1] & 0x80 != 0, k == 0, "marker on the first alone");
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            if let Some((s, t)) = last {
                assert_eq!(seq, s.wrapping_add(1));
                assert_eq!(ts, t.wrapping_add(160));
            }
            last = Some((seq, ts));
        }
        let c = shard.counters();
        assert_eq!(c.forwarded, 45);
        assert_eq!(c.srtp.packets, 45);
        // RTCP: relayed once, nothing after it.
        let port_a_rtcp = port_a + 1;
        let mut rtcp = vec![0x80, 200, 0, 6, 0, 0, 0, 7];
        rtcp.extend_from_slice(&[0; 20]);
        let len = rtcp.len();
        rtcp.resize(2048, 0);
        let act = shard.on_packet_in(port_a_rtcp, a, &mut rtcp, len, t);
        assert!(matches!(act, Action::Forward { .. }), "{act:?}");
        assert_eq!(shard.next_packet(&mut more_buf), None);
    }
}
