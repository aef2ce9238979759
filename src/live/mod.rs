//! Live mode: drive real OpenAI-compatible endpoints with a scenario's workload and record the
//! same per-request schema as the simulator (`requests.csv`, `summary.json`, `timeseries.csv`),
//! plus live-only detail (`live_requests.csv`, `live.json`).
//!
//! Pacing: a synchronous scheduler loop on the calling thread owns the [`Workload`] and the
//! [`Router`]. It waits for the next arrival on the completion channel with a timeout
//! (`recv_timeout`, ~60 µs precise on Linux) and busy-waits the last [`SPIN`], then hands the
//! request to a tokio task. Times are offsets from one start instant `t0`, so there is no drift:
//! request `i` is due at `t0 + arrival_i / rate_scale` whatever happened before. Latencies are
//! measured from that scheduled instant (coordinated-omission safe); the send lag is recorded
//! separately. Completions come back on the same channel and are fed to
//! [`Workload::on_finished`] (closed-loop users, multi-turn sessions) and to the router.

pub mod args;
pub mod bench;
pub mod client;
pub mod mock;
pub mod scrape;
pub mod sse;
pub mod tokens;

use crate::content::ChainArena;
use crate::metrics::Outcome;
use crate::metrics::{ReplicaSample, RequestRecord, Stats, TickRow};
use crate::rng::RngStreams;
use crate::router::{Candidate, Router, RouterBuildCtx, RouterConfig};
use crate::units::{ReplicaId, SimTime};
use crate::workload::{Finish, RequestSpec, Workload};
use anyhow::{Context, Result};
use client::{LiveResult, RequestJob, RequestSettings};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The last stretch before a send time that the scheduler busy-waits.
pub const SPIN: Duration = Duration::from_micros(250);

/// How a live run is driven.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Base URLs (`http://host:port`, no trailing `/v1`).
    pub endpoints: Vec<String>,
    pub settings: RequestSettings,
    pub router: RouterConfig,
    /// Folder for router config files.
    pub base_dir: std::path::PathBuf,
    /// KV block size the router assumes (Candidate.block_size).
    pub block_size: u32,
    /// Scrape `/metrics` into timeseries rows (and for metric-reading routers).
    pub metrics: bool,
    pub metrics_interval: Duration,
    /// Workload clock speed: arrival rates × S, think times ÷ S.
    pub rate_scale: f64,
    /// Arrival window (wall time).
    pub duration: Duration,
    /// After the window, wait this long for in-flight requests, then abort them.
    pub drain: Duration,
    pub max_concurrency: Option<usize>,
    pub max_requests: Option<u64>,
    pub connect_timeout: Duration,
    pub progress: bool,
}

impl LiveOptions {
    /// Programmatic runs (tests, `live-bench`): completions with token-id prompts and vLLM
    /// extensions, vocabulary 4096, no retries, round-robin, no scraping, no progress bar;
    /// callers change the fields they care about.
    pub fn new(endpoints: Vec<String>, model: &str, block_size: u32, duration: Duration) -> LiveOptions {
        LiveOptions {
            endpoints,
            settings: RequestSettings {
                model: model.into(),
                api: client::Api::Completions,
                vocab: 4096,
                vllm_extensions: true,
                retries: 0,
                retry_backoff: Duration::from_millis(100),
                request_timeout: Duration::from_secs(120),
                stall_timeout: Duration::from_secs(60),
                api_key: None,
            },
            router: RouterConfig::RoundRobin,
            base_dir: ".".into(),
            block_size,
            metrics: false,
            metrics_interval: Duration::from_secs(1),
            rate_scale: 1.0,
            duration,
            drain: Duration::from_secs(60),
            max_concurrency: None,
            max_requests: None,
            connect_timeout: Duration::from_secs(5),
            progress: false,
        }
    }
}

