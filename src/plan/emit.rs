//! Deployable starting points for the recommendation: vLLM arguments, a Kubernetes Deployment,
//! an HPA and the equivalent KEDA ScaledObject, a Gateway API InferencePool and the EPP's
//! EndpointPickerConfig; and the Indexed Job that runs a plan's shards.
//!
//! Autoscaling manifests are rendered from one [`AutoscalerEmit`] value (replica bounds,
//! metrics and thresholds, behaviour). For an autoscaled recommendation it is the simulated
//! setting ([`AutoscalerEmit::for_point`]); for a fixed one, a documented default around the
//! planned count ([`AutoscalerEmit::for_recommendation`]). Both manifests follow it, so they
//! stay equivalent. Each manifest is a minimal serde struct written as YAML and
//! parsed back (and compared) before it is written; image, namespace and secrets are
//! placeholders the user must fill in.

use super::run::PlanContext;
use super::search::GroupResult;
use anyhow::{Result, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const VLLM_PORT: u16 = 8000;
pub const EPP_PORT: u16 = 9002;
pub const PLACEHOLDER_IMAGE: &str = "vllm/vllm-openai:latest";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: Meta,
    pub spec: S,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    pub replicas: u32,
    pub selector: LabelSelector,
    pub template: PodTemplate,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PodTemplate {
    pub metadata: Meta,
    pub spec: PodSpec,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: String,
    pub container_port: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub limits: BTreeMap<String, String>,
    pub requests: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub http_get: HttpGet,
    pub period_seconds: u32,
    pub failure_threshold: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HttpGet {
    pub path: String,
    pub port: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HpaSpec {
    pub scale_target_ref: ScaleTargetRef,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub metrics: Vec<HpaMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HpaBehavior>,
}

/// `autoscaling/v2` scaling behaviour (also what KEDA copies into the HPA it owns).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HpaBehavior {
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    pub stabilization_window_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<String>,
    pub policies: Vec<ScalingPolicy>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    #[serde(rename = "type")]
    pub policy_type: String,
    pub value: u32,
    pub period_seconds: u32,
}

/// `keda.sh/v1alpha1` ScaledObject spec (the fields servesim writes).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectSpec {
    pub scale_target_ref: KedaTargetRef,
    pub polling_interval: u32,
    pub cooldown_period: u32,
    pub min_replica_count: u32,
    pub max_replica_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced: Option<KedaAdvanced>,
    pub triggers: Vec<KedaTrigger>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KedaTargetRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KedaAdvanced {
    pub horizontal_pod_autoscaler_config: KedaHpaConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KedaHpaConfig {
    pub behavior: HpaBehavior,
}

/// A KEDA trigger; `metadata` values are strings, as KEDA requires.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KedaTrigger {
    #[serde(rename = "type")]
    pub trigger_type: String,
    pub metric_type: String,
    pub metadata: BTreeMap<String, String>,
}

/// One scaling metric, as both manifests carry it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EmitMetric {
    /// The series as exported (`vllm:num_requests_waiting`, `llm_d_epp_flow_control_queue_size`).
    pub metric: String,
    /// A per-pod vLLM gauge averaged over pods (HPA `Pods`), or a pool-level series (HPA
    /// `External`, as KEDA's own HPA sees its triggers).
    pub per_pod: bool,
    /// PromQL aggregation of KEDA's query: `sum` or `avg`.
    pub aggregate: String,
    /// `AverageValue` (per replica) or `Value` (the whole pool).
    pub target_type: String,
    pub target: f64,
    /// KEDA `activationThreshold`, when set.
    pub activation: Option<f64>,
}

impl EmitMetric {
    /// Name through a Prometheus adapter (which cannot carry `:`).
    pub fn adapter_name(&self) -> String {
        self.metric.replace(':', "_")
    }
    /// The target as a quantity string (`5`, `0.8`).
    pub fn threshold(&self) -> String {
        quantity(self.target)
    }
    /// PromQL of the KEDA trigger, with the label that selects this pool's series.
    pub fn promql(&self, app: &str, model_name: &str) -> String {
        let labels = if self.metric.starts_with("vllm:") {
            format!("{{model_name=\"{model_name}\"}}")
        } else if self.metric.starts_with("llm_d_epp_") {
            format!("{{inference_pool=\"{app}\"}}")
        } else {
            String::new()
        };
        format!("{}({}{labels})", self.aggregate, self.metric)
    }
}

fn quantity(v: f64) -> String {
    let s = format!("{v}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

/// What the HPA and ScaledObject say: one value so both stay consistent. The planner fills it
/// from the recommendation ([`AutoscalerEmit::for_recommendation`]) or, for an autoscaled
/// recommendation, from the simulated setting ([`AutoscalerEmit::for_point`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AutoscalerEmit {
    /// The manifest the simulated setting was (`HorizontalPodAutoscaler` or `ScaledObject`);
    /// the other one is written as its equivalent.
    pub chosen: String,
    /// Plan candidate name (`default` when the planner did not search autoscalers).
    pub name: String,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub metrics: Vec<EmitMetric>,
    /// KEDA `pollingInterval` (s).
    pub polling_interval_s: u32,
    /// KEDA `cooldownPeriod` (s; only affects scaling to zero).
    pub cooldown_s: u32,
    pub behavior: HpaBehavior,
}

/// Queue depth per replica treated as "needs another replica": the EPP utilization
/// detector's default `queueDepthThreshold`.
pub const DEFAULT_WAITING_PER_REPLICA: f64 = 5.0;
/// The llm-d KEDA recipe's EPP queue target (AverageValue 1).
pub const DEFAULT_EPP_QUEUE_PER_REPLICA: f64 = 1.0;

impl AutoscalerEmit {
    /// The recommendation's bounds: it never scales below the replica count that met the SLOs
    /// on every seed, and up to the count the traffic sensitivity found (at least +30 %).
    /// Signal: the EPP queue when the recommendation routes with the EPP, else vLLM's waiting
    /// queue; thresholds and timing are the documented defaults (Kubernetes HPA behaviour,
    /// the llm-d KEDA recipe); this setting is not simulated.
    pub fn for_recommendation(gr: &GroupResult, replicas: u32) -> AutoscalerEmit {
        let max = gr.traffic_up_min.unwrap_or(replicas).max(replicas + (replicas as f64 * 0.3).ceil() as u32);
        let (metric, per_pod, target) = if gr.group.router.starts_with("epp") {
            ("llm_d_epp_flow_control_queue_size", false, DEFAULT_EPP_QUEUE_PER_REPLICA)
        } else {
            ("vllm:num_requests_waiting", true, DEFAULT_WAITING_PER_REPLICA)
        };
        let period = 15;
        let rules = |window, pods: Option<u32>| ScalingRules {
            stabilization_window_seconds: window,
            select_policy: pods.map(|_| "Max".to_string()),
            policies: std::iter::once(ScalingPolicy {
                policy_type: "Percent".into(),
                value: 100,
                period_seconds: period,
            })
            .chain(pods.map(|p| ScalingPolicy { policy_type: "Pods".into(), value: p, period_seconds: period }))
            .collect(),
        };
        AutoscalerEmit {
            chosen: "HorizontalPodAutoscaler".into(),
            name: "default".into(),
            min_replicas: replicas,
            max_replicas: max,
            metrics: vec![EmitMetric {
                metric: metric.into(),
                per_pod,
                aggregate: "sum".into(),
                target_type: "AverageValue".into(),
                target,
                activation: None,
            }],
            polling_interval_s: 15,
            cooldown_s: 300,
            behavior: HpaBehavior { scale_up: rules(0, Some(4)), scale_down: rules(300, None) },
        }
    }

    /// The simulated autoscaler of an autoscaled plan point (its min/max, metrics, thresholds
    /// and behaviour as simulated); `None` for a fixed fleet. KEDA cron triggers are not
    /// carried (the planner only sizes metric triggers).
    pub fn for_point(gr: &GroupResult, replicas: u32) -> Option<AutoscalerEmit> {
        use crate::autoscaler::AutoscalerConfig;
        use crate::autoscaler::hpa::{self, MetricSpec, TargetType};
        let a = gr.autoscaled.as_ref().filter(|a| a.max_replicas == replicas)?;
        let behavior = |b: Option<&crate::autoscaler::BehaviorConfig>| -> Option<HpaBehavior> {
            let (up, down) = hpa::resolve_behavior(b).ok()?;
            let conv = |r: &hpa::Rules| ScalingRules {
                stabilization_window_seconds: r.window.as_secs_f64().round() as u32,
                select_policy: Some(format!("{:?}", r.select)),
                policies: r
                    .policies
                    .iter()
                    .map(|p| ScalingPolicy {
                        policy_type: format!("{:?}", p.kind),
                        value: p.value,
                        period_seconds: p.period_seconds,
                    })
                    .collect(),
            };
            Some(HpaBehavior { scale_up: conv(&up), scale_down: conv(&down) })
        };
        let tt = |t: TargetType| format!("{t:?}");
        match &a.config {
            AutoscalerConfig::Hpa(h) => Some(AutoscalerEmit {
                chosen: "HorizontalPodAutoscaler".into(),
                name: gr.group.autoscaler.clone(),
                min_replicas: h.min_replicas,
                max_replicas: h.max_replicas,
                metrics: h
                    .metrics
                    .iter()
                    .map(|m| {
                        let (src, per_pod) = match m {
                            MetricSpec::Pods(p) => (&p.pods, true),
                            MetricSpec::External(e) => (&e.external, false),
                        };
                        EmitMetric {
                            metric: src.metric.name.clone(),
                            per_pod,
                            aggregate: "sum".into(),
                            target_type: tt(src.target.kind),
                            target: src.target.average_value.or(src.target.value).map_or(0.0, |q| q.0),
                            activation: None,
                        }
                    })
                    .collect(),
                polling_interval_s: h.sync_period.as_ref().map_or(15, |d| d.0.as_secs_f64().round() as u32),
                cooldown_s: 300,
                behavior: behavior(h.behavior.as_ref())?,
            }),
            AutoscalerConfig::Keda(k) => {
                let b = k.advanced.as_ref().and_then(|a| a.horizontal_pod_autoscaler_config.as_ref());
                let mut metrics = Vec::new();
                for t in &k.triggers {
                    let get = |key: &str| {
                        t.metadata.get(key).map(|v| match v {
                            crate::autoscaler::keda::Quantityish::Text(s) => s.clone(),
                            crate::autoscaler::keda::Quantityish::Number(n) => n.to_string(),
                        })
                    };
                    let (Some(q), Some(th)) = (get("query"), get("threshold")) else { continue };
                    let q = q.trim();
                    let (agg, inner) = match q.find('(') {
                        Some(i) if q.ends_with(')') => (q[..i].trim(), &q[i + 1..q.len() - 1]),
                        _ => ("sum", q),
                    };
                    let num = |v: &str| crate::autoscaler::Quantity::parse(v).ok();
                    metrics.push(EmitMetric {
                        metric: inner.split('{').next().unwrap_or("").trim().to_string(),
                        per_pod: false,
                        aggregate: if agg.is_empty() { "sum".into() } else { agg.to_string() },
                        target_type: tt(t.metric_type.unwrap_or(TargetType::AverageValue)),
                        target: num(&th)?,
                        activation: get("activationThreshold").and_then(|v| num(&v)),
                    });
                }
                Some(AutoscalerEmit {
                    chosen: "ScaledObject".into(),
                    name: gr.group.autoscaler.clone(),
                    min_replicas: k.min_replica_count,
                    max_replicas: k.max_replica_count,
                    metrics,
                    polling_interval_s: k.polling_interval,
                    cooldown_s: k.cooldown_period,
                    behavior: behavior(b.and_then(|h| h.behavior.as_ref()))?,
                })
            }
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HpaMetric {
    #[serde(rename = "type")]
    pub metric_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<PodsMetric>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PodsMetric {
    pub metric: MetricName,
    pub target: MetricTarget,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetricName {
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricTarget {
    #[serde(rename = "type")]
    pub target_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InferencePoolSpec {
    pub selector: LabelSelector,
    pub target_ports: Vec<PortNumber>,
    pub endpoint_picker_ref: EndpointPickerRef,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PortNumber {
    pub number: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPickerRef {
    pub name: String,
    pub port: PortNumber,
    pub failure_mode: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    pub completion_mode: String,
    pub completions: u32,
    pub parallelism: u32,
    pub backoff_limit_per_index: u32,
    pub template: PodTemplate,
}

/// Serializes `v` to YAML, parses it back and checks it is the same value.
pub fn to_yaml_checked<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) -> Result<String> {
    let text = serde_saphyr::to_string(v)?;
    let back: T =
        serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("emitted YAML does not parse back: {e}"))?;
    if &back != v {
        bail!("emitted YAML does not round-trip:\n{text}");
    }
    Ok(text)
}

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), app.to_string())])
}

/// Kubernetes-safe name from a model id.
pub fn app_name(model: &str) -> String {
    let s: String =
        model.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("vllm-{}", s.trim_matches('-'))
}

/// `vllm serve` arguments of the recommendation (after the model name).
pub fn vllm_args(gr: &GroupResult) -> Result<Vec<String>> {
    let Some(r) = &gr.resolved else { bail!("configuration {} was not resolved", gr.group.id) };
    let mut a = vec![
        format!("--tensor-parallel-size={}", gr.group.tp),
        format!("--max-num-seqs={}", r.max_num_seqs),
        format!("--max-num-batched-tokens={}", r.max_num_batched_tokens),
        format!("--max-model-len={}", r.max_model_len),
        format!("--block-size={}", r.block_size),
        format!("--gpu-memory-utilization={}", r.gpu_memory_utilization),
        format!("--port={VLLM_PORT}"),
    ];
    a.push(if r.enable_prefix_caching {
        "--enable-prefix-caching".into()
    } else {
        "--no-enable-prefix-caching".into()
    });
    a.push(if r.enable_chunked_prefill {
        "--enable-chunked-prefill".into()
    } else {
        "--no-enable-chunked-prefill".into()
    });
    Ok(a)
}

/// The EPP profile to emit: the recommendation's if it routes with the EPP, else `default`.
pub fn epp_profile(router: &str) -> String {
    match router.split_once(':') {
        Some(("epp", p)) => p.to_string(),
        _ => "default".into(),
    }
}

/// The written manifests (paths) of the recommendation, autoscaled per
/// [`AutoscalerEmit::for_recommendation`].
pub fn write_manifests(dir: &Path, ctx: &PlanContext, gr: &GroupResult, replicas: u32) -> Result<Vec<PathBuf>> {
    write_manifests_with(dir, ctx, gr, replicas, &AutoscalerEmit::for_recommendation(gr, replicas))
}

/// The HPA for `app` under `a`.
pub fn hpa_manifest(app: &str, a: &AutoscalerEmit) -> Manifest<HpaSpec> {
    Manifest {
        api_version: "autoscaling/v2".into(),
        kind: "HorizontalPodAutoscaler".into(),
        metadata: Meta {
            name: app.to_string(),
            namespace: Some("REPLACE-ME-namespace".into()),
            labels: labels(app),
            ..Default::default()
        },
        spec: HpaSpec {
            scale_target_ref: ScaleTargetRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: app.to_string(),
            },
            min_replicas: a.min_replicas,
            max_replicas: a.max_replicas,
            metrics: a
                .metrics
                .iter()
                .map(|m| {
                    let per_replica = m.per_pod || m.target_type == "AverageValue";
                    let src = PodsMetric {
                        metric: MetricName { name: m.adapter_name() },
                        target: MetricTarget {
                            target_type: if m.per_pod { "AverageValue".into() } else { m.target_type.clone() },
                            average_value: per_replica.then(|| m.threshold()),
                            value: (!per_replica).then(|| m.threshold()),
                        },
                    };
                    if m.per_pod {
                        HpaMetric { metric_type: "Pods".into(), pods: Some(src), external: None }
                    } else {
                        HpaMetric { metric_type: "External".into(), pods: None, external: Some(src) }
                    }
                })
                .collect(),
            behavior: Some(a.behavior.clone()),
        },
    }
}

/// The KEDA ScaledObject for `app` under `a`: one Prometheus trigger, the same bounds,
/// threshold and behaviour as the HPA.
pub fn keda_scaled_object(app: &str, model_name: &str, a: &AutoscalerEmit) -> Manifest<ScaledObjectSpec> {
    Manifest {
        api_version: "keda.sh/v1alpha1".into(),
        kind: "ScaledObject".into(),
        metadata: Meta {
            name: app.to_string(),
            namespace: Some("REPLACE-ME-namespace".into()),
            labels: labels(app),
            ..Default::default()
        },
        spec: ScaledObjectSpec {
            scale_target_ref: KedaTargetRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: app.to_string(),
            },
            polling_interval: a.polling_interval_s,
            cooldown_period: a.cooldown_s,
            min_replica_count: a.min_replicas,
            max_replica_count: a.max_replicas,
            advanced: Some(KedaAdvanced {
                horizontal_pod_autoscaler_config: KedaHpaConfig { behavior: a.behavior.clone() },
            }),
            triggers: a
                .metrics
                .iter()
                .map(|m| {
                    let mut md = BTreeMap::from([
                        ("serverAddress".to_string(), "http://REPLACE-ME-prometheus.monitoring.svc:9090".to_string()),
                        ("query".to_string(), m.promql(app, model_name)),
                        ("threshold".to_string(), m.threshold()),
                    ]);
                    if let Some(x) = m.activation {
                        md.insert("activationThreshold".into(), quantity(x));
                    }
                    KedaTrigger {
                        trigger_type: "prometheus".into(),
                        metric_type: if m.per_pod { "AverageValue".into() } else { m.target_type.clone() },
                        metadata: md,
                    }
                })
                .collect(),
        },
    }
}

/// [`write_manifests`] with an explicit autoscaler setting (the planner's autoscaler axis).
pub fn write_manifests_with(
    dir: &Path,
    ctx: &PlanContext,
    gr: &GroupResult,
    replicas: u32,
    autoscaler: &AutoscalerEmit,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let g = &gr.group;
    let Some(res) = &gr.resolved else { bail!("configuration {} was not resolved", g.id) };
    let app = app_name(&g.model);
    let gpu_key = if res.gpu_vendor == "amd" { "amd.com/gpu" } else { "nvidia.com/gpu" };
    let mut args = vec!["serve".to_string(), res.model_name.clone()];
    args.extend(vllm_args(gr)?);
    let mut written = Vec::new();
    let mut put = |name: &str, text: String| -> Result<()> {
        let p = dir.join(name);
        crate::metrics::write_atomic(&p, text.as_bytes())?;
        written.push(p);
        Ok(())
    };
    put(
        "vllm-args.txt",
        format!(
            "# vLLM launch for {} ({} replicas × {} × {}; servesim plan of `{}`)\nvllm {}\n",
            g.point_id(replicas),
            replicas,
            g.tp,
            g.gpu,
            ctx.scenario,
            args.join(" ")
        ),
    )?;
    let probe = |path: &str, period, fail| Probe {
        http_get: HttpGet { path: path.into(), port: VLLM_PORT },
        period_seconds: period,
        failure_threshold: fail,
    };
    let tp = g.tp.to_string();
    let dep = Manifest {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        metadata: Meta {
            name: app.clone(),
            namespace: Some("REPLACE-ME-namespace".into()),
            labels: labels(&app),
            annotations: BTreeMap::from([("servesim.dev/plan-point".to_string(), g.point_id(replicas))]),
        },
        spec: DeploymentSpec {
            replicas,
            selector: LabelSelector { match_labels: labels(&app) },
            template: PodTemplate {
                metadata: Meta { name: app.clone(), labels: labels(&app), ..Default::default() },
                spec: PodSpec {
                    restart_policy: None,
                    containers: vec![Container {
                        name: "vllm".into(),
                        image: PLACEHOLDER_IMAGE.into(),
                        command: vec!["vllm".into()],
                        args: args.clone(),
                        env: vec![serde_json::json!({
                            "name": "HF_TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": "REPLACE-ME-hf-token", "key": "token"}}
                        })],
                        ports: vec![ContainerPort { name: "http".into(), container_port: VLLM_PORT }],
                        resources: Some(Resources {
                            limits: BTreeMap::from([(gpu_key.to_string(), tp.clone())]),
                            requests: BTreeMap::from([(gpu_key.to_string(), tp.clone())]),
                        }),
                        startup_probe: Some(probe("/health", 10, 60)),
                        readiness_probe: Some(probe("/health", 5, 3)),
                        liveness_probe: Some(probe("/health", 10, 6)),
                        volume_mounts: vec![serde_json::json!({"name": "dshm", "mountPath": "/dev/shm"})],
                    }],
                    volumes: vec![serde_json::json!({"name": "dshm", "emptyDir": {"medium": "Memory"}})],
                },
            },
        },
    };
    put("vllm-deployment.yaml", to_yaml_checked(&dep)?)?;
    let simulated = if autoscaler.name == "default" {
        "not simulated: min = the planned replicas, max = the +30 % traffic minimum".to_string()
    } else {
        format!(
            "the plan simulated this setting as `{}` ({}); the other manifest is its equivalent",
            autoscaler.name, autoscaler.chosen
        )
    };
    let hpa_text = to_yaml_checked(&hpa_manifest(&app, autoscaler))?;
    put(
        "vllm-hpa.yaml",
        format!(
            "# HorizontalPodAutoscaler ({simulated}). Needs a Prometheus adapter exposing the metrics under these names.\n{hpa_text}"
        ),
    )?;
    put(
        "vllm-keda-scaledobject.yaml",
        format!(
            "# KEDA ScaledObject equivalent to vllm-hpa.yaml (use one of the two: KEDA creates and owns its own HPA; {simulated}).\n# Fill in the Prometheus address; {}\n{}",
            if autoscaler.metrics.iter().any(|m| m.metric == "llm_d_epp_flow_control_queue_size") {
                "the EPP queue series exists only with EPP flow control on."
            } else {
                "the queries sum the pool's series."
            },
            to_yaml_checked(&keda_scaled_object(&app, &res.model_name, autoscaler))?
        ),
    )?;
    let pool = Manifest {
        api_version: "inference.networking.k8s.io/v1".into(),
        kind: "InferencePool".into(),
        metadata: Meta { name: app.clone(), namespace: Some("REPLACE-ME-namespace".into()), ..Default::default() },
        spec: InferencePoolSpec {
            selector: LabelSelector { match_labels: labels(&app) },
            target_ports: vec![PortNumber { number: VLLM_PORT }],
            endpoint_picker_ref: EndpointPickerRef {
                name: format!("{app}-epp"),
                port: PortNumber { number: EPP_PORT },
                failure_mode: "FailClose".into(),
            },
        },
    };
    put("inferencepool.yaml", to_yaml_checked(&pool)?)?;
    let profile = epp_profile(&g.router);
    let mut epp = crate::router::epp::config::named_profile(&profile)?;
    epp.api_version = Some("inference.networking.x-k8s.io/v1alpha1".into());
    epp.kind = Some("EndpointPickerConfig".into());
    let text = serde_saphyr::to_string(&epp)?;
    let back = crate::router::epp::config::parse_config_yaml(&text).map_err(|e| anyhow::anyhow!("EPP config: {e}"))?;
    if back != epp {
        bail!("EPP config does not round-trip");
    }
    back.resolve(Default::default())?;
    put(
        "epp-config.yaml",
        format!(
            "# EndpointPickerConfig (profile `{profile}`{}) for the EPP serving InferencePool `{app}`; pass it with --config-file.\n{text}",
            if g.router.starts_with("epp") {
                ""
            } else {
                "; the recommendation routes round-robin, this is the cache-aware option"
            }
        ),
    )?;
    Ok(written)
}

