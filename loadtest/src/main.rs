//! `loadtest`: replays a recorded call from a capture (`pcaps/`) against a SIP target. This build
//! reads the capture and builds the call template (`--show` prints it); the replay engine, its
//! measures and reports are being built (issue 21).

mod capture;
// The replay engine that drives these is not in this build yet.
#[allow(dead_code)]
mod media;
#[allow(dead_code)]
mod sipmsg;
#[allow(dead_code)]
mod template;
#[allow(dead_code)]
mod wheel;

use std::path::PathBuf;
use std::process::ExitCode;

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const USAGE: &str =
    "usage: loadtest --pcap FILE --show   (print the call template read from the capture)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pcap = None::<PathBuf>;
    let mut show = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--pcap" => pcap = it.next().map(PathBuf::from),
            "--show" => show = true,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(pcap), true) = (pcap, show) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match template::Template::from_pcap(&pcap) {
        Ok(t) => {
            print!("{}", t.describe());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::from(2)
        }
    }
}