/// One request's full account.
#[derive(Clone, Debug)]
pub struct LiveRow {
    pub scheduled_ns: u64,
    /// When the scheduler handed the request to a task (its own pacing precision).
    pub dispatched_ns: u64,
    pub session: Option<u64>,
    pub group: Option<u32>,
    pub outcome: Outcome,
    pub res: LiveResult,
}

impl LiveRow {
    /// The simulator-schema record: arrival = scheduled send time, `scheduled` = actual send
    /// time (so `queue_s` is the client's send lag), replica = endpoint index.
    pub fn record(&self) -> RequestRecord {
        let r = &self.res;
        RequestRecord {
            id: r.id,
            arrival: SimTime(self.scheduled_ns),
            replica: Some(ReplicaId(r.endpoint as u32)),
            input_tokens: r.prompt_tokens_server.unwrap_or(r.prompt_tokens_sent),
            output_tokens: r.completion_tokens,
            cached_tokens: r.cached_tokens.unwrap_or(0),
            scheduled: r.sent_ns.map(|t| SimTime(t.max(self.scheduled_ns))),
            first_token: r.first_token_ns.map(|t| SimTime(t.max(self.scheduled_ns))),
            last_token: r.last_token_ns.map(|t| SimTime(t.max(self.scheduled_ns))),
            preemptions: 0,
            outcome: self.outcome,
            session: self.session,
            group: self.group,
        }
    }
}

/// Per-endpoint scrape bookkeeping.
#[derive(Clone, Debug, Default)]
pub struct ScrapeStats {
    pub ok: u64,
    pub failed: u64,
    pub vllm: bool,
    pub base: scrape::Scraped,
    pub last: Option<ReplicaSample>,
}

/// Everything a live run produced.
#[derive(Debug, Default)]
pub struct LiveRun {
    pub rows: Vec<LiveRow>,
    pub ticks: Vec<TickRow>,
    pub scrapes: Vec<ScrapeStats>,
    /// From `t0` to the last event.
    pub wall: Duration,
    pub interrupted: bool,
    /// Requests aborted at the drain deadline or on Ctrl-C.
    pub aborted: u64,
    /// Wall-clock time (Unix seconds) of `t0`, the zero of every time in the run's records, so
    /// that server-side traces (vLLM step traces, logs) can be put on the same axis.
    pub start_unix_s: f64,
}

enum Msg {
    Done(Box<LiveResult>),
    Wake,
}

struct Pending {
    spec: RequestSpec,
    endpoint: usize,
    scheduled_ns: u64,
    dispatched_ns: u64,
    task: tokio::task::JoinHandle<()>,
}

/// Normalises a user-given endpoint: trims `/`, a trailing `/v1`, requires http(s).
pub fn normalize_endpoint(s: &str) -> Result<String> {
    let t = s.trim().trim_end_matches('/');
    let t = t.strip_suffix("/v1").unwrap_or(t);
    let u = reqwest::Url::parse(t).with_context(|| format!("endpoint `{s}` is not a URL"))?;
    anyhow::ensure!(
        matches!(u.scheme(), "http" | "https") && u.host().is_some(),
        "endpoint `{s}` must be an http:// or https:// URL with a host"
    );
    Ok(t.to_string())
}

