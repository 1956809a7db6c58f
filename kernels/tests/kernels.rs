//! Every format × every SIMD level this CPU has, against the scalar oracle computed straight
//! from ggml bytes (`reference::matmul_ggml`, which quantizes activations with the public
//! `quantize_row_q8_1` and decodes weights with ggml's block formulas).

use enclave_kernels::{
    KernelError, KernelLevel, QMatrix, WeightFormat, available_levels, matmul, matmul_at,
    quantize_row_q8_0, reference,
};
use half::{bf16, f16};

const ALL: [WeightFormat; 8] = [
    WeightFormat::F32,
    WeightFormat::F16,
    WeightFormat::BF16,
    WeightFormat::Q4_0,
    WeightFormat::Q4_1,
    WeightFormat::Q5_0,
    WeightFormat::Q5_1,
    WeightFormat::Q8_0,
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

fn half_bytes(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_bits().to_le_bytes()
}

/// Random ggml bytes: every code value possible (Q8_0 includes -128), realistic scales.
fn random_ggml(format: WeightFormat, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rows {
        if format.block_elems() == 1 {
            for _ in 0..cols {
                let v = rng.unit();
                match format {
                    WeightFormat::F32 => out.extend_from_slice(&v.to_le_bytes()),
                    WeightFormat::F16 => out.extend_from_slice(&half_bytes(v)),
                    _ => out.extend_from_slice(&bf16::from_f32(v).to_bits().to_le_bytes()),
                }
            }
            continue;
        }
        for _ in 0..cols / 32 {
            out.extend_from_slice(&half_bytes(rng.unit().abs() * 0.05 + 1e-3));
            if matches!(format, WeightFormat::Q4_1 | WeightFormat::Q5_1) {
                out.extend_from_slice(&half_bytes(rng.unit() * 0.1));
            }
            let rest = format.block_bytes()
                - if matches!(format, WeightFormat::Q4_1 | WeightFormat::Q5_1) {
                    4
                } else {
                    2
                };
            for _ in 0..rest {
                out.push(rng.byte());
            }
        }
    }
    out
}

fn random_x(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n)
        .map(|i| if i % 97 == 5 { 0.0 } else { rng.unit() * 3.0 })
        .collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[test]
fn every_format_and_level_matches_the_ggml_oracle() {
    let mut rng = Rng(0x5EED_1234);
    for format in ALL {
        for &(rows, cols) in &[(1, 32), (7, 64), (13, 96), (37, 576), (8, 1536)] {
            let bytes = random_ggml(format, rows, cols, &mut rng);
            let w = QMatrix::from_ggml_bytes(format, rows, cols, &bytes).expect("valid bytes");
            for tokens in [1, 3, 17, 64] {
                let mut x = random_x(tokens * cols, &mut rng);
                if tokens > 1 {
                    // One all-zero token row: d = 0 path.
                    x[cols..2 * cols].fill(0.0);
                }
                let mut want = vec![0f32; tokens * rows];
                reference::matmul_ggml(format, rows, cols, &bytes, &x, tokens, &mut want)
                    .expect("oracle");
                for level in available_levels() {
                    let mut got = vec![f32::NAN; tokens * rows];
                    matmul_at(level, &w, &x, tokens, &mut got).expect("matmul");
                    assert!(
                        same_bits(&got, &want),
                        "{format:?} {rows}x{cols} tokens={tokens} level={level:?}: first diff at {:?}",
                        got.iter()
                            .zip(&want)
                            .position(|(a, b)| a != b)
                            .map(|i| (i, got[i], want[i]))
                    );
                }
            }
        }
    }
}

#[test]
fn each_token_result_is_independent_of_the_batch() {
    let mut rng = Rng(77);
    let (rows, cols, tokens) = (29, 128, 17);
    for format in ALL {
        let bytes = random_ggml(format, rows, cols, &mut rng);
        let w = QMatrix::from_ggml_bytes(format, rows, cols, &bytes).expect("valid");
        let x = random_x(tokens * cols, &mut rng);
        let mut batch = vec![0f32; tokens * rows];
        matmul(&w, &x, tokens, &mut batch).expect("batch");
        for t in 0..tokens {
            let mut one = vec![0f32; rows];
            matmul(&w, &x[t * cols..(t + 1) * cols], 1, &mut one).expect("single");
            assert!(
                same_bits(&one, &batch[t * rows..(t + 1) * rows]),
                "{format:?} token {t}"
            );
        }
    }
}

#[test]
fn large_matrix_split_across_threads_matches_oracle() {
    let mut rng = Rng(4242);
    let (rows, cols, tokens) = (1000, 576, 5);
    for format in [WeightFormat::Q4_1, WeightFormat::Q8_0] {
        let bytes = random_ggml(format, rows, cols, &mut rng);
        let w = QMatrix::from_ggml_bytes(format, rows, cols, &bytes).expect("valid");
        let x = random_x(tokens * cols, &mut rng);
        let mut want = vec![0f32; tokens * rows];
        reference::matmul_ggml(format, rows, cols, &bytes, &x, tokens, &mut want).expect("oracle");
        let mut got = vec![0f32; tokens * rows];
        matmul(&w, &x, tokens, &mut got).expect("matmul");
        assert!(same_bits(&got, &want), "{format:?}");
    }
}

#[test]
fn caller_scratch_is_reusable_across_shapes() {
    let mut rng = Rng(123);
    let mut scratch = enclave_kernels::MatmulScratch::new();
    for &(format, rows, cols, tokens) in &[
        (WeightFormat::Q4_1, 9, 64, 5),
        (WeightFormat::Q8_0, 3, 160, 2),
        (WeightFormat::F16, 4, 32, 3),
        (WeightFormat::Q5_0, 17, 32, 1),
    ] {
        let bytes = random_ggml(format, rows, cols, &mut rng);
        let w = QMatrix::from_ggml_bytes(format, rows, cols, &bytes).expect("valid");
        let x = random_x(tokens * cols, &mut rng);
        let (mut got, mut want) = (vec![0f32; tokens * rows], vec![0f32; tokens * rows]);
        enclave_kernels::matmul_into_with_scratch(&w, &x, tokens, &mut got, &mut scratch)
            .expect("matmul");
        reference::matmul_ggml(format, rows, cols, &bytes, &x, tokens, &mut want).expect("oracle");
        assert!(same_bits(&got, &want), "{format:?}");
    }
}

#[test]
fn dequantize_row_matches_ggml_dequantization() {
    let mut rng = Rng(9);
    for format in ALL {
        let (rows, cols) = (11, 96);
        let bytes = random_ggml(format, rows, cols, &mut rng);
        let w = QMatrix::from_ggml_bytes(format, rows, cols, &bytes).expect("valid");
        let want = reference::dequantize_ggml(format, rows, cols, &bytes).expect("valid");
        let mut row = vec![0f32; cols];
        for r in 0..rows {
            w.dequantize_row(r, &mut row).expect("row");
            assert!(
                same_bits(&row, &want[r * cols..(r + 1) * cols]),
                "{format:?} row {r}"
            );
        }
    }
}

#[test]
fn q8_0_round_trip_is_within_half_a_step() {
    let mut rng = Rng(3);
    let (rows, cols) = (5, 64);
    let x = random_x(rows * cols, &mut rng);
    let mut blocks = vec![enclave_kernels::BlockQ8_0::default(); rows * cols / 32];
    quantize_row_q8_0(&x, &mut blocks).expect("sizes");
    let mut bytes = Vec::new();
    for b in &blocks {
        bytes.extend_from_slice(&b.d.to_bits().to_le_bytes());
        bytes.extend(b.qs.iter().map(|&q| q as u8));
    }
    let w = QMatrix::from_ggml_bytes(WeightFormat::Q8_0, rows, cols, &bytes).expect("valid");
    let mut row = vec![0f32; cols];
    for r in 0..rows {
        w.dequantize_row(r, &mut row).expect("row");
        for (c, (&got, &orig)) in row.iter().zip(&x[r * cols..(r + 1) * cols]).enumerate() {
            let d = blocks[(r * cols + c) / 32].d.to_f32();
            // Half a step, plus the f16 rounding of d (relative 2^-11) times up to 127 steps.
            assert!(
                (got - orig).abs() <= d * (0.5 + 127.0 / 2048.0) + 1e-7,
                "r{r} c{c}: {got} vs {orig}, d={d}"
            );
        }
    }
}

#[test]
fn from_f32_matches_f32_bytes() {
    let mut rng = Rng(11);
    let (rows, cols) = (9, 40);
    let v = random_x(rows * cols, &mut rng);
    let a = QMatrix::from_f32(rows, cols, &v).expect("valid");
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    let b = QMatrix::from_ggml_bytes(WeightFormat::F32, rows, cols, &bytes).expect("valid");
    let x = random_x(2 * cols, &mut rng);
    let (mut ya, mut yb) = (vec![0f32; 2 * rows], vec![0f32; 2 * rows]);
    matmul(&a, &x, 2, &mut ya).expect("a");
    matmul(&b, &x, 2, &mut yb).expect("b");
    assert!(same_bits(&ya, &yb));
    // And against a plain f64 dot product, loosely.
    for r in 0..rows {
        let want: f64 = (0..cols)
            .map(|c| v[r * cols + c] as f64 * x[c] as f64)
            .sum();
        assert!((ya[r] as f64 - want).abs() < 1e-4, "row {r}");
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let q = |cols: usize, len: usize| {
        QMatrix::from_ggml_bytes(WeightFormat::Q4_1, 2, cols, &vec![0u8; len])
    };
    type Case = (
        &'static str,
        Result<QMatrix, KernelError>,
        fn(&KernelError) -> bool,
    );
    let cases: Vec<Case> = vec![
        ("short bytes", q(64, 79), |e| {
            matches!(
                e,
                KernelError::ByteLength {
                    expected: 80,
                    actual: 79,
                    ..
                }
            )
        }),
        ("long bytes", q(64, 81), |e| {
            matches!(e, KernelError::ByteLength { .. })
        }),
        ("cols not multiple of 32", q(48, 60), |e| {
            matches!(e, KernelError::ColsNotBlockMultiple { cols: 48, .. })
        }),
        ("zero cols", q(0, 0), |e| {
            matches!(e, KernelError::ColsNotBlockMultiple { .. })
        }),
        (
            "f16 odd bytes",
            QMatrix::from_ggml_bytes(WeightFormat::F16, 3, 5, &[0u8; 29]),
            |e| matches!(e, KernelError::ByteLength { expected: 30, .. }),
        ),
        (
            "overflowing shape",
            QMatrix::from_ggml_bytes(WeightFormat::F32, usize::MAX, 2, &[]),
            |e| matches!(e, KernelError::TooLarge { .. }),
        ),
        ("from_f32 length", QMatrix::from_f32(2, 3, &[0.0; 5]), |e| {
            matches!(e, KernelError::Length { .. })
        }),
    ];
    for (name, res, check) in cases {
        match res {
            Err(e) => assert!(check(&e), "{name}: unexpected error {e}"),
            Ok(_) => panic!("{name}: accepted"),
        }
    }

    let w = QMatrix::from_ggml_bytes(WeightFormat::Q4_1, 2, 64, &[0u8; 80]).expect("valid");
    let mut out = vec![0f32; 2];
    assert!(matches!(
        matmul(&w, &[0.0; 63], 1, &mut out),
        Err(KernelError::Length {
            expected: 64,
            actual: 63,
            ..
        })
    ));
    assert!(matches!(
        matmul(&w, &[0.0; 64], 1, &mut [0.0; 3]),
        Err(KernelError::Length {
            what: "matmul output",
            ..
        })
    ));
    assert!(matches!(
        matmul(&w, &[0.0; 64], usize::MAX / 2, &mut out),
        Err(KernelError::TooLarge { .. })
    ));
    let mut row = vec![0f32; 64];
    assert!(matches!(
        w.dequantize_row(2, &mut row),
        Err(KernelError::RowOutOfRange { row: 2, rows: 2 })
    ));
    assert!(matches!(
        w.dequantize_row(0, &mut row[..10]),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        KernelLevel::parse("neon9"),
        Err(KernelError::UnsupportedLevel { .. })
    ));
}

#[test]
fn matrix_metadata() {
    let w = QMatrix::from_ggml_bytes(WeightFormat::Q8_0, 3, 64, &[0u8; 3 * 2 * 34]).expect("valid");
    assert_eq!(
        (w.rows(), w.cols(), w.format()),
        (3, 64, WeightFormat::Q8_0)
    );
    assert!(w.size_bytes() >= 3 * 2 * 34);
    let mut out = vec![1f32; 0];
    assert!(matmul(&w, &[], 0, &mut out).is_ok());
}

mod ops {
    use super::*;
    use enclave_kernels::{
        axpy_f16_f32_at, dot_f16_f32_at, dot_f32_at, f32_to_f16_row_at, rms_norm, silu_mul_at,
        softmax_inplace_at,
    };

    fn close(a: f32, b: f32, rel: f32) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-6)
    }

    #[test]
    fn silu_and_softmax_match_reference() {
        let mut rng = Rng(21);
        for n in [1, 7, 8, 33, 1536] {
            let gate0: Vec<f32> = (0..n).map(|_| rng.unit() * 12.0).collect();
            let up: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
            let mut want = gate0.clone();
            reference::silu_mul(&mut want, &up);
            let mut sm_want: Vec<f32> = gate0.iter().map(|v| v * 4.0).collect();
            if n > 2 {
                sm_want[1] = f32::NEG_INFINITY; // a causal mask entry
            }
            let sm_in = sm_want.clone();
            reference::softmax_inplace(&mut sm_want);
            for level in available_levels() {
                let mut got = gate0.clone();
                silu_mul_at(level, &mut got, &up).expect("same lengths");
                for i in 0..n {
                    assert!(
                        close(got[i], want[i], 2e-6),
                        "silu {level:?} n={n} i={i}: {} vs {}",
                        got[i],
                        want[i]
                    );
                }
                let mut sm = sm_in.clone();
                softmax_inplace_at(level, &mut sm);
                for i in 0..n {
                    assert!(
                        (sm[i] - sm_want[i]).abs() <= 2e-6 * sm_want[i].max(1e-30) + 1e-12,
                        "softmax {level:?} n={n} i={i}"
                    );
                }
                if n > 2 {
                    assert_eq!(sm[1], 0.0);
                }
            }
        }
    }

    #[test]
    fn f16_helpers_match_reference() {
        let mut rng = Rng(5);
        for n in [3, 8, 64, 100] {
            let a: Vec<f32> = (0..n).map(|_| rng.unit() * 100.0).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.unit()).collect();
            let mut want_h = vec![f16::ZERO; n];
            reference::f32_to_f16_row(&a, &mut want_h);
            for level in available_levels() {
                let mut h = vec![f16::ZERO; n];
                f32_to_f16_row_at(level, &a, &mut h).expect("same lengths");
                assert_eq!(h, want_h, "{level:?}");
                let want = reference::dot_f16_f32(&h, &b);
                assert!(
                    close(dot_f16_f32_at(level, &h, &b), want, 1e-5),
                    "dot_f16 {level:?} {n}"
                );
                assert!(
                    close(dot_f32_at(level, &a, &b), reference::dot_f32(&a, &b), 1e-5),
                    "dot_f32 {level:?} {n}"
                );
                let (mut y, mut y_want) = (b.clone(), b.clone());
                axpy_f16_f32_at(level, 0.37, &h, &mut y);
                reference::axpy_f16_f32(0.37, &h, &mut y_want);
                for i in 0..n {
                    assert!(close(y[i], y_want[i], 1e-6), "axpy {level:?} {n} {i}");
                }
            }
        }
        assert!(f32_to_f16_row_at(KernelLevel::Reference, &[1.0; 3], &mut [f16::ZERO; 2]).is_err());
    }

    #[test]
    fn rms_norm_follows_ggml() {
        let x = [1.0f32, -2.0, 3.0, 4.0];
        let w = [1.0f32, 0.5, 2.0, 1.0];
        let mut out = [0f32; 4];
        rms_norm(&x, &w, 1e-5, &mut out).expect("same lengths");
        let scale = 1.0 / ((30.0f32 / 4.0) + 1e-5).sqrt();
        for i in 0..4 {
            assert_eq!(out[i], (x[i] * scale) * w[i]);
        }
        assert!(rms_norm(&x, &w[..3], 1e-5, &mut out).is_err());
        assert!(enclave_kernels::add_inplace(&mut out, &x[..2]).is_err());
    }
}
