//! One replay thread per core: it owns a UAC SIP socket, a UAS SIP socket (SO_REUSEPORT on the UAS
//! address, so the kernel spreads the callers over the threads), its calls' media sockets (an RTP
//! and an RTCP port per leg, from its own slice of the port range), an epoll set and a timer wheel.
//! A leg walks the template's SIP steps: it sends its side's messages (fresh Call-ID, tags,
//! branches, CSeq base, SDP address and port) at the recorded gaps after the previous step, waits
//! for the other side's, and replays its side's RTP and RTCP with the recorded timing and payloads
//! (fresh SSRC, sequence and timestamp bases) once the offer/answer is done.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use socket2::{Domain, Protocol, Socket, Type};

mod auth;
mod build;
mod media;
mod sdes;
mod stream;

pub(crate) use auth::{recorded_user, DigestSetup};
pub(crate) use sdes::{remote_crypto, SUITE as SRTP_SUITE};
pub(crate) use stream::TlsSetup;

use sbc_core::registration::digest::ChallengeKind;

use crate::media::{mos, RtcpState, RxStream};
use crate::sipmsg::{sdp_audio, Msg};
use crate::template::{Side, Template};
use crate::wheel::{Timer, TimerKind, Wheel};

/// What every thread is told.
pub(crate) struct Config {
    pub(crate) template: Arc<Template>,
    pub(crate) target: SocketAddr,
    pub(crate) uac_ip: IpAddr,
    pub(crate) uac_sip_base: u16,
    pub(crate) uas: Option<SocketAddr>,
    pub(crate) run_uac: bool,
    pub(crate) media_base: u16,
    pub(crate) media_ports_per_thread: u16,
    pub(crate) threads: usize,
    pub(crate) max_concurrent: u64,
    pub(crate) hold: Option<Duration>,
    pub(crate) timeout: Duration,
    pub(crate) epoch: Instant,
    /// The epoch as NTP time: RTCP's NTP timestamps are `epoch_ntp` + the monotonic time since.
    pub(crate) epoch_ntp: u64,
    /// SIP over TLS, one connection per call (None: UDP, or TCP when `tcp`).
    pub(crate) tls: Option<Arc<TlsSetup>>,
    /// SIP over plain TCP, one connection per call.
    pub(crate) tcp: bool,
    /// Digest answers computed and checked (None: the recorded ones replayed, not checked).
    pub(crate) digest: Option<DigestSetup>,
    /// `--srtp sdes`: the caller offers SDES-SRTP (see `sdes`).
    pub(crate) srtp: bool,
}

impl Config {
    /// SIP over a stream (TCP or TLS) rather than UDP.
    pub(crate) fn stream(&self) -> bool {
        self.tcp || self.tls.is_some()
    }
}

/// Counters the progress line reads while the run goes.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) attempted: AtomicU64,
    pub(crate) answered: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) done: AtomicU64,
    pub(crate) active_uas: AtomicU64,
    pub(crate) rtp_sent: AtomicU64,
    pub(crate) rtp_received: AtomicU64,
    /// The MOS of finished legs with media, in hundredths, summed, and how many legs.
    pub(crate) mos_centi: AtomicU64,
    pub(crate) mos_legs: AtomicU64,
    pub(crate) stop: AtomicBool,
}

/// One finished leg.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) role: &'static str,
    pub(crate) index: u64,
    pub(crate) call_id: String,
    pub(crate) failure: Option<String>,
    pub(crate) t18x_ms: Option<f64>,
    pub(crate) t200_ms: Option<f64>,
    pub(crate) rtp_sent: u64,
    pub(crate) rtp_received: u64,
    pub(crate) rtp_expected: u64,
    pub(crate) rtp_lost: u64,
    pub(crate) jitter_ms: f64,
    /// Mean round trip from the peer's RTCP reports on this leg's SRs (RFC 3550 6.4.1; None when
    /// no report echoed an SR).
    pub(crate) rtt_ms: Option<f64>,
    pub(crate) mos: Option<f64>,
    pub(crate) mismatched: u64,
    pub(crate) digits_ok: Option<bool>,
    pub(crate) rtp_stray: u64,
}

impl Row {
    /// The leg's one-way latency: half its round trip.
    pub(crate) fn latency_ms(&self) -> Option<f64> {
        self.rtt_ms.map(|r| r / 2.0)
    }
}

pub(crate) struct ThreadResult {
    pub(crate) rows: Vec<Row>,
    pub(crate) setup_18x: Histogram<u64>,
    pub(crate) setup_200: Histogram<u64>,
    /// TCP/TLS connections the callers opened (connected, and over TLS with a completed
    /// handshake), those that failed, and those closed for passing a buffer bound.
    pub(crate) conn_opened: u64,
    pub(crate) conn_failures: u64,
    pub(crate) conn_overflows: u64,
    /// Legs that sent and received SRTP, and SRTP/SRTCP packets their receivers refused.
    pub(crate) srtp_legs: u64,
    pub(crate) srtp_rejected: u64,
    /// SRTP packets dropped for coming before the peer's key with the leg's wait queue full.
    pub(crate) srtp_early_dropped: u64,
    /// When this thread started its first and its last call (ns since the epoch).
    pub(crate) starts_ns: Option<(u64, u64)>,
}

const MAX_ROWS: usize = 1_000_000;
/// Waits shorter than this are polled rather than slept.
const MIN_SLEEP_NS: u64 = 50_000;
/// The worker thread's timer slack (the kernel's default is 50 µs): its sleeps end on time.
const TIMER_SLACK_NS: libc::c_ulong = 5_000;
const T1_MS: u64 = 500;
const REAP_MS: u64 = 4000;

