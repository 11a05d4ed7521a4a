use std::time::Duration;

use sbc_core::routing::{self as core_routing, SourceMatch, TargetGroupId, TimeWindow, TrunkId};
use sbc_core::signalling::topology::HeaderAction;

use super::*;

#[test]
fn embedded_default_is_valid_and_complete() {
    let c = Config::embedded_default();
    assert_eq!(c.sip.udp, vec!["127.0.0.1:5060".parse().unwrap()]);
    assert_eq!(c.sip.tcp, vec!["127.0.0.1:5060".parse().unwrap()]);
    assert!(c.sip.tls.is_empty());
    assert_eq!(c.transport.driver, DriverChoice::Auto);
    assert_eq!(c.transport.tcp_max_connections, 4096);
    assert_eq!(c.transport.tcp_idle_timeout_secs, 120);
}

#[test]
fn unknown_key_names_key_and_line() {
    let e = Config::from_toml(
        "[sip]\nudp = []\ntcp = [\"127.0.0.1:1\"]\nudpp = 3\n",
        "x.toml",
    )
    .unwrap_err();
    assert!(e.contains("x.toml"), "{e}");
    assert!(e.contains("udpp"), "{e}");
    assert!(e.contains("line 4"), "{e}");
}

#[test]
fn tls_needs_cert() {
    let e = Config::from_toml("[sip]\ntls = [\"127.0.0.1:5061\"]\n", "t").unwrap_err();
    assert!(e.contains("cert"), "{e}");
}

#[test]
fn bad_driver() {
    let e = Config::from_toml(
        "[sip]\nudp=[\"127.0.0.1:1\"]\n[transport]\ndriver = \"kqueue\"\n",
        "t",
    )
    .unwrap_err();
    assert!(e.contains("line 4"), "{e}");
}

#[test]
fn batch_wait_is_bounded() {
    let cfg = |v: u32| {
        Config::from_toml(
            &format!("[sip]\nudp=[\"127.0.0.1:1\"]\n[transport]\nbatch_wait_us = {v}\n"),
            "t",
        )
    };
    assert_eq!(cfg(0).unwrap().transport.batch_wait_us, 0);
    assert_eq!(cfg(1000).unwrap().transport.batch_wait_us, 1000);
    let e = cfg(1001).unwrap_err();
    assert!(e.contains("transport.batch_wait_us"), "{e}");
}

#[test]
fn first_response_and_drain_have_defaults_and_bounds() {
    let cfg = |limits: &str| {
        Config::from_toml(
            &format!("[sip]\nudp=[\"127.0.0.1:1\"]\n[limits]\n{limits}\n"),
            "t",
        )
    };
    let d = cfg("").unwrap();
    assert_eq!(
        (d.limits.first_response_ms, d.limits.drain_secs),
        (4000, 10)
    );
    assert_eq!(
        cfg("first_response_ms = 0")
            .unwrap()
            .limits
            .first_response_ms,
        0
    );
    let e = cfg("first_response_ms = 32001").unwrap_err();
    assert!(e.contains("limits.first_response_ms"), "{e}");
    let e = cfg("drain_secs = 3601").unwrap_err();
    assert!(e.contains("limits.drain_secs"), "{e}");
    // Timers from the config are bounded too: a huge value would overflow a deadline.
    for (key, max) in [
        ("ringing_timeout_secs", 3_600u64),
        ("max_call_duration_secs", 604_800),
        ("no_ack_timeout_secs", 300),
        ("transaction_linger_secs", 32),
    ] {
        assert!(cfg(&format!("{key} = {max}")).is_ok(), "{key}");
        for bad in [0, max + 1, i64::MAX.unsigned_abs()] {
            let e = cfg(&format!("{key} = {bad}")).unwrap_err();
            assert!(
                e.contains(&format!("limits.{key}: must be in 1..={max}")),
                "{e}"
            );
        }
    }
}

