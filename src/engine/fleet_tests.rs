//! Fleet cases with exact timestamps: lifecycle timing, scale to and from zero with gateway
//! buffering, crash accounting with and without client retries, GPU-hours over a day.

use super::super::tests::{VecWorkload, params, req};
use super::*;
use crate::autoscaler::{AutoscalerConfig, AutoscalerCtx, Decision};
use crate::content::ChainArena;
use crate::engine::{EngineParams, RunTotals};
use crate::faults::{CrashAt, RetryPolicy};
use crate::metrics::{Recorder, RequestRecord};
use crate::router::RouterConfig;
use crate::step_time::{Linear, LinearConfig};
use crate::units::NANOS_PER_SEC;
use crate::workload::config::DurationStr;

const S: u64 = NANOS_PER_SEC;

/// Scales to `to` at `at` (evaluated every second, no metric delay).
struct ScaleAt {
    at: SimTime,
    to: u32,
}

impl Autoscaler for ScaleAt {
    fn name(&self) -> &str {
        "scale-at"
    }
    fn next_eval(&self, now: SimTime, _c: u32) -> SimTime {
        SimTime((now.0 / S + 1) * S)
    }
    fn metric_delay(&self) -> SimDuration {
        SimDuration::ZERO
    }
    fn evaluate(&mut self, now: SimTime, v: &ClusterView) -> Decision {
        Decision { desired: if now >= self.at { self.to } else { v.current }, signal: None, reason: "test" }
    }
}

fn life(prov: u64, image: u64, weights: u64, init: u64, graphs: u64) -> Lifecycle {
    Lifecycle {
        node_provisioning: SimDuration(prov * S),
        image_pull: SimDuration(image * S),
        weight_load: SimDuration(weights * S),
        engine_init: SimDuration(init * S),
        graph_capture: SimDuration(graphs * S),
        ..Lifecycle::default()
    }
}

fn run_fleet(
    mut p: EngineParams,
    reqs: Vec<RequestSpec>,
    setup: FleetSetup<'static>,
    router: RouterConfig,
) -> (Vec<RequestRecord>, RunTotals, Recorder) {
    p.tick = SimDuration(S);
    let model = Linear::new(&LinearConfig { base_us: 10_000.0, ..Default::default() });
    let mut rec = Recorder::new();
    let totals = {
        let wl = Box::new(VecWorkload { reqs: reqs.into(), arena: ChainArena::new() });
        let sim =
            Simulation::new(p, wl, router.build(&Default::default()).unwrap(), &model, &mut rec, &RngStreams::new(1))
                .with_fleet(setup);
        sim.run()
    };
    let mut recs = rec.records.clone();
    recs.sort_by_key(|r| r.id);
    (recs, totals, rec)
}

fn fleet_at(rec: &Recorder, t: u64) -> FleetSample {
    *rec.fleet.iter().find(|f| f.time == SimTime(t * S)).expect("a tick at that time")
}

#[test]
fn replica_requested_at_t_is_ready_at_t_plus_phases() {
    // Without node billing every new replica provisions a node: 100 + 20 + 7 + 30 + 11 = 168 s.
    let setup = FleetSetup {
        lifecycle: life(100, 20, 7, 30, 11),
        tp: 1,
        autoscaler: Some(Box::new(ScaleAt { at: SimTime(10 * S), to: 2 })),
        faults: Default::default(),
    };
    let reqs = vec![req(0, 0, 1, 16, 2), req(1, 300_000, 2, 16, 2)];
    let (recs, totals, rec) = run_fleet(params(1, 1000, 16, 2048, 64), reqs, setup, RouterConfig::RoundRobin);
    assert_eq!(totals.fleet.events.len(), 1);
    assert_eq!(totals.fleet.events[0].time, SimTime(10 * S));
    let f = fleet_at(&rec, 177);
    assert_eq!((f.ready, f.starting, f.desired), (1, 1, 2));
    let f = fleet_at(&rec, 178);
    assert_eq!((f.ready, f.starting), (2, 0));
    // Phases as the time series shows them for replica 1.
    let phase_at = |t: u64| {
        let i = rec.ticks.iter().position(|r| r.time == SimTime(t * S) && r.sample.replica.0 == 1).unwrap();
        rec.phases[i]
    };
    assert_eq!(
        [phase_at(109), phase_at(110), phase_at(130), phase_at(137), phase_at(167), phase_at(178)],
        ["provisioning", "image_pull", "weight_load", "engine_init", "graph_capture", "ready"]
    );
    assert_eq!(totals.fleet.starting_gpu_s, 168.0);
    assert!(recs.iter().all(|r| r.outcome == Outcome::Completed));

    // With node billing and a free node the provisioning phase is zero: 68 s.
    let mut l = life(100, 20, 7, 30, 11);
    l.gpus_per_node = Some(8);
    let setup = FleetSetup {
        lifecycle: l,
        tp: 2,
        autoscaler: Some(Box::new(ScaleAt { at: SimTime(10 * S), to: 2 })),
        faults: Default::default(),
    };
    let (_, totals, rec) =
        run_fleet(params(1, 1000, 16, 2048, 64), vec![req(0, 200_000, 1, 16, 2)], setup, RouterConfig::RoundRobin);
    assert_eq!((fleet_at(&rec, 77).ready, fleet_at(&rec, 78).ready), (1, 2));
    assert_eq!(totals.fleet.starting_gpu_s, 2.0 * 68.0);
}

