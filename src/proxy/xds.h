/*
 * The proxy's side of config distribution (docs/internals/xds.md): a thread that long-polls
 * the control plane for this proxy's view and hands each new view to the main thread, then
 * reports on the next poll whether it was applied (ACK) or refused (NACK, with the error).
 */
#ifndef GY_PROXY_XDS_H
#define GY_PROXY_XDS_H

#include <jansson.h>
#include <stdbool.h>

struct gy_proxy;
struct gy_xds;

/* Starts polling `control_url` for proxy `name`. `version` is the version already held (from
 * the cache) or NULL. Views arrive on the main loop through gy_proxy_xds_view(). */
struct gy_xds *gy_xds_start(struct gy_proxy *p, const char *control_url, const char *name, const char *zone,
                            const char *node, const char *version);

/* Called by the main thread once it has handled a view: applied or refused with `error`. */
void gy_xds_done(struct gy_xds *x, const char *version, bool applied, const char *error);

/* Stops the thread (aborting a poll in progress) and frees it. */
void gy_xds_stop(struct gy_xds *x);

/* Implemented by proxy.c: a view arrived (objects owned by the callee). */
void gy_proxy_xds_view(struct gy_proxy *p, struct gy_xds *x, json_t *objects, const char *version);

#endif
