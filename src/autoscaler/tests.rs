//! Hand-computed controller cases: HPA proposals (tolerance band, unready and missing pods,
//! max over metrics), behavior (stabilization windows, rate policies), KEDA activation and
//! cooldown, schedules, and the WVA analyzer.

use super::hpa::{HpaCore, Metric, PolicyType, Rules, ScalingPolicy, SelectPolicy, resolve_behavior};
use super::*;
use crate::units::NANOS_PER_SEC;

fn secs(s: u64) -> SimTime {
    SimTime(s * NANOS_PER_SEC)
}

fn ready(waiting: f64) -> PodState {
    PodState::Ready(Some(PodMetrics { waiting, running: 0.0, kv_usage: 0.0 }))
}

fn core(metrics: Vec<Metric>, min: u32, max: u32) -> HpaCore {
    let (up, down) = resolve_behavior(None).unwrap();
    HpaCore::new(min, max, metrics, up, down, 0.1)
}

const WAITING4: Metric = Metric::Pods { signal: Signal::Waiting, target: 4.0 };

fn view(current: u32, pods: Vec<PodState>) -> ClusterView {
    ClusterView { current, pods, signals: PoolSignals::default() }
}

#[test]
fn hpa_pods_metric_ratio_and_tolerance_band() {
    let c = core(vec![WAITING4], 1, 20);
    // avg 8 / 4 = 2 → ceil(2 × 3) = 6.
    assert_eq!(c.proposal(&WAITING4, &view(3, vec![ready(10.0), ready(6.0), ready(8.0)])), 6);
    // avg 4.3 / 4 = 1.075: inside the 10 % band → unchanged.
    assert_eq!(c.proposal(&WAITING4, &view(3, vec![ready(4.3), ready(4.3), ready(4.3)])), 3);
    // avg 4.5 / 4 = 1.125: outside → ceil(3.375) = 4.
    assert_eq!(c.proposal(&WAITING4, &view(3, vec![ready(4.5), ready(4.5), ready(4.5)])), 4);
    // avg 3.7 / 4 = 0.925: inside → unchanged; avg 2 / 4 = 0.5 → ceil(1.5) = 2.
    assert_eq!(c.proposal(&WAITING4, &view(3, vec![ready(3.7), ready(3.7), ready(3.7)])), 3);
    assert_eq!(c.proposal(&WAITING4, &view(3, vec![ready(2.0), ready(2.0), ready(2.0)])), 2);
}

#[test]
fn hpa_unready_and_missing_pods_are_conservative() {
    let c = core(vec![WAITING4], 1, 20);
    // Ready [6, 6] → ratio 1.5 would give 3; a pending pod counts as 0 on scale-up:
    // [6, 6, 0] → ratio 1.0, inside the band → current (3).
    assert_eq!(c.proposal(&WAITING4, &view(3, vec![ready(6.0), ready(6.0), PodState::Pending])), 3);
    // Ready [12, 12] + pending: [12, 12, 0] → 24/3/4 = 2 → ceil(2 × 3) = 6.
    assert_eq!(c.proposal(&WAITING4, &view(3, vec![ready(12.0), ready(12.0), PodState::Pending])), 6);
    // Scale-down with a missing pod (loading weights): it counts as at target.
    // [1, 1, 4] → 6/3/4 = 0.5 → ceil(1.5) = 2.
    assert_eq!(c.proposal(&WAITING4, &view(3, vec![ready(1.0), ready(1.0), PodState::Starting])), 2);
    // Scale-up with a missing pod: it counts as 0. [8, 8, 0] → 16/3/4 = 1.333 → ceil(4) = 4.
    assert_eq!(c.proposal(&WAITING4, &view(3, vec![ready(8.0), ready(8.0), PodState::Starting])), 4);
    // A pending pod does not block scale-down: [1, 1] → 0.25 → ceil(0.5) = 1.
    assert_eq!(c.proposal(&WAITING4, &view(3, vec![ready(1.0), ready(1.0), PodState::Pending])), 1);
}

