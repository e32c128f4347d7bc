/*
 * A per-proxy view (docs/internals/xds.md): what one proxy name (in one zone) is sent. Views are
 * computed on first poll, kept while polled, and recomputed only when a change touches them:
 * every view registers its dependencies in ctl->deps,
 *
 *   k/<kind>/<key>   each object it holds, or looked for (a key that does not exist yet)
 *   c/<name>         each cluster name it holds (discovered instances)
 *   n/<name>         the name it was asked for (a proxy object created or renamed)
 *
 * and a change marks only the views registered under what it touches (view.c).
 */
#ifndef GY_CONTROL_VIEW_H
#define GY_CONTROL_VIEW_H

#include <jansson.h>
#include <stdint.h>

#include "control/control.h"
#include "core/list.h"

#define CTL_VERSION_LEN 16

struct ctl_view {
    char *id;                 /* "name\x1fzone" */
    char *name, *zone;
    char *proxy_key;          /* the proxy object it resolves to, NULL if none */
    char version[CTL_VERSION_LEN + 1]; /* hash of the canonical objects; "" if no proxy */
    struct ctl_blob *body;    /* the 200 answer; NULL if no proxy */
    size_t nobjects;
    json_t *deps;             /* array of the dependency strings registered */
    struct gy_list parked;    /* struct ctl_req.park_link of the polls waiting on it */
    struct gy_list dirty_link;
    uint64_t last_used_ms;
};

/* The view of `name` in `zone` (may be ""), computed now if new. NULL on ENOMEM. */
struct ctl_view *ctl_view_get(struct gy_control *ctl, const char *name, const char *zone);

#endif