struct MediaSockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

struct LegMedia {
    /// None when the recording has no media to send or receive (the port is only announced).
    socks: Option<MediaSockets>,
    local: SocketAddr,
    remote: Option<SocketAddr>,
    started: bool,
    stopped: bool,
    anchor_ns: u64,
    anchor_rec: Duration,
    next: usize,
    ssrc: u32,
    seq_off: u16,
    ts_off: u32,
    state: RtcpState,
    rx: RxStream,
    sent: u64,
    /// Passes of the recording completed (looped over the hold time).
    passes: u32,
    /// SDES-SRTP keys and contexts (None: plain RTP).
    srtp: Option<Box<sdes::LegSrtp>>,
}

struct Leg {
    generation: u32,
    seq: u32,
    side: Side,
    index: u64,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    peer: SocketAddr,
    local_sip: SocketAddr,
    initial_ruri: String,
    remote_target: Option<String>,
    routes: Vec<String>,
    cseq_off: u32,
    branches: Vec<(String, String)>,
    step: usize,
    last_ns: u64,
    answer_ns: Option<u64>,
    requests: Vec<Msg>,
    responses: Vec<(String, Vec<u8>)>,
    last_ack: Option<Vec<u8>>,
    retx: Option<(Vec<u8>, u64, String)>,
    scheduled_ns: u64,
    t18x: Option<u64>,
    t200: Option<u64>,
    finished: bool,
    failure: Option<String>,
    media: Option<LegMedia>,
    /// The leg's TCP/TLS connection.
    conn: Option<u32>,
    /// The last digest challenge the caller received (its kind and header value).
    challenge: Option<(ChallengeKind, String)>,
}

struct Worker {
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    id: usize,
    epfd: i32,
    uac_sock: Option<UdpSocket>,
    uas_sock: Option<UdpSocket>,
    legs: Vec<Option<Leg>>,
    free: Vec<u32>,
    generation: u32,
    by_callid: [HashMap<String, u32>; 2],
    ports: Vec<u16>,
    wheel: Wheel,
    rng: u64,
    active_uac: u64,
    result: ThreadResult,
    buf: Vec<u8>,
    /// RTP packets received since the last flush to `Shared::rtp_received`.
    rtp_received: u64,
    /// Per side: the recorded addresses in header values and what replaces them (see
    /// `rewrite_uac`), formatted once.
    rewrites: [Vec<(String, String)>; 2],
    /// The clock (ns since the epoch) read once per loop turn and after each wait.
    now: u64,
    listener: Option<std::net::TcpListener>,
    conns: Vec<Option<stream::Conn>>,
    free_conns: Vec<u32>,
    /// The connection whose message is being handled.
    cur_conn: Option<u32>,
    conn_opened: u64,
    conn_failures: u64,
    conn_overflows: u64,
}

/// The replacements of the recorded addresses for a leg whose own SIP address is `local`: the
/// recorded callee's address becomes the target, the recorded caller's `local`; bare IP addresses
/// too when the two recorded addresses differ in IP.
fn rewrites_for(t: &Template, target: SocketAddr, local: SocketAddr) -> Vec<(String, String)> {
    let mut v = vec![
        (t.sip_addr[1].to_string(), target.to_string()),
        (t.sip_addr[0].to_string(), local.to_string()),
    ];
    if t.sip_addr[0].ip() != t.sip_addr[1].ip() {
        v.push((t.sip_addr[1].ip().to_string(), target.ip().to_string()));
        v.push((t.sip_addr[0].ip().to_string(), local.ip().to_string()));
    }
    v
}

fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

fn epoll_add(epfd: i32, fd: i32, token: u64) {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: valid epoll fd and socket fd; `ev` lives across the call.
    unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
}

fn udp_bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// A SIP socket: its receive buffer as large as the system allows (bursts of calls, and a thread
/// busy with media for a few milliseconds, must not overflow it).
fn sip_bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<UdpSocket> {
    let s = udp_bind(addr, reuse_port)?;
    let s = Socket::from(s);
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    Ok(s.into())
}

