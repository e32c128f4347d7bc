"""Discovered instances reach the views: cluster.instances = static ∪ every source's instances for
the cluster's name, and a parked poll wakes when they change. Uses the flat-file source (skipped
when the binary is built without discovery sources)."""
import json
import os
import time

import pytest

from control_fixtures import Control, Poll, control_factory, poll, small_mesh  # noqa: F401
from conftest import wait_for


def write_json(path, data):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.rename(tmp, path)


@pytest.fixture
def discovered(control_factory, tmp_path):
    path = tmp_path / "instances.json"
    write_json(path, [])
    probe = Control(extra=["--discovery", f"file:{path}"], wait=False)
    time.sleep(0.5)
    if not probe.alive() and "not part of this build" in probe.output():
        probe.stop()
        pytest.skip("built without discovery sources")
    probe.stop()
    c = control_factory(extra=["--discovery", f"file:{path}"])
    return c, path


def instances(body, key="svc"):
    return next(o for o in body["objects"] if o["kind"] == "cluster" and o["cluster_key"] == key).get("instances")


def test_file_discovery_reaches_views(discovered):
    c, path = discovered
    c.apply(small_mesh())
    body = poll(c, "svc")[1]
    assert instances(body) == [{"host": "127.0.0.1", "port": 8080}]
    p = Poll(c, "svc", version=body["version"], wait=30)
    t0 = time.monotonic()
    write_json(path, [{"cluster": "svc", "instances": [{"host": "127.0.0.1", "port": 9001},
                                                        {"host": "127.0.0.1", "port": 8080}]},
                      {"cluster": "elsewhere", "instances": [{"host": "10.0.0.1", "port": 1}]}])
    status, body = p.wait(10)
    assert status == 200 and time.monotonic() - t0 < 5
    assert instances(body) == [{"host": "127.0.0.1", "port": 8080}, {"host": "127.0.0.1", "port": 9001}]
    st = c.status()
    assert st["clusters"][0]["discovered_instances"] == 2 and st["clusters"][0]["instances"] == 2
    assert st["discovery"][0]["source"] == f"file:{path}"
    assert c.metric("gyrus_control_discovery_source_up", source=f"file:{path}") == 1
    # Removed instances leave the view.
    p = Poll(c, "svc", version=body["version"], wait=30)
    write_json(path, [])
    status, body = p.wait(10)
    assert status == 200 and instances(body) == [{"host": "127.0.0.1", "port": 8080}]
    wait_for(lambda: c.status()["clusters"][0]["discovered_instances"] == 0, 5, what="status follows")
