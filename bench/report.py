"""Turn measured figures into bench/results.json and docs/BENCHMARKS.md."""

import json
import os
import statistics
import time

import measure
import subjects as subj

SCHEMA_VERSION = 1
ORDER = ["direct", "gyrus", "haproxy", "nginx"]
LABELS = {"direct": "direct (no proxy)", "gyrus": "gyrus", "haproxy": "HAProxy",
          "nginx": "nginx (proxy)"}
MIB = 1024 * 1024
NOISE_PERCENT = 10.0  # other processes' CPU during a load run that earns a warning


# ---------------------------------------------------------------- results.json

def _flat(name, res):
    """One subject's figures under stable keys; null where not measured."""
    load = (res or {}).get("load") or {}
    mem = (res or {}).get("memory") or {}
    lat = load.get("latency_us", {})
    cpu = load.get("cpu_percent", {})
    after = load.get("memory_after", {})
    return {
        "status": (res or {}).get("status", "not_run"),
        "reason": (res or {}).get("reason"),
        "requests_per_sec": load.get("requests_per_sec"),
        "requests": load.get("requests"),
        "latency_p50_us": lat.get("p50"),
        "latency_p99_us": lat.get("p99"),
        "latency_p99_9_us": lat.get("p99_9"),
        "latency_max_us": lat.get("max"),
        "added_p99_us": None,
        "errors": load.get("errors"),
        "proxy_cpu_percent": cpu.get("subject"),
        "backend_cpu_percent": cpu.get("backend"),
        "cpu_busy_percent": cpu.get("machine"),
        "other_cpu": cpu.get("other"),
        "rss_after_load_bytes": after.get("rss"),
        "rss_peak_bytes": after.get("hwm"),
        "processes": after.get("processes"),
        # idle RSS from the memory step, or from the load step's process before its load
        "rss_idle_bytes": mem.get("rss_idle_bytes", load.get("memory_idle", {}).get("rss")),
        "anon_idle_bytes": mem.get("anon_idle_bytes", load.get("memory_idle", {}).get("anon")),
        "anon_idle_conns_bytes": mem.get("anon_idle_conns_bytes"),
        "rounds": load.get("rounds"),
        "rss_idle_conns_bytes": mem.get("rss_idle_conns_bytes"),
        "bytes_per_idle_conn": mem.get("bytes_per_idle_conn"),
        "idle_conns": {k: mem.get(k) for k in (
            "idle_conns_requested", "idle_conns_attempted", "idle_conns_open",
            "idle_conns_alive_at_measure", "upstream_conns_held", "open_seconds",
            "client_errors", "error")},
    }


def _add_p99_deltas(flat):
    base = flat["direct"]["latency_p99_us"]
    for name in ORDER:
        p99 = flat[name]["latency_p99_us"]
        if name != "direct" and base is not None and p99 is not None:
            flat[name]["added_p99_us"] = p99 - base


def _ratio_target(key, what, num, den, goal, op):
    t = {"key": key, "what": what, "value": None, "unit": "ratio", "goal": f"{op} {goal}",
         "met": None, "note": None}
    if num is None or den is None:
        t["note"] = "not measured in this run"
    elif den <= 0:
        t["note"] = (f"ratio undefined: the denominator is {den} (noise around the direct "
                     f"path); judged as numerator {num} {op} denominator instead")
        t["met"] = num <= den if op == "<=" else num >= den
    else:
        t["value"] = round(num / den, 3)
        t["met"] = t["value"] >= goal if op == ">=" else t["value"] <= goal
    return t


def _limit_target(key, what, value, limit, unit):
    t = {"key": key, "what": what, "value": value, "unit": "bytes",
         "goal": f"< {limit} {unit}", "met": None, "note": None}
    if value is None:
        t["note"] = "not measured in this run"
    else:
        t["met"] = value < limit * (MIB if unit == "MiB" else 1024)
    return t


def paired(flat, key, other="haproxy"):
    """The median over the rounds of gyrus's figure over `other`'s in the same round: a pair is
    measured seconds apart, so a drift of the machine's speed cancels out. None if not measured."""
    g, o = flat["gyrus"].get("rounds") or [], flat[other].get("rounds") or []
    ratios = [a[key] / b[key] for a, b in zip(g, o) if a.get(key) and b.get(key)]
    return round(statistics.median(ratios), 3) if ratios else None


