"""Two `gyrus control` replicas on one real etcd share one mesh: a change through either reaches
the proxies polling both; checksums and referential integrity hold across replicas."""
import json
import signal
import threading
import time
import urllib.request

from control_fixtures import (Poll, control_factory, etcd, http, poll, small_mesh, view_objects)  # noqa: F401
from conftest import wait_for


def test_two_replicas_share_one_mesh(etcd, control_factory):
    a = control_factory(etcd=etcd)
    b = control_factory(etcd=etcd)
    a.apply(small_mesh())
    wait_for(lambda: len(b.ok("GET", "/v1.0/cluster")) == 1, 5, what="replica b sees a's apply")
    va = poll(a, "svc", node="on-a")[1]["version"]
    vb = poll(b, "svc", node="on-b")[1]["version"]
    assert va == vb
    # Proxies parked on both replicas; a change through b wakes both.
    pa = Poll(a, "svc", version=va, wait=30, node="on-a")
    pb = Poll(b, "svc", version=vb, wait=30, node="on-b")
    time.sleep(0.3)
    t0 = time.monotonic()
    cluster = b.ok("GET", "/v1.0/cluster/svc")
    b.ok("PUT", "/v1.0/cluster/svc", dict(cluster, instances=[{"host": "127.0.0.1", "port": 9000}]))
    ra, rb = pa.wait(5), pb.wait(5)
    assert ra[0] == 200 and rb[0] == 200 and time.monotonic() - t0 < 2
    assert ra[1]["version"] == rb[1]["version"] != va
    # And a change through a reaches b's proxy.
    pb = Poll(b, "svc", version=rb[1]["version"], wait=30, node="on-b")
    time.sleep(0.3)
    a.ok("POST", "/v1.0/route", {"route_key": "r2", "domain_key": "ingress", "route_match": {"path": "/two"},
                                 "rules": [{"constraints": {"light": [{"cluster_key": "svc", "weight": 1}]}}]})
    status, body = pb.wait(5)
    assert status == 200 and ("route", "r2") in view_objects(body)
    # Deletes travel too.
    b.ok("DELETE", "/v1.0/route/r2")
    wait_for(lambda: a.api("GET", "/v1.0/route/r2")[0] == 404, 5, what="delete reaches a")
    assert a.metric("gyrus_control_store_up", store="etcd") == 1


def test_checksums_and_integrity_across_replicas(etcd, control_factory):
    a = control_factory(etcd=etcd)
    b = control_factory(etcd=etcd)
    a.apply(small_mesh())
    wait_for(lambda: b.api("GET", "/v1.0/zone/zone-1")[0] == 200, 5, what="b sees the mesh")
    read = b.ok("GET", "/v1.0/zone/zone-1")
    a.ok("PUT", "/v1.0/zone/zone-1", dict(read, name="changed-on-a"))
    wait_for(lambda: b.ok("GET", "/v1.0/zone/zone-1")["name"] == "changed-on-a", 5, what="b sees a's write")
    status, out = b.api("PUT", "/v1.0/zone/zone-1", dict(read, name="stale-on-b"))
    assert status == 409 and "checksum mismatch" in out["error"]["message"]
    # A delete on b of a cluster that a route created on a uses is refused.
    status, out = b.api("DELETE", "/v1.0/cluster/svc")
    assert status == 409 and 'no cluster "svc"' in out["error"]["message"]


def test_concurrent_writers_on_both_replicas(etcd, control_factory):
    a = control_factory(etcd=etcd)
    b = control_factory(etcd=etcd)
    errors = []

    def writer(c, tag):
        for i in range(30):
            status, out = c.api("POST", "/v1.0/zone", {"zone_key": f"{tag}-{i}"})
            if status != 200:
                errors.append((status, out))
    threads = [threading.Thread(target=writer, args=(c, t)) for c, t in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    wait_for(lambda: len(a.ok("GET", "/v1.0/zone")) == 60 and len(b.ok("GET", "/v1.0/zone")) == 60, 5,
             what="both replicas hold all 60 zones")


def test_replica_restart_and_late_join(etcd, control_factory):
    a = control_factory(etcd=etcd, prefix="/meshes/one")
    a.apply(small_mesh())
    a.signal(signal.SIGTERM)
    assert a.proc.wait(timeout=20) == 0
    b = control_factory(etcd=etcd, prefix="/meshes/one")
    assert len(b.ok("GET", "/v1.0/route")) == 1
    # Another prefix is another mesh.
    other = control_factory(etcd=etcd, prefix="/meshes/two")
    assert other.ok("GET", "/v1.0/route") == []
    # Objects written into etcd by hand (through its gateway) are picked up by the watch.
    import base64
    key = base64.b64encode(b"/meshes/one/objects/zone/by-hand").decode()
    val = base64.b64encode(json.dumps({"kind": "zone", "zone_key": "by-hand"}).encode()).decode()
    req = urllib.request.Request(etcd.url + "/v3/kv/put", data=json.dumps({"key": key, "value": val}).encode(),
                                 method="POST")
    urllib.request.urlopen(req, timeout=5).read()
    wait_for(lambda: b.api("GET", "/v1.0/zone/by-hand")[0] == 200, 5, what="hand-written object")
    assert len(b.ok("GET", "/v1.0/zone/by-hand")["checksum"]) == 40


def test_etcd_down_at_start_is_one_line(control_factory):
    from control_fixtures import Control
    from conftest import free_port

    class Nowhere:
        url = f"http://127.0.0.1:{free_port()}"
    c = Control(etcd=Nowhere(), wait=False)
    assert c.proc.wait(timeout=30) == 1
    out = c.output().strip().splitlines()
    assert len(out) == 1 and out[0].startswith("control: error: etcd http://127.0.0.1:"), out
    c.stop()
    assert http  # keep the import used


def test_large_batch_reaches_the_other_replica(etcd, control_factory):
    a = control_factory(etcd=etcd)
    b = control_factory(etcd=etcd)
    clusters = [{"kind": "cluster", "cluster_key": f"c{i}", "name": f"c{i}",
                 "instances": [{"host": f"10.0.{i // 250}.{i % 250}", "port": 8080 + j} for j in range(5)]}
                for i in range(3000)]
    assert a.apply(clusters)["created"] == 3000
    wait_for(lambda: b.metric("gyrus_control_objects", kind="cluster") == 3000, 15, what="3000 clusters on b")
    assert b.ok("GET", "/v1.0/cluster/c2999")["instances"][4]["port"] == 8084
