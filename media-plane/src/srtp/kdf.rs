//! SRTP key derivation (RFC 3711 §4.3, with the key derivation rate 0 that SDES uses by default):
//! the AES-CM PRF keyed with the master key, over the master salt XOR the label.

use super::backend::Aes;

/// Labels of RFC 3711 §4.3.2.
pub(crate) const RTP_ENCRYPTION: u8 = 0;
pub(crate) const RTP_AUTH: u8 = 1;
pub(crate) const RTP_SALT: u8 = 2;
pub(crate) const RTCP_ENCRYPTION: u8 = 3;
pub(crate) const RTCP_AUTH: u8 = 4;
pub(crate) const RTCP_SALT: u8 = 5;

/// Fill `out` with the session key of `label` for the master key `prf` (already expanded) and
/// the master salt `salt` (14 bytes, or 12 for GCM: padded with zeros as RFC 7714 §11 does).
pub(crate) fn derive(prf: &Aes, salt: &[u8], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    for (i, s) in iv.iter_mut().zip(salt.iter().take(14)) {
        *i = *s;
    }
    iv[7] ^= label;
    out.fill(0);
    prf.apply_keystream(&iv, out);
}
