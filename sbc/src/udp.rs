//! Binding the SIP sockets: every worker binds each listen address itself with `SO_REUSEPORT`, so
//! the kernel spreads sources across workers by hash and a source keeps reaching the same worker.
//! The hash knows nothing of calls: a datagram of another worker's call is handed to it
//! ([`crate::handover`]). Every worker binds the same list in the same order, so a socket's index
//! names the same local address on every worker.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Bind a non-blocking UDP socket with `SO_REUSEPORT`.
pub(crate) fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.set_recv_buffer_size(4 << 20).ok();
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Bind a non-blocking TCP listener with `SO_REUSEADDR` and `SO_REUSEPORT`.
pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}
