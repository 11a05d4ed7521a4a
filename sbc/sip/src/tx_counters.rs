//! The counters of the transaction layer (`Transactions::counters`): retransmissions sent and
//! received, for the SBC's metrics.

use std::collections::VecDeque;

/// What the transaction layer counted since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxCounters {
    /// Requests and responses sent again: by a retransmission timer (A, E, G), or as the answer
    /// to a retransmitted request.
    pub retransmitted: u64,
    /// Requests received again for a live server transaction (ACKs left out).
    pub retransmissions_received: u64,
}

impl TxCounters {
    /// Queue `again` (a message sent before, if there is one) on `out`, counted.
    pub(crate) fn resend<T>(&mut self, out: &mut VecDeque<T>, again: Option<T>) {
        if let Some(t) = again {
            out.push_back(t);
            self.retransmitted += 1;
        }
    }
}
