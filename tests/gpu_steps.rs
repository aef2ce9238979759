//! The roofline step-time model against engine steps measured on a real H100
//! (validation/gpu/: a Llama-3.1-8B-shaped decoder in PyTorch with CUDA graphs, see its README).
//!
//! Why: the roofline's GPU constants come from datasheets and published efficiencies; this is
//! the one place where the project measured GPU steps itself. The test pins the error per
//! regime (decode / prefill / mixed) so that a change to the roofline or the H100 catalog
//! entry that moves it away from the measurement fails here, and prints the table that
//! validation/gpu/README.md quotes.

use servesim::catalog;
use servesim::step_time::{BatchShape, StepTimeConfig};
use std::path::Path;

struct Row {
    shape: BatchShape,
    measured_us: f64,
}

fn load() -> Vec<Row> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("validation/gpu/h100-llama-3.1-8b-torch.csv"),
    )
    .expect("validation/gpu/h100-llama-3.1-8b-torch.csv is committed");
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (pt, ds, ct, du, pc) =
        (col("prefill_tokens"), col("decode_seqs"), col("context_tokens"), col("duration_us"), col("prefill_context"));
    lines
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            let prefill_tokens = f[pt] as u32;
            let prefill_context = f[pc] as u64;
            BatchShape {
                prefill_tokens,
                prefill_seqs: u32::from(prefill_tokens > 0),
                decode_seqs: f[ds] as u32,
                prefill_context,
                decode_context: f[ct] as u64 - prefill_context,
            }
            .pipe(|shape| Row { shape, measured_us: f[du] })
        })
        .collect()
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

#[test]
fn roofline_vs_measured_h100_llama_8b() {
    let rows = load();
    assert_eq!(rows.len(), 40, "every measured shape is in the table");
    let model = catalog::model("llama-3.1-8b").unwrap();
    let gpu = catalog::gpu("h100_sxm").unwrap();
    let roof = StepTimeConfig::default().build(model, gpu, 1, Path::new(".")).unwrap();
    let mut by_regime: [(Vec<f64>, &str); 3] = [(vec![], "decode"), (vec![], "prefill"), (vec![], "mixed")];
    println!("prefill  prefix  decodes  context  measured_ms  roofline_ms  error");
    for r in &rows {
        let pred_us = roof.step_time(&r.shape).as_nanos() as f64 / 1000.0;
        let err = (pred_us - r.measured_us) / r.measured_us;
        let s = &r.shape;
        println!(
            "{:>7}  {:>6}  {:>7}  {:>7}  {:>11.2}  {:>11.2}  {:>+5.1}%",
            s.prefill_tokens,
            s.prefill_context,
            s.decode_seqs,
            s.decode_context,
            r.measured_us / 1000.0,
            pred_us / 1000.0,
            err * 100.0
        );
        let regime = match (s.prefill_tokens > 0, s.decode_seqs > 0) {
            (false, true) => 0,
            (true, false) => 1,
            _ => 2,
        };
        by_regime[regime].0.push(err);
    }
    let mut summary = Vec::new();
    for (errs, name) in &by_regime {
        let abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
        let worst = abs.iter().cloned().fold(0.0, f64::max);
        let signed = median(errs.clone());
        println!(
            "{name}: n={} median |error| {:.1}%, signed median {:+.1}%, worst {:.1}%",
            errs.len(),
            median(abs.clone()) * 100.0,
            signed * 100.0,
            worst * 100.0
        );
        summary.push((median(abs), signed, worst));
    }
    // Pinned to the figures in validation/gpu/README.md (± a margin): the roofline may get
    // better, but a change that makes it worse than this in any regime fails.
    let limits = [(0.12, 0.22), (0.36, 0.55), (0.40, 0.50)];
    for ((med, _, worst), (lim_med, lim_worst)) in summary.iter().zip(limits) {
        assert!(*med <= lim_med, "median |error| {med:.3} > {lim_med}");
        assert!(*worst <= lim_worst, "worst |error| {worst:.3} > {lim_worst}");
    }
}

/// `# part,tokens,context,us,tflops,gbps` comment lines of the measured file.
fn components() -> Vec<(String, u64, u64, f64, f64, f64)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("validation/gpu/h100-llama-3.1-8b-torch.csv"),
    )
    .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with("gemm,") || l.contains("_attention,"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
                f[5].parse().unwrap(),
            )
        })
        .collect()
}

