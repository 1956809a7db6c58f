//! LoRA: exactness of mixed-adapter batches against merged f32 weights, and strict validation
//! of malformed PEFT adapters.

use std::collections::BTreeMap;

use enclave_model_core::adapters::{AdapterLimits, LoraAdapter, Target, load_peft};
use enclave_model_core::config::ModelConfig;
use enclave_model_core::kv::{BlockAllocator, KvStore};
use enclave_model_core::loader::{MemorySource, TensorName};
use enclave_model_core::models::{LlamaModel, Scratch, StepSeq};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde_json::json;

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// One adapter's factors: `(layer, target) -> (rank, A (r × in), B (out × r))`.
type Factors = BTreeMap<(usize, Target), (usize, Vec<f32>, Vec<f32>)>;

fn random_factors(cfg: &ModelConfig, targets: &[Target], rank: usize, seed: u64) -> Factors {
    let mut rng = Rng(seed);
    let mut f = Factors::new();
    for l in 0..cfg.num_layers {
        for &t in targets {
            let (out, inp) = t.shape(cfg);
            let a = (0..rank * inp).map(|_| rng.f() * 0.05).collect();
            let b = (0..out * rank).map(|_| rng.f() * 0.05).collect();
            f.insert((l, t), (rank, a, b));
        }
    }
    f
}

fn module_path(l: usize, t: Target) -> String {
    let parent = if matches!(t, Target::Gate | Target::Up | Target::Down) { "mlp" } else { "self_attn" };
    format!("base_model.model.model.layers.{l}.{parent}.{}", t.module_name())
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Serialises factors as a PEFT `adapter_model.safetensors`.
fn safetensors_of(f: &Factors, cfg: &ModelConfig) -> Vec<u8> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (&(l, t), (r, a, b)) in f {
        let (out, inp) = t.shape(cfg);
        owned.push((format!("{}.lora_A.weight", module_path(l, t)), vec![*r, inp], bytes(a)));
        owned.push((format!("{}.lora_B.weight", module_path(l, t)), vec![out, *r], bytes(b)));
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, d)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), d).expect("view")))
        .collect();
    safetensors::serialize(views, None).expect("serialize")
}

fn config_json(targets: &[Target], rank: usize, alpha: f32) -> Vec<u8> {
    let modules: Vec<&str> = targets.iter().map(|t| t.module_name()).collect();
    serde_json::to_vec(&json!({
        "peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": modules,
        "bias": "none", "fan_in_fan_out": false, "task_type": "CAUSAL_LM"
    }))
    .expect("json")
}

fn tiny() -> ModelConfig {
    MemorySource::tiny_config()
}

fn load(f: &Factors, targets: &[Target], rank: usize, alpha: f32) -> LoraAdapter {
    load_peft(&config_json(targets, rank, alpha), &safetensors_of(f, &tiny()), &tiny(), &AdapterLimits::default())
        .expect("valid adapter")
}

/// The base weights with `scale · B·A` merged in, as an f32 model.
fn merged_model(seed: u64, f: &Factors, scale: f32) -> LlamaModel {
    let cfg = tiny();
    let mut src = MemorySource::random(cfg.clone(), seed);
    for (&(l, t), (r, a, b)) in f {
        let (out, inp) = t.shape(&cfg);
        let name = match t {
            Target::Q => TensorName::Q(l),
            Target::K => TensorName::K(l),
            Target::V => TensorName::V(l),
            Target::O => TensorName::O(l),
            Target::Gate => TensorName::Gate(l),
            Target::Up => TensorName::Up(l),
            Target::Down => TensorName::Down(l),
        };
        let w = src.tensor_mut(&name).expect("tensor");
        for o in 0..out {
            for i in 0..inp {
                let delta: f32 = (0..*r).map(|k| b[o * r + k] * a[k * inp + i]).sum();
                w[o * inp + i] += scale * delta;
            }
        }
    }
    LlamaModel::load(&src).expect("merged model loads")
}

fn last_logits(model: &LlamaModel, seqs: &[(&[u32], Option<&LoraAdapter>)]) -> Vec<Vec<f32>> {
    let cfg = model.config();
    let alloc = BlockAllocator::new(64, 8);
    let mut kv = KvStore::new(cfg.num_layers, 64, 8, cfg.kv_dim());
    let mut blocks: Vec<_> = seqs.iter().map(|_| alloc.new_sequence()).collect();
    for (b, (t, _)) in blocks.iter_mut().zip(seqs) {
        assert!(b.reserve(t.len()));
    }
    let steps: Vec<StepSeq<'_>> = seqs
        .iter()
        .zip(&blocks)
        .map(|((t, a), b)| StepSeq { tokens: t, start_pos: 0, blocks: b.ids(), logits: true, adapter: *a })
        .collect();
    let mut scratch = Scratch::default();
    let out = model.forward(&steps, &mut kv, &mut scratch).expect("forward");
    out.chunks(cfg.vocab_size).map(|c| c.to_vec()).collect()
}

