#!/usr/bin/env bash
# One-off cross-check of `servesim live` against vLLM's own `vllm bench serve` on the same
# running server (serve.sh) and the same workload shape (workloads/bench-compare.yaml: unique
# 256-token prompts, 64 output tokens with ignore_eos, Poisson at RATE, 300 requests). The two
# clients alternate A B A B with the prefix cache reset before each pass, both pinned to the
# same core; prints TTFT/TPOT/ITL/E2E means and p50s of each pass.
#   validation/vllm-cpu/serve.sh && RATE=4 validation/vllm-cpu/bench_compare.sh; validation/vllm-cpu/stop.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ROOT=${SERVESIM_VLLM_CACHE:-$HOME/.cache/servesim-vllm}
PORT=${PORT:-8011}; URL=http://127.0.0.1:$PORT
RATE=${RATE:-4}; N=${N:-300}; PASSES=${PASSES:-2}; MODEL=${MODEL:-tiny-llama}
OUT=${OUT:-$ROOT/bench-compare}
CPU=${SERVESIM_CLIENT_CPU:-1}
mkdir -p "$OUT"
PIN=(taskset -c "$CPU"); [ -z "${NO_RT:-}" ] && chrt -f 10 true 2>/dev/null && PIN+=(chrt -f 10)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 TMPDIR=$ROOT/tmp
for pass in $(seq 1 "$PASSES"); do
  curl -sf -X POST "$URL/reset_prefix_cache" >/dev/null
  "${PIN[@]}" "$ROOT/venv/bin/python" "$HERE/vllm_cli.py" bench serve --backend vllm --base-url "$URL" \
    --endpoint /v1/completions --model "$MODEL" --tokenizer "$ROOT/$MODEL" --dataset-name random \
    --random-input-len 256 --random-output-len 64 --random-range-ratio 0 --num-prompts "$N" \
    --request-rate "$RATE" --ignore-eos --seed "$pass" --percentile-metrics ttft,tpot,itl,e2el \
    --save-result --save-detailed --result-dir "$OUT" --result-filename "bench-$pass.json" --disable-tqdm \
    > "$OUT/bench-$pass.log" 2>&1 || { tail -30 "$OUT/bench-$pass.log"; exit 2; }
  curl -sf -X POST "$URL/reset_prefix_cache" >/dev/null
  "${PIN[@]}" "${SERVESIM_BIN:-$REPO/target/release/servesim}" live "${SCENARIO:-$HERE/workloads/bench-compare.yaml}" --endpoint "$URL" \
    --model "$MODEL" --set "workload.arrival.rate=$RATE" --set "workload.max_requests=$N" --set "seed=$pass" \
    --out "$OUT/live-$pass" --quiet --no-progress --drain 120s --retries 0
done
"$ROOT/venv/bin/python" - "$OUT" "$PASSES" <<'PY'
import csv, gzip, json, os, statistics as st, sys
out, passes = sys.argv[1], int(sys.argv[2])
def row(name, d):
    print(f"| {name} | " + " | ".join(f"{d[k]:.1f}" for k in ("ttft_mean", "ttft_p50", "tpot_mean", "tpot_p50", "itl_mean", "e2e_mean")) + f" | {d['n']} |")
print("| client | TTFT mean ms | TTFT p50 ms | TPOT mean ms | TPOT p50 ms | ITL mean ms | E2E mean ms | completed |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for p in range(1, passes + 1):
    b = json.load(open(os.path.join(out, f"bench-{p}.json")))
    row(f"vllm bench serve, pass {p}", dict(ttft_mean=b["mean_ttft_ms"], ttft_p50=b["median_ttft_ms"], tpot_mean=b["mean_tpot_ms"],
        tpot_p50=b["median_tpot_ms"], itl_mean=b["mean_itl_ms"], e2e_mean=b["mean_e2el_ms"], n=b["completed"]))
    rows = [r for r in csv.DictReader(open(os.path.join(out, f"live-{p}", "requests.csv"))) if r["outcome"] == "completed"]
    f = lambda k: [float(r[k]) * 1e3 for r in rows if r[k] not in ("", None)]
    live = json.load(open(os.path.join(out, f"live-{p}", "live.json")))
    row(f"servesim live, pass {p}", dict(ttft_mean=st.mean(f("ttft_s")), ttft_p50=st.median(f("ttft_s")), tpot_mean=st.mean(f("tpot_s")),
        tpot_p50=st.median(f("tpot_s")), itl_mean=live["client_itl_s"]["mean"] * 1e3, e2e_mean=st.mean(f("e2e_s")), n=len(rows)))
PY
