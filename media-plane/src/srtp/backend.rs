//! The cipher primitives of the AES-CM suites behind one trait, [`CmBackend`], and the backend in
//! use, [`RustCrypto`]: AES in counter mode from the `aes` and `ctr` crates and HMAC-SHA1 from
//! `hmac` and `sha1` (AES-NI and SHA-NI detected at run time). The AEAD suites (RFC 7714) use `ring`'s AES-GCM directly.
//! `docs/decisions.md` ("SRTP cipher code") gives the measurements behind the choice.

use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipher, BlockEncryptMut, BlockSizeUser, InnerIvInit, KeyInit, StreamCipher,
    StreamCipherCoreWrapper,
};
use aes::{Aes128, Aes256};
use ctr::flavors::Ctr128BE;
use ctr::CtrCore;

/// What an AES-CM/HMAC-SHA1 SRTP context needs from a crypto library. One value holds the keys
/// of one direction of one protocol (SRTP or SRTCP); nothing here allocates.
pub trait CmBackend: Sized {
    /// Keys the backend: a 16 or 32-byte AES key and a 20-byte HMAC-SHA1 key. `None` for keys of
    /// another length.
    fn new(enc_key: &[u8], auth_key: &[u8]) -> Option<Self>;
    /// XOR the AES counter-mode keystream that starts at counter block `iv` into `data`.
    fn apply_keystream(&self, iv: &[u8; 16], data: &mut [u8]);
    /// HMAC-SHA1 over `data` followed by `trailer`.
    fn hmac_sha1(&self, data: &[u8], trailer: &[u8], out: &mut [u8; 20]);
}

/// An expanded AES key of either size.
// Unboxed on purpose: one per context, read per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum Aes {
    A128(Aes128),
    A256(Aes256),
}

impl Aes {
    /// `None` for a key that is neither 16 nor 32 bytes long.
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        match key.len() {
            16 => Aes128::new_from_slice(key).ok().map(Self::A128),
            32 => Aes256::new_from_slice(key).ok().map(Self::A256),
            _ => None,
        }
    }

    /// AES-CTR with a 128-bit big-endian counter starting at `iv` (the AES-CM of RFC 3711 §4.1.1).
    pub(crate) fn apply_keystream(&self, iv: &[u8; 16], data: &mut [u8]) {
        match self {
            Self::A128(c) => ctr_over(c.clone(), iv).apply_keystream(data),
            Self::A256(c) => ctr_over(c.clone(), iv).apply_keystream(data),
        }
    }
}

/// Counter mode over an already expanded key (no key schedule per packet).
fn ctr_over<C>(cipher: C, iv: &[u8; 16]) -> StreamCipherCoreWrapper<CtrCore<C, Ctr128BE>>
where
    C: BlockEncryptMut + BlockCipher + BlockSizeUser<BlockSize = U16>,
{
    StreamCipherCoreWrapper::from_core(CtrCore::inner_iv_init(cipher, iv.into()))
}

/// AES-CTR from RustCrypto and HMAC-SHA1 from `ring`: a candidate kept for the benchmark (ring's
/// SHA-1 does not use the CPU's SHA instructions, and measured more than twice slower).
pub struct RingMac {
    aes: Aes,
    mac: ring::hmac::Key,
}

impl CmBackend for RingMac {
    fn new(enc_key: &[u8], auth_key: &[u8]) -> Option<Self> {
        Some(Self {
            aes: Aes::new(enc_key)?,
            mac: ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_key),
        })
    }

    fn apply_keystream(&self, iv: &[u8; 16], data: &mut [u8]) {
        self.aes.apply_keystream(iv, data);
    }

    fn hmac_sha1(&self, data: &[u8], trailer: &[u8], out: &mut [u8; 20]) {
        let mut ctx = ring::hmac::Context::with_key(&self.mac);
        ctx.update(data);
        ctx.update(trailer);
        let tag = ctx.sign();
        for (o, t) in out.iter_mut().zip(tag.as_ref()) {
            *o = *t;
        }
    }
}

/// The backend in use: AES-CTR and HMAC-SHA1 from RustCrypto (`aes` + `ctr` + `hmac` + `sha1`),
/// which detect AES-NI and the SHA extensions at run time.
pub struct RustCrypto {
    aes: Aes,
    mac: hmac::Hmac<sha1::Sha1>,
}

impl CmBackend for RustCrypto {
    fn new(enc_key: &[u8], auth_key: &[u8]) -> Option<Self> {
        use hmac::Mac;
        Some(Self {
            aes: Aes::new(enc_key)?,
            mac: <hmac::Hmac<sha1::Sha1> as Mac>::new_from_slice(auth_key).ok()?,
        })
    }

    fn apply_keystream(&self, iv: &[u8; 16], data: &mut [u8]) {
        self.aes.apply_keystream(iv, data);
    }

    fn hmac_sha1(&self, data: &[u8], trailer: &[u8], out: &mut [u8; 20]) {
        use hmac::Mac;
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.update(trailer);
        let tag = mac.finalize().into_bytes();
        for (o, t) in out.iter_mut().zip(tag.iter()) {
            *o = *t;
        }
    }
}
