use std::time::Duration;

use super::*;

const INVITE: &[u8] = b"INVITE sip:1000@sbc SIP/2.0\r\n";
const REGISTER: &[u8] = b"REGISTER sip:sbc SIP/2.0\r\n";
const OPTIONS: &[u8] = b"OPTIONS sip:sbc SIP/2.0\r\n";
const GARBAGE: &[u8] = b"\x00\x01\x02 garbage";

#[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
fn t0() -> Instant {
    Instant::now()
}

fn src(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn trunk(id: u32, acl: &[&str]) -> PolicyTrunk {
    PolicyTrunk {
        id: TrunkId(id),
        acl: acl.iter().map(|c| c.parse().unwrap()).collect(),
        number_rules: Vec::new(),
        inbound: None,
        media: None,
    }
}

fn config(cps: f64) -> GuardConfig {
    GuardConfig {
        cps,
        trunks: vec![
            trunk(0, &["203.0.113.0/28"]),
            trunk(1, &["198.51.100.7", "2001:db8::/32"]),
        ],
        inside: vec!["10.0.0.1".parse().unwrap()],
        allow: vec!["192.0.2.128/25".parse().unwrap()],
        policy: GuardPolicy::default(),
        seed: 7,
    }
}

fn guard(cps: f64) -> Guard {
    Guard::new(config(cps))
}

fn refused(g: &mut Guard, now: Instant, n: usize) -> usize {
    (0..n)
        .filter(|_| g.admit(now, src("192.0.2.1:5060"), Kind::Invite, None) != Admission::Admit)
        .count()
}

#[test]
fn new_calls_over_the_rate_are_refused_with_503_retry_after_1() {
    let mut g = guard(2.0);
    let now = t0();
    // One second's worth (two tokens), then refusals.
    assert_eq!(refused(&mut g, now, 5), 3);
    assert_eq!(
        g.admit(now, src("192.0.2.1:5060"), Kind::Invite, None),
        Admission::Refuse(Refusal {
            code: 503,
            reason: "Service Unavailable",
            retry_after: Some(1),
        })
    );
    // Other kinds are never counted against the rate.
    for kind in [Kind::Register, Kind::Options, Kind::Other, Kind::Malformed] {
        assert_eq!(
            g.admit(now, src("192.0.2.1:5060"), kind, None),
            Admission::Admit
        );
    }
    let s = g.stats();
    assert_eq!(
        (s.guard_admitted, s.cps_refused, s.guard_dropped),
        (6, 4, 0)
    );
}

#[test]
fn the_bucket_refills_at_the_rate_up_to_one_second() {
    let mut g = guard(2.0);
    let now = t0();
    assert_eq!(refused(&mut g, now, 3), 1);
    // Half a second: one token back.
    let half = now + Duration::from_millis(500);
    assert_eq!(refused(&mut g, half, 2), 1);
    // A long pause refills one second's worth, not more.
    let later = half + Duration::from_secs(60);
    assert_eq!(refused(&mut g, later, 3), 1);
    // Under one call per second the bucket still holds one call.
    let mut slow = guard(0.5);
    assert_eq!(refused(&mut slow, now, 2), 1);
    assert_eq!(refused(&mut slow, now + Duration::from_secs(1), 1), 1);
    assert_eq!(refused(&mut slow, now + Duration::from_secs(3), 1), 0);
}

#[test]
fn without_a_rate_nothing_is_refused() {
    let mut g = guard(0.0);
    assert_eq!(refused(&mut g, t0(), 1000), 0);
    assert_eq!(
        g.admit_datagram(t0(), src("192.0.2.1:5060"), Side::Outside, INVITE),
        Admission::Admit
    );
}

#[test]
fn trusted_sources_are_classified() {
    let g = guard(0.0);
    let cases = [
        ("203.0.113.1", SourceClass::Trunk(TrunkId(0))),
        ("203.0.113.15", SourceClass::Trunk(TrunkId(0))),
        ("203.0.113.16", SourceClass::Unknown),
        ("198.51.100.7", SourceClass::Trunk(TrunkId(1))),
        ("198.51.100.8", SourceClass::Unknown),
        ("2001:db8::5", SourceClass::Trunk(TrunkId(1))),
        ("::ffff:203.0.113.2", SourceClass::Trunk(TrunkId(0))),
        ("10.0.0.1", SourceClass::Inside),
        ("::ffff:10.0.0.1", SourceClass::Inside),
        ("10.0.0.2", SourceClass::Unknown),
        ("192.0.2.200", SourceClass::Allowed),
        ("192.0.2.1", SourceClass::Unknown),
    ];
    for (ip, want) in cases {
        let got = g.classify(ip.parse().unwrap());
        assert_eq!(got, want, "{ip}");
        assert_eq!(got.is_trusted(), want != SourceClass::Unknown);
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Send `n` datagrams `raw` from `from` spread evenly over `over`, starting at `at`; the verdicts.
fn burst(
    g: &mut Guard,
    at: Instant,
    over: Duration,
    from: &str,
    raw: &[u8],
    n: u32,
) -> (u32, u32, u32) {
    let (mut admit, mut refuse, mut drop) = (0, 0, 0);
    for i in 0..n {
        let now = at + over.mul_f64(f64::from(i) / f64::from(n.max(1)));
        match g.admit_datagram(now, src(from), Side::Outside, raw) {
            Admission::Admit => admit += 1,
            Admission::Refuse(_) => refuse += 1,
            Admission::Drop => drop += 1,
        }
    }
    (admit, refuse, drop)
}

#[test]
fn the_kind_is_read_from_the_first_bytes() {
    assert_eq!(Kind::sniff(INVITE), Kind::Invite);
    assert_eq!(Kind::sniff(REGISTER), Kind::Register);
    assert_eq!(Kind::sniff(OPTIONS), Kind::Options);
    assert_eq!(Kind::sniff(b"BYE sip:a SIP/2.0\r\n"), Kind::Other);
    assert_eq!(Kind::sniff(b"SIP/2.0 200 OK\r\n"), Kind::Other);
    assert_eq!(Kind::sniff(b"\r\n\r\n"), Kind::Other);
    for raw in [
        GARBAGE,
        b"",
        b"invite sip:a SIP/2.0",
        b"AVERYLONGMETHODNAMEXX sip:a",
    ] {
        assert_eq!(Kind::sniff(raw), Kind::Malformed, "{raw:?}");
    }
}

#[test]
fn a_flood_is_answered_a_few_times_then_dropped_and_banned_until_the_ban_ends() {
    let mut g = guard(0.0);
    let now = t0();
    // 20,000 INVITEs in one second: the burst (200) passes, five are answered 503, the source is
    // banned at the 1000th over budget, and everything after is dropped.
    let (admit, refuse, drop) = burst(&mut g, now, ms(1000), "192.0.2.9:5060", INVITE, 20_000);
    assert!((200..=210).contains(&admit), "{admit}");
    assert_eq!(refuse, 5);
    assert_eq!(admit + refuse + drop, 20_000);
    let s = g.stats();
    assert_eq!(s.bans_flood, 1);
    assert_eq!(s.guard_rate_refused, 5);
    assert_eq!(s.guard_dropped, u64::from(drop));
    assert!(s.guard_banned_dropped > 18_000, "{s:?}");
    let bans = g.bans(now + ms(1000));
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].reason, BanReason::Flood);
    assert_eq!(bans[0].level, 1);
    // Other kinds from the banned source are dropped too; another source is not touched.
    let later = now + ms(30_000);
    assert_eq!(
        g.admit_datagram(later, src("192.0.2.9:5060"), Side::Outside, OPTIONS),
        Admission::Drop
    );
    assert_eq!(
        g.admit_datagram(later, src("192.0.2.10:5060"), Side::Outside, INVITE),
        Admission::Admit
    );
    // The ban (60 s from its start) ends on time.
    let start = now + ms(50);
    let end = start + Duration::from_secs(60);
    assert_eq!(
        g.admit_datagram(end - ms(100), src("192.0.2.9:5060"), Side::Outside, OPTIONS),
        Admission::Drop
    );
    assert_eq!(
        g.admit_datagram(end + ms(100), src("192.0.2.9:5060"), Side::Outside, OPTIONS),
        Admission::Admit
    );
    // A second flood soon after: banned again, twice as long.
    burst(
        &mut g,
        end + ms(200),
        ms(500),
        "192.0.2.9:5060",
        INVITE,
        5000,
    );
    let bans = g.bans(end + ms(1000));
    assert_eq!(bans[0].level, 2);
    assert!(bans[0].remaining_ms.unwrap() > 118_000, "{bans:?}");
}

#[test]
fn a_source_within_its_budget_is_never_refused() {
    let mut g = guard(0.0);
    // 90 INVITEs a second for a minute (budget: 100/s).
    let (admit, refuse, drop) = burst(&mut g, t0(), ms(60_000), "192.0.2.9:5060", INVITE, 5400);
    assert_eq!((admit, refuse, drop), (5400, 0, 0));
}

#[test]
fn over_budget_never_answers_more_than_it_receives() {
    let mut g = guard(0.0);
    let mut cfg = config(0.0);
    cfg.policy.flood_ban = 0;
    let mut g2 = Guard::new(cfg);
    for g in [&mut g, &mut g2] {
        let (admit, refuse, drop) = burst(g, t0(), ms(10_000), "192.0.2.9:5060", GARBAGE, 10_000);
        assert_eq!(admit + refuse + drop, 10_000);
        // Garbage is never answered by the guard.
        assert_eq!(refuse, 0);
        assert!(admit <= 20 + 10 * 10 + 1, "{admit}");
    }
    // Without a flood ban: at most `answered_per_sec` answers a second.
    let (_, refuse, _) = burst(&mut g2, t0(), ms(3_000), "192.0.2.7:5060", REGISTER, 30_000);
    assert!(refuse <= 4 * 5, "{refuse}");
    assert_eq!(g2.stats().bans_flood, 0);
}

#[test]
fn trusted_sources_have_their_own_budget_and_are_never_banned() {
    let mut g = guard(0.0);
    let now = t0();
    for who in ["10.0.0.1:5060", "203.0.113.2:5060", "192.0.2.200:5060"] {
        // 9,000 OPTIONS in one second: within the trusted budget.
        let (admit, _, _) = burst(&mut g, now, ms(1000), who, OPTIONS, 9_000);
        assert_eq!(admit, 9_000, "{who}");
        // 100,000 in one second: past it, but never banned.
        burst(&mut g, now + ms(2000), ms(1000), who, OPTIONS, 100_000);
        assert_eq!(
            g.admit_datagram(now + ms(5000), src(who), Side::Outside, OPTIONS),
            Admission::Admit
        );
    }
    assert_eq!(g.stats().bans_flood, 0);
    assert!(g.bans(now + ms(5000)).is_empty());
}

#[test]
fn a_pbx_sending_options_for_2000_users_every_30_s_is_not_banned() {
    let mut g = guard(0.0);
    let now = t0();
    for round in 0..4u64 {
        let at = now + Duration::from_secs(30 * round);
        // All 2,000 within 200 ms, on the inside port.
        for i in 0..2000u64 {
            let t = at + Duration::from_micros(i * 100);
            assert_eq!(
                g.admit_datagram(t, src("10.0.0.1:5060"), Side::Inside, OPTIONS),
                Admission::Admit
            );
        }
    }
}

#[test]
fn a_spoofed_flood_over_many_sources_keeps_the_table_at_its_size() {
    let mut cfg = config(0.0);
    cfg.policy.max_sources = 1024;
    let mut g = Guard::new(cfg);
    let cap = g.capacity();
    assert_eq!(cap, 1024);
    let now = t0();
    // A regular caller first.
    assert_eq!(
        g.admit_datagram(now, src("192.0.2.77:5060"), Side::Outside, INVITE),
        Admission::Admit
    );
    for i in 0..100_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a80_0000 + i);
        let from = SocketAddr::from((ip, 5060));
        let t = now + Duration::from_micros(u64::from(i) * 10);
        g.admit_datagram(t, from, Side::Outside, INVITE);
    }
    let s = g.stats();
    assert!(s.guard_sources <= cap as u64);
    assert!(s.guard_sources_evicted >= 100_000 - cap as u64, "{s:?}");
    // A flooder banned before the spoofed storm stays banned through it.
    burst(
        &mut g,
        now + ms(2000),
        ms(500),
        "192.0.2.9:5060",
        INVITE,
        5000,
    );
    for i in 0..100_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a90_0000 + i);
        g.admit_datagram(
            now + ms(3000),
            SocketAddr::from((ip, 5060)),
            Side::Outside,
            GARBAGE,
        );
    }
    assert_eq!(
        g.admit_datagram(now + ms(4000), src("192.0.2.9:5060"), Side::Outside, INVITE),
        Admission::Drop
    );
}

