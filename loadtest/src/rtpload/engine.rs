//! The generator and sink: one UDP socket per call leg endpoint, all driven by one io_uring.
//!
//! Sending: stream `s` (= 2 × call + leg) is sent by endpoint socket `s` to the relay's port for its
//! leg. The active streams share one schedule: slot `g` is due at `start + g × ptime / S` and belongs
//! to stream `g mod S`, so the S streams' phases are spread evenly over the packet time. Due packets
//! are queued as `sendmsg` SQEs and submitted in batches of at most `batch` (one `io_uring_enter`
//! each), the loop sleeping at least `tick` between bursts so that batches form.
//!
//! Receiving: a multishot `recvmsg` on every socket over one provided-buffer ring; with the default
//! kernel clock each datagram carries its `SO_TIMESTAMPNS` receive time (`CLOCK_REALTIME`, taken
//! when the relay's send delivered it to our socket), so the generator's own wake-up delay is not
//! counted as relay latency. The RTP payload carries the run id, the stream id, the measurement
//! window it was sent in, a per-stream packet index and the send times (`CLOCK_MONOTONIC` and
//! `CLOCK_REALTIME`): loss, duplicates and reordering are counted per stream by index, latency by
//! the send time.

use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use hdrhistogram::Histogram;
use io_uring::types::{Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use media_plane::srtp::{Reject, SrtpContext, Suite};
use sbc_bufring::BufRing;

use super::sys::{mono_ns, real_ns};

pub(crate) const RTP_HEADER: usize = 12;
/// One 20 ms G.711 frame.
pub(crate) const PAYLOAD: usize = 160;
pub(crate) const PACKET: usize = RTP_HEADER + PAYLOAD;
/// Room for an SRTP packet: the RTP packet and the largest tag.
const WIRE: usize = PACKET + 20;
/// Samples per packet (8 kHz × 20 ms): the RTP timestamp step.
const TS_STEP: u32 = 160;
const MAGIC: [u8; 4] = *b"RLD1";
// Offsets of our fields inside the payload.
const OFF_MAGIC: usize = RTP_HEADER;
const OFF_RUN: usize = RTP_HEADER + 4;
const OFF_STREAM: usize = RTP_HEADER + 8;
const OFF_TAG: usize = RTP_HEADER + 12;
const OFF_INDEX: usize = RTP_HEADER + 16;
const OFF_MONO: usize = RTP_HEADER + 24;
const OFF_REAL: usize = RTP_HEADER + 32;
const FIELDS_END: usize = RTP_HEADER + 40;
/// µ-law silence.
const PCMU_SILENCE: u8 = 0xff;

const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 65_536;
/// Provided receive buffers (a power of two) and their size.
const RX_BUFFERS: u16 = 8192;
const RX_BUF_SIZE: usize = 512;
/// Room for one `SCM_TIMESTAMPNS` control message (CMSG_SPACE(16) = 32) with margin.
const CONTROL_LEN: usize = 64;
const BGID: u16 = 7;

const UD_RECV: u64 = 1 << 40;
const UD_SEND: u64 = 2 << 40;
const UD_KIND: u64 = 0xff << 40;

/// Latency histogram range: 1 ns to 100 s, 3 significant digits.
const HIST_MAX_NS: u64 = 100_000_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RxClock {
    /// Kernel receive timestamps (`SO_TIMESTAMPNS`) against the `CLOCK_REALTIME` send time.
    Kernel,
    /// `CLOCK_MONOTONIC` read when the generator handles the completion, against the monotonic send
    /// time: includes the generator's own delay in picking the datagram up.
    User,
}

pub(crate) struct EngineConfig {
    pub(crate) ptime_ns: u64,
    pub(crate) batch: usize,
    pub(crate) tick_ns: u64,
    pub(crate) rx_clock: RxClock,
    pub(crate) run_id: u32,
    /// `connect()` each endpoint to its relay port: cheaper sends, but only datagrams from that
    /// address are received (the relay must send each leg from the port it receives it on).
    pub(crate) connect: bool,
}

/// One sending endpoint's packet, kept at a fixed address while the kernel may read it.
struct TxSlot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    dst: libc::sockaddr_in,
    pkt: [u8; PACKET],
    /// The packet as sent when the stream is SRTP: `pkt` protected.
    wire: [u8; WIRE],
    /// Protects what this endpoint sends (its own key); `None`: plain RTP.
    srtp: Option<SrtpContext>,
    in_flight: bool,
    /// Packets sent so far (the next packet's index).
    index: u64,
    seq0: u16,
    ts0: u32,
    /// Packets sent in the current measurement window.
    win_tx: u32,
}

