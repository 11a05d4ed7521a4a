//! The io_uring driver: multishot `recvmsg` over a registered provided-buffer ring for UDP, one
//! `sendmsg` SQE per answer submitted in one batch per loop turn, and the worker's epoll (TCP, TLS)
//! watched by a `poll` request in the same ring.
//!
//! io_uring may be missing or forbidden (seccomp in containers, `kernel.io_uring_disabled`, old
//! kernels, RLIMIT_MEMLOCK): [`probe`] tries everything this driver uses once at start, so the process
//! can fall back to epoll with one clear reason.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Instant;

use io_uring::types::{Fd, Fixed, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};
use sbc_bufring::BufRing;

use crate::sys::{sockaddr_from_bytes, sockaddr_to_storage};
use crate::tokens::{Kind, Token};
use crate::worker::{MediaPath, Worker, TICK_MS};

const RING_ENTRIES: u32 = 1024;
/// Provided receive buffers per worker (a power of two).
const RECV_BUFFERS: u16 = 256;
const BGID: u16 = 0;
/// Provided buffers for media per worker (a power of two), and their size: a datagram that does not
/// fit is counted and dropped (RTP over UDP stays well below the path MTU).
const MEDIA_BUFFERS: u16 = 4096;
const MEDIA_BUF_SIZE: usize = 2048;
const BGID_MEDIA: u16 = 1;
/// Completions handled per loop turn, so that timers and SIP keep their turn under a media flood.
const MAX_CQES_PER_TURN: usize = 4096;
/// Answers in flight before falling back to a direct `sendto`.
const MAX_SENDS_IN_FLIGHT: usize = 1024;

/// Check that io_uring works here with everything this driver uses. `Err` carries the reason.
pub(crate) fn probe() -> Result<(), String> {
    let mut ring = new_ring(8).map_err(|e| format!("io_uring_setup: {e}"))?;
    let mut p = Probe::new();
    ring.submitter()
        .register_probe(&mut p)
        .map_err(|e| format!("probe: {e}"))?;
    for (code, name) in [
        (opcode::RecvMsgMulti::CODE, "RECVMSG"),
        (opcode::SendMsg::CODE, "SENDMSG"),
        (opcode::PollAdd::CODE, "POLL_ADD"),
    ] {
        if !p.is_supported(code) {
            return Err(format!("opcode {name} not supported"));
        }
    }
    let bufs =
        BufRing::register(&ring, BGID, 8, 256).map_err(|e| format!("provided buffer ring: {e}"))?;
    let result = probe_multishot(&mut ring, &bufs);
    // The ring goes first: it cancels the armed receive and releases the buffer ring.
    drop(ring);
    drop(bufs);
    result
}

/// Multishot recvmsg (kernel 6.0+) cannot be seen in the opcode probe: receive one datagram with it.
fn probe_multishot(ring: &mut IoUring, bufs: &BufRing) -> Result<(), String> {
    let err = |what: &str, e: io::Error| format!("multishot recvmsg self-test: {what}: {e}");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| err("bind", e))?;
    let addr = sock.local_addr().map_err(|e| err("local_addr", e))?;
    // SAFETY (zeroed): plain C structure.
    let mut msghdr: libc::msghdr = unsafe { std::mem::zeroed() };
    msghdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
    let sqe = opcode::RecvMsgMulti::new(Fd(sock.as_raw_fd()), &msghdr, BGID)
        .build()
        .user_data(1);
    push_sqe(ring, &sqe).map_err(|e| err("submit", e))?;
    ring.submit().map_err(|e| err("submit", e))?;
    sock.send_to(b"probe", addr).map_err(|e| err("send", e))?;
    let ts = Timespec::new().sec(1);
    let args = SubmitArgs::new().timespec(&ts);
    let _ = ring.submitter().submit_with_args(1, &args);
    let Some(cqe) = ring.completion().next() else {
        return Err("multishot recvmsg self-test: no completion within 1 s".into());
    };
    if cqe.result() < 0 {
        return Err(err(
            "completion",
            io::Error::from_raw_os_error(-cqe.result()),
        ));
    }
    let bid =
        cqueue::buffer_select(cqe.flags()).ok_or("multishot recvmsg self-test: no buffer id")?;
    let payload_ok = RecvMsgOut::parse(
        bufs.buf(bid, cqe.result() as usize).unwrap_or_default(),
        &msghdr,
    )
    .is_ok_and(|m| m.payload_data() == b"probe");
    if !payload_ok {
        return Err("multishot recvmsg self-test: unexpected payload".into());
    }
    Ok(())
}

