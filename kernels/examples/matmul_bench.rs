//! Prints JSON lines with matmul throughput on the demo model's shapes, and the sum of one
//! decode step's matmuls for the whole model (SmolLM2-135M: 30 layers, Q4_1, tied Q8_0 output).
//! `cargo run --release -p enclave-kernels --example matmul_bench [-- --quick]`

use std::time::Instant;

use enclave_kernels::{QMatrix, WeightFormat, cpu_features, matmul};

struct Shape {
    name: &'static str,
    format: WeightFormat,
    rows: usize,
    cols: usize,
    /// Times per decode step of the whole model.
    per_token: usize,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "q_o",
        format: WeightFormat::Q4_1,
        rows: 576,
        cols: 576,
        per_token: 60,
    },
    Shape {
        name: "k_v",
        format: WeightFormat::Q4_1,
        rows: 192,
        cols: 576,
        per_token: 60,
    },
    Shape {
        name: "gate_up",
        format: WeightFormat::Q4_1,
        rows: 1536,
        cols: 576,
        per_token: 60,
    },
    Shape {
        name: "down",
        format: WeightFormat::Q4_1,
        rows: 576,
        cols: 1536,
        per_token: 30,
    },
    Shape {
        name: "output",
        format: WeightFormat::Q8_0,
        rows: 49152,
        cols: 576,
        per_token: 1,
    },
    // The same model from Hugging Face bf16 weights (not counted in the Q4_1 model totals).
    Shape {
        name: "bf16_gate_up",
        format: WeightFormat::BF16,
        rows: 1536,
        cols: 576,
        per_token: 0,
    },
];

fn weights(format: WeightFormat, rows: usize, cols: usize) -> QMatrix {
    let n = format.ggml_bytes(rows, cols).unwrap_or(0);
    let mut state = 0x1234_5678_u32;
    let mut bytes: Vec<u8> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    // Sane f16 scales (0x2000 ≈ 0.0078) so values stay finite.
    let bb = format.block_bytes();
    let scales = if format == WeightFormat::Q4_1 { 2 } else { 1 };
    for blk in bytes.chunks_exact_mut(bb) {
        for s in 0..scales {
            blk[2 * s] = 0x00;
            blk[2 * s + 1] = 0x20;
        }
    }
    match QMatrix::from_ggml_bytes(format, rows, cols, &bytes) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("bad bench shape: {e}");
            std::process::exit(1);
        }
    }
}

/// Process CPU seconds (user + system) from /proc/self/stat; 0 where unavailable. On a shared
/// machine wall time depends on other load, CPU time much less (run with RAYON_NUM_THREADS=1
/// to read it as single-core kernel cost: rayon's idle spinning also counts as CPU time).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name; 100 Hz ticks.
    (ticks(11) + ticks(12)) / 100.0
}

/// Median wall seconds per call over `runs` runs of enough calls to take ~`budget` seconds,
/// and mean CPU seconds per call over all runs.
fn time(w: &QMatrix, tokens: usize, runs: usize, budget: f64) -> (f64, f64) {
    let x: Vec<f32> = (0..tokens * w.cols())
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 300.0)
        .collect();
    let mut out = vec![0f32; tokens * w.rows()];
    let call = |out: &mut [f32]| {
        if let Err(e) = matmul(w, &x, tokens, out) {
            eprintln!("matmul failed: {e}");
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    call(&mut out);
    let once = start.elapsed().as_secs_f64().max(1e-7);
    let iters = ((budget / once) as usize).clamp(1, 100_000);
    let cpu0 = cpu_seconds();
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                call(&mut out);
            }
            t.elapsed().as_secs_f64() / iters as f64
        })
        .collect();
    let cpu = (cpu_seconds() - cpu0) / (runs * iters) as f64;
    samples.sort_by(f64::total_cmp);
    (samples[runs / 2], cpu)
}

