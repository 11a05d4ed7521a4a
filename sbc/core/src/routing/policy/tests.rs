use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::routing::{Health, SourceMatch, Target as GroupTarget, TimeWindow};

const OUTSIDE: Flow = Flow(0);
const INSIDE: Flow = Flow(2);

const PBX: TargetGroupId = TargetGroupId(0);
const NIGHT: TargetGroupId = TargetGroupId(1);
const CARRIER: TargetGroupId = TargetGroupId(2);
const TRUNK_IN: TargetGroupId = TargetGroupId(3);

const PROBED: HealthConfig = HealthConfig {
    interval: Duration::from_secs(10),
    timeout: Duration::from_secs(5),
    down_after: 3,
    up_after: 2,
    only_down: false,
    first_response: None,
};
const NOT_PROBED: HealthConfig = HealthConfig {
    interval: Duration::ZERO,
    timeout: Duration::from_secs(5),
    down_after: 3,
    up_after: 2,
    only_down: false,
    first_response: None,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn target(a: &str, transport: Transport, priority: u8) -> GroupTarget {
    GroupTarget {
        addr: addr(a),
        transport,
        priority,
        weight: 1,
    }
}

fn group(
    id: TargetGroupId,
    side: Side,
    health: HealthConfig,
    targets: Vec<GroupTarget>,
) -> PolicyGroup {
    PolicyGroup {
        group: TargetGroup { id, targets },
        side,
        health,
        auth: None,
        label: None,
        media: None,
    }
}

fn route(prefix: &str, source: SourceMatch, time: Option<TimeWindow>, to: TargetGroupId) -> Route {
    Route {
        name: format!("{prefix}->{}", to.0),
        source,
        prefix: prefix.into(),
        time,
        target: to,
        number_rules: vec![],
    }
}

fn strip(prefix: &str, strip: usize, prepend: &str) -> NumberRule {
    NumberRule {
        match_prefix: prefix.into(),
        strip,
        prepend: prepend.into(),
        min_len: None,
        max_len: None,
    }
}

/// Office hours on workdays (08:00-18:00).
const OFFICE: TimeWindow = TimeWindow {
    days: TimeWindow::WORKDAYS,
    start_min: 8 * 60,
    end_min: 18 * 60,
};

const MON_NOON: LocalTime = LocalTime {
    weekday: 0,
    minute_of_day: 12 * 60,
};
const MON_NIGHT: LocalTime = LocalTime {
    weekday: 0,
    minute_of_day: 23 * 60,
};

/// A PBX group (inside, two priorities, probed), a night PBX (inside, not probed), a carrier's
/// outbound proxy (outside, with credentials) and a trunk's inbound group (inside).
fn config() -> PolicyConfig {
    let auth = Arc::new(TrunkAuth {
        username: "sbc".into(),
        password: "secret".into(),
    });
    let mut carrier = group(
        CARRIER,
        Side::Outside,
        PROBED,
        vec![target("198.51.100.1:5060", Transport::Udp, 0)],
    );
    carrier.auth = Some(auth);
    carrier.label = Some(Arc::from("trunk:carrier"));
    PolicyConfig {
        groups: vec![
            group(
                PBX,
                Side::Inside,
                PROBED,
                vec![
                    target("10.0.0.2:5060", Transport::Udp, 2),
                    target("10.0.0.1:5060", Transport::Udp, 1),
                    target("10.0.0.3:5060", Transport::Tcp, 3),
                ],
            ),
            group(
                NIGHT,
                Side::Inside,
                NOT_PROBED,
                vec![target("10.0.1.1:5060", Transport::Udp, 0)],
            ),
            carrier,
            group(
                TRUNK_IN,
                Side::Inside,
                NOT_PROBED,
                vec![target("10.0.2.1:5060", Transport::Udp, 0)],
            ),
        ],
        trunks: vec![PolicyTrunk {
            id: TrunkId(0),
            acl: vec!["203.0.113.0/28".parse().unwrap()],
            number_rules: vec![strip("0", 1, "+49")],
            inbound: Some(TRUNK_IN),
            media: None,
        }],
        routes: vec![
            route("+49", SourceMatch::Any, None, PBX),
            route("+4930", SourceMatch::Any, Some(OFFICE), PBX),
            route("+4930", SourceMatch::Any, None, NIGHT),
            route("+1", SourceMatch::Inside, None, CARRIER),
        ],
        register_group: Some(PBX),
        outside_flow: OUTSIDE,
        inside_flow: INSIDE,
    }
}

#[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
fn t0() -> Instant {
    Instant::now()
}

fn policy() -> RoutingPolicy {
    RoutingPolicy::new(config(), 0, t0())
}

fn dest(t: Option<Target>) -> Option<(SocketAddr, Option<String>)> {
    t.map(|t| (t.dest, t.user))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn trunk_recognised_by_source_address_not_by_a_neighbour() {
    let p = policy();
    assert_eq!(
        p.trunk_of(ip("203.0.113.1")).map(|t| t.id),
        Some(TrunkId(0))
    );
    assert_eq!(
        p.trunk_of(ip("203.0.113.15")).map(|t| t.id),
        Some(TrunkId(0))
    );
    assert_eq!(
        p.trunk_of(ip("::ffff:203.0.113.7")).map(|t| t.id),
        Some(TrunkId(0))
    );
    assert!(p.trunk_of(ip("203.0.113.16")).is_none(), "the next /28");
    assert!(p.trunk_of(ip("203.0.112.1")).is_none());
}

#[test]
fn trunk_number_rules_apply_before_the_route_lookup() {
    let p = policy();
    // From the trunk, 030... becomes +4930...: the Berlin route at night.
    assert_eq!(
        dest(p.route_call(Side::Outside, ip("203.0.113.2"), "0301234", MON_NIGHT)),
        Some((addr("10.0.1.1:5060"), Some("+49301234".into())))
    );
    // From anyone else the number is taken as it is: no route, no trunk to fall back on.
    assert_eq!(
        dest(p.route_call(Side::Outside, ip("203.0.113.99"), "0301234", MON_NIGHT)),
        None
    );
}

#[test]
fn longest_prefix_and_time_of_day() {
    let p = policy();
    let from = ip("192.0.2.50");
    let to = |called, time| dest(p.route_call(Side::Outside, from, called, time)).map(|d| d.0);
    // +4930 in office hours: the office rule of the longest prefix.
    assert_eq!(to("+4930555", MON_NOON), Some(addr("10.0.0.1:5060")));
    // +4930 at night: the next rule of the same prefix.
    assert_eq!(to("+4930555", MON_NIGHT), Some(addr("10.0.1.1:5060")));
    // +4940: only the shorter +49.
    assert_eq!(to("+4940555", MON_NIGHT), Some(addr("10.0.0.1:5060")));
    // +1 is for calls from the inside only.
    assert_eq!(to("+1555", MON_NOON), None);
    assert_eq!(
        dest(p.route_call(Side::Inside, ip("10.0.0.1"), "+1555", MON_NOON)).map(|d| d.0),
        Some(addr("198.51.100.1:5060"))
    );
}

#[test]
fn a_trunk_call_no_route_matches_goes_to_its_inbound_group() {
    let p = policy();
    let t = p
        .route_call(Side::Outside, ip("203.0.113.3"), "5551234", MON_NOON)
        .unwrap();
    assert_eq!(t.dest, addr("10.0.2.1:5060"));
    assert_eq!(t.user.as_deref(), Some("5551234"));
    assert_eq!(t.side, Side::Inside);
    assert_eq!(t.flow, INSIDE);
}

#[test]
fn target_choice_by_health_then_priority_with_alternates_in_order() {
    let mut p = policy();
    let to_pbx = |p: &RoutingPolicy| p.pick(PBX, Some("100".into())).unwrap();
    let t = to_pbx(&p);
    assert_eq!(t.dest, addr("10.0.0.1:5060"), "priority 1 first");
    assert!(!t.reliable);
    assert_eq!(
        t.alternates,
        vec![
            (addr("10.0.0.2:5060"), false),
            (addr("10.0.0.3:5060"), true),
        ]
    );
    assert_eq!(t.side, Side::Inside);
    assert_eq!(t.flow, INSIDE);
    assert_eq!(t.user.as_deref(), Some("100"));
    assert!(t.auth.is_none());
    // The first target stops answering its probes: Down goes after every Up target.
    let mut now = t0();
    for _ in 0..PROBED.down_after {
        while let Some((idx, probe)) = p.poll_probe(now) {
            p.handle_probe_result(now, idx, probe.dest != addr("10.0.0.1:5060"));
        }
        now += PROBED.interval;
    }
    assert_eq!(p.health().health_of(addr("10.0.0.1:5060")), Health::Down);
    let t = to_pbx(&p);
    assert_eq!(t.dest, addr("10.0.0.2:5060"));
    assert_eq!(
        t.alternates,
        vec![
            (addr("10.0.0.3:5060"), true),
            (addr("10.0.0.1:5060"), false),
        ]
    );
    // The carrier group carries its credentials and is on the outside.
    let c = p.pick(CARRIER, None).unwrap();
    assert_eq!((c.side, c.flow), (Side::Outside, OUTSIDE));
    assert_eq!(c.auth.as_ref().map(|a| a.username.as_str()), Some("sbc"));
    assert_eq!(c.label.as_deref(), Some("trunk:carrier"));
    assert!(p.pick(TargetGroupId(9), None).is_none());
}

#[test]
fn a_down_target_is_skipped_after_failed_probes_and_back_after_successes() {
    let start = t0();
    let mut p = RoutingPolicy::new(config(), 0, start);
    let first = addr("10.0.0.1:5060");
    assert_eq!(
        p.poll_timeout(),
        Some(start),
        "every probed target due at start"
    );
    let mut now = start;
    let round = |p: &mut RoutingPolicy, now: Instant, first_alive: bool| {
        let mut sent = Vec::new();
        while let Some((idx, probe)) = p.poll_probe(now) {
            sent.push((probe.dest, probe.side, probe.flow));
            p.handle_probe_result(now, idx, probe.dest != first || first_alive);
        }
        sent
    };
    let sent = round(&mut p, now, false);
    // Probed: the PBX group (inside) and the carrier (outside); the unprobed groups are not.
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert!(sent.contains(&(first, Side::Inside, INSIDE)));
    assert!(sent.contains(&(addr("198.51.100.1:5060"), Side::Outside, OUTSIDE)));
    assert!(!sent.iter().any(|s| s.0 == addr("10.0.1.1:5060")));
    for _ in 1..PROBED.down_after {
        now += PROBED.interval;
        round(&mut p, now, false);
    }
    assert_ne!(p.register_target().unwrap().dest, first, "Down: skipped");
    for _ in 0..PROBED.up_after {
        now += PROBED.interval;
        round(&mut p, now, true);
    }
    assert_eq!(p.register_target().unwrap().dest, first, "Up again");
    // A probe that is never answered counts as failed at its deadline.
    now += PROBED.interval;
    let mut outstanding = Vec::new();
    while let Some((idx, _)) = p.poll_probe(now) {
        outstanding.push(idx);
    }
    assert_eq!(outstanding.len(), 4);
    assert_eq!(p.poll_timeout(), Some(now + PROBED.timeout));
    for _ in 0..PROBED.down_after {
        p.handle_timeout(now + PROBED.timeout);
        now += PROBED.interval;
        while p.poll_probe(now).is_some() {}
    }
    assert_eq!(p.health().health_of(first), Health::Down);
}

#[test]
fn register_goes_to_the_registrar_group() {
    let p = policy();
    let t = p.register_target().unwrap();
    assert_eq!(t.dest, addr("10.0.0.1:5060"));
    assert_eq!(t.user, None);
    let mut cfg = config();
    cfg.register_group = None;
    assert!(RoutingPolicy::new(cfg, 0, t0()).register_target().is_none());
}

#[test]
fn group_sides_are_known() {
    let p = policy();
    assert_eq!(p.side_of(PBX), Some(Side::Inside));
    assert_eq!(p.side_of(CARRIER), Some(Side::Outside));
    assert_eq!(p.side_of(TargetGroupId(4)), None);
}

fn request(method: &str, uri: &str) -> Message {
    Message::parse(Bytes::from(format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.2:5060;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\nTo: <{uri}>\r\nFrom: <sip:a@203.0.113.2>;tag=1\r\nCall-ID: c1\r\n\
CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )))
    .unwrap()
}

#[test]
fn messages_route_by_method_and_request_uri_user() {
    let mut p = policy();
    let source = addr("203.0.113.2:5060");
    let r = p.router(source, MON_NIGHT);
    let invite = request("INVITE", "sip:0301234@sbc.example");
    assert_eq!(
        dest(r.route(&invite, Side::Outside).ok()),
        Some((addr("10.0.1.1:5060"), Some("+49301234".into())))
    );
    let register = request("REGISTER", "sip:sbc.example");
    assert_eq!(
        dest(r.route(&register, Side::Outside).ok()),
        Some((addr("10.0.0.1:5060"), None))
    );
    // No user part: the empty number, which only the trunk's inbound group takes.
    let bare = request("INVITE", "sip:sbc.example");
    assert_eq!(
        dest(r.route(&bare, Side::Outside).ok()),
        Some((addr("10.0.2.1:5060"), Some(String::new())))
    );
}

#[test]
fn the_weighted_order_moves_on_with_every_message() {
    let mut cfg = config();
    cfg.groups[0].group.targets = (1..=4)
        .map(|i| target(&format!("10.0.0.{i}:5060"), Transport::Udp, 0))
        .collect();
    let mut p = RoutingPolicy::new(cfg, 7, t0());
    let source = addr("192.0.2.1:5060");
    let firsts: HashSet<SocketAddr> = (0..64)
        .map(|_| {
            let r = p.router(source, MON_NOON);
            r.policy.register_target().unwrap().dest
        })
        .collect();
    assert!(firsts.len() > 1, "{firsts:?}");
    // Equal seeds give equal orders.
    let a = RoutingPolicy::new(config(), 7, t0())
        .pick(PBX, None)
        .unwrap();
    let b = RoutingPolicy::new(config(), 7, t0())
        .pick(PBX, None)
        .unwrap();
    assert_eq!((a.dest, a.alternates), (b.dest, b.alternates));
}

#[test]
fn a_disabled_target_gets_no_new_call_and_a_reload_keeps_what_was_learned() {
    let mut p = policy();
    let first =
        |p: &RoutingPolicy| dest(p.route_call(Side::Outside, ip("192.0.2.1"), "+4989", MON_NOON));
    assert_eq!(first(&p).map(|d| d.0), Some(addr("10.0.0.1:5060")));
    let one = TargetSelector {
        group: None,
        addr: Some(addr("10.0.0.1:5060")),
    };
    assert_eq!(p.set_enabled(&one, false), vec![addr("10.0.0.1:5060")]);
    let t = p
        .route_call(Side::Outside, ip("192.0.2.1"), "+4989", MON_NOON)
        .unwrap();
    assert_eq!(t.dest, addr("10.0.0.2:5060"));
    assert!(!t.alternates.iter().any(|a| a.0 == addr("10.0.0.1:5060")));
    // The whole trunk group by name; a name that is not there names nothing.
    let carrier = TargetSelector {
        group: Some("trunk:carrier".into()),
        addr: None,
    };
    assert_eq!(p.set_enabled(&carrier, false).len(), 1);
    assert!(p
        .route_call(Side::Inside, ip("10.0.0.9"), "+1555", MON_NOON)
        .is_none());
    let nothing = TargetSelector {
        group: Some("nope".into()),
        addr: None,
    };
    assert!(p.set_enabled(&nothing, false).is_empty());
    let states = p.group_states();
    assert_eq!(states.len(), 4);
    let pbx = &states[0].members;
    assert_eq!(pbx.iter().filter(|m| m.disabled).count(), 1);
    assert!(pbx.iter().all(|m| m.probed && m.health == Health::Unknown));
    assert!(!states[1].members[0].probed);

    // A failed call marks 10.0.0.2 down; a reload that drops the night group keeps that, and the
    // disabled targets that stay.
    p.mark_down(t0(), addr("10.0.0.2:5060"));
    let mut cfg = config();
    cfg.routes.retain(|r| r.target != NIGHT);
    cfg.groups[1].group.targets.clear();
    p.replace(cfg, t0());
    assert!(p.is_disabled(addr("10.0.0.1:5060")));
    assert!(p.is_disabled(addr("198.51.100.1:5060")));
    assert_eq!(p.health().health_of(addr("10.0.0.2:5060")), Health::Down);
    assert_eq!(
        dest(p.route_call(Side::Outside, ip("192.0.2.1"), "+4930111", MON_NIGHT)).map(|d| d.0),
        Some(addr("10.0.0.3:5060")),
        "night route gone: Berlin goes to the PBX group, its up member first"
    );
    assert_eq!(p.set_enabled(&one, true).len(), 1);
    assert_eq!(first(&p).map(|d| d.0), Some(addr("10.0.0.1:5060")));
}

#[test]
fn media_settings_of_the_group_and_of_the_calling_trunk_reach_the_target() {
    use crate::media::callmedia::LegOverrides;
    use crate::media::dtmf_relay::DtmfMode;
    let mut cfg = config();
    let carrier = Arc::new(LegOverrides {
        dtmf: Some(DtmfMode::Rfc4733),
        ..LegOverrides::default()
    });
    let trunk = Arc::new(LegOverrides {
        dtmf: Some(DtmfMode::Info),
        ..LegOverrides::default()
    });
    cfg.groups[CARRIER.0 as usize].media = Some(carrier.clone());
    cfg.trunks[0].media = Some(trunk.clone());
    let p = RoutingPolicy::new(cfg, 0, t0());
    // From the inside to the carrier: the carrier group's settings, no caller trunk.
    let t = p
        .route_call(Side::Inside, ip("10.0.0.1"), "+1555", MON_NOON)
        .unwrap();
    assert_eq!(t.media.as_ref(), Some(&carrier));
    assert_eq!(t.caller_media, None);
    // From the trunk to its inbound group: the trunk's settings on the caller's leg only.
    let t = p
        .route_call(Side::Outside, ip("203.0.113.3"), "5551234", MON_NOON)
        .unwrap();
    assert_eq!(t.media, None);
    assert_eq!(t.caller_media.as_ref(), Some(&trunk));
    // By a route, too.
    let t = p
        .route_call(Side::Outside, ip("203.0.113.2"), "0301234", MON_NIGHT)
        .unwrap();
    assert_eq!(t.caller_media.as_ref(), Some(&trunk));
}
