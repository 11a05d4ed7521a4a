//! The SBC's client side of SIP digest authentication: answering a carrier trunk that challenges an
//! INVITE or a REGISTER with `401` (`WWW-Authenticate`) or `407` (`Proxy-Authenticate`).
//!
//! References:
//! - RFC 3261 §22.2–§22.4 and §25.1 (`challenge`, `credentials` grammar): the SIP use of digest, the
//!   Request-URI as `uri`, `Authorization` after a 401 and `Proxy-Authorization` after a 407.
//! - RFC 2617 §3.2 (the MD5 computation, `qop`, `cnonce`, `nc`, MD5-sess; RFC 2069 compatibility when
//!   no `qop` is offered) and RFC 7616 §3.4 (SHA-256, SHA-512/256 and the `-sess` variants).
//! - RFC 8760: SHA-256 and SHA-512/256 in SIP; a UAC answers the topmost challenge it supports (§2.4).
//!
//! # Rules chosen
//!
//! - **Sans-IO.** No randomness and no clock: the caller supplies the `cnonce` (and, for
//!   [`Challenge::respond`], the nonce count). [`AuthCache`] counts the nonces itself.
//! - **Parsing is tolerant of form, strict about meaning.** Parameter names and the scheme are
//!   case-insensitive, spacing around `=` and `,` is free, empty list elements are skipped, every value
//!   may be a token or a quoted string (with `\` escapes), unknown parameters (`domain`, `charset`,
//!   `userhash`, ...) are ignored. What cannot be answered is a [`DigestError`]: another scheme, no realm
//!   or nonce, an unknown algorithm, a `qop` offering neither `auth` nor `auth-int`, a `-sess`
//!   algorithm without `qop` (RFC 2617 forbids the `cnonce` the hash needs), a parameter given twice, a
//!   control character inside a value, or a value over [`MAX_CHALLENGE_LEN`] bytes. Nothing panics.
//! - **`qop=auth` is preferred** when offered; `auth-int` (which hashes the body into `A2`) is used only
//!   when it is the sole choice, and then needs the body ([`DigestError::AuthIntNeedsBody`] otherwise).
//!   With no `qop` at all, the RFC 2069 form is answered (no `cnonce`, `nc` nor `qop`).
//! - **The credentials always name the algorithm** (`algorithm=MD5` too), in its canonical spelling.
//! - **`userhash` is not used**: the username is sent as is (quoted, with `"` and `\` escaped). RFC 8760
//!   does not bring `userhash` to SIP.
//! - **One challenge per header field.** A field holding several comma-separated challenges is
//!   [`DigestError::Malformed`]; SIP servers put each in its own field, and [`Challenge::pick`] and
//!   [`Challenge::from_response`] read them all.
//! - **Pre-authorization is bounded.** [`AuthCache`] keeps at most [`MAX_REALMS`] realms (the least
//!   recently used is dropped), each with one challenge of at most [`MAX_CHALLENGE_LEN`] bytes: about
//!   8 × 4 KiB per trunk at worst.

use std::fmt::{self, Write as _};

use md5::{Digest as _, Md5};
use sbc_sip::Message;

/// The longest challenge header value accepted, in bytes. Real ones are 100–300 bytes; anything past
/// this is [`DigestError::TooLong`], which also bounds what [`AuthCache`] keeps.
pub const MAX_CHALLENGE_LEN: usize = 4096;

/// How many realms an [`AuthCache`] remembers; one trunk rarely has more than one or two.
pub const MAX_REALMS: usize = 8;

/// Why a challenge cannot be answered, or credentials cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestError {
    /// The scheme is not `Digest` (for example `Basic`), or the value is empty.
    NotDigest,
    /// The value does not follow the grammar: unterminated quoted string, a parameter without `=` or
    /// without a value, a control or non-ASCII character outside a quoted string, a missing comma.
    Malformed,
    /// A parameter the answer depends on (`realm`, `nonce`, `opaque`, `algorithm`, `qop`, `stale`)
    /// appears twice.
    DuplicateParam,
    /// The value is longer than [`MAX_CHALLENGE_LEN`].
    TooLong,
    /// No `realm` parameter.
    MissingRealm,
    /// No `nonce` parameter, or an empty one.
    MissingNonce,
    /// An `algorithm` other than MD5, SHA-256 and SHA-512-256 (and their `-sess` variants).
    UnknownAlgorithm,
    /// A `qop` offering neither `auth` nor `auth-int`.
    UnsupportedQop,
    /// Only `qop=auth-int` is offered and the body was not supplied.
    AuthIntNeedsBody,
    /// A `-sess` algorithm without `qop`: its `A1` needs a `cnonce`, which RFC 2617 §3.2.2 forbids
    /// sending without `qop`.
    SessionWithoutQop,
    /// The response holds no challenge for its status, or the cache has none for the realm.
    NoChallenge,
    /// A username, URI or cnonce with a control character, an empty cnonce, or a method that is not a
    /// token: it cannot be written into the header.
    InvalidInput,
    /// The nonce count would pass `ffffffff`: a fresh challenge is needed.
    NonceCountExhausted,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotDigest => "not a Digest challenge",
            Self::Malformed => "malformed challenge",
            Self::DuplicateParam => "challenge parameter given twice",
            Self::TooLong => "challenge too long",
            Self::MissingRealm => "challenge without realm",
            Self::MissingNonce => "challenge without nonce",
            Self::UnknownAlgorithm => "unknown digest algorithm",
            Self::UnsupportedQop => "no supported qop offered",
            Self::AuthIntNeedsBody => "only qop=auth-int offered and no body supplied",
            Self::SessionWithoutQop => "session algorithm without qop",
            Self::NoChallenge => "no digest challenge",
            Self::InvalidInput => "credentials input cannot be written",
            Self::NonceCountExhausted => "nonce count exhausted",
        })
    }
}

impl std::error::Error for DigestError {}

/// A digest algorithm (RFC 7616 §3.3, RFC 8760 §2.1). Token comparison is case-insensitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`, the default when the challenge names none (RFC 2617).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256` (SHA-512/256).
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Recognise an `algorithm` token (case-insensitive).
    pub fn from_token(token: &str) -> Option<Self> {
        [
            Self::Md5,
            Self::Md5Sess,
            Self::Sha256,
            Self::Sha256Sess,
            Self::Sha512_256,
            Self::Sha512_256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(token))
    }

    /// The canonical token, as written in the credentials.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// Whether this is a `-sess` variant (`A1` also hashes the nonce and cnonce).
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess
        )
    }
}

/// A quality of protection (RFC 2617 §3.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: method and URI are protected.
    Auth,
    /// `auth-int`: the body is protected too.
    AuthInt,
}

impl Qop {
    /// The token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

/// The `qop` values a challenge offers (at least one is set; unknown values are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QopOffer {
    /// `auth` is offered.
    pub auth: bool,
    /// `auth-int` is offered.
    pub auth_int: bool,
}

