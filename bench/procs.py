"""Process handling for the benchmark: start, pin, measure and always stop.

Everything here reads /proc directly; no third-party packages.
"""

import ctypes
import os
import resource
import signal
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    """In the child before exec: get SIGKILL if the harness dies without cleaning up."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Registry:
    """Every process the harness starts, so that all of them are stopped at the end."""

    def __init__(self):
        self._procs = []

    def start(self, argv, cpu=None, log_path=None, **kwargs):
        """Start argv in its own session (own process group), optionally pinned with taskset."""
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + list(argv)
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(
                argv,
                stdin=kwargs.pop("stdin", subprocess.DEVNULL),
                stdout=kwargs.pop("stdout", log),
                stderr=kwargs.pop("stderr", log),
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **kwargs,
            )
        finally:
            if log_path:
                log.close()
        self._procs.append(proc)
        return proc

    def stop(self, proc, timeout=5.0):
        """SIGTERM the process group, then SIGKILL it if it is still there after timeout."""
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # The leader may be gone while children (e.g. nginx workers) linger: kill the group.
        _signal_group(proc, signal.SIGKILL)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        if proc in self._procs:
            self._procs.remove(proc)

    def forget(self, proc):
        """Drop a process that has exited by itself and started no children (e.g. wrk)."""
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self):
        for proc in list(reversed(self._procs)):
            self.stop(proc, timeout=3.0)


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def raise_nofile_limit(wanted=65536):
    """Raise RLIMIT_NOFILE for this process and its children; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            pass  # not allowed to raise the hard limit: use what we have
    new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, new_soft), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _read(path):
    try:
        with open(path, "r") as f:
            return f.read()
    except OSError:
        return None


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (index 0 = state, field 3)."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    return text[text.rindex(")") + 2:].split()


def process_tree(root_pid):
    """root_pid and all its descendants (scanning /proc for parent links)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(name))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root_pid):
    """utime+stime (all threads) summed over the process tree, in seconds."""
    ticks = 0
    for pid in process_tree(root_pid):
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
    return ticks / CLK_TCK


def _status_kb(pid, key):
    text = _read(f"/proc/{pid}/status") or ""
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def memory_bytes(root_pid):
    """{'rss': sum of VmRSS, 'hwm': sum of VmHWM, 'anon': sum of RssAnon} over the process tree,
    in bytes. RssAnon is the memory the process itself holds; the rest of VmRSS is pages of
    files (the binary and shared libraries) mapped from the page cache, shared with every other
    process using them, and larger when the cache is warm (fault-around maps neighbours)."""
    pids = process_tree(root_pid)
    return {
        "anon": sum(_status_kb(p, "RssAnon") for p in pids) * 1024,
        "rss": sum(_status_kb(p, "VmRSS") for p in pids) * 1024,
        "hwm": sum(_status_kb(p, "VmHWM") for p in pids) * 1024,
        "processes": len(pids),
    }


def pin_tree(root_pid, cpu):
    """Pin every thread of every process in the tree to one CPU."""
    for pid in process_tree(root_pid):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), {cpu})
            except OSError:
                pass


class CpuLimit:
    """Caps a process tree at `cpus` of one CPU with the CFS bandwidth controller, as a container
    limit (Kubernetes `resources.limits.cpu`) caps a sidecar: a cgroup with a quota per 100 ms
    period (100 ms by default, as in Kubernetes). cgroup v1 (`/sys/fs/cgroup/cpu`) or v2 (`cpu.max`);
    `applied` is False, and nothing is changed, where neither can be written (not root, no cpu
    controller)."""

    def __init__(self, root_pid, cpus, tag, period_us=100_000):
        self.root_pid, self.tag, self.period = root_pid, tag, period_us
        self.quota = int(cpus * period_us)
        self.dir = self.parent = None
        self.applied = False

    def __enter__(self):
        for base, v2 in (("/sys/fs/cgroup/cpu", False), ("/sys/fs/cgroup", True)):
            marker = "cgroup.subtree_control" if v2 else "cpu.cfs_quota_us"
            if not os.path.isfile(os.path.join(base, marker)):
                continue
            d = os.path.join(base, f"bench-{self.tag}-{os.getpid()}")
            try:
                os.makedirs(d, exist_ok=True)
                if v2:
                    _write_file(os.path.join(d, "cpu.max"), f"{self.quota} {self.period}")
                else:
                    _write_file(os.path.join(d, "cpu.cfs_period_us"), str(self.period))
                    _write_file(os.path.join(d, "cpu.cfs_quota_us"), str(self.quota))
                for pid in process_tree(self.root_pid):
                    _write_file(os.path.join(d, "cgroup.procs"), str(pid))
            except OSError:
                self._undo(base, d)
                continue
            self.parent, self.dir, self.applied = base, d, True
            break
        return self

    def _undo(self, base, d):
        for pid in (_read(os.path.join(d, "cgroup.procs")) or "").split():
            try:
                _write_file(os.path.join(base, "cgroup.procs"), pid)
            except OSError:
                pass
        try:
            os.rmdir(d)
        except OSError:
            pass

    def __exit__(self, *exc):
        if self.applied:
            self._undo(self.parent, self.dir)
        return False


def _write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def cpu_times():
    """{'cpu0': (busy_ticks, total_ticks), ...} from /proc/stat."""
    times = {}
    for line in (_read("/proc/stat") or "").splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
            times[name] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return times


def all_cpu_ticks():
    """{pid: (command, utime+stime ticks)} for every process."""
    snapshot = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        text = _read(f"/proc/{name}/stat")
        if not text:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        f = text[text.rindex(")") + 2:].split()
        snapshot[int(name)] = (comm, int(f[11]) + int(f[12]))
    return snapshot


def self_cpu_seconds():
    """This process plus its reaped children (e.g. a finished wrk), in seconds."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def busiest_others(before, after, ours, wall, top=3):
    """[[command, % of one core], ...] for processes outside `ours` between two snapshots.

    Processes that start and exit between the snapshots are not seen; this only names the
    main culprits, the total comes from /proc/stat."""
    by_comm = {}
    for pid, (comm, ticks) in after.items():
        if pid in ours:
            continue
        prev = before.get(pid)
        delta = ticks - prev[1] if prev and prev[0] == comm else ticks
        if delta > 0:
            by_comm[comm] = by_comm.get(comm, 0) + delta
    pct = {c: 100.0 * t / CLK_TCK / wall for c, t in by_comm.items()}
    busiest = sorted(pct.items(), key=lambda kv: -kv[1])[:top]
    return [[c, round(p, 1)] for c, p in busiest if p >= 1.0]


