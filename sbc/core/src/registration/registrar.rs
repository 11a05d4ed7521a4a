//! The SBC's own binding table of registered user agents.
//!
//! The SBC forwards a REGISTER to the PBX with its own Contact and keeps the real binding here: the
//! Contact the UA wrote and the flow it is reachable on (source address, transport, connection token),
//! so calls from the PBX back to the UA go to the observed source (RFC 5626 ideas; see
//! [`crate::signalling::nat`]).
//!
//! References:
//! - RFC 3261 §10.3 (processing REGISTER): the AoR is canonicalised (step 5), expiry below the minimum
//!   is refused with 423 (step 6), a binding is only updated by a request with the same Call-ID and a
//!   higher CSeq, or another Call-ID (step 7), `Contact: *` is only valid with `Expires: 0` and removes
//!   every binding of the AoR (step 6), `expires=0` removes one binding.
//! - RFC 3261 §19.1.4: URI comparison; the user part is case-sensitive, the host is not; escapes are
//!   compared unescaped. URI parameters are dropped from the AoR (§10.3 step 5).
//! - RFC 5626 §4.1: `+sip.instance` identifies the device across Contact changes.
//!
//! # Consent of the PBX
//!
//! [`Registrar::handle_register`] changes the table only for a refresh from the binding's own
//! source, flow (transport and connection) and Call-ID with a higher CSeq, when the PBX binding
//! outlives the next UA refresh ([`RegisterOutcome::Local`]). Every other change (a new binding; one
//! claimed from another source, flow or Call-ID; a Contact change; a PBX refresh; `expires=0`;
//! `Contact: *`) comes back as a [`Change`] to ask of the PBX, and is applied by
//! [`Registrar::commit`] only when the PBX answers 2xx. Until then the binding stays as it was, so a
//! stranger who knows an AoR and its Contact moves or removes nothing unless the PBX accepts them.
//!
//! # Expiry toward each side
//!
//! - Toward the PBX the SBC asks for what the UA requested, clamped to `[min_expires, max_expires]`;
//!   the PBX may grant less, and a longer grant is taken as what was asked.
//! - Toward a NATed UA it grants at most `nat_expires` (default 60 s), so the UA refreshes often and its
//!   NAT pinhole stays open; a UA that is not NATed is granted the PBX expiry.
//! - Expiries from the network are read with [`parse_expires`] (digits only, saturating at 2^32-1)
//!   and every deadline is computed with [`deadline_after`] (capped at [`EXPIRES_CAP`]), so no value
//!   from either side can overflow the clock.

//! # Bounds and time
//!
//! Bindings live in a [`BoundedTable`] whose deadline is the UA expiry: a full table refuses new
//! bindings ([`RegistrarError::Full`], 503), and expiry happens only through [`Registrar::poll_expired`]
//! (the caller then deregisters the binding at the PBX). The caller drains expired bindings before
//! handling a REGISTER, as the table never evicts behind its back. NATed bindings also have an entry in
//! a second table of keep-alive deadlines, so [`Registrar::poll_keepalive`] costs O(log n) per due
//! keep-alive and never scans the bindings.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sbc_sip::header::NameAddr;
use sbc_sip::uri::{Host, Scheme, Uri};

use crate::table::BoundedTable;

/// Settings of the registrar. [`Default`] gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Most bindings held (default 10 000). Memory is about 300 bytes plus the strings per binding.
    pub capacity: usize,
    /// Most bindings per AoR (default 10); more gets [`RegistrarError::TooManyContacts`].
    pub max_contacts_per_aor: usize,
    /// Expiry used when the REGISTER gives none (default 3600 s).
    pub default_expires: Duration,
    /// Shortest expiry accepted; below it the UA gets 423 (default 60 s).
    pub min_expires: Duration,
    /// Longest expiry asked of the PBX; longer requests are cut to it (default 3600 s).
    pub max_expires: Duration,
    /// Longest expiry granted to a NATed UA (default 60 s).
    pub nat_expires: Duration,
    /// A local refresh needs the PBX binding to outlive the next UA refresh by this much (default
    /// 10 s); otherwise the refresh is forwarded.
    pub pbx_refresh_margin: Duration,
    /// Period of keep-alives toward NATed UAs (default 25 s, below common UDP NAT timeouts); zero
    /// disables keep-alives.
    pub keepalive_interval: Duration,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_contacts_per_aor: 10,
            default_expires: Duration::from_secs(3600),
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            nat_expires: Duration::from_secs(60),
            pbx_refresh_margin: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(25),
        }
    }
}

