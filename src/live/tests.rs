//! Live mode against the in-process fault-injecting mock server.

use super::client::{Api, ApiKey, ErrorKind, TokenSource};
use super::mock::{Fault, MockConfig, MockServer};
use super::*;
use crate::units::SimDuration;
use crate::workload::WorkloadConfig;

fn wl(yaml: &str, secs: f64) -> Box<dyn Workload> {
    let cfg: WorkloadConfig = serde_saphyr::from_str(yaml).unwrap();
    crate::workload::build(&cfg, &RngStreams::new(5), SimDuration::from_secs_f64(secs), std::path::Path::new("."))
        .unwrap()
}

fn opts(endpoints: Vec<String>, secs: f64) -> LiveOptions {
    let mut o = LiveOptions::new(endpoints, "mock", 16, Duration::from_secs_f64(secs));
    o.settings.retry_backoff = Duration::from_millis(5);
    o.settings.request_timeout = Duration::from_secs(20);
    o.settings.stall_timeout = Duration::from_secs(5);
    o.metrics_interval = Duration::from_millis(100);
    o.drain = Duration::from_secs(20);
    o.connect_timeout = Duration::from_secs(2);
    o
}

fn go(rt: &tokio::runtime::Runtime, o: &LiveOptions, w: Box<dyn Workload>) -> LiveRun {
    drive(rt, o, w, &RngStreams::new(5), Arc::new(AtomicBool::new(false))).unwrap()
}

const SHARED: &str = "kind: synthetic\n\
    arrival: {kind: poisson, rate: 40}\n\
    input: {kind: fixed, tokens: 10}\n\
    output: {kind: uniform, min: 3, max: 12}\n\
    prefix: {kind: shared_prefix, groups: 2, prompts_per_group: 50, system_prompt_len: 64, question_len: 10}\n\
    max_requests: 24\n";

