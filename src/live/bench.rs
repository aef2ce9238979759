//! `servesim live-bench`: the live client's own speed against a fast mock server (in-process
//! by default): constant-rate open-loop arrivals, long streams to hold many connections open,
//! and the client's scheduling lag (send − scheduled) percentiles.

use super::{LiveOptions, LiveRun};
use crate::content::{ChainArena, Content, Piece};
use crate::metrics::Outcome;
use crate::units::{RequestId, SimTime, Tokens};
use crate::workload::{RequestSpec, Workload};
use anyhow::Result;
use smallvec::smallvec;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct LiveBenchArgs {
    /// Requests per second (constant spacing).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    #[arg(long, default_value = "10s", value_parser = super::args::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value_t = 32)]
    pub prompt_tokens: u32,
    #[arg(long, default_value_t = 20)]
    pub output_tokens: u32,
    /// Mock time to first token.
    #[arg(long, default_value = "100ms", value_parser = super::args::parse_duration)]
    pub ttft: Duration,
    /// Mock inter-token time (long streams → many concurrent connections).
    #[arg(long, default_value = "125ms", value_parser = super::args::parse_duration)]
    pub itl: Duration,
    /// Use this endpoint instead of the in-process mock.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Nice value for the client's threads (pacing thread and runtime workers) and the
    /// process's autogroup; negative values need CAP_SYS_NICE and are skipped with a notice
    /// otherwise; 0 leaves it alone.
    #[arg(long, default_value_t = -10, allow_hyphen_values = true)]
    pub nice: i32,
    /// Run the client's threads under SCHED_RR at this real-time priority (1–99) instead of a
    /// nice value, so other processes on a busy machine cannot delay its sends (needs
    /// CAP_SYS_NICE). The mock server stays an ordinary process.
    #[arg(long)]
    pub realtime: Option<i32>,
}

/// Constant-rate requests with private prompts.
pub struct ConstantWorkload {
    next: u64,
    n: u64,
    interval_ns: f64,
    prompt: u32,
    output: u32,
    arena: ChainArena,
}

impl ConstantWorkload {
    pub fn new(rate: f64, duration: Duration, prompt: u32, output: u32) -> Self {
        let n = (rate * duration.as_secs_f64()).floor() as u64;
        ConstantWorkload { next: 0, n, interval_ns: 1e9 / rate, prompt, output, arena: ChainArena::new() }
    }
}

impl Workload for ConstantWorkload {
    fn peek_time(&self) -> Option<SimTime> {
        (self.next < self.n).then_some(SimTime((self.next as f64 * self.interval_ns) as u64))
    }
    fn pop(&mut self) -> RequestSpec {
        let i = self.next;
        self.next += 1;
        RequestSpec {
            id: RequestId(i),
            arrival: SimTime((i as f64 * self.interval_ns) as u64),
            input: Tokens(self.prompt),
            output: Tokens(self.output),
            content: Content { shared: None, pieces: smallvec![Piece { key: i ^ 0xBE4C, start: 0, len: self.prompt }] },
            output_key: i,
            session: None,
            group: None,
            private_reuse: false,
            novel_private: false,
        }
    }
    fn arena(&self) -> &ChainArena {
        &self.arena
    }
    fn mean_rate(&self) -> Option<f64> {
        Some(1e9 / self.interval_ns)
    }
}

/// Thread name of the in-process mock server's runtime.
pub const MOCK_THREAD: &str = "servesim-mock";

/// CPU seconds used so far by the client's threads: the runtime workers and the main
/// (pacing) thread, i.e. every thread but the mock's.
fn client_cpu() -> f64 {
    super::cpu_seconds_by_thread().iter().filter(|(name, _)| name != MOCK_THREAD).map(|x| x.1).sum()
}

