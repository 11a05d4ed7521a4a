//! Replays the fuzz seeds and the saved regression inputs through the fuzz target bodies, on stable, with
//! every `cargo test`: an invariant broken by a checked-in input fails here without a fuzzer.

use std::fs;
use std::path::{Path, PathBuf};

/// The files of one input directory, sorted; none when the directory does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every seed and regression input of `target`; returns how many ran. A failure names the file.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = inputs(&root.join("seeds").join(target));
    files.extend(inputs(&root.join("regressions").join(target)));
    for file in &files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| body(&data));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("{target}: {} broke an invariant: {message}", file.display());
        }
    }
    files.len()
}

#[test]
fn sip_message_seeds() {
    assert!(replay("sip_message", sbc_sip::fuzzing::sip_message) > 0);
}

#[test]
fn sip_framing_seeds() {
    assert!(replay("sip_framing", sbc_sip::fuzzing::sip_framing) > 0);
}

#[test]
fn sdp_seeds() {
    assert!(replay("sdp", sbc_sip::fuzzing::sdp) > 0);
}

#[test]
fn transactions_seeds() {
    replay("transactions", sbc_sip::fuzzing::transactions);
}
