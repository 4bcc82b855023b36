//! Every seed, every corpus file and every input that once crashed a
//! target runs through it again on each `cargo test`: crashes stay fixed.

use vswitch_fuzz::targets::{self, TARGETS};
use vswitch_fuzz::{corpus_dir, files, regressions_dir, seeds};

#[test]
fn seeds_run_clean() {
    for (target, name, bytes) in seeds::all() {
        let t = targets::by_name(target).unwrap_or_else(|| panic!("no target {target}"));
        (t.run)(&bytes);
        assert!(!name.is_empty());
    }
}

#[test]
fn the_kept_corpus_and_regressions_run_clean() {
    let mut ran = 0;
    for t in TARGETS {
        let corpus = files(&corpus_dir(t.name));
        assert!(!corpus.is_empty(), "no corpus for {}", t.name);
        for (path, bytes) in corpus.iter().chain(&files(&regressions_dir(t.name))) {
            eprintln!("{}: {}", t.name, path.display());
            (t.run)(bytes);
            ran += 1;
        }
    }
    assert!(ran >= TARGETS.len());
}

#[test]
fn the_switch_topology_builds() {
    // A topology the pipeline refused would make the switch target fuzz
    // nothing but its own panic.
    targets::switch(&[]);
}