/// An HTTP client that contacts only the URLs it is given: no proxy from the environment, and
/// redirects followed only within the same origin.
pub fn http_client(connect_timeout: Duration, pool: usize) -> Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(|a| {
        let same = a.previous().first().is_some_and(|p| {
            p.scheme() == a.url().scheme()
                && p.host() == a.url().host()
                && p.port_or_known_default() == a.url().port_or_known_default()
        });
        if same && a.previous().len() < 4 { a.follow() } else { a.stop() }
    });
    Ok(reqwest::Client::builder()
        .no_proxy()
        .redirect(policy)
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("servesim/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

fn ns_since(t0: Instant) -> u64 {
    Instant::now().saturating_duration_since(t0).as_nanos() as u64
}

/// A tokio runtime for live mode (worker threads = available cores, at least 2).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    runtime_with(None)
}

/// Thread name of the live client's runtime workers (CPU accounting in `live-bench`).
pub const CLIENT_THREAD: &str = "servesim-live";

/// The live client's runtime. Workers look at the shared (injection) queue every 8 tasks
/// instead of tokio's 61: requests are spawned from the pacing thread, so under a backlog of
/// stream chunks a new request would otherwise wait behind up to 61 of them. With
/// `nice = Some(n)` every worker lowers its nice value to `n` when it starts (best effort; see
/// [`set_thread_nice`]), so other processes' CPU use delays the client less.
pub fn runtime_with(priority: Option<Priority>) -> Result<tokio::runtime::Runtime> {
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2);
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(n).enable_all().thread_name(CLIENT_THREAD).global_queue_interval(8);
    if let Some(p) = priority {
        b.on_thread_start(move || {
            let _ = p.apply_to_thread();
        });
    }
    Ok(b.build()?)
}

/// Scheduling priority for the client's threads (`live-bench`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Priority {
    /// A nice value (per thread, and for the process's autogroup, see [`set_autogroup_nice`]).
    Nice(i32),
    /// SCHED_RR at this real-time priority (1–99): the client preempts every ordinary process.
    RealTime(i32),
}

impl Priority {
    pub fn apply_to_thread(self) -> std::result::Result<(), String> {
        match self {
            Priority::Nice(n) => set_thread_nice(n),
            Priority::RealTime(p) => set_thread_realtime(p),
        }
    }
}

/// Sets the nice value of this process's autogroup (Linux with `sched_autogroup_enabled`: the
/// CPU is shared fairly between sessions first, so a thread's own nice value only counts
/// against threads of the same session; on a machine busy with other sessions, this is what
/// gives the client its share). It applies to the whole session (the calling shell included).
pub fn set_autogroup_nice(nice: i32) -> std::result::Result<(), String> {
    match std::fs::write("/proc/self/autogroup", nice.to_string()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("no autogroups on this system".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Puts the calling thread in SCHED_RR at `prio` (needs CAP_SYS_NICE). The kernel's real-time
/// throttling (`sched_rt_runtime_us`) still leaves ordinary processes 5 % of the CPU.
pub fn set_thread_realtime(prio: i32) -> std::result::Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: prio };
        // SAFETY: plain syscall on the calling thread's own id with a valid parameter struct.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
            libc::sched_setscheduler(tid, libc::SCHED_RR, &param)
        };
        if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error().to_string()) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = prio;
        Err("real-time scheduling is only set on Linux".into())
    }
}

/// Sets the calling thread's nice value (Linux keeps one per thread). Negative values need
/// CAP_SYS_NICE (root, or `setcap cap_sys_nice+ep`); the error says why it was not applied.
pub fn set_thread_nice(nice: i32) -> std::result::Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread's own id; no memory is shared.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice)
        };
        if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error().to_string()) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = nice;
        Err("thread priorities are only set on Linux".into())
    }
}

