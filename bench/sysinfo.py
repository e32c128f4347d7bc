"""Machine and tool versions, for the report header."""

import os
import platform
import subprocess


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


def machine():
    """Read at the start of the run (the load average shows whether the box was quiet)."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "memory_total_bytes": _mem_total_bytes(),
        "python": platform.python_version(),
        "loadavg_at_start": _loadavg(),
    }


def _first_line(argv, timeout=5.0):
    """First non-empty line a command prints (stdout or stderr), whatever its exit code."""
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{type(e).__name__}: {e}"
    for line in (p.stdout + "\n" + p.stderr).splitlines():
        if line.strip():
            return p.returncode, line.strip()
    return p.returncode, ""


def _gyrus_version(binary):
    if not binary or not os.path.exists(binary):
        return f"not available ({binary} not found)"
    for argv in ([binary, "version"], [binary, "--version"]):
        code, line = _first_line(argv)
        if code == 0 and line:
            return line
    return f"unknown ({binary} version failed: {line})"


def versions(gyrus_binary):
    return {
        "haproxy": _first_line(["haproxy", "-v"])[1],
        "nginx": _first_line(["nginx", "-v"])[1],
        "wrk": _first_line(["wrk", "--version"])[1],
        "gyrus": _gyrus_version(gyrus_binary),
    }
