//! Per-layer f32 helpers. Shape-checked ones return `KernelError`; the three attention inner
//! loops (`dot_f32`, `dot_f16_f32`, `axpy_f16_f32`) take the common length of their inputs,
//! since they run per (token, key) and their callers slice both sides from the same head_dim.

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod reference;

use half::f16;

use crate::dispatch::{KernelLevel, active_level};
use crate::error::{KernelError, check_len};

/// Whether the AVX2 versions may run (x86-64 with AVX2+FMA+F16C and that level active).
#[inline]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn simd(level: KernelLevel) -> bool {
    cfg!(target_arch = "x86_64") && level == KernelLevel::Avx2
}

macro_rules! dispatch {
    ($level:expr, $name:ident ( $($arg:expr),* )) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if simd($level) {
                // SAFETY: the Avx2 level is only active (or accepted by `*_at`) when the CPU has
                // AVX2, FMA and F16C.
                #[allow(clippy::unit_arg)]
                return Ok(unsafe { avx2::$name($($arg),*) });
            }
        }
        Ok(reference::$name($($arg),*))
    }};
}

/// `out = rms_norm(x) * weight` (ggml semantics; see [`reference::rms_norm`]).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) -> Result<(), KernelError> {
    check_len("rms_norm weight", x.len(), weight.len())?;
    check_len("rms_norm output", x.len(), out.len())?;
    reference::rms_norm(x, weight, eps, out);
    Ok(())
}

/// `gate = silu(gate) * up`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    silu_mul_at(active_level(), gate, up)
}

/// [`silu_mul`] at a given level (tests).
pub fn silu_mul_at(level: KernelLevel, gate: &mut [f32], up: &[f32]) -> Result<(), KernelError> {
    check_len("silu_mul up", gate.len(), up.len())?;
    if !level.is_supported() {
        return Err(unsupported(level));
    }
    let r: Result<(), KernelError> = (|| dispatch!(level, silu_mul(gate, up)))();
    r
}

/// `a += b`.
pub fn add_inplace(a: &mut [f32], b: &[f32]) -> Result<(), KernelError> {
    check_len("add_inplace operand", a.len(), b.len())?;
    reference::add_inplace(a, b);
    Ok(())
}

/// In-place softmax of one row (an all -inf row is left unchanged).
pub fn softmax_inplace(x: &mut [f32]) {
    softmax_inplace_at(active_level(), x)
}

/// [`softmax_inplace`] at a given level (tests); an unsupported level runs the reference.
pub fn softmax_inplace_at(level: KernelLevel, x: &mut [f32]) {
    let level = if level.is_supported() {
        level
    } else {
        KernelLevel::Reference
    };
    let r: Result<_, std::convert::Infallible> = (|| dispatch!(level, softmax_inplace(x)))();
    match r {
        Ok(v) => v,
    }
}

/// Σ a·b over the common length.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    dot_f32_at(active_level(), a, b)
}

pub fn dot_f32_at(level: KernelLevel, a: &[f32], b: &[f32]) -> f32 {
    let level = if level.is_supported() {
        level
    } else {
        KernelLevel::Reference
    };
    let r: Result<_, std::convert::Infallible> = (|| dispatch!(level, dot_f32(a, b)))();
    match r {
        Ok(v) => v,
    }
}

/// Rounds a row to f16 (round to nearest even), e.g. into the KV cache.
pub fn f32_to_f16_row(x: &[f32], out: &mut [f16]) -> Result<(), KernelError> {
    f32_to_f16_row_at(active_level(), x, out)
}

pub fn f32_to_f16_row_at(
    level: KernelLevel,
    x: &[f32],
    out: &mut [f16],
) -> Result<(), KernelError> {
    check_len("f32_to_f16_row output", x.len(), out.len())?;
    if !level.is_supported() {
        return Err(unsupported(level));
    }
    let r: Result<(), KernelError> = (|| dispatch!(level, f32_to_f16_row(x, out)))();
    r
}

/// Σ a·b over the common length, a in f16 (attention scores over an f16 K cache).
pub fn dot_f16_f32(a: &[f16], b: &[f32]) -> f32 {
    dot_f16_f32_at(active_level(), a, b)
}

pub fn dot_f16_f32_at(level: KernelLevel, a: &[f16], b: &[f32]) -> f32 {
    let level = if level.is_supported() {
        level
    } else {
        KernelLevel::Reference
    };
    let r: Result<_, std::convert::Infallible> = (|| dispatch!(level, dot_f16_f32(a, b)))();
    match r {
        Ok(v) => v,
    }
}

/// `y += alpha * x` over the common length, x in f16 (attention output over an f16 V cache).
pub fn axpy_f16_f32(alpha: f32, x: &[f16], y: &mut [f32]) {
    axpy_f16_f32_at(active_level(), alpha, x, y)
}

pub fn axpy_f16_f32_at(level: KernelLevel, alpha: f32, x: &[f16], y: &mut [f32]) {
    let level = if level.is_supported() {
        level
    } else {
        KernelLevel::Reference
    };
    let r: Result<_, std::convert::Infallible> = (|| dispatch!(level, axpy_f16_f32(alpha, x, y)))();
    match r {
        Ok(v) => v,
    }
}

fn unsupported(level: KernelLevel) -> KernelError {
    KernelError::UnsupportedLevel {
        requested: level.name().to_owned(),
        reason: "this CPU lacks the instructions",
    }
}
