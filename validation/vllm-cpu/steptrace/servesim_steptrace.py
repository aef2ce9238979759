"""Per-engine-step trace for servesim's calibration, as a vLLM general plugin.

Why a plugin: the step trace must come from the engine-core process, where the scheduler
knows what each step holds; /metrics only has histograms. vLLM loads `vllm.general_plugins`
entry points in every process it starts, and entry points are found on PYTHONPATH, so
putting this folder (with its dist-info) on PYTHONPATH enables it without installing
anything into the venv. It does nothing unless SERVESIM_STEP_TRACE names an output file.

Each scheduler step that schedules tokens appends one CSV line (unix seconds, not yet
relative to any run; validation/vllm-cpu/record.py rebases and slices them per run):

  t_unix,duration_s,num_reqs,num_prefill_reqs,prefill_tokens,num_decode_reqs,decode_tokens,
  context_tokens,num_waiting,kv_free_blocks,num_preempted

t_unix is when `schedule()` was entered; duration_s runs until `update_from_output()` returned,
so it covers scheduling, the forward pass, sampling and output processing (one engine step).
A request is "decode" in a step when it schedules one token and its whole prompt was computed
before the step; anything else (a prompt chunk, or the recompute of a preempted request's
prompt) is "prefill". With async scheduling (vLLM's default) step k+1 is scheduled while step k
runs, so duration_s is measured from max(own schedule start, previous step's end): durations
then add up to the engine's busy time without overlap. context_tokens = Σ over scheduled requests of (tokens
computed before the step + tokens scheduled in it), i.e. the attention context each request
reaches by the end of the step.
"""
import os
import time

HEADER = ("t_unix,duration_s,num_reqs,num_prefill_reqs,prefill_tokens,num_decode_reqs,"
          "decode_tokens,context_tokens,num_waiting,kv_free_blocks,num_preempted\n")


def register():
    path = os.environ.get("SERVESIM_STEP_TRACE")
    if not path:
        return
    try:
        from vllm.v1.core.sched.scheduler import Scheduler
    except Exception:  # noqa: BLE001 - not the engine-core flavour of vLLM we know
        return
    if getattr(Scheduler, "_servesim_steptrace", False):
        return
    Scheduler._servesim_steptrace = True
    schedule0, update0 = Scheduler.schedule, Scheduler.update_from_output
    # Steps scheduled but not yet finished, keyed by their SchedulerOutput (async scheduling
    # schedules step k+1 before step k's output is processed).
    pending = {}
    out = {"f": None}
    last_done = [0.0]

    def sink():
        if out["f"] is None:
            new = not os.path.exists(path) or os.path.getsize(path) == 0
            out["f"] = open(path, "a", buffering=1)
            if new:
                out["f"].write(HEADER)
        return out["f"]

    def schedule(self, *args, **kwargs):
        t = time.time()
        so = schedule0(self, *args, **kwargs)
        if so.total_num_scheduled_tokens == 0:
            return so
        n_pre = n_dec = tok_pre = tok_dec = ctx = 0
        for rid, n in so.num_scheduled_tokens.items():
            req = self.requests.get(rid)
            if req is None:
                continue
            # schedule() has already advanced num_computed_tokens by this step's tokens.
            after = req.num_computed_tokens
            ctx += after
            if n == 1 and after - n >= req.num_prompt_tokens:
                n_dec += 1
                tok_dec += n
            else:
                n_pre += 1
                tok_pre += n
        try:
            free = self.kv_cache_manager.block_pool.get_num_free_blocks()
        except Exception:  # noqa: BLE001
            free = -1
        pre = len(getattr(so, "preempted_req_ids", None) or ())
        pending[id(so)] = ((t, len(so.num_scheduled_tokens), n_pre, tok_pre, n_dec, tok_dec, ctx,
                        len(self.waiting), free, pre))
        return so

    def update_from_output(self, scheduler_output, *args, **kwargs):
        res = update0(self, scheduler_output, *args, **kwargs)
        rec = pending.pop(id(scheduler_output), None)
        if rec is not None:
            t, *rest = rec
            now = time.time()
            # With async scheduling step k+1 is scheduled before step k's output is
            # processed; a step's own time starts when the previous one ended.
            dur = now - max(t, last_done[0])
            last_done[0] = now
            sink().write("%.6f,%.6f,%s\n" % (t, dur, ",".join(str(v) for v in rest)))
        return res

    Scheduler.schedule = schedule
    Scheduler.update_from_output = update_from_output