#[test]
fn a_mixed_adapter_batch_equals_each_sequence_alone_with_merged_weights() {
    let cfg = tiny();
    let seed = 11;
    let all = Target::ALL;
    let qv = [Target::Q, Target::V];
    let down = [Target::Down, Target::Q];
    let fa = random_factors(&cfg, &all, 8, 1);
    let fb = random_factors(&cfg, &qv, 1, 2);
    let fc = random_factors(&cfg, &down, 128, 3);
    let (a, b, c) = (load(&fa, &all, 8, 16.0), load(&fb, &qv, 1, 4.0), load(&fc, &down, 128, 64.0));
    let base = LlamaModel::load(&MemorySource::random(cfg.clone(), seed)).expect("base");
    let prompts: [&[u32]; 5] = [&[1, 5, 9, 13], &[2, 4, 6], &[7, 7, 7, 7, 7], &[3, 1, 4, 1, 5, 9], &[8, 16, 32]];
    let batch = last_logits(
        &base,
        &[(prompts[0], Some(&a)), (prompts[1], None), (prompts[2], Some(&b)), (prompts[3], Some(&c)), (prompts[4], Some(&a))],
    );
    let oracle = [
        last_logits(&merged_model(seed, &fa, 16.0 / 8.0), &[(prompts[0], None)]),
        last_logits(&base, &[(prompts[1], None)]),
        last_logits(&merged_model(seed, &fb, 4.0 / 1.0), &[(prompts[2], None)]),
        last_logits(&merged_model(seed, &fc, 64.0 / 128.0), &[(prompts[3], None)]),
        last_logits(&merged_model(seed, &fa, 16.0 / 8.0), &[(prompts[4], None)]),
    ];
    for (i, (got, want)) in batch.iter().zip(oracle.iter().map(|o| &o[0])).enumerate() {
        let max = got.iter().zip(want).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(max <= 1e-4, "sequence {i}: max |Δlogit| = {max}");
    }
    // Deltas are ~10% of the base weights (a realistic LoRA), and they really change the output.
    let plain = last_logits(&base, &[(prompts[0], None)]);
    let diff = plain[0].iter().zip(&batch[0]).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(diff > 1e-2, "adapter had no effect ({diff})");
}

// ---- validation ---------------------------------------------------------------------------

fn err_code(config: serde_json::Value, weights: &[u8]) -> String {
    let cfg = serde_json::to_vec(&config).expect("json");
    let limits = AdapterLimits { max_rank: 64, max_file_bytes: 4 << 20 };
    match load_peft(&cfg, weights, &tiny(), &limits) {
        Ok(_) => "accepted".into(),
        Err(e) => e.code().to_string(),
    }
}

fn base_config() -> serde_json::Value {
    json!({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "bias": "none"})
}

fn with(mut v: serde_json::Value, key: &str, val: serde_json::Value) -> serde_json::Value {
    v[key] = val;
    v
}

fn good_weights() -> Vec<u8> {
    safetensors_of(&random_factors(&tiny(), &[Target::Q, Target::V], 4, 9), &tiny())
}

