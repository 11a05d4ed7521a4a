//! The back-to-back user agent: one [`B2bua`] per worker relays calls between leg A (the Outside) and
//! leg B (the Inside), sans-IO.
//!
//! The SBC never forwards a message: for every message of one leg it builds a new one for the other
//! leg, with its own Via, Call-ID, tags, CSeq and Contact, and copies only the headers the
//! [`TopologyPolicy`] allows ([`copy_headers`]). With a [`MediaAnchor`] attached
//! ([`B2bua::attach_media`]) every SDP body is rewritten to the SBC's media address and the call's
//! relay ports (offers the SBC cannot carry get 488/400, no ports left 503), and the call's media
//! session is freed on every way the call ends; without one, bodies pass through unchanged.
//!
//! # Drive loop
//! The driver follows the same rule as the transaction layer:
//! 1. *mutate*: [`B2bua::handle_message`] for every parsed message (with the side it arrived on and a
//!    [`Router`] for new calls), [`B2bua::handle_timeout`] when the deadline passes;
//! 2. *drain*: [`B2bua::poll_transmit`] until `None` (send each datagram), then [`B2bua::poll_event`]
//!    until `None` (CDRs, metrics);
//! 3. *sleep* until [`B2bua::poll_timeout`].
//!
//! Time is always an input; nothing here reads a clock.
//!
//! # Call flow
//! - A new INVITE from the Outside gets 100 Trying when leg B has not answered within 200 ms (the
//!   transaction layer's rule, RFC 3261 §17.2.1), is routed by the caller's [`Router`]
//!   (no target: 404; dialog table full: 503; Max-Forwards 0: 483) and relayed as a new INVITE on leg B
//!   with a fresh Call-ID, From tag and branch from [`IdGen`] (so they carry the worker id), CSeq 1 and
//!   the SBC's inside Contact.
//! - Provisional responses (except 100) go to A with the SBC's single To tag for leg A. When leg B forks
//!   into several early dialogs, A sees one early dialog: the SBC tag; leg B's dialog is the one whose
//!   2xx arrives first (later 2xx of other forks are not yet acknowledged and torn down: a known gap).
//! - A 2xx from B is relayed to A and retransmitted toward A over UDP (T1 doubling up to T2, RFC 3261
//!   §13.3.1.4) until A's ACK arrives; only then is B acknowledged. No ACK within the no-ACK timeout:
//!   BYE on both legs. Non-2xx finals are relayed with the same status (the transaction layer ACKs B).
//! - CANCEL from A becomes a CANCEL on B (once B has sent a provisional); B's 487 is relayed.
//! - BYE from either side: 200 to it, BYE on the other leg; the call ends when that BYE completes.
//! - Other requests in the confirmed dialog (re-INVITE, UPDATE, INFO, MESSAGE, NOTIFY, REFER, OPTIONS)
//!   are relayed to the other leg under that leg's own CSeq; their responses come back the same way.
//! - Leg B is matched by its Call-ID, which the SBC generated: a message from the Inside whose Call-ID
//!   fails [`IdGen::worker_of`] is dropped before any state is touched (counted in
//!   [`B2buaStats::forged`]). Leg A is matched by (Call-ID, the SBC's To tag).
//! - Every call sits in a [`BoundedTable`] with an absolute deadline (ringing, no-ACK, maximum duration,
//!   teardown grace); when it passes the live legs are cancelled or sent BYE and the call is removed.
//!
//! In-dialog requests are sent to the address the leg's peer used (leg A: the source of its INVITE,
//! leg B: the routed target), not resolved from Contact or a route set; calls from the Inside, PRACK
//! and early-dialog UPDATE are later slices.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_sip::build;
use sbc_sip::header::NameAddr;
use sbc_sip::transaction::{
    ClientTxId, Flow, ServerTxId, StrayKind, TransactionConfig, Transactions, Transmit, TxError,
    TxEvent, TxId, TxState,
};
use sbc_sip::writer::{push_socket_addr, MessageWriter};
use sbc_sip::{HeaderName, Message, Method};

use media_plane::shard::Side as MediaSide;

use crate::callmedia::{AnchorFault, CallMedia, MediaAnchor};
use crate::registration::digest::{Challenge, Credentials, DigestRequest};
use crate::registration::registrar::{
    Aor, BindingKey, RegContact, RegisterOutcome, RegisterRequest, Registrar, RegistrarConfig,
    RegistrarError, Transport,
};
use crate::registration::trunkreg::{
    RegState, RegStats, TrunkAuth, TrunkRegistration, TrunkRegistrationConfig,
};
use crate::signalling::ids::{IdGen, IdKind, WorkerId};
use crate::signalling::nat;
use crate::signalling::topology::{
    copy_headers, next_max_forwards, with_tag, Side, TopologyPolicy,
};
use crate::table::BoundedTable;

/// Where a new call (or a REGISTER) goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The next hop.
    pub dest: SocketAddr,
    /// The side the next hop is on (never the side the request came from).
    pub side: Side,
    /// Whether the next hop is reached over a connection (TCP/TLS).
    pub reliable: bool,
    /// The local socket or connection to send from.
    pub flow: Flow,
    /// The Request-URI of the new leg; `None`: `sip:<user>@<dest>`.
    pub uri: Option<String>,
    /// The called number on the new leg (Request-URI and To user), after number rules; `None`: as
    /// received.
    pub user: Option<String>,
    /// Credentials the SBC answers a digest challenge with on the new leg (a carrier trunk).
    pub auth: Option<Arc<TrunkAuth>>,
    /// Next hops to try, in order, when this one refuses a new call with 503, 408, 500 or 504 (or
    /// does not answer at all) before any provisional response: the other usable targets of the
    /// same group, as (address, over a connection).
    pub alternates: Vec<(SocketAddr, bool)>,
}

impl Target {
    /// A UDP next hop on `side` at `dest`, sent from `flow`, with the Request-URI built from the
    /// received called number.
    pub fn udp(side: Side, dest: SocketAddr, flow: Flow) -> Self {
        Self {
            dest,
            side,
            reliable: false,
            flow,
            uri: None,
            user: None,
            auth: None,
            alternates: Vec::new(),
        }
    }
}

/// Chooses the next hop of a new call or REGISTER.
pub trait Router {
    /// Where the new request `msg`, received on side `from`, goes; `None` answers 404 (a REGISTER
    /// without a target is answered by the SBC itself).
    fn route(&self, msg: &Message, from: Side) -> Option<Target>;
}

impl<F: Fn(&Message, Side) -> Option<Target>> Router for F {
    fn route(&self, msg: &Message, from: Side) -> Option<Target> {
        self(msg, from)
    }
}

/// How a message reached the SBC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The packet's source address.
    pub source: SocketAddr,
    /// The side of the socket or connection it arrived on.
    pub side: Side,
    /// Whether it came over a connection (TCP/TLS).
    pub reliable: bool,
    /// The local socket or connection it arrived on (answers leave by it).
    pub flow: Flow,
}

/// Settings of one worker's B2BUA.
#[derive(Clone, Debug)]
pub struct B2buaConfig {
    /// The SBC's own address toward the Outside (Via and Contact on leg A).
    pub outside_contact: SocketAddr,
    /// The SBC's own address toward the Inside (Via and Contact on leg B).
    pub inside_contact: SocketAddr,
    /// Maximum concurrent calls of this worker; a new INVITE beyond it gets 503.
    pub max_dialogs: usize,
    /// How long a relayed 2xx waits for A's ACK before both legs are sent BYE (32 s).
    pub no_ack_timeout: Duration,
    /// Longest call, from answer to forced BYE (e.g. 4 h).
    pub max_call_duration: Duration,
    /// Longest ringing phase before the call is cancelled (e.g. 180 s).
    pub ringing_timeout: Duration,
    /// The worker this B2BUA runs on (carried in every id it generates).
    pub worker: WorkerId,
    /// The id secret shared by all workers.
    pub secret: [u8; 32],
    /// Seed of the id counter (any value; differs per start).
    pub seed: u64,
    /// Header policy at each crossing.
    pub topology: TopologyPolicy,
    /// Settings of the transaction layer (T1, T2, ...).
    pub transactions: TransactionConfig,
    /// Settings of the binding table of registered user agents.
    pub registrar: RegistrarConfig,
    /// The flow of keep-alives and requests toward the outside when no better one is known.
    pub outside_flow: Flow,
}

impl B2buaConfig {
    /// A configuration with the usual timers (no-ACK 32 s, 4 h calls, 180 s ringing) and the default
    /// topology policy and transaction settings.
    pub fn new(
        outside_contact: SocketAddr,
        inside_contact: SocketAddr,
        worker: WorkerId,
        secret: [u8; 32],
    ) -> Self {
        Self {
            outside_contact,
            inside_contact,
            max_dialogs: 100_000,
            no_ack_timeout: Duration::from_secs(32),
            max_call_duration: Duration::from_secs(4 * 3600),
            ringing_timeout: Duration::from_secs(180),
            worker,
            secret,
            seed: 0,
            topology: TopologyPolicy::default(),
            transactions: TransactionConfig::default(),
            registrar: RegistrarConfig::default(),
            outside_flow: Flow::default(),
        }
    }
}

/// A call handle, unique within one B2BUA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Leg B answered the INVITE with this final status (≥ 300), relayed to A.
    Rejected(u16),
    /// A cancelled before the answer.
    Cancelled,
    /// The side that sent BYE.
    Bye(Side),
    /// A never acknowledged the 2xx.
    NoAck,
    /// No final response from leg B (Timer B or the ringing timeout): 408 to A.
    NoAnswer,
    /// A request on a leg timed out or failed in the confirmed dialog.
    LegFailure(Side),
    /// The maximum call duration passed.
    MaxDuration,
    /// No media on any leg for the no-media timeout.
    NoMedia,
}

/// What happened to a call, for CDRs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// A new call was accepted and relayed to leg B.
    Started {
        /// The call.
        call: CallId,
    },
    /// Leg B answered with a 2xx.
    Answered {
        /// The call.
        call: CallId,
    },
    /// The call is gone from the table.
    Ended {
        /// The call.
        call: CallId,
        /// Why.
        reason: EndReason,
    },
    /// The OPTIONS probe sent by [`B2bua::probe`] with this token was answered (`alive`: with a
    /// status that shows the peer alive) or timed out.
    Probed {
        /// The caller's token.
        token: u64,
        /// Whether the peer answered.
        alive: bool,
    },
}