/// The transport a UA registered over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// From a Via transport token (`UDP`, `TCP`, `TLS`, any case); `None` for others.
    pub fn from_token(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("UDP") {
            Some(Self::Udp)
        } else if token.eq_ignore_ascii_case("TCP") {
            Some(Self::Tcp)
        } else if token.eq_ignore_ascii_case("TLS") {
            Some(Self::Tls)
        } else {
            None
        }
    }

    /// Whether the transport is connection-oriented.
    pub fn is_reliable(self) -> bool {
        self != Self::Udp
    }
}

/// Why a REGISTER could not be applied; [`RegistrarError::status_code`] is the answer to the UA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrarError {
    /// The binding table is full (503).
    Full,
    /// The AoR has [`RegistrarConfig::max_contacts_per_aor`] bindings already (403).
    TooManyContacts,
    /// The requested expiry is below the minimum (423, with `Min-Expires: min`).
    IntervalTooBrief {
        /// The minimum to put in `Min-Expires`.
        min: Duration,
    },
    /// Same Call-ID and a CSeq not above the binding's: out of order, not applied (500, RFC 3261
    /// §10.3 step 7).
    Stale,
    /// `Contact: *` with an expiry other than 0 (400, RFC 3261 §10.3 step 6).
    InvalidStar,
    /// The AoR or Contact is not a SIP/SIPS URI (400).
    BadUri,
}

impl RegistrarError {
    /// The SIP status code to answer with.
    pub fn status_code(self) -> u16 {
        match self {
            Self::Full => 503,
            Self::TooManyContacts => 403,
            Self::IntervalTooBrief { .. } => 423,
            Self::Stale => 500,
            Self::InvalidStar | Self::BadUri => 400,
        }
    }
}

impl fmt::Display for RegistrarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("binding table full"),
            Self::TooManyContacts => f.write_str("too many contacts for this AoR"),
            Self::IntervalTooBrief { min } => {
                write!(f, "expiry below the minimum of {} s", min.as_secs())
            }
            Self::Stale => f.write_str("CSeq not above the binding's for the same Call-ID"),
            Self::InvalidStar => f.write_str("Contact: * with a non-zero expiry"),
            Self::BadUri => f.write_str("not a SIP URI"),
        }
    }
}

impl std::error::Error for RegistrarError {}

/// An address-of-record in canonical form (RFC 3261 §10.3 step 5): `sip:user@host[:port]` with the
/// user unescaped and kept case-sensitive, the host in lower case, every parameter and header dropped.
/// `sips:` AoRs stay distinct from `sip:` ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aor(String);

impl Aor {
    /// The canonical AoR of `uri`; [`RegistrarError::BadUri`] for tel and other schemes.
    pub fn from_uri(uri: &Uri<'_>) -> Result<Self, RegistrarError> {
        let scheme = match uri.scheme {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel | Scheme::Other => return Err(RegistrarError::BadUri),
        };
        let mut s = String::with_capacity(48);
        s.push_str(scheme);
        s.push(':');
        if let Some(user) = uri.user {
            s.push_str(&unescape(user));
            s.push('@');
        }
        match uri.host {
            Host::Domain(d) => s.push_str(&unescape(d).to_ascii_lowercase()),
            Host::V4(a) => s.push_str(&a.to_string()),
            Host::V6(a) => {
                s.push('[');
                s.push_str(&a.to_string());
                s.push(']');
            }
        }
        if let Some(p) = uri.port {
            s.push(':');
            s.push_str(&p.to_string());
        }
        Ok(Self(s))
    }

