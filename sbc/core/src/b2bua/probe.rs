//! OPTIONS health probes of targets and keep-alives toward user agents behind NAT.

use std::time::Instant;

use sbc_sip::transaction::ServerTxId;
use sbc_sip::{Message, Method};

use super::{B2bua, ClientRole, Leg, Target};
use crate::media::MediaControl;
use crate::signalling::ids::IdKind;

impl B2bua {
    /// Send an OPTIONS probe to `target`; its outcome comes back as [`CallEvent::Probed`] with
    /// `token`. Returns whether it could be sent.
    ///
    /// [`CallEvent::Probed`]: super::CallEvent::Probed
    pub fn probe(
        &mut self,
        now: Instant,
        target: &Target,
        token: u64,
        media: &mut dyn MediaControl,
    ) -> bool {
        let sent = self.send_options(now, target, ClientRole::Probe(token));
        self.pump(now, None, media);
        self.flush_media(media);
        sent
    }

    /// The PBX's OPTIONS to a user agent registered through the SBC (`target`, its binding):
    /// sent on to the agent as the SBC's own OPTIONS, and its final answer relayed back on `tx`
    /// (408 when it does not answer).
    pub(super) fn forward_options(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: Message,
        target: &Target,
    ) {
        // A cheap copy (the message shares its bytes), to answer when it cannot be sent.
        let kept = req.clone();
        let role = ClientRole::Forward {
            server: tx,
            request: Box::new(req),
        };
        if !self.send_options(now, target, role) {
            self.reply(now, tx, &kept, 503, None);
        }
    }

    /// An out-of-dialog OPTIONS to `target` in its own client transaction.
    pub(super) fn send_options(&mut self, now: Instant, target: &Target, role: ClientRole) -> bool {
        let call_id = self.ids.generate(IdKind::CallId).as_str().to_owned();
        let tag = self.ids.generate(IdKind::Tag);
        let branch = self.ids.generate(IdKind::Branch);
        let contact = self.contact(target.side);
        let uri = target
            .uri
            .clone()
            .unwrap_or_else(|| format!("sip:{}", target.dest));
        let leg = Leg {
            side: target.side,
            call_id,
            local: format!("<sip:sbc@{contact}>;tag={}", tag.as_str()),
            remote: format!("<{uri}>"),
            target_uri: uri,
            dest: target.dest,
            reliable: target.reliable,
            flow: target.flow,
            cseq: 1,
            invite_cseq: 0,
        };
        match self.send_built(
            now,
            &leg,
            &Method::Options,
            1,
            branch.as_str(),
            70,
            None,
            None,
        ) {
            Ok(c) => {
                self.clients.insert(c, role);
                true
            }
            Err(_) => false,
        }
    }
}
