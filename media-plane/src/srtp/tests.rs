//! Published test vectors (RFC 3711 Appendix B, RFC 6188 §7, RFC 7714 §16-17, libsrtp's
//! driver packets) and the refusals: tampered, replayed and wrong-key packets.

use super::backend::Aes;
use super::kdf;
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn derive(master_key: &str, master_salt: &str, label: u8, len: usize) -> Vec<u8> {
    let prf = Aes::new(&hex(master_key)).unwrap();
    let mut out = vec![0u8; len];
    kdf::derive(&prf, &hex(master_salt), label, &mut out);
    out
}

#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let aes = Aes::new(&hex("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap();
    let iv: [u8; 16] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000").try_into().unwrap();
    let mut ks = vec![0u8; 65282 * 16];
    aes.apply_keystream(&iv, &mut ks);
    assert_eq!(
        ks[..48],
        hex(
            "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
             41E95B3BB0A2E8DD477901E4FCA894C0"
        )[..]
    );
    assert_eq!(
        ks[0xfeff * 16..0xff02 * 16],
        hex(
            "EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE
             6A2CC3787889374FBEB4C81B17BA6C44"
        )[..]
    );
    // The same counter block through the context's IV: SSRC 0, index 0, the salt.
    let ctx: SrtpContext = SrtpContext::from_session_keys(
        Suite::AesCm128HmacSha1_80,
        &hex("2B7E151628AED2A6ABF7158809CF4F3C"),
        &[0; 20],
        &hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"),
    )
    .unwrap();
    assert_eq!(ctx.rtp.cm_iv(0, 0), iv);
}