def targets(flat):
    g, h = flat["gyrus"], flat["haproxy"]
    return [
        _ratio_target("throughput_vs_haproxy", "gyrus req/s / HAProxy req/s",
                      g["requests_per_sec"], h["requests_per_sec"], 1.0, ">="),
        _ratio_target("added_p99_vs_haproxy", "gyrus added p99 / HAProxy added p99",
                      g["added_p99_us"], h["added_p99_us"], 1.0, "<="),
        _limit_target("idle_rss", "gyrus idle RSS", g["rss_idle_bytes"], 8, "MiB"),
        _limit_target("bytes_per_idle_conn", "gyrus memory per idle connection",
                      g["bytes_per_idle_conn"], 2, "KiB"),
    ]


def build_results(args, results, machine, versions, nofile, started):
    flat = {name: _flat(name, results.get(name)) for name in ORDER}
    _add_p99_deltas(flat)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "run_seconds": round(time.time() - started, 1),
        "machine": machine,
        "versions": versions,
        "settings": {
            "subjects": args.subjects,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "connections": args.connections,
            "threads": args.threads,
            "idle_conns_requested": args.idle_conns,
            "rlimit_nofile": nofile,
            "body_bytes": len(subj.BODY),
            "cpu": {"proxy": measure.SUBJECT_CPU, "wrk_and_backend": measure.LOAD_CPU,
                    "direct_backend": measure.SUBJECT_CPU},
        },
        "subjects": flat,
        "targets": targets(flat),
    }


def write_json(path, doc):
    """Writes this run's figures; the keys other benchmarks stored (retries, h2, ...) stay."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = {}
    doc = {**doc, **{k: v for k, v in old.items() if k not in doc}}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=False)
        f.write("\n")


# ---------------------------------------------------------------- formatting

def fmt_us(us):
    if us is None:
        return "—"
    if abs(us) >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} µs"


def fmt_mib(b):
    return "—" if b is None else f"{b / MIB:.2f} MiB"


def fmt_num(x, digits=0, suffix=""):
    return "—" if x is None else f"{x:,.{digits}f}{suffix}"


def fmt_conn_bytes(b):
    return "—" if b is None else f"{b:,} B ({b / 1024:.2f} KiB)"


def fmt_errors(e):
    if not e:
        return "—"
    total = sum(e.values())
    if total == 0:
        return "0"
    return ", ".join(f"{k} {v}" for k, v in e.items() if v)


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- sections

def _run_subjects(doc):
    return [n for n in ORDER if doc["subjects"][n]["status"] != "not_run"]


def section_targets(doc):
    rows = []
    for t in doc["targets"]:
        if t["value"] is None:
            value = "—"
        elif t["key"] == "idle_rss":
            value = fmt_mib(t["value"])
        elif t["key"] == "bytes_per_idle_conn":
            value = fmt_conn_bytes(t["value"])
        else:
            value = f"{t['value']:.3f}"
        met = {True: "**met**", False: "**missed**", None: "—"}[t["met"]]
        rows.append([t["what"], t["goal"], value, met + (f" ({t['note']})" if t["note"] else "")])
    flat = doc["subjects"]
    rq, p99 = paired(flat, "requests_per_sec"), paired(flat, "p99_us")
    extra = ""
    if rq is not None and p99 is not None:
        extra = (f"The ratios above are of the subjects' medians over the rounds. Round by round (the median of "
                 f"gyrus's figure over HAProxy's in the same round, a pair measured seconds apart, so that a "
                 f"drift of this machine's speed cancels out): req/s {rq:.3f}, p99 {p99:.3f} (p99 itself: a "
                 f"round's direct-path p99 is too noisy to subtract round by round).\n\n")
    return "## Project targets in this run\n\n" + table(
        ["target", "goal", "this run", "result"], rows) + "\n\n" + extra + (
        "Missed targets are reported, never fatal: this file is a report, not a test.\n")


def section_machine(doc):
    m, v, s = doc["machine"], doc["versions"], doc["settings"]
    return f"""## Machine and versions

- Date: {doc['generated_at']} (UTC); whole run took {doc['run_seconds']:.0f} s
- CPUs: {m['nproc']} × {m['cpu_model']}
- Kernel: Linux {m['kernel']}; memory {_gib(m['memory_total_bytes'])}
- Load average when the run started: {_loadavg_text(m['loadavg_at_start'])} (other work on
  the machine during the run makes figures noisy)
- RLIMIT_NOFILE for the harness and everything it starts: {s['rlimit_nofile']}
- HAProxy: `{v['haproxy']}`
- nginx: `{v['nginx']}`
- wrk: `{v['wrk']}`
- gyrus: `{v['gyrus']}`
"""


def _gib(b):
    return "unknown" if b is None else f"{b / (1024 * MIB):.1f} GiB"


def _loadavg_text(la):
    return "unknown" if not la else " / ".join(f"{x:.2f}" for x in la)


def section_method(doc):
    s = doc["settings"]
    return f"""## Method