/// Who challenged: the trunk itself (401) or a proxy on the way (407) (RFC 3261 §22.2, §22.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// 401 with `WWW-Authenticate`, answered with `Authorization`.
    Www,
    /// 407 with `Proxy-Authenticate`, answered with `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// The kind a response status calls for: 401 and 407 only.
    pub fn from_status(status: u16) -> Option<Self> {
        match status {
            401 => Some(Self::Www),
            407 => Some(Self::Proxy),
            _ => None,
        }
    }

    /// The header carrying the challenge.
    pub fn challenge_header(self) -> &'static str {
        match self {
            Self::Www => "WWW-Authenticate",
            Self::Proxy => "Proxy-Authenticate",
        }
    }

    /// The header carrying the answer.
    pub fn credentials_header(self) -> &'static str {
        match self {
            Self::Www => "Authorization",
            Self::Proxy => "Proxy-Authorization",
        }
    }
}

/// What the SBC authenticates as toward one trunk.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The username (UTF-8; written quoted, with `"` and `\` escaped).
    pub username: &'a str,
    /// The password (only ever hashed).
    pub password: &'a str,
}

impl fmt::Debug for Credentials<'_> {
    /// The password is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The request being authorized.
#[derive(Clone, Copy, Debug)]
pub struct DigestRequest<'a> {
    /// The method token (`INVITE`, `REGISTER`, ...). For an ACK or CANCEL, RFC 3261 §22.1 says to
    /// reuse the INVITE's credentials instead of computing new ones.
    pub method: &'a str,
    /// The Request-URI exactly as written in the request line (RFC 3261 §22.4: the `uri` parameter).
    pub uri: &'a str,
    /// The message body, when known; needed only for `qop=auth-int`. An empty body is `Some(b"")`.
    pub body: Option<&'a [u8]>,
}

/// A credentials header to add to the request: `name: value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// `Authorization` or `Proxy-Authorization`.
    pub name: &'static str,
    /// The value, starting with `Digest `.
    pub value: String,
}

impl fmt::Display for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.value)
    }
}

/// One parsed digest challenge. Built only by parsing, so its strings never hold control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    kind: ChallengeKind,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Algorithm,
    qop: Option<QopOffer>,
    stale: bool,
}

impl Challenge {
    /// Parse one `WWW-Authenticate` / `Proxy-Authenticate` value (the rules are in the module doc).
    pub fn parse(kind: ChallengeKind, value: &str) -> Result<Self, DigestError> {
        if value.len() > MAX_CHALLENGE_LEN {
            return Err(DigestError::TooLong);
        }
        let mut cur = Cursor { rest: value };
        cur.skip_ws();
        match cur.token() {
            Some(scheme) if scheme.eq_ignore_ascii_case("Digest") => {}
            _ => return Err(DigestError::NotDigest),
        }
        // the scheme must be followed by whitespace (or nothing: then realm and nonce are missing)
        if !cur.rest.is_empty() && !cur.skip_ws() {
            return Err(DigestError::Malformed);
        }

        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = None;
        let mut qop = None;
        let mut stale = None;
        loop {
            cur.skip_ws();
            if cur.eat(',') {
                continue; // empty list element
            }
            if cur.rest.is_empty() {
                break;
            }
            let name = cur.token().ok_or(DigestError::Malformed)?;
            cur.skip_ws();
            if !cur.eat('=') {
                return Err(DigestError::Malformed);
            }
            cur.skip_ws();
            let val = cur.value()?;
            cur.skip_ws();
            if !cur.rest.is_empty() && !cur.eat(',') {
                return Err(DigestError::Malformed);
            }
            let slot = match name.to_ascii_lowercase().as_str() {
                "realm" => &mut realm,
                "nonce" => &mut nonce,
                "opaque" => &mut opaque,
                "algorithm" => &mut algorithm,
                "qop" => &mut qop,
                "stale" => &mut stale,
                _ => continue, // domain, charset, userhash and extensions
            };
            if slot.replace(val).is_some() {
                return Err(DigestError::DuplicateParam);
            }
        }

        let realm = realm.ok_or(DigestError::MissingRealm)?;
        let nonce = nonce
            .filter(|n| !n.is_empty())
            .ok_or(DigestError::MissingNonce)?;
        let algorithm = match algorithm {
            None => Algorithm::Md5,
            Some(a) => Algorithm::from_token(a.trim()).ok_or(DigestError::UnknownAlgorithm)?,
        };
        let qop = qop.map(|q| parse_qop(&q)).transpose()?;
        if qop.is_none() && algorithm.is_session() {
            return Err(DigestError::SessionWithoutQop);
        }
        Ok(Self {
            kind,
            realm,
            nonce,
            opaque,
            algorithm,
            qop,
            stale: stale.is_some_and(|s| s.trim().eq_ignore_ascii_case("true")),
        })
    }

