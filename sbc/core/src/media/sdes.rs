//! SDES-SRTP decisions (RFC 4568): the SRTP mode of a side, trunk or target ([`SrtpMode`]), what a
//! leg is offered and how an offer's `a=crypto` lines are answered ([`choose_crypto`]: the first
//! supported line wins; `|MKI` refused, `|lifetime` honoured), the policy that keeps SDES keys off
//! sides that are not TLS, and the SBC's own keys from a secure RNG ([`new_key`]). Pure: the anchor
//! applies the plan to the SDP and the relay's stages.

use ring::rand::{SecureRandom, SystemRandom};
use sbc_sip::sdp::sdes::InlineKey;
use sbc_sip::sdp::Crypto;

/// How one side, trunk or target carries media.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SrtpMode {
    /// Whatever the endpoints negotiate passes through; keys cross the SBC untouched (the default,
    /// and the only mode before SRTP termination).
    #[default]
    Pass,
    /// Plain RTP on this side: `RTP/AVP`, no `a=crypto`; SRTP from the other side is terminated.
    Rtp,
    /// SRTP required on this side: `RTP/SAVP` with the SBC's own key; an offer from it without a
    /// usable `a=crypto` is refused with 488.
    Srtp,
    /// Best effort, as phones and Teams Direct Routing do it: offered as `RTP/AVP` with
    /// `a=crypto`; SRTP when the answer (or the offer from this side) carries a usable key, plain
    /// RTP otherwise.
    Optional,
}

impl SrtpMode {
    /// The config spelling: `pass`, `plain` (or `rtp`), `sdes` (or `srtp`), `optional`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "pass" => Self::Pass,
            "plain" | "rtp" => Self::Rtp,
            "sdes" | "srtp" => Self::Srtp,
            "optional" => Self::Optional,
            _ => return None,
        })
    }
}

/// The suites the relay terminates, by SDES name, with their key||salt lengths, in the order the
/// SBC offers them.
pub const SUITES: [(&str, usize); 6] = [
    ("AES_CM_128_HMAC_SHA1_80", 30),
    ("AES_CM_128_HMAC_SHA1_32", 30),
    ("AEAD_AES_128_GCM", 28),
    ("AEAD_AES_256_GCM", 44),
    ("AES_256_CM_HMAC_SHA1_80", 46),
    ("AES_256_CM_HMAC_SHA1_32", 46),
];

/// The registered name of a suite written in either spelling of the AES-256 suites.
pub fn canonical_suite(name: &str) -> &str {
    match name {
        "AES_CM_256_HMAC_SHA1_80" => "AES_256_CM_HMAC_SHA1_80",
        "AES_CM_256_HMAC_SHA1_32" => "AES_256_CM_HMAC_SHA1_32",
        n => n,
    }
}

/// The key||salt length of a supported suite, in either spelling of the AES-256 suites.
pub fn suite_key_len(name: &str) -> Option<usize> {
    let name = canonical_suite(name);
    SUITES.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

/// The `a=crypto` line chosen from an offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// The line's tag (the answer repeats it).
    pub tag: u32,
    /// The suite, as the offer spelled it (the answer repeats it).
    pub suite: String,
    /// The remote's key||salt.
    pub key_salt: Vec<u8>,
    /// Packets the key may protect (`|lifetime`).
    pub lifetime: Option<u64>,
}

/// Why no `a=crypto` line of an offer could be used: the 488's reason (RFC 4568 §7.1.2 and §7.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No line at all.
    NoCrypto,
    /// No line with a suite the relay terminates.
    NoSupportedSuite,
    /// The only supported lines use an MKI, which the relay does not do.
    MkiNotSupported,
    /// The only supported lines have a key of the wrong length, several keys, or session
    /// parameters (`KDR=`, `UNENCRYPTED_SRTP`, ...).
    BadKey,
    /// The side is not TLS and `srtp.require_tls_for_sdes` keeps keys off it.
    NotTls,
    /// `RTP/SAVP` offered from a side that speaks plain RTP.
    PlainOnly,
    /// The SBC could not draw or write its own key (its fault: 500).
    Internal,
}

impl Refusal {
    /// The text of the 488's Warning (399) header.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoCrypto => "SRTP required: no a=crypto line",
            Self::NoSupportedSuite => "SRTP: no supported crypto suite",
            Self::MkiNotSupported => "SRTP: MKI not supported",
            Self::BadKey => "SRTP: unusable key parameters",
            Self::NotTls => "SRTP: SDES keys refused over a transport that is not TLS",
            Self::PlainOnly => "SRTP: this side speaks plain RTP",
            Self::Internal => "SRTP: no key",
        }
    }

    /// The SIP status an offer refused so is answered with: 488, or 500 for the SBC's fault.
    pub fn status(self) -> u16 {
        match self {
            Self::Internal => 500,
            _ => 488,
        }
    }
}

/// The first usable line of an offer's `a=crypto` lines (RFC 4568 §7.1.1: lines in preference
/// order). A line is skipped for an unknown suite, an MKI, a key of the wrong length, several keys
/// or session parameters; the refusal names the best reason found.
pub fn choose_crypto<'a>(lines: impl IntoIterator<Item = Crypto<'a>>) -> Result<Chosen, Refusal> {
    let mut refusal = Refusal::NoCrypto;
    for line in lines {
        let Some(len) = suite_key_len(line.suite) else {
            if refusal == Refusal::NoCrypto {
                refusal = Refusal::NoSupportedSuite;
            }
            continue;
        };
        let mut keys = line.key_params.split(';');
        let (Some(param), None, None) = (keys.next(), keys.next(), line.session_params) else {
            refusal = Refusal::BadKey;
            continue;
        };
        match InlineKey::parse(param) {
            Ok(k) if k.mki.is_some() => refusal = Refusal::MkiNotSupported,
            Ok(k) if k.key_salt.len() == len => {
                return Ok(Chosen {
                    tag: line.tag,
                    suite: line.suite.to_owned(),
                    key_salt: k.key_salt,
                    lifetime: k.lifetime,
                });
            }
            _ => refusal = Refusal::BadKey,
        }
    }
    Err(refusal)
}

