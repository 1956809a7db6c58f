//! Run-time choice of the SIMD level, made once per process.

use std::sync::OnceLock;

use crate::error::KernelError;

/// An implementation level. Every level computes bit-identical matmul results; the float
/// helpers agree within a few ulp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelLevel {
    /// Plain scalar code: the test oracle, and the fallback on any CPU.
    Reference,
    /// AVX2 + FMA + F16C (x86-64-v3).
    Avx2,
}

impl KernelLevel {
    pub fn name(self) -> &'static str {
        match self {
            KernelLevel::Reference => "reference",
            KernelLevel::Avx2 => "avx2",
        }
    }

    /// Whether this CPU can run the level.
    pub fn is_supported(self) -> bool {
        match self {
            KernelLevel::Reference => true,
            KernelLevel::Avx2 => avx2_supported(),
        }
    }

    /// Parses an `ENCLAVE_KERNELS` value and checks the CPU supports it.
    pub fn parse(s: &str) -> Result<KernelLevel, KernelError> {
        let level = match s.trim().to_ascii_lowercase().as_str() {
            "reference" | "scalar" => KernelLevel::Reference,
            "avx2" => KernelLevel::Avx2,
            "avx512" => {
                return Err(KernelError::UnsupportedLevel {
                    requested: s.to_owned(),
                    reason: "no AVX-512 kernels are built yet; avx2 kernels run on AVX-512 CPUs",
                });
            }
            _ => {
                return Err(KernelError::UnsupportedLevel {
                    requested: s.to_owned(),
                    reason: "expected reference, avx2 or avx512",
                });
            }
        };
        if level.is_supported() {
            Ok(level)
        } else {
            Err(KernelError::UnsupportedLevel {
                requested: s.to_owned(),
                reason: "this CPU lacks the instructions",
            })
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_supported() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_supported() -> bool {
    false
}

/// The best level this CPU supports.
pub fn best_level() -> KernelLevel {
    if KernelLevel::Avx2.is_supported() {
        KernelLevel::Avx2
    } else {
        KernelLevel::Reference
    }
}

/// Every level this CPU supports (for tests and benches).
pub fn available_levels() -> Vec<KernelLevel> {
    [KernelLevel::Reference, KernelLevel::Avx2]
        .into_iter()
        .filter(|l| l.is_supported())
        .collect()
}

struct Choice {
    level: KernelLevel,
    /// Why `ENCLAVE_KERNELS` was not honoured, if it was set and unusable.
    env_error: Option<KernelError>,
    description: String,
}

fn choice() -> &'static Choice {
    static CHOICE: OnceLock<Choice> = OnceLock::new();
    CHOICE.get_or_init(|| {
        let (level, env_error) = match std::env::var("ENCLAVE_KERNELS") {
            Ok(v) if !v.trim().is_empty() => match KernelLevel::parse(&v) {
                Ok(l) => (l, None),
                Err(e) => (best_level(), Some(e)),
            },
            _ => (best_level(), None),
        };
        let description = match &env_error {
            None => level.name().to_owned(),
            Some(e) => format!("{} ({e}; using the best supported level)", level.name()),
        };
        Choice {
            level,
            env_error,
            description,
        }
    })
}

/// The level every public op uses: `ENCLAVE_KERNELS` if set and supported, else the best one.
pub fn active_level() -> KernelLevel {
    choice().level
}

/// The error from an unusable `ENCLAVE_KERNELS` value, if any (the ops then run the best level).
pub fn level_override_error() -> Option<&'static KernelError> {
    choice().env_error.as_ref()
}

/// The chosen level as text, for logs and bench output.
pub fn cpu_features() -> &'static str {
    &choice().description
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_levels() {
        assert_eq!(KernelLevel::parse("reference"), Ok(KernelLevel::Reference));
        assert!(matches!(
            KernelLevel::parse("sse9"),
            Err(KernelError::UnsupportedLevel { .. })
        ));
        assert!(matches!(
            KernelLevel::parse("avx512"),
            Err(KernelError::UnsupportedLevel { .. })
        ));
        assert_eq!(
            KernelLevel::parse("avx2").is_ok(),
            KernelLevel::Avx2.is_supported()
        );
    }

    #[test]
    fn reference_is_always_available() {
        assert!(available_levels().contains(&KernelLevel::Reference));
        assert!(!cpu_features().is_empty());
    }
}
