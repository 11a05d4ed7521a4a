//! One worker: a thread pinned to a core with its own sockets, its own event loop and its own handler.
//! Nothing is shared between workers but the stop flag; the packet path takes no lock.
//!
//! Two drivers run the loop: io_uring ([`crate::uring`]) and epoll + `recvmmsg` (here). Both keep TCP
//! and TLS on the worker's epoll ([`crate::stream`]); the io_uring driver waits on that epoll through a
//! poll request in its ring, so a worker always has exactly one place where it sleeps.

use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_core::b2bua::Origin;
use sbc_core::media::{MediaControl, NoRelay};
use sbc_sip::transaction::{Flow, Transmit};

use crate::handler::{Counters, Handler};
use crate::media::{MediaSockets, NgServer};
use crate::shard_media::ShardMedia;
use crate::signalling::{udp_side, Signalling};
use crate::stream::{
    token, token_parts, Streams, KIND_CONN, KIND_MEDIA, KIND_NG, KIND_SHIFT, KIND_UDP,
};
use crate::sys::Epoll;
use crate::udp::MmsgBatch;

/// The longest a worker sleeps before looking at the stop flag and timers.
pub(crate) const TICK_MS: i32 = 100;
const IDLE_SCAN: Duration = Duration::from_secs(1);
/// How long a stopping worker waits for the answers to its goodbyes (de-REGISTER of trunks).
const STOP_LINGER: Duration = Duration::from_secs(2);