/// Weights built from raw `(name, shape, dtype, bytes)` entries.
fn raw_weights(entries: &[(String, Vec<usize>, Dtype, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> =
        entries.iter().map(|(n, s, d, b)| (n.clone(), TensorView::new(*d, s.clone(), b).expect("view"))).collect();
    safetensors::serialize(views, None).expect("serialize")
}

fn qv_entries(rank_a: usize, a_fill: f32) -> Vec<(String, Vec<usize>, Dtype, Vec<u8>)> {
    let cfg = tiny();
    let mut e = Vec::new();
    for l in 0..cfg.num_layers {
        for t in [Target::Q, Target::V] {
            let (out, inp) = t.shape(&cfg);
            e.push((format!("{}.lora_A.weight", module_path(l, t)), vec![rank_a, inp], Dtype::F32, bytes(&vec![a_fill; rank_a * inp])));
            e.push((format!("{}.lora_B.weight", module_path(l, t)), vec![out, 4], Dtype::F32, bytes(&vec![0.1; out * 4])));
        }
    }
    e
}

#[test]
fn malformed_adapters_get_specific_errors() {
    let good = good_weights();
    assert_eq!(err_code(base_config(), &good), "accepted", "the well-formed adapter loads");
    let cfg = tiny();
    let (q_out, q_in) = Target::Q.shape(&cfg);

    let mut wrong_shape = qv_entries(4, 0.1);
    wrong_shape[0].1 = vec![4, q_in + 1];
    wrong_shape[0].3 = bytes(&vec![0.1; 4 * (q_in + 1)]);
    let mut missing = qv_entries(4, 0.1);
    missing.remove(1);
    let mut extra = qv_entries(4, 0.1);
    extra.push(("base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight".into(), vec![4, q_in], Dtype::F32, bytes(&vec![0.0; 4 * q_in])));
    let mut nan = qv_entries(4, 0.1);
    nan[2].3 = bytes(&vec![f32::NAN; 4 * q_in]);
    let mut int = qv_entries(4, 0.1);
    int[0].2 = Dtype::I32;
    let mut dora = qv_entries(4, 0.1);
    dora.push(("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector.weight".into(), vec![q_out], Dtype::F32, bytes(&vec![1.0; q_out])));
    let mut layer_oob = qv_entries(4, 0.1);
    layer_oob[0].0 = module_path(cfg.num_layers + 3, Target::Q) + ".lora_A.weight";
    let mut embed = qv_entries(4, 0.1);
    embed.push(("base_model.model.model.embed_tokens.lora_A.weight".into(), vec![4, 8], Dtype::F32, bytes(&vec![0.0; 32])));
    let truncated = good[..good.len() / 2].to_vec();

    let cases: Vec<(&str, serde_json::Value, Vec<u8>, &str)> = vec![
        ("wrong A shape", base_config(), raw_weights(&wrong_shape), "adapter_shape_mismatch"),
        ("missing lora_B", base_config(), raw_weights(&missing), "adapter_missing_tensor"),
        ("extra tensor for an undeclared module", base_config(), raw_weights(&extra), "adapter_unexpected_tensor"),
        ("unknown target module", with(base_config(), "target_modules", json!(["q_proj", "qkv_proj"])), good.clone(), "adapter_unknown_target"),
        ("rank over the limit", with(base_config(), "r", json!(65)), good.clone(), "adapter_rank_out_of_range"),
        ("rank zero", with(base_config(), "r", json!(0)), good.clone(), "adapter_rank_out_of_range"),
        ("NaN in weights", base_config(), raw_weights(&nan), "adapter_non_finite"),
        ("integer dtype", base_config(), raw_weights(&int), "adapter_unsupported_dtype"),
        ("truncated safetensors", base_config(), truncated, "adapter_invalid_weights"),
        ("not LoRA", with(base_config(), "peft_type", json!("PREFIX_TUNING")), good.clone(), "adapter_not_lora"),
        ("DoRA flag", with(base_config(), "use_dora", json!(true)), good.clone(), "adapter_unsupported_feature"),
        ("DoRA magnitude tensor", base_config(), raw_weights(&dora), "adapter_unsupported_feature"),
        ("modules_to_save", with(base_config(), "modules_to_save", json!(["lm_head"])), good.clone(), "adapter_unsupported_feature"),
        ("trained biases", with(base_config(), "bias", json!("all")), good.clone(), "adapter_unsupported_feature"),
        ("embedding target", base_config(), raw_weights(&embed), "adapter_unsupported_feature"),
        ("layer beyond the base model", base_config(), raw_weights(&layer_oob), "adapter_base_mismatch"),
        ("target_modules as a regex", with(base_config(), "target_modules", json!(".*proj")), good.clone(), "adapter_unsupported_feature"),
        ("not JSON", json!("just a string"), good.clone(), "adapter_invalid_config"),
        ("declared target without tensors", with(base_config(), "target_modules", json!(["q_proj", "v_proj", "o_proj"])), good.clone(), "adapter_missing_tensor"),
        ("file over the size limit", base_config(), vec![0u8; 5 << 20], "adapter_too_large"),
    ];
    for (what, config, weights, want) in cases {
        assert_eq!(err_code(config, &weights), want, "{what}");
    }
}

#[test]
fn rslora_and_rank_pattern_set_the_scale() {
    let cfg = tiny();
    let f = random_factors(&cfg, &[Target::Q], 4, 5);
    let w = safetensors_of(&f, &cfg);
    let limits = AdapterLimits::default();
    let plain = serde_json::to_vec(&json!({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]})).expect("json");
    let rs = serde_json::to_vec(&json!({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_rslora": true, "target_modules": ["q_proj"]})).expect("json");
    let a = load_peft(&plain, &w, &cfg, &limits).expect("plain");
    let b = load_peft(&rs, &w, &cfg, &limits).expect("rslora");
    assert_eq!(a.get(0, Target::Q).expect("q").scale, 2.0);
    assert_eq!(b.get(0, Target::Q).expect("q").scale, 4.0);
    let alpha_pat = serde_json::to_vec(&json!({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"],
        "alpha_pattern": {"layers.1.self_attn.q_proj": 2}
    }))
    .expect("json");
    let c = load_peft(&alpha_pat, &w, &cfg, &limits).expect("pattern");
    assert_eq!(c.get(0, Target::Q).expect("q").scale, 2.0);
    assert_eq!(c.get(1, Target::Q).expect("q").scale, 0.5);
}
