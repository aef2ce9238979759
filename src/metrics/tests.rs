use super::*;
use crate::rng::splitmix64;
use crate::scenario::raw::SloFile;
use crate::step_time::BatchShape;
use crate::units::{ReplicaId, RequestId, SimDuration, SimTime};

fn secs(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

#[test]
fn percentile_nearest_rank_hand_computed() {
    assert_eq!(percentile::<f64>(&[], 50.0), None);
    let one = [7.0];
    for p in [0.0, 50.0, 90.0, 99.0, 100.0] {
        assert_eq!(percentile(&one, p), Some(7.0), "n=1 p={p}");
    }
    let ten = secs(&[10.0, 3.0, 1.0, 7.0, 5.0, 2.0, 9.0, 4.0, 8.0, 6.0]);
    assert_eq!(percentile(&ten, 0.0), Some(1.0));
    assert_eq!(percentile(&ten, 10.0), Some(1.0));
    assert_eq!(percentile(&ten, 11.0), Some(2.0));
    assert_eq!(percentile(&ten, 50.0), Some(5.0));
    assert_eq!(percentile(&ten, 90.0), Some(9.0));
    assert_eq!(percentile(&ten, 99.0), Some(10.0));
    assert_eq!(percentile(&ten, 100.0), Some(10.0));
    // Decimal percentiles behave as in exact arithmetic: 99.9% of 1000 is rank 999.
    let thousand: Vec<u32> = (1..=1000).collect();
    assert_eq!(percentile(&thousand, 99.9), Some(999));
    assert_eq!(percentile(&thousand, 99.95), Some(1000));
    let hundred: Vec<u32> = (1..=100).collect();
    assert_eq!(percentile(&hundred, 99.0), Some(99));
    assert_eq!(percentile(&hundred, 29.0), Some(29));
}

/// Seeded draws in `0..m` (splitmix64).
fn below(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |m| {
        state = splitmix64(state);
        state % m
    }
}

#[test]
fn weighted_percentile_equals_expanded_percentile() {
    let mut next = below(42);
    for trial in 0..2000 {
        let len = 1 + next(8) as usize;
        let mut pairs: Vec<(u64, u64)> = (0..len).map(|_| (next(6), next(5))).collect();
        if pairs.iter().all(|p| p.1 == 0) {
            pairs[0].1 = 1;
        }
        pairs.sort_by_key(|p| p.0);
        let expanded: Vec<u64> = pairs.iter().flat_map(|&(v, w)| std::iter::repeat_n(v, w as usize)).collect();
        let random_p = next(100_001) as f64 / 1000.0;
        for p in [0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0, random_p] {
            assert_eq!(
                weighted_percentile(&pairs, p),
                percentile(&expanded, p),
                "trial {trial}: pairs {pairs:?}, p {p}"
            );
        }
    }
    assert_eq!(weighted_percentile::<u64>(&[(3, 0)], 50.0), None);
}

#[test]
fn stats_by_selection_equal_stats_of_the_sorted_values() {
    // Selection must return the very values (bits included) a sort puts at each rank.
    let mut next = below(11);
    for trial in 0..300 {
        let n = 1 + next(if trial % 3 == 0 { 8 } else { 3000 }) as usize;
        let distinct = 1 + next(n as u64 + 1);
        let v: Vec<f64> = (0..n)
            .map(|_| match next(20) {
                0 => -0.0,
                1 => 0.0,
                2 => f64::INFINITY,
                _ => next(distinct) as f64 * 0.001,
            })
            .collect();
        let s = Stats::from_secs(v.clone());
        let sorted = secs(&v);
        let bits = |o: Option<f64>| o.map(f64::to_bits);
        assert_eq!(s.count, n as u64);
        for (got, p) in [(s.p50, 50.0), (s.p90, 90.0), (s.p99, 99.0), (s.max, 100.0)] {
            assert_eq!(bits(got), bits(percentile(&sorted, p)), "trial {trial} n {n} p{p}");
        }
        assert_eq!(bits(s.mean), Some((v.iter().sum::<f64>() / n as f64).to_bits()), "trial {trial}");
    }
    let s = Stats::from_secs(vec![0.4, 0.1, 0.3, 0.2]);
    assert_eq!((s.p50, s.p90, s.p99, s.max), (Some(0.2), Some(0.4), Some(0.4), Some(0.4)));
}

#[test]
fn itl_ranks_by_selection_equal_a_scan_of_the_sorted_pairs() {
    // Every rank of small populations, and the summary's ranks of large ones: narrow and
    // wide duration ranges (one selection bucket or many), one duration only, wide samples,
    // and a sorted part left by compactions.
    let mut next = below(5);
    for trial in 0..400 {
        let mut s =
            if trial % 4 == 0 { ItlSamples::with_limits(1 + next(300) as usize, 64) } else { ItlSamples::new() };
        let n = 1 + next(if trial % 2 == 0 { 40 } else { 20_000 });
        let base = next(1 << 30);
        let span = match trial % 5 {
            0 => 1,
            1 => 1 + next(100),
            2 => 1 + next(1 << 16),
            _ => 1 + next(1 << 26),
        };
        for _ in 0..n {
            let d = if next(500) == 0 { (1 << 40) + next(1 << 20) } else { base + next(span) };
            let w = if next(300) == 0 { (1 << 24) + next(9) } else { 1 + next(5) };
            s.push(d, w);
        }
        let range = s.range().expect("samples");
        let pairs = s.clone().sorted().to_vec();
        let total = pairs.iter().map(|p| p.1).sum::<u64>();
        assert_eq!(range, (pairs[0].0, pairs[pairs.len() - 1].0), "trial {trial}");
        let ranks: Vec<u64> = if total <= 400 {
            (1..=total).collect()
        } else {
            [50.0, 90.0, 99.0, 100.0].iter().map(|&p| summary::nearest_rank(p, total)).collect()
        };
        for r in ranks {
            let mut cum = 0;
            let want = pairs.iter().find(|p| {
                cum += p.1;
                cum >= r
            });
            assert_eq!(Some(s.durations_at_ranks([r])[0]), want.map(|p| p.0), "trial {trial} rank {r}");
        }
        let st = Stats::from_itl(&s);
        assert_eq!(st, Stats::from_weighted_ns(&pairs), "trial {trial}");
        assert_eq!(st.count, total);
    }
    assert_eq!(Stats::from_itl(&ItlSamples::new()), Stats::default());
}

#[test]
fn stats_of_empty_set_are_null() {
    let s = Stats::from_secs(vec![]);
    assert_eq!(s.count, 0);
    assert_eq!(s.p99, None);
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(json, r#"{"mean":null,"p50":null,"p90":null,"p99":null,"max":null,"count":0}"#);
}

#[test]
fn itl_stats_pool_weighted_steps_and_single_gaps() {
    let mut r = Recorder::new();
    let b = BatchShape::default();
    r.on_steps(SimTime(0), ReplicaId(0), &b, &[SimDuration::from_millis(10), SimDuration::from_millis(20)], 3);
    r.on_itl_gap(SimDuration::from_millis(40));
    let st = Stats::from_itl(&r.itl);
    assert_eq!(st, Stats::from_weighted_ns(r.itl.sorted()));
    // Expanded: 10,10,10,20,20,20,40 (ms).
    assert_eq!(st.count, 7);
    assert_eq!(st.p50, Some(0.020));
    assert_eq!(st.p90, Some(0.040));
    assert_eq!(st.max, Some(0.040));
    assert!((st.mean.unwrap() - 0.130 / 7.0).abs() < 1e-15);
}

fn rec(id: u64, outcome: Outcome) -> RequestRecord {
    RequestRecord {
        id: RequestId(id),
        arrival: SimTime::ZERO,
        replica: None,
        input_tokens: 0,
        output_tokens: 0,
        cached_tokens: 0,
        scheduled: None,
        first_token: None,
        last_token: None,
        preemptions: 0,
        outcome,
        session: None,
        group: None,
    }
}

fn ms(t: u64) -> SimTime {
    SimTime(t * 1_000_000)
}

/// Two completed, one rejected, one in flight.
fn handmade_records() -> Vec<RequestRecord> {
    vec![
        RequestRecord {
            arrival: ms(1000),
            replica: Some(ReplicaId(0)),
            input_tokens: 100,
            output_tokens: 11,
            cached_tokens: 40,
            scheduled: Some(ms(1010)),
            first_token: Some(ms(1100)),
            last_token: Some(ms(1600)),
            ..rec(0, Outcome::Completed)
        },
        RequestRecord {
            arrival: ms(2000),
            replica: Some(ReplicaId(1)),
            input_tokens: 300,
            output_tokens: 21,
            cached_tokens: 0,
            scheduled: Some(ms(2000)),
            first_token: Some(ms(2300)),
            last_token: Some(ms(3300)),
            preemptions: 1,
            ..rec(1, Outcome::Completed)
        },
        RequestRecord { arrival: ms(2500), input_tokens: 50_000, output_tokens: 10, ..rec(2, Outcome::Rejected) },
        RequestRecord {
            arrival: ms(9000),
            replica: Some(ReplicaId(1)),
            input_tokens: 200,
            output_tokens: 100,
            cached_tokens: 100,
            scheduled: Some(ms(9100)),
            first_token: Some(ms(9500)),
            ..rec(3, Outcome::InFlight)
        },
    ]
}

fn handmade_meta(slo: SloFile) -> RunMeta {
    RunMeta {
        scenario: "unit".into(),
        seed: 7,
        simulated: SimDuration::from_secs(10),
        replicas: 2,
        tp: 1,
        gpu_count: 2,
        price: PriceInfo { usd_per_gpu_hour: 3.6, provider: "test".into(), observed: Some("2026-01".into()) },
        slo,
    }
}

fn handmade_totals() -> RunTotals {
    RunTotals::from_replicas(vec![
        ReplicaTotals { prefix_queries: 100, prefix_hits: 40, preemptions: 0 },
        ReplicaTotals { prefix_queries: 700, prefix_hits: 160, preemptions: 1 },
    ])
}

#[test]
fn summary_counts_throughput_hit_rate_cost() {
    let mut r = Recorder::from_records(handmade_records());
    let s = Summary::build(&handmade_meta(SloFile::default()), &handmade_totals(), &mut r);
    assert_eq!(
        s.requests,
        RequestCounts { submitted: 4, completed: 2, rejected: 1, failed: 0, in_flight: 1, retried: 0 }
    );
    assert_eq!(s.simulated_seconds, 10.0);
    assert_eq!(s.throughput.requests_per_s, Some(0.2));
    assert_eq!(s.throughput.input_tokens_per_s, Some(40.0));
    assert_eq!(s.throughput.output_tokens_per_s, Some(3.2));
    assert_eq!(s.prefix_hit_rate, Some(0.25));
    assert_eq!(s.preemptions, 1);
    // Completed only: TTFT 0.1 and 0.3; TPOT 0.5/10 and 1.0/20; E2E 0.6 and 1.3; queue 0.01 and 0.
    assert_eq!(s.ttft_s.count, 2);
    assert_eq!(s.ttft_s.p50, Some(0.1));
    assert_eq!(s.ttft_s.p90, Some(0.3));
    assert_eq!(s.tpot_s.p50, Some(0.05));
    assert_eq!(s.e2e_s.max, Some(1.3));
    assert_eq!(s.queue_s.p50, Some(0.0));
    assert!((s.ttft_s.mean.unwrap() - 0.2).abs() < 1e-12);
    assert_eq!(s.itl_s.count, 0);
    // 2 GPUs × 10 s = 1/180 GPU-hours at 3.6 $/h = 0.02 $; 32 output tokens.
    assert!((s.gpu_hours.total - 20.0 / 3600.0).abs() < 1e-15);
    assert!((s.cost_usd - 0.02).abs() < 1e-12);
    assert!((s.cost_per_million_output_tokens.unwrap() - 0.02 / 32e-6).abs() < 1e-9);
    // Per replica.
    assert_eq!(s.per_replica.len(), 2);
    let r1 = &s.per_replica[1];
    assert_eq!((r1.replica, r1.requests, r1.completed, r1.output_tokens, r1.preemptions), (1, 2, 1, 21, 1));
    assert_eq!(r1.prefix_hit_rate, Some(160.0 / 700.0));
    assert_eq!(s.per_replica[0].prefix_hit_rate, Some(0.4));
    assert_eq!(r1.busy_fraction, None);
    assert_eq!(r1.max_waiting, None);
    assert!(s.slo.passed && s.slo.checks.is_empty());
}

#[test]
fn summary_hit_rate_falls_back_to_records_without_engine_counters() {
    let mut r = Recorder::from_records(handmade_records());
    let s = Summary::build(&handmade_meta(SloFile::default()), &RunTotals::default(), &mut r);
    // Scheduled records: 0, 1, 3 → cached 140 / input 600.
    assert_eq!(s.prefix_hit_rate, Some(140.0 / 600.0));
    assert_eq!(s.per_replica[1].prefix_hit_rate, Some(100.0 / 500.0));
}

#[test]
fn summary_uses_steps_and_ticks_per_replica() {
    let mut r = Recorder::from_records(handmade_records());
    let b = BatchShape::default();
    r.on_steps(ms(0), ReplicaId(0), &b, &[SimDuration::from_millis(500); 4], 1);
    let sample = |replica, waiting, kv_usage| ReplicaSample {
        replica: ReplicaId(replica),
        waiting,
        kv_usage,
        ..Default::default()
    };
    r.on_tick(ms(1000), &[sample(0, 3, 0.5), sample(1, 0, 0.0)]);
    r.on_tick(ms(2000), &[sample(0, 1, 0.25), sample(1, 9, 1.0)]);
    let s = Summary::build(&handmade_meta(SloFile::default()), &handmade_totals(), &mut r);
    assert_eq!(s.per_replica[0].busy_fraction, Some(0.2));
    assert_eq!(s.per_replica[1].busy_fraction, Some(0.0));
    assert_eq!(s.per_replica[0].mean_kv_usage, Some(0.375));
    assert_eq!(s.per_replica[0].max_waiting, Some(3));
    assert_eq!(s.per_replica[1].max_waiting, Some(9));
    assert_eq!(s.itl_s.count, 4);
}

#[test]
fn slo_verdict_and_margin() {
    let slo =
        SloFile { ttft_p90_s: Some(0.5), tpot_p99_s: Some(0.04), max_error_rate: Some(0.3), ..Default::default() };
    let mut r = Recorder::from_records(handmade_records());
    let s = Summary::build(&handmade_meta(slo), &handmade_totals(), &mut r);
    let c = &s.slo.checks;
    assert_eq!(c.len(), 3);
    // The verdict's TTFT population includes request 3, still in flight at 0.5 s TTFT (the
    // SLO definition shared with the planner); the descriptive stats cover completed ones only.
    assert_eq!((c[0].metric.as_str(), c[0].target, c[0].actual, c[0].passed), ("ttft_p90_s", 0.5, Some(0.5), true));
    assert_eq!(c[0].margin, Some(0.0));
    assert_eq!(s.ttft_s.p90, Some(0.3));
    assert_eq!((c[1].metric.as_str(), c[1].actual, c[1].passed), ("tpot_p99_s", Some(0.05), false));
    assert!((c[1].margin.unwrap() + 0.01).abs() < 1e-12);
    assert_eq!((c[2].metric.as_str(), c[2].actual, c[2].passed), ("error_rate", Some(0.25), true));
    assert!(!s.slo.passed);

    let pass = evaluate_slo(
        &SloFile { ttft_p90_s: Some(0.5), ..Default::default() },
        &s.ttft_s,
        &s.tpot_s,
        &s.e2e_s,
        Some(0.0),
    );
    assert!(pass.passed);
    // An SLO over an empty population cannot pass.
    let empty = Stats::default();
    let none = evaluate_slo(&SloFile { e2e_p99_s: Some(100.0), ..Default::default() }, &empty, &empty, &empty, None);
    assert!(!none.passed);
    assert_eq!(none.checks[0].margin, None);
}

#[test]
fn tpot_definition() {
    let mut r = RequestRecord {
        first_token: Some(SimTime::from_secs_f64(1.0)),
        last_token: Some(SimTime::from_secs_f64(3.0)),
        output_tokens: 5,
        ..rec(0, Outcome::Completed)
    };
    assert_eq!(r.tpot_s(), Some(0.5));
    r.output_tokens = 2;
    assert_eq!(r.tpot_s(), Some(2.0));
    r.output_tokens = 1;
    assert_eq!(r.tpot_s(), None);
    r.output_tokens = 0;
    assert_eq!(r.tpot_s(), None);
}

fn golden_records() -> Vec<RequestRecord> {
    vec![
        RequestRecord {
            arrival: SimTime(1_500_000_000),
            replica: Some(ReplicaId(0)),
            input_tokens: 100,
            output_tokens: 5,
            cached_tokens: 32,
            scheduled: Some(SimTime(1_510_000_000)),
            first_token: Some(SimTime(1_600_000_000)),
            last_token: Some(SimTime(2_000_000_001)),
            session: Some(7),
            group: Some(2),
            ..rec(0, Outcome::Completed)
        },
        RequestRecord { arrival: SimTime(2), input_tokens: 9000, output_tokens: 10, ..rec(1, Outcome::Rejected) },
    ]
}

#[test]
fn requests_csv_golden() {
    let got = String::from_utf8(render_requests_csv(&golden_records())).unwrap();
    let want = "\
id,arrival_s,replica,input_tokens,output_tokens,cached_tokens,queue_s,scheduled_s,first_token_s,last_token_s,ttft_s,tpot_s,e2e_s,preemptions,outcome,session,group
0,1.500000000,0,100,5,32,0.010000000,1.510000000,1.600000000,2.000000001,0.100000000,0.100000000,0.500000001,0,completed,7,2
1,0.000000002,,9000,10,0,,,,,,,,0,rejected,,
";
    assert_eq!(got, want);
}

#[test]
fn requests_csv_round_trips() {
    let mut records = golden_records();
    records.extend(handmade_records());
    let mut state = 9u64;
    let mut next = || {
        state = splitmix64(state);
        state
    };
    for id in 100..300u64 {
        let arrival = SimTime(next() % 10_000_000_000_000);
        let opt_t = |x: u64, base: SimTime| {
            if x.is_multiple_of(3) { None } else { Some(base + SimDuration(x % 5_000_000_000)) }
        };
        let outcome =
            [Outcome::Completed, Outcome::Rejected, Outcome::Failed, Outcome::InFlight][(next() % 4) as usize];
        records.push(RequestRecord {
            id: RequestId(id),
            arrival,
            replica: if next() % 4 == 0 { None } else { Some(ReplicaId((next() % 16) as u32)) },
            input_tokens: (next() % 100_000) as u32,
            output_tokens: (next() % 4000) as u32,
            cached_tokens: (next() % 1000) as u32,
            scheduled: opt_t(next(), arrival),
            first_token: opt_t(next(), arrival),
            last_token: opt_t(next(), arrival),
            preemptions: (next() % 3) as u32,
            outcome,
            session: if next() % 2 == 0 { None } else { Some(next()) },
            group: if next() % 2 == 0 { None } else { Some(next() as u32) },
        });
    }
    let bytes = render_requests_csv(&records);
    assert_eq!(parse_requests_csv(&bytes).unwrap(), records);
}

#[test]
fn requests_csv_reader_accepts_reordered_minimal_columns_and_reports_errors() {
    let csv = "outcome,arrival_s,output_tokens,input_tokens,id,first_token_s\n\
               completed,1.25,3,10,5,1.5000000004\n\
               failed,2,1,1,6,\n";
    let recs = parse_requests_csv(csv.as_bytes()).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].arrival, SimTime(1_250_000_000));
    assert_eq!(recs[0].first_token, Some(SimTime(1_500_000_000)));
    assert_eq!(recs[1].arrival, SimTime(2_000_000_000));
    assert_eq!(recs[1].outcome, Outcome::Failed);
    assert_eq!(recs[1].replica, None);

    let unknown = parse_requests_csv(b"id,arrival_s,input_tokens,output_tokens,outcome,ttft\n").unwrap_err();
    assert!(matches!(unknown, RecordError::UnknownColumn(ref c) if c == "ttft"), "{unknown}");
    let missing = parse_requests_csv(b"id,arrival_s,input_tokens,outcome\n").unwrap_err();
    assert!(matches!(missing, RecordError::MissingColumn("output_tokens")), "{missing}");
    let bad = parse_requests_csv(b"id,arrival_s,input_tokens,output_tokens,outcome\n1,0.5,3,4,done\n").unwrap_err();
    assert_eq!(
        bad.to_string(),
        "requests CSV line 2, column `outcome`: invalid value `done`: expected completed, rejected, failed or in_flight"
    );
    let neg = parse_requests_csv(b"id,arrival_s,input_tokens,output_tokens,outcome\n1,-1,3,4,failed\n").unwrap_err();
    assert!(matches!(neg, RecordError::Field { column: "arrival_s", .. }), "{neg}");
}