/// Which loop a worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Driver {
    IoUring,
    Epoll,
}

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
    /// This worker's media relay (none when media is not anchored): the packet path uses its
    /// shard, the B2BUA and the ng engine reach it as [`MediaControl`].
    pub(crate) shard_media: Option<ShardMedia>,
    /// The rtpengine ng control socket (worker 0 only, when configured).
    pub(crate) ng: Option<NgServer>,
    last_idle_scan: Instant,
    /// Set when the stop flag is first seen: the worker runs until then at most, to have its
    /// goodbyes answered.
    stop_until: Option<Instant>,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u16,
        udp: Vec<UdpSocket>,
        outside_udp: usize,
        tcp: Vec<TcpListener>,
        tls: Vec<TcpListener>,
        tls_config: Option<Arc<rustls::ServerConfig>>,
        transport: &crate::config::Transport,
        signalling: Signalling,
        cps: f64,
        stop: Arc<AtomicBool>,
        media: Option<MediaSockets>,
        shard_media: Option<ShardMedia>,
        ng: Option<NgServer>,
    ) -> std::io::Result<Self> {
        let limits = sbc_sip::framing::Limits {
            max_header: transport.max_message_size.min(16 * 1024),
            max_body: transport.max_message_size,
        };
        let streams = Streams::new(
            tcp,
            tls,
            tls_config,
            transport.tcp_max_connections,
            Duration::from_secs(transport.tcp_idle_timeout_secs),
            limits,
        );
        let epoll = Epoll::new()?;
        streams.register(&epoll)?;
        if let Some(ng) = &ng {
            // Both drivers wait on the epoll, so the control socket is served by either.
            epoll.add(
                ng.sock.as_raw_fd(),
                libc::EPOLLIN as u32,
                token(KIND_NG, 0, 0),
            )?;
        }
        Ok(Self {
            id,
            handler: Handler::new(id, signalling, cps),
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
            last_idle_scan: Instant::now(),
            stop_until: None,
        })
    }

    /// True once the stop flag is set and what the worker says before going is done: the
    /// removal of carrier registrations answered, or [`STOP_LINGER`] passed.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            && self
                .stop_until
                .is_some_and(|t| Instant::now() >= t || !self.handler.stop_pending())
    }

    /// Seen once per loop turn: when the stop flag is first set, start the goodbyes.
    fn check_stop(&mut self, now: Instant) {
        if self.stop_until.is_none() && self.stop.load(Ordering::Relaxed) {
            let pending = self.handler.begin_stop(now);
            self.stop_until = Some(if pending { now + STOP_LINGER } else { now });
        }
    }

    /// Run the chosen driver until the stop flag is set; returns the counters.
    pub(crate) fn run(mut self, driver: Driver) -> Counters {
        let result = match driver {
            Driver::IoUring => match crate::uring::run(&mut self) {
                Err(e) if !self.stopping() => {
                    tracing::warn!(
                        worker = self.id,
                        "io_uring driver failed ({e}); continuing on epoll"
                    );
                    run_epoll(&mut self)
                }
                other => other,
            },
            Driver::Epoll => run_epoll(&mut self),
        };
        if let Err(e) = result {
            tracing::error!(worker = self.id, "worker stopped on error: {e}");
        }
        let mut c = self
            .handler
            .final_counters(self.shard_media.as_ref().map(ShardMedia::shard));
        if let Some(ng) = &self.ng {
            let n = ng.counters();
            c.ng_requests = n.requests;
            c.ng_errors = n.errors;
        }
        c
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
            if tok >> KIND_SHIFT == KIND_NG {
                self.on_ng(now);
            } else {
                self.streams.on_event(
                    &self.epoll,
                    tok,
                    flags,
                    &mut self.handler,
                    relay(&mut self.shard_media),
                    now,
                );
            }
        }
        Ok(())
    }

    /// Answer the queued ng control requests.
    pub(crate) fn on_ng(&mut self, now: Instant) {
        if let (Some(ng), Some(m)) = (&mut self.ng, &mut self.shard_media) {
            ng.on_readable(m, 64, now);
        }
    }

    /// Periodic work: SIP timers, then idle connections.
    pub(crate) fn tick(&mut self, now: Instant) {
        self.check_stop(now);
        self.handler.on_timeout(now, relay(&mut self.shard_media));
        if let (Some(ng), Some(m)) = (&mut self.ng, &mut self.shard_media) {
            ng.tick(m, now);
        }
        if now.duration_since(self.last_idle_scan) >= IDLE_SCAN {
            self.last_idle_scan = now;
            self.streams
                .expire_idle(&self.epoll, now, &mut self.handler);
        }
    }

    /// How long the loop may sleep: until the next SIP timer, at most [`TICK_MS`].
    pub(crate) fn sleep_ms(&mut self, now: Instant) -> i32 {
        match self.handler.signalling.poll_timeout() {
            Some(t) => {
                let ms = t.saturating_duration_since(now).as_millis();
                // Round up so the timer is due when the loop wakes.
                i32::try_from(ms + 1).unwrap_or(TICK_MS).min(TICK_MS)
            }
            None => TICK_MS,
        }
    }

    /// Handle one datagram received on UDP socket `index` from `src`: a stateless answer goes into
    /// `out` (returns true), the B2BUA's output into the outbox.
    pub(crate) fn on_datagram(
        &mut self,
        index: usize,
        src: std::net::SocketAddr,
        data: &[u8],
        truncated: bool,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        self.handler.counters.udp_rx += 1;
        if truncated || data.len() > self.max_message {
            self.handler.counters.udp_truncated += 1;
            return false;
        }
        let origin = Origin {
            source: src,
            side: udp_side(index, self.outside_udp),
            reliable: false,
            flow: Flow(index as u64),
        };
        self.handler.handle(
            Bytes::copy_from_slice(data),
            origin,
            now,
            out,
            relay(&mut self.shard_media),
        )
    }

    /// Take the B2BUA's output: stream flows are written here (queued on their connection); UDP
    /// transmits are left in the returned list for the driver, which batches them per socket.
    pub(crate) fn take_outbox(&mut self, udp: &mut Vec<Transmit>) {
        for t in self.handler.outbox.drain(..) {
            if t.flow.0 >> KIND_SHIFT == KIND_CONN {
                if !self.streams.send(&self.epoll, t.flow.0, &t.bytes) {
                    self.handler.counters.flow_unknown += 1;
                }
            } else if (t.flow.0 as usize) < self.udp.len() {
                udp.push(t);
            } else {
                self.handler.counters.flow_unknown += 1;
            }
        }
    }
}

