//! Enumeration of the search space into groups (one configuration without its replica count),
//! in a fixed order with stable ids: `gpu/model/tpN/eK/router`, `…/router/<autoscaler>` for
//! autoscaled ones, points `…/rN` (for autoscaled groups N is the peak capacity, `maxReplicas`).
//! The autoscaler is the innermost axis, so the variants of one configuration are neighbours:
//! they share one peak search and travel to the same shard.

use super::{AutoscalerCandidate, EngineCandidate, PlanConfig};
use crate::autoscaler::AutoscalerConfig;
use crate::catalog;
use crate::scenario::ScenarioFile;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// One configuration of the space, minus the replica count.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Group {
    /// Position in enumeration order (sharding and output order).
    pub index: usize,
    pub id: String,
    pub gpu: String,
    pub provider: String,
    pub usd_per_gpu_hour: f64,
    /// Price given in the plan rather than taken from the catalog.
    pub price_override: bool,
    pub model: String,
    pub tp: u32,
    pub engine_index: usize,
    pub engine: EngineCandidate,
    /// Router name (`round_robin`, `epp:default`, … or `scenario`).
    pub router: String,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// `none` (fixed fleet) or the autoscaler candidate's name.
    pub autoscaler: String,
    /// The autoscaler (`kind: hpa` or `kind: keda`) before the planner sets its replica bounds.
    pub autoscaler_config: Option<AutoscalerConfig>,
}

impl Group {
    /// The configuration without its autoscaler (shared by the autoscaler variants).
    pub fn config_id(&self) -> String {
        format!("{}/{}/tp{}/e{}/{}", self.gpu, self.model, self.tp, self.engine_index, self.router)
    }
    pub fn autoscaled(&self) -> bool {
        self.autoscaler_config.is_some()
    }
    pub fn point_id(&self, replicas: u32) -> String {
        format!("{}/r{replicas}", self.id)
    }
    pub fn gpus(&self, replicas: u32) -> u32 {
        replicas * self.tp
    }
    pub fn cost_per_day(&self, replicas: u32, hours_per_day: f64) -> f64 {
        self.gpus(replicas) as f64 * self.usd_per_gpu_hour * hours_per_day
    }
}

/// All groups of the plan, in enumeration order: gpus × models × TP sizes × engines × routers.
pub fn enumerate(plan: &PlanConfig, base: &ScenarioFile) -> Result<Vec<Group>> {
    let c = &plan.candidates;
    if c.gpus.is_empty() {
        bail!("plan.candidates.gpus is empty; list at least one GPU, e.g. `- {{gpu: h100_sxm}}`");
    }
    if c.replicas.min == 0 || c.replicas.min > c.replicas.max {
        bail!("plan.candidates.replicas: need 1 ≤ min ≤ max, got min {} max {}", c.replicas.min, c.replicas.max);
    }
    if c.replicas.max > crate::scenario::MAX_REPLICAS {
        bail!("plan.candidates.replicas.max {} exceeds {}", c.replicas.max, crate::scenario::MAX_REPLICAS);
    }
    let autoscalers = autoscaler_axis(plan, base)?;
    if plan.seeds == 0 {
        bail!("plan.seeds must be at least 1");
    }
    if !(plan.hours_per_day > 0.0 && plan.hours_per_day <= 24.0) {
        bail!("plan.hours_per_day must be in (0, 24]");
    }
    let models = if c.models.is_empty() { vec![base.model.clone()] } else { c.models.clone() };
    for m in &models {
        if catalog::model(m).is_none() {
            bail!("plan.candidates.models: unknown model `{m}`");
        }
    }
    let tps = if c.tensor_parallel_sizes.is_empty() {
        vec![base.tensor_parallel_size]
    } else {
        c.tensor_parallel_sizes.clone()
    };
    let engines = if c.engines.is_empty() { vec![EngineCandidate::default()] } else { c.engines.clone() };
    let routers = if c.routers.is_empty() { vec!["scenario".to_string()] } else { c.routers.clone() };
    for r in &routers {
        if r != "scenario" {
            crate::app::parse_router_name(r)?;
        }
    }
    let mut out = Vec::new();
    for g in &c.gpus {
        let Some(sku) = catalog::gpu(&g.gpu) else {
            bail!("plan.candidates.gpus: unknown gpu `{}`", g.gpu);
        };
        let (price, provider, overridden) = match g.usd_per_gpu_hour {
            Some(p) if p.is_finite() && p >= 0.0 => {
                (p, g.provider.clone().unwrap_or_else(|| "plan override".into()), true)
            }
            Some(p) => bail!("plan.candidates.gpus: price {p} for `{}` is not a non-negative number", g.gpu),
            None => match catalog::reference_price(&sku.id) {
                Some(p) => (p.usd_per_gpu_hour, g.provider.clone().unwrap_or_else(|| p.provider.clone()), false),
                None => bail!("plan.candidates.gpus: the catalog has no price for `{}`; set usd_per_gpu_hour", g.gpu),
            },
        };
        for m in &models {
            for &tp in &tps {
                for (ei, e) in engines.iter().enumerate() {
                    for (r, (an, ac)) in routers.iter().flat_map(|r| autoscalers.iter().map(move |a| (r, a))) {
                        let index = out.len();
                        let suffix = if ac.is_some() { format!("/{an}") } else { String::new() };
                        out.push(Group {
                            index,
                            id: format!("{}/{}/tp{tp}/e{ei}/{r}{suffix}", sku.id, m),
                            gpu: sku.id.clone(),
                            provider: provider.clone(),
                            usd_per_gpu_hour: price,
                            price_override: overridden,
                            model: m.clone(),
                            tp,
                            engine_index: ei,
                            engine: e.clone(),
                            router: r.clone(),
                            min_replicas: c.replicas.min,
                            max_replicas: c.replicas.max,
                            autoscaler: an.clone(),
                            autoscaler_config: ac.clone(),
                        });
                    }
                }
            }
        }
    }
    let mut ids: Vec<&str> = out.iter().map(|g| g.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        bail!("plan.candidates: configuration `{}` is listed twice", w[0]);
    }
    Ok(out)
}

