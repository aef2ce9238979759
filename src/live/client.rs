//! One request against an OpenAI-compatible endpoint: build the streaming body, send it with
//! the retry policy, parse the SSE stream chunk by chunk and time every token-bearing chunk.
//! Everything that can go wrong ends as an [`ErrorKind`] on the result, never as a panic or
//! a lost request.

use super::sse::SseParser;
use super::tokens;
use crate::content::Piece;
use crate::units::RequestId;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which OpenAI route to drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// `POST /v1/completions` with a token-id list prompt (token-accurate).
    Completions,
    /// `POST /v1/chat/completions` with one user message of stand-in words (not token-accurate).
    Chat,
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// TCP connect failed or was refused.
    Connect,
    /// The whole request ran past `--request-timeout`.
    Timeout,
    /// No bytes for `--stall-timeout` (waiting for headers or between chunks).
    Stalled,
    /// The connection broke while reading the response (reset, cut stream).
    Reset,
    Http429,
    Http4xx,
    Http5xx,
    /// An SSE event that is not valid JSON / UTF-8, or an oversized event.
    MalformedSse,
    /// The stream ended cleanly but without `[DONE]` or a finish reason.
    Truncated,
    /// The server sent an error object inside the stream.
    ServerError,
    /// Anything else from the HTTP client.
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Stalled => "stalled",
            ErrorKind::Reset => "reset",
            ErrorKind::Http429 => "http_429",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::MalformedSse => "malformed_sse",
            ErrorKind::Truncated => "truncated",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Other => "other",
        }
    }
    /// Whether a failure before the first token may be retried (the server did no visible work
    /// the client could double-count).
    pub fn retryable(self) -> bool {
        !matches!(self, ErrorKind::Http4xx | ErrorKind::MalformedSse)
    }
}

/// Where the completion token count came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `usage.completion_tokens` from the server.
    Usage,
    /// One token per content chunk (no usage received).
    Chunks,
}

/// An API key that never prints.
#[derive(Clone)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    pub fn new(s: &str) -> Self {
        ApiKey(Arc::from(s))
    }
    pub(crate) fn header(&self) -> reqwest::header::HeaderValue {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.0))
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("Bearer invalid"));
        v.set_sensitive(true);
        v
    }
    /// The secret itself (tests use it to check nothing leaked).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Settings every request shares.
#[derive(Clone, Debug)]
pub struct RequestSettings {
    pub model: String,
    pub api: Api,
    pub vocab: u32,
    /// Send vLLM extensions (`ignore_eos`, `continuous_usage_stats`).
    pub vllm_extensions: bool,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub request_timeout: Duration,
    pub stall_timeout: Duration,
    pub api_key: Option<ApiKey>,
}

/// One request as the scheduler hands it to a task.
#[derive(Clone, Debug)]
pub struct RequestJob {
    pub id: RequestId,
    pub endpoint: usize,
    /// `{base}/v1/completions` or `{base}/v1/chat/completions`.
    pub url: Arc<str>,
    pub pieces: Vec<Piece>,
    pub max_tokens: u32,
    /// Ids the server generated for earlier answers, by the answer's content key: a piece with
    /// such a key is sent as those ids (what a chat client resends as history), not as the
    /// key's hashed stand-ins.
    pub answers: tokens::Answers,
    /// Ask for the generated token ids (`return_token_ids`, vLLM): the answer is part of a
    /// later turn's prompt.
    pub want_token_ids: bool,
}

