"""What every extra section of the benchmark (retries, tls, mtls, ...) does around its own run:
the common options, a temporary directory and a process registry that are always cleaned up,
the section appended to docs/BENCHMARKS.md and its figures stored under one key of
bench/results.json."""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import measure
import procs
from subjects import SubjectFailed

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def parser(doc, connections=64, duration=10, warmup=2):
    """An argument parser with the options every section has; add the section's own to it."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gyrus", default=os.path.join(ROOT, "build", "gyrus"))
    ap.add_argument("--duration", type=int, default=duration)
    ap.add_argument("--warmup", type=int, default=warmup)
    ap.add_argument("--connections", type=int, default=connections)
    ap.add_argument("--markdown", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--json", default=os.path.join(HERE, "results.json"))
    return ap


def put_section(path, text):
    """Writes a section ("\n## Title\n...") into the markdown file: in place of the section of the
    same title if there is one (up to the next "## " heading), else at the end."""
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except OSError:
        lines = []
    title = next((line for line in text.split("\n") if line.startswith("## ")), None)
    start = lines.index(title) if title in lines else -1
    if start < 0:
        with open(path, "a") as f:
            f.write(text)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    body = text.strip("\n").split("\n")
    tail = lines[end:]
    new = lines[:start] + body + ([""] + tail if tail else [""])
    with open(path, "w") as f:
        f.write("\n".join(new))


def rerender(args, markdown_fn, key):
    """Writes the markdown section again from the results kept in the JSON file (after a change of
    wording, without measuring again)."""
    with open(args.json) as f:
        put_section(args.markdown, markdown_fn(json.load(f)[key]["results"], args))


def run(name, args, run_fn, markdown_fn, key, extra=None):
    """run_fn(args, tmp, registry, nofile) -> results; then the markdown section and the JSON key
    (results, date and `extra`). Returns the results, or None when the run failed (said on stderr)."""
    nofile = procs.raise_nofile_limit(65536)
    registry = procs.Registry()
    tmp = tempfile.mkdtemp(prefix=f"gyrus-bench-{name}-")
    os.chmod(tmp, 0o755)
    try:
        res = run_fn(args, tmp, registry, nofile)
    except (SubjectFailed, measure.LoadFailed) as e:
        print(f"{name} benchmark: {e}", file=sys.stderr)
        return None
    finally:
        registry.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    put_section(args.markdown, markdown_fn(res, args))
    try:
        with open(args.json) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        doc = {}
    doc[key] = {**(extra or {}), "results": res, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=2)
    return res
