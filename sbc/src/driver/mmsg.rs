//! The epoll driver's batched UDP receive (`recvmmsg`) and send (`sendmmsg`).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use crate::sys::{sockaddr_from_bytes, sockaddr_to_storage};

/// Datagrams per `recvmmsg`/`sendmmsg` call.
pub(crate) const BATCH: usize = 32;

/// Receive and send buffers for one batch. The C structures point into the owned buffers; the pointers
/// are refreshed before each call, so the struct may move between calls.
pub(crate) struct MmsgBatch {
    buf_size: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Datagrams queued to send: bytes in `out`, (start, end, destination) per datagram.
    out: Vec<u8>,
    replies: Vec<(usize, usize, SocketAddr)>,
}

impl MmsgBatch {
    pub(crate) fn new(max_message: usize) -> Self {
        // One byte more than the largest message, so that an oversize datagram shows as truncated.
        let buf_size = max_message + 1;
        Self {
            buf_size,
            bufs: vec![0; buf_size * BATCH],
            // SAFETY (zeroed): plain C structures, all-zero is valid.
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ],
            hdrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            out: Vec::with_capacity(64 * 1024),
            replies: Vec::with_capacity(BATCH),
        }
    }

    /// Receive up to [`BATCH`] datagrams; returns how many (0 when none is waiting).
    pub(crate) fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * self.buf_size..].as_mut_ptr().cast(),
                iov_len: self.buf_size,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points into buffers owned by `self` that outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last receive: payload, source, and whether it was truncated.
    pub(crate) fn datagram(&self, i: usize) -> (&[u8], Option<SocketAddr>, bool) {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.buf_size);
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len == self.buf_size;
        let start = i * self.buf_size;
        // SAFETY: sockaddr_storage is plain bytes of its size.
        let addr_bytes = unsafe {
            std::slice::from_raw_parts(
                (&self.addrs[i] as *const libc::sockaddr_storage).cast::<u8>(),
                h.msg_hdr.msg_namelen as usize,
            )
        };
        (
            &self.bufs[start..start + len],
            sockaddr_from_bytes(addr_bytes),
            truncated,
        )
    }

    /// Queue `data` to `dst` for the next [`Self::flush`].
    pub(crate) fn queue(&mut self, data: &[u8], dst: SocketAddr) {
        let start = self.out.len();
        self.out.extend_from_slice(data);
        self.replies.push((start, self.out.len(), dst));
    }

    /// Send the queued datagrams with `sendmmsg`; returns (sent, failed). Clears the queue.
    pub(crate) fn flush(&mut self, sock: &UdpSocket) -> (u64, u64) {
        let (mut sent, mut failed) = (0u64, 0u64);
        let mut done = 0;
        while done < self.replies.len() {
            let chunk = (self.replies.len() - done).min(BATCH);
            for i in 0..chunk {
                let (s, e, dst) = self.replies[done + i];
                let len = sockaddr_to_storage(dst, &mut self.addrs[i]);
                self.iovs[i] = libc::iovec {
                    iov_base: self.out[s..e].as_ptr() as *mut libc::c_void,
                    iov_len: e - s,
                };
                let h = &mut self.hdrs[i].msg_hdr;
                h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = len;
                h.msg_iov = &mut self.iovs[i];
                h.msg_iovlen = 1;
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
            }
            // SAFETY: headers point into `self.out` and `self.addrs`, alive across the call.
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    chunk as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                // The first datagram of the chunk failed (full buffer, unreachable): skip it, go on.
                failed += 1;
                done += 1;
            } else {
                sent += n as u64;
                done += n as usize;
            }
        }
        self.replies.clear();
        self.out.clear();
        (sent, failed)
    }
}
