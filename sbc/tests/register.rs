//! Registrations end to end: the real `sbc` binary between test peers (UDP sockets driven by the
//! test, and a sipp registrar), each test on its own loopback addresses (127.31.<n>.x):
//!
//! | host | who |
//! |---|---|
//! | `.1:5060` | the SBC, outside (UDP) |
//! | `.11:5080` | the SBC, inside (shared port; worker 0 on 5081) |
//! | `.2:5090` | the PBX: its registrar, and the caller of the phone |
//! | `.5:5070` | the phone (behind NAT: its Contact is 192.168.1.50) |
//! | `.6:5070` | a stranger who knows the phone's AoR and Contact |
//!
//! What is checked: a binding is created, moved or removed only when the PBX answers 2xx to the
//! REGISTER that asked for it; every Contact of a REGISTER is bound; an absurd expiry granted by
//! the PBX kills nothing; registrations survive a restart.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{finish, scenario, Sbc, TempDir};

fn ip(n: u8, host: u8) -> String {
    format!("127.31.{n}.{host}")
}

fn addr(n: u8, host: u8, port: u16) -> SocketAddr {
    format!("{}:{port}", ip(n, host)).parse().unwrap()
}

/// The SBC of test `n`: one worker, REGISTERs and calls relayed to the PBX at `.2:5090`, no media
/// anchoring; `registrar` is put in the `[registrar]` section.
fn config(n: u8, registrar: &str) -> String {
    format!(
        "workers = 1\n\
         [sip]\nudp = [\"{}:5060\"]\n\
         [inside]\naddress = \"{}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [media]\nenabled = false\n\
         [registrar]\n{registrar}\n",
        ip(n, 1),
        ip(n, 11),
        ip(n, 2),
    )
}

fn start(n: u8, name: &str, registrar: &str) -> Sbc {
    Sbc::start_in(TempDir::new(name), "auto", 5060, &config(n, registrar))
}

/// The peers of test `n`: the SBC's outside address, the PBX, the phone and a second outside
/// host (a stranger, or the phone's other address).
fn peers(n: u8) -> (SocketAddr, Peer, Peer, Peer) {
    (
        addr(n, 1, 5060),
        Peer::bind(addr(n, 2, 5090)),
        Peer::bind(addr(n, 5, 5070)),
        Peer::bind(addr(n, 6, 5070)),
    )
}

/// A UDP peer driven by the test.
struct Peer {
    sock: UdpSocket,
}

impl Peer {
    fn bind(a: SocketAddr) -> Self {
        let sock = UdpSocket::bind(a).unwrap_or_else(|e| panic!("bind {a}: {e}"));
        Self { sock }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn send(&self, to: SocketAddr, text: &str) {
        self.sock.send_to(text.as_bytes(), to).unwrap();
    }

    /// The next message within `wait` whose first line contains `want`, skipping others (100
    /// Trying, retransmissions, keep-alives).
    fn recv(&self, want: &str, wait: Duration) -> Option<(String, SocketAddr)> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            let Ok((len, from)) = self.sock.recv_from(&mut buf) else {
                return None;
            };
            let text = String::from_utf8_lossy(&buf[..len]).into_owned();
            if text.lines().next().unwrap_or_default().contains(want) {
                return Some((text, from));
            }
        }
    }

    fn expect(&self, want: &str, what: &str) -> (String, SocketAddr) {
        self.recv(want, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("{what}: no {want:?} at {}", self.addr()))
    }
}

/// The values of header `name` (each line; compact forms are not used by the SBC for these).
fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    headers(msg, name)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no {name} in\n{msg}"))
}

/// A response to `req` with `status`; `extra` header lines end with CRLF.
fn response(req: &str, status: &str, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in headers(req, "Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    out.push_str(&format!(
        "From: {}\r\nTo: {};tag=pbx1\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        header(req, "From"),
        header(req, "To"),
        header(req, "Call-ID"),
        header(req, "CSeq"),
    ));
    out
}

