//! One worker: a thread pinned to a core with its own sockets and its own handler; the state and
//! the per-message and per-tick logic that the event loops of [`crate::driver`] call. Nothing is
//! shared between workers but the stop flag and the hand-over inboxes ([`crate::handover`]: a
//! datagram the kernel gave this worker for a dialog of another goes to that worker); the packet
//! path takes no lock.
//!
//! TCP and TLS stay on the worker's epoll ([`crate::stream`]) under both drivers; the io_uring
//! driver waits on that epoll through a poll request in its ring, so a worker always has exactly one
//! place where it sleeps.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_core::b2bua::Origin;
use sbc_core::guard::{Guard, GuardConfig};
use sbc_core::media::{MediaControl, NoRelay};
use sbc_sip::transaction::{Flow, Transmit};

use crate::connect::Peers;
use crate::control::{drain_commands, ops, GuardRequest, Layers, Publisher, WorkerCommand};
use crate::handler::Handler;
use crate::handover::{Handed, Handover};
use crate::media::{MediaSockets, NgServer};
use crate::observe::{LoopClock, Observed};
use crate::persist::WorkerStore;
use crate::shard_media::ShardMedia;
use crate::signalling::{udp_side, Signalling};
use crate::stats::{Media, Transport, WorkerStats};
use crate::stream::{Listener, StreamSettings, Streams};
use crate::sys::Epoll;
use crate::tokens::{is_conn_flow, Kind, Token};

/// The longest a worker sleeps before looking at the stop flag and timers.
pub(crate) const TICK_MS: i32 = 100;
const IDLE_SCAN: Duration = Duration::from_secs(1);
/// How long a stopping worker waits for the answers to its goodbyes (de-REGISTER of trunks).
const STOP_LINGER: Duration = Duration::from_secs(2);

/// The relay the core drives: the worker's shard, or, when media is not anchored, a relay with no
/// ports (the B2BUA then never calls it).
pub(crate) fn relay(shard: &mut Option<ShardMedia>) -> &mut dyn MediaControl {
    match shard {
        Some(m) => m,
        // Zero-sized: the box allocates nothing, and leaking it costs nothing.
        None => Box::leak(Box::new(NoRelay)),
    }
}

/// Everything a worker owns.
pub(crate) struct Worker {
    pub(crate) id: u16,
    pub(crate) handler: Handler,
    /// The outside listeners first (`outside_udp` of them), then the shared inside port, then the
    /// worker's own inside port. A socket's index is its [`Flow`].
    pub(crate) udp: Vec<UdpSocket>,
    pub(crate) outside_udp: usize,
    pub(crate) streams: Streams,
    pub(crate) epoll: Epoll,
    pub(crate) max_message: usize,
    /// See `transport.batch_wait_us`.
    pub(crate) batch_wait_us: u32,
    pub(crate) stop: Arc<AtomicBool>,
    /// The sockets of this worker's media ports (none when media is not anchored).
    pub(crate) media: Option<MediaSockets>,
    /// The worker's media relay shard, behind the core's media trait (none when media is not
    /// anchored). Reached through [`Worker::media_path`] and [`relay`].
    shard_media: Option<ShardMedia>,
    /// The rtpengine ng control socket (worker 0 only, when configured).
    pub(crate) ng: Option<NgServer>,
    /// Sends the worker's counters to the control thread, once a second from [`Self::tick`].
    publisher: Publisher,
    /// Sends the worker's bindings to the state file's writer (when `registrar.state_file` is set).
    store: Option<WorkerStore>,
    /// Guard changes from the control thread, applied on [`Self::tick`].
    commands: crossbeam_channel::Receiver<WorkerCommand>,
    last_idle_scan: Instant,
    /// The event loop's busy and idle time.
    clock: LoopClock,
    /// Where the worker is in a stop (see [`StopPhase`]).
    stop_phase: StopPhase,
    /// Datagrams of other workers' dialogs go to them; theirs for this one arrive here.
    handover: Handover,
    /// The datagrams taken from the inbox, handled once taken (reused).
    handed: Vec<Handed>,
}

/// A worker's way to a stop: running; draining (new calls get 503, the calls in progress go on
/// until they end or `limits.drain_secs` passes); ending (BYE sent on both legs of the rest, the
/// trunks' removal sent: the worker runs until they are answered or [`STOP_LINGER`] passes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopPhase {
    Running,
    Draining { until: Instant },
    Ending { until: Instant },
}