const EPHEMERAL: Option<(u16, u16)> = Some((32768, 60999));

/// A full configuration: the SBC in front of a PBX with one carrier trunk.
const FULL: &str = r#"
workers = 2
[sip]
udp = ["127.0.0.1:5060"]
[outside]
advertised_address = "203.0.113.10"
[inside]
address = "10.0.0.1"
targets = ["pbx"]

[[target_group]]
name = "pbx"
targets = [
  { address = "127.0.0.2:5060", transport = "udp", priority = 0, weight = 100 },
  { address = "127.0.0.3:5060", transport = "tcp", priority = 1, weight = 0 },
]
options_interval_secs = 5
down_after = 2
up_after = 1

[[trunk]]
name = "carrier"
addresses = ["198.51.100.0/24", "192.0.2.7"]
transport = "udp"
target_group = "pbx"
outbound = { proxy = "198.51.100.1:5060" }
username = "sbc01"
password = "hunter2"
register = true
trusted = true
number_rules = [{ prefix = "+49", strip = 3, prepend = "0" }]

[[route]]
name = "office-hours"
from = "trunk:carrier"
days = "mon-fri"
hours = "08:00-18:00"
target_group = "pbx"

[[route]]
name = "to-carrier"
from = "inside"
prefix = "0"
days = ["sat", "sun"]
trunk = "carrier"
number_rules = [{ prefix = "0", strip = 1, prepend = "+49", min_len = 4, max_len = 16 }]

[numbers]
country_code = "49"
[registrar]
capacity = 5000
[media]
port_min = 20000
port_max = 20099
[limits]
max_cps = 50
[topology]
user_agent = "edge"
keep_headers = ["X-Account"]
strip_headers = ["Subject"]
[api]
enabled = true
"#;

/// The 1-based line of the first occurrence of `needle` in [`FULL`].
fn line_in_full(needle: &str) -> String {
    let at = FULL.find(needle).unwrap();
    format!("line {}", FULL[..at].matches('\n').count() + 1)
}

fn err(text: &str) -> String {
    Config::from_toml_with(text, "t.toml", EPHEMERAL).unwrap_err()
}

#[test]
fn example_pbx_config_is_valid() {
    let text = include_str!("../../config/example-pbx.toml");
    let c = Config::from_toml_with(text, "example-pbx.toml", EPHEMERAL).unwrap();
    let b = c.b2bua().unwrap();
    assert_eq!(b.groups.len(), 1);
    assert_eq!(b.routes.len(), 1);
    assert_eq!(c.limits.max_cps, 50);
    assert!(b.topology.toward_inside.forward_credentials);
    assert!(!b.topology.toward_outside.forward_credentials);
}