#[test]
fn shared_prefix_run_records_exact_tokens_cache_hits_and_metrics() {
    let rt = runtime().unwrap();
    let m = rt.block_on(MockServer::start(MockConfig::default())).unwrap();
    let mut o = opts(vec![m.url()], 5.0);
    o.metrics = true;
    let w = wl(SHARED, 5.0);
    let run = go(&rt, &o, w);
    assert_eq!(run.rows.len(), 24);
    let sent = m.stats.prompts.lock().unwrap().clone();
    for (i, row) in run.rows.iter().enumerate() {
        let r = &row.res;
        assert_eq!(r.id.0, i as u64);
        assert_eq!(row.outcome, Outcome::Completed, "{r:?}");
        assert_eq!(r.completion_tokens, r.completion_requested, "exact output length");
        assert_eq!(r.token_source, Some(TokenSource::Usage));
        assert_eq!(r.prompt_tokens_server, Some(r.prompt_tokens_sent));
        assert_eq!(r.prompt_tokens_sent, 74);
        assert_eq!(r.itl_ns.len() as u32, r.completion_tokens - 1);
        let rec = row.record();
        assert!(rec.arrival <= rec.scheduled.unwrap());
        assert!(rec.scheduled.unwrap() <= rec.first_token.unwrap());
        assert!(rec.first_token.unwrap() <= rec.last_token.unwrap());
        assert!(rec.ttft_s().unwrap() >= 0.004, "mock TTFT is 5 ms: {:?}", rec.ttft_s());
    }
    // Same group ⇒ identical leading 64 token ids on the wire; the mock's cache hits them.
    let by_group = |g: u32| run.rows.iter().filter(move |r| r.group == Some(g)).map(|r| r.res.id.0).collect::<Vec<_>>();
    for g in 0..2 {
        let ids = by_group(g);
        assert!(ids.len() >= 2);
        let first = &sent[&ids[0]];
        for id in &ids[1..] {
            assert_eq!(sent[id][..64], first[..64]);
            assert_ne!(sent[id][64..], first[64..]);
        }
        let later: Vec<u32> = ids[1..].iter().map(|id| run.rows[*id as usize].res.cached_tokens.unwrap()).collect();
        assert!(later.iter().all(|&c| c == 64), "{later:?}");
    }
    assert_ne!(sent[&by_group(0)[0]][..64], sent[&by_group(1)[0]][..64]);
    // Scraped metrics moved and are relative to the run's start.
    assert!(m.stats.metrics_scrapes.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert!(!run.ticks.is_empty());
    let last = run.scrapes[0].last.unwrap();
    let generated: u64 = run.rows.iter().map(|r| r.res.completion_tokens as u64).sum();
    assert_eq!(last.generation_tokens, generated);
    assert_eq!(last.prompt_tokens, 24 * 74);
    assert!(last.prefix_hits >= 22 * 64);
    let t = totals(&run);
    assert_eq!(t.prefix_queries, 24 * 74);
    // The recorder/summary path works on live rows.
    let mut rec = recorder(&run);
    let meta = crate::metrics::RunMeta {
        scenario: "t".into(),
        seed: 5,
        simulated: SimDuration(run.wall.as_nanos() as u64),
        replicas: 1,
        tp: 1,
        gpu_count: 1,
        price: Default::default(),
        slo: Default::default(),
    };
    let s = crate::metrics::Summary::build(&meta, &t, &mut rec);
    assert_eq!(s.requests.completed, 24);
    assert!(s.itl_s.p50.is_some() && s.prefix_hit_rate.unwrap() > 0.7);
    let csv = crate::metrics::render_requests_csv(&rec.records);
    let back = crate::metrics::parse_requests_csv(&csv).unwrap();
    assert_eq!(back.len(), 24);
}

#[test]
fn faults_are_classified_and_every_request_is_accounted_for() {
    let rt = runtime().unwrap();
    let faults: HashMap<u64, Fault> = [
        (1, Fault::Status(500)),
        (2, Fault::Status(429)),
        (3, Fault::Status(400)),
        (4, Fault::ResetBeforeHeaders),
        (5, Fault::CutAfter(3)),
        (6, Fault::BadJsonAfter(2)),
        (7, Fault::StallAfter(2, Duration::from_secs(3))),
        (8, Fault::ErrorEventAfter(1)),
        (9, Fault::NoDone),
        (10, Fault::ShortOutput(3)),
        (11, Fault::Delay(Duration::from_millis(150))),
        (12, Fault::FailAttempts(2)),
    ]
    .into_iter()
    .collect();
    let m = rt.block_on(MockServer::start(MockConfig { faults, ..Default::default() })).unwrap();
    let mut o = opts(vec![m.url()], 5.0);
    o.settings.stall_timeout = Duration::from_millis(400);
    let w = wl(
        "kind: synthetic\narrival: {kind: poisson, rate: 50}\ninput: {kind: fixed, tokens: 20}\n\
         output: {kind: fixed, tokens: 8}\nmax_requests: 14\n",
        5.0,
    );
    let run = go(&rt, &o, w);
    assert_eq!(run.rows.len(), 14);
    let by = |i: usize| &run.rows[i];
    let err = |i: usize| by(i).res.error;
    assert_eq!(by(0).outcome, Outcome::Completed);
    assert_eq!((err(1), by(1).res.http_status), (Some(ErrorKind::Http5xx), Some(500)));
    assert_eq!((err(2), by(2).res.http_status), (Some(ErrorKind::Http429), Some(429)));
    assert_eq!((err(3), by(3).res.http_status), (Some(ErrorKind::Http4xx), Some(400)));
    assert_eq!(err(4), Some(ErrorKind::Reset));
    assert_eq!(err(5), Some(ErrorKind::Reset));
    assert_eq!(by(5).res.completion_tokens, 3, "partial tokens kept");
    assert!(by(5).res.first_token_ns.is_some());
    assert_eq!(err(6), Some(ErrorKind::MalformedSse));
    assert_eq!(by(6).res.completion_tokens, 2);
    assert_eq!(err(7), Some(ErrorKind::Stalled));
    assert_eq!(err(8), Some(ErrorKind::ServerError));
    assert_eq!(err(9), Some(ErrorKind::Truncated));
    assert_eq!(by(10).outcome, Outcome::Completed);
    assert_eq!((by(10).res.completion_tokens, by(10).res.completion_requested), (3, 8));
    assert_eq!(by(11).outcome, Outcome::Completed);
    assert!(by(11).record().ttft_s().unwrap() >= 0.15);
    // Retries off: FailAttempts fails with 503.
    assert_eq!(err(12), Some(ErrorKind::Http5xx));
    assert_eq!(by(13).outcome, Outcome::Completed);
    for i in [1, 2, 3, 4, 5, 6, 7, 8, 9, 12] {
        assert_eq!(by(i).outcome, Outcome::Failed, "{i}");
        assert!(by(i).res.error_detail.is_some());
    }
    let live = live_stats(&run);
    assert_eq!(live["requests"]["failed"], 10);
    assert_eq!(live["output_length_mismatches"], 1);
    let csv = render_live_csv(&run).unwrap();
    assert_eq!(csv.iter().filter(|&&b| b == b'\n').count(), 15);
}

#[test]
fn retries_recover_before_the_first_token_only() {
    let rt = runtime().unwrap();
    let faults: HashMap<u64, Fault> =
        [(0, Fault::FailAttempts(2)), (1, Fault::CutAfter(2)), (2, Fault::FailAttempts(9))].into_iter().collect();
    let m = rt.block_on(MockServer::start(MockConfig { faults, ..Default::default() })).unwrap();
    let mut o = opts(vec![m.url()], 2.0);
    o.settings.retries = 3;
    let w = wl(
        "kind: synthetic\narrival: {kind: poisson, rate: 20}\ninput: {kind: fixed, tokens: 5}\n\
         output: {kind: fixed, tokens: 4}\nmax_requests: 3\n",
        2.0,
    );
    let run = go(&rt, &o, w);
    assert_eq!((run.rows[0].outcome, run.rows[0].res.attempts), (Outcome::Completed, 3));
    assert_eq!((run.rows[1].outcome, run.rows[1].res.attempts), (Outcome::Failed, 1), "no retry after tokens");
    assert_eq!((run.rows[2].outcome, run.rows[2].res.attempts), (Outcome::Failed, 4));
    // Latency is measured from the scheduled time, so backoff shows in TTFT.
    assert!(run.rows[0].record().ttft_s().unwrap() >= 0.015);
}

#[test]
fn api_key_is_sent_but_never_written_or_printed() {
    let rt = runtime().unwrap();
    let m = rt
        .block_on(MockServer::start(MockConfig { faults: [(1, Fault::Status(401))].into(), ..Default::default() }))
        .unwrap();
    let secret = "sk-live-TEST-5ecret-value";
    let mut o = opts(vec![m.url()], 2.0);
    o.settings.api_key = Some(ApiKey::new(secret));
    let w = wl(
        "kind: synthetic\narrival: {kind: poisson, rate: 20}\ninput: {kind: fixed, tokens: 5}\n\
         output: {kind: fixed, tokens: 4}\nmax_requests: 3\n",
        2.0,
    );
    let run = go(&rt, &o, w);
    assert!(m.stats.auth.lock().unwrap().contains(&format!("Bearer {secret}")));
    assert!(!format!("{o:?}").contains(secret));
    assert!(!format!("{run:?}").contains(secret));
    // Every output file.
    let dir = std::env::temp_dir().join(format!("servesim-live-key-{}", std::process::id()));
    let sc = crate::scenario::load(std::path::Path::new("scenarios/minimal.yaml"), &[]).unwrap();
    args::write_live_outputs(&sc, &o, &run, &dir).unwrap();
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains(secret) && !text.contains("5ecret"), "{} leaks the key", p.display());
    }
    let live = std::fs::read_to_string(dir.join("live.json")).unwrap();
    assert!(live.contains("set (redacted)"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sessions_run_closed_loop_and_later_turns_hit_the_cache() {
    let rt = runtime().unwrap();
    let m = rt.block_on(MockServer::start(MockConfig::default())).unwrap();
    let o = opts(vec![m.url()], 1.5);
    let w = wl(
        "kind: sessions\narrival: {kind: poisson, rate: 4}\nturns: {kind: fixed, tokens: 3}\n\
         system_prompt_len: 48\nuser_message: {kind: fixed, tokens: 20}\noutput: {kind: fixed, tokens: 20}\n\
         think_time: 100ms\n",
        1.5,
    );
    let run = go(&rt, &o, w);
    let mut turns: HashMap<u64, Vec<&LiveRow>> = HashMap::new();
    for r in &run.rows {
        assert_eq!(r.outcome, Outcome::Completed);
        turns.entry(r.session.unwrap()).or_default().push(r);
    }
    let multi: Vec<_> = turns.values().filter(|v| v.len() >= 2).collect();
    assert!(!multi.is_empty(), "no session got a second turn: {}", run.rows.len());
    for v in multi {
        // The next turn is scheduled from the previous turn's completion (+ an exponential
        // think time), and its prompt extends the conversation, so the server's cache covers
        // the old prompt.
        let (a, b) = (&v[0], &v[1]);
        assert!(b.scheduled_ns >= a.res.last_token_ns.unwrap());
        assert_eq!((a.res.prompt_tokens_sent, b.res.prompt_tokens_sent), (68, 108));
        // The history resends the ids the server generated (asked for with return_token_ids),
        // not the answer's stand-ins: turn 1 ends at 68 + 20 = 88 tokens, 5 full blocks of 16,
        // the fifth holding 12 answer tokens; all 80 tokens hit. With stand-ins: 64.
        assert_eq!(a.res.output_ids, (0..20).map(|i| super::mock::generated_id(a.res.id.0, i)).collect::<Vec<_>>());
        let sent = m.stats.prompts.lock().unwrap()[&b.res.id.0].clone();
        assert_eq!(sent[68..88], a.res.output_ids[..]);
        assert_eq!(b.res.cached_tokens, Some(80));
        if let Some(c) = v.get(2) {
            // 108 + 20 = 128 tokens, 8 full blocks.
            assert_eq!((c.res.prompt_tokens_sent, c.res.cached_tokens), (148, Some(128)));
        }
    }
}

#[test]
fn open_loop_pacing_follows_the_schedule_without_drift() {
    let rt = runtime().unwrap();
    let m =
        rt.block_on(MockServer::start(MockConfig { ttft: Duration::from_millis(1), ..Default::default() })).unwrap();
    let o = opts(vec![m.url()], 1.0);
    let w = Box::new(bench::ConstantWorkload::new(200.0, Duration::from_secs(1), 8, 2));
    let run = go(&rt, &o, w);
    assert_eq!(run.rows.len(), 200);
    let mut lags: Vec<u64> = Vec::new();
    for (i, r) in run.rows.iter().enumerate() {
        assert_eq!(r.scheduled_ns, i as u64 * 5_000_000);
        assert_eq!(r.outcome, Outcome::Completed);
        lags.push(r.res.sent_ns.unwrap() - r.scheduled_ns);
    }
    lags.sort();
    // Generous bound for a loaded CI machine; `live-bench` reports the real figure.
    assert!(lags[lags.len() * 9 / 10] < 20_000_000, "p90 send lag {} ns", lags[lags.len() * 9 / 10]);
    assert!(*lags.last().unwrap() < 200_000_000);
}

#[test]
fn rate_scale_stretches_the_schedule() {
    let rt = runtime().unwrap();
    let m = rt.block_on(MockServer::start(MockConfig::default())).unwrap();
    let mut o = opts(vec![m.url()], 1.0);
    o.rate_scale = 0.5;
    // Workload clock: 0.5 s of 20 req/s = 10 requests, spread over 1 s of wall time.
    let w = Box::new(bench::ConstantWorkload::new(20.0, Duration::from_millis(500), 4, 2));
    let run = go(&rt, &o, w);
    assert_eq!(run.rows.len(), 10);
    assert_eq!(run.rows[1].scheduled_ns, 100_000_000);
}

#[test]
fn stop_and_drain_deadline_account_for_in_flight_requests() {
    let rt = runtime().unwrap();
    let m = rt
        .block_on(MockServer::start(MockConfig {
            faults: [(0, Fault::Delay(Duration::from_secs(30)))].into(),
            ..Default::default()
        }))
        .unwrap();
    let mut o = opts(vec![m.url()], 0.3);
    o.drain = Duration::from_millis(300);
    o.settings.stall_timeout = Duration::from_secs(60);
    let w = Box::new(bench::ConstantWorkload::new(10.0, Duration::from_millis(300), 4, 2));
    let t = Instant::now();
    let run = go(&rt, &o, w);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(run.rows.len(), 3);
    assert_eq!(run.rows[0].outcome, Outcome::InFlight);
    assert_eq!(run.aborted, 1);
    assert_eq!(run.rows[1].outcome, Outcome::Completed);

    // Ctrl-C (the stop flag): sending stops, what finished is kept, the rest is in flight.
    let m =
        rt.block_on(MockServer::start(MockConfig { itl: Duration::from_millis(20), ..Default::default() })).unwrap();
    let o = opts(vec![m.url()], 10.0);
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        s2.store(true, Ordering::SeqCst);
    });
    let w = Box::new(bench::ConstantWorkload::new(20.0, Duration::from_secs(10), 4, 10));
    let run = drive(&rt, &o, w, &RngStreams::new(1), stop).unwrap();
    assert!(run.interrupted);
    assert!((8..=13).contains(&run.rows.len()), "{}", run.rows.len());
    assert!(run.rows.iter().any(|r| r.outcome == Outcome::Completed));
    assert!(run.rows.iter().any(|r| r.outcome == Outcome::InFlight));
    assert_eq!(run.rows.iter().map(|r| r.res.id.0).collect::<Vec<_>>(), (0..run.rows.len() as u64).collect::<Vec<_>>());
}

