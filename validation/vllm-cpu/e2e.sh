#!/usr/bin/env bash
# End-to-end test of `servesim live` against real vLLM (not part of .ci/run: see README.md):
# install (cached) → build → start vLLM (tiny-llama) → the ignored test tests/live_vllm.rs
# (counts, exact token lengths, cached tokens on a shared-prefix workload, /metrics moved)
# → stop. Prints the time each phase took.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
export PORT=${PORT:-8011}
t=$(date +%s)
phase() { local n; n=$(date +%s); echo "e2e: $1 took $((n - t)) s"; t=$n; }
"$HERE/install.sh" >/dev/null
phase "install check"
cargo test --release --test live_vllm --no-run --quiet 2>/dev/null
phase "build"
"$HERE/serve.sh"
trap '"$HERE/stop.sh"' EXIT
phase "server start"
SERVESIM_VLLM_URL=http://127.0.0.1:$PORT cargo test --release --test live_vllm -- --ignored --nocapture
phase "test"
