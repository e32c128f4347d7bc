/* Pieces of source specs shared by several sources: ports, host:port pairs, URLs with options. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/discovery/source.h"
#include "core/err.h"

int gy_parse_port(const char *s, size_t len)
{
    long v = 0;

    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= 1 && v <= 65535 ? (int)v : -1;
}

int gy_parse_hostport(const char *s, char *out, size_t outlen, bool need_port)
{
    char host[INET6_ADDRSTRLEN + 1];
    unsigned char addr[16];
    const char *colon;
    size_t hlen;
    int port = 53, family = AF_INET;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return GY_EINVAL;
        hlen = (size_t)(close - s - 1);
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] != '\0' && colon == NULL)
            return GY_EINVAL;
        s++;
        family = AF_INET6;
    } else {
        colon = strchr(s, ':');
        hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return GY_EINVAL;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (inet_pton(family, host, addr) != 1)
        return GY_EINVAL;
    if (colon != NULL && (port = gy_parse_port(colon + 1, strlen(colon + 1))) < 0)
        return GY_EINVAL;
    if (colon == NULL && need_port)
        return GY_EINVAL;
    if ((size_t)snprintf(out, outlen, family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port) >= outlen)
        return GY_EINVAL;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A URL-decoded copy of [s, s+len), or NULL if malformed or out of memory. */
static char *url_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t n = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1, lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            out[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[n++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[n] = '\0';
    return out;
}

static int parse_query(const char *q, const char *const *allowed, struct gy_spec_url *u, char *err, size_t errlen)
{
    while (*q != '\0') {
        size_t len = strcspn(q, "&"), klen = strcspn(q, "=");
        const char *name = NULL;

        if (klen > len)
            klen = len;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strlen(allowed[i]) == klen && memcmp(allowed[i], q, klen) == 0)
                name = allowed[i];
        if (name == NULL)
            return gy_discovery_bad_spec(err, errlen, "unknown option \"%.*s\"", (int)klen, q);
        if (klen == len || klen + 1 == len)
            return gy_discovery_bad_spec(err, errlen, "option \"%s\" needs a value", name);
        if (gy_spec_url_param(u, name, NULL) != NULL)
            return gy_discovery_bad_spec(err, errlen, "option \"%s\" given twice", name);
        if (u->nparams == GY_SPEC_MAX_PARAMS)
            return gy_discovery_bad_spec(err, errlen, "too many options");
        if ((u->values[u->nparams] = url_decode(q + klen + 1, len - klen - 1)) == NULL)
            return gy_discovery_bad_spec(err, errlen, "option \"%s\": malformed %%-escape", name);
        u->names[u->nparams++] = name;
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

int gy_spec_url_parse(const char *s, const char *const *allowed, struct gy_spec_url *u, char *err, size_t errlen)
{
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
    CURLU *h = curl_url();
    int rc = GY_EINVAL;
    size_t plen;

    memset(u, 0, sizeof(*u));
    if (h == NULL) {
        rc = gy_discovery_bad_spec(err, errlen, "out of memory");
        goto out;
    }
    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) {
        gy_discovery_bad_spec(err, errlen, "\"%.200s\" is not an http:// or https:// URL", s);
        goto out;
    }
    if (curl_url_set(h, CURLUPART_URL, s, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        gy_discovery_bad_spec(err, errlen, "\"%.200s\" is not a valid URL", s);
        goto out;
    }
    if (curl_url_get(h, CURLUPART_QUERY, &query, 0) == CURLUE_OK && parse_query(query, allowed, u, err, errlen) != 0)
        goto out;
    plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        path[--plen] = '\0';
    size_t blen = strlen(scheme) + strlen(host) + strlen(port) + 5;
    if ((u->base = malloc(blen)) == NULL || (u->path = strdup(path)) == NULL) {
        rc = gy_discovery_bad_spec(err, errlen, "out of memory");
        goto out;
    }
    snprintf(u->base, blen, "%s://%s:%s", scheme, host, port);
    rc = 0;
out:
    if (rc != 0)
        gy_spec_url_dispose(u);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(h);
    return rc;
}

const char *gy_spec_url_param(const struct gy_spec_url *u, const char *name, const char *def)
{
    for (size_t i = 0; i < u->nparams; i++)
        if (strcmp(u->names[i], name) == 0)
            return u->values[i];
    return def;
}

void gy_spec_url_dispose(struct gy_spec_url *u)
{
    for (size_t i = 0; i < u->nparams; i++)
        free(u->values[i]);
    free(u->base);
    free(u->path);
    memset(u, 0, sizeof(*u));
}
