//! The operator's commands served by a worker's handler, as a worker serves them on its tick: the
//! asking side runs on another thread and waits for the answer, as the control thread does.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::Receiver;
use media_plane::{MediaShard, ShardConfig};
use sbc_core::b2bua::Origin;
use sbc_core::media::callmedia::{MediaAnchor, MediaSettings};
use sbc_core::media::testing::{callee_sdp, caller_sdp, rtp_packet};
use sbc_core::routing::policy::TargetSelector;
use sbc_core::signalling::topology::Side;
use sbc_sip::transaction::Flow;
use sbc_sip::Message;

use super::*;
use crate::control::{command_channels, drain_commands, GuardRequest};
use crate::shard_media::ShardMedia;
use sbc_sip::transaction::Transmit;

/// A worker's signalling, its relay (used once media is anchored) and what it sent.
struct Handler {
    signalling: Signalling,
    outbox: Vec<Transmit>,
    relay: ShardMedia,
}

impl Handler {
    /// A parsed message from `origin`; what the B2BUA sends joins the outbox.
    fn handle(&mut self, raw: Bytes, origin: Origin, now: Instant) {
        let msg = Message::parse(raw).unwrap();
        self.signalling.handle(now, msg, origin, &mut self.relay);
        self.signalling.drain(now, &mut self.outbox);
    }