/// Runs one thread: `starts` are (call index, scheduled time in ns since the epoch) of its calls.
pub(crate) fn run(
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    id: usize,
    starts: Vec<(u64, u64)>,
) -> Result<ThreadResult, String> {
    // SAFETY: plain syscall on this thread's own attribute (best effort: the default slack only
    // makes sleeps end later).
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0) };
    // SAFETY: plain syscall.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        return Err("epoll_create1 failed".into());
    }
    let uac_sock = if cfg.run_uac {
        let a = SocketAddr::new(cfg.uac_ip, cfg.uac_sip_base + id as u16);
        let s = sip_bind(a, false).map_err(|e| format!("UAC SIP socket {a}: {e}"))?;
        epoll_add(epfd, s.as_raw_fd(), 0);
        Some(s)
    } else {
        None
    };
    let uas_sock = match cfg.uas {
        Some(a) => {
            let s = sip_bind(a, true).map_err(|e| format!("UAS SIP socket {a}: {e}"))?;
            epoll_add(epfd, s.as_raw_fd(), 1);
            Some(s)
        }
        None => None,
    };
    let lo = cfg.media_base + id as u16 * cfg.media_ports_per_thread;
    let ports: Vec<u16> = (0..cfg.media_ports_per_thread / 2)
        .rev()
        .map(|i| lo + 2 * i)
        .collect();
    let mut w = Worker {
        wheel: Wheel::new(now_ns(cfg.epoch) / 1_000_000),
        cfg,
        shared,
        id,
        epfd,
        uac_sock,
        uas_sock,
        legs: Vec::new(),
        free: Vec::new(),
        generation: 0,
        by_callid: [HashMap::new(), HashMap::new()],
        ports,
        rng: 0x9e37_79b9_7f4a_7c15 ^ ((id as u64 + 1) << 32) ^ u64::from(std::process::id()),
        active_uac: 0,
        result: ThreadResult {
            rows: Vec::new(),
            setup_18x: crate::report::micros_histogram(),
            setup_200: crate::report::micros_histogram(),
            conn_opened: 0,
            conn_failures: 0,
            conn_overflows: 0,
            srtp_legs: 0,
            srtp_rejected: 0,
            srtp_early_dropped: 0,
            starts_ns: None,
        },
        buf: vec![0u8; 65_536],
        rtp_received: 0,
        rewrites: [Vec::new(), Vec::new()],
        now: 0,
        listener: None,
        conns: Vec::new(),
        free_conns: Vec::new(),
        cur_conn: None,
        conn_opened: 0,
        conn_failures: 0,
        conn_overflows: 0,
    };
    if let (true, Some(a)) = (w.cfg.stream(), w.cfg.uas) {
        let l = stream::listen(a).map_err(|e| format!("UAS TCP listener {a}: {e}"))?;
        epoll_add(w.epfd, l.as_raw_fd(), stream::LISTEN_TOKEN);
        w.listener = Some(l);
    }
    let uac_local = SocketAddr::new(w.cfg.uac_ip, w.cfg.uac_sip_base + id as u16);
    let uas_local = w.cfg.uas.unwrap_or(w.cfg.target);
    w.rewrites = [
        rewrites_for(&w.cfg.template, w.cfg.target, uac_local),
        rewrites_for(&w.cfg.template, w.cfg.target, uas_local),
    ];
    w.result
        .rows
        .reserve(starts.len().saturating_mul(2).min(MAX_ROWS));
    // Room for the legs alive at once (calls and callee legs kept until reaped), so that the
    // table does not move while the load rises.
    w.legs
        .reserve(starts.len().saturating_mul(2).clamp(64, 1 << 17));
    w.main_loop(starts);
    w.result.conn_opened = w.conn_opened;
    w.result.conn_failures = w.conn_failures;
    w.result.conn_overflows = w.conn_overflows;
    // SAFETY: our own fd.
    unsafe { libc::close(w.epfd) };
    Ok(w.result)
}