/// The whole demo model's matmuls, each matrix distinct so the ~98 MB stream from memory as
/// in real decoding (the per-shape figures above run from cache): one step per token count.
fn model_steps(runs: usize, quick: bool) {
    let mut mats = Vec::new();
    for _ in 0..30 {
        for (rows, cols) in [
            (576, 576),
            (192, 576),
            (192, 576),
            (576, 576),
            (3072, 576),
            (576, 1536),
        ] {
            mats.push(weights(WeightFormat::Q4_1, rows, cols));
        }
    }
    mats.push(weights(WeightFormat::Q8_0, 49152, 576));
    let bytes: usize = mats.iter().map(QMatrix::size_bytes).sum();
    line("smollm2_weights_mb", bytes as f64 / 1e6, "MB");
    let counts: &[usize] = if quick { &[1, 16] } else { &[1, 4, 8, 16, 64] };
    for &tokens in counts {
        let x: Vec<f32> = (0..tokens * 1536)
            .map(|i| ((i * 31 % 200) as f32 - 100.0) / 70.0)
            .collect();
        let mut out = vec![0f32; tokens * 49152];
        let step = |out: &mut [f32]| {
            for w in &mats {
                let n = tokens * w.cols();
                if let Err(e) = matmul(w, &x[..n], tokens, &mut out[..tokens * w.rows()]) {
                    eprintln!("matmul failed: {e}");
                    std::process::exit(1);
                }
            }
        };
        step(&mut out);
        let cpu0 = cpu_seconds();
        let reps = if tokens >= 16 { 3 } else { 10 };
        let mut samples: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    step(&mut out);
                }
                t.elapsed().as_secs_f64() / reps as f64
            })
            .collect();
        let cpu = (cpu_seconds() - cpu0) / (runs * reps) as f64;
        samples.sort_by(f64::total_cmp);
        let wall = samples[runs / 2];
        line(&format!("smollm2_step_t{tokens}_ms"), wall * 1e3, "ms");
        line(&format!("smollm2_step_t{tokens}_cpu_ms"), cpu * 1e3, "ms");
        line(
            &format!("smollm2_step_t{tokens}_matmul_tok_s"),
            tokens as f64 / wall,
            "tok/s",
        );
    }
}

fn line(metric: &str, value: f64, unit: &str) {
    println!(
        "{{\"bench\":\"kernels\",\"metric\":\"{metric}\",\"value\":{value:.4},\"unit\":\"{unit}\",\"level\":\"{}\",\"threads\":{}}}",
        cpu_features(),
        rayon::current_num_threads()
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let only: Option<String> = std::env::args().skip_while(|a| a != "--only").nth(1);
    let (runs, budget) = if quick { (3, 0.05) } else { (5, 0.2) };
    let mut decode_s = 0.0;
    let mut prefill_s = 0.0;
    for s in SHAPES {
        if only.as_deref().is_some_and(|o| o != s.name) {
            continue;
        }
        let w = weights(s.format, s.rows, s.cols);
        for tokens in [1usize, 16, 64, 512] {
            let (sec, cpu) = time(&w, tokens, runs, budget);
            let tag = format!(
                "{}_{:?}_{}x{}_t{}",
                s.name, s.format, s.rows, s.cols, tokens
            )
            .to_lowercase();
            line(&format!("{tag}_us"), sec * 1e6, "us");
            line(&format!("{tag}_cpu_us"), cpu * 1e6, "us");
            line(
                &format!("{tag}_weight_gbps"),
                w.size_bytes() as f64 / sec / 1e9,
                "GB/s",
            );
            line(
                &format!("{tag}_gops"),
                2.0 * (s.rows * s.cols * tokens) as f64 / sec / 1e9,
                "GFLOP/s",
            );
            if tokens == 1 {
                decode_s += sec * s.per_token as f64;
            }
            if tokens == 512 {
                prefill_s += sec * s.per_token as f64;
            }
        }
    }
    model_steps(runs, quick);

    // Dispatch cost of a small call: from a plain thread (rayon injects and blocks) vs from
    // inside the pool (work stealing), the way an engine running its forward pass under
    // `install` would call.
    let w = weights(WeightFormat::Q4_1, 576, 576);
    let (outside, _) = time(&w, 1, runs, budget);
    let (inside, _) = rayon::scope(|_| time(&w, 1, runs, budget));
    line("q_o_t1_called_outside_pool_us", outside * 1e6, "us");
    line("q_o_t1_called_inside_pool_us", inside * 1e6, "us");
    if only.is_none() {
        // From the cached per-shape timings: a bound, not the memory-streaming figure above.
        line(
            "smollm2_cached_decode_matmul_ms_per_token",
            decode_s * 1e3,
            "ms",
        );
        line(
            "smollm2_cached_prefill512_matmul_tok_s",
            512.0 / prefill_s,
            "tok/s",
        );
    }
}