#[test]
fn timeseries_csv_golden_with_deltas() {
    let s1 = ReplicaSample {
        replica: ReplicaId(0),
        running: 2,
        waiting: 1,
        kv_usage: 0.5,
        cached_blocks: 10,
        num_gpu_blocks: 100,
        prefix_queries: 100,
        prefix_hits: 25,
        prompt_tokens: 1000,
        generation_tokens: 50,
        preemptions: 0,
        steps: 20,
    };
    let s2 = ReplicaSample {
        running: 3,
        waiting: 0,
        kv_usage: 0.75,
        cached_blocks: 12,
        generation_tokens: 150,
        preemptions: 1,
        ..s1
    };
    let other = ReplicaSample { replica: ReplicaId(1), prefix_queries: 8, prefix_hits: 8, ..Default::default() };
    let mut r = Recorder::new();
    r.on_tick(SimTime::from_secs_f64(1.0), &[s1, other]);
    r.on_tick(SimTime::from_secs_f64(2.0), &[s2, other]);
    let got = String::from_utf8(render_timeseries_csv(&r.ticks)).unwrap();
    let want = "\
time_s,replica,running,waiting,kv_usage,cached_blocks,prefix_hit_rate,prompt_tokens_per_s,generation_tokens_per_s,preemptions
1.000000000,0,2,1,0.5,10,0.25,1000.0,50.0,0
1.000000000,1,0,0,0.0,0,1.0,0.0,0.0,0
2.000000000,0,3,0,0.75,12,,0.0,100.0,1
2.000000000,1,0,0,0.0,0,,0.0,0.0,0
";
    assert_eq!(got, want);
}