fn answer(g: &mut Guard, now: Instant, from: &str, kind: Kind, status: u16, credentials: bool) {
    let s = src(from);
    g.admit_datagram(now, s, Side::Outside, REGISTER);
    g.on_final(
        now,
        s.ip(),
        Final {
            kind,
            status,
            credentials,
        },
    );
}

fn banned(g: &mut Guard, now: Instant, from: &str) -> bool {
    g.admit_datagram(now, src(from), Side::Outside, OPTIONS) == Admission::Drop
}

#[test]
fn a_password_guesser_is_banned_at_the_second_refused_credentials() {
    let mut g = guard(0.0);
    let now = t0();
    let who = "192.0.2.50:5070";
    // The first challenge (no credentials) is normal.
    answer(&mut g, now, who, Kind::Register, 401, false);
    answer(&mut g, now, who, Kind::Register, 401, true);
    assert!(!banned(&mut g, now, who));
    answer(&mut g, now, who, Kind::Register, 403, true);
    assert!(banned(&mut g, now, who));
    assert_eq!(g.stats().bans_auth_failures, 1);
    assert_eq!(g.bans(now)[0].reason, BanReason::AuthFailures);
}

#[test]
fn an_extension_sweep_is_banned_at_the_third_unknown_user() {
    let mut g = guard(0.0);
    let now = t0();
    let who = "192.0.2.51:5070";
    answer(&mut g, now, who, Kind::Invite, 404, false);
    answer(&mut g, now, who, Kind::Register, 404, false);
    assert!(!banned(&mut g, now, who));
    answer(&mut g, now, who, Kind::Register, 404, false);
    assert!(banned(&mut g, now, who));
    assert_eq!(g.stats().bans_unknown_users, 1);
    // Failures far apart never add up.
    let who = "192.0.2.52:5070";
    for i in 0..10 {
        let at = now + Duration::from_secs(700 * i);
        answer(&mut g, at, who, Kind::Register, 404, false);
        answer(&mut g, at, who, Kind::Register, 404, false);
        assert!(!banned(&mut g, at, who));
    }
}

