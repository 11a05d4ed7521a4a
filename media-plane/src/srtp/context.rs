//! [`SrtpContext`]: the keys and per-SSRC state of one direction, and the four in-place
//! transforms (protect and unprotect, SRTP and SRTCP).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};

use super::backend::{Aes, CmBackend, RustCrypto};
use super::kdf;
use super::replay::{ReplayWindow, RtpIndex};
use super::{KeyLengthError, Reject, Suite};
use crate::rtp::RtpHeader;

/// SSRCs whose state a context keeps at once (a stream normally has one; a new SSRC after a
/// re-INVITE or a switch of source takes the slot used least recently).
pub const MAX_SSRCS: usize = 4;

/// Highest SRTCP index (31 bits).
const SRTCP_INDEX_MASK: u32 = 0x7fff_ffff;
/// The E flag of the SRTCP index word: the compound is encrypted.
const SRTCP_E: u32 = 0x8000_0000;
/// The fixed part of every RTCP packet (RFC 3550 §6.4.1): left in clear by SRTCP.
const RTCP_HEADER: usize = 8;
const GCM_TAG: usize = 16;

// Unboxed on purpose: one per context, read per packet.
#[allow(clippy::large_enum_variant)]
enum Cipher<B> {
    Cm(B),
    Gcm(LessSafeKey),
}

/// The session keys of one protocol (SRTP or SRTCP) in one direction.
pub(super) struct Keys<B> {
    cipher: Cipher<B>,
    /// Session salt: 14 bytes for AES-CM, the first 12 for GCM.
    salt: [u8; 14],
}

impl<B: CmBackend> Keys<B> {
    fn derive(suite: Suite, master: &[u8], labels: [u8; 3]) -> Option<Self> {
        let (key, salt) = master.split_at_checked(suite.key_len())?;
        let prf = Aes::new(key)?;
        let [enc_label, auth_label, salt_label] = labels;
        let mut enc = [0u8; 32];
        let enc = enc.get_mut(..suite.key_len())?;
        kdf::derive(&prf, salt, enc_label, enc);
        let mut session_salt = [0u8; 14];
        kdf::derive(
            &prf,
            salt,
            salt_label,
            session_salt.get_mut(..suite.salt_len())?,
        );
        let mut auth = [0u8; 20];
        if !suite.is_aead() {
            kdf::derive(&prf, salt, auth_label, &mut auth);
        }
        Self::from_session(suite, enc, &auth, &session_salt)
    }

    fn from_session(suite: Suite, enc: &[u8], auth: &[u8], salt: &[u8]) -> Option<Self> {
        let cipher = if suite.is_aead() {
            let alg = if suite.key_len() == 16 {
                &AES_128_GCM
            } else {
                &AES_256_GCM
            };
            Cipher::Gcm(LessSafeKey::new(UnboundKey::new(alg, enc).ok()?))
        } else {
            Cipher::Cm(B::new(enc, auth)?)
        };
        let mut s = [0u8; 14];
        for (d, v) in s.iter_mut().zip(salt.iter().take(suite.salt_len())) {
            *d = *v;
        }
        Some(Self { cipher, salt: s })
    }

    /// The AES-CM counter block (RFC 3711 §4.1.1): salt * 2^16 XOR SSRC * 2^64 XOR index * 2^16.
    pub(super) fn cm_iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        for (d, s) in iv.iter_mut().zip(self.salt) {
            *d = s;
        }
        xor_into(&mut iv[4..8], &ssrc.to_be_bytes());
        xor_into(&mut iv[8..14], &index.to_be_bytes()[2..8]);
        iv
    }

    /// The GCM nonce (RFC 7714 §8.1 and §9.1): `00 00 || SSRC || word || low` XOR salt, where
    /// SRTP puts ROC (4) and SEQ (2) after the SSRC, and SRTCP 00 00 and its index (4).
    fn gcm_nonce(&self, ssrc: u32, tail: [u8; 6]) -> Nonce {
        let mut n = [0u8; 12];
        n[2..6].copy_from_slice(&ssrc.to_be_bytes());
        n[6..12].copy_from_slice(&tail);
        for (d, s) in n.iter_mut().zip(self.salt) {
            *d ^= s;
        }
        Nonce::assume_unique_for_key(n)
    }
}

fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// Compare two tags in time independent of where they differ.
fn tags_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a context remembers of one SSRC.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SsrcState {
    ssrc: u32,
    rtp: RtpIndex,
    rtp_replay: ReplayWindow,
    /// Receiving: the SRTCP replay list. Sending: unused.
    rtcp_replay: ReplayWindow,
    /// Sending: the next SRTCP index.
    rtcp_next: u32,
    /// Tick of the last use, to pick the slot to reuse.
    used: u64,
}

/// The SRTP and SRTCP keys of one direction and the state of up to [`MAX_SSRCS`] SSRCs. Use one
/// context per direction: a context that protects and unprotects with the same key would see its
/// own packets as replays.
///
/// Every transform works in place on `buf[..len]` and returns the new length; protecting writes
/// the tag after the packet, so `buf` must extend [`Suite::rtp_overhead`] (or
/// [`Suite::rtcp_overhead`]) bytes past `len`.
pub struct SrtpContext<B: CmBackend = RustCrypto> {
    suite: Suite,
    pub(super) rtp: Keys<B>,
    rtcp: Keys<B>,
    pub(super) ssrcs: [Option<SsrcState>; MAX_SSRCS],
    tick: u64,
    /// Packets the key may still protect or accept (SDES `|lifetime`).
    budget: u64,
}

impl<B: CmBackend> std::fmt::Debug for SrtpContext<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<B: CmBackend> SrtpContext<B> {
    /// A context for `suite` from its master key and salt (`key || salt`, as SDES carries them),
    /// with the session keys derived at once (key derivation rate 0).
    pub fn new(suite: Suite, master: &[u8]) -> Result<Self, KeyLengthError> {
        let err = KeyLengthError {
            expected: suite.master_len(),
            got: master.len(),
        };
        if master.len() != suite.master_len() {
            return Err(err);
        }
        let rtp = Keys::derive(
            suite,
            master,
            [kdf::RTP_ENCRYPTION, kdf::RTP_AUTH, kdf::RTP_SALT],
        );
        let rtcp = Keys::derive(
            suite,
            master,
            [kdf::RTCP_ENCRYPTION, kdf::RTCP_AUTH, kdf::RTCP_SALT],
        );
        match (rtp, rtcp) {
            (Some(rtp), Some(rtcp)) => Ok(Self::with_keys(suite, rtp, rtcp)),
            _ => Err(err),
        }
    }

    /// A context from session keys given directly (encryption key, authentication key, salt),
    /// the same for SRTP and SRTCP: for the published test vectors, which start there.
    pub fn from_session_keys(suite: Suite, enc: &[u8], auth: &[u8], salt: &[u8]) -> Option<Self> {
        if enc.len() != suite.key_len() || salt.len() != suite.salt_len() {
            return None;
        }
        let rtp = Keys::from_session(suite, enc, auth, salt)?;
        let rtcp = Keys::from_session(suite, enc, auth, salt)?;
        Some(Self::with_keys(suite, rtp, rtcp))
    }

    fn with_keys(suite: Suite, rtp: Keys<B>, rtcp: Keys<B>) -> Self {
        Self {
            suite,
            rtp,
            rtcp,
            ssrcs: [None; MAX_SSRCS],
            tick: 0,
            // RFC 3711 §9.2: at most 2^48 SRTP packets under one master key.
            budget: 1 << 48,
        }
    }

    /// Limit the packets this key protects or accepts (the `|lifetime` of SDES, RFC 4568
    /// §6.1); past it every packet is refused as [`Reject::KeyExpired`].
    pub fn set_lifetime(&mut self, packets: u64) {
        self.budget = packets.min(1 << 48);
    }

