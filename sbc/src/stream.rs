//! SIP over TCP and TLS: listeners, a bounded connection table, framing and per-connection write queues.
//!
//! Readiness comes from the worker's epoll (level-triggered). Each connection keeps a read buffer that
//! the framer ([`sbc_sip::framing`]) cuts into messages, and a write queue that absorbs partial writes;
//! `EPOLLOUT` is asked for only while the queue is not empty. TLS runs rustls' `ServerConnection` on
//! the same socket and frames the decrypted stream the same way. A framing fault closes the connection
//! (RFC 3261 §18.3: a stream cannot be resynchronised).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::{ServerConfig, ServerConnection};
use sbc_core::b2bua::Origin;
use sbc_core::media::MediaControl;
use sbc_core::signalling::topology::Side;
use sbc_sip::framing::{next_frame, Frame, Limits};
use sbc_sip::transaction::Flow;

use crate::handler::Handler;
use crate::sys::Epoll;
use crate::tokens::{next_generation, Kind, Token};

/// A write queue above this closes the connection: the peer does not read.
const MAX_WRITE_QUEUE: usize = 1 << 20;
/// Reads per readiness event, so one busy connection cannot starve the others.
const READS_PER_EVENT: usize = 8;

struct Conn {
    sock: TcpStream,
    peer: SocketAddr,
    tls: Option<Box<ServerConnection>>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    last_active: Instant,
    generation: u32,
    want_out: bool,
}

/// Listeners and connections of one worker.
pub(crate) struct Streams {
    tcp_listeners: Vec<TcpListener>,
    tls_listeners: Vec<TcpListener>,
    tls_config: Option<Arc<ServerConfig>>,
    slots: Vec<Option<Conn>>,
    free: Vec<u32>,
    open: usize,
    max_conns: usize,
    idle: Duration,
    limits: Limits,
    next_generation: u32,
    scratch: Vec<u8>,
    out: Vec<u8>,
}

impl Streams {
    pub(crate) fn new(
        tcp_listeners: Vec<TcpListener>,
        tls_listeners: Vec<TcpListener>,
        tls_config: Option<Arc<ServerConfig>>,
        max_conns: usize,
        idle: Duration,
        limits: Limits,
    ) -> Self {
        Self {
            tcp_listeners,
            tls_listeners,
            tls_config,
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            max_conns,
            idle,
            limits,
            next_generation: 0,
            scratch: vec![0; 16 * 1024],
            out: Vec::with_capacity(4096),
        }
    }

    /// Register the listeners with `epoll`.
    pub(crate) fn register(&self, epoll: &Epoll) -> io::Result<()> {
        for (i, l) in self.tcp_listeners.iter().enumerate() {
            epoll.add(
                l.as_raw_fd(),
                libc::EPOLLIN as u32,
                Token::new(Kind::TcpListen, i as u32).encode(),
            )?;
        }
        for (i, l) in self.tls_listeners.iter().enumerate() {
            epoll.add(
                l.as_raw_fd(),
                libc::EPOLLIN as u32,
                Token::new(Kind::TlsListen, i as u32).encode(),
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
            Kind::TcpListen => self.accept(epoll, false, t.index as usize, h, now),
            Kind::TlsListen => self.accept(epoll, true, t.index as usize, h, now),
            Kind::Conn => self.on_conn(epoll, t, events, h, media, now),
            _ => return false,
        }
        true
    }

    fn accept(&mut self, epoll: &Epoll, tls: bool, i: usize, h: &mut Handler, now: Instant) {
        for _ in 0..64 {
            let listener = if tls {
                &self.tls_listeners[i]
            } else {
                &self.tcp_listeners[i]
            };
            let (sock, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // EMFILE and the like: count, retry at the next event.
                    h.transport.tcp_refused += 1;
                    return;
                }
            };
            if self.open >= self.max_conns {
                // Over capacity: closing at once is the refusal (dropping `sock`).
                h.transport.tcp_refused += 1;
                continue;
            }
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = sock.set_nodelay(true);
            let tls_conn = match (tls, &self.tls_config) {
                (true, Some(cfg)) => match ServerConnection::new(cfg.clone()) {
                    Ok(c) => Some(Box::new(c)),
                    Err(_) => {
                        h.transport.tls_errors += 1;
                        continue;
                    }
                },
                _ => None,
            };
            let index = match self.free.pop() {
                Some(i) => i,
                None => {
                    self.slots.push(None);
                    (self.slots.len() - 1) as u32
                }
            };
            self.next_generation = next_generation(self.next_generation);
            let generation = self.next_generation;
            let t = Token::conn(generation, index).encode();
            if epoll
                .add(
                    sock.as_raw_fd(),
                    (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
                    t,
                )
                .is_err()
            {
                self.free.push(index);
                continue;
            }
            self.slots[index as usize] = Some(Conn {
                sock,
                peer,
                tls: tls_conn,
                rbuf: Vec::new(),
                wbuf: Vec::new(),
                wpos: 0,
                last_active: now,
                generation,
                want_out: false,
            });
            self.open += 1;
            h.transport.tcp_accepted += 1;
        }
    }

    fn close(&mut self, epoll: &Epoll, index: u32) {
        if let Some(conn) = self.slots.get_mut(index as usize).and_then(Option::take) {
            epoll.delete(conn.sock.as_raw_fd());
            self.free.push(index);
            self.open -= 1;
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
        if events & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
        {
            let flow = Flow(tok.encode());
            keep = read_conn(
                conn,
                flow,
                &mut self.scratch,
                &mut self.out,
                &self.limits,
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
            Some(tls) => tls.writer().write_all(data).is_ok(),
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

    /// Close connections idle for longer than the configured timeout.
    pub(crate) fn expire_idle(&mut self, epoll: &Epoll, now: Instant, h: &mut Handler) {
        let idle = self.idle;
        let expired: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Some(c) if now.duration_since(c.last_active) > idle => Some(i as u32),
                _ => None,
            })
            .collect();
        for i in expired {
            h.transport.tcp_idle_closed += 1;
            self.close(epoll, i);
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
                if tls.process_new_packets().is_err() {
                    h.transport.tls_errors += 1;
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
        side: Side::Outside,
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
    let pending = match &conn.tls {
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

/// Load the TLS server configuration from PEM files (ring provider).
pub(crate) fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<ServerConfig>, String> {
    let certs = {
        let f =
            std::fs::File::open(cert).map_err(|e| format!("tls.cert {}: {e}", cert.display()))?;
        rustls_pemfile::certs(&mut io::BufReader::new(f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("tls.cert {}: {e}", cert.display()))?
    };
    if certs.is_empty() {
        return Err(format!(
            "tls.cert {}: no certificate in PEM file",
            cert.display()
        ));
    }
    let key_der = {
        let f = std::fs::File::open(key).map_err(|e| format!("tls.key {}: {e}", key.display()))?;
        rustls_pemfile::private_key(&mut io::BufReader::new(f))
            .map_err(|e| format!("tls.key {}: {e}", key.display()))?
            .ok_or_else(|| format!("tls.key {}: no private key in PEM file", key.display()))?
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key_der)
            .map_err(|e| format!("tls: {e}"))?;
    // No TLS 1.3 session tickets: SIP connections are long-lived and rarely resumed, and some SIP
    // stacks (sipsak 0.9.8 with GnuTLS, seen here) take the ticket records that follow the handshake
    // for the answer they wait for and give up.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}
