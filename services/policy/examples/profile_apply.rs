//! Profiling harness: `profile_apply [words] [iterations]` compiles the bench policy once and
//! applies it to the 1 MB bench text repeatedly (run under `perf record`).
use std::time::Instant;

use enclave_policy::{Limits, Policy, PolicyDocument, Scope, bench};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let words: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let iters: usize = args.next().map_or(Ok(20), |a| a.parse())?;
    let limits = Limits::default();
    let doc = PolicyDocument::parse_toml_with_limits(&bench::policy_toml(words, 50), &limits)?;
    let policy = Policy::compile(&doc, &limits)?;
    let text = bench::mixed_text(1 << 20, 1);
    let mut times = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        std::hint::black_box(policy.apply(&text, Scope::Output));
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    println!(
        "median {:.1} MB/s (best {:.1})",
        text.len() as f64 / 1e6 / med,
        text.len() as f64 / 1e6 / times[0]
    );
    Ok(())
}
