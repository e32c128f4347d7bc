#!/usr/bin/python3
"""gyrus benchmark harness: gyrus vs HAProxy vs nginx vs the direct path, on loopback.

    make bench                                   # = bench/run.py --gyrus ./build/gyrus
    bench/run.py --only direct,haproxy,nginx --duration 3

Writes docs/BENCHMARKS.md and bench/results.json. A missed target or a subject that does
not start is reported, not fatal; the exit status is non-zero only when the harness itself
breaks (missing tools, backend does not start, interrupted). See bench/README.md.
Standard library only.
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

import measure
import procs
import report
import sysinfo
from subjects import STARTERS, Context, SubjectFailed, start_backend

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ALL_SUBJECTS = ["direct", "gyrus", "haproxy", "nginx"]
REQUIRED_TOOLS = ["wrk", "nginx", "taskset"]


class HarnessError(Exception):
    """The harness cannot produce a meaningful run."""


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gyrus", default=os.path.join(ROOT, "build", "gyrus"),
                    help="gyrus binary (default: build/gyrus)")
    ap.add_argument("--only", default=",".join(ALL_SUBJECTS),
                    help="comma-separated subset of: " + ",".join(ALL_SUBJECTS))
    ap.add_argument("--duration", type=int, default=10, help="seconds of measured load")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of warmup before it")
    ap.add_argument("--rounds", type=int, default=10,
                    help="load rounds, subjects in turn (the proxies taking turns at going first); medians count")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--idle-conns", type=int, default=10000,
                    help="idle keep-alive connections for the memory step (0 = skip)")
    ap.add_argument("--markdown", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--json", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--keep-tmp", action="store_true", help="keep configs and logs")
    args = ap.parse_args(argv)
    args.subjects = _parse_only(ap, args.only)
    if args.duration < 1 or args.warmup < 1:
        ap.error("--duration and --warmup must be at least 1 second")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def _parse_only(ap, only):
    chosen = [s.strip() for s in only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in ALL_SUBJECTS]
    if unknown or not chosen:
        ap.error(f"--only: unknown subject(s) {unknown}; choose from {ALL_SUBJECTS}")
    return [s for s in ALL_SUBJECTS if s in chosen]  # fixed order: direct first


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- subjects

def memory_step(ctx, name, args):
    """Idle RSS and idle connections on a fresh process of the subject."""
    log(f"{name}: start, idle RSS, idle connections")
    running = STARTERS[name](ctx, measure.SUBJECT_CPU, args)
    try:
        return measure.memory(ctx, running, args)
    finally:
        ctx.registry.stop(running.proc)


def median_round(rounds):
    """The round with the median req/s, its latency percentiles replaced by the medians over all
    rounds (each figure is the median of its own), and every round's req/s and p99 under
    "rounds"."""
    ordered = sorted(rounds, key=lambda r: r["requests_per_sec"])
    med = dict(ordered[(len(ordered) - 1) // 2])
    lat = dict(med.get("latency_us", {}))
    for key in ("p50", "p99", "p99_9"):
        vals = sorted(r["latency_us"][key] for r in rounds if r.get("latency_us", {}).get(key) is not None)
        if vals:
            lat[key] = vals[(len(vals) - 1) // 2]
    med["latency_us"] = lat
    med["rounds"] = [{"requests_per_sec": r["requests_per_sec"], "p99_us": r.get("latency_us", {}).get("p99")}
                     for r in rounds]
    return med


# ---------------------------------------------------------------- the run

def check_tools(subjects):
    needed = REQUIRED_TOOLS + (["haproxy"] if "haproxy" in subjects else [])
    missing = [t for t in needed if shutil.which(t) is None]
    if missing:
        raise HarnessError("missing tools: " + ", ".join(missing))
    cpus = os.sched_getaffinity(0)
    if not {measure.LOAD_CPU, measure.SUBJECT_CPU} <= cpus:
        raise HarnessError(f"needs CPUs {measure.LOAD_CPU} and {measure.SUBJECT_CPU}; "
                           f"allowed CPUs are {sorted(cpus)}")


def run(args, registry, tmp, nofile):
    """Memory steps on fresh processes; then every proxy runs at once (an idle one costs
    nothing) and `rounds` rounds load each subject in turn, so that a drift of this shared
    machine's speed falls on all of them alike; each figure is the median over the rounds."""
    check_tools(args.subjects)
    ctx = Context(tmp, registry, nofile)
    try:
        backend = start_backend(ctx, cpu=measure.LOAD_CPU)
    except SubjectFailed as e:
        raise HarnessError(f"backend nginx did not start: {e}")
    log(f"backend nginx on 127.0.0.1:{backend.port}; RLIMIT_NOFILE {nofile}")
    results = {name: {"status": "ok", "reason": None, "load": None, "memory": None} for name in args.subjects}

    def failed(name, e):
        log(f"{name}: FAILED: {e}")
        results[name].update(status="failed", reason=str(e), load=None)

    proxies = [n for n in args.subjects if n != "direct"]
    for name in proxies:
        if args.idle_conns > 0:
            try:
                results[name]["memory"] = memory_step(ctx, name, args)
            except (SubjectFailed, measure.LoadFailed) as e:
                failed(name, e)
    running = {}
    for name in proxies:
        if results[name]["status"] == "ok":
            try:
                running[name] = STARTERS[name](ctx, measure.SUBJECT_CPU, args)
            except SubjectFailed as e:
                failed(name, e)
    rounds = {name: [] for name in args.subjects}
    for i in range(args.rounds):
        # The direct path goes first; then the proxies take turns at going first. In a fixed
        # order the first one measured lost more rounds than it should (bench/h2.py found it
        # with four builds of gyrus that differed only in an unimportant constant).
        k = i % len(proxies) if proxies else 0
        order = [n for n in args.subjects if n == "direct"] + proxies[k:] + proxies[:k]
        for name in order:
            if results[name]["status"] != "ok":
                continue
            log(f"round {i + 1}/{args.rounds}: {name}: warmup {args.warmup}s, load {args.duration}s")
            try:
                if name == "direct":
                    rounds[name].append(measure.load_direct(ctx, backend, args))
                else:
                    rounds[name].append(measure.load_proxy(ctx, running[name], backend, args))
            except (SubjectFailed, measure.LoadFailed) as e:
                failed(name, e)
            if backend.proc.poll() is not None:
                raise HarnessError(f"backend nginx exited (code {backend.proc.returncode})")
    for name in args.subjects:
        if results[name]["status"] == "ok" and rounds[name]:
            results[name]["load"] = median_round(rounds[name])
    for r in running.values():
        registry.stop(r.proc)
    return results


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    nofile = procs.raise_nofile_limit(65536)
    registry = procs.Registry()
    tmp = tempfile.mkdtemp(prefix="gyrus-bench-")
    os.chmod(tmp, 0o755)  # nginx workers may run as another user when started as root
    started = time.time()
    machine = sysinfo.machine()
    try:
        subjects = run(args, registry, tmp, nofile)
    except HarnessError as e:
        log(f"harness error: {e}")
        return 2
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        return 130
    finally:
        registry.stop_all()
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    doc = report.build_results(args, subjects, machine, sysinfo.versions(args.gyrus),
                               nofile, started)
    report.write_json(args.json, doc)
    report.write_markdown(args.markdown, doc)
    log(f"wrote {args.markdown} and {args.json} ({time.time() - started:.0f}s)")
    print(report.summary_text(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
