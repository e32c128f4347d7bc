"""End to end: `gyrus proxy --control` fed by `gyrus control`: the view is applied and ACKed,
weight changes reach the traffic with zero failed requests, a NACK shows in `gyrus status`,
traffic survives the control plane going away, and a proxy restarted meanwhile serves from its
cache. Skipped when the binary's proxy has no --control yet."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from control_fixtures import cli_env, control, control_factory, run_cli, to_yaml_file  # noqa: F401
from conftest import GYRUS, Process, free_port, wait_for


def proxy_has_control():
    out = subprocess.run([GYRUS, "proxy", "--help"], capture_output=True, text=True, timeout=10)
    return "--control" in out.stdout


pytestmark = pytest.mark.skipif(not proxy_has_control(), reason="gyrus proxy has no --control yet")


class ControlledProxy(Process):
    def __init__(self, control_url, name, node, data_dir=None):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="gyrus-proxy-")
        self.admin_port = free_port()
        super().__init__([GYRUS, "proxy", "--control", control_url, "--name", name, "--node", node,
                          "--data-dir", self.data_dir, "--workers", "1", "--admin", f"127.0.0.1:{self.admin_port}",
                          "--drain-time", "2s"], f"proxy-{node}")

    def cleanup(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)


def mesh(port, backends, weights):
    return [
        {"kind": "zone", "zone_key": "z"},
        {"kind": "listener", "listener_key": "in", "name": "in", "ip": "127.0.0.1", "port": port,
         "domain_keys": ["in"], "zone_key": "z"},
        {"kind": "domain", "domain_key": "in", "name": "*", "port": port, "zone_key": "z"},
        {"kind": "proxy", "proxy_key": "svc", "name": "svc", "listener_keys": ["in"], "zone_key": "z"},
        *[{"kind": "cluster", "cluster_key": f"c{i}", "name": f"c{i}", "zone_key": "z",
           "instances": [{"host": "127.0.0.1", "port": b.port}]} for i, b in enumerate(backends)],
        {"kind": "route", "route_key": "root", "domain_key": "in", "zone_key": "z",
         "route_match": {"path": "/", "match_type": "prefix"},
         "rules": [{"constraints": {"light": [{"cluster_key": f"c{i}", "weight": w}
                                              for i, w in enumerate(weights) if w > 0]}}]},
    ]


def served_by(port, n=40):
    seen = {}
    for _ in range(n):
        r = requests.get(f"http://127.0.0.1:{port}/x", timeout=5)
        assert r.status_code == 200
        seen[r.text.strip()] = seen.get(r.text.strip(), 0) + 1
    return seen


def status_row(control, node):
    for p in control.status()["proxies"]:
        if p["node"] == node:
            return p
    return None


def test_proxy_follows_the_control_plane(control_factory, backend_factory, tmp_path):
    b0, b1 = backend_factory("zero"), backend_factory("one")
    port = free_port()
    data = str(tmp_path / "control")
    c = control_factory(data_dir=data)
    c.apply(mesh(port, [b0, b1], [1, 0]))
    p = ControlledProxy(c.url, "svc", "node-1")
    try:
        wait_for(lambda: served_by(port, 5) == {"ok zero": 5}, 15, what="proxy serving its view")
        wait_for(lambda: (status_row(c, "node-1") or {}).get("status") == "ACK", 10, what="ACK")
        assert status_row(c, "node-1")["in_sync"]
        # The proxy polls with its own HTTP client: libcurl (and what it pulls in) is never loaded.
        with open(f"/proc/{p.proc.pid}/maps") as f:
            maps = f.read()
        assert "libcurl" not in maps and "libssh" not in maps and "libldap" not in maps

        # Weights change under traffic: no failed request, the split follows.
        failures, stop = [], threading.Event()

        def traffic():
            s = requests.Session()
            while not stop.is_set():
                try:
                    if s.get(f"http://127.0.0.1:{port}/x", timeout=5).status_code != 200:
                        failures.append("status")
                except requests.RequestException as e:
                    failures.append(repr(e))
        t = threading.Thread(target=traffic)
        t.start()
        path = to_yaml_file(tmp_path / "weights.yaml", mesh(port, [b0, b1], [0, 1]))
        out = run_cli("apply", "-f", path, env=cli_env(c))
        assert out.returncode == 0, out.stderr
        wait_for(lambda: served_by(port, 5) == {"ok one": 5}, 10, what="new weights")
        stop.set()
        t.join(10)
        assert failures == []

        # A view the proxy cannot apply (its port is taken): NACK, shown by `gyrus status`.
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            m = mesh(port, [b0, b1], [0, 1])
            m.append({"kind": "listener", "listener_key": "busy", "name": "busy", "ip": "127.0.0.1",
                      "port": busy.getsockname()[1], "zone_key": "z"})
            m[3] = dict(m[3], listener_keys=["in", "busy"])
            c.apply(m)
            wait_for(lambda: (status_row(c, "node-1") or {}).get("status") == "NACK", 10, what="NACK")
            out = run_cli("status", env=cli_env(c))
            assert "NACK" in out.stdout and "Address already in use" in out.stdout
            assert served_by(port, 5) == {"ok one": 5}  # the running config stays

        # The control plane goes away: traffic continues; a restarted proxy serves from its cache.
        c.apply(mesh(port, [b0, b1], [0, 1]), prune=True)
        wait_for(lambda: (status_row(c, "node-1") or {}).get("status") == "ACK", 10, what="ACK again")
        c.check_clean_exit()
        assert served_by(port, 10) == {"ok one": 10}
        p.check_clean_exit()
        p2 = ControlledProxy(c.url, "svc", "node-1", data_dir=p.data_dir)
        try:
            wait_for(lambda: served_by(port, 5) == {"ok one": 5}, 15, what="proxy serving from its cache")
        finally:
            p2.check_clean_exit()
    finally:
        p.stop()
        p.cleanup()
