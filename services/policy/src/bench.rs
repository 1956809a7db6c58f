//! Policy benchmark: matching throughput, streaming overhead per token and compile time.
//! The CLI prints each figure as a JSON line; `examples/bench.rs` does the same standalone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::detect::features::SplitMix;
use crate::{Limits, Policy, PolicyDocument, Scope, StreamFilter};

/// One measured figure: `{"bench":"policy","metric":...,"value":...,"unit":...}`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchFigure {
    pub bench: &'static str,
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
}

impl BenchFigure {
    fn new(metric: impl Into<String>, value: f64, unit: &'static str) -> Self {
        BenchFigure {
            bench: "policy",
            metric: metric.into(),
            value,
            unit,
        }
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Bench sizes; `Default` is the documented configuration (1 MB text, 10k and 100k words).
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub text_bytes: usize,
    pub word_counts: Vec<usize>,
    pub regexes: usize,
    pub runs: usize,
    pub stream_text_bytes: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            text_bytes: 1 << 20,
            word_counts: vec![10_000, 100_000],
            regexes: 50,
            runs: 3,
            stream_text_bytes: 64 * 1024,
        }
    }
}

/// Runs the default benchmark.
pub fn run(figures: &mut dyn FnMut(BenchFigure)) {
    run_with(&BenchConfig::default(), figures)
}

pub fn run_with(config: &BenchConfig, figures: &mut dyn FnMut(BenchFigure)) {
    let text = mixed_text(config.text_bytes, 1);
    let stream_text = mixed_text(config.stream_text_bytes, 2);
    let mb = text.len() as f64 / 1e6;
    for &n in &config.word_counts {
        let toml = policy_toml(n, config.regexes);
        let limits = Limits::default();
        let Ok(doc) = PolicyDocument::parse_toml_with_limits(&toml, &limits) else {
            continue;
        };
        let mut compile = Vec::new();
        let mut policy = None;
        for _ in 0..config.runs {
            let t = Instant::now();
            policy = Policy::compile(&doc, &limits).ok();
            compile.push(t.elapsed());
        }
        let Some(policy) = policy.map(Arc::new) else {
            continue;
        };
        figures(BenchFigure::new(
            format!("compile_{n}_words_{}_regex", config.regexes),
            ms(median(&mut compile)),
            "ms",
        ));
        let mut matches = 0;
        let (mut wall, mut cpu) = timed(config.runs, || {
            matches = policy.apply(&text, Scope::Output).matches.len();
        });
        let name = format!("throughput_{n}_words_{}_regex", config.regexes);
        figures(BenchFigure::new(
            &name,
            mb / median(&mut wall).as_secs_f64(),
            "MB/s",
        ));
        if let Some(cpu) = cpu.as_mut() {
            figures(BenchFigure::new(
                format!("{name}_per_core"),
                mb / median(cpu).as_secs_f64(),
                "MB/s",
            ));
        }
        let views = crate::engine::MatchViews::prepare(&policy, &text, Scope::Output);
        let (mut wall, mut cpu) = timed(config.runs, || {
            std::hint::black_box(views.count_hits());
        });
        let name = format!(
            "match_after_normalisation_{n}_words_{}_regex",
            config.regexes
        );
        figures(BenchFigure::new(
            &name,
            mb / median(&mut wall).as_secs_f64(),
            "MB/s",
        ));
        if let Some(cpu) = cpu.as_mut() {
            figures(BenchFigure::new(
                format!("{name}_per_core"),
                mb / median(cpu).as_secs_f64(),
                "MB/s",
            ));
        }
        figures(BenchFigure::new(
            format!("matches_{n}_words"),
            matches as f64,
            "count",
        ));
        let per_token = stream_per_token(&policy, &stream_text, config.runs);
        figures(BenchFigure::new(
            format!("stream_overhead_per_token_{n}_words"),
            per_token,
            "us",
        ));
    }
    let mut norm = Vec::new();
    for _ in 0..config.runs {
        let t = Instant::now();
        std::hint::black_box(crate::normalize::normalize(&text));
        norm.push(t.elapsed());
    }
    figures(BenchFigure::new(
        "normalize_throughput",
        mb / median(&mut norm).as_secs_f64(),
        "MB/s",
    ));
}

