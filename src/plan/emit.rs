//! Deployable starting points for the recommendation: vLLM arguments, a Kubernetes Deployment,
//! an HPA and the equivalent KEDA ScaledObject, a Gateway API InferencePool and the EPP's
//! EndpointPickerConfig; and the Indexed Job that runs a plan's shards.
//!
//! Autoscaling manifests are rendered from one [`AutoscalerEmit`] value (replica bounds,
//! signal, threshold, timing). Today the planner fills it from the recommendation
//! ([`AutoscalerEmit::for_recommendation`]); once the planner searches autoscaler settings, the
//! chosen setting is passed to [`write_manifests_with`] instead and both manifests follow it. Each manifest is a minimal serde struct written as YAML and
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

/// The signal an autoscaler scales on.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScaleSignal {
    /// vLLM's `vllm:num_requests_waiting`, averaged per replica.
    VllmWaiting { per_replica: f64 },
    /// The EPP's flow-control queue (`llm_d_epp_flow_control_queue_size`), averaged per replica;
    /// only exists with EPP flow control on.
    EppQueue { per_replica: f64 },
}

/// What the HPA and ScaledObject say: one value so both stay consistent, and so the planner's
/// autoscaler axis can hand its chosen setting straight to the emitter.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AutoscalerEmit {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub signal: ScaleSignal,
    /// KEDA `pollingInterval` (s).
    pub polling_interval_s: u32,
    /// KEDA `cooldownPeriod` (s; only affects scaling to zero).
    pub cooldown_s: u32,
    pub scale_up_stabilization_s: u32,
    pub scale_down_stabilization_s: u32,
    /// Scaling policy period (s) for both directions.
    pub policy_period_s: u32,
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
    /// the llm-d KEDA recipe) until the planner searches them.
    pub fn for_recommendation(gr: &GroupResult, replicas: u32) -> AutoscalerEmit {
        let max = gr.traffic_up_min.unwrap_or(replicas).max(replicas + (replicas as f64 * 0.3).ceil() as u32);
        let signal = if gr.group.router.starts_with("epp") {
            ScaleSignal::EppQueue { per_replica: DEFAULT_EPP_QUEUE_PER_REPLICA }
        } else {
            ScaleSignal::VllmWaiting { per_replica: DEFAULT_WAITING_PER_REPLICA }
        };
        AutoscalerEmit {
            min_replicas: replicas,
            max_replicas: max,
            signal,
            polling_interval_s: 15,
            cooldown_s: 300,
            scale_up_stabilization_s: 0,
            scale_down_stabilization_s: 300,
            policy_period_s: 15,
        }
    }

    pub fn behavior(&self) -> HpaBehavior {
        let rules = |window, pods: Option<u32>| ScalingRules {
            stabilization_window_seconds: window,
            select_policy: pods.map(|_| "Max".to_string()),
            policies: std::iter::once(ScalingPolicy {
                policy_type: "Percent".into(),
                value: 100,
                period_seconds: self.policy_period_s,
            })
            .chain(pods.map(|p| ScalingPolicy {
                policy_type: "Pods".into(),
                value: p,
                period_seconds: self.policy_period_s,
            }))
            .collect(),
        };
        HpaBehavior {
            scale_up: rules(self.scale_up_stabilization_s, Some(4)),
            scale_down: rules(self.scale_down_stabilization_s, None),
        }
    }

    /// Threshold as the string both manifests carry (`5`, `0.5`).
    pub fn threshold(&self) -> String {
        let v = match self.signal {
            ScaleSignal::VllmWaiting { per_replica } | ScaleSignal::EppQueue { per_replica } => per_replica,
        };
        let s = format!("{v}");
        s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
    }

    /// HPA `Pods` metric name (through a Prometheus adapter, which cannot carry `:`).
    pub fn hpa_metric(&self) -> &'static str {
        match self.signal {
            ScaleSignal::VllmWaiting { .. } => "vllm_num_requests_waiting",
            ScaleSignal::EppQueue { .. } => "llm_d_epp_flow_control_queue_size",
        }
    }

    /// PromQL of the KEDA trigger: the pool-wide sum (KEDA divides by replicas for AverageValue).
    pub fn promql(&self, app: &str, model_name: &str) -> String {
        match self.signal {
            ScaleSignal::VllmWaiting { .. } => format!("sum(vllm:num_requests_waiting{{model_name=\"{model_name}\"}})"),
            ScaleSignal::EppQueue { .. } => {
                format!("sum(llm_d_epp_flow_control_queue_size{{inference_pool=\"{app}\"}})")
            }
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
    pub pods: PodsMetric,
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
    pub average_value: String,
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
            metrics: vec![HpaMetric {
                metric_type: "Pods".into(),
                pods: PodsMetric {
                    metric: MetricName { name: a.hpa_metric().into() },
                    target: MetricTarget { target_type: "AverageValue".into(), average_value: a.threshold() },
                },
            }],
            behavior: Some(a.behavior()),
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
            advanced: Some(KedaAdvanced { horizontal_pod_autoscaler_config: KedaHpaConfig { behavior: a.behavior() } }),
            triggers: vec![KedaTrigger {
                trigger_type: "prometheus".into(),
                metric_type: "AverageValue".into(),
                metadata: BTreeMap::from([
                    ("serverAddress".to_string(), "http://REPLACE-ME-prometheus.monitoring.svc:9090".to_string()),
                    ("query".to_string(), a.promql(app, model_name)),
                    ("threshold".to_string(), a.threshold()),
                ]),
            }],
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
    put("vllm-hpa.yaml", to_yaml_checked(&hpa_manifest(&app, autoscaler))?)?;
    put(
        "vllm-keda-scaledobject.yaml",
        format!(
            "# KEDA ScaledObject equivalent to vllm-hpa.yaml (use one of the two: KEDA creates and owns its own HPA).\n# Fill in the Prometheus address; {}\n{}",
            match autoscaler.signal {
                ScaleSignal::EppQueue { .. } => "the EPP queue series exists only with EPP flow control on.",
                ScaleSignal::VllmWaiting { .. } => "the query sums vLLM's waiting queue over the pool.",
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