/// What happened to one request. Times are ns since the run's start instant.
#[derive(Clone, Debug, Default)]
pub struct LiveResult {
    pub id: RequestId,
    pub endpoint: usize,
    /// When the task began running (dispatch lag = this − scheduled).
    pub started_ns: u64,
    /// When the first attempt's request was handed to the HTTP client.
    pub sent_ns: Option<u64>,
    pub first_token_ns: Option<u64>,
    pub last_token_ns: Option<u64>,
    /// Gaps between consecutive token-bearing chunks (ns).
    pub itl_ns: Vec<u64>,
    pub chunks: u32,
    pub prompt_tokens_sent: u32,
    pub prompt_tokens_server: Option<u32>,
    pub completion_requested: u32,
    pub completion_tokens: u32,
    pub token_source: Option<TokenSource>,
    pub cached_tokens: Option<u32>,
    pub http_status: Option<u16>,
    pub error: Option<ErrorKind>,
    /// Short error text for the side file (never carries request headers).
    pub error_detail: Option<String>,
    pub finish_reason: Option<String>,
    pub attempts: u32,
    /// Generated token ids when the job asked for them (`return_token_ids`).
    pub output_ids: Vec<u32>,
}

impl LiveResult {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

#[derive(Deserialize, Default)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize, Default)]
struct Choice {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
    /// vLLM `return_token_ids`: this chunk's generated ids.
    #[serde(default)]
    token_ids: Option<Vec<u32>>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    prompt_tokens_details: Option<Details>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u32>,
}

fn nonempty(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|t| !t.is_empty())
}

/// The JSON body of a streaming request.
pub fn build_body(s: &RequestSettings, pieces: &[Piece], max_tokens: u32) -> Vec<u8> {
    build_body_with(s, pieces, max_tokens, &tokens::Answers::default(), false)
}

/// [`build_body`] with earlier answers' ids substituted and optionally `return_token_ids`.
pub fn build_body_with(
    s: &RequestSettings,
    pieces: &[Piece],
    max_tokens: u32,
    answers: &tokens::Answers,
    want_token_ids: bool,
) -> Vec<u8> {
    let n = tokens::count(pieces) as usize;
    let mut b = Vec::with_capacity(160 + n * 5);
    b.extend_from_slice(b"{\"model\":");
    b.extend_from_slice(serde_json::to_string(&s.model).unwrap_or_default().as_bytes());
    match s.api {
        Api::Completions => {
            b.extend_from_slice(b",\"prompt\":");
            tokens::write_ids_json_with(pieces, s.vocab, answers, &mut b);
        }
        Api::Chat => {
            b.extend_from_slice(b",\"messages\":[{\"role\":\"user\",\"content\":");
            tokens::write_words_json_string(pieces, s.vocab, &mut b);
            b.extend_from_slice(b"}]");
        }
    }
    b.extend_from_slice(b",\"max_tokens\":");
    b.extend_from_slice(itoa::Buffer::new().format(max_tokens).as_bytes());
    b.extend_from_slice(b",\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true");
    if s.vllm_extensions {
        b.extend_from_slice(b",\"continuous_usage_stats\":true},\"ignore_eos\":true");
        if want_token_ids && s.api == Api::Completions {
            b.extend_from_slice(b",\"return_token_ids\":true");
        }
        b.push(b'}');
    } else {
        b.extend_from_slice(b"}}");
    }
    b
}

fn since(t0: Instant) -> u64 {
    Instant::now().saturating_duration_since(t0).as_nanos() as u64
}

/// Runs one request to its end (success or a classified failure), with retries before the
/// first token.
pub async fn execute(client: reqwest::Client, s: Arc<RequestSettings>, job: RequestJob, t0: Instant) -> LiveResult {
    let mut r = LiveResult {
        id: job.id,
        endpoint: job.endpoint,
        started_ns: since(t0),
        prompt_tokens_sent: tokens::count(&job.pieces),
        completion_requested: job.max_tokens,
        ..Default::default()
    };
    let body = Bytes::from(build_body_with(&s, &job.pieces, job.max_tokens, &job.answers, job.want_token_ids));
    drop(job.pieces);
    loop {
        r.attempts += 1;
        let attempt = attempt_once(&client, &s, &job.url, job.id, body.clone(), t0, &mut r);
        match tokio::time::timeout(s.request_timeout, attempt).await {
            Ok(Ok(())) => {
                r.error = None;
                r.error_detail = None;
                return r;
            }
            Ok(Err((kind, detail))) => {
                r.error = Some(kind);
                r.error_detail = Some(detail);
            }
            Err(_) => {
                r.error = Some(ErrorKind::Timeout);
                r.error_detail = Some(format!("no completion within {:?}", s.request_timeout));
            }
        }
        let kind = r.error.unwrap_or(ErrorKind::Other);
        if r.first_token_ns.is_some() || !kind.retryable() || r.attempts > s.retries {
            return r;
        }
        let backoff = s.retry_backoff.saturating_mul(1u32 << (r.attempts - 1).min(6)).min(Duration::from_secs(10));
        tokio::time::sleep(backoff).await;
    }
}