/// A Kubernetes Indexed Job running `servesim plan --shard $i/n` in `n` pods.
pub fn indexed_job(scenario: &Path, name: &str, shards: u32) -> Result<String> {
    let file = scenario.file_name().and_then(|s| s.to_str()).unwrap_or("scenario.yaml");
    let job_name = format!("servesim-plan-{}", app_name(name).trim_start_matches("vllm-"));
    let job = Manifest {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        metadata: Meta { name: job_name, namespace: Some("REPLACE-ME-namespace".into()), ..Default::default() },
        spec: JobSpec {
            completion_mode: "Indexed".into(),
            completions: shards,
            parallelism: shards,
            backoff_limit_per_index: 1,
            template: PodTemplate {
                metadata: Meta { name: "servesim-plan".into(), ..Default::default() },
                spec: PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "plan".into(),
                        image: "REPLACE-ME/servesim:latest".into(),
                        command: vec!["sh".into(), "-c".into()],
                        args: vec![format!(
                            "servesim plan /plan/{file} --quiet --shard ${{JOB_COMPLETION_INDEX}}/{shards} --out /out/shard-${{JOB_COMPLETION_INDEX}}"
                        )],
                        env: vec![],
                        ports: vec![],
                        resources: Some(Resources {
                            limits: BTreeMap::from([
                                ("cpu".to_string(), "4".to_string()),
                                ("memory".to_string(), "8Gi".to_string()),
                            ]),
                            requests: BTreeMap::from([
                                ("cpu".to_string(), "4".to_string()),
                                ("memory".to_string(), "8Gi".to_string()),
                            ]),
                        }),
                        startup_probe: None,
                        readiness_probe: None,
                        liveness_probe: None,
                        volume_mounts: vec![
                            serde_json::json!({"name": "plan", "mountPath": "/plan"}),
                            serde_json::json!({"name": "out", "mountPath": "/out"}),
                        ],
                    }],
                    volumes: vec![
                        serde_json::json!({"name": "plan", "configMap": {"name": "REPLACE-ME-plan-scenario"}}),
                        serde_json::json!({"name": "out", "persistentVolumeClaim": {"claimName": "REPLACE-ME-plan-out"}}),
                    ],
                },
            },
        },
    };
    let text = to_yaml_checked(&job)?;
    Ok(format!(
        "# Runs `servesim plan` in {shards} shards; afterwards: servesim plan merge /out/shard-* --out reports/plan\n# The ConfigMap must hold {file} (and any files it references); fill in image and namespace.\n{text}"
    ))
}
