//! The worker's media sockets: one UDP socket per port of its slice of the relay range, bound at
//! start on the media address, so that setting up a call costs no system call and a packet to a port
//! no call owns is received and counted (then dropped by the shard) instead of answered by an ICMP
//! error.
//!
//! Both drivers relay the same way: a datagram received on port `p` goes to
//! [`media_plane::MediaShard::on_packet`], and is sent from the buffer it was received in, out of the
//! socket the returned action names, with the length the action names (never past the buffer).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::Range;
use std::time::{Duration, Instant};

use media_plane::Action;
use sbc_core::media::MediaControl;

use crate::stats::Transport;

/// The sockets of one worker's media ports, indexed by `port - base`.
pub(crate) struct MediaSockets {
    pub(crate) base: u16,
    pub(crate) socks: Vec<UdpSocket>,
}

impl MediaSockets {
    /// Bind every port of `ports` on `ip` (non-blocking).
    pub(crate) fn bind(ip: IpAddr, ports: Range<u16>) -> Result<Self, String> {
        let base = ports.start;
        let mut socks = Vec::with_capacity(ports.len());
        // A previous instance's sockets may outlive it briefly (its io_uring is torn down by the
        // kernel after the process exits): a restart waits for them, up to a few seconds in all.
        let mut patience = Duration::from_secs(5);
        for port in ports {
            let addr = SocketAddr::new(ip, port);
            let s = loop {
                match bind_one(addr) {
                    Err(e) if e.kind() == io::ErrorKind::AddrInUse && !patience.is_zero() => {
                        let step = Duration::from_millis(50);
                        std::thread::sleep(step);
                        patience = patience.saturating_sub(step);
                    }
                    r => {
                        break r
                            .map_err(|e| format!("media.port_min/port_max: bind {addr}: {e}"))?
                    }
                }
            };
            socks.push(s);
        }
        Ok(Self { base, socks })
    }

    /// The socket of local port `port`.
    pub(crate) fn get(&self, port: u16) -> Option<&UdpSocket> {
        self.socks.get(usize::from(port.checked_sub(self.base)?))
    }

    pub(crate) fn port_of(&self, index: usize) -> u16 {
        self.base.wrapping_add(index as u16)
    }
}

fn bind_one(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// The epoll driver's media path: drain up to `budget` datagrams from the socket at `index`, relay
/// each with one `sendto`. Level-triggered epoll calls again when more are queued.
pub(crate) fn relay_ready(
    socks: &MediaSockets,
    shard: &mut media_plane::MediaShard,
    index: usize,
    buf: &mut [u8],
    counters: &mut Transport,
    budget: usize,
    now: Instant,
) {
    let Some(sock) = socks.socks.get(index) else {
        return;
    };
    let port = socks.port_of(index);
    for _ in 0..budget {
        let Ok((len, src)) = sock.recv_from(buf) else {
            break;
        };
        counters.media_rx += 1;
        // The whole buffer: a stage may grow the packet (an SRTP tag) within it.
        let action = shard.on_packet_in(port, src, buf, len, now);
        send_now(socks, action, buf, counters);
        // A codec stage may have more than one packet for it (30 ms in, 20 ms out): the same
        // buffer again, the first one having left.
        while let Some(action) = shard.next_packet(buf) {
            send_now(socks, action, buf, counters);
        }
    }
}

/// Send what `action` says of `buf` at once (one `sendto`); nothing for a drop.
pub(crate) fn send_now(socks: &MediaSockets, action: Action, buf: &[u8], counters: &mut Transport) {
    let Action::Forward { from_port, to, len } = action else {
        return;
    };
    // The length the shard decided, within the buffer.
    let Some(out) = buf.get(..len) else {
        counters.media_bad_length += 1;
        return;
    };
    let sent = socks.get(from_port).map(|s| s.send_to(out, to));
    if !matches!(sent, Some(Ok(_))) {
        counters.media_send_errors += 1;
    }
}

/// The rtpengine "ng" control socket of worker 0 and its engine (calls set up by Kamailio or
/// OpenSIPS, relayed by this worker's shard like the B2BUA's own).
pub(crate) struct NgServer {
    pub(crate) sock: UdpSocket,
    /// Sources whose commands are answered (`media.ng_allowed`); others are dropped.
    allowed: Vec<sbc_core::cidr::Cidr>,
    /// Datagrams dropped because their source is not allowed.
    refused: u64,
    engine: sbc_core::ng::NgEngine,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl NgServer {
    pub(crate) fn bind(
        addr: SocketAddr,
        media_ip: IpAddr,
        allowed: Vec<sbc_core::cidr::Cidr>,
    ) -> Result<Self, String> {
        let sock = bind_one(addr).map_err(|e| format!("media.ng_listen: bind {addr}: {e}"))?;
        let mut engine = sbc_core::ng::NgEngine::new(sbc_core::ng::NgConfig::new(media_ip));
        if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            engine.set_wall_clock(Instant::now(), since);
        }
        Ok(Self {
            sock,
            allowed,
            refused: 0,
            engine,
            buf: vec![0; 65536],
            out: Vec::with_capacity(4096),
        })
    }

    /// Answer the requests queued on the socket (at most `budget`).
    pub(crate) fn on_readable(
        &mut self,
        relay: &mut dyn MediaControl,
        budget: usize,
        now: Instant,
    ) {
        for _ in 0..budget {
            let Ok((len, src)) = self.sock.recv_from(&mut self.buf) else {
                break;
            };
            if !self.allowed.iter().any(|c| c.contains(src.ip())) {
                self.refused += 1;
                continue;
            }
            let Some(datagram) = self.buf.get(..len) else {
                break;
            };
            self.out.clear();
            self.engine.handle(relay, datagram, src, now, &mut self.out);
            if !self.out.is_empty() {
                let _ = self.sock.send_to(&self.out, src);
            }
        }
    }

    /// Expire idle and deleted calls when due.
    pub(crate) fn tick(&mut self, relay: &mut dyn MediaControl, now: Instant) {
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(relay, now);
        }
    }

    pub(crate) fn counters(&self) -> sbc_core::ng::NgCounters {
        self.engine.counters()
    }

    /// Datagrams dropped because their source is not in `media.ng_allowed`.
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }
}