/// Median over runs of the median time of one `push` with 1–8 byte tokens.
fn stream_per_token(policy: &Arc<Policy>, text: &str, runs: usize) -> f64 {
    let tokens = tokenize(text);
    let mut medians = Vec::new();
    for _ in 0..runs {
        let mut f = StreamFilter::new(policy.clone());
        let mut each = Vec::with_capacity(tokens.len());
        for tok in &tokens {
            let t = Instant::now();
            std::hint::black_box(f.push(tok));
            each.push(t.elapsed());
        }
        std::hint::black_box(f.finish());
        medians.push(median(&mut each));
    }
    median(&mut medians).as_secs_f64() * 1e6
}

fn tokenize(text: &str) -> Vec<&str> {
    let mut rng = SplitMix(99);
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let mut j = (i + 1 + (rng.next() % 8) as usize).min(text.len());
        while !text.is_char_boundary(j) {
            j += 1;
        }
        out.push(&text[i..j]);
        i = j;
    }
    out
}

/// Wall-clock and (where the platform has it) thread CPU times of `runs` calls of `f`.
fn timed(runs: usize, mut f: impl FnMut()) -> (Vec<Duration>, Option<Vec<Duration>>) {
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Some(Vec::with_capacity(runs));
    for _ in 0..runs {
        let (t, c) = (Instant::now(), thread_cpu_time());
        f();
        wall.push(t.elapsed());
        match (c, thread_cpu_time(), cpu.as_mut()) {
            (Some(before), Some(after), Some(v)) => v.push(after.saturating_sub(before)),
            _ => cpu = None,
        }
    }
    (wall, cpu)
}

/// CPU time of the calling thread. Throughput per core from it is not skewed by other processes
/// competing for the cores, which wall-clock figures on a shared machine are.
#[cfg(unix)]
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that clock_gettime only writes into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok()?;
    (rc == 0).then(|| Duration::new(secs, nanos))
}

#[cfg(not(unix))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "zu", "re", "ta", "shi", "ven", "dor", "pa", "qui", "nex", "bo", "fa", "gri",
    "hul", "jo", "ly", "mor", "sa", "tro", "vu", "wen", "xi",
];