#[test]
fn routes_over_several_endpoints_with_round_robin_and_epp() {
    let rt = runtime().unwrap();
    let a = rt.block_on(MockServer::start(MockConfig::default())).unwrap();
    let b = rt.block_on(MockServer::start(MockConfig::default())).unwrap();
    let o = opts(vec![a.url(), b.url()], 2.0);
    let run = go(&rt, &o, wl(SHARED, 2.0));
    let eps: Vec<usize> = run.rows.iter().map(|r| r.res.endpoint).collect();
    assert!(eps.iter().enumerate().all(|(i, &e)| e == i % 2), "{eps:?}");
    // EPP (prefix-aware) reads scraped metrics; requests of one group stick together.
    let a = rt.block_on(MockServer::start(MockConfig::default())).unwrap();
    let b = rt.block_on(MockServer::start(MockConfig::default())).unwrap();
    let mut o = opts(vec![a.url(), b.url()], 2.0);
    o.router = crate::app::parse_router_name("epp").unwrap();
    o.metrics = true;
    let run = go(&rt, &o, wl(SHARED, 2.0));
    assert!(run.rows.iter().all(|r| r.outcome == Outcome::Completed));
    assert!(
        a.stats.metrics_scrapes.load(Ordering::Relaxed) >= 2 && b.stats.metrics_scrapes.load(Ordering::Relaxed) >= 2
    );
    let hits: u32 = run.rows.iter().map(|r| r.res.cached_tokens.unwrap_or(0)).sum();
    assert!(hits >= 16 * 64, "epp should keep groups on warm endpoints: {hits}");
}

