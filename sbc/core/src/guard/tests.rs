use std::time::Duration;

use super::*;

#[allow(clippy::disallowed_methods)] // the one origin of test time; everything else is an offset
fn t0() -> Instant {
    Instant::now()
}

fn src(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn guard(cps: f64) -> Guard {
    Guard::new(GuardConfig {
        cps,
        trunks: vec![
            (TrunkId(0), vec!["203.0.113.0/28".parse().unwrap()]),
            (
                TrunkId(1),
                vec![
                    "198.51.100.7".parse().unwrap(),
                    "2001:db8::/32".parse().unwrap(),
                ],
            ),
        ],
        inside: vec!["10.0.0.1".parse().unwrap()],
    })
}

fn refused(g: &mut Guard, now: Instant, n: usize) -> usize {
    (0..n)
        .filter(|_| g.admit(now, src("192.0.2.1:5060"), Kind::Invite) != Admission::Admit)
        .count()
}

#[test]
fn new_calls_over_the_rate_are_refused_with_503_retry_after_1() {
    let mut g = guard(2.0);
    let now = t0();
    // One second's worth (two tokens), then refusals.
    assert_eq!(refused(&mut g, now, 5), 3);
    assert_eq!(
        g.admit(now, src("192.0.2.1:5060"), Kind::Invite),
        Admission::Refuse(Refusal {
            code: 503,
            reason: "Service Unavailable",
            retry_after: Some(1),
        })
    );
    // Other kinds are never counted against the rate.
    for kind in [Kind::Register, Kind::Options, Kind::Other, Kind::Malformed] {
        assert_eq!(g.admit(now, src("192.0.2.1:5060"), kind), Admission::Admit);
    }
    assert_eq!(
        g.stats(),
        GuardStats {
            guard_admitted: 6,
            cps_refused: 4,
            guard_dropped: 0,
        }
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
        g.admit_datagram(t0(), src("192.0.2.1:5060")),
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
    ];
    for (ip, want) in cases {
        let got = g.classify(ip.parse().unwrap());
        assert_eq!(got, want, "{ip}");
        assert_eq!(got.is_trusted(), want != SourceClass::Unknown);
    }
}