/// Deterministic pseudo-words: half Latin syllable compounds, half 2–4 character CJK words.
fn words(n: usize) -> Vec<String> {
    let mut rng = SplitMix(1234);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let w: String = if out.len() % 2 == 0 {
            let k = 2 + (rng.next() % 3) as usize;
            (0..k)
                .map(|_| SYLLABLES[(rng.next() % SYLLABLES.len() as u64) as usize])
                .collect()
        } else {
            let k = 2 + (rng.next() % 3) as usize;
            (0..k)
                .filter_map(|_| char::from_u32(0x4E00 + (rng.next() % 3000) as u32))
                .collect()
        };
        if seen.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

/// The bench policy: `n_words` pseudo-words (half Latin, half CJK) and `n_regex` patterns incl. 4 PII kinds.
pub fn policy_toml(n_words: usize, n_regex: usize) -> String {
    let mut s =
        String::from("[[category]]\nname = \"bench-words\"\naction = \"mask\"\nwords = [\n");
    for w in words(n_words) {
        s.push_str(&format!("\"{w}\",\n"));
    }
    s.push_str("]\n\n[[category]]\nname = \"bench-regex\"\naction = \"mask\"\nmask = \"label\"\n");
    for i in 0..n_regex.saturating_sub(4) {
        let p = SYLLABLES[i % SYLLABLES.len()];
        s.push_str(&format!(
            "[[category.regex]]\nname = \"r{i}\"\npattern = '\\b{p}{i}-\\d{{4,8}}\\b'\n"
        ));
    }
    s.push_str("\n[[category]]\nname = \"bench-pii\"\naction = \"mask\"\npii = [\"email\", \"phone_cn\", \"bank_card\", \"cn_resident_id\"]\n");
    s
}

const EN: [&str; 40] = [
    "the",
    "model",
    "answer",
    "data",
    "system",
    "private",
    "deployment",
    "tenant",
    "request",
    "policy",
    "stream",
    "token",
    "quality",
    "report",
    "customer",
    "service",
    "network",
    "server",
    "latency",
    "memory",
    "we",
    "should",
    "check",
    "every",
    "value",
    "before",
    "release",
    "and",
    "then",
    "write",
    "a",
    "short",
    "summary",
    "of",
    "results",
    "for",
    "review",
    "team",
    "today",
    "please",
];
const ZH: [&str; 24] = [
    "我们",
    "模型",
    "回答",
    "数据",
    "系统",
    "私有化",
    "部署",
    "租户",
    "请求",
    "策略",
    "输出",
    "质量",
    "报告",
    "客户",
    "服务",
    "网络",
    "延迟",
    "内存",
    "检查",
    "发布",
    "总结",
    "结果",
    "团队",
    "今天",
];

/// ~`bytes` of mixed Chinese/English prose with sentence capitals, punctuation, some PII and
/// rule hits, the way model answers look.
pub fn mixed_text(bytes: usize, seed: u64) -> String {
    let mut rng = SplitMix(seed);
    let mut s = String::with_capacity(bytes + 64);
    while s.len() < bytes {
        match rng.next() % 10 {
            0..=4 => {
                let n = 6 + (rng.next() % 10) as usize;
                for i in 0..n {
                    let w = EN[(rng.next() % EN.len() as u64) as usize];
                    if i == 0 {
                        let mut c = w.chars();
                        if let Some(f) = c.next() {
                            s.extend(f.to_uppercase());
                            s.push_str(c.as_str());
                        }
                    } else {
                        s.push(' ');
                        s.push_str(w);
                    }
                }
                s.push_str(". ");
            }
            5..=8 => {
                let n = 4 + (rng.next() % 8) as usize;
                for _ in 0..n {
                    s.push_str(ZH[(rng.next() % ZH.len() as u64) as usize]);
                }
                s.push_str(if rng.next().is_multiple_of(2) {
                    "，"
                } else {
                    "。"
                });
            }
            _ => match rng.next() % 3 {
                0 => s.push_str("Contact li.lei@example.com or 13812345678. "),
                1 => s.push_str("Ticket ka7-123456 was closed. "),
                _ => s.push_str("卡号 4111 1111 1111 1111。"),
            },
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bench_reports_every_metric() {
        let config = BenchConfig {
            text_bytes: 20_000,
            word_counts: vec![200],
            regexes: 10,
            runs: 1,
            stream_text_bytes: 2_000,
        };
        let mut got = Vec::new();
        run_with(&config, &mut |f| got.push(f));
        let names: Vec<&str> = got.iter().map(|f| f.metric.as_str()).collect();
        assert!(
            names.contains(&"throughput_200_words_10_regex"),
            "{names:?}"
        );
        assert!(
            names.contains(&"match_after_normalisation_200_words_10_regex"),
            "{names:?}"
        );
        assert!(
            names.contains(&"stream_overhead_per_token_200_words"),
            "{names:?}"
        );
        let matches = got
            .iter()
            .find(|f| f.metric == "matches_200_words")
            .map_or(0.0, |f| f.value);
        assert!(matches > 0.0, "the bench text must exercise the matchers");
        assert!(got.iter().all(|f| f.value.is_finite() && f.value >= 0.0));
    }
}
