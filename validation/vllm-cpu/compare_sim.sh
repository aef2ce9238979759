#!/usr/bin/env bash
# `servesim live --compare-sim --speed-probe` against real vLLM (tiny-llama on this CPU): the
# user-facing side-by-side check of issue 6, on the recorder's workloads. For each case: reset
# the prefix cache, probe the server's speed of the moment (16-request burst), drive the
# workload, simulate it twice (the shipped calibration `tiny-llama-cpu`, and the same scaled by
# the probe) and write comparison.json, comparison-speed-probed.json and validation.html.
#   validation/vllm-cpu/compare_sim.sh [OUT_DIR]        (default target/compare-sim)
# Starts the server (serve.sh) unless one answers on $PORT already; stops only one it started.
# The client is pinned to core 1 at real-time priority where allowed, as in record.py.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
export PORT=${PORT:-8011}
OUT=${1:-target/compare-sim}
URL=http://127.0.0.1:$PORT
cargo build --release --quiet
if ! curl -sf "$URL/health" >/dev/null; then
  "$HERE/install.sh" >/dev/null
  "$HERE/serve.sh"
  trap '"$HERE/stop.sh"' EXIT
fi
pin=(taskset -c 1)
chrt -f 10 true 2>/dev/null && pin+=(chrt -f 10)
# case name | workload file | overrides (the recorded runs' engine: 8,192 KV blocks)
cases=(
  "shared-8|shared-prefix.yaml|--set workload.arrival.rate=8 --set duration=30s"
  "random-5|random.yaml|--set workload.arrival.rate=5 --set duration=30s"
  "random-12|random.yaml|--set workload.arrival.rate=12 --set duration=30s"
)
for c in "${cases[@]}"; do
  IFS='|' read -r name file sets <<<"$c"
  curl -sf -X POST "$URL/reset_prefix_cache" >/dev/null || echo "note: $URL/reset_prefix_cache unavailable (needs VLLM_SERVER_DEV_MODE=1); the cache is warm"
  echo "== $name =="
  # shellcheck disable=SC2086
  "${pin[@]}" target/release/servesim live "$HERE/workloads/$file" --endpoint "$URL" --model tiny-llama \
    --metrics --metrics-interval 100ms --no-progress --quiet --compare-sim --speed-probe \
    --set 'engine.step_time={kind: calibration, name: tiny-llama-cpu}' --set engine.num_gpu_blocks_override=8192 \
    $sets --out "$OUT/$name" | grep -E "^(==|speed probe|live:|(ttft|tpot|e2e)_(mean|p90)|hit_rate|throughput)"
done
echo "reports: $OUT/*/validation.html"
