#!/usr/bin/env python3
"""Records real vLLM runs as servesim traces (validation/traces/<run-id>/).

Run through record.sh, which installs vLLM, builds the models and servesim first. This file
holds the recording plan and the per-run procedure:

  for each (model, engine setting): start one vLLM server with the step-trace hook, then
  for each run: reset the prefix cache, send a fixed calibration burst, reset again, drive the
  run's scenario with `servesim live` pinned to one core (scraping /metrics every 100 ms),
  then cut the server's step trace to the run's time window and write the trace folder.

Why one server per engine setting and a cache reset per run, not a server per run: a start
costs 20-40 s on this machine, and a reset gives each run the cold prefix cache of a fresh
server, so a replicate (same scenario, same seed) replays exactly the same requests.
Why a calibration burst per run: the machine's speed drifts 10-30 % within an hour; the burst
measures the speed of the moment so validation can tell queueing errors from speed drift.
"""
import argparse
import csv
import datetime as dt
import gzip
import hashlib
import importlib.metadata as md
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
CACHE = os.environ.get("SERVESIM_VLLM_CACHE", os.path.expanduser("~/.cache/servesim-vllm"))
TRACES = os.path.join(REPO, "validation", "traces")
WORKLOADS = os.path.join(HERE, "workloads")
SERVESIM = os.environ.get("SERVESIM_BIN", os.path.join(REPO, "target", "release", "servesim"))
# For a servesim binary built before the catalog had the fp32 ids: drive with this model/gpu
# instead (the live client uses only the workload and block size; scenario.yaml keeps the real ids).
DRIVE_AS = os.environ.get("SERVESIM_DRIVE_AS")  # e.g. "tiny-llama:cpu"
PORT = int(os.environ.get("PORT", "8011"))
URL = f"http://127.0.0.1:{PORT}"
CLIENT_CPU = os.environ.get("SERVESIM_CLIENT_CPU", "1")
MAX_FILE = 2 * 1024 * 1024
# float32, not bfloat16: on a CPU without AVX-512 BF16 (this machine is AVX2-only) torch's bf16
# GEMMs are ~100x slower than fp32 (0.4 vs 37 GFLOPS on one core, measured 2026-11-26).
DTYPE = os.environ.get("DTYPE", "float32")
# vLLM's processes run at this nice value (the machine is shared with build jobs; a higher
# priority keeps the step times closer to the machine's speed). 0 disables.
NICE = int(os.environ.get("SERVESIM_VLLM_NICE", "-5"))
# The kernel's autogroup scheduling shares the CPU between sessions first, by each session's
# autogroup nice; the server runs in its own session, so its session gets this value (the
# other sessions on this machine ran at -10).
GROUP_NICE = int(os.environ.get("SERVESIM_VLLM_GROUP_NICE", "-15"))

# Model shapes: make_tiny_llama.py arguments and the catalog id (catalog/models.yaml).
MODELS = {
    "tiny-llama": {"args": [], "shape": dict(layers=4, hidden=256, heads=4, kv_heads=2,
                                              intermediate=512, vocab=4096), "params_m": 4.46},
    "small-llama": {"args": ["--layers", "8", "--hidden", "1024", "--heads", "16", "--kv-heads", "4",
                             "--intermediate", "2816"],
                    "shape": dict(layers=8, hidden=1024, heads=16, kv_heads=4, intermediate=2816,
                                  vocab=4096), "params_m": 98.6},
}

# The catalog device for this machine: `cpu` is the AVX-512 BF16 machine of the vLLM notes,
# `cpu-avx2` the AVX2-only one these traces were recorded on (catalog/gpus.yaml).
GPU = os.environ.get("SERVESIM_GPU", "cpu-avx2")

