//! Criterion throughput of `matmul` on the demo model's shapes; throughput in weight bytes.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use enclave_kernels::{QMatrix, WeightFormat, matmul};

fn matrix(format: WeightFormat, rows: usize, cols: usize) -> QMatrix {
    let n = format.ggml_bytes(rows, cols).unwrap_or(0);
    let mut bytes: Vec<u8> = (0..n)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    for blk in bytes.chunks_exact_mut(format.block_bytes()) {
        blk[0] = 0;
        blk[1] = 0x20;
    }
    QMatrix::from_ggml_bytes(format, rows, cols, &bytes).expect("bench shapes are valid")
}

fn bench(c: &mut Criterion) {
    let shapes = [
        (WeightFormat::Q4_1, 576, 576),
        (WeightFormat::Q4_1, 1536, 576),
        (WeightFormat::Q4_1, 576, 1536),
        (WeightFormat::Q8_0, 49152, 576),
    ];
    let mut g = c.benchmark_group(format!("matmul/{}", enclave_kernels::cpu_features()));
    g.sample_size(20);
    for (format, rows, cols) in shapes {
        let w = matrix(format, rows, cols);
        for tokens in [1usize, 16, 512] {
            if rows * tokens > 49152 * 16 {
                continue;
            }
            let x: Vec<f32> = (0..tokens * cols)
                .map(|i| (i % 17) as f32 * 0.1 - 0.8)
                .collect();
            let mut out = vec![0f32; tokens * rows];
            g.throughput(Throughput::Bytes(w.size_bytes() as u64));
            g.bench_function(format!("{format:?}_{rows}x{cols}_t{tokens}"), |b| {
                b.iter(|| matmul(&w, &x, tokens, &mut out).expect("shapes match"))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