/// The autoscaler axis: names and configs (`None` = fixed fleet), in the plan's order.
pub fn autoscaler_axis(plan: &PlanConfig, base: &ScenarioFile) -> Result<Vec<(String, Option<AutoscalerConfig>)>> {
    use crate::autoscaler::{PRESETS, PresetConfig};
    let list = if plan.candidates.autoscaler.is_empty() {
        vec![AutoscalerCandidate::Named("none".into())]
    } else {
        plan.candidates.autoscaler.clone()
    };
    let mut out: Vec<(String, Option<AutoscalerConfig>)> = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let field = format!("plan.candidates.autoscaler[{i}]");
        let mut known: Vec<String> = vec!["none".into(), "scenario".into()];
        known.extend(base.autoscalers.keys().cloned());
        known.push(PRESETS[0].into());
        let (name, cfg) = match a {
            AutoscalerCandidate::Named(n) if n == "none" || n == "fixed" => ("none".to_string(), None),
            AutoscalerCandidate::Named(n) if n == "scenario" => match &base.autoscaler {
                Some(c) if *c != AutoscalerConfig::Fixed => (n.clone(), Some(c.clone())),
                _ => bail!(
                    "{field}: `scenario` names the scenario's `autoscaler:`, but the scenario has none; add one or name another setting"
                ),
            },
            AutoscalerCandidate::Named(n) => match base.autoscalers.get(n) {
                Some(c) => (n.clone(), Some(c.clone())),
                None if PRESETS.contains(&n.as_str()) => (
                    n.clone(),
                    Some(AutoscalerConfig::Preset(PresetConfig {
                        name: n.clone(),
                        min_replicas: None,
                        max_replicas: None,
                    })),
                ),
                None => bail!(
                    "{field}: unknown autoscaler `{n}`; valid: {} (or an inline `{{name: …, config: {{kind: hpa, …}}}}`)",
                    known.join(", ")
                ),
            },
            AutoscalerCandidate::Inline(x) => (x.name.clone(), Some(x.config.clone())),
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) || name.is_empty() {
            bail!(
                "{field}: name `{name}` may only use letters, digits, `-`, `_` and `.` (it becomes part of configuration ids)"
            );
        }
        let cfg = match cfg {
            None => None,
            Some(c) => Some(plannable(c).map_err(|m| anyhow::anyhow!("{field} (`{name}`): {m}"))?),
        };
        if let Some(c) = &cfg
            && let Err(crate::autoscaler::AutoscalerError::Invalid { field: f, msg }) =
                c.build(&crate::autoscaler::AutoscalerCtx::default())
        {
            bail!("{field} (`{name}`): {f}: {msg}");
        }
        if out.iter().any(|(n, _)| *n == name) {
            bail!("{field}: `{name}` is listed twice");
        }
        out.push((name, cfg));
    }
    Ok(out)
}

/// HPA and KEDA settings (presets expanded) are what the planner sizes and emits.
fn plannable(c: AutoscalerConfig) -> std::result::Result<AutoscalerConfig, String> {
    match c {
        AutoscalerConfig::Hpa(_) | AutoscalerConfig::Keda(_) => Ok(c),
        AutoscalerConfig::Preset(p) if p.name == crate::autoscaler::PRESETS[0] => {
            let mut k = crate::autoscaler::keda::llmd_epp_queue();
            if let Some(m) = p.min_replicas {
                k.min_replica_count = m;
            }
            Ok(AutoscalerConfig::Keda(k))
        }
        AutoscalerConfig::Fixed => Err("resolves to `kind: fixed`; write `none` for a fixed fleet".into()),
        AutoscalerConfig::Preset(p) => Err(format!(
            "preset `{}` cannot be planned (the planner emits an HPA or KEDA ScaledObject); use preset {} or kind hpa/keda",
            p.name,
            crate::autoscaler::PRESETS[0]
        )),
        AutoscalerConfig::Scheduled(_) => Err(unplannable("scheduled")),
        AutoscalerConfig::Wva(_) => Err(unplannable("wva")),
    }
}

fn unplannable(kind: &str) -> String {
    format!(
        "kind `{kind}` cannot be planned: the planner sets maxReplicas and emits an HPA or KEDA ScaledObject; use kind hpa, keda or preset {}",
        crate::autoscaler::PRESETS[0]
    )
}

/// The autoscaler as simulated for a peak capacity of `max` replicas: maxReplicas = `max`,
/// minReplicas kept (at most `max`). Returns the config and its minimum.
pub fn sized(c: &AutoscalerConfig, max: u32) -> (AutoscalerConfig, u32) {
    let mut c = c.clone();
    let min = match &mut c {
        AutoscalerConfig::Hpa(h) => {
            h.max_replicas = max;
            h.min_replicas = h.min_replicas.min(max);
            h.min_replicas
        }
        AutoscalerConfig::Keda(k) => {
            k.max_replica_count = max;
            k.min_replica_count = k.min_replica_count.min(max);
            k.min_replica_count
        }
        _ => max,
    };
    (c, min)
}