    /// As the worker's tick: the guard's requests go nowhere (there is no guard here).
    fn serve_guard(&mut self, _r: GuardRequest<'_>) {}
}

const CALLER: &str = "192.0.2.10:5070";
const PBX: &str = "127.41.0.2:5090";
const PBX2: &str = "127.41.0.3:5090";
const WAIT: Duration = Duration::from_secs(5);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Calls from the outside go to `pbx`; `pbx2` is a second group no route names; REGISTERs go
/// to `pbx` (the first inside group).
fn config_text(route_to: &str) -> String {
    format!(
        "[sip]\nudp = [\"192.0.2.1:5060\"]\n[media]\nenabled = false\n[inside]\naddress = \"127.41.0.1\"\ntargets = [\"pbx\", \"pbx2\"]\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{PBX}\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[target_group]]\nname = \"pbx2\"\n\
         targets = [{{ address = \"{PBX2}\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"all\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"{route_to}\"\n"
    )
}

fn config(route_to: &str) -> crate::config::Config {
    crate::config::Config::from_toml_with(&config_text(route_to), "test", None).unwrap()
}

#[allow(clippy::disallowed_methods)] // the one origin of test time
fn now() -> Instant {
    Instant::now()
}

fn handler() -> Handler {
    let cfg = config("pbx");
    let b2bua = cfg.b2bua().unwrap();
    let place = crate::signalling::Place {
        worker: 0,
        outside: "192.0.2.1:5060".parse().unwrap(),
        outside_tls_only: false,
        inside: "127.41.0.1:5081".parse().unwrap(),
        outside_flow: Flow(0),
        inside_flow: Flow(2),
    };
    Handler {
        signalling: Signalling::new(&b2bua, &cfg.limits, &place, [9; 32], now()),
        outbox: Vec::new(),
        relay: ShardMedia::new(MediaShard::new(ShardConfig::new(30000, 30019)).unwrap()),
    }
}

fn from(source: &str) -> Origin {
    let side = if source.starts_with("127.41.") {
        Side::Inside
    } else {
        Side::Outside
    };
    let flow = if side == Side::Inside {
        Flow(2)
    } else {
        Flow(0)
    };
    Origin {
        source: addr(source),
        side,
        reliable: false,
        flow,
    }
}

fn input(h: &mut Handler, text: &str, source: &str) {
    let raw = Bytes::from(text.replace('\n', "\r\n"));
    h.handle(raw, from(source), now());
}

/// What the handler sent to `dest`, taken out of its outbox.
fn sent(h: &mut Handler, dest: &str) -> Vec<Message> {
    let dest = addr(dest);
    let (to, rest): (Vec<_>, Vec<_>) = h.outbox.drain(..).partition(|t| t.dest == dest);
    h.outbox = rest;
    to.into_iter()
        .map(|t| Message::parse(t.bytes).unwrap())
        .collect()
}

fn requests(msgs: &[Message], method: &str) -> Vec<Message> {
    msgs.iter()
        .filter(|m| m.method().is_some_and(|x| x.as_str() == method))
        .cloned()
        .collect()
}

/// A new call of the caller to `user`; returns leg B's INVITE as the PBX got it (or none).
fn call(h: &mut Handler, user: &str, n: u32) -> Option<Message> {
    call_to(h, user, n).map(|(m, _)| m)
}

/// As [`call`], with an SDP offer.
fn call_sdp(h: &mut Handler, user: &str, n: u32, sdp: &str) -> Option<Message> {
    send_invite(h, user, n, Some(sdp));
    take_invite(h).map(|(m, _)| m)
}

/// As [`call`], with the PBX leg B's INVITE went to.
fn call_to(h: &mut Handler, user: &str, n: u32) -> Option<(Message, &'static str)> {
    send_invite(h, user, n, None);
    take_invite(h)
}

/// The caller's INVITE to `user`, with `sdp` as its body.
fn send_invite(h: &mut Handler, user: &str, n: u32, sdp: Option<&str>) {
    let (ctype, body) = sdp.map_or((String::new(), ""), |b| {
        ("Content-Type: application/sdp\n".to_owned(), b)
    });
    let head = format!(
        "INVITE sip:{user}@192.0.2.1 SIP/2.0\n\
             Via: SIP/2.0/UDP {CALLER};branch=z9hG4bKc{n}\n\
             Max-Forwards: 70\n\
             From: <sip:alice@{CALLER}>;tag=a{n}\n\
             To: <sip:{user}@192.0.2.1>\n\
             Call-ID: call-{n}@caller\n\
             CSeq: 1 INVITE\n\
             Contact: <sip:alice@{CALLER}>\n\
             {ctype}Content-Length: {}\n\n",
        body.len()
    );
    // The body keeps its own line ends.
    let raw = Bytes::from(format!("{}{body}", head.replace('\n', "\r\n")));
    h.handle(raw, from(CALLER), now());
}

/// Leg B's INVITE, if one went to a PBX, with the PBX it went to.
fn take_invite(h: &mut Handler) -> Option<(Message, &'static str)> {
    [PBX, PBX2]
        .into_iter()
        .find_map(|p| Some((requests(&sent(h, p), "INVITE").into_iter().next()?, p)))
}

/// The PBX answers leg B's `invite` with `code`.
fn answer(h: &mut Handler, invite: &Message, code: u16, pbx: &str) {
    answer_sdp(h, invite, code, pbx, None);
}

/// As [`answer`], with an SDP body.
fn answer_sdp(h: &mut Handler, invite: &Message, code: u16, pbx: &str, sdp: Option<&str>) {
    let mut out = Vec::new();
    let mut w = sbc_sip::build::response(
        invite,
        code,
        sbc_sip::build::reason_phrase(code),
        Some("pbxtag"),
        &mut out,
    );
    w.header("Contact", &format!("<sip:pbx@{pbx}>"));
    match sdp {
        Some(b) => w.finish(Some("application/sdp"), b.as_bytes()),
        None => w.finish(None, b""),
    }
    h.handle(Bytes::from(out), from(pbx), now());
}

/// Run `ask` on another thread (the control thread) while this one serves the worker's channel
/// as its tick does; the answer.
fn served<T: Send + 'static>(
    h: &mut Handler,
    rx: &Receiver<WorkerCommand>,
    ask: impl FnOnce() -> T + Send + 'static,
) -> T {
    let asker = std::thread::spawn(ask);
    let deadline = now() + WAIT;
    while !asker.is_finished() && now() < deadline {
        let t = now();
        drain_commands(rx, 0, t, &mut |r| match r {
            GuardRequest::Ops(c) => {
                serve(c, 0, t, &mut h.signalling, &mut h.outbox, &mut h.relay);
            }
            r => h.serve_guard(r),
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    asker.join().unwrap()
}

/// A worker with one call answered by the PBX (its outbox emptied), the control end of its
/// channel and the channel; leg B's INVITE.
fn one_call() -> (Handler, Commands, Receiver<WorkerCommand>, Message) {
    let mut h = handler();
    let (commands, rxs) = command_channels(1);
    let b1 = call(&mut h, "100", 1).unwrap();
    answer(&mut h, &b1, 200, PBX);
    h.outbox.clear();
    let rx = rxs.into_iter().next().unwrap();
    (h, commands, rx, b1)
}

#[test]
fn calls_are_listed_paged_filtered_and_hung_up_on_both_legs() {
    // One answered call, one ringing.
    let (mut h, commands, rx, b1) = one_call();
    let rx = &rx;
    let b2 = call(&mut h, "200", 2).unwrap();
    answer(&mut h, &b2, 180, PBX);
    h.outbox.clear();

    let c = commands.clone();
    let page = served(&mut h, rx, move || {
        c.calls(&CallQuery::default(), 0, 10, WAIT).unwrap()
    });
    assert_eq!((page.total, page.workers_answered), (2, 1));
    let (answered, ringing) = (&page.calls[0], &page.calls[1]);
    assert_eq!((answered.state, ringing.state), ("answered", "ringing"));
    assert_eq!(answered.dialled, "100");
    assert_eq!(answered.target, PBX);
    assert_eq!(answered.target_label.as_deref(), Some("pbx"));
    assert_eq!(answered.leg_a.call_id, "call-1@caller");
    assert_eq!(
        (answered.leg_a.side, answered.leg_b.side),
        ("outside", "inside")
    );
    assert_eq!(answered.leg_b.call_id, b1.call_id());
    assert!(answered.answered_unix_ms >= Some(answered.invited_unix_ms));
    assert!(ringing.ringing_unix_ms.is_some() && ringing.answered_unix_ms.is_none());
    assert!(answered.id.starts_with("0-"));

    // Paging and filters.
    let c = commands.clone();
    let (second, only_ringing, bad) = served(&mut h, rx, move || {
        let q = CallQuery {
            state: Some("ringing".into()),
            ..CallQuery::default()
        };
        let bad = CallQuery {
            state: Some("up".into()),
            ..CallQuery::default()
        };
        (
            c.calls(&CallQuery::default(), 1, 1, WAIT).unwrap(),
            c.calls(&q, 0, 10, WAIT).unwrap(),
            c.calls(&bad, 0, 10, WAIT),
        )
    });
    assert_eq!((second.total, second.calls.len()), (2, 1));
    assert_eq!(second.calls[0].dialled, "200");
    assert_eq!(only_ringing.total, 1);
    assert!(bad.unwrap_err().starts_with("state:"));

    // One call by id; ids that name nothing.
    let (c, id) = (commands.clone(), answered.id.clone());
    let (one, missing, malformed) = served(&mut h, rx, move || {
        (
            c.call(&id, WAIT),
            c.call("0-999999", WAIT),
            c.call("x", WAIT),
        )
    });
    assert_eq!(one.unwrap().leg_b.call_id, b1.call_id());
    assert_eq!(missing, Err(OpsError::UnknownCall));
    assert_eq!(malformed, Err(OpsError::UnknownCall));

    // Hang up both: BYE on both legs of the answered one, CANCEL and 487 for the ringing one.
    let (c, a, r) = (commands.clone(), answered.id.clone(), ringing.id.clone());
    let (bye, cancel, again) = served(&mut h, rx, move || {
        (c.hangup(&a, WAIT), c.hangup(&r, WAIT), c.hangup(&r, WAIT))
    });
    assert_eq!(bye, Ok(HangUpResult::Bye));
    assert_eq!(cancel, Ok(HangUpResult::Cancel));
    assert_eq!(
        again,
        Ok(HangUpResult::AlreadyEnding),
        "until leg B answers the CANCEL"
    );
    let to_pbx = sent(&mut h, PBX);
    let to_caller = sent(&mut h, CALLER);
    assert_eq!(requests(&to_pbx, "BYE")[0].call_id(), b1.call_id());
    assert_eq!(requests(&to_pbx, "CANCEL")[0].call_id(), b2.call_id());
    assert_eq!(requests(&to_caller, "BYE")[0].call_id(), "call-1@caller");
    assert!(to_caller
        .iter()
        .any(|m| m.status() == Some(487) && m.call_id() == "call-2@caller"));
}

#[test]
fn targets_are_listed_disabled_drained_and_enabled() {
    let (mut h, commands, rx, _) = one_call();
    let rx = &rx;

    let pbx = TargetSelector {
        group: Some("pbx".into()),
        addr: None,
    };
    let c = commands.clone();
    let (groups, drained, nothing) = served(&mut h, rx, move || {
        let groups = c.targets(WAIT).unwrap();
        let drained = c.drain(&pbx, WAIT).unwrap();
        let none = TargetSelector {
            group: Some("nope".into()),
            addr: None,
        };
        (groups, drained, c.disable(&none, WAIT))
    });
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].name.as_deref(), Some("pbx"));
    assert_eq!(groups[0].side, "inside");
    let m = &groups[0].members[0];
    assert_eq!((m.address.as_str(), m.transport), (PBX, "udp"));
    assert_eq!(
        (m.health, m.probing, m.disabled, m.active_calls),
        ("up", false, false, 1)
    );
    assert_eq!(drained.targets, vec![PBX.to_owned()]);
    assert_eq!((drained.workers, drained.calls_left), (1, 1));
    assert_eq!(nothing, Err(OpsError::UnknownTarget));

    // Drained: no new call reaches the PBX; the call in progress goes on.
    assert!(call(&mut h, "300", 3).is_none());
    let c = commands.clone();
    let groups = served(&mut h, rx, move || c.targets(WAIT).unwrap());
    let m = &groups[0].members[0];
    assert_eq!((m.disabled, m.active_calls, m.drained), (true, 1, false));

    let c = commands.clone();
    let enabled = served(&mut h, rx, move || {
        let one = TargetSelector {
            group: None,
            addr: Some(PBX.parse().unwrap()),
        };
        c.enable(&one, WAIT).unwrap()
    });
    assert_eq!(enabled.targets, vec![PBX.to_owned()]);
    assert_eq!(call_to(&mut h, "400", 4).map(|c| c.1), Some(PBX));
}

#[test]
fn registrations_are_listed_and_one_removed_at_the_pbx_too() {
    let mut h = handler();
    let (commands, rxs) = command_channels(1);
    let rx = &rxs[0];
    let phone = "192.0.2.20:5062";
    input(
        &mut h,
        &format!(
            "REGISTER sip:192.0.2.1 SIP/2.0\n\
             Via: SIP/2.0/UDP {phone};branch=z9hG4bKr1\n\
             Max-Forwards: 70\n\
             From: <sip:alice@example.com>;tag=r1\n\
             To: <sip:alice@example.com>\n\
             Call-ID: reg-1@phone\n\
             CSeq: 1 REGISTER\n\
             Contact: <sip:alice@{phone}>\n\
             Expires: 600\n\
             Content-Length: 0\n\n"
        ),
        phone,
    );
    let reg = requests(&sent(&mut h, PBX), "REGISTER").remove(0);
    answer(&mut h, &reg, 200, PBX);
    assert!(sent(&mut h, phone).iter().any(|m| m.status() == Some(200)));

    let c = commands.clone();
    let (listed, removed, after) = served(&mut h, rx, move || {
        let listed = c.registrations(WAIT);
        let removed = c.remove_registration("sip:alice@example.com", None, WAIT);
        (listed, removed, c.registrations(WAIT))
    });
    assert_eq!(listed.len(), 1, "{listed:?}");
    let r = &listed[0];
    assert_eq!(r.aor, "sip:alice@example.com");
    assert_eq!(r.contact, format!("sip:alice@{phone}"));
    assert_eq!((r.source.as_str(), r.transport), (phone, "udp"));
    assert!(r.registered_at_pbx);
    assert!(r.expires_in_secs > 0 && r.expires_in_secs <= 600);
    assert_eq!(removed, 1);
    assert!(after.is_empty());
    // The PBX is told: the SBC's own registration of the binding, with Expires 0.
    let unreg = requests(&sent(&mut h, PBX), "REGISTER");
    assert_eq!(unreg.len(), 1);
    let text = String::from_utf8_lossy(unreg[0].raw()).to_string();
    assert!(
        text.contains("Expires: 0") || text.contains("expires=0"),
        "{text}"
    );
}

#[test]
fn a_reload_swaps_the_route_and_keeps_the_call_in_progress() {
    let (mut h, commands, rx, b1) = one_call();
    let rx = &rx;

    let new = config("pbx2");
    let runtime = Arc::new(RuntimeConfig {
        core: new.b2bua().unwrap(),
        limits: new.limits.clone(),
    });
    let c = commands.clone();
    let (applied, page) = served(&mut h, rx, move || {
        let applied = c.apply_reload(runtime, WAIT);
        (
            applied,
            c.calls(&CallQuery::default(), 0, 10, WAIT).unwrap(),
        )
    });
    assert_eq!(applied, 1);
    assert_eq!(
        page.total, 1,
        "the call set up before the reload is still up"
    );
    assert_eq!(page.calls[0].target, PBX);
    // The next call goes to the new route's group.
    assert_eq!(call_to(&mut h, "200", 2).map(|c| c.1), Some(PBX2));
    h.outbox.clear();
    // The old call still ends normally: the PBX's BYE reaches the caller.
    let bye = format!(
        "BYE sip:alice@{CALLER} SIP/2.0\n\
         Via: SIP/2.0/UDP {PBX};branch=z9hG4bKpbye\n\
         Max-Forwards: 70\n\
         From: {};tag=pbxtag\n\
         To: {}\n\
         Call-ID: {}\n\
         CSeq: 2 BYE\n\
         Content-Length: 0\n\n",
        b1.header(sbc_sip::HeaderName::To).unwrap(),
        b1.header(sbc_sip::HeaderName::From).unwrap(),
        b1.call_id()
    );
    input(&mut h, &bye, PBX);
    assert_eq!(requests(&sent(&mut h, CALLER), "BYE").len(), 1);
}

#[test]
fn call_ids_name_worker_and_call() {
    assert_eq!(parse_call_id("3-17"), Some((3, CallId(17))));
    assert_eq!(parse_call_id(&call_id(2, CallId(9))), Some((2, CallId(9))));
    for bad in ["", "3", "x-1", "3-x", "70000-1", "-1"] {
        assert_eq!(parse_call_id(bad), None, "{bad}");
    }
}

#[test]
fn media_sessions_show_ports_remotes_latching_and_packets_per_leg() {
    let mut h = handler();
    let (commands, rxs) = command_channels(1);
    // No anchored media: no session.
    let b0 = call(&mut h, "100", 1).unwrap();
    answer(&mut h, &b0, 200, PBX);
    let c = commands.clone();
    assert!(served(&mut h, &rxs[0], move || c.media_sessions(WAIT)).is_empty());

    let anchor = MediaAnchor::new(MediaSettings {
        address: "127.41.0.5".parse().unwrap(),
        no_media_timeout: None,
    });
    h.signalling.attach_media(anchor);
    let b1 = call_sdp(&mut h, "200", 2, &caller_sdp()).unwrap();
    answer_sdp(&mut h, &b1, 200, PBX, Some(&callee_sdp()));
    let c = commands.clone();
    let sessions = served(&mut h, &rxs[0], move || c.media_sessions(WAIT));
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let s = &sessions[0];
    assert_eq!(s.worker, 0);
    assert_eq!(s.streams.len(), 1);
    let (a, b) = (&s.streams[0].leg_a, &s.streams[0].leg_b);
    assert_eq!(a.remote_sdp.as_deref(), Some("198.51.100.7:4000"));
    assert_eq!(b.remote_sdp.as_deref(), Some("10.0.0.2:6000"));
    assert!((30000..30020).contains(&a.local_rtp_port));
    assert_eq!(a.local_rtcp_port, a.local_rtp_port + 1);
    assert_ne!(a.local_rtp_port, b.local_rtp_port);
    assert_eq!((a.packets, a.latched), (0, false));

    // The caller's first packet: latched, counted, relayed.
    let mut p = rtp_packet(1);
    let src = addr("198.51.100.7:4000");
    let _ = h
        .relay
        .shard_mut()
        .on_packet(a.local_rtp_port, src, &mut p, now());
    let c = commands.clone();
    let page = served(&mut h, &rxs[0], move || {
        c.calls(&CallQuery::default(), 0, 10, WAIT).unwrap()
    });
    let a = &page.calls[1].media[0].leg_a;
    assert_eq!(page.calls[1].id, s.call);
    assert_eq!((a.packets, a.bytes, a.forwarded), (1, 172, 1));
    assert_eq!(
        (a.latched, a.remote_latched.as_deref()),
        (true, Some("198.51.100.7:4000"))
    );
}

#[test]
fn reload_from_a_file_applies_its_route_and_a_bad_file_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("sbc-ops-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sbc.toml");
    std::fs::write(&file, config_text("pbx")).unwrap();
    let reloader = crate::reload::Reloader::new(Some(file.clone()), config("pbx"), None, None);
    let mut h = handler();
    let (commands, rxs) = command_channels(1);
    let commands = commands.with_reloader(Arc::new(reloader));

    // The new route, and a change that needs a restart (reported, not applied).
    let text = config_text("pbx2").replace("[media]\n", "[media]\nlatch_window_secs = 7\n");
    std::fs::write(&file, text).unwrap();
    let c = commands.clone();
    let report = served(&mut h, &rxs[0], move || c.reload(None)).unwrap();
    assert_eq!(report.changed, vec!["route"]);
    assert_eq!(report.restart_needed, vec!["media"]);
    assert_eq!(report.workers_applied, 1);
    assert_eq!(call_to(&mut h, "100", 1).map(|c| c.1), Some(PBX2));

    // A bad file: refused naming key and line; the route in force stays.
    std::fs::write(
        &file,
        config_text("pbx").replace("prefix = \"\"", "prefix = 7"),
    )
    .unwrap();
    let c = commands.clone();
    let err = served(&mut h, &rxs[0], move || c.reload(None)).unwrap_err();
    assert!(err.contains("prefix") && err.contains("line"), "{err}");
    h.outbox.clear();
    assert!(call(&mut h, "200", 2).is_some());
    assert!(
        sent(&mut h, PBX).is_empty(),
        "still the route of the last good file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
