//! The epoll driver: level-triggered epoll over every socket of the worker, `recvmmsg` batches for
//! SIP over UDP, and the worker's outbox (stateless answers and the B2BUA's output alike) sent with
//! `sendmmsg` per socket after each batch and each loop turn.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use sbc_sip::transaction::Transmit;

use super::mmsg::{MmsgBatch, BATCH};
use crate::tokens::{Kind, Token};
use crate::worker::{MediaPath, Worker};

/// Run the epoll loop until the stop flag is set.
pub(crate) fn run(w: &mut Worker) -> io::Result<()> {
    for (i, s) in w.udp.iter().enumerate() {
        w.epoll.add(
            s.as_raw_fd(),
            libc::EPOLLIN as u32,
            Token::new(Kind::Udp, i as u32).encode(),
        )?;
    }
    if let Some(m) = &w.media {
        for (i, s) in m.socks.iter().enumerate() {
            w.epoll.add(
                s.as_raw_fd(),
                libc::EPOLLIN as u32,
                Token::new(Kind::Media, i as u32).encode(),
            )?;
        }
    }
    let mut media_buf = vec![0u8; 2048];
    let mut batch = MmsgBatch::new(w.max_message);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut pending = Vec::with_capacity(64);
    while !w.stopping() {
        let sleep = w.sleep_ms(Instant::now());
        let n = w.epoll.wait(&mut events, sleep)?;
        let now = Instant::now();
        for ev in &events[..n] {
            let (tok, flags) = (ev.u64, ev.events);
            let Some(t) = Token::decode(tok) else {
                continue;
            };
            match t.kind {
                Kind::Udp => udp_ready(w, t.index as usize, &mut batch, &mut pending),
                Kind::Ng => w.on_ng(now),
                Kind::Handover => w.on_handover(now),
                Kind::Media => {
                    if let Some(MediaPath {
                        socks: Some(socks),
                        shard,
                        counters,
                        ..
                    }) = w.media_path()
                    {
                        crate::media::relay_ready(
                            socks,
                            shard.shard_mut(),
                            t.index as usize,
                            &mut media_buf,
                            counters,
                            32,
                            now,
                        );
                    }
                }
                _ => w.on_stream_event(tok, flags, now),
            }
        }
        w.tick(now);
        send_outbox(w, &mut batch, &mut pending);
    }
    for s in &w.udp {
        w.epoll.delete(s.as_raw_fd());
    }
    Ok(())
}

/// Drain a readable UDP socket in batches (bounded per event; level-triggered epoll calls again),
/// then send what they caused.
fn udp_ready(w: &mut Worker, index: usize, batch: &mut MmsgBatch, pending: &mut Vec<Transmit>) {
    for _ in 0..8 {
        let n = match w.udp.get(index).map(|s| batch.recv(s)) {
            Some(Ok(n)) if n > 0 => n,
            _ => break,
        };
        let now = Instant::now();
        for i in 0..n {
            let (data, src, truncated) = batch.datagram(i);
            // RFC 3581 / RFC 3261 §18.2.2: a stateless answer goes to the packet's source address
            // and port (the handler addresses it so).
            let Some(src) = src else { continue };
            w.on_datagram(index, src, data, truncated, now);
        }
        if n < BATCH {
            break;
        }
    }
    send_outbox(w, batch, pending);
}

/// Send the worker's outbox: stream flows are written by the worker, UDP goes out with
/// `sendmmsg`, one batch per run of transmits on the same socket.
fn send_outbox(w: &mut Worker, batch: &mut MmsgBatch, pending: &mut Vec<Transmit>) {
    w.take_outbox(pending);
    let mut current = None;
    for t in pending.drain(..) {
        let sock = t.flow.0 as usize;
        if current != Some(sock) {
            flush(w, batch, current);
            current = Some(sock);
        }
        batch.queue(&t.bytes, t.dest);
    }
    flush(w, batch, current);
}

fn flush(w: &mut Worker, batch: &mut MmsgBatch, sock: Option<usize>) {
    let Some(s) = sock.and_then(|i| w.udp.get(i)) else {
        return;
    };
    let (sent, failed) = batch.flush(s);
    w.handler.transport.udp_tx += sent;
    w.handler.transport.udp_send_errors += failed;
}