#[test]
fn hpa_external_metrics_and_max_over_metrics() {
    let queue = Metric::ExternalAverage { signal: Signal::EppQueue, target: 10.0, mean: false };
    let c = core(vec![WAITING4, queue], 1, 20);
    let mut v = view(3, vec![ready(5.0), ready(5.0), ready(5.0)]);
    // 34 / (10 × 3) = 1.133 → ceil(34 / 10) = 4; 32 → 1.067, inside → status (3).
    v.signals.epp_queue = 34.0;
    assert_eq!(c.proposal(&queue, &v), 4);
    v.signals.epp_queue = 32.0;
    assert_eq!(c.proposal(&queue, &v), 3);
    // Pods metric: 5/4 = 1.25 → ceil(3.75) = 4; External: 55 → ceil(5.5) = 6. Max wins.
    v.signals.epp_queue = 55.0;
    assert_eq!(c.proposal(&WAITING4, &v), 4);
    let mut c = c;
    assert_eq!(c.reconcile(secs(0), &v, 0).0, 6);
    // External `Value`: ratio × ready pods.
    let val = Metric::ExternalValue { signal: Signal::EppRunning, target: 20.0, mean: false };
    v.signals.epp_running = 50.0;
    assert_eq!(c.proposal(&val, &v), 8); // 2.5 × 3 = 7.5 → 8
}

#[test]
fn hpa_scale_down_stabilization_window() {
    let mut c = core(vec![WAITING4], 1, 50);
    assert_eq!(c.normalize(secs(0), 4, 6).0, 6);
    // 15 s later the metrics want 2, but the 300 s window still holds the 6.
    assert_eq!(c.normalize(secs(15), 6, 2), (6, "stabilization window"));
    assert_eq!(c.normalize(secs(299), 6, 3).0, 6);
    // At 300 s the t=0 recommendation leaves the window (strictly after now − 300 s):
    // the highest left is 3 (t=299) → 3.
    assert_eq!(c.normalize(secs(300), 6, 3).0, 3);
    // Scale-down window with no stabilization: immediate.
    let (up, mut down) = resolve_behavior(None).unwrap();
    down.window = SimDuration::ZERO;
    let mut c = HpaCore::new(1, 50, vec![WAITING4], up, down, 0.1);
    assert_eq!(c.normalize(secs(0), 6, 2).0, 2);
}

#[test]
fn hpa_scale_up_policies_limit_the_rate() {
    let mut c = core(vec![WAITING4], 1, 50);
    // Defaults: max(current + 4, current × 2) per 15 s. From 2: max(6, 4) = 6.
    assert_eq!(c.normalize(secs(100), 2, 20), (6, "scaleUp policy"));
    // 5 s later the period still holds the +4: start = 6 − 4 = 2 → limit 6.
    assert_eq!(c.normalize(secs(105), 6, 20).0, 6);
    // 15 s after the event it left the period: start 6 → max(10, 12) = 12.
    assert_eq!(c.normalize(secs(115), 6, 20).0, 12);
    // maxReplicas caps.
    assert_eq!(c.normalize(secs(130), 12, 80), (24, "scaleUp policy"));
    assert_eq!(c.normalize(secs(145), 24, 80), (48, "scaleUp policy"));
    assert_eq!(c.normalize(secs(160), 48, 80), (50, "maxReplicas"));
    // A Pods-only policy with selectPolicy Min and a 60 s period.
    let rules = Rules {
        window: SimDuration::ZERO,
        select: SelectPolicy::Min,
        policies: vec![
            ScalingPolicy { kind: PolicyType::Pods, value: 2, period_seconds: 60 },
            ScalingPolicy { kind: PolicyType::Percent, value: 50, period_seconds: 60 },
        ],
    };
    let (_, down) = resolve_behavior(None).unwrap();
    let mut c = HpaCore::new(1, 50, vec![WAITING4], rules, down, 0.1);
    // min(10 + 2, ceil(10 × 1.5) = 15) = 12.
    assert_eq!(c.normalize(secs(0), 10, 30).0, 12);
    assert_eq!(c.normalize(secs(30), 12, 30).0, 12); // period start 10 → 12 already used
    assert_eq!(c.normalize(secs(60), 12, 30).0, 14);
}

