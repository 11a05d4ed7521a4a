//! DTMF interworking between SIP INFO and RFC 4733 (see [`crate::media::dtmf_relay`]): an INFO
//! digit from an `info` leg whose other leg is `rfc4733` is answered here and played by the relay
//! toward the other leg; a telephone-event the relay reports from an `rfc4733` leg whose other
//! leg is `info` becomes one INFO on that leg. The INFOs of a call go one at a time (the next
//! when the previous has its final answer), so the digits arrive once and in order.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use sbc_sip::transaction::{ClientTxId, ServerTxId};
use sbc_sip::writer::MessageWriter;
use sbc_sip::{HeaderName, Message, Method};

use super::{B2bua, ClientRole, State};
use crate::media::callmedia::InfoDigits;
use crate::media::dtmf_relay::{self, DtmfRelay, InfoBody};
use crate::media::{MediaControl, MediaSide};
use crate::signalling::ids::IdKind;
use crate::signalling::topology::Side;

/// Most digits waiting for an INFO on one call; later ones are dropped (counted).
pub(super) const INFO_QUEUE: usize = 32;

/// The INFOs of one call toward its `info` leg.
#[derive(Debug, Default)]
pub(super) struct InfoOut {
    /// Digits not sent yet, with the leg they go to.
    queue: VecDeque<(Side, DtmfRelay)>,
    /// The INFO whose final answer is awaited.
    pending: Option<ClientTxId>,
}

/// Counters of the interworking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DtmfStats {
    /// INFO digits answered by the SBC and played as RFC 4733 events.
    pub info_to_events: u64,
    /// INFO digits played as in-band tones toward an `inband` leg (G.711).
    pub info_to_tones: u64,
    /// Telephone-events sent on as INFO.
    pub events_to_info: u64,
    /// DTMF INFOs refused: body malformed (400) or of a type the SBC does not read (415).
    pub info_refused: u64,
    /// Digits dropped: the relay's or the call's queue was full, or the call had ended.
    pub dropped: u64,
}

impl B2bua {
    /// Counters of the DTMF interworking.
    pub fn dtmf_stats(&self) -> DtmfStats {
        self.dtmf_stats
    }

    /// An INFO from leg `from` of call `key`, in a confirmed dialog: `true` when it was answered
    /// here (converted to RFC 4733, or refused), `false` to relay it as any other request.
    pub(super) fn dtmf_info(
        &mut self,
        now: Instant,
        key: u64,
        tx: ServerTxId,
        req: &Message,
        from: Side,
        relay: &mut dyn MediaControl,
    ) -> bool {
        let (Some(m), Some(call)) = (self.media.as_ref(), self.calls.get(&key)) else {
            return false;
        };
        let side = if call.a.side == from {
            MediaSide::A
        } else {
            MediaSide::B
        };
        let Some((session, stream, how)) = m.info_to_events(&call.media, side) else {
            return false;
        };
        let body = dtmf_relay::classify_info(
            req.header(HeaderName::ContentType),
            req.header_by_name("Info-Package"),
            req.body(),
        );
        let digit = match body {
            InfoBody::Other => return false,
            InfoBody::Malformed => {
                self.dtmf_stats.info_refused += 1;
                self.reply(now, tx, req, 400, None);
                return true;
            }
            InfoBody::Unsupported => {
                self.dtmf_stats.info_refused += 1;
                self.reply(now, tx, req, 415, None);
                return true;
            }
            InfoBody::Digit(d) => d,
        };
        let toward = side.other();
        let sent = match how {
            InfoDigits::Events(pt) => {
                relay.send_dtmf(session, stream, toward, pt, digit.event, digit.samples())
            }
            InfoDigits::Tones => {
                relay.send_dtmf_tone(session, stream, toward, digit.event, digit.samples())
            }
        };
        match sent {
            Ok(true) => {
                match how {
                    InfoDigits::Events(_) => self.dtmf_stats.info_to_events += 1,
                    InfoDigits::Tones => self.dtmf_stats.info_to_tones += 1,
                }
                self.reply(now, tx, req, 200, None);
            }
            _ => {
                self.dtmf_stats.dropped += 1;
                self.reply(now, tx, req, 503, None);
            }
        }
        true
    }

