//! A real softphone through the SBC's SDES-SRTP termination: Debian's `baresip` (its `srtp`
//! module, `mediaenc=srtp-mand`) talks SIP over TLS with the SBC (`[srtp] outside = "sdes"`, the
//! outside on TLS only, `require_tls_for_sdes = true`, as deployed), and the SBC bridges it to a
//! plain RTP PBX on the inside, written here on raw UDP (`common/rtp.rs` for SIP). Both ways:
//! baresip dials the SBC's TLS listener, and the PBX calls 2000, which the SBC sends to baresip as
//! a TLS trunk (baresip answers by itself). baresip plays a 1004 Hz tone from a WAV file
//! (`aufile`); the PBX decodes what reaches it in clear and checks frequency and level. The PBX
//! sends an 800 Hz tone in plain RTP; baresip decrypts and decodes it and its `sndfile` filter
//! writes what it decoded to a WAV file, checked the same way. Either tone only gets through when
//! both sides' SRTP keys were exchanged and used correctly. Addresses 127.58.<n>.x:
//!
//! | host | who |
//! |---|---|
//! | `.1:5061` | the SBC, outside SIP over TLS (the only outside listener); `.21` its media address |
//! | `.11:5080` | the SBC, inside SIP |
//! | `.2:5090` | the PBX; its RTP on `.2:6000` |
//! | `.3:5070` | baresip, TLS on `.3:5071` (a certificate of the test CA); its RTP in 31000-31999 (bound on any address) |
//!
//! `baresip` comes from `.ci/setup`; without it the test fails and says so.

mod common;
#[path = "common/rtp.rs"]
mod rtp;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sbc, TempDir};
use media_plane::codec::g711;
use media_plane::codec::measure::{level_db, peak_frequency, sine};
use rtp::{counter, udp, SdpSeen, Sink, Ua};

fn ip(n: u8, host: u8) -> String {
    format!("127.58.{n}.{host}")
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// baresip's tone and the PBX's, and their peak amplitude.
const PHONE_HZ: f64 = 1004.0;
const PBX_HZ: f64 = 800.0;
const AMP: f64 = 8000.0;

/// The SBC: outside on TLS only, SDES there; the PBX's calls go to baresip as a TLS trunk.
fn config(n: u8, dir: &Path) -> String {
    format!(
        "workers = 1\n\
         [sip]\ntls = [\"{out}:5061\"]\n\
         [tls]\ncert = \"{cert}\"\nkey = \"{key}\"\nca_file = \"{ca}\"\n\
         [inside]\naddress = \"{inside}\"\nport = 5080\ntargets = [\"pbx\"]\n\
         [limits]\nmax_cps = 0\n\
         [media]\nenabled = true\naddress = \"{media}\"\nport_min = 21400\nport_max = 21599\n\
         [srtp]\noutside = \"sdes\"\ninside = \"plain\"\nrequire_tls_for_sdes = true\n\
         [[target_group]]\nname = \"pbx\"\n\
         targets = [{{ address = \"{pbx}:5090\", transport = \"udp\" }}]\noptions_interval_secs = 0\n\
         [[route]]\nname = \"to-pbx\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n\
         [[trunk]]\nname = \"phone\"\ntransport = \"tls\"\noutbound = {{ proxy = \"{phone}:5071\" }}\n\
         options_interval_secs = 0\n\
         [[route]]\nname = \"to-phone\"\nfrom = \"inside\"\nprefix = \"\"\ntrunk = \"phone\"\n",
        out = ip(n, 1),
        cert = dir.join("sbc.pem").display(),
        key = dir.join("sbc.key").display(),
        ca = dir.join("ca.pem").display(),
        phone = ip(n, 3),
        inside = ip(n, 11),
        media = ip(n, 21),
        pbx = ip(n, 2),
    )
}

/// A 16-bit mono 8 kHz WAV file of `samples`.
fn write_wav(path: &Path, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let mut w = Vec::with_capacity(44 + samples.len() * 2);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, w).unwrap();
}

