/*
 * The references between mesh objects, by kind: what a key-reference field of an object
 * names (the GY_T_REF fields of src/mesh/schema*.c). Used to collect a proxy's view and to
 * validate a batch of new objects together with what they refer to (state.c).
 */
#include "control/control.h"

static void ref_list(const json_t *keys, int ki, ctl_ref_cb cb, void *arg)
{
    size_t i;
    json_t *k;

    json_array_foreach(keys, i, k)
        if (json_is_string(k))
            cb(arg, ki, json_string_value(k));
}

static void ref_one(const json_t *key, int ki, ctl_ref_cb cb, void *arg)
{
    if (json_is_string(key) && json_string_length(key) > 0)
        cb(arg, ki, json_string_value(key));
}

/* The cluster_key of every constraint of an AllConstraints {light, dark, tap}. */
static void ref_constraints(const json_t *all, ctl_ref_cb cb, void *arg)
{
    static const char *const sets[] = { "light", "dark", "tap" };

    for (int s = 0; s < 3; s++) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(all, sets[s]), i, c)
            ref_one(json_object_get(c, "cluster_key"), CTL_CLUSTER, cb, arg);
    }
}

static void ref_rules(const json_t *rules, ctl_ref_cb cb, void *arg)
{
    size_t i;
    json_t *r;

    json_array_foreach(rules, i, r)
        ref_constraints(json_object_get(r, "constraints"), cb, arg);
}

void ctl_refs(int ki, const json_t *o, ctl_ref_cb cb, void *arg)
{
    size_t i;
    json_t *l;

    if (ki != CTL_ZONE)
        ref_one(json_object_get(o, "zone_key"), CTL_ZONE, cb, arg);
    switch (ki) {
    case CTL_PROXY:
        ref_list(json_object_get(o, "listener_keys"), CTL_LISTENER, cb, arg);
        ref_list(json_object_get(o, "domain_keys"), CTL_DOMAIN, cb, arg);
        json_array_foreach(json_object_get(o, "listeners"), i, l) {
            ref_list(json_object_get(l, "domain_keys"), CTL_DOMAIN, cb, arg);
            ref_one(json_object_get(l, "zone_key"), CTL_ZONE, cb, arg);
        }
        break;
    case CTL_LISTENER:
        ref_list(json_object_get(o, "domain_keys"), CTL_DOMAIN, cb, arg);
        break;
    case CTL_ROUTE:
        ref_one(json_object_get(o, "domain_key"), CTL_DOMAIN, cb, arg);
        ref_one(json_object_get(o, "shared_rules_key"), CTL_SHARED_RULES, cb, arg);
        ref_rules(json_object_get(o, "rules"), cb, arg);
        break;
    case CTL_SHARED_RULES:
        ref_constraints(json_object_get(o, "default"), cb, arg);
        ref_rules(json_object_get(o, "rules"), cb, arg);
        break;
    default:
        break;
    }
}