#[test]
fn a_site_of_2000_phones_re_registering_in_10_s_is_not_banned_nor_refused() {
    let mut g = guard(0.0);
    let now = t0();
    let site = src("192.0.2.60:5060");
    let mut refused = 0;
    for i in 0..2000u64 {
        let t = now + Duration::from_micros(i * 5000);
        // Each phone: REGISTER → 401 challenge, REGISTER with credentials → 200; one phone in 50
        // has a stale password (403), one in 100 was removed at the PBX (404).
        for (status, creds) in [(401, false), (200, true)] {
            let (status, creds) = match (i % 50, i % 100, status) {
                (0, _, 200) => (403, true),
                (_, 1, 401) => (404, false),
                _ => (status, creds),
            };
            if g.admit_datagram(t, site, Side::Outside, REGISTER) != Admission::Admit {
                refused += 1;
            }
            g.on_final(
                t,
                site.ip(),
                Final {
                    kind: Kind::Register,
                    status,
                    credentials: creds,
                },
            );
        }
    }
    assert_eq!(refused, 0);
    assert!(!banned(
        &mut g,
        now + Duration::from_secs(10),
        "192.0.2.60:5060"
    ));
    let s = g.stats();
    assert_eq!(
        s.bans_auth_failures + s.bans_unknown_users + s.bans_sweep,
        0
    );
}

