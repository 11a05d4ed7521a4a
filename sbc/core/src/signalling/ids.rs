//! Identifiers the SBC generates: the Via branch (RFC 3261 §8.1.1.7), From/To tags (§19.3) and the
//! Call-ID of leg B (§8.1.1.4).
//!
//! Every id carries the [`WorkerId`] that owns the transaction or dialog, so a message that the kernel
//! hands to another worker is routed to its owner in O(1), without a table lookup
//! ([`IdGen::worker_of`]). The id is authenticated under a secret drawn by the driver at start, so
//! forged or altered ids are dropped before any state is touched. The MAC is AES-128 of the one block
//! `nonce | worker` under a key per [`IdKind`] (derived from the secret with HMAC-SHA-256), truncated
//! to 80 bits: on a fixed one-block input a block cipher is a pseudorandom function, hence a MAC, and
//! it costs one AES-NI encryption where an HMAC-SHA-256 cost two SHA-256 compressions (about 5,000
//! instructions; the SBC makes and checks several ids per call).
//!
//! Nothing in an id leaks inside information or links two ids together (topology hiding):
//! - the worker id is XORed with a pad derived from the id's nonce by a keyed permutation (the keys
//!   shared by all workers, derived from the secret), so ids of one worker share no visible constant;
//! - the nonce is a keyed bijection of a per-generator counter: unique for 2^64 ids, with no visible
//!   sequence;
//! - the MAC is domain-separated by [`IdKind`], so a tag cannot be replayed as a branch.
//!
//! Wire layout: 20 bytes `masked worker (2) | nonce (8) | MAC (10)`, written as 32 characters of
//! lowercase RFC 4648 base32 (`a-z`, `2-7`, no padding: 160 bits fill exactly 32 characters, so every
//! text has one decoding). These characters are in RFC 3261 `token` (Via branch, tag) and `word`
//! (Call-ID). A branch is prefixed with the magic cookie `z9hG4bK`.
//!
//! Decoding is strict (lowercase only, exact length): peers echo these ids verbatim, and the tables
//! that hold them compare bytes, so an altered spelling could not match anything anyway.
//!
//! Sans-IO: the secret and the seed are inputs; generating an id allocates nothing.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use ring::hmac;

/// RFC 3261 §8.1.1.7: every branch created by an RFC 3261 element starts with this cookie.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Bytes of MAC kept in an id (80 bits: a forgery succeeds with probability 2^-80 per attempt).
const MAC_LEN: usize = 10;
/// Bytes of nonce in an id.
const NONCE_LEN: usize = 8;
/// Bytes of raw id: masked worker, nonce, MAC.
const RAW_LEN: usize = 2 + NONCE_LEN + MAC_LEN;
/// Characters of the base32 body (5 bits per character).
const BODY_LEN: usize = RAW_LEN * 8 / 5;
/// Longest id text: a branch (cookie + body).
pub const MAX_ID_LEN: usize = MAGIC_COOKIE.len() + BODY_LEN;

/// RFC 4648 base32 alphabet, lowercase.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The worker (core) that owns a transaction or dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u16);

/// What an id is used as. The MAC is keyed per kind, so an id of one kind never validates as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A Via branch parameter (starts with [`MAGIC_COOKIE`]).
    Branch,
    /// A From or To tag.
    Tag,
    /// The Call-ID of leg B.
    CallId,
}

impl IdKind {
    /// Every kind, in a fixed order.
    pub const ALL: [Self; 3] = [Self::Branch, Self::Tag, Self::CallId];

    /// Label used to derive the kind's MAC key.
    fn label(self) -> &'static [u8] {
        match self {
            Self::Branch => b"sbc-core id mac branch",
            Self::Tag => b"sbc-core id mac tag",
            Self::CallId => b"sbc-core id mac call-id",
        }
    }
}

/// A generated id: inline, fixed-size, ASCII text ready to be written into a message.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id {
    len: u8,
    bytes: [u8; MAX_ID_LEN],
}

