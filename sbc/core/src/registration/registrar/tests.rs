//! Unit tests of the binding table: RFC 3261 §10.3 rules, expiry toward each side, NAT, capacity.

use super::*;

const S: Duration = Duration::from_secs(1);

#[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
fn t0() -> Instant {
    Instant::now()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn aor(s: &str) -> Aor {
    Aor::parse(s).unwrap()
}

fn req<'a>(
    aor: &'a Aor,
    contact: &'a str,
    expires: Option<u32>,
    call_id: &'a str,
    cseq: u32,
) -> RegisterRequest<'a> {
    RegisterRequest {
        aor,
        contact: RegContact::parse(contact).unwrap(),
        source: sa("203.0.113.7:40001"),
        transport: Transport::Udp,
        connection: None,
        expires,
        call_id,
        cseq,
        nated: true,
    }
}

/// `q` as the registrar decides it, then the PBX's 2xx granting what was asked (when it was
/// forwarded): what a REGISTER does when the PBX accepts it.
fn accepted(r: &mut Registrar, now: Instant, q: &RegisterRequest<'_>) -> RegisterOutcome {
    let out = r.handle_register(now, q).unwrap();
    if let RegisterOutcome::Forward {
        change,
        pbx_expires,
        ..
    } = &out
    {
        r.commit(now, change, *pbx_expires).unwrap();
    }
    out
}

fn small(capacity: usize) -> Registrar {
    Registrar::new(RegistrarConfig {
        capacity,
        ..RegistrarConfig::default()
    })
}

#[test]
fn aor_canonical() {
    assert_eq!(
        aor("<sip:alice@EXAMPLE.com;transport=udp>").as_str(),
        "sip:alice@example.com"
    );
    assert_eq!(aor("sip:Alice@example.com"), aor("sip:Alice@Example.COM"));
    assert_ne!(aor("sip:Alice@example.com"), aor("sip:alice@example.com"));
    assert_eq!(aor("sip:%61lice@example.com"), aor("sip:alice@example.com"));
    assert_eq!(
        aor("\"A\" <sips:alice@[2001:db8::1]:5061>").as_str(),
        "sips:alice@[2001:db8::1]:5061"
    );
    assert_eq!(Aor::parse("<tel:+15551234>"), Err(RegistrarError::BadUri));
}

#[test]
fn contact_parse() {
    assert_eq!(RegContact::parse(" * ").unwrap(), RegContact::Star);
    assert_eq!(
        RegContact::parse(
            "\"A <x>\" <sip:alice@10.0.0.5:5060;ob>;expires=120;+sip.instance=\"<urn:uuid:AB>\""
        )
        .unwrap(),
        RegContact::Uri {
            uri: "sip:alice@10.0.0.5:5060;ob",
            instance: Some("\"<urn:uuid:AB>\""),
            expires: Some(120),
        }
    );
    assert_eq!(
        RegContact::parse("sip:alice@10.0.0.5;expires=0").unwrap(),
        RegContact::Uri {
            uri: "sip:alice@10.0.0.5",
            instance: None,
            expires: Some(0),
        }
    );
    assert!(RegContact::parse("<tel:+1555>").is_err());
}

#[test]
fn first_register_forwarded_then_refresh_local() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    let out = r
        .handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", Some(3600), "c1", 1))
        .unwrap();
    let RegisterOutcome::Forward {
        change: Change::Bind(new),
        reason,
        pbx_expires,
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(reason, ForwardReason::First);
    assert_eq!(new.ua_expires, 60 * S);
    assert_eq!(pbx_expires, 3600 * S);
    // nothing is bound before the PBX's 2xx
    assert!(r.is_empty());
    let key = new.key.clone();
    r.commit(t0, &Change::Bind(new), 3600 * S).unwrap();
    assert_eq!(r.get(&key).unwrap().expires_ua, t0 + 60 * S);

    let out = r
        .handle_register(
            t0 + 50 * S,
            &req(&a, "<sip:alice@10.0.0.5>", Some(3600), "c1", 2),
        )
        .unwrap();
    assert_eq!(
        out,
        RegisterOutcome::Local {
            key: key.clone(),
            ua_expires: 60 * S
        }
    );
    assert!(!out.must_forward());
    let b = r.get(&key).unwrap();
    assert_eq!(b.cseq, 2);
    assert_eq!(b.expires_ua, t0 + 110 * S);
    assert_eq!(b.pbx_until, t0 + 3600 * S);
}