#[test]
fn challenges_never_answered_are_a_sweep() {
    let mut g = guard(0.0);
    let now = t0();
    let who = "192.0.2.53:5070";
    for _ in 0..99 {
        answer(&mut g, now, who, Kind::Register, 401, false);
    }
    assert!(!banned(&mut g, now, who));
    answer(&mut g, now, who, Kind::Register, 401, false);
    assert!(banned(&mut g, now, who));
    assert_eq!(g.stats().bans_sweep, 1);
}

#[test]
fn a_scanner_user_agent_is_dropped_and_banned() {
    let mut g = guard(0.0);
    let now = t0();
    let who = src("192.0.2.54:5070");
    assert_eq!(
        g.admit(now, who, Kind::Register, Some("Friendly-Scanner")),
        Admission::Drop
    );
    assert!(banned(&mut g, now, "192.0.2.54:5070"));
    // A phone's User-Agent passes, and so does a trusted scanner (the operator's own probe).
    assert_eq!(
        g.admit(
            now,
            src("192.0.2.55:5070"),
            Kind::Register,
            Some("Yealink SIP-T46S")
        ),
        Admission::Admit
    );
    g.admit_datagram(now, src("10.0.0.1:5060"), Side::Inside, OPTIONS);
    assert_eq!(
        g.admit(now, src("10.0.0.1:5060"), Kind::Options, Some("sipvicious")),
        Admission::Drop
    );
    assert!(!banned(&mut g, now, "10.0.0.1:5060"));
    // The list is the configuration's.
    let mut cfg = config(0.0);
    cfg.policy.scanner_user_agents = vec!["SIPSAK".into()];
    let mut g = Guard::new(cfg);
    assert_eq!(
        g.admit(now, who, Kind::Options, Some("friendly-scanner")),
        Admission::Admit
    );
    assert_eq!(
        g.admit(now, who, Kind::Options, Some("sipsak 0.9.8")),
        Admission::Drop
    );
}

