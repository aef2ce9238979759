//! Prometheus text scraping of vLLM's `/metrics` into [`ReplicaSample`]s (the same struct the
//! simulator's ticks and its routers' scrapes use). Series with the same name and different
//! labels (several engines, `model_name`s) are summed; gauges V0/V1 names are both accepted.

use crate::metrics::ReplicaSample;
use crate::units::ReplicaId;

/// Metric names asked for with `?name[]=` (vLLM serves only those, ~8× cheaper than the page).
pub const SCRAPED_NAMES: [&str; 10] = [
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prefix_cache_queries",
    "vllm:prefix_cache_hits",
    "vllm:prompt_tokens",
    "vllm:generation_tokens",
    "vllm:num_preemptions",
    "vllm:cache_config_info",
    "vllm:gpu_cache_usage_perc",
];

/// Values read from one page (`None`: the page did not have the series).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scraped {
    pub running: Option<f64>,
    pub waiting: Option<f64>,
    pub kv_usage: Option<f64>,
    pub prefix_queries: Option<f64>,
    pub prefix_hits: Option<f64>,
    pub prompt_tokens: Option<f64>,
    pub generation_tokens: Option<f64>,
    pub preemptions: Option<f64>,
    pub num_gpu_blocks: Option<f64>,
}

fn add(slot: &mut Option<f64>, v: f64) {
    *slot = Some(slot.unwrap_or(0.0) + v);
}

/// Parses Prometheus text exposition format (comments, labels, optional timestamps).
pub fn parse(text: &str) -> Scraped {
    let mut s = Scraped::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match line.find('{') {
            Some(b) => match line[b..].find('}') {
                Some(e) => (&line[..b], &line[b + 1..b + e], &line[b + e + 1..]),
                None => continue,
            },
            None => match line.find(char::is_whitespace) {
                Some(p) => (&line[..p], "", &line[p..]),
                None => continue,
            },
        };
        let Some(v) = rest.split_whitespace().next().and_then(|x| x.parse::<f64>().ok()) else { continue };
        if !v.is_finite() {
            continue;
        }
        let base = name.strip_suffix("_total").unwrap_or(name);
        match base {
            "vllm:num_requests_running" => add(&mut s.running, v),
            "vllm:num_requests_waiting" => add(&mut s.waiting, v),
            // Several engines: the mean is reported (sum / count would need counting; vLLM
            // exposes one engine per server in practice).
            "vllm:kv_cache_usage_perc" | "vllm:gpu_cache_usage_perc" => {
                s.kv_usage = Some(s.kv_usage.unwrap_or(0.0).max(v))
            }
            "vllm:prefix_cache_queries" | "vllm:gpu_prefix_cache_queries" => add(&mut s.prefix_queries, v),
            "vllm:prefix_cache_hits" | "vllm:gpu_prefix_cache_hits" => add(&mut s.prefix_hits, v),
            "vllm:prompt_tokens" => add(&mut s.prompt_tokens, v),
            "vllm:generation_tokens" => add(&mut s.generation_tokens, v),
            "vllm:num_preemptions" => add(&mut s.preemptions, v),
            "vllm:cache_config_info" => {
                if let Some(n) = label(labels, "num_gpu_blocks").and_then(|x| x.parse::<f64>().ok()) {
                    s.num_gpu_blocks = Some(n);
                }
            }
            _ => {}
        }
    }
    s
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = labels;
    while let Some(eq) = rest.find('=') {
        let k = rest[..eq].trim().trim_start_matches(',').trim();
        let after = &rest[eq + 1..];
        let after = after.strip_prefix('"')?;
        let end = after.find('"')?;
        if k == key {
            return Some(&after[..end]);
        }
        rest = &after[end + 1..];
    }
    None
}

impl Scraped {
    /// A sample relative to a baseline scrape (counters count from the run's start).
    pub fn sample(&self, replica: ReplicaId, base: &Scraped) -> ReplicaSample {
        let d = |v: Option<f64>, b: Option<f64>| (v.unwrap_or(0.0) - b.unwrap_or(0.0)).max(0.0).round() as u64;
        let kv = self.kv_usage.unwrap_or(0.0);
        let blocks = self.num_gpu_blocks.unwrap_or(0.0) as u32;
        ReplicaSample {
            replica,
            running: self.running.unwrap_or(0.0).max(0.0) as u32,
            waiting: self.waiting.unwrap_or(0.0).max(0.0) as u32,
            kv_usage: kv,
            cached_blocks: 0,
            num_gpu_blocks: blocks,
            prefix_queries: d(self.prefix_queries, base.prefix_queries),
            prefix_hits: d(self.prefix_hits, base.prefix_hits),
            prompt_tokens: d(self.prompt_tokens, base.prompt_tokens),
            generation_tokens: d(self.generation_tokens, base.generation_tokens),
            preemptions: d(self.preemptions, base.preemptions),
            steps: 0,
        }
    }
    /// Whether the page looked like vLLM's at all.
    pub fn is_vllm(&self) -> bool {
        self.running.is_some() || self.waiting.is_some() || self.kv_usage.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vllm_v1_page() {
        let page = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny-llama"} 3.0
vllm:num_requests_waiting{engine="0",model_name="tiny-llama"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="tiny-llama"} 0.25
vllm:prefix_cache_queries_total{engine="0",model_name="tiny-llama"} 30720.0
vllm:prefix_cache_hits_total{engine="0",model_name="tiny-llama"} 22848.0
vllm:prompt_tokens_total{engine="0",model_name="tiny-llama"} 1000.0
vllm:generation_tokens_total{engine="0",model_name="tiny-llama"} 500.0 1712345678000
vllm:num_preemptions_total{engine="0",model_name="tiny-llama"} 29.0
vllm:prompt_tokens_created{engine="0",model_name="tiny-llama"} 1.7e9
vllm:cache_config_info{block_size="32",cache_dtype="auto",num_gpu_blocks="96",prefix_caching_hash_algo="sha256"} 1.0
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="tiny-llama"} 0.0
"#;
        let s = parse(page);
        assert_eq!(s.running, Some(3.0));
        assert_eq!(s.waiting, Some(2.0));
        assert_eq!(s.kv_usage, Some(0.25));
        assert_eq!((s.prefix_queries, s.prefix_hits), (Some(30720.0), Some(22848.0)));
        assert_eq!((s.prompt_tokens, s.generation_tokens, s.preemptions), (Some(1000.0), Some(500.0), Some(29.0)));
        assert_eq!(s.num_gpu_blocks, Some(96.0));
        let base = Scraped { prefix_queries: Some(720.0), preemptions: Some(30.0), ..Default::default() };
        let smp = s.sample(ReplicaId(1), &base);
        assert_eq!((smp.prefix_queries, smp.prefix_hits, smp.preemptions), (30000, 22848, 0));
        assert_eq!((smp.running, smp.waiting, smp.num_gpu_blocks), (3, 2, 96));
        assert!(s.is_vllm() && !parse("garbage\nfoo 1\n").is_vllm());
    }
}
