/* Instances and snapshots as every source reports them (control/discovery.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/discovery/source.h"
#include "core/err.h"

#define HOST_MAX 255

static int why(char *buf, size_t len, const char *msg)
{
    snprintf(buf, len, "%s", msg);
    return GY_EINVAL;
}

int gy_instance_add_metadata(json_t *inst, const char *key, const char *value)
{
    json_t *list = json_object_get(inst, "metadata"), *kv;

    if (list == NULL) {
        if ((list = json_array()) == NULL || json_object_set_new(inst, "metadata", list) != 0)
            return GY_ENOMEM;
    }
    kv = json_pack("{s:s, s:s}", "key", key, "value", value);
    if (kv == NULL || json_array_append_new(list, kv) != 0)
        return GY_ENOMEM;
    return 0;
}

/* A metadata value as a string: strings as they are, anything else as compact JSON. */
static int add_metadatum(json_t *inst, const char *key, const json_t *v)
{
    char *text;
    int rc;

    if (json_is_string(v))
        return gy_instance_add_metadata(inst, key, json_string_value(v));
    if ((text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
        return GY_ENOMEM;
    rc = gy_instance_add_metadata(inst, key, text);
    free(text);
    return rc;
}

static int copy_metadata(json_t *inst, const json_t *md, char *whybuf, size_t whylen)
{
    const char *key;
    json_t *v;
    size_t i;

    if (md == NULL || json_is_null(md))
        return 0;
    if (json_is_object(md)) {
        json_object_foreach((json_t *)md, key, v) {
            if (add_metadatum(inst, key, v) != 0)
                return why(whybuf, whylen, "out of memory");
        }
        return 0;
    }
    if (!json_is_array(md))
        return why(whybuf, whylen, "\"metadata\" must be a list of {key, value} or a mapping");
    json_array_foreach((json_t *)md, i, v) {
        const json_t *k = json_object_get(v, "key"), *val = json_object_get(v, "value");
        if (!json_is_string(k) || json_string_length(k) == 0)
            return why(whybuf, whylen, "\"metadata\" entries need a non-empty string \"key\"");
        if (val == NULL || json_is_null(val))
            val = json_string("");
        else
            json_incref((json_t *)val);
        int rc = add_metadatum(inst, json_string_value(k), val);
        json_decref((json_t *)val);
        if (rc != 0)
            return why(whybuf, whylen, "out of memory");
    }
    return 0;
}

json_t *gy_instance_new(const char *host, long long port, const json_t *metadata)
{
    json_t *inst = json_pack("{s:s, s:I}", "host", host, "port", (json_int_t)port);
    char whybuf[8];

    if (inst != NULL && copy_metadata(inst, metadata, whybuf, sizeof(whybuf)) != 0) {
        json_decref(inst);
        return NULL;
    }
    return inst;
}

json_t *gy_instance_normalize(const json_t *in, char *whybuf, size_t whylen)
{
    const json_t *host = json_object_get(in, "host"), *port = json_object_get(in, "port");
    const json_t *weight = json_object_get(in, "weight");
    json_int_t p;
    json_t *inst;

    if (!json_is_object(in)) {
        why(whybuf, whylen, "an instance must be an object {host, port, metadata}");
        return NULL;
    }
    if (!json_is_string(host) || json_string_length(host) == 0 || json_string_length(host) > HOST_MAX ||
        strlen(json_string_value(host)) != json_string_length(host)) {
        why(whybuf, whylen, "\"host\" must be a non-empty string");
        return NULL;
    }
    if (json_is_string(port)) { /* "8080" from YAML written by hand, or a key-value store */
        char *end;
        long v = strtol(json_string_value(port), &end, 10);
        p = (*end == '\0' && end != json_string_value(port)) ? v : -1;
    } else {
        p = json_is_integer(port) ? json_integer_value(port) : -1;
    }
    if (p < 1 || p > 65535) {
        why(whybuf, whylen, "\"port\" must be an integer from 1 to 65535");
        return NULL;
    }
    if (weight != NULL && (!json_is_integer(weight) || json_integer_value(weight) < 1 ||
                           json_integer_value(weight) > 128)) {
        why(whybuf, whylen, "\"weight\" must be an integer from 1 to 128");
        return NULL;
    }
    if ((inst = gy_instance_new(json_string_value(host), p, NULL)) == NULL ||
        (weight != NULL && json_object_set(inst, "weight", (json_t *)weight) != 0)) {
        why(whybuf, whylen, "out of memory");
        json_decref(inst);
        return NULL;
    }
    if (copy_metadata(inst, json_object_get(in, "metadata"), whybuf, whylen) != 0) {
        json_decref(inst);
        return NULL;
    }
    return inst;
}

int gy_snapshot_add(json_t *snapshot, const char *cluster, json_t *inst)
{
    json_t *list = json_object_get(snapshot, cluster);

    if (inst == NULL)
        return GY_ENOMEM;
    if (list == NULL && ((list = json_array()) == NULL || json_object_set_new(snapshot, cluster, list) != 0)) {
        json_decref(inst);
        return GY_ENOMEM;
    }
    return json_array_append_new(list, inst) == 0 ? 0 : GY_ENOMEM;
}

static int compare_instances(const void *pa, const void *pb)
{
    const json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    int c = strcmp(json_string_value(json_object_get(a, "host")), json_string_value(json_object_get(b, "host")));

    if (c != 0)
        return c;
    json_int_t x = json_integer_value(json_object_get(a, "port")), y = json_integer_value(json_object_get(b, "port"));
    return (x > y) - (x < y);
}

static void sort_instances(json_t *list)
{
    size_t n = json_array_size(list), kept = 0;
    json_t **v;

    if (n < 2 || (v = malloc(n * sizeof(*v))) == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(list, i));
    qsort(v, n, sizeof(*v), compare_instances);
    json_array_clear(list);
    for (size_t i = 0; i < n; i++) {
        if (kept > 0 && compare_instances(&v[i], &v[kept - 1]) == 0) {
            json_decref(v[i]); /* the same host:port twice in one source: one of them counts */
            continue;
        }
        v[kept++] = v[i];
        json_array_append(list, v[i]);
        json_decref(v[i]); /* the list holds it */
    }
    free(v);
}

void gy_snapshot_finish(json_t *snapshot)
{
    const char *cluster;
    json_t *list;

    json_object_foreach(snapshot, cluster, list)
        sort_instances(list);
}

size_t gy_snapshot_instances(const json_t *snapshot)
{
    const char *cluster;
    json_t *list;
    size_t n = 0;

    json_object_foreach((json_t *)snapshot, cluster, list)
        n += json_array_size(list);
    return n;
}