#[test]
fn the_inside_takes_requests_only_from_the_inside() {
    let mut g = guard(0.0);
    let now = t0();
    assert_eq!(
        g.admit_datagram(now, src("10.0.0.1:5060"), Side::Inside, INVITE),
        Admission::Admit
    );
    // A trunk, an allowed network and a stranger are all refused on the inside.
    for who in ["203.0.113.1:5060", "192.0.2.200:5060", "192.0.2.9:5060"] {
        assert_eq!(
            g.admit_datagram(now, src(who), Side::Inside, INVITE),
            Admission::Refuse(Refusal::NOT_INSIDE),
            "{who}"
        );
        assert_eq!(
            g.admit_datagram(now, src(who), Side::Inside, b"SIP/2.0 200 OK\r\n"),
            Admission::Drop
        );
    }
    let s = g.stats();
    assert_eq!((s.inside_refused, s.inside_dropped), (3, 3));
    // An inside network named in the configuration.
    let mut cfg = config(0.0);
    cfg.inside.push("10.1.0.0/16".parse().unwrap());
    let mut g = Guard::new(cfg);
    assert_eq!(
        g.admit_datagram(now, src("10.1.2.3:5060"), Side::Inside, INVITE),
        Admission::Admit
    );
}

#[test]
fn bans_and_the_allow_list_change_at_run_time() {
    let mut g = guard(0.0);
    let now = t0();
    let ip: IpAddr = "192.0.2.70".parse().unwrap();
    assert!(g.apply(now, GuardCommand::Ban { ip, secs: Some(10) }));
    assert!(banned(&mut g, now, "192.0.2.70:5060"));
    let bans = g.bans(now);
    assert_eq!(bans.len(), 1);
    assert_eq!(
        (bans[0].ip, bans[0].remaining_ms, bans[0].reason),
        (ip, Some(10_000), BanReason::Manual)
    );
    assert!(g.apply(now, GuardCommand::Unban { ip }));
    assert!(!banned(&mut g, now, "192.0.2.70:5060"));
    assert!(!g.apply(now, GuardCommand::Unban { ip }));
    // A permanent ban.
    g.apply(now, GuardCommand::Ban { ip, secs: None });
    assert_eq!(g.bans(now)[0].remaining_ms, None);
    assert!(banned(
        &mut g,
        now + Duration::from_secs(86_400),
        "192.0.2.70:5060"
    ));
    // Allowing a network makes its sources trusted, also those already tracked.
    let net: Cidr = "192.0.2.0/26".parse().unwrap();
    let flooder = "192.0.2.9:5060";
    g.admit_datagram(now, src(flooder), Side::Outside, INVITE);
    assert!(g.apply(now, GuardCommand::Allow { net }));
    assert!(!g.apply(now, GuardCommand::Allow { net }));
    assert_eq!(g.allowed(), &[net]);
    assert_eq!(g.classify(src(flooder).ip()), SourceClass::Allowed);
    let (admit, _, _) = burst(&mut g, now, ms(1000), flooder, INVITE, 5000);
    assert_eq!(admit, 5000);
    assert!(g.apply(now, GuardCommand::Disallow { net }));
    assert_eq!(g.classify(src(flooder).ip()), SourceClass::Unknown);
    assert_eq!(g.stats().guard_commands, 7);
}

