use super::*;
use std::path::Path;

#[test]
fn recovers_known_coefficients_from_a_step_trace() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/servesim/steps.csv");
    let rows = crate::trace::formats::steps_csv(&p).unwrap();
    let cal = fit_steps("t", &[("ex".into(), rows.clone())], &[("ex2".into(), rows)], "test".into()).unwrap();
    let CalibratedModel::Parametric(c) = &cal.step_time else { panic!() };
    // traces/servesim/steps.csv was generated from 1000 µs + 10 µs/prefill token
    // + 50 µs/decode seq + 2 ns/context token.
    assert!((c.base_us - 1000.0).abs() < 1e-6, "{c:?}");
    assert!((c.per_prefill_token_us - 10.0).abs() < 1e-8, "{c:?}");
    assert!((c.per_decode_seq_us - 50.0).abs() < 1e-7, "{c:?}");
    assert!((c.per_context_token_ns - 2.0).abs() < 1e-6, "{c:?}");
    assert!(c.per_prefill_attention_ns.abs() < 1e-9, "{c:?}");
    let q = cal.fit.unwrap();
    assert_eq!((q.rows, q.test_rows), (12, Some(12)));
    assert!(q.mape_pct < 1e-6 && q.test_mape_pct.unwrap() < 1e-6);
}

#[test]
fn parametric_model_predicts_in_ns_and_round_trips_yaml() {
    let c = Coefficients {
        base_us: 1000.0,
        per_prefill_token_us: 10.0,
        per_decode_seq_us: 50.0,
        per_context_token_ns: 2.0,
        per_prefill_attention_ns: 1.0,
    };
    let m = Parametric::new(c.clone());
    let b = BatchShape {
        prefill_tokens: 100,
        prefill_seqs: 1,
        decode_seqs: 4,
        prefill_context: 1000,
        decode_context: 3000,
    };
    // 1000 + 1000 + 200 + 8 + 5 (100²/2 · 1 ns) µs
    assert_eq!(m.step_time(&b).as_nanos(), 2_213_000);
    let cal = CalibrationFile {
        name: "x".into(),
        provenance: "p".into(),
        model: None,
        hardware: None,
        fitted_on: vec!["a".into()],
        held_out: vec![],
        step_time: CalibratedModel::Parametric(c),
        fit: None,
    };
    let back: CalibrationFile = serde_saphyr::from_str(&cal.to_yaml()).unwrap();
    assert_eq!(back, cal);
}

#[test]
fn nnls_keeps_coefficients_non_negative() {
    // y decreases with x1: the unconstrained slope is negative, NNLS pins it at 0.
    let x: Vec<[f64; NF]> = (1..=6).map(|i| [1.0, i as f64, 0.0, 0.0, 0.0]).collect();
    let y: Vec<f64> = (1..=6).map(|i| 100.0 - i as f64).collect();
    let c = nnls_relative(&x, &y).unwrap();
    assert!(c.iter().all(|&v| v >= 0.0));
    assert_eq!(c[1], 0.0);
}

#[test]
fn shipped_calibrations_load_and_bad_refs_explain() {
    for (n, _) in BUILTIN {
        let (cal, _) = load_ref(&CalibrationRef { name: Some(n.to_string()), file: None }, Path::new(".")).unwrap();
        assert_eq!(&cal.name, n);
        assert!(!cal.provenance.is_empty() && !cal.fitted_on.is_empty(), "{n}: provenance and fit data are stated");
    }
    let e =
        load_ref(&CalibrationRef { name: Some("nope".into()), file: None }, Path::new(".")).unwrap_err().to_string();
    assert!(e.contains("no shipped calibration `nope`") && e.contains("tiny-llama-cpu"), "{e}");
    let e = load_ref(&CalibrationRef::default(), Path::new(".")).unwrap_err().to_string();
    assert!(e.contains("exactly one"), "{e}");
}
