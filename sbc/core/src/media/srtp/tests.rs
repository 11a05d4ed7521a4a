use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use bytes::Bytes;
use sbc_sip::sdp::sdes::InlineKey;
use sbc_sip::Message;

use super::*;
use crate::media::anchor::{self, PlanOptions};
use crate::media::callmedia::{AnchorFault, CallMedia, MediaAnchor, MediaSettings};
use crate::media::testing::FakeMedia;

const KEY: &str = "d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj";
const SBC: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));

fn phone(proto: &str, cryptos: &[&str]) -> String {
    let mut s = format!(
        "v=0\r\no=p 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
         m=audio 4000 {proto} 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    for c in cryptos {
        s.push_str(&format!("a=crypto:{c}\r\n"));
    }
    s
}

fn pbx(proto: &str) -> String {
    format!(
        "v=0\r\no=x 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
         m=audio 5000 {proto} 0\r\n"
    )
}

fn sdes() -> LegPlan {
    LegPlan::Sdes { best_effort: false }
}

/// Run `text` through `state` as an offer (`answer` false) or answer; the body sent on.
fn run(
    state: &mut CallSrtp,
    text: &str,
    from: MediaSide,
    plans: (LegPlan, LegPlan),
    answer: bool,
) -> Result<String, Refusal> {
    let mut sdp = Sdp::parse(text.as_bytes()).unwrap();
    let plan = anchor::plan(&sdp, &PlanOptions::default()).unwrap();
    if answer {
        state.answer(&mut sdp, &plan, plans.0)?;
    } else {
        state.offer(&mut sdp, &plan, from, plans.0, plans.1)?;
    }
    Ok(String::from_utf8(sdp.to_vec()).unwrap())
}

fn cryptos(text: &str) -> Vec<(u32, String, Vec<u8>)> {
    text.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=crypto:"))
        .map(|v| {
            let c = Crypto::parse(v).unwrap();
            let k = InlineKey::parse(c.key_params).unwrap();
            (c.tag, c.suite.to_owned(), k.key_salt)
        })
        .collect()
}

fn decode(b64: &str) -> Vec<u8> {
    InlineKey::parse(&format!("inline:{b64}")).unwrap().key_salt
}

#[test]
fn an_sdes_offer_reaches_the_plain_side_as_rtp_and_the_answer_carries_the_sbcs_key() {
    let mut s = CallSrtp::default();
    let offer = phone(
        "RTP/SAVP",
        &[
            "1 F8_128_HMAC_SHA1_80 inline:abcd",
            &format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^20"),
        ],
    );
    let out = run(
        &mut s,
        &offer,
        MediaSide::A,
        (sdes(), LegPlan::Plain),
        false,
    )
    .unwrap();
    assert!(out.contains("m=audio 4000 RTP/AVP 0 101"), "{out}");
    assert!(!out.contains("crypto"), "{out}");
    assert!(s.answers(MediaSide::B.other()));
    let answer = run(
        &mut s,
        &pbx("RTP/AVP"),
        MediaSide::B,
        (LegPlan::Plain, sdes()),
        true,
    )
    .unwrap();
    assert!(answer.contains("m=audio 5000 RTP/SAVP 0"), "{answer}");
    let lines = cryptos(&answer);
    assert_eq!(lines.len(), 1, "{answer}");
    let (tag, suite, key) = &lines[0];
    assert_eq!((*tag, suite.as_str()), (2, "AES_CM_128_HMAC_SHA1_32"));
    assert_eq!(key.len(), 30);
    assert_ne!(*key, decode(KEY), "the SBC's own key, not the phone's");
    // Leg A unprotects with the phone's key (and its lifetime); leg B protects with the SBC's.
    let stages = s.changed_stages(SessionHandle::from_raw(1));
    assert_eq!(stages.len(), 2);
    let (_, _, a) = stages
        .iter()
        .find(|(_, side, _)| *side == MediaSide::A)
        .unwrap();
    let theirs = a.unprotect.as_ref().unwrap();
    assert_eq!(
        (theirs.key_salt.clone(), theirs.lifetime),
        (decode(KEY), Some(1 << 20))
    );
    assert!(a.protect.is_none());
    let (_, _, b) = stages
        .iter()
        .find(|(_, side, _)| *side == MediaSide::B)
        .unwrap();
    assert_eq!(b.protect.as_ref().unwrap().key_salt, *key);
    assert!(b.unprotect.is_none());
    assert!(!format!("{b:?}").contains(&format!("{:?}", key[0..4].to_vec())));
    // Nothing changed: nothing to give the relay again.
    assert!(s.changed_stages(SessionHandle::from_raw(1)).is_empty());
}

#[test]
fn a_plain_offer_toward_an_sdes_side_gets_the_sbcs_lines_and_the_answer_key_is_taken() {
    let mut s = CallSrtp::default();
    let out = run(
        &mut s,
        &pbx("RTP/AVP"),
        MediaSide::A,
        (LegPlan::Plain, sdes()),
        false,
    )
    .unwrap();
    assert!(out.contains("m=audio 5000 RTP/SAVP 0"), "{out}");
    let offered = cryptos(&out);
    assert_eq!(offered.len(), SUITES.len());
    assert_eq!(offered[0].1, "AES_CM_128_HMAC_SHA1_80");
    let distinct: std::collections::HashSet<_> = offered.iter().map(|o| o.2.clone()).collect();
    assert_eq!(distinct.len(), offered.len(), "a fresh key per line");
    // The phone keeps line 1 with its own key.
    let answer = phone(
        "RTP/SAVP",
        &[&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")],
    );
    let back = run(
        &mut s,
        &answer,
        MediaSide::B,
        (sdes(), LegPlan::Plain),
        true,
    )
    .unwrap();
    assert!(back.contains("m=audio 4000 RTP/AVP 0 101"), "{back}");
    assert!(!back.contains("crypto"), "{back}");
    let stages = s.changed_stages(SessionHandle::from_raw(1));
    let b = &stages
        .iter()
        .find(|(_, side, _)| *side == MediaSide::B)
        .unwrap()
        .2;
    assert_eq!(b.unprotect.as_ref().unwrap().key_salt, decode(KEY));
    let a = &stages
        .iter()
        .find(|(_, side, _)| *side == MediaSide::A)
        .unwrap()
        .2;
    assert_eq!(a.protect.as_ref().unwrap().key_salt, offered[0].2);

    // A re-offer keeps the SBC's keys (no new stage); an answer with another key re-keys only
    // the leg it came from.
    let again = run(
        &mut s,
        &pbx("RTP/AVP"),
        MediaSide::A,
        (LegPlan::Plain, sdes()),
        false,
    )
    .unwrap();
    assert_eq!(cryptos(&again)[0], offered[0], "the key in use is kept");
    let other = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    let answer = phone(
        "RTP/SAVP",
        &[&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{other}")],
    );
    run(
        &mut s,
        &answer,
        MediaSide::B,
        (sdes(), LegPlan::Plain),
        true,
    )
    .unwrap();
    let stages = s.changed_stages(SessionHandle::from_raw(1));
    assert_eq!(stages.len(), 1);
    assert_eq!(stages[0].1, MediaSide::B);
    assert_eq!(
        stages[0].2.unprotect.as_ref().unwrap().key_salt,
        decode(other)
    );
}

#[test]
fn keys_differ_between_calls_and_legs() {
    let mut keys = Vec::new();
    for _ in 0..2 {
        let mut s = CallSrtp::default();
        let offer = phone(
            "RTP/SAVP",
            &[&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")],
        );
        run(&mut s, &offer, MediaSide::A, (sdes(), sdes()), false)
            .map(|out| keys.extend(cryptos(&out).into_iter().map(|c| c.2)))
            .unwrap();

        let answer = run(
            &mut s,
            &phone(
                "RTP/SAVP",
                &[&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")],
            ),
            MediaSide::B,
            (sdes(), sdes()),
            true,
        )
        .unwrap();
        keys.extend(cryptos(&answer).into_iter().map(|c| c.2));
    }
    let distinct: std::collections::HashSet<_> = keys.iter().cloned().collect();
    assert_eq!(distinct.len(), keys.len());
    assert!(!keys.contains(&decode(KEY)));
}

#[test]
fn offers_without_a_usable_line_are_refused_with_their_reason() {
    let mki = format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4");
    let cases = [
        (phone("RTP/SAVP", &[]), Refusal::NoCrypto),
        (
            phone("RTP/SAVP", &["1 F8_128_HMAC_SHA1_80 inline:abcd"]),
            Refusal::NoSupportedSuite,
        ),
        (phone("RTP/SAVP", &[&mki]), Refusal::MkiNotSupported),
        (phone("RTP/AVP", &[]), Refusal::NoCrypto),
    ];
    for (offer, why) in cases {
        let mut s = CallSrtp::default();
        let r = run(
            &mut s,
            &offer,
            MediaSide::A,
            (sdes(), LegPlan::Plain),
            false,
        );
        assert_eq!(r, Err(why), "{offer}");
        assert!(!s.answers(MediaSide::A));
    }
    // RTP/SAVP from a side that speaks plain RTP.
    let mut s = CallSrtp::default();
    let offer = phone(
        "RTP/SAVP",
        &[&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")],
    );
    assert_eq!(
        run(
            &mut s,
            &offer,
            MediaSide::A,
            (LegPlan::Plain, sdes()),
            false
        ),
        Err(Refusal::PlainOnly)
    );
    // An answer that kept no line the SBC offered.
    let mut s = CallSrtp::default();
    run(
        &mut s,
        &pbx("RTP/AVP"),
        MediaSide::A,
        (LegPlan::Plain, sdes()),
        false,
    )
    .unwrap();
    let answer = phone(
        "RTP/SAVP",
        &[&format!("9 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")],
    );
    assert_eq!(
        run(
            &mut s,
            &answer,
            MediaSide::B,
            (sdes(), LegPlan::Plain),
            true
        ),
        Err(Refusal::NoSupportedSuite)
    );
}

#[test]
fn best_effort_falls_back_to_plain() {
    let opt = LegPlan::Sdes { best_effort: true };
    let mut s = CallSrtp::default();
    let out = run(
        &mut s,
        &pbx("RTP/AVP"),
        MediaSide::A,
        (LegPlan::Plain, opt),
        false,
    )
    .unwrap();
    assert!(
        out.contains("RTP/AVP") && out.contains("a=crypto:1 "),
        "{out}"
    );
    run(
        &mut s,
        &phone("RTP/AVP", &[]),
        MediaSide::B,
        (opt, LegPlan::Plain),
        true,
    )
    .unwrap();
    assert!(s.changed_stages(SessionHandle::from_raw(1)).is_empty());
}

fn invite(sdp: &str) -> Message {
    let text = format!(
        "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: x\r\n\
         CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    Message::parse(Bytes::from(text)).unwrap()
}

fn ok(sdp: &str) -> Message {
    let text = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: x\r\n\
         CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    Message::parse(Bytes::from(text)).unwrap()
}

#[test]
fn the_anchor_installs_the_stages_and_refuses_with_a_reason() {
    #[allow(clippy::disallowed_methods)] // the one origin of test time
    let now = Instant::now();
    let mut a = MediaAnchor::new(MediaSettings {
        address: SBC,
        no_media_timeout: None,
    });
    a.set_srtp_policy(SrtpPolicy {
        outside: SrtpMode::Srtp,
        inside: SrtpMode::Rtp,
        outside_tls: false,
        inside_tls: false,
        require_tls_for_sdes: false,
    });
    let mut r = FakeMedia::new(30000, 30039);
    let mut m = CallMedia::new(1);
    let outside = Some(("192.0.2.10".parse().unwrap(), true));
    let inside = Some(("10.0.0.2".parse().unwrap(), false));
    let offer = invite(&phone(
        "RTP/SAVP",
        &[&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")],
    ));
    let out = a
        .anchor(&mut r, now, 1, &mut m, &offer, MediaSide::A, outside)
        .unwrap()
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("RTP/AVP") && !out.contains("crypto"), "{out}");
    assert!(r.srtp.is_empty(), "stages wait for the answer");
    let answer = ok(&pbx("RTP/AVP"));
    let back = a
        .anchor(&mut r, now, 1, &mut m, &answer, MediaSide::B, inside)
        .unwrap()
        .unwrap();
    let back = String::from_utf8(back).unwrap();
    assert!(
        back.contains("RTP/SAVP") && back.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{back}"
    );
    assert_eq!(r.srtp.len(), 2);
    assert_eq!(a.stats().srtp_stages, 2);
    // The same answer again (a 200 after a 183): nothing reinstalled.
    a.anchor(&mut r, now, 1, &mut m, &answer, MediaSide::B, inside)
        .unwrap();
    assert_eq!(r.srtp.len(), 2);
    a.release(&mut r, &mut m, now);

    // The same offer with keys kept off a side that is not TLS: 488 with the reason.
    a.set_srtp_policy(SrtpPolicy {
        outside: SrtpMode::Srtp,
        inside: SrtpMode::Rtp,
        outside_tls: false,
        inside_tls: false,
        require_tls_for_sdes: true,
    });
    let mut m = CallMedia::new(2);
    let fault = a
        .anchor(&mut r, now, 2, &mut m, &offer, MediaSide::A, outside)
        .unwrap_err();
    assert_eq!(fault, AnchorFault::Srtp(Refusal::NotTls));
    assert_eq!(fault.status(), 488);
    assert_eq!(fault.warning(), Some(Refusal::NotTls.reason()));
    assert_eq!(a.stats().srtp_refused, 1);
    a.release(&mut r, &mut m, now);
}