    /// The challenge to answer among several header values of one response: the topmost one that
    /// parses and can be answered (`body_available`: whether the body will be supplied, for
    /// `auth-int`), as RFC 8760 §2.4 asks. Otherwise the error of the first value, or
    /// [`DigestError::NoChallenge`] when there is none.
    pub fn pick<'a>(
        kind: ChallengeKind,
        values: impl IntoIterator<Item = &'a str>,
        body_available: bool,
    ) -> Result<Self, DigestError> {
        let mut first_err = None;
        for value in values {
            match Self::parse(kind, value).and_then(|c| c.qop_for(body_available).map(|_| c)) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(DigestError::NoChallenge))
    }

    /// The challenges to answer in a 401 or 407 response: per realm, the topmost answerable one (RFC
    /// 3261 §22.3 asks for credentials for every realm challenged; RFC 8760 §2.4 for the topmost
    /// supported algorithm). At most [`MAX_REALMS`] realms, in header order. Fails when no challenge can
    /// be answered, with the first error met ([`DigestError::NoChallenge`] for another status or no
    /// challenge header).
    pub fn from_response(msg: &Message, body_available: bool) -> Result<Vec<Self>, DigestError> {
        let kind = msg
            .status()
            .and_then(ChallengeKind::from_status)
            .ok_or(DigestError::NoChallenge)?;
        let mut found: Vec<Self> = Vec::new();
        let mut first_err = None;
        let values = msg
            .headers()
            .filter(|h| h.raw_name.eq_ignore_ascii_case(kind.challenge_header()))
            .map(|h| h.value);
        for value in values {
            match Self::parse(kind, value).and_then(|c| c.qop_for(body_available).map(|_| c)) {
                Ok(c) => {
                    if found.len() < MAX_REALMS && !found.iter().any(|f| f.realm == c.realm) {
                        found.push(c);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if found.is_empty() {
            Err(first_err.unwrap_or(DigestError::NoChallenge))
        } else {
            Ok(found)
        }
    }

    /// 401 or 407.
    pub fn kind(&self) -> ChallengeKind {
        self.kind
    }
    /// The realm (unquoted).
    pub fn realm(&self) -> &str {
        &self.realm
    }
    /// The nonce (unquoted).
    pub fn nonce(&self) -> &str {
        &self.nonce
    }
    /// The opaque value to echo, if any.
    pub fn opaque(&self) -> Option<&str> {
        self.opaque.as_deref()
    }
    /// The algorithm (MD5 when the challenge names none).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// The `qop` values offered; `None` for an RFC 2069 challenge.
    pub fn qop(&self) -> Option<QopOffer> {
        self.qop
    }
    /// Whether the challenge says `stale=true`: the previous nonce expired but the credentials were
    /// good, so retry without asking anew (RFC 2617 §3.2.1).
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// The `qop` the answer will use: `auth` when offered, else `auth-int` when the body is available,
    /// `None` for an RFC 2069 challenge.
    pub fn qop_for(&self, body_available: bool) -> Result<Option<Qop>, DigestError> {
        match self.qop {
            None => Ok(None),
            Some(QopOffer { auth: true, .. }) => Ok(Some(Qop::Auth)),
            Some(QopOffer { auth_int: true, .. }) if body_available => Ok(Some(Qop::AuthInt)),
            Some(_) => Err(DigestError::AuthIntNeedsBody),
        }
    }

    /// The credentials header answering this challenge for `req`, with the caller's `cnonce` (a fresh
    /// unpredictable string per challenge, RFC 7616 §3.4: at least 64 random bits, hex or base64) and
    /// nonce count `nc` (1 for the first request with this nonce, then 2, 3, ...). `cnonce` and `nc`
    /// are not written for an RFC 2069 challenge.
    pub fn respond(
        &self,
        creds: &Credentials<'_>,
        req: &DigestRequest<'_>,
        cnonce: &str,
        nc: u32,
    ) -> Result<Authorization, DigestError> {
        let qop = self.qop_for(req.body.is_some())?;
        if has_control(creds.username)
            || has_control(req.uri)
            || has_control(cnonce)
            || req.method.is_empty()
            || !req.method.bytes().all(is_token_byte)
            || (cnonce.is_empty() && qop.is_some())
        {
            return Err(DigestError::InvalidInput);
        }
        let alg = self.algorithm;
        let nc_hex = format!("{nc:08x}");

        let mut ha1 = hex_hash(
            alg,
            &[
                creds.username.as_bytes(),
                self.realm.as_bytes(),
                creds.password.as_bytes(),
            ],
        );
        if alg.is_session() {
            ha1 = hex_hash(
                alg,
                &[ha1.as_bytes(), self.nonce.as_bytes(), cnonce.as_bytes()],
            );
        }
        let ha2 = match (qop, req.body) {
            (Some(Qop::AuthInt), Some(body)) => {
                let hbody = hex_hash(alg, &[body]);
                hex_hash(
                    alg,
                    &[req.method.as_bytes(), req.uri.as_bytes(), hbody.as_bytes()],
                )
            }
            _ => hex_hash(alg, &[req.method.as_bytes(), req.uri.as_bytes()]),
        };
        let response = match qop {
            Some(q) => hex_hash(
                alg,
                &[
                    ha1.as_bytes(),
                    self.nonce.as_bytes(),
                    nc_hex.as_bytes(),
                    cnonce.as_bytes(),
                    q.as_str().as_bytes(),
                    ha2.as_bytes(),
                ],
            ),
            None => hex_hash(
                alg,
                &[ha1.as_bytes(), self.nonce.as_bytes(), ha2.as_bytes()],
            ),
        };

        // field order: username, realm, nonce, uri, response, algorithm, cnonce, opaque, qop, nc
        let mut v = String::with_capacity(256);
        v.push_str("Digest username=");
        write_quoted(&mut v, creds.username);
        v.push_str(", realm=");
        write_quoted(&mut v, &self.realm);
        v.push_str(", nonce=");
        write_quoted(&mut v, &self.nonce);
        v.push_str(", uri=");
        write_quoted(&mut v, req.uri);
        let _ = write!(v, ", response=\"{response}\", algorithm={}", alg.as_str());
        if qop.is_some() {
            v.push_str(", cnonce=");
            write_quoted(&mut v, cnonce);
        }
        if let Some(opaque) = &self.opaque {
            v.push_str(", opaque=");
            write_quoted(&mut v, opaque);
        }
        if let Some(q) = qop {
            let _ = write!(v, ", qop={}, nc={nc_hex}", q.as_str());
        }
        Ok(Authorization {
            name: self.kind.credentials_header(),
            value: v,
        })
    }
}

/// Parse a `qop` value: a comma-separated list, unknown values ignored.
fn parse_qop(list: &str) -> Result<QopOffer, DigestError> {
    let mut offer = QopOffer {
        auth: false,
        auth_int: false,
    };
    for q in list.split(',').map(|q| q.trim_matches([' ', '\t'])) {
        if q.eq_ignore_ascii_case("auth") {
            offer.auth = true;
        } else if q.eq_ignore_ascii_case("auth-int") {
            offer.auth_int = true;
        }
    }
    if offer.auth || offer.auth_int {
        Ok(offer)
    } else {
        Err(DigestError::UnsupportedQop)
    }
}

/// A token character (RFC 3261 §25.1).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Whether `s` holds a control character (anything below 0x20 but HTAB, and DEL): these would break
/// or inject into the header line.
fn has_control(s: &str) -> bool {
    s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Write `s` as a quoted string, escaping `"` and `\` (RFC 3261 §25.1 `quoted-pair`).
fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A reading position in a challenge value. Every split is at an ASCII byte found by scanning, so
/// always on a character boundary; `split_at_checked` keeps that panic-free regardless.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    /// Skip spaces and tabs; whether any were skipped.
    fn skip_ws(&mut self) -> bool {
        let before = self.rest.len();
        self.rest = self.rest.trim_start_matches([' ', '\t']);
        self.rest.len() != before
    }

    /// Consume `c` if it comes next.
    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    /// Take a non-empty run of token characters.
    fn token(&mut self) -> Option<&'a str> {
        let end = self
            .rest
            .bytes()
            .position(|b| !is_token_byte(b))
            .unwrap_or(self.rest.len());
        self.take(end).filter(|t| !t.is_empty())
    }

    /// Split off the first `n` bytes.
    fn take(&mut self, n: usize) -> Option<&'a str> {
        let (head, tail) = self.rest.split_at_checked(n)?;
        self.rest = tail;
        Some(head)
    }

    /// A parameter value: a quoted string (unescaped), or an unquoted run up to whitespace or a comma.
    /// Unquoted values are looser than `token` so that base64 nonces sent bare (`/`, `=`, `+`) pass.
    fn value(&mut self) -> Result<String, DigestError> {
        if self.eat('"') {
            return self.quoted();
        }
        let end = self
            .rest
            .bytes()
            .position(|b| b == b',' || b == b' ' || b == b'\t')
            .unwrap_or(self.rest.len());
        let v = self.take(end).ok_or(DigestError::Malformed)?;
        let bad = |b: u8| b == b'"' || b == b'\\' || b <= 0x20 || b >= 0x7f;
        if v.is_empty() || v.bytes().any(bad) {
            return Err(DigestError::Malformed);
        }
        Ok(v.to_owned())
    }

    /// The rest of a quoted string whose opening quote was consumed: up to the closing quote,
    /// `\x` unescaped to `x`. UTF-8 is kept; control characters are refused.
    fn quoted(&mut self) -> Result<String, DigestError> {
        let mut out = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((i, c)) = chars.next() {
            let c = match c {
                '"' => {
                    self.take(i + 1).ok_or(DigestError::Malformed)?;
                    return Ok(out);
                }
                '\\' => chars.next().ok_or(DigestError::Malformed)?.1,
                c => c,
            };
            if (c < ' ' && c != '\t') || c == '\u{7f}' {
                return Err(DigestError::Malformed);
            }
            out.push(c);
        }
        Err(DigestError::Malformed) // unterminated
    }
}

/// The lowercase hex digest of the parts joined by `:`, with the algorithm's hash function.
fn hex_hash(alg: Algorithm, parts: &[&[u8]]) -> String {
    enum Hasher {
        Md5(Md5),
        Ring(ring::digest::Context),
    }
    let mut h = match alg {
        Algorithm::Md5 | Algorithm::Md5Sess => Hasher::Md5(Md5::new()),
        Algorithm::Sha256 | Algorithm::Sha256Sess => {
            Hasher::Ring(ring::digest::Context::new(&ring::digest::SHA256))
        }
        Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => {
            Hasher::Ring(ring::digest::Context::new(&ring::digest::SHA512_256))
        }
    };
    for (i, part) in parts.iter().enumerate() {
        let sep: &[u8] = if i == 0 { b"" } else { b":" };
        match &mut h {
            Hasher::Md5(m) => {
                m.update(sep);
                m.update(part);
            }
            Hasher::Ring(r) => {
                r.update(sep);
                r.update(part);
            }
        }
    }
    match h {
        Hasher::Md5(m) => hex(&m.finalize()),
        Hasher::Ring(r) => hex(r.finish().as_ref()),
    }
}

fn hex(bytes: &[u8]) -> String {
    let digit = |n: u8| char::from_digit(u32::from(n), 16).unwrap_or('0');
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 0x0f));
    }
    s
}

/// Whether the challenged request was itself the answer to a challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The request carried no credentials for the realm, or only pre-authorization from the cache
    /// (whose nonce may simply have expired): answering once more is worth it.
    First,
    /// The request answered a challenge just received: a new challenge without `stale=true` means the
    /// credentials were refused.
    Retry,
}

/// What to do after [`AuthCache::handle_challenge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the request again with credentials ([`AuthCache::authorize`]).
    Answer,
    /// The nonce had expired but the credentials were good (`stale=true`): send again, same
    /// credentials, new nonce.
    AnswerStale,
    /// The credentials were refused (or the server repeats a stale nonce): fail the request with the
    /// challenge response. The realm is forgotten, so later requests go out without credentials.
    GiveUp,
}

/// One realm's last challenge and how many requests have used its nonce.
#[derive(Clone, Debug)]
struct Entry {
    challenge: Challenge,
    nc: u32,
}

/// The challenges one trunk last sent, per realm, so that following requests are pre-authorized
/// (RFC 3261 §22.3: a UAC may reuse credentials for the realm; RFC 2617 §3.2.2: `nc` counts the
/// requests made with one nonce). At most [`MAX_REALMS`] realms: a new realm beyond that replaces the
/// least recently used. Realms compare case-sensitively (RFC 2617 §1.2: an opaque string).
///
/// Typical use, on a 401/407 to request R: for each [`Challenge::from_response`] result call
/// [`AuthCache::handle_challenge`] with [`Attempt::Retry`] if R was itself an answer, else
/// [`Attempt::First`]; on [`Verdict::GiveUp`] fail R, otherwise resend it with
/// [`AuthCache::authorize_all`]. New requests to the trunk carry [`AuthCache::authorize_all`] from the
/// start. The caller still bounds retries per transaction.
#[derive(Clone, Debug, Default)]
pub struct AuthCache {
    /// Most recently used first; never longer than [`MAX_REALMS`].
    entries: Vec<Entry>,
}

impl AuthCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many realms are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no realm is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The nonce count last used for `realm` (0 when its challenge has not been answered yet).
    pub fn nonce_count(&self, realm: &str) -> Option<u32> {
        self.entries
            .iter()
            .find(|e| e.challenge.realm == realm)
            .map(|e| e.nc)
    }

    /// Take in a challenge received for a request (see [`Attempt`]). Unless the verdict is
    /// [`Verdict::GiveUp`], the challenge replaces what was kept for its realm and its nonce count
    /// starts again.
    pub fn handle_challenge(&mut self, challenge: Challenge, attempt: Attempt) -> Verdict {
        let pos = self
            .entries
            .iter()
            .position(|e| e.challenge.realm == challenge.realm);
        let old = pos.map(|i| self.entries.remove(i));
        let verdict = match (attempt, challenge.stale, old) {
            // a server that calls its own current nonce stale would loop forever
            (Attempt::Retry, true, Some(old)) if old.challenge.nonce == challenge.nonce => {
                Verdict::GiveUp
            }
            (_, true, _) => Verdict::AnswerStale,
            (Attempt::Retry, false, _) => Verdict::GiveUp,
            (Attempt::First, false, _) => Verdict::Answer,
        };
        if verdict != Verdict::GiveUp {
            self.entries.truncate(MAX_REALMS - 1);
            self.entries.insert(0, Entry { challenge, nc: 0 });
        }
        verdict
    }

    /// Credentials for `realm` on `req`, with the nonce count incremented (the first use of a nonce is
    /// `nc=00000001`). The count is only advanced when the header is produced. When it would pass
    /// `ffffffff` the realm is forgotten ([`DigestError::NonceCountExhausted`]), so the next request
    /// draws a fresh challenge.
    pub fn authorize(
        &mut self,
        realm: &str,
        creds: &Credentials<'_>,
        req: &DigestRequest<'_>,
        cnonce: &str,
    ) -> Result<Authorization, DigestError> {
        let pos = self
            .entries
            .iter()
            .position(|e| e.challenge.realm == realm)
            .ok_or(DigestError::NoChallenge)?;
        let mut entry = self.entries.remove(pos);
        let Some(nc) = entry.nc.checked_add(1) else {
            return Err(DigestError::NonceCountExhausted);
        };
        let result = entry.challenge.respond(creds, req, cnonce, nc);
        if result.is_ok() {
            entry.nc = nc;
        }
        self.entries.insert(0, entry);
        result
    }

    /// Credentials for every remembered realm, most recently used first, each with its nonce count
    /// incremented. Realms that cannot answer this request (only `auth-int` offered and no body, input
    /// that cannot be written) are left out, and a realm whose count is exhausted is also forgotten:
    /// the server will challenge.
    pub fn authorize_all(
        &mut self,
        creds: &Credentials<'_>,
        req: &DigestRequest<'_>,
        cnonce: &str,
    ) -> Vec<Authorization> {
        let mut out = Vec::with_capacity(self.entries.len());
        self.entries.retain_mut(|entry| {
            let Some(nc) = entry.nc.checked_add(1) else {
                return false;
            };
            if let Ok(a) = entry.challenge.respond(creds, req, cnonce, nc) {
                entry.nc = nc;
                out.push(a);
            }
            true
        });
        out
    }

    /// Forget `realm`; whether it was remembered.
    pub fn forget(&mut self, realm: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.challenge.realm != realm);
        self.entries.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const TRUNK: Credentials<'static> = Credentials {
        username: "trunk01",
        password: "s3cret",
    };
    const REG_URI: &str = "sip:sip.carrier.example";
    const INV_URI: &str = "sip:+15551234567@sip.carrier.example;user=phone";

    fn www(v: &str) -> Result<Challenge, DigestError> {
        Challenge::parse(ChallengeKind::Www, v)
    }

    fn get(uri: &str) -> DigestRequest<'_> {
        DigestRequest {
            method: "GET",
            uri,
            body: None,
        }
    }

    fn register() -> DigestRequest<'static> {
        DigestRequest {
            method: "REGISTER",
            uri: REG_URI,
            body: Some(b""),
        }
    }

    fn invite() -> DigestRequest<'static> {
        DigestRequest {
            method: "INVITE",
            uri: INV_URI,
            body: None,
        }
    }

    /// The `response` parameter of a credentials value.
    fn response_of(a: &Authorization) -> &str {
        let start = a.value.find("response=\"").unwrap() + 10;
        &a.value[start..start + a.value[start..].find('"').unwrap()]
    }

    fn sip_response(status: &str, headers: &str) -> Message {
        let text = format!(
            "SIP/2.0 {status}\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1\r\n\
             From: <sip:trunk01@sip.carrier.example>;tag=a\r\nTo: <sip:trunk01@sip.carrier.example>;tag=b\r\n\
             Call-ID: c1\r\nCSeq: 1 REGISTER\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text)).unwrap()
    }

    // RFC 2617 §3.5
    #[test]
    fn rfc2617_example() {
        let c = www(
            "Digest\n realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
                .replace('\n', "")
                .as_str(),
        )
        .unwrap();
        let creds = Credentials {
            username: "Mufasa",
            password: "Circle Of Life",
        };
        let a = c
            .respond(&creds, &get("/dir/index.html"), "0a4f113b", 1)
            .unwrap();
        assert_eq!(a.name, "Authorization");
        assert_eq!(
            a.value,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", qop=auth, nc=00000001"
        );
    }

    // RFC 7616 §3.9.1: two challenges, SHA-256 first (as the server prefers), then MD5.
    const RFC7616_SHA256: &str = "Digest\r\n realm=\"http-auth@example.org\",\
        \r\n qop=\"auth, auth-int\",\r\n algorithm=SHA-256,\
        \r\n nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\
        \r\n opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    const RFC7616_MD5: &str = "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
        algorithm=MD5, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
        opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const MUFASA: Credentials<'static> = Credentials {
        username: "Mufasa",
        password: "Circle of Life",
    };

    fn unfolded(v: &str) -> String {
        v.replace("\r\n", "")
    }

    #[test]
    fn rfc7616_md5() {
        let c = www(RFC7616_MD5).unwrap();
        let a = c
            .respond(&MUFASA, &get("/dir/index.html"), RFC7616_CNONCE, 1)
            .unwrap();
        assert_eq!(
            a.value,
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", uri=\"/dir/index.html\", \
             response=\"8ca523f5e9506fed4657c9700eebdbec\", algorithm=MD5, \
             cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\", qop=auth, nc=00000001"
        );
    }

    #[test]
    fn rfc7616_sha256() {
        let c = www(&unfolded(RFC7616_SHA256)).unwrap();
        assert_eq!(c.algorithm(), Algorithm::Sha256);
        let a = c
            .respond(&MUFASA, &get("/dir/index.html"), RFC7616_CNONCE, 1)
            .unwrap();
        assert_eq!(
            response_of(&a),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert!(a.value.contains(", algorithm=SHA-256, "));
    }

    #[test]
    fn pick_takes_the_topmost_supported() {
        let sha = unfolded(RFC7616_SHA256);
        let c = Challenge::pick(ChallengeKind::Www, [sha.as_str(), RFC7616_MD5], false).unwrap();
        assert_eq!(c.algorithm(), Algorithm::Sha256);
        // an unknown algorithm on top is skipped (RFC 8760 §2.4)
        let sha3 = "Digest realm=\"r\", nonce=\"n\", algorithm=SHA3-256, qop=\"auth\"";
        let c = Challenge::pick(ChallengeKind::Www, [sha3, RFC7616_MD5], false).unwrap();
        assert_eq!(c.algorithm(), Algorithm::Md5);
        assert_eq!(
            Challenge::pick(ChallengeKind::Www, [sha3], false),
            Err(DigestError::UnknownAlgorithm)
        );
        assert_eq!(
            Challenge::pick(ChallengeKind::Www, [], false),
            Err(DigestError::NoChallenge)
        );
    }

    #[test]
    fn sha512_256() {
        // the hash itself: FIPS 180-4 example "abc"
        assert_eq!(
            hex_hash(Algorithm::Sha512_256, &[b"abc"]),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
        // the RFC 7616 §3.9.2 inputs (UTF-8 username, sent as is: no userhash); the expected
        // response is computed independently (Python hashlib), since the RFC's printed one is
        // for its userhash variant and does not reproduce.
        let c = www(
            "Digest realm=\"api@example.org\", qop=\"auth\", algorithm=SHA-512-256, \
             nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\", \
             opaque=\"HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS\", charset=UTF-8, userhash=true",
        )
        .unwrap();
        let creds = Credentials {
            username: "J\u{e4}s\u{f8}n Doe",
            password: "Secret, or not?",
        };
        let a = c
            .respond(
                &creds,
                &get("/doe.json"),
                "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
                1,
            )
            .unwrap();
        assert_eq!(
            response_of(&a),
            "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
        );
        assert!(a
            .value
            .starts_with("Digest username=\"J\u{e4}s\u{f8}n Doe\", "));
    }

    #[test]
    fn sip_register_401() {
        let msg = sip_response(
            "401 Unauthorized",
            "WWW-Authenticate: Digest realm=\"sip.carrier.example\", nonce=\"4f9a1c2b3d\", qop=\"auth\"\r\n",
        );
        let cs = Challenge::from_response(&msg, true).unwrap();
        assert_eq!(cs.len(), 1);
        let c = cs.into_iter().next().unwrap();
        assert_eq!(c.kind(), ChallengeKind::Www);
        let a = c.respond(&TRUNK, &register(), "0123abcd", 1).unwrap();
        assert_eq!(
            a.to_string(),
            "Authorization: Digest username=\"trunk01\", realm=\"sip.carrier.example\", \
             nonce=\"4f9a1c2b3d\", uri=\"sip:sip.carrier.example\", \
             response=\"464c81758dc2e39c02a9c25e94bb6e57\", algorithm=MD5, cnonce=\"0123abcd\", \
             qop=auth, nc=00000001"
        );
    }

    #[test]
    fn sip_invite_407() {
        // a carrier offering SHA-256 (bare base64 nonce) above MD5, plus a Basic challenge to ignore
        let msg = sip_response(
            "407 Proxy Authentication Required",
            "Proxy-Authenticate: Basic realm=\"sip.carrier.example\"\r\n\
             proxy-authenticate: DIGEST REALM=\"sip.carrier.example\" , Nonce=bm9uY2UtMQ==,\
             ALGORITHM = sha-256 ,qop=auth,opaque=\"op1\"\r\n\
             Proxy-Authenticate: Digest realm=\"sip.carrier.example\", nonce=\"x\", algorithm=MD5\r\n\
             WWW-Authenticate: Digest realm=\"other\", nonce=\"y\"\r\n",
        );
        let cs = Challenge::from_response(&msg, false).unwrap();
        assert_eq!(cs.len(), 1);
        let c = cs.into_iter().next().unwrap();
        assert_eq!(c.kind(), ChallengeKind::Proxy);
        assert_eq!(c.nonce(), "bm9uY2UtMQ==");
        let a = c.respond(&TRUNK, &invite(), "c0ffee00", 1).unwrap();
        assert_eq!(a.name, "Proxy-Authorization");
        assert_eq!(
            a.value,
            "Digest username=\"trunk01\", realm=\"sip.carrier.example\", nonce=\"bm9uY2UtMQ==\", \
             uri=\"sip:+15551234567@sip.carrier.example;user=phone\", \
             response=\"40938a8ebb61ed0055ed9e2ab0c4d19f8fe7906e94a423dcc42a5fc758a4cf52\", \
             algorithm=SHA-256, cnonce=\"c0ffee00\", opaque=\"op1\", qop=auth, nc=00000001"
        );
    }

    #[test]
    fn from_response_without_challenge() {
        let ok = sip_response("200 OK", "");
        assert_eq!(
            Challenge::from_response(&ok, true),
            Err(DigestError::NoChallenge)
        );
        let bare = sip_response("401 Unauthorized", "");
        assert_eq!(
            Challenge::from_response(&bare, true),
            Err(DigestError::NoChallenge)
        );
        let basic = sip_response(
            "401 Unauthorized",
            "WWW-Authenticate: Basic realm=\"x\"\r\n",
        );
        assert_eq!(
            Challenge::from_response(&basic, true),
            Err(DigestError::NotDigest)
        );
    }

    #[test]
    fn from_response_answers_each_realm_once() {
        let msg = sip_response(
            "401 Unauthorized",
            "WWW-Authenticate: Digest realm=\"a\", nonce=\"1\", algorithm=SHA-256\r\n\
             WWW-Authenticate: Digest realm=\"a\", nonce=\"2\"\r\n\
             WWW-Authenticate: Digest realm=\"b\", nonce=\"3\"\r\n",
        );
        let cs = Challenge::from_response(&msg, false).unwrap();
        let got: Vec<_> = cs.iter().map(|c| (c.realm(), c.nonce())).collect();
        assert_eq!(got, [("a", "1"), ("b", "3")]);
    }

    #[test]
    fn rfc2069_without_qop() {
        let c = www("Digest realm=\"sip.carrier.example\", nonce=\"4f9a1c2b3d\"").unwrap();
        assert_eq!(c.qop(), None);
        let a = c.respond(&TRUNK, &register(), "ignored", 7).unwrap();
        assert_eq!(
            a.value,
            "Digest username=\"trunk01\", realm=\"sip.carrier.example\", nonce=\"4f9a1c2b3d\", \
             uri=\"sip:sip.carrier.example\", response=\"9fc59da14138274331335df74d3a043b\", \
             algorithm=MD5"
        );
    }

    #[test]
    fn session_algorithms() {
        for (alg, want) in [
            ("MD5-sess", "e9a107cc6665016cab32fe2575114ded"),
            (
                "SHA-256-sess",
                "b6f5f5d5034e585b13200ef2f1657af80056623e74c1ecf3ca353bb3c1f86500",
            ),
        ] {
            let c = www(&format!(
                "Digest realm=\"sip.carrier.example\", nonce=\"4f9a1c2b3d\", qop=auth, algorithm={alg}"
            ))
            .unwrap();
            assert!(c.algorithm().is_session());
            let a = c.respond(&TRUNK, &register(), "0123abcd", 1).unwrap();
            assert_eq!(response_of(&a), want, "{alg}");
            assert!(a.value.contains(&format!("algorithm={alg}, ")));
        }
        assert_eq!(
            www("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess"),
            Err(DigestError::SessionWithoutQop)
        );
    }

    #[test]
    fn auth_int() {
        let sdp: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
                           t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let c = www("Digest realm=\"sip.carrier.example\", nonce=\"4f9a1c2b3d\", qop=\"auth-int\"")
            .unwrap();
        assert_eq!(c.qop_for(false), Err(DigestError::AuthIntNeedsBody));
        let req = DigestRequest {
            method: "INVITE",
            uri: "sip:+15551234567@sip.carrier.example",
            body: Some(sdp),
        };
        let a = c.respond(&TRUNK, &req, "0123abcd", 1).unwrap();
        assert_eq!(response_of(&a), "79e9d17c54873fb29c99d6f76c92566e");
        assert!(a.value.ends_with(", qop=auth-int, nc=00000001"));
        let no_body = DigestRequest { body: None, ..req };
        assert_eq!(
            c.respond(&TRUNK, &no_body, "0123abcd", 1),
            Err(DigestError::AuthIntNeedsBody)
        );
        assert_eq!(
            Challenge::pick(
                ChallengeKind::Www,
                ["Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""],
                false
            ),
            Err(DigestError::AuthIntNeedsBody)
        );
        // auth is preferred when both are offered, even with a body
        let both = www("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int,auth\"").unwrap();
        assert_eq!(both.qop_for(true), Ok(Some(Qop::Auth)));
    }

    #[test]
    fn tolerant_forms() {
        let want = www("Digest realm=\"r\", nonce=\"n\", qop=\"auth\", stale=true").unwrap();
        for v in [
            "digest realm=r,nonce=n,qop=auth,stale=TRUE",
            "  DIGEST\tREALM = \"r\" ,  NONCE=\"n\"  ,QoP=\"auth\",Stale=\"True\"  ",
            "Digest , realm=\"r\",, nonce=\"n\", qop=\" auth , foo \", stale=true,",
            "Digest realm=\"r\", domain=\"sip:a sip:b\", nonce=\"n\", qop=auth, stale=true, x-ext=\"1,2\"",
            "Digest realm=\"\\r\", nonce=\"\\n\", qop=auth, stale=true",
        ] {
            assert_eq!(www(v).as_ref(), Ok(&want), "{v}");
        }
        let c = www("Digest realm=\"a \\\"quoted\\\" realm\", nonce=\"n\", stale=false").unwrap();
        assert_eq!(c.realm(), "a \"quoted\" realm");
        assert!(!c.stale());
        let a = c.respond(&TRUNK, &register(), "0123abcd", 1).unwrap();
        assert!(a.value.contains("realm=\"a \\\"quoted\\\" realm\""));
        assert_eq!(c.algorithm(), Algorithm::Md5);
        assert!(!www("Digest realm=r, nonce=n, stale=yes").unwrap().stale());
    }

    #[test]
    fn rejections() {
        let cases: &[(&str, DigestError)] = &[
            ("", DigestError::NotDigest),
            ("   ", DigestError::NotDigest),
            ("Basic realm=\"r\"", DigestError::NotDigest),
            ("Digestrealm=\"r\", nonce=\"n\"", DigestError::NotDigest),
            ("Digest", DigestError::MissingRealm),
            ("Digest nonce=\"n\"", DigestError::MissingRealm),
            ("Digest realm=\"r\"", DigestError::MissingNonce),
            ("Digest realm=\"r\", nonce=\"\"", DigestError::MissingNonce),
            (
                "Digest realm=\"r\", nonce=n, algorithm=SHA-1",
                DigestError::UnknownAlgorithm,
            ),
            (
                "Digest realm=\"r\", nonce=n, qop=\"auth-conf\"",
                DigestError::UnsupportedQop,
            ),
            (
                "Digest realm=\"r\", nonce=n, qop=\"\"",
                DigestError::UnsupportedQop,
            ),
            (
                "Digest realm=\"r\", realm=\"s\", nonce=n",
                DigestError::DuplicateParam,
            ),
            (
                "Digest realm=\"r\", nonce=n, NONCE=m",
                DigestError::DuplicateParam,
            ),
            ("Digest realm=\"r\" nonce=\"n\"", DigestError::Malformed),
            ("Digest realm=\"r, nonce=\"n\"", DigestError::Malformed),
            ("Digest realm=\"r\", nonce=\"n", DigestError::Malformed),
            ("Digest realm=\"r\", nonce=\"n\\", DigestError::Malformed),
            ("Digest realm=\"r\", nonce=\"n\\\"", DigestError::Malformed),
            ("Digest realm=\"r\", nonce", DigestError::Malformed),
            ("Digest realm=\"r\", nonce=", DigestError::Malformed),
            ("Digest realm=\"r\", nonce=,", DigestError::Malformed),
            ("Digest realm=\"r\", =n", DigestError::Malformed),
            ("Digest realm=\"r\", nonce=a\"b", DigestError::Malformed),
            ("Digest realm=\"r\nx\", nonce=n", DigestError::Malformed),
            ("Digest realm=\"r\u{0}\", nonce=n", DigestError::Malformed),
            ("Digest,realm=\"r\", nonce=n", DigestError::Malformed),
            ("Digest realm=r\u{e9}, nonce=n", DigestError::Malformed),
            ("Digest r\u{e9}alm=\"r\", nonce=n", DigestError::Malformed),
            ("Digest \u{e9}=\"r\", nonce=n", DigestError::Malformed),
            (
                "Digest realm=\"a\", nonce=\"1\", Digest realm=\"b\", nonce=\"2\"",
                DigestError::Malformed,
            ),
        ];
        for (v, e) in cases {
            assert_eq!(www(v), Err(*e), "{v:?}");
        }
    }

    #[test]
    fn hostile_sizes_and_bytes() {
        let big = format!("Digest realm=\"r\", nonce=\"{}\"", "a".repeat(10 * 1024));
        assert_eq!(www(&big), Err(DigestError::TooLong));
        let just = format!(
            "Digest realm=\"r\", nonce=\"{}\"",
            "a".repeat(MAX_CHALLENGE_LEN - 26)
        );
        assert_eq!(just.len(), MAX_CHALLENGE_LEN);
        assert_eq!(www(&just).unwrap().nonce().len(), MAX_CHALLENGE_LEN - 26);
        assert_eq!(www(&format!("{just} ")), Err(DigestError::TooLong));
        assert_eq!(www(&"\"".repeat(10_000)), Err(DigestError::TooLong));
        // non-ASCII inside quotes is kept and echoed as is
        let c = www("Digest realm=\"r\u{e9}alm \u{1f600}\", nonce=\"\u{4e2d}\"").unwrap();
        assert_eq!(c.realm(), "r\u{e9}alm \u{1f600}");
        let a = c.respond(&TRUNK, &register(), "cn", 1).unwrap();
        assert!(a
            .value
            .contains("realm=\"r\u{e9}alm \u{1f600}\", nonce=\"\u{4e2d}\""));
        // every prefix and every one-character deletion of a valid value: an answer, never a panic
        let v = "Digest realm=\"r\u{e9}\\\"x\", nonce=\"n\", opaque=o, qop=\"auth,auth-int\", \
                 algorithm=SHA-256-sess, stale=TRUE";
        www(v).unwrap();
        for (i, _) in v.char_indices() {
            let _ = www(&v[..i]);
            let mut cut = v.to_owned();
            cut.remove(i);
            let _ = www(&cut);
        }
    }

    #[test]
    fn input_that_cannot_be_written() {
        let c = www("Digest realm=\"r\", nonce=\"n\", qop=auth").unwrap();
        let bad_user = Credentials {
            username: "a\r\nVia: x",
            password: "p",
        };
        let bad_method = DigestRequest {
            method: "IN VITE",
            ..invite()
        };
        let bad_uri = DigestRequest {
            uri: "sip:a\nb",
            ..invite()
        };
        for (creds, req, cnonce) in [
            (&bad_user, &invite(), "cn"),
            (&TRUNK, &bad_method, "cn"),
            (
                &TRUNK,
                &DigestRequest {
                    method: "",
                    ..invite()
                },
                "cn",
            ),
            (&TRUNK, &bad_uri, "cn"),
            (&TRUNK, &invite(), ""),
            (&TRUNK, &invite(), "c\u{7f}"),
        ] {
            assert_eq!(
                c.respond(creds, req, cnonce, 1),
                Err(DigestError::InvalidInput)
            );
        }
        // quotes and backslashes are escaped, and hashed unescaped
        let c = www("Digest realm=\"r\u{e9}alm\", nonce=\"n1\", qop=auth").unwrap();
        let odd = Credentials {
            username: "a\"b\\c",
            password: "pw",
        };
        let req = DigestRequest {
            method: "REGISTER",
            uri: "sip:x",
            body: None,
        };
        let a = c.respond(&odd, &req, "cn", 1).unwrap();
        assert!(a.value.starts_with("Digest username=\"a\\\"b\\\\c\", "));
        assert_eq!(response_of(&a), "27c1fdd626ecbd519dc20401726ef0a7");
    }

    #[test]
    fn password_not_in_debug() {
        assert!(!format!("{TRUNK:?}").contains("s3cret"));
    }

    fn carrier(nonce: &str, stale: bool) -> Challenge {
        www(&format!(
            "Digest realm=\"sip.carrier.example\", nonce=\"{nonce}\", qop=\"auth\", stale={stale}"
        ))
        .unwrap()
    }

    #[test]
    fn cache_preauthorizes_with_increasing_nc() {
        let mut cache = AuthCache::new();
        assert!(cache.is_empty());
        assert_eq!(
            cache.authorize("sip.carrier.example", &TRUNK, &register(), "0123abcd"),
            Err(DigestError::NoChallenge)
        );
        assert!(cache.authorize_all(&TRUNK, &register(), "x").is_empty());

        assert_eq!(
            cache.handle_challenge(carrier("4f9a1c2b3d", false), Attempt::First),
            Verdict::Answer
        );
        assert_eq!(cache.nonce_count("sip.carrier.example"), Some(0));
        let a1 = cache
            .authorize("sip.carrier.example", &TRUNK, &register(), "0123abcd")
            .unwrap();
        assert_eq!(response_of(&a1), "464c81758dc2e39c02a9c25e94bb6e57");
        assert!(a1.value.ends_with("nc=00000001"));
        // the next REGISTER refresh, pre-authorized
        let a2 = cache.authorize_all(&TRUNK, &register(), "0123abcd");
        assert_eq!(a2.len(), 1);
        assert_eq!(response_of(&a2[0]), "7add820502e79f1151bf513f7133b851");
        assert!(a2[0].value.ends_with("nc=00000002"));
        // an INVITE through the same realm
        let a3 = cache
            .authorize("sip.carrier.example", &TRUNK, &invite(), "0123abcd")
            .unwrap();
        assert_eq!(a3.name, "Authorization");
        assert_eq!(response_of(&a3), "12afacc4ecbda745497560e613c7e975");
        assert!(a3.value.ends_with("nc=00000003"));
        assert_eq!(cache.nonce_count("sip.carrier.example"), Some(3));
        // a failed answer does not advance the count
        let int_only = www("Digest realm=\"int\", nonce=\"n\", qop=\"auth-int\"").unwrap();
        cache.handle_challenge(int_only, Attempt::First);
        assert_eq!(
            cache.authorize("int", &TRUNK, &invite(), "c"),
            Err(DigestError::AuthIntNeedsBody)
        );
        assert_eq!(cache.nonce_count("int"), Some(0));
        assert_eq!(cache.authorize_all(&TRUNK, &invite(), "c").len(), 1);
        assert_eq!(cache.nonce_count("sip.carrier.example"), Some(4));
    }

    #[test]
    fn cache_stale_retry() {
        let mut cache = AuthCache::new();
        cache.handle_challenge(carrier("4f9a1c2b3d", false), Attempt::First);
        cache
            .authorize("sip.carrier.example", &TRUNK, &register(), "0123abcd")
            .unwrap();
        cache
            .authorize("sip.carrier.example", &TRUNK, &register(), "0123abcd")
            .unwrap();
        // the answer to a challenge is itself challenged, stale=true: same credentials, new nonce
        assert_eq!(
            cache.handle_challenge(carrier("5a6b7c", true), Attempt::Retry),
            Verdict::AnswerStale
        );
        let a = cache
            .authorize("sip.carrier.example", &TRUNK, &register(), "0123abcd")
            .unwrap();
        assert_eq!(
            a.value,
            "Digest username=\"trunk01\", realm=\"sip.carrier.example\", nonce=\"5a6b7c\", \
             uri=\"sip:sip.carrier.example\", response=\"2f831fb8528137acfc46247bb7fc3f9c\", \
             algorithm=MD5, cnonce=\"0123abcd\", qop=auth, nc=00000001"
        );
        // a server calling its current nonce stale again: give up rather than loop
        assert_eq!(
            cache.handle_challenge(carrier("5a6b7c", true), Attempt::Retry),
            Verdict::GiveUp
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_gives_up_on_refused_credentials() {
        let mut cache = AuthCache::new();
        cache.handle_challenge(carrier("n1", false), Attempt::First);
        cache
            .authorize("sip.carrier.example", &TRUNK, &register(), "c")
            .unwrap();
        // a pre-authorized request challenged: the nonce may have expired, answer again
        assert_eq!(
            cache.handle_challenge(carrier("n2", false), Attempt::First),
            Verdict::Answer
        );
        assert_eq!(cache.nonce_count("sip.carrier.example"), Some(0));
        cache
            .authorize("sip.carrier.example", &TRUNK, &register(), "c")
            .unwrap();
        // the answer challenged without stale: refused
        assert_eq!(
            cache.handle_challenge(carrier("n3", false), Attempt::Retry),
            Verdict::GiveUp
        );
        assert_eq!(cache.nonce_count("sip.carrier.example"), None);
        assert!(cache.authorize_all(&TRUNK, &register(), "c").is_empty());
    }

    #[test]
    fn cache_is_bounded_and_keeps_the_recent() {
        let mut cache = AuthCache::new();
        for i in 0..MAX_REALMS {
            let c = www(&format!("Digest realm=\"r{i}\", nonce=\"n\", qop=auth")).unwrap();
            cache.handle_challenge(c, Attempt::First);
        }
        assert_eq!(cache.len(), MAX_REALMS);
        // use r0, so r1 is now the least recently used
        cache.authorize("r0", &TRUNK, &register(), "c").unwrap();
        let c = www("Digest realm=\"new\", nonce=\"n\", qop=auth").unwrap();
        cache.handle_challenge(c, Attempt::First);
        assert_eq!(cache.len(), MAX_REALMS);
        assert_eq!(cache.nonce_count("r1"), None);
        assert_eq!(cache.nonce_count("r0"), Some(1));
        assert_eq!(cache.nonce_count("new"), Some(0));
        // pre-authorization answers every realm, most recent first
        let all = cache.authorize_all(&TRUNK, &register(), "c");
        assert_eq!(all.len(), MAX_REALMS);
        assert!(all[0].value.contains("realm=\"new\""));
        assert!(all[1].value.contains("realm=\"r0\""));
        assert!(cache.forget("r0"));
        assert!(!cache.forget("r0"));
        assert_eq!(cache.len(), MAX_REALMS - 1);
        // realms compare case-sensitively
        assert_eq!(cache.nonce_count("NEW"), None);
    }

    #[test]
    fn cache_nonce_count_exhausted() {
        let mut cache = AuthCache::new();
        cache.handle_challenge(carrier("n", false), Attempt::First);
        cache.entries[0].nc = u32::MAX - 1;
        let a = cache
            .authorize("sip.carrier.example", &TRUNK, &register(), "c")
            .unwrap();
        assert!(a.value.ends_with("nc=ffffffff"));
        assert_eq!(
            cache.authorize("sip.carrier.example", &TRUNK, &register(), "c"),
            Err(DigestError::NonceCountExhausted)
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn kinds_and_names() {
        assert_eq!(ChallengeKind::from_status(401), Some(ChallengeKind::Www));
        assert_eq!(ChallengeKind::from_status(407), Some(ChallengeKind::Proxy));
        assert_eq!(ChallengeKind::from_status(403), None);
        assert_eq!(ChallengeKind::Www.challenge_header(), "WWW-Authenticate");
        assert_eq!(
            ChallengeKind::Proxy.challenge_header(),
            "Proxy-Authenticate"
        );
        assert_eq!(ChallengeKind::Www.credentials_header(), "Authorization");
        assert_eq!(
            ChallengeKind::Proxy.credentials_header(),
            "Proxy-Authorization"
        );
        for a in [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ] {
            assert_eq!(Algorithm::from_token(&a.as_str().to_uppercase()), Some(a));
        }
        let p = Challenge::parse(
            ChallengeKind::Proxy,
            "Digest realm=\"r\", nonce=\"n\", qop=auth",
        )
        .unwrap();
        assert_eq!(
            p.respond(&TRUNK, &invite(), "c", 1).unwrap().name,
            "Proxy-Authorization"
        );
    }
}
