//! Replays the relay fuzz seeds and the saved regression inputs through the fuzz target body, on
//! stable, with every `cargo test`: an invariant broken by a checked-in input fails here without a
//! fuzzer.

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

#[test]
fn relay_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = inputs(&root.join("seeds").join("relay"));
    files.extend(inputs(&root.join("regressions").join("relay")));
    assert!(!files.is_empty(), "no seeds for the relay target");
    for file in &files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| media_plane::fuzzing::relay(&data));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("relay: {} broke an invariant: {message}", file.display());
        }
    }
}