    /// The canonical AoR of a To header value (name-addr or addr-spec).
    pub fn parse(to: &str) -> Result<Self, RegistrarError> {
        let na = NameAddr::parse(to).map_err(|_| RegistrarError::BadUri)?;
        Self::from_uri(&na.uri)
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `%XX` escapes decoded; text whose decoding is not UTF-8 (or malformed escapes) is kept as written.
fn unescape(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(v) => {
                    out.push(v);
                    i += 3;
                }
                None => return s.to_owned(),
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// The key of one binding: the AoR and the device, which is the `+sip.instance` value (lower case,
/// quotes removed) when the UA gave one, else the Contact URI as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BindingKey {
    /// The AoR.
    pub aor: Aor,
    /// `inst:<instance>` or `uri:<contact uri>`.
    pub device: String,
}

impl BindingKey {
    /// The key for `contact_uri` (with `instance`, the raw `+sip.instance` value, if any) under `aor`.
    pub fn new(aor: &Aor, contact_uri: &str, instance: Option<&str>) -> Self {
        let device = match instance {
            Some(i) => format!("inst:{}", i.trim_matches('"').to_ascii_lowercase()),
            None => format!("uri:{contact_uri}"),
        };
        Self {
            aor: aor.clone(),
            device,
        }
    }
}

/// The Contact of a REGISTER, as the registrar needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegContact<'a> {
    /// `Contact: *` (remove every binding of the AoR).
    Star,
    /// One contact.
    Uri {
        /// The URI as the UA wrote it (without `<>` and header parameters).
        uri: &'a str,
        /// The `+sip.instance` value, as written.
        instance: Option<&'a str>,
        /// The `expires` header parameter, which overrides the Expires header (RFC 3261 §10.3 step 7).
        expires: Option<u32>,
    },
}

impl<'a> RegContact<'a> {
    /// Parse one Contact value of a REGISTER.
    pub fn parse(value: &'a str) -> Result<Self, RegistrarError> {
        let v = value.trim();
        if v == "*" {
            return Ok(Self::Star);
        }
        let na = NameAddr::parse(v).map_err(|_| RegistrarError::BadUri)?;
        if !matches!(na.uri.scheme, Scheme::Sip | Scheme::Sips) {
            return Err(RegistrarError::BadUri);
        }
        // The URI text: inside <...> after any display name, or up to the first `;` in addr-spec form.
        let after_display = match na.display {
            Some(d) => v.get(d.len()..).unwrap_or(v),
            None => v,
        };
        let uri = match after_display.find('<') {
            Some(lt) => {
                let inner = after_display.get(lt + 1..).unwrap_or("");
                inner.split('>').next().unwrap_or("")
            }
            None => v.split(';').next().unwrap_or(v),
        }
        .trim();
        Ok(Self::Uri {
            uri,
            instance: na.params.get("+sip.instance").flatten(),
            expires: na.params.get("expires").flatten().and_then(parse_expires),
        })
    }
}

/// One REGISTER, as [`Registrar::handle_register`] takes it.
#[derive(Clone, Copy, Debug)]
pub struct RegisterRequest<'a> {
    /// The AoR (To URI, canonical).
    pub aor: &'a Aor,
    /// The contact (or `*`).
    pub contact: RegContact<'a>,
    /// Where the request came from.
    pub source: SocketAddr,
    /// The transport it came over.
    pub transport: Transport,
    /// The driver's opaque token of the connection it came on (reliable transports).
    pub connection: Option<u64>,
    /// The expiry asked, in seconds: the Contact's `expires` parameter, else the Expires header, else
    /// `None` for the configured default.
    pub expires: Option<u32>,
    /// Call-ID of the REGISTER.
    pub call_id: &'a str,
    /// CSeq number of the REGISTER.
    pub cseq: u32,
    /// Whether [`crate::signalling::nat::detect`] found the UA NATed.
    pub nated: bool,
}

/// One registered contact: the real binding behind the SBC's own registration at the PBX.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The AoR.
    pub aor: Aor,
    /// The Contact URI as the UA wrote it.
    pub contact_uri: String,
    /// The `+sip.instance` value, as written.
    pub instance: Option<String>,
    /// The observed source of the last REGISTER: where requests to the UA go.
    pub source: SocketAddr,
    /// The transport of the last REGISTER.
    pub transport: Transport,
    /// The driver's connection token (reliable transports), to send on the same flow.
    pub connection: Option<u64>,
    /// Whether the UA was found NATed (it gets keep-alives and the short expiry).
    pub nated: bool,
    /// When the binding expires unless the UA refreshes it.
    pub expires_ua: Instant,
    /// The expiry the SBC holds at the PBX for this binding.
    pub expires_pbx: Duration,
    /// When the PBX binding lapses unless refreshed.
    pub pbx_until: Instant,
    /// Call-ID of the last REGISTER applied.
    pub call_id: String,
    /// CSeq of the last REGISTER applied.
    pub cseq: u32,
}

