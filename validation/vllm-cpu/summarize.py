#!/usr/bin/env python3
"""Markdown tables of the recorded traces (validation/traces/*/manifest.json): one row per run,
and the noise floor, i.e. the relative differences between replicates of the same scenario
and seed (same requests, cold cache each, recorded minutes apart on the same server).
usage: summarize.py [TRACES_DIR]"""
import json
import os
import sys

TRACES = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "traces")


def ms(x):
    return "-" if x is None else f"{x * 1e3:.0f}" if x >= 0.1 else f"{x * 1e3:.1f}"


def main():
    runs = []
    for rid in sorted(os.listdir(TRACES)):
        p = os.path.join(TRACES, rid, "manifest.json")
        if os.path.exists(p):
            runs.append(json.load(open(p)))
    runs.sort(key=lambda m: (m["model"]["params_millions"], m["server"]["engine_setting"], m["workload"]["kind"],
                             m["workload"]["rate"], m["id"]))
    print("| run | model | engine | workload | rate | completed / sent | preemptions | hit rate | TTFT mean ms | TPOT mean ms | E2E mean ms | steps | calib decode step ms | send lag p99 ms | tok/chunk |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in runs:
        r, w = m["results"], m["workload"]
        hit = "-" if r["prefix_hit_rate"] is None else f"{100 * r['prefix_hit_rate']:.1f} %"
        unit = "/s" if w["rate_unit"] == "requests/s" else " sess/s"
        print(f"| {m['id']} | {m['model']['id']} | {m['server']['engine_setting']} | {w['kind']} | {w['rate']:g}{unit} | "
              f"{r['completed']} / {r['requests']} | {r['preemptions']} | {hit} | {ms(r.get('ttft_mean_s'))} | "
              f"{ms(r.get('tpot_mean_s'))} | {ms(r.get('e2e_mean_s'))} | {r['steps']} | "
              f"{m['calibration']['decode_step_ms_p50']} | {m['client']['send_lag_s']['p99'] * 1e3:.2f} | "
              f"{r.get('client_tokens_per_chunk')} |")
    groups = {}
    for m in runs:
        if m.get("replicate"):
            groups.setdefault(m["replicate"]["group"], []).append(m)
    if not groups:
        return
    print()
    print("Noise floor: per replicate group, the spread (max − min) / mean of each statistic.")
    print()
    print("| group | replicates | TTFT mean | TPOT mean | E2E mean | calib decode step | completed |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for g, ms_ in sorted(groups.items()):
        if len(ms_) < 2:
            continue

        def spread(get):
            v = [get(m) for m in ms_]
            if any(x is None for x in v):
                return "-"
            mean = sum(v) / len(v)
            return f"{100 * (max(v) - min(v)) / mean:.1f} % ({' / '.join(f'{x * 1e3:.1f}' for x in v)} ms)"

        print(f"| {g} | {len(ms_)} | {spread(lambda m: m['results']['ttft_mean_s'])} | "
              f"{spread(lambda m: m['results']['tpot_mean_s'])} | {spread(lambda m: m['results']['e2e_mean_s'])} | "
              f"{spread(lambda m: (m['calibration']['decode_step_ms_p50'] or 0) / 1e3)} | "
              f"{' / '.join(str(m['results']['completed']) for m in ms_)} |")


if __name__ == "__main__":
    main()