/// The epoll driver: `recvmmsg` batches for UDP, `sendmmsg` for the answers of each batch.
fn run_epoll(w: &mut Worker) -> std::io::Result<()> {
    for (i, s) in w.udp.iter().enumerate() {
        w.epoll.add(
            s.as_raw_fd(),
            libc::EPOLLIN as u32,
            token(KIND_UDP, 0, i as u32),
        )?;
    }
    if let Some(m) = &w.media {
        for (i, s) in m.socks.iter().enumerate() {
            w.epoll.add(
                s.as_raw_fd(),
                libc::EPOLLIN as u32,
                token(KIND_MEDIA, 0, i as u32),
            )?;
        }
    }
    let mut media_buf = vec![0u8; 2048];
    let mut batch = MmsgBatch::new(w.max_message);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut pending = Vec::with_capacity(64);
    while !w.stopping() {
        let sleep = w.sleep_ms(Instant::now());
        let n = w.epoll.wait(&mut events, sleep)?;
        let now = Instant::now();
        for ev in &events[..n] {
            let (tok, flags) = (ev.u64, ev.events);
            let (kind, _, index) = token_parts(tok);
            if kind == KIND_UDP {
                udp_ready(w, index as usize, &mut batch);
            } else if kind == KIND_NG {
                w.on_ng(now);
            } else if kind == KIND_MEDIA {
                let (Some(socks), Some(m)) = (&w.media, &mut w.shard_media) else {
                    continue;
                };
                crate::media::relay_ready(
                    socks,
                    m.shard_mut(),
                    index as usize,
                    &mut media_buf,
                    &mut w.handler.counters,
                    32,
                    now,
                );
            } else {
                w.streams.on_event(
                    &w.epoll,
                    tok,
                    flags,
                    &mut w.handler,
                    relay(&mut w.shard_media),
                    now,
                );
            }
        }
        w.tick(now);
        send_outbox(w, &mut pending);
    }
    for s in &w.udp {
        w.epoll.delete(s.as_raw_fd());
    }
    Ok(())
}

/// Drain a readable UDP socket in batches (bounded per event; level-triggered epoll calls again).
fn udp_ready(w: &mut Worker, index: usize, batch: &mut MmsgBatch) {
    let mut out = std::mem::take(&mut batch.out);
    for _ in 0..8 {
        let n = match batch.recv(&w.udp[index]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => break,
        };
        let now = Instant::now();
        for i in 0..n {
            let (data, src, truncated) = batch.datagram(i);
            let start = out.len();
            let Some(src) = src else { continue };
            // RFC 3581 / RFC 3261 §18.2.2: answer the packet's source address and port.
            if w.on_datagram(index, src, data, truncated, now, &mut out) {
                batch.replies.push((start, out.len(), src));
            }
        }
        if n < crate::udp::BATCH {
            break;
        }
    }
    batch.out = out;
    let (sent, failed) = batch.flush(&w.udp[index]);
    w.handler.counters.udp_tx += sent;
    w.handler.counters.udp_send_errors += failed;
}

/// Send what the B2BUA produced (epoll driver): UDP with one `sendto` each. The io_uring driver
/// batches these into its submission queue instead.
fn send_outbox(w: &mut Worker, pending: &mut Vec<Transmit>) {
    w.take_outbox(pending);
    for t in pending.drain(..) {
        let Some(sock) = w.udp.get(t.flow.0 as usize) else {
            continue;
        };
        match sock.send_to(&t.bytes, t.dest) {
            Ok(_) => w.handler.counters.udp_tx += 1,
            Err(_) => w.handler.counters.udp_send_errors += 1,
        }
    }
}