#[test]
fn refresh_near_pbx_expiry_forwarded() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    accepted(
        &mut r,
        t0,
        &req(&a, "<sip:alice@10.0.0.5>", Some(300), "c1", 1),
    );
    // PBX binding until t0+300; a refresh at t0+200 needs it until t0+270: local.
    let out = r
        .handle_register(
            t0 + 200 * S,
            &req(&a, "<sip:alice@10.0.0.5>", Some(300), "c1", 2),
        )
        .unwrap();
    assert!(!out.must_forward());
    // at t0+240 the next refresh (t0+300) plus margin passes the PBX expiry: forward.
    let out = r
        .handle_register(
            t0 + 240 * S,
            &req(&a, "<sip:alice@10.0.0.5>", Some(300), "c1", 3),
        )
        .unwrap();
    let RegisterOutcome::Forward {
        change,
        reason: ForwardReason::PbxRefresh,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    let key = BindingKey::new(&a, "sip:alice@10.0.0.5", None);
    assert_eq!(r.get(&key).unwrap().pbx_until, t0 + 300 * S);
    r.commit(t0 + 240 * S, &change, 300 * S).unwrap();
    assert_eq!(r.get(&key).unwrap().pbx_until, t0 + 540 * S);
    assert_eq!(r.get(&key).unwrap().cseq, 3);
}

#[test]
fn not_nated_refresh_always_forwarded_and_contact_change() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:bob@example.com");
    let t0 = t0();
    let inst = "<sip:bob@198.51.100.4>;+sip.instance=\"<urn:uuid:1>\"";
    let mut q = req(&a, inst, Some(600), "c1", 1);
    q.nated = false;
    q.source = sa("198.51.100.4:5060");
    let out = accepted(&mut r, t0, &q);
    assert!(
        matches!(&out, RegisterOutcome::Forward { change: Change::Bind(n), .. } if n.ua_expires == 600 * S)
    );
    q.cseq = 2;
    let out = accepted(&mut r, t0 + 300 * S, &q);
    assert!(out.must_forward());
    assert_eq!(r.keepalive_due(t0 + 1000 * S), vec![]);
    // same instance, new Contact URI: one binding, forwarded
    let inst2 = "<sip:bob@198.51.100.4:5070>;+sip.instance=\"<urn:uuid:1>\"";
    let mut q2 = req(&a, inst2, Some(600), "c1", 3);
    q2.nated = false;
    let out = r.handle_register(t0 + 310 * S, &q2).unwrap();
    assert!(matches!(
        out,
        RegisterOutcome::Forward {
            reason: ForwardReason::ContactChanged,
            ..
        }
    ));
    assert_eq!(r.len(), 1);
}

#[test]
fn expires_zero_removes() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1));
    let out = r
        .handle_register(
            t0,
            &req(&a, "<sip:alice@10.0.0.5>;expires=0", None, "c1", 2),
        )
        .unwrap();
    let RegisterOutcome::Forward {
        change,
        reason: ForwardReason::Removal,
        pbx_expires: Duration::ZERO,
    } = &out
    else {
        panic!("{out:?}")
    };
    // removed only by the PBX's 2xx
    assert_eq!(r.len(), 1);
    assert_eq!(r.commit(t0, change, Duration::ZERO).unwrap().len(), 1);
    assert!(r.is_empty());
    assert_eq!(r.lookup(&a).count(), 0);
    assert_eq!(r.next_deadline(), None);
    // unknown binding: nothing to tell the PBX
    let out = r
        .handle_register(t0, &req(&a, "<sip:alice@10.0.0.6>", Some(0), "c1", 3))
        .unwrap();
    assert!(!out.must_forward());
}

#[test]
fn star_removes_all() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let b = aor("sip:bob@example.com");
    let t0 = t0();
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1));
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.6>", None, "c2", 1));
    accepted(&mut r, t0, &req(&b, "<sip:bob@10.0.0.7>", None, "c3", 1));
    assert_eq!(
        r.handle_register(t0, &req(&a, "*", Some(3600), "c9", 1)),
        Err(RegistrarError::InvalidStar)
    );
    assert_eq!(
        r.handle_register(t0, &req(&a, "*", None, "c9", 1)),
        Err(RegistrarError::InvalidStar)
    );
    // stale against c1's binding: nothing removed
    assert_eq!(
        r.handle_register(t0, &req(&a, "*", Some(0), "c1", 1)),
        Err(RegistrarError::Stale)
    );
    assert_eq!(r.lookup(&a).count(), 2);
    let out = r
        .handle_register(t0, &req(&a, "*", Some(0), "c9", 1))
        .unwrap();
    let RegisterOutcome::Forward { change, .. } = &out else {
        panic!("{out:?}")
    };
    assert_eq!(change, &Change::RemoveAll(a.clone()));
    assert_eq!(r.lookup(&a).count(), 2);
    assert_eq!(r.commit(t0, change, Duration::ZERO).unwrap().len(), 2);
    assert_eq!(r.lookup(&a).count(), 0);
    assert_eq!(r.lookup(&b).count(), 1);
}

