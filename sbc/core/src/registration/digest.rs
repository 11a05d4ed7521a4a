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
mod tests;