# Engine settings, in servesim's scenario names (= vLLM argument names). `default` leaves the
# KV cache at VLLM_CPU_KVCACHE_SPACE=1 GiB (never full here); `starved` makes KV scarce so that
# vLLM preempts: 96 blocks of 32 tokens, and max_model_len must fit in 95 of them.
ENGINE_BASE = dict(max_num_seqs=32, max_num_batched_tokens=512, block_size=32,
                   enable_prefix_caching=True, enable_chunked_prefill=True, max_model_len=8192)
ENGINES = {
    "default": {},
    "starved": dict(num_gpu_blocks_override=96, max_model_len=2048),
}


def engine_flags(engine):
    f = ["--max-num-seqs", str(engine["max_num_seqs"]),
         "--max-num-batched-tokens", str(engine["max_num_batched_tokens"]),
         "--block-size", str(engine["block_size"]),
         "--max-model-len", str(engine["max_model_len"]),
         "--enable-prefix-caching" if engine["enable_prefix_caching"] else "--no-enable-prefix-caching"]
    if engine.get("num_gpu_blocks_override"):
        f += ["--num-gpu-blocks-override", str(engine["num_gpu_blocks_override"])]
    # Eager: 18 s starts and step times within 0.5 ms of compiled mode (vllm-cpu notes §3).
    # prompt-tokens-details: per-request cached tokens in `usage`; per-request-metrics: the
    # server's own queue time / TTFT in the last chunk (kept by servesim live when present).
    return f + ["--dtype", DTYPE, "--enforce-eager", "--enable-prompt-tokens-details",
                "--enable-per-request-metrics"]


def run(rid, workload, rate, secs, seed=None, rep=None):
    return dict(id=rid, workload=workload, rate=rate, duration_s=secs, seed=seed, rep=rep)


def plan_tiny():
    # Rates from the fp32 speed on this AVX2 machine (a 16-request decode step 14-20 ms once the
    # server has its CPU share): unique random prompts saturate near 10-12 req/s, shared ones
    # higher.
    m, d = "tiny", 30
    main = [run(f"{m}-random-5-rep1", "random", 5, d, seed=1001, rep=1)]
    main += [run(f"{m}-random-{r:g}", "random", r, d) for r in [1, 3, 7, 9, 12, 16]]
    main += [run(f"{m}-shared-8-rep1", "shared-prefix", 8, d, seed=1002, rep=1)]
    main += [run(f"{m}-shared-{r:g}", "shared-prefix", r, d) for r in [1, 3, 5, 11, 16, 22]]
    main += [run(f"{m}-random-5-rep2", "random", 5, d, seed=1001, rep=2)]
    main += [run(f"{m}-sessions-0.5", "sessions", 0.5, d), run(f"{m}-sessions-1.5", "sessions", 1.5, d)]
    main += [run(f"{m}-shared-8-rep2", "shared-prefix", 8, d, seed=1002, rep=2)]
    main += [run(f"{m}-random-5-rep3", "random", 5, d, seed=1001, rep=3)]
    starved = [run(f"{m}-starved-1.5-rep1", "starved", 1.5, d, seed=1003, rep=1),
               run(f"{m}-starved-3", "starved", 3, d),
               run(f"{m}-starved-1.5-rep2", "starved", 1.5, d, seed=1003, rep=2)]
    return [("tiny-llama", "default", main), ("tiny-llama", "starved", starved)]


def plan_small():
    # small-llama is ~22x the work per token: a 512-token step takes seconds here, so rates are
    # a tenth of tiny's and runs are longer.
    m, d = "small", 60
    main = [run(f"{m}-random-0.3-rep1", "random", 0.3, d, seed=2001, rep=1)]
    main += [run(f"{m}-random-{r:g}", "random", r, d) for r in [0.1, 0.6]]
    main += [run(f"{m}-shared-{r:g}", "shared-prefix", r, d) for r in [0.3, 0.8, 1.2]]
    main += [run(f"{m}-sessions-0.1", "sessions", 0.1, d)]
    main += [run(f"{m}-random-0.3-rep2", "random", 0.3, d, seed=2001, rep=2)]
    starved = [run(f"{m}-starved-0.3", "starved", 0.3, d)]
    return [("small-llama", "default", main), ("small-llama", "starved", starved)]