/// A REGISTER of alice from `from` with these Contact header values.
fn register(from: SocketAddr, contacts: &[&str], call_id: &str, cseq: u32, expires: u32) -> String {
    let mut out = format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-{call_id}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=f{cseq}\r\n\
         To: <sip:alice@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n"
    );
    for c in contacts {
        out.push_str(&format!("Contact: {c}\r\n"));
    }
    out.push_str(&format!("Expires: {expires}\r\nContent-Length: 0\r\n\r\n"));
    out
}

/// The phone's Contact (behind NAT: a private address the SBC cannot reach directly).
const PHONE_CONTACT: &str = "<sip:alice@192.168.1.50:5062>";

/// The PBX's registrar takes one REGISTER and answers `status` (with `extra` headers); returns
/// the REGISTER.
fn pbx_answers(pbx: &Peer, status: &str, extra: &str, what: &str) -> String {
    let (req, from) = pbx.expect("REGISTER", what);
    pbx.send(from, &response(&req, status, extra));
    req
}

/// The PBX's registrar accepts one REGISTER, echoing its Contact; returns the SBC's Contact URI
/// (`sip:TOKEN@inside:port`).
fn pbx_accepts(pbx: &Peer, what: &str) -> String {
    let (req, from) = pbx.expect("REGISTER", what);
    let contact = header(&req, "Contact").to_owned();
    pbx.send(
        from,
        &response(
            &req,
            "200 OK",
            &format!("Contact: {contact};expires=3600\r\n"),
        ),
    );
    contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned()
}

/// The PBX calls the SBC's Contact `uri` (from `pbx`) and returns the Call-ID it used.
fn pbx_calls(pbx: &Peer, uri: &str, call_id: &str) {
    let hostport: SocketAddr = uri.split('@').nth(1).unwrap().parse().unwrap();
    let me = pbx.addr();
    pbx.send(
        hostport,
        &format!(
            "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:pbx@{me}>;tag=p1\r\n\
             To: <{uri}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:pbx@{me}>\r\n\
             Content-Length: 0\r\n\r\n"
        ),
    );
}

