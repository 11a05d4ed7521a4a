//! An io_uring provided-buffer ring (kernel 5.19+): `count` buffers of `buf_size` bytes that the
//! kernel picks from for buffer-select receives (multishot `recvmsg`), and that the owner hands back
//! once it is done with them.
//!
//! One ring is one buffer group (`bgid`) of one `IoUring`. The protocol: [`BufRing::register`] maps
//! the ring, registers it and hands every buffer to the kernel; a completion names the buffer it
//! filled (`io_uring::cqueue::buffer_select`); [`BufRing::buf`] reads it; [`BufRing::push`] gives it
//! back and [`BufRing::publish`] makes the returned buffers visible to the kernel (once per batch).
//!
//! This crate does IO (it maps memory and registers it with the kernel): it is for the binaries
//! (the `sbc` drivers, the load tester), never a dependency of the pure crates.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// A registered provided-buffer ring and the buffers it hands out.
///
/// The kernel keeps pointers into the ring and its buffers while the group is registered: drop a
/// `BufRing` only after [`BufRing::unregister`], or after the `IoUring` it was registered with is
/// gone (declare it after the ring in a struct, so that the ring drops first).
pub struct BufRing {
    entries: *mut BufRingEntry,
    map_len: usize,
    bgid: u16,
    count: u16,
    tail: u16,
    buf_size: usize,
    bufs: Vec<u8>,
}

impl BufRing {
    /// Map a ring of `count` entries (a power of two, at most 32768), allocate `count` buffers of
    /// `buf_size` bytes, register them as buffer group `bgid` of `ring` and hand them all to the
    /// kernel.
    pub fn register(ring: &IoUring, bgid: u16, count: u16, buf_size: usize) -> io::Result<Self> {
        if !count.is_power_of_two()
            || count > 1 << 15
            || buf_size == 0
            || u32::try_from(buf_size).is_err()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "provided buffer ring: {count} buffers of {buf_size} bytes (a power of two, \
                     at most 32768, of 1 byte to 4 GiB)"
                ),
            ));
        }
        let map_len = usize::from(count) * size_of::<BufRingEntry>();
        // SAFETY: anonymous private mapping; page aligned as the kernel requires.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut me = Self {
            entries: ptr.cast(),
            map_len,
            bgid,
            count,
            tail: 0,
            buf_size,
            bufs: vec![0; usize::from(count) * buf_size],
        };
        // SAFETY: the mapping and the buffers live until `Drop`, which the caller orders after the
        // unregistration or the ring (see the type's documentation).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ptr as u64, count, bgid, 0)?;
        }
        for bid in 0..count {
            me.push(bid);
        }
        me.publish();
        Ok(me)
    }

    /// The buffer group id that receives name to pick from this ring.
    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The size of each buffer.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Hand buffer `bid` (back) to the kernel; visible after [`BufRing::publish`]. A `bid` out of
    /// range is ignored.
    pub fn push(&mut self, bid: u16) {
        if bid >= self.count {
            return;
        }
        let slot = usize::from(self.tail & (self.count - 1));
        let start = usize::from(bid) * self.buf_size;
        let addr = self.bufs[start..].as_mut_ptr() as u64;
        // SAFETY: `slot < count`, inside the mapping.
        let e = unsafe { &mut *self.entries.add(slot) };
        e.set_addr(addr);
        // Checked in `register`: the size fits in u32.
        e.set_len(self.buf_size as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Make the buffers pushed since the last call visible to the kernel.
    pub fn publish(&self) {
        // SAFETY: the tail field of the first entry, shared with the kernel; written with release
        // order after the entries (io_uring's protocol for provided-buffer rings).
        unsafe {
            let tail = BufRingEntry::tail(self.entries).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid` (at most the buffer); `None` for a `bid` out of range.
    pub fn buf(&self, bid: u16, len: usize) -> Option<&[u8]> {
        let start = usize::from(bid).checked_mul(self.buf_size)?;
        self.bufs.get(start..start + len.min(self.buf_size))
    }

    /// [`BufRing::buf`], writable (for a packet rewritten in place before it is sent from the
    /// buffer it was received in).
    pub fn buf_mut(&mut self, bid: u16, len: usize) -> Option<&mut [u8]> {
        let start = usize::from(bid).checked_mul(self.buf_size)?;
        self.bufs.get_mut(start..start + len.min(self.buf_size))
    }

    /// Unregister the group from `ring` (before the ring is reused without it, or dropped later
    /// than this ring).
    pub fn unregister(&self, ring: &IoUring) {
        let _ = ring.submitter().unregister_buf_ring(self.bgid);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: our mapping; unregistered (or the ring is gone) before this runs.
        unsafe { libc::munmap(self.entries.cast(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_that_are_not_a_power_of_two_are_refused() {
        let Ok(ring) = IoUring::new(8) else {
            eprintln!("skipped: io_uring is not available here");
            return;
        };
        for count in [0, 3, 100] {
            let e = BufRing::register(&ring, 0, count, 64).err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn registers_and_hands_out_buffers() {
        let Ok(ring) = IoUring::new(8) else {
            eprintln!("skipped: io_uring is not available here");
            return;
        };
        let mut bufs = match BufRing::register(&ring, 3, 8, 256) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("skipped: provided buffer rings are not available here: {e}");
                return;
            }
        };
        assert_eq!(bufs.bgid(), 3);
        assert_eq!(bufs.buf_size(), 256);
        assert_eq!(bufs.buf(7, 1000).map(<[u8]>::len), Some(256));
        assert_eq!(bufs.buf(0, 10).map(<[u8]>::len), Some(10));
        assert!(bufs.buf(8, 1).is_none());
        bufs.buf_mut(2, 4).unwrap().copy_from_slice(b"rtp!");
        assert_eq!(bufs.buf(2, 4), Some(&b"rtp!"[..]));
        // Every buffer is with the kernel: giving one back moves the tail past the first lap.
        bufs.push(2);
        bufs.push(99); // out of range: ignored
        bufs.publish();
        assert_eq!(bufs.tail, 9);
        bufs.unregister(&ring);
    }
}
