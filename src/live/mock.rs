//! A small OpenAI-compatible streaming server on 127.0.0.1 (raw HTTP/1.1 over tokio, keep-alive,
//! chunked SSE) for tests, `servesim live --mock` and `servesim live-bench`. It can inject
//! faults per request id (from the `x-request-id: servesim-N` header): delays, resets, HTTP
//! errors, cut streams, bad SSE, stalls, error events. It keeps a block-level prefix cache over
//! the token ids it receives, so `usage.prompt_tokens_details.cached_tokens` shows whether shared
//! prefixes arrived as identical token sequences, and serves vLLM-named `/metrics`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fault injected into one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Wait this long before the response headers.
    Delay(Duration),
    /// Answer with this HTTP status and a JSON error body.
    Status(u16),
    /// Answer 503 to the first `n` attempts, then serve normally.
    FailAttempts(u32),
    /// Close the connection right after reading the request (no response).
    ResetBeforeHeaders,
    /// Send this many token chunks, then close the connection mid-body.
    CutAfter(u32),
    /// Send this many token chunks, then an event that is not JSON.
    BadJsonAfter(u32),
    /// Send this many token chunks, then go silent for the duration.
    StallAfter(u32, Duration),
    /// Send this many token chunks, then an `{"error": ...}` event and `[DONE]`.
    ErrorEventAfter(u32),
    /// Send all tokens but end the body cleanly without usage, finish reason or `[DONE]`.
    NoDone,
    /// Send this many tokens only (as if EOS came early), with a correct usage chunk.
    ShortOutput(u32),
}

#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Time from the request to the first token.
    pub ttft: Duration,
    /// Time between tokens.
    pub itl: Duration,
    /// Cap on generated tokens (the request's `max_tokens` otherwise).
    pub max_output: Option<u32>,
    /// Block size of the simulated prefix cache.
    pub block_size: u32,
    /// Faults by request id.
    pub faults: HashMap<u64, Fault>,
    /// Send `usage` on every chunk when the request asks for `continuous_usage_stats`.
    pub continuous_usage: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            ttft: Duration::from_millis(5),
            itl: Duration::from_millis(1),
            max_output: None,
            block_size: 16,
            faults: HashMap::new(),
            continuous_usage: true,
        }
    }
}

/// What the server saw (for assertions).
#[derive(Default)]
pub struct MockStats {
    pub requests: AtomicU64,
    pub running: AtomicI64,
    pub max_running: AtomicI64,
    pub prefix_queries: AtomicU64,
    pub prefix_hits: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generation_tokens: AtomicU64,
    pub metrics_scrapes: AtomicU64,
    /// `Authorization` header values seen.
    pub auth: Mutex<HashSet<String>>,
    /// Prompt token ids by request id (first attempt).
    pub prompts: Mutex<HashMap<u64, Vec<u32>>>,
    attempts: Mutex<HashMap<u64, u32>>,
    cache: Mutex<HashSet<u64>>,
}

pub struct MockServer {
    pub addr: SocketAddr,
    pub stats: Arc<MockStats>,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime.
    pub async fn start(cfg: MockConfig) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(MockStats::default());
        let cfg = Arc::new(cfg);
        let st = stats.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { continue };
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve_conn(sock, cfg.clone(), st.clone()));
            }
        });
        Ok(MockServer { addr, stats, task })
    }
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Req {
    method: String,
    path: String,
    id: Option<u64>,
    auth: Option<String>,
    body: Vec<u8>,
}

async fn read_req(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Req> {
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let mut tmp = [0u8; 8192];
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).ok()?.to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let (mut len, mut id, mut auth) = (0usize, None, None);
    for l in lines {
        let Some((k, v)) = l.split_once(':') else { continue };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => len = v.parse().ok()?,
            "x-request-id" => id = v.strip_prefix("servesim-").and_then(|x| x.parse().ok()),
            "authorization" => auth = Some(v.to_string()),
            _ => {}
        }
    }
    buf.drain(..head_end);
    while buf.len() < len {
        let mut tmp = vec![0u8; (len - buf.len()).min(1 << 16)];
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let body = buf.drain(..len).collect();
    Some(Req { method, path, id, auth, body })
}

async fn send_plain(sock: &mut TcpStream, status: u16, ctype: &str, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let s =
        format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    sock.write_all(s.as_bytes()).await
}

/// The mock's `i`-th generated token id for request `id` (deterministic, in [4096, 8192): never
/// one of the client's stand-in ids for a 4096 vocabulary).
pub fn generated_id(id: u64, i: u32) -> u32 {
    4096 + (crate::rng::splitmix64(id.wrapping_mul(0x9E37_79B9) ^ i as u64) % 4096) as u32
}

async fn chunk(sock: &mut TcpStream, data: &str) -> std::io::Result<()> {
    let s = format!("{:x}\r\n{}\r\n", data.len(), data);
    sock.write_all(s.as_bytes()).await
}

struct RunningGuard(Arc<MockStats>);
impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Relaxed);
    }
}

