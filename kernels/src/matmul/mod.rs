//! `y = x · Wᵀ` over a batch of token rows: activations quantized once per call, rows split
//! across the rayon pool, and each thread's 8-row groups run over all tokens so a weight block
//! is read once per group for the whole batch.

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod reference;

use std::cell::RefCell;

use crate::blocks::QK;
use crate::dispatch::{KernelLevel, active_level};
use crate::error::{KernelError, check_len};
use crate::qmatrix::{GROUP, QMatrix, Repr};
use crate::quantize::QuantActs;

/// Reusable buffers for [`matmul_into_with_scratch`]; [`matmul`] keeps one per thread.
#[derive(Debug, Default)]
pub struct MatmulScratch {
    acts: QuantActs,
}

impl MatmulScratch {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Output pointer shared by the row-group tasks. Each task writes only the rows of its own
/// groups, so writes never overlap.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    ptr: *mut f32,
    rows: usize,
}

// SAFETY: tasks write disjoint row ranges (see `run`), and the buffer outlives the scope.
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

impl Out {
    /// # Safety
    /// `t < tokens`, `r < rows`, and no other task writes row `r`.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, t: usize, r: usize, v: f32) {
        // SAFETY: guaranteed by the caller; the buffer holds tokens * rows values.
        unsafe { *self.ptr.add(t * self.rows + r) = v };
    }
}

/// The input a kernel reads: quantized activations for block formats, f32 for float ones.
pub(crate) enum Input<'a> {
    Quant(&'a QuantActs),
    Float { x: &'a [f32], tokens: usize },
}

/// `out[t*rows + r] = Σ_c w[r][c] · x[t*cols + c]` at the active level.
///
/// Block formats quantize each token row once (Q8_0/Q8_1, ggml's reference rounding) and use
/// integer dot products per 32-block, llama.cpp's formula; results are bit-identical across
/// levels and independent of how many tokens share the call. Rows are split over the current
/// rayon pool. Call it from inside the pool (run the whole forward step under
/// `ThreadPool::install` or `rayon::scope`): from an outside thread every call pays a
/// cross-thread wake-up and a blocking wait, which at ~200 small matmuls per decoded token adds
/// milliseconds.
pub fn matmul(w: &QMatrix, x: &[f32], tokens: usize, out: &mut [f32]) -> Result<(), KernelError> {
    thread_local! {
        static SCRATCH: RefCell<MatmulScratch> = RefCell::new(MatmulScratch::default());
    }
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => run(active_level(), w, x, tokens, out, &mut s),
        // Only reachable by re-entrance, which matmul never does; stay correct anyway.
        Err(_) => run(
            active_level(),
            w,
            x,
            tokens,
            out,
            &mut MatmulScratch::default(),
        ),
    })
}

/// As [`matmul`], with caller-owned scratch buffers.
pub fn matmul_into_with_scratch(
    w: &QMatrix,
    x: &[f32],
    tokens: usize,
    out: &mut [f32],
    scratch: &mut MatmulScratch,
) -> Result<(), KernelError> {
    run(active_level(), w, x, tokens, out, scratch)
}

/// As [`matmul`] at a given level (tests and benches); an unsupported level is an error.
pub fn matmul_at(
    level: KernelLevel,
    w: &QMatrix,
    x: &[f32],
    tokens: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    if !level.is_supported() {
        return Err(KernelError::UnsupportedLevel {
            requested: level.name().to_owned(),
            reason: "this CPU lacks the instructions",
        });
    }
    run(level, w, x, tokens, out, &mut MatmulScratch::default())
}

fn run(
    level: KernelLevel,
    w: &QMatrix,
    x: &[f32],
    tokens: usize,
    out: &mut [f32],
    scratch: &mut MatmulScratch,
) -> Result<(), KernelError> {
    let too_large = KernelError::TooLarge {
        rows: tokens,
        cols: w.cols.max(w.rows),
    };
    check_len(
        "matmul input",
        tokens.checked_mul(w.cols).ok_or(too_large.clone())?,
        x.len(),
    )?;
    check_len(
        "matmul output",
        tokens.checked_mul(w.rows).ok_or(too_large)?,
        out.len(),
    )?;
    if tokens == 0 || w.rows == 0 {
        return Ok(());
    }
    let input = match &w.repr {
        Repr::Quant(_) => {
            scratch.acts.quantize(level, x, tokens, w.cols);
            Input::Quant(&scratch.acts)
        }
        _ => Input::Float { x, tokens },
    };
    let o = Out {
        ptr: out.as_mut_ptr(),
        rows: w.rows,
    };
    let groups = w.groups();
    let tasks = task_count(groups, tokens, w.cols);
    let span = |i: usize| (i * groups / tasks, (i + 1) * groups / tasks);
    if tasks == 1 {
        run_groups(level, w, &input, 0, groups, o);
    } else {
        use rayon::prelude::*;
        (0..tasks).into_par_iter().for_each(|i| {
            let (g0, g1) = span(i);
            run_groups(level, w, &input, g0, g1, o);
        });
    }
    Ok(())
}

/// Enough tasks to keep every thread busy, few enough that a one-token call stays cheap.
fn task_count(groups: usize, tokens: usize, cols: usize) -> usize {
    let work = groups * GROUP * cols * tokens;
    if work < 1 << 17 {
        return 1;
    }
    let threads = rayon::current_num_threads().max(1);
    // Several tasks per thread once a call is long enough for stragglers to matter.
    let per_thread = if work >= 1 << 24 { 4 } else { 1 };
    (threads * per_thread).min(groups).max(1)
}

fn run_groups(level: KernelLevel, w: &QMatrix, input: &Input<'_>, g0: usize, g1: usize, out: Out) {
    match level {
        KernelLevel::Reference => reference::run_groups(w, input, g0, g1, out),
        #[cfg(target_arch = "x86_64")]
        KernelLevel::Avx2 => {
            // SAFETY: `run` is only reached with a level whose `is_supported()` held (the active
            // level is chosen from supported ones; `matmul_at` checks it).
            unsafe { avx2::run_groups(w, input, g0, g1, out) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        KernelLevel::Avx2 => reference::run_groups(w, input, g0, g1, out),
    }
}

/// Blocks per row of a block-format matrix.
pub(crate) fn blocks_per_row(w: &QMatrix) -> usize {
    w.cols / QK
}