impl Worker {
    fn rand(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn token(&mut self) -> String {
        format!("{:016x}", self.rand())
    }

    fn main_loop(&mut self, starts: Vec<(u64, u64)>) {
        let per_thread_cap = self
            .cfg
            .max_concurrent
            .div_ceil(self.cfg.threads as u64)
            .max(1);
        let mut next_start = 0usize;
        let mut due = Vec::new();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut busy = false;
        loop {
            let now = now_ns(self.cfg.epoch);
            self.now = now;
            while next_start < starts.len()
                && starts[next_start].1 <= now
                && self.active_uac < per_thread_cap
            {
                let (idx, at) = starts[next_start];
                next_start += 1;
                self.start_call(idx, at, now);
            }
            due.clear();
            self.wheel.expire(now / 1_000_000, &mut due);
            for t in due.drain(..) {
                self.on_timer(t);
            }
            if self.rtp_received > 0 {
                self.shared
                    .rtp_received
                    .fetch_add(self.rtp_received, Ordering::Relaxed);
                self.rtp_received = 0;
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            // Sleep until the next timer's millisecond begins, the next call's start or 5 ms,
            // whichever comes first, to the nanosecond (epoll_pwait2): waiting in whole
            // milliseconds would poll through every millisecond that has a timer due in the next.
            let next_timer = self.wheel.next_due_ms(5).saturating_mul(1_000_000);
            let next_start_ns = starts.get(next_start).map_or(u64::MAX, |s| s.1);
            let wait_ns = next_timer
                .min(next_start_ns)
                .min(now.saturating_add(5_000_000))
                .saturating_sub(now_ns(self.cfg.epoch));
            // A wait shorter than a sleep's own cost (a context switch and the timer's slack)
            // is polled through, and so is the turn after one that had events (under load
            // the next ones are already there; the thread sleeps once a poll finds none).
            let wait_ns = if wait_ns < MIN_SLEEP_NS || busy {
                0
            } else {
                wait_ns
            };
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: wait_ns.min(999_999_999) as libc::c_long,
            };
            // SAFETY: `events` is a valid buffer of its length; `ts` lives across the call.
            let n = unsafe {
                libc::epoll_pwait2(
                    self.epfd,
                    events.as_mut_ptr(),
                    events.len() as i32,
                    &ts,
                    std::ptr::null(),
                )
            };
            busy = n > 0;
            // One clock reading for the batch of events (SIP timing is kept to the millisecond;
            // RTP arrivals read the clock per packet for jitter).
            self.now = now_ns(self.cfg.epoch);
            for ev in events.iter().take(n.max(0) as usize) {
                let token = ev.u64;
                self.on_readable(token);
            }
        }
    }

    fn alloc_leg(&mut self, leg: Leg) -> u32 {
        if let Some(i) = self.free.pop() {
            self.legs[i as usize] = Some(leg);
            i
        } else {
            self.legs.push(Some(leg));
            (self.legs.len() - 1) as u32
        }
    }

    fn arm(&mut self, slot: u32, kind: TimerKind, due_ms: u64) {
        let Some(leg) = self.legs[slot as usize].as_mut() else {
            return;
        };
        if matches!(kind, TimerKind::Step | TimerKind::Timeout) {
            leg.seq = leg.seq.wrapping_add(1);
        }
        let t = Timer {
            due_ms,
            leg: slot,
            generation: leg.generation,
            seq: leg.seq,
            kind,
        };
        self.wheel.insert(t);
    }

    fn new_leg(&mut self, side: Side, index: u64, scheduled_ns: u64, peer: SocketAddr) -> Leg {
        self.generation = self.generation.wrapping_add(1);
        let local_sip = match side {
            Side::Uac => SocketAddr::new(self.cfg.uac_ip, self.cfg.uac_sip_base + self.id as u16),
            Side::Uas => self.cfg.uas.unwrap_or(self.cfg.target),
        };
        let cseq_off = (self.rand() % 10_000) as u32;
        Leg {
            generation: self.generation,
            seq: 0,
            side,
            index,
            call_id: format!("{}-{}@loadtest", self.token(), index),
            local_tag: self.token(),
            remote_tag: None,
            peer,
            local_sip,
            initial_ruri: String::new(),
            remote_target: None,
            routes: Vec::new(),
            cseq_off,
            branches: Vec::new(),
            step: 0,
            last_ns: scheduled_ns,
            answer_ns: None,
            requests: Vec::new(),
            responses: Vec::new(),
            last_ack: None,
            retx: None,
            scheduled_ns,
            t18x: None,
            t200: None,
            finished: false,
            failure: None,
            media: None,
            conn: None,
            challenge: None,
        }
    }

    fn start_call(&mut self, index: u64, scheduled_ns: u64, now: u64) {
        let t = Arc::clone(&self.cfg.template);
        let mut leg = self.new_leg(Side::Uac, index, scheduled_ns, self.cfg.target);
        leg.initial_ruri = self.rewrite_uac(t.steps[0].msg.ruri(), &leg);
        leg.last_ns = now;
        let first = self.result.starts_ns.map_or(now, |(f, _)| f);
        self.result.starts_ns = Some((first, now));
        self.active_uac += 1;
        self.shared.attempted.fetch_add(1, Ordering::Relaxed);
        let cid = leg.call_id.clone();
        let slot = self.alloc_leg(leg);
        self.by_callid[0].insert(cid, slot);
        if self.cfg.stream() && !self.stream_connect(slot) {
            self.finish(slot, Some("connect failed".into()));
            return;
        }
        // The first step is the caller's: send it now (its recorded gap is from nothing).
        self.send_step(slot, now);
    }

    /// Recorded UAC/UAS addresses in a recorded header value, replaced by this leg's.
    fn rewrite_uac(&self, v: &str, leg: &Leg) -> String {
        let mut s = v.to_string();
        for (from, to) in &self.rewrites[leg.side.idx()] {
            if s.contains(from.as_str()) {
                s = s.replace(from.as_str(), to);
            }
        }
        s
    }

    /// Sends a SIP message of leg `slot` to its peer: over the leg's TCP/TLS connection, or from
    /// its side's UDP socket (a callee leg whose request came over UDP answers over UDP).
    fn send_sip(&mut self, slot: u32, bytes: &[u8]) {
        let Some(leg) = self.legs.get(slot as usize).and_then(Option::as_ref) else {
            return;
        };
        let (side, peer, conn) = (leg.side, leg.peer, leg.conn);
        if let Some(c) = conn {
            self.conn_send(c, bytes);
            return;
        }
        if self.cfg.stream() && side == Side::Uac {
            return;
        }
        if let Some(s) = self.sock(side) {
            let _ = s.send_to(bytes, peer);
        }
    }

    fn sock(&self, side: Side) -> Option<&UdpSocket> {
        match side {
            Side::Uac => self.uac_sock.as_ref(),
            Side::Uas => self.uas_sock.as_ref(),
        }
    }

    fn on_readable(&mut self, token: u64) {
        if token == stream::LISTEN_TOKEN {
            self.stream_accept();
            return;
        }
        if token & stream::CONN_TOKEN != 0 {
            self.stream_event((token & !stream::CONN_TOKEN) as u32);
            return;
        }
        for _ in 0..64 {
            let got = match token {
                0 | 1 => {
                    let side = if token == 0 { Side::Uac } else { Side::Uas };
                    let sock = match side {
                        Side::Uac => self.uac_sock.as_ref(),
                        Side::Uas => self.uas_sock.as_ref(),
                    };
                    let Some(s) = sock else { return };
                    let mut buf = std::mem::take(&mut self.buf);
                    let got = match s.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            if let Some(data) = buf.get(..n) {
                                self.on_sip(side, data, from);
                            }
                            true
                        }
                        Err(_) => false,
                    };
                    self.buf = buf;
                    got
                }
                _ => self.on_media(token),
            };
            if !got {
                return;
            }
        }
    }

    fn on_sip(&mut self, side: Side, data: &[u8], from: SocketAddr) {
        let Some(msg) = Msg::parse(data) else { return };
        let now = self.now;
        let known = self.by_callid[side.idx()]
            .get(msg.call_id())
            .copied()
            .filter(|s| side == Side::Uac || !self.is_new_transaction_after_end(*s, &msg));
        let slot = match known {
            Some(s) => s,
            None => {
                if side != Side::Uas || !msg.is_request() {
                    return;
                }
                let Some(entry) = self.uas_entry_step(&msg) else {
                    return;
                };
                let mut leg = self.new_leg(Side::Uas, 0, now, from);
                leg.call_id = msg.call_id().to_string();
                leg.remote_tag = msg.tag_from().map(str::to_string);
                leg.step = entry;
                self.shared.active_uas.fetch_add(1, Ordering::Relaxed);
                if entry > 0 {
                    self.close_continued_leg(entry);
                }
                let slot = self.alloc_leg(leg);
                self.by_callid[1].insert(msg.call_id().to_string(), slot);
                self.stream_bind_leg(slot);
                slot
            }
        };
        self.on_leg_msg(slot, msg, now);
    }

    /// A request on the Call-ID of a finished callee leg that is not a retransmission of one it
    /// answered: a new use of the Call-ID (a proxy or SBC keeps one Call-ID per registration
    /// toward its registrar and reuses it for the next REGISTER of the same binding).
    fn is_new_transaction_after_end(&self, slot: u32, msg: &Msg) -> bool {
        let Some(Some(leg)) = self.legs.get(slot as usize) else {
            return false;
        };
        leg.finished
            && msg.is_request()
            && msg.method() != "ACK"
            && !leg
                .requests
                .iter()
                .any(|r| r.cseq() == msg.cseq() && r.method() == msg.method())
    }

    /// The template step a callee leg starts at for a request on an unknown Call-ID: the first
    /// recorded caller's request of that method and, when several, the one that carries
    /// credentials when this one does (a REGISTER answering a challenge may come on another
    /// Call-ID than the challenged one when a B2BUA relays it); `None` for a request the
    /// recording does not start a transaction with.
    fn uas_entry_step(&self, msg: &Msg) -> Option<usize> {
        let t = &self.cfg.template;
        if msg.method() == t.steps[0].msg.method() && !has_credentials(msg) {
            return Some(0);
        }
        let auth = has_credentials(msg);
        let k = t.steps.iter().position(|s| {
            s.from == Side::Uac
                && s.msg.is_request()
                && s.msg.method() == msg.method()
                && s.msg.to_tag().is_none()
                && has_credentials(&s.msg) == auth
        });
        match k {
            Some(k) => Some(k),
            None => (msg.method() == t.steps[0].msg.method()).then_some(0),
        }
    }

    /// A callee leg waiting for step `entry`, which has just arrived on another Call-ID: that leg's
    /// part is done (its challenge was answered), so it ends without a failure.
    fn close_continued_leg(&mut self, entry: usize) {
        let waiting = self
            .legs
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.as_ref().map(|l| (i, l)))
            .filter(|(_, l)| l.side == Side::Uas && !l.finished && l.step == entry)
            .min_by_key(|(_, l)| l.last_ns)
            .map(|(i, _)| i as u32);
        if let Some(slot) = waiting {
            self.finish(slot, None);
        }
    }

    fn on_leg_msg(&mut self, slot: u32, msg: Msg, now: u64) {
        let t = Arc::clone(&self.cfg.template);
        let Some(leg) = self.legs[slot as usize].as_mut() else {
            return;
        };
        let me = leg.side;
        if msg.is_request() {
            // A retransmitted request: answer again with what we answered.
            if leg
                .requests
                .iter()
                .any(|r| r.cseq() == msg.cseq() && r.method() == msg.method())
                && msg.method() != "ACK"
            {
                let again = leg
                    .responses
                    .iter()
                    .rev()
                    .find(|(m, _)| m == msg.method())
                    .map(|(_, b)| b.clone());
                if let Some(bytes) = again {
                    self.send_sip(slot, &bytes);
                }
                return;
            }
            if msg.method() == "ACK" {
                leg.retx = None;
            }
            if let Some(c) = msg.contact_uri() {
                leg.remote_target = Some(c.to_string());
            }
            if me == Side::Uas && leg.requests.is_empty() {
                leg.routes = msg
                    .headers_named("Record-Route")
                    .map(str::to_string)
                    .collect();
            }
            leg.requests.retain(|r| r.method() != msg.method());
            leg.requests.push(msg.clone());
        } else {
            if leg.retx.as_ref().is_some_and(|(_, _, m)| {
                m == msg.method() && (msg.status() >= 200 || m == "INVITE")
            }) {
                leg.retx = None;
            }
            if msg.method() == "INVITE" && msg.status() > 100 && msg.status() < 300 {
                if leg.remote_tag.is_none() {
                    leg.remote_tag = msg.to_tag().map(str::to_string);
                }
                if let Some(c) = msg.contact_uri() {
                    leg.remote_target = Some(c.to_string());
                }
                if msg.status() >= 200 {
                    let mut rr: Vec<String> = msg
                        .headers_named("Record-Route")
                        .map(str::to_string)
                        .collect();
                    rr.reverse();
                    leg.routes = rr;
                }
                if me == Side::Uac && leg.t18x.is_none() && msg.status() < 200 {
                    leg.t18x = Some(now);
                }
                if me == Side::Uac && leg.t200.is_none() && msg.status() >= 200 {
                    leg.t200 = Some(now);
                }
            } else if msg.method() == "INVITE" && msg.status() >= 300 && me == Side::Uac {
                leg.remote_tag = msg.to_tag().map(str::to_string).or(leg.remote_tag.take());
            }
            if let Some(kind) = ChallengeKind::from_status(msg.status()) {
                if let Some(v) = msg.header(kind.challenge_header()) {
                    leg.challenge = Some((kind, v.to_string()));
                }
            }
        }
        // The remote media address, read once (kept now when the media is allocated, else when
        // the message matches its step below).
        let remote_sdp = msg.has_sdp().then(|| sdp_audio(&msg.body)).flatten();
        if let (Some(a), Some(m)) = (remote_sdp, leg.media.as_mut()) {
            m.remote = Some(a);
        }
        // Match the next expected step; provisional responses may be skipped or absent.
        let mut k = leg.step;
        let mut matched = None;
        while k < t.steps.len() && t.steps[k].from != me {
            let s = &t.steps[k].msg;
            if s.is_request() == msg.is_request()
                && s.method() == msg.method()
                && s.status() == msg.status()
            {
                matched = Some(k);
                break;
            }
            if !s.is_request() && s.status() < 200 {
                k += 1;
                continue;
            }
            break;
        }
        if let (Some(k), Side::Uas, Some(d)) = (matched, me, self.cfg.digest.as_ref()) {
            if let Err(why) = digest_check(d, &t, k, &msg, now / 1_000_000) {
                let forbidden = Msg {
                    start: "SIP/2.0 403 Forbidden".into(),
                    headers: vec![("CSeq".into(), format!("1 {}", msg.method()))],
                    body: Vec::new(),
                };
                let bytes = self.build_response(slot, &forbidden);
                if let Some(l) = self.legs[slot as usize].as_mut() {
                    l.responses.push((msg.method().to_string(), bytes.clone()));
                }
                self.send_sip(slot, &bytes);
                self.finish(slot, Some(format!("digest: {why}")));
                return;
            }
        }
        let Some(leg) = self.legs[slot as usize].as_mut() else {
            return;
        };
        match matched {
            Some(k) => {
                leg.step = k + 1;
                leg.last_ns = now;
                if t.answer_step() == Some(k) {
                    leg.answer_ns = Some(now);
                }
                if let Some(a) = remote_sdp {
                    self.ensure_media(slot);
                    if let Some(Some(l)) = self.legs.get_mut(slot as usize) {
                        if let Some(m) = l.media.as_mut() {
                            m.remote = Some(a);
                        }
                    }
                    if let Err(why) = self.remote_keys(slot, me, &msg.body) {
                        self.finish(slot, Some(why.into()));
                        return;
                    }
                }
                if t.media_start[me.idx()] == Some(k) {
                    self.start_media(slot, now);
                }
                if msg.is_request() && msg.method() == "BYE" {
                    self.stop_media(slot);
                }
                self.schedule_next(slot, now);
            }
            None => {
                if msg.is_request() || msg.status() < 200 {
                    return;
                }
                // A final response the recording did not have.
                if msg.method() == "INVITE" && msg.status() >= 300 {
                    let ack = self.build_ack_for_failure(slot, &msg);
                    self.send_sip(slot, &ack);
                } else if msg.method() == "INVITE" && leg_has_200(self.legs[slot as usize].as_ref())
                {
                    // A 2xx retransmission: ACK it again (or, before the ACK's recorded gap has
                    // passed, let the ACK about to go answer it).
                    if let Some(ack) = self.legs[slot as usize]
                        .as_ref()
                        .and_then(|l| l.last_ack.clone())
                    {
                        self.send_sip(slot, &ack);
                    }
                    return;
                }
                let reason = format!("{} {}", msg.status(), msg.method());
                self.finish(slot, Some(reason));
            }
        }
    }

    fn schedule_next(&mut self, slot: u32, now: u64) {
        let t = Arc::clone(&self.cfg.template);
        let Some(leg) = self.legs[slot as usize].as_ref() else {
            return;
        };
        if leg.step >= t.steps.len() {
            self.finish(slot, None);
            return;
        }
        let step = &t.steps[leg.step];
        if step.from == leg.side {
            let gap = step.at.saturating_sub(t.steps[leg.step - 1].at);
            let mut due = leg.last_ns + gap.as_nanos() as u64;
            if let (Some(hold), Some(ans), true) =
                (self.cfg.hold, leg.answer_ns, t.bye_step() == Some(leg.step))
            {
                due = ans + hold.as_nanos() as u64;
            }
            self.arm(slot, TimerKind::Step, due / 1_000_000);
        } else {
            // The peer's message is due after its recorded gap (or the hold time): the timeout
            // runs from then.
            let gap = step
                .at
                .saturating_sub(t.steps[leg.step.saturating_sub(1)].at);
            let hold = self.cfg.hold.unwrap_or(Duration::ZERO);
            let due = now + (gap + hold + self.cfg.timeout).as_nanos() as u64;
            self.arm(slot, TimerKind::Timeout, due / 1_000_000);
        }
    }

    fn on_timer(&mut self, t: Timer) {
        let Some(Some(leg)) = self.legs.get(t.leg as usize) else {
            return;
        };
        if leg.generation != t.generation {
            return;
        }
        let now = self.now;
        match t.kind {
            TimerKind::Step if leg.seq == t.seq && !leg.finished => self.send_step(t.leg, now),
            TimerKind::Timeout if leg.seq == t.seq && !leg.finished => {
                let tpl = &self.cfg.template;
                let what = tpl
                    .steps
                    .get(leg.step)
                    .map_or("?".into(), |s| s.msg.start.clone());
                self.finish(t.leg, Some(format!("timeout waiting for {what}")));
            }
            TimerKind::Retransmit => self.retransmit(t.leg),
            TimerKind::Media => self.send_media(t.leg, now),
            TimerKind::Reap => self.reap(t.leg),
            _ => {}
        }
    }

    fn retransmit(&mut self, slot: u32) {
        let Some(leg) = self.legs[slot as usize].as_mut() else {
            return;
        };
        if leg.finished {
            return;
        }
        let Some((bytes, interval, _)) = leg.retx.as_mut() else {
            return;
        };
        let next = (*interval * 2).min(4000);
        *interval = next;
        let bytes = bytes.clone();
        self.send_sip(slot, &bytes);
        let due = now_ns(self.cfg.epoch) / 1_000_000 + next;
        self.arm(slot, TimerKind::Retransmit, due);
    }

    fn branch_for(&mut self, slot: u32, recorded: &str) -> String {
        let fresh = format!("z9hG4bK{}", self.token());
        let Some(leg) = self.legs[slot as usize].as_mut() else {
            return fresh;
        };
        if let Some((_, b)) = leg.branches.iter().find(|(r, _)| r == recorded) {
            return b.clone();
        }
        leg.branches.push((recorded.to_string(), fresh.clone()));
        fresh
    }

    fn send_step(&mut self, slot: u32, now: u64) {
        let t = Arc::clone(&self.cfg.template);
        let Some(leg) = self.legs[slot as usize].as_ref() else {
            return;
        };
        let idx = leg.step;
        let Some(step) = t.steps.get(idx) else { return };
        let rec = &step.msg;
        if rec.has_sdp() {
            self.ensure_media(slot);
        }
        let bytes = if rec.is_request() {
            let branch = self.branch_for(slot, rec.branch().unwrap_or(""));
            self.build_request(slot, rec, &branch)
        } else {
            self.build_response(slot, rec)
        };
        let Some(leg) = self.legs[slot as usize].as_mut() else {
            return;
        };
        let side = leg.side;
        if rec.is_request() {
            if rec.method() == "ACK" {
                leg.last_ack = Some(bytes.clone());
            } else {
                leg.retx = Some((bytes.clone(), T1_MS, rec.method().to_string()));
            }
        } else {
            leg.responses
                .push((rec.method().to_string(), bytes.clone()));
            if rec.method() == "INVITE" && rec.status() >= 200 && rec.status() < 300 {
                leg.retx = Some((bytes.clone(), T1_MS, "ACK".into()));
            }
        }
        leg.step = idx + 1;
        leg.last_ns = now;
        if t.answer_step() == Some(idx) {
            leg.answer_ns = Some(now);
        }
        // Over TCP and TLS (reliable) nothing is retransmitted.
        let arm_retx =
            leg.retx.is_some() && (rec.is_request() || rec.status() >= 200) && leg.conn.is_none();
        self.send_sip(slot, &bytes);
        if arm_retx {
            self.arm(slot, TimerKind::Retransmit, now / 1_000_000 + T1_MS);
        }
        if rec.is_request() && rec.method() == "BYE" {
            self.stop_media(slot);
        }
        if t.media_start[side.idx()] == Some(idx) {
            self.start_media(slot, now);
        }
        self.schedule_next(slot, now);
    }

    fn finish(&mut self, slot: u32, failure: Option<String>) {
        let t = Arc::clone(&self.cfg.template);
        let Some(leg) = self.legs[slot as usize].as_mut() else {
            return;
        };
        if leg.finished {
            return;
        }
        leg.finished = true;
        leg.failure = failure;
        if let Some(m) = leg.media.as_mut() {
            m.stopped = true;
        }
        let ms = |a: Option<u64>| a.map(|x| x.saturating_sub(leg.scheduled_ns) as f64 / 1e6);
        let peer = leg.side.peer();
        let (sent, rx, jit) = leg
            .media
            .as_ref()
            .map_or((0, RxStream::default(), 0.0), |m| {
                (m.sent, m.rx.clone(), m.rx.jitter_ms(t.clock_rate))
            });
        let expects_rtp = t.rtp_count(peer) > 0;
        let loss_pct = if rx.expected() > 0 {
            rx.lost() as f64 * 100.0 / rx.expected() as f64
        } else if expects_rtp {
            100.0
        } else {
            0.0
        };
        let mut failure = leg.failure.clone();
        if failure.is_none() && expects_rtp && rx.received == 0 {
            failure = Some("no RTP received".into());
        }
        if failure.is_none() && rx.mismatched > 0 {
            failure = Some("RTP payload not as recorded".into());
        }
        let digits_ok =
            (!t.digits[peer.idx()].is_empty()).then(|| rx.digits == t.digits[peer.idx()]);
        if failure.is_none() && digits_ok == Some(false) {
            failure = Some("DTMF digits not as sent".into());
        }
        let srtp = leg
            .media
            .as_ref()
            .and_then(|m| m.srtp.as_ref())
            .map(|s| (s.rejected, s.rx.is_some() && sent > 0, s.early_dropped));
        if failure.is_none() && srtp.is_some_and(|(r, _, _)| r > 0) {
            failure = Some("SRTP packets refused".into());
        }
        let row = Row {
            role: if leg.side == Side::Uac { "uac" } else { "uas" },
            index: leg.index,
            call_id: leg.call_id.clone(),
            failure: failure.clone(),
            t18x_ms: ms(leg.t18x),
            t200_ms: ms(leg.t200),
            rtp_sent: sent,
            rtp_received: rx.received,
            rtp_expected: rx.expected(),
            rtp_lost: rx.lost(),
            jitter_ms: jit,
            rtt_ms: rx.rtt_ms(),
            mos: expects_rtp.then(|| mos(rx.rtt_ms().unwrap_or(0.0), jit, loss_pct)),
            mismatched: rx.mismatched,
            digits_ok,
            rtp_stray: rx.stray,
        };
        if let Some(m) = row.mos {
            self.shared
                .mos_centi
                .fetch_add((m * 100.0).round() as u64, Ordering::Relaxed);
            self.shared.mos_legs.fetch_add(1, Ordering::Relaxed);
        }
        if let Some((rejected, both, early)) = srtp {
            self.result.srtp_rejected += rejected;
            self.result.srtp_early_dropped += early;
            self.result.srtp_legs += u64::from(both);
        }
        if leg.side == Side::Uac {
            self.active_uac = self.active_uac.saturating_sub(1);
            if let Some(v) = row.t18x_ms {
                let _ = self.result.setup_18x.record(((v * 1000.0) as u64).max(1));
            }
            if let Some(v) = row.t200_ms {
                let _ = self.result.setup_200.record(((v * 1000.0) as u64).max(1));
            }
            if failure.is_none() {
                self.shared.answered.fetch_add(1, Ordering::Relaxed);
            } else {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
            }
            self.shared.done.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared.active_uas.fetch_sub(1, Ordering::Relaxed);
        }
        if self.result.rows.len() < MAX_ROWS {
            self.result.rows.push(row);
        }
        // A finished leg only answers retransmissions: keep what that needs (each request's
        // CSeq, the responses sent, the last ACK), not the whole messages.
        if let Some(l) = self.legs[slot as usize].as_mut() {
            for r in &mut l.requests {
                r.headers.retain(|(n, _)| n.eq_ignore_ascii_case("CSeq"));
                r.headers.shrink_to_fit();
                r.body = Vec::new();
            }
            l.routes = Vec::new();
            l.branches = Vec::new();
            l.retx = None;
        }
        // The media ports go back at once: a finished leg only answers SIP retransmissions.
        let media = self.legs[slot as usize]
            .as_mut()
            .and_then(|l| l.media.take());
        if let Some(m) = media {
            self.ports.push(m.local.port());
        }
        // The caller closes its connection at its end.
        if self.legs[slot as usize]
            .as_ref()
            .is_some_and(|l| l.side == Side::Uac)
        {
            self.stream_release(slot);
        }
        let due = now_ns(self.cfg.epoch) / 1_000_000 + REAP_MS;
        self.arm(slot, TimerKind::Reap, due);
    }

    fn reap(&mut self, slot: u32) {
        self.stream_release(slot);
        if let Some(leg) = self.legs[slot as usize].take() {
            // The Call-ID may have passed to a newer leg (see `is_new_transaction_after_end`).
            let map = &mut self.by_callid[leg.side.idx()];
            if map.get(&leg.call_id) == Some(&slot) {
                map.remove(&leg.call_id);
            }
            if let Some(m) = leg.media {
                self.ports.push(m.local.port());
            }
            self.free.push(slot);
        }
    }
}

