//! `enclave bench ...`: every figure is one JSON line `{"bench","metric","value","unit"}`.

pub mod audit;
pub mod engine;
pub mod format;
pub mod gateway;
pub mod lora;
pub mod streams;

use serde_json::json;

pub fn emit(bench: &str, metric: &str, value: f64, unit: &str) {
    println!(
        "{}",
        json!({"bench": bench, "metric": metric, "value": (value * 1000.0).round() / 1000.0, "unit": unit})
    );
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
