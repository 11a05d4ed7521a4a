//! Replays the checked-in inputs of a fuzz target through its body, on stable, with every
//! `cargo test`. Shared by the fuzz seed tests of the crates that have fuzz targets (sbc-sip,
//! sbc-core, media-plane), each including this file by path.

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

/// Runs every input of `fuzz/seeds/<target>` and `fuzz/regressions/<target>` under the crate
/// `manifest_dir` through `body`; returns how many ran. A failure names the file.
pub(crate) fn replay(manifest_dir: &str, target: &str, body: fn(&[u8])) -> usize {
    let root = Path::new(manifest_dir).join("fuzz");
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
