//! Hand-over of SIP datagrams between workers.
//!
//! Every worker binds the SIP listen addresses with `SO_REUSEPORT`, so the kernel picks the worker of
//! a datagram by a hash of its addresses, not by the call it belongs to. A call toward a trunk is
//! owned by the worker that took the PBX's request, and its INVITE leaves from that worker's outside
//! socket; the carrier's responses and later requests come back to the shared outside port and may
//! be hashed to any worker. The ids the owner made say who it is (see
//! [`sbc_core::signalling::ids`]): a response names it in its top Via's branch, a request in a dialog
//! in its To tag. A datagram on an outside socket or the shared inside port that names another
//! worker of this process, by an authentic id, is handed to that worker with the index of the
//! socket it came on; the owner handles it as if it had arrived on its own socket of that index
//! (every worker binds the same list in the same order, so its answer leaves from the same local
//! address). Messages that name no dialog (new requests, CANCEL, whose branch is the peer's) stay
//! where the kernel put them: every source keeps one worker by the hash, and their INVITE's
//! worker owns the call. The worker's own inside port needs no look-up: only its own dialogs use it.
//!
//! Each worker has one bounded inbox (`crossbeam_channel`) and one doorbell, an eventfd its epoll
//! watches (under io_uring, through the ring's poll of that epoll). A sender queues datagrams during
//! a batch and rings each doorbell it queued for once, after the batch; a doorbell already rung and
//! not yet answered is not rung again, so a burst costs the owner one wake-up. A full inbox drops
//! the datagram (counted; the peer retransmits over UDP).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use sbc_core::signalling::ids::{IdGen, IdKind, WorkerId};
use sbc_sip::message::{owner_key, OwnerKey};

/// Datagrams an inbox holds before the next one handed to its worker is dropped.
pub(crate) const INBOX: usize = 1024;

/// One datagram handed to its owner: the index of the UDP socket it came on, its source and bytes.
pub(crate) struct Handed {
    pub(crate) index: usize,
    pub(crate) source: SocketAddr,
    pub(crate) data: Bytes,
}

/// A worker's doorbell: an eventfd, and whether it was rung since the worker last answered it.
struct Doorbell {
    fd: OwnedFd,
    rung: AtomicBool,
}