Everything runs on one machine over loopback, in one run of `bench/run.py`.

- **Backend**: nginx, 1 worker, returns a fixed {s['body_bytes']}-byte body with
  `return 200`, keep-alive on, no access log.
- **Subjects**: the direct path (wrk straight to the backend) and each reverse proxy with
  **one** worker/thread and upstream keep-alive in front of that backend: gyrus, HAProxy,
  nginx. No access logs, no compression. Each adds the forwarding headers gyrus adds by
  default (`X-Forwarded-For`, `X-Forwarded-Proto`, a generated `X-Request-ID`, `Via` both
  ways), so that all do the same work. Exact configs are in the appendix.
- **CPU placement** (taskset; the machine has {doc['machine']['nproc']} CPUs):
  - proxy under test: CPU {s['cpu']['proxy']};
  - wrk, the backend and the idle-connection client: CPU {s['cpu']['wrk_and_backend']};
  - direct path: backend on CPU {s['cpu']['direct_backend']}, wrk on CPU {s['cpu']['wrk_and_backend']}.
- **Load**: `wrk -t{s['threads']} -c{s['connections']} -d{s['duration_s']}s` (keep-alive),
  after a {s['warmup_s']} s warmup run with the same settings. All proxies run at once (idle
  ones cost nothing) and {s.get('rounds', 1)} rounds load each subject in turn (the direct path
  first, then the proxies, each proxy going first in turn), so that a drift of the machine's
  speed falls on all alike; req/s, p50, p99 and p99.9 are each the median
  over the rounds, CPU and RSS come from the round with the median req/s, and every round's
  req/s and p99 are listed. Figures come from
  `bench/wrk_report.lua`, which prints them as JSON from wrk's `done()`: requests/s over
  wrk's measured duration, latency percentiles from wrk's histogram, socket errors
  (connect/read/write/timeout) and HTTP errors (wrk counts status ≥ 400).
- **Added p99** = subject p99 − direct-path p99 in the same run. wrk is closed-loop and
  drives every subject to saturation, so latency there is mostly queueing
  (≈ connections / throughput); a slower proxy shows a larger added p99.
- **Proxy CPU** = Δ(utime+stime) of the proxy's process tree (all threads; nginx master +
  worker) from `/proc/PID/stat` over the wall time of the measured wrk run, in % of one core.
  **Backend CPU** is the same for the backend nginx. **CPU 0/1 busy** is each CPU's
  non-idle time from `/proc/stat` over the same interval, whoever used it. CPU used meanwhile
  by everything else (whole-machine busy time from `/proc/stat` minus the harness's own
  processes, including wrk) is measured too; a warning is printed above when it reaches
  {NOISE_PERCENT:.0f} % of a core.
- **RSS after load** = sum of VmRSS over the proxy's process tree right after the wrk run;
  **peak** = sum of VmHWM. Summing counts pages shared between nginx's master and worker
  twice.
- **Memory**: on a freshly started proxy, **idle RSS** is read {measure.SETTLE} s after it is
  ready. Then `bench/idle_conns.py` opens up to {s['idle_conns_requested']:,} connections
  through it, sends one `GET /` on each and reads the response (so the upstream side has
  been used), keeps them idle, and the proxy's RSS is read again. **Bytes per idle
  connection** = (RSS with the connections − idle RSS) / connections still open at that
  moment. The load run uses another fresh process, so the two steps do not disturb each
  other (with `--idle-conns 0` the idle RSS is read on that process, before its load).
