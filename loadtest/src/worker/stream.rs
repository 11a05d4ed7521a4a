//! SIP over TCP and TLS: one TCP connection per call (no pool: a call's connection lives and dies
//! with it, as a phone's would). The caller's leg connects to the target from its `--local-ip`
//! (and over TLS runs the client handshake); the callee listens on the `--uas` address (one
//! listener per thread, SO_REUSEPORT; over TLS with a certificate made at start). Messages are
//! framed on the stream by their Content-Length (RFC 3261 §18.3); nothing is retransmitted (the
//! transport is reliable). Buffers are bounded: a connection whose unframed input passes
//! `MAX_IN` (a message that big, or a broken Content-Length) or whose unsent output passes
//! `MAX_OUT` is closed and counted. Sockets are non-blocking in the thread's epoll set,
//! edge-triggered.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig};
use socket2::{Domain, Protocol, Socket, Type};

use super::Worker;
use crate::sipmsg::stream_frame_len;
use crate::template::Side;

/// The most input a connection holds that is not yet a whole message.
const MAX_IN: usize = 256 * 1024;
/// The most output a plain TCP connection holds that the socket has not taken.
const MAX_OUT: usize = 1 << 20;

/// epoll token of a thread's TCP/TLS listener; connections are `CONN_TOKEN | id`.
pub(super) const LISTEN_TOKEN: u64 = 2;
pub(super) const CONN_TOKEN: u64 = 1 << 62;

/// The TLS configuration every thread shares.
pub(crate) struct TlsSetup {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    name: ServerName<'static>,
}

impl TlsSetup {
    /// A self-signed certificate for `name` for the callee; the caller trusts it, or the PEM
    /// certificates of `ca` when given (a TLS target other than this process's own callee).
    pub(crate) fn new(ca: Option<&Path>, name: &str) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()])
            .map_err(|e| format!("TLS certificate: {e}"))?;
        let cert: CertificateDer<'static> = ck.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .map_err(|e| format!("TLS server: {e}"))?;
        let mut roots = RootCertStore::empty();
        match ca {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let c = c.map_err(|e| format!("{}: {e}", path.display()))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
            }
            None => roots.add(cert).map_err(|e| format!("TLS roots: {e}"))?,
        }
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_string()).map_err(|e| format!("TLS name: {e}"))?;
        Ok(Self {
            client: Arc::new(client),
            server: Arc::new(server),
            name,
        })
    }
}

/// One TCP or TLS connection of one call leg.
pub(super) struct Conn {
    sock: TcpStream,
    /// None: plain TCP.
    tls: Option<Connection>,
    /// Plain TCP: bytes the socket has not taken yet.
    out: Vec<u8>,
    side: Side,
    peer: SocketAddr,
    /// Plaintext received and not yet a whole message.
    inbuf: Vec<u8>,
    /// TLS: the handshake is done; TCP: the connection is up.
    handshaken: bool,
    /// The leg this connection carries (the callee's is known from its first message).
    slot: Option<u32>,
    /// Why TLS gave up on it (a certificate not trusted, a protocol alert), for the failure reason.
    error: Option<String>,
}

/// A non-blocking TCP listener with SO_REUSEPORT (the threads share the address).
pub(super) fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

fn epoll_add_stream(epfd: i32, fd: i32, token: u64) {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLET | libc::EPOLLRDHUP) as u32,
        u64: token,
    };
    // SAFETY: valid epoll fd and socket fd; `ev` lives across the call.
    unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
}