#[test]
fn stale_cseq_ignored() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 5));
    for cseq in [5, 4] {
        let e = r
            .handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", Some(0), "c1", cseq))
            .unwrap_err();
        assert_eq!(e, RegistrarError::Stale);
        assert_eq!(e.status_code(), 500);
    }
    assert_eq!(r.len(), 1);
    // another Call-ID (the UA rebooted) may use any CSeq
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c2", 1));
    assert_eq!(
        r.get(&BindingKey::new(&a, "sip:alice@10.0.0.5", None))
            .unwrap()
            .call_id,
        "c2"
    );
}

#[test]
fn expiry_bounds() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    let e = r
        .handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", Some(30), "c1", 1))
        .unwrap_err();
    assert_eq!(e, RegistrarError::IntervalTooBrief { min: 60 * S });
    assert_eq!(e.status_code(), 423);
    let out = r
        .handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", Some(86_400), "c1", 2))
        .unwrap();
    assert!(matches!(out, RegisterOutcome::Forward { pbx_expires, .. } if pbx_expires == 3600 * S));
}

#[test]
fn capacity_full() {
    let mut r = small(2);
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1));
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.6>", None, "c2", 1));
    let e = r
        .handle_register(t0, &req(&a, "<sip:alice@10.0.0.7>", None, "c3", 1))
        .unwrap_err();
    assert_eq!(e, RegistrarError::Full);
    assert_eq!(e.status_code(), 503);
    assert_eq!(r.lookup(&a).count(), 2);
    // a refresh of a held binding still works
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 2));

    let mut r = Registrar::new(RegistrarConfig {
        max_contacts_per_aor: 1,
        ..RegistrarConfig::default()
    });
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1));
    assert_eq!(
        r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.6>", None, "c2", 1)),
        Err(RegistrarError::TooManyContacts)
    );
}

#[test]
fn expiry_order() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    let mut late = req(&a, "<sip:alice@10.0.0.5>", Some(600), "c1", 1);
    late.nated = false;
    accepted(&mut r, t0, &late); // expires t0+600
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.6>", None, "c2", 1)); // NATed: t0+60
    accepted(
        &mut r,
        t0 + 10 * S,
        &req(&a, "<sip:alice@10.0.0.7>", None, "c3", 1),
    ); // t0+70
    assert_eq!(r.poll_expired(t0 + 59 * S), None);
    let order: Vec<_> = std::iter::from_fn(|| r.poll_expired(t0 + 600 * S))
        .map(|b| b.contact_uri)
        .collect();
    assert_eq!(
        order,
        [
            "sip:alice@10.0.0.6",
            "sip:alice@10.0.0.7",
            "sip:alice@10.0.0.5"
        ]
    );
    assert!(r.is_empty());
    assert_eq!(r.lookup(&a).count(), 0);
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn lookup_after_nat_keeps_source() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    let mut q = req(
        &a,
        "<sip:alice@192.168.1.10:5060;transport=tcp>",
        None,
        "c1",
        1,
    );
    q.transport = Transport::Tcp;
    q.connection = Some(42);
    q.source = sa("203.0.113.7:53122");
    accepted(&mut r, t0, &q);
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.6>", None, "c2", 1));
    let found: Vec<_> = r.lookup(&aor("sip:alice@EXAMPLE.COM")).collect();
    assert_eq!(found.len(), 2);
    let tcp = found
        .iter()
        .find(|b| b.transport == Transport::Tcp)
        .unwrap();
    assert_eq!(tcp.source, sa("203.0.113.7:53122"));
    assert_eq!(tcp.connection, Some(42));
    assert_eq!(tcp.contact_uri, "sip:alice@192.168.1.10:5060;transport=tcp");
    assert!(tcp.transport.is_reliable());
    assert_eq!(r.lookup(&aor("sip:ALICE@example.com")).count(), 0);
}