impl Doorbell {
    fn new() -> io::Result<Self> {
        // SAFETY: plain system call; the descriptor returned is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` is a fresh descriptor owned by no one else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            rung: AtomicBool::new(false),
        })
    }

    /// Wake the worker unless it was woken already and has not answered yet. The datagrams were
    /// queued before: the worker that answers (swap to false) then sees them.
    fn ring(&self) {
        if self.rung.swap(true, Ordering::AcqRel) {
            return;
        }
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to an eventfd we own. A full counter (never
        // reached: it is reset at each answer) would only fail with EAGAIN, and the worker is awake.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    /// The worker answers: the eventfd is read back to zero, and the next sender rings again.
    fn answer(&self) {
        let mut b = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer from an eventfd we own (non-blocking).
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
        self.rung.swap(false, Ordering::AcqRel);
    }
}

/// One worker's end of the hand-over: who owns what, the inboxes of the others, its own.
pub(crate) struct Handover {
    /// Validates the ids of every worker (same secret), generates none.
    ids: IdGen,
    workers: u16,
    /// The UDP sockets of index below this one are looked at (the outside ones and the shared inside
    /// port); the worker's own inside port is not.
    checked: usize,
    inboxes: Vec<Sender<Handed>>,
    doorbells: Arc<[Doorbell]>,
    inbox: Receiver<Handed>,
    /// Which workers were handed datagrams since the last [`Self::ring`].
    to_ring: Vec<bool>,
    any_to_ring: bool,
}

impl Handover {
    /// The hand-over of each of `workers` workers (in worker order). `checked`: how many UDP
    /// sockets of a worker, from index 0, are shared with the others (the outside sockets and the
    /// shared inside port).
    pub(crate) fn build(workers: u16, secret: [u8; 32], checked: usize) -> io::Result<Vec<Self>> {
        let n = usize::from(workers);
        let doorbells: Arc<[Doorbell]> = (0..n)
            .map(|_| Doorbell::new())
            .collect::<io::Result<Vec<_>>>()?
            .into();
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..n).map(|_| crossbeam_channel::bounded(INBOX)).unzip();
        Ok(receivers
            .into_iter()
            .zip(0..workers)
            .map(|(inbox, id)| Self {
                ids: IdGen::new(secret, WorkerId(id), 0),
                workers,
                checked,
                inboxes: senders.clone(),
                doorbells: doorbells.clone(),
                inbox,
                to_ring: vec![false; n],
                any_to_ring: false,
            })
            .collect())
    }

    /// The other worker that owns the datagram `data` received on UDP socket `index`; `None` when it
    /// is this worker's to handle (its own, none of ours, or not readable by the light scan).
    pub(crate) fn owner(&self, index: usize, data: &[u8]) -> Option<u16> {
        if self.workers < 2 || index >= self.checked {
            return None;
        }
        let (kind, id) = match owner_key(data)? {
            OwnerKey::Branch(b) => (IdKind::Branch, b),
            OwnerKey::ToTag(t) => (IdKind::Tag, t),
        };
        self.ids
            .other_owner(kind, id, self.workers)
            .map(|WorkerId(w)| w)
    }

    /// Queue `h` for worker `to`; false when its inbox is full (the datagram is dropped). Its
    /// doorbell rings at the next [`Self::ring`].
    pub(crate) fn hand(&mut self, to: u16, h: Handed) -> bool {
        let i = usize::from(to);
        let Some(tx) = self.inboxes.get(i) else {
            return false;
        };
        match tx.try_send(h) {
            Ok(()) => {
                if let Some(r) = self.to_ring.get_mut(i) {
                    *r = true;
                    self.any_to_ring = true;
                }
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Ring the doorbells of the workers handed datagrams since the last call (after each batch).
    pub(crate) fn ring(&mut self) {
        if !std::mem::take(&mut self.any_to_ring) {
            return;
        }
        for (r, bell) in self.to_ring.iter_mut().zip(self.doorbells.iter()) {
            if std::mem::take(r) {
                bell.ring();
            }
        }
    }

    /// This worker's doorbell, for its epoll.
    pub(crate) fn doorbell_fd(&self) -> Option<RawFd> {
        self.own_bell().map(|b| b.fd.as_raw_fd())
    }

    /// The doorbell rang: answer it, then take what waits (at most one inbox's worth, so that a
    /// flood cannot hold the loop; if more is left, the doorbell is rung again for the next turn).
    pub(crate) fn take(&self, mut f: impl FnMut(Handed)) {
        let Some(bell) = self.own_bell() else {
            return;
        };
        bell.answer();
        for h in self.inbox.try_iter().take(INBOX) {
            f(h);
        }
        if !self.inbox.is_empty() {
            bell.ring();
        }
    }

    fn own_bell(&self) -> Option<&Doorbell> {
        self.doorbells.get(usize::from(self.ids.worker().0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [5; 32];

    fn response(branch: &str) -> Vec<u8> {
        format!(
            "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch={branch};rport\r\n\
             To: <sip:b@h>;tag=x\r\nFrom: <sip:a@h>;tag=y\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn in_dialog(to_tag: &str) -> Vec<u8> {
        format!(
            "BYE sip:a@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKpeer\r\n\
             From: <sip:b@h>;tag=peer\r\nTo: <sip:a@h>;tag={to_tag}\r\nCall-ID: c\r\n\
             CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn handed(data: &[u8]) -> Handed {
        Handed {
            index: 0,
            source: "10.0.0.9:5060".parse().unwrap(),
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn owner_by_branch_of_responses_and_to_tag_of_requests() {
        let set = Handover::build(3, SECRET, 2).unwrap();
        let mut w0 = IdGen::new(SECRET, WorkerId(0), 1);
        let mut w2 = IdGen::new(SECRET, WorkerId(2), 1);
        let me = &set[0];
        // This worker's own ids: handled here.
        let own = w0.generate(IdKind::Branch);
        assert_eq!(me.owner(0, &response(own.as_str())), None);
        let own = w0.generate(IdKind::Tag);
        assert_eq!(me.owner(0, &in_dialog(own.as_str())), None);
        // Another worker's: handed to it, from an outside socket and from the shared inside port.
        let other = w2.generate(IdKind::Branch);
        assert_eq!(me.owner(0, &response(other.as_str())), Some(2));
        assert_eq!(me.owner(1, &response(other.as_str())), Some(2));
        let tag = w2.generate(IdKind::Tag);
        assert_eq!(me.owner(0, &in_dialog(tag.as_str())), Some(2));
        // ... but not from the worker's own inside port, which only its dialogs use.
        assert_eq!(me.owner(2, &response(other.as_str())), None);
        // An id of the wrong kind (a tag as branch), another process's, a forged one: here.
        let as_branch = format!("z9hG4bK{tag}");
        assert_eq!(me.owner(0, &response(&as_branch)), None);
        let mut stranger = IdGen::new([6; 32], WorkerId(2), 1);
        let foreign = stranger.generate(IdKind::Branch);
        assert_eq!(me.owner(0, &response(foreign.as_str())), None);
        let mut forged = other.as_str().to_owned();
        forged.replace_range(20..21, if &forged[20..21] == "a" { "b" } else { "a" });
        assert_eq!(me.owner(0, &response(&forged)), None);
        // A request outside a dialog, whatever its branch: here (its source's worker owns it).
        let invite = format!(
            "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch={other}\r\n\
             To: <sip:b@h>\r\nFrom: <sip:a@h>;tag=p\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
        );
        assert_eq!(me.owner(0, invite.as_bytes()), None);
        // Malformed: here, where the parser counts and answers it as before.
        for junk in [
            &b""[..],
            b"\xff\xfe",
            b"SIP/2.0 200",
            b"BYE sip:x SIP/2.0\r\nTo: <",
        ] {
            assert_eq!(me.owner(0, junk), None);
        }
        // One worker: never.
        let single = Handover::build(1, SECRET, 2).unwrap();
        assert_eq!(single[0].owner(0, &response(other.as_str())), None);
    }

    /// The owner sleeping in its epoll (where both drivers sleep) wakes when a datagram is handed
    /// to it, long before its 100 ms tick.
    #[test]
    fn a_sleeping_owner_wakes_at_once() {
        let mut set = Handover::build(2, SECRET, 2).unwrap();
        let w1 = set.pop().unwrap();
        let mut w0 = set.pop().unwrap();
        let epoll = crate::sys::Epoll::new().unwrap();
        epoll
            .add(w1.doorbell_fd().unwrap(), libc::EPOLLIN as u32, 7)
            .unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let owner = std::thread::spawn(move || {
            let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
            let mut waits = Vec::new();
            for _ in 0..20 {
                ready_tx.send(()).unwrap();
                let n = epoll.wait(&mut events, 1000).unwrap();
                let woke = std::time::Instant::now();
                assert_eq!((n, events[0].u64), (1, 7));
                let mut got = 0;
                w1.take(|_| got += 1);
                assert_eq!(got, 1);
                waits.push(woke);
            }
            waits
        });
        let mut rang = Vec::new();
        for _ in 0..20 {
            ready_rx.recv().unwrap();
            // Let the owner go to sleep in its wait.
            std::thread::sleep(std::time::Duration::from_millis(5));
            assert!(w0.hand(1, handed(b"x")));
            rang.push(std::time::Instant::now());
            w0.ring();
        }
        let woke = owner.join().unwrap();
        let mut lat: Vec<_> = woke.iter().zip(&rang).map(|(w, r)| *w - *r).collect();
        lat.sort();
        eprintln!("wake-up: median {:?}, worst {:?}", lat[10], lat[19]);
        // Scheduling on a loaded test machine varies; the median shows the wake-up, the worst is
        // still far below the tick.
        assert!(lat[10] < std::time::Duration::from_millis(2), "{lat:?}");
        assert!(lat[19] < std::time::Duration::from_millis(50), "{lat:?}");
    }

    #[test]
    fn handed_datagrams_reach_the_owner_with_one_ring_per_batch() {
        let mut set = Handover::build(2, SECRET, 2).unwrap();
        let (a, b) = set.split_at_mut(1);
        let (w0, w1) = (&mut a[0], &b[0]);
        let bell = w1.doorbell_fd().unwrap();
        let readable = || {
            let mut p = libc::pollfd {
                fd: bell,
                events: libc::POLLIN,
                revents: 0,
            };
            unsafe { libc::poll(&mut p, 1, 0) == 1 }
        };
        assert!(w0.hand(1, handed(b"one")));
        assert!(w0.hand(1, handed(b"two")));
        assert!(!readable(), "no wake-up before the batch ends");
        w0.ring();
        assert!(readable());
        // Rung and not answered: the next batch does not write again.
        assert!(w0.hand(1, handed(b"three")));
        w0.ring();
        let mut got = Vec::new();
        w1.take(|h| got.push(h.data));
        assert_eq!(got, [&b"one"[..], b"two", b"three"]);
        assert!(!readable(), "answered");
        // After the answer, the next batch wakes it again.
        assert!(w0.hand(1, handed(b"four")));
        w0.ring();
        assert!(readable());
        w1.take(|_| {});
        // A full inbox refuses.
        for _ in 0..INBOX {
            assert!(w0.hand(1, handed(b"x")));
        }
        assert!(!w0.hand(1, handed(b"over")));
        assert!(!w0.hand(7, handed(b"no such worker")));
        w0.ring();
        let mut n = 0;
        w1.take(|_| n += 1);
        assert_eq!(n, INBOX);
    }
}
