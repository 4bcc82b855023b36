//! The stable fuzz runner.
//!
//! `vswitch-fuzz run [--seconds N] [--seed S] [TARGET...]`: every corpus
//! input once, then random mutations of them for N seconds in all (default
//! 60), split evenly between the targets. A panic saves the input under
//! `fuzz/artifacts/<target>/` and exits 1.
//! `vswitch-fuzz replay TARGET FILE...`: runs files through a target.
//! `vswitch-fuzz seeds`: rewrites `fuzz/corpus/` from the seed builders.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vswitch_fuzz::mutate::{self, Rng};
use vswitch_fuzz::targets::{self, Target, TARGETS};
use vswitch_fuzz::{corpus_dir, files, seeds};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("replay") => replay(&args[1..]),
        Some("seeds") => write_seeds(),
        _ => Err(
            "usage: vswitch-fuzz run [--seconds N] [--seed S] [TARGET...] | \
                  replay TARGET FILE... | seeds"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vswitch-fuzz: {e}");
            ExitCode::FAILURE
        }
    }
}

fn target(name: &str) -> Result<&'static Target, String> {
    targets::by_name(name).ok_or_else(|| {
        let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
        format!("no target {name:?} (targets: {})", names.join(", "))
    })
}

fn run(args: &[String]) -> Result<(), String> {
    let mut seconds = 60.0f64;
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut chosen = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| it.next().ok_or(format!("{a} needs {what}")).cloned();
        match a.as_str() {
            "--seconds" => {
                seconds = value("a number")?
                    .parse()
                    .map_err(|_| "--seconds needs a number")?
            }
            "--seed" => {
                seed = value("a number")?
                    .parse()
                    .map_err(|_| "--seed needs a number")?
            }
            name => chosen.push(target(name)?),
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.iter().collect();
    }
    let each = Duration::from_secs_f64(seconds.max(0.0) / chosen.len() as f64);
    println!("seed {seed}; {} per target", fmt_secs(each));
    for t in chosen {
        fuzz(t, each, &mut Rng::new(seed))?;
    }
    Ok(())
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Runs `t` on every input of its corpus, then on mutations until `budget`
/// is spent.
fn fuzz(t: &Target, budget: Duration, rng: &mut Rng) -> Result<(), String> {
    let corpus: Vec<Vec<u8>> = files(&corpus_dir(t.name))
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    for input in &corpus {
        execute(t, input)?;
    }
    let start = Instant::now();
    let mut execs = 0u64;
    let mut input = Vec::new();
    while start.elapsed() < budget {
        input.clear();
        if !corpus.is_empty() {
            input.extend_from_slice(&corpus[rng.below(corpus.len())]);
        }
        let other = corpus.get(rng.below(corpus.len())).map_or(&[][..], |v| v);
        mutate::mutate(&mut input, rng, other, t.dict);
        execute(t, &input)?;
        execs += 1;
    }
    println!(
        "{}: {} corpus inputs, {execs} mutations in {}, no crash",
        t.name,
        corpus.len(),
        fmt_secs(start.elapsed())
    );
    Ok(())
}

/// Runs one input; a panic is saved and reported.
fn execute(t: &Target, input: &[u8]) -> Result<(), String> {
    if panic::catch_unwind(AssertUnwindSafe(|| (t.run)(input))).is_ok() {
        return Ok(());
    }
    let path = save_crash(t.name, input);
    Err(format!(
        "{} crashed on an input saved as {} (replay: cargo run -p vswitch-fuzz -- replay {} {})",
        t.name,
        path.display(),
        t.name,
        path.display()
    ))
}

fn save_crash(target: &str, input: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(target);
    let _ = std::fs::create_dir_all(&dir);
    // FNV-1a names the file after its content.
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = dir.join(format!("crash-{hash:016x}"));
    let _ = std::fs::write(&path, input);
    path
}

fn replay(args: &[String]) -> Result<(), String> {
    let (name, paths) = args
        .split_first()
        .ok_or("replay needs a target and files")?;
    let t = target(name)?;
    for p in paths {
        let input = std::fs::read(p).map_err(|e| format!("{p}: {e}"))?;
        (t.run)(&input);
        println!("{p}: ok");
    }
    Ok(())
}

fn write_seeds() -> Result<(), String> {
    for (target, name, bytes) in seeds::all() {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
