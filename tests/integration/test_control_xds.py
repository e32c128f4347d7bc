"""Config distribution (docs/internals/xds.md) as a proxy sees it, with a Python long-poll client:
immediate answers, 304 after `wait`, wake-up on change, per-proxy views, stable versions,
ACK/NACK records, drain."""
import signal
import socket
import time

from control_fixtures import (Poll, control, control_factory, poll, run_cli, cli_env, small_mesh,  # noqa: F401
                              view_objects)
from conftest import wait_for


def two_services(control):
    control.apply(small_mesh() + small_mesh(prefix="b-", port=10809)[1:])


def test_first_poll_answers_at_once_with_the_view(control):
    two_services(control)
    status, body = poll(control, "svc", wait=30)
    assert status == 200 and body["proxy"] == "svc" and len(body["version"]) == 16
    assert view_objects(body) == {("zone", "zone-1"), ("proxy", "proxy"), ("listener", "ingress"),
                                  ("domain", "ingress"), ("route", "root"), ("shared_rules", "svc-rules"),
                                  ("cluster", "svc")}
    # Objects carry their kind and come in kind order, keys sorted: a valid mesh file.
    kinds = [o["kind"] for o in body["objects"]]
    order = ["zone", "proxy", "listener", "domain", "route", "shared_rules", "cluster"]
    assert kinds == sorted(kinds, key=order.index)
    # A stale version is answered at once too.
    status, again = poll(control, "svc", version="0000000000000000", wait=30)
    assert status == 200 and again == body
    # The proxy key works as the name.
    assert poll(control, "proxy", wait=0)[1]["objects"] == body["objects"]


def test_304_after_wait_when_nothing_changes(control):
    control.apply(small_mesh())
    version = poll(control, "svc")[1]["version"]
    p = Poll(control, "svc", version=version, wait=1)
    status, body = p.wait()
    assert status == 304 and body is None
    assert 0.9 < p.elapsed < 3
    assert poll(control, "svc", version=version, wait=0)[0] == 304


def test_unknown_proxy_is_404_then_served_once_created(control):
    status, body = poll(control, "late", wait=5)
    assert status == 404 and body["error"]["message"] == 'no proxy "late"'
    mesh = small_mesh(prefix="late-")
    control.apply(mesh)
    status, body = poll(control, "late-svc", wait=0)
    assert status == 200 and ("proxy", "late-proxy") in view_objects(body)


def test_parked_poll_wakes_on_change(control):
    two_services(control)
    version = poll(control, "svc")[1]["version"]
    p = Poll(control, "svc", version=version, wait=30)
    time.sleep(0.3)
    assert not p.done()
    t0 = time.monotonic()
    cluster = control.ok("GET", "/v1.0/cluster/svc")
    control.ok("PUT", "/v1.0/cluster/svc", dict(cluster, instances=[{"host": "127.0.0.1", "port": 9999}]))
    status, body = p.wait(5)
    assert status == 200 and time.monotonic() - t0 < 1.0
    assert body["version"] != version
    svc = next(o for o in body["objects"] if o["kind"] == "cluster")
    assert svc["instances"] == [{"host": "127.0.0.1", "port": 9999}]


def test_views_hold_only_the_proxys_own_objects_and_unrelated_changes_keep_the_version(control):
    two_services(control)
    a = poll(control, "svc")[1]
    b = poll(control, "b-svc")[1]
    assert not any(k.startswith("b-") for _, k in view_objects(a))
    assert all(k.startswith("b-") or k == "zone-1" for _, k in view_objects(b))
    pa = Poll(control, "svc", version=a["version"], wait=3)
    pb = Poll(control, "b-svc", version=b["version"], wait=30)
    time.sleep(0.2)
    # Change only b's cluster, and add objects nobody uses.
    control.ok("PUT", "/v1.0/cluster/b-svc", {"name": "b-svc", "zone_key": "zone-1",
                                               "instances": [{"host": "127.0.0.1", "port": 7777}]})
    control.apply([{"kind": "cluster", "cluster_key": "unused", "name": "unused"},
                   {"kind": "zone", "zone_key": "zone-2"}])
    assert pb.wait(5)[0] == 200
    assert pa.wait()[0] == 304, "a's view must not change when only b's objects do"
    assert poll(control, "svc")[1]["version"] == a["version"]
    # A new route on a's domain joins a's view (found through the domain, not a key reference).
    pa = Poll(control, "svc", version=a["version"], wait=30)
    time.sleep(0.2)
    control.ok("POST", "/v1.0/route", {"route_key": "extra", "domain_key": "ingress",
                                       "route_match": {"path": "/extra"},
                                       "rules": [{"constraints": {"light": [{"cluster_key": "unused", "weight": 1}]}}]})
    status, body = pa.wait(5)
    assert status == 200 and {("route", "extra"), ("cluster", "unused")} <= view_objects(body)


