//! Load-balancing baselines: what a request meets without the Endpoint Picker.

use super::{Candidate, Router, RouterError};
use crate::content::ChainArena;
use crate::rng::{SimRng, splitmix64};
use crate::units::{ReplicaId, SimTime};
use crate::workload::RequestSpec;
use rand::RngExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Round-robin over the candidate list by position, like a per-request L7 round-robin.
pub struct RoundRobin {
    next: u64,
}

impl RoundRobin {
    pub fn new() -> Self {
        RoundRobin { next: 0 }
    }
}

impl Default for RoundRobin {
    fn default() -> Self {
        Self::new()
    }
}

impl Router for RoundRobin {
    fn name(&self) -> &str {
        "round_robin"
    }
    fn route(
        &mut self,
        _now: SimTime,
        _req: &RequestSpec,
        _arena: &ChainArena,
        cands: &[Candidate],
        _rng: &mut SimRng,
    ) -> ReplicaId {
        let i = (self.next % cands.len() as u64) as usize;
        self.next += 1;
        cands[i].id
    }
}

/// Uniformly random candidate per request.
pub struct RandomRouter;

impl Router for RandomRouter {
    fn name(&self) -> &str {
        "random"
    }
    fn route(
        &mut self,
        _now: SimTime,
        _req: &RequestSpec,
        _arena: &ChainArena,
        cands: &[Candidate],
        rng: &mut SimRng,
    ) -> ReplicaId {
        cands[rng.random_range(0..cands.len())].id
    }
}

/// How `least_requests` breaks ties between candidates with the same in-flight count.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// The lowest replica id among the tied (deterministic, biased towards low ids when idle).
    #[default]
    LowestId,
    /// Uniformly at random among the tied (from the router's seeded stream).
    Random,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LeastRequestsConfig {
    #[serde(default)]
    pub tie_break: TieBreak,
}

/// Least outstanding requests (Envoy `LEAST_REQUEST` with full scan), on the router's own
/// in-flight counters, which are always fresh.
pub struct LeastRequests {
    cfg: LeastRequestsConfig,
    ties: Vec<usize>,
}

impl LeastRequests {
    pub fn new(cfg: LeastRequestsConfig) -> Self {
        LeastRequests { cfg, ties: Vec::new() }
    }
}

