use super::*;
use std::path::Path;

#[test]
fn ks_distance_exact() {
    assert_eq!(ks_distance(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 3.0, 4.0]), Some(0.0));
    assert_eq!(ks_distance(&[1.0, 2.0], &[3.0, 4.0]), Some(1.0));
    // F_a jumps to 0.5 at 1; F_b is 0 until 1.5: D = 0.5.
    assert_eq!(ks_distance(&[1.0, 2.0], &[1.5, 2.0]), Some(0.5));
    assert_eq!(ks_distance(&[], &[1.0]), None);
}

#[test]
fn tolerances_parse_and_apply() {
    let t = Tolerances::parse(&["ttft=10".into(), "ttft_p99=25".into(), "hit_rate=2".into()]).unwrap();
    assert_eq!(t.get("ttft_mean"), Some(10.0));
    assert_eq!(t.get("ttft_p99"), Some(25.0));
    assert_eq!(t.get("hit_rate"), Some(2.0));
    assert_eq!(t.get("e2e_mean"), None);
    assert!(Tolerances::parse(&["ttft_p95=1".into()]).unwrap_err().contains("unknown statistic `ttft_p95`"));
    assert!(Tolerances::parse(&["ttft".into()]).unwrap_err().contains("STAT=PERCENT"));

    let mut real = RunView::default();
    let mut sim = RunView::default();
    real.stats.insert("ttft_mean".into(), 0.100);
    sim.stats.insert("ttft_mean".into(), 0.108);
    real.stats.insert("ttft_p99".into(), 0.200);
    sim.stats.insert("ttft_p99".into(), 0.160);
    real.stats.insert("hit_rate".into(), 0.50);
    sim.stats.insert("hit_rate".into(), 0.53);
    let c = compare("x", &real, &sim, &t, vec![]);
    let row = |s: &str| c.rows.iter().find(|r| r.stat == s).unwrap().clone();
    assert!((row("ttft_mean").signed_err.unwrap() - 8.0).abs() < 1e-9);
    assert_eq!(row("ttft_mean").passed, Some(true));
    assert!((row("ttft_p99").signed_err.unwrap() + 20.0).abs() < 1e-9);
    assert_eq!(row("ttft_p99").passed, Some(true));
    assert!((row("hit_rate").signed_err.unwrap() - 3.0).abs() < 1e-9);
    assert_eq!(row("hit_rate").unit, "pp");
    assert_eq!(row("hit_rate").passed, Some(false));
    assert!(!c.passed);
    let agg = aggregate(&[c.clone(), compare("y", &real, &real, &t, vec![])]);
    let a = agg.iter().find(|a| a.stat == "ttft_mean").unwrap();
    assert_eq!((a.runs, a.worst_run.as_str()), (2, "x"));
    assert!((a.median - 4.0).abs() < 1e-9 && (a.worst - 8.0).abs() < 1e-9);
}

/// `traces/servesim` was written by `servesim run traces/servesim/scenario.yaml --out
/// traces/servesim`: validating it reproduces every statistic exactly.
#[test]
fn a_simulated_trace_validates_with_zero_error() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/servesim");
    let t = crate::trace::load(&p, None).unwrap();
    let cases = reconstruct::cases(&t, &reconstruct::Options::default()).unwrap();
    assert_eq!(cases.len(), 1);
    let out = crate::sim::simulate(&cases[0].scenario).unwrap();
    let sim = RunView::from_sim(&out);
    let c = compare(
        "servesim",
        &cases[0].real,
        &sim,
        &Tolerances::parse(&["e2e=0".into(), "ttft=0".into()]).unwrap(),
        vec![],
    );
    assert!(c.rows.len() >= 20, "{:?}", c.rows.iter().map(|r| &r.stat).collect::<Vec<_>>());
    for r in &c.rows {
        assert!(r.abs_err.unwrap() < 1e-9, "{}: {:?} vs {:?}", r.stat, r.real, r.sim);
    }
    assert!(c.passed);
    assert!(c.ks.values().all(|&d| d == 0.0));
    let html = html::render(
        &[cmd::Validated {
            case_label: "<script>x</script>".into(),
            comparison: Comparison { label: "<script>x</script>".into(), ..c },
            real: cases[0].real.clone(),
            sim,
        }],
        &[],
    )
    .unwrap();
    assert!(!html.contains("<script>x"), "labels are escaped");
    assert!(html.contains("&lt;script&gt;x"));
    assert!(html.contains("TTFT distribution, real vs simulated") && html.contains("<svg"));
    assert!(!html.contains("http://") || !html.contains("src=\"http"), "no external fetches");
}

