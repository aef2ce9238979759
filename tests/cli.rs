//! The binary's contract: outputs, determinism, exit codes (0 ok, 1 SLO failed, 2 error).

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_servesim"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("servesim-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn run_is_byte_identical_for_the_same_seed_and_differs_for_another() {
    let (a, b, c) = (tmp("a"), tmp("b"), tmp("c"));
    for (dir, seed) in [(&a, "7"), (&b, "7"), (&c, "8")] {
        let out = bin().args(["run", "scenarios/minimal.yaml", "--seed", seed, "--out"]).arg(dir).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    for f in ["summary.json", "requests.csv", "timeseries.csv"] {
        let x = std::fs::read(a.join(f)).unwrap();
        assert!(!x.is_empty(), "{f} is empty");
        assert_eq!(x, std::fs::read(b.join(f)).unwrap(), "{f} differs between two runs with one seed");
    }
    assert_ne!(std::fs::read(a.join("requests.csv")).unwrap(), std::fs::read(c.join("requests.csv")).unwrap());
    let header = std::fs::read_to_string(a.join("requests.csv")).unwrap();
    assert!(header.starts_with("id,arrival_s,replica,input_tokens,output_tokens,cached_tokens,queue_s,"));
}

#[test]
fn a_failed_slo_exits_1_and_still_writes_outputs() {
    let d = tmp("slo");
    let out = bin()
        .args(["run", "scenarios/minimal.yaml", "--set", "slo.ttft_p90_s=0.000001", "--out"])
        .arg(&d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(d.join("summary.json").exists());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("FAIL"), "{s}");
}

#[test]
fn bad_input_exits_2_names_the_key_and_never_panics() {
    let d = tmp("bad");
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("bad.yaml");
    std::fs::write(&f, "seed: 1\nrepliaces: 3\n").unwrap();
    let out = bin().arg("run").arg(&f).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("repliaces") && err.contains("bad.yaml"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let out = bin().args(["run", "does/not/exist.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().args(["run", "scenarios/minimal.yaml", "--set", "replicas=0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("replicas"));
}

#[test]
fn validate_scenario_and_schema() {
    let out = bin().args(["validate-scenario", "scenarios/coding-assistant.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bin().arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["properties"]["replicas"].is_object());
    for f in ["scenarios/minimal.yaml", "scenarios/chat.yaml"] {
        let out = bin().args(["validate-scenario", f]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{f}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// `live --compare-sim --speed-probe` against the in-process mock (5 ms to the first token,
/// then 1 ms per token): both probes complete their 16-request burst, the applied factor is
/// the geometric mean of the two, and the client-side queue time is not compared.
#[test]
fn live_compare_sim_with_speed_probes() {
    let d = tmp("probe");
    let out = bin()
        .args(["live", "scenarios/minimal.yaml", "--mock", "--model", "m", "--duration", "2s", "--quiet"])
        .args(["--compare-sim", "--speed-probe", "--out"])
        .arg(&d)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("speed probe (burst mean E2E): before real"), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("speed-probe.json")).unwrap()).unwrap();
    let (b, a) = (&v["before"], &v["after"]);
    for p in [b, a] {
        assert_eq!((p["requests"].as_u64(), p["completed"].as_u64()), (Some(16), Some(16)), "{v}");
        assert_eq!((p["prompt_tokens"].as_u64(), p["output_tokens"].as_u64()), (Some(256), Some(32)));
        // 5 ms + 31 gaps of 1 ms at the mock, plus the client's and the loopback's overhead.
        let real = p["real_e2e_mean_s"].as_f64().unwrap();
        assert!((0.036..0.5).contains(&real), "real burst E2E {real}");
        let f = p["factor"].as_f64().unwrap();
        assert!((f - real / p["sim_e2e_mean_s"].as_f64().unwrap()).abs() < 1e-12);
    }
    // Fixed lengths and unique prompts: the two simulated bursts take the same time.
    assert_eq!(b["sim_e2e_mean_s"], a["sim_e2e_mean_s"]);
    let (fb, fa) = (b["factor"].as_f64().unwrap(), a["factor"].as_f64().unwrap());
    assert!((v["factor"].as_f64().unwrap() - (fb * fa).sqrt()).abs() < 1e-12);
    assert!((v["drift"].as_f64().unwrap() - (fa / fb - 1.0)).abs() < 1e-12);
    // The scaled calibration file the second simulation used.
    let cal = std::fs::read_to_string(d.join("speed-calibration.yaml")).unwrap();
    assert!(cal.contains("kind: scaled") && cal.contains(&format!("factor: {}", v["factor"])), "{cal}");
    for f in ["comparison.json", "comparison-speed-probed.json"] {
        let c = std::fs::read_to_string(d.join(f)).unwrap();
        assert!(c.contains("\"ttft_p90\"") && !c.contains("\"queue_"), "{f}: {c}");
    }
    assert!(std::fs::read_to_string(d.join("validation.html")).unwrap().contains("speed-probed"));
}
