//! Fuzzing vswitch: every parser that reads bytes from outside, and the
//! pipeline itself, as targets (`targets`); a seed corpus built from real
//! and hostile frames (`seeds`, written to `corpus/<target>/`); and a
//! random-mutation runner on stable Rust (`mutate`, the `vswitch-fuzz`
//! binary) for CI. The same targets run coverage-guided under libFuzzer:
//! `cargo +nightly fuzz run switch --features libfuzzer`.

pub mod mutate;
pub mod seeds;
pub mod targets;

use std::path::PathBuf;

/// `fuzz/corpus/<target>`.
pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// `fuzz/regressions/<target>`: inputs that once crashed, kept so a plain
/// `cargo test` replays them.
pub fn regressions_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target)
}

/// The files of a directory, sorted by name; none when it does not exist.
pub fn files(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect()
}
