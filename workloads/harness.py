#!/usr/bin/env python3
"""Run one action the way Gleaner's runtime does, without HTTP or a platform.

Loads the action proxy module (``invoker_agent/runtime/actionproxy.py``, or
``/action/actionproxy.py`` inside the runtime image), calls its ``Action.init`` with
the action's code, then ``Action.run`` once per argument set, and writes the replies
and timings as JSON. Standard library only, so it also runs inside a container of the
workload image (``docker run --cpus X``) to time a function at an allocation.

    python3 harness.py --proxy PROXY --request REQ.json --out OUT.json

REQ.json: ``{"init": {"code": ..., "binary": ..., "main": "main"}, "runs": [{...}, ...]}``.
OUT.json: ``{"init": {"status", "body", "seconds"}, "runs": [{"status", "body", "seconds",
"cpu_seconds"}, ...], "peak_rss_mb"}`` (CPU time includes the action's worker processes
once they exit).
"""

import argparse
import importlib.util
import json
import os
import resource
import time


def load_proxy(path):
    spec = importlib.util.spec_from_file_location("gleaner_actionproxy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu():
    """CPU time of this process and its finished children (the action's worker pool)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _peak_rss_mb():
    """Peak resident memory of this process or of its largest finished child, MB."""
    peaks = (resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return max(peaks) / 1024  # Linux reports KiB


def run(proxy_path, request):
    proxy = load_proxy(proxy_path)
    action = proxy.Action()
    start = time.perf_counter()
    status, text = action.init({"value": request["init"]})
    out = {"init": {"status": status, "body": json.loads(text), "seconds": time.perf_counter() - start}}
    out["runs"] = []
    if status != 200:
        return out
    for args in request.get("runs", []):
        cpu, start = _cpu(), time.perf_counter()
        status, text = action.run({"value": args, "action_name": request.get("name")})
        seconds, cpu = time.perf_counter() - start, _cpu() - cpu
        body = json.loads(text)
        out["runs"].append({"status": status, "body": body, "seconds": seconds, "cpu_seconds": cpu})
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--proxy", required=True)
    parser.add_argument("--request", required=True)
    parser.add_argument("--out", required=True)
    opts = parser.parse_args()
    with open(opts.request, encoding="utf-8") as fh:
        request = json.load(fh)
    result = run(opts.proxy, request)
    tmp = opts.out + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, opts.out)


if __name__ == "__main__":
    main()