class CpuMeter:
    """Between start() and stop(): CPU used by process trees (% of one core), how busy
    each CPU of the machine was (%), and CPU used by processes the harness did not start."""

    def __init__(self, pids):
        self.pids = dict(pids)  # label -> root pid

    def start(self):
        self._t0 = time.monotonic()
        self._c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self._self0 = self_cpu_seconds()
        self._s0 = cpu_times()
        self._all0 = all_cpu_ticks()

    def stop(self):
        wall = time.monotonic() - self._t0
        used = {k: cpu_seconds(p) - self._c0[k] for k, p in self.pids.items()}
        result = {k: round(100.0 * v / wall, 1) if wall > 0 else None for k, v in used.items()}
        now = cpu_times()
        result["machine"] = self._busy(now)
        ours_s = sum(used.values()) + self_cpu_seconds() - self._self0  # incl. reaped wrk
        top = busiest_others(self._all0, all_cpu_ticks(), set(process_tree(os.getpid())), wall)
        # Both estimates are tick-sampled; take the larger so the total covers the names.
        total = max(self._others_percent(now, ours_s, wall), sum(p for _, p in top))
        result["other"] = {"percent": round(total, 1), "top": top}
        return result

    def _others_percent(self, now, ours_s, wall):
        """Whole-machine busy time minus the harness's own processes, % of one core."""
        busy_ticks = sum(b1 - self._s0.get(c, (b1, 0))[0] for c, (b1, _) in now.items())
        return round(max(0.0, 100.0 * (busy_ticks / CLK_TCK - ours_s) / wall), 1)

    def _busy(self, now):
        busy = {}
        for cpu, (b1, t1) in now.items():
            b0, t0 = self._s0.get(cpu, (b1, t1))
            busy[cpu] = round(100.0 * (b1 - b0) / (t1 - t0), 1) if t1 > t0 else None
        return busy


def established_to_port(port):
    """Number of ESTABLISHED loopback TCP sockets whose remote port is `port` (IPv4)."""
    text = _read("/proc/net/tcp") or ""
    count = 0
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) > 3 and parts[3] == "01" and int(parts[2].split(":")[1], 16) == port:
            count += 1
    return count


def tail(path, lines=8):
    text = _read(path) or ""
    return "\n".join(text.strip().splitlines()[-lines:])