#[test]
fn summary_json_shape_and_text() {
    let slo = SloFile { ttft_p90_s: Some(0.5), ..Default::default() };
    let mut r = Recorder::from_records(handmade_records());
    let s = Summary::build(&handmade_meta(slo), &handmade_totals(), &mut r);
    let json = String::from_utf8(render_summary_json(&s)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["servesim_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["itl_s"]["p50"], serde_json::Value::Null);
    assert_eq!(v["slo"]["checks"][0]["metric"], "ttft_p90_s");
    // Stable top-level field order.
    let order = [
        "\"scenario\"",
        "\"seed\"",
        "\"servesim_version\"",
        "\"simulated_seconds\"",
        "\"requests\"",
        "\"ttft_s\"",
        "\"tpot_s\"",
        "\"itl_s\"",
        "\"e2e_s\"",
        "\"queue_s\"",
        "\"throughput\"",
        "\"prefix_hit_rate\"",
        "\"preemptions\"",
        "\"per_replica\"",
        "\"gpu_hours\"",
        "\"cost_usd\"",
        "\"cost_per_million_output_tokens\"",
        "\"price\"",
        "\"slo\"",
    ];
    let pos: Vec<usize> = order.iter().map(|k| json.find(k).unwrap_or_else(|| panic!("{k} missing"))).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{json}");
    let back: Summary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);

    let text = render_text(&s);
    assert!(text.contains("requests      4 submitted, 2 completed, 1 rejected, 0 failed, 1 in flight"), "{text}");
    assert!(text.contains("  TTFT             100.0      300.0      300.0      200.0"), "{text}");
    assert!(text.contains("prefix hit    25.0%"), "{text}");
    assert!(text.contains("SLO           PASS"), "{text}");
    assert!(text.contains("ttft_p90_s"), "{text}");
}

#[test]
fn write_outputs_creates_files_atomically() {
    let dir = std::env::temp_dir().join(format!("servesim-metrics-test-{}", std::process::id())).join("out");
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = Recorder::from_records(handmade_records());
    let s = Summary::build(&handmade_meta(SloFile::default()), &handmade_totals(), &mut r);
    write_outputs(&dir, &s, Some(&r.records), Some(b"time_s\n")).unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["requests.csv", "summary.json", "timeseries.csv"]);
    assert_eq!(std::fs::read(dir.join("requests.csv")).unwrap(), render_requests_csv(&r.records));
    assert_eq!(std::fs::read(dir.join("timeseries.csv")).unwrap(), b"time_s\n");
    // A path under a regular file cannot be created: the error names it.
    let err = write_outputs(&dir.join("summary.json").join("x"), &s, None, None).unwrap_err();
    assert!(err.to_string().contains("summary.json/x"), "{err}");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn requests_csv_renders_many_rows_like_one() {
    // 100k rows render as the header plus each row rendered alone (the writer's speed is
    // measured by `cargo bench`, not here).
    let base = golden_records();
    let records: Vec<RequestRecord> =
        (0..100_000u64).map(|i| RequestRecord { id: RequestId(i), ..base[(i % 2) as usize].clone() }).collect();
    let all = String::from_utf8(render_requests_csv(&records)).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 100_001);
    for i in [0usize, 1, 54_321, 99_999] {
        let one = String::from_utf8(render_requests_csv(&records[i..=i])).unwrap();
        let mut it = one.lines();
        assert_eq!(it.next(), Some(lines[0]), "header");
        assert_eq!(it.next(), Some(lines[i + 1]), "row {i}");
        assert!(lines[i + 1].starts_with(&format!("{i},")), "{}", lines[i + 1]);
    }
}