#[derive(Default, Clone, Copy)]
struct RxState {
    /// Highest packet index seen + 1 (0: none yet).
    highest: u64,
    /// Bit k: index `highest - 1 - k` was seen.
    seen: u64,
    /// Latest arrival time (receive clock).
    last_rx: u64,
    /// Send time of the packet that arrived last (same clock).
    last_tx: u64,
    /// Packets of the current window received.
    win_rx: u32,
}

/// What one measurement window counted.
pub(crate) struct Window {
    pub(crate) tag: u32,
    /// Window start in the receive clock.
    start_rx: u64,
    pub(crate) start_mono: u64,
    pub(crate) end_mono: u64,
    /// Slots due in the window (what a perfect generator would have sent).
    pub(crate) scheduled: u64,
    pub(crate) sent: u64,
    pub(crate) send_errors: u64,
    /// Slots whose previous packet was still in the kernel: not sent.
    pub(crate) skipped: u64,
    /// Distinct packets of the window received.
    pub(crate) received: u64,
    pub(crate) duplicates: u64,
    /// Arrived after a later packet of the same stream.
    pub(crate) reordered: u64,
    pub(crate) latency: Histogram<u64>,
    /// Largest time between two consecutive arrivals of one stream, both inside the window.
    pub(crate) max_gap_ns: u64,
    /// Largest amount by which such a gap exceeded the gap between the two packets' sends: the part
    /// of a stall the relay caused, the generator's own send delays taken out.
    pub(crate) max_relay_gap_ns: u64,
    /// Largest delay between a packet's due time and its send.
    pub(crate) max_send_lag_ns: u64,
    /// Streams that sent in the window and received nothing of it.
    pub(crate) silent_streams: u64,
}

impl Window {
    fn new(tag: u32, start_rx: u64, start_mono: u64, latency: Histogram<u64>) -> Self {
        Self {
            tag,
            start_rx,
            start_mono,
            end_mono: start_mono,
            scheduled: 0,
            sent: 0,
            send_errors: 0,
            skipped: 0,
            received: 0,
            duplicates: 0,
            reordered: 0,
            latency,
            max_gap_ns: 0,
            max_relay_gap_ns: 0,
            max_send_lag_ns: 0,
            silent_streams: 0,
        }
    }
}

/// Counters over the whole run.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct Totals {
    pub(crate) sent: u64,
    pub(crate) received: u64,
    /// Datagrams that are not ours (other run, unknown stream, too short).
    pub(crate) foreign: u64,
    /// Ours, but on another endpoint than the one the stream's other leg owns.
    pub(crate) misrouted: u64,
    pub(crate) no_buffers: u64,
    pub(crate) recv_errors: u64,
    pub(crate) truncated: u64,
    pub(crate) no_kernel_timestamp: u64,
    /// SRTP packets received whose tag did not verify (dropped: counted as lost).
    pub(crate) srtp_auth_failed: u64,
    /// SRTP packets refused otherwise (replayed, malformed; dropped).
    pub(crate) srtp_rejected: u64,
    /// Packets the endpoint could not protect (not sent).
    pub(crate) srtp_protect_failed: u64,
}

/// The SRTP keys of one endpoint: it sends with `own` and receives what the relay protected with
/// `relay` (both [`Suite::AesCm128HmacSha1_80`], key||salt).
pub(crate) struct EndpointSrtp<'k> {
    pub(crate) own: &'k [u8],
    pub(crate) relay: &'k [u8],
}

