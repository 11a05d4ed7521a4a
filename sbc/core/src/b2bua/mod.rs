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
//! 1. *mutate*: [`B2bua::handle_message`] for every parsed message (with the side it arrived on, a
//!    [`Router`] for new calls and the worker's relay, a [`MediaControl`]),
//!    [`B2bua::handle_timeout`] when the deadline passes (with the relay too);
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
//!   2xx arrives first. A later 2xx of another fork is acknowledged and that dialog ended with BYE at
//!   once (RFC 3261 §13.2.2.4; counted in [`B2buaStats::forks_ended`]).
//! - Leg B's INVITE that gets no response at all (not even 100) within the target's first-response
//!   time ([`Target::first_response`], default [`B2buaConfig::first_response_timeout`], 4 s) is
//!   abandoned and sent to the next of [`Target::alternates`]; so is one refused with 503, 408, 500
//!   or 504 before any provisional. A silent target, one that never answers (Timer B) and one that
//!   answers 503 are reported as [`CallEvent::TargetFailed`] (the router marks them down). The INVITE
//!   sent again (to another target, or with credentials for a trunk's challenge) has the next CSeq,
//!   and the ACK of its 2xx and the RAck of a PRACK name that CSeq.
//! - A 2xx from B is relayed to A and retransmitted toward A over UDP (T1 doubling up to T2, RFC 3261
//!   §13.3.1.4) until A's ACK arrives; only then is B acknowledged. No ACK within the no-ACK timeout:
//!   BYE on both legs. Non-2xx finals are relayed with the same status (the transaction layer ACKs B).
//! - CANCEL from A becomes a CANCEL on B (once B has sent a provisional); B's 487 is relayed.
//! - BYE from either side: 200 to it, BYE on the other leg; the call ends when that BYE completes.
//! - Other requests in the dialog (re-INVITE, UPDATE, INFO, MESSAGE, NOTIFY, REFER, OPTIONS) are
//!   relayed to the other leg under that leg's own CSeq, also between the 2xx and the ACK (a
//!   re-INVITE there gets 491); their responses come back the same way.
//! - A 3xx is relayed with its Contacts as received: they are the redirect targets the far end chose
//!   for the caller.
//! - Leg B is matched by its Call-ID, which the SBC generated: a message from the Inside whose Call-ID
//!   fails [`IdGen::worker_of`] is dropped before any state is touched (counted in
//!   [`B2buaStats::forged`]); once the call is answered, a request from leg B must also carry the
//!   answering fork's tag (another fork's BYE gets 481 and never ends the call). Leg A is matched by
//!   (Call-ID, the SBC's To tag).
//! - The PBX's OPTIONS to the Contact the SBC registered for a user agent is sent on to that agent
//!   and its answer relayed back (408 when it does not answer); other OPTIONS outside a dialog are
//!   answered by the SBC.
//! - Before a stop, [`B2bua::set_draining`] refuses new calls with 503, and
//!   [`B2bua::end_all_calls`] ends the calls left: BYE on both legs ([`EndReason::Shutdown`]).
//! - Every call sits in a [`BoundedTable`] with an absolute deadline (ringing, no-ACK, maximum duration,
//!   teardown grace); when it passes the live legs are cancelled or sent BYE and the call is removed.
//! - Calls from the Inside take the same path the other way; a call to the Contact the SBC registered
//!   for a user agent goes to that agent's binding (see `register.rs`).
//! - PRACK, UPDATE and INFO in the early dialog (RFC 3262, RFC 3311) are relayed once leg B's early
//!   dialog is known.
//!
//! In-dialog requests are sent to the address the leg's peer used (leg A: the source of its INVITE,
//! leg B: the routed target), not resolved from Contact or a route set.
//!
//! # Files
//! This file holds the types and the dispatcher (the drive loop above, and which conversation a
//! message or timer belongs to). The conversations, over one sending layer (`send.rs`):
//! - `invite.rs`: INVITE dialogs: new calls, leg B's answers, fail-over, the ACK wait, CANCEL;
//! - `dialog.rs`: requests in an early or confirmed dialog, BYE;
//! - `register.rs`: REGISTER relay and the SBC's registrations of bindings behind it;
//! - `trunks.rs`: registrations with carrier trunks and their challenges to calls;
//! - `probe.rs`: OPTIONS health probes and keep-alives;
//! - `media.rs`: the glue to the media anchor;
//! - `record.rs`: the events, and the record of every call that ended (what a CDR needs);
//! - `admin.rs`: the operator's view (calls, bindings) and changes (hang up, remove a binding).
//!
//! [`copy_headers`]: crate::signalling::topology::copy_headers

