//! RFC 3261 §17 transactions, with the RFC 6026 corrections to the INVITE state machines.
//!
//! [`Transactions`] is a sans-IO table of client and server transactions. The driver follows one rule:
//! *mutate* (`handle_message`, `handle_timeout`, `handle_transport_error`, `send_request`,
//! `send_response`, `send_cancel`) → *drain* `poll_transmit` and `poll_event` → sleep until
//! `poll_timeout`. Time is always an input; the layer never reads a clock.
//!
//! Matching follows §17.1.3 (client: top Via branch + CSeq method) and §17.2.3 (server: branch +
//! sent-by + method, ACK matched to its INVITE, CANCEL a transaction of its own that finds its INVITE by
//! the same key). Only RFC 3261 branches (`z9hG4bK` cookie) are matched: the RFC 2543 fallback of
//! §17.2.3 is deliberately not implemented, such requests reach the TU as [`TxEvent::Stray`].
//!
//! The layer sends `100 Trying` for an INVITE when the TU has not answered within
//! [`TransactionConfig::trying_delay`] (200 ms by default, §17.2.1). It answers a CANCEL itself (200 when
//! it matches a server transaction, 481 otherwise) and tells the TU, which sends the 487.
//!
//! Deadlines sit in a per-transaction table indexed by [`Timer`] and in one timing wheel
//! ([`crate::wheel`]) of `(deadline, id, timer)` with lazy deletion: an entry is live only while the
//! table still holds that deadline, so rearming or cancelling a timer never searches the wheel.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::build;
pub use crate::error::TxError;
use crate::idmap::IdMap;
use crate::message::{Message, Method};
use crate::uri::Host;
use crate::wheel::Wheel;

/// Settings of the transaction layer.
#[derive(Clone, Debug)]
pub struct TransactionConfig {
    /// RTT estimate T1 (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, T2 (default 4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network, T4 (default 5 s).
    pub t4: Duration,
    /// Timer D over unreliable transports (default 32 s, at least 32 s per §17.1.1.2).
    pub timer_d: Duration,
    /// Delay before the layer answers an INVITE with 100 Trying on its own (default 200 ms).
    pub trying_delay: Duration,
    /// Maximum live transactions, client and server together (default 65 536). Each costs about one
    /// request plus one response of memory.
    pub max_transactions: usize,
    /// How long a finished transaction stays to absorb retransmissions over unreliable transports:
    /// Timers J, L and M (default 64*T1 = 32 s, as RFC 3261 and RFC 6026 say). A proxy or SBC under
    /// load often shortens it (Kamailio's `wt_timer` is 5 s): a late retransmission then meets a
    /// fresh transaction or a 481 instead of being absorbed, and memory holds a few seconds of
    /// calls instead of 32.
    pub linger: Duration,
    /// Timer C (RFC 3261 §16.6 step 11, more than three minutes; default 181 s): how long a client
    /// INVITE may stay in Proceeding without a final response before it is given up. A TU that
    /// rings longer raises it.
    pub timer_c: Duration,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
            trying_delay: Duration::from_millis(200),
            max_transactions: 65_536,
            linger: Duration::from_secs(32),
            timer_c: Duration::from_secs(181),
        }
    }
}

/// The RFC 3261 / RFC 6026 timers, plus the 200 ms "send 100 Trying" delay of §17.2.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// INVITE request retransmission (client, unreliable).
    TimerA = 0,
    /// INVITE transaction timeout (client).
    TimerB,
    /// Wait time for response retransmissions (client INVITE, Completed).
    TimerD,
    /// Non-INVITE request retransmission (client, unreliable).
    TimerE,
    /// Non-INVITE transaction timeout (client).
    TimerF,
    /// INVITE final response retransmission (server, unreliable).
    TimerG,
    /// Wait time for ACK receipt (server INVITE).
    TimerH,
    /// Wait time for ACK retransmissions (server INVITE, Confirmed).
    TimerI,
    /// Wait time for non-INVITE request retransmissions (server).
    TimerJ,
    /// Wait time for non-INVITE response retransmissions (client).
    TimerK,
    /// Wait time for accepted INVITE request retransmissions (server, RFC 6026).
    TimerL,
    /// Wait time for retransmissions of 2xx to INVITE (client, RFC 6026).
    TimerM,
    /// Send 100 Trying when the TU has not answered an INVITE in time (§17.2.1).
    Trying,
}

const TIMER_COUNT: usize = 13;

/// Every timer, in table order.
#[cfg(test)]
const ALL_TIMERS: [Timer; TIMER_COUNT] = [
    Timer::TimerA,
    Timer::TimerB,
    Timer::TimerD,
    Timer::TimerE,
    Timer::TimerF,
    Timer::TimerG,
    Timer::TimerH,
    Timer::TimerI,
    Timer::TimerJ,
    Timer::TimerK,
    Timer::TimerL,
    Timer::TimerM,
    Timer::Trying,
];

/// Deadlines of one transaction, indexed by [`Timer`].
#[derive(Clone, Debug, Default)]
struct TimerTable([Option<Instant>; TIMER_COUNT]);

impl Transaction {
    /// The last message this transaction sent, again, toward its peer (a retransmission).
    fn resend_last(&self) -> Option<Transmit> {
        self.last.clone().map(|bytes| Transmit {
            dest: self.peer,
            bytes,
            flow: self.flow,
        })
    }
}

impl TimerTable {
    fn get(&self, t: Timer) -> Option<Instant> {
        self.0.get(t as usize).copied().flatten()
    }
    fn set(&mut self, t: Timer, at: Option<Instant>) {
        if let Some(slot) = self.0.get_mut(t as usize) {
            *slot = at;
        }
    }
}

/// A client transaction handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(pub u64);

/// A server transaction handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(pub u64);

/// Either kind of transaction handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxId {
    /// A client transaction.
    Client(ClientTxId),
    /// A server transaction.
    Server(ServerTxId),
}

/// Transaction states, named as in RFC 3261 §17 and RFC 6026.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxState {
    /// Client INVITE: request sent, nothing heard yet.
    Calling,
    /// Non-INVITE: request sent (client) or received (server), no response yet.
    Trying,
    /// A provisional response was received (client) or sent (server).
    Proceeding,
    /// INVITE: a 2xx went through (RFC 6026).
    Accepted,
    /// A final response went through; waiting out retransmissions.
    Completed,
    /// Server INVITE: the ACK for a non-2xx arrived.
    Confirmed,
    /// Done; the transaction is about to leave the table.
    Terminated,
}