/// The samples of a 16-bit mono WAV file: from its `data` chunk to the end of the file (a file
/// whose writer did not get to fix the chunk's length is still read whole).
fn read_wav(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if id == b"fmt " {
            let fmt = &bytes[at + 8..at + 8 + 16];
            assert_eq!(
                (
                    u16::from_le_bytes([fmt[2], fmt[3]]),
                    u32::from_le_bytes(fmt[4..8].try_into().unwrap()),
                    u16::from_le_bytes([fmt[14], fmt[15]])
                ),
                (1, 8000, 16),
                "{}: not 16-bit mono 8 kHz",
                path.display()
            );
        }
        if id == b"data" {
            return bytes[at + 8..]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
        }
        at += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// A CA (`ca.pem`, in both directories), the SBC's certificate for its outside address
/// (`sbc.pem`, `sbc.key` in `sbc_dir`) and baresip's for its own (`phone.pem`, certificate and key
/// in one file as baresip wants it, in `phone_dir`).
fn make_pki(sbc_dir: &Path, phone_dir: &Path, sbc_ip: &str, phone_ip: &str) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "baresip test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let leaf = |ip: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![ip.to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    for dir in [sbc_dir, phone_dir] {
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    }
    let (cert, key) = leaf(sbc_ip);
    std::fs::write(sbc_dir.join("sbc.pem"), cert).unwrap();
    std::fs::write(sbc_dir.join("sbc.key"), key).unwrap();
    let (cert, key) = leaf(phone_ip);
    std::fs::write(phone_dir.join("phone.pem"), format!("{cert}{key}")).unwrap();
}

/// Debian's module directory (`baresip-core`).
const MODULES: &str = "/usr/lib/baresip/modules";

/// baresip's config and account (2000) in `dir`: SIP on `me:5070` (TLS on 5071, with its
/// certificate), the test CA, the tone file as audio source, no sound card (`aubridge` plays
/// into nothing), the decoded audio written by `sndfile` into `dir`, PCMU only, SDES-SRTP
/// mandatory, no registration, calls answered at once.
fn baresip_config(dir: &Path, me: &str) {
    let config = format!(
        "poll_method\tepoll\n\
         sip_listen\t{me}:5070\n\
         sip_cafile\t{ca}\n\
         sip_certificate\t{cert}\n\
         net_interface\t{me}\n\
         call_local_timeout\t10\n\
         audio_player\taubridge,nil\n\
         audio_source\taufile,{tone}\n\
         audio_alert\taubridge,nil\n\
         audio_level\tno\n\
         rtp_ports\t31000-31999\n\
         rtcp_mux\tno\n\
         module_path\t{MODULES}\n\
         module\tg711.so\n\
         module\tsndfile.so\n\
         module\taufile.so\n\
         module\taubridge.so\n\
         module\tsrtp.so\n\
         module_tmp\taccount.so\n\
         module_app\tmenu.so\n\
         snd_path\t{snd}\n",
        ca = dir.join("ca.pem").display(),
        cert = dir.join("phone.pem").display(),
        tone = dir.join("tone.wav").display(),
        snd = dir.display(),
    );
    std::fs::write(dir.join("config"), config).unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:2000@{me};transport=tls>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMU;\
             answermode=auto\n"
        ),
    )
    .unwrap();
}

/// The running baresip; killed (by its PID) when dropped.
struct Phone(Child);

impl Drop for Phone {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// baresip with the config in `dir`, dialling `dial` at once if given, quitting after `secs`; its
/// output (with the SIP trace) in `dir/baresip.log`.
fn baresip(dir: &Path, dial: Option<&str>, secs: u32) -> Phone {
    assert!(
        Path::new(MODULES).join("srtp.so").exists(),
        "baresip is not installed ({MODULES}/srtp.so missing): run .ci/setup"
    );
    let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
    let mut cmd = Command::new("baresip");
    cmd.arg("-f").arg(dir).args(["-s", "-t", &secs.to_string()]);
    if let Some(uri) = dial {
        cmd.args(["-e", &format!("/dial {uri}")]);
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(Phone)
        .expect("baresip (run .ci/setup)")
}

/// Wait for `child` to exit by itself within `limit`; killed (by its PID) after that.
fn wait_or_kill(Phone(child): &mut Phone, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// `n` samples of the first stretch of `x` that is loud (a sample over a quarter of the tone's
/// amplitude), starting 100 ms into it; `None` when there is no such stretch that long.
fn tone_window(x: &[i16], n: usize) -> Option<&[i16]> {
    let start = x
        .iter()
        .position(|s| f64::from(s.unsigned_abs()) > AMP / 4.0)?
        + 800;
    x.get(start..start + n)
}

/// Frequency and level (against the reference sine) of one second of the tone in `x`.
fn judge(x: &[i16], freq: f64, what: &str) {
    let got = tone_window(x, 8000)
        .unwrap_or_else(|| panic!("{what}: no second of tone in {} samples", x.len()));
    // Every 50 ms block of that second carries the tone (no gap, no silence).
    for (k, block) in got.chunks(400).enumerate() {
        let peak = peak_frequency(block);
        assert!(
            (peak - freq).abs() <= 4.0,
            "{what}: block {k} peaks at {peak} Hz, want {freq}"
        );
    }
    let level = level_db(&sine(freq, AMP, 0, 8000), got);
    eprintln!("{what}: level {level:+.2} dB");
    assert!(level.abs() < 0.5, "{what}: level off by {level:.2} dB");
}

fn the_file(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with("dump-") && f.ends_with(suffix))
        })
        .unwrap_or_else(|| panic!("no dump-*{suffix} in {}", dir.display()))
}