/// Largest number of requests open at once (sent, not yet finished), from the rows.
pub fn max_concurrent(run: &LiveRun) -> usize {
    let mut ev: Vec<(u64, i32)> = Vec::new();
    for r in &run.rows {
        if let (Some(s), Some(e)) = (r.res.sent_ns, r.res.last_token_ns) {
            ev.push((s, 1));
            ev.push((e, -1));
        }
    }
    ev.sort();
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in ev {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

pub fn cmd_live_bench(a: LiveBenchArgs) -> Result<ExitCode> {
    anyhow::ensure!(a.rate.is_finite() && a.rate > 0.0, "--rate must be > 0");
    // The client: its own runtime (and the pacing thread, this one) at the requested nice.
    use super::Priority;
    let wanted = match a.realtime {
        Some(p) => {
            anyhow::ensure!((1..=99).contains(&p), "--realtime expects a priority in 1..=99");
            Some(Priority::RealTime(p))
        }
        None => (a.nice != 0).then_some(Priority::Nice(a.nice)),
    };
    let (priority, nice_note) = match wanted {
        None => (None, "default priority".to_string()),
        Some(p) => match p.apply_to_thread() {
            Ok(()) => {
                let mut note = match p {
                    Priority::Nice(n) => format!("nice {n}"),
                    Priority::RealTime(r) => format!("SCHED_RR {r}"),
                };
                if let Priority::Nice(n) = p {
                    match super::set_autogroup_nice(n) {
                        Ok(()) => note.push_str(", autogroup too"),
                        Err(e) => note.push_str(&format!(", autogroup unchanged: {e}")),
                    }
                }
                (Some(p), note)
            }
            Err(e) => (None, format!("default priority ({p:?} refused: {e})")),
        },
    };
    let rt = super::runtime_with(priority)?;
    // The in-process mock runs on separate threads at normal priority, so its work is not
    // counted as the client's and does not sit in the client's task queues.
    let mock_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().thread_name(MOCK_THREAD).build()?;
    let mock = match &a.endpoint {
        Some(_) => None,
        None => Some(mock_rt.block_on(super::mock::MockServer::start(super::mock::MockConfig {
            ttft: a.ttft,
            itl: a.itl,
            continuous_usage: false,
            ..Default::default()
        }))?),
    };
    let endpoint = match (&a.endpoint, &mock) {
        (Some(e), _) => super::normalize_endpoint(e)?,
        (None, Some(m)) => m.url(),
        _ => unreachable!(),
    };
    let mut opts = LiveOptions::new(vec![endpoint], "mock", 16, a.duration);
    opts.settings.stall_timeout = Duration::from_secs(30);
    let w = Box::new(ConstantWorkload::new(a.rate, a.duration, a.prompt_tokens, a.output_tokens));
    let streams = crate::rng::RngStreams::new(1);
    println!(
        "servesim live-bench: {} req/s for {:.1} s, {} prompt / {} output tokens, mock TTFT {:?} ITL {:?} ({} cores)",
        a.rate,
        a.duration.as_secs_f64(),
        a.prompt_tokens,
        a.output_tokens,
        a.ttft,
        a.itl,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let cpu0 = client_cpu();
    let run = super::drive(&rt, &opts, w, &streams, Arc::new(AtomicBool::new(false)))?;
    let cpu = client_cpu() - cpu0;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2);
    let live = super::live_stats(&run);
    let completed = run.rows.iter().filter(|r| r.outcome == Outcome::Completed).count();
    let maxc = max_concurrent(&run);
    let server_max = mock.as_ref().map(|m| m.stats.max_running.load(std::sync::atomic::Ordering::Relaxed));
    let ms = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{:.3}", x * 1e3));
    let lag = &live["send_lag_s"];
    let start = &live["task_start_lag_s"];
    println!(
        "requests {} (completed {completed}, failed {}), wall {:.2} s, max concurrent streams {maxc}{}",
        run.rows.len(),
        live["requests"]["failed"],
        run.wall.as_secs_f64(),
        server_max.map_or(String::new(), |m| format!(" (server saw {m})"))
    );
    println!(
        "client scheduling lag (sent − scheduled): p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        ms(&lag["p50"]),
        ms(&lag["p90"]),
        ms(&lag["p99"]),
        ms(&lag["max"])
    );
    let disp = &live["dispatch_lag_s"];
    println!(
        "  scheduler dispatch (handed to a task − scheduled): p50 {} ms, p99 {} ms, max {} ms",
        ms(&disp["p50"]),
        ms(&disp["p99"]),
        ms(&disp["max"])
    );
    println!(
        "  task start (a worker began the request − scheduled): p50 {} ms, p99 {} ms, max {} ms",
        ms(&start["p50"]),
        ms(&start["p99"]),
        ms(&start["max"])
    );
    println!(
        "  client CPU: {cpu:.2} s over {:.2} s wall = {:.2} cores busy (pacing thread + {workers} runtime workers, {nice_note}; {} cores in the machine)",
        run.wall.as_secs_f64(),
        cpu / run.wall.as_secs_f64().max(1e-9),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    if let Some(p) = &a.json {
        let v = serde_json::json!({
            "rate": a.rate, "duration_s": a.duration.as_secs_f64(), "requests": run.rows.len(),
            "completed": completed, "max_concurrent_streams": maxc, "server_max_running": server_max,
            "send_lag_s": lag, "task_start_lag_s": start, "dispatch_lag_s": &live["dispatch_lag_s"], "wall_s": run.wall.as_secs_f64(),
            "client_cpu_s": cpu, "client_threads": workers + 1, "nice": nice_note,
        });
        crate::metrics::write_atomic(p, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(ExitCode::from(crate::app::EXIT_OK))
}