type AttemptError = (ErrorKind, String);

fn classify(e: &reqwest::Error) -> ErrorKind {
    if e.is_connect() {
        ErrorKind::Connect
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_body() || e.is_decode() || e.is_request() {
        ErrorKind::Reset
    } else {
        ErrorKind::Other
    }
}

/// Error text with its causes (reqwest's Display names the URL, which is the user's own
/// endpoint; headers, and so the key, never appear).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s.truncate(300);
    s
}

async fn attempt_once(
    client: &reqwest::Client,
    s: &RequestSettings,
    url: &str,
    id: RequestId,
    body: Bytes,
    t0: Instant,
    r: &mut LiveResult,
) -> Result<(), AttemptError> {
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .header("x-request-id", format!("servesim-{}", id.0))
        .body(body);
    if let Some(k) = &s.api_key {
        req = req.header(reqwest::header::AUTHORIZATION, k.header());
    }
    if r.sent_ns.is_none() {
        r.sent_ns = Some(since(t0));
    }
    let resp = match tokio::time::timeout(s.stall_timeout, req.send()).await {
        Err(_) => return Err((ErrorKind::Stalled, format!("no response headers within {:?}", s.stall_timeout))),
        Ok(Err(e)) => return Err((classify(&e), describe(&e))),
        Ok(Ok(resp)) => resp,
    };
    let status = resp.status();
    r.http_status = Some(status.as_u16());
    if !status.is_success() {
        let kind = match status.as_u16() {
            429 => ErrorKind::Http429,
            500..=599 => ErrorKind::Http5xx,
            _ => ErrorKind::Http4xx,
        };
        let text = tokio::time::timeout(Duration::from_secs(2), resp.text()).await.ok().and_then(|t| t.ok());
        let mut detail = format!("HTTP {}", status.as_u16());
        if let Some(t) = text {
            detail.push_str(": ");
            detail.push_str(t.trim());
        }
        detail.truncate(300);
        return Err((kind, detail));
    }
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::new();
    let mut events: Vec<String> = Vec::new();
    let mut st = StreamState::default();
    loop {
        let next = match tokio::time::timeout(s.stall_timeout, stream.next()).await {
            Err(_) => return Err((ErrorKind::Stalled, format!("stream stalled for {:?}", s.stall_timeout))),
            Ok(n) => n,
        };
        match next {
            None => break,
            Some(Err(e)) => {
                st.finish_into(r);
                return Err((ErrorKind::Reset, describe(&e)));
            }
            Some(Ok(bytes)) => {
                let now = since(t0);
                if let Err(e) = parser.push(&bytes, &mut events) {
                    st.finish_into(r);
                    return Err((ErrorKind::MalformedSse, format!("{e:?}")));
                }
                for ev in events.drain(..) {
                    if let Err(e) = st.on_event(&ev, now, r) {
                        st.finish_into(r);
                        return Err(e);
                    }
                    if st.done {
                        break;
                    }
                }
                if st.done {
                    break;
                }
            }
        }
    }
    if !st.done {
        match parser.finish() {
            Ok(Some(ev)) => {
                let now = since(t0);
                if let Err(e) = st.on_event(&ev, now, r) {
                    st.finish_into(r);
                    return Err(e);
                }
            }
            Ok(None) => {}
            Err(e) => {
                st.finish_into(r);
                return Err((ErrorKind::MalformedSse, format!("{e:?}")));
            }
        }
    }
    st.finish_into(r);
    if st.done || st.finish_reason_seen {
        Ok(())
    } else {
        Err((ErrorKind::Truncated, "stream ended without [DONE] or a finish reason".to_string()))
    }
}

