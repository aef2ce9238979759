use super::*;
use crate::catalog::{gpu, model};

fn roofline(m: &str, g: &str, tp: u32) -> Roofline {
    Roofline::new(model(m).unwrap(), gpu(g).unwrap(), tp, &RooflineConfig::default()).unwrap()
}

fn ms(d: SimDuration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn decode(seqs: u32, ctx_each: u64) -> BatchShape {
    BatchShape { decode_seqs: seqs, decode_context: seqs as u64 * ctx_each, ..Default::default() }
}

fn prefill(tokens: u32, prefix: u64) -> BatchShape {
    BatchShape { prefill_tokens: tokens, prefill_seqs: 1, prefill_context: prefix, ..Default::default() }
}

#[test]
fn roofline_decode_batch1_is_memory_bound_and_plausible() {
    let r = roofline("llama-3.1-8b", "h100_sxm", 1);
    let t = ms(r.step_time(&decode(1, 128)));
    // Weights 15-16 GB / (3.35 TB/s × 0.75) ≈ 6.0-6.4 ms, plus 0.5 ms + 32 × 10 µs overhead.
    assert!((6.0..9.0).contains(&t), "{t} ms");
    // Memory-bound: doubling the FLOP efficiency changes nothing, halving bandwidth doubles it.
    let m = model("llama-3.1-8b").unwrap();
    let h = gpu("h100_sxm").unwrap();
    let fast = Roofline::new(m, h, 1, &RooflineConfig { flops_efficiency: Some(1.0), ..Default::default() }).unwrap();
    assert_eq!(fast.step_time(&decode(1, 128)), r.step_time(&decode(1, 128)));
    let slow =
        Roofline::new(m, h, 1, &RooflineConfig { bandwidth_efficiency: Some(0.375), ..Default::default() }).unwrap();
    assert!(ms(slow.step_time(&decode(1, 128))) > t + 5.0);
}

#[test]
fn roofline_long_prefill_is_compute_bound() {
    let r = roofline("llama-3.1-8b", "h100_sxm", 1);
    let t = ms(r.step_time(&prefill(8192, 0)));
    // 2 · 7e9 · 8192 + attention ≈ 132 TFLOP / (989 TFLOPS × 0.75) ≈ 178 ms.
    assert!((150.0..220.0).contains(&t), "{t} ms");
    let m = model("llama-3.1-8b").unwrap();
    let h = gpu("h100_sxm").unwrap();
    let fast_mem =
        Roofline::new(m, h, 1, &RooflineConfig { bandwidth_efficiency: Some(1.0), ..Default::default() }).unwrap();
    assert_eq!(fast_mem.step_time(&prefill(8192, 0)), r.step_time(&prefill(8192, 0)));
}

#[test]
fn roofline_is_monotone_in_tokens_and_context() {
    for (m, g, tp) in [
        ("llama-3.1-8b", "h100_sxm", 1),
        ("qwen3-30b-a3b", "h100_sxm", 1),
        ("llama-3.1-70b", "h100_sxm", 4),
        ("small-llama", "cpu", 1),
    ] {
        let r = roofline(m, g, tp);
        let mut prev = SimDuration::ZERO;
        for n in [1u32, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] {
            let t = r.step_time(&decode(n, 1000));
            assert!(t >= prev, "{m} decode {n}");
            prev = t;
        }
        let mut prev = SimDuration::ZERO;
        for ctx in [0u64, 100, 1000, 10_000, 100_000] {
            let t = r.step_time(&decode(8, ctx));
            assert!(t >= prev, "{m} ctx {ctx}");
            prev = t;
        }
        let mut prev = SimDuration::ZERO;
        for p in [16u32, 128, 512, 2048, 8192] {
            let t = r.step_time(&prefill(p, 0));
            assert!(t >= prev, "{m} prefill {p}");
            prev = t;
        }
        assert!(r.step_time(&prefill(512, 4096)) > r.step_time(&prefill(512, 0)));
        // A mixed step costs more than either part, and less than both with two weight reads.
        let mixed = BatchShape {
            prefill_tokens: 512,
            prefill_seqs: 1,
            decode_seqs: 32,
            decode_context: 32_000,
            ..Default::default()
        };
        let (a, b) = (r.step_ns(&prefill(512, 0)), r.step_ns(&decode(32, 1000)));
        let c = r.step_ns(&mixed);
        assert!(c > a.max(b) && c < a + b, "{m}: {a} {b} {c}");
    }
}

#[test]
fn roofline_tp2_beats_tp1_for_70b_class() {
    for g in ["h200_sxm", "mi300x", "b200"] {
        let (t1, t2) = (roofline("llama-3.1-70b", g, 1), roofline("llama-3.1-70b", g, 2));
        for b in [decode(1, 1000), decode(64, 2000), prefill(2048, 0)] {
            assert!(t2.step_time(&b) < t1.step_time(&b), "{g} {b:?}");
        }
    }
    let t4 = roofline("llama-3.1-70b", "h100_sxm", 4);
    let t8 = roofline("llama-3.1-70b", "h100_sxm", 8);
    assert!(t8.step_time(&decode(64, 2000)) < t4.step_time(&decode(64, 2000)));
    // TP must divide the query heads.
    let e = Roofline::new(model("llama-3.1-8b").unwrap(), gpu("h100_sxm").unwrap(), 3, &RooflineConfig::default());
    assert!(matches!(e, Err(StepTimeError::InvalidConfig { field: "tensor_parallel_size", .. })));
}

#[test]
fn roofline_moe_uses_active_params_and_touched_experts() {
    let moe = roofline("qwen3-30b-a3b", "h100_sxm", 1);
    let dense = roofline("qwen3-32b", "h100_sxm", 1);
    // Compute: a 3.3B-active MoE prefill is ~10× cheaper than a 32B dense one.
    let (pm, pd) = (ms(moe.step_time(&prefill(8192, 0))), ms(dense.step_time(&prefill(8192, 0))));
    assert!(pd / pm > 5.0, "moe {pm} dense {pd}");
    // Memory: batch 1 touches 8 of 128 experts per layer, so decode reads ~2 GB of weights…
    let d1 = ms(moe.step_time(&decode(1, 100)));
    let m = model("qwen3-30b-a3b").unwrap();
    let touched_gb = (m.params_total - m.expert_params() * (1.0 - 8.0 / 128.0)) * 2.0 / 1e9;
    let expect = touched_gb / (3350.0 * 0.75) * 1e3 + 0.5 + 48.0 * 0.01;
    assert!((d1 / expect - 1.0).abs() < 0.1, "{d1} vs {expect}");
    // …while batch 256 touches essentially all experts (61 GB).
    let d256 = ms(moe.step_time(&decode(256, 100)));
    assert!(d256 > 3.0 * d1, "{d1} {d256}");
    assert!(d256 < ms(dense.step_time(&decode(256, 100))));
}

#[test]
fn roofline_cpu_roughly_reproduces_vllm_cpu_measurements() {
    // vllm-cpu.md §4, 1 pinned core: (model, batch, measured ms) for eager decode with context
    // ≈ 160 per sequence, and prefill of a fresh prompt in 512-token chunks.
    let small = roofline("small-llama", "cpu", 1);
    let tiny = roofline("tiny-llama", "cpu", 1);
    let decode_pts = [
        (&small, 1, 9.0),
        (&small, 4, 10.1),
        (&small, 8, 13.4),
        (&small, 16, 17.5),
        (&small, 32, 28.1),
        (&tiny, 1, 1.61),
        (&tiny, 8, 1.96),
        (&tiny, 32, 3.92),
    ];
    for (r, b, want) in decode_pts {
        let got = ms(r.step_time(&decode(b, 160)));
        assert!((got / want - 1.0).abs() < 0.25, "{} decode {b}: {got:.2} ms vs {want}", r.name());
    }
    let ttft = |r: &Roofline, len: u32| -> f64 {
        let mut done = 0u32;
        let mut total = 0.0;
        while done < len {
            let c = (len - done).min(512);
            total += ms(r.step_time(&prefill(c, done as u64)));
            done += c;
        }
        total
    };
    for (len, want) in [(512, 248.0), (1024, 551.0), (2048, 1270.0), (4096, 3330.0), (8000, 9390.0)] {
        let got = ttft(&small, len);
        assert!((got / want - 1.0).abs() < 0.25, "small-llama prefill {len}: {got:.0} ms vs {want}");
    }
    for (len, want) in [(2048, 86.0), (4096, 270.0), (8000, 914.0)] {
        let got = ttft(&tiny, len);
        assert!((got / want - 1.0).abs() < 0.35, "tiny-llama prefill {len}: {got:.0} ms vs {want}");
    }
}

#[test]
fn linear_model_is_exact() {
    let c = LinearConfig {
        base_us: 1000.0,
        per_prefill_token_us: 50.0,
        per_decode_seq_us: 200.0,
        per_context_token_ns: 3.0,
    };
    let m =
        StepTimeConfig::Linear(c).build(model("tiny-llama").unwrap(), gpu("cpu").unwrap(), 1, Path::new(".")).unwrap();
    let b = BatchShape {
        prefill_tokens: 100,
        prefill_seqs: 1,
        decode_seqs: 7,
        prefill_context: 1000,
        decode_context: 3000,
    };
    // 1000 µs + 5000 µs + 1400 µs + 4000 · 3 ns = 7,412,000 ns
    assert_eq!(m.step_time(&b), SimDuration(7_412_000));
    assert_eq!(m.step_time(&BatchShape::default()), SimDuration(1_000_000));
    let bad = StepTimeConfig::Linear(LinearConfig { base_us: f64::NAN, ..Default::default() });
    assert!(bad.build(model("tiny-llama").unwrap(), gpu("cpu").unwrap(), 1, Path::new(".")).is_err());
}

fn shipped_table() -> Table {
    Table::load(Path::new("catalog:steptime/tiny-llama-cpu.csv")).unwrap()
}

#[test]
fn table_reproduces_its_points() {
    let text = include_str!("../../catalog/steptime/tiny-llama-cpu.csv");
    let t = shipped_table();
    let mut n = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let b = BatchShape {
            prefill_tokens: v[0] as u32,
            decode_seqs: v[1] as u32,
            prefill_seqs: v[4] as u32,
            prefill_context: v[5] as u64,
            decode_context: (v[2] - v[5]) as u64,
        };
        let got = t.step_ns(&b) / 1e3;
        assert!((got / v[3] - 1.0).abs() < 0.05, "{line}: {got:.0} µs");
        n += 1;
    }
    assert_eq!(n, 12);
    // Between and beyond the points it stays positive, sensible and (for decode) increasing.
    let mut prev = 0.0;
    for b in [1, 3, 6, 12, 24, 32, 48, 64] {
        let v = t.step_ns(&decode(b, 160));
        assert!(v > prev, "decode {b}: {v}");
        prev = v;
    }
    let far = t.step_ns(&prefill(512, 8000)) / 1e6;
    assert!((90.0..200.0).contains(&far), "{far} ms");
    // NNLS keeps every coefficient non-negative (monotone, physical extrapolation).
    let c = t.coefficients_us();
    assert!(c.iter().all(|&x| x >= 0.0), "{c:?}");
}