#[test]
fn reconstructs_request_traces_and_stage_summaries() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    let t = crate::trace::load(&root.join("llmservingsim"), None).unwrap();
    let cases = reconstruct::cases(&t, &reconstruct::Options::default()).unwrap();
    let sc = &cases[0].scenario;
    assert_eq!((sc.model.id.as_str(), sc.gpu.id.as_str(), sc.engine.num_gpu_blocks), ("llama-3.1-8b", "rtx4090", 500));
    assert_eq!((sc.engine.max_num_seqs, sc.engine.max_num_batched_tokens, sc.engine.block_size), (64, 1024, 16));
    let out = crate::sim::simulate(sc).unwrap();
    assert_eq!(out.summary.requests.completed, 3);
    // Requests 0 and 2 share their first 16-token block (hash id 0); request 1 is 20 tokens
    // and shares it too: the second and third admissions hit 16 tokens each.
    assert_eq!(out.recorder.records.iter().map(|r| r.cached_tokens).collect::<Vec<_>>(), [0, 16, 16]);

    let t = crate::trace::load(&root.join("inference-perf.csv"), None).unwrap();
    let cases = reconstruct::cases(&t, &reconstruct::Options::default()).unwrap();
    assert_eq!(cases.len(), 3, "whole run + 2 stages");
    assert_eq!(cases[2].window, Some((10.0, 20.0)));
    assert_eq!(cases[0].real.stats["ttft_mean"], 0.023);

    let t = crate::trace::load(&root.join("mooncake.jsonl"), None).unwrap();
    let e = reconstruct::cases(&t, &reconstruct::Options::default()).err().unwrap();
    assert!(e.contains("no latencies"), "{e}");
}

/// Four runs' E2E means: the simulation swaps b and c (real 0.20 < 0.30, sim 0.35 > 0.25),
/// and d is a replicate of a (real within 5 %): 4 concordant, 1 discordant, 1 tie.
#[test]
fn ranking_counts_concordant_discordant_and_replicate_ties() {
    let mk = |label: &str, real: f64, sim: f64| {
        let (mut r, mut s) = (RunView::default(), RunView::default());
        r.stats.insert("e2e_mean".into(), real);
        s.stats.insert("e2e_mean".into(), sim);
        compare(label, &r, &s, &Tolerances::default(), vec![])
    };
    let cs = [mk("a", 0.10, 0.12), mk("b", 0.20, 0.35), mk("c", 0.30, 0.25), mk("d", 0.104, 0.09)];
    let r = ranking(&cs);
    assert_eq!(r.len(), 1, "only e2e_mean has values");
    let e = &r[0];
    assert_eq!((e.stat.as_str(), e.runs, e.pairs), ("e2e_mean", 4, 6));
    assert_eq!((e.concordant, e.discordant, e.ties), (4, 1, 1));
    assert!((e.tau.unwrap() - 0.6).abs() < 1e-12);
    assert_eq!(e.swapped.len(), 1);
    assert_eq!((e.swapped[0].0.as_str(), e.swapped[0].1.as_str()), ("b", "c"));
    assert!((e.swapped[0].2 - 1.5).abs() < 1e-12);
    let text = render_ranking(&r);
    assert!(text.contains("e2e_mean") && text.contains("0.600") && text.contains("b / c (1.50×)"), "{text}");
}
