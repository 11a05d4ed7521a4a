//! SDES key parameters (RFC 4568 §6.1): `inline:<key||salt>[|lifetime][|MKI:length]` decoded into
//! bytes, a lifetime in packets and an MKI, and written back; base64 (RFC 4648 §4) for the key.

use std::fmt::Write as _;

/// One decoded `inline:` key parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineKey {
    /// Master key then master salt, decoded.
    pub key_salt: Vec<u8>,
    /// Packets the key may protect (`|2^31` or `|1048576`); `None`: the suite's maximum.
    pub lifetime: Option<u64>,
    /// The master key identifier and its length in bytes on the wire (`|1:4`), if any.
    pub mki: Option<(u64, u8)>,
}

/// Why a key parameter was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InlineKeyError {
    /// Not `inline:`, or a field that does not parse.
    Syntax,
    /// The key is not valid base64.
    Base64,
}

impl InlineKey {
    /// Parse one key parameter (with its `inline:` prefix).
    pub fn parse(param: &str) -> Result<Self, InlineKeyError> {
        let rest = param
            .strip_prefix("inline:")
            .ok_or(InlineKeyError::Syntax)?;
        let mut fields = rest.split('|');
        let key = fields.next().ok_or(InlineKeyError::Syntax)?;
        let key_salt = base64_decode(key).ok_or(InlineKeyError::Base64)?;
        let mut lifetime = None;
        let mut mki = None;
        for f in fields {
            if let Some((value, len)) = f.split_once(':') {
                if mki.is_some() {
                    return Err(InlineKeyError::Syntax);
                }
                let value = value.parse::<u64>().map_err(|_| InlineKeyError::Syntax)?;
                let len = len
                    .parse::<u8>()
                    .ok()
                    .filter(|l| (1..=128).contains(l))
                    .ok_or(InlineKeyError::Syntax)?;
                mki = Some((value, len));
            } else if lifetime.is_none() && mki.is_none() {
                lifetime = Some(parse_lifetime(f).ok_or(InlineKeyError::Syntax)?);
            } else {
                return Err(InlineKeyError::Syntax);
            }
        }
        Ok(Self {
            key_salt,
            lifetime,
            mki,
        })
    }

    /// The key parameter as written in an offer or answer: `inline:<base64>` (the SBC's own keys
    /// carry neither lifetime nor MKI).
    pub fn write(key_salt: &[u8]) -> String {
        let mut s = String::with_capacity(7 + key_salt.len() * 4 / 3 + 4);
        s.push_str("inline:");
        base64_encode(key_salt, &mut s);
        s
    }
}

/// `2^n` (n ≤ 63) or a decimal count of packets.
fn parse_lifetime(s: &str) -> Option<u64> {
    if let Some(exp) = s.strip_prefix("2^") {
        let n = exp.parse::<u32>().ok().filter(|n| *n <= 63)?;
        Some(1u64 << n)
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8], out: &mut String) {
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
}

fn base64_value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|a| *a == c).map(|p| p as u32)
}

/// Standard base64 with or without padding; `None` on any other character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in body.bytes() {
        acc = (acc << 6) | base64_value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The value of a whole `a=crypto` attribute: `<tag> <suite> inline:<key||salt>`.
pub fn crypto_value(tag: u32, suite: &str, key_salt: &[u8]) -> String {
    let mut s = String::with_capacity(96);
    let _ = write!(s, "{tag} {suite} {}", InlineKey::write(key_salt));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4568_examples_parse() {
        // RFC 4568 §9.1.
        let k =
            InlineKey::parse("inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4").unwrap();
        assert_eq!(k.key_salt.len(), 30);
        assert_eq!(k.lifetime, Some(1 << 20));
        assert_eq!(k.mki, Some((1, 4)));
        let k = InlineKey::parse("inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj").unwrap();
        assert_eq!((k.lifetime, k.mki), (None, None));
        let k = InlineKey::parse("inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|1:4").unwrap();
        assert_eq!((k.lifetime, k.mki), (None, Some((1, 4))));
        let k =
            InlineKey::parse("inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|1048576").unwrap();
        assert_eq!(k.lifetime, Some(1_048_576));
    }

    #[test]
    fn bad_parameters_are_refused() {
        for bad in [
            "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "inline:PS1u*CVe",
            "inline:abc|2^99",
            "inline:abc|1:0",
            "inline:abc|1:4|2^20",
            "inline:abc|x",
        ] {
            assert!(InlineKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_round_trips_every_length() {
        for len in 0..50u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            let mut s = String::new();
            base64_encode(&data, &mut s);
            assert_eq!(base64_decode(&s), Some(data.clone()), "{s}");
            assert_eq!(base64_decode(s.trim_end_matches('=')), Some(data));
        }
        assert_eq!(
            crypto_value(1, "AES_CM_128_HMAC_SHA1_80", b"foobar"),
            "1 AES_CM_128_HMAC_SHA1_80 inline:Zm9vYmFy"
        );
    }
}