/// Why a REGISTER goes to the PBX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardReason {
    /// No binding existed for this device.
    First,
    /// The device registered another Contact URI.
    ContactChanged,
    /// Another source, flow or Call-ID than the binding's: only the PBX's 2xx moves it.
    Moved,
    /// The PBX binding would lapse before the next UA refresh.
    PbxRefresh,
    /// `expires=0` or `Contact: *`: only the PBX's 2xx removes the bindings.
    Removal,
}

/// A binding to create or move once the PBX accepted the REGISTER that asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBinding {
    /// The binding's key.
    pub key: BindingKey,
    /// The binding as the REGISTER asks for it; its instants and PBX expiry are set by
    /// [`Registrar::commit`] from the PBX's grant.
    pub binding: Binding,
    /// The expiry to grant the UA (cut to what the PBX grants).
    pub ua_expires: Duration,
    /// The expiry asked of the PBX; a longer grant is taken as this (RFC 3261 §10.3 step 8: a
    /// registrar may shorten an expiry, never lengthen it).
    pub pbx_expires: Duration,
}

/// A change of the binding table that waits for the PBX's 2xx ([`Registrar::commit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Create, move or refresh one binding.
    Bind(Box<NewBinding>),
    /// Remove one binding (`expires=0`).
    Remove(BindingKey),
    /// Remove every binding of the AoR (`Contact: *`).
    RemoveAll(Aor),
}

impl Change {
    /// The binding the change is about (`None` for [`Change::RemoveAll`]).
    pub fn key(&self) -> Option<&BindingKey> {
        match self {
            Self::Bind(b) => Some(&b.key),
            Self::Remove(k) => Some(k),
            Self::RemoveAll(_) => None,
        }
    }
}

/// What to do with one Contact of a REGISTER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// Ask the PBX (`pbx_expires`, zero for a removal). Nothing changed here yet: on the PBX's 2xx
    /// call [`Registrar::commit`] with `change`; on a refusal or no answer nothing changes.
    Forward {
        /// What the PBX's 2xx will change.
        change: Change,
        /// Why.
        reason: ForwardReason,
        /// The expiry to ask of the PBX.
        pbx_expires: Duration,
    },
    /// A refresh from the binding's own source, flow and Call-ID with a higher CSeq, applied here:
    /// answer the UA 200 now with `ua_expires`; nothing goes to the PBX.
    Local {
        /// The binding.
        key: BindingKey,
        /// The expiry to grant the UA.
        ua_expires: Duration,
    },
    /// Nothing to change (a removal of bindings that do not exist here): answer 200.
    Unchanged,
}

impl RegisterOutcome {
    /// Whether something must be sent to the PBX.
    pub fn must_forward(&self) -> bool {
        matches!(self, Self::Forward { .. })
    }
}

/// The longest expiry the registrar computes with (2^32 - 1 s, the largest `Expires` RFC 3261
/// §20.19 allows); longer values from either side are cut to it before any arithmetic.
pub const EXPIRES_CAP: Duration = Duration::from_secs(u32::MAX as u64);

/// `now + d`, with `d` cut to [`EXPIRES_CAP`]; never panics (a clock near its end gives `now`).
pub fn deadline_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(EXPIRES_CAP)).unwrap_or(now)
}

/// An expiry as a SIP header or parameter writes it (`delta-seconds`, RFC 3261 §25.1): ASCII digits
/// only, saturating at `u32::MAX` (so `18446744073709551615` is 4294967295). `None` for anything
/// else (negative, empty, garbage), which the registrar treats as absent.
pub fn parse_expires(text: &str) -> Option<u32> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(t.parse::<u32>().unwrap_or(u32::MAX))
}

/// A keep-alive to send (an OPTIONS, or CRLF on a connection, RFC 5626 §4.4) toward a NATed UA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    /// The binding.
    pub key: BindingKey,
    /// Where to send it.
    pub source: SocketAddr,
    /// Over which transport.
    pub transport: Transport,
    /// On which connection, if any.
    pub connection: Option<u64>,
}

/// The binding table (module doc).
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    bindings: BoundedTable<BindingKey, Binding>,
    keepalives: BoundedTable<BindingKey, ()>,
    by_aor: HashMap<Aor, Vec<BindingKey>>,
}