/// What a worker is made of: its sockets, bound by `main` before any worker starts, and its
/// settings.
pub(crate) struct WorkerSetup<'a> {
    pub(crate) id: u16,
    /// The outside listeners first (`outside_udp` of them), then the shared inside port, then the
    /// worker's own inside port.
    pub(crate) udp: Vec<UdpSocket>,
    pub(crate) outside_udp: usize,
    /// TCP and TLS listeners of both sides.
    pub(crate) listeners: Vec<Listener>,
    pub(crate) tls_config: Option<Arc<rustls::ServerConfig>>,
    /// The next hops reached over connections the worker opens.
    pub(crate) peers: Peers,
    pub(crate) transport: &'a crate::config::TransportSection,
    pub(crate) signalling: Signalling,
    /// The admission guard's settings (this worker's share of `limits.max_cps`).
    pub(crate) guard: GuardConfig,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) media: Option<MediaSockets>,
    /// The relay shard over the ports of `media`.
    pub(crate) shard_media: Option<ShardMedia>,
    pub(crate) ng: Option<NgServer>,
    pub(crate) publisher: Publisher,
    pub(crate) store: Option<WorkerStore>,
    /// This worker's end of its command channel.
    pub(crate) commands: crossbeam_channel::Receiver<WorkerCommand>,
    /// This worker's end of the hand-over between workers.
    pub(crate) handover: Handover,
}

/// The media path of a worker, borrowed apart from the rest: its sockets, its shard, the ng
/// control server, and the counters.
pub(crate) struct MediaPath<'a> {
    pub(crate) socks: Option<&'a MediaSockets>,
    pub(crate) shard: &'a mut ShardMedia,
    pub(crate) ng: Option<&'a mut NgServer>,
    pub(crate) counters: &'a mut Transport,
}

impl Worker {
    pub(crate) fn new(setup: WorkerSetup<'_>) -> std::io::Result<Self> {
        let WorkerSetup {
            id,
            udp,
            outside_udp,
            listeners,
            tls_config,
            peers,
            transport,
            signalling,
            guard,
            stop,
            media,
            shard_media,
            ng,
            publisher,
            store,
            commands,
            handover,
        } = setup;
        let limits = sbc_sip::framing::Limits {
            max_header: transport.max_message_size.min(16 * 1024),
            max_body: transport.max_message_size,
        };
        let settings = StreamSettings {
            max_conns: transport.tcp_max_connections,
            max_per_source: transport.tcp_max_connections_per_source,
            idle: Duration::from_secs(transport.tcp_idle_timeout_secs),
            handshake: Duration::from_secs(transport.tls_handshake_timeout_secs),
            limits,
        };
        let streams = Streams::new(listeners, tls_config, peers, settings);
        let epoll = Epoll::new()?;
        streams.register(&epoll)?;
        if let Some(ng) = &ng {
            // Both drivers wait on the epoll, so the control socket is served by either.
            epoll.add(
                ng.sock.as_raw_fd(),
                libc::EPOLLIN as u32,
                Token::new(Kind::Ng, 0).encode(),
            )?;
        }
        if let Some(fd) = handover.doorbell_fd() {
            // Both drivers wait on the epoll, so a hand-over wakes either at once.
            epoll.add(
                fd,
                libc::EPOLLIN as u32,
                Token::new(Kind::Handover, 0).encode(),
            )?;
        }
        Ok(Self {
            id,
            handler: Handler::new(signalling, Guard::new(guard)),
            udp,
            outside_udp,
            streams,
            epoll,
            max_message: transport.max_message_size,
            batch_wait_us: transport.batch_wait_us,
            stop,
            media,
            shard_media,
            ng,
            publisher,
            store,
            commands,
            last_idle_scan: Instant::now(),
            clock: LoopClock::default(),
            stop_phase: StopPhase::Running,
            handover,
            handed: Vec::with_capacity(64),
        })
    }

    /// True once the stop flag is set, the drain is over and what the worker says before going
    /// is done: the BYEs of the calls it ended and the removal of carrier registrations
    /// answered, or [`STOP_LINGER`] passed.
    pub(crate) fn stopping(&self) -> bool {
        let StopPhase::Ending { until } = self.stop_phase else {
            return false;
        };
        let calls = self.handler.signalling.load().0;
        Instant::now() >= until || (calls == 0 && !self.handler.stop_pending())
    }