impl Worker {
    /// The keys of a remote SDP: a caller that offered SRTP needs them in the answer; a callee
    /// offered SRTP answers with its own key (see `sdes`).
    fn remote_keys(&mut self, slot: u32, me: Side, body: &[u8]) -> Result<(), &'static str> {
        let Some(m) = self
            .legs
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .and_then(|l| l.media.as_mut())
        else {
            return Ok(());
        };
        // A plain leg given a plain SDP (the common case) needs no SDP scan.
        if m.srtp.is_none() && !body.windows(9).any(|w| w == b"a=crypto:") {
            return Ok(());
        }
        let remote = remote_crypto(body);
        match (remote, m.srtp.as_mut()) {
            (Some((_, key)), Some(s)) => s
                .set_remote(&key)
                .then_some(())
                .ok_or("SRTP: unusable remote key")?,
            (Some((tag, key)), None) if me == Side::Uas => {
                let mut s = sdes::LegSrtp::new(tag).ok_or("SRTP: no key")?;
                if !s.set_remote(&key) {
                    return Err("SRTP: unusable remote key");
                }
                m.srtp = Some(s);
            }
            (None, Some(_)) => return Err("SRTP offer answered without a=crypto"),
            _ => {}
        }
        self.srtp_take_pending(slot);
        Ok(())
    }
}