impl Id {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only cookie and alphabet characters are ever written, all ASCII.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
    /// The id as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl core::fmt::Debug for Id {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Display for Id {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Generates the ids of one worker and validates the ids of every worker sharing the same secret.
///
/// Each worker holds one, built from the process-wide secret; any of them can tell the owner of any id.
pub struct IdGen {
    worker: WorkerId,
    counter: u64,
    /// Round keys of the nonce permutation (per worker, derived from the secret).
    nonce_keys: [u64; 4],
    /// Round keys of the permutation that makes the pad hiding the worker id (shared by all workers:
    /// any of them unmasks any id). A permutation, not an HMAC: one HMAC per id is the MAC's, and the
    /// pad only has to look random to whoever does not hold the secret.
    pad_keys: [u64; 4],
    /// MAC key (expanded AES-128 key schedule) per kind, in [`IdKind::ALL`] order.
    mac_keys: [Aes128; 3],
}

impl core::fmt::Debug for IdGen {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Keys and counter stay out of logs.
        f.debug_struct("IdGen")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl IdGen {
    /// A generator for `worker`. `secret` is shared by all workers of the process (the driver draws it
    /// from the OS at start); `seed` only sets where the nonce counter starts (uniqueness comes from
    /// the counter, unpredictability from the secret).
    pub fn new(secret: [u8; 32], worker: WorkerId, seed: u64) -> Self {
        let master = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        let derive = |label: &[u8]| {
            let tag = hmac::sign(&master, label);
            let mut key = [0u8; 16];
            for (dst, src) in key.iter_mut().zip(tag.as_ref()) {
                *dst = *src;
            }
            Aes128::new(&key.into())
        };
        let mut nonce_label = [0u8; 24];
        let prefix: &[u8] = b"sbc-core id nonce ";
        for (dst, src) in nonce_label
            .iter_mut()
            .zip(prefix.iter().chain(worker.0.to_be_bytes().iter()))
        {
            *dst = *src;
        }
        let round_keys = |label: &[u8]| {
            let tag = hmac::sign(&master, label);
            let mut keys = [0u64; 4];
            for (key, chunk) in keys.iter_mut().zip(tag.as_ref().chunks_exact(8)) {
                let mut b = [0u8; 8];
                b.copy_from_slice(chunk);
                *key = u64::from_le_bytes(b);
            }
            keys
        };
        Self {
            worker,
            counter: seed,
            nonce_keys: round_keys(&nonce_label),
            pad_keys: round_keys(b"sbc-core id pad"),
            mac_keys: IdKind::ALL.map(|k| derive(k.label())),
        }
    }

    /// The worker this generator creates ids for.
    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    /// A new id of `kind` owned by this worker. No allocation.
    #[must_use]
    pub fn generate(&mut self, kind: IdKind) -> Id {
        self.counter = self.counter.wrapping_add(1);
        let nonce = permute(self.counter, &self.nonce_keys).to_be_bytes();
        let worker = self.worker.0.to_be_bytes();
        let pad = self.pad(&nonce);
        let mac = self.mac(kind, &nonce, worker);

        let mut raw = [0u8; RAW_LEN];
        let masked = [worker[0] ^ pad[0], worker[1] ^ pad[1]];
        for (dst, src) in raw
            .iter_mut()
            .zip(masked.iter().chain(nonce.iter()).chain(mac.iter()))
        {
            *dst = *src;
        }

        let mut id = Id {
            len: 0,
            bytes: [0u8; MAX_ID_LEN],
        };
        let prefix: &[u8] = match kind {
            IdKind::Branch => MAGIC_COOKIE.as_bytes(),
            IdKind::Tag | IdKind::CallId => b"",
        };
        let (head, body) = id.bytes.split_at_mut(prefix.len());
        head.copy_from_slice(prefix);
        encode(&raw, body);
        // prefix + body is at most MAX_ID_LEN (39), well within u8
        id.len = (prefix.len() + BODY_LEN) as u8;
        id
    }

    /// The worker that owns `text`, an id of `kind` received in a message; `None` when the id was not
    /// made by a generator sharing this secret, was altered, or is of another kind (drop the message
    /// or treat it as not ours). O(1), no table lookup.
    pub fn worker_of(&self, kind: IdKind, text: &str) -> Option<WorkerId> {
        let (raw, worker) = self.unmask(kind, text)?;
        self.authentic(kind, &raw, worker).then_some(worker)
    }

    /// The other worker, among the process's `workers` (ids `0..workers`), that owns `text`, an id
    /// of `kind` received in a message: the worker a message naming it is handed over to. `None`
    /// when this worker owns it, and when the id is not an authentic id of this secret naming a
    /// worker in range (the message is then handled where it arrived, as any message that names no
    /// dialog of ours).
    ///
    /// Cheaper than [`Self::worker_of`] on the common paths: the worker field is unmasked first
    /// (one keyed permutation), and the MAC is checked only when it names another worker in range;
    /// an id of this worker, or junk, costs no MAC.
    pub fn other_owner(&self, kind: IdKind, text: &str, workers: u16) -> Option<WorkerId> {
        let (raw, worker) = self.unmask(kind, text)?;
        if worker == self.worker || worker.0 >= workers {
            return None;
        }
        self.authentic(kind, &raw, worker).then_some(worker)
    }

    /// The raw bytes of `text` and the worker field they claim, not yet authenticated.
    fn unmask(&self, kind: IdKind, text: &str) -> Option<([u8; RAW_LEN], WorkerId)> {
        let body = match kind {
            IdKind::Branch => text.strip_prefix(MAGIC_COOKIE)?,
            IdKind::Tag | IdKind::CallId => text,
        };
        let raw = decode(body.as_bytes())?;
        let (masked, rest) = raw.split_at(2);
        let nonce = rest.get(..NONCE_LEN)?;
        let pad = self.pad(nonce);
        let mut worker = [0u8; 2];
        for ((w, m), p) in worker.iter_mut().zip(masked).zip(pad.iter()) {
            *w = m ^ p;
        }
        Some((raw, WorkerId(u16::from_be_bytes(worker))))
    }

    /// Whether the MAC of `raw` (an id of `kind` claiming `worker`) is the one this secret makes.
    fn authentic(&self, kind: IdKind, raw: &[u8; RAW_LEN], worker: WorkerId) -> bool {
        let rest = raw.get(2..).unwrap_or_default();
        let (nonce, mac) = rest.split_at(NONCE_LEN.min(rest.len()));
        let expected = self.mac(kind, nonce, worker.0.to_be_bytes());
        ct_eq(&expected, mac)
    }

    /// Two bytes of keyed pad for the worker field, from the nonce.
    fn pad(&self, nonce: &[u8]) -> [u8; 2] {
        let mut b = [0u8; 8];
        for (dst, src) in b.iter_mut().zip(nonce) {
            *dst = *src;
        }
        let x = permute(u64::from_be_bytes(b), &self.pad_keys).to_be_bytes();
        [x[0], x[1]]
    }

    /// The truncated MAC of (nonce, worker) under the key of `kind`: AES-128 of the block
    /// `nonce (8) | worker (2) | zeros (6)`, its first [`MAC_LEN`] bytes.
    fn mac(&self, kind: IdKind, nonce: &[u8], worker: [u8; 2]) -> [u8; MAC_LEN] {
        let key = match kind {
            IdKind::Branch => &self.mac_keys[0],
            IdKind::Tag => &self.mac_keys[1],
            IdKind::CallId => &self.mac_keys[2],
        };
        let mut block = [0u8; 16];
        for (dst, src) in block
            .iter_mut()
            .zip(nonce.iter().take(NONCE_LEN).chain(worker.iter()))
        {
            *dst = *src;
        }
        let mut block = block.into();
        key.encrypt_block(&mut block);
        let mut mac = [0u8; MAC_LEN];
        for (dst, src) in mac.iter_mut().zip(block.iter()) {
            *dst = *src;
        }
        mac
    }
}

/// A keyed bijection on u64: key whitening around rounds of the splitmix64 finalizer. Each step (XOR
/// with a constant, xorshift, multiplication by an odd constant) is invertible, so distinct counters
/// always give distinct nonces.
fn permute(counter: u64, keys: &[u64; 4]) -> u64 {
    let [k0, k1, k2, k3] = *keys;
    let mut x = counter ^ k0;
    for k in [k1, k2, k3] {
        x ^= x >> 30;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        x ^= k;
    }
    x
}

/// Constant-time equality of two byte strings of equal length (a MAC check must not leak how many
/// leading bytes matched).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Base32 (lowercase, no padding) of `raw` into `out`, which holds at least [`BODY_LEN`] bytes.
fn encode(raw: &[u8; RAW_LEN], out: &mut [u8]) {
    for (group, chars) in raw.chunks_exact(5).zip(out.chunks_exact_mut(8)) {
        let n = group.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
        for (i, c) in chars.iter_mut().enumerate() {
            let shift = 35 - 5 * i;
            let v = ((n >> shift) & 31) as usize;
            *c = ALPHABET.get(v).copied().unwrap_or(b'a');
        }
    }
}

/// The 5-bit value of one base32 character; `None` outside the lowercase alphabet.
fn value(c: u8) -> Option<u64> {
    match c {
        b'a'..=b'z' => Some(u64::from(c - b'a')),
        b'2'..=b'7' => Some(u64::from(c - b'2') + 26),
        _ => None,
    }
}

/// The raw bytes of a base32 body of exactly [`BODY_LEN`] characters.
fn decode(text: &[u8]) -> Option<[u8; RAW_LEN]> {
    if text.len() != BODY_LEN {
        return None;
    }
    let mut raw = [0u8; RAW_LEN];
    for (chars, group) in text.chunks_exact(8).zip(raw.chunks_exact_mut(5)) {
        let mut n = 0u64;
        for c in chars {
            n = (n << 5) | value(*c)?;
        }
        for (i, b) in group.iter_mut().enumerate() {
            *b = (n >> (32 - 8 * i)) as u8;
        }
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const SECRET: [u8; 32] = [7; 32];

    fn secret(b: u8) -> [u8; 32] {
        let mut s = SECRET;
        s[31] = b;
        s
    }

    #[test]
    fn round_trip_every_worker_and_kind() {
        let checker = IdGen::new(SECRET, WorkerId(999), 1);
        for w in 0..64u16 {
            let mut g = IdGen::new(SECRET, WorkerId(w), u64::from(w) * 1000);
            for kind in IdKind::ALL {
                for _ in 0..4 {
                    let id = g.generate(kind);
                    assert_eq!(checker.worker_of(kind, id.as_str()), Some(WorkerId(w)));
                    assert_eq!(g.worker_of(kind, id.as_str()), Some(WorkerId(w)));
                }
            }
        }
        let mut g = IdGen::new(SECRET, WorkerId(u16::MAX), 0);
        let id = g.generate(IdKind::Tag);
        assert_eq!(
            checker.worker_of(IdKind::Tag, id.as_str()),
            Some(WorkerId(u16::MAX))
        );
    }

    #[test]
    fn shape_of_each_kind() {
        let mut g = IdGen::new(SECRET, WorkerId(3), 0);
        let b = g.generate(IdKind::Branch);
        assert!(b.as_str().starts_with(MAGIC_COOKIE));
        assert_eq!(b.as_str().len(), MAX_ID_LEN);
        for kind in [IdKind::Tag, IdKind::CallId] {
            let id = g.generate(kind);
            assert_eq!(id.as_str().len(), BODY_LEN);
            assert!(id.as_bytes().iter().all(|c| ALPHABET.contains(c)));
        }
    }

    #[test]
    fn kinds_are_not_interchangeable() {
        let mut g = IdGen::new(SECRET, WorkerId(5), 0);
        for kind in IdKind::ALL {
            let id = g.generate(kind);
            let body = id.as_str().trim_start_matches(MAGIC_COOKIE);
            let as_branch = format!("{MAGIC_COOKIE}{body}");
            for other in IdKind::ALL {
                if other == kind {
                    continue;
                }
                let text = if other == IdKind::Branch {
                    as_branch.as_str()
                } else {
                    body
                };
                assert_eq!(g.worker_of(other, text), None, "{kind:?} as {other:?}");
            }
        }
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let mut g = IdGen::new(SECRET, WorkerId(17), 42);
        for kind in IdKind::ALL {
            let id = g.generate(kind);
            let original = id.as_bytes().to_vec();
            let mut checked = 0;
            for pos in 0..original.len() {
                for c in 0x21u8..0x7f {
                    if c == original[pos] {
                        continue;
                    }
                    let mut altered = original.clone();
                    altered[pos] = c;
                    let text = std::str::from_utf8(&altered).unwrap();
                    assert_eq!(g.worker_of(kind, text), None, "{text}");
                    checked += 1;
                }
            }
            assert_eq!(checked, original.len() * 93);
        }
    }

    #[test]
    fn truncated_extended_and_junk_are_rejected() {
        let mut g = IdGen::new(SECRET, WorkerId(1), 0);
        let id = g.generate(IdKind::Branch);
        let s = id.as_str();
        for end in 0..s.len() {
            assert_eq!(g.worker_of(IdKind::Branch, &s[..end]), None);
        }
        assert_eq!(g.worker_of(IdKind::Branch, &format!("{s}a")), None);
        assert_eq!(g.worker_of(IdKind::Branch, &s.to_ascii_uppercase()), None);
        assert_eq!(g.worker_of(IdKind::Tag, ""), None);
        assert_eq!(g.worker_of(IdKind::Tag, "é"), None);
        assert_eq!(g.worker_of(IdKind::Tag, &"a".repeat(BODY_LEN)), None);
        assert_eq!(g.worker_of(IdKind::Tag, &"é".repeat(BODY_LEN / 2)), None);
    }

    #[test]
    fn other_owner_names_only_another_worker_of_this_process() {
        let workers = 4;
        let me = IdGen::new(SECRET, WorkerId(1), 0);
        for kind in IdKind::ALL {
            // This worker's own ids: handled here, without a hand-over.
            let mut own = IdGen::new(SECRET, WorkerId(1), 77);
            for _ in 0..50 {
                let id = own.generate(kind);
                assert_eq!(me.other_owner(kind, id.as_str(), workers), None);
            }
            // Another worker's: handed to it.
            for w in [0u16, 2, 3] {
                let mut g = IdGen::new(SECRET, WorkerId(w), u64::from(w));
                for _ in 0..50 {
                    let id = g.generate(kind);
                    assert_eq!(
                        me.other_owner(kind, id.as_str(), workers),
                        Some(WorkerId(w))
                    );
                }
            }
            // A worker this process does not have (another configuration's id): handled here.
            let mut far = IdGen::new(SECRET, WorkerId(9), 0);
            let id = far.generate(kind);
            assert_eq!(me.worker_of(kind, id.as_str()), Some(WorkerId(9)));
            assert_eq!(me.other_owner(kind, id.as_str(), workers), None);
            // Another process's id (another secret), and ids altered anywhere: handled here.
            let mut stranger = IdGen::new(secret(3), WorkerId(2), 0);
            for _ in 0..50 {
                let id = stranger.generate(kind);
                assert_eq!(me.other_owner(kind, id.as_str(), workers), None);
            }
            let mut g = IdGen::new(SECRET, WorkerId(2), 5);
            let original = g.generate(kind).as_bytes().to_vec();
            for pos in 0..original.len() {
                for c in [b'a', b'q', b'7', b'Z'] {
                    if c == original[pos] {
                        continue;
                    }
                    let mut altered = original.clone();
                    altered[pos] = c;
                    let text = std::str::from_utf8(&altered).unwrap();
                    assert_eq!(me.other_owner(kind, text, workers), None, "{text}");
                }
            }
        }
        // Malformed text, and a kind the id was not made as.
        for junk in ["", "z9hG4bK", "z9hG4bK776asdhds", "abc", "é", "1234567890"] {
            for kind in IdKind::ALL {
                assert_eq!(me.other_owner(kind, junk, workers), None, "{junk}");
            }
        }
        let mut g = IdGen::new(SECRET, WorkerId(2), 0);
        let tag = g.generate(IdKind::Tag);
        assert_eq!(me.other_owner(IdKind::CallId, tag.as_str(), workers), None);
        // One worker: nothing is ever handed over.
        assert_eq!(me.other_owner(IdKind::Tag, tag.as_str(), 1), None);
    }

    #[test]
    fn other_secret_rejects() {
        let mut a = IdGen::new(secret(1), WorkerId(4), 0);
        let mut b = IdGen::new(secret(2), WorkerId(4), 0);
        for kind in IdKind::ALL {
            for _ in 0..100 {
                let ia = a.generate(kind);
                let ib = b.generate(kind);
                assert_ne!(ia, ib);
                assert_eq!(b.worker_of(kind, ia.as_str()), None);
                assert_eq!(a.worker_of(kind, ib.as_str()), None);
            }
        }
    }

    #[test]
    fn unique_over_a_million() {
        let mut g = IdGen::new(SECRET, WorkerId(9), u64::MAX - 500_000);
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            assert!(seen.insert(g.generate(IdKind::Tag)));
        }
    }

    #[test]
    fn same_seed_on_two_workers_gives_unrelated_ids() {
        let mut a = IdGen::new(SECRET, WorkerId(0), 0);
        let mut b = IdGen::new(SECRET, WorkerId(1), 0);
        for _ in 0..1000 {
            let (ia, ib) = (a.generate(IdKind::Tag), b.generate(IdKind::Tag));
            // no shared nonce: the bodies differ beyond the worker field
            assert_ne!(ia.as_bytes()[4..], ib.as_bytes()[4..]);
        }
    }

    #[test]
    fn worker_field_has_no_visible_constant() {
        // The first 16 bits (the masked worker) of ids from one worker take many values.
        let mut g = IdGen::new(SECRET, WorkerId(2), 0);
        let firsts: HashSet<[u8; 3]> = (0..1000)
            .map(|_| {
                let id = g.generate(IdKind::CallId);
                let b = id.as_bytes();
                [b[0], b[1], b[2]]
            })
            .collect();
        assert!(firsts.len() > 900, "{}", firsts.len());
        // and every single character position varies
        let ids: Vec<Id> = (0..200).map(|_| g.generate(IdKind::CallId)).collect();
        for pos in 0..BODY_LEN {
            let distinct: HashSet<u8> = ids.iter().map(|id| id.as_bytes()[pos]).collect();
            assert!(distinct.len() > 10, "position {pos}");
        }
    }

    #[test]
    fn base32_round_trip() {
        let mut raw = [0u8; RAW_LEN];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let mut out = [0u8; BODY_LEN];
        encode(&raw, &mut out);
        assert_eq!(decode(&out), Some(raw));
        let zeros = [0u8; RAW_LEN];
        encode(&zeros, &mut out);
        assert_eq!(&out, &[b'a'; BODY_LEN]);
        encode(&[0xff; RAW_LEN], &mut out);
        assert_eq!(&out, &[b'7'; BODY_LEN]);
    }

    #[test]
    fn accepted_by_the_sip_parser() {
        let mut g = IdGen::new(SECRET, WorkerId(12), 77);
        for _ in 0..50 {
            let branch = g.generate(IdKind::Branch);
            let from_tag = g.generate(IdKind::Tag);
            let to_tag = g.generate(IdKind::Tag);
            let call_id = g.generate(IdKind::CallId);
            let text = format!(
                "BYE sip:bob@192.0.2.20 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:alice@example.com>;tag={from_tag}\r\n\
                 To: \"Bob\" <sip:bob@example.com>;tag={to_tag}\r\n\
                 Call-ID: {call_id}\r\n\
                 CSeq: 2 BYE\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            let msg = sbc_sip::Message::parse(bytes::Bytes::from(text)).unwrap();
            assert_eq!(msg.top_via().branch(), Some(branch.as_str()));
            assert_eq!(msg.from_tag(), Some(from_tag.as_str()));
            assert_eq!(msg.to_tag(), Some(to_tag.as_str()));
            assert_eq!(msg.call_id(), call_id.as_str());
            let w = Some(WorkerId(12));
            assert_eq!(
                g.worker_of(IdKind::Branch, msg.top_via().branch().unwrap()),
                w
            );
            assert_eq!(g.worker_of(IdKind::Tag, msg.to_tag().unwrap()), w);
            assert_eq!(g.worker_of(IdKind::CallId, msg.call_id()), w);
        }
    }

    #[test]
    fn debug_hides_keys() {
        let g = IdGen::new(SECRET, WorkerId(3), 0);
        let s = format!("{g:?}");
        assert!(s.contains("WorkerId(3)") && !s.contains("key"), "{s}");
    }

    /// Throughput: `cargo test -p sbc-core --release -- --ignored --nocapture ids_throughput`.
    #[test]
    #[ignore]
    #[allow(clippy::disallowed_methods)] // a measurement needs the wall clock
    fn ids_throughput() {
        let mut g = IdGen::new(SECRET, WorkerId(1), 0);
        let n = 1_000_000u32;
        let start = std::time::Instant::now();
        let mut acc = 0u8;
        for _ in 0..n {
            acc ^= g.generate(IdKind::Tag).as_bytes()[5];
        }
        let gen_ns = start.elapsed().as_nanos() / u128::from(n);
        let id = g.generate(IdKind::Branch);
        let start = std::time::Instant::now();
        let mut ok = 0u32;
        for _ in 0..n {
            ok += u32::from(
                g.worker_of(IdKind::Branch, std::hint::black_box(id.as_str()))
                    .is_some(),
            );
        }
        let check_ns = start.elapsed().as_nanos() / u128::from(n);
        assert_eq!(ok, n);
        println!("generate: {gen_ns} ns/id, worker_of: {check_ns} ns/id ({acc})");
    }
}