mod admin;
mod dialog;
mod dtmf;
mod invite;
mod media;
mod probe;
mod record;
mod register;
mod send;
mod trunks;

use std::collections::{BTreeSet, HashMap, VecDeque};

use sbc_sip::idmap::{IdHasher, IdMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sbc_sip::build;
use sbc_sip::header::NameAddr;
use sbc_sip::transaction::{
    ClientTxId, Flow, ServerTxId, StrayKind, TransactionConfig, Transactions, Transmit, TxEvent,
    TxId,
};
use sbc_sip::writer::push_socket_addr;
use sbc_sip::{Message, Method};

use crate::media::callmedia::{CallMedia, LegOverrides, MediaAnchor};
use crate::media::MediaControl;
use crate::registration::registrar::{BindingKey, Change, Registrar, RegistrarConfig};
use crate::registration::trunkreg::{TrunkAuth, TrunkRegistration};
use crate::signalling::ids::{Id, IdGen, IdKind, WorkerId};
use crate::signalling::topology::{Side, TopologyPolicy};
use crate::table::BoundedTable;
pub use admin::{BindingSummary, CallFilter, CallState, CallSummary, CallTimers, HangUp};
pub use dtmf::DtmfStats;
use record::CallFacts;
pub use record::{CallEvent, CallId, CallRecord, EndReason, EndedBy, Outcome};
pub use register::StoredRegistration;

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
    /// The router's name for this target (its group or trunk), carried into the call's record.
    pub label: Option<Arc<str>>,
    /// Next hops to try, in order, when this one refuses a new call with 503, 408, 500 or 504 (or
    /// does not answer at all) before any provisional response: the other usable targets of the
    /// same group, as (address, over a connection).
    pub alternates: Vec<(SocketAddr, bool)>,
    /// How long the new leg waits for a first response (even 100 Trying) before the next of
    /// `alternates` is tried (or, with none left, 408 to the caller); `None`: the B2BUA's
    /// [`B2buaConfig::first_response_timeout`].
    pub first_response: Option<Duration>,
    /// The media settings (SRTP, codecs, DTMF) of the new leg, when its trunk or target group
    /// has its own; `None`: its side's.
    pub media: Option<Arc<LegOverrides>>,
    /// The media settings of the caller's leg, when the caller is a trunk with its own.
    pub caller_media: Option<Arc<LegOverrides>>,
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
            label: None,
            alternates: Vec::new(),
            first_response: None,
            media: None,
            caller_media: None,
        }
    }
}

/// Why a router refuses a new request: the final status it is answered with (never forwarded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status code (its reason phrase is the standard one).
    pub code: u16,
    /// Seconds for a Retry-After header, if one is sent.
    pub retry_after: Option<u32>,
}

impl Refusal {
    /// No route: 404 Not Found.
    pub const NOT_FOUND: Self = Self {
        code: 404,
        retry_after: None,
    };
}

/// Chooses the next hop of a new call or REGISTER.
pub trait Router {
    /// Where the new request `msg`, received on side `from`, goes, or the refusal it is answered
    /// with (a REGISTER without a target is answered by the SBC itself).
    fn route(&self, msg: &Message, from: Side) -> Result<Target, Refusal>;
}