#[test]
fn scale_to_zero_buffers_in_the_gateway_then_serves() {
    let cfg: AutoscalerConfig = serde_saphyr::from_str(
        "kind: keda\npollingInterval: 5\ncooldownPeriod: 300\nminReplicaCount: 0\nmaxReplicaCount: 2\nmetricDelay: 0s\ntriggers:\n- type: prometheus\n  metadata: {query: 'sum(llm_d_epp_flow_control_queue_size)', threshold: '4'}\n",
    )
    .unwrap();
    let setup = FleetSetup {
        lifecycle: life(0, 0, 0, 50, 10),
        tp: 1,
        autoscaler: cfg.build(&AutoscalerCtx::default()).unwrap(),
        faults: Default::default(),
    };
    let reqs = vec![req(0, 1_000, 1, 16, 3), req(1, 1_000_000, 2, 16, 3)];
    let (recs, totals, rec) = run_fleet(params(0, 1000, 16, 2048, 64), reqs, setup, RouterConfig::RoundRobin);
    let ev: Vec<(u64, u32, u32, &str)> =
        totals.fleet.events.iter().map(|e| (e.time.0 / S, e.from, e.to, e.reason.as_str())).collect();
    assert_eq!(ev, [(5, 0, 1, "activation"), (360, 1, 0, "cooldown to zero"), (1000, 0, 1, "activation")]);
    // Held in the gateway until the replica is Ready (5 + 60 s), then served at once.
    assert_eq!(fleet_at(&rec, 30).gateway, 1);
    assert_eq!(recs[0].scheduled, Some(SimTime(65 * S)));
    assert_eq!(recs[0].first_token, Some(SimTime(65 * S + 10_000_000)));
    assert_eq!(recs[1].scheduled, Some(SimTime(1060 * S)));
    assert!(recs.iter().all(|r| r.outcome == Outcome::Completed));
    assert_eq!((fleet_at(&rec, 400).ready, fleet_at(&rec, 400).desired), (0, 0));
    // Billing: two 60 s starts; serving 65 → 360 s and 1060 s → the end (3 steps of 10 ms).
    assert_eq!(totals.fleet.starting_gpu_s, 120.0);
    let end = 1060.0 + 0.03;
    assert!((totals.fleet.serving_gpu_s - (295.0 + (end - 1060.0))).abs() < 1e-9, "{}", totals.fleet.serving_gpu_s);
}

fn crash_run(retry: Option<RetryPolicy>) -> (Vec<RequestRecord>, RunTotals) {
    let faults = FaultsConfig {
        retry,
        events: vec![FaultConfig::Crash(CrashAt { at: DurationStr(SimDuration(S)), replica: 0 })],
    };
    let setup = FleetSetup { lifecycle: life(0, 0, 0, 5, 0), tp: 1, autoscaler: None, faults };
    // 20 requests of 500 output tokens (5 s each at 10 ms/step), round-robin over 2 replicas.
    let reqs: Vec<_> = (0..20).map(|i| req(i, i * 10, i + 1, 32, 500)).collect();
    let (recs, totals, _) = run_fleet(params(2, 10_000, 16, 4096, 64), reqs, setup, RouterConfig::RoundRobin);
    (recs, totals)
}

