//! What the workers observe for the metrics, end to end: the real `sbc` binary between `sipp`
//! instances on 127.42.<n>.x (`.1` the SBC outside, `.11` inside, `.2:5090` the PBX, `.3:5070` the
//! caller). Calls are ended in known ways; the totals the SBC logs when it stops (the same snapshot
//! sums `/metrics` is rendered from) must show each call under its outcome, the requests received
//! and the event loop's busy time.

mod common;

use common::{finish, logs, sipp, Sbc, TempDir};

fn ip(n: u8, host: u8) -> String {
    format!("127.42.{n}.{host}")
}

fn start_sbc(n: u8, name: &str) -> Sbc {
    let outside = ip(n, 1);
    let text = format!(
        "workers = 2\n\
         [sip]\nudp = [\"{outside}:5060\"]\n\
         [inside]\naddress = \"{}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\noptions_interval_secs = 0\n\
         targets = [{{ address = \"{}:5090\", transport = \"udp\" }}]\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [media]\nport_min = 21000\nport_max = 21199\n",
        ip(n, 11),
        ip(n, 2),
    );
    Sbc::start_in(TempDir::new(name), "auto", 5060, &text)
}

/// Run `calls` calls of `uac` against `uas` through the SBC and assert both ends succeeded.
fn calls(sbc: &Sbc, n: u8, uas: &str, uac: &str, calls: &str) {
    let dir = sbc.dir.path().to_owned();
    let m = ["-m", calls];
    let callee = sipp(&dir, uas, (&ip(n, 2), 5090), None, &m);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let target = format!("{}:5060", ip(n, 1));
    let caller = sipp(
        &dir,
        uac,
        (&ip(n, 3), 5070),
        Some(&target),
        &["-s", "1000", "-m", calls, "-d", "200", "-r", "5"],
    );
    let (uac_status, uac_err) = finish(caller);
    let (uas_status, uas_err) = finish(callee);
    assert!(
        uac_status.success() && uas_status.success(),
        "{uac}: {uac_status} {uac_err}\n{uas}: {uas_status} {uas_err}\n{}\n{}",
        logs(&dir, "u"),
        sbc.log_text()
    );
}

/// The value of `name: <n>` in the SBC's stop line (the totals over workers).
fn total(log: &str, name: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains("sbc stopped"))
        .unwrap_or_else(|| panic!("no stop line:\n{log}"));
    let at = line
        .find(&format!("{name}: "))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    line[at + name.len() + 2..]
        .split([',', ' ', '}'])
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn ended_calls_are_observed_by_outcome() {
    let n = 1;
    let sbc = start_sbc(n, "metrics-outcomes");
    calls(&sbc, n, "uas_basic.xml", "uac_basic.xml", "3");
    calls(&sbc, n, "uas_486.xml", "uac_expect_486.xml", "2");
    let log = sbc.stop();
    assert_eq!(total(&log, "ended_answered"), "3", "{log}");
    assert_eq!(total(&log, "ended_busy"), "2", "{log}");
    assert_eq!(total(&log, "ended_failed"), "0", "{log}");
    assert_eq!(total(&log, "live_calls"), "0", "{log}");
    // INVITE, ACK and BYE of the answered calls, INVITE and ACK of the refused ones, from both
    // sides: at least the callers' 3 × 3 + 2 × 2.
    let requests: u64 = total(&log, "requests_received").parse().unwrap();
    assert!(requests >= 13, "{requests} requests\n{log}");
    // The loops worked and waited.
    assert_ne!(total(&log, "loop_busy"), "0ns", "{log}");
    assert_ne!(total(&log, "loop_idle"), "0ns", "{log}");
}
