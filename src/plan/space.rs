//! Enumeration of the search space into groups (one configuration without its replica count),
//! in a fixed order with stable ids: `gpu/model/tpN/eK/router`, points `…/rN`.

use super::{EngineCandidate, PlanConfig};
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
}

impl Group {
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
    for a in &c.autoscaler {
        if a != "none" {
            bail!("plan.candidates.autoscaler: `{a}` is not supported; autoscaling is not simulated yet, only `none`");
        }
    }
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
                    for r in &routers {
                        let index = out.len();
                        out.push(Group {
                            index,
                            id: format!("{}/{}/tp{tp}/e{ei}/{r}", sku.id, m),
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