/// Completions a batching worker waits for before its `batch_wait_us` runs out (see `drive`).
const BATCH_WANT: usize = 32;

fn new_ring(entries: u32) -> io::Result<IoUring> {
    // The ring is created, submitted to and reaped by its worker thread only: completions are posted
    // when the worker waits for them (DEFER_TASKRUN) instead of interrupting it after each packet.
    IoUring::builder()
        .setup_submit_all()
        .setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(entries * 4)
        .build(entries)
}

/// One answer in flight: the kernel reads these until the completion arrives, so they are boxed.
struct SendSlot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_storage,
    buf: Vec<u8>,
}

struct Sends {
    // Boxed: the kernel holds pointers into a slot until its completion, while the Vec may grow.
    #[allow(clippy::vec_box)]
    slots: Vec<Box<SendSlot>>,
    free: Vec<usize>,
}

impl Sends {
    fn take(&mut self) -> Option<usize> {
        if let Some(i) = self.free.pop() {
            return Some(i);
        }
        if self.slots.len() >= MAX_SENDS_IN_FLIGHT {
            return None;
        }
        self.slots.push(Box::new(SendSlot {
            // SAFETY (zeroed): plain C structures.
            hdr: unsafe { std::mem::zeroed() },
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            addr: unsafe { std::mem::zeroed() },
            buf: Vec::with_capacity(1024),
        }));
        Some(self.slots.len() - 1)
    }
}