#[test]
fn table_fit_recovers_an_exact_linear_law() {
    let mut csv = String::from("prefill_tokens,decode_seqs,context_tokens,duration_us\n");
    for (p, d, ctx) in
        [(0, 1, 100), (0, 8, 900), (0, 64, 20000), (256, 0, 0), (1024, 4, 400), (2048, 0, 0), (512, 16, 3000)]
    {
        let us = 800.0 + 2.0 * p as f64 + 30.0 * d as f64 + 0.01 * ctx as f64 + 0.0005 * (p * p) as f64 / 2.0;
        csv.push_str(&format!("{p},{d},{ctx},{us}\n"));
    }
    let t = Table::from_csv_str(&csv, Path::new("synthetic.csv")).unwrap();
    let c = t.coefficients_us();
    for (got, want) in c.iter().zip([800.0, 2.0, 30.0, 0.01, 0.0005]) {
        assert!((got - want).abs() <= 1e-6 * want.max(1.0), "{c:?}");
    }
    let b = BatchShape {
        prefill_tokens: 4096,
        prefill_seqs: 1,
        decode_seqs: 100,
        decode_context: 50_000,
        prefill_context: 0,
    };
    let want = 800.0 + 2.0 * 4096.0 + 3000.0 + 500.0 + 0.0005 * 4096.0 * 4096.0 / 2.0;
    assert!((t.step_ns(&b) / 1e3 / want - 1.0).abs() < 1e-6);
}

