//! The state file: a round trip, expiry and worker filtering, the bounds, and corrupt files.

use super::*;

fn entry(worker: u16, user: &str, left: u64) -> Entry {
    let unix = unix_now();
    Entry {
        worker,
        aor: format!("sip:{user}@example.com"),
        contact: format!("sip:{user}@192.0.2.5:5060"),
        instance: None,
        source: "192.0.2.5:5060".parse().unwrap(),
        connection: Some(0),
        nated: false,
        call_id: format!("c-{user}"),
        cseq: 7,
        ua_until: unix + left,
        pbx_until: unix + left,
        pbx_expires: 3600,
        token: format!("tok-{user}"),
        pbx_call_id: "pc".into(),
        pbx_tag: "pt".into(),
        pbx_cseq: 3,
        pbx: "10.0.0.2:5060".parse().unwrap(),
        pbx_uri: None,
        pbx_reliable: false,
        pbx_flow: 2,
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sbc-persist-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[allow(clippy::disallowed_methods)] // the one origin of test time
fn now() -> Instant {
    Instant::now()
}

#[test]
fn round_trip_drops_the_expired_and_unknown_workers() {
    let d = dir("round");
    let path = d.join("regs.toml");
    let file = StateFile {
        version: VERSION,
        binding: vec![
            entry(0, "alice", 600),
            entry(1, "bob", 600),
            entry(0, "old", 0),
            entry(5, "gone", 600),
        ],
    };
    write_atomic(&path, &file).unwrap();
    assert!(!with_suffix(&path, ".tmp").exists());
    let got = load(&path, 100, 2, now());
    assert_eq!(got.len(), 2);
    let alice = got.first().unwrap();
    assert_eq!(alice.len(), 1);
    let a = alice.first().unwrap();
    assert_eq!(a.binding.aor.as_str(), "sip:alice@example.com");
    assert_eq!(a.token, "tok-alice");
    assert_eq!((a.cseq, a.flow, a.binding.cseq), (3, 2, 7));
    assert!(a.ua_left <= Duration::from_secs(600) && a.ua_left >= Duration::from_secs(598));
    assert_eq!(got.get(1).unwrap().len(), 1);
    // and back: what a worker exports is what was read
    let back = Entry::from_stored(0, a.clone(), unix_now());
    assert_eq!(back.contact, "sip:alice@192.0.2.5:5060");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bounded_by_capacity() {
    let d = dir("cap");
    let path = d.join("regs.toml");
    let binding = (0..40).map(|i| entry(0, &format!("u{i}"), 600)).collect();
    write_atomic(
        &path,
        &StateFile {
            version: VERSION,
            binding,
        },
    )
    .unwrap();
    assert_eq!(load(&path, 10, 1, now()).first().unwrap().len(), 10);
    // a file larger than the bound for its capacity is refused whole
    assert!(read_bounded(&path, 1).is_err());
    assert_eq!(load(&path, 1, 1, now()).first().unwrap().len(), 0);
    assert!(with_suffix(&path, ".corrupt").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn missing_and_corrupt_files_give_nothing() {
    let d = dir("corrupt");
    let path = d.join("regs.toml");
    assert_eq!(load(&path, 10, 1, now()), vec![Vec::new()]);
    for bad in [
        "garbage [",
        "version = 2\n",
        "version = 1\n[[binding]]\nworker = 0\n",
    ] {
        std::fs::write(&path, bad).unwrap();
        assert_eq!(load(&path, 10, 1, now()), vec![Vec::new()], "{bad}");
        assert!(!path.exists());
        assert!(with_suffix(&path, ".corrupt").exists());
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_writer_keeps_each_workers_latest_snapshot() {
    let d = dir("writer");
    let path = d.join("sub").join("regs.toml");
    let (mut stores, thread) = start(path.clone(), 2, 100).unwrap();
    let w1 = stores.pop().unwrap();
    let mut w0 = stores.pop().unwrap();
    w0.tick(1, Vec::new);
    // unchanged: nothing sent
    w0.tick(1, || panic!("exported although nothing changed"));
    w0.finish(Vec::new());
    w1.finish(Vec::new());
    thread.join().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("version = 1"), "{text}");
    let _ = std::fs::remove_dir_all(&d);
}
