#!/usr/bin/env bash
# Prints the figures of validation/README.md's headline table for the tiny-llama runs:
# the test split and the fit split against one calibration (refitted from the fit split's
# steps.csv, exactly as catalog/calibrations/tiny-llama-cpu.yaml was), and the test split with
# a per-run calibration (each run's own steps.csv). Needs only the committed traces and a
# release build; takes a few seconds. Usage: validation/vllm-cpu/headline.sh [OUT_DIR]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
OUT=${1:-$(mktemp -d)}
mkdir -p "$OUT/per"
S=${SERVESIM:-target/release/servesim}
[ -x "$S" ] || cargo build --release --quiet
T=validation/traces
FIT="tiny-random-1 tiny-random-5-rep1 tiny-random-9 tiny-random-16 tiny-shared-3 tiny-shared-8-rep1 tiny-shared-16 tiny-sessions-0.5 tiny-starved-1.5-rep1"
TEST="tiny-random-3 tiny-random-5-rep2 tiny-random-5-rep3 tiny-random-7 tiny-random-12 tiny-shared-1 tiny-shared-5 tiny-shared-8-rep2 tiny-shared-11 tiny-shared-22 tiny-sessions-1.5 tiny-starved-1.5-rep2 tiny-starved-3"
fit=(); for r in $FIT; do fit+=("$T/$r"); done
test=(); for r in $TEST; do test+=("$T/$r"); done
"$S" calibrate --name tiny-llama-cpu --out "$OUT/tiny-llama-cpu.yaml" --from "${fit[@]}" --test "${test[@]}"
# validate exits 1 when a tolerance is missed; none is given here, so only 2 is an error.
v() { "$S" validate "$@" -q || [ $? -eq 1 ]; }
v "${test[@]}" --calibration "$OUT/tiny-llama-cpu.yaml" --json "$OUT/test.json" > "$OUT/test.txt"
v "${fit[@]}" --calibration "$OUT/tiny-llama-cpu.yaml" --json "$OUT/fit.json" > "$OUT/fit.txt"
for r in $TEST; do
  "$S" calibrate --name "per-$r" --out "$OUT/per/$r.yaml" --from "$T/$r" > /dev/null
  v "$T/$r" --calibration "$OUT/per/$r.yaml" --json "$OUT/per/$r.json" > /dev/null
done
python3 - "$OUT" <<'PY'
import json, glob, statistics, sys
out = sys.argv[1]
def agg(f):
    return {a["stat"]: a for a in json.load(open(f))["aggregate"]}
test, fit = agg(f"{out}/test.json"), agg(f"{out}/fit.json")
per = {}
for f in sorted(glob.glob(f"{out}/per/*.json")):
    for s, a in agg(f).items():
        per.setdefault(s, []).append(a["median"])
print(f"{'statistic':16s} {'test (one calib.)':>20s} {'fit split':>16s} {'test (per-run)':>16s}   median / worst")
for s, a in test.items():
    p = per.get(s, [])
    pr = f"{statistics.median(p):6.1f} / {max(p):6.1f}" if p else "-"
    print(f"{s:16s} {a['median']:9.1f} / {a['worst']:6.1f} {fit[s]['median']:7.1f} / {fit[s]['worst']:6.1f} {pr:>16s}   {a['unit']}")
PY
echo "outputs: $OUT"