impl Registrar {
    /// An empty registrar.
    pub fn new(config: RegistrarConfig) -> Self {
        Self {
            bindings: BoundedTable::new(config.capacity),
            keepalives: BoundedTable::new(config.capacity),
            by_aor: HashMap::new(),
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// Whether there is no binding.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// The binding of `key`.
    pub fn get(&self, key: &BindingKey) -> Option<&Binding> {
        self.bindings.get(key)
    }

    /// Decide one REGISTER contact (RFC 3261 §10.3; the forwarding rule is in the module doc). Only
    /// a refresh from the binding's own source, flow and Call-ID with a higher CSeq changes the
    /// table here ([`RegisterOutcome::Local`]); every other change waits for the PBX's 2xx
    /// ([`Self::commit`]). A REGISTER with several contacts is decided contact by contact.
    pub fn handle_register(
        &mut self,
        now: Instant,
        req: &RegisterRequest<'_>,
    ) -> Result<RegisterOutcome, RegistrarError> {
        let (uri, instance, contact_expires) = match req.contact {
            RegContact::Star => return self.remove_all(req),
            RegContact::Uri {
                uri,
                instance,
                expires,
            } => (uri, instance, expires),
        };
        let requested = match contact_expires.or(req.expires) {
            Some(s) => Duration::from_secs(u64::from(s)),
            None => self.config.default_expires,
        };
        if !requested.is_zero() && requested < self.config.min_expires {
            return Err(RegistrarError::IntervalTooBrief {
                min: self.config.min_expires,
            });
        }
        let key = BindingKey::new(req.aor, uri, instance);
        let existing = self.bindings.get(&key);
        if let Some(b) = existing {
            if b.call_id == req.call_id && req.cseq <= b.cseq {
                return Err(RegistrarError::Stale);
            }
        }
        if requested.is_zero() {
            return Ok(match existing {
                Some(_) => RegisterOutcome::Forward {
                    change: Change::Remove(key),
                    reason: ForwardReason::Removal,
                    pbx_expires: Duration::ZERO,
                },
                None => RegisterOutcome::Unchanged,
            });
        }

        let pbx_expires = requested.min(self.config.max_expires);
        let ua_expires = if req.nated {
            pbx_expires.min(self.config.nat_expires)
        } else {
            pbx_expires
        };
        let next_refresh = deadline_after(
            deadline_after(now, ua_expires),
            self.config.pbx_refresh_margin,
        );
        let reason = match existing {
            None => ForwardReason::First,
            Some(b) if b.contact_uri != uri => ForwardReason::ContactChanged,
            Some(b)
                if b.source != req.source
                    || b.connection != req.connection
                    || b.transport != req.transport
                    || b.call_id != req.call_id =>
            {
                ForwardReason::Moved
            }
            Some(b) if b.pbx_until < next_refresh => ForwardReason::PbxRefresh,
            Some(_) => {
                self.refresh(now, &key, req, ua_expires);
                return Ok(RegisterOutcome::Local { key, ua_expires });
            }
        };
        if existing.is_none() {
            if self.bindings.len() >= self.config.capacity {
                return Err(RegistrarError::Full);
            }
            if self.by_aor.get(req.aor).map_or(0, Vec::len) >= self.config.max_contacts_per_aor {
                return Err(RegistrarError::TooManyContacts);
            }
        }
        let new = NewBinding {
            key,
            binding: Binding {
                aor: req.aor.clone(),
                contact_uri: uri.to_owned(),
                instance: instance.map(str::to_owned),
                source: req.source,
                transport: req.transport,
                connection: req.connection,
                nated: req.nated,
                expires_ua: now,
                expires_pbx: pbx_expires,
                pbx_until: now,
                call_id: req.call_id.to_owned(),
                cseq: req.cseq,
            },
            ua_expires,
            pbx_expires,
        };
        Ok(RegisterOutcome::Forward {
            change: Change::Bind(Box::new(new)),
            reason,
            pbx_expires,
        })
    }

    /// A refresh from the binding's own flow and Call-ID: new CSeq and UA expiry, the PBX binding
    /// as it is.
    fn refresh(
        &mut self,
        now: Instant,
        key: &BindingKey,
        req: &RegisterRequest<'_>,
        ua_expires: Duration,
    ) {
        let until = deadline_after(now, ua_expires);
        if let Some(b) = self.bindings.get_mut(key) {
            b.cseq = req.cseq;
            b.nated = req.nated;
            b.expires_ua = until;
        }
        self.bindings.set_deadline(key, until);
        self.schedule_keepalive(key, req.nated, now);
    }

    /// `Contact: *`: every binding of the AoR is to be removed (after the PBX's 2xx), unless one of
    /// them saw a newer CSeq on the same Call-ID.
    fn remove_all(&mut self, req: &RegisterRequest<'_>) -> Result<RegisterOutcome, RegistrarError> {
        if req.expires != Some(0) {
            return Err(RegistrarError::InvalidStar);
        }
        let keys = self.by_aor.get(req.aor).map_or(&[][..], Vec::as_slice);
        let stale = keys
            .iter()
            .filter_map(|k| self.bindings.get(k))
            .any(|b| b.call_id == req.call_id && req.cseq <= b.cseq);
        if stale {
            return Err(RegistrarError::Stale);
        }
        Ok(if keys.is_empty() {
            RegisterOutcome::Unchanged
        } else {
            RegisterOutcome::Forward {
                change: Change::RemoveAll(req.aor.clone()),
                reason: ForwardReason::Removal,
                pbx_expires: Duration::ZERO,
            }
        })
    }

    /// The PBX answered 2xx to the REGISTER that asked for `change`, granting `granted` (a binding
    /// only; cut to what was asked). Returns the bindings removed (for [`Change::Remove`] and
    /// [`Change::RemoveAll`]). A binding whose same Call-ID already saw a higher CSeq here is left
    /// as it is (an answer overtaken by a newer REGISTER).
    pub fn commit(
        &mut self,
        now: Instant,
        change: &Change,
        granted: Duration,
    ) -> Result<Vec<Binding>, RegistrarError> {
        match change {
            Change::Bind(new) => self.commit_binding(now, new, granted).map(|()| Vec::new()),
            Change::Remove(key) => Ok(self.remove(key).into_iter().collect()),
            Change::RemoveAll(aor) => {
                let keys = self.by_aor.get(aor).cloned().unwrap_or_default();
                Ok(keys.iter().filter_map(|k| self.remove(k)).collect())
            }
        }
    }

    fn commit_binding(
        &mut self,
        now: Instant,
        new: &NewBinding,
        granted: Duration,
    ) -> Result<(), RegistrarError> {
        let existing = self.bindings.get(&new.key);
        let b = &new.binding;
        if existing.is_some_and(|e| e.call_id == b.call_id && b.cseq < e.cseq) {
            return Ok(());
        }
        if existing.is_none()
            && self.by_aor.get(&new.key.aor).map_or(0, Vec::len) >= self.config.max_contacts_per_aor
        {
            return Err(RegistrarError::TooManyContacts);
        }
        let was_new = existing.is_none();
        let granted = granted.min(new.pbx_expires);
        let pbx_until = deadline_after(now, granted);
        let expires_ua = deadline_after(now, new.ua_expires).min(pbx_until);
        let binding = Binding {
            expires_ua,
            expires_pbx: granted,
            pbx_until,
            ..b.clone()
        };
        self.bindings
            .insert(new.key.clone(), binding, expires_ua)
            .map_err(|_| RegistrarError::Full)?;
        if was_new {
            self.by_aor
                .entry(new.key.aor.clone())
                .or_default()
                .push(new.key.clone());
        }
        self.schedule_keepalive(&new.key, new.binding.nated, now);
        Ok(())
    }

    /// Put back a binding held before a restart, with `ua_left` and `pbx_left` still to run from
    /// `now`. A binding with no time left, or beyond the table's bounds, is refused.
    pub fn restore(
        &mut self,
        now: Instant,
        mut binding: Binding,
        ua_left: Duration,
        pbx_left: Duration,
    ) -> Result<BindingKey, RegistrarError> {
        if ua_left.is_zero() || pbx_left.is_zero() {
            return Err(RegistrarError::Stale);
        }
        let key = BindingKey::new(
            &binding.aor,
            &binding.contact_uri,
            binding.instance.as_deref(),
        );
        if self.bindings.contains_key(&key) {
            return Err(RegistrarError::Stale);
        }
        if self.by_aor.get(&key.aor).map_or(0, Vec::len) >= self.config.max_contacts_per_aor {
            return Err(RegistrarError::TooManyContacts);
        }
        binding.pbx_until = deadline_after(now, pbx_left.min(self.config.max_expires));
        binding.expires_ua = deadline_after(now, ua_left).min(binding.pbx_until);
        let (nated, until) = (binding.nated, binding.expires_ua);
        self.bindings
            .insert(key.clone(), binding, until)
            .map_err(|_| RegistrarError::Full)?;
        self.by_aor
            .entry(key.aor.clone())
            .or_default()
            .push(key.clone());
        self.schedule_keepalive(&key, nated, now);
        Ok(key)
    }

    /// Every binding with the time left on each side at `now` (for storing across a restart).
    pub fn export(
        &self,
        now: Instant,
    ) -> impl Iterator<Item = (&Binding, Duration, Duration)> + '_ {
        self.by_aor
            .values()
            .flatten()
            .filter_map(|k| self.bindings.get(k))
            .map(move |b| {
                (
                    b,
                    b.expires_ua.saturating_duration_since(now),
                    b.pbx_until.saturating_duration_since(now),
                )
            })
    }

    /// (Re)arm the keep-alive of `key`: a REGISTER just crossed the pinhole, so the next keep-alive is
    /// one interval from now. Bindings that are not NATed have none.
    fn schedule_keepalive(&mut self, key: &BindingKey, nated: bool, now: Instant) {
        if nated && !self.config.keepalive_interval.is_zero() {
            // Same capacity and keys as the bindings table, which just accepted this key.
            let _ = self
                .keepalives
                .insert(key.clone(), (), now + self.config.keepalive_interval);
        } else {
            self.keepalives.remove(key);
        }
    }

    /// Remove the binding of `key` (PBX refused it, connection closed for good, operator action).
    pub fn remove(&mut self, key: &BindingKey) -> Option<Binding> {
        let b = self.bindings.remove(key)?;
        self.forget(key);
        Some(b)
    }

    /// Drop `key` from the per-AoR index and the keep-alive schedule.
    fn forget(&mut self, key: &BindingKey) {
        self.keepalives.remove(key);
        if let Some(keys) = self.by_aor.get_mut(&key.aor) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_aor.remove(&key.aor);
            }
        }
    }

    /// Every binding of `aor`, for requests from the PBX toward the UA (fork to each).
    pub fn lookup<'s>(&'s self, aor: &Aor) -> impl Iterator<Item = &'s Binding> + 's {
        self.by_aor
            .get(aor)
            .into_iter()
            .flatten()
            .filter_map(move |k| self.bindings.get(k))
    }

    /// Whether a binding is reachable only through the driver's connection `token` (so the
    /// connection must stay open while the binding lives).
    pub fn holds_connection(&self, token: u64) -> bool {
        self.by_aor
            .values()
            .flatten()
            .filter_map(|k| self.bindings.get(k))
            .any(|b| b.connection == Some(token))
    }

    /// The next binding whose UA expiry is ≤ `now`, removed; call until `None`. Deregister each at the
    /// PBX. Bindings come out in expiry order.
    pub fn poll_expired(&mut self, now: Instant) -> Option<Binding> {
        let (key, b) = self.bindings.poll_expired(now)?;
        self.forget(&key);
        Some(b)
    }

    /// The next keep-alive due at `now` (its next one is scheduled one interval later); call until
    /// `None`.
    pub fn poll_keepalive(&mut self, now: Instant) -> Option<KeepAlive> {
        while let Some((key, ())) = self.keepalives.poll_expired(now) {
            let Some(b) = self.bindings.get(&key) else {
                continue;
            };
            let ka = KeepAlive {
                key: key.clone(),
                source: b.source,
                transport: b.transport,
                connection: b.connection,
            };
            let _ = self
                .keepalives
                .insert(key, (), now + self.config.keepalive_interval);
            return Some(ka);
        }
        None
    }

    /// Every keep-alive due at `now` (see [`Self::poll_keepalive`]).
    pub fn keepalive_due(&mut self, now: Instant) -> Vec<KeepAlive> {
        std::iter::from_fn(|| self.poll_keepalive(now)).collect()
    }

    /// The earliest expiry or keep-alive deadline (arm the driver's timer with it).
    pub fn next_deadline(&self) -> Option<Instant> {
        match (
            self.bindings.next_deadline(),
            self.keepalives.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests;