#[test]
fn chat_api_streams_and_counts_tokens() {
    let rt = runtime().unwrap();
    let m = rt.block_on(MockServer::start(MockConfig { continuous_usage: false, ..Default::default() })).unwrap();
    let mut o = opts(vec![m.url()], 2.0);
    o.settings.api = Api::Chat;
    o.settings.vllm_extensions = false;
    let run = go(
        &rt,
        &o,
        wl(
            "kind: synthetic\narrival: {kind: poisson, rate: 20}\ninput: {kind: fixed, tokens: 12}\noutput: {kind: fixed, tokens: 5}\nmax_requests: 4\n",
            2.0,
        ),
    );
    for r in &run.rows {
        assert_eq!(r.outcome, Outcome::Completed);
        assert_eq!((r.res.completion_tokens, r.res.chunks), (5, 5));
        assert_eq!(r.res.prompt_tokens_server, Some(12));
    }
}

#[test]
fn unreachable_endpoint_fails_fast_as_connect_errors() {
    let rt = runtime().unwrap();
    // A port that was just free: bind, read the port, drop the listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut o = opts(vec![format!("http://127.0.0.1:{port}")], 1.0);
    o.settings.retries = 1;
    let run = go(
        &rt,
        &o,
        wl(
            "kind: synthetic\narrival: {kind: poisson, rate: 20}\ninput: {kind: fixed, tokens: 4}\noutput: {kind: fixed, tokens: 2}\nmax_requests: 3\n",
            1.0,
        ),
    );
    assert_eq!(run.rows.len(), 3);
    for r in &run.rows {
        assert_eq!((r.outcome, r.res.error, r.res.attempts), (Outcome::Failed, Some(ErrorKind::Connect), 2));
    }
    assert!(normalize_endpoint("ftp://x").is_err());
    assert_eq!(normalize_endpoint("http://h:1/v1/").unwrap(), "http://h:1");
}
