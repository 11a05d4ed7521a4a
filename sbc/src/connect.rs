//! Connections the SBC opens itself: the next hops configured with `transport = "tcp"` or `"tls"`
//! (their side, and for TLS the client settings and the name to verify), and the non-blocking
//! connect. A request the B2BUA addresses to such a next hop leaves over the worker's connection to
//! it, opened on first use and reused after ([`crate::stream::Streams::send_to`]).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use sbc_core::signalling::topology::Side;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::StreamPeer;

/// How one next hop is reached.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    /// The side it is on (the side of the messages that come back over the connection).
    pub(crate) side: Side,
    /// TLS: the client settings and the name its certificate must carry; `None`: plain TCP.
    pub(crate) tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

/// The next hops of one worker reached over connections, by address.
#[derive(Clone, Debug, Default)]
pub(crate) struct Peers {
    by_addr: HashMap<SocketAddr, Peer>,
}

impl Peers {
    /// The table of `peers`; `client` is required when one of them is TLS (a TLS next hop is never
    /// reached in clear).
    pub(crate) fn new(
        peers: &[StreamPeer],
        client: Option<&Arc<ClientConfig>>,
    ) -> Result<Self, String> {
        let by_addr = peers
            .iter()
            .map(|p| {
                let tls = match (&p.tls_name, client) {
                    (Some(name), Some(c)) => Some((c.clone(), name.clone())),
                    (Some(_), None) => {
                        return Err(format!(
                            "{}: TLS next hop without TLS client settings",
                            p.addr
                        ))
                    }
                    (None, _) => None,
                };
                Ok((p.addr, Peer { side: p.side, tls }))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { by_addr })
    }

    /// How `addr` is reached, when it is a next hop over a connection.
    pub(crate) fn get(&self, addr: &SocketAddr) -> Option<&Peer> {
        if self.by_addr.is_empty() {
            return None; // the common case: no stream next hop, no hashing per datagram
        }
        self.by_addr.get(addr)
    }
}

/// The request `msg` as it leaves over TLS: the B2BUA names a connection's transport `TCP` in its
/// top Via (it knows connections, not TLS); over TLS it must say `TLS` (RFC 3261 §18.2.1), which
/// has the same length, so the bytes are changed in place. Responses and other messages pass as
/// they are.
pub(crate) fn via_over_tls(msg: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if msg.starts_with(b"SIP/2.0 ") {
        return msg.into();
    }
    let head_end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(msg.len());
    let Some(head) = msg.get(..head_end) else {
        return msg.into();
    };
    let at = [&b"\r\nVia: SIP/2.0/TCP "[..], b"\r\nv: SIP/2.0/TCP "]
        .iter()
        .filter_map(|pat| {
            let i = head
                .windows(pat.len())
                .position(|w| w.eq_ignore_ascii_case(pat))?;
            Some(i + pat.len() - 4)
        })
        .min();
    match at {
        Some(i) => {
            let mut owned = msg.to_vec();
            if let Some(t) = owned.get_mut(i..i + 3) {
                t.copy_from_slice(b"TLS");
            }
            owned.into()
        }
        None => msg.into(),
    }
}

/// Start a non-blocking connect to `addr`: the socket is returned at once, writable (or in error,
/// see `SO_ERROR`) when the connection is made or failed.
pub(crate) fn start(addr: SocketAddr) -> io::Result<TcpStream> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(sock.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn connects_without_blocking() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = start(l.local_addr().unwrap()).unwrap();
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer, s.local_addr().unwrap());
    }

    #[test]
    fn top_via_of_requests_says_tls() {
        let req = b"INVITE sip:a@h SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1:5081;branch=z9hG4bK1\r\n\
Via: SIP/2.0/TCP 10.0.0.9;branch=z9hG4bK2\r\nContent-Length: 0\r\n\r\n";
        let out = via_over_tls(req);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.contains("\r\nVia: SIP/2.0/TLS 10.0.0.1:5081;"),
            "{text}"
        );
        assert!(
            text.contains("\r\nVia: SIP/2.0/TCP 10.0.0.9;"),
            "only the top Via: {text}"
        );
        assert_eq!(out.len(), req.len());
        let compact = b"ACK sip:a@h SIP/2.0\r\nv: SIP/2.0/TCP 10.0.0.1:5081\r\nl: 0\r\n\r\n";
        assert!(std::str::from_utf8(&via_over_tls(compact))
            .unwrap()
            .contains("v: SIP/2.0/TLS "));
        let resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 10.0.0.1:5081\r\n\r\n";
        assert_eq!(&*via_over_tls(resp), &resp[..]);
        // A body that mentions a Via is not touched.
        let body = b"MESSAGE sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nl: 26\r\n\r\n\r\nVia: SIP/2.0/TCP x\r\n\r\n";
        assert_eq!(&*via_over_tls(body), &body[..]);
    }

    #[test]
    fn only_configured_peers_are_streams() {
        let a: SocketAddr = "127.0.0.1:5061".parse().unwrap();
        let peers = Peers::new(
            &[StreamPeer {
                addr: a,
                side: Side::Inside,
                tls_name: None,
            }],
            None,
        )
        .unwrap();
        assert_eq!(peers.get(&a).map(|p| p.side), Some(Side::Inside));
        assert!(peers.get(&"127.0.0.1:5062".parse().unwrap()).is_none());
        // A TLS peer without client settings is an error, never a peer reached in clear.
        let tls = Peers::new(
            &[StreamPeer {
                addr: a,
                side: Side::Outside,
                tls_name: Some(ServerName::try_from("pbx.example").unwrap()),
            }],
            None,
        );
        assert!(tls.is_err());
    }
}
