#!/usr/bin/env bash
# Install (cached) → serve → the ignored live end-to-end test → a short `servesim live` run → stop.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
PORT=${PORT:-8011}
"$HERE/install.sh"
PORT=$PORT "$HERE/serve.sh"
trap '"$HERE/stop.sh"' EXIT
SERVESIM_VLLM_URL=http://127.0.0.1:$PORT cargo test --release --test live_vllm -- --ignored --nocapture
cargo run --release -q -- live scenarios/chat.yaml --endpoint "http://127.0.0.1:$PORT" --model tiny-llama \
  --duration 30s --metrics --metrics-interval 250ms --out reports/live-chat-vllm --no-progress