#[test]
fn rfc3711_b3_key_derivation() {
    let (k, s) = (
        "E1F97A0D3E018BE0D64FA32C06DE4139",
        "0EC675AD498AFEEBB6960B3AABE6",
    );
    assert_eq!(derive(k, s, 0, 16), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    assert_eq!(derive(k, s, 2, 14), hex("30CBBC08863D8C85D49DB34A9AE1"));
    assert_eq!(
        derive(k, s, 1, 94),
        hex(
            "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE
             E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25
             6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2"
        )
    );
}

#[test]
fn rfc6188_7_2_aes_256_key_derivation() {
    let (k, s) = (
        "f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6",
        "3b04803de51ee7c96423ab5b78d2",
    );
    assert_eq!(
        derive(k, s, 0, 32),
        hex("5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4")
    );
    assert_eq!(derive(k, s, 2, 14), hex("fa31791685ca444a9e07c6c64e93"));
    assert_eq!(
        derive(k, s, 1, 20),
        hex("fd9c32d39ed5fbb5a9dc96b30818454d1313dc05")
    );
}

/// libsrtp's driver packet (test/srtp_driver.c, also checked by pylibsrtp): the RFC 3711 B.3
/// master key, SSRC cafebabe, sequence 0x1234, 16 bytes of 0xab.
fn driver_packet() -> Vec<u8> {
    hex("800f1234decafbadcafebabe abababababababababababababababab")
}

fn protect(suite: Suite, master: &[u8], rtp: &[u8]) -> Vec<u8> {
    let mut ctx: SrtpContext = SrtpContext::new(suite, master).unwrap();
    let mut buf = rtp.to_vec();
    buf.resize(rtp.len() + 64, 0);
    let n = ctx.protect_rtp(&mut buf, rtp.len()).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn libsrtp_driver_packets_aes_cm_128_and_256() {
    let master128 = hex("E1F97A0D3E018BE0D64FA32C06DE4139 0EC675AD498AFEEBB6960B3AABE6");
    assert_eq!(
        protect(Suite::AesCm128HmacSha1_80, &master128, &driver_packet()),
        hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb")
    );
    let master256 = hex(
        "f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6
         3b04803de51ee7c96423ab5b78d2",
    );
    assert_eq!(
        protect(Suite::AesCm256HmacSha1_80, &master256, &driver_packet()),
        hex("800f1234decafbadcafebabe f1d9de17ff251ff1aa007774 b0b4b40da08d9d9a5b3a55d8873b")
    );
    // The 32-bit tag is the 80-bit tag's first four bytes.
    let short = protect(Suite::AesCm128HmacSha1_32, &master128, &driver_packet());
    assert_eq!(short.len(), 12 + 16 + 4);
    assert_eq!(
        short,
        hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc")
    );
}

const GCM_SALT: &str = "517569642070726f2071756f";
const GCM_RTP: &str = "8040f17b8041f8d35501a0b2
    47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
const GCM_RTCP: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61
    deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

fn gcm(suite: Suite, key: &str) -> SrtpContext {
    SrtpContext::from_session_keys(suite, &hex(key), &[], &hex(GCM_SALT)).unwrap()
}

#[test]
fn rfc7714_16_srtp_aead_aes_gcm() {
    for (suite, key, sealed) in [
        (
            Suite::AeadAes128Gcm,
            "000102030405060708090a0b0c0d0e0f",
            "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd5
             0d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce",
        ),
        (
            Suite::AeadAes256Gcm,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "8040f17b8041f8d35501a0b232b1de78a822fe12ef9f78fa332e33aab1801238
             9a58e2f3b50b2a0276ffae0f1ba63799b87b7aa3db36dfffd6b0f9bb7878d7a76c13",
        ),
    ] {
        let plain = hex(GCM_RTP);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 16, 0);
        let n = gcm(suite, key).protect_rtp(&mut buf, plain.len()).unwrap();
        assert_eq!(buf[..n], hex(sealed)[..], "{suite:?} protect");
        let n = gcm(suite, key).unprotect_rtp(&mut buf, n).unwrap();
        assert_eq!(buf[..n], plain[..], "{suite:?} unprotect");
    }
}

#[test]
fn rfc7714_17_srtcp_aead_aes_gcm() {
    for (suite, key, sealed) in [
        (
            Suite::AeadAes128Gcm,
            "000102030405060708090a0b0c0d0e0f",
            "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32d
             c676a5f1730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf872
             45d9eade800005d4",
        ),
        (
            Suite::AeadAes256Gcm,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "81c8000d4d617273d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50
             a2eaa5c1110555be8415f658c61de0476f1b6fad1d1eb30c4446839f57ff6f6c
             b26ac3be800005d4",
        ),
    ] {
        let plain = hex(GCM_RTCP);
        let mut tx = gcm(suite, key);
        // The vector's SRTCP index is 0x5d4.
        tx.ssrcs[0] = Some(context_state_for_test(0x4d61_7273, 0x5d4));
        let mut buf = plain.clone();
        buf.resize(plain.len() + 20, 0);
        let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
        assert_eq!(buf[..n], hex(sealed)[..], "{suite:?} protect");
        let n = gcm(suite, key).unprotect_rtcp(&mut buf, n).unwrap();
        assert_eq!(buf[..n], plain[..], "{suite:?} unprotect");
    }
}

fn context_state_for_test(ssrc: u32, rtcp_next: u32) -> context::SsrcState {
    context::SsrcState::sender(ssrc, rtcp_next)
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160).map(|i| (i as u8) ^ (seq as u8)));
    p
}

fn rtcp_rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[7u8; 24]);
    p
}

fn master(suite: Suite, fill: u8) -> Vec<u8> {
    vec![fill; suite.master_len()]
}

