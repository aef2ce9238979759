use super::emit::{
    self, AutoscalerEmit, DeploymentSpec, HpaSpec, InferencePoolSpec, JobSpec, Manifest, ScaledObjectSpec,
};
use super::prune::{self, PruneKind, WindowLoad};
use super::report;
use super::run::{self, PlanOptions};
use super::search::{self, SearchCtx};
use super::space::Group;
use super::{EngineCandidate, SearchMode};
use crate::catalog;
use crate::scenario::{self, ScenarioFile};
use std::path::{Path, PathBuf};

/// Llama-3.1-8B under a prefill-heavy Poisson load: on H100 the minimum is 5 replicas.
const SCENARIO: &str = r#"
name: plan-test
seed: 11
duration: 15s
drain: 30s
model: llama-3.1-8b
gpu: h100_sxm
tensor_parallel_size: 1
replicas: 1
router: {kind: round_robin}
engine: {max_model_len: 8192}
workload:
  kind: synthetic
  arrival: {kind: poisson, rate: 40}
  input: {kind: uniform, min: 2000, max: 6000}
  output: {kind: uniform, min: 50, max: 150}
slo:
  ttft_p90_s: 0.4
  tpot_p90_s: 0.03
plan:
  seeds: 2
  candidates:
    gpus: [{gpu: h100_sxm}, {gpu: l40s, usd_per_gpu_hour: 0.5, provider: test}]
    models: [llama-3.1-8b, llama-3.1-70b]
    replicas: {min: 1, max: 8}
    routers: [round_robin]
  pay_per_token: {input_usd_per_million: 0.05, output_usd_per_million: 0.2}
