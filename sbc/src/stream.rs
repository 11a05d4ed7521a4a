//! SIP over TCP and TLS: listeners, connections the SBC opens itself, a bounded connection table,
//! framing and per-connection write queues.
//!
//! Readiness comes from the worker's epoll (level-triggered). Each connection keeps a read buffer that
//! the framer ([`sbc_sip::framing`]) cuts into messages, and a write queue that absorbs partial writes;
//! `EPOLLOUT` is asked for only while the queue is not empty (or a connect is in progress). TLS runs
//! rustls on the same socket (a server session on accepted connections, a client session that
//! verifies the server on the connections the SBC opens) and frames the decrypted stream the same
//! way. A framing fault closes the connection (RFC 3261 §18.3: a stream cannot be resynchronised).
//!
//! Bounds: `transport.tcp_max_connections` per worker, `tcp_max_connections_per_source` accepted
//! from one IP address, a deadline on connect and TLS handshake, and an idle timeout that spares a
//! connection carrying a live registration or call. Running out of file descriptors pauses
//! accepting for [`ACCEPT_BACKOFF`] instead of waking the worker again at once.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::{ClientConnection, Connection, ServerConfig, ServerConnection};
use sbc_core::b2bua::Origin;
use sbc_core::media::MediaControl;
use sbc_core::signalling::topology::Side;
use sbc_sip::framing::{next_frame, Frame, Limits};
use sbc_sip::transaction::Flow;

use crate::connect::{self, Peers};
use crate::handler::Handler;
use crate::stats::Transport;
use crate::sys::Epoll;
use crate::tokens::{next_generation, Kind, Token};

/// A write queue above this closes the connection: the peer does not read.
const MAX_WRITE_QUEUE: usize = 1 << 20;
/// Reads per readiness event, so one busy connection cannot starve the others.
const READS_PER_EVENT: usize = 8;
/// How long accepting pauses when the process is out of file descriptors (or kernel memory).
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

/// A listening socket of one worker.
pub(crate) struct Listener {
    pub(crate) sock: TcpListener,
    /// Whether its connections speak TLS.
    pub(crate) tls: bool,
    /// The side its connections are on.
    pub(crate) side: Side,
}

/// The bounds of a worker's connections (from `[transport]`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamSettings {
    pub(crate) max_conns: usize,
    pub(crate) max_per_source: usize,
    pub(crate) idle: Duration,
    pub(crate) handshake: Duration,
    pub(crate) limits: Limits,
}

struct Conn {
    sock: TcpStream,
    peer: SocketAddr,
    side: Side,
    tls: Option<Box<Connection>>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    opened: Instant,
    last_active: Instant,
    generation: u32,
    want_out: bool,
    /// A connection the SBC opens whose connect has not completed yet.
    connecting: bool,
    /// Accepted (counted against its source's slots), not opened by the SBC.
    accepted: bool,
}

impl Conn {
    /// A connection to or from `peer` on `side`, `accepted` or opened by the SBC (then connecting).
    fn new(
        sock: TcpStream,
        peer: SocketAddr,
        side: Side,
        tls: Option<Box<Connection>>,
        now: Instant,
        accepted: bool,
    ) -> Self {
        Self {
            sock,
            peer,
            side,
            tls,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            opened: now,
            last_active: now,
            generation: 0,
            want_out: !accepted,
            connecting: !accepted,
            accepted,
        }
    }

    /// Connect or TLS handshake not finished.
    fn setting_up(&self) -> bool {
        self.connecting || self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }
}

/// Listeners and connections of one worker.
pub(crate) struct Streams {
    listeners: Vec<Listener>,
    tls_config: Option<Arc<ServerConfig>>,
    /// The next hops reached over connections the SBC opens.
    peers: Peers,
    slots: Vec<Option<Conn>>,
    free: Vec<u32>,
    open: usize,
    settings: StreamSettings,
    next_generation: u32,
    scratch: Vec<u8>,
    out: Vec<u8>,
    /// The connection opened toward each next hop (its token).
    outbound: HashMap<SocketAddr, u64>,
    /// Accepted connections per source address.
    per_source: HashMap<IpAddr, usize>,
    /// Accepting is paused (out of file descriptors) until then.
    paused_until: Option<Instant>,
    /// Next hops whose connection failed or closed since [`Self::take_lost`] (their pending
    /// requests fail at once).
    lost: Vec<SocketAddr>,
}