/// Why a message reached the TU without a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrayKind {
    /// A response that matches no client transaction (e.g. a retransmitted 2xx after Timer M).
    Response,
    /// An ACK matching no server transaction: the ACK for a 2xx, end-to-end, for the dialog layer.
    Ack,
    /// An ACK that matched an INVITE server transaction in Accepted (a peer reusing the branch).
    AckInAccepted,
    /// No RFC 3261 branch in the top Via: cannot be matched (no RFC 2543 fallback).
    NoBranch,
}

/// Something the TU must know.
#[derive(Debug)]
pub enum TxEvent {
    /// A new request created a server transaction.
    Request {
        /// The new server transaction.
        tx: ServerTxId,
        /// The request.
        request: Message,
        /// Where it came from (responses go back there).
        source: SocketAddr,
    },
    /// The table is full: no transaction was created; the TU should answer 503 statelessly.
    Refused {
        /// The request.
        request: Message,
        /// Where it came from.
        source: SocketAddr,
    },
    /// A response for a client transaction (provisional, final, and 2xx retransmissions in Accepted).
    Response {
        /// The client transaction.
        tx: ClientTxId,
        /// The response.
        response: Message,
    },
    /// A CANCEL matched an INVITE server transaction still in Proceeding. The layer already answered
    /// the CANCEL with 200; the TU should send 487 on `invite`.
    Cancelled {
        /// The INVITE server transaction.
        invite: ServerTxId,
        /// The CANCEL's own server transaction (already Completed).
        cancel: ServerTxId,
    },
    /// Timer B, F (client) or H (server) fired. For B and F the TU acts as if it received a 408.
    Timeout {
        /// The transaction.
        tx: TxId,
        /// Which timer.
        timer: Timer,
    },
    /// The driver reported a transport failure for this transaction.
    TransportError {
        /// The transaction.
        tx: TxId,
    },
    /// The transaction left the table.
    Terminated {
        /// The transaction.
        tx: TxId,
    },
    /// A message no transaction claims, for the TU or dialog layer.
    Stray {
        /// Why it is stray.
        kind: StrayKind,
        /// The message.
        message: Message,
        /// Where it came from.
        source: SocketAddr,
    },
}

/// The local socket or connection a message arrived on or leaves by. Opaque to the layer: the driver
/// chooses the values, the layer keeps the flow of each transaction and stamps it on every
/// [`Transmit`] of that transaction, so responses leave by the flow their request arrived on
/// (RFC 3261 §18.2.2) and retransmissions by the flow of the first copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flow(pub u64);

/// Bytes to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub dest: SocketAddr,
    /// The serialized message.
    pub bytes: Bytes,
    /// The local socket or connection to send it from.
    pub flow: Flow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

/// §17.2.3 key: branch, sent-by, method (ACK folded into INVITE).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: Box<str>,
    sent_by: Box<str>,
    method: Method,
}

/// §17.1.3 key: branch and CSeq method.
type ClientKey = (Box<str>, Method);

#[derive(Debug)]
enum Key {
    Client(ClientKey),
    Server(ServerKey),
}

#[derive(Debug)]
struct Transaction {
    kind: Kind,
    state: TxState,
    key: Key,
    peer: SocketAddr,
    reliable: bool,
    flow: Flow,
    /// The request (client: retransmitted and used for the ACK; server: used for 100 Trying).
    request: Stored,
    /// Server: the last response sent. Client INVITE in Completed: the ACK.
    last: Option<Bytes>,
    timers: TimerTable,
    /// Current retransmission interval of Timer A, E or G.
    interval: Duration,
}

const MAGIC_COOKIE: &str = "z9hG4bK";

/// The request of a transaction. Mostly its bytes: a received request goes to the TU (moved, not
/// copied), and a request the TU built itself arrives as bytes
/// ([`Transactions::send_request_bytes`]); either is parsed again only if the layer needs its
/// headers (a 100 Trying, a CANCEL, the ACK of a non-2xx final response), which is the exception.
/// Keeping bytes also keeps a lingering transaction small (a parsed message is ~650 bytes).
#[derive(Debug)]
enum Stored {
    Parsed(Box<Message>),
    Raw(Bytes),
}

impl Stored {
    fn raw(&self) -> &Bytes {
        match self {
            Self::Parsed(m) => m.raw(),
            Self::Raw(b) => b,
        }
    }

    /// The request parsed, for the rare uses that need its headers.
    fn parsed(&self) -> Option<std::borrow::Cow<'_, Message>> {
        match self {
            Self::Parsed(m) => Some(std::borrow::Cow::Borrowed(&**m)),
            Self::Raw(b) => Message::parse(b.clone()).ok().map(std::borrow::Cow::Owned),
        }
    }
}

/// The transaction table.
#[derive(Debug)]
pub struct Transactions {
    config: TransactionConfig,
    /// Boxed: the map moves only pointers when it grows (an inline ~1 KB entry made each doubling
    /// copy and fault in hundreds of megabytes at a few thousand calls per second).
    txs: IdMap<u64, Box<Transaction>>,
    /// Keyed by the branch this SBC generated (and the method).
    client_index: IdMap<ClientKey, u64>,
    server_index: HashMap<ServerKey, u64>,
    wheel: Wheel<(u64, Timer)>,
    /// Due timers of one [`Transactions::handle_timeout`] round (kept for its allocation).
    due: Vec<(Instant, (u64, Timer))>,
    next_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TxEvent>,
    counters: crate::tx_counters::TxCounters,
}

fn rfc3261_branch(msg: &Message) -> Option<&str> {
    msg.top_branch().filter(|b| b.starts_with(MAGIC_COOKIE))
}

fn sent_by(msg: &Message) -> Box<str> {
    let via = msg.top_via();
    let mut out = String::with_capacity(48);
    match via.host {
        Host::Domain(d) => {
            out.push_str(d);
            out.make_ascii_lowercase();
        }
        Host::V4(a) => crate::writer::push_ipv4(&mut out, a),
        Host::V6(a) => {
            use std::fmt::Write;
            let _ = write!(out, "{a}");
        }
    }
    out.push(':');
    let mut buf = [0u8; 10];
    out.push_str(crate::writer::decimal(
        u32::from(via.port.unwrap_or(0)),
        &mut buf,
    ));
    out.into_boxed_str()
}