impl Router for LeastRequests {
    fn name(&self) -> &str {
        "least_requests"
    }
    fn route(
        &mut self,
        _now: SimTime,
        _req: &RequestSpec,
        _arena: &ChainArena,
        cands: &[Candidate],
        rng: &mut SimRng,
    ) -> ReplicaId {
        let min = cands.iter().map(|c| c.in_flight).min().expect("non-empty candidate set");
        match self.cfg.tie_break {
            TieBreak::LowestId => cands.iter().find(|c| c.in_flight == min).unwrap().id,
            TieBreak::Random => {
                self.ties.clear();
                self.ties.extend((0..cands.len()).filter(|&i| cands[i].in_flight == min));
                let k = if self.ties.len() == 1 { 0 } else { rng.random_range(0..self.ties.len()) };
                cands[self.ties[k]].id
            }
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PowerOfTwoConfig {}

/// Power of two choices: draw two distinct candidates uniformly, send to the one with fewer
/// in-flight requests; on a tie, the first drawn (itself a uniform random choice).
pub struct PowerOfTwo;

impl Router for PowerOfTwo {
    fn name(&self) -> &str {
        "power_of_two"
    }
    fn route(
        &mut self,
        _now: SimTime,
        _req: &RequestSpec,
        _arena: &ChainArena,
        cands: &[Candidate],
        rng: &mut SimRng,
    ) -> ReplicaId {
        let n = cands.len();
        if n == 1 {
            return cands[0].id;
        }
        let a = rng.random_range(0..n);
        let mut b = rng.random_range(0..n - 1);
        if b >= a {
            b += 1;
        }
        if cands[b].in_flight < cands[a].in_flight { cands[b].id } else { cands[a].id }
    }
}

/// How a client spreads its requests over its pooled connections.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionAssignment {
    /// Requests take the pool's connections in turn.
    #[default]
    RoundRobin,
    /// A request with a session always uses the connection `hash(session) % connections`
    /// (one client per user); requests without a session take connections in turn.
    SessionHash,
}

fn default_connections() -> u32 {
    100
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesServiceConfig {
    /// Persistent HTTP/1.1 (keep-alive) connections in the clients' pool (e.g. aiohttp's
    /// default limit of 100).
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// How requests are spread over the connections.
    #[serde(default)]
    pub assignment: ConnectionAssignment,
    /// Close and reopen a connection after this many requests (server keep-alive limit);
    /// unlimited by default.
    #[serde(default)]
    pub max_requests_per_connection: Option<u32>,
    /// No keep-alive: every request opens a new connection, which iptables sends to a
    /// uniformly random endpoint (equivalent to `random` per request).
    #[serde(default)]
    pub per_request: bool,
}

impl Default for KubernetesServiceConfig {
    fn default() -> Self {
        KubernetesServiceConfig {
            connections: default_connections(),
            assignment: ConnectionAssignment::default(),
            max_requests_per_connection: None,
            per_request: false,
        }
    }
}

/// A plain ClusterIP Service behind kube-proxy (iptables mode).
///
/// Model: kube-proxy balances **connections**, not requests. iptables DNAT picks a uniformly
/// random endpoint when a connection opens (the `statistic --mode random` rule chain), and
/// every request on that keep-alive connection then goes to the same pod. The clients are
/// modelled as one pool of `connections` persistent connections; each is opened lazily on
/// first use, pinned to a random candidate, and reopened (new random pick) when its pod
/// leaves the candidate set or after `max_requests_per_connection` requests. Requests use
/// the connections round-robin, or by session hash. HTTP/1.1 allows one request at a time
/// per connection; that concurrency limit is not modelled (the pool is assumed large enough).
/// With few connections, load is as uneven as the random pinning; replicas added by a
/// scale-up receive no traffic until connections are reopened, as in a real cluster.
/// `per_request: true` models clients without keep-alive: random per request.
pub struct KubernetesService {
    cfg: KubernetesServiceConfig,
    /// Pinned replica and requests served, per connection (`None`: not open yet).
    conns: Vec<Option<(ReplicaId, u32)>>,
    next: u64,
}

impl KubernetesService {
    pub fn new(cfg: KubernetesServiceConfig) -> Result<Self, RouterError> {
        if !cfg.per_request && cfg.connections == 0 {
            return Err(RouterError::Invalid("kubernetes_service: `connections` must be at least 1".into()));
        }
        if cfg.max_requests_per_connection == Some(0) {
            return Err(RouterError::Invalid(
                "kubernetes_service: `max_requests_per_connection` must be at least 1".into(),
            ));
        }
        let n = cfg.connections as usize;
        Ok(KubernetesService { cfg, conns: vec![None; n], next: 0 })
    }
}

impl Router for KubernetesService {
    fn name(&self) -> &str {
        "kubernetes_service"
    }
    fn route(
        &mut self,
        _now: SimTime,
        req: &RequestSpec,
        _arena: &ChainArena,
        cands: &[Candidate],
        rng: &mut SimRng,
    ) -> ReplicaId {
        if self.cfg.per_request {
            return cands[rng.random_range(0..cands.len())].id;
        }
        let n = self.conns.len() as u64;
        let slot = match (self.cfg.assignment, req.session) {
            (ConnectionAssignment::SessionHash, Some(s)) => (splitmix64(s) % n) as usize,
            _ => {
                let i = (self.next % n) as usize;
                self.next += 1;
                i
            }
        };
        let limit = self.cfg.max_requests_per_connection.unwrap_or(u32::MAX);
        let reuse = match self.conns[slot] {
            Some((r, served)) => served < limit && cands.binary_search_by_key(&r, |c| c.id).is_ok(),
            None => false,
        };
        if !reuse {
            let r = cands[rng.random_range(0..cands.len())].id;
            self.conns[slot] = Some((r, 0));
        }
        let c = self.conns[slot].as_mut().unwrap();
        c.1 += 1;
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ReplicaSample;
    use crate::rng::RngStreams;
    use crate::router::{RouterBuildCtx, RouterConfig};
    use crate::units::{RequestId, Tokens};

    fn cands(in_flight: &[u32]) -> Vec<Candidate> {
        in_flight
            .iter()
            .enumerate()
            .map(|(i, &f)| Candidate {
                id: ReplicaId(i as u32),
                scraped: ReplicaSample::default(),
                in_flight: f,
                block_size: 16,
            })
            .collect()
    }
    fn req(id: u64, session: Option<u64>) -> RequestSpec {
        RequestSpec {
            id: RequestId(id),
            arrival: SimTime::ZERO,
            input: Tokens(10),
            output: Tokens(10),
            content: Default::default(),
            output_key: 0,
            session,
            group: None,
            private_reuse: true,
            novel_private: false,
        }
    }
    fn build(yaml: &str) -> Box<dyn Router> {
        let rc: RouterConfig = serde_saphyr::from_str(yaml).unwrap();
        rc.build(&RouterBuildCtx::default()).unwrap()
    }

    #[test]
    fn least_requests_ties_lowest_id_or_random() {
        let arena = ChainArena::new();
        let mut g = RngStreams::new(1).stream("router", 0);
        let mut lr = build("kind: least_requests");
        assert_eq!(lr.route(SimTime(0), &req(1, None), &arena, &cands(&[3, 1, 1]), &mut g), ReplicaId(1));
        let mut lrr = build("kind: least_requests\ntie_break: random");
        let picks: Vec<u32> =
            (0..200).map(|i| lrr.route(SimTime(i), &req(i, None), &arena, &cands(&[3, 1, 1]), &mut g).0).collect();
        assert!(!picks.contains(&0) && picks.contains(&1) && picks.contains(&2));
    }

    #[test]
    fn power_of_two_picks_the_less_loaded_of_two_distinct() {
        let arena = ChainArena::new();
        let mut g = RngStreams::new(2).stream("router", 0);
        let mut p2 = build("kind: power_of_two");
        // With two candidates both are always drawn, so the idle one always wins.
        for i in 0..50 {
            assert_eq!(p2.route(SimTime(i), &req(i, None), &arena, &cands(&[5, 0]), &mut g), ReplicaId(1));
        }
        // The most loaded of three never wins (it always loses its pairing).
        let picks: Vec<u32> =
            (0..300).map(|i| p2.route(SimTime(i), &req(i, None), &arena, &cands(&[9, 0, 1]), &mut g).0).collect();
        assert!(!picks.contains(&0) && picks.contains(&1) && picks.contains(&2));
        assert_eq!(p2.route(SimTime(0), &req(0, None), &arena, &cands(&[4]), &mut g), ReplicaId(0));
    }

    #[test]
    fn kubernetes_service_balances_connections_not_requests() {
        let arena = ChainArena::new();
        let mut g = RngStreams::new(3).stream("router", 0);
        let four = cands(&[0, 0, 0, 0]);
        // One keep-alive connection: every request lands on the same pod.
        let mut one = build("kind: kubernetes_service\nconnections: 1");
        let first = one.route(SimTime(0), &req(0, None), &arena, &four, &mut g);
        assert!((1..100).all(|i| one.route(SimTime(i), &req(i, None), &arena, &four, &mut g) == first));
        // Its pod leaves: the connection is reopened to a remaining pod and sticks there.
        let rest: Vec<Candidate> = four.iter().copied().filter(|c| c.id != first).collect();
        let next = one.route(SimTime(200), &req(200, None), &arena, &rest, &mut g);
        assert_ne!(next, first);
        assert!((201..220).all(|i| one.route(SimTime(i), &req(i, None), &arena, &rest, &mut g) == next));
        // max_requests_per_connection = 1 is a new random connection per request.
        let mut short = build("kind: kubernetes_service\nconnections: 1\nmax_requests_per_connection: 1");
        let picks: Vec<u32> =
            (0..200).map(|i| short.route(SimTime(i), &req(i, None), &arena, &four, &mut g).0).collect();
        assert!((0..4).all(|p| picks.contains(&p)));
        // No keep-alive: random per request.
        let mut pr = build("kind: kubernetes_service\nper_request: true");
        let picks: Vec<u32> = (0..200).map(|i| pr.route(SimTime(i), &req(i, None), &arena, &four, &mut g).0).collect();
        assert!((0..4).all(|p| picks.contains(&p)));
        // Session hash: a session always uses the same connection, hence the same pod.
        let mut sh = build("kind: kubernetes_service\nconnections: 8\nassignment: session_hash");
        let s = sh.route(SimTime(0), &req(0, Some(99)), &arena, &four, &mut g);
        for i in 1..50 {
            sh.route(SimTime(i), &req(i, None), &arena, &four, &mut g);
            assert_eq!(sh.route(SimTime(i), &req(1000 + i, Some(99)), &arena, &four, &mut g), s);
        }
    }

    #[test]
    fn baseline_configs_reject_unknown_keys() {
        assert!(serde_saphyr::from_str::<RouterConfig>("kind: least_requests\ntie_brake: random").is_err());
        assert!(serde_saphyr::from_str::<RouterConfig>("kind: kubernetes_service\nconection: 3").is_err());
        assert!(serde_saphyr::from_str::<RouterConfig>("kind: power_of_two\nx: 1").is_err());
        let rc: RouterConfig = serde_saphyr::from_str("kind: kubernetes_service\nconnections: 0").unwrap();
        assert!(rc.build(&RouterBuildCtx::default()).is_err());
        assert_eq!(serde_saphyr::from_str::<RouterConfig>("kind: round_robin").unwrap(), RouterConfig::RoundRobin);
    }
}
