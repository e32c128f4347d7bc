/* libFuzzer target: every HTTP filter's configuration parser (the first byte picks the filter,
 * the rest is its JSON config), and, when a config compiles, its decision on a few requests
 * (with and without a verified client certificate, with identity headers to replace). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/pool.h"
#include "filters/rbac.h"
#include "proxy/filter.h"

static void judge(const struct gy_filter_ops *ops, void *compiled, int variant)
{
    static const struct gy_tls_peer peers[] = {
        { true, "CN=edge,O=gyrus", "spiffe://td/z/edge" },
        { true, "CN=alice", NULL },
        { false, "CN=mallory", "spiffe://td/z/mallory" },
    };
    struct gy_header h[] = {
        { GY_SLICE_LIT("user_dn"), GY_SLICE_LIT("CN=alice") },
        { GY_SLICE_LIT("external_sys_dn"), GY_SLICE_LIT("CN=edge,O=gyrus") },
        { GY_SLICE_LIT("x-team"), GY_SLICE_LIT("blue") },
        { GY_SLICE_LIT("x-fault"), GY_SLICE_LIT("1") },
    };
    char first[1024];
    struct gy_pool pool;
    struct gy_filter_edits edits;
    struct gy_filter_call c;

    gy_pool_init(&pool, first, sizeof(first), 1 << 16);
    memset(&edits, 0, sizeof(edits));
    edits.pool = &pool;
    memset(&c, 0, sizeof(c));
    c.edits = &edits;
    c.method = variant & 1 ? GY_SLICE_LIT("POST") : GY_SLICE_LIT("GET");
    c.path = GY_SLICE_LIT("/api/items");
    c.host = GY_SLICE_LIT("web");
    c.headers = h;
    c.nheaders = (size_t)(variant % 5);
    c.request_id = GY_SLICE_LIT("fuzz");
    c.peer_ip = variant & 2 ? "10.1.2.3" : "fd00::1";
    c.peer = variant < 3 ? &peers[variant] : NULL;
    c.grpc = variant == 4;
    c.random = (uint64_t)variant * 0x9e3779b97f4a7c15ull;
    c.now_ms = 1000u * (uint64_t)variant;
    c.reply_grpc_status = -1;
    ops->on_request(&c, compiled, variant == 5 ? compiled : NULL);
    gy_pool_dispose(&pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0;
    char err[400];

    if (size < 1)
        return 0;
    while (gy_filter_registry[n] != NULL)
        n++;
    const struct gy_filter_ops *ops = gy_filter_registry[data[0] % n];
    json_t *config = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
    void *compiled = ops->compile(config, err, sizeof(err));
    if (compiled != NULL) {
        for (int v = 0; v < 6; v++)
            judge(ops, compiled, v);
        ops->destroy(compiled);
    }
    json_decref(config);
    gy_rbac_shutdown();
    return 0;
}