/// What the SBC does with SDES toward one side for one offer/answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegPlan {
    /// Leave the SDP's profile and `a=crypto` lines as they are.
    Pass,
    /// Plain RTP: `RTP/AVP`, every `a=crypto` removed.
    Plain,
    /// SDES-SRTP with the SBC's own key: `RTP/SAVP` (or `RTP/AVP` with `a=crypto` when
    /// `best_effort`).
    Sdes {
        /// Offer `RTP/AVP` with `a=crypto` (the answer decides).
        best_effort: bool,
    },
}

/// The plan toward a side in `mode`, reached over TLS or not.
pub fn plan(mode: SrtpMode, tls: bool, require_tls_for_sdes: bool) -> Result<LegPlan, Refusal> {
    let keys_allowed = tls || !require_tls_for_sdes;
    match mode {
        SrtpMode::Pass => Ok(LegPlan::Pass),
        SrtpMode::Rtp => Ok(LegPlan::Plain),
        SrtpMode::Srtp if keys_allowed => Ok(LegPlan::Sdes { best_effort: false }),
        SrtpMode::Srtp => Err(Refusal::NotTls),
        SrtpMode::Optional if keys_allowed => Ok(LegPlan::Sdes { best_effort: true }),
        SrtpMode::Optional => Ok(LegPlan::Plain),
    }
}

/// A fresh key||salt of `len` bytes from the system's secure RNG; `None` if it fails.
pub fn new_key(len: usize) -> Option<Vec<u8>> {
    let mut key = vec![0u8; len];
    SystemRandom::new().fill(&mut key).ok()?;
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&'static str]) -> Vec<Crypto<'static>> {
        v.iter().map(|l| Crypto::parse(l).unwrap()).collect()
    }

    #[test]
    fn the_first_supported_line_wins() {
        let offer = lines(&[
            "1 F8_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj",
            "2 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1:4",
            "3 AES_CM_128_HMAC_SHA1_32 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20",
            "4 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj",
        ]);
        let c = choose_crypto(offer).unwrap();
        assert_eq!((c.tag, c.suite.as_str()), (3, "AES_CM_128_HMAC_SHA1_32"));
        assert_eq!((c.key_salt.len(), c.lifetime), (30, Some(1 << 20)));
    }

    #[test]
    fn refusals_name_their_reason() {
        assert_eq!(choose_crypto(lines(&[])), Err(Refusal::NoCrypto));
        assert_eq!(
            choose_crypto(lines(&["1 F8_128_HMAC_SHA1_80 inline:abcd"])),
            Err(Refusal::NoSupportedSuite)
        );
        let mki = "1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|1:4";
        assert_eq!(choose_crypto(lines(&[mki])), Err(Refusal::MkiNotSupported));
        // A 30-byte key for a 46-byte suite; session parameters.
        let short = "1 AES_CM_256_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj";
        let kdr = "2 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj KDR=1";
        assert_eq!(choose_crypto(lines(&[short, kdr])), Err(Refusal::BadKey));
        assert!(!Refusal::MkiNotSupported.reason().is_empty());
    }

    #[test]
    fn both_spellings_of_aes_256() {
        assert_eq!(suite_key_len("AES_CM_256_HMAC_SHA1_80"), Some(46));
        assert_eq!(suite_key_len("AES_256_CM_HMAC_SHA1_32"), Some(46));
        assert_eq!(suite_key_len("AEAD_AES_128_GCM"), Some(28));
    }

    #[test]
    fn keys_stay_off_sides_that_are_not_tls() {
        assert_eq!(plan(SrtpMode::Srtp, false, true), Err(Refusal::NotTls));
        assert_eq!(
            plan(SrtpMode::Srtp, true, true),
            Ok(LegPlan::Sdes { best_effort: false })
        );
        assert_eq!(
            plan(SrtpMode::Srtp, false, false),
            Ok(LegPlan::Sdes { best_effort: false })
        );
        assert_eq!(plan(SrtpMode::Optional, false, true), Ok(LegPlan::Plain));
        assert_eq!(
            plan(SrtpMode::Optional, true, true),
            Ok(LegPlan::Sdes { best_effort: true })
        );
        assert_eq!(plan(SrtpMode::Rtp, true, true), Ok(LegPlan::Plain));
        assert_eq!(plan(SrtpMode::Pass, false, true), Ok(LegPlan::Pass));
        assert_eq!(SrtpMode::from_name("optional"), Some(SrtpMode::Optional));
        assert_eq!(SrtpMode::from_name("sdes"), Some(SrtpMode::Srtp));
        assert_eq!(SrtpMode::from_name("plain"), Some(SrtpMode::Rtp));
        assert_eq!(SrtpMode::from_name("dtls"), None);
    }

    #[test]
    fn keys_are_fresh() {
        let (a, b) = (new_key(30).unwrap(), new_key(30).unwrap());
        assert_eq!(a.len(), 30);
        assert_ne!(a, b);
    }
}
