//! SDES-SRTP re-keying (RFC 4568, RFC 3711): `--srtp sdes` sends a plain capture as SRTP. The
//! caller's SDP becomes `RTP/SAVP` with a fresh `a=crypto` line (`AES_CM_128_HMAC_SHA1_80`, a key
//! from the system's secure RNG); a callee that receives an offer with `a=crypto` answers with its
//! own fresh key under the offer's tag (an offer without one is answered plain, as behind an SBC
//! that terminates SRTP on its other side). RTP and RTCP are protected and unprotected in place
//! with the media plane's SRTP contexts (`media_plane::srtp`, no allocation per packet), so the
//! payloads the receiver compares with the recording are the decrypted ones.

use media_plane::srtp::{SrtpContext, Suite};
use sbc_core::media::sdes::{choose_crypto, new_key};
use sbc_sip::sdp::sdes::crypto_value;
use sbc_sip::sdp::Crypto;

/// The suite this tester offers.
pub(crate) const SUITE: Suite = Suite::AesCm128HmacSha1_80;

/// A leg's SRTP state.
pub(crate) struct LegSrtp {
    /// Own key||salt (what this side's SDP announces) and its `a=crypto` tag.
    key: Vec<u8>,
    tag: u32,
    pub(super) tx: SrtpContext,
    /// The peer's context, from the key of its last SDP.
    pub(super) rx: Option<SrtpContext>,
    rx_key: Vec<u8>,
    /// Packets refused by `rx` (authentication, replay).
    pub(super) rejected: u64,
    /// Packets that came before the peer's key when `MAX_PENDING` were already kept: dropped
    /// unread (no key to check them with), so the receiver counts them lost, not refused.
    pub(super) early_dropped: u64,
    /// Packets that came before the peer's key (its media may overtake the SDP that carries the
    /// key, as behind an SBC): (RTCP, bytes, arrival ns), at most `MAX_PENDING`, taken up when
    /// the key comes.
    pub(super) pending: Vec<(bool, Vec<u8>, u64)>,
}

/// The most packets a leg keeps while waiting for the peer's key (the rest are dropped).
pub(super) const MAX_PENDING: usize = 16;

impl LegSrtp {
    /// A fresh key, announced under `tag`; None when the RNG fails.
    pub(super) fn new(tag: u32) -> Option<Box<Self>> {
        let key = new_key(SUITE.master_len())?;
        let tx = SrtpContext::new(SUITE, &key).ok()?;
        Some(Box::new(Self {
            key,
            tag,
            tx,
            rx: None,
            rx_key: Vec::new(),
            rejected: 0,
            early_dropped: 0,
            pending: Vec::new(),
        }))
    }

    /// The value of this side's `a=crypto` attribute.
    pub(super) fn crypto(&self) -> String {
        crypto_value(self.tag, SUITE.name(), &self.key)
    }

    /// The peer's key from its SDP; a new context only when the key changed (a re-offer that
    /// repeats the key keeps the rollover state).
    pub(super) fn set_remote(&mut self, key_salt: &[u8]) -> bool {
        if self.rx.is_some() && self.rx_key == key_salt {
            return true;
        }
        match SrtpContext::new(SUITE, key_salt) {
            Ok(c) => {
                self.rx = Some(c);
                self.rx_key = key_salt.to_vec();
                true
            }
            Err(_) => false,
        }
    }
}

/// The usable `a=crypto` of an SDP's audio section: its tag and key||salt (only this tester's
/// suite). None when there is no such line.
pub(crate) fn remote_crypto(body: &[u8]) -> Option<(u32, Vec<u8>)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut in_audio = false;
    let mut lines = Vec::new();
    for l in text.lines() {
        if let Some(m) = l.strip_prefix("m=") {
            in_audio = m.starts_with("audio");
        } else if in_audio {
            if let Some(v) = l.strip_prefix("a=crypto:") {
                if let Some(c) = Crypto::parse(v.trim_end()) {
                    if Suite::from_name(c.suite) == Some(SUITE) {
                        lines.push(c);
                    }
                }
            }
        }
    }
    let c = choose_crypto(lines).ok()?;
    Some((c.tag, c.key_salt))
}