pub(crate) struct Engine {
    // Field order matters: the ring (and its registrations and armed receives) goes before the
    // buffers, sockets and packet slots it points into.
    ring: IoUring,
    bufs: BufRing,
    rx_hdr: Box<libc::msghdr>,
    socks: Vec<UdpSocket>,
    #[allow(clippy::vec_box)] // boxed: the kernel holds pointers into a slot while the Vec grows
    tx: Vec<Box<TxSlot>>,
    rx: Vec<RxState>,
    /// Per endpoint socket: unprotects what it receives when its leg is SRTP.
    rx_srtp: Vec<Option<Box<SrtpContext>>>,
    /// Where a received SRTP packet is unprotected (the provided buffers are read-only).
    scratch: Box<[u8; RX_BUF_SIZE]>,
    cfg: EngineConfig,
    active: usize,
    sched_start: u64,
    g: u64,
    /// Window tag given to packets due in `[tag_from, tag_until)` (0: not measuring).
    tag: u32,
    tag_from: u64,
    tag_until: u64,
    win: Window,
    totals: Totals,
    cqes: Vec<(u64, i32, u32)>,
    /// An empty latency histogram, cloned for each window.
    empty_hist: Histogram<u64>,
    rng: u64,
}

fn new_ring() -> io::Result<IoUring> {
    // Deferred task work: receive completions are produced in batches when the loop waits, not by
    // interrupting it.
    IoUring::builder()
        .setup_cqsize(CQ_ENTRIES)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(SQ_ENTRIES)
        .or_else(|_| {
            IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .build(SQ_ENTRIES)
        })
}