/// Counters of one B2BUA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct B2buaStats {
    /// Messages from the Inside whose Call-ID was not made by the SBC: dropped.
    pub forged: u64,
    /// Messages that matched nothing and were dropped (stray ACKs and responses).
    pub dropped: u64,
    /// Messages the SBC built that failed to parse back (a bug or an unusable received value).
    pub build_failures: u64,
    /// REGISTER requests handled (answered locally or relayed).
    pub registers: u64,
    /// Keep-alive OPTIONS sent toward registered user agents behind NAT.
    pub keepalives: u64,
    /// Trunk challenges answered with the trunk's credentials.
    pub trunk_auth_answered: u64,
    /// Calls refused because the trunk refused the credentials (403 to the caller).
    pub trunk_auth_failures: u64,
    /// New calls moved to the next target of their group after the first refused them (503, 408,
    /// 500, 504) or did not answer.
    pub failovers: u64,
}

/// One leg of a call, as the SBC sees it when sending on it.
#[derive(Clone, Debug)]
struct Leg {
    side: Side,
    call_id: String,
    /// From value of the SBC's requests on this leg (carries the SBC tag).
    local: String,
    /// To value of the SBC's requests on this leg (carries the peer's tag once known).
    remote: String,
    /// Request-URI of the SBC's requests on this leg.
    target_uri: String,
    /// Where the SBC's requests on this leg go.
    dest: SocketAddr,
    reliable: bool,
    /// The local socket or connection of this leg.
    flow: Flow,
    /// Last CSeq the SBC used on this leg.
    cseq: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ringing,
    AwaitAck,
    Confirmed,
    Ending,
}

/// A 2xx to an INVITE relayed to one leg, waiting for that leg's ACK.
#[derive(Debug)]
struct AckWait {
    /// The leg that sent the 2xx (and will get the ACK).
    ack_leg: Side,
    /// CSeq of the INVITE on `ack_leg`.
    cseq: u32,
    /// The server transaction on the other leg that carries the relayed 2xx.
    server: ServerTxId,
    /// The relayed 2xx: its status and bytes.
    response: (u16, Bytes),
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

#[derive(Debug)]
struct Call {
    state: State,
    a: Leg,
    b: Leg,
    invite_a: ServerTxId,
    invite_a_req: Message,
    invite_b: ClientTxId,
    /// The SBC's To tag on leg A.
    a_tag: String,
    cancel_pending: bool,
    cancelled: bool,
    ack_wait: Option<AckWait>,
    /// Last ACK sent on leg B (CSeq, bytes), re-sent when B retransmits its 2xx.
    last_ack_b: Option<(u32, Bytes)>,
    /// A relayed INVITE is pending on some leg (glare guard: 491).
    reinvite_pending: bool,
    byes_pending: u8,
    end_reason: Option<EndReason>,
    media: CallMedia,
    /// Trunk credentials, and the INVITE sent on leg B (kept only then, to answer a challenge).
    auth: Option<(Arc<TrunkAuth>, Message)>,
    /// What it takes to send leg B's INVITE to the next target of the group, while there is one
    /// (boxed: only calls to a group of several targets carry it).
    retarget: Option<Box<Retarget>>,
    /// Challenges answered on leg B (at most one).
    auth_answered: u8,
}

/// Leg B's INVITE, again, toward another target of the same group (fail-over before any
/// provisional response).
#[derive(Debug)]
struct Retarget {
    /// The targets still to try, in order: (address, over a connection).
    alternates: Vec<(SocketAddr, bool)>,
    /// The body of leg B's INVITE (the anchored offer), `None`: the caller's, as received.
    body: Option<Vec<u8>>,
    max_forwards: u8,
    /// The called user of leg B's Request-URI (`sip:<user>@<target>`).
    callee: String,
}

impl Leg {
    /// Whether the peer's tag is known (the dialog, early or confirmed, is established).
    fn remote_tagged(&self) -> bool {
        NameAddr::parse(&self.remote).is_ok_and(|n| n.tag().is_some())
    }
}

impl Call {
    /// The leg on `side` (the two legs are always on opposite sides).
    fn leg(&self, side: Side) -> &Leg {
        if self.a.side == side {
            &self.a
        } else {
            &self.b
        }
    }
    fn leg_mut(&mut self, side: Side) -> &mut Leg {
        if self.a.side == side {
            &mut self.a
        } else {
            &mut self.b
        }
    }
}

/// What a client transaction is for.
#[derive(Debug)]
enum ClientRole {
    Invite(u64),
    Cancel,
    Bye(u64),
    Relay {
        call: u64,
        server: ServerTxId,
        request: Box<Message>,
        to: Side,
        cseq: u32,
    },
    /// A REGISTER relayed to the registrar behind the SBC for a binding of the UA that sent it.
    Register {
        key: BindingKey,
        server: ServerTxId,
        request: Box<Message>,
        pbx_expires: Duration,
    },
    /// A deregistration or keep-alive: the answer changes nothing.
    Fire,
    /// The SBC's own registration with a carrier trunk (index into `trunk_regs`).
    TrunkRegister(usize),
    /// A health probe of the caller's.
    Probe(u64),
}

/// The SBC's own registration at the registrar behind it, for one binding.
#[derive(Debug)]
struct PbxReg {
    /// The user part of the SBC's Contact at the registrar: an id of this worker, so a call to it
    /// reaches the worker holding the binding.
    token: String,
    call_id: String,
    tag: String,
    cseq: u32,
    /// Where it was sent.
    target: Target,
}

fn other(side: Side) -> Side {
    match side {
        Side::Outside => Side::Inside,
        Side::Inside => Side::Outside,
    }
}

/// The URI of a Contact / name-addr value: between `<` and `>`, or up to the first `;`.
fn uri_of(value: &str) -> &str {
    let v = value.trim();
    if let Some(start) = v.find('<') {
        let rest = v.get(start + 1..).unwrap_or_default();
        return rest.split('>').next().unwrap_or_default().trim();
    }
    v.split(';').next().unwrap_or_default().trim()
}

/// The Request-URI of leg B toward `dest` when the target names none: `sip:<callee>@<dest>`, or
/// `sip:<dest>` without a called user.
fn leg_uri(callee: &str, dest: SocketAddr) -> String {
    let mut uri = String::with_capacity(48);
    uri.push_str("sip:");
    if !callee.is_empty() {
        uri.push_str(callee);
        uri.push('@');
    }
    push_socket_addr(&mut uri, dest);
    uri
}

fn user_of(value: &str) -> Option<String> {
    let na = NameAddr::parse(value).ok()?;
    na.uri.user.map(str::to_owned)
}

/// The sans-IO B2BUA of one worker. See the module documentation for the drive loop.
#[derive(Debug)]
pub struct B2bua {
    config: B2buaConfig,
    txs: Transactions,
    ids: IdGen,
    /// Boxed: the table moves only pointers when it grows (a call is ~1.7 KB).
    calls: BoundedTable<u64, Box<Call>>,
    /// Caller legs by the SBC's To tag (an id of this worker, unique).
    a_index: HashMap<String, u64>,
    /// Callee legs by the SBC's Call-ID.
    b_index: HashMap<String, u64>,
    registrar: Registrar,
    pbx_regs: HashMap<BindingKey, PbxReg>,
    /// Binding of each Contact token given to the registrar behind the SBC.
    tokens: HashMap<String, BindingKey>,
    server_calls: HashMap<ServerTxId, u64>,
    clients: HashMap<ClientTxId, ClientRole>,
    retx: BTreeSet<(Instant, u64)>,
    out: VecDeque<Transmit>,
    events: VecDeque<CallEvent>,
    next_call: u64,
    stats: B2buaStats,
    /// The worker's media relay, when media is anchored (`None`: SDP passes through).
    media: Option<MediaAnchor>,
    /// The latest time given by the driver (ports freed by paths that have no `now` of their own).
    last_now: Option<Instant>,
    /// The SBC's registrations with carrier trunks that require one.
    trunk_regs: Vec<TrunkRegistration>,
    /// The outside and inside contact addresses as text.
    contact_text: [String; 2],
}

impl B2bua {
    /// A B2BUA with an empty dialog table.
    pub fn new(config: B2buaConfig) -> Self {
        Self {
            txs: Transactions::new(config.transactions.clone()),
            ids: IdGen::new(config.secret, config.worker, config.seed),
            calls: BoundedTable::new(config.max_dialogs),
            a_index: HashMap::new(),
            b_index: HashMap::new(),
            registrar: Registrar::new(config.registrar.clone()),
            pbx_regs: HashMap::new(),
            tokens: HashMap::new(),
            server_calls: HashMap::new(),
            clients: HashMap::new(),
            retx: BTreeSet::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            next_call: 0,
            stats: B2buaStats::default(),
            media: None,
            last_now: None,
            trunk_regs: Vec::new(),
            contact_text: [
                config.outside_contact.to_string(),
                config.inside_contact.to_string(),
            ],
            config,
        }
    }

    /// [`Self::contact`] as text, formatted once (every request the SBC builds writes it twice).
    fn contact_text(&self, side: Side) -> &str {
        let [outside, inside] = &self.contact_text;
        match side {
            Side::Outside => outside,
            Side::Inside => inside,
        }
    }

    /// Anchor the media of every call on `anchor` (the worker's relay): SDP bodies are rewritten to
    /// its address and ports, sessions are freed when calls end, calls without media are ended.
    pub fn attach_media(&mut self, anchor: MediaAnchor) {
        self.media = Some(anchor);
    }

    /// Keep the SBC registered with a carrier trunk (the first REGISTER goes out at `now`).
    pub fn register_trunk(&mut self, config: TrunkRegistrationConfig, now: Instant) {
        let call_id = self.ids.generate(IdKind::CallId).as_str().to_owned();
        let tag = self.ids.generate(IdKind::Tag).as_str().to_owned();
        self.trunk_regs
            .push(TrunkRegistration::new(config, call_id, tag, now));
    }

