#!/usr/bin/env bash
# Stops the server serve.sh started (by its saved PID; its children exit with it).
ROOT=${SERVESIM_VLLM_CACHE:-$HOME/.cache/servesim-vllm}
P=$(cat "$ROOT/logs/server.pid" 2>/dev/null) || exit 0
kill -TERM "$P" 2>/dev/null || exit 0
for _ in $(seq 1 60); do kill -0 "$P" 2>/dev/null || break; sleep 0.5; done
kill -0 "$P" 2>/dev/null && kill -KILL "$P"
rm -f "$ROOT/logs/server.pid"
echo stopped