"""


def section_load(doc):
    rows = []
    for n in _run_subjects(doc):
        s = doc["subjects"][n]
        if s["status"] != "ok":
            rows.append([LABELS[n], "failed"] + ["—"] * 12)
            continue
        busy = s["cpu_busy_percent"] or {}
        rows.append([LABELS[n], fmt_num(s["requests_per_sec"]), fmt_us(s["latency_p50_us"]),
                     fmt_us(s["latency_p99_us"]), fmt_us(s["latency_p99_9_us"]),
                     fmt_us(s["added_p99_us"]), fmt_num(s["proxy_cpu_percent"], 1, " %"),
                     fmt_num(s["backend_cpu_percent"], 1, " %"),
                     fmt_num(busy.get("cpu0"), 0, " %") + " / " + fmt_num(busy.get("cpu1"), 0, " %"),
                     fmt_mib(s["rss_after_load_bytes"]), fmt_mib(s["rss_peak_bytes"]),
                     fmt_errors(s["errors"]),
                     ", ".join(f"{r['requests_per_sec']:,.0f} / {fmt_us(r['p99_us'])}" for r in s["rounds"] or [])])
    header = ["subject", "req/s", "p50", "p99", "p99.9", "added p99 vs direct",
              "proxy CPU", "backend CPU", "CPU 0 / 1 busy", "RSS after load", "peak RSS",
              "errors", "each round: req/s / p99"]
    return ("## Throughput and latency\n\n" + table(header, rows) + "\n\n"
            "Proxy and backend CPU are in % of one core. When CPU 0 (wrk + backend) is near "
            "100 % busy while the proxy uses well under 100 % of CPU 1, the load side limits "
            "the run and that proxy's req/s is a lower bound.\n" + _noise_note(doc))


def _noise_note(doc):
    """A warning when processes the harness did not start used CPU during a load run."""
    noisy = []
    for n in _run_subjects(doc):
        other = doc["subjects"][n]["other_cpu"]
        if other and other["percent"] >= NOISE_PERCENT:
            names = ", ".join(f"`{c}` {p:.0f} %" for c, p in other["top"])
            noisy.append(f"{LABELS[n]}: {other['percent']:.0f} % of a core ({names})")
    if not noisy:
        return ""
    return ("\n**Warning: the machine was not quiet.** Processes outside the harness used "
            "CPU during these load runs, so their figures are disturbed: "
            + "; ".join(noisy) + ".\n")


def section_memory(doc):
    rows = []
    for n in _run_subjects(doc):
        s = doc["subjects"][n]
        c = s["idle_conns"]
        if n == "direct":
            continue
        held = "—" if c["idle_conns_alive_at_measure"] is None else (
            f"{c['idle_conns_alive_at_measure']:,} of {c['idle_conns_requested']:,}")
        rows.append([LABELS[n], fmt_mib(s["rss_idle_bytes"]), fmt_mib(s["anon_idle_bytes"]),
                     fmt_mib(s["rss_idle_conns_bytes"]), fmt_mib(s["anon_idle_conns_bytes"]),
                     held, fmt_num(c["upstream_conns_held"]),
                     fmt_conn_bytes(s["bytes_per_idle_conn"]),
                     c["error"] or fmt_errors(c["client_errors"])])
    header = ["subject", "idle RSS", "idle private", "RSS with idle conns", "private with idle conns",
              "idle conns held", "upstream conns held", "per idle conn", "client errors"]
    notes = _memory_notes(doc)
    return "## Memory\n\n" + table(header, rows) + "\n" + notes


def _memory_notes(doc):
    s = doc["settings"]
    attempted = [doc["subjects"][n]["idle_conns"]["idle_conns_attempted"]
                 for n in _run_subjects(doc) if n != "direct"]
    attempted = [a for a in attempted if a is not None]
    notes = ["", "*RSS* is VmRSS; *private* is RssAnon, the memory the process itself holds. The "
             "difference is pages of the binary and its shared libraries mapped from the page cache, "
             "shared with every other process that maps the same files (the same with a cold page "
             "cache: measured after `drop_caches`). For gyrus most of them are OpenSSL's "
             "initialization (libcrypto, about 3.4 MiB resident) and libc. libcurl and what it "
             "brings in (GnuTLS, p11-kit, Kerberos, LDAP: about 4 MiB more) are loaded only by "
             "processes that make HTTP calls of their own (the control plane, the CLI, a proxy "
             "under `--control`), not by a proxy serving a static mesh as here.",
             "", "*Upstream conns held* counts ESTABLISHED sockets to the backend port while "
             "the idle connections are open: how many upstream connections the proxy keeps "
             "(nginx caps its idle upstream pool with `keepalive 1024`; HAProxy stops pooling "
             "idle server connections once 25 % of its descriptors are in use, "
             "`tune.pool-high-fd-ratio`, so with thousands of idle clients it keeps none)."]
    notes += ["", "Idle RSS of HAProxy and nginx includes connection tables sized from their "
              "configured limits (HAProxy `maxconn`, nginx `worker_connections`), which are "
              "set high enough for the idle-connection step (see the appendix)."]
    if attempted and min(attempted) < s["idle_conns_requested"]:
        notes.append("")
        notes.append(f"Only {min(attempted):,} of {s['idle_conns_requested']:,} connections were "
                     f"attempted: RLIMIT_NOFILE is {s['rlimit_nofile']:,} here and cannot be "
                     "raised, and a proxy needs two descriptors per proxied connection. The "
                     "per-connection figure divides by the connections actually held.")
    return "\n".join(notes) + "\n"


def section_failures(doc):
    failed = [(n, doc["subjects"][n]["reason"]) for n in _run_subjects(doc)
              if doc["subjects"][n]["status"] == "failed"]
    if not failed:
        return ""
    parts = ["## Subjects that failed\n"]
    for n, reason in failed:
        parts.append(f"**{LABELS[n]}**:\n\n```\n{reason}\n```\n")
    return "\n".join(parts)


def section_appendix(doc):
    tmp = "$TMP"
    nofile = doc["settings"]["rlimit_nofile"]
    gyrus_cmd = " ".join(subj.gyrus_argv("gyrus", "mesh.yaml", "ADMINPORT"))
    wrk_cmd = " ".join(measure.wrk_argv("PORT", doc["settings"]["duration_s"],
                                        doc["settings"]["connections"],
                                        doc["settings"]["threads"]))
    wrk_cmd = wrk_cmd.replace(measure.WRK_LUA, "bench/wrk_report.lua")
    blocks = [
        ("Backend (nginx)", "nginx", subj.backend_config(tmp, "BACKENDPORT", nofile),
         "nginx -p $TMP -e $TMP/backend.error.log -c $TMP/backend.conf"),
        ("gyrus", "yaml", subj.gyrus_config("PROXYPORT", "BACKENDPORT"), gyrus_cmd),
        ("HAProxy", "haproxy", subj.haproxy_config("PROXYPORT", "BACKENDPORT", nofile),
         "haproxy -db -f $TMP/haproxy.cfg"),
        ("nginx as reverse proxy", "nginx",
         subj.nginx_proxy_config(tmp, "PROXYPORT", "BACKENDPORT", nofile),
         "nginx -p $TMP -e $TMP/nginx.error.log -c $TMP/nginx.conf"),
    ]
    out = ["## Appendix: exact configurations\n",
           "Ports are ephemeral and chosen per start (`PROXYPORT`, `BACKENDPORT`, "
           "`ADMINPORT`); `$TMP` is the run's `mkdtemp` directory. The proxy is started "
           f"under `taskset -c {measure.SUBJECT_CPU}`.\n",
           f"Load: `taskset -c {measure.LOAD_CPU} {wrk_cmd}`\n"]
    for title, lang, text, cmd in blocks:
        out.append(f"### {title}\n\n`{cmd}`\n\n```{lang}\n{text.rstrip()}\n```\n")
    return "\n".join(out)


def render_markdown(doc):
    parts = [
        "# Benchmarks\n",
        "Generated by `bench/run.py` (`make bench`); do not edit by hand, rerun it. "
        "How to run and read it: `bench/README.md`.\n",
        section_targets(doc),
        section_load(doc),
        section_memory(doc),
        section_failures(doc),
        section_machine(doc),
        section_method(doc),
        section_appendix(doc),
    ]
    return "\n".join(p for p in parts if p)


def write_markdown(path, doc):
    """Writes this run's sections; the sections other benchmarks put after them (retries, h2, tls,
    ...) stay as they are, to be replaced by their own next run."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = render_markdown(doc)
    own = {line for line in text.split("\n") if line.startswith("## ")}
    try:
        with open(path) as f:
            old = f.read().split("\n")
    except OSError:
        old = []
    first_other = next((i for i, line in enumerate(old) if line.startswith("## ") and line not in own), None)
    if first_other is not None:
        text = text.rstrip("\n") + "\n\n" + "\n".join(old[first_other:])
    with open(path, "w") as f:
        f.write(text)


def summary_text(doc):
    lines = []
    for n in _run_subjects(doc):
        s = doc["subjects"][n]
        if s["status"] != "ok":
            lines.append(f"{n:8} FAILED: {(s['reason'] or '').splitlines()[0]}")
            continue
        lines.append(f"{n:8} {fmt_num(s['requests_per_sec']):>10} req/s  "
                     f"p99 {fmt_us(s['latency_p99_us']):>9}  "
                     f"cpu {fmt_num(s['proxy_cpu_percent'], 1, '%'):>7}  "
                     f"idle {fmt_mib(s['rss_idle_bytes']):>10}  "
                     f"per-conn {fmt_num(s['bytes_per_idle_conn'], 0, ' B')}")
    for t in doc["targets"]:
        met = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        lines.append(f"target {t['key']}: {t['value']} ({t['goal']}) {met}")
    return "\n".join(lines)