#[derive(Default)]
struct StreamState {
    done: bool,
    finish_reason_seen: bool,
    /// Last cumulative `usage.completion_tokens` seen (continuous usage or final chunk).
    usage_completion: Option<u32>,
    chunk_tokens: u32,
    last_token_ns: Option<u64>,
}

impl StreamState {
    fn on_event(&mut self, data: &str, now: u64, r: &mut LiveResult) -> Result<(), AttemptError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let c: Chunk = serde_json::from_str(data).map_err(|e| {
            let mut d = format!("bad SSE data ({e}): {data}");
            d.truncate(300);
            (ErrorKind::MalformedSse, d)
        })?;
        if c.error.is_some() || c.object.as_deref() == Some("error") {
            let msg = c
                .error
                .as_ref()
                .and_then(|e| e.get("message").and_then(|m| m.as_str()).map(str::to_string))
                .or(c.message.clone())
                .unwrap_or_else(|| "error event".to_string());
            let mut d = format!("server error in stream: {msg}");
            d.truncate(300);
            return Err((ErrorKind::ServerError, d));
        }
        let mut content = false;
        let mut has_choices = false;
        for ch in c.choices.iter().flatten() {
            has_choices = true;
            content |= nonempty(&ch.text);
            if let Some(d) = &ch.delta {
                content |= nonempty(&d.content) || nonempty(&d.reasoning_content) || nonempty(&d.reasoning);
            }
            if let Some(ids) = ch.token_ids.as_deref().filter(|t| !t.is_empty()) {
                // Ids whose text is empty (a partial character) are tokens all the same.
                content = true;
                r.output_ids.extend_from_slice(ids);
            }
            if let Some(f) = &ch.finish_reason {
                self.finish_reason_seen = true;
                r.finish_reason = Some(f.clone());
            }
        }
        let mut tokens = content as u32;
        if let Some(u) = c.usage {
            if let Some(p) = u.prompt_tokens {
                r.prompt_tokens_server = Some(p);
            }
            if let Some(ct) = u.prompt_tokens_details.and_then(|d| d.cached_tokens) {
                r.cached_tokens = Some(ct);
            }
            if let Some(ct) = u.completion_tokens {
                // Continuous usage: the chunk carried the increase (even if its text is empty,
                // e.g. a token that decodes to half a character).
                if has_choices {
                    tokens = ct.saturating_sub(self.usage_completion.unwrap_or(0));
                }
                self.usage_completion = Some(ct.max(self.usage_completion.unwrap_or(0)));
            }
        }
        if tokens > 0 {
            r.chunks += 1;
            self.chunk_tokens += tokens;
            match self.last_token_ns {
                None => r.first_token_ns = Some(now),
                Some(prev) => r.itl_ns.push(now.saturating_sub(prev)),
            }
            self.last_token_ns = Some(now);
            r.last_token_ns = Some(now);
        }
        Ok(())
    }

    fn finish_into(&self, r: &mut LiveResult) {
        match self.usage_completion {
            Some(u) => {
                r.completion_tokens = u;
                r.token_source = Some(TokenSource::Usage);
            }
            None => {
                r.completion_tokens = self.chunk_tokens;
                r.token_source = Some(TokenSource::Chunks);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(api: Api, ext: bool) -> RequestSettings {
        RequestSettings {
            model: "m\"x".into(),
            api,
            vocab: 4096,
            vllm_extensions: ext,
            retries: 0,
            retry_backoff: Duration::from_millis(1),
            request_timeout: Duration::from_secs(1),
            stall_timeout: Duration::from_secs(1),
            api_key: Some(ApiKey::new("sk-secret")),
        }
    }

    #[test]
    fn bodies_are_valid_json_with_exact_prompts() {
        let pieces = [Piece { key: 3, start: 0, len: 7 }];
        let b: serde_json::Value =
            serde_json::from_slice(&build_body(&settings(Api::Completions, true), &pieces, 9)).unwrap();
        assert_eq!(b["model"], "m\"x");
        assert_eq!(b["prompt"].as_array().unwrap().len(), 7);
        assert_eq!(b["max_tokens"], 9);
        assert_eq!(b["ignore_eos"], true);
        assert_eq!(b["stream_options"]["continuous_usage_stats"], true);
        let b: serde_json::Value =
            serde_json::from_slice(&build_body(&settings(Api::Chat, false), &pieces, 9)).unwrap();
        assert!(b["messages"][0]["content"].as_str().unwrap().starts_with('w'));
        assert!(b.get("ignore_eos").is_none());
        assert!(!format!("{:?}", settings(Api::Chat, false)).contains("sk-secret"));
    }

    #[test]
    fn stream_state_counts_tokens_from_usage_or_chunks() {
        let mut r = LiveResult::default();
        let mut st = StreamState::default();
        let ev = |t: &str, u: Option<u32>| {
            let usage = u.map_or("null".to_string(), |u| format!("{{\"prompt_tokens\":5,\"completion_tokens\":{u}}}"));
            format!("{{\"choices\":[{{\"index\":0,\"text\":\"{t}\",\"finish_reason\":null}}],\"usage\":{usage}}}")
        };
        st.on_event(&ev("a", Some(1)), 10, &mut r).unwrap();
        st.on_event(&ev("", Some(2)), 20, &mut r).unwrap(); // empty text, but a token
        st.on_event(&ev("bc", Some(4)), 35, &mut r).unwrap(); // two tokens in one chunk
        st.on_event(
            "{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4,\"prompt_tokens_details\":{\"cached_tokens\":32}}}",
            36,
            &mut r,
        )
        .unwrap();
        st.on_event("[DONE]", 37, &mut r).unwrap();
        st.finish_into(&mut r);
        assert!(st.done);
        assert_eq!((r.first_token_ns, r.last_token_ns, r.itl_ns.clone()), (Some(10), Some(35), vec![10, 15]));
        assert_eq!(
            (r.completion_tokens, r.token_source, r.cached_tokens, r.prompt_tokens_server),
            (4, Some(TokenSource::Usage), Some(32), Some(5))
        );
        // Without usage: one token per non-empty chunk; chat role chunk does not count.
        let mut r = LiveResult::default();
        let mut st = StreamState::default();
        st.on_event("{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}", 1, &mut r).unwrap();
        st.on_event("{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}", 2, &mut r).unwrap();
        st.on_event("{\"choices\":[{\"delta\":{\"content\":\"y\"},\"finish_reason\":\"length\"}]}", 4, &mut r).unwrap();
        st.finish_into(&mut r);
        assert_eq!((r.first_token_ns, r.completion_tokens, r.token_source), (Some(2), 2, Some(TokenSource::Chunks)));
        assert!(st.finish_reason_seen);
        // Errors.
        assert_eq!(st.on_event("{not json", 5, &mut r).unwrap_err().0, ErrorKind::MalformedSse);
        assert_eq!(st.on_event("{\"error\":{\"message\":\"boom\"}}", 5, &mut r).unwrap_err().0, ErrorKind::ServerError);
        assert_eq!(
            st.on_event("{\"object\":\"error\",\"message\":\"x\"}", 5, &mut r).unwrap_err().0,
            ErrorKind::ServerError
        );
        // Lenient: choices null / missing.
        st.on_event("{\"choices\":null,\"usage\":null}", 6, &mut r).unwrap();
        st.on_event("{\"id\":\"x\"}", 6, &mut r).unwrap();
    }
}