/// Dense ids are placed by index, anything else is stably sorted; both equal a stable sort.
#[test]
fn sort_by_id_equals_a_stable_sort() {
    let mut x = 7u64;
    let mut next = |m: u64| {
        x = splitmix64(x);
        x % m
    };
    for case in 0..4 {
        let n = 2000u64;
        let mut v: Vec<RequestRecord> = (0..n).map(|i| rec(100 + i, Outcome::Completed)).collect();
        // Nearly in order (completion order), as a simulation produces them.
        for i in 0..n as usize {
            let j = (i + next(40) as usize).min(n as usize - 1);
            v.swap(i, j);
        }
        match case {
            1 => v.truncate(1500), // a gap: not dense
            2 => {
                // Duplicate ids told apart by their input tokens: the order must be stable.
                for (k, r) in v.iter_mut().enumerate() {
                    r.input_tokens = k as u32;
                    if r.id.0 % 3 == 0 {
                        r.id = RequestId(r.id.0 + 1);
                    }
                }
            }
            3 => v.reverse(),
            _ => {}
        }
        let mut want = v.clone();
        want.sort_by_key(|r| r.id);
        crate::metrics::record::sort_by_id(&mut v);
        assert_eq!(v, want, "case {case}");
        assert!(v.windows(2).all(|w| w[0].id <= w[1].id));
    }
    let mut empty: Vec<RequestRecord> = vec![];
    crate::metrics::record::sort_by_id(&mut empty);
}