    /// Seen once per loop turn: when the stop flag is first set, the drain and the goodbyes
    /// start; when the drain is over (no call left, or its time passed), the calls still up
    /// are ended.
    fn check_stop(&mut self, now: Instant) {
        if self.stop_phase == StopPhase::Running && self.stop.load(Ordering::Relaxed) {
            self.handler.begin_stop(now);
            let drain = self.handler.signalling.begin_drain();
            self.stop_phase = StopPhase::Draining { until: now + drain };
        }
        if let StopPhase::Draining { until } = self.stop_phase {
            let calls = self.handler.signalling.load().0;
            if calls == 0 || now >= until {
                if calls > 0 {
                    tracing::info!(worker = self.id, calls, "drain over: ending the calls left");
                    let sig = &mut self.handler.signalling;
                    sig.end_calls(now, relay(&mut self.shard_media));
                    sig.drain(now, &mut self.handler.outbox);
                }
                self.stop_phase = StopPhase::Ending {
                    until: now + STOP_LINGER,
                };
            }
        }
    }

    /// The end of the worker's loop: its last counters go to the control thread.
    pub(crate) fn finish(self) {
        let now = Instant::now();
        let layers = self.layers();
        let Self {
            publisher,
            store,
            handler,
            ..
        } = self;
        if let Some(store) = store {
            store.finish(handler.signalling.registrations().export_registrations(now));
        }
        publisher.finish(layers, now);
    }

    /// The worker's counters, layer by layer (copies: nothing is locked or allocated).
    fn layers(&self) -> Layers {
        Layers {
            transport: self.handler.transport,
            sip: self.handler.sip,
            b2bua: self.handler.signalling.counters(),
            rules: self.handler.signalling.rules_counters(),
            media: self.media_counters(),
            guard: self.handler.guard_stats(),
            // Filled in by the publisher.
            worker: WorkerStats::default(),
            observed: Observed {
                calls: self.handler.signalling.call_stats(),
                sip: self.handler.traffic,
                media_dropped: self.media_drops(),
                work: self.clock.stats(),
            },
        }
    }

    /// The relay's drops by reason ([`media_plane::DropReason::ALL`] order).
    fn media_drops(&self) -> [u64; media_plane::DropReason::COUNT] {
        let relay = self.shard_media.as_ref().map(ShardMedia::shard);
        relay.map_or([0; media_plane::DropReason::COUNT], |r| {
            media_plane::DropReason::ALL.map(|d| r.counters().dropped(d))
        })
    }

    /// The media layer's counters: the relay shard's, the SDP anchor's and the ng server's.
    fn media_counters(&self) -> Media {
        let mut c = Media::default();
        if let Some(ng) = &self.ng {
            let n = ng.counters();
            c.ng_requests = n.requests;
            c.ng_errors = n.errors;
            c.ng_refused = ng.refused();
        }
        let relay = self.shard_media.as_ref().map(ShardMedia::shard);
        if let (Some(m), Some(relay)) = (self.handler.signalling.media(), relay) {
            let shard = relay.counters();
            let anchor = m.stats();
            c.media_forwarded = shard.forwarded;
            c.media_forwarded_bytes = shard.forwarded_bytes;
            c.media_dropped = media_plane::DropReason::ALL
                .iter()
                .map(|r| shard.dropped(*r))
                .sum();
            c.media_sdp_rewritten = anchor.rewritten;
            c.media_offers_refused = anchor.refused;
            c.media_no_media_ends = anchor.no_media_ends;
            c.media_one_way = anchor.one_way;
            c.media_transcoded_frames = shard.codec.transcoded_frames;
            c.media_dtmf_events =
                shard.codec.dtmf_relayed + shard.codec.dtmf_generated + shard.codec.dtmf_detected;
            c.media_transcoded_streams = anchor.transcoded_streams;
            c.media_early_streams_refused = anchor.early_streams_refused;
            c.media_early_source_refused = anchor.early_source_refused;
            c.media_released_unanswered = anchor.released_unanswered;
            c.media_pending_discarded = anchor.pending_discarded;
            c.media_held_kept = anchor.held_kept;
            c.media_srtp_auth_failures = shard.srtp.auth_failures();
            c.media_srtp_replays = shard.srtp.replays();
            c.media_srtp_packets = shard.srtp.packets;
            c.media_srtp_malformed = shard.srtp.rejected(media_plane::srtp::Reject::Malformed);
            c.media_srtp_no_room = shard.srtp.rejected(media_plane::srtp::Reject::NoRoom);
            c.media_srtp_key_expired = shard.srtp.rejected(media_plane::srtp::Reject::KeyExpired);
            c.media_srtp_no_key = shard.srtp.rejected(media_plane::srtp::Reject::NoKey);
            c.media_srtp_refused = anchor.srtp_refused;
            c.media_srtp_stages = anchor.srtp_stages;
            c.media_dtmf_relayed = shard.codec.dtmf_relayed;
            c.media_dtmf_generated = shard.codec.dtmf_generated;
            c.media_dtmf_detected = shard.codec.dtmf_detected;
            c.media_repacketised_packets = shard.codec.repacketised_packets;
            c.media_sessions = relay.len() as u64;
            c.media_ports_in_use = relay.ports().in_use() as u64;
            c.media_ports_free = relay.ports().free_pairs() as u64;
        }
        c
    }