impl Engine {
    pub(crate) fn new(cfg: EngineConfig) -> Result<Self, String> {
        let ring = new_ring().map_err(|e| format!("io_uring setup: {e}"))?;
        let bufs = BufRing::register(&ring, BGID, RX_BUFFERS, RX_BUF_SIZE)
            .map_err(|e| format!("io_uring buffer ring: {e}"))?;
        // SAFETY (zeroed): plain C structure; only the name and control lengths matter.
        let mut rx_hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        rx_hdr.msg_namelen = 0;
        rx_hdr.msg_controllen = if cfg.rx_clock == RxClock::Kernel {
            CONTROL_LEN
        } else {
            0
        };
        let empty_hist = Histogram::new_with_bounds(1, HIST_MAX_NS, 3)
            .map_err(|e| format!("latency histogram: {e}"))?;
        let seed = real_ns() ^ (u64::from(std::process::id()) << 32);
        Ok(Self {
            ring,
            bufs,
            rx_hdr,
            socks: Vec::new(),
            tx: Vec::new(),
            rx: Vec::new(),
            rx_srtp: Vec::new(),
            scratch: Box::new([0; RX_BUF_SIZE]),
            active: 0,
            sched_start: 0,
            g: 0,
            tag: 0,
            tag_from: 0,
            tag_until: 0,
            win: Window::new(0, 0, 0, empty_hist.clone()),
            totals: Totals::default(),
            cqes: Vec::with_capacity(4096),
            empty_hist,
            rng: seed | 1,
            cfg,
        })
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: SSRCs and initial sequence numbers only.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn totals(&self) -> Totals {
        self.totals
    }

    /// Adds one stream: an endpoint socket bound to `local` that sends to `dst` (the relay's port
    /// for its leg) and receives the other leg, in SRTP with `srtp`'s keys when given. Stream ids
    /// are given in order.
    pub(crate) fn add_stream(
        &mut self,
        local: SocketAddrV4,
        dst: SocketAddrV4,
        srtp: Option<EndpointSrtp<'_>>,
    ) -> Result<(), String> {
        let suite = Suite::AesCm128HmacSha1_80;
        let (tx_ctx, rx_ctx) = match srtp {
            Some(k) => (
                Some(SrtpContext::new(suite, k.own).map_err(|e| format!("SRTP key: {e}"))?),
                Some(Box::new(
                    SrtpContext::new(suite, k.relay).map_err(|e| format!("SRTP key: {e}"))?,
                )),
            ),
            None => (None, None),
        };
        let sock = UdpSocket::bind(local).map_err(|e| format!("bind {local}: {e}"))?;
        sock.set_nonblocking(true)
            .map_err(|e| format!("nonblocking {local}: {e}"))?;
        if self.cfg.connect {
            sock.connect(dst)
                .map_err(|e| format!("connect {local} to {dst}: {e}"))?;
        }
        if self.cfg.rx_clock == RxClock::Kernel {
            let one: libc::c_int = 1;
            // SAFETY: valid option pointer and length for an int option.
            let rc = unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_TIMESTAMPNS,
                    (&one as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as u32,
                )
            };
            if rc < 0 {
                return Err(format!("SO_TIMESTAMPNS: {}", io::Error::last_os_error()));
            }
        }
        let id = self.tx.len() as u32;
        let ssrc = self.random() as u32;
        let r = self.random();
        let mut slot = Box::new(TxSlot {
            // SAFETY (zeroed): plain C structure, pointed at the slot's own fields below.
            hdr: unsafe { std::mem::zeroed() },
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: PACKET,
            },
            dst: libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: dst.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*dst.ip()).to_be(),
                },
                sin_zero: [0; 8],
            },
            pkt: [PCMU_SILENCE; PACKET],
            wire: [0; WIRE],
            srtp: tx_ctx,
            in_flight: false,
            index: 0,
            seq0: r as u16,
            ts0: (r >> 16) as u32,
            win_tx: 0,
        });
        slot.iov.iov_base = if slot.srtp.is_some() {
            slot.wire.as_mut_ptr().cast()
        } else {
            slot.pkt.as_mut_ptr().cast()
        };
        slot.hdr.msg_iov = &mut slot.iov;
        slot.hdr.msg_iovlen = 1;
        slot.hdr.msg_name = (&mut slot.dst as *mut libc::sockaddr_in).cast();
        slot.hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
        let p = &mut slot.pkt;
        p[0] = 0x80; // V=2, no padding, no extension, no CSRC
        p[1] = 0; // PT 0 (PCMU)
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(&MAGIC);
        p[OFF_RUN..OFF_RUN + 4].copy_from_slice(&self.cfg.run_id.to_le_bytes());
        p[OFF_STREAM..OFF_STREAM + 4].copy_from_slice(&id.to_le_bytes());
        self.socks.push(sock);
        self.tx.push(slot);
        self.rx.push(RxState::default());
        self.rx_srtp.push(rx_ctx);
        let i = self.socks.len() - 1;
        self.arm_recv(i)
    }

    fn arm_recv(&mut self, i: usize) -> Result<(), String> {
        let fd = self.socks[i].as_raw_fd();
        let sqe = opcode::RecvMsgMulti::new(Fd(fd), &*self.rx_hdr, BGID)
            .build()
            .user_data(UD_RECV | i as u64);
        self.push_sqe(&sqe)
    }

    fn push_sqe(&mut self, sqe: &squeue::Entry) -> Result<(), String> {
        loop {
            // SAFETY: every buffer an SQE points to (msghdr templates, packet slots, the buffer ring)
            // is owned by the engine and outlives the operation.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            self.ring
                .submit()
                .map_err(|e| format!("io_uring submit: {e}"))?;
        }
    }

    /// Makes the first `streams` streams send, on a fresh schedule starting now.
    pub(crate) fn set_active(&mut self, streams: usize) {
        self.active = streams.min(self.tx.len());
        self.sched_start = mono_ns();
        self.g = 0;
    }

    #[inline]
    fn due(&self, g: u64) -> u64 {
        let s = self.active.max(1) as u128;
        self.sched_start + (u128::from(g) * u128::from(self.cfg.ptime_ns) / s) as u64
    }

    /// Slots due strictly before `t` on the current schedule.
    fn slots_before(&self, t: u64) -> u64 {
        if self.active == 0 || t <= self.sched_start {
            return 0;
        }
        let d = u128::from(t - self.sched_start) * self.active as u128;
        d.div_ceil(u128::from(self.cfg.ptime_ns)) as u64
    }

    fn rx_clock_now(&self) -> u64 {
        match self.cfg.rx_clock {
            RxClock::Kernel => real_ns(),
            RxClock::User => mono_ns(),
        }
    }

    /// Starts a measurement window: packets due from now on carry `tag`.
    pub(crate) fn begin_window(&mut self, tag: u32) {
        let now = mono_ns();
        self.win = Window::new(tag, self.rx_clock_now(), now, self.empty_hist.clone());
        for t in &mut self.tx {
            t.win_tx = 0;
        }
        for r in &mut self.rx {
            r.win_rx = 0;
        }
        self.tag = tag;
        self.tag_from = now;
        self.tag_until = u64::MAX;
    }

    /// Ends the window: packets due from now on are not measured. The window's packets not sent yet
    /// (a late generator) or still in flight keep being counted until [`Engine::take_window`].
    pub(crate) fn end_window(&mut self) {
        self.win.end_mono = mono_ns();
        self.tag_until = self.win.end_mono;
        self.win.scheduled = self
            .slots_before(self.win.end_mono)
            .saturating_sub(self.slots_before(self.win.start_mono));
    }

    pub(crate) fn take_window(&mut self) -> Window {
        let empty = Window::new(0, 0, 0, self.empty_hist.clone());
        let mut w = std::mem::replace(&mut self.win, empty);
        self.tag = 0;
        // `rx[s]` counts the arrivals of stream `s` (sent by endpoint s, received by its partner).
        w.silent_streams = self
            .tx
            .iter()
            .zip(&self.rx)
            .filter(|(t, r)| t.win_tx > 0 && r.win_rx == 0)
            .count() as u64;
        w
    }

    /// Sends what is due and handles what arrives until `deadline` (monotonic ns).
    pub(crate) fn run_until(&mut self, deadline: u64) -> Result<(), String> {
        loop {
            let mut now = mono_ns();
            if now >= deadline {
                return Ok(());
            }
            if self.active > 0 {
                let mut queued = 0;
                loop {
                    let due = self.due(self.g);
                    // A generator that cannot keep up would never leave this loop: the deadline
                    // ends it too (the window then shows the slots it could not send).
                    if due > now || now >= deadline {
                        break;
                    }
                    if queued == self.cfg.batch {
                        self.ring
                            .submit()
                            .map_err(|e| format!("io_uring submit: {e}"))?;
                        queued = 0;
                        now = mono_ns();
                    }
                    self.queue_send(now, due)?;
                    queued += 1;
                }
            }
            let next = if self.active > 0 {
                self.due(self.g).min(deadline)
            } else {
                deadline.min(now + 20_000_000)
            };
            let wait = next
                .saturating_sub(now)
                .max(self.cfg.tick_ns)
                .min(deadline.saturating_sub(now))
                .max(1_000);
            let ts = Timespec::new()
                .sec(wait / 1_000_000_000)
                .nsec((wait % 1_000_000_000) as u32);
            let args = SubmitArgs::new().timespec(&ts);
            // Wait for the timeout (not for a count of completions): completions are taken in batches.
            match self.ring.submitter().submit_with_args(1 << 20, &args) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                    ) => {}
                Err(e) => return Err(format!("io_uring wait: {e}")),
            }
            self.harvest()?;
        }
    }

    fn queue_send(&mut self, now: u64, due: u64) -> Result<(), String> {
        let s = (self.g % self.active as u64) as usize;
        self.g += 1;
        let tag = if due >= self.tag_from && due < self.tag_until {
            self.tag
        } else {
            0
        };
        if self.tx[s].in_flight {
            // The stream's previous packet is still queued: a generator more than one packet time
            // late sends two packets of a stream back to back. Submit the queue (sends complete
            // inline) and take the completions, which frees the slot.
            self.ring
                .submit()
                .map_err(|e| format!("io_uring submit: {e}"))?;
            self.harvest()?;
        }
        let slot = &mut *self.tx[s];
        if slot.in_flight {
            if tag != 0 {
                self.win.skipped += 1;
            }
            return Ok(());
        }
        if tag != 0 {
            self.win.max_send_lag_ns = self.win.max_send_lag_ns.max(now.saturating_sub(due));
            self.win.sent += 1;
            slot.win_tx += 1;
        }
        let index = slot.index;
        slot.index += 1;
        let p = &mut slot.pkt;
        p[1] = if index == 0 { 0x80 } else { 0 }; // marker on the first packet, PT 0
        p[2..4].copy_from_slice(&slot.seq0.wrapping_add(index as u16).to_be_bytes());
        let ts = slot.ts0.wrapping_add((index as u32).wrapping_mul(TS_STEP));
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[OFF_TAG..OFF_TAG + 4].copy_from_slice(&tag.to_le_bytes());
        p[OFF_INDEX..OFF_INDEX + 8].copy_from_slice(&index.to_le_bytes());
        p[OFF_MONO..OFF_MONO + 8].copy_from_slice(&mono_ns().to_le_bytes());
        let real = if self.cfg.rx_clock == RxClock::Kernel {
            real_ns()
        } else {
            0
        };
        p[OFF_REAL..OFF_REAL + 8].copy_from_slice(&real.to_le_bytes());
        let (data, len) = match &mut slot.srtp {
            Some(ctx) => {
                slot.wire[..PACKET].copy_from_slice(&slot.pkt);
                match ctx.protect_rtp(&mut slot.wire, PACKET) {
                    Ok(n) => (slot.wire.as_ptr(), n),
                    Err(_) => {
                        self.totals.srtp_protect_failed += 1;
                        return Ok(());
                    }
                }
            }
            None => (slot.pkt.as_ptr(), PACKET),
        };
        slot.iov.iov_len = len;
        slot.in_flight = true;
        self.totals.sent += 1;
        let fd = Fd(self.socks[s].as_raw_fd());
        let sqe = if self.cfg.connect {
            opcode::Send::new(fd, data, len as u32).build()
        } else {
            opcode::SendMsg::new(fd, &slot.hdr).build()
        }
        .user_data(UD_SEND | s as u64);
        self.push_sqe(&sqe)
    }

    fn harvest(&mut self) -> Result<(), String> {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        let user_now = if self.cfg.rx_clock == RxClock::User {
            mono_ns()
        } else {
            0
        };
        let mut returned = false;
        let mut rearm = Vec::new();
        for &(ud, res, flags) in &cqes {
            let i = (ud & !UD_KIND) as usize;
            match ud & UD_KIND {
                UD_SEND => self.on_sent(i, res),
                UD_RECV => {
                    if res >= 0 {
                        if let Some(bid) = cqueue::buffer_select(flags) {
                            self.on_datagram(i, bid, res as usize, user_now);
                            self.bufs.push(bid);
                            returned = true;
                        }
                    } else if res == -libc::ENOBUFS {
                        self.totals.no_buffers += 1;
                    } else {
                        self.totals.recv_errors += 1;
                    }
                    if !cqueue::more(flags) {
                        rearm.push(i);
                    }
                }
                _ => {}
            }
        }
        if returned {
            self.bufs.publish();
        }
        self.cqes = cqes;
        for i in rearm {
            if i < self.socks.len() {
                self.arm_recv(i)?;
            }
        }
        Ok(())
    }

    fn on_sent(&mut self, s: usize, res: i32) {
        let Some(slot) = self.tx.get_mut(s) else {
            return;
        };
        slot.in_flight = false;
        if res < 0 {
            self.totals.sent = self.totals.sent.saturating_sub(1);
            let tag = u32::from_le_bytes([
                slot.pkt[OFF_TAG],
                slot.pkt[OFF_TAG + 1],
                slot.pkt[OFF_TAG + 2],
                slot.pkt[OFF_TAG + 3],
            ]);
            if tag != 0 && tag == self.win.tag {
                self.win.sent = self.win.sent.saturating_sub(1);
                slot.win_tx = slot.win_tx.saturating_sub(1);
                self.win.send_errors += 1;
            }
        }
    }

    fn on_datagram(&mut self, sock: usize, bid: u16, len: usize, user_now: u64) {
        let Some(buf) = self.bufs.buf(bid, len) else {
            self.totals.truncated += 1;
            return;
        };
        let Ok(msg) = RecvMsgOut::parse(buf, &self.rx_hdr) else {
            self.totals.truncated += 1;
            return;
        };
        if msg.is_payload_truncated() {
            self.totals.truncated += 1;
        }
        let mut data = msg.payload_data();
        if let Some(ctx) = self.rx_srtp.get_mut(sock).and_then(Option::as_mut) {
            let n = data.len().min(self.scratch.len());
            self.scratch[..n].copy_from_slice(&data[..n]);
            match ctx.unprotect_rtp(&mut self.scratch[..], n) {
                Ok(m) => data = &self.scratch[..m],
                Err(Reject::AuthFailed) => {
                    self.totals.srtp_auth_failed += 1;
                    return;
                }
                Err(_) => {
                    self.totals.srtp_rejected += 1;
                    return;
                }
            }
        }
        let Some(f) = parse_fields(data, self.cfg.run_id) else {
            self.totals.foreign += 1;
            return;
        };
        let sid = f.stream as usize;
        if sid >= self.rx.len() {
            self.totals.foreign += 1;
            return;
        }
        if sid ^ 1 != sock {
            self.totals.misrouted += 1;
        }
        let (rx_ts, sent_ts) = match self.cfg.rx_clock {
            RxClock::Kernel => match kernel_timestamp(msg.control_data()) {
                Some(t) => (t, f.real),
                None => {
                    self.totals.no_kernel_timestamp += 1;
                    (real_ns(), f.real)
                }
            },
            RxClock::User => (user_now, f.mono),
        };
        self.totals.received += 1;
        let st = &mut self.rx[sid];
        let kind = classify(st, f.index);
        let win = &mut self.win;
        if f.tag != 0 && f.tag == win.tag {
            match kind {
                Arrival::Duplicate => win.duplicates += 1,
                Arrival::InOrder | Arrival::Reordered => {
                    if kind == Arrival::Reordered {
                        win.reordered += 1;
                    }
                    win.received += 1;
                    st.win_rx += 1;
                    win.latency
                        .saturating_record(rx_ts.saturating_sub(sent_ts).clamp(1, HIST_MAX_NS));
                    if st.last_rx >= win.start_rx && rx_ts > st.last_rx {
                        let gap = rx_ts - st.last_rx;
                        win.max_gap_ns = win.max_gap_ns.max(gap);
                        let sent_gap = sent_ts.saturating_sub(st.last_tx);
                        win.max_relay_gap_ns =
                            win.max_relay_gap_ns.max(gap.saturating_sub(sent_gap));
                    }
                }
            }
        }
        if kind != Arrival::Duplicate && rx_ts > st.last_rx {
            st.last_rx = rx_ts;
            st.last_tx = sent_ts;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arrival {
    InOrder,
    Reordered,
    Duplicate,
}

/// Records `index` in the stream's sliding window of the last 64 indexes.
fn classify(st: &mut RxState, index: u64) -> Arrival {
    if index >= st.highest {
        let shift = index + 1 - st.highest;
        st.seen = if shift >= 64 { 0 } else { st.seen << shift };
        st.seen |= 1;
        st.highest = index + 1;
        return Arrival::InOrder;
    }
    let back = st.highest - 1 - index;
    if back >= 64 {
        // Older than the window: cannot tell a duplicate, counted as reordered.
        return Arrival::Reordered;
    }
    if st.seen >> back & 1 == 1 {
        Arrival::Duplicate
    } else {
        st.seen |= 1 << back;
        Arrival::Reordered
    }
}

struct Fields {
    stream: u32,
    tag: u32,
    index: u64,
    mono: u64,
    real: u64,
}

fn le32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn le64(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

/// Our fields in a received datagram, if it is one of this run's packets.
fn parse_fields(d: &[u8], run_id: u32) -> Option<Fields> {
    if d.len() < FIELDS_END || d[0] >> 6 != 2 || d.get(OFF_MAGIC..OFF_MAGIC + 4)? != MAGIC {
        return None;
    }
    if le32(d, OFF_RUN)? != run_id {
        return None;
    }
    Some(Fields {
        stream: le32(d, OFF_STREAM)?,
        tag: le32(d, OFF_TAG)?,
        index: le64(d, OFF_INDEX)?,
        mono: le64(d, OFF_MONO)?,
        real: le64(d, OFF_REAL)?,
    })
}

/// The `SCM_TIMESTAMPNS` time in a control buffer, in ns.
fn kernel_timestamp(control: &[u8]) -> Option<u64> {
    const HDR: usize = size_of::<libc::cmsghdr>();
    let mut off = 0;
    while off + HDR <= control.len() {
        let len = usize::from_ne_bytes(control.get(off..off + 8)?.try_into().ok()?);
        let level = i32::from_ne_bytes(control.get(off + 8..off + 12)?.try_into().ok()?);
        let kind = i32::from_ne_bytes(control.get(off + 12..off + 16)?.try_into().ok()?);
        if len < HDR {
            return None;
        }
        if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS && len >= HDR + 16 {
            let sec = i64::from_ne_bytes(control.get(off + HDR..off + HDR + 8)?.try_into().ok()?);
            let nsec = i64::from_ne_bytes(
                control
                    .get(off + HDR + 8..off + HDR + 16)?
                    .try_into()
                    .ok()?,
            );
            return Some(sec as u64 * 1_000_000_000 + nsec as u64);
        }
        off += len.next_multiple_of(8);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_counts_reorder_and_duplicates() {
        let mut st = RxState::default();
        assert_eq!(classify(&mut st, 0), Arrival::InOrder);
        assert_eq!(classify(&mut st, 2), Arrival::InOrder);
        assert_eq!(classify(&mut st, 1), Arrival::Reordered);
        assert_eq!(classify(&mut st, 1), Arrival::Duplicate);
        assert_eq!(classify(&mut st, 2), Arrival::Duplicate);
        assert_eq!(classify(&mut st, 100), Arrival::InOrder);
        assert_eq!(classify(&mut st, 3), Arrival::Reordered);
        assert_eq!(classify(&mut st, 99), Arrival::Reordered);
        assert_eq!(classify(&mut st, 99), Arrival::Duplicate);
    }

    #[test]
    fn fields_round_trip() {
        let mut p = [PCMU_SILENCE; PACKET];
        p[0] = 0x80;
        p[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(&MAGIC);
        p[OFF_RUN..OFF_RUN + 4].copy_from_slice(&7u32.to_le_bytes());
        p[OFF_STREAM..OFF_STREAM + 4].copy_from_slice(&3u32.to_le_bytes());
        p[OFF_INDEX..OFF_INDEX + 8].copy_from_slice(&9u64.to_le_bytes());
        let f = parse_fields(&p, 7);
        assert!(f.as_ref().is_some_and(|f| f.stream == 3 && f.index == 9));
        assert!(parse_fields(&p, 8).is_none());
        assert!(parse_fields(&p[..30], 7).is_none());
    }

    #[test]
    fn timestamp_from_control() {
        let mut c = vec![0u8; 32];
        c[..8].copy_from_slice(&32usize.to_ne_bytes());
        c[8..12].copy_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        c[12..16].copy_from_slice(&libc::SCM_TIMESTAMPNS.to_ne_bytes());
        c[16..24].copy_from_slice(&2i64.to_ne_bytes());
        c[24..32].copy_from_slice(&5i64.to_ne_bytes());
        assert_eq!(kernel_timestamp(&c), Some(2_000_000_005));
        assert_eq!(kernel_timestamp(&c[..20]), None);
    }
}
