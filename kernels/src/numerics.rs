//! Which llama.cpp CPU build's float arithmetic the non-integer ops reproduce.
//!
//! llama.cpp compiled for the build machine (`-march=native`, its default) sums in 8-lane
//! registers on an AVX2 CPU and in 16-lane ones on an AVX-512 CPU, and its vector `expf` differs
//! between the two (AVX-512 adds 1 inside the polynomial and scales with `vscalefps`). Softmax,
//! silu and the attention sums therefore round differently, and greedy outputs part at
//! near-ties. The quantized dot products are the same in both builds. Every kernel level
//! (scalar, AVX2) computes either arithmetic bit for bit; this only says which one.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::KernelError;

/// The llama.cpp x86 build whose float results the ops reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Numerics {
    /// Built for AVX2 + FMA: 8-lane partial sums, the AVX2 `ggml_v_expf`.
    Avx2,
    /// Built for AVX-512 F + DQ: 16-lane partial sums, the AVX-512 `ggml_v_expf`.
    Avx512,
}

impl Numerics {
    pub fn name(self) -> &'static str {
        match self {
            Numerics::Avx2 => "avx2",
            Numerics::Avx512 => "avx512",
        }
    }

    /// Float lanes of llama.cpp's vector registers in this build.
    pub fn lanes(self) -> usize {
        match self {
            Numerics::Avx2 => 8,
            Numerics::Avx512 => 16,
        }
    }

    /// What a native llama.cpp build on this CPU uses.
    pub fn native() -> Numerics {
        if avx512_native() {
            Numerics::Avx512
        } else {
            Numerics::Avx2
        }
    }

    /// Parses an `ENCLAVE_NUMERICS` value (`avx2`, `avx512` or `native`).
    pub fn parse(s: &str) -> Result<Numerics, KernelError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "avx2" => Ok(Numerics::Avx2),
            "avx512" => Ok(Numerics::Avx512),
            "native" => Ok(Numerics::native()),
            _ => Err(KernelError::UnsupportedLevel {
                requested: s.to_owned(),
                reason: "ENCLAVE_NUMERICS expects avx2, avx512 or native",
            }),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn avx512_native() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512_native() -> bool {
    false
}

/// 0: not chosen yet; 1 + discriminant otherwise.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

fn encode(n: Numerics) -> u8 {
    match n {
        Numerics::Avx2 => 1,
        Numerics::Avx512 => 2,
    }
}

/// The arithmetic the public ops use: set by [`set_numerics`], else `ENCLAVE_NUMERICS`
/// (`avx2`, `avx512` or `native`), else AVX2 (an unusable value falls back to AVX2). AVX2 stays
/// the default until the engine's exact-ids test passes in AVX-512 arithmetic too.
pub fn numerics() -> Numerics {
    match CHOSEN.load(Ordering::Relaxed) {
        1 => Numerics::Avx2,
        2 => Numerics::Avx512,
        _ => {
            let n = std::env::var("ENCLAVE_NUMERICS")
                .ok()
                .and_then(|v| Numerics::parse(&v).ok())
                .unwrap_or(Numerics::Avx2);
            // A concurrent first call computes the same value.
            let _ = CHOSEN.compare_exchange(0, encode(n), Ordering::Relaxed, Ordering::Relaxed);
            numerics_after_init()
        }
    }
}

fn numerics_after_init() -> Numerics {
    if CHOSEN.load(Ordering::Relaxed) == 2 {
        Numerics::Avx512
    } else {
        Numerics::Avx2
    }
}

/// Pins the arithmetic for the whole process, e.g. to the build that recorded a reference
/// (set it before loading a model: a change mid-generation changes later logits).
pub fn set_numerics(n: Numerics) {
    CHOSEN.store(encode(n), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_values() {
        assert_eq!(Numerics::parse("AVX512"), Ok(Numerics::Avx512));
        assert_eq!(Numerics::parse("avx2"), Ok(Numerics::Avx2));
        assert_eq!(Numerics::parse("native"), Ok(Numerics::native()));
        assert!(Numerics::parse("sse").is_err());
        assert_eq!(Numerics::Avx512.lanes(), 16);
    }
}