    /// The suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    fn spend(&mut self) -> Result<(), Reject> {
        self.budget = self.budget.checked_sub(1).ok_or(Reject::KeyExpired)?;
        Ok(())
    }

    /// The state of `ssrc`: its slot, or a fresh state and the slot it would take.
    fn state(&mut self, ssrc: u32) -> (usize, SsrcState) {
        self.tick = self.tick.wrapping_add(1);
        let mut victim = 0;
        let mut oldest = u64::MAX;
        for (i, slot) in self.ssrcs.iter().enumerate() {
            match slot {
                Some(s) if s.ssrc == ssrc => return (i, *s),
                Some(s) if s.used < oldest => {
                    oldest = s.used;
                    victim = i;
                }
                Some(_) => {}
                None if oldest > 0 => {
                    oldest = 0;
                    victim = i;
                }
                None => {}
            }
        }
        (
            victim,
            SsrcState {
                ssrc,
                ..SsrcState::default()
            },
        )
    }

    fn store(&mut self, slot: usize, mut state: SsrcState) {
        state.used = self.tick;
        if let Some(s) = self.ssrcs.get_mut(slot) {
            *s = Some(state);
        }
    }

    /// Protect the RTP packet `buf[..len]`: encrypt its payload and append the tag. Returns the
    /// SRTP length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Reject> {
        let (hl, seq, ssrc) = rtp_fields(buf.get(..len).ok_or(Reject::Malformed)?)?;
        let out = len + self.suite.rtp_overhead();
        if buf.len() < out {
            return Err(Reject::NoRoom);
        }
        self.spend()?;
        let (slot, mut st) = self.state(ssrc);
        let (v, index) = st.rtp.estimate(seq);
        st.rtp.update(seq, v);
        self.store(slot, st);
        let (packet, tail) = buf.split_at_mut(len);
        let tail = tail.get_mut(..out - len).ok_or(Reject::NoRoom)?;
        match &self.rtp.cipher {
            Cipher::Cm(b) => {
                let iv = self.rtp.cm_iv(ssrc, index);
                b.apply_keystream(&iv, packet.get_mut(hl..).ok_or(Reject::Malformed)?);
                let mut tag = [0u8; 20];
                b.hmac_sha1(packet, &v.to_be_bytes(), &mut tag);
                for (d, t) in tail.iter_mut().zip(tag) {
                    *d = t;
                }
            }
            Cipher::Gcm(key) => {
                let nonce = self.rtp.gcm_nonce(ssrc, rtp_tail(v, seq));
                let (header, payload) = packet.split_at_mut(hl);
                let tag = key
                    .seal_in_place_separate_tag(nonce, Aad::from(&*header), payload)
                    .map_err(|_| Reject::NoRoom)?;
                for (d, t) in tail.iter_mut().zip(tag.as_ref()) {
                    *d = *t;
                }
            }
        }
        Ok(out)
    }

    /// Unprotect the SRTP packet `buf[..len]`: check its index against the replay window and its
    /// tag, decrypt the payload. Returns the RTP length. A refused packet leaves the state as it
    /// was.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Reject> {
        let body = len
            .checked_sub(self.suite.rtp_overhead())
            .ok_or(Reject::Malformed)?;
        let (hl, seq, ssrc) = rtp_fields(buf.get(..body).ok_or(Reject::Malformed)?)?;
        if self.budget == 0 {
            return Err(Reject::KeyExpired);
        }
        let (slot, mut st) = self.state(ssrc);
        let (v, index) = st.rtp.estimate(seq);
        if !st.rtp_replay.check(index) {
            return Err(Reject::Replayed);
        }
        let packet = buf.get_mut(..len).ok_or(Reject::Malformed)?;
        match &self.rtp.cipher {
            Cipher::Cm(b) => {
                let (data, tag) = packet.split_at_mut(body);
                let mut mac = [0u8; 20];
                b.hmac_sha1(data, &v.to_be_bytes(), &mut mac);
                let want = mac.get(..tag.len()).ok_or(Reject::Malformed)?;
                if !tags_equal(want, tag) {
                    return Err(Reject::AuthFailed);
                }
                let iv = self.rtp.cm_iv(ssrc, index);
                b.apply_keystream(&iv, data.get_mut(hl..).ok_or(Reject::Malformed)?);
            }
            Cipher::Gcm(key) => {
                let nonce = self.rtp.gcm_nonce(ssrc, rtp_tail(v, seq));
                let (header, sealed) = packet.split_at_mut(hl);
                key.open_in_place(nonce, Aad::from(&*header), sealed)
                    .map_err(|_| Reject::AuthFailed)?;
            }
        }
        self.spend()?;
        st.rtp.update(seq, v);
        st.rtp_replay.accept(index);
        self.store(slot, st);
        Ok(body)
    }

    /// Protect the RTCP compound `buf[..len]`: encrypt all but its first 8 bytes, append the E
    /// flag and SRTCP index, and the tag. Returns the SRTCP length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Reject> {
        let ssrc = rtcp_ssrc(buf.get(..len).ok_or(Reject::Malformed)?)?;
        let out = len + self.suite.rtcp_overhead();
        if buf.len() < out {
            return Err(Reject::NoRoom);
        }
        let (slot, mut st) = self.state(ssrc);
        let index = st.rtcp_next;
        st.rtcp_next = (index + 1) & SRTCP_INDEX_MASK;
        self.store(slot, st);
        let word = (index | SRTCP_E).to_be_bytes();
        let (packet, tail) = buf.split_at_mut(len);
        let tail = tail.get_mut(..out - len).ok_or(Reject::NoRoom)?;
        match &self.rtcp.cipher {
            Cipher::Cm(b) => {
                let iv = self.rtcp.cm_iv(ssrc, u64::from(index));
                b.apply_keystream(&iv, packet.get_mut(RTCP_HEADER..).ok_or(Reject::Malformed)?);
                let (w, tag_out) = tail.split_at_mut(4);
                w.copy_from_slice(&word);
                let mut tag = [0u8; 20];
                b.hmac_sha1(packet, &word, &mut tag);
                for (d, t) in tag_out.iter_mut().zip(tag) {
                    *d = t;
                }
            }
            Cipher::Gcm(key) => {
                let nonce = self.rtcp.gcm_nonce(ssrc, rtcp_tail(index));
                let (header, payload) = packet.split_at_mut(RTCP_HEADER);
                let aad = rtcp_aad(header, word);
                let tag = key
                    .seal_in_place_separate_tag(nonce, Aad::from(aad), payload)
                    .map_err(|_| Reject::NoRoom)?;
                let (tag_out, w) = tail.split_at_mut(GCM_TAG);
                tag_out.copy_from_slice(tag.as_ref());
                w.copy_from_slice(&word);
            }
        }
        Ok(out)
    }

    /// Unprotect the SRTCP compound `buf[..len]`: check its index and tag, decrypt it when its E
    /// flag is set. Returns the RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Reject> {
        let packet = buf.get_mut(..len).ok_or(Reject::Malformed)?;
        let body = len
            .checked_sub(self.suite.rtcp_overhead())
            .filter(|b| *b >= RTCP_HEADER)
            .ok_or(Reject::Malformed)?;
        let ssrc = rtcp_ssrc(packet.get(..body).ok_or(Reject::Malformed)?)?;
        let tag_len = self.suite.rtcp_tag_len();
        // Counter mode: body || E+index || tag. GCM: body (encrypted) || tag || E+index.
        let word_at = if self.suite.is_aead() { len - 4 } else { body };
        let word: [u8; 4] = packet
            .get(word_at..word_at + 4)
            .and_then(|w| w.try_into().ok())
            .ok_or(Reject::Malformed)?;
        let word_value = u32::from_be_bytes(word);
        let index = word_value & SRTCP_INDEX_MASK;
        let encrypted = word_value & SRTCP_E != 0;
        let (slot, mut st) = self.state(ssrc);
        if !st.rtcp_replay.check(u64::from(index)) {
            return Err(Reject::Replayed);
        }
        match &self.rtcp.cipher {
            Cipher::Cm(b) => {
                let (signed, tag) = packet.split_at_mut(body + 4);
                let mut mac = [0u8; 20];
                b.hmac_sha1(signed, &[], &mut mac);
                let want = mac.get(..tag_len).ok_or(Reject::Malformed)?;
                if !tags_equal(want, tag) {
                    return Err(Reject::AuthFailed);
                }
                if encrypted {
                    let iv = self.rtcp.cm_iv(ssrc, u64::from(index));
                    let data = signed.get_mut(RTCP_HEADER..body).ok_or(Reject::Malformed)?;
                    b.apply_keystream(&iv, data);
                }
            }
            Cipher::Gcm(key) => {
                if !encrypted {
                    // Authenticated-only SRTCP under GCM (RFC 7714 §9.3): not sent by the
                    // endpoints the SBC serves.
                    return Err(Reject::Malformed);
                }
                let nonce = self.rtcp.gcm_nonce(ssrc, rtcp_tail(index));
                let (header, rest) = packet.split_at_mut(RTCP_HEADER);
                let aad = rtcp_aad(header, word);
                let sealed = rest
                    .get_mut(..body - RTCP_HEADER + GCM_TAG)
                    .ok_or(Reject::Malformed)?;
                key.open_in_place(nonce, Aad::from(aad), sealed)
                    .map_err(|_| Reject::AuthFailed)?;
            }
        }
        st.rtcp_replay.accept(u64::from(index));
        self.store(slot, st);
        Ok(body)
    }
}