PLANS = {"tiny": plan_tiny, "small": plan_small}

# The calibration burst: the same 16 requests (fixed seed, cold cache) sent at once before
# every run; per-run speed = its decode step time and prefill rate.
CALIB_SEED = 424242


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def http(method, path, timeout=5.0):
    req = urllib.request.Request(URL + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def counters():
    """vLLM counters/gauges we report per run, from the full /metrics page."""
    want = {"vllm:prefix_cache_queries_total": "prefix_queries", "vllm:prefix_cache_hits_total": "prefix_hits",
            "vllm:num_preemptions_total": "preemptions", "vllm:prompt_tokens_total": "prompt_tokens",
            "vllm:generation_tokens_total": "generation_tokens",
            "vllm:request_success_total": "requests_ok"}
    got = {v: 0.0 for v in want.values()}
    blocks = None
    for line in http("GET", "/metrics").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in want:
            got[want[name]] += float(line.rsplit(" ", 1)[1])
        if name == "vllm:cache_config_info" and "num_gpu_blocks=" in line:
            blocks = int(line.split('num_gpu_blocks="', 1)[1].split('"', 1)[0])
    got["num_gpu_blocks"] = blocks
    return got


class Server:
    def __init__(self, model, engine_name):
        self.model, self.engine_name = model, engine_name
        self.engine = {**ENGINE_BASE, **ENGINES[engine_name]}
        self.flags = engine_flags(self.engine)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        os.makedirs(os.path.join(CACHE, "logs"), exist_ok=True)
        self.steps_path = os.path.join(CACHE, "logs", f"steps-{model}-{engine_name}-{stamp}.csv")
        self.log_path = os.path.join(CACHE, "logs", f"server-{model}-{engine_name}-{stamp}.log")
        self.proc = None

    def start(self):
        env = dict(os.environ)
        tmp = os.path.join(CACHE, "tmp")
        os.makedirs(tmp, exist_ok=True)
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1",
                   VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
                   VLLM_CACHE_ROOT=os.path.join(CACHE, "cache", "vllm"),
                   TORCHINDUCTOR_CACHE_DIR=os.path.join(CACHE, "cache", "inductor"),
                   XDG_CACHE_HOME=os.path.join(CACHE, "cache"), HF_HOME=os.path.join(CACHE, "cache", "hf"),
                   TMPDIR=tmp, VLLM_SERVER_DEV_MODE="1",  # enables POST /reset_prefix_cache
                   SERVESIM_STEP_TRACE=self.steps_path,
                   PYTHONPATH=os.path.join(HERE, "steptrace") + os.pathsep + env.get("PYTHONPATH", ""))
        self.cmd = [sys.executable, os.path.join(HERE, "vllm_cli.py"), "serve", os.path.join(CACHE, self.model),
                    "--served-model-name", self.model, "--host", "127.0.0.1", "--port", str(PORT)] + self.flags
        t0 = time.time()
        self.started_utc = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.proc = subprocess.Popen(self.cmd, env=env, cwd=CACHE, stdout=open(self.log_path, "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        set_group_nice(self.proc.pid)  # the start itself is minutes of CPU on a busy machine
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"vLLM exited ({self.proc.returncode}); log: {self.log_path}\n"
                                 + open(self.log_path).read()[-3000:])
            try:
                http("GET", "/health", 1.0)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.time() - t0 > 900:
                    self.stop()
                    raise SystemExit(f"vLLM not ready after 900 s; log: {self.log_path}")
                time.sleep(0.5)
        self.startup_s = round(time.time() - t0, 1)
        text = open(self.log_path).read()
        self.async_scheduling = None  # from the steps (refresh): vLLM 0.32 logs nothing about it on CPU
        self.kv_line = next((ln.split("]", 1)[-1].strip() for ln in text.splitlines() if "KV cache size" in ln), None)
        self.num_gpu_blocks = counters()["num_gpu_blocks"]
        boost(self.proc.pid)
        log(f"vLLM {self.model}/{self.engine_name} ready in {self.startup_s} s, {self.num_gpu_blocks} KV blocks")

    def attach(self, steps_path, log_path):
        """Use a server serve.sh started (same flags: its defaults + the engine setting's)."""
        self.steps_path, self.log_path = steps_path, log_path
        self.cmd = None
        text = open(log_path).read()
        self.started_utc = dt.datetime.fromtimestamp(os.path.getmtime(steps_path) if os.path.exists(steps_path)
                                                     else time.time(), dt.timezone.utc).isoformat(timespec="seconds")
        self.startup_s = None
        out = os.path.join(os.path.dirname(log_path), "serve.out")
        if os.path.exists(out):  # serve.sh's "vLLM ready on ... after N s"
            for ln in open(out):
                if "ready on" in ln and "after" in ln:
                    self.startup_s = float(ln.split("after", 1)[1].split()[0])
        self.async_scheduling = None  # from the steps (refresh): vLLM 0.32 logs nothing about it on CPU
        self.kv_line = next((ln.split("]", 1)[-1].strip() for ln in text.splitlines() if "KV cache size" in ln), None)
        self.num_gpu_blocks = counters()["num_gpu_blocks"]
        boost(int(open(os.path.join(CACHE, "logs", "server.pid")).read()))
        log(f"attached to vLLM {self.model}/{self.engine_name}: {self.num_gpu_blocks} KV blocks")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def steps_offset(self):
        return os.path.getsize(self.steps_path) if os.path.exists(self.steps_path) else 0

    def steps_since(self, offset):
        if not os.path.exists(self.steps_path):
            return []
        with open(self.steps_path) as f:
            f.seek(offset)
            return [ln.rstrip("\n").split(",") for ln in f if ln[:1].isdigit()]


STEP_COLUMNS = ["t_s", "duration_s", "num_reqs", "num_prefill_reqs", "prefill_tokens", "num_decode_reqs",
                "decode_tokens", "context_tokens"]


def steps_csv(rows, t0, t1):
    """Rows of the hook's file within [t0, t1] (unix s) as steps.csv text, times from t0."""
    out = [",".join(STEP_COLUMNS)]
    n = 0
    for r in rows:
        t = float(r[0])
        if t0 <= t <= t1:
            out.append("%.6f,%s,%s" % (t - t0, r[1], ",".join(r[2:8])))
            n += 1
    return "\n".join(out) + "\n", n


def step_speed(rows):
    """Speed of the moment from a burst's steps: median decode-only step, prefill tokens/s."""
    dec = sorted(float(r[1]) for r in rows if r[3] == "0" and int(r[2]) > 0)
    pre = [(int(r[4]), float(r[1])) for r in rows if int(r[4]) >= 256]
    return {
        "steps": len(rows),
        "decode_step_ms_p50": round(1e3 * dec[len(dec) // 2], 3) if dec else None,
        "decode_batch_p50": sorted(int(r[2]) for r in rows if r[3] == "0")[len(dec) // 2] if dec else None,
        "prefill_tokens_per_s": round(sum(p for p, _ in pre) / sum(d for _, d in pre)) if pre else None,
    }


def scenario_for(model, server, r, seed):
    """The run's servesim scenario: the workload file with the run's rate, seed, duration, model
    and the server's engine settings (KV blocks as vLLM reported them)."""
    sc = yaml.safe_load(open(os.path.join(WORKLOADS, r["workload"] + ".yaml")))
    sc["name"] = r["id"]
    sc["seed"] = seed
    sc["duration"] = f"{r['duration_s']}s"
    sc["model"] = catalog_model(model)
    sc["gpu"] = GPU
    sc["replicas"] = 1
    eng = dict(server.engine)
    eng["num_gpu_blocks_override"] = server.num_gpu_blocks
    sc["engine"] = {"vllm_version": ".".join(vllm_version().split(".")[:2]), **eng}
    w = sc["workload"]
    if r["rate"] is not None:
        w["arrival"]["rate"] = r["rate"]
    return sc


def catalog_model(model):
    return model if DTYPE == "bfloat16" else f"{model}-{'fp32' if DTYPE == 'float32' else DTYPE}"


def boost(pid):
    """renice the server and its descendants (processes this recorder started)."""
    if not NICE:
        return
    kids, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in open(f"/proc/{p}/task/{t}/children").read().split()]
        except OSError:
            pass
    for p in kids:
        try:
            os.setpriority(os.PRIO_PROCESS, p, NICE)
        except OSError:
            pass
    set_group_nice(pid)


def set_group_nice(pid):
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(GROUP_NICE))
    except OSError:
        pass


def vllm_version():
    return md.version("vllm-cpu")


def machine():
    info = {"cores": os.cpu_count(), "kernel": platform.release()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for ln in out.splitlines():
            k, _, v = ln.partition(":")
            if k.strip() == "Model name":
                info["cpu_model"] = v.strip()
            if k.strip() == "Flags":
                fl = v.split()
                info["avx512"] = "avx512f" in fl
                info["avx512_bf16"] = "avx512_bf16" in fl
                info["amx"] = "amx_tile" in fl
    except OSError:
        pass
    return info


def drive(scenario_path, out_dir, metrics):
    """servesim live on one pinned core (real-time priority when allowed)."""
    if DRIVE_AS:
        sc = yaml.safe_load(open(scenario_path))
        sc["model"], sc["gpu"] = DRIVE_AS.split(":")
        scenario_path = os.path.join(os.path.dirname(out_dir), os.path.basename(out_dir) + "-drive.yaml")
        yaml.safe_dump(sc, open(scenario_path, "w"), sort_keys=False)
    cmd = [SERVESIM, "live", scenario_path, "--endpoint", URL, "--model", MODEL_NAME[0], "--vocab", "4096",
           "--out", out_dir, "--no-progress", "--quiet", "--drain", "90s", "--retries", "0",
           # Past saturation requests wait minutes in vLLM's queue before their first byte.
           "--stall-timeout", "300s"]
    if metrics:
        cmd += ["--metrics", "--metrics-interval", "100ms"]
    pin = ["taskset", "-c", CLIENT_CPU]
    rt = ["chrt", "-f", "10"] if subprocess.run(["chrt", "-f", "10", "true"]).returncode == 0 else []
    p = subprocess.run(pin + rt + cmd, capture_output=True, text=True)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"servesim live failed ({p.returncode}): {p.stderr[-2000:]}")
    return pin + rt + [os.path.relpath(cmd[0], REPO)] + cmd[1:], p.stdout.strip()


MODEL_NAME = [None]


def gz(src, dst):
    with open(src, "rb") as f, open(dst, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as g:
        shutil.copyfileobj(f, g)


def write_gz(dst, text):
    with open(dst, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as g:
        g.write(text.encode())


def record_run(server, r, tmp_root):
    rid = r["id"]
    out = os.path.join(TRACES, rid)
    # A stable per-run seed (not hash(), which Python salts per process) unless the plan fixes
    # one (replicates share theirs).
    seed = r["seed"] or int(hashlib.sha256(rid.encode()).hexdigest()[:8], 16)
    tmp = os.path.join(tmp_root, rid)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    load0 = os.getloadavg()
    # 1. calibration burst on a cold cache
    http("POST", "/reset_prefix_cache")
    calib = yaml.safe_load(open(os.path.join(WORKLOADS, "calib-burst.yaml")))
    calib.update(seed=CALIB_SEED, model=catalog_model(server.model), gpu=GPU, replicas=1)
    calib["engine"] = {**server.engine, "num_gpu_blocks_override": server.num_gpu_blocks}
    cpath = os.path.join(tmp, "calib-scenario.yaml")
    yaml.safe_dump(calib, open(cpath, "w"), sort_keys=False)
    off = server.steps_offset()
    drive(cpath, os.path.join(tmp, "calib"), metrics=False)
    time.sleep(0.3)
    calib_rows = server.steps_since(off)
    calib_live = json.load(open(os.path.join(tmp, "calib", "live.json")))
    calib_sum = json.load(open(os.path.join(tmp, "calib", "summary.json")))
    # 2. the run, on a cold cache again
    ok = False
    for _ in range(20):
        if json.loads(http("POST", "/reset_prefix_cache")).get("success"):
            ok = True
            break
        time.sleep(0.5)
    sc = scenario_for(server.model, server, r, seed)
    os.makedirs(out, exist_ok=True)
    spath = os.path.join(out, "scenario.yaml")
    with open(spath, "w") as f:
        f.write(f"# Recorded against real vLLM {vllm_version()} by validation/vllm-cpu/record.py (run {rid}).\n"
                f"# Workload from validation/vllm-cpu/workloads/{r['workload']}.yaml; engine = the server's flags.\n")
        yaml.safe_dump(sc, f, sort_keys=False)
    before = counters()
    off = server.steps_offset()
    run_dir = os.path.join(tmp, "run")
    cmd, line = drive(spath, run_dir, metrics=True)
    time.sleep(0.3)
    after = counters()
    live = json.load(open(os.path.join(run_dir, "live.json")))
    t0 = live["start_unix_s"]
    steps_text, n_steps = steps_csv(server.steps_since(off), t0, t0 + live["wall_seconds"] + 0.5)
    write_gz(os.path.join(out, "steps.csv.gz"), steps_text)
    c0 = calib_live["start_unix_s"]
    ctext, _ = steps_csv(calib_rows, c0, c0 + calib_live["wall_seconds"] + 0.5)
    write_gz(os.path.join(out, "calib_steps.csv.gz"), ctext)
    gz(os.path.join(run_dir, "requests.csv"), os.path.join(out, "requests.csv.gz"))
    gz(os.path.join(run_dir, "timeseries.csv"), os.path.join(out, "timeseries.csv.gz"))
    gz(os.path.join(tmp, "calib", "requests.csv"), os.path.join(out, "calib_requests.csv.gz"))
    shutil.copy(os.path.join(run_dir, "summary.json"), os.path.join(out, "summary.json"))
    shutil.copy(os.path.join(run_dir, "live.json"), os.path.join(out, "live.json"))
    summ = json.load(open(os.path.join(run_dir, "summary.json")))
    delta = {k: after[k] - before[k] for k in after if k != "num_gpu_blocks"}
    q = delta["prefix_queries"]
    lag = live["send_lag_s"]
    manifest = {
        "id": rid,
        "date_utc": dt.datetime.fromtimestamp(t0, dt.timezone.utc).isoformat(timespec="seconds"),
        "start_unix_s": t0,
        "vllm": {"package": "vllm-cpu", "version": vllm_version(), "torch": md.version("torch")},
        "model": {"id": server.model, "catalog_id": catalog_model(server.model), "params_millions": MODELS[server.model]["params_m"],
                  **MODELS[server.model]["shape"], "dtype": DTYPE,
                  "weights": "random (make_tiny_llama.py, stored bf16, served as " + DTYPE + ")"},
        "server": {"command": ["vllm", "serve", server.model, "--served-model-name", server.model] + server.flags,
                   "engine_setting": server.engine_name, "engine": server.engine,
                   "num_gpu_blocks": server.num_gpu_blocks, "kv_capacity_tokens": server.num_gpu_blocks * server.engine["block_size"],
                   "kv_log_line": server.kv_line, "async_scheduling": server.async_scheduling,
                   "started_utc": server.started_utc, "nice": NICE, "autogroup_nice": GROUP_NICE, "startup_s": server.startup_s,
                   "prefix_cache_reset_before_run": ok,
                   "env": {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}},
        "workload": {"file": f"validation/vllm-cpu/workloads/{r['workload']}.yaml", "kind": r["workload"],
                     "rate": r["rate"], "rate_unit": "sessions/s" if r["workload"] == "sessions" else "requests/s",
                     "duration_s": r["duration_s"], "seed": seed},
        "replicate": {"group": rid.rsplit("-rep", 1)[0], "index": r["rep"]} if r["rep"] else None,
        "client": {"command": cmd, "pinned_cpu": int(CLIENT_CPU), "realtime": "chrt" in cmd,
                   "metrics_interval_s": 0.1, "wall_s": live["wall_seconds"],
                   "send_lag_s": {k: lag.get(k) for k in ("mean", "p50", "p99", "max")},
                   "summary_line": line},
        "machine": {**machine(), "loadavg_before": [round(x, 2) for x in load0],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                    "note": "2-core dev machine shared with other build jobs: expect speed drift"},
        "calibration": {"workload": "validation/vllm-cpu/workloads/calib-burst.yaml", "seed": CALIB_SEED,
                        "completed": calib_live["requests"]["completed"],
                        "ttft_mean_s": calib_sum.get("ttft_s", {}).get("mean"),
                        "tpot_mean_s": calib_sum.get("tpot_s", {}).get("mean"),
                        **step_speed(calib_rows)},
        "results": {"requests": live["requests"]["total"], "completed": live["requests"]["completed"],
                    "failed": live["requests"]["failed"], "aborted": live["requests"]["in_flight_aborted"],
                    "steps": n_steps, "preemptions": int(delta["preemptions"]),
                    "ttft_mean_s": summ["ttft_s"]["mean"], "ttft_p90_s": summ["ttft_s"]["p90"],
                    "tpot_mean_s": summ["tpot_s"]["mean"], "tpot_p90_s": summ["tpot_s"]["p90"],
                    "e2e_mean_s": summ["e2e_s"]["mean"],
                    "prefix_hit_rate": round(delta["prefix_hits"] / q, 4) if q else None,
                    "server_counter_deltas": delta,
                    "prompt_token_mismatches": live["prompt_token_mismatches"],
                    "output_length_mismatches": live["output_length_mismatches"]},
        "files": {},
    }
    for fn in sorted(os.listdir(out)):
        if fn != "manifest.json":
            size = os.path.getsize(os.path.join(out, fn))
            manifest["files"][fn] = size
            if size >= MAX_FILE:
                log(f"WARNING {rid}/{fn} is {size} bytes (>= 2 MB)")
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    manifest = refresh(rid)
    res = manifest["results"]
    log(f"{rid}: {res['completed']}/{res['requests']} completed, {res['steps']} steps, "
        f"preemptions {res['preemptions']}, hit {res['prefix_hit_rate']}, lag p99 {lag.get('p99')}, "
        f"calib decode {manifest['calibration']['decode_step_ms_p50']} ms")
    shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def step_overlap(steps_text):
    """Fraction of steps scheduled before the previous one finished (async scheduling)."""
    rows = [ln.split(",") for ln in steps_text.strip().splitlines()[1:]]
    over = sum(1 for a, b in zip(rows, rows[1:]) if float(b[0]) < float(a[0]) + float(a[1]) - 1e-4)
    return round(over / max(1, len(rows) - 1), 4)


def refresh(rid):
    """Recomputes derived manifest fields from a trace folder's files."""
    d = os.path.join(TRACES, rid)
    m = json.load(open(os.path.join(d, "manifest.json")))
    text = gzip.open(os.path.join(d, "steps.csv.gz"), "rt").read()
    ov = step_overlap(text)
    m["server"]["async_scheduling"] = ov > 0.01
    m["server"]["steps_overlapping_fraction"] = ov
    # Stream chunks carry several tokens when the API server falls behind; client ITL is per
    # chunk (as in `vllm bench serve`), so record how many tokens a chunk held on average.
    live = json.load(open(os.path.join(d, "live.json")))
    rows = [r for r in csv.DictReader(gzip.open(os.path.join(d, "requests.csv.gz"), "rt")) if r["outcome"] == "completed"]
    toks = sum(int(r["output_tokens"]) for r in rows)
    chunks = live["client_itl_s"]["count"] + len(rows)
    m["results"]["client_tokens_per_chunk"] = round(toks / chunks, 3) if chunks else None
    m["files"] = {fn: os.path.getsize(os.path.join(d, fn)) for fn in sorted(os.listdir(d)) if fn != "manifest.json"}
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(m, f, indent=1)
        f.write("\n")
    return m


def commit_trace(rid):
    """git add + commit one trace folder (retried: other tools may hold the index lock)."""
    for _ in range(10):
        ok = subprocess.run(["git", "add", os.path.join(TRACES, rid)], cwd=REPO).returncode == 0 and \
            subprocess.run(["git", "commit", "-q", "-m", f"Trace {rid} (real vLLM, recorded)", "--",
                            os.path.join(TRACES, rid)], cwd=REPO).returncode == 0
        if ok:
            return
        time.sleep(2)
    log(f"could not commit {rid}; left in the work tree")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("plans", nargs="*", default=["tiny", "small"], help="tiny, small (default both)")
    ap.add_argument("--only", default=None, help="comma-separated run ids (or prefixes) to record")
    ap.add_argument("--skip-existing", action="store_true", help="skip runs whose manifest.json exists")
    ap.add_argument("--commit", action="store_true", help="git add + commit each trace when recorded")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--attach", metavar="STEPS_FILE", help="use the server serve.sh started with "
                    "STEP_TRACE=STEPS_FILE (one model/engine group only; it is not stopped)")
    ap.add_argument("--refresh", action="store_true", help="recompute derived manifest fields of recorded traces")
    ap.add_argument("--engine", default=None, help="only this engine setting (default, starved)")
    a = ap.parse_args()
    if a.refresh:
        for rid in sorted(os.listdir(TRACES)):
            if os.path.exists(os.path.join(TRACES, rid, "manifest.json")):
                refresh(rid)
        return
    groups = [g for p in a.plans for g in PLANS[p]()]
    only = a.only.split(",") if a.only else None
    tmp_root = os.path.join(CACHE, "runs")
    for model, engine_name, runs in groups:
        if a.engine and engine_name != a.engine:
            continue
        todo = [r for r in runs if (not only or any(r["id"].startswith(o) for o in only))
                and not (a.skip_existing and os.path.exists(os.path.join(TRACES, r["id"], "manifest.json")))]
        if a.list:
            for r in todo:
                print(model, engine_name, r["id"], r["workload"], r["rate"], r["duration_s"])
            continue
        if not todo:
            continue
        MODEL_NAME[0] = model
        server = Server(model, engine_name)
        if a.attach:
            server.attach(a.attach, os.path.join(CACHE, "logs", "server.log"))
        else:
            server.start()
        try:
            for r in todo:
                try:
                    record_run(server, r, tmp_root)
                except Exception as e:  # noqa: BLE001 - record what we can, report the rest
                    log(f"{r['id']} FAILED: {e}")
                    if server.proc is not None and server.proc.poll() is not None:
                        raise
                    continue
                if a.commit:
                    commit_trace(r["id"])
        finally:
            if not a.attach:
                server.stop()


if __name__ == "__main__":
    main()