    /// Turn the telephone-events the relay reported into INFOs (the worker calls this when
    /// [`MediaControl::dtmf_pending`]). Bounded by what the relay queued.
    pub fn handle_media_events(&mut self, now: Instant, relay: &mut dyn MediaControl) {
        self.last_now = Some(now);
        self.trusted_now = false;
        while let Some(d) = relay.poll_dtmf() {
            let Some(m) = self.media.as_ref() else {
                continue;
            };
            let key = m.call_of(d.session);
            let target = key.and_then(|k| self.calls.get(&k)).and_then(|call| {
                let confirmed = matches!(call.state, State::Confirmed | State::AwaitAck);
                let to = match d.from {
                    MediaSide::A => call.b.side,
                    MediaSide::B => call.a.side,
                };
                (confirmed && m.events_to_info(&call.media, d.from)).then_some(to)
            });
            let (Some(key), Some(to), Some(digit)) = (
                key,
                target,
                DtmfRelay::from_event(d.event, u32::from(d.duration)),
            ) else {
                self.dtmf_stats.dropped += 1;
                continue;
            };
            let Some(call) = self.calls.get_mut(&key) else {
                continue;
            };
            let out = call.dtmf_out.get_or_insert_with(Box::default);
            if out.queue.len() >= INFO_QUEUE {
                self.dtmf_stats.dropped += 1;
                continue;
            }
            out.queue.push_back((to, digit));
            self.send_next_info(now, key);
        }
        self.pump(now, None, relay);
    }

    /// Send the call's next queued INFO unless one is awaiting its answer.
    pub(super) fn send_next_info(&mut self, now: Instant, key: u64) {
        loop {
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            let Some(out) = call.dtmf_out.as_deref_mut() else {
                return;
            };
            if out.pending.is_some() {
                return;
            }
            let Some((to, digit)) = out.queue.pop_front() else {
                return;
            };
            if !matches!(call.state, State::Confirmed | State::AwaitAck) {
                return;
            }
            let leg = call.leg_mut(to);
            leg.cseq += 1;
            let snapshot = leg.clone();
            let branch = self.ids.generate(IdKind::Branch);
            let bytes = self.build_info(&snapshot, branch.as_str(), &digit);
            let sent = self.send_request_bytes(
                now,
                bytes,
                &Method::Info,
                branch.as_str(),
                (snapshot.dest, snapshot.reliable, snapshot.flow),
            );
            match sent {
                Ok(c) => {
                    self.clients.insert(c, ClientRole::DtmfInfo(key));
                    if let Some(out) = self
                        .calls
                        .get_mut(&key)
                        .and_then(|c| c.dtmf_out.as_deref_mut())
                    {
                        out.pending = Some(c);
                    }
                    self.dtmf_stats.events_to_info += 1;
                    return;
                }
                Err(_) => self.dtmf_stats.dropped += 1,
            }
        }
    }

    /// The final answer (or the failure) of an INFO the SBC sent: the next digit goes.
    pub(super) fn info_done(&mut self, now: Instant, key: u64, tx: ClientTxId) {
        if let Some(out) = self
            .calls
            .get_mut(&key)
            .and_then(|c| c.dtmf_out.as_deref_mut())
        {
            if out.pending == Some(tx) {
                out.pending = None;
            }
        }
        self.send_next_info(now, key);
    }

    /// An INFO of one digit on `leg` (legacy INFO usage, no Info-Package: what PBXs and phones
    /// that send `application/dtmf-relay` expect).
    fn build_info(&self, leg: &super::Leg, branch: &str, digit: &DtmfRelay) -> Bytes {
        let contact = self.contact_text(leg.side);
        let transport = if leg.reliable { "TCP" } else { "UDP" };
        let body = digit.to_body();
        let mut out = Vec::with_capacity(512);
        let mut w = MessageWriter::request(&mut out, &Method::Info, &leg.target_uri);
        w.header_parts(
            "Via",
            &[
                "SIP/2.0/", transport, " ", contact, ";branch=", branch, ";rport",
            ],
        );
        w.header_u32("Max-Forwards", 70);
        w.header("From", &leg.local);
        w.header("To", &leg.remote);
        w.header("Call-ID", &leg.call_id);
        w.header_cseq(leg.cseq, Method::Info.as_str());
        w.header_parts("Contact", &["<sip:", contact, ">"]);
        w.finish(Some(dtmf_relay::CONTENT_TYPE), body.as_bytes());
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests;