#[test]
fn a_crash_loses_no_request_from_the_accounting() {
    let count = |recs: &[RequestRecord], o: Outcome| recs.iter().filter(|r| r.outcome == o).count() as u64;
    // Without retries the 10 requests on replica 0 fail at 1 s.
    let (recs, totals) = crash_run(None);
    assert_eq!(recs.len() as u64, totals.submitted);
    assert_eq!((count(&recs, Outcome::Completed), count(&recs, Outcome::Failed)), (10, 10));
    assert!(recs.iter().filter(|r| r.outcome == Outcome::Failed).all(|r| r.replica == Some(ReplicaId(0))));
    assert_eq!(totals.fleet.retried, 0);
    assert_eq!(totals.fleet.events[0].reason, "crash");
    // The replacement (replica 2) starts at 1 s and is Ready at 6 s.
    assert_eq!(totals.fleet.replicas_created, 3);
    // With one retry after 2 s every request completes; the 10 retried ones on replica 1 or 2.
    let (recs, totals) =
        crash_run(Some(RetryPolicy { max_retries: 1, backoff: Some(DurationStr(SimDuration(2 * S))) }));
    let (c, f, r, i) = (
        count(&recs, Outcome::Completed),
        count(&recs, Outcome::Failed),
        count(&recs, Outcome::Rejected),
        count(&recs, Outcome::InFlight),
    );
    assert_eq!((c, f, r, i, totals.fleet.retried), (20, 0, 0, 0, 10));
    assert_eq!(c + f + r + i, totals.submitted);
    // Retried at 3 s, when only replica 1 is routable (replica 2 is Ready at 6 s).
    for x in recs.iter().filter(|x| x.id.0 % 2 == 0) {
        assert_eq!(x.replica, Some(ReplicaId(1)));
        assert!(x.scheduled.unwrap() >= SimTime(3 * S));
    }
}

#[test]
fn gpu_hours_over_a_day_match_hand_computation() {
    // Scheduled: 1 replica, 3 from 08:00 to 18:00; new replicas need 100 s; TP 2.
    let cfg: AutoscalerConfig = serde_saphyr::from_str(
        "kind: scheduled\nreplicas: 1\nschedule: [{start: '08:00', end: '18:00', replicas: 3}]\n",
    )
    .unwrap();
    let mk = |gpn: Option<u32>| {
        let mut l = life(0, 0, 0, 100, 0);
        l.gpus_per_node = gpn;
        FleetSetup {
            lifecycle: l,
            tp: 2,
            autoscaler: cfg.build(&AutoscalerCtx::default()).unwrap(),
            faults: Default::default(),
        }
    };
    // One short request at 23:59 keeps the day going; it ends 10 ms later (one step).
    let reqs = vec![req(0, 86_340_000, 1, 16, 1)];
    let (recs, totals, _) = run_fleet(params(1, 1000, 16, 2048, 64), reqs.clone(), mk(None), RouterConfig::RoundRobin);
    assert_eq!(recs[0].outcome, Outcome::Completed);
    let end = 86_340.01;
    assert_eq!(totals.end, SimTime(86_340_010_000_000));
    let f = &totals.fleet;
    let ev: Vec<(u64, u32, u32)> = f.events.iter().map(|e| (e.time.0 / S, e.from, e.to)).collect();
    assert_eq!(ev, [(28_800, 1, 3), (64_800, 3, 1)]);
    assert_eq!(f.starting_gpu_s, 2.0 * 2.0 * 100.0);
    let serving = 2.0 * end + 2.0 * 2.0 * (64_800.0 - 28_900.0);
    assert!((f.serving_gpu_s - serving).abs() < 1e-6, "{} vs {serving}", f.serving_gpu_s);
    assert_eq!(f.draining_gpu_s, 0.0, "idle replicas stop at once");
    assert_eq!(f.node_gpu_s, None);
    // Node billing: all three replicas fit on one 8-GPU node, billed for the whole day.
    let (_, totals, _) = run_fleet(params(1, 1000, 16, 2048, 64), reqs, mk(Some(8)), RouterConfig::RoundRobin);
    assert!((totals.fleet.node_gpu_s.unwrap() - 8.0 * end).abs() < 1e-6);
}
