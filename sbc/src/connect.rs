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
