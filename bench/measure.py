"""The two measurements made on every subject: load (wrk) and memory (idle connections)."""

import json
import os
import select
import subprocess
import sys
import time

import procs
from subjects import SubjectFailed

HERE = os.path.dirname(os.path.abspath(__file__))
WRK_LUA = os.path.join(HERE, "wrk_report.lua")
IDLE_CLIENT = os.path.join(HERE, "idle_conns.py")
LOAD_CPU = 0     # wrk, the idle-connection client and the backend
SUBJECT_CPU = 1  # the proxy under test (the backend itself on the direct path)
SETTLE = 0.5     # seconds to let a process settle before reading its memory


class LoadFailed(Exception):
    """wrk did not run or produced no figures."""


# ---------------------------------------------------------------- wrk

def wrk_argv(port, duration, connections, threads):
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s",
            "-s", WRK_LUA, f"http://127.0.0.1:{port}/"]


def parse_wrk(stdout):
    for line in stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON "):])
    raise LoadFailed("wrk printed no WRK_JSON line; output:\n" + stdout[-800:])


def run_wrk(registry, port, duration, args):
    argv = wrk_argv(port, duration, args.connections, args.threads)
    proc = registry.start(argv, cpu=LOAD_CPU, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        registry.stop(proc)
        raise LoadFailed(f"wrk did not finish within {duration + 30}s")
    registry.forget(proc)
    if proc.returncode != 0:
        raise LoadFailed(f"wrk exited with {proc.returncode}: {out[-800:]}")
    return parse_wrk(out)


def load(ctx, port, watched, args):
    """Warm up, then one measured wrk run with CPU metering of the `watched` trees."""
    run_wrk(ctx.registry, port, args.warmup, args)
    meter = procs.CpuMeter(watched)
    meter.start()
    figures = run_wrk(ctx.registry, port, args.duration, args)
    figures["cpu_percent"] = meter.stop()
    return figures


def load_direct(ctx, backend, args):
    """wrk straight to the backend; the backend moves to the subject CPU meanwhile."""
    procs.pin_tree(backend.pid, SUBJECT_CPU)
    try:
        return load(ctx, backend.port, {"backend": backend.pid}, args)
    finally:
        procs.pin_tree(backend.pid, LOAD_CPU)


def load_proxy(ctx, running, backend, args):
    time.sleep(SETTLE)
    idle = procs.memory_bytes(running.pid)
    figures = load(ctx, running.port, {"subject": running.pid, "backend": backend.pid}, args)
    figures["memory_idle"] = idle
    if running.proc.poll() is not None:
        raise SubjectFailed(f"exited with code {running.proc.returncode} during the load run")
    figures["memory_after"] = procs.memory_bytes(running.pid)
    return figures


# ---------------------------------------------------------------- idle connections

class LineReader:
    """JSON lines from a child's stdout, each read with a deadline."""

    def __init__(self, proc):
        self.proc = proc
        self.buf = b""

    def read_event(self, name, timeout):
        deadline = time.monotonic() + timeout
        while True:
            line, sep, rest = self.buf.partition(b"\n")
            if sep:
                self.buf = rest
                event = json.loads(line)
                if event.get("event") == name:
                    return event
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no '{name}' from the idle-connection client in {timeout}s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError(f"idle-connection client exited before '{name}'")
                self.buf += chunk


def idle_conn_count(requested, nofile):
    """How many idle connections fit: a proxy holds 2 fds per proxied connection."""
    return max(0, min(requested, (nofile - 256) // 2))


def hold_idle_connections(ctx, running, count, timeout):
    """Open `count` idle connections through the subject, measure, close them."""
    argv = [sys.executable, IDLE_CLIENT, "--port", str(running.port), "--count", str(count),
            "--timeout", str(timeout)]
    client = ctx.registry.start(argv, cpu=LOAD_CPU, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    reader = LineReader(client)
    try:
        ready = reader.read_event("ready", timeout + 10)
        time.sleep(SETTLE)
        held = procs.memory_bytes(running.pid)
        upstream = procs.established_to_port(ctx.backend_port)
        client.stdin.write(b"check\n")
        client.stdin.flush()
        alive = reader.read_event("check", 30)["alive"]
        client.stdin.write(b"close\n")
        client.stdin.flush()
        reader.read_event("closed", 30)
    finally:
        ctx.registry.stop(client)
    return ready, held, upstream, alive


def memory(ctx, running, args):
    """Idle RSS after start, then RSS with N idle keep-alive connections through it."""
    time.sleep(SETTLE)
    idle = procs.memory_bytes(running.pid)
    count = idle_conn_count(args.idle_conns, ctx.nofile)
    result = {"rss_idle_bytes": idle["rss"], "anon_idle_bytes": idle["anon"], "idle_conns_requested": args.idle_conns,
              "idle_conns_attempted": count, "idle_conns_open": None,
              "idle_conns_alive_at_measure": None, "upstream_conns_held": None,
              "rss_idle_conns_bytes": None, "bytes_per_idle_conn": None,
              "open_seconds": None, "client_errors": {}, "error": None}
    if count == 0:
        result["error"] = "idle-connection step skipped"
        return result
    try:
        ready, held, upstream, alive = hold_idle_connections(ctx, running, count, 60.0)
    except (TimeoutError, EOFError, OSError, ValueError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
        return result
    result.update({"idle_conns_open": ready["open"], "idle_conns_alive_at_measure": alive,
                   "upstream_conns_held": upstream, "open_seconds": ready["seconds"],
                   "client_errors": ready["errors"]})
    if running.proc.poll() is not None:  # the load step still runs, on a fresh process
        result["error"] = (f"exited with code {running.proc.returncode} "
                           "while holding idle connections")
        return result
    result["rss_idle_conns_bytes"] = held["rss"]
    result["anon_idle_conns_bytes"] = held["anon"]
    if alive:
        result["bytes_per_idle_conn"] = round((held["rss"] - idle["rss"]) / alive)
    return result