#[test]
fn keepalive_schedule() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1));
    let mut direct = req(&a, "<sip:alice@198.51.100.4>", None, "c2", 1);
    direct.nated = false;
    accepted(&mut r, t0, &direct);
    assert_eq!(r.next_deadline(), Some(t0 + 25 * S));
    assert!(r.keepalive_due(t0 + 24 * S).is_empty());
    let due = r.keepalive_due(t0 + 25 * S);
    assert_eq!(due.len(), 1);
    assert_eq!(due.first().unwrap().source, sa("203.0.113.7:40001"));
    assert_eq!(due.first().unwrap().transport, Transport::Udp);
    assert!(r.keepalive_due(t0 + 49 * S).is_empty());
    assert_eq!(r.keepalive_due(t0 + 50 * S).len(), 1);
    // a refresh re-arms one interval after it
    accepted(
        &mut r,
        t0 + 55 * S,
        &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 2),
    );
    assert!(r.keepalive_due(t0 + 79 * S).is_empty());
    assert_eq!(r.keepalive_due(t0 + 80 * S).len(), 1);
    // removed binding: no more keep-alives
    r.remove(&BindingKey::new(&a, "sip:alice@10.0.0.5", None))
        .unwrap();
    assert!(r.keepalive_due(t0 + 200 * S).is_empty());
}

#[test]
fn pbx_grants_less() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    let mut q = req(&a, "<sip:alice@198.51.100.4>", Some(3600), "c1", 1);
    q.nated = false;
    let RegisterOutcome::Forward { change, .. } = r.handle_register(t0, &q).unwrap() else {
        panic!()
    };
    r.commit(t0, &change, 120 * S).unwrap();
    let key = change.key().unwrap();
    assert_eq!(r.get(key).unwrap().expires_ua, t0 + 120 * S);
    assert_eq!(r.poll_expired(t0 + 119 * S), None);
    assert!(r.poll_expired(t0 + 120 * S).is_some());
}

#[test]
fn only_the_bindings_own_flow_and_call_id_refresh_locally() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1));
    let key = BindingKey::new(&a, "sip:alice@10.0.0.5", None);
    let stranger = |call_id, cseq, source: &str, connection| {
        let mut q = req(&a, "<sip:alice@10.0.0.5>", None, call_id, cseq);
        q.source = sa(source);
        q.connection = connection;
        q
    };
    for q in [
        stranger("evil", 1, "198.51.100.66:5060", None),
        stranger("c1", 2, "198.51.100.66:5060", None),
        stranger("evil", 9, "203.0.113.7:40001", None),
        stranger("c1", 2, "203.0.113.7:40001", Some(7)),
    ] {
        let out = r.handle_register(t0 + S, &q).unwrap();
        assert!(
            matches!(
                out,
                RegisterOutcome::Forward {
                    reason: ForwardReason::Moved,
                    ..
                }
            ),
            "{out:?}"
        );
        let b = r.get(&key).unwrap();
        assert_eq!(b.source, sa("203.0.113.7:40001"));
        assert_eq!((b.call_id.as_str(), b.cseq), ("c1", 1));
    }
    // The same device (+sip.instance) claimed with another Contact: asked of the PBX too.
    let inst = "<sip:alice@10.0.0.9>;+sip.instance=\"<urn:uuid:A>\"";
    accepted(&mut r, t0, &req(&a, inst, None, "c7", 1));
    let ikey = BindingKey::new(&a, "sip:alice@10.0.0.9", Some("\"<urn:uuid:A>\""));
    let mut q = req(
        &a,
        "<sip:evil@198.51.100.66>;+sip.instance=\"<urn:uuid:A>\"",
        None,
        "evil",
        1,
    );
    q.source = sa("198.51.100.66:5060");
    assert!(r.handle_register(t0 + S, &q).unwrap().must_forward());
    assert_eq!(r.get(&ikey).unwrap().contact_uri, "sip:alice@10.0.0.9");
    // The PBX accepted the move: the binding follows the new source and Call-ID.
    let q = stranger("moved", 1, "198.51.100.66:5060", None);
    let out = accepted(&mut r, t0 + 2 * S, &q);
    assert!(out.must_forward());
    let b = r.get(&key).unwrap();
    assert_eq!(b.source, sa("198.51.100.66:5060"));
    assert_eq!(b.call_id, "moved");
    // Its own refresh now stays local.
    let q = stranger("moved", 2, "198.51.100.66:5060", None);
    assert!(matches!(
        r.handle_register(t0 + 3 * S, &q).unwrap(),
        RegisterOutcome::Local { .. }
    ));
    assert_eq!(r.get(&key).unwrap().cseq, 2);
}