/// Who places the call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// baresip dials the SBC's TLS listener; the call is routed to the PBX.
    Phone,
    /// The PBX calls 2000; the SBC routes it to the `phone` trunk (baresip, over TLS), which
    /// answers by itself.
    Pbx,
}

/// One call between baresip (SDES-SRTP over TLS) and the plain PBX, placed by `caller`: baresip's
/// tone reaches the PBX in clear, the PBX's tone reaches baresip's decoder.
fn baresip_and_a_plain_pbx(n: u8, driver: &str, caller: Caller) {
    let sbc_dir = TempDir::new(&format!("baresip-sbc-{driver}"));
    let phone_dir = TempDir::new(&format!("baresip-phone-{driver}"));
    let (out, pbx_ip, me) = (ip(n, 1), ip(n, 2), ip(n, 3));
    make_pki(sbc_dir.path(), phone_dir.path(), &out, &me);
    write_wav(
        &phone_dir.path().join("tone.wav"),
        &sine(PHONE_HZ, AMP, 0, 8000 * 20),
    );
    baresip_config(phone_dir.path(), &me);
    let text = config(n, sbc_dir.path());
    let sbc = Sbc::start_in(sbc_dir, driver, 5061, &text);
    let media = ip(n, 21);
    let pbx_rtp = udp(&pbx_ip, 6000);
    let phone_log = || std::fs::read_to_string(phone_dir.path().join("baresip.log")).unwrap();
    let pbx_sdp = format!(
        "v=0\r\no=pbx 4711 1 IN IP4 {pbx_ip}\r\ns=-\r\nc=IN IP4 {pbx_ip}\r\nt=0 0\r\n\
         m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    );
    let at_pbx = Sink::spawn(&pbx_rtp);

    // Signalling up to the ACK; the SBC's media port toward the PBX.
    let (mut pbx, mut phone, sbc_port, sdp_seen) = match caller {
        Caller::Phone => {
            let mut pbx = Ua::pbx(sa(&pbx_ip, 5090));
            let phone = baresip(
                phone_dir.path(),
                Some(&format!("sip:1000@{out}:5061;transport=tls")),
                12,
            );
            let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pbx.recv_invite(Duration::from_secs(8))
            }));
            let Ok((invite, from)) = got else {
                panic!(
                    "no INVITE at the PBX\n---- baresip:\n{}\n---- sbc:\n{}",
                    phone_log(),
                    sbc.log_text()
                );
            };
            pbx.respond(&invite, from, 200, Some(&pbx_sdp));
            if pbx
                .recv_request(&sbc_sip::Method::Ack, Duration::from_secs(5))
                .is_none()
            {
                panic!(
                    "no ACK at the PBX\n{}\n---- baresip:\n{}\n---- sbc:\n{}",
                    pbx.sip.trace(),
                    phone_log(),
                    sbc.log_text()
                );
            }
            let offer = SdpSeen::of(&invite);
            (pbx, phone, offer.port, offer.text)
        }
        Caller::Pbx => {
            let phone = baresip(phone_dir.path(), None, 12);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !phone_log().contains("baresip is ready") {
                assert!(
                    Instant::now() < deadline,
                    "baresip not ready:\n{}",
                    phone_log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut pbx = Ua::caller(sa(&pbx_ip, 5090), sa(&ip(n, 11), 5080), "2000");
            pbx.send_invite(&pbx_sdp);
            let ok = pbx.finish_invite(Duration::from_secs(10));
            assert_eq!(
                ok.status(),
                Some(200),
                "{}\n---- baresip:\n{}\n---- sbc:\n{}",
                pbx.sip.trace(),
                phone_log(),
                sbc.log_text()
            );
            let answer = SdpSeen::of(&ok);
            (pbx, phone, answer.port, answer.text)
        }
    };
    assert!(
        sdp_seen.contains("RTP/AVP 0") && !sdp_seen.contains("crypto"),
        "the PBX sees plain RTP:\n{sdp_seen}"
    );

    // 3 s of the PBX's tone in PCMU, paced, while baresip's tone arrives.
    let tone = sine(PBX_HZ, AMP, 0, 8000 * 3);
    let start = Instant::now();
    for (k, frame) in tone.chunks(160).enumerate() {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&(k as u16).wrapping_add(4000).to_be_bytes());
        p.extend_from_slice(&((k * 160) as u32).to_be_bytes());
        p.extend_from_slice(&0x0BB0_0BB0u32.to_be_bytes());
        let mut code = [0u8; 160];
        g711::encode_ulaw(frame, &mut code);
        p.extend_from_slice(&code);
        pbx_rtp.send_to(&p, sa(&media, sbc_port)).unwrap();
        let next = start + Duration::from_millis(20) * (k as u32 + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let at_pbx = at_pbx.finish(Duration::from_millis(300));
    pbx.send_bye();
    let bye = pbx.finish_bye(Duration::from_secs(5));
    let exited = wait_or_kill(&mut phone, Duration::from_secs(15));
    let log = sbc.stop();
    let phone_log = phone_log();
    assert_eq!(bye.status(), Some(200), "{}", pbx.sip.trace());
    assert!(exited, "baresip did not quit by itself:\n{phone_log}");

    // baresip used SDES-SRTP with the SBC's key.
    assert!(
        phone_log.contains("SRTP is Enabled"),
        "baresip did not enable SRTP:\n{phone_log}"
    );
    assert!(
        phone_log.contains("RTP/SAVP") && phone_log.contains("a=crypto:"),
        "{phone_log}"
    );
    // The SBC's Contact sends baresip's in-dialog requests back over TLS.
    assert!(
        phone_log.contains(&format!("Contact: <sip:{out}:5061;transport=tls>")),
        "{phone_log}"
    );
    // The PBX's BYE reached baresip over TLS and ended the call there.
    assert!(
        phone_log.contains("BYE sip:2000") && phone_log.contains("terminated (duration"),
        "{phone_log}"
    );
    if caller == Caller::Pbx {
        // The SBC offered its six lines; baresip answered one of them.
        assert!(
            phone_log.contains("a=crypto:6 AES_256_CM_HMAC_SHA1_32"),
            "{phone_log}"
        );
        assert!(phone_log.contains("answering call"), "{phone_log}");
    }

    // baresip's tone, in clear PCMU at the PBX.
    let rtp: Vec<&[u8]> = at_pbx
        .iter()
        .filter(|g| !g.rtcp && g.bytes.len() > 12)
        .map(|g| g.bytes.as_slice())
        .collect();
    assert!(
        rtp.len() >= 100,
        "{} RTP packets at the PBX\n{log}\n{phone_log}",
        rtp.len()
    );
    assert!(rtp.iter().all(|p| p[1] & 0x7f == 0), "PCMU only");
    let heard: Vec<i16> = rtp
        .iter()
        .flat_map(|p| {
            let mut pcm = vec![0i16; p.len() - 12];
            g711::decode_ulaw(&p[12..], &mut pcm);
            pcm
        })
        .collect();
    judge(&heard, PHONE_HZ, "baresip's tone at the PBX");

    // The PBX's tone, as baresip decoded it.
    let decoded = read_wav(&the_file(phone_dir.path(), "-dec.wav"));
    judge(&decoded, PBX_HZ, "the PBX's tone at baresip");

    assert_eq!(counter(&log, "media_srtp_auth_failures"), 0, "{log}");
    assert_eq!(counter(&log, "media_srtp_replays"), 0, "{log}");
    assert_eq!(counter(&log, "media_offers_refused"), 0, "{log}");
}

#[test]
fn baresip_with_sdes_over_tls_calls_a_plain_pbx_epoll() {
    baresip_and_a_plain_pbx(1, "epoll", Caller::Phone);
}

#[test]
fn baresip_with_sdes_over_tls_calls_a_plain_pbx_io_uring() {
    baresip_and_a_plain_pbx(2, "io_uring", Caller::Phone);
}

#[test]
fn a_plain_pbx_calls_baresip_with_sdes_over_tls_epoll() {
    baresip_and_a_plain_pbx(3, "epoll", Caller::Pbx);
}

#[test]
fn a_plain_pbx_calls_baresip_with_sdes_over_tls_io_uring() {
    baresip_and_a_plain_pbx(4, "io_uring", Caller::Pbx);
}