/// The catalog's H100 efficiency constants against the parts measured alone: GEMMs of one
/// Llama-8B layer at prefill sizes (compute-bound) and at decode sizes (weight streaming).
#[test]
fn h100_catalog_efficiencies_match_measured_gemms() {
    let gpu = catalog::gpu("h100_sxm").unwrap();
    let parts = components();
    assert_eq!(parts.iter().filter(|p| p.0 == "gemm").count(), 7);
    let flops_eff: Vec<f64> =
        parts.iter().filter(|p| p.0 == "gemm" && p.1 >= 512).map(|p| p.4 / gpu.bf16_tflops).collect();
    let bw_eff: Vec<f64> =
        parts.iter().filter(|p| p.0 == "gemm" && p.1 <= 32).map(|p| p.5 / gpu.hbm_bandwidth_gbps).collect();
    let (f, b) = (median(flops_eff.clone()), median(bw_eff.clone()));
    println!(
        "GEMM flops efficiency measured {f:.3} (catalog {}), weight-streaming bandwidth efficiency {b:.3} (catalog {})",
        gpu.efficiency.flops, gpu.efficiency.bandwidth
    );
    assert!((f - gpu.efficiency.flops).abs() <= 0.06, "flops efficiency {f:.3} vs catalog {}", gpu.efficiency.flops);
    assert!(
        (b - gpu.efficiency.bandwidth).abs() <= 0.06,
        "bandwidth efficiency {b:.3} vs catalog {}",
        gpu.efficiency.bandwidth
    );
    // Decode attention streams KV at least as efficiently as GEMV streams weights.
    let kv: Vec<f64> = parts.iter().filter(|p| p.0 == "decode_attention" && p.1 >= 32).map(|p| p.5).collect();
    assert!(kv.iter().all(|g| *g / gpu.hbm_bandwidth_gbps >= gpu.efficiency.bandwidth), "{kv:?}");
}

/// The AIConfigurator path end to end: a calibration built only from AIConfigurator's H100
/// kernel tables (vLLM 0.19 GEMMs and all-reduce, ../shared/data/aiconfigurator) against the
/// steps measured on the H100. Prints the per-regime error that validation/gpu/README.md
/// quotes and pins it. Skipped, with a notice, when the shared data is absent.
#[test]
fn aiconfigurator_calibration_vs_measured_h100_llama_8b() {
    let dir = std::env::var_os("SERVESIM_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join("aiconfigurator");
    if !dir.is_dir() {
        eprintln!("SKIPPED aiconfigurator_calibration_vs_measured_h100_llama_8b: {} not found", dir.display());
        return;
    }
    let model = catalog::model("llama-3.1-8b").unwrap();
    let gpu = catalog::gpu("h100_sxm").unwrap();
    let cal = servesim::calibrate::profiles::from_aiconfigurator(&dir, model, gpu, 1, 8192, 256, "aic-h100").unwrap();
    let m = servesim::calibrate::build_model(&cal.step_time, &cal.name, model, gpu, 1, Path::new(".")).unwrap();
    let mut by_regime: [(Vec<f64>, &str); 3] = [(vec![], "decode"), (vec![], "prefill"), (vec![], "mixed")];
    for r in &load() {
        let pred_us = m.step_time(&r.shape).as_nanos() as f64 / 1000.0;
        let s = &r.shape;
        let regime = match (s.prefill_tokens > 0, s.decode_seqs > 0) {
            (false, true) => 0,
            (true, false) => 1,
            _ => 2,
        };
        by_regime[regime].0.push((pred_us - r.measured_us) / r.measured_us);
    }
    let mut meds = Vec::new();
    for (errs, name) in &by_regime {
        let abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
        println!(
            "aiconfigurator {name}: n={} median |error| {:.1}%, signed median {:+.1}%, worst {:.1}%",
            errs.len(),
            median(abs.clone()) * 100.0,
            median(errs.clone()) * 100.0,
            abs.iter().cloned().fold(0.0, f64::max) * 100.0
        );
        meds.push(median(abs));
    }
    // Pinned a little above the measured figures (validation/gpu/README.md).
    for (med, lim) in meds.iter().zip(AIC_LIMITS) {
        assert!(*med <= lim, "median |error| {med:.3} > {lim}");
    }
}

const AIC_LIMITS: [f64; 3] = [0.22, 0.45, 0.36];