#[test]
fn removals_wait_for_the_pbx() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1));
    let mut q = req(&a, "*", Some(0), "evil", 1);
    q.source = sa("198.51.100.66:5060");
    assert!(r.handle_register(t0, &q).unwrap().must_forward());
    let mut q = req(&a, "<sip:alice@10.0.0.5>", Some(0), "evil", 2);
    q.source = sa("198.51.100.66:5060");
    assert!(r.handle_register(t0, &q).unwrap().must_forward());
    // No 2xx came: the binding is still there.
    assert_eq!(r.lookup(&a).count(), 1);
    // A removal of nothing changes nothing and needs no PBX.
    let b = aor("sip:bob@example.com");
    assert_eq!(
        r.handle_register(t0, &req(&b, "*", Some(0), "x", 1)),
        Ok(RegisterOutcome::Unchanged)
    );
}

#[test]
fn absurd_expiries_are_cut_never_overflow() {
    assert_eq!(parse_expires("18446744073709551615"), Some(u32::MAX));
    assert_eq!(parse_expires("9223372036854775808"), Some(u32::MAX));
    assert_eq!(parse_expires(" 3600 "), Some(3600));
    for bad in ["-1", "", "abc", "12a", "+5", "1.5"] {
        assert_eq!(parse_expires(bad), None, "{bad}");
    }
    assert_eq!(
        RegContact::parse("<sip:a@10.0.0.5>;expires=18446744073709551615").unwrap(),
        RegContact::Uri {
            uri: "sip:a@10.0.0.5",
            instance: None,
            expires: Some(u32::MAX),
        }
    );
    let t0 = t0();
    assert_eq!(deadline_after(t0, Duration::MAX), t0 + EXPIRES_CAP);

    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    // The UA asks 2^32-1 s: the PBX is asked the maximum.
    let mut q = req(&a, "<sip:alice@10.0.0.5>", Some(u32::MAX), "c1", 1);
    q.nated = false;
    let RegisterOutcome::Forward {
        change,
        pbx_expires,
        ..
    } = r.handle_register(t0, &q).unwrap()
    else {
        panic!()
    };
    assert_eq!(pbx_expires, 3600 * S);
    // The PBX grants 2^64-1 s: taken as what was asked.
    r.commit(t0, &change, Duration::from_secs(u64::MAX))
        .unwrap();
    let b = r.get(change.key().unwrap()).unwrap();
    assert_eq!(b.pbx_until, t0 + 3600 * S);
    assert_eq!(b.expires_ua, t0 + 3600 * S);
    assert_eq!(b.expires_pbx, 3600 * S);
}

#[test]
fn an_overtaken_answer_changes_nothing() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    let RegisterOutcome::Forward { change: old, .. } = r
        .handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1))
        .unwrap()
    else {
        panic!()
    };
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 2));
    r.commit(t0, &old, 3600 * S).unwrap();
    assert_eq!(r.get(old.key().unwrap()).unwrap().cseq, 2);
}

#[test]
fn export_and_restore() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    accepted(&mut r, t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1));
    let stored: Vec<_> = r
        .export(t0 + 10 * S)
        .map(|(b, ua, pbx)| (b.clone(), ua, pbx))
        .collect();
    assert_eq!(stored.len(), 1);
    let (b, ua, pbx) = stored.first().cloned().unwrap();
    assert_eq!((ua, pbx), (50 * S, 3590 * S));

    let mut again = Registrar::new(RegistrarConfig::default());
    let t1 = t0 + 100 * S;
    let key = again.restore(t1, b.clone(), ua, pbx).unwrap();
    let restored = again.get(&key).unwrap();
    assert_eq!(restored.source, b.source);
    assert_eq!(restored.expires_ua, t1 + 50 * S);
    assert_eq!(again.lookup(&a).count(), 1);
    // twice, or with no time left: refused
    assert!(again.restore(t1, b.clone(), ua, pbx).is_err());
    let mut empty = Registrar::new(RegistrarConfig::default());
    assert!(empty.restore(t1, b, Duration::ZERO, pbx).is_err());
    assert!(empty.is_empty());
}