/// The call of [`pbx_calls`] reaches `phone` (and not `other`); the phone answers 486 and the PBX
/// acknowledges the relayed answer.
fn call_reaches(pbx: &Peer, phone: &Peer, other: &Peer, call_id: &str) -> String {
    let (invite, sbc) = phone
        .recv("INVITE", Duration::from_secs(3))
        .unwrap_or_else(|| panic!("the PBX's call {call_id} did not reach {}", phone.addr()));
    assert!(
        other.recv("INVITE", Duration::from_millis(300)).is_none(),
        "the call also reached {}",
        other.addr()
    );
    phone.send(sbc, &response(&invite, "486 Busy Here", ""));
    let (busy, from) = pbx.expect("486", "the busy answer relayed to the PBX");
    let to = header(&busy, "To");
    let me = pbx.addr();
    let uri = invite.lines().next().unwrap().to_owned();
    pbx.send(
        from,
        &format!(
            "ACK sip:x@{from} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:pbx@{me}>;tag=p1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        ),
    );
    uri
}

/// The phone registers through the SBC and the PBX accepts: returns the SBC's Contact at the PBX.
fn phone_registers(sbc: SocketAddr, phone: &Peer, pbx: &Peer) -> String {
    phone.send(
        sbc,
        &register(phone.addr(), &[PHONE_CONTACT], "phone-1", 1, 3600),
    );
    let token = pbx_accepts(pbx, "the phone's first REGISTER");
    let (ok, _) = phone.expect("200", "the phone's 200");
    assert_eq!(header(&ok, "Expires"), "60", "{ok}");
    token
}

/// 17.1: a stranger who knows the phone's AoR and Contact sends REGISTER (another source and
/// Call-ID), then `Contact: *` with `Expires: 0`. Both go to the PBX, which challenges; the
/// stranger gets the challenge, and the PBX's call to the phone still reaches the phone. When the
/// PBX accepts a REGISTER from the new source (the phone moved and proved it), the binding moves.
#[test]
fn a_strangers_register_changes_nothing_without_the_pbxs_2xx() {
    let n = 1;
    let sbc = start(n, "reg-stranger", "");
    let (out, pbx, phone, stranger) = peers(n);
    let token = phone_registers(out, &phone, &pbx);

    let challenge = "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"n1\", algorithm=MD5\r\n";
    // The same binding claimed from another source and Call-ID.
    stranger.send(
        out,
        &register(stranger.addr(), &[PHONE_CONTACT], "evil-1", 1, 3600),
    );
    let asked = pbx_answers(
        &pbx,
        "401 Unauthorized",
        challenge,
        "the stranger's REGISTER",
    );
    assert!(asked.contains(&format!("Contact: <{token}>")), "{asked}");
    let (refused, _) = stranger.expect("401", "the challenge relayed to the stranger");
    assert!(refused.contains("WWW-Authenticate"), "{refused}");
    pbx_calls(&pbx, &token, "call-1");
    call_reaches(&pbx, &phone, &stranger, "call-1");

    // Every binding of the AoR removed by a stranger: asked of the PBX, which challenges.
    stranger.send(out, &register(stranger.addr(), &["*"], "evil-2", 1, 0));
    let asked = pbx_answers(
        &pbx,
        "401 Unauthorized",
        challenge,
        "the stranger's Contact: *",
    );
    assert_eq!(header(&asked, "Contact"), "*", "{asked}");
    assert_eq!(header(&asked, "Expires"), "0", "{asked}");
    stranger.expect("401", "the challenge relayed to the stranger");
    pbx_calls(&pbx, &token, "call-2");
    call_reaches(&pbx, &phone, &stranger, "call-2");

    // The PBX accepts a REGISTER from the new source: now the binding moves.
    stranger.send(
        out,
        &register(stranger.addr(), &[PHONE_CONTACT], "moved-1", 1, 3600),
    );
    pbx_accepts(&pbx, "the moved phone's REGISTER");
    stranger.expect("200", "the moved phone's 200");
    pbx_calls(&pbx, &token, "call-3");
    call_reaches(&pbx, &stranger, &phone, "call-3");
    drop(sbc);
}

/// 17.1: the phone's own refresh (same source and Call-ID, higher CSeq) is answered by the SBC
/// without the PBX; the same REGISTER from the same source with another Call-ID is asked of the
/// PBX.
#[test]
fn only_the_phones_own_refresh_is_answered_locally() {
    let n = 2;
    let sbc = start(n, "reg-refresh", "");
    let (out, pbx, phone, _) = peers(n);
    phone_registers(out, &phone, &pbx);
    phone.send(
        out,
        &register(phone.addr(), &[PHONE_CONTACT], "phone-1", 2, 3600),
    );
    phone.expect("200", "the local refresh");
    assert!(
        pbx.recv("REGISTER", Duration::from_millis(500)).is_none(),
        "a refresh of the phone's own flow went to the PBX"
    );
    phone.send(
        out,
        &register(phone.addr(), &[PHONE_CONTACT], "phone-2", 1, 3600),
    );
    pbx_answers(&pbx, "403 Forbidden", "", "another Call-ID");
    phone.expect("403", "the refusal relayed");
    drop(sbc);
}

/// 17.13: every Contact of a REGISTER is bound (one registration at the PBX for each), and the
/// 200 lists them all; the PBX's call to the second reaches it.
#[test]
fn every_contact_of_a_register_is_bound() {
    let n = 3;
    let sbc = start(n, "reg-contacts", "");
    let (out, pbx, phone, other) = peers(n);
    let second = "<sip:alice-desk@192.168.1.51:5062>";
    phone.send(
        out,
        &register(phone.addr(), &[PHONE_CONTACT, second], "two-1", 1, 3600),
    );
    let first_token = pbx_accepts(&pbx, "the first contact's REGISTER");
    let second_token = pbx_accepts(&pbx, "the second contact's REGISTER");
    assert_ne!(first_token, second_token);
    let (ok, _) = phone.expect("200", "the phone's 200");
    let contacts = headers(&ok, "Contact").join(", ");
    assert!(contacts.contains(PHONE_CONTACT), "{ok}");
    assert!(contacts.contains(second), "{ok}");
    pbx_calls(&pbx, &second_token, "call-desk");
    let uri = call_reaches(&pbx, &phone, &other, "call-desk");
    assert!(
        uri.starts_with("INVITE sip:alice-desk@192.168.1.51:5062"),
        "{uri}"
    );
    drop(sbc);
}

/// 17.8: a sipp PBX grants `expires=18446744073709551615`; the worker keeps serving (the phone
/// gets its 200 with a sane expiry, then answers to OPTIONS and to its refresh).
#[test]
fn an_absurd_expiry_from_the_pbx_kills_nothing() {
    let n = 4;
    let sbc = start(n, "reg-absurd", "");
    let dir = sbc.dir.path().to_owned();
    let registrar = Command::new("timeout")
        .args(["30", "sipp", "-sf"])
        .arg(scenario("reg_registrar_absurd.xml"))
        .args(["-i", &ip(n, 2), "-p", "5090", "-m", "1", "-nostdin"])
        .args(["-trace_err", "-trace_msg"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp");
    std::thread::sleep(Duration::from_millis(300));
    let out = addr(n, 1, 5060);
    let phone = Peer::bind(addr(n, 5, 5070));
    let direct = "<sip:alice@127.31.4.5:5070>";
    phone.send(out, &register(phone.addr(), &[direct], "abs-1", 1, 3600));
    let (ok, _) = phone.expect("200", "the phone's 200");
    assert_eq!(header(&ok, "Expires"), "3600", "{ok}");
    let (status, err) = finish(registrar);
    assert!(status.success(), "sipp registrar: {status} {err}");
    // The worker is alive: it answers OPTIONS and takes the refresh.
    phone.send(
        out,
        &String::from_utf8(common::options("UDP", phone.addr(), 1, "o1")).unwrap(),
    );
    phone.expect("200", "OPTIONS after the absurd grant");
    let log = sbc.stop();
    assert!(!log.contains("panicked"), "{log}");
}

/// 17.14: registrations survive a restart: the phone registers, the SBC stops and starts again
/// with the same state file, and the PBX's call reaches the phone without a new REGISTER.
#[test]
fn registrations_survive_a_restart() {
    let n = 5;
    let state = TempDir::new("reg-state");
    let file = state.path().join("registrations.toml");
    let registrar = format!("state_file = \"{}\"", file.display());
    let sbc = start(n, "reg-restart-1", &registrar);
    let (out, pbx, phone, other) = peers(n);
    let token = phone_registers(out, &phone, &pbx);
    sbc.stop();
    assert!(file.exists(), "no state file at {}", file.display());

    let sbc = start(n, "reg-restart-2", &registrar);
    let log = sbc.log_text();
    assert!(log.contains("registrations restored"), "{log}");
    assert!(log.contains("restored=1"), "{log}");
    pbx_calls(&pbx, &token, "call-after-restart");
    call_reaches(&pbx, &phone, &other, "call-after-restart");
    drop(sbc);
}

/// 17.14: a corrupt state file is refused with a log line (kept aside), and the SBC starts empty.
#[test]
fn a_corrupt_state_file_is_refused_and_the_sbc_starts_empty() {
    let n = 6;
    let state = TempDir::new("reg-corrupt");
    let file = state.path().join("registrations.toml");
    std::fs::write(&file, "this is not [ a state file").unwrap();
    let registrar = format!("state_file = \"{}\"", file.display());
    let sbc = start(n, "reg-corrupt", &registrar);
    let log = sbc.log_text();
    assert!(log.contains("registrar.state_file"), "{log}");
    assert!(log.contains("starting with no registration"), "{log}");
    // It serves: a phone registers.
    let (out, pbx, phone, _) = peers(n);
    phone_registers(out, &phone, &pbx);
    assert!(
        corrupt_copy(&file).exists(),
        "the corrupt file was not kept aside"
    );
    drop(sbc);
}

/// Where a refused state file is kept.
fn corrupt_copy(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".corrupt");
    PathBuf::from(name)
}