    /// The trunk registrations: name, state and counters.
    pub fn trunk_registrations(&self) -> impl Iterator<Item = (&str, RegState, RegStats)> + '_ {
        self.trunk_regs
            .iter()
            .map(|r| (r.config().name.as_str(), r.state(), r.stats()))
    }

    /// The SBC is stopping: every trunk registration sends its REGISTER with `Expires: 0` now
    /// (answering a challenge once, as for a registration). Returns how many went out; see
    /// [`Self::trunks_closing`] for when they are answered.
    pub fn unregister_trunks(&mut self, now: Instant) -> usize {
        let mut sent = 0;
        for i in 0..self.trunk_regs.len() {
            if self.trunk_regs.get_mut(i).is_some_and(|r| r.close(now)) {
                self.send_trunk_register(now, i, None);
                sent += 1;
            }
        }
        sent
    }

    /// Whether a trunk's removal ([`Self::unregister_trunks`]) is still unanswered.
    pub fn trunks_closing(&self) -> bool {
        self.trunk_regs.iter().any(TrunkRegistration::closing)
    }

    /// Send trunk `i`'s REGISTER, answering `challenge` when given.
    fn send_trunk_register(&mut self, now: Instant, i: usize, challenge: Option<&Challenge>) {
        let branch = self.ids.generate(IdKind::Branch);
        let cnonce = self.ids.generate(IdKind::Tag);
        let contact = self.config.outside_contact;
        let flow = self.config.outside_flow;
        let Some(r) = self.trunk_regs.get_mut(i) else {
            return;
        };
        let (dest, reliable) = (r.config().registrar, r.config().reliable);
        let Some(msg) = r.build(
            branch.as_str(),
            contact,
            challenge.map(|c| (c, cnonce.as_str())),
        ) else {
            r.on_failure(now);
            return;
        };
        match self.txs.send_request_on(now, msg, dest, reliable, flow) {
            Ok(tx) => {
                self.clients.insert(tx, ClientRole::TrunkRegister(i));
            }
            Err(_) => {
                if let Some(r) = self.trunk_regs.get_mut(i) {
                    r.on_failure(now);
                }
            }
        }
    }

    /// The media anchor, for the worker's packet path and counters.
    pub fn media_mut(&mut self) -> Option<&mut MediaAnchor> {
        self.media.as_mut()
    }

    /// The media anchor.
    pub fn media(&self) -> Option<&MediaAnchor> {
        self.media.as_ref()
    }

    /// Live calls in the dialog table.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Bindings of registered user agents held by this worker.
    pub fn registrations(&self) -> usize {
        self.registrar.len()
    }

    /// Live transactions of the underlying layer.
    pub fn transactions(&self) -> usize {
        self.txs.len()
    }

    /// Counters.
    pub fn stats(&self) -> B2buaStats {
        self.stats
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front().or_else(|| self.txs.poll_transmit())
    }

