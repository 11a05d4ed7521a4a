//! The glue to the media anchor: the SBC's SDP in place of each leg's, sessions freed when calls
//! end, and calls whose media stopped. Every touch of the anchor is here.

use std::time::Instant;

use sbc_sip::Message;

use super::{B2bua, CallEvent, EndReason, Origin, State};
use crate::media::callmedia::{AnchorFault, CallMedia, MediaAnchor};
use crate::media::{MediaControl, MediaSide, SessionHandle};
use crate::signalling::topology::Side;

impl B2bua {
    /// Anchor the media of every call on `anchor` (the worker's relay): SDP bodies are rewritten to
    /// its address and ports, sessions are freed when calls end, calls without media are ended.
    pub fn attach_media(&mut self, anchor: MediaAnchor) {
        self.media = Some(anchor);
    }

    /// The media anchor, for the worker's packet path and counters.
    pub fn media_mut(&mut self) -> Option<&mut MediaAnchor> {
        self.media.as_mut()
    }

    /// The media anchor.
    pub fn media(&self) -> Option<&MediaAnchor> {
        self.media.as_ref()
    }

    /// The media state of new call `key` and the body of leg B's INVITE for `req`, leg A's INVITE:
    /// its offer anchored (`None`: the body as received). A refused offer frees what it took.
    pub(super) fn anchor_offer(
        &mut self,
        now: Instant,
        key: u64,
        req: &Message,
        from: &Origin,
        target: &super::Target,
        relay: &mut dyn MediaControl,
    ) -> Result<(CallMedia, Option<Vec<u8>>), AnchorFault> {
        let mut media = CallMedia::new(self.config.seed ^ key);
        media.set_legs(
            from.side == Side::Outside,
            target.caller_media.clone(),
            target.media.clone(),
        );
        let Some(m) = self.media.as_mut() else {
            return Ok((media, None));
        };
        let peer = Some((from.source.ip(), from.side == Side::Outside));
        match m.anchor(relay, now, key, &mut media, req, MediaSide::A, peer) {
            Ok(body) => Ok((media, body)),
            Err(fault) => {
                m.count_refused();
                m.release(relay, &mut media, now);
                Err(fault)
            }
        }
    }

    /// Free the relay session of a call's `media` on `relay` (nothing without an anchor).
    pub(super) fn release_media(
        &mut self,
        relay: &mut dyn MediaControl,
        media: &mut CallMedia,
        now: Instant,
    ) {
        if let Some(m) = self.media.as_mut() {
            m.release(relay, media, now);
        }
    }

    /// Set the relay session of a call's `media` aside, for [`Self::flush_media`] at the end of
    /// the current entry point (for the ways a call ends where the relay is not at hand).
    /// Returns the session set aside, if the call had one.
    pub(super) fn release_media_later(&mut self, media: &mut CallMedia) -> Option<SessionHandle> {
        self.media.as_mut().and_then(|m| m.release_later(media))
    }

    /// Give the relay the sessions of the calls that ended in this entry point, each after its
    /// call record has read the final stream statistics, then hand the records to the driver
    /// ([`CallEvent::Ended`]).
    pub(super) fn flush_media(&mut self, relay: &mut dyn MediaControl) {
        let ending = &mut self.ending;
        if let (Some(m), Some(now)) = (self.media.as_mut(), self.last_now) {
            m.flush(relay, now, |h, relay| {
                if let Some((_, record)) = ending.iter_mut().find(|(s, _)| *s == Some(h)) {
                    let _ = relay.stats(h, &mut record.media);
                }
            });
        }
        for (_, record) in self.ending.drain(..) {
            self.events.push_back(CallEvent::Ended { record });
        }
    }

    /// The anchor's next deadline (idle sessions).
    pub(super) fn media_deadline(&self) -> Option<Instant> {
        self.media.as_ref().and_then(MediaAnchor::next_deadline)
    }

    /// The body to send for `msg`, a request from leg `from` of call `key`: the anchored SDP, or
    /// `None` to send the received body (no SDP, or media not anchored).
    pub(super) fn anchor_body(
        &mut self,
        now: Instant,
        key: u64,
        msg: &Message,
        from: Side,
        relay: &mut dyn MediaControl,
    ) -> Result<Option<Vec<u8>>, AnchorFault> {
        let (Some(m), Some(call)) = (self.media.as_mut(), self.calls.get_mut(&key)) else {
            return Ok(None);
        };
        let (side, leg) = if call.a.side == from {
            (MediaSide::A, &call.a)
        } else {
            (MediaSide::B, &call.b)
        };
        let peer = Some((leg.dest.ip(), leg.side == Side::Outside));
        let r = m.anchor(relay, now, key, &mut call.media, msg, side, peer);
        if r.is_err() {
            m.count_refused();
        }
        r
    }

    /// The body to send for `msg`, a response (or ACK) from leg `from` of call `key`, which cannot
    /// be refused: an SDP that cannot be anchored is dropped (counted) rather than leak the far
    /// end's addresses.
    pub(super) fn anchor_response(
        &mut self,
        now: Instant,
        key: u64,
        msg: &Message,
        from: Side,
        relay: &mut dyn MediaControl,
    ) -> Option<Vec<u8>> {
        match self.anchor_body(now, key, msg, from, relay) {
            Ok(body) => body,
            Err(_) => {
                if let Some(m) = self.media.as_mut() {
                    m.count_dropped_body();
                }
                Some(Vec::new())
            }
        }
    }

    /// Call `key` was answered: its media is no longer an early dialog's (see
    /// [`crate::media::callmedia::EarlyLimits`]).
    pub(super) fn media_answered(&mut self, key: u64) {
        if let (Some(m), Some(call)) = (self.media.as_mut(), self.calls.get_mut(&key)) {
            m.answered(&mut call.media);
        }
    }

    /// The offer/answer exchange of an in-dialog request of call `key` ended with `code`: a
    /// bigger session its offer took is kept on a 2xx, released otherwise (the call's media stays
    /// on the ports it had).
    pub(super) fn media_exchange_done(
        &mut self,
        now: Instant,
        key: u64,
        code: u16,
        relay: &mut dyn MediaControl,
    ) {
        if let (Some(m), Some(call)) = (self.media.as_mut(), self.calls.get_mut(&key)) {
            if (200..300).contains(&code) {
                m.commit_pending(relay, &mut call.media, now);
            } else {
                m.discard_pending(relay, &mut call.media, now);
            }
        }
    }

    /// End the confirmed calls whose media stopped (BYE on both legs).
    pub(super) fn end_silent_calls(&mut self, now: Instant, relay: &mut dyn MediaControl) {
        let Some(m) = self.media.as_mut() else {
            return;
        };
        let mut silent = Vec::new();
        m.poll_idle(relay, now, &mut silent);
        for key in silent {
            let confirmed = self
                .calls
                .get(&key)
                .is_some_and(|c| matches!(c.state, State::Confirmed | State::AwaitAck));
            if confirmed {
                self.end_with_bye(now, key, &[Side::Outside, Side::Inside], EndReason::NoMedia);
                self.remove(key, EndReason::NoMedia);
            }
        }
    }
}
