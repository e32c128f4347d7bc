/*
 * Service discovery: sources that say which instances each cluster name has right now
 * (DESIGN.md §4). The control plane runs any number of sources at once; each reports complete
 * snapshots per cluster name, and the control plane merges the sources (union of instances per
 * cluster name) into cluster.instances of the views it sends to proxies.
 *
 * A source may run its own thread (blocking HTTP long-polls, file watching); whatever it does,
 * it delivers updates on the loop given at start (through gy_loop_post), so the control plane
 * sees every update on its own thread. Sources never call back after gy_discovery_stop returns.
 */
#ifndef GY_CONTROL_DISCOVERY_H
#define GY_CONTROL_DISCOVERY_H

#include <jansson.h>
#include <stdbool.h>

#include "core/loop.h"

struct gy_discovery;

/*
 * An update from one source: `snapshot` is a JSON object mapping cluster name → array of
 * instances [{"host": "10.0.0.1", "port": 8080, "metadata": [{"key": "version", "value": "v2"}]}].
 * It is the source's complete view: a cluster name the source reported before and that is
 * missing now has no instances from this source any more. Ownership of `snapshot` passes to
 * the callback (json_decref it). `source` is the source's spec, for logs and /status.
 */
typedef void (*gy_discovery_cb)(void *arg, const char *source, json_t *snapshot);

/*
 * Starts one source from its spec:
 *   file:PATH                     YAML or JSON [{cluster, instances:[{host,port,metadata}]}], re-read on change
 *   dns:NAME[:PORT]=CLUSTER       A/AAAA (PORT required) or SRV (_svc._tcp.NAME, no port) records for
 *                                 CLUSTER, re-resolved at the records' TTL (min 1 s, max 300 s)
 *   etcd:URL/PREFIX               keys PREFIX/<cluster>/<instance-id> with JSON {host,port,metadata}
 *                                 values, watched through etcd v3's JSON gateway (URL is http://host:2379)
 *   consul:URL[?dc=DC]            Consul catalog: services tagged "tbn-cluster", health passing only,
 *                                 blocking queries (URL is http://host:8500)
 *   kubernetes:URL[?namespace=NS&label=KEY&port=NAME]
 *                                 pods watched from the API server at URL (Ready ones); pods whose label
 *                                 KEY (default greymatter.io/cluster) names the cluster, port named NAME
 *                                 (default "proxy"); a token from $KUBERNETES_TOKEN if set
 * Returns NULL with a one-line reason in err on a bad spec (no I/O errors: a source that
 * cannot reach its backend keeps retrying with backoff and logs, and reports nothing until it can).
 */
struct gy_discovery *gy_discovery_start(struct gy_loop *loop, const char *spec, gy_discovery_cb cb, void *arg,
                                        char *err, size_t errlen);

/* Stops the source and frees it; no callback runs after this returns. */
void gy_discovery_stop(struct gy_discovery *d);

/* A short human description of the source's state for /status ("ok, 12 clusters", "retrying: ..."). */
const char *gy_discovery_state(const struct gy_discovery *d);

#endif