#[test]
fn hpa_scale_down_percent_policy_truncates() {
    let b = BehaviorConfig {
        scale_up: None,
        scale_down: Some(ScalingRules {
            stabilization_window_seconds: Some(0),
            select_policy: None,
            policies: Some(vec![ScalingPolicy { kind: PolicyType::Percent, value: 30, period_seconds: 60 }]),
        }),
    };
    let (up, down) = resolve_behavior(Some(&b)).unwrap();
    let mut c = HpaCore::new(1, 50, vec![WAITING4], up, down, 0.1);
    // 10 × (1 − 0.3) = 7.
    assert_eq!(c.normalize(secs(0), 10, 1), (7, "scaleDown policy"));
    // Within the period the start is still 10 → 7 again: no further step.
    assert_eq!(c.normalize(secs(30), 7, 1).0, 7);
    // After it: 7 × 0.7 = 4.9 → 4.
    assert_eq!(c.normalize(secs(60), 7, 1).0, 4);
}

#[test]
fn hpa_bounds_and_disabled_at_zero() {
    let mut c = core(vec![WAITING4], 2, 5);
    let v = view(0, vec![]);
    assert_eq!(c.reconcile(secs(0), &v, 0).0, 0, "spec.replicas 0 with minReplicas > 0 disables scaling");
    let v = view(7, vec![ready(0.0); 7]);
    assert_eq!(c.reconcile(secs(15), &v, 0).0, 5);
    let v = view(1, vec![ready(0.0)]);
    assert_eq!(c.reconcile(secs(30), &v, 0).0, 2);
}

fn keda_cfg(yaml: &str) -> KedaConfig {
    serde_saphyr::from_str(yaml).unwrap()
}

#[test]
fn keda_activates_from_zero_and_cools_down() {
    let c = keda_cfg(
        "pollingInterval: 5\ncooldownPeriod: 60\nminReplicaCount: 0\nmaxReplicaCount: 4\ntriggers:\n- type: prometheus\n  metadata: {query: 'sum(llm_d_epp_flow_control_queue_size)', threshold: '2', activationThreshold: '0'}\n",
    );
    let mut k = keda::Keda::new(&c, &AutoscalerCtx::default()).unwrap();
    assert_eq!(k.next_eval(SimTime::ZERO, 0), secs(5));
    let mut v = view(0, vec![]);
    assert_eq!(k.evaluate(secs(5), &v).desired, 0, "nothing queued: stays at zero");
    v.signals.epp_queue = 1.0;
    let d = k.evaluate(secs(10), &v);
    assert_eq!((d.desired, d.reason), (1, "activation"));
    // Active at 10 s; idle from then on: no scale to zero before 10 + 60 s.
    let mut v = view(1, vec![ready(0.0)]);
    v.signals.epp_queue = 0.0;
    assert_eq!(k.evaluate(secs(15), &v).desired, 1);
    assert_eq!(k.evaluate(secs(65), &v).desired, 1);
    let d = k.evaluate(secs(70), &v);
    assert_eq!((d.desired, d.reason), (0, "cooldown to zero"));
    // The HPA part: queue 9 over 1 replica, target 2 per replica → ceil(4.5) = 5, capped at 4
    // (and by the scale-up policy: max(1 + 4, 2) = 5).
    let mut v = view(1, vec![ready(0.0)]);
    v.signals.epp_queue = 9.0;
    let mut k = keda::Keda::new(&c, &AutoscalerCtx::default()).unwrap();
    assert_eq!(k.evaluate(secs(15), &v).desired, 4);
}

