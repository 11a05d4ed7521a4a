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
        key,
        reason,
        ua_expires,
        pbx_expires,
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(reason, ForwardReason::First);
    assert_eq!(ua_expires, 60 * S);
    assert_eq!(pbx_expires, 3600 * S);
    assert_eq!(r.pbx_confirmed(&key, t0, 3600 * S), Some(60 * S));

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
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", Some(300), "c1", 1))
        .unwrap();
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
    assert!(matches!(
        out,
        RegisterOutcome::Forward {
            reason: ForwardReason::PbxRefresh,
            ..
        }
    ));
    let key = BindingKey::new(&a, "sip:alice@10.0.0.5", None);
    assert_eq!(r.get(&key).unwrap().pbx_until, t0 + 540 * S);
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
    let out = r.handle_register(t0, &q).unwrap();
    assert!(matches!(out, RegisterOutcome::Forward { ua_expires, .. } if ua_expires == 600 * S));
    q.cseq = 2;
    let out = r.handle_register(t0 + 300 * S, &q).unwrap();
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
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1))
        .unwrap();
    let out = r
        .handle_register(
            t0,
            &req(&a, "<sip:alice@10.0.0.5>;expires=0", None, "c1", 2),
        )
        .unwrap();
    let RegisterOutcome::Removed { bindings } = &out else {
        panic!("{out:?}")
    };
    assert_eq!(bindings.len(), 1);
    assert!(out.must_forward());
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
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1))
        .unwrap();
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.6>", None, "c2", 1))
        .unwrap();
    r.handle_register(t0, &req(&b, "<sip:bob@10.0.0.7>", None, "c3", 1))
        .unwrap();
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
    assert!(matches!(&out, RegisterOutcome::Removed { bindings } if bindings.len() == 2));
    assert_eq!(r.lookup(&a).count(), 0);
    assert_eq!(r.lookup(&b).count(), 1);
}

#[test]
fn stale_cseq_ignored() {
    let mut r = Registrar::new(RegistrarConfig::default());
    let a = aor("sip:alice@example.com");
    let t0 = t0();
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 5))
        .unwrap();
    for cseq in [5, 4] {
        let e = r
            .handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", Some(0), "c1", cseq))
            .unwrap_err();
        assert_eq!(e, RegistrarError::Stale);
        assert_eq!(e.status_code(), 500);
    }
    assert_eq!(r.len(), 1);
    // another Call-ID (the UA rebooted) may use any CSeq
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c2", 1))
        .unwrap();
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
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1))
        .unwrap();
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.6>", None, "c2", 1))
        .unwrap();
    let e = r
        .handle_register(t0, &req(&a, "<sip:alice@10.0.0.7>", None, "c3", 1))
        .unwrap_err();
    assert_eq!(e, RegistrarError::Full);
    assert_eq!(e.status_code(), 503);
    assert_eq!(r.lookup(&a).count(), 2);
    // a refresh of a held binding still works
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 2))
        .unwrap();

    let mut r = Registrar::new(RegistrarConfig {
        max_contacts_per_aor: 1,
        ..RegistrarConfig::default()
    });
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1))
        .unwrap();
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
    r.handle_register(t0, &late).unwrap(); // expires t0+600
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.6>", None, "c2", 1))
        .unwrap(); // NATed: t0+60
    r.handle_register(t0 + 10 * S, &req(&a, "<sip:alice@10.0.0.7>", None, "c3", 1))
        .unwrap(); // t0+70
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
    r.handle_register(t0, &q).unwrap();
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.6>", None, "c2", 1))
        .unwrap();
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
    r.handle_register(t0, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 1))
        .unwrap();
    let mut direct = req(&a, "<sip:alice@198.51.100.4>", None, "c2", 1);
    direct.nated = false;
    r.handle_register(t0, &direct).unwrap();
    assert_eq!(r.next_deadline(), Some(t0 + 25 * S));
    assert!(r.keepalive_due(t0 + 24 * S).is_empty());
    let due = r.keepalive_due(t0 + 25 * S);
    assert_eq!(due.len(), 1);
    assert_eq!(due.first().unwrap().source, sa("203.0.113.7:40001"));
    assert_eq!(due.first().unwrap().transport, Transport::Udp);
    assert!(r.keepalive_due(t0 + 49 * S).is_empty());
    assert_eq!(r.keepalive_due(t0 + 50 * S).len(), 1);
    // a refresh re-arms one interval after it
    r.handle_register(t0 + 55 * S, &req(&a, "<sip:alice@10.0.0.5>", None, "c1", 2))
        .unwrap();
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
    let RegisterOutcome::Forward { key, .. } = r.handle_register(t0, &q).unwrap() else {
        panic!()
    };
    assert_eq!(r.pbx_confirmed(&key, t0, 120 * S), Some(120 * S));
    assert_eq!(r.poll_expired(t0 + 119 * S), None);
    assert!(r.poll_expired(t0 + 120 * S).is_some());
    assert_eq!(r.pbx_confirmed(&key, t0, 120 * S), None);
}