/// The callee's check of a request matching step `k`: when the recorded request carries
/// credentials, this one's must be right (see `auth`).
fn digest_check(
    d: &DigestSetup,
    t: &Template,
    k: usize,
    msg: &Msg,
    now_ms: u64,
) -> Result<(), &'static str> {
    let Some(rec) = t.steps.get(k).map(|s| &s.msg) else {
        return Ok(());
    };
    for kind in [ChallengeKind::Www, ChallengeKind::Proxy] {
        if rec.header(kind.credentials_header()).is_none() {
            continue;
        }
        // The recorded challenge this request answered (its realm).
        let recorded = t.steps[..k]
            .iter()
            .rev()
            .find_map(|s| s.msg.header(kind.challenge_header()))
            .unwrap_or("");
        let got = msg
            .header(kind.credentials_header())
            .ok_or("no credentials")?;
        d.verify(kind, recorded, got, msg.method(), now_ms)?;
    }
    Ok(())
}

/// Whether a request carries digest credentials.
fn has_credentials(msg: &Msg) -> bool {
    msg.header("Authorization").is_some() || msg.header("Proxy-Authorization").is_some()
}

/// Whether the leg has had the 2xx to its INVITE (as caller) or sent it (as callee).
fn leg_has_200(leg: Option<&Leg>) -> bool {
    leg.is_some_and(|l| l.t200.is_some() || l.answer_ns.is_some())
}

impl Leg {
    fn requests_sent_invite(&self) -> Option<&str> {
        (!self.initial_ruri.is_empty()).then_some(self.initial_ruri.as_str())
    }
}
