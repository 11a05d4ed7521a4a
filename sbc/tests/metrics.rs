//! What the workers observe for the metrics, end to end: the real `sbc` binary between `sipp`
//! instances on 127.42.<n>.x (`.1` the SBC outside, `.11` inside, `.2:5090` the PBX, `.3:5070` the
//! caller). Calls are ended in known ways; the totals the SBC logs when it stops (the same snapshot
//! sums `/metrics` is rendered from) must show each call under its outcome, the requests received,
//! the event loop's busy time, and the receive quality of each leg (loss, MOS) of a call with RTP.

mod common;
#[path = "common/rtp.rs"]
mod rtp;

use std::net::SocketAddr;
use std::time::Duration;

use common::{finish, logs, sipp, Sbc, TempDir};
use rtp::{rtp_packet, sdp_body, udp, SdpSeen, Ua};

const T: Duration = Duration::from_secs(5);

fn ip(n: u8, host: u8) -> String {
    format!("127.42.{n}.{host}")
}

fn start_sbc(n: u8, name: &str) -> Sbc {
    start_sbc_with(n, name, "")
}

/// [`start_sbc`] with `media` added to the `[media]` section.
fn start_sbc_with(n: u8, name: &str, media: &str) -> Sbc {
    let outside = ip(n, 1);
    let text = format!(
        "workers = 2\n\
         [sip]\nudp = [\"{outside}:5060\"]\n\
         [inside]\naddress = \"{}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\noptions_interval_secs = 0\n\
         targets = [{{ address = \"{}:5090\", transport = \"udp\" }}]\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [media]\nport_min = 21000\nport_max = 21199\n{media}",
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
    std::thread::sleep(Duration::from_millis(300));
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

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// A call with RTP both ways, the caller's stream missing every tenth packet: when it ends, the
/// receive quality of both legs (loss, jitter, MOS) is observed from the relay's own statistics,
/// with no RTCP from either side.
#[test]
fn ended_call_media_quality_is_observed_per_leg() {
    let n = 2;
    let media = ip(n, 21);
    let sbc = start_sbc_with(
        n,
        "metrics-quality",
        &format!("enabled = true\naddress = \"{media}\"\n"),
    );
    let (caller_ip, pbx_ip) = (ip(n, 3), ip(n, 2));
    let caller_rtp = udp(&caller_ip, 7000);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let mut caller = Ua::caller(sa(&caller_ip, 5070), sa(&ip(n, 1), 5060), "1000");
    let mut pbx = Ua::pbx(sa(&pbx_ip, 5090));
    caller.send_invite(&sdp_body("caller", 1, &caller_ip, 7000, "sendrecv", false));
    let invite = pbx.answer_invite(T, |_| sdp_body("pbx", 1, &pbx_ip, 6000, "sendrecv", false));
    let ok = caller.finish_invite(T);
    assert_eq!(ok.status(), Some(200), "{}", traces(&caller, &pbx));
    pbx.expect_ack(T);
    let to_a = sa(&media, SdpSeen::of(&ok).port);
    let to_b = sa(&media, SdpSeen::of(&invite).port);
    for k in 0..100u16 {
        if k % 10 != 5 {
            caller_rtp
                .send_to(&rtp_packet(0xCA11, 1000 + k), to_a)
                .unwrap();
        }
        pbx_rtp
            .send_to(&rtp_packet(0x0BB0, 5000 + k), to_b)
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    caller.send_bye();
    assert!(pbx.expect_bye(T).is_some(), "{}", traces(&caller, &pbx));
    assert_eq!(
        caller.finish_bye(T).status(),
        Some(200),
        "{}",
        traces(&caller, &pbx)
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = sbc.stop();
    assert_eq!(total(&log, "ended_answered"), "1", "{log}");
    // One observation per leg that received RTP.
    assert_eq!(total(&log, "mos_observed"), "2", "{log}");
    // The caller's leg lost 10 of 100 packets: 10 % (the callee's none).
    assert_eq!(total(&log, "caller_loss_ppm_sum"), "100000", "{log}");
    assert_eq!(total(&log, "callee_loss_ppm_sum"), "0", "{log}");
}

fn traces(caller: &Ua, pbx: &Ua) -> String {
    format!("{}{}", caller.sip.trace(), pbx.sip.trace())
}