"#;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("servesim-plan-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn scenario_file(tag: &str, text: &str) -> PathBuf {
    let p = temp_dir(tag).join("plan-test.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn base() -> ScenarioFile {
    scenario::parse_file(SCENARIO, Path::new("plan-test.yaml"), &[]).unwrap()
}

fn group(gpu: &str, model: &str, tp: u32, price: f64) -> Group {
    Group {
        index: 0,
        id: format!("{gpu}/{model}/tp{tp}/e0/round_robin"),
        gpu: gpu.into(),
        provider: "test".into(),
        usd_per_gpu_hour: price,
        price_override: true,
        model: model.into(),
        tp,
        engine_index: 0,
        engine: EngineCandidate::default(),
        router: "round_robin".into(),
        min_replicas: 1,
        max_replicas: 8,
        autoscaler: "none".into(),
        autoscaler_config: None,
    }
}

fn prune_of(f: ScenarioFile) -> Option<PruneKind> {
    scenario::resolve(f, Path::new("x.yaml")).err().map(|e| prune::classify(&e).kind)
}

#[test]
fn plan_section_parses_and_unknown_keys_are_rejected() {
    let b = base();
    let plan = b.plan.as_ref().unwrap();
    assert_eq!(plan.seeds, 2);
    assert_eq!(plan.candidates.replicas.max, 8);
    let bad = SCENARIO.replace("  seeds: 2", "  seedz: 2");
    let err = scenario::parse_file(&bad, Path::new("x.yaml"), &[]).unwrap_err().to_string();
    assert!(err.contains("seedz"), "{err}");
    // --set reaches the plan section.
    let f = scenario::parse_file(SCENARIO, Path::new("x.yaml"), &["plan.seeds=5".into()]).unwrap();
    assert_eq!(f.plan.unwrap().seeds, 5);
    // A scenario without plan echoes no `plan` key.
    let min = std::fs::read_to_string("scenarios/minimal.yaml").unwrap();
    let f = scenario::parse_file(&min, Path::new("scenarios/minimal.yaml"), &[]).unwrap();
    assert!(serde_json::to_value(&f).unwrap().get("plan").is_none());
}

#[test]
fn shipped_plan_enumerates_over_a_thousand_points() {
    let path = Path::new("scenarios/coding-assistant-plan.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let f = scenario::parse_file(&text, path, &[]).unwrap();
    assert_eq!(f.plan.as_ref().unwrap().day.top, Some(4));
    // Fixed fleets alone (the 1,000-point speed target).
    let fixed = scenario::parse_file(&text, path, &["plan.candidates.autoscaler=[none]".to_string()]).unwrap();
    let groups = super::space::enumerate(fixed.plan.as_ref().unwrap(), &fixed).unwrap();
    assert_eq!(groups.len(), 60);
    let points: u32 = groups.iter().map(|g| g.max_replicas - g.min_replicas + 1).sum();
    assert_eq!(points, 1020);
    for sku in ["h100_sxm", "h200_sxm", "a100_80g_sxm", "l40s", "mi300x"] {
        let g = groups.iter().find(|g| g.gpu == sku).unwrap();
        assert_eq!(g.usd_per_gpu_hour, catalog::reference_price(sku).unwrap().usd_per_gpu_hour);
    }
    // Ids are stable and unique.
    assert_eq!(groups[0].id, "h100_sxm/qwen3-32b/tp1/e0/round_robin");
    assert_eq!(groups[1].id, "h100_sxm/qwen3-32b/tp1/e0/epp:default");
    // Fixed vs autoscaled, as shipped: the autoscaler is the innermost axis.
    let groups = super::space::enumerate(f.plan.as_ref().unwrap(), &f).unwrap();
    assert_eq!(groups.len(), 180);
    let ids: Vec<&str> = groups[..4].iter().map(|g| g.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "h100_sxm/qwen3-32b/tp1/e0/round_robin",
            "h100_sxm/qwen3-32b/tp1/e0/round_robin/hpa",
            "h100_sxm/qwen3-32b/tp1/e0/round_robin/keda-epp-queue",
            "h100_sxm/qwen3-32b/tp1/e0/epp:default"
        ]
    );
    assert!(matches!(groups[1].autoscaler_config, Some(crate::autoscaler::AutoscalerConfig::Hpa(_))));
    assert_eq!(run::configurations(groups, None).len(), 60);
}

#[test]
fn pruning_reasons_on_hand_built_cases() {
    let b = base();
    let mk = |gpu: &str, model: &str, tp: u32| {
        let mut f = search::point_file(&b, &group(gpu, model, tp, 1.0), 1, 1).unwrap();
        f.engine.max_model_len = None;
        f
    };
    // Feasible: 8B on one H100 holds its 131k context.
    assert_eq!(prune_of(mk("h100_sxm", "llama-3.1-8b", 1)), None);
    // 70B bf16 (~131 GiB) cannot be held by one 80 GB H100.
    assert_eq!(prune_of(mk("h100_sxm", "llama-3.1-70b", 1)), Some(PruneKind::WeightsDoNotFit));
    // TP 3 is not a valid size.
    assert_eq!(prune_of(mk("h100_sxm", "llama-3.1-8b", 3)), Some(PruneKind::InvalidTp));
    // Weights fit on an L40S at half its memory, but 131,072 tokens of context do not.
    let mut f = mk("l40s", "llama-3.1-8b", 1);
    f.engine.gpu_memory_utilization = Some(0.5);
    assert_eq!(prune_of(f.clone()), Some(PruneKind::MaxModelLen));
    // … and with max_model_len lowered to what fits, it starts.
    f.engine.max_model_len = Some(8192);
    assert_eq!(prune_of(f), None);
    // Weights + overhead leave less than two KV blocks.
    let (m, g) = (catalog::model("llama-3.1-8b").unwrap(), catalog::gpu("h100_sxm").unwrap());
    let requested = (g.memory_bytes as f64 * 0.9).ceil();
    let weights = m.weights_bytes().ceil();
    let mut f = mk("h100_sxm", "llama-3.1-8b", 1);
    f.engine.gpu_memory_utilization = Some(0.9);
    f.engine.non_kv_overhead_gib = Some((requested - weights - 4096.0) / catalog::GIB);
    assert_eq!(prune_of(f), Some(PruneKind::NoKvRoom));

    // Roofline: a load far beyond one replica needs many; a trickle needs one.
    let sc = scenario::resolve(mk("h100_sxm", "llama-3.1-8b", 1), Path::new("x.yaml")).unwrap();
    let heavy = WindowLoad {
        start_s: 0.0,
        seconds: 60.0,
        requests: 60_000,
        input_tokens: 60_000_000,
        output_tokens: 60_000_000,
    };
    let (need, why) = prune::roofline_min_replicas(&sc, &heavy, 0.95).unwrap();
    assert!(need > 8, "{need}: {why}");
    assert!(why.starts_with("roofline"));
    let light = WindowLoad { start_s: 0.0, seconds: 60.0, requests: 10, input_tokens: 1000, output_tokens: 1000 };
    assert_eq!(prune::roofline_min_replicas(&sc, &light, 0.95).unwrap().0, 1);
    // More replicas than the bound are never pruned by it.
    assert!(prune::roofline_min_replicas(&sc, &heavy, 0.0).unwrap().0 >= need);
}

#[test]
fn bisection_matches_exhaustive_scan() {
    let b = base();
    let mut plan = b.plan.clone().unwrap();
    plan.seeds = 1;
    let window = WindowLoad::default();
    let g = group("h100_sxm", "llama-3.1-8b", 1, 3.0);
    let mut results = Vec::new();
    for mode in [SearchMode::Bisect, SearchMode::Exhaustive] {
        plan.search = mode;
        let ctx = SearchCtx {
            plan: &plan,
            base: &b,
            traffic_up: None,
            source: Path::new("plan-test.yaml"),
            window: &window,
            day: None,
        };
        results.push(search::search_group(&ctx, &g).unwrap());
    }
    let (bis, exh) = (&results[0], &results[1]);
    assert_eq!(exh.evals.len(), 8, "exhaustive simulates every count");
    // The exhaustive scan's minimum: the smallest passing count, all above passing too.
    let scan_min = exh.evals.iter().find(|e| e.passed()).map(|e| e.replicas);
    assert!(exh.evals.iter().filter(|e| Some(e.replicas) >= scan_min).all(|e| e.passed()));
    assert_eq!(scan_min, Some(5));
    assert_eq!(bis.min_replicas, scan_min);
    assert_eq!(exh.min_replicas, scan_min);
    assert!(bis.simulations < exh.simulations, "{} vs {}", bis.simulations, exh.simulations);
    // Same point, same seed ⇒ identical metrics in both searches.
    for e in &bis.evals {
        assert_eq!(Some(e), exh.eval(e.replicas));
    }
}

#[test]
fn peak_hour_window_is_the_busiest_hour() {
    let s = crate::units::NANOS_PER_SEC;
    let h = 3600 * s;
    // 2 arrivals in the first hour, 5 between 2 h and 2.5 h, 1 at 4 h.
    let arr = vec![0, h / 2, 2 * h, 2 * h + 10, 2 * h + 20, 2 * h + h / 4, 2 * h + h / 2, 4 * h];
    assert_eq!(search::window_of(arr.clone().into_iter(), super::Evaluate::PeakHour), (2 * h, 3 * h));
    assert_eq!(search::window_of(arr.into_iter(), super::Evaluate::Whole), (0, u64::MAX));
    // Shorter than an hour: the whole run.
    assert_eq!(search::window_of([0, 10 * s].into_iter(), super::Evaluate::PeakHour), (0, u64::MAX));
}

/// The merged report folder `b` has the same files as the unsharded `a`, byte for byte.
fn assert_same_files(a: &Path, b: &Path) {
    let (fa, fb) = (read_all(a), read_all(b));
    assert_eq!(fa.iter().map(|x| &x.0).collect::<Vec<_>>(), fb.iter().map(|x| &x.0).collect::<Vec<_>>());
    for (x, y) in fa.iter().zip(&fb) {
        assert!(x.1 == y.1, "{} differs after merge", x.0);
    }
}

fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in [""] {
        let d = dir.join(sub);
        let mut names: Vec<_> =
            std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        names.sort();
        for p in names {
            out.push((p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// One plan run checks the recommendation, shard + merge, thread independence and the manifests.
#[test]
fn plan_end_to_end() {
    let path = scenario_file("e2e", SCENARIO);
    let dir = path.parent().unwrap().to_path_buf();
    let opts = |shard, threads| PlanOptions { sets: vec![], shard, quiet: true, threads };

    let full = run::run_plan(&path, &opts(None, Some(2))).unwrap();
    let (ctx, groups) = run::normalize(&full.context, &full.groups).unwrap();
    let a = dir.join("full");
    let rep = report::write_all(&a, &ctx, &groups).unwrap();

    // The recommendation meets every SLO on every seed, and nothing evaluated is cheaper.
    let rec = rep.recommendation.clone().expect("a feasible configuration");
    assert_eq!(rec.id, "h100_sxm/llama-3.1-8b/tp1/e0/round_robin/r6");
    let gr = groups.iter().find(|g| g.group.id == rec.config).unwrap();
    let e = gr.eval(rec.replicas).unwrap();
    assert_eq!(e.seeds.len(), 2);
    for s in &e.seeds {
        assert!(s.passed);
        assert!(s.ttft_p90_s.unwrap() <= 0.4 && s.tpot_p90_s.unwrap() <= 0.03);
    }
    for r in rep.points.iter().filter(|r| r.status == "simulated" && r.feasible && r.confirmed) {
        assert!(r.cost_usd_per_day >= rec.cost_usd_per_day, "{} is cheaper", r.id);
    }
    // 70B does not fit on one GPU: pruned with the reason, every count.
    let pruned: Vec<_> = rep.points.iter().filter(|r| r.model == "llama-3.1-70b").collect();
    assert_eq!(pruned.len(), 16);
    assert!(pruned.iter().all(|r| r.status == "pruned" && r.reason.starts_with("weights_do_not_fit")));
    assert_eq!(rep.space.points, 32);
    assert!(rep.pareto_cost_vs_ttft_p90.contains(&rec.id));
    let ppt = rep.pay_per_token.as_ref().unwrap();
    assert!(ppt.daily_input_tokens > 0 && ppt.break_even_tokens_per_day.unwrap() > 0.0);
    assert!(!rep.sensitivity.price.is_empty());

    // Same result with one thread.
    let one = run::run_plan(&path, &opts(None, Some(1))).unwrap();
    assert_eq!(one.groups, full.groups);

    // Shards + merge == unsharded, byte for byte.
    let mut shard_dirs = Vec::new();
    for i in 0..3 {
        let r = run::run_plan(&path, &opts(Some((i, 3)), Some(1))).unwrap();
        let d = dir.join(format!("shard-{i}"));
        run::write_shard(&d, &r, (i, 3)).unwrap();
        shard_dirs.push(d);
    }
    shard_dirs.reverse();
    let (mctx, mgroups) = run::merge_dirs(&shard_dirs).unwrap();
    let b = dir.join("merged");
    report::write_all(&b, &mctx, &mgroups).unwrap();
    assert_same_files(&a, &b);
    // A missing shard is an error.
    assert!(run::merge_dirs(&shard_dirs[..2]).is_err());

    // Manifests parse back and carry the chosen values.
    let deploy = a.clone();
    let names: Vec<String> =
        std::fs::read_dir(&deploy).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().any(|n| n.contains("hpa")));
    assert!(names.iter().any(|n| n.contains("inferencepool")));
    assert!(names.iter().any(|n| n.contains("epp")));
    let dep: Manifest<DeploymentSpec> =
        serde_saphyr::from_str(&std::fs::read_to_string(deploy.join("vllm-deployment.yaml")).unwrap()).unwrap();
    assert_eq!(dep.kind, "Deployment");
    assert_eq!(dep.spec.replicas, rec.replicas);
    let c = &dep.spec.template.spec.containers[0];
    assert!(
        c.args.contains(&"meta-llama/Llama-3.1-8B-Instruct".to_string()) || c.args[1].contains("Llama"),
        "{:?}",
        c.args
    );
    assert!(c.args.contains(&"--tensor-parallel-size=1".to_string()));
    assert!(c.args.contains(&"--max-model-len=8192".to_string()));
    assert_eq!(c.resources.as_ref().unwrap().limits["nvidia.com/gpu"], "1");
    assert!(c.readiness_probe.is_some());
    let hpa: Manifest<HpaSpec> =
        serde_saphyr::from_str(&std::fs::read_to_string(deploy.join("vllm-hpa.yaml")).unwrap()).unwrap();
    assert_eq!(hpa.spec.min_replicas, rec.replicas);
    assert!(hpa.spec.max_replicas >= rec.replicas);
    assert_eq!(hpa.spec.scale_target_ref.name, dep.metadata.name);
    assert_eq!(hpa.spec.metrics[0].pods.as_ref().unwrap().metric.name, "vllm_num_requests_waiting");
    assert_eq!(hpa.spec.behavior.as_ref().unwrap().scale_down.stabilization_window_seconds, 300);
    // The KEDA ScaledObject beside it: same bounds, threshold and behaviour, a Prometheus trigger.
    let keda_text = std::fs::read_to_string(deploy.join("vllm-keda-scaledobject.yaml")).unwrap();
    let keda: Manifest<ScaledObjectSpec> = serde_saphyr::from_str(&keda_text).unwrap();
    assert_eq!((keda.api_version.as_str(), keda.kind.as_str()), ("keda.sh/v1alpha1", "ScaledObject"));
    assert_eq!(
        (keda.spec.min_replica_count, keda.spec.max_replica_count),
        (hpa.spec.min_replicas, hpa.spec.max_replicas)
    );
    assert_eq!(keda.spec.scale_target_ref.name, dep.metadata.name);
    let t = &keda.spec.triggers[0];
    assert_eq!((t.trigger_type.as_str(), t.metric_type.as_str()), ("prometheus", "AverageValue"));
    assert_eq!(
        Some(&t.metadata["threshold"]),
        hpa.spec.metrics[0].pods.as_ref().unwrap().target.average_value.as_ref()
    );
    assert_eq!(t.metadata["query"], "sum(vllm:num_requests_waiting{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"})");
    assert_eq!(
        keda.spec.advanced.as_ref().unwrap().horizontal_pod_autoscaler_config.behavior,
        hpa.spec.behavior.clone().unwrap()
    );
    // Generic YAML view: KEDA wants every trigger metadata value as a string.
    let v: serde_json::Value = serde_saphyr::from_str(&keda_text).unwrap();
    assert!(v["spec"]["triggers"][0]["metadata"].as_object().unwrap().values().all(|x| x.is_string()));
    assert_eq!(v["spec"]["pollingInterval"], 15);
    // The plan page.
    let html = std::fs::read_to_string(a.join("index.html")).unwrap();
    // minijinja escapes `/` as `&#x2f;`.
    assert!(html.contains(&rec.id.replace('/', "&#x2f;")), "plan page names the recommendation");
    assert_eq!(html.matches("<svg").count(), 3, "plan page: pareto x2 + break-even");
    assert_eq!(html.matches("<tr class=\"rec\">").count(), 1);
    let pool: Manifest<InferencePoolSpec> =
        serde_saphyr::from_str(&std::fs::read_to_string(deploy.join("inferencepool.yaml")).unwrap()).unwrap();
    assert_eq!(pool.kind, "InferencePool");
    assert_eq!(pool.spec.selector.match_labels, dep.spec.selector.match_labels);
    let epp = crate::router::epp::config::parse_config_yaml(
        &std::fs::read_to_string(deploy.join("epp-config.yaml")).unwrap(),
    )
    .unwrap();
    assert!(!epp.plugins.is_empty() && epp.scheduling_profiles.len() == 1);
    let args = std::fs::read_to_string(deploy.join("vllm-args.txt")).unwrap();
    assert!(args.contains("vllm serve") && args.contains("--max-num-seqs="));

    // The Indexed Job parses back.
    let job = emit::indexed_job(&path, "plan-test", 4).unwrap();
    let job: Manifest<JobSpec> = serde_saphyr::from_str(&job).unwrap();
    assert_eq!((job.spec.completion_mode.as_str(), job.spec.completions), ("Indexed", 4));
    assert!(job.spec.template.spec.containers[0].args[0].contains("--shard ${JOB_COMPLETION_INDEX}/4"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The default setting of a fixed recommendation flows into both manifests; EPP routing
/// scales on the EPP queue.
#[test]
fn autoscaler_setting_drives_hpa_and_keda() {
    let mut g = group("h100_sxm", "llama-3.1-8b", 1, 2.0);
    g.router = "epp:default".into();
    let gr = search::GroupResult {
        group: g,
        pruned: None,
        roofline_min: None,
        roofline_reason: None,
        resolved: None,
        evals: vec![],
        min_replicas: Some(4),
        infeasible: None,
        budget_replicas: None,
        traffic_up_min: Some(7),
        traffic_up_note: None,
        simulations: 0,
        autoscaled: None,
        day_skipped: None,
    };
    assert_eq!(AutoscalerEmit::for_point(&gr, 4), None, "a fixed fleet has no simulated setting");
    let a = AutoscalerEmit::for_recommendation(&gr, 4);
    assert_eq!((a.min_replicas, a.max_replicas), (4, 7));
    assert_eq!(a.metrics.len(), 1);
    assert_eq!((a.metrics[0].metric.as_str(), a.metrics[0].target), ("llm_d_epp_flow_control_queue_size", 1.0));
    let k = emit::keda_scaled_object("vllm-x", "m", &a);
    let text = emit::to_yaml_checked(&k).unwrap();
    let back: Manifest<ScaledObjectSpec> = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        back.spec.triggers[0].metadata["query"],
        "sum(llm_d_epp_flow_control_queue_size{inference_pool=\"vllm-x\"})"
    );
    assert_eq!(back.spec.triggers[0].metadata["threshold"], "1");
    // The EPP queue is a pool-level series: an External metric in the HPA.
    let h = emit::hpa_manifest("vllm-x", &a);
    let back: Manifest<HpaSpec> = serde_saphyr::from_str(&emit::to_yaml_checked(&h).unwrap()).unwrap();
    let m = &back.spec.metrics[0];
    assert_eq!((m.metric_type.as_str(), m.pods.is_none()), ("External", true));
    let ext = m.external.as_ref().unwrap();
    assert_eq!(ext.metric.name, "llm_d_epp_flow_control_queue_size");
    assert_eq!(ext.target.average_value.as_deref(), Some("1"));
}

/// The planner's verdict and `run`'s verdict come from one SLO definition
/// (`metrics::SloPopulation`): on a real overloaded simulation, where the drain cap leaves
/// requests unfinished, both agree check by check; on a healthy one the planner's percentiles
/// equal the run summary's.
#[test]
fn planner_and_run_judge_slos_the_same_way() {
    let fin = |v: Option<f64>| v.filter(|x| x.is_finite());
    for (replicas, overloaded) in [(1, true), (8, false)] {
        let mut f = base();
        f.replicas = replicas;
        let sc = scenario::resolve(f, Path::new("plan-test.yaml")).unwrap();
        let out = crate::sim::simulate(&sc).unwrap();
        assert_eq!(out.summary.requests.in_flight > 0, overloaded, "{replicas} replicas");
        let planner = search::evaluate_records(&out.recorder.records, &sc.slo, super::Evaluate::Whole, sc.seed);
        let run = &out.summary.slo;
        assert_eq!(planner.passed, run.passed, "{replicas} replicas");
        assert_eq!(run.passed, !overloaded);
        assert_eq!(run.checks.len(), 2);
        for c in &run.checks {
            let p = match c.metric.as_str() {
                "ttft_p90_s" => planner.ttft_p90_s,
                "tpot_p90_s" => planner.tpot_p90_s,
                m => panic!("unexpected check {m}"),
            };
            assert_eq!(fin(c.actual), p, "{} with {replicas} replicas", c.metric);
        }
        let direct = crate::metrics::evaluate_records_slo(&sc.slo, &out.recorder.records);
        assert_eq!(&direct, run);
        if !overloaded {
            assert_eq!(planner.ttft_p90_s, out.summary.ttft_s.p90);
            assert_eq!(planner.tpot_p90_s, out.summary.tpot_s.p90);
            assert_eq!(planner.e2e_p90_s, out.summary.e2e_s.p90);
        }
    }
}

/// The `plan-test` load on the same model, as a 12-minute day with a 4-minute busy stretch;
/// the plan compares a fixed fleet with an HPA (from the scenario's `autoscalers:`) and an
/// inline KEDA ScaledObject.
const AUTOSCALED: &str = r#"
name: plan-auto
seed: 11
duration: 12m
drain: 60s
model: llama-3.1-8b
gpu: h100_sxm
tensor_parallel_size: 1
replicas: 1
router: {kind: round_robin}
engine: {max_model_len: 8192}
lifecycle: {preset: warm_node}
workload:
  kind: synthetic
  arrival:
    kind: stages
    stages: [{rate: 4, duration: 4m}, {rate: 20, duration: 4m}, {rate: 4, duration: 4m}]
  input: {kind: uniform, min: 2000, max: 6000}
  output: {kind: uniform, min: 50, max: 150}
slo:
  ttft_p90_s: 0.4
  tpot_p90_s: 0.03
autoscalers:
  hpa-waiting:
    kind: hpa
    minReplicas: 2
    maxReplicas: 8
    metrics:
    - type: Pods
      pods: {metric: {name: "vllm:num_requests_waiting"}, target: {type: AverageValue, averageValue: 1}}
    behavior:
      scaleDown: {stabilizationWindowSeconds: 120}
plan:
  duration: 15s
  overrides: ["workload.arrival.stages.0.rate=20", "drain=30s"]
  seeds: 2
  candidates:
    gpus: [{gpu: h100_sxm, usd_per_gpu_hour: 2.0, provider: test}]
    replicas: {min: 1, max: 6}
    routers: [round_robin]
    autoscaler:
    - none
    - hpa-waiting
    - name: keda-running
      config:
        kind: keda
        pollingInterval: 15
        minReplicaCount: 1
        triggers:
        - type: prometheus
          metadata: {query: "sum(vllm:num_requests_running)", threshold: "8", activationThreshold: "1"}
  day: {seeds: 1}
"#;

#[test]
fn autoscaler_axis_enumerates_expected_groups_and_rejects_bad_entries() {
    let f = scenario::parse_file(AUTOSCALED, Path::new("plan-auto.yaml"), &[]).unwrap();
    let groups = super::space::enumerate(f.plan.as_ref().unwrap(), &f).unwrap();
    let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "h100_sxm/llama-3.1-8b/tp1/e0/round_robin",
            "h100_sxm/llama-3.1-8b/tp1/e0/round_robin/hpa-waiting",
            "h100_sxm/llama-3.1-8b/tp1/e0/round_robin/keda-running"
        ]
    );
    assert_eq!(
        groups.iter().map(|g| g.autoscaler.as_str()).collect::<Vec<_>>(),
        ["none", "hpa-waiting", "keda-running"]
    );
    assert!(groups.iter().all(|g| g.config_id() == "h100_sxm/llama-3.1-8b/tp1/e0/round_robin"));
    assert!(matches!(groups[2].autoscaler_config, Some(crate::autoscaler::AutoscalerConfig::Keda(_))));
    // One shard takes a whole configuration.
    assert_eq!(run::configurations(groups.clone(), Some((0, 2))).len(), 1);
    assert!(run::configurations(groups, Some((1, 2))).is_empty());

    let err = |text: String| {
        let f = scenario::parse_file(&text, Path::new("plan-auto.yaml"), &[]);
        match f {
            Err(e) => e.to_string(),
            Ok(f) => super::space::enumerate(f.plan.as_ref().unwrap(), &f).unwrap_err().to_string(),
        }
    };
    let e = err(AUTOSCALED.replace("    - hpa-waiting\n", "    - hpa-wating\n"));
    assert!(e.contains("plan.candidates.autoscaler[1]") && e.contains("unknown autoscaler `hpa-wating`"), "{e}");
    assert!(e.contains("hpa-waiting") && e.contains("llm-d-keda-epp-queue"), "lists valid names: {e}");
    let e = err(AUTOSCALED.replace("    - hpa-waiting\n", "    - scenario\n"));
    assert!(e.contains("the scenario has none"), "{e}");
    let e = err(AUTOSCALED.replace("    - hpa-waiting\n", "    - llm-d-wva-saturation\n"));
    assert!(e.contains("cannot be planned"), "{e}");
    let e = err(AUTOSCALED
        .replace("        pollingInterval: 15\n", "        pollingInterval: 15\n        cooldownPeriodd: 3\n"));
    assert!(e.contains("cooldownPeriodd"), "{e}");
    let e = err(AUTOSCALED.replace("    - name: keda-running\n", "    - name: keda/running\n"));
    assert!(e.contains("may only use letters"), "{e}");
    let e = err(AUTOSCALED.replace("      config:\n", "      confg:\n"));
    assert!(e.contains("confg"), "{e}");
}

/// The autoscaled plan end to end: costs from simulated GPU-hours, the recommendation, thread
/// independence, shard + merge, and the emitted HPA / ScaledObject.
#[test]
fn autoscaled_plan_end_to_end() {
    let path = scenario_file("auto", AUTOSCALED);
    let dir = path.parent().unwrap().to_path_buf();
    let opts = |shard, threads| PlanOptions { sets: vec![], shard, quiet: true, threads };
    let full = run::run_plan(&path, &opts(None, Some(2))).unwrap();
    let (ctx, groups) = run::normalize(&full.context, &full.groups).unwrap();
    let a = dir.join("full");
    let rep = report::write_all(&a, &ctx, &groups).unwrap();
    // Peak capacity: the fixed fleet's minimum, shared by the autoscaled variants.
    let m = groups[0].min_replicas.unwrap();
    assert_eq!(m, 3);
    assert!(groups.iter().all(|g| g.min_replicas == Some(m)));
    assert_eq!(groups[0].simulations + groups[1].simulations + groups[2].simulations, full.simulations);

    // An autoscaled point's cost is its simulated GPU-hours × price, scaled from 12 min to 24 h,
    // and equals a direct `simulate` of the same setting.
    let hpa_row = rep
        .points
        .iter()
        .find(|r| r.id == format!("h100_sxm/llama-3.1-8b/tp1/e0/round_robin/hpa-waiting/r{m}"))
        .unwrap();
    assert_eq!(hpa_row.status, "simulated");
    assert_eq!(hpa_row.gpu_hours_scale, Some(120.0));
    assert_eq!(hpa_row.min_replicas, Some(2));
    let mut f = scenario::parse_file(AUTOSCALED, &path, &[]).unwrap();
    let mut cfg = f.autoscalers["hpa-waiting"].clone();
    if let crate::autoscaler::AutoscalerConfig::Hpa(h) = &mut cfg {
        h.max_replicas = m;
    }
    f.autoscaler = Some(cfg);
    f.replicas = 2;
    f.price = Some(crate::scenario::raw::PriceOverride { usd_per_gpu_hour: 2.0, provider: None });
    f.output.timeseries_interval = crate::workload::config::DurationStr(crate::units::SimDuration::from_secs(60));
    let sc = scenario::resolve(f, &path).unwrap();
    let out = crate::sim::simulate(&sc).unwrap();
    let gh = &out.summary.gpu_hours;
    assert_eq!(hpa_row.gpu_hours, Some(gh.total));
    assert_eq!(hpa_row.gpu_hours_serving, Some(gh.serving));
    assert_eq!(hpa_row.gpu_hours_starting, Some(gh.starting));
    assert_eq!(hpa_row.scale_events, Some(out.totals.fleet.events.len() as u32));
    assert_eq!(hpa_row.cost_usd_per_day, gh.total * 2.0 * 120.0);
    assert_eq!(hpa_row.cost_usd_per_day, out.summary.cost_usd * 120.0);
    // Hand-checked figures of this run: 0.442 GPU-hours in 12 minutes (2 replicas most of the
    // time, a third for the busy stretch), 2 scale events, × 120 × $2 = $106.15/day against
    // $144/day for 3 fixed replicas; its TPOT p90 over the day (70 ms) misses the 30 ms SLO.
    assert_eq!(hpa_row.gpu_hours, Some(0.44229526329));
    assert_eq!(hpa_row.scale_events, Some(2));
    assert_eq!(hpa_row.cost_usd_per_day, 106.1508631896);
    assert!(!hpa_row.feasible && hpa_row.reason.contains("tpot_p90_s 0.0702 > 0.03"), "{}", hpa_row.reason);
    let phases = [
        hpa_row.gpu_hours_serving,
        hpa_row.gpu_hours_starting,
        hpa_row.gpu_hours_draining,
        hpa_row.gpu_hours_idle_node,
    ];
    let sum: f64 = phases.iter().map(|x| x.unwrap()).sum();
    assert!((sum - gh.total).abs() < 1e-9, "{sum} vs {}", gh.total);
    let keda_row =
        rep.points.iter().find(|r| r.id == "h100_sxm/llama-3.1-8b/tp1/e0/round_robin/keda-running/r3").unwrap();
    assert_eq!(
        (keda_row.min_replicas, keda_row.gpu_hours, keda_row.scale_events),
        (Some(1), Some(0.46727719416166663), Some(2))
    );
    assert!(!keda_row.feasible && keda_row.reason.contains("ttft_p90_s 5.8598 > 0.4"), "{}", keda_row.reason);
    let fixed_row =
        rep.points.iter().find(|r| r.id == format!("h100_sxm/llama-3.1-8b/tp1/e0/round_robin/r{m}")).unwrap();
    assert_eq!(fixed_row.cost_usd_per_day, m as f64 * 2.0 * 24.0);
    assert_eq!(fixed_row.gpu_hours, None);

    // The recommendation meets every SLO and nothing confirmed-feasible is cheaper.
    let rec = rep.recommendation.clone().expect("a feasible configuration");
    assert!(rec.feasible && rec.confirmed);
    for r in rep.points.iter().filter(|r| r.status == "simulated" && r.feasible && r.confirmed) {
        assert!(r.cost_usd_per_day >= rec.cost_usd_per_day, "{} is cheaper", r.id);
    }
    assert_eq!((rec.id.as_str(), rec.cost_usd_per_day), ("h100_sxm/llama-3.1-8b/tp1/e0/round_robin/r3", 144.0));

    // plan.csv carries the autoscaler columns.
    let csv = std::fs::read_to_string(a.join("plan.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.contains(",autoscaler,") && header.contains(",gpu_hours_starting,") && header.contains(",scale_events,")
    );

    // Same result with one thread; shards + merge == unsharded, byte for byte.
    let one = run::run_plan(&path, &opts(None, Some(1))).unwrap();
    assert_eq!(one.groups, full.groups);
    let mut shard_dirs = Vec::new();
    for i in 0..2 {
        let r = run::run_plan(&path, &opts(Some((i, 2)), Some(1))).unwrap();
        let d = dir.join(format!("shard-{i}"));
        run::write_shard(&d, &r, (i, 2)).unwrap();
        shard_dirs.push(d);
    }
    let (mctx, mgroups) = run::merge_dirs(&shard_dirs).unwrap();
    let b = dir.join("merged");
    report::write_all(&b, &mctx, &mgroups).unwrap();
    assert_same_files(&a, &b);

    // The emitted manifests carry the simulated setting of the autoscaled recommendation.
    let hpa: Manifest<HpaSpec> =
        serde_saphyr::from_str(&std::fs::read_to_string(a.join("vllm-hpa.yaml")).unwrap()).unwrap();
    let keda: Manifest<ScaledObjectSpec> =
        serde_saphyr::from_str(&std::fs::read_to_string(a.join("vllm-keda-scaledobject.yaml")).unwrap()).unwrap();
    // The fixed recommendation gets the unsimulated default around its 3 replicas.
    assert_eq!((hpa.spec.min_replicas, keda.spec.min_replica_count), (3, 3));
    // An autoscaled point's manifests carry its simulated setting: HPA from the HPA candidate…
    let hpa_group = groups.iter().find(|g| g.group.autoscaler == "hpa-waiting").unwrap();
    let chosen = AutoscalerEmit::for_point(hpa_group, 3).unwrap();
    assert_eq!(AutoscalerEmit::for_point(hpa_group, 4), None, "only the simulated maxReplicas");
    let d = dir.join("hpa-point");
    emit::write_manifests_with(&d, &ctx, hpa_group, 3, &chosen).unwrap();
    let text = std::fs::read_to_string(d.join("vllm-hpa.yaml")).unwrap();
    assert!(text.starts_with("# HorizontalPodAutoscaler (the plan simulated this setting as `hpa-waiting`"), "{text}");
    let h: Manifest<HpaSpec> = serde_saphyr::from_str(&text).unwrap();
    assert_eq!((h.spec.min_replicas, h.spec.max_replicas), (2, 3));
    assert_eq!(h.spec.metrics.len(), 1);
    let pm = h.spec.metrics[0].pods.as_ref().unwrap();
    assert_eq!((pm.metric.name.as_str(), pm.target.average_value.as_deref()), ("vllm_num_requests_waiting", Some("1")));
    let b = h.spec.behavior.unwrap();
    assert_eq!((b.scale_up.stabilization_window_seconds, b.scale_down.stabilization_window_seconds), (0, 120));
    let k: Manifest<ScaledObjectSpec> =
        serde_saphyr::from_str(&std::fs::read_to_string(d.join("vllm-keda-scaledobject.yaml")).unwrap()).unwrap();
    assert_eq!((k.spec.min_replica_count, k.spec.max_replica_count), (2, 3));
    assert_eq!(k.spec.triggers[0].metadata["threshold"], "1");
    // … and KEDA from the inline ScaledObject (threshold, activation, polling, min 1).
    let keda_group = groups.iter().find(|g| g.group.autoscaler == "keda-running").unwrap();
    let chosen = AutoscalerEmit::for_point(keda_group, 3).unwrap();
    let d = dir.join("keda-point");
    emit::write_manifests_with(&d, &ctx, keda_group, 3, &chosen).unwrap();
    let k: Manifest<ScaledObjectSpec> =
        serde_saphyr::from_str(&std::fs::read_to_string(d.join("vllm-keda-scaledobject.yaml")).unwrap()).unwrap();
    assert_eq!((k.spec.min_replica_count, k.spec.max_replica_count, k.spec.polling_interval), (1, 3, 15));
    let t = &k.spec.triggers[0];
    assert_eq!(t.metadata["query"], "sum(vllm:num_requests_running{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"})");
    assert_eq!((t.metadata["threshold"].as_str(), t.metadata["activationThreshold"].as_str()), ("8", "1"));
    let h: Manifest<HpaSpec> =
        serde_saphyr::from_str(&std::fs::read_to_string(d.join("vllm-hpa.yaml")).unwrap()).unwrap();
    let ext = h.spec.metrics[0].external.as_ref().unwrap();
    assert_eq!(
        (ext.metric.name.as_str(), ext.target.average_value.as_deref()),
        ("vllm_num_requests_running", Some("8"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `plan.day.top`: day runs go only to the configurations with the cheapest fixed fleets; the
/// others' autoscaled points are `skipped` with their fixed cost, and shards (each of which
/// searches every peak to choose) merge to the unsharded bytes.
#[test]
fn day_runs_go_to_the_cheapest_fixed_configurations() {
    let text = AUTOSCALED
        .replace(
            "    gpus: [{gpu: h100_sxm, usd_per_gpu_hour: 2.0, provider: test}]\n",
            "    gpus: [{gpu: h100_sxm, usd_per_gpu_hour: 2.0, provider: test}, {gpu: h200_sxm, usd_per_gpu_hour: 1.0, provider: test}]\n",
        )
        .replace("  day: {seeds: 1}\n", "  day: {seeds: 1, top: 1}\n");
    let path = scenario_file("daytop", &text);
    let dir = path.parent().unwrap().to_path_buf();
    let opts = |shard| PlanOptions { sets: vec![], shard, quiet: true, threads: Some(2) };
    let full = run::run_plan(&path, &opts(None)).unwrap();
    let (ctx, groups) = run::normalize(&full.context, &full.groups).unwrap();
    let ids: Vec<&str> = groups.iter().map(|g| g.group.id.as_str()).collect();
    assert_eq!(ids.len(), 6, "{ids:?}");
    let (h100, h200) = (&groups[0], &groups[3]);
    assert!(h100.group.id.starts_with("h100_sxm/") && h200.group.id.starts_with("h200_sxm/"));
    let (m100, m200) = (h100.min_replicas.unwrap(), h200.min_replicas.unwrap());
    // Both have something to scale (HPA min 2, KEDA min 1 below the peak), so the cheaper fixed
    // fleet decides: H200 at $1/GPU-h.
    assert!(m100 > 2 && m200 > 2, "peaks {m100}, {m200}");
    let cost = |g: &search::GroupResult, m: u32| g.group.cost_per_day(m, 24.0);
    assert!(cost(h200, m200) < cost(h100, m100), "{} vs {}", cost(h200, m200), cost(h100, m100));
    let chosen = search::select_day_runs(groups.iter(), 1, 24.0);
    assert_eq!(chosen.into_iter().collect::<Vec<_>>(), [h200.group.config_id()]);
    for g in &groups[4..] {
        assert!(g.autoscaled.is_some() && g.day_skipped.is_none(), "{} has a day run", g.group.id);
    }
    for g in &groups[1..3] {
        assert!(g.autoscaled.is_none(), "{} has no day run", g.group.id);
        let why = g.day_skipped.as_deref().unwrap();
        assert_eq!(
            why,
            format!(
                "day run not simulated: its fixed fleet ({m100} replicas, ${:.0}/day) is not among the 1 cheapest configurations with something to scale (plan.day.top)",
                cost(h100, m100)
            )
        );
        assert_eq!(g.best_cost(24.0), None, "a skipped point is no candidate");
    }
    // Simulations: two day runs beside the peak searches.
    let peaks = groups[0].simulations + groups[3].simulations;
    assert_eq!(full.simulations, peaks + 2);
    let a = dir.join("full");
    let rep = report::write_all(&a, &ctx, &groups).unwrap();
    assert_eq!(rep.space.skipped, 2 * (6 - m100 as usize + 1), "maxReplicas m..=6 of two variants");
    let row = rep.points.iter().find(|r| r.id == format!("{}/r{m100}", groups[1].group.id)).unwrap();
    assert_eq!((row.status.as_str(), row.feasible), ("skipped", false));
    assert!(row.reason.contains("plan.day.top"), "{}", row.reason);
    let md = std::fs::read_to_string(a.join("plan.md")).unwrap();
    assert!(md.contains(&format!("{} skipped (plan.day.top)", rep.space.skipped)), "{md}");

    // Shard 1/2 holds the skipped configuration only, yet chose as the whole plan did.
    let mut shard_dirs = Vec::new();
    for i in 0..2 {
        let r = run::run_plan(&path, &opts(Some((i, 2)))).unwrap();
        assert_eq!(r.groups.len(), 3);
        let d = dir.join(format!("shard-{i}"));
        run::write_shard(&d, &r, (i, 2)).unwrap();
        shard_dirs.push(d);
    }
    let (mctx, mgroups) = run::merge_dirs(&shard_dirs).unwrap();
    assert_eq!(mgroups, groups);
    let b = dir.join("merged");
    report::write_all(&b, &mctx, &mgroups).unwrap();
    assert_same_files(&a, &b);
    let _ = std::fs::remove_dir_all(&dir);
}