impl Streams {
    pub(crate) fn new(
        listeners: Vec<Listener>,
        tls_config: Option<Arc<ServerConfig>>,
        peers: Peers,
        settings: StreamSettings,
    ) -> Self {
        Self {
            listeners,
            tls_config,
            peers,
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            settings,
            next_generation: 0,
            scratch: vec![0; 16 * 1024],
            out: Vec::with_capacity(4096),
            outbound: HashMap::new(),
            per_source: HashMap::new(),
            paused_until: None,
            lost: Vec::new(),
        }
    }

    /// The next hops whose connection failed or closed since the last call.
    pub(crate) fn take_lost(&mut self) -> Option<SocketAddr> {
        self.lost.pop()
    }

    fn listener_token(&self, i: usize) -> u64 {
        let kind = if self.listeners[i].tls {
            Kind::TlsListen
        } else {
            Kind::TcpListen
        };
        Token::new(kind, i as u32).encode()
    }

    /// Register the listeners with `epoll`.
    pub(crate) fn register(&self, epoll: &Epoll) -> io::Result<()> {
        for (i, l) in self.listeners.iter().enumerate() {
            epoll.add(
                l.sock.as_raw_fd(),
                libc::EPOLLIN as u32,
                self.listener_token(i),
            )?;
        }
        Ok(())
    }

    /// Handle one epoll event whose token is a stream token. Returns false when the token is not ours.
    pub(crate) fn on_event(
        &mut self,
        epoll: &Epoll,
        tok: u64,
        events: u32,
        h: &mut Handler,
        media: &mut dyn MediaControl,
        now: Instant,
    ) -> bool {
        let Some(t) = Token::decode(tok) else {
            return false;
        };
        match t.kind {
            Kind::TcpListen | Kind::TlsListen => self.accept(epoll, t.index as usize, h, now),
            Kind::Conn => self.on_conn(epoll, t, events, h, media, now),
            _ => return false,
        }
        true
    }

    /// Stop watching the listeners for [`ACCEPT_BACKOFF`]: the process is out of descriptors, and a
    /// level-triggered listener would wake the worker again at once.
    pub(crate) fn pause_accepting(&mut self, epoll: &Epoll, now: Instant) {
        for (i, l) in self.listeners.iter().enumerate() {
            let _ = epoll.modify(l.sock.as_raw_fd(), 0, self.listener_token(i));
        }
        self.paused_until = Some(now + ACCEPT_BACKOFF);
    }

    /// Watch the listeners again once the pause is over.
    pub(crate) fn resume_accepting(&mut self, epoll: &Epoll, now: Instant) {
        if self.paused_until.is_none_or(|t| now < t) {
            return;
        }
        self.paused_until = None;
        for (i, l) in self.listeners.iter().enumerate() {
            let _ = epoll.modify(
                l.sock.as_raw_fd(),
                libc::EPOLLIN as u32,
                self.listener_token(i),
            );
        }
    }