/// CPU seconds (user + system) used so far by this process's threads, grouped by thread name
/// prefix (`/proc/self/task/*/stat`; Linux only, empty elsewhere).
pub fn cpu_seconds_by_thread() -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return out };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let (Some(a), Some(b)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[a + 1..b].to_string();
        let f: Vec<&str> = stat[b + 1..].split_whitespace().collect();
        // Fields after the name: state(0) … utime(11) stime(12).
        let (Some(u), Some(s)) =
            (f.get(11).and_then(|x| x.parse::<f64>().ok()), f.get(12).and_then(|x| x.parse::<f64>().ok()))
        else {
            continue;
        };
        match out.iter_mut().find(|x| x.0 == name) {
            Some(x) => x.1 += (u + s) / hz,
            None => out.push((name, (u + s) / hz)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn scrape_once(client: &reqwest::Client, url: &str, timeout: Duration) -> Option<scrape::Scraped> {
    let resp = tokio::time::timeout(timeout, client.get(url).send()).await.ok()?.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let text = tokio::time::timeout(timeout, resp.text()).await.ok()?.ok()?;
    Some(scrape::parse(&text))
}

struct ScrapeShared {
    latest: Mutex<Vec<ReplicaSample>>,
    ticks: Mutex<Vec<TickRow>>,
    stats: Mutex<Vec<ScrapeStats>>,
}

/// Drives `workload` against the endpoints until its arrivals (within `opts.duration`) are
/// sent and answered, the drain deadline passes, or `stop` is set. Every request the workload
/// issued is in the result exactly once.
pub fn drive(
    rt: &tokio::runtime::Runtime,
    opts: &LiveOptions,
    mut workload: Box<dyn Workload>,
    streams: &RngStreams,
    stop: Arc<AtomicBool>,
) -> Result<LiveRun> {
    anyhow::ensure!(!opts.endpoints.is_empty(), "no endpoint given");
    anyhow::ensure!(opts.rate_scale.is_finite() && opts.rate_scale > 0.0, "--rate-scale must be > 0");
    let n_ep = opts.endpoints.len();
    let client = http_client(opts.connect_timeout, 4096)?;
    let path = match opts.settings.api {
        client::Api::Completions => "/v1/completions",
        client::Api::Chat => "/v1/chat/completions",
    };
    let urls: Vec<Arc<str>> = opts.endpoints.iter().map(|e| Arc::from(format!("{e}{path}"))).collect();
    let settings = Arc::new(opts.settings.clone());
    let ctx = RouterBuildCtx { base_dir: opts.base_dir.clone(), replicas: n_ep as u32 };
    let mut router: Box<dyn Router> = opts.router.build(&ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rng = streams.stream("router", 0);

    // Metrics: a baseline scrape (counters are reported from the run's start), then a loop.
    let scrape_interval = match (opts.metrics, router.scrape()) {
        (_, Some(sc)) => {
            let r = Duration::from_nanos(sc.interval.as_nanos()).max(Duration::from_millis(10));
            Some(if opts.metrics { r.min(opts.metrics_interval) } else { r })
        }
        (true, None) => Some(opts.metrics_interval),
        (false, None) => None,
    };
    let metric_urls: Vec<String> = opts.endpoints.iter().map(|e| format!("{e}/metrics")).collect();
    let shared = Arc::new(ScrapeShared {
        latest: Mutex::new(
            (0..n_ep).map(|i| ReplicaSample { replica: ReplicaId(i as u32), ..Default::default() }).collect(),
        ),
        ticks: Mutex::new(Vec::new()),
        stats: Mutex::new(vec![ScrapeStats::default(); n_ep]),
    });
    if scrape_interval.is_some() {
        let bases = rt.block_on(async {
            let mut v = Vec::new();
            for u in &metric_urls {
                v.push(scrape_once(&client, u, Duration::from_secs(5)).await);
            }
            v
        });
        let mut st = shared.stats.lock().unwrap();
        for (i, b) in bases.into_iter().enumerate() {
            match b {
                Some(b) => {
                    st[i].vllm = b.is_vllm();
                    st[i].base = b;
                }
                None => eprintln!("warning: {} did not answer; metrics start from zero", metric_urls[i]),
            }
        }
    }

    let (tx, rx) = mpsc::channel::<Msg>();
    {
        let (stop, tx) = (stop.clone(), tx.clone());
        rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
                let _ = tx.send(Msg::Wake);
            }
        });
    }
    let t0 = Instant::now();
    let start_unix_s =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let mut scrapers = Vec::new();
    if let Some(every) = scrape_interval {
        for (i, u) in metric_urls.iter().enumerate() {
            let (client, u, shared) = (client.clone(), u.clone(), shared.clone());
            scrapers.push(rt.spawn(async move {
                let mut iv = tokio::time::interval(every);
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    iv.tick().await;
                    let got = scrape_once(&client, &u, every.max(Duration::from_millis(500))).await;
                    let now = ns_since(t0);
                    let mut st = shared.stats.lock().unwrap();
                    match got {
                        Some(s) => {
                            st[i].ok += 1;
                            st[i].vllm |= s.is_vllm();
                            let sample = s.sample(ReplicaId(i as u32), &st[i].base);
                            st[i].last = Some(sample);
                            shared.latest.lock().unwrap()[i] = sample;
                            shared.ticks.lock().unwrap().push(TickRow { time: SimTime(now), sample });
                        }
                        None => st[i].failed += 1,
                    }
                }
            }));
        }
    }

    let scale = opts.rate_scale;
    let to_wall = |w: SimTime| Duration::from_nanos((w.0 as f64 / scale).round() as u64);
    let to_work = |wall_ns: u64| SimTime((wall_ns as f64 * scale).round() as u64);
    let window_end = opts.duration;
    let hard_end = window_end + opts.drain;
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut in_flight = vec![0u32; n_ep];
    let mut rows: Vec<LiveRow> = Vec::new();
    let mut issued = 0u64;
    let mut interrupted = false;
    let pb = progress_bar(opts.progress, window_end);
    let mut last_pb = Instant::now();
    let (n_ok, n_failed) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));

    // Generated ids of completed session turns, by output key (resent as history).
    let answers: std::cell::RefCell<HashMap<u64, Arc<Vec<u32>>>> = Default::default();
    // Completion handling (shared by the wait and spin paths).
    let on_msg = |m: Msg,
                  workload: &mut Box<dyn Workload>,
                  router: &mut Box<dyn Router>,
                  pending: &mut HashMap<u64, Pending>,
                  in_flight: &mut Vec<u32>,
                  rows: &mut Vec<LiveRow>| {
        let Msg::Done(r) = m else { return };
        let Some(p) = pending.remove(&r.id.0) else { return };
        in_flight[p.endpoint] = in_flight[p.endpoint].saturating_sub(1);
        let now = ns_since(t0);
        let rid = ReplicaId(p.endpoint as u32);
        if let Some(ft) = r.first_token_ns {
            router.on_first_token(SimTime(ft), r.id, rid);
        }
        router.on_finished(SimTime(now), r.id, rid);
        let ok = r.ok();
        if ok {
            n_ok.set(n_ok.get() + 1);
        } else {
            n_failed.set(n_failed.get() + 1);
        }
        if ok && !r.output_ids.is_empty() {
            answers.borrow_mut().insert(p.spec.output_key, Arc::new(r.output_ids.clone()));
        }
        workload.on_finished(to_work(now), &p.spec, if ok { Finish::Completed } else { Finish::Rejected });
        rows.push(LiveRow {
            scheduled_ns: p.scheduled_ns,
            dispatched_ns: p.dispatched_ns,
            session: p.spec.session,
            group: p.spec.group,
            outcome: if ok { Outcome::Completed } else { Outcome::Failed },
            res: *r,
        });
    };

    loop {
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(t0);
        if let Some(pb) = &pb
            && now.saturating_duration_since(last_pb) > Duration::from_millis(100)
        {
            last_pb = now;
            pb.set_position(elapsed.min(window_end).as_millis() as u64);
            pb.set_message(format!(
                "sent {issued}, ok {}, failed {}, in flight {}",
                n_ok.get(),
                n_failed.get(),
                pending.len()
            ));
        }
        let can_send =
            opts.max_requests.is_none_or(|m| issued < m) && opts.max_concurrency.is_none_or(|c| pending.len() < c);
        let next = if can_send { workload.peek_time().map(to_wall).filter(|&d| d < window_end) } else { None };
        let Some(due) = next else {
            // Nothing to send now: done when nothing is in flight (only a completion can make
            // a closed-loop workload issue more), else wait for completions until the deadline.
            if pending.is_empty() || elapsed >= hard_end {
                break;
            }
            let wait = (hard_end - elapsed).min(Duration::from_millis(50));
            if let Ok(m) = rx.recv_timeout(wait) {
                on_msg(m, &mut workload, &mut router, &mut pending, &mut in_flight, &mut rows);
            }
            continue;
        };
        if elapsed >= hard_end {
            break;
        }
        let target = t0 + due;
        if target > now + SPIN {
            let wait = (target - now - SPIN).min(Duration::from_millis(50));
            if let Ok(m) = rx.recv_timeout(wait) {
                on_msg(m, &mut workload, &mut router, &mut pending, &mut in_flight, &mut rows);
            }
            continue;
        }
        let mut handled = false;
        while Instant::now() < target {
            if let Ok(m) = rx.try_recv() {
                on_msg(m, &mut workload, &mut router, &mut pending, &mut in_flight, &mut rows);
                handled = true;
                break;
            }
            std::hint::spin_loop();
        }
        if handled {
            continue;
        }
        // Send it.
        let spec = workload.pop();
        issued += 1;
        let scheduled_ns = due.as_nanos() as u64;
        let cands: Vec<Candidate> = {
            let latest = shared.latest.lock().unwrap();
            (0..n_ep)
                .map(|i| Candidate {
                    id: ReplicaId(i as u32),
                    scraped: latest[i],
                    in_flight: in_flight[i],
                    block_size: opts.block_size,
                })
                .collect()
        };
        let ep = router.route(SimTime(ns_since(t0)), &spec, workload.arena(), &cands, &mut rng).0 as usize;
        let ep = ep.min(n_ep - 1);
        in_flight[ep] += 1;
        let pieces = tokens::prompt_pieces(&spec.content, workload.arena());
        let answers = tokens::Answers(
            pieces.iter().filter_map(|p| answers.borrow().get(&p.key).map(|ids| (p.key, ids.clone()))).collect(),
        );
        let job = RequestJob {
            id: spec.id,
            endpoint: ep,
            url: urls[ep].clone(),
            pieces,
            max_tokens: spec.output.0,
            answers,
            // A session's answer is part of its next turn's prompt.
            want_token_ids: spec.session.is_some(),
        };
        let (client, settings, tx) = (client.clone(), settings.clone(), tx.clone());
        let dispatched_ns = ns_since(t0);
        let task = rt.spawn(async move {
            let r = client::execute(client, settings, job, t0).await;
            let _ = tx.send(Msg::Done(Box::new(r)));
        });
        pending.insert(spec.id.0, Pending { spec, endpoint: ep, scheduled_ns, dispatched_ns, task });
    }

    // Drain what already arrived on the channel, then abort the rest (accounted as in flight).
    while let Ok(m) = rx.try_recv() {
        on_msg(m, &mut workload, &mut router, &mut pending, &mut in_flight, &mut rows);
    }
    let aborted = pending.len() as u64;
    for (_, p) in pending.drain() {
        p.task.abort();
        rows.push(LiveRow {
            scheduled_ns: p.scheduled_ns,
            dispatched_ns: p.dispatched_ns,
            session: p.spec.session,
            group: p.spec.group,
            outcome: Outcome::InFlight,
            res: LiveResult {
                id: p.spec.id,
                endpoint: p.endpoint,
                prompt_tokens_sent: p.spec.input.0,
                completion_requested: p.spec.output.0,
                ..Default::default()
            },
        });
    }
    let wall = t0.elapsed();
    for s in scrapers {
        s.abort();
    }
    // A closing scrape so totals cover the whole run.
    if scrape_interval.is_some() {
        let finals = rt.block_on(async {
            let mut v = Vec::new();
            for u in &metric_urls {
                v.push(scrape_once(&client, u, Duration::from_secs(5)).await);
            }
            v
        });
        let now = ns_since(t0);
        let mut st = shared.stats.lock().unwrap();
        for (i, f) in finals.into_iter().enumerate() {
            if let Some(s) = f {
                st[i].ok += 1;
                let sample = s.sample(ReplicaId(i as u32), &st[i].base);
                st[i].last = Some(sample);
                shared.ticks.lock().unwrap().push(TickRow { time: SimTime(now), sample });
            }
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    rows.sort_by_key(|r| r.res.id);
    let mut ticks = std::mem::take(&mut *shared.ticks.lock().unwrap());
    ticks.sort_by_key(|t| (t.time, t.sample.replica));
    let scrapes = shared.stats.lock().unwrap().clone();
    Ok(LiveRun { rows, ticks, scrapes, wall, interrupted, aborted, start_unix_s })
}

fn progress_bar(show: bool, window: Duration) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !show || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new(window.as_millis().max(1) as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {msg}") {
        pb.set_style(style);
    }
    Some(pb)
}