#[test]
fn every_suite_round_trips_across_the_sequence_wrap_and_refuses_what_it_must() {
    for suite in Suite::ALL {
        let key = master(suite, 0x42);
        let mut tx: SrtpContext = SrtpContext::new(suite, &key).unwrap();
        let mut rx: SrtpContext = SrtpContext::new(suite, &key).unwrap();
        let mut wrong: SrtpContext = SrtpContext::new(suite, &master(suite, 0x43)).unwrap();
        let mut sent = Vec::new();
        for seq in [65533u16, 65534, 65535, 0, 1, 2] {
            let plain = rtp(seq, 0x1234_5678);
            let mut buf = plain.clone();
            buf.resize(plain.len() + Suite::max_overhead(), 0);
            let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
            assert_eq!(n, plain.len() + suite.rtp_overhead());
            assert_ne!(buf[12..plain.len()], plain[12..], "{suite:?}: encrypted");
            buf.truncate(n);
            sent.push((plain, buf));
        }
        for (plain, srtp) in &sent {
            // Wrong key, then tampered: refused, and the state is untouched.
            let mut b = srtp.clone();
            assert_eq!(
                wrong.unprotect_rtp(&mut b, srtp.len()),
                Err(Reject::AuthFailed)
            );
            let mut b = srtp.clone();
            b[20] ^= 1;
            assert_eq!(
                rx.unprotect_rtp(&mut b, srtp.len()),
                Err(Reject::AuthFailed)
            );
            let mut b = srtp.clone();
            let n = rx.unprotect_rtp(&mut b, srtp.len()).unwrap();
            assert_eq!(&b[..n], &plain[..], "{suite:?}");
            let mut b = srtp.clone();
            assert_eq!(rx.unprotect_rtp(&mut b, srtp.len()), Err(Reject::Replayed));
        }
        // A packet past the wrap is at index 2^16 + 2: the receiver followed the rollover.
        let mut b = sent[5].1.clone();
        assert_eq!(
            rx.unprotect_rtp(&mut b, sent[5].1.len()),
            Err(Reject::Replayed)
        );

        // SRTCP: round trip, replay, tamper, wrong key.
        for _ in 0..3 {
            let plain = rtcp_rr(0x1234_5678);
            let mut buf = plain.clone();
            buf.resize(plain.len() + Suite::max_overhead(), 0);
            let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
            assert_eq!(n, plain.len() + suite.rtcp_overhead());
            let srtcp = buf[..n].to_vec();
            let mut b = srtcp.clone();
            assert_eq!(wrong.unprotect_rtcp(&mut b, n), Err(Reject::AuthFailed));
            let mut b = srtcp.clone();
            b[9] ^= 0x80;
            assert_eq!(rx.unprotect_rtcp(&mut b, n), Err(Reject::AuthFailed));
            let mut b = srtcp.clone();
            let m = rx.unprotect_rtcp(&mut b, n).unwrap();
            assert_eq!(b[..m], plain[..], "{suite:?} srtcp");
            let mut b = srtcp.clone();
            assert_eq!(rx.unprotect_rtcp(&mut b, n), Err(Reject::Replayed));
        }
    }
}

#[test]
fn short_buffers_and_packets_are_refused() {
    let suite = Suite::AesCm128HmacSha1_80;
    let mut tx: SrtpContext = SrtpContext::new(suite, &master(suite, 1)).unwrap();
    let plain = rtp(1, 9);
    let mut buf = plain.clone();
    assert_eq!(tx.protect_rtp(&mut buf, plain.len()), Err(Reject::NoRoom));
    let mut short = vec![0x80u8; 11];
    assert_eq!(tx.unprotect_rtp(&mut short, 11), Err(Reject::Malformed));
    assert_eq!(tx.unprotect_rtcp(&mut short, 11), Err(Reject::Malformed));
    assert_eq!(
        SrtpContext::<RustCrypto>::new(suite, &[0; 29]).unwrap_err(),
        KeyLengthError {
            expected: 30,
            got: 29
        }
    );
}

#[test]
fn the_lifetime_bounds_the_packets_under_one_key() {
    let suite = Suite::AesCm128HmacSha1_80;
    let mut tx: SrtpContext = SrtpContext::new(suite, &master(suite, 1)).unwrap();
    tx.set_lifetime(2);
    for seq in 0..3u16 {
        let plain = rtp(seq, 9);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 10, 0);
        let r = tx.protect_rtp(&mut buf, plain.len());
        assert_eq!(r.is_ok(), seq < 2, "{seq}");
    }
}

#[test]
fn the_two_backends_agree() {
    let suite = Suite::AesCm256HmacSha1_80;
    let mut a: SrtpContext<RustCrypto> = SrtpContext::new(suite, &master(suite, 5)).unwrap();
    let mut b: SrtpContext<RingMac> = SrtpContext::new(suite, &master(suite, 5)).unwrap();
    let plain = rtp(7, 3);
    let mut x = plain.clone();
    x.resize(plain.len() + 10, 0);
    let mut y = x.clone();
    a.protect_rtp(&mut x, plain.len()).unwrap();
    b.protect_rtp(&mut y, plain.len()).unwrap();
    assert_eq!(x, y);
}

#[test]
fn suite_names_in_both_spellings() {
    for s in Suite::ALL {
        assert_eq!(Suite::from_name(s.name()), Some(s));
    }
    assert_eq!(
        Suite::from_name("AES_CM_256_HMAC_SHA1_80"),
        Some(Suite::AesCm256HmacSha1_80)
    );
    assert_eq!(
        Suite::from_name("AES_CM_256_HMAC_SHA1_32"),
        Some(Suite::AesCm256HmacSha1_32)
    );
    assert_eq!(Suite::from_name("F8_128_HMAC_SHA1_80"), None);
}