#[test]
fn embedded_default_b2bua_sections() {
    let c = Config::from_toml_with(DEFAULT_TOML, "d", EPHEMERAL).unwrap();
    let b = c.b2bua().unwrap();
    assert_eq!(b.outside_address, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert!(b.groups.is_empty() && b.trunks.is_empty() && b.routes.is_empty());
    // registrar.capacity is the whole SBC's: each worker holds its share.
    assert_eq!(c.registrar.capacity, 100_000);
    assert_eq!(
        b.registrar.capacity,
        100_000usize.div_ceil(c.worker_count())
    );
    assert_eq!(c.registrar.state_file, "/var/lib/sbc/registrations.toml");
    assert_eq!((c.media.port_min, c.media.port_max), (20000, 29999));
    assert_eq!(c.limits.max_dialogs, 100_000);
    assert_eq!(c.api.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.numbers.international_prefix, "00");
}

#[test]
fn full_example_loads_and_converts() {
    let c = Config::from_toml_with(FULL, "full", EPHEMERAL).unwrap();
    let b = c.b2bua().unwrap();
    assert_eq!(b.outside_address, "203.0.113.10".parse::<IpAddr>().unwrap());
    assert_eq!(b.media_address, b.outside_address);
    assert_eq!(b.inside_groups, vec![TargetGroupId(0)]);
    // The configured group, then the carrier's outbound proxy.
    assert_eq!(
        b.group_names,
        vec!["pbx".to_owned(), "trunk:carrier".to_owned()]
    );
    assert_eq!(
        b.groups[0].targets[1].transport,
        core_routing::Transport::Tcp
    );
    assert_eq!(b.health[0].interval, Duration::from_secs(5));
    assert_eq!(b.health[0].down_after, 2);
    let trunk = &b.trunks[0];
    assert_eq!(trunk.inbound, Some(TargetGroupId(0)));
    assert_eq!(trunk.outbound, Some(TargetGroupId(1)));
    assert!(trunk.acl[0].contains("198.51.100.77".parse().unwrap()));
    assert!(trunk.acl[1].contains("192.0.2.7".parse().unwrap()));
    assert!(!trunk.acl[1].contains("192.0.2.8".parse().unwrap()));
    assert_eq!(trunk.register_expires, Duration::from_secs(3600));
    assert_eq!(trunk.transport, core_routing::Transport::Udp);
    assert_eq!(trunk.username.as_deref(), Some("sbc01"));
    assert!(trunk.register && trunk.trusted);
    assert_eq!(trunk.number_rules[0].apply("+4930123"), "030123");
    assert_eq!(b.inside_address, "10.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(trunk.password.as_ref().unwrap().expose(), "hunter2");
    let debug = format!("{c:?} {b:?}");
    assert!(!debug.contains("hunter2"), "password leaked into Debug");
    assert_eq!(b.routes[0].source, SourceMatch::Trunk(TrunkId(0)));
    assert_eq!(
        b.routes[0].time,
        Some(TimeWindow {
            days: TimeWindow::WORKDAYS,
            start_min: 480,
            end_min: 1080
        })
    );
    assert_eq!(b.routes[1].target, TargetGroupId(1));
    assert_eq!(
        b.routes[1].time.unwrap().days,
        TimeWindow::SAT | TimeWindow::SUN
    );
    assert_eq!(b.routes[1].rewrite_outbound("0301234"), "+49301234");
    let router = sbc_core::routing::Router::new(b.routes.clone());
    assert_eq!(router.routes().len(), 2);
    let p = &b.topology.toward_outside;
    assert_eq!(p.product.as_deref(), Some("edge"));
    assert_eq!(p.get("x-account"), Some(&HeaderAction::Keep));
    assert_eq!(
        b.topology.toward_inside.get("Subject"),
        Some(&HeaderAction::Strip)
    );
    // 5000 for the whole SBC, over its 2 workers.
    assert_eq!(b.registrar.capacity, 2500);
    assert_eq!(c.registrar.state_file, "");
    assert_eq!(c.limits.max_cps, 50);
}

#[test]
fn full_example_gives_the_routing_policy_and_the_guard() {
    use sbc_core::guard::{Guard, SourceClass};
    use sbc_core::signalling::topology::Side;
    use sbc_sip::transaction::Flow;

    let c = Config::from_toml_with(FULL, "full", EPHEMERAL).unwrap();
    let b = c.b2bua().unwrap();
    let p = b.policy(Flow(0), Flow(2));
    assert_eq!((p.outside_flow, p.inside_flow), (Flow(0), Flow(2)));
    // REGISTER goes to the first inside group.
    assert_eq!(p.register_group, Some(TargetGroupId(0)));
    let (pbx, carrier) = (&p.groups[0], &p.groups[1]);
    assert_eq!((pbx.side, carrier.side), (Side::Inside, Side::Outside));
    assert_eq!(pbx.label.as_deref(), Some("pbx"));
    assert_eq!(carrier.label.as_deref(), Some("trunk:carrier"));
    assert_eq!(pbx.health.interval, Duration::from_secs(5));
    // The carrier's credentials go with its outbound group only.
    assert!(pbx.auth.is_none());
    assert_eq!(carrier.auth.as_ref().unwrap().username, "sbc01");
    assert_eq!(p.trunks[0].id, TrunkId(0));
    assert!(p.trunks[0].recognises("192.0.2.7".parse().unwrap()));
    assert_eq!(p.trunks[0].inbound, Some(TargetGroupId(0)));
    assert_eq!(p.routes.len(), 2);

    let g = b.guard(25.0);
    assert_eq!(g.cps, 25.0);
    let g = Guard::new(g);
    assert_eq!(
        g.classify("198.51.100.9".parse().unwrap()),
        SourceClass::Trunk(TrunkId(0))
    );
    assert_eq!(
        g.classify("127.0.0.3".parse().unwrap()),
        SourceClass::Inside
    );
    assert_eq!(
        g.classify("203.0.113.1".parse().unwrap()),
        SourceClass::Unknown
    );
}

#[test]
fn check_config_passes_on_full_example() {
    // The same load function `--check-config` uses, on a file.
    let path = std::env::temp_dir().join(format!("sbc-config-{}.toml", std::process::id()));
    std::fs::write(&path, FULL).unwrap();
    let r = Config::load(&path);
    std::fs::remove_file(&path).ok();
    // The host's ephemeral range may differ; only that check may fail here.
    if let Err(e) = r {
        assert!(e.contains("ip_local_port_range"), "{e}");
    }
}

#[test]
fn route_to_unknown_target_group_names_route_key_and_line() {
    let t = FULL.replace(
        "target_group = \"pbx\"\n\n[[route]]",
        "target_group = \"pbxx\"\n\n[[route]]",
    );
    let e = err(&t);
    assert!(e.contains("route \"office-hours\""), "{e}");
    assert!(e.contains("target_group") && e.contains("pbxx"), "{e}");
    assert!(
        e.contains(&line_in_full("target_group = \"pbx\"\n\n[[route]]")),
        "{e}"
    );
    let e = err(&FULL.replace("trunk = \"carrier\"", "trunk = \"nope\""));
    assert!(
        e.contains("route \"to-carrier\": trunk:") && e.contains("nope"),
        "{e}"
    );
    let e = err(&FULL.replace("from = \"trunk:carrier\"", "from = \"trunk:x\""));
    assert!(e.contains("from:"), "{e}");
}

#[test]
fn media_range_overlapping_ephemeral_ports_names_keys_and_range() {
    let e = Config::from_toml_with(FULL, "t.toml", Some((20050, 40000))).unwrap_err();
    assert!(e.contains("media.port_min/media.port_max"), "{e}");
    assert!(
        e.contains("20050-40000") && e.contains("20050-20099"),
        "{e}"
    );
    assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
    assert_eq!(parse_port_range("garbage"), None);
}

#[test]
fn odd_port_min_and_inverted_range() {
    let e = err(&FULL.replace("port_min = 20000", "port_min = 20001"));
    assert!(e.contains("media.port_min") && e.contains("odd"), "{e}");
    let e = err(&FULL.replace("port_max = 20099", "port_max = 19000"));
    assert!(e.contains("media.port_min/media.port_max"), "{e}");
}

#[test]
fn bad_hours_names_key_and_line() {
    let e = err(&FULL.replace("08:00-18:00", "8-18"));
    assert!(
        e.contains("hours") && e.contains(&line_in_full("hours =")),
        "{e}"
    );
    let e = err(&FULL.replace("08:00-18:00", "08:00-24:30"));
    assert!(e.contains("hours"), "{e}");
    let e = err(&FULL.replace("\"mon-fri\"", "\"mon-fry\""));
    assert!(
        e.contains("days") && e.contains(&line_in_full("days = \"mon")),
        "{e}"
    );
    let h = Hours::try_from("22:00-06:00".to_owned()).unwrap();
    assert_eq!((h.start_min, h.end_min), (1320, 360));
    let h = Hours::try_from("00:00-24:00".to_owned()).unwrap();
    assert_eq!((h.start_min, h.end_min), (0, 0));
    assert_eq!(Days::parse_items(["fri-mon"]).unwrap().0, 0b111_0001);
}

#[test]
fn bad_cidr_names_key_and_line() {
    let e = err(&FULL.replace("198.51.100.0/24", "198.51.100.0/33"));
    assert!(
        e.contains("addresses") && e.contains(&line_in_full("addresses =")),
        "{e}"
    );
    let e = err(&FULL.replace("198.51.100.0/24", "198.51.100.1/24"));
    assert!(e.contains("host bits"), "{e}");
    let e = err(&FULL.replace("198.51.100.0/24", "not-an-ip"));
    assert!(e.contains("addresses"), "{e}");
}

#[test]
fn other_validation_errors_name_their_keys() {
    let cases = [
        (
            "register = true",
            "register = true\nregister_expires = 5",
            "register_expires",
        ),
        ("password = \"hunter2\"\n", "", "username/password"),
        (
            "user_agent = \"edge\"",
            "user_agent = \"edge\"\nkeep_headers = [\"Via\"]",
            "keep_headers",
        ),
        (
            "country_code = \"49\"",
            "country_code = \"+49\"",
            "numbers.country_code",
        ),
        ("capacity = 5000", "capacity = 0", "registrar.capacity"),
        (
            "max_cps = 50",
            "max_cps = 50\nmax_dialogs = 0",
            "limits.max_dialogs",
        ),
        (
            "enabled = true",
            "enabled = true\nlisten = \"127.0.0.1:0\"",
            "api.listen",
        ),
        (
            "advertised_address = \"203.0.113.10\"",
            "advertised_address = \"0.0.0.0\"",
            "outside.advertised_address",
        ),
        (
            "targets = [\"pbx\"]",
            "targets = [\"nope\"]",
            "inside: targets",
        ),
    ];
    for (from, to, key) in cases {
        let t = FULL.replacen(from, to, 1);
        assert_ne!(t, FULL, "{from}");
        let e = err(&t);
        assert!(e.contains(key), "{key}: {e}");
    }
}

#[test]
fn media_ports_split_per_worker() {
    for (min, max) in [
        (20000u16, 29999u16),
        (20000, 20099),
        (10000, 10010),
        (40000, 65534),
    ] {
        let m = MediaSection {
            port_min: min,
            port_max: max,
            ..MediaSection::default()
        };
        for workers in 1..=13 {
            let mut next = min;
            for w in 0..workers {
                let r = m.media_ports_for(w, workers);
                assert_eq!(r.start, next, "contiguous, no gap, no overlap");
                assert_eq!(r.start % 2, 0, "even-aligned start");
                assert_eq!(r.len() % 2, 0, "whole pairs");
                assert!(r.end <= max + 1);
                next = r.end;
            }
            // Every pair is used: at most the odd top port is left over.
            assert!(max + 1 - next <= 1, "{min}-{max} {workers}: ends at {next}");
        }
        assert!(m.media_ports_for(3, 3).is_empty());
    }
}

/// A config whose `[media]` section is `media`.
fn with_media(media: &str) -> Result<Config, String> {
    Config::from_toml(
        &format!("[sip]\nudp=[\"127.0.0.1:1\"]\n[media]\n{media}"),
        "t",
    )
}

#[test]
fn ng_listens_on_loopback_unless_allowed_and_answers_loopback_by_default() {
    let cfg = with_media;
    let c = cfg("ng_listen = \"127.0.0.1:2223\"\n").unwrap();
    let allowed: Vec<String> = c.media.ng_allowed.iter().map(|c| c.0.to_string()).collect();
    assert_eq!(allowed, ["127.0.0.0/8", "::1/128"]);
    assert!(!c.media.ng_allow_public);
    let e = cfg("ng_listen = \"192.0.2.10:2223\"\n").unwrap_err();
    assert!(
        e.contains("media.ng_listen") && e.contains("ng_allow_public"),
        "{e}"
    );
    let e = cfg("ng_listen = \"0.0.0.0:2223\"\n").unwrap_err();
    assert!(e.contains("media.ng_listen"), "{e}");
    let c = cfg("ng_listen = \"192.0.2.10:2223\"\nng_allow_public = true\n\
         ng_allowed = [\"192.0.2.0/24\"]\n")
    .unwrap();
    assert_eq!(c.media.ng_allowed.len(), 1);
    let e = cfg("ng_allowed = [\"nonsense\"]\n").unwrap_err();
    assert!(e.contains("nonsense"), "{e}");
}

#[test]
fn early_media_bounds_have_safe_defaults_and_are_checked() {
    let cfg = with_media;
    let c = cfg("").unwrap();
    assert_eq!(
        (c.media.early_streams, c.media.early_pairs_per_source),
        (4, 256)
    );
    for bad in ["early_streams = 0\n", "early_streams = 9\n"] {
        let e = cfg(bad).unwrap_err();
        assert!(e.contains("media.early_streams"), "{e}");
    }
    let c = cfg("early_streams = 1\nearly_pairs_per_source = 0\n").unwrap();
    assert_eq!(
        (c.media.early_streams, c.media.early_pairs_per_source),
        (1, 0)
    );
}

#[test]
fn the_guard_section_defaults_are_the_cores_and_the_embedded_default_spells_them_out() {
    use sbc_core::guard::{Budget, GuardPolicy};
    let c = Config::from_toml_with(DEFAULT_TOML, "d", EPHEMERAL).unwrap();
    assert_eq!(c.guard.policy(), GuardPolicy::default());
    let none =
        Config::from_toml_with("[sip]\nudp = [\"127.0.0.1:5060\"]\n", "n", EPHEMERAL).unwrap();
    assert_eq!(none.guard.policy(), GuardPolicy::default());
    let text = "[sip]\nudp = [\"127.0.0.1:5060\"]\n[guard]\ninside_networks = [\"10.1.0.0/16\"]\n\
                allow = [\"192.0.2.0/24\"]\nban_secs = 3\nscanner_user_agents = []\n\
                [guard.untrusted]\ninvite = { rate = 5, burst = 10 }\n";
    let c = Config::from_toml_with(text, "g", EPHEMERAL).unwrap();
    let p = c.guard.policy();
    assert_eq!(p.untrusted.invite, Budget::new(5.0, 10.0));
    assert_eq!(
        p.untrusted.register,
        GuardPolicy::default().untrusted.register
    );
    assert_eq!(p.ban, Duration::from_secs(3));
    assert!(p.scanner_user_agents.is_empty());
    let g = c.guard.worker_config(c.b2bua().unwrap().guard(0.0), 1);
    assert_eq!(g.inside, vec!["10.1.0.0/16".parse().unwrap()]);
    assert_eq!(g.allow, vec!["192.0.2.0/24".parse().unwrap()]);
    for (bad, key) in [
        ("[guard]\nban_secs = 0\n", "guard.ban_secs"),
        (
            "[guard.trusted]\nother = { rate = 1, burst = 0 }\n",
            "guard.trusted.other",
        ),
        ("[guard]\nallow = [\"10.0.0.1/8\"]\n", "10.0.0.1/8"),
        ("[guard]\nbans = 3\n", "bans"),
    ] {
        let text = format!("[sip]\nudp = [\"127.0.0.1:5060\"]\n{bad}");
        let e = Config::from_toml_with(&text, "g", EPHEMERAL).unwrap_err();
        assert!(e.contains(key), "{e}");
    }
}
