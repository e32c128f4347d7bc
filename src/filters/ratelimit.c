/* Placeholder until the filter lands: compiles nothing, passes every request. */
#include <stdio.h>

#include "proxy/filter.h"

static void *compile(const json_t *config, char *err, size_t errlen)
{
    (void)config;
    snprintf(err, errlen, "not implemented yet");
    return NULL;
}

static void destroy(void *compiled)
{
    (void)compiled;
}

static enum gy_filter_result on_request(struct gy_filter_call *c, void *compiled, void *route_compiled)
{
    (void)c, (void)compiled, (void)route_compiled;
    return GY_FILTER_CONTINUE;
}

const struct gy_filter_ops gy_filter_ratelimit = {
    .name = "gyrus.ratelimit",
    .aliases = NULL,
    .compile = compile,
    .destroy = destroy,
    .on_request = on_request,
};
