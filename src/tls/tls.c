/* Placeholder until TLS lands: no listener or cluster gets a TLS context. */
#include "tls/tls.h"

int gy_tls_attach(struct gy_config *cfg, char *err, size_t errlen)
{
    (void)cfg, (void)err, (void)errlen;
    return 0;
}

void gy_tls_detach(struct gy_config *cfg)
{
    (void)cfg;
}

struct gy_transport *gy_tls_server(void *listener_tls)
{
    (void)listener_tls;
    return NULL;
}

struct gy_transport *gy_tls_client(void *cluster_tls, const char *instance_host)
{
    (void)cluster_tls, (void)instance_host;
    return NULL;
}

const char *gy_tls_alpn(struct gy_transport *t)
{
    (void)t;
    return NULL;
}

const struct gy_tls_peer *gy_tls_peer(struct gy_transport *t)
{
    (void)t;
    return NULL;
}
