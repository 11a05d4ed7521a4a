//! Operations on the real binary: a configuration reload on SIGHUP. A reload that changes a route
//! sends the next call to the new target while a call set up before it stays up (both ends hang it
//! up normally afterwards); a bad file on SIGHUP changes nothing (the error names key and line,
//! calls are still routed as before). The caller and the two PBXs are the Rust user agents of
//! `common/rtp.rs`. Every address is on 127.41.n.x (n: the test).

mod common;
#[path = "common/rtp.rs"]
mod rtp;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Sbc, TempDir};
use rtp::{sdp_body, Caller, Pbx};

const T: Duration = Duration::from_secs(5);

fn ip(n: u8, host: u8) -> String {
    format!("127.41.{n}.{host}")
}

fn sock(n: u8, host: u8, port: u16) -> SocketAddr {
    format!("{}:{port}", ip(n, host)).parse().unwrap()
}

/// The SBC of test `n`: two PBXs (`pbx` at .2, `pbx2` at .3), every call from the outside
/// routed to `route_to`.
fn config(n: u8, route_to: &str) -> String {
    format!(
        "workers = 2\n\
         [sip]\nudp = [\"{}:5060\"]\n\
         [inside]\naddress = \"{}\"\nport = 5080\ntargets = [\"pbx\", \"pbx2\"]\n\
         [media]\nenabled = false\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[target_group]]\nname = \"pbx2\"\n\
         targets = [{{ address = \"{}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"all\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"{route_to}\"\n",
        ip(n, 1),
        ip(n, 11),
        ip(n, 2),
        ip(n, 3),
    )
}

/// Send SIGHUP to the SBC and wait until its log has `marker` one more time than before.
fn sighup(sbc: &Sbc, marker: &str) -> String {
    let before = sbc.log_text().matches(marker).count();
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(sbc.pid() as libc::pid_t, libc::SIGHUP) };
    let deadline = Instant::now() + T;
    loop {
        let log = sbc.log_text();
        if log.matches(marker).count() > before {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {marker:?} after SIGHUP:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A call from `caller` answered by `pbx`; the PBX has the ACK.
fn answered_call(n: u8, caller: &mut Caller, pbx: &mut Pbx) {
    caller.send_invite(&sdp_body("alice", 1, &ip(n, 10), 40000, "sendrecv", false));
    pbx.answer_invite(T, |_| {
        sdp_body("pbx", 1, &ip(n, 2), 41000, "sendrecv", false)
    });
    let ok = caller.finish_invite(T);
    assert_eq!(ok.status(), Some(200));
    pbx.expect_ack(T);
}

#[test]
fn sighup_reload_moves_new_calls_to_the_new_route_and_keeps_the_call_up() {
    let n = 1;
    let sbc = Sbc::start_in(TempDir::new("ops-reload"), "epoll", 5060, &config(n, "pbx"));
    let sbc_addr = sock(n, 1, 5060);
    let mut pbx = Pbx::pbx(sock(n, 2, 5090));
    let mut pbx2 = Pbx::pbx(sock(n, 3, 5090));

    let mut first = Caller::caller(sock(n, 10, 5070), sbc_addr, "100");
    answered_call(n, &mut first, &mut pbx);

    std::fs::write(sbc.dir.path().join("sbc.toml"), config(n, "pbx2")).unwrap();
    let log = sighup(&sbc, "configuration reloaded");
    assert!(log.contains("changed=[\"route\"]"), "{log}");

    // The next call goes to the new route's PBX, and not to the old one.
    let mut second = Caller::caller(sock(n, 10, 5071), sbc_addr, "200");
    answered_call(n, &mut second, &mut pbx2);
    assert!(pbx
        .recv_request(&sbc_sip::Method::Invite, Duration::from_millis(300))
        .is_none());

    // The call set up before the reload is still up: its BYE crosses to the old PBX.
    first.send_bye();
    assert!(
        pbx.expect_bye(T).is_some(),
        "the first call's BYE reached its PBX"
    );
    assert_eq!(first.finish_bye(T).status(), Some(200));
    second.send_bye();
    assert!(pbx2.expect_bye(T).is_some());
    assert_eq!(second.finish_bye(T).status(), Some(200));

    let log = sbc.stop();
    assert!(!log.contains("reload refused"), "{log}");
}

#[test]
fn a_bad_file_on_sighup_changes_nothing_and_names_key_and_line() {
    let n = 2;
    let sbc = Sbc::start_in(
        TempDir::new("ops-bad-reload"),
        "epoll",
        5060,
        &config(n, "pbx"),
    );
    let sbc_addr = sock(n, 1, 5060);
    let mut pbx = Pbx::pbx(sock(n, 2, 5090));
    let mut pbx2 = Pbx::pbx(sock(n, 3, 5090));

    // A route to the other PBX, but naming a group that does not exist.
    let bad = config(n, "pbx2").replace("target_group = \"pbx2\"\n", "target_group = \"nope\"\n");
    let at = bad.lines().position(|l| l.contains("nope")).unwrap() + 1;
    std::fs::write(sbc.dir.path().join("sbc.toml"), bad).unwrap();
    let log = sighup(&sbc, "configuration reload refused");
    let line = log
        .lines()
        .find(|l| l.contains("configuration reload refused"))
        .unwrap();
    assert!(
        line.contains("target_group")
            && line.contains("\"nope\"")
            && line.contains(&format!("line {at}")),
        "{line}"
    );

    // Calls are still routed by the configuration in force.
    let mut caller = Caller::caller(sock(n, 10, 5070), sbc_addr, "100");
    answered_call(n, &mut caller, &mut pbx);
    assert!(pbx2
        .recv_request(&sbc_sip::Method::Invite, Duration::from_millis(300))
        .is_none());
    caller.send_bye();
    assert!(pbx.expect_bye(T).is_some());
    assert_eq!(caller.finish_bye(T).status(), Some(200));
    sbc.stop();
}