/// Header length, sequence number and SSRC of an RTP packet.
fn rtp_fields(packet: &[u8]) -> Result<(usize, u16, u32), Reject> {
    let h = RtpHeader::parse(packet).map_err(|_| Reject::Malformed)?;
    Ok((h.header_len(), h.sequence(), h.ssrc()))
}

/// The SSRC of the first RTCP packet's sender (bytes 4..8).
fn rtcp_ssrc(packet: &[u8]) -> Result<u32, Reject> {
    let b: [u8; 4] = packet
        .get(4..RTCP_HEADER)
        .and_then(|s| s.try_into().ok())
        .ok_or(Reject::Malformed)?;
    if packet.first().map(|b| b >> 6) != Some(2) {
        return Err(Reject::Malformed);
    }
    Ok(u32::from_be_bytes(b))
}

fn rtp_tail(roc: u32, seq: u16) -> [u8; 6] {
    let mut t = [0u8; 6];
    t[..4].copy_from_slice(&roc.to_be_bytes());
    t[4..].copy_from_slice(&seq.to_be_bytes());
    t
}

fn rtcp_tail(index: u32) -> [u8; 6] {
    let mut t = [0u8; 6];
    t[2..].copy_from_slice(&index.to_be_bytes());
    t
}

/// The SRTCP GCM associated data: the 8-byte header and the E+index word (RFC 7714 §9.3).
fn rtcp_aad(header: &[u8], word: [u8; 4]) -> [u8; 12] {
    let mut aad = [0u8; 12];
    for (d, s) in aad.iter_mut().zip(header.iter().chain(&word)) {
        *d = *s;
    }
    aad
}

#[cfg(test)]
impl SsrcState {
    /// A sender state with a chosen next SRTCP index, for the published SRTCP vectors.
    pub(super) fn sender(ssrc: u32, rtcp_next: u32) -> Self {
        Self {
            ssrc,
            rtcp_next,
            ..Self::default()
        }
    }
}