    /// The media path, when media is anchored: the one place the drivers and the ng server reach
    /// the worker's media shard.
    pub(crate) fn media_path(&mut self) -> Option<MediaPath<'_>> {
        let shard = self.shard_media.as_mut()?;
        Some(MediaPath {
            socks: self.media.as_ref(),
            shard,
            ng: self.ng.as_mut(),
            counters: &mut self.handler.transport,
        })
    }

    /// Handle the stream events ready on the epoll, without waiting longer than `timeout_ms`.
    pub(crate) fn poll_streams(
        &mut self,
        events: &mut [libc::epoll_event],
        timeout_ms: i32,
    ) -> std::io::Result<()> {
        let n = self.epoll.wait(events, timeout_ms)?;
        let now = Instant::now();
        for ev in &events[..n] {
            let (tok, flags) = (ev.u64, ev.events);
            match Token::decode(tok).map(|t| t.kind) {
                Some(Kind::Ng) => self.on_ng(now),
                Some(Kind::Handover) => self.on_handover(now),
                _ => self.on_stream_event(tok, flags, now),
            }
        }
        Ok(())
    }

    /// A TCP or TLS event (listener or connection) `tok` with epoll `flags`.
    pub(crate) fn on_stream_event(&mut self, tok: u64, flags: u32, now: Instant) {
        self.streams.on_event(
            &self.epoll,
            tok,
            flags,
            &mut self.handler,
            relay(&mut self.shard_media),
            now,
        );
    }

    /// Answer the queued ng control requests.
    pub(crate) fn on_ng(&mut self, now: Instant) {
        if let Some(MediaPath {
            ng: Some(ng),
            shard,
            ..
        }) = self.media_path()
        {
            ng.on_readable(shard, 64, now);
        }
    }

    /// Periodic work: SIP timers, then idle connections, then (once a second) the counters'
    /// snapshot for the control thread.
    pub(crate) fn tick(&mut self, now: Instant) {
        // The drivers pass the time they woke at.
        self.clock.woke(now);
        self.check_stop(now);
        let (handler, shard, id) = (&mut self.handler, &mut self.shard_media, self.id);
        drain_commands(&self.commands, id, now, &mut |r| match r {
            GuardRequest::Ops(c) => {
                let (sig, outbox) = (&mut handler.signalling, &mut handler.outbox);
                ops::serve(c, id, now, sig, outbox, relay(shard));
            }
            r => handler.serve_guard(r),
        });
        self.handler.on_timeout(now, relay(&mut self.shard_media));
        self.handler
            .on_media_events(now, relay(&mut self.shard_media));
        if let Some(MediaPath {
            ng: Some(ng),
            shard,
            ..
        }) = self.media_path()
        {
            ng.tick(shard, now);
        }
        self.streams.resume_accepting(&self.epoll, now);
        while let Some(peer) = self.streams.take_lost() {
            let media = relay(&mut self.shard_media);
            self.handler.signalling.peer_lost(now, peer, media);
            self.handler.signalling.drain(now, &mut self.handler.outbox);
        }
        if now.duration_since(self.last_idle_scan) >= IDLE_SCAN {
            self.last_idle_scan = now;
            self.streams.expire(&self.epoll, now, &mut self.handler);
            self.handler.report_bans(now);
            if let Some(store) = &mut self.store {
                let b2bua = self.handler.signalling.registrations();
                store.tick(b2bua.registrations_generation(), || {
                    b2bua.export_registrations(now)
                });
            }
        }
        if self.publisher.due(now) {
            self.clock.roll();
            let layers = self.layers();
            self.publisher.publish(layers, now);
        }
    }

    /// How long the loop may sleep: until the next SIP timer, at most [`TICK_MS`].
    pub(crate) fn sleep_ms(&mut self, now: Instant) -> i32 {
        // The drivers ask right before they wait: the turn ends here.
        self.clock.waits(now);
        match self.handler.signalling.poll_timeout() {
            Some(t) => {
                let ms = t.saturating_duration_since(now).as_millis();
                // Round up so the timer is due when the loop wakes.
                i32::try_from(ms + 1).unwrap_or(TICK_MS).min(TICK_MS)
            }
            None => TICK_MS,
        }
    }

    /// Handle one datagram received on UDP socket `index` from `src`; what it causes to be sent
    /// (a stateless answer, the B2BUA's output) joins the outbox. A datagram of another worker's
    /// dialog or transaction is handed to that worker instead.
    pub(crate) fn on_datagram(
        &mut self,
        index: usize,
        src: SocketAddr,
        data: &[u8],
        truncated: bool,
        now: Instant,
    ) {
        self.handler.transport.udp_rx += 1;
        if truncated || data.len() > self.max_message {
            self.handler.transport.udp_truncated += 1;
            return;
        }
        if let Some(owner) = self.handover.owner(index, data) {
            let h = Handed {
                index,
                source: src,
                data: Bytes::copy_from_slice(data),
            };
            if self.handover.hand(owner, h) {
                self.handler.transport.handed_over += 1;
            } else {
                self.handler.transport.handover_dropped += 1;
            }
            return;
        }
        self.on_message(index, src, Bytes::copy_from_slice(data), now);
    }

    /// The doorbell rang: handle the datagrams other workers handed over, each as if it had
    /// arrived on this worker's UDP socket of the same index (same local address).
    pub(crate) fn on_handover(&mut self, now: Instant) {
        let mut handed = std::mem::take(&mut self.handed);
        self.handover.take(|h| handed.push(h));
        for h in handed.drain(..) {
            self.handler.transport.handed_in += 1;
            self.on_message(h.index, h.source, h.data, now);
        }
        self.handed = handed;
    }

    /// One datagram of this worker's, received on UDP socket `index` (or handed over as such).
    fn on_message(&mut self, index: usize, src: SocketAddr, data: Bytes, now: Instant) {
        let origin = Origin {
            source: src,
            side: udp_side(index, self.outside_udp),
            reliable: false,
            flow: Flow(index as u64),
        };
        self.handler
            .handle(data, origin, now, relay(&mut self.shard_media));
    }

    /// Take the outbox: stream flows, and messages to next hops reached over TCP or TLS, are
    /// written here (queued on their connection, opened if need be); UDP transmits are left in the
    /// returned list for the driver, which batches them per socket. Both drivers call this after
    /// each batch, so this is also where the workers handed datagrams in the batch are woken
    /// (once each).
    pub(crate) fn take_outbox(&mut self, udp: &mut Vec<Transmit>) {
        self.handover.ring();
        let mut outbox = std::mem::take(&mut self.handler.outbox);
        for t in outbox.drain(..) {
            self.handler.traffic.sent(&t.bytes);
            if is_conn_flow(t.flow.0) {
                if !self.streams.send(&self.epoll, t.flow.0, &t.bytes) {
                    self.handler.sip.flow_unknown += 1;
                }
            } else if let Some(_queued) =
                self.streams
                    .send_to(&self.epoll, t.dest, &t.bytes, &mut self.handler.transport)
            {
                // Counted by the streams; a lost request is the transaction's to time out.
            } else if (t.flow.0 as usize) < self.udp.len() {
                udp.push(t);
            } else {
                self.handler.sip.flow_unknown += 1;
            }
        }
        self.handler.outbox = outbox;
    }
}