    fn accept(&mut self, epoll: &Epoll, i: usize, h: &mut Handler, now: Instant) {
        let Some((tls, side)) = self.listeners.get(i).map(|l| (l.tls, l.side)) else {
            return;
        };
        for _ in 0..64 {
            let (sock, peer) = match self.listeners[i].sock.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(e) => {
                    h.transport.tcp_refused += 1;
                    if out_of_resources(&e) {
                        h.transport.tcp_accept_paused += 1;
                        tracing::warn!(
                            "accept: {e}; not accepting for {} ms (raise the open-file limit or \
                             lower transport.tcp_max_connections)",
                            ACCEPT_BACKOFF.as_millis()
                        );
                        self.pause_accepting(epoll, now);
                    }
                    return;
                }
            };
            if self.open >= self.settings.max_conns {
                // Over capacity: closing at once is the refusal (dropping `sock`).
                h.transport.tcp_refused += 1;
                continue;
            }
            let from_source = self.per_source.get(&peer.ip()).copied().unwrap_or(0);
            if from_source >= self.settings.max_per_source {
                h.transport.tcp_refused += 1;
                h.transport.tcp_source_refused += 1;
                continue;
            }
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = sock.set_nodelay(true);
            let tls_conn = match (tls, &self.tls_config) {
                (true, Some(cfg)) => match ServerConnection::new(cfg.clone()) {
                    Ok(c) => Some(Box::new(Connection::Server(c))),
                    Err(_) => {
                        h.transport.tls_errors += 1;
                        continue;
                    }
                },
                _ => None,
            };
            let conn = Conn::new(sock, peer, side, tls_conn, now, true);
            if self
                .insert(epoll, conn, (libc::EPOLLIN | libc::EPOLLRDHUP) as u32)
                .is_some()
            {
                *self.per_source.entry(peer.ip()).or_insert(0) += 1;
                h.transport.tcp_accepted += 1;
            }
        }
    }

    /// Put `conn` in a free slot, watched for `events`; its token, or `None` when epoll refused.
    fn insert(&mut self, epoll: &Epoll, mut conn: Conn, events: u32) -> Option<u64> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.next_generation = next_generation(self.next_generation);
        conn.generation = self.next_generation;
        let t = Token::conn(conn.generation, index).encode();
        if epoll.add(conn.sock.as_raw_fd(), events, t).is_err() {
            self.free.push(index);
            return None;
        }
        conn.want_out = events & libc::EPOLLOUT as u32 != 0;
        self.slots[index as usize] = Some(conn);
        self.open += 1;
        Some(t)
    }

    fn close(&mut self, epoll: &Epoll, index: u32) {
        if let Some(conn) = self.slots.get_mut(index as usize).and_then(Option::take) {
            epoll.delete(conn.sock.as_raw_fd());
            self.free.push(index);
            self.open -= 1;
            if conn.accepted {
                if let Some(n) = self.per_source.get_mut(&conn.peer.ip()) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.per_source.remove(&conn.peer.ip());
                    }
                }
            } else if self
                .outbound
                .get(&conn.peer)
                .and_then(|t| Token::decode(*t))
                .is_some_and(|t| t.index == index && t.is_current(conn.generation))
            {
                self.outbound.remove(&conn.peer);
                self.lost.push(conn.peer);
            }
        }
    }

    fn on_conn(
        &mut self,
        epoll: &Epoll,
        tok: Token,
        events: u32,
        h: &mut Handler,
        media: &mut dyn MediaControl,
        now: Instant,
    ) {
        let index = tok.index;
        let Some(Some(conn)) = self.slots.get_mut(index as usize) else {
            return;
        };
        if !tok.is_current(conn.generation) {
            return; // stale event of a closed connection whose slot was reused
        }
        conn.last_active = now;
        let mut keep = true;
        if conn.connecting {
            keep = finish_connect(conn, events, &mut h.transport);
        }
        let readable = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        if keep && !conn.connecting && events & readable != 0 {
            let flow = Flow(tok.encode());
            keep = read_conn(
                conn,
                flow,
                &mut self.scratch,
                &mut self.out,
                &self.settings.limits,
                h,
                media,
                now,
            );
        }
        if keep {
            keep = flush_conn(conn);
        }
        if keep {
            keep = update_interest(epoll, conn, index);
        }
        if !keep {
            h.transport.tcp_closed += 1;
            self.close(epoll, index);
        }
    }

    /// Queue `data` on the connection of stream token `tok` and write what the socket takes. Returns
    /// false when the connection is gone (closed, or its slot reused).
    pub(crate) fn send(&mut self, epoll: &Epoll, tok: u64, data: &[u8]) -> bool {
        let Some(tok) = Token::decode(tok).filter(|t| t.kind == Kind::Conn) else {
            return false;
        };
        let index = tok.index;
        let Some(Some(conn)) = self.slots.get_mut(index as usize) else {
            return false;
        };
        if !tok.is_current(conn.generation) {
            return false;
        }
        let queued = match &mut conn.tls {
            None => {
                conn.wbuf.extend_from_slice(data);
                true
            }
            // A request over TLS names `TLS` in its top Via (the B2BUA writes `TCP` for any
            // connection), on connections the peer opened as on those the SBC opened.
            Some(tls) => tls.writer().write_all(&connect::via_over_tls(data)).is_ok(),
        };
        let keep = queued
            && conn.wbuf.len() <= MAX_WRITE_QUEUE
            && flush_conn(conn)
            && update_interest(epoll, conn, index);
        if !keep {
            self.close(epoll, index);
        }
        keep
    }

    /// Send request `data` to `dest` over the worker's connection to it when `dest` is a next hop
    /// reached over TCP or TLS (opened now if there is none): `None` when it is not, or when `data`
    /// is a response (a response leaves by the flow its request came on; the caller sends the
    /// datagram), else whether it was queued.
    pub(crate) fn send_to(
        &mut self,
        epoll: &Epoll,
        dest: SocketAddr,
        data: &[u8],
        counters: &mut Transport,
    ) -> Option<bool> {
        let peer = self.peers.get(&dest)?.clone();
        if data.starts_with(b"SIP/2.0 ") {
            return None;
        }
        if let Some(tok) = self.outbound.get(&dest).copied() {
            if self.send(epoll, tok, data) {
                return Some(true);
            }
        }
        if self.open >= self.settings.max_conns {
            counters.tcp_connect_failures += 1;
            self.lost.push(dest);
            return Some(false);
        }
        counters.tcp_connects += 1;
        let sock = match connect::start(dest) {
            Ok(s) => s,
            Err(e) => {
                counters.tcp_connect_failures += 1;
                tracing::warn!(%dest, "connect: {e}");
                self.lost.push(dest);
                return Some(false);
            }
        };
        let tls = match peer.tls {
            Some((cfg, name)) => match ClientConnection::new(cfg, name) {
                Ok(c) => Some(Box::new(Connection::Client(c))),
                Err(e) => {
                    counters.tls_errors += 1;
                    tracing::warn!(%dest, "tls: {e}");
                    self.lost.push(dest);
                    return Some(false);
                }
            },
            None => None,
        };
        let conn = Conn::new(sock, dest, peer.side, tls, Instant::now(), false);
        let events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP) as u32;
        let Some(tok) = self.insert(epoll, conn, events) else {
            counters.tcp_connect_failures += 1;
            self.lost.push(dest);
            return Some(false);
        };
        self.outbound.insert(dest, tok);
        Some(self.send(epoll, tok, data))
    }

    /// Close connections whose connect or TLS handshake outlasted its deadline, and connections idle
    /// for longer than the idle timeout unless they carry a live registration or call (those are
    /// looked at again one idle timeout later).
    pub(crate) fn expire(&mut self, epoll: &Epoll, now: Instant, h: &mut Handler) {
        let StreamSettings {
            idle, handshake, ..
        } = self.settings;
        let mut doomed = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(c) = slot else { continue };
            if c.setting_up() && now.duration_since(c.opened) > handshake {
                h.transport.tls_handshake_timeouts += 1;
                doomed.push(i as u32);
            } else if now.duration_since(c.last_active) > idle {
                let tok = Token::conn(c.generation, i as u32).encode();
                if h.signalling.uses_connection(tok, c.peer) {
                    c.last_active = now;
                } else {
                    h.transport.tcp_idle_closed += 1;
                    doomed.push(i as u32);
                }
            }
        }
        for i in doomed {
            h.transport.tcp_closed += 1;
            self.close(epoll, i);
        }
    }
}