/// The SDP of an SRTP recording for a leg that speaks plain RTP: `RTP/AVP` (`RTP/AVPF`) without
/// `a=crypto` lines.
pub(super) fn sdp_plain(body: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(body) else {
        return body.to_vec();
    };
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        if bare.starts_with("a=crypto:") {
            continue;
        }
        if bare.starts_with("m=") {
            let eol = line.get(bare.len()..).unwrap_or("");
            let f: Vec<&str> = bare
                .split(' ')
                .map(|p| match p {
                    "RTP/SAVP" => "RTP/AVP",
                    "RTP/SAVPF" => "RTP/AVPF",
                    other => other,
                })
                .collect();
            out.push_str(&f.join(" "));
            out.push_str(eol);
            continue;
        }
        out.push_str(line);
    }
    out.into_bytes()
}

/// The SDP with its audio section as `RTP/SAVP` (`RTP/SAVPF` for `RTP/AVPF`) carrying the one
/// `a=crypto` line `crypto` in place of any it had.
pub(super) fn sdp_with_crypto(body: &[u8], crypto: &str) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(body) else {
        return body.to_vec();
    };
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(text.len() + 80);
    let mut in_audio = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        if bare.starts_with("m=") {
            if in_audio {
                out.push_str(&format!("a=crypto:{crypto}{eol}"));
            }
            in_audio = bare.starts_with("m=audio");
            if in_audio {
                let mut f: Vec<&str> = bare.split(' ').collect();
                if let Some(p) = f.get_mut(2) {
                    *p = match *p {
                        "RTP/AVP" => "RTP/SAVP",
                        "RTP/AVPF" => "RTP/SAVPF",
                        other => other,
                    };
                }
                out.push_str(&f.join(" "));
                out.push_str(eol);
                continue;
            }
        }
        if in_audio && bare.starts_with("a=crypto:") {
            continue;
        }
        out.push_str(line);
    }
    if in_audio {
        if !out.ends_with('\n') && !out.is_empty() {
            out.push_str(eol);
        }
        out.push_str(&format!("a=crypto:{crypto}{eol}"));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 10000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n";

    #[test]
    fn an_sdp_gets_savp_and_one_crypto_line_that_reads_back() {
        let me = LegSrtp::new(3).unwrap();
        let out = sdp_with_crypto(SDP.as_bytes(), &me.crypto());
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("m=audio 10000 RTP/SAVP 8 101\r\n"), "{text}");
        assert_eq!(text.matches("a=crypto:").count(), 1, "{text}");
        assert!(text.ends_with("\r\n"));
        let (tag, key) = remote_crypto(&out).unwrap();
        assert_eq!((tag, key.as_slice()), (3, me.key.as_slice()));
        // Applied again (a re-offer), the line is replaced, not added.
        let again = sdp_with_crypto(&out, &me.crypto());
        assert_eq!(again, out);
        assert!(remote_crypto(SDP.as_bytes()).is_none());
    }

    #[test]
    fn what_one_side_protects_the_other_unprotects() {
        let mut a = LegSrtp::new(1).unwrap();
        let mut b = LegSrtp::new(1).unwrap();
        assert!(b.set_remote(&a.key));
        let mut buf = [0u8; 64];
        buf[0] = 0x80;
        buf[1] = 8;
        buf[8..12].copy_from_slice(&[1, 2, 3, 4]);
        buf[12..20].copy_from_slice(b"payload!");
        let plain = buf;
        let n = a.tx.protect_rtp(&mut buf, 20).unwrap();
        assert_eq!(n, 30);
        assert_ne!(buf[12..20], plain[12..20]);
        let m = b.rx.as_mut().unwrap().unprotect_rtp(&mut buf, n).unwrap();
        assert_eq!(buf[..m], plain[..20]);
    }
}