/// Live-only statistics for `live.json`.
pub fn live_stats(run: &LiveRun) -> serde_json::Value {
    let mut errors: std::collections::BTreeMap<&str, u64> = Default::default();
    let (mut prompt_mismatch, mut output_mismatch, mut usage_src, mut chunk_src, mut retried) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut send_lag, mut start_lag, mut itl) = (Vec::new(), Vec::new(), Vec::new());
    let dispatch_lag: Vec<f64> =
        run.rows.iter().map(|r| r.dispatched_ns.saturating_sub(r.scheduled_ns) as f64 * 1e-9).collect();
    let mut cached = 0u64;
    let mut counts = [0u64; 4];
    for row in &run.rows {
        let r = &row.res;
        counts[match row.outcome {
            Outcome::Completed => 0,
            Outcome::Failed => 1,
            Outcome::InFlight => 2,
            Outcome::Rejected => 3,
        }] += 1;
        if let Some(e) = r.error {
            *errors.entry(e.as_str()).or_default() += 1;
        }
        if r.attempts > 1 {
            retried += 1;
        }
        if let Some(s) = r.sent_ns {
            send_lag.push(s.saturating_sub(row.scheduled_ns) as f64 * 1e-9);
        }
        if r.attempts > 0 {
            start_lag.push(r.started_ns.saturating_sub(row.scheduled_ns) as f64 * 1e-9);
        }
        if let Some(p) = r.prompt_tokens_server
            && p != r.prompt_tokens_sent
        {
            prompt_mismatch += 1;
        }
        if row.outcome == Outcome::Completed {
            if r.completion_tokens != r.completion_requested {
                output_mismatch += 1;
            }
            itl.extend(r.itl_ns.iter().map(|&g| g as f64 * 1e-9));
            cached += r.cached_tokens.unwrap_or(0) as u64;
        }
        match r.token_source {
            Some(client::TokenSource::Usage) => usage_src += 1,
            Some(client::TokenSource::Chunks) => chunk_src += 1,
            None => {}
        }
    }
    serde_json::json!({
        "wall_seconds": run.wall.as_secs_f64(),
        "start_unix_s": run.start_unix_s,
        "interrupted": run.interrupted,
        "requests": {"total": run.rows.len(), "completed": counts[0], "failed": counts[1],
                     "in_flight_aborted": counts[2], "retried": retried},
        "errors": errors,
        "send_lag_s": Stats::from_secs(send_lag),
        "task_start_lag_s": Stats::from_secs(start_lag),
        "dispatch_lag_s": Stats::from_secs(dispatch_lag),
        "client_itl_s": Stats::from_secs(itl),
        "prompt_token_mismatches": prompt_mismatch,
        "output_length_mismatches": output_mismatch,
        "token_count_source": {"usage": usage_src, "chunks": chunk_src},
        "cached_tokens_total": cached,
        "scrapes": run.scrapes.iter().enumerate().map(|(i, s)| serde_json::json!({
            "endpoint": i, "ok": s.ok, "failed": s.failed, "vllm_metrics": s.vllm,
            "last": s.last.map(|l| serde_json::json!({
                "running": l.running, "waiting": l.waiting, "kv_usage": l.kv_usage,
                "prefix_queries": l.prefix_queries, "prefix_hits": l.prefix_hits,
                "prompt_tokens": l.prompt_tokens, "generation_tokens": l.generation_tokens,
                "preemptions": l.preemptions, "num_gpu_blocks": l.num_gpu_blocks})),
        })).collect::<Vec<_>>(),
    })
}