def test_versions_are_content_hashes(control_factory):
    c1, c2 = control_factory(), control_factory()
    mesh = small_mesh()
    c1.apply(mesh)
    c2.apply(list(reversed(mesh)))
    assert poll(c1, "svc")[1]["version"] == poll(c2, "svc")[1]["version"]


def test_zone_selects_among_proxies_of_one_name(control):
    control.apply(small_mesh() + [
        {"kind": "zone", "zone_key": "zone-2"},
        {"kind": "proxy", "proxy_key": "proxy-z2", "name": "svc", "zone_key": "zone-2", "domain_keys": ["ingress"]},
    ])
    assert ("proxy", "proxy-z2") in view_objects(poll(control, "svc", zone="zone-2")[1])
    assert ("proxy", "proxy") in view_objects(poll(control, "svc", zone="zone-1")[1])
    assert ("proxy", "proxy") in view_objects(poll(control, "svc")[1])  # the smallest key


def test_ack_and_nack_are_recorded_per_node(control):
    control.apply(small_mesh())
    version = poll(control, "svc", node="node-a")[1]["version"]
    poll(control, "svc", node="node-b")
    poll(control, "svc", version=version, node="node-a", status="ack")
    poll(control, "svc", version=version, node="node-b", status="nack",
         error='listener "ingress": cannot listen on 127.0.0.1:10808: Address already in use')
    proxies = {p["node"]: p for p in control.status()["proxies"]}
    assert proxies["node-a"]["status"] == "ACK" and proxies["node-a"]["in_sync"] is True
    assert proxies["node-a"]["version"] == version and proxies["node-a"]["error"] is None
    assert proxies["node-b"]["status"] == "NACK" and proxies["node-b"]["in_sync"] is False
    assert proxies["node-b"]["error"].endswith("Address already in use")
    assert control.metric("gyrus_control_acks_total") == 1
    assert control.metric("gyrus_control_nacks_total") == 1
    out = run_cli("status", env=cli_env(control))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    row_a = next(line for line in lines if "node-a" in line)
    row_b = next(line for line in lines if "node-b" in line)
    assert version in row_a and " ACK " in row_a and " yes " in row_a
    assert " NACK " in row_b and row_b.endswith("Address already in use")
    assert any(line.startswith("svc") and " 1 " in line for line in lines if "CLUSTER" not in line)
    # A NACKed version is not sent again: the poll parks until something changes.
    assert poll(control, "svc", version=version, node="node-b", status="nack", error="x", wait=0)[0] == 304


def test_client_gone_while_parked(control):
    control.apply(small_mesh())
    version = poll(control, "svc")[1]["version"]
    path = f"/v1.0/xds/svc?node=gone&version={version}&wait=60"
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", control.port), timeout=5)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(s)
    wait_for(lambda: control.metric("gyrus_control_proxies_connected") >= 1, 5, what="parked polls")
    for s in socks:
        s.close()
    # The control plane forgets them and keeps serving; a change wakes nobody that is gone.
    cluster = control.ok("GET", "/v1.0/cluster/svc")
    control.ok("PUT", "/v1.0/cluster/svc", dict(cluster, lb_policy="random"))
    assert poll(control, "svc")[0] == 200


def test_many_parked_polls_all_wake(control):
    control.apply(small_mesh())
    version = poll(control, "svc")[1]["version"]
    polls = [Poll(control, "svc", version=version, wait=30, node=f"n{i}") for i in range(50)]
    time.sleep(0.5)
    assert not any(p.done() for p in polls)
    control.ok("PUT", "/v1.0/zone/zone-1", {"name": "renamed"})
    for p in polls:
        status, body = p.wait(5)
        assert status == 200 and body["version"] != version
    assert control.metric("gyrus_control_views_sent_total") >= 51


def test_sigterm_answers_parked_polls_and_exits_cleanly(control_factory):
    c = control_factory()
    c.apply(small_mesh())
    version = poll(c, "svc")[1]["version"]
    p = Poll(c, "svc", version=version, wait=60)
    time.sleep(0.3)
    c.signal(signal.SIGTERM)
    status, body = p.wait(10)
    assert status == 503 and "shutting down" in body["error"]["message"]
    assert c.proc.wait(timeout=10) == 0


def test_sighup_rereads_the_store(control):
    control.apply(small_mesh())
    control.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert control.alive() and control.api("GET", "/ready")[0] == 200
    assert "reading the store again" in control.output()