fn push_sqe(ring: &mut IoUring, sqe: &squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every buffer an SQE points to (msghdr, iovec, address, payload, buffer ring) is owned by
        // this driver and outlives the operation (sends: until their completion; receives: the loop).
        if unsafe { ring.submission().push(sqe) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

/// Run the io_uring loop until the stop flag is set.
pub(crate) fn run(w: &mut Worker) -> io::Result<()> {
    let mut ring = new_ring(RING_ENTRIES)?;
    // Room for the `io_uring_recvmsg_out` header and a full socket address before the payload.
    let name_len = size_of::<libc::sockaddr_storage>();
    let buf_size = 16 + name_len + w.max_message + 1;
    let mut bufs = BufRing::register(&ring, BGID, RECV_BUFFERS, buf_size)?;
    let mut media = match &w.media {
        Some(_) => Some(MediaRing {
            bufs: BufRing::register(&ring, BGID_MEDIA, MEDIA_BUFFERS, MEDIA_BUF_SIZE)?,
            sends: (0..MEDIA_BUFFERS).map(|_| MediaSend::new()).collect(),
            // SAFETY (zeroed): plain C structure.
            hdr: Box::new(unsafe { std::mem::zeroed() }),
            spare: vec![0; MEDIA_BUF_SIZE].into_boxed_slice(),
        }),
        None => None,
    };
    let result = drive(w, &mut ring, &mut bufs, name_len, media.as_mut());
    bufs.unregister(&ring);
    if let Some(m) = &media {
        m.bufs.unregister(&ring);
    }
    drop(ring);
    result
}

fn recv_sqe(w: &Worker, i: usize, msghdr: &libc::msghdr) -> squeue::Entry {
    opcode::RecvMsgMulti::new(Fd(w.udp[i].as_raw_fd()), msghdr, BGID)
        .build()
        .user_data(Token::new(Kind::Udp, i as u32).encode())
}

/// Media sockets are registered with the ring (fixed files, index = socket index): no file
/// lookup and reference count per operation.
fn media_recv_sqe(i: usize, msghdr: &libc::msghdr) -> squeue::Entry {
    opcode::RecvMsgMulti::new(Fixed(i as u32), msghdr, BGID_MEDIA)
        .build()
        .user_data(Token::new(Kind::Media, i as u32).encode())
}

/// The media side of the ring: its buffers, and one send header per buffer (a relayed packet is
/// sent from the buffer it was received in; the buffer goes back to the kernel when the send
/// completes).
struct MediaRing {
    bufs: BufRing,
    sends: Box<[MediaSend]>,
    /// The template the kernel reads for every media receive: room for an IPv6 address.
    hdr: Box<libc::msghdr>,
    /// Where the further packets of one received packet are written (`MediaShard::next_packet`).
    spare: Box<[u8]>,
}

struct MediaSend {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_storage,
}

impl MediaSend {
    fn new() -> Self {
        Self {
            // SAFETY (zeroed): plain C structures.
            hdr: unsafe { std::mem::zeroed() },
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            addr: unsafe { std::mem::zeroed() },
        }
    }
}

/// One media datagram in buffer `bid` (`len` bytes of `io_uring_recvmsg_out` layout) received on the
/// media socket at `index`: relay it from the same buffer, or give the buffer back. Returns whether
/// the buffer was returned to the ring.
fn on_media(
    w: &mut Worker,
    ring: &mut IoUring,
    m: &mut MediaRing,
    index: usize,
    bid: u16,
    len: usize,
    now: Instant,
) -> io::Result<bool> {
    w.handler.transport.media_rx += 1;
    match media_send(w, ring, m, index, bid, len, now) {
        Some(sqe) => {
            push_sqe(ring, &sqe)?;
            Ok(false)
        }
        None => {
            m.bufs.push(bid);
            Ok(true)
        }
    }
}

/// The send that relays the datagram in buffer `bid`, its header written into the buffer's send
/// slot; `None`: the datagram is dropped (counted by the shard, or as truncated).
fn media_send(
    w: &mut Worker,
    ring: &mut IoUring,
    m: &mut MediaRing,
    index: usize,
    bid: u16,
    len: usize,
    now: Instant,
) -> Option<squeue::Entry> {
    let (src, start, plen) = {
        let msg = RecvMsgOut::parse(m.bufs.buf(bid, len).unwrap_or_default(), &m.hdr).ok();
        let Some(msg) = msg.filter(|msg| !msg.is_payload_truncated()) else {
            w.handler.transport.udp_truncated += 1;
            return None;
        };
        // The payload follows the 16-byte header, the name and the control data.
        let start = 16 + m.hdr.msg_namelen as usize + m.hdr.msg_controllen;
        (
            sockaddr_from_bytes(msg.name_data())?,
            start,
            msg.payload_data().len(),
        )
    };
    let MediaPath {
        socks: Some(socks),
        shard,
        counters,
        ..
    } = w.media_path()?
    else {
        return None;
    };
    // The whole buffer after the header: a stage may send more than was received, within it.
    let room = m.bufs.buf_mut(bid, MEDIA_BUF_SIZE)?.get_mut(start..)?;
    let action = shard
        .shard_mut()
        .on_packet_in(socks.port_of(index), src, room, plen, now);
    if shard.shard().has_more() {
        // More than one packet out for this one (a codec stage repacketising, 30 ms in, 20 ms
        // out): all sent at once, in order, the further ones from the spare buffer; the
        // received buffer goes back to the kernel at once. The sends queued before them are
        // submitted first (a datagram send runs inline), so the stream's packets leave in order.
        if ring.submit().is_err() {
            counters.media_send_errors += 1;
        }
        crate::media::send_now(socks, action, room, counters);
        while let Some(more) = shard.shard_mut().next_packet(&mut m.spare[..]) {
            crate::media::send_now(socks, more, &m.spare[..], counters);
        }
        return None;
    }
    let media_plane::Action::Forward { from_port, to, len } = action else {
        return None;
    };
    if len > room.len() {
        counters.media_bad_length += 1;
        return None;
    }
    let out_index = from_port
        .checked_sub(socks.base)
        .filter(|i| usize::from(*i) < socks.socks.len())?;
    let ptr = room.as_mut_ptr();
    let s = m.sends.get_mut(usize::from(bid))?;
    let addr_len = sockaddr_to_storage(to, &mut s.addr);
    s.iov = libc::iovec {
        iov_base: ptr.cast(),
        iov_len: len,
    };
    s.hdr.msg_name = (&mut s.addr as *mut libc::sockaddr_storage).cast();
    s.hdr.msg_namelen = addr_len;
    s.hdr.msg_iov = &mut s.iov;
    s.hdr.msg_iovlen = 1;
    Some(
        opcode::SendMsg::new(Fixed(u32::from(out_index)), &s.hdr)
            .build()
            .user_data(Token::new(Kind::MediaSend, u32::from(bid)).encode()),
    )
}

fn epoll_sqe(w: &Worker) -> squeue::Entry {
    opcode::PollAdd::new(Fd(w.epoll.fd()), libc::POLLIN as u32)
        .build()
        .user_data(Token::new(Kind::Epoll, 0).encode())
}

fn drive(
    w: &mut Worker,
    ring: &mut IoUring,
    bufs: &mut BufRing,
    name_len: usize,
    mut media: Option<&mut MediaRing>,
) -> io::Result<()> {
    // The template the kernel reads for every multishot completion: name space, no control data.
    // SAFETY (zeroed): plain C structure.
    let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
    msghdr.msg_namelen = name_len as u32;
    for i in 0..w.udp.len() {
        push_sqe(ring, &recv_sqe(w, i, &msghdr))?;
    }
    push_sqe(ring, &epoll_sqe(w))?;
    if let (Some(m), Some(socks)) = (media.as_deref_mut(), w.media.as_ref()) {
        m.hdr.msg_namelen = size_of::<libc::sockaddr_in6>() as u32;
        let fds: Vec<i32> = socks.socks.iter().map(|s| s.as_raw_fd()).collect();
        ring.submitter().register_files(&fds)?;
        for i in 0..fds.len() {
            push_sqe(ring, &media_recv_sqe(i, &m.hdr))?;
        }
    }
    let mut sends = Sends {
        slots: Vec::new(),
        free: Vec::new(),
    };
    let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(256);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut pending = Vec::with_capacity(64);
    let ts = Timespec::new().nsec(TICK_MS as u32 * 1_000_000);
    let args = SubmitArgs::new().timespec(&ts);
    // Completion batching (kernel 6.12+, off unless `transport.batch_wait_us` is set): wait for up
    // to BATCH_WANT completions during the first `batch_wait_us` of the wait, then return as soon
    // as there is one. Under heavy load a wake-up then handles several datagrams (and the send
    // completions of the last turn) instead of one; a datagram waits at most that long.
    let batch = w.batch_wait_us > 0 && ring.params().is_feature_min_timeout();
    let want = if batch { BATCH_WANT } else { 1 };
    while !w.stopping() {
        let sleep = w.sleep_ms(Instant::now());
        let wait = Timespec::new().nsec(sleep.max(0) as u32 * 1_000_000);
        let mut wait_args = SubmitArgs::new().timespec(&wait);
        if batch {
            wait_args = wait_args.min_wait_usec(w.batch_wait_us);
        }
        match ring.submitter().submit_with_args(want, &wait_args) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        cqes.clear();
        cqes.extend(
            ring.completion()
                .take(MAX_CQES_PER_TURN)
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        let now = Instant::now();
        let mut returned_buffers = false;
        let mut returned_media = false;
        for &(ud, res, flags) in &cqes {
            let Some(tok) = Token::decode(ud) else {
                continue;
            };
            match tok.kind {
                Kind::Udp => {
                    let i = tok.index as usize;
                    if res >= 0 {
                        if let Some(bid) = cqueue::buffer_select(flags) {
                            let buf = bufs.buf(bid, res as usize).unwrap_or_default();
                            on_recv(w, i, buf, &msghdr, now);
                            bufs.push(bid);
                            returned_buffers = true;
                        }
                    } else if res == -libc::ENOBUFS {
                        // Every buffer was in use: datagrams may have been dropped by the kernel.
                        w.handler.transport.udp_no_buffers += 1;
                    }
                    if !cqueue::more(flags) && !w.stopping() {
                        push_sqe(ring, &recv_sqe(w, i, &msghdr))?;
                    }
                }
                Kind::UdpSend => {
                    let slot = tok.index as usize;
                    sends.free.push(slot);
                    if res < 0 {
                        w.handler.transport.udp_send_errors += 1;
                    } else {
                        w.handler.transport.udp_tx += 1;
                    }
                }
                Kind::Epoll => {
                    w.poll_streams(&mut events, 0)?;
                    push_sqe(ring, &epoll_sqe(w))?;
                }
                Kind::Media => {
                    let Some(m) = media.as_deref_mut() else {
                        continue;
                    };
                    let i = tok.index as usize;
                    if res >= 0 {
                        if let Some(bid) = cqueue::buffer_select(flags) {
                            returned_media |= on_media(w, ring, m, i, bid, res as usize, now)?;
                        }
                    } else if res == -libc::ENOBUFS {
                        w.handler.transport.media_no_buffers += 1;
                    }
                    if !cqueue::more(flags) && !w.stopping() {
                        push_sqe(ring, &media_recv_sqe(i, &m.hdr))?;
                    }
                }
                Kind::MediaSend => {
                    let Some(m) = media.as_deref_mut() else {
                        continue;
                    };
                    if res < 0 {
                        w.handler.transport.media_send_errors += 1;
                    }
                    m.bufs.push(tok.index as u16);
                    returned_media = true;
                }
                _ => {}
            }
        }
        if returned_buffers {
            bufs.publish();
        }
        if returned_media {
            if let Some(m) = media.as_deref_mut() {
                m.bufs.publish();
            }
        }
        w.tick(now);
        w.take_outbox(&mut pending);
        for t in pending.drain(..) {
            queue_send(w, ring, &mut sends, t.flow.0 as usize, t.dest, &t.bytes)?;
        }
    }
    // Let the answers in flight complete before their buffers go away.
    let deadline = Instant::now() + std::time::Duration::from_millis(200);
    while sends.free.len() < sends.slots.len() && Instant::now() < deadline {
        let _ = ring.submitter().submit_with_args(1, &args);
        for c in ring.completion() {
            if let Some(t) = Token::decode(c.user_data()).filter(|t| t.kind == Kind::UdpSend) {
                sends.free.push(t.index as usize);
            }
        }
    }
    Ok(())
}

/// One multishot completion: parse the `io_uring_recvmsg_out` layout, handle the datagram (what it
/// causes to be sent joins the worker's outbox).
fn on_recv(w: &mut Worker, index: usize, buf: &[u8], msghdr: &libc::msghdr, now: Instant) {
    let Ok(msg) = RecvMsgOut::parse(buf, msghdr) else {
        w.handler.transport.udp_truncated += 1;
        return;
    };
    // RFC 3581 / RFC 3261 §18.2.2: a stateless answer goes to the packet's source address and port
    // (the handler addresses it so).
    let Some(src) = sockaddr_from_bytes(msg.name_data()) else {
        return;
    };
    let truncated = msg.is_payload_truncated();
    w.on_datagram(index, src, msg.payload_data(), truncated, now);
}

fn queue_send(
    w: &mut Worker,
    ring: &mut IoUring,
    sends: &mut Sends,
    sock: usize,
    dst: SocketAddr,
    data: &[u8],
) -> io::Result<()> {
    let Some(slot) = sends.take() else {
        // Too many in flight: send directly rather than queue without bound.
        match w.udp[sock].send_to(data, dst) {
            Ok(_) => w.handler.transport.udp_tx += 1,
            Err(_) => w.handler.transport.udp_send_errors += 1,
        }
        return Ok(());
    };
    let s = &mut *sends.slots[slot];
    s.buf.clear();
    s.buf.extend_from_slice(data);
    let addr_len = sockaddr_to_storage(dst, &mut s.addr);
    s.iov = libc::iovec {
        iov_base: s.buf.as_mut_ptr().cast(),
        iov_len: s.buf.len(),
    };
    s.hdr.msg_name = (&mut s.addr as *mut libc::sockaddr_storage).cast();
    s.hdr.msg_namelen = addr_len;
    s.hdr.msg_iov = &mut s.iov;
    s.hdr.msg_iovlen = 1;
    let sqe = opcode::SendMsg::new(Fd(w.udp[sock].as_raw_fd()), &s.hdr)
        .build()
        .user_data(Token::new(Kind::UdpSend, slot as u32).encode());
    push_sqe(ring, &sqe)
}