/// `live_requests.csv`: one row per request with the live-only columns.
pub fn render_live_csv(run: &LiveRun) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "endpoint",
        "outcome",
        "error",
        "http_status",
        "attempts",
        "scheduled_s",
        "task_start_s",
        "sent_s",
        "send_lag_s",
        "first_token_s",
        "last_token_s",
        "ttft_s",
        "e2e_s",
        "prompt_tokens_sent",
        "prompt_tokens_server",
        "cached_tokens",
        "max_tokens",
        "completion_tokens",
        "token_count_source",
        "chunks",
        "finish_reason",
        "error_detail",
    ])?;
    let s = |ns: Option<u64>| ns.map_or(String::new(), |v| format!("{:.9}", v as f64 * 1e-9));
    let d = |a: Option<u64>, b: u64| a.map_or(String::new(), |v| format!("{:.9}", v.saturating_sub(b) as f64 * 1e-9));
    for row in &run.rows {
        let r = &row.res;
        w.write_record([
            r.id.0.to_string(),
            r.endpoint.to_string(),
            row.outcome.as_str().to_string(),
            r.error.map_or(String::new(), |e| e.as_str().to_string()),
            r.http_status.map_or(String::new(), |h| h.to_string()),
            r.attempts.to_string(),
            s(Some(row.scheduled_ns)),
            if r.attempts > 0 { s(Some(r.started_ns)) } else { String::new() },
            s(r.sent_ns),
            d(r.sent_ns, row.scheduled_ns),
            s(r.first_token_ns),
            s(r.last_token_ns),
            d(r.first_token_ns, row.scheduled_ns),
            d(r.last_token_ns, row.scheduled_ns),
            r.prompt_tokens_sent.to_string(),
            r.prompt_tokens_server.map_or(String::new(), |v| v.to_string()),
            r.cached_tokens.map_or(String::new(), |v| v.to_string()),
            r.completion_requested.to_string(),
            r.completion_tokens.to_string(),
            match r.token_source {
                Some(client::TokenSource::Usage) => "usage".into(),
                Some(client::TokenSource::Chunks) => "chunks".into(),
                None => String::new(),
            },
            r.chunks.to_string(),
            r.finish_reason.clone().unwrap_or_default(),
            r.error_detail.clone().unwrap_or_default(),
        ])?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Builds a [`crate::metrics::Recorder`] from a live run (records, client ITL gaps, scraped ticks).
pub fn recorder(run: &LiveRun) -> crate::metrics::Recorder {
    let mut rec = crate::metrics::Recorder::new();
    for row in &run.rows {
        rec.records.push(row.record());
        if row.outcome == Outcome::Completed {
            for &g in &row.res.itl_ns {
                rec.itl.push(g, 1);
            }
        }
    }
    rec.ticks = run.ticks.clone();
    rec
}

/// End-of-run counters per endpoint, from the scrapes (empty if none were taken).
pub fn totals(run: &LiveRun) -> crate::metrics::RunTotals {
    let per: Vec<crate::metrics::ReplicaTotals> = run
        .scrapes
        .iter()
        .map(|s| {
            let l = s.last.unwrap_or_default();
            crate::metrics::ReplicaTotals {
                prefix_queries: l.prefix_queries,
                prefix_hits: l.prefix_hits,
                preemptions: l.preemptions,
            }
        })
        .collect();
    if per.iter().all(|t| t.prefix_queries == 0 && t.preemptions == 0) {
        return crate::metrics::RunTotals::default();
    }
    crate::metrics::RunTotals::from_replicas(per)
}

/// An arena-free helper for benches and tests: the arena a spec's content refers to.
pub fn empty_arena() -> ChainArena {
    ChainArena::new()
}

#[cfg(test)]
mod tests;