#[test]
fn unknown_users_are_hidden_from_untrusted_sources_only() {
    let mut g = guard(0.0);
    assert!(g.hides_unknown_user("192.0.2.9".parse().unwrap(), 404));
    assert!(!g.hides_unknown_user("192.0.2.9".parse().unwrap(), 486));
    assert!(!g.hides_unknown_user("203.0.113.1".parse().unwrap(), 404));
    assert_eq!(g.stats().unknown_users_hidden, 1);
}

#[test]
fn each_kind_refills_while_other_kinds_arrive_in_between() {
    // A caller's INVITEs at 80 % of the untrusted rate, with the ACKs and BYEs of its other calls
    // every millisecond in between (within their own budget): the INVITE bucket refills for the
    // whole time between INVITEs, not only for the gap since the last message of any kind, so
    // none of them is ever refused.
    let mut g = guard(0.0);
    let rate = GuardPolicy::default().untrusted.invite.rate;
    let step = Duration::from_secs_f32(1.0 / (rate * 0.8));
    let from = src("192.0.2.50:5060");
    let other = b"ACK sip:1000@sbc SIP/2.0\r\n";
    let t = t0();
    let mut refused = 0;
    for i in 0..(rate as u32 * 20) {
        let at = t + step * i;
        if g.admit_datagram(at, from, Side::Outside, INVITE) != Admission::Admit {
            refused += 1;
        }
        for k in 1..12 {
            g.admit_datagram(at + ms(k), from, Side::Outside, other);
        }
    }
    assert_eq!(refused, 0);
}

#[test]
fn scanner_names_are_found_in_any_case_without_allocating() {
    use super::contains_ignore_ascii_case as has;
    assert!(has(b"Friendly-Scanner 1.0", b"friendly-scanner"));
    assert!(has(b"x SIPVICIOUS", b"sipvicious"));
    assert!(has(b"sipcli", b"sipcli"));
    assert!(!has(b"sipcl", b"sipcli"));
    assert!(!has(b"Yealink SIP-T46S", b"friendly-scanner"));
    assert!(!has(b"anything", b""));
    assert!(!has(b"", b"a"));
}
