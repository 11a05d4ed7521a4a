//! The DTMF interworking calls of [`MediaShard`]: digits played toward a leg (RFC 4733 events or
//! in-band tones) and telephone-events taken off a leg and reported to the signalling (see
//! [`crate::dtmf_relay`]).

use super::{stream_mut, DtmfDigit, MediaShard, SessionHandle, Side};
use crate::dtmf_relay::LegDtmf;
use crate::Error;

impl MediaShard {
    /// The DTMF state of leg `side` of `stream`; made when it has none and `make`.
    fn leg_dtmf(
        &mut self,
        handle: SessionHandle,
        stream: usize,
        side: Side,
        make: bool,
    ) -> Result<Option<&mut LegDtmf>, Error> {
        let session = self.session_mut(handle)?;
        let leg = stream_mut(session, stream)?.leg_mut(side);
        if make {
            return Ok(Some(leg.dtmf.get_or_insert_with(Box::default)));
        }
        Ok(leg.dtmf.as_deref_mut())
    }

    /// Queue DTMF event `event` (0-15) of `duration` timestamp units to be played toward leg
    /// `toward` of `stream` as RFC 4733 packets of payload type `pt`, in the place of the audio
    /// relayed toward it (see [`crate::dtmf_relay`]). `Ok(false)`: the leg's queue is full.
    pub fn send_dtmf(
        &mut self,
        handle: SessionHandle,
        stream: usize,
        toward: Side,
        pt: u8,
        event: u8,
        duration: u16,
    ) -> Result<bool, Error> {
        let d = self.leg_dtmf(handle, stream, toward, true)?;
        Ok(d.is_some_and(|d| d.queue(pt, event, duration)))
    }

    /// Play DTMF event `event` (0-15) for `duration` 8 kHz samples toward leg `toward` of
    /// `stream` as its dual tone, written over the G.711 audio relayed toward it, then 60 ms of
    /// silence (SIP INFO toward a leg that takes DTMF in-band). `Ok(false)`: the leg's queue is
    /// full.
    pub fn send_dtmf_tone(
        &mut self,
        handle: SessionHandle,
        stream: usize,
        toward: Side,
        event: u8,
        duration: u16,
    ) -> Result<bool, Error> {
        let d = self.leg_dtmf(handle, stream, toward, true)?;
        Ok(d.is_some_and(|d| d.queue_tone(event, duration)))
    }

    /// Take the telephone-events of payload type `pt` from leg `from` of `stream` off the relay
    /// and report each once ([`MediaShard::poll_dtmf`]); `None`: relay them again.
    pub fn report_dtmf(
        &mut self,
        handle: SessionHandle,
        stream: usize,
        from: Side,
        pt: Option<u8>,
    ) -> Result<(), Error> {
        if let Some(d) = self.leg_dtmf(handle, stream, from, pt.is_some())? {
            d.report(pt);
        }
        Ok(())
    }

    /// Report the in-band DTMF digits of leg `from` of `stream` (its G.711 audio) by
    /// [`MediaShard::poll_dtmf`], each once when it ends, and mute the tones in the audio relayed
    /// on (`true`); `false`: stop.
    pub fn hear_dtmf(
        &mut self,
        handle: SessionHandle,
        stream: usize,
        from: Side,
        on: bool,
    ) -> Result<(), Error> {
        if let Some(d) = self.leg_dtmf(handle, stream, from, on)? {
            d.hear(on);
        }
        Ok(())
    }

    /// The next telephone-event reported (oldest first).
    pub fn poll_dtmf(&mut self) -> Option<DtmfDigit> {
        self.digits.pop_front()
    }

    /// Whether reported telephone-events wait for [`MediaShard::poll_dtmf`].
    pub fn dtmf_pending(&self) -> bool {
        !self.digits.is_empty()
    }
}