/// Whether an accept error means the process or the system is out of descriptors or memory: the
/// pending connection stays queued, so retrying at once would spin.
pub(crate) fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A connect in progress got an event: made (write what waits) or failed. Returns false to close.
fn finish_connect(conn: &mut Conn, events: u32, counters: &mut Transport) -> bool {
    let done = (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32;
    if events & done == 0 {
        return true;
    }
    match conn.sock.take_error() {
        Ok(None) if events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 => {
            conn.connecting = false;
            true
        }
        Ok(Some(e)) | Err(e) => {
            counters.tcp_connect_failures += 1;
            tracing::warn!(dest = %conn.peer, "connect: {e}");
            false
        }
        Ok(None) => {
            counters.tcp_connect_failures += 1;
            tracing::warn!(dest = %conn.peer, "connect: connection refused or reset");
            false
        }
    }
}
/// Read what is available, frame it and queue the answers. Returns false to close.
#[allow(clippy::too_many_arguments)] // the handler and the worker's relay travel together
fn read_conn(
    conn: &mut Conn,
    flow: Flow,
    scratch: &mut [u8],
    out: &mut Vec<u8>,
    limits: &Limits,
    h: &mut Handler,
    media: &mut dyn MediaControl,
    now: Instant,
) -> bool {
    let mut peer_closed = false;
    for _ in 0..READS_PER_EVENT {
        match &mut conn.tls {
            None => match conn.sock.read(scratch) {
                Ok(0) => {
                    peer_closed = true;
                    break;
                }
                Ok(n) => conn.rbuf.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            },
            Some(tls) => {
                match tls.read_tls(&mut conn.sock) {
                    Ok(0) => peer_closed = true,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
                if let Err(e) = tls.process_new_packets() {
                    h.transport.tls_errors += 1;
                    if !conn.accepted {
                        // A next hop the SBC chose (an attacker cannot make this line repeat).
                        tracing::warn!(dest = %conn.peer, "tls: {e}");
                    }
                    // Send the alert rustls queued, then close.
                    let _ = tls.write_tls(&mut conn.sock);
                    return false;
                }
                loop {
                    match tls.reader().read(scratch) {
                        Ok(0) => {
                            peer_closed = true;
                            break;
                        }
                        Ok(n) => conn.rbuf.extend_from_slice(&scratch[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => return false,
                    }
                }
                if peer_closed {
                    break;
                }
            }
        }
        if !frame_and_handle(conn, flow, out, limits, h, media, now) {
            return false;
        }
    }
    if !frame_and_handle(conn, flow, out, limits, h, media, now) {
        return false;
    }
    if peer_closed {
        // Answers to what arrived before the close still go out if the socket takes them at once.
        let _ = flush_conn(conn);
        return false;
    }
    true
}

/// Cut every whole message out of the read buffer and handle it (answers go to the handler's
/// outbox); keep-alive pongs are queued on the connection here.
fn frame_and_handle(
    conn: &mut Conn,
    flow: Flow,
    out: &mut Vec<u8>,
    limits: &Limits,
    h: &mut Handler,
    media: &mut dyn MediaControl,
    now: Instant,
) -> bool {
    let origin = Origin {
        source: conn.peer,
        side: conn.side,
        reliable: true,
        flow,
    };
    let mut consumed = 0;
    let mut ok = true;
    out.clear();
    loop {
        let rest = &conn.rbuf[consumed..];
        match next_frame(rest, limits) {
            Ok(Frame::Incomplete) => break,
            Ok(Frame::Skip(n)) => consumed += n,
            Ok(Frame::KeepAlive(n)) => {
                // RFC 5626 §4.4.1: answer a CRLFCRLF ping with a CRLF pong.
                h.transport.keepalives += 1;
                out.extend_from_slice(b"\r\n");
                consumed += n;
            }
            Ok(Frame::Complete(n)) => {
                h.transport.stream_rx_messages += 1;
                let msg = Bytes::copy_from_slice(&rest[..n]);
                h.handle(msg, origin, now, media);
                consumed += n;
            }
            Err(_) => {
                h.transport.framing_errors += 1;
                ok = false;
                break;
            }
        }
    }
    conn.rbuf.drain(..consumed);
    if !out.is_empty() {
        match &mut conn.tls {
            None => conn.wbuf.extend_from_slice(out),
            Some(tls) => {
                if tls.writer().write_all(out).is_err() {
                    return false;
                }
            }
        }
    }
    ok && conn.wbuf.len() <= MAX_WRITE_QUEUE
}

/// Write as much of the queue as the socket takes. Returns false to close.
fn flush_conn(conn: &mut Conn) -> bool {
    if conn.connecting {
        return true; // written once the connect is made
    }
    if let Some(tls) = &mut conn.tls {
        while tls.wants_write() {
            match tls.write_tls(&mut conn.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        return true;
    }
    while conn.wpos < conn.wbuf.len() {
        match conn.sock.write(&conn.wbuf[conn.wpos..]) {
            Ok(0) => return false,
            Ok(n) => conn.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    if conn.wpos == conn.wbuf.len() {
        conn.wbuf.clear();
        conn.wpos = 0;
    } else if conn.wpos > 64 * 1024 {
        conn.wbuf.drain(..conn.wpos);
        conn.wpos = 0;
    }
    true
}

/// Ask for `EPOLLOUT` exactly while output is pending.
fn update_interest(epoll: &Epoll, conn: &mut Conn, index: u32) -> bool {
    let pending = conn.connecting
        || match &conn.tls {
            Some(tls) => tls.wants_write(),
            None => conn.wpos < conn.wbuf.len(),
        };
    if pending != conn.want_out {
        let mut ev = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        if pending {
            ev |= libc::EPOLLOUT as u32;
        }
        if epoll
            .modify(
                conn.sock.as_raw_fd(),
                ev,
                Token::conn(conn.generation, index).encode(),
            )
            .is_err()
        {
            return false;
        }
        conn.want_out = pending;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use sbc_core::media::NoRelay;

    /// The child's part of [`accept_backs_off_when_out_of_descriptors`] (run in its own process:
    /// it uses up the process's descriptors).
    const CHILD: &str = "SBC_STREAM_EMFILE_CHILD";

    fn streams(listener: TcpListener) -> Streams {
        listener.set_nonblocking(true).unwrap();
        Streams::new(
            vec![Listener {
                sock: listener,
                tls: false,
                side: Side::Outside,
            }],
            None,
            Peers::default(),
            StreamSettings {
                max_conns: 16,
                max_per_source: 16,
                idle: Duration::from_secs(60),
                handshake: Duration::from_secs(10),
                limits: Limits {
                    max_header: 16 * 1024,
                    max_body: 65535,
                },
            },
        )
    }

    /// Events ready on `epoll` within `ms`.
    fn ready(epoll: &Epoll, ms: i32) -> usize {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
        epoll.wait(&mut events, ms).unwrap()
    }

    #[test]
    fn resource_errors_are_told_apart() {
        for e in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(out_of_resources(&io::Error::from_raw_os_error(e)));
        }
        for e in [libc::ECONNABORTED, libc::EPERM, libc::EAGAIN] {
            assert!(!out_of_resources(&io::Error::from_raw_os_error(e)));
        }
    }

    /// Out of descriptors, a pending connection cannot be accepted: the listener is taken off the
    /// epoll for [`ACCEPT_BACKOFF`] (the worker does not wake up for it again and again), then
    /// watched again, and the connection is accepted once descriptors are free.
    #[test]
    fn accept_backs_off_when_out_of_descriptors() {
        if std::env::var_os(CHILD).is_some() {
            return emfile_child();
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "stream::tests::accept_backs_off_when_out_of_descriptors",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("emfile child done"), "{text}");
    }

    fn emfile_child() {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut s = streams(listener);
        let epoll = Epoll::new().unwrap();
        s.register(&epoll).unwrap();
        let mut h = crate::handler::tests::handler(0);
        let _client = TcpStream::connect(addr).unwrap();
        assert_eq!(ready(&epoll, 1000), 1, "listener readable");
        // Use up every descriptor.
        let mut fillers = Vec::new();
        loop {
            // SAFETY: dup of stdin; the result is closed below.
            let fd = unsafe { libc::dup(0) };
            if fd < 0 {
                assert_eq!(
                    io::Error::last_os_error().raw_os_error(),
                    Some(libc::EMFILE)
                );
                break;
            }
            fillers.push(fd);
        }
        let tok = Token::new(Kind::TcpListen, 0).encode();
        assert!(s.on_event(&epoll, tok, libc::EPOLLIN as u32, &mut h, &mut NoRelay, now));
        assert_eq!(h.transport.tcp_accept_paused, 1);
        assert_eq!(h.transport.tcp_accepted, 0);
        // Paused: the pending connection does not wake the loop.
        assert_eq!(ready(&epoll, 50), 0, "listener still armed");
        s.resume_accepting(&epoll, now + ACCEPT_BACKOFF / 2);
        assert_eq!(ready(&epoll, 50), 0, "resumed before the back-off");
        for fd in fillers {
            // SAFETY: closing the descriptors dup'ed above.
            unsafe { libc::close(fd) };
        }
        s.resume_accepting(&epoll, now + ACCEPT_BACKOFF);
        assert_eq!(ready(&epoll, 1000), 1, "listener not armed again");
        assert!(s.on_event(&epoll, tok, libc::EPOLLIN as u32, &mut h, &mut NoRelay, now));
        assert_eq!(h.transport.tcp_accepted, 1);
        println!("emfile child done");
    }
}