    /// Next call event.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// The earliest deadline: transaction timers, 2xx retransmissions, call deadlines, binding
    /// expiries and keep-alives.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        [
            self.txs.poll_timeout(),
            self.calls.next_deadline(),
            self.retx.first().map(|r| r.0),
            self.registrar.next_deadline(),
            self.media.as_ref().and_then(MediaAnchor::next_deadline),
            self.trunk_regs
                .iter()
                .filter_map(TrunkRegistration::deadline)
                .min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fire everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        self.txs.handle_timeout(now);
        self.pump(now, None);
        while let Some(&(at, key)) = self.retx.first() {
            if at > now {
                break;
            }
            self.retx.remove(&(at, key));
            self.retransmit_2xx(now, at, key);
        }
        while let Some((key, call)) = self.calls.poll_expired(now) {
            let reason = match call.state {
                State::Ringing => EndReason::NoAnswer,
                State::AwaitAck => EndReason::NoAck,
                State::Confirmed => EndReason::MaxDuration,
                State::Ending => call.end_reason.unwrap_or(EndReason::MaxDuration),
            };
            self.teardown(now, key, call, reason);
        }
        self.expire_bindings(now);
        self.end_silent_calls(now);
        for i in 0..self.trunk_regs.len() {
            if self.trunk_regs.get(i).is_some_and(|r| r.due(now)) {
                self.send_trunk_register(now, i, None);
            }
        }
        while let Some(ka) = self.registrar.poll_keepalive(now) {
            let flow = ka.connection.map_or(self.config.outside_flow, Flow);
            let target = Target {
                dest: ka.source,
                side: Side::Outside,
                reliable: ka.transport.is_reliable(),
                flow,
                uri: self.registrar.get(&ka.key).map(|b| b.contact_uri.clone()),
                user: None,
                auth: None,
                alternates: Vec::new(),
            };
            if self.send_options(now, &target, ClientRole::Fire) {
                self.stats.keepalives += 1;
            }
        }
        self.pump(now, None);
    }

    /// Send an OPTIONS probe to `target`; its outcome comes back as [`CallEvent::Probed`] with
    /// `token`. Returns whether it could be sent.
    pub fn probe(&mut self, now: Instant, target: &Target, token: u64) -> bool {
        let sent = self.send_options(now, target, ClientRole::Probe(token));
        self.pump(now, None);
        sent
    }

    /// An out-of-dialog OPTIONS to `target` in its own client transaction.
    fn send_options(&mut self, now: Instant, target: &Target, role: ClientRole) -> bool {
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

    fn contact(&self, side: Side) -> SocketAddr {
        match side {
            Side::Outside => self.config.outside_contact,
            Side::Inside => self.config.inside_contact,
        }
    }

    /// A message arrived (see [`Origin`]). `router` picks the next hop when it starts a call or is a
    /// REGISTER.
    pub fn handle_message(
        &mut self,
        now: Instant,
        msg: Message,
        from: Origin,
        router: &dyn Router,
    ) {
        self.last_now = Some(now);
        if from.side == Side::Inside && msg.is_request() && self.forged_from_inside(&msg) {
            self.stats.forged += 1;
            return;
        }
        self.txs
            .handle_message_on(now, msg, from.source, from.reliable, from.flow);
        self.pump_with(now, Some(from), router);
    }

    /// An in-dialog request from the Inside that names no dialog of this worker: its Call-ID is not
    /// one the SBC made and its To tag is not one of the SBC's calls from the Inside.
    fn forged_from_inside(&self, msg: &Message) -> bool {
        let Some(tag) = msg.to_tag() else {
            return false;
        };
        !self.b_index.contains_key(msg.call_id()) && !self.a_index.contains_key(tag)
    }

    fn pump(&mut self, now: Instant, from: Option<Origin>) {
        let no_route = |_: &Message, _: Side| None;
        self.pump_with(now, from, &no_route);
    }

    /// Process every event of the transaction layer.
    fn pump_with(&mut self, now: Instant, from: Option<Origin>, router: &dyn Router) {
        while let Some(ev) = self.txs.poll_event() {
            match ev {
                TxEvent::Request {
                    tx,
                    request,
                    source,
                } => {
                    let origin = from.map_or(
                        Origin {
                            source,
                            side: Side::Outside,
                            reliable: false,
                            flow: Flow::default(),
                        },
                        |f| Origin { source, ..f },
                    );
                    self.on_request(now, tx, request, origin, router);
                }
                TxEvent::Refused { request, source } => {
                    let mut out = Vec::new();
                    build::response(&request, 503, build::reason_phrase(503), None, &mut out)
                        .finish(None, b"");
                    self.out.push_back(Transmit {
                        dest: source,
                        bytes: Bytes::from(out),
                        flow: from.map_or(Flow::default(), |f| f.flow),
                    });
                }
                TxEvent::Response { tx, response } => self.on_response(now, tx, response),
                TxEvent::Cancelled { invite, .. } => self.on_cancelled(now, invite),
                TxEvent::Timeout {
                    tx: TxId::Client(tx),
                    ..
                }
                | TxEvent::TransportError {
                    tx: TxId::Client(tx),
                } => self.on_client_failure(now, tx),
                TxEvent::Timeout { .. } | TxEvent::TransportError { .. } => {}
                TxEvent::Terminated { tx } => match tx {
                    TxId::Client(c) => {
                        self.clients.remove(&c);
                    }
                    TxId::Server(s) => {
                        self.server_calls.remove(&s);
                    }
                },
                TxEvent::Stray {
                    kind,
                    message,
                    source: _,
                } => match kind {
                    StrayKind::Ack | StrayKind::AckInAccepted => {
                        let side = from.map_or(Side::Outside, |f| f.side);
                        self.on_ack(now, message, side);
                    }
                    StrayKind::Response => self.on_stray_response(message),
                    StrayKind::NoBranch => self.stats.dropped += 1,
                },
            }
        }
    }

    /// Find the call of an in-dialog request from `side`: a callee leg by the SBC's Call-ID, a
    /// caller leg by the SBC's To tag and the caller's Call-ID. The leg found must be on `side`.
    fn find(&self, msg: &Message, side: Side) -> Option<u64> {
        if let Some(&key) = self.b_index.get(msg.call_id()) {
            return self
                .calls
                .get(&key)
                .filter(|c| c.b.side == side)
                .map(|_| key);
        }
        let tag = msg.to_tag()?;
        let key = *self.a_index.get(tag)?;
        self.calls
            .get(&key)
            .filter(|c| c.a.side == side && c.a.call_id == msg.call_id())
            .map(|_| key)
    }

    /// Answer `req` on server transaction `tx` with `code` and no body.
    fn reply(&mut self, now: Instant, tx: ServerTxId, req: &Message, code: u16, tag: Option<&str>) {
        let mut out = Vec::new();
        build::response(req, code, build::reason_phrase(code), tag, &mut out).finish(None, b"");
        // The transaction may have ended (e.g. a late answer): nothing to send then.
        let _ = self
            .txs
            .send_response_bytes(now, tx, code, Bytes::from(out));
    }

    fn send_response(&mut self, now: Instant, tx: ServerTxId, out: Vec<u8>) {
        match Message::parse(Bytes::from(out)) {
            Ok(m) => {
                // The transaction may have ended (e.g. a late answer): nothing to send then.
                let _ = self.txs.send_response(now, tx, m);
            }
            Err(_) => self.stats.build_failures += 1,
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: Message,
        from: Origin,
        router: &dyn Router,
    ) {
        let side = from.side;
        let method = req.method().cloned().unwrap_or(Method::Options);
        if req.to_tag().is_none() {
            match (side, &method) {
                (_, Method::Invite) => self.new_call(now, tx, req, from, router),
                (_, Method::Options) => self.reply(now, tx, &req, 200, None),
                (Side::Outside, Method::Register) => {
                    self.on_register(now, tx, &req, from, router);
                }
                _ => self.reply(now, tx, &req, 405, None),
            }
            return;
        }
        let Some(key) = self.find(&req, side) else {
            self.reply(now, tx, &req, 481, None);
            return;
        };
        let state = self.calls.get(&key).map(|c| c.state);
        match (method, state) {
            (Method::Bye, Some(State::Ringing)) => {
                self.reply(now, tx, &req, 200, None);
                self.cancel_b(now, key);
            }
            (Method::Bye, Some(State::AwaitAck | State::Confirmed)) => {
                self.reply(now, tx, &req, 200, None);
                self.end_with_bye(now, key, &[other(side)], EndReason::Bye(side));
            }
            (Method::Bye, Some(State::Ending)) => self.reply(now, tx, &req, 200, None),
            (Method::Invite, Some(State::Confirmed)) => {
                let glare = self.calls.get(&key).is_some_and(|c| c.reinvite_pending);
                if glare {
                    self.reply(now, tx, &req, 491, None);
                } else {
                    self.relay_request(now, key, tx, req, side);
                }
            }
            (_, Some(State::Confirmed)) => self.relay_request(now, key, tx, req, side),
            // Early dialog (RFC 3262 PRACK, RFC 3311 UPDATE, INFO): relayed once the callee's
            // early dialog is known.
            (Method::Prack | Method::Update | Method::Info, Some(State::Ringing))
                if self.calls.get(&key).is_some_and(|c| c.b.remote_tagged()) =>
            {
                self.relay_request(now, key, tx, req, side);
            }
            _ => self.reply(now, tx, &req, 481, None),
        }
    }

    /// The next hop of a new INVITE: a binding of this worker's registrar when the Inside calls the
    /// Contact the SBC registered for a user agent, else the caller's router.
    fn target_of(&self, req: &Message, side: Side, router: &dyn Router) -> Option<Target> {
        if side == Side::Inside {
            let user = req
                .request_uri()
                .and_then(|u| sbc_sip::uri::Uri::parse(u).ok())
                .and_then(|u| u.user);
            if let Some(b) = user
                .and_then(|u| self.tokens.get(u))
                .and_then(|k| self.registrar.get(k))
            {
                return Some(Target {
                    dest: b.source,
                    side: Side::Outside,
                    reliable: b.transport.is_reliable(),
                    flow: b.connection.map_or(self.config.outside_flow, Flow),
                    uri: Some(b.contact_uri.clone()),
                    user: None,
                    auth: None,
                    alternates: Vec::new(),
                });
            }
        }
        router.route(req, side).filter(|t| t.side != side)
    }

    fn new_call(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: Message,
        from: Origin,
        router: &dyn Router,
    ) {
        let Ok(max_forwards) = next_max_forwards(req.max_forwards()) else {
            self.reply(now, tx, &req, 483, None);
            return;
        };
        let Some(target) = self.target_of(&req, from.side, router) else {
            self.reply(now, tx, &req, 404, None);
            return;
        };
        if self.calls.len() >= self.calls.capacity() {
            self.reply(now, tx, &req, 503, None);
            return;
        }
        // No 100 Trying here: the transaction layer sends one if leg B has not answered within
        // 200 ms (RFC 3261 §17.2.1), so a call the PBX rings at once costs one datagram less.

        let a_tag = self.ids.generate(IdKind::Tag).as_str().to_owned();
        let b_call_id = self.ids.generate(IdKind::CallId).as_str().to_owned();
        let b_tag = self.ids.generate(IdKind::Tag);
        let branch = self.ids.generate(IdKind::Branch);
        let from_value = req.header(HeaderName::From).unwrap_or_default();
        let to_value = req.header(HeaderName::To).unwrap_or_default();
        let [outside_text, inside_text] = &self.contact_text;
        let here = match target.side {
            Side::Outside => outside_text,
            Side::Inside => inside_text,
        };
        let callee = target.user.clone().unwrap_or_else(|| {
            req.request_uri()
                .and_then(|u| sbc_sip::uri::Uri::parse(u).ok())
                .and_then(|u| u.user.map(str::to_owned))
                .unwrap_or_default()
        });
        let caller = user_of(from_value).unwrap_or_else(|| "anonymous".to_owned());
        let b_uri = target
            .uri
            .clone()
            .unwrap_or_else(|| leg_uri(&callee, target.dest));
        let b = Leg {
            side: target.side,
            call_id: b_call_id.clone(),
            local: ["<sip:", &caller, "@", here, ">;tag=", b_tag.as_str()].concat(),
            remote: ["<", &b_uri, ">"].concat(),
            target_uri: b_uri,
            dest: target.dest,
            reliable: target.reliable,
            flow: target.flow,
            cseq: 1,
        };
        let a = Leg {
            side: from.side,
            call_id: req.call_id().to_owned(),
            local: with_tag(to_value, Some(&a_tag)).unwrap_or_default(),
            remote: from_value.to_owned(),
            target_uri: req
                .header(HeaderName::Contact)
                .map(|c| uri_of(c).to_owned())
                .unwrap_or_else(|| format!("sip:{}", from.source)),
            dest: from.source,
            reliable: from.reliable,
            flow: from.flow,
            cseq: 0,
        };
        let key = self.next_call + 1;
        let mut media = CallMedia::new(self.config.seed ^ key);
        let body = match self.media.as_mut() {
            Some(m) => match m.anchor(now, key, &mut media, &req, MediaSide::A) {
                Ok(body) => body,
                Err(fault) => {
                    m.count_refused();
                    m.release(&mut media, now);
                    self.reply(now, tx, &req, fault.status(), None);
                    return;
                }
            },
            None => None,
        };
        let invite = self.build_request_bytes(
            &b,
            &Method::Invite,
            1,
            branch.as_str(),
            max_forwards,
            Some((&req, from.side)),
            body.as_deref(),
        );
        // Several targets in the group (and none of them a trunk with credentials or a fixed
        // Request-URI): keep what it takes to try the next one.
        let retarget = (!target.alternates.is_empty()
            && target.uri.is_none()
            && target.auth.is_none())
        .then(|| {
            Box::new(Retarget {
                alternates: target.alternates.clone(),
                body: body.clone(),
                max_forwards,
                callee: callee.clone(),
            })
        });
        // Toward a trunk with credentials the INVITE is kept (parsed), to answer its challenge.
        let kept = target
            .auth
            .as_ref()
            .and_then(|_| Message::parse(invite.clone()).ok());
        debug_assert!(
            Message::parse(invite.clone()).is_ok(),
            "built INVITE does not parse"
        );
        let sent = self
            .txs
            .send_request_bytes(
                now,
                invite,
                Method::Invite,
                branch.as_str(),
                b.dest,
                b.reliable,
                b.flow,
            )
            .ok();
        let Some(invite_b) = sent else {
            if let Some(m) = self.media.as_mut() {
                m.release(&mut media, now);
            }
            self.reply(now, tx, &req, 503, None);
            return;
        };
        self.next_call = key;
        let call = Call {
            state: State::Ringing,
            a,
            b,
            invite_a: tx,
            invite_a_req: req,
            invite_b,
            a_tag: a_tag.clone(),
            cancel_pending: false,
            cancelled: false,
            ack_wait: None,
            last_ack_b: None,
            reinvite_pending: false,
            byes_pending: 0,
            end_reason: None,
            media,
            auth: target.auth.clone().zip(kept),
            auth_answered: 0,
            retarget,
        };
        if self
            .calls
            .insert(key, Box::new(call), now + self.config.ringing_timeout)
            .is_err()
        {
            // Checked above; the leg-B INVITE is left to time out on its own.
            return;
        }
        self.a_index.insert(a_tag, key);
        self.b_index.insert(b_call_id, key);
        self.server_calls.insert(tx, key);
        self.clients.insert(invite_b, ClientRole::Invite(key));
        self.events
            .push_back(CallEvent::Started { call: CallId(key) });
    }

    /// Build a request of `method` on `leg` with `cseq`, copying headers and body from `src` (the
    /// message of the other leg that caused it, with the side it came from); `body` replaces the
    /// copied body (the anchored SDP). Then start its client transaction toward the leg's peer.
    ///
    /// The bytes go to the transaction layer unparsed ([`Transactions::send_request_bytes`]): the
    /// builder writes only what it validated, so parsing it back cost a parse per request for
    /// nothing (debug builds still check that it parses).
    #[allow(clippy::too_many_arguments)]
    fn send_built(
        &mut self,
        now: Instant,
        leg: &Leg,
        method: &Method,
        cseq: u32,
        branch: &str,
        max_forwards: u8,
        src: Option<(&Message, Side)>,
        body: Option<&[u8]>,
    ) -> Result<ClientTxId, TxError> {
        let out = self.build_request_bytes(leg, method, cseq, branch, max_forwards, src, body);
        debug_assert!(
            Message::parse(out.clone()).is_ok(),
            "built request does not parse"
        );
        self.txs.send_request_bytes(
            now,
            out,
            method.clone(),
            branch,
            leg.dest,
            leg.reliable,
            leg.flow,
        )
    }

    /// The bytes of a request, as [`Self::send_built`] describes, for what goes out without a
    /// transaction (ACK for a 2xx) or is kept as well as sent (an INVITE toward a trunk).
    #[allow(clippy::too_many_arguments)]
    fn build_request_bytes(
        &self,
        leg: &Leg,
        method: &Method,
        cseq: u32,
        branch: &str,
        max_forwards: u8,
        src: Option<(&Message, Side)>,
        body: Option<&[u8]>,
    ) -> Bytes {
        let contact = self.contact_text(leg.side);
        let transport = if leg.reliable { "TCP" } else { "UDP" };
        let mut out = Vec::with_capacity(512 + body.map_or(0, <[u8]>::len));
        let mut w = MessageWriter::request(&mut out, method, &leg.target_uri);
        w.header_parts(
            "Via",
            &[
                "SIP/2.0/", transport, " ", contact, ";branch=", branch, ";rport",
            ],
        );
        w.header_u32("Max-Forwards", u32::from(max_forwards));
        w.header("From", &leg.local);
        w.header("To", &leg.remote);
        w.header("Call-ID", &leg.call_id);
        w.header_cseq(cseq, method.as_str());
        if !matches!(method, Method::Ack | Method::Bye | Method::Cancel) {
            w.header_parts("Contact", &["<sip:", contact, ">"]);
        }
        match src {
            Some((m, from)) => {
                copy_headers(m, from, leg.side, false, &self.config.topology, &mut w);
                self.write_owned(m, leg, method, &mut w);
                let body = body.unwrap_or(m.body());
                let ct = (!body.is_empty())
                    .then(|| m.header(HeaderName::ContentType))
                    .flatten();
                w.finish(ct, body);
            }
            None => w.finish(None, b""),
        }
        Bytes::from(out)
    }

    /// The owned headers of a relayed request that the SBC writes from the received one: RAck of a
    /// PRACK (mapped to the INVITE CSeq of the leg, RFC 3262 §7.2), Refer-To of a REFER (toward the
    /// Outside, its host becomes the SBC's), and digest credentials when the policy forwards them.
    fn write_owned(&self, m: &Message, leg: &Leg, method: &Method, w: &mut MessageWriter<'_>) {
        match method {
            Method::Prack => {
                if let Some(rseq) = m
                    .header_by_name("RAck")
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    // The SBC's INVITE on a callee leg is always CSeq 1.
                    let rack = format!("{rseq} 1 INVITE");
                    w.header("RAck", &rack);
                }
            }
            Method::Refer => {
                if let Some(v) = m.header(HeaderName::ReferTo) {
                    if leg.side == Side::Outside {
                        let user = sbc_sip::uri::Uri::parse(uri_of(v))
                            .ok()
                            .and_then(|u| u.user.map(str::to_owned))
                            .unwrap_or_default();
                        let at = if user.is_empty() { "" } else { "@" };
                        let value = format!("<sip:{user}{at}{}>", self.config.outside_contact);
                        w.header("Refer-To", &value);
                    } else {
                        w.header("Refer-To", v);
                    }
                }
            }
            _ => {}
        }
    }

    /// Relay `resp` (received on the other leg) as the answer to `req` on server transaction `tx`;
    /// `body` replaces its body (the anchored SDP).
    #[allow(clippy::too_many_arguments)]
    fn relay_response(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: &Message,
        resp: &Message,
        to: Side,
        tag: Option<&str>,
        body: Option<&[u8]>,
    ) -> Option<(u16, Bytes)> {
        let code = resp.status().unwrap_or(500);
        let contact = self.contact_text(to);
        let mut out = Vec::with_capacity(512 + resp.body().len());
        let mut w = build::response(req, code, build::reason_phrase(code), tag, &mut out);
        if code < 300 && req.method() != Some(&Method::Bye) {
            w.header_parts("Contact", &["<sip:", contact, ">"]);
        }
        copy_headers(resp, other(to), to, false, &self.config.topology, &mut w);
        // Owned headers the far end needs as received: RSeq of a reliable provisional (RFC 3262),
        // the challenge of a 401/407 (the peer answers it end to end).
        for name in ["RSeq", "WWW-Authenticate", "Proxy-Authenticate"] {
            for h in resp.headers() {
                if h.raw_name.eq_ignore_ascii_case(name) {
                    w.header(name, h.value);
                }
            }
        }
        let body = body.unwrap_or(resp.body());
        let ct = (!body.is_empty())
            .then(|| resp.header(HeaderName::ContentType))
            .flatten();
        w.finish(ct, body);
        // Built from parsed parts by the writer: handed on without parsing it again.
        let bytes = Bytes::from(out);
        let _ = self.txs.send_response_bytes(now, tx, code, bytes.clone());
        Some((code, bytes))
    }

    /// Relay an in-dialog request from `from` to the other leg.
    fn relay_request(&mut self, now: Instant, key: u64, tx: ServerTxId, req: Message, from: Side) {
        let Ok(max_forwards) = next_max_forwards(req.max_forwards()) else {
            self.reply(now, tx, &req, 483, None);
            return;
        };
        let to = other(from);
        let method = req.method().cloned().unwrap_or(Method::Options);
        let branch = self.ids.generate(IdKind::Branch);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let leg = call.leg_mut(to);
        leg.cseq += 1;
        let cseq = leg.cseq;
        if method == Method::Invite {
            call.reinvite_pending = true;
        }
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let leg = call.leg(to);
        // Borrow juggling: build from a snapshot of the leg.
        let snapshot = Leg {
            cseq,
            ..leg.clone()
        };
        let body = match self.anchor_body(now, key, &req, from) {
            Ok(body) => body,
            Err(fault) => {
                if let Some(call) = self.calls.get_mut(&key) {
                    call.reinvite_pending = false;
                    call.leg_mut(to).cseq -= 1;
                }
                self.reply(now, tx, &req, fault.status(), None);
                return;
            }
        };
        match self.send_built(
            now,
            &snapshot,
            &method,
            cseq,
            branch.as_str(),
            max_forwards,
            Some((&req, from)),
            body.as_deref(),
        ) {
            Ok(c) => {
                self.clients.insert(
                    c,
                    ClientRole::Relay {
                        call: key,
                        server: tx,
                        request: Box::new(req),
                        to,
                        cseq,
                    },
                );
            }
            Err(_) => self.reply(now, tx, &req, 503, None),
        }
    }

    fn on_response(&mut self, now: Instant, tx: ClientTxId, resp: Message) {
        let code = resp.status().unwrap_or(0);
        match self.clients.get(&tx) {
            Some(ClientRole::Invite(key)) => {
                let key = *key;
                self.on_invite_response(now, key, resp, code);
            }
            Some(ClientRole::Bye(key)) if code >= 200 => {
                let key = *key;
                self.bye_done(now, key);
            }
            Some(ClientRole::Relay {
                call,
                server,
                request,
                to,
                cseq,
            }) => {
                let (key, server, request, to, cseq) =
                    (*call, *server, request.clone(), *to, *cseq);
                if code == 100 {
                    return;
                }
                let is_invite = request.method() == Some(&Method::Invite);
                let from = other(to);
                let body = self.anchor_response(now, key, &resp, to);
                let Some(sent) =
                    self.relay_response(now, server, &request, &resp, from, None, body.as_deref())
                else {
                    return;
                };
                if is_invite && code >= 200 {
                    if let Some(call) = self.calls.get_mut(&key) {
                        call.reinvite_pending = false;
                        if code < 300 && call.ack_wait.is_none() {
                            let reliable = call.leg(from).reliable;
                            self.await_ack(now, key, to, cseq, server, sent, reliable);
                        }
                    }
                }
            }
            Some(ClientRole::Register { .. }) if code >= 200 => {
                if let Some(ClientRole::Register {
                    key,
                    server,
                    request,
                    pbx_expires,
                }) = self.clients.remove(&tx)
                {
                    self.on_register_answer(now, key, server, &request, &resp, pbx_expires);
                }
            }
            Some(ClientRole::Probe(token)) if code >= 200 => {
                let (token, alive) = (*token, crate::routing::response_means_alive(code));
                self.clients.remove(&tx);
                self.events.push_back(CallEvent::Probed { token, alive });
            }
            Some(ClientRole::TrunkRegister(i)) if code >= 200 => {
                let i = *i;
                self.clients.remove(&tx);
                let challenge = self
                    .trunk_regs
                    .get_mut(i)
                    .and_then(|r| r.on_response(now, &resp));
                if let Some(c) = challenge {
                    self.send_trunk_register(now, i, Some(&c));
                }
            }
            _ => {}
        }
    }

    // ---- Registrations ------------------------------------------------------------------------

    /// A REGISTER from the Outside: the binding is kept here; the registrar behind the SBC (the
    /// router's target, when there is one) sees the SBC's own Contact. Only the first Contact of a
    /// REGISTER is applied.
    fn on_register(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: &Message,
        from: Origin,
        router: &dyn Router,
    ) {
        self.stats.registers += 1;
        self.expire_bindings(now);
        let Ok(aor) = Aor::parse(req.header(HeaderName::To).unwrap_or_default()) else {
            self.reply(now, tx, req, 400, None);
            return;
        };
        let Some(first) = req.header_values(HeaderName::Contact).next() else {
            // A query of the bindings (RFC 3261 §10.2.3).
            let held: Vec<String> = self
                .registrar
                .lookup(&aor)
                .map(|b| {
                    let left = b.expires_ua.saturating_duration_since(now).as_secs();
                    format!("<{}>;expires={left}", b.contact_uri)
                })
                .collect();
            let mut out = Vec::new();
            let mut w = build::response(req, 200, "OK", None, &mut out);
            for c in &held {
                w.header("Contact", c);
            }
            w.finish(None, b"");
            self.send_response(now, tx, out);
            return;
        };
        let Ok(contact) = RegContact::parse(first) else {
            self.reply(now, tx, req, 400, None);
            return;
        };
        let expires = req
            .header(HeaderName::Expires)
            .and_then(|e| e.trim().parse().ok());
        let transport = Transport::from_token(req.top_via().transport).unwrap_or(Transport::Udp);
        let r = RegisterRequest {
            aor: &aor,
            contact,
            source: from.source,
            transport,
            connection: Some(from.flow.0),
            expires,
            call_id: req.call_id(),
            cseq: req.cseq().seq,
            nated: nat::detect(req, from.source).is_nated(),
        };
        match self.registrar.handle_register(now, &r) {
            Err(e) => {
                let code = e.status_code();
                let mut out = Vec::new();
                let mut w = build::response(req, code, build::reason_phrase(code), None, &mut out);
                if let RegistrarError::IntervalTooBrief { min } = e {
                    w.header_u32(
                        "Min-Expires",
                        u32::try_from(min.as_secs()).unwrap_or(u32::MAX),
                    );
                }
                w.finish(None, b"");
                self.send_response(now, tx, out);
            }
            Ok(RegisterOutcome::Local { key, ua_expires }) => {
                self.answer_register(now, tx, req, &key, ua_expires);
            }
            Ok(RegisterOutcome::Forward {
                key,
                ua_expires,
                pbx_expires,
                ..
            }) => match router
                .route(req, Side::Outside)
                .filter(|t| t.side == Side::Inside)
            {
                // No registrar behind: the SBC's binding is the registration.
                None => self.answer_register(now, tx, req, &key, ua_expires),
                Some(target) => {
                    if !self.register_at_pbx(now, &key, target, pbx_expires, Some((tx, req))) {
                        self.drop_binding(&key);
                        self.reply(now, tx, req, 503, None);
                    }
                }
            },
            Ok(RegisterOutcome::Removed { bindings }) => {
                for b in bindings {
                    let key = BindingKey::new(&b.aor, &b.contact_uri, b.instance.as_deref());
                    self.deregister_at_pbx(now, &key);
                }
                self.reply(now, tx, req, 200, None);
            }
        }
    }

    /// 200 to the UA's REGISTER with the expiry it is granted.
    fn answer_register(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: &Message,
        key: &BindingKey,
        ua_expires: Duration,
    ) {
        let Some(b) = self.registrar.get(key) else {
            self.reply(now, tx, req, 500, None);
            return;
        };
        // Whole seconds, rounded up: the binding was stamped a moment before the registrar behind
        // the SBC answered.
        let whole = ua_expires.as_secs() + u64::from(ua_expires.subsec_nanos() > 0);
        let secs = u32::try_from(whole).unwrap_or(u32::MAX);
        let contact = format!("<{}>;expires={secs}", b.contact_uri);
        let mut out = Vec::new();
        let mut w = build::response(req, 200, "OK", None, &mut out);
        w.header("Contact", &contact).header_u32("Expires", secs);
        w.finish(None, b"");
        self.send_response(now, tx, out);
    }

    /// Register (or refresh) the SBC's Contact for binding `key` at `target`. `ua` is the UA's
    /// REGISTER waiting for the answer. Returns whether the request could be sent.
    fn register_at_pbx(
        &mut self,
        now: Instant,
        key: &BindingKey,
        target: Target,
        pbx_expires: Duration,
        ua: Option<(ServerTxId, &Message)>,
    ) -> bool {
        if !self.pbx_regs.contains_key(key) {
            let token = self.ids.generate(IdKind::Tag).as_str().to_owned();
            let reg = PbxReg {
                token: token.clone(),
                call_id: self.ids.generate(IdKind::CallId).as_str().to_owned(),
                tag: self.ids.generate(IdKind::Tag).as_str().to_owned(),
                cseq: 0,
                target: target.clone(),
            };
            self.tokens.insert(token, key.clone());
            self.pbx_regs.insert(key.clone(), reg);
        }
        let Some(reg) = self.pbx_regs.get_mut(key) else {
            return false;
        };
        reg.cseq += 1;
        reg.target = target;
        let secs = u32::try_from(pbx_expires.as_secs()).unwrap_or(u32::MAX);
        let creds = ua.map(|(_, m)| m);
        let Some(msg) = self.build_register(key, secs, creds) else {
            return false;
        };
        let Some(reg) = self.pbx_regs.get(key) else {
            return false;
        };
        let (dest, reliable, flow) = (reg.target.dest, reg.target.reliable, reg.target.flow);
        let Ok(c) = self.txs.send_request_on(now, msg, dest, reliable, flow) else {
            return false;
        };
        let role = match ua {
            Some((server, req)) => ClientRole::Register {
                key: key.clone(),
                server,
                request: Box::new(req.clone()),
                pbx_expires,
            },
            None => ClientRole::Fire,
        };
        self.clients.insert(c, role);
        true
    }

    /// The SBC's REGISTER for binding `key`, asking `expires` seconds, with the UA's credentials
    /// when the policy toward the Inside forwards them.
    fn build_register(
        &mut self,
        key: &BindingKey,
        expires: u32,
        creds: Option<&Message>,
    ) -> Option<Message> {
        let branch = self.ids.generate(IdKind::Branch);
        let reg = self.pbx_regs.get(key)?;
        let here = self.config.inside_contact;
        let uri = reg
            .target
            .uri
            .clone()
            .unwrap_or_else(|| format!("sip:{}", reg.target.dest));
        let transport = if reg.target.reliable { "TCP" } else { "UDP" };
        let aor = key.aor.as_str();
        let mut out = Vec::with_capacity(512);
        let mut w = MessageWriter::request(&mut out, &Method::Register, &uri);
        let via = format!(
            "SIP/2.0/{transport} {here};branch={};rport",
            branch.as_str()
        );
        let from = format!("<{aor}>;tag={}", reg.tag);
        let to = format!("<{aor}>");
        let cseq = format!("{} REGISTER", reg.cseq);
        let contact = format!("<sip:{}@{here}>", reg.token);
        w.header("Via", &via)
            .header_u32("Max-Forwards", 70)
            .header("From", &from)
            .header("To", &to)
            .header("Call-ID", &reg.call_id)
            .header("CSeq", &cseq)
            .header("Contact", &contact)
            .header_u32("Expires", expires);
        if let Some(m) = creds {
            if self
                .config
                .topology
                .toward(Side::Inside)
                .forward_credentials
            {
                for h in m.headers() {
                    if h.raw_name.eq_ignore_ascii_case("Authorization")
                        || h.raw_name.eq_ignore_ascii_case("Proxy-Authorization")
                    {
                        w.header(h.raw_name, h.value);
                    }
                }
            }
        }
        w.finish(None, b"");
        let parsed = Message::parse(Bytes::from(out)).ok();
        if parsed.is_none() {
            self.stats.build_failures += 1;
        }
        parsed
    }

    /// The registrar behind the SBC answered the REGISTER of binding `key`.
    fn on_register_answer(
        &mut self,
        now: Instant,
        key: BindingKey,
        server: ServerTxId,
        request: &Message,
        resp: &Message,
        asked: Duration,
    ) {
        let code = resp.status().unwrap_or(500);
        if code >= 300 {
            self.drop_binding(&key);
            self.relay_response(now, server, request, resp, Side::Outside, None, None);
            return;
        }
        let token = self.pbx_regs.get(&key).map(|r| r.token.clone());
        // The expiry granted: the `expires` of the Contact that names the SBC's token, else the
        // Expires header, else what was asked.
        let granted = resp
            .header_values(HeaderName::Contact)
            .find(|c| token.as_deref().is_some_and(|t| c.contains(t)))
            .and_then(|c| {
                c.split(';')
                    .filter_map(|p| p.trim().split_once('='))
                    .find(|(n, _)| n.trim().eq_ignore_ascii_case("expires"))
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            })
            .or_else(|| {
                resp.header(HeaderName::Expires)
                    .and_then(|e| e.trim().parse().ok())
            })
            .map_or(asked, Duration::from_secs);
        match self.registrar.pbx_confirmed(&key, now, granted) {
            Some(ua_expires) => self.answer_register(now, server, request, &key, ua_expires),
            None => self.reply(now, server, request, 500, None),
        }
    }

    /// Remove binding `key` at the registrar behind the SBC (fire and forget) and forget it.
    fn deregister_at_pbx(&mut self, now: Instant, key: &BindingKey) {
        if let Some(target) = self.pbx_regs.get(key).map(|r| r.target.clone()) {
            let _ = self.register_at_pbx(now, key, target, Duration::ZERO, None);
        }
        self.drop_binding(key);
    }

    /// Forget binding `key` here (the registrar's entry and the SBC's own registration state).
    fn drop_binding(&mut self, key: &BindingKey) {
        self.registrar.remove(key);
        if let Some(reg) = self.pbx_regs.remove(key) {
            self.tokens.remove(&reg.token);
        }
    }

    /// Bindings whose UA did not refresh in time: deregistered behind the SBC.
    fn expire_bindings(&mut self, now: Instant) {
        while let Some(b) = self.registrar.poll_expired(now) {
            let key = BindingKey::new(&b.aor, &b.contact_uri, b.instance.as_deref());
            self.deregister_at_pbx(now, &key);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn await_ack(
        &mut self,
        now: Instant,
        key: u64,
        ack_leg: Side,
        cseq: u32,
        server: ServerTxId,
        response: (u16, Bytes),
        reliable: bool,
    ) {
        let t1 = self.config.transactions.t1;
        let next = now + t1;
        if let Some(call) = self.calls.get_mut(&key) {
            call.ack_wait = Some(AckWait {
                ack_leg,
                cseq,
                server,
                response,
                interval: t1,
                next,
                give_up: now + 64 * t1,
            });
            if !reliable {
                self.retx.insert((next, key));
            }
        }
    }

    fn on_invite_response(&mut self, now: Instant, key: u64, resp: Message, code: u16) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if code == 100 {
            return;
        }
        if code < 200 {
            if call.state != State::Ringing || call.cancelled {
                if call.cancel_pending {
                    call.cancel_pending = false;
                    let invite_b = call.invite_b;
                    self.send_cancel(now, invite_b);
                }
                return;
            }
            // The callee's early dialog (the first one, when it forks): PRACK and UPDATE go to it.
            if resp.to_tag().is_some() && !call.b.remote_tagged() {
                call.b.remote = resp.header(HeaderName::To).unwrap_or_default().to_owned();
                if let Some(c) = resp.header(HeaderName::Contact) {
                    call.b.target_uri = uri_of(c).to_owned();
                }
            }
            let (server, req, tag, a_side, b_side) = (
                call.invite_a,
                call.invite_a_req.clone(),
                call.a_tag.clone(),
                call.a.side,
                call.b.side,
            );
            let body = self.anchor_response(now, key, &resp, b_side);
            self.relay_response(
                now,
                server,
                &req,
                &resp,
                a_side,
                Some(&tag),
                body.as_deref(),
            );
            return;
        }
        if code < 300 {
            match call.state {
                State::Ringing => {}
                State::Ending | State::AwaitAck | State::Confirmed => {
                    // A retransmitted 2xx: repeat the ACK once it has been sent.
                    self.resend_ack(key, &resp);
                    return;
                }
            }
            call.b.remote = resp.header(HeaderName::To).unwrap_or_default().to_owned();
            if let Some(c) = resp.header(HeaderName::Contact) {
                call.b.target_uri = uri_of(c).to_owned();
            }
            if call.cancelled {
                // The answer crossed A's CANCEL: acknowledge and hang up leg B, 487 to A.
                let (server, req, b_side) = (call.invite_a, call.invite_a_req.clone(), call.b.side);
                self.send_ack_b(key, 1, None);
                self.reply(now, server, &req, 487, None);
                self.end_with_bye(now, key, &[b_side], EndReason::Cancelled);
                return;
            }
            call.state = State::AwaitAck;
            let (server, req, tag, reliable, a_side, b_side) = (
                call.invite_a,
                call.invite_a_req.clone(),
                call.a_tag.clone(),
                call.a.reliable,
                call.a.side,
                call.b.side,
            );
            let _ = self
                .calls
                .set_deadline(&key, now + self.config.no_ack_timeout);
            self.events
                .push_back(CallEvent::Answered { call: CallId(key) });
            let body = self.anchor_response(now, key, &resp, b_side);
            if let Some(sent) = self.relay_response(
                now,
                server,
                &req,
                &resp,
                a_side,
                Some(&tag),
                body.as_deref(),
            ) {
                self.await_ack(now, key, b_side, 1, server, sent, reliable);
            }
            return;
        }
        // Non-2xx final: the transaction layer ACKs leg B; relay the status.
        if call.state != State::Ringing {
            return;
        }
        if matches!(code, 401 | 407) && call.auth.is_some() && !call.cancelled {
            if call.auth_answered == 0 && self.answer_challenge(now, key, &resp) {
                return;
            }
            let Some(call) = self.calls.get(&key) else {
                return;
            };
            // Refused credentials (or an unanswerable challenge): the caller cannot answer the
            // carrier's challenge either.
            let (server, req, tag) = (call.invite_a, call.invite_a_req.clone(), call.a_tag.clone());
            self.stats.trunk_auth_failures += 1;
            self.reply(now, server, &req, 403, Some(&tag));
            self.remove(key, EndReason::Rejected(code));
            return;
        }
        if matches!(code, 408 | 500 | 503 | 504) && self.retarget(now, key) {
            return;
        }
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let (server, req, tag, cancelled, a_side) = (
            call.invite_a,
            call.invite_a_req.clone(),
            call.a_tag.clone(),
            call.cancelled,
            call.a.side,
        );
        self.relay_response(now, server, &req, &resp, a_side, Some(&tag), None);
        let reason = if cancelled {
            EndReason::Cancelled
        } else {
            EndReason::Rejected(code)
        };
        self.remove(key, reason);
    }

    /// Leg B's target refused the new call (or never answered) before any provisional response:
    /// send the INVITE to the next target of its group. False when there is none to try (the
    /// call then fails as it would have).
    fn retarget(&mut self, now: Instant, key: u64) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        if call.state != State::Ringing || call.cancelled || call.b.remote_tagged() {
            return false;
        }
        let Some(rt) = call.retarget.as_mut() else {
            return false;
        };
        if rt.alternates.is_empty() {
            return false;
        }
        let (dest, reliable) = rt.alternates.remove(0);
        let (body, max_forwards) = (rt.body.clone(), rt.max_forwards);
        let uri = leg_uri(&rt.callee, dest);
        call.b.remote = ["<", &uri, ">"].concat();
        call.b.target_uri = uri;
        call.b.dest = dest;
        call.b.reliable = reliable;
        call.b.cseq += 1;
        let (leg, req, a_side) = (call.b.clone(), call.invite_a_req.clone(), call.a.side);
        let branch = self.ids.generate(IdKind::Branch);
        let sent = self.send_built(
            now,
            &leg,
            &Method::Invite,
            leg.cseq,
            branch.as_str(),
            max_forwards,
            Some((&req, a_side)),
            body.as_deref(),
        );
        let Ok(tx) = sent else {
            return false;
        };
        if let Some(call) = self.calls.get_mut(&key) {
            call.invite_b = tx;
        }
        self.clients.insert(tx, ClientRole::Invite(key));
        self.stats.failovers += 1;
        true
    }

    fn on_cancelled(&mut self, now: Instant, invite: ServerTxId) {
        let Some(&key) = self.server_calls.get(&invite) else {
            return;
        };
        self.cancel_b(now, key);
    }

    /// A cancelled the call before the answer (CANCEL, or BYE on the early dialog).
    fn cancel_b(&mut self, now: Instant, key: u64) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state != State::Ringing || call.cancelled {
            return;
        }
        call.cancelled = true;
        let invite_b = call.invite_b;
        if self.txs.state(TxId::Client(invite_b)) == Some(TxState::Proceeding) {
            self.send_cancel(now, invite_b);
        } else if let Some(call) = self.calls.get_mut(&key) {
            // RFC 3261 §9.1: no CANCEL before a provisional response; sent on the first one.
            call.cancel_pending = true;
        }
    }

    fn send_cancel(&mut self, now: Instant, invite_b: ClientTxId) {
        if let Ok(c) = self.txs.send_cancel(now, invite_b) {
            self.clients.insert(c, ClientRole::Cancel);
        }
    }

    fn on_client_failure(&mut self, now: Instant, tx: ClientTxId) {
        match self.clients.get(&tx) {
            Some(ClientRole::Invite(key)) => {
                let key = *key;
                if self.retarget(now, key) {
                    return;
                }
                let Some(call) = self.calls.get(&key) else {
                    return;
                };
                if call.state == State::Ringing {
                    let (server, req, tag, cancelled) = (
                        call.invite_a,
                        call.invite_a_req.clone(),
                        call.a_tag.clone(),
                        call.cancelled,
                    );
                    let code = if cancelled { 487 } else { 408 };
                    self.reply(now, server, &req, code, Some(&tag));
                    let reason = if cancelled {
                        EndReason::Cancelled
                    } else {
                        EndReason::NoAnswer
                    };
                    self.remove(key, reason);
                }
            }
            Some(ClientRole::Bye(key)) => {
                let key = *key;
                self.bye_done(now, key);
            }
            Some(ClientRole::Relay {
                call,
                server,
                request,
                to,
                ..
            }) => {
                let (key, server, request, to) = (*call, *server, request.clone(), *to);
                self.reply(now, server, &request, 408, None);
                // The leg that failed is gone: hang up the other one.
                self.end_with_bye(now, key, &[other(to)], EndReason::LegFailure(to));
            }
            Some(ClientRole::Register { .. }) => {
                if let Some(ClientRole::Register {
                    key,
                    server,
                    request,
                    ..
                }) = self.clients.remove(&tx)
                {
                    self.drop_binding(&key);
                    self.reply(now, server, &request, 408, None);
                }
            }
            Some(ClientRole::Probe(token)) => {
                let token = *token;
                self.clients.remove(&tx);
                self.events.push_back(CallEvent::Probed {
                    token,
                    alive: false,
                });
            }
            Some(ClientRole::TrunkRegister(i)) => {
                let i = *i;
                self.clients.remove(&tx);
                if let Some(r) = self.trunk_regs.get_mut(i) {
                    r.on_failure(now);
                }
            }
            Some(ClientRole::Cancel | ClientRole::Fire) | None => {}
        }
    }

    fn on_ack(&mut self, now: Instant, ack: Message, side: Side) {
        let Some(key) = self.find(&ack, side) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(wait) = call.ack_wait.take() else {
            return;
        };
        if wait.ack_leg == side {
            // An ACK from the leg that sent the 2xx: not the one awaited.
            call.ack_wait = Some(wait);
            return;
        }
        if call.state == State::AwaitAck {
            call.state = State::Confirmed;
            let _ = self
                .calls
                .set_deadline(&key, now + self.config.max_call_duration);
        }
        self.send_ack_on(key, wait.ack_leg, wait.cseq, Some((&ack, side)));
    }

    /// Send the ACK for a 2xx on the callee leg.
    fn send_ack_b(&mut self, key: u64, cseq: u32, src: Option<(&Message, Side)>) {
        let Some(side) = self.calls.get(&key).map(|c| c.b.side) else {
            return;
        };
        self.send_ack_on(key, side, cseq, src);
    }

    /// Send the ACK for a 2xx on leg `side` (outside any transaction).
    fn send_ack_on(&mut self, key: u64, side: Side, cseq: u32, src: Option<(&Message, Side)>) {
        let branch = self.ids.generate(IdKind::Branch);
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let leg = call.leg(side);
        let snapshot = Leg {
            cseq,
            ..leg.clone()
        };
        // An ACK carries the answer to an offer made in a 2xx (late offer).
        let body = match (src, self.last_now) {
            (Some((m, from)), Some(now)) => self.anchor_response(now, key, m, from),
            _ => None,
        };
        let bytes = self.build_request_bytes(
            &snapshot,
            &Method::Ack,
            cseq,
            branch.as_str(),
            70,
            src,
            body.as_deref(),
        );
        self.out.push_back(Transmit {
            dest: snapshot.dest,
            bytes: bytes.clone(),
            flow: snapshot.flow,
        });
        if let Some(call) = self.calls.get_mut(&key) {
            if call.b.side == side {
                call.last_ack_b = Some((cseq, bytes));
            }
        }
    }

    fn resend_ack(&mut self, key: u64, resp: &Message) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if let Some((cseq, bytes)) = &call.last_ack_b {
            if *cseq == resp.cseq().seq {
                self.out.push_back(Transmit {
                    dest: call.b.dest,
                    bytes: bytes.clone(),
                    flow: call.b.flow,
                });
            }
        }
    }

    fn on_stray_response(&mut self, resp: Message) {
        let key = self.b_index.get(resp.call_id()).copied();
        let is_2xx_invite = resp.cseq().method == Method::Invite
            && resp.status().is_some_and(|c| (200..300).contains(&c));
        match key {
            Some(key) if is_2xx_invite => self.resend_ack(key, &resp),
            _ => self.stats.dropped += 1,
        }
    }

    fn retransmit_2xx(&mut self, now: Instant, at: Instant, key: u64) {
        let t2 = self.config.transactions.t2;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(wait) = call.ack_wait.as_mut() else {
            return;
        };
        if wait.next != at {
            return;
        }
        if now >= wait.give_up {
            call.ack_wait = None;
            self.end_with_bye(now, key, &[Side::Outside, Side::Inside], EndReason::NoAck);
            return;
        }
        wait.interval = (wait.interval * 2).min(t2);
        wait.next = now + wait.interval;
        let (server, (code, response), next) = (wait.server, wait.response.clone(), wait.next);
        self.retx.insert((next, key));
        let _ = self.txs.send_response_bytes(now, server, code, response);
    }

    /// Send BYE on `legs` and keep the call until they complete (or the grace deadline passes).
    fn end_with_bye(&mut self, now: Instant, key: u64, legs: &[Side], reason: EndReason) {
        let grace = 64 * self.config.transactions.t1;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        // A 2xx on leg B still waiting for A's ACK is acknowledged before leg B is hung up.
        let b_side = call.b.side;
        let unacked_b = call.ack_wait.take().filter(|w| w.ack_leg == b_side);
        call.state = State::Ending;
        call.end_reason = Some(reason);
        let _ = self.calls.set_deadline(&key, now + grace);
        if let Some(w) = unacked_b {
            self.send_ack_b(key, w.cseq, None);
        }
        let mut sent = 0u8;
        for &side in legs {
            let branch = self.ids.generate(IdKind::Branch);
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            let leg = call.leg_mut(side);
            leg.cseq += 1;
            let snapshot = leg.clone();
            if let Ok(c) = self.send_built(
                now,
                &snapshot,
                &Method::Bye,
                snapshot.cseq,
                branch.as_str(),
                70,
                None,
                None,
            ) {
                self.clients.insert(c, ClientRole::Bye(key));
                sent += 1;
            }
        }
        if let Some(call) = self.calls.get_mut(&key) {
            call.byes_pending = sent;
        }
        if sent == 0 {
            self.remove(key, reason);
        }
    }

    fn bye_done(&mut self, _now: Instant, key: u64) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.byes_pending = call.byes_pending.saturating_sub(1);
        if call.byes_pending == 0 {
            let reason = call.end_reason.unwrap_or(EndReason::Bye(Side::Outside));
            self.remove(key, reason);
        }
    }

    // ---- Trunk authentication -------------------------------------------------------------------

    /// Answer leg B's 401/407 with the trunk's credentials: the kept INVITE again, with a new
    /// branch, the next CSeq and the credentials header (RFC 3261 §22.2). Returns whether it was
    /// sent.
    fn answer_challenge(&mut self, now: Instant, key: u64, resp: &Message) -> bool {
        let branch = self.ids.generate(IdKind::Branch);
        let cnonce = self.ids.generate(IdKind::Tag);
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let Some((auth, invite)) = &call.auth else {
            return false;
        };
        // The topmost answerable challenge (one realm: a trunk has one account).
        let Some(challenge) = Challenge::from_response(resp, true)
            .ok()
            .and_then(|found| found.into_iter().next())
        else {
            return false;
        };
        let creds = Credentials {
            username: &auth.username,
            password: &auth.password,
        };
        let uri = invite.request_uri().unwrap_or_default();
        let req = DigestRequest {
            method: "INVITE",
            uri,
            body: Some(invite.body()),
        };
        let Ok(authz) = challenge.respond(&creds, &req, cnonce.as_str(), 1) else {
            return false;
        };
        let cseq = call.b.cseq + 1;
        let transport = if call.b.reliable { "TCP" } else { "UDP" };
        let contact = if call.b.side == Side::Inside {
            self.config.inside_contact
        } else {
            self.config.outside_contact
        };
        let mut out = Vec::with_capacity(invite.raw().len() + 256);
        let mut w = MessageWriter::request(&mut out, &Method::Invite, uri);
        let via = format!(
            "SIP/2.0/{transport} {contact};branch={};rport",
            branch.as_str()
        );
        w.header("Via", &via);
        for h in invite.headers() {
            let skip = matches!(
                HeaderName::from_bytes(h.raw_name.as_bytes()),
                HeaderName::Via
                    | HeaderName::CSeq
                    | HeaderName::ContentLength
                    | HeaderName::ContentType
            );
            if !skip {
                w.header(h.raw_name, h.value);
            }
        }
        let cseq_value = format!("{cseq} INVITE");
        w.header("CSeq", &cseq_value);
        w.header(authz.name, &authz.value);
        w.finish(invite.header(HeaderName::ContentType), invite.body());
        let Ok(msg) = Message::parse(Bytes::from(out)) else {
            self.stats.build_failures += 1;
            return false;
        };
        let (dest, reliable, flow) = (call.b.dest, call.b.reliable, call.b.flow);
        let Ok(tx) = self.txs.send_request_on(now, msg, dest, reliable, flow) else {
            return false;
        };
        if let Some(call) = self.calls.get_mut(&key) {
            self.clients.remove(&call.invite_b);
            call.invite_b = tx;
            call.b.cseq = cseq;
            call.auth_answered += 1;
        }
        self.clients.insert(tx, ClientRole::Invite(key));
        self.stats.trunk_auth_answered += 1;
        true
    }

    // ---- Media ----------------------------------------------------------------------------------

    /// The body to send for `msg`, a request from leg `from` of call `key`: the anchored SDP, or
    /// `None` to send the received body (no SDP, or media not anchored).
    fn anchor_body(
        &mut self,
        now: Instant,
        key: u64,
        msg: &Message,
        from: Side,
    ) -> Result<Option<Vec<u8>>, AnchorFault> {
        let (Some(m), Some(call)) = (self.media.as_mut(), self.calls.get_mut(&key)) else {
            return Ok(None);
        };
        let side = if call.a.side == from {
            MediaSide::A
        } else {
            MediaSide::B
        };
        let r = m.anchor(now, key, &mut call.media, msg, side);
        if r.is_err() {
            m.count_refused();
        }
        r
    }

    /// The body to send for `msg`, a response (or ACK) from leg `from` of call `key`, which cannot
    /// be refused: an SDP that cannot be anchored is dropped (counted) rather than leak the far
    /// end's addresses.
    fn anchor_response(
        &mut self,
        now: Instant,
        key: u64,
        msg: &Message,
        from: Side,
    ) -> Option<Vec<u8>> {
        match self.anchor_body(now, key, msg, from) {
            Ok(body) => body,
            Err(_) => {
                if let Some(m) = self.media.as_mut() {
                    m.count_dropped_body();
                }
                Some(Vec::new())
            }
        }
    }

    /// End the confirmed calls whose media stopped (BYE on both legs).
    fn end_silent_calls(&mut self, now: Instant) {
        let Some(m) = self.media.as_mut() else {
            return;
        };
        let mut silent = Vec::new();
        m.poll_idle(now, &mut silent);
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

    /// A call's deadline passed: tear down its live legs and forget it.
    fn teardown(&mut self, now: Instant, key: u64, call: Box<Call>, reason: EndReason) {
        // Put it back briefly so the helpers can reach it; the table had room for it a moment ago.
        let state = call.state;
        let (a_key, b_key, server) = (call.a_tag.clone(), call.b.call_id.clone(), call.invite_a);
        if self
            .calls
            .insert(key, call, now + Duration::from_secs(1))
            .is_err()
        {
            // Unreachable in practice: the entry just left the table.
            self.a_index.remove(&a_key);
            self.b_index.remove(&b_key);
            self.server_calls.remove(&server);
            self.events.push_back(CallEvent::Ended {
                call: CallId(key),
                reason,
            });
            return;
        }
        match state {
            State::Ringing => {
                let Some(call) = self.calls.get(&key) else {
                    return;
                };
                let (server, req, tag, invite_b) = (
                    call.invite_a,
                    call.invite_a_req.clone(),
                    call.a_tag.clone(),
                    call.invite_b,
                );
                if self.txs.state(TxId::Client(invite_b)) == Some(TxState::Proceeding) {
                    self.send_cancel(now, invite_b);
                }
                self.reply(now, server, &req, 408, Some(&tag));
                self.remove(key, reason);
            }
            State::AwaitAck | State::Confirmed => {
                self.end_with_bye(now, key, &[Side::Outside, Side::Inside], reason);
                // The BYEs run in their own transactions; the call does not wait for them.
                self.remove(key, reason);
            }
            State::Ending => self.remove(key, reason),
        }
    }

    fn remove(&mut self, key: u64, reason: EndReason) {
        let call = self.calls.remove(&key);
        self.forget(key, call, reason);
    }

    fn forget(&mut self, key: u64, call: Option<Box<Call>>, reason: EndReason) {
        let Some(mut call) = call else {
            return;
        };
        if let (Some(m), Some(now)) = (self.media.as_mut(), self.last_now) {
            m.release(&mut call.media, now);
        }
        self.a_index.remove(&call.a_tag);
        self.b_index.remove(&call.b.call_id);
        self.server_calls.remove(&call.invite_a);
        if let Some(w) = call.ack_wait {
            self.retx.remove(&(w.next, key));
        }
        self.events.push_back(CallEvent::Ended {
            call: CallId(key),
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_uri_is_extracted() {
        assert_eq!(
            uri_of("<sip:a@1.2.3.4:5060;transport=udp>;expires=3"),
            "sip:a@1.2.3.4:5060;transport=udp"
        );
        assert_eq!(uri_of("sip:a@1.2.3.4;expires=3"), "sip:a@1.2.3.4");
        assert_eq!(uri_of("\"A\" <sip:a@h>"), "sip:a@h");
    }

    #[test]
    fn sides_are_opposite() {
        assert_eq!(other(Side::Inside), Side::Outside);
        assert_eq!(other(Side::Outside), Side::Inside);
    }
}