/// A closure that finds a target or none (none: 404).
impl<F: Fn(&Message, Side) -> Option<Target>> Router for F {
    fn route(&self, msg: &Message, from: Side) -> Result<Target, Refusal> {
        self(msg, from).ok_or(Refusal::NOT_FOUND)
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
    /// URI parameters of the SBC's Contact toward the Outside: `;transport=tls` when the outside
    /// listens on TLS only, so that a UA sends its in-dialog requests (ACK, BYE) over TLS and not
    /// to a UDP port nobody listens on; empty otherwise.
    pub outside_contact_params: &'static str,
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
    /// How long leg B's INVITE waits for a first response (even 100 Trying) before its target
    /// counts as failed ([`CallEvent::TargetFailed`]) and the next target of the group is tried
    /// (4 s, like Kamailio's `fr_timer`); zero: only the transaction's Timer B (32 s).
    pub first_response_timeout: Duration,
    /// Outside sources in the RFC 3325 trust domain (the source ACLs of trusted trunks): their
    /// P-Asserted-Identity is relayed; an untrusted source's is stripped. The Inside is trusted.
    pub trusted_sources: Vec<crate::cidr::Cidr>,
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
            outside_contact_params: "",
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
            first_response_timeout: Duration::from_secs(4),
            trusted_sources: Vec::new(),
        }
    }
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
    /// 2xx answers from other forks of leg B's INVITE after the call took one: acknowledged and
    /// ended with BYE.
    pub forks_ended: u64,
    /// New calls refused with 503 while the worker drains before a stop.
    pub refused_draining: u64,
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
    /// CSeq of the last INVITE the SBC sent on this leg: its ACK and the RAck of a PRACK carry it
    /// (it grows when the INVITE is sent again to answer a challenge or to fail over).
    invite_cseq: u32,
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
    /// The last relayed re-INVITE (its client and server transactions), closed if the call ends
    /// while it is still ringing on the other leg.
    relayed_invite: Option<(ClientTxId, ServerTxId)>,
    byes_pending: u8,
    end_reason: Option<EndReason>,
    media: CallMedia,
    /// Trunk credentials, and the INVITE sent on leg B (kept only then, to answer a challenge).
    /// (Boxed: most calls have none, and a `Message` inline would add 670 bytes to every call.)
    auth: Option<Box<(Arc<TrunkAuth>, Message)>>,
    /// What it takes to send leg B's INVITE to the next target of the group, while there is one
    /// (boxed: only calls to a group of several targets carry it).
    retarget: Option<Box<Retarget>>,
    /// Challenges answered on leg B (at most one).
    auth_answered: u8,
    /// The time leg B's current target has for a first response (zero: Timer B only).
    first_response: Duration,
    /// Leg B's current INVITE has had no response yet (the call's deadline is then the first
    /// response's).
    awaiting_first: bool,
    /// To tags of other forks whose 2xx was acknowledged and ended with BYE (their 2xx
    /// retransmissions get the ACK again, not another BYE).
    ended_forks: Vec<String>,
    /// What the call's record needs beyond the legs.
    facts: CallFacts,
    /// INFOs of reported telephone-events toward an `info` leg (DTMF interworking).
    dtmf_out: Option<Box<dtmf::InfoOut>>,
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

    /// Whether `msg`, a request from leg B's side, comes from the fork that answered: before the
    /// answer any fork passes; after it the From tag must be the answering fork's (another
    /// fork's BYE never ends the call).
    fn answering_fork(&self, msg: &Message) -> bool {
        if self.state == State::Ringing {
            return true;
        }
        let answered = NameAddr::parse(&self.b.remote).ok();
        match answered.as_ref().and_then(NameAddr::tag) {
            Some(tag) => msg.from_tag() == Some(tag),
            None => true,
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
        /// The UA's REGISTER waiting for it (`register::RegRelay`).
        batch: u64,
        key: BindingKey,
        /// What the PBX's 2xx changes.
        change: Change,
    },
    /// A deregistration or keep-alive: the answer changes nothing.
    Fire,
    /// The SBC's own registration with a carrier trunk (index into `trunk_regs`).
    TrunkRegister(usize),
    /// A health probe of the caller's.
    Probe(u64),
    /// An INFO of one DTMF digit the SBC sent on a call (interworking).
    DtmfInfo(u64),
    /// An out-of-dialog request relayed to a registered user agent (the PBX's OPTIONS to a
    /// phone): its final answer goes back on `server`.
    Forward {
        server: ServerTxId,
        request: Box<Message>,
    },
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
    /// Requests of user agents' REGISTERs waiting for the PBX's answer.
    inflight: u32,
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

/// The user part of a name-addr's SIP, SIPS or tel URI (another scheme keeps its whole text in
/// `user`, which would not make a URI again).
fn user_of(value: &str) -> Option<String> {
    let na = NameAddr::parse(value).ok()?;
    if na.uri.scheme == sbc_sip::uri::Scheme::Other {
        return None;
    }
    na.uri.user.map(str::to_owned)
}

/// The sans-IO B2BUA of one worker. See the module documentation for the drive loop.
#[derive(Debug)]
pub struct B2bua {
    config: B2buaConfig,
    txs: Transactions,
    ids: IdGen,
    /// Boxed: the table moves only pointers when it grows (a call is ~1.7 KB).
    calls: BoundedTable<u64, Box<Call>, IdHasher>,
    /// Caller legs by the SBC's To tag (an id of this worker, unique).
    a_index: IdMap<String, u64>,
    /// Callee legs by the SBC's Call-ID.
    b_index: IdMap<String, u64>,
    registrar: Registrar,
    pbx_regs: HashMap<BindingKey, PbxReg>,
    /// Binding of each Contact token given to the registrar behind the SBC.
    tokens: HashMap<String, BindingKey>,
    /// REGISTERs of user agents waiting for the PBX.
    reg_relay: register::RegRelay,
    server_calls: IdMap<ServerTxId, u64>,
    clients: IdMap<ClientTxId, ClientRole>,
    retx: BTreeSet<(Instant, u64)>,
    out: VecDeque<Transmit>,
    events: VecDeque<CallEvent>,
    /// Records of the calls that ended in the current entry point, with their media session, until
    /// `flush_media` reads the session's final statistics and emits them.
    ending: Vec<(Option<crate::media::SessionHandle>, Box<CallRecord>)>,
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
    /// The outside and inside Contact URIs (without `sip:`): the address and its parameters.
    contact_uri: [String; 2],
    /// Draining before a stop: new calls get 503.
    draining: bool,
    /// The message being handled came from a trusted outside source
    /// ([`B2buaConfig::trusted_sources`]): what it relays keeps its P-Asserted-Identity. False
    /// while timers run (nothing received is relayed then).
    trusted_now: bool,
    /// Counters of the DTMF interworking.
    dtmf_stats: DtmfStats,
}

impl B2bua {
    /// A B2BUA with an empty dialog table. A P-Asserted-Identity sent to the Outside carries the
    /// SBC's outside address as its host unless the policy names another.
    pub fn new(mut config: B2buaConfig) -> Self {
        // Timer C outlasts the ringing timeout, which cancels first.
        let ringing = config
            .ringing_timeout
            .checked_add(Duration::from_secs(1))
            .unwrap_or(Duration::MAX);
        config.transactions.timer_c = config.transactions.timer_c.max(ringing);
        let toward_outside = &mut config.topology.toward_outside;
        toward_outside.identity_host = toward_outside
            .identity_host
            .or(Some(config.outside_contact));
        Self {
            txs: Transactions::new(config.transactions.clone()),
            ids: IdGen::new(config.secret, config.worker, config.seed),
            calls: BoundedTable::with_hasher(config.max_dialogs),
            a_index: IdMap::default(),
            b_index: IdMap::default(),
            registrar: Registrar::new(config.registrar.clone()),
            pbx_regs: HashMap::new(),
            tokens: HashMap::new(),
            reg_relay: register::RegRelay::default(),
            server_calls: IdMap::default(),
            clients: IdMap::default(),
            retx: BTreeSet::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            ending: Vec::new(),
            next_call: 0,
            stats: B2buaStats::default(),
            media: None,
            last_now: None,
            trunk_regs: Vec::new(),
            contact_text: [
                config.outside_contact.to_string(),
                config.inside_contact.to_string(),
            ],
            contact_uri: [
                format!(
                    "{}{}",
                    config.outside_contact, config.outside_contact_params
                ),
                config.inside_contact.to_string(),
            ],
            draining: false,
            trusted_now: false,
            dtmf_stats: DtmfStats::default(),
            config,
        }
    }

    /// Live calls in the dialog table.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Bindings of registered user agents held by this worker.
    pub fn registrations(&self) -> usize {
        self.registrar.len()
    }

    /// Whether connection `token` to or from `peer` carries a live registration or call: a binding
    /// reached through it, a call leg on it, or a call leg sent over a connection to `peer`. The
    /// driver keeps such a connection open past its idle timeout.
    pub fn uses_connection(&self, token: u64, peer: SocketAddr) -> bool {
        self.registrar.holds_connection(token)
            || self
                .a_index
                .values()
                .filter_map(|k| self.calls.get(k))
                .flat_map(|c| [&c.a, &c.b])
                .any(|l| l.flow.0 == token || (l.reliable && l.dest == peer))
    }

    /// The driver lost its connection to `peer` (or could not make it): requests waiting for its
    /// answer fail at once (a new call goes on to the group's next target, as after a timeout).
    pub fn handle_peer_lost(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        media: &mut dyn MediaControl,
    ) {
        self.txs.handle_peer_lost(peer);
        self.pump(now, None, media);
    }

    /// Live transactions of the underlying layer.
    pub fn transactions(&self) -> usize {
        self.txs.len()
    }

    /// Retransmissions the transaction layer sent and received.
    pub fn transaction_counters(&self) -> sbc_sip::tx_counters::TxCounters {
        self.txs.counters()
    }

    /// A fresh local tag from this worker's id generator (it carries the worker id and its MAC):
    /// the To tag of an answer made without a dialog (OPTIONS, a refusal, a parse error).
    pub fn new_tag(&mut self) -> Id {
        self.ids.generate(IdKind::Tag)
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
            self.media_deadline(),
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
    pub fn handle_timeout(&mut self, now: Instant, media: &mut dyn MediaControl) {
        self.last_now = Some(now);
        self.trusted_now = false;
        self.txs.handle_timeout(now);
        self.pump(now, None, media);
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
        self.end_silent_calls(now, media);
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
                label: None,
                alternates: Vec::new(),
                first_response: None,
                media: None,
                caller_media: None,
            };
            if self.send_options(now, &target, ClientRole::Fire) {
                self.stats.keepalives += 1;
            }
        }
        self.pump(now, None, media);
        self.flush_media(media);
    }

    /// A message arrived (see [`Origin`]). `router` picks the next hop when it starts a call or is a
    /// REGISTER; `media` is the worker's relay (used when media is anchored).
    pub fn handle_message(
        &mut self,
        now: Instant,
        msg: Message,
        from: Origin,
        router: &dyn Router,
        media: &mut dyn MediaControl,
    ) {
        self.last_now = Some(now);
        self.trusted_now = from.side == Side::Outside
            && self
                .config
                .trusted_sources
                .iter()
                .any(|c| c.contains(from.source.ip()));
        if from.side == Side::Inside && msg.is_request() && self.forged_from_inside(&msg) {
            self.stats.forged += 1;
            return;
        }
        self.txs
            .handle_message_on(now, msg, from.source, from.reliable, from.flow);
        self.pump_with(now, Some(from), router, media);
        self.flush_media(media);
    }

    /// An in-dialog request from the Inside that names no dialog of this worker: its Call-ID is not
    /// one the SBC made and its To tag is not one of the SBC's calls from the Inside.
    fn forged_from_inside(&self, msg: &Message) -> bool {
        let Some(tag) = msg.to_tag() else {
            return false;
        };
        !self.b_index.contains_key(msg.call_id()) && !self.a_index.contains_key(tag)
    }

    fn pump(&mut self, now: Instant, from: Option<Origin>, media: &mut dyn MediaControl) {
        let no_route = |_: &Message, _: Side| None;
        self.pump_with(now, from, &no_route, media);
    }

    /// Process every event of the transaction layer.
    fn pump_with(
        &mut self,
        now: Instant,
        from: Option<Origin>,
        router: &dyn Router,
        media: &mut dyn MediaControl,
    ) {
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
                    self.on_request(now, tx, request, origin, router, media);
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
                TxEvent::Response { tx, response } => self.on_response(now, tx, response, media),
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
                        self.on_ack(now, message, side, media);
                    }
                    StrayKind::Response => self.on_stray_response(now, message),
                    StrayKind::NoBranch => self.stats.dropped += 1,
                },
            }
        }
    }

    /// Find the call of an in-dialog request from `side`: a callee leg by the SBC's Call-ID (and,
    /// once the call is answered, the answering fork's tag), a caller leg by the SBC's To tag and
    /// the caller's Call-ID. The leg found must be on `side`.
    fn find(&self, msg: &Message, side: Side) -> Option<u64> {
        if let Some(&key) = self.b_index.get(msg.call_id()) {
            return self
                .calls
                .get(&key)
                .filter(|c| c.b.side == side && c.answering_fork(msg))
                .map(|_| key);
        }
        let tag = msg.to_tag()?;
        let key = *self.a_index.get(tag)?;
        self.calls
            .get(&key)
            .filter(|c| c.a.side == side && c.a.call_id == msg.call_id())
            .map(|_| key)
    }

    fn on_request(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        req: Message,
        from: Origin,
        router: &dyn Router,
        media: &mut dyn MediaControl,
    ) {
        let side = from.side;
        let method = req.method().cloned().unwrap_or(Method::Options);
        if req.to_tag().is_none() {
            match (side, &method) {
                (_, Method::Invite) => self.new_call(now, tx, req, from, router, media),
                // The PBX's OPTIONS to a phone registered through the SBC goes to the phone
                // (its keep-alive or presence check); any other OPTIONS is answered here.
                (Side::Inside, Method::Options) => match self.binding_target(&req) {
                    Some(target) => self.forward_options(now, tx, req, &target),
                    None => self.reply(now, tx, &req, 200, None),
                },
                (_, Method::Options) => self.reply(now, tx, &req, 200, None),
                (Side::Outside, Method::Register) => {
                    self.on_register(now, tx, &req, from, router);
                }
                _ => self.reply(now, tx, &req, 405, None),
            }
            return;
        }
        let Some(key) = self.find(&req, side) else {
            self.refuse(now, tx, &req, 481);
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
            // A re-INVITE before the caller's ACK: the offer/answer of the first INVITE is not
            // settled yet (RFC 3261 §14.2: 491).
            (Method::Invite, Some(State::AwaitAck)) => self.reply(now, tx, &req, 491, None),
            (Method::Invite, Some(State::Confirmed)) => {
                let glare = self.calls.get(&key).is_some_and(|c| c.reinvite_pending);
                if glare {
                    self.reply(now, tx, &req, 491, None);
                } else {
                    self.relay_request(now, key, tx, req, side, media);
                }
            }
            // Between the 2xx and the ACK the dialog exists on both legs (RFC 3261 §12.1): relayed
            // (a DTMF INFO the call converts to RFC 4733 is answered here).
            (m, Some(State::AwaitAck | State::Confirmed)) => {
                if m != Method::Info || !self.dtmf_info(now, key, tx, &req, side, media) {
                    self.relay_request(now, key, tx, req, side, media);
                }
            }
            // Early dialog (RFC 3262 PRACK, RFC 3311 UPDATE, INFO): relayed once the callee's
            // early dialog is known.
            (Method::Prack | Method::Update | Method::Info, Some(State::Ringing))
                if self.calls.get(&key).is_some_and(|c| c.b.remote_tagged()) =>
            {
                self.relay_request(now, key, tx, req, side, media);
            }
            _ => self.reply(now, tx, &req, 481, None),
        }
    }

    fn on_response(
        &mut self,
        now: Instant,
        tx: ClientTxId,
        resp: Message,
        media: &mut dyn MediaControl,
    ) {
        let code = resp.status().unwrap_or(0);
        match self.clients.get(&tx) {
            Some(ClientRole::Invite(key)) => {
                let key = *key;
                self.on_invite_response(now, key, resp, code, media);
            }
            Some(ClientRole::Bye(key)) if code >= 200 => {
                let key = *key;
                self.bye_done(now, key);
            }
            Some(ClientRole::Relay { .. }) => {
                self.on_relayed_response(now, tx, &resp, code, media);
            }
            Some(ClientRole::Register { .. }) if code >= 200 => {
                if let Some(ClientRole::Register { batch, key, change }) = self.clients.remove(&tx)
                {
                    self.on_register_answer(now, batch, key, change, Some(&resp));
                }
            }
            Some(ClientRole::DtmfInfo(key)) if code >= 200 => {
                let key = *key;
                self.clients.remove(&tx);
                self.info_done(now, key, tx);
            }
            Some(ClientRole::Forward { .. }) if code >= 200 => {
                if let Some(ClientRole::Forward { server, request }) = self.clients.remove(&tx) {
                    let tag = self.ids.generate(IdKind::Tag);
                    let _ = self.relay_response(
                        now,
                        server,
                        &request,
                        &resp,
                        Side::Inside,
                        Some(tag.as_str()),
                        None,
                    );
                }
            }
            Some(ClientRole::Probe(token)) if code >= 200 => {
                let (token, alive) = (*token, response_means_alive(code));
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

    fn on_client_failure(&mut self, now: Instant, tx: ClientTxId) {
        match self.clients.get(&tx) {
            Some(ClientRole::Invite(key)) => {
                let key = *key;
                self.on_invite_failure(now, key);
            }
            Some(ClientRole::Bye(key)) => {
                let key = *key;
                self.bye_done(now, key);
            }
            Some(ClientRole::Relay { .. }) => self.on_relay_failure(now, tx),
            Some(ClientRole::Register { .. }) => {
                if let Some(ClientRole::Register { batch, key, change }) = self.clients.remove(&tx)
                {
                    self.on_register_answer(now, batch, key, change, None);
                }
            }
            Some(ClientRole::Forward { .. }) => {
                if let Some(ClientRole::Forward { server, request }) = self.clients.remove(&tx) {
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
            Some(ClientRole::DtmfInfo(key)) => {
                let key = *key;
                self.clients.remove(&tx);
                self.info_done(now, key, tx);
            }
            Some(ClientRole::Cancel | ClientRole::Fire) | None => {}
        }
    }
}

/// Whether a final response to an OPTIONS probe shows the target alive: any final response except
/// 408 (Request Timeout) and 503 (Service Unavailable). Provisional responses are not a result.
pub fn response_means_alive(status: u16) -> bool {
    status >= 200 && status != 408 && status != 503
}

#[cfg(test)]
mod tests;