#[test]
fn keda_cron_trigger_and_schedule() {
    let c = keda_cfg(
        "minReplicaCount: 1\nmaxReplicaCount: 10\ntriggers:\n- type: cron\n  metadata: {timezone: UTC, start: '0 8 * * *', end: '0 18 * * *', desiredReplicas: '6'}\n",
    );
    let mut k = keda::Keda::new(&c, &AutoscalerCtx { start_hour: 7.0 }).unwrap();
    let v = view(1, vec![ready(0.0)]);
    // 07:00 + 15 s: outside the window.
    assert_eq!(k.evaluate(secs(15), &v).desired, 1);
    // 08:00:15: inside → 6 (scale-up policy allows max(1 + 4, 2) = 5 first).
    assert_eq!(k.evaluate(secs(3615), &v).desired, 5);

    let s: ScheduledConfig =
        serde_saphyr::from_str("replicas: 2\nschedule: [{start: '08:00', end: '18:00', replicas: 8}, {start: '22:00', end: '02:00', replicas: 3}]\nstartHour: 7\n").unwrap();
    let sch = scheduled::Scheduled::new(&s, &AutoscalerCtx::default()).unwrap();
    assert_eq!(sch.desired_at(secs(0)), 2);
    assert_eq!(sch.desired_at(secs(3599)), 2);
    assert_eq!(sch.desired_at(secs(3600)), 8);
    assert_eq!(sch.desired_at(secs(11 * 3600 - 1)), 8);
    assert_eq!(sch.desired_at(secs(11 * 3600)), 2);
    assert_eq!(sch.desired_at(secs(16 * 3600)), 3); // 23:00, wrapping window
    assert_eq!(sch.desired_at(secs(19 * 3600)), 2); // 02:00
    assert_eq!(sch.next_eval(secs(0), 2), secs(60));
    assert!(scheduled::parse_cron("0 8 * * 1-5").is_err());
    assert_eq!(scheduled::parse_cron("30 9 * * *"), Ok(9 * 3600 + 1800));
}

#[test]
fn wva_saturation_analyzer() {
    let w = wva::Wva::new(&WvaConfig::default()).unwrap();
    let kv = |kv: f64, q: f64| PodState::Ready(Some(PodMetrics { waiting: q, running: 0.0, kv_usage: kv }));
    // Spare KV (0.8 − 0.75 = 0.05) under 0.1 → +1.
    assert_eq!(w.analyze(&view(2, vec![kv(0.75, 0.0), kv(0.75, 0.0)])).0, 3);
    // Spare queue (5 − 3 = 2) under 3 → +1.
    assert_eq!(w.analyze(&view(2, vec![kv(0.2, 3.0), kv(0.2, 3.0)])).0, 3);
    // Light load on 3: 0.2 × 3/2 = 0.3 ≤ 0.7 and 0 queue → −1.
    assert_eq!(w.analyze(&view(3, vec![kv(0.2, 0.0), kv(0.2, 0.0), kv(0.2, 0.0)])).0, 2);
    // 0.5 × 3/2 = 0.75 > 0.7 → stay.
    assert_eq!(w.analyze(&view(3, vec![kv(0.5, 0.0), kv(0.5, 0.0), kv(0.5, 0.0)])).0, 3);
    // A starting replica freezes the analyzer.
    assert_eq!(w.analyze(&view(3, vec![kv(0.9, 9.0), kv(0.9, 9.0), PodState::Starting])).0, 3);
}

#[test]
fn queries_and_quantities_parse() {
    assert_eq!(Query::parse("sum(llm_d_epp_flow_control_queue_size{pool=\"x\"})").unwrap().signal, Signal::EppQueue);
    assert!(Query::parse("avg(vllm:kv_cache_usage_perc)").unwrap().mean);
    assert!(Query::parse("rate(foo[1m])").is_err());
    assert_eq!(Quantity::parse("500m"), Ok(0.5));
    assert_eq!(Quantity::parse("2k"), Ok(2000.0));
    assert!(Quantity::parse("-1").is_err());
    // Kubernetes spellings in YAML, including the kind aliases.
    let a: AutoscalerConfig = serde_saphyr::from_str(
        "kind: HorizontalPodAutoscaler\nminReplicas: 1\nmaxReplicas: 4\nmetrics:\n- type: Pods\n  pods: {metric: {name: 'vllm:num_requests_waiting'}, target: {type: AverageValue, averageValue: '500m'}}\nbehavior:\n  scaleDown: {stabilizationWindowSeconds: 60, selectPolicy: Min, policies: [{type: Pods, value: 1, periodSeconds: 30}]}\n",
    )
    .unwrap();
    assert!(matches!(a, AutoscalerConfig::Hpa(_)));
    assert!(a.build(&AutoscalerCtx::default()).unwrap().is_some());
    let bad: Result<AutoscalerConfig, _> =
        serde_saphyr::from_str("kind: hpa\nmaxReplicas: 4\nmetrics: []\nminReplica: 1\n");
    assert!(bad.is_err());
}