async fn serve_conn(mut sock: TcpStream, cfg: Arc<MockConfig>, st: Arc<MockStats>) {
    let mut buf = Vec::new();
    while let Some(req) = read_req(&mut sock, &mut buf).await {
        let ok = match (req.method.as_str(), req.path.as_str()) {
            ("GET", p) if p.starts_with("/metrics") => {
                st.metrics_scrapes.fetch_add(1, Relaxed);
                send_plain(&mut sock, 200, "text/plain; version=0.0.4", &metrics_page(&st)).await.is_ok()
            }
            ("GET", p) if p.starts_with("/v1/models") => {
                send_plain(&mut sock, 200, "application/json", r#"{"object":"list","data":[{"id":"mock"}]}"#)
                    .await
                    .is_ok()
            }
            ("GET", "/health") => send_plain(&mut sock, 200, "application/json", "{}").await.is_ok(),
            ("POST", p) if p.starts_with("/v1/completions") || p.starts_with("/v1/chat/completions") => {
                serve_completion(&mut sock, &req, p.starts_with("/v1/chat"), &cfg, &st).await
            }
            _ => send_plain(&mut sock, 404, "application/json", "{}").await.is_ok(),
        };
        if !ok {
            return;
        }
    }
}

/// Serves one completion; returns whether the connection can be reused.
async fn serve_completion(sock: &mut TcpStream, req: &Req, chat: bool, cfg: &MockConfig, st: &Arc<MockStats>) -> bool {
    st.requests.fetch_add(1, Relaxed);
    if let Some(a) = &req.auth {
        st.auth.lock().unwrap().insert(a.clone());
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&req.body) else {
        return send_plain(sock, 400, "application/json", r#"{"error":{"message":"bad json"}}"#).await.is_ok();
    };
    let id = req.id.unwrap_or(u64::MAX);
    let attempt = {
        let mut a = st.attempts.lock().unwrap();
        let e = a.entry(id).or_insert(0);
        *e += 1;
        *e
    };
    let fault = cfg.faults.get(&id).cloned();
    match &fault {
        Some(Fault::Delay(d)) => tokio::time::sleep(*d).await,
        Some(Fault::Status(code)) => {
            let b = format!(r#"{{"error":{{"message":"injected {code}"}}}}"#);
            return send_plain(sock, *code, "application/json", &b).await.is_ok();
        }
        Some(Fault::FailAttempts(n)) if attempt <= *n => {
            return send_plain(sock, 503, "application/json", r#"{"error":{"message":"busy"}}"#).await.is_ok();
        }
        Some(Fault::ResetBeforeHeaders) => return false,
        _ => {}
    }
    // Prompt: token ids (completions) or words (chat); prefix cache over full blocks.
    let ids: Vec<u32> = if chat {
        let text = body["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|x| x["content"].as_str()).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        text.split_whitespace().map(|w| w.trim_start_matches('w').parse().unwrap_or(0)).collect()
    } else {
        match &body["prompt"] {
            serde_json::Value::Array(a) => a.iter().map(|v| v.as_u64().unwrap_or(0) as u32).collect(),
            serde_json::Value::String(s) => s.split_whitespace().map(|_| 0).collect(),
            _ => vec![],
        }
    };
    if attempt == 1 {
        st.prompts.lock().unwrap().insert(id, ids.clone());
    }
    let bs = cfg.block_size.max(1) as usize;
    let cached = {
        let mut cache = st.cache.lock().unwrap();
        let mut h = 0x1234_5678u64;
        let mut hit = 0usize;
        let mut missed = false;
        for (b, blk) in ids.chunks(bs).enumerate() {
            if blk.len() < bs {
                break;
            }
            for &t in blk {
                h = crate::rng::splitmix64(h ^ t as u64);
            }
            if !missed && cache.contains(&h) {
                hit = (b + 1) * bs;
            } else {
                missed = true;
                cache.insert(h);
            }
        }
        hit.min(ids.len().saturating_sub(1)) as u32
    };
    let token_ids = !chat && body["return_token_ids"].as_bool() == Some(true);
    let prompt_tokens = ids.len() as u32;
    st.prefix_queries.fetch_add(prompt_tokens as u64, Relaxed);
    st.prefix_hits.fetch_add(cached as u64, Relaxed);
    st.prompt_tokens.fetch_add(prompt_tokens as u64, Relaxed);
    let want = body["max_tokens"].as_u64().unwrap_or(16) as u32;
    let mut out = want.min(cfg.max_output.unwrap_or(u32::MAX)).max(1);
    if let Some(Fault::ShortOutput(n)) = fault {
        out = out.min(n.max(1));
    }
    let continuous = cfg.continuous_usage && body["stream_options"]["continuous_usage_stats"].as_bool() == Some(true);
    let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
    let stream = body["stream"].as_bool() == Some(true);

    st.running.fetch_add(1, Relaxed);
    let now = st.running.load(Relaxed);
    st.max_running.fetch_max(now, Relaxed);
    let _g = RunningGuard(st.clone());

    let usage = |n: u32| {
        format!(
            r#"{{"prompt_tokens":{prompt_tokens},"completion_tokens":{n},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":{cached}}}}}"#,
            prompt_tokens + n
        )
    };
    if !stream {
        tokio::time::sleep(cfg.ttft + cfg.itl * out.saturating_sub(1)).await;
        st.generation_tokens.fetch_add(out as u64, Relaxed);
        let b = format!(
            r#"{{"id":"m","object":"text_completion","choices":[{{"index":0,"text":"{}","finish_reason":"length"}}],"usage":{}}}"#,
            " t".repeat(out as usize),
            usage(out)
        );
        return send_plain(sock, 200, "application/json", &b).await.is_ok();
    }
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
    if sock.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    if chat && chunk(sock, "data: {\"id\":\"m\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n").await.is_err() {
        return false;
    }
    tokio::time::sleep(cfg.ttft).await;
    let mut next = tokio::time::Instant::now();
    for i in 0..out {
        let sent_before = i;
        match &fault {
            Some(Fault::CutAfter(n)) if sent_before == *n => return false,
            Some(Fault::BadJsonAfter(n)) if sent_before == *n => {
                let _ = chunk(sock, "data: {\"choices\": [tru\n\n").await;
                return false;
            }
            Some(Fault::StallAfter(n, d)) if sent_before == *n => tokio::time::sleep(*d).await,
            Some(Fault::ErrorEventAfter(n)) if sent_before == *n => {
                let ok = chunk(sock, "data: {\"error\":{\"message\":\"injected engine error\",\"code\":500}}\n\n")
                    .await
                    .is_ok()
                    && chunk(sock, "data: [DONE]\n\n").await.is_ok()
                    && sock.write_all(b"0\r\n\r\n").await.is_ok();
                return ok;
            }
            _ => {}
        }
        if i > 0 {
            next += cfg.itl;
            tokio::time::sleep_until(next).await;
        } else {
            next = tokio::time::Instant::now();
        }
        let last = i + 1 == out;
        let fin = if last && fault != Some(Fault::NoDone) { "\"length\"" } else { "null" };
        let u = if continuous { usage(i + 1) } else { "null".to_string() };
        let tid = if token_ids { format!(",\"token_ids\":[{}]", generated_id(id, i)) } else { String::new() };
        let ev = if chat {
            format!(
                "data: {{\"id\":\"m\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" t\"}},\"finish_reason\":{fin}}}],\"usage\":{u}}}\n\n"
            )
        } else {
            format!(
                "data: {{\"id\":\"m\",\"object\":\"text_completion\",\"choices\":[{{\"index\":0,\"text\":\" t\"{tid},\"finish_reason\":{fin}}}],\"usage\":{u}}}\n\n"
            )
        };
        if chunk(sock, &ev).await.is_err() {
            return false;
        }
        st.generation_tokens.fetch_add(1, Relaxed);
    }
    // Like vLLM, the generated tokens' full blocks are cached too (whether or not the client
    // asked for their ids): a next turn that resends them hits.
    {
        let mut cache = st.cache.lock().unwrap();
        let all: Vec<u32> = ids.iter().copied().chain((0..out).map(|i| generated_id(id, i))).collect();
        let mut h = 0x1234_5678u64;
        for blk in all.chunks(bs) {
            if blk.len() < bs {
                break;
            }
            for &t in blk {
                h = crate::rng::splitmix64(h ^ t as u64);
            }
            cache.insert(h);
        }
    }
    if fault != Some(Fault::NoDone) {
        if include_usage {
            let ev = format!("data: {{\"id\":\"m\",\"choices\":[],\"usage\":{}}}\n\n", usage(out));
            if chunk(sock, &ev).await.is_err() {
                return false;
            }
        }
        if chunk(sock, ": keep-alive comment\n\ndata: [DONE]\n\n").await.is_err() {
            return false;
        }
    }
    sock.write_all(b"0\r\n\r\n").await.is_ok()
}

fn metrics_page(st: &MockStats) -> String {
    let running = st.running.load(Relaxed).max(0);
    format!(
        "# TYPE vllm:num_requests_running gauge\n\
         vllm:num_requests_running{{engine=\"0\",model_name=\"mock\"}} {running}.0\n\
         vllm:num_requests_waiting{{engine=\"0\",model_name=\"mock\"}} 0.0\n\
         vllm:kv_cache_usage_perc{{engine=\"0\",model_name=\"mock\"}} {:.4}\n\
         vllm:prefix_cache_queries_total{{engine=\"0\",model_name=\"mock\"}} {}.0\n\
         vllm:prefix_cache_hits_total{{engine=\"0\",model_name=\"mock\"}} {}.0\n\
         vllm:prompt_tokens_total{{engine=\"0\",model_name=\"mock\"}} {}.0\n\
         vllm:generation_tokens_total{{engine=\"0\",model_name=\"mock\"}} {}.0\n\
         vllm:num_preemptions_total{{engine=\"0\",model_name=\"mock\"}} 0.0\n",
        (running as f64 / 256.0).min(1.0),
        st.prefix_queries.load(Relaxed),
        st.prefix_hits.load(Relaxed),
        st.prompt_tokens.load(Relaxed),
        st.generation_tokens.load(Relaxed),
    )
}