fn server_key(msg: &Message, branch: &str) -> ServerKey {
    let method = match msg.method() {
        Some(Method::Ack) | None => Method::Invite,
        Some(m) => m.clone(),
    };
    ServerKey {
        branch: branch.into(),
        sent_by: sent_by(msg),
        method,
    }
}

/// A wheel entry is live while its transaction still holds that deadline for that timer.
fn is_live(txs: &IdMap<u64, Box<Transaction>>, at: Instant, id: u64, timer: Timer) -> bool {
    txs.get(&id)
        .is_some_and(|t| t.timers.get(timer) == Some(at))
}

impl Transactions {
    /// An empty table.
    pub fn new(config: TransactionConfig) -> Self {
        Self {
            config,
            txs: IdMap::default(),
            client_index: IdMap::default(),
            server_index: HashMap::new(),
            wheel: Wheel::new(),
            due: Vec::new(),
            next_id: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Default::default(),
        }
    }

    /// Retransmissions sent and received.
    pub fn counters(&self) -> crate::tx_counters::TxCounters {
        self.counters
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The state of a transaction, `None` once it left the table.
    pub fn state(&self, tx: TxId) -> Option<TxState> {
        let id = match tx {
            TxId::Client(ClientTxId(id)) | TxId::Server(ServerTxId(id)) => id,
        };
        self.txs.get(&id).map(|t| t.state)
    }

    /// Next outgoing message.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the TU.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }

    /// The earliest pending deadline. Drops the stale wheel entries met on the way, so it is exact.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let txs = &self.txs;
        self.wheel
            .next_live(|at, &(id, timer)| is_live(txs, at, id, timer))
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            let mut due = core::mem::take(&mut self.due);
            due.clear();
            self.wheel.advance(now, &mut due);
            if due.is_empty() {
                self.due = due;
                return;
            }
            for &(at, (id, timer)) in &due {
                if !is_live(&self.txs, at, id, timer) {
                    continue;
                }
                if let Some(t) = self.txs.get_mut(&id) {
                    t.timers.set(timer, None);
                }
                self.fire(now, id, timer);
            }
            self.due = due;
        }
    }

    /// The driver could not send for this transaction (ICMP error, TCP reset, ...), §17.1.4 / §17.2.4.
    pub fn handle_transport_error(&mut self, tx: TxId) {
        let id = match tx {
            TxId::Client(ClientTxId(id)) | TxId::Server(ServerTxId(id)) => id,
        };
        if self.txs.contains_key(&id) {
            self.events.push_back(TxEvent::TransportError { tx });
            self.terminate(id);
        }
    }

    /// Start a client transaction for `request` (which carries the TU's branch) towards `dest`, on the
    /// default flow.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Message,
        dest: SocketAddr,
        reliable: bool,
    ) -> Result<ClientTxId, TxError> {
        self.send_request_on(now, request, dest, reliable, Flow::default())
    }

    /// The driver lost its connection to `peer`, or could not make it (refused, TLS handshake
    /// failed, closed): every client transaction sent to `peer` over a reliable transport that still
    /// waits for its final response ends with a transport error (§17.1.4), so the TU can go on to
    /// another target at once instead of waiting for Timer B or F.
    pub fn handle_peer_lost(&mut self, peer: SocketAddr) {
        let lost: Vec<u64> = self
            .txs
            .iter()
            .filter(|(_, t)| {
                t.reliable
                    && t.peer == peer
                    && matches!(t.kind, Kind::InviteClient | Kind::NonInviteClient)
                    && matches!(
                        t.state,
                        TxState::Calling | TxState::Trying | TxState::Proceeding
                    )
            })
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.handle_transport_error(TxId::Client(ClientTxId(id)));
        }
    }

    /// [`Self::send_request`] from the local socket or connection `flow`.
    pub fn send_request_on(
        &mut self,
        now: Instant,
        request: Message,
        dest: SocketAddr,
        reliable: bool,
        flow: Flow,
    ) -> Result<ClientTxId, TxError> {
        let method = request.method().cloned().ok_or(TxError::Invalid)?;
        let branch = rfc3261_branch(&request).ok_or(TxError::NoBranch)?;
        let key: ClientKey = (branch.into(), method);
        self.start_client(
            now,
            key,
            Stored::Parsed(Box::new(request)),
            dest,
            reliable,
            flow,
        )
    }

    /// [`Self::send_request_on`] for a request the TU built itself and hands over unparsed:
    /// `method` and `branch` (which must carry the RFC 3261 cookie) are those of its top Via and
    /// request line. The layer trusts them and parses the bytes only if it ever needs the headers
    /// (a CANCEL, the ACK of a non-2xx), so the common call costs no second parse.
    #[allow(clippy::too_many_arguments)]
    pub fn send_request_bytes(
        &mut self,
        now: Instant,
        request: Bytes,
        method: Method,
        branch: &str,
        dest: SocketAddr,
        reliable: bool,
        flow: Flow,
    ) -> Result<ClientTxId, TxError> {
        if !branch.starts_with(MAGIC_COOKIE) {
            return Err(TxError::NoBranch);
        }
        let key: ClientKey = (branch.into(), method);
        self.start_client(now, key, Stored::Raw(request), dest, reliable, flow)
    }

    fn start_client(
        &mut self,
        now: Instant,
        key: ClientKey,
        request: Stored,
        dest: SocketAddr,
        reliable: bool,
        flow: Flow,
    ) -> Result<ClientTxId, TxError> {
        if key.1 == Method::Ack {
            // ACK for 2xx is sent by the TU directly; ACK for non-2xx by the layer.
            return Err(TxError::Invalid);
        }
        if self.client_index.contains_key(&key) {
            return Err(TxError::Duplicate);
        }
        if self.txs.len() >= self.config.max_transactions {
            return Err(TxError::Full);
        }
        let id = self.alloc_id();
        let invite = key.1 == Method::Invite;
        self.transmits.push_back(Transmit {
            dest,
            bytes: request.raw().clone(),
            flow,
        });
        self.client_index.insert(key.clone(), id);
        self.txs.insert(
            id,
            Box::new(Transaction {
                kind: if invite {
                    Kind::InviteClient
                } else {
                    Kind::NonInviteClient
                },
                state: if invite {
                    TxState::Calling
                } else {
                    TxState::Trying
                },
                key: Key::Client(key),
                peer: dest,
                reliable,
                flow,
                request,
                last: None,
                timers: TimerTable::default(),
                interval: self.config.t1,
            }),
        );
        let t1 = self.config.t1;
        let (retransmit, timeout) = if invite {
            (Timer::TimerA, Timer::TimerB)
        } else {
            (Timer::TimerE, Timer::TimerF)
        };
        if !reliable {
            self.arm(id, retransmit, now + t1);
        }
        self.arm(id, timeout, now + 64 * t1);
        Ok(ClientTxId(id))
    }

    /// Send a CANCEL for a client INVITE transaction in Proceeding (§9.1) as a new non-INVITE client
    /// transaction. Timer B is rearmed on the INVITE to 64*T1: if no final response arrives by then, the
    /// INVITE transaction times out.
    pub fn send_cancel(&mut self, now: Instant, invite: ClientTxId) -> Result<ClientTxId, TxError> {
        let t = self.txs.get(&invite.0).ok_or(TxError::Unknown)?;
        if t.kind != Kind::InviteClient || t.state != TxState::Proceeding {
            return Err(TxError::Invalid);
        }
        let (dest, reliable, flow) = (t.peer, t.reliable, t.flow);
        let mut out = Vec::new();
        let invite_req = t.request.parsed().ok_or(TxError::Invalid)?;
        build::cancel(&invite_req, &mut out);
        // §9.1: without a final response within 64*T1 of the CANCEL, the INVITE is given up. Armed
        // first, so that an INVITE whose CANCEL cannot be sent (the table is full) still ends.
        let t64 = 64 * self.config.t1;
        self.arm(invite.0, Timer::TimerB, now + t64);
        let cancel = Message::parse(Bytes::from(out)).map_err(|_| TxError::Invalid)?;
        self.send_request_on(now, cancel, dest, reliable, flow)
    }

    /// Send a response on a server transaction (§17.2.1 / §17.2.2 TU side).
    pub fn send_response(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        response: Message,
    ) -> Result<(), TxError> {
        let code = response.status().ok_or(TxError::Invalid)?;
        self.send_response_bytes(now, tx, code, response.raw().clone())
    }

    /// [`Transactions::send_response`] for a response the TU serialized itself and vouches for:
    /// its status `code` and its bytes, not parsed again.
    pub fn send_response_bytes(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        code: u16,
        bytes: Bytes,
    ) -> Result<(), TxError> {
        if !(100..700).contains(&code) {
            return Err(TxError::Invalid);
        }
        let id = tx.0;
        let config = self.config.clone();
        let t = self.txs.get_mut(&id).ok_or(TxError::Unknown)?;
        let (peer, flow) = (t.peer, t.flow);
        match (t.kind, t.state) {
            (Kind::InviteServer, TxState::Proceeding) => {
                t.last = Some(bytes.clone());
                t.timers.set(Timer::Trying, None);
                if (200..300).contains(&code) {
                    t.state = TxState::Accepted;
                    self.arm(id, Timer::TimerL, now + config.linger);
                } else if code >= 300 {
                    t.state = TxState::Completed;
                    t.interval = config.t1;
                    if !t.reliable {
                        self.arm(id, Timer::TimerG, now + config.t1);
                    }
                    // Timer H (64*T1) is capped by the linger time: a final answer is not sent
                    // for longer than a finished transaction lingers, toward a source that may
                    // be spoofed and never ACKs.
                    self.arm(id, Timer::TimerH, now + (64 * config.t1).min(config.linger));
                }
            }
            // RFC 6026 §8.5: 2xx retransmissions from the TU go out in Accepted.
            (Kind::InviteServer, TxState::Accepted) if (200..300).contains(&code) => {}
            (Kind::NonInviteServer, TxState::Trying | TxState::Proceeding) => {
                t.last = Some(bytes.clone());
                if code < 200 {
                    t.state = TxState::Proceeding;
                } else {
                    t.state = TxState::Completed;
                    let reliable = t.reliable;
                    self.transmits.push_back(Transmit {
                        dest: peer,
                        bytes,
                        flow,
                    });
                    self.linger_or_terminate(id, reliable, Timer::TimerJ, now + config.linger);
                    return Ok(());
                }
            }
            _ => return Err(TxError::Invalid),
        }
        self.transmits.push_back(Transmit {
            dest: peer,
            bytes,
            flow,
        });
        Ok(())
    }

    /// A final refusal (300..=699) of a server INVITE transaction that the TU refused before making
    /// any state for it (no route, no room, too many hops): sent once and not retransmitted on
    /// Timer G, so an INVITE from a spoofed source draws exactly one answer, never ~11 over 32 s. A
    /// retransmission of the INVITE still gets the answer again (the transaction stays Completed
    /// until Timer H), and the ACK is absorbed as usual. Other transactions and codes are answered
    /// as [`Transactions::send_response_bytes`] does.
    pub fn refuse_bytes(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        code: u16,
        bytes: Bytes,
    ) -> Result<(), TxError> {
        self.send_response_bytes(now, tx, code, bytes)?;
        if let Some(t) = self.txs.get_mut(&tx.0) {
            if t.kind == Kind::InviteServer && t.state == TxState::Completed {
                t.timers.set(Timer::TimerG, None);
            }
        }
        Ok(())
    }

    /// A message arrived from `source` over a reliable (TCP/TLS/WS) or unreliable (UDP) transport,
    /// on the default flow.
    pub fn handle_message(
        &mut self,
        now: Instant,
        msg: Message,
        source: SocketAddr,
        reliable: bool,
    ) {
        self.handle_message_on(now, msg, source, reliable, Flow::default());
    }

    /// [`Self::handle_message`] on the local socket or connection `flow` (answers leave by it).
    pub fn handle_message_on(
        &mut self,
        now: Instant,
        msg: Message,
        source: SocketAddr,
        reliable: bool,
        flow: Flow,
    ) {
        if msg.is_request() {
            self.handle_request(now, msg, source, reliable, flow);
        } else {
            self.handle_response(now, msg, source);
        }
    }

    fn handle_response(&mut self, now: Instant, msg: Message, source: SocketAddr) {
        let code = msg.status().unwrap_or(0);
        let id = rfc3261_branch(&msg).and_then(|b| {
            let key: ClientKey = (b.into(), msg.cseq().method.clone());
            self.client_index.get(&key).copied()
        });
        let Some((id, t)) = id.and_then(|id| self.txs.get_mut(&id).map(|t| (id, t))) else {
            self.events.push_back(TxEvent::Stray {
                kind: StrayKind::Response,
                message: msg,
                source,
            });
            return;
        };
        let config = self.config.clone();
        let txid = ClientTxId(id);
        match t.kind {
            Kind::InviteClient => match t.state {
                TxState::Calling | TxState::Proceeding if code < 200 => {
                    // §17.1.1.2: no more retransmissions; Timer B only runs in Calling. In
                    // Proceeding, Timer B is the give-up deadline of a CANCEL (§9.1): a later
                    // provisional response does not lift it.
                    let first = t.state == TxState::Calling;
                    if first {
                        t.timers.set(Timer::TimerA, None);
                    }
                    t.state = TxState::Proceeding;
                    if let Some(at) = now.checked_add(config.timer_c).filter(|_| first) {
                        // Timer C: an INVITE that rings and is never answered nor cancelled is
                        // given up, so no peer can keep it open forever; a TU cancels before
                        // (its ringing timeout, then §9.1's 64*T1).
                        self.arm(id, Timer::TimerB, at);
                    }
                    self.events.push_back(TxEvent::Response {
                        tx: txid,
                        response: msg,
                    });
                }
                TxState::Calling | TxState::Proceeding if code < 300 => {
                    t.state = TxState::Accepted;
                    t.timers = TimerTable::default();
                    self.events.push_back(TxEvent::Response {
                        tx: txid,
                        response: msg,
                    });
                    self.arm(id, Timer::TimerM, now + config.linger);
                }
                TxState::Calling | TxState::Proceeding => {
                    t.state = TxState::Completed;
                    t.timers = TimerTable::default();
                    let mut out = Vec::new();
                    if let Some(invite) = t.request.parsed() {
                        build::ack_for_non_2xx(&invite, &msg, &mut out);
                    }
                    let ack = Bytes::from(out);
                    t.last = Some(ack.clone());
                    let (peer, reliable, flow) = (t.peer, t.reliable, t.flow);
                    self.transmits.push_back(Transmit {
                        dest: peer,
                        bytes: ack,
                        flow,
                    });
                    self.events.push_back(TxEvent::Response {
                        tx: txid,
                        response: msg,
                    });
                    self.linger_or_terminate(id, reliable, Timer::TimerD, now + config.timer_d);
                }
                // RFC 6026 §8.4: retransmitted 2xx go to the TU, which re-sends its ACK.
                TxState::Accepted if (200..300).contains(&code) => {
                    self.events.push_back(TxEvent::Response {
                        tx: txid,
                        response: msg,
                    });
                }
                TxState::Completed if code >= 300 => {
                    // Each retransmitted non-2xx final gets the ACK again (§17.1.1.2).
                    self.transmits.extend(t.resend_last());
                }
                _ => {}
            },
            Kind::NonInviteClient => match t.state {
                TxState::Trying | TxState::Proceeding if code < 200 => {
                    t.state = TxState::Proceeding;
                    self.events.push_back(TxEvent::Response {
                        tx: txid,
                        response: msg,
                    });
                }
                TxState::Trying | TxState::Proceeding => {
                    t.state = TxState::Completed;
                    t.timers = TimerTable::default();
                    let reliable = t.reliable;
                    self.events.push_back(TxEvent::Response {
                        tx: txid,
                        response: msg,
                    });
                    self.linger_or_terminate(id, reliable, Timer::TimerK, now + config.t4);
                }
                // Completed absorbs retransmitted responses.
                _ => {}
            },
            Kind::InviteServer | Kind::NonInviteServer => {}
        }
    }

    fn handle_request(
        &mut self,
        now: Instant,
        msg: Message,
        source: SocketAddr,
        reliable: bool,
        flow: Flow,
    ) {
        let is_ack = msg.method() == Some(&Method::Ack);
        let Some(branch) = rfc3261_branch(&msg) else {
            self.events.push_back(TxEvent::Stray {
                kind: if is_ack {
                    StrayKind::Ack
                } else {
                    StrayKind::NoBranch
                },
                message: msg,
                source,
            });
            return;
        };
        let key = server_key(&msg, branch);
        if let Some(&id) = self.server_index.get(&key) {
            self.retransmitted_request(now, id, msg, source, is_ack);
            return;
        }
        if is_ack {
            self.events.push_back(TxEvent::Stray {
                kind: StrayKind::Ack,
                message: msg,
                source,
            });
            return;
        }
        if self.txs.len() >= self.config.max_transactions {
            self.events.push_back(TxEvent::Refused {
                request: msg,
                source,
            });
            return;
        }
        let invite = key.method == Method::Invite;
        let cancel_of = (key.method == Method::Cancel)
            .then(|| {
                let invite_key = ServerKey {
                    method: Method::Invite,
                    ..key.clone()
                };
                self.server_index.get(&invite_key).copied()
            })
            .flatten();
        let is_cancel = key.method == Method::Cancel;
        let id = self.alloc_id();
        self.server_index.insert(key.clone(), id);
        self.txs.insert(
            id,
            Box::new(Transaction {
                kind: if invite {
                    Kind::InviteServer
                } else {
                    Kind::NonInviteServer
                },
                state: if invite {
                    TxState::Proceeding
                } else {
                    TxState::Trying
                },
                key: Key::Server(key),
                peer: source,
                reliable,
                flow,
                request: Stored::Raw(msg.raw().clone()),
                last: None,
                timers: TimerTable::default(),
                interval: self.config.t1,
            }),
        );
        if invite {
            let delay = self.config.trying_delay;
            self.arm(id, Timer::Trying, now + delay);
        }
        if is_cancel {
            // §9.2: the layer answers CANCEL itself; the TU only hears of it when it has work to do.
            let code = if cancel_of.is_some() { 200 } else { 481 };
            if let Some(resp) = Self::response_to(&msg, code) {
                let _ = self.send_response(now, ServerTxId(id), resp);
            }
            if let Some(inv) = cancel_of {
                if self.txs.get(&inv).map(|t| t.state) == Some(TxState::Proceeding) {
                    self.events.push_back(TxEvent::Cancelled {
                        invite: ServerTxId(inv),
                        cancel: ServerTxId(id),
                    });
                }
            }
            return;
        }
        self.events.push_back(TxEvent::Request {
            tx: ServerTxId(id),
            request: msg,
            source,
        });
    }

    /// A response to the request of server transaction `id`, built by the layer itself.
    fn response_for(&self, id: u64, code: u16) -> Option<Message> {
        let t = self.txs.get(&id)?;
        let request = t.request.parsed()?;
        Self::response_to(&request, code)
    }

    /// A response of the layer's own (100, or 200/481 to a CANCEL) to `request`, without a body.
    fn response_to(request: &Message, code: u16) -> Option<Message> {
        let mut out = Vec::new();
        build::response(request, code, build::reason_phrase(code), None, &mut out)
            .finish(None, b"");
        Message::parse(Bytes::from(out)).ok()
    }

    fn retransmitted_request(
        &mut self,
        now: Instant,
        id: u64,
        msg: Message,
        source: SocketAddr,
        is_ack: bool,
    ) {
        let t4 = self.config.t4;
        let Some(t) = self.txs.get_mut(&id) else {
            return;
        };
        self.counters.retransmissions_received += u64::from(!is_ack);
        match (t.kind, t.state, is_ack) {
            (Kind::InviteServer, TxState::Completed, true) => {
                // §17.2.1: ACK moves to Confirmed; G and H stop, I absorbs ACK retransmissions.
                t.state = TxState::Confirmed;
                t.timers = TimerTable::default();
                let reliable = t.reliable;
                self.linger_or_terminate(id, reliable, Timer::TimerI, now + t4);
            }
            (Kind::InviteServer, TxState::Accepted, true) => {
                self.events.push_back(TxEvent::Stray {
                    kind: StrayKind::AckInAccepted,
                    message: msg,
                    source,
                });
            }
            (_, _, true) => {}
            // Retransmitted request: resend the last response, if any (§17.2.1, §17.2.2). Accepted
            // and Confirmed absorb (RFC 6026 §8.7).
            (_, TxState::Proceeding | TxState::Completed, false) => {
                self.counters.resend(&mut self.transmits, t.resend_last());
            }
            _ => {}
        }
    }

    fn fire(&mut self, now: Instant, id: u64, timer: Timer) {
        let config = self.config.clone();
        let Some(t) = self.txs.get_mut(&id) else {
            return;
        };
        let client = TxId::Client(ClientTxId(id));
        let server = TxId::Server(ServerTxId(id));
        match timer {
            Timer::TimerA | Timer::TimerE => {
                let bytes = t.request.raw().clone();
                let (peer, flow) = (t.peer, t.flow);
                // §17.1.1.2: A doubles without bound (B ends it); §17.1.2.2: E doubles up to T2 in
                // Trying and runs at T2 in Proceeding.
                t.interval = match (timer, t.state) {
                    (Timer::TimerA, _) => t.interval * 2,
                    (_, TxState::Proceeding) => config.t2,
                    _ => (t.interval * 2).min(config.t2),
                };
                let next = now + t.interval;
                self.transmits.push_back(Transmit {
                    dest: peer,
                    bytes,
                    flow,
                });
                self.counters.retransmitted += 1;
                self.arm(id, timer, next);
            }
            Timer::TimerG => {
                t.interval = (t.interval * 2).min(config.t2);
                let next = now + t.interval;
                self.counters.resend(&mut self.transmits, t.resend_last());
                self.arm(id, timer, next);
            }
            Timer::TimerB | Timer::TimerF => {
                self.events
                    .push_back(TxEvent::Timeout { tx: client, timer });
                self.terminate(id);
            }
            Timer::TimerH => {
                self.events
                    .push_back(TxEvent::Timeout { tx: server, timer });
                self.terminate(id);
            }
            Timer::TimerD
            | Timer::TimerI
            | Timer::TimerJ
            | Timer::TimerK
            | Timer::TimerL
            | Timer::TimerM => self.terminate(id),
            Timer::Trying => {
                if t.state == TxState::Proceeding && t.last.is_none() {
                    if let Some(resp) = self.response_for(id, 100) {
                        let _ = self.send_response(now, ServerTxId(id), resp);
                    }
                }
            }
        }
    }

    /// A transaction that reached Completed or Confirmed lingers until `timer` (D, I, J or K) to absorb
    /// retransmissions. A reliable transport has none, so there the timer is zero (RFC 3261 §17.1.1.2,
    /// §17.1.2.2, §17.2.1, §17.2.2) and the transaction ends now.
    fn linger_or_terminate(&mut self, id: u64, reliable: bool, timer: Timer, at: Instant) {
        if reliable {
            self.terminate(id);
        } else {
            self.arm(id, timer, at);
        }
    }

    fn arm(&mut self, id: u64, timer: Timer, at: Instant) {
        if let Some(t) = self.txs.get_mut(&id) {
            t.timers.set(timer, Some(at));
            self.wheel.insert(at, (id, timer));
        }
        // Stale entries leave the wheel when their deadline passes; a burst of cancellations could
        // still pile them up, so sweep once they outnumber the possible live ones. Amortised O(1).
        if self.wheel.len() > 2 * TIMER_COUNT * (self.txs.len() + 64) {
            self.compact();
        }
    }

    /// Drop every stale wheel entry.
    fn compact(&mut self) {
        let txs = &self.txs;
        self.wheel
            .retain(|at, &(id, timer)| is_live(txs, at, id, timer));
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    fn terminate(&mut self, id: u64) {
        let Some(t) = self.txs.remove(&id) else {
            return;
        };
        let tx = match t.key {
            Key::Client(k) => {
                self.client_index.remove(&k);
                TxId::Client(ClientTxId(id))
            }
            Key::Server(k) => {
                self.server_index.remove(&k);
                TxId::Server(ServerTxId(id))
            }
        };
        self.events.push_back(TxEvent::Terminated { tx });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, via: &str, seq: u32) -> Message {
        let text = format!(
            "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\n\
             CSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    fn resp(to: &Message, code: u16) -> Message {
        let mut out = Vec::new();
        build::response(to, code, build::reason_phrase(code), Some("t"), &mut out)
            .finish(None, b"");
        Message::parse(Bytes::from(out)).unwrap()
    }

    fn peer() -> SocketAddr {
        "192.0.2.1:5060".parse().unwrap()
    }

    fn epoch() -> Instant {
        // Tests need one base instant; every later time is derived from it.
        #[allow(clippy::disallowed_methods)]
        Instant::now()
    }

    fn events(t: &mut Transactions) -> Vec<TxEvent> {
        std::iter::from_fn(|| t.poll_event()).collect()
    }

    #[test]
    fn timer_table_is_indexed_by_timer() {
        let now = epoch();
        let mut table = TimerTable::default();
        table.set(Timer::TimerM, Some(now));
        table.set(Timer::Trying, Some(now));
        assert_eq!(table.get(Timer::TimerM), Some(now));
        assert_eq!(table.get(Timer::TimerA), None);
        table.set(Timer::TimerM, None);
        assert_eq!(table.get(Timer::TimerM), None);
        assert_eq!(Timer::Trying as usize, TIMER_COUNT - 1);
    }

    #[test]
    fn ack_matches_invite_and_sent_by_is_part_of_the_key() {
        let now = epoch();
        let mut t = Transactions::new(TransactionConfig::default());
        let inv = req("INVITE", "h1:5060;branch=z9hG4bKx", 1);
        t.handle_message(now, inv.clone(), peer(), false);
        // Same branch, other sent-by: a different transaction (§17.2.3).
        t.handle_message(
            now,
            req("INVITE", "h2:5060;branch=z9hG4bKx", 1),
            peer(),
            false,
        );
        assert_eq!(t.len(), 2);
        let ev = events(&mut t);
        let Some(TxEvent::Request { tx, .. }) = ev.first() else {
            panic!("{ev:?}");
        };
        t.send_response(now, *tx, resp(&inv, 486)).unwrap();
        t.handle_message(now, req("ACK", "H1:5060;branch=z9hG4bKx", 1), peer(), false);
        assert_eq!(t.state(TxId::Server(*tx)), Some(TxState::Confirmed));
    }

    /// Sends of a refused INVITE that is never ACKed, over the transaction's whole life.
    fn sends_until_gone(t: &mut Transactions, mut now: Instant) -> (usize, Duration) {
        let start = now;
        let mut sent = std::iter::from_fn(|| t.poll_transmit()).count();
        while let Some(at) = t.poll_timeout() {
            now = at;
            t.handle_timeout(now);
            sent += std::iter::from_fn(|| t.poll_transmit()).count();
        }
        (sent, now - start)
    }

    #[test]
    fn a_refusal_before_state_is_sent_once_and_timer_h_is_capped_by_linger() {
        let now = epoch();
        let config = TransactionConfig {
            linger: Duration::from_secs(5),
            ..TransactionConfig::default()
        };
        // Refused before state: one answer, and one more only for a retransmitted INVITE.
        let mut t = Transactions::new(config.clone());
        let inv = req("INVITE", "h1:5060;branch=z9hG4bKr", 1);
        t.handle_message(now, inv.clone(), peer(), false);
        let Some(TxEvent::Request { tx, .. }) = events(&mut t).into_iter().next() else {
            panic!("no request");
        };
        let answer = resp(&inv, 404);
        t.refuse_bytes(now, tx, 404, answer.raw().clone()).unwrap();
        assert_eq!(std::iter::from_fn(|| t.poll_transmit()).count(), 1);
        t.handle_message(now + Duration::from_secs(1), inv.clone(), peer(), false);
        let (sent, life) = sends_until_gone(&mut t, now + Duration::from_secs(1));
        assert_eq!(
            sent, 1,
            "the retransmitted INVITE gets the refusal again, nothing more"
        );
        assert!(life <= Duration::from_secs(4), "gone at linger: {life:?}");
        assert!(t.is_empty());
        // A final sent the usual way: retransmitted on Timer G, but only until linger (5 s:
        // at 0, 0.5, 1.5 and 3.5 s), not for 64*T1 = 32 s (11 sends).
        let mut t = Transactions::new(config);
        t.handle_message(now, inv.clone(), peer(), false);
        let Some(TxEvent::Request { tx, .. }) = events(&mut t).into_iter().next() else {
            panic!("no request");
        };
        t.send_response(now, tx, resp(&inv, 486)).unwrap();
        let (sent, life) = sends_until_gone(&mut t, now);
        assert_eq!((sent, life), (4, Duration::from_secs(5)));
        // Without a shorter linger, RFC 3261's Timer H (32 s) and its 11 sends are unchanged.
        let mut t = Transactions::new(TransactionConfig::default());
        t.handle_message(now, inv.clone(), peer(), false);
        let Some(TxEvent::Request { tx, .. }) = events(&mut t).into_iter().next() else {
            panic!("no request");
        };
        t.send_response(now, tx, resp(&inv, 486)).unwrap();
        assert_eq!(sends_until_gone(&mut t, now), (11, Duration::from_secs(32)));
    }

    #[test]
    fn a_provisional_after_cancel_does_not_keep_the_invite_forever() {
        let now = epoch();
        let mut t = Transactions::new(TransactionConfig::default());
        let inv = req("INVITE", "sbc:5060;branch=z9hG4bKc", 1);
        let tx = t.send_request(now, inv.clone(), peer(), false).unwrap();
        t.handle_message(now, resp(&inv, 180), peer(), false);
        t.send_cancel(now, tx).unwrap();
        // The callee rings again but never answers the CANCEL nor the INVITE.
        let later = now + Duration::from_secs(1);
        t.handle_message(later, resp(&inv, 183), peer(), false);
        let mut at = later;
        while let Some(next) = t.poll_timeout() {
            at = next;
            t.handle_timeout(at);
        }
        assert_eq!(t.state(TxId::Client(tx)), None);
        assert_eq!(
            at,
            now + Duration::from_secs(32),
            "given up 64*T1 after the CANCEL"
        );
    }

    #[test]
    fn timer_c_gives_up_an_invite_that_rings_forever() {
        for secs in [181, 300] {
            let now = epoch();
            let mut t = Transactions::new(TransactionConfig {
                timer_c: Duration::from_secs(secs),
                ..TransactionConfig::default()
            });
            let inv = req("INVITE", "sbc:5060;branch=z9hG4bKtc", 1);
            let tx = t.send_request(now, inv.clone(), peer(), false).unwrap();
            t.handle_message(now, resp(&inv, 180), peer(), false);
            let at = t.poll_timeout().unwrap();
            assert_eq!(at, now + Duration::from_secs(secs));
            t.handle_timeout(at);
            assert_eq!(t.state(TxId::Client(tx)), None);
            assert!(events(&mut t)
                .iter()
                .any(|e| matches!(e, TxEvent::Timeout { .. })));
        }
    }

    #[test]
    fn unmatchable_requests_go_to_the_tu() {
        let now = epoch();
        let mut t = Transactions::new(TransactionConfig::default());
        t.handle_message(now, req("OPTIONS", "h1:5060", 1), peer(), false);
        // An RFC 2543 branch (no magic cookie): no fallback matching.
        t.handle_message(now, req("OPTIONS", "h1:5060;branch=old", 1), peer(), false);
        t.handle_message(
            now,
            req("ACK", "h1:5060;branch=z9hG4bKnone", 1),
            peer(),
            false,
        );
        let kinds: Vec<_> = events(&mut t)
            .into_iter()
            .map(|e| match e {
                TxEvent::Stray { kind, .. } => kind,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [StrayKind::NoBranch, StrayKind::NoBranch, StrayKind::Ack]
        );
        assert!(t.is_empty());
    }

    #[test]
    fn send_request_rejects_misuse() {
        let now = epoch();
        let mut t = Transactions::new(TransactionConfig {
            max_transactions: 1,
            ..TransactionConfig::default()
        });
        let r = req("OPTIONS", "h:5060;branch=z9hG4bK1", 1);
        assert_eq!(
            t.send_request(now, req("OPTIONS", "h:5060", 1), peer(), false),
            Err(TxError::NoBranch)
        );
        t.send_request(now, r.clone(), peer(), false).unwrap();
        assert_eq!(
            t.send_request(now, r, peer(), false),
            Err(TxError::Duplicate)
        );
        assert_eq!(
            t.send_request(now, req("BYE", "h:5060;branch=z9hG4bK2", 2), peer(), false),
            Err(TxError::Full)
        );
        assert_eq!(
            t.send_response(
                now,
                ServerTxId(99),
                resp(&req("BYE", "h;branch=z9hG4bK3", 1), 200)
            ),
            Err(TxError::Unknown)
        );
    }

    #[test]
    fn poll_timeout_skips_cancelled_timers() {
        let now = epoch();
        let mut t = Transactions::new(TransactionConfig::default());
        let r = req("OPTIONS", "h:5060;branch=z9hG4bK1", 1);
        t.send_request(now, r.clone(), peer(), false).unwrap();
        assert_eq!(t.poll_timeout(), Some(now + Duration::from_millis(500)));
        let later = now + Duration::from_millis(100);
        t.handle_message(later, resp(&r, 200), peer(), false);
        // E and F are stale in the wheel; only K (T4) is live.
        assert_eq!(t.poll_timeout(), Some(later + Duration::from_secs(5)));
        t.handle_timeout(later + Duration::from_secs(5));
        assert!(t.is_empty());
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn wheel_stays_bounded_under_cancellations() {
        let now = epoch();
        let mut t = Transactions::new(TransactionConfig::default());
        for i in 0..5000u32 {
            let r = req("OPTIONS", &format!("h:5060;branch=z9hG4bK{i}"), 1);
            t.send_request(now, r.clone(), peer(), true).unwrap();
            // Reliable: the 200 terminates at once, leaving F stale in the wheel.
            t.handle_message(now, resp(&r, 200), peer(), true);
        }
        assert!(t.is_empty());
        assert!(
            t.wheel.len() <= 2 * TIMER_COUNT * 64 + 1,
            "{}",
            t.wheel.len()
        );
        assert_eq!(t.poll_timeout(), None);
        for (i, timer) in ALL_TIMERS.iter().enumerate() {
            assert_eq!(*timer as usize, i);
        }
    }

    #[test]
    fn unmatched_response_is_stray() {
        let now = epoch();
        let mut t = Transactions::new(TransactionConfig::default());
        let r = req("INVITE", "h:5060;branch=z9hG4bK9", 1);
        t.handle_message(now, resp(&r, 200), peer(), false);
        assert!(matches!(
            events(&mut t).first(),
            Some(TxEvent::Stray {
                kind: StrayKind::Response,
                ..
            })
        ));
    }

    #[test]
    fn transport_error_terminates() {
        let now = epoch();
        let mut t = Transactions::new(TransactionConfig::default());
        let id = t
            .send_request(
                now,
                req("INVITE", "h:5060;branch=z9hG4bK1", 1),
                peer(),
                true,
            )
            .unwrap();
        t.handle_transport_error(TxId::Client(id));
        let ev = events(&mut t);
        assert!(matches!(ev.first(), Some(TxEvent::TransportError { .. })));
        assert!(matches!(ev.get(1), Some(TxEvent::Terminated { .. })));
        assert!(t.is_empty());
    }

    #[test]
    fn a_lost_peer_ends_its_reliable_client_transactions_only() {
        let now = epoch();
        let mut t = Transactions::new(TransactionConfig::default());
        let other: SocketAddr = "192.0.2.77:5060".parse().unwrap();
        // (method, branch number, destination, reliable)
        let sent: Vec<ClientTxId> = [
            ("INVITE", 1, peer(), true),
            ("OPTIONS", 2, peer(), false),
            ("OPTIONS", 3, other, true),
        ]
        .into_iter()
        .map(|(m, n, to, reliable)| {
            let via = format!("h:5060;branch=z9hG4bK{n}");
            t.send_request(now, req(m, &via, n), to, reliable).unwrap()
        })
        .collect();
        let [over_tcp, over_udp, elsewhere] = sent[..] else {
            panic!("three sent");
        };
        let _ = events(&mut t);
        t.handle_peer_lost(peer());
        let ev = events(&mut t);
        assert!(
            matches!(ev.first(), Some(TxEvent::TransportError { tx }) if *tx == TxId::Client(over_tcp)),
            "{ev:?}"
        );
        assert_eq!(ev.len(), 2, "{ev:?}"); // and its Terminated
        assert!(t.state(TxId::Client(over_udp)).is_some());
        assert!(t.state(TxId::Client(elsewhere)).is_some());
    }

    #[test]
    fn retransmitted_cancel_gets_its_200_again() {
        let now = epoch();
        let mut t = Transactions::new(TransactionConfig::default());
        let via = "h:5060;branch=z9hG4bKc";
        t.handle_message(now, req("INVITE", via, 1), peer(), false);
        t.handle_message(now, req("CANCEL", via, 1), peer(), false);
        t.handle_message(now, req("CANCEL", via, 1), peer(), false);
        let sent: Vec<_> = std::iter::from_fn(|| t.poll_transmit()).collect();
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|s| s.bytes.starts_with(b"SIP/2.0 200")));
        let cancelled = events(&mut t)
            .iter()
            .filter(|e| matches!(e, TxEvent::Cancelled { .. }))
            .count();
        assert_eq!(cancelled, 1);
    }
}