/// Writes what waits (the TLS layer's records, or the plain bytes) until done or the socket is
/// full; false when the connection failed.
fn flush(c: &mut Conn) -> bool {
    let Some(tls) = c.tls.as_mut() else {
        while !c.out.is_empty() {
            match c.sock.write(&c.out) {
                Ok(0) => return false,
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::NotConnected => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        return true;
    };
    while tls.wants_write() {
        match tls.write_tls(&mut c.sock) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::NotConnected => return true,
            Err(_) => return false,
        }
    }
    true
}

/// How a read of a connection ended.
#[derive(PartialEq, Eq)]
enum ReadEnd {
    /// The socket has nothing more for now.
    Drained,
    /// The connection ended or failed.
    Closed,
    /// `MAX_IN` bytes wait to be framed (the socket may hold more).
    Full,
}

/// Reads what the socket has into `c.inbuf` (decrypted over TLS), stopping at `MAX_IN`.
fn read_in(c: &mut Conn, tmp: &mut [u8]) -> ReadEnd {
    loop {
        if c.inbuf.len() > MAX_IN {
            return ReadEnd::Full;
        }
        let Some(tls) = c.tls.as_mut() else {
            match c.sock.read(tmp) {
                Ok(0) => return ReadEnd::Closed,
                Ok(n) => c.inbuf.extend_from_slice(tmp.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return ReadEnd::Drained,
                Err(e) if e.kind() == ErrorKind::NotConnected => return ReadEnd::Drained,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return ReadEnd::Closed,
            }
            continue;
        };
        match tls.read_tls(&mut c.sock) {
            Ok(0) => return ReadEnd::Closed,
            Ok(_) => {
                if let Err(e) = tls.process_new_packets() {
                    c.error = Some(e.to_string());
                    return ReadEnd::Closed;
                }
                loop {
                    match tls.reader().read(tmp) {
                        Ok(0) => return ReadEnd::Closed,
                        Ok(n) => c.inbuf.extend_from_slice(tmp.get(..n).unwrap_or_default()),
                        Err(_) => break,
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return ReadEnd::Drained,
            Err(e) if e.kind() == ErrorKind::NotConnected => return ReadEnd::Drained,
            Err(_) => return ReadEnd::Closed,
        }
    }
}

impl Worker {
    fn add_conn(&mut self, c: Conn) -> u32 {
        let fd = c.sock.as_raw_fd();
        let id = match self.free_conns.pop() {
            Some(i) => {
                self.conns[i as usize] = Some(c);
                i
            }
            None => {
                self.conns.push(Some(c));
                (self.conns.len() - 1) as u32
            }
        };
        epoll_add_stream(self.epfd, fd, CONN_TOKEN | u64::from(id));
        id
    }

    /// Opens the caller leg `slot`'s connection to the target; false when it could not start.
    pub(super) fn stream_connect(&mut self, slot: u32) -> bool {
        let target = self.cfg.target;
        let local = SocketAddr::new(self.cfg.uac_ip, 0);
        let started = (|| {
            let s = Socket::new(
                Domain::for_address(target),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            s.set_nonblocking(true)?;
            s.set_tcp_nodelay(true)?;
            // The port is chosen at connect (by the whole 4-tuple), not at bind: a bind to port 0
            // searches every port bound on the address, and thousands are, one per call.
            let one: libc::c_int = 1;
            // SAFETY: a valid socket and an int option of its size.
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&one as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            s.bind(&local.into())?;
            match s.connect(&target.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            Ok::<TcpStream, std::io::Error>(s.into())
        })();
        let Ok(sock) = started else {
            self.conn_failures += 1;
            return false;
        };
        let tls = match self.cfg.tls.as_ref() {
            Some(tls) => match ClientConnection::new(Arc::clone(&tls.client), tls.name.clone()) {
                Ok(c) => Some(Connection::Client(c)),
                Err(_) => {
                    self.conn_failures += 1;
                    return false;
                }
            },
            None => None,
        };
        let id = self.add_conn(Conn {
            sock,
            tls,
            out: Vec::new(),
            side: Side::Uac,
            peer: target,
            inbuf: Vec::new(),
            handshaken: false,
            slot: Some(slot),
            error: None,
        });
        if let Some(leg) = self.legs[slot as usize].as_mut() {
            leg.conn = Some(id);
        }
        true
    }

    /// Accepts the callers waiting on this thread's listener.
    pub(super) fn stream_accept(&mut self) {
        let server = self.cfg.tls.as_ref().map(|t| Arc::clone(&t.server));
        for _ in 0..256 {
            let Some(l) = self.listener.as_ref() else {
                return;
            };
            let Ok((sock, peer)) = l.accept() else {
                return;
            };
            let ok = sock.set_nonblocking(true).is_ok() && sock.set_nodelay(true).is_ok();
            let tls = match &server {
                Some(server) => match rustls::ServerConnection::new(Arc::clone(server)) {
                    Ok(c) => Some(Connection::Server(c)),
                    Err(_) => continue,
                },
                None => None,
            };
            if !ok {
                continue;
            }
            self.add_conn(Conn {
                sock,
                tls,
                out: Vec::new(),
                side: Side::Uas,
                peer,
                inbuf: Vec::new(),
                handshaken: false,
                slot: None,
                error: None,
            });
        }
    }

    /// The connection `id` is readable or writable: reads (and decrypts) what came, hands each
    /// whole SIP message to its leg, writes what waits.
    pub(super) fn stream_event(&mut self, id: u32) {
        let mut msgs = Vec::new();
        let mut tmp = [0u8; 16_384];
        let Some(Some(c)) = self.conns.get_mut(id as usize) else {
            return;
        };
        // Read and frame until the socket is drained: a full buffer is framed before reading on
        // (edge-triggered: nothing tells us again), and one still full after framing (a message
        // over `MAX_IN`, or a broken Content-Length) closes the connection.
        let mut dead = false;
        loop {
            let end = read_in(c, &mut tmp);
            while let Some(n) = stream_frame_len(&c.inbuf) {
                msgs.push(c.inbuf.drain(..n).collect::<Vec<u8>>());
            }
            match end {
                ReadEnd::Drained => break,
                ReadEnd::Closed => {
                    dead = true;
                    break;
                }
                ReadEnd::Full if c.inbuf.len() > MAX_IN => {
                    self.conn_overflows += 1;
                    dead = true;
                    break;
                }
                ReadEnd::Full => {}
            }
        }
        let up = match &c.tls {
            Some(t) => !t.is_handshaking(),
            None => c.sock.take_error().is_ok_and(|e| e.is_none()) && c.sock.peer_addr().is_ok(),
        };
        if !c.handshaken && up {
            c.handshaken = true;
            if c.side == Side::Uac {
                self.conn_opened += 1;
            }
        }
        if !flush(c) {
            dead = true;
        }
        let (side, peer) = (c.side, c.peer);
        for m in msgs {
            self.cur_conn = Some(id);
            self.on_sip(side, &m, peer);
        }
        self.cur_conn = None;
        if dead {
            self.stream_close(id, true);
        }
    }

    /// Queues a message on connection `id` and writes what the socket takes.
    pub(super) fn conn_send(&mut self, id: u32, bytes: &[u8]) {
        let Some(Some(c)) = self.conns.get_mut(id as usize) else {
            return;
        };
        let ok = match c.tls.as_mut() {
            Some(t) => t.writer().write_all(bytes).is_ok(),
            None if c.out.len().saturating_add(bytes.len()) > MAX_OUT => {
                self.conn_overflows += 1;
                false
            }
            None => {
                c.out.extend_from_slice(bytes);
                true
            }
        };
        if !(ok && flush(c)) {
            self.stream_close(id, true);
        }
    }

    /// Closes connection `id` (over TLS with a close_notify when it is still up); a caller leg still
    /// running on it fails.
    pub(super) fn stream_close(&mut self, id: u32, failed: bool) {
        let Some(mut c) = self.conns.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        self.free_conns.push(id);
        if !failed {
            if let Some(t) = c.tls.as_mut() {
                t.send_close_notify();
            }
            let _ = flush(&mut c);
        }
        if !c.handshaken && c.side == Side::Uac {
            self.conn_failures += 1;
        }
        let Some(slot) = c.slot else { return };
        let Some(leg) = self.legs.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if leg.conn == Some(id) {
            leg.conn = None;
            if failed && !leg.finished && leg.side == Side::Uac {
                let what = if self.cfg.tls.is_some() { "TLS" } else { "TCP" };
                let why = match c.error.take() {
                    Some(e) => format!("{what} error: {e}"),
                    None => format!("{what} connection lost"),
                };
                self.finish(slot, Some(why));
            }
        }
    }

    /// A callee leg created from a message of connection `cur_conn`: they belong together.
    pub(super) fn stream_bind_leg(&mut self, slot: u32) {
        let Some(id) = self.cur_conn else { return };
        if let Some(Some(c)) = self.conns.get_mut(id as usize) {
            c.slot = Some(slot);
        }
        if let Some(Some(leg)) = self.legs.get_mut(slot as usize) {
            leg.conn = Some(id);
        }
    }

    /// The connection a leg is done with (the caller's at its end, the callee's when reaped).
    pub(super) fn stream_release(&mut self, slot: u32) {
        let conn = self
            .legs
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .and_then(|l| l.conn.take());
        if let Some(id) = conn {
            self.stream_close(id, false);
        }
    }
}
