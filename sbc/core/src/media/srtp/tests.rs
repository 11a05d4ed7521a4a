use sbc_sip::sdp::sdes::InlineKey;

use super::*;
use crate::media::anchor::{self, PlanOptions};

pub(crate) const KEY: &str = "d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj";

pub(crate) fn phone(proto: &str, cryptos: &[&str]) -> String {
    let mut s = format!(
        "v=0\r\no=p 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
         m=audio 4000 {proto} 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    for c in cryptos {
        s.push_str(&format!("a=crypto:{c}\r\n"));
    }
    s
}

pub(crate) fn pbx(proto: &str) -> String {
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