#[test]
fn table_errors_name_file_line_and_column() {
    let e = Table::from_csv_str("prefill_tokens,decode_seqs,duration_us\n0,1,5\n", Path::new("t.csv")).unwrap_err();
    let s = e.to_string();
    assert!(s.contains("t.csv") && s.contains("context_tokens"), "{s}");
    let e = Table::from_csv_str(
        "# c\nprefill_tokens,decode_seqs,context_tokens,duration_us\n0,1,10,100\n0,2,20,NaN\n",
        Path::new("t.csv"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("t.csv") && e.contains("line 4") && e.contains("duration_us"), "{e}");
    let e =
        Table::from_csv_str("prefill_tokens,decode_seqs,context_tokens,duration_us\n0,1,,100\n", Path::new("t.csv"))
            .unwrap_err()
            .to_string();
    assert!(e.contains("line 2") && e.contains("context_tokens"), "{e}");
    let e = Table::load(Path::new("/nonexistent/steps.csv")).err().unwrap().to_string();
    assert!(e.contains("/nonexistent/steps.csv"), "{e}");
    let cfg = StepTimeConfig::Table(TableConfig { file: "missing.csv".into() });
    let e = cfg.build(model("tiny-llama").unwrap(), gpu("cpu").unwrap(), 1, Path::new("/some/dir")).err().unwrap();
    assert!(e.to_string().contains("/some/dir/missing.csv"), "{e}");
}

#[test]
fn build_dispatches_and_validates() {
    let (m, g) = (model("llama-3.1-8b").unwrap(), gpu("h100_sxm").unwrap());
    let r = StepTimeConfig::default().build(m, g, 1, Path::new(".")).unwrap();
    assert!(r.name().starts_with("roofline"));
    let t = StepTimeConfig::Table(TableConfig { file: "catalog:steptime/tiny-llama-cpu.csv".into() })
        .build(m, g, 1, Path::new("."))
        .unwrap();
    assert!(t.name().starts_with("table"));
    let bad = StepTimeConfig::Roofline(RooflineConfig { flops_efficiency: Some(1.5), ..Default::default() });
    let e = bad.build(m, g, 1, Path::new(".")).err().unwrap();
    assert!(e.to_string().contains("flops_efficiency"), "{e}");
}

/// Prints the key numbers for the report (`cargo test key_numbers -- --nocapture`).
#[test]
fn key_numbers() {
    use crate::catalog::{GIB, kv_sizing};
    let h100 = gpu("h100_sxm").unwrap();
    let oh = (3.4 * GIB) as u64;
    let q = kv_sizing(model("qwen3-32b").unwrap(), h100, 2, 0.9, 16, oh).unwrap();
    let l = kv_sizing(model("llama-3.1-70b").unwrap(), h100, 4, 0.9, 16, oh).unwrap();
    println!("KV qwen3-32b TP2 H100: {} tokens (target 307328)", q.kv_tokens);
    println!("KV llama-3.1-70b TP4 H100: {} tokens (target 461376)", l.kv_tokens);
    assert!((q.kv_tokens as f64 / 307_328.0 - 1.0).abs() < 0.02, "{}", q.kv_tokens);
    assert!((l.kv_tokens as f64 / 461_376.0 - 1.0).abs() < 0.02, "{}", l.kv_tokens);
    for (m, tp) in [("llama-3.1-8b", 1), ("llama-3.1-70b", 4), ("qwen3-30b-a3b", 1)] {
        let r = roofline(m, "h100_sxm", tp);
        // More work never takes less time.
        assert!(r.step_time(&decode(64, 1024)) > r.step_time(&decode(1, 1024)), "{m}");
        assert!(r.step_time(&prefill(8192, 0)) > r.step_time(&prefill(2048, 0)), "{m}");
        println!(
            "{m} TP{tp} H100: decode b1 ctx1k {:.2} ms, decode b64 ctx1k {:.2} ms, prefill 2048 {:.2} ms, prefill 8192 {:.1} ms",
            ms(r.step_time(&decode(1, 1024))),
            ms(r.step_time(&decode(64, 1024))),
            ms(r.step_time(&prefill(2048, 0))),
            ms(r.step_time(&prefill(8192, 0)))
        );
    }
    let s = roofline("small-llama", "cpu", 1);
    let t = roofline("tiny-llama", "cpu", 1);
    for b in [1, 2, 4, 8, 16, 32] {
        assert!(s.step_time(&decode(b, 160)) > t.step_time(&decode(b, 160)), "small model slower, b{b}");
        println!(
            "cpu decode b{b}: small {:.2} ms, tiny {:.2} ms",
            ms(s.step_time(&decode(b, 160))),
            ms(t.step_time(&decode(b, 160)))
        );
    }
    let mut last = (0.0, 0.0);
    for len in [128u32, 512, 1024, 2048, 4096, 8000] {
        let ttft = |r: &Roofline| {
            let (mut done, mut total) = (0u32, 0.0);
            while done < len {
                let c = (len - done).min(512);
                total += ms(r.step_time(&prefill(c, done as u64)));
                done += c;
            }
            total
        };
        println!("cpu prefill {len}: small {:.0} ms, tiny {:.1} ms", ttft(&s), ttft(&t));
        assert!(ttft(&s) > last.0 && ttft(&t) > last.1, "prefill time grows with length ({len})");
        last = (ttft(&s), ttft(&t));
    }
    println!("table coefficients (us): {:?}", shipped_table().coefficients_us());
}

/// A run's step times computed in one call equal the steps computed one by one, bit for bit
/// (dense, MoE, TP 1/2/4; the default method and the roofline's hoisted loop).
#[test]
fn decode_run_equals_single_steps() {
    let models = [
        roofline("llama-3.1-8b", "h100_sxm", 1),
        roofline("qwen3-32b", "h100_sxm", 2),
        roofline("qwen3-30b-a3b", "h100_sxm", 1),
        roofline("llama-3.1-70b", "a100_80g_sxm", 4),
    ];
    let lin = Linear::new(&LinearConfig {
        base_us: 900.0,
        per_prefill_token_us: 0.05,
        per_decode_seq_us: 12.0,
        per_context_token_ns: 0.3,
    });
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |m: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let mut checked = 0;
    for _ in 0..300 {
        let seqs = 1 + next(300) as u32;
        let last = BatchShape {
            decode_seqs: seqs,
            decode_context: seqs as u64 * (1 + next(40_000)),
            // A run never has prefill tokens, but the method must hold for any shape.
            prefill_context: if next(4) == 0 { next(10_000) } else { 0 },
            prefill_tokens: if next(8) == 0 { 1 + next(512) as u32 } else { 0 },
            prefill_seqs: 0,
        };
        let last = BatchShape { prefill_seqs: (last.prefill_tokens > 0) as u32, ..last };
        let n = 1 + next(64) as usize;
        for m in models.iter().map(|m| m as &dyn StepTimeModel).chain([&lin as &dyn StepTimeModel]) {
            let mut run = vec![SimDuration::ZERO; n];
            m.decode_run(&last, &mut run);
            let mut sh = last;
            for (j, d) in run.iter().enumerate() {
                sh.decode_context += seqs as u64;
                assert_eq!(*d, m.step_time(&sh), "{} step {j} after {last:?}", m.name());
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
    // Steps of a run grow with the context.
    let mut run = vec![SimDuration::ZERO; 3];
    models[1].decode_run(&decode(64, 20_000), &mut run);
    assert!(run[0] < run[2], "{run:?}");
}
