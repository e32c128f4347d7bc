/*
 * Who may call the control plane (docs/control.md#authentication). Without --api-key-file every
 * request is let through, as before. With it:
 *   - /ready, /version, /v1.0/version and the CA's /v1.0/ca/bundle are open, and /v1.0/ca/sign
 *     checks its own proof (a join token or the current SVID);
 *   - /v1.0/xds/<name> takes an API key, or the SVID the proxy presents as its HTTPS client
 *     certificate: spiffe://<trust domain>/<zone>/<name>, for its own name and zone only;
 *   - everything else (the object API, apply, status, metrics, tokens) takes an API key:
 *     `Authorization: Bearer <key>`.
 * Keys are kept as SHA-256 digests and compared in constant time.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control/ca.h"
#include "control/control.h"
#include "core/log.h"

#define KEY_MIN 16
#define KEY_MAX 512

struct ctl_key {
    unsigned char digest[32];
    bool read_only;              /* "KEY read": GET and HEAD only */
};

struct ctl_auth {
    struct ctl_key *keys;
    size_t n;
};

static void digest(const char *s, size_t n, unsigned char out[32])
{
    unsigned int len = 32;

    EVP_Digest(s, n, out, &len, EVP_sha256(), NULL);
}

void ctl_auth_free(struct ctl_auth *a)
{
    if (a != NULL)
        free(a->keys);
    free(a);
}

struct ctl_auth *ctl_auth_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    struct ctl_auth *a = calloc(1, sizeof(*a));
    char line[KEY_MAX + 2];
    unsigned lineno = 0;

    if (f == NULL || a == NULL) {
        snprintf(err, errlen, "%s: %s", path, f == NULL ? strerror(errno) : "out of memory");
        goto fail;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strlen(line);
        lineno++;
        if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
            snprintf(err, errlen, "%s:%u: a key longer than %d characters", path, lineno, KEY_MAX);
            goto fail;
        }
        while (n > 0 && isspace((unsigned char)line[n - 1]))
            line[--n] = '\0';
        char *k = line;
        while (*k == ' ' || *k == '\t')
            k++;
        if (k[0] == '\0' || k[0] == '#')
            continue;
        /* KEY [ROLE]: the key is one word of printable characters; the role is admin (the
         * default) or read */
        char *role = k + strcspn(k, " \t");
        if (*role != '\0') {
            *role++ = '\0';
            role += strspn(role, " \t");
        }
        n = strlen(k);
        for (size_t i = 0; i < n; i++)
            if (!isgraph((unsigned char)k[i])) {
                snprintf(err, errlen, "%s:%u: a key is one word of printable characters", path, lineno);
                goto fail;
            }
        if (*role != '\0' && strcmp(role, "read") != 0 && strcmp(role, "admin") != 0) {
            snprintf(err, errlen, "%s:%u: after the key, want the role read or admin, not \"%.40s\"", path, lineno,
                     role);
            goto fail;
        }
        if (n < KEY_MIN) {
            snprintf(err, errlen, "%s:%u: a key of %zu characters is too easy to guess (at least %d)", path, lineno,
                     n, KEY_MIN);
            goto fail;
        }
        void *d = realloc(a->keys, (a->n + 1) * sizeof(*a->keys));
        if (d == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        a->keys = d;
        a->keys[a->n].read_only = strcmp(role, "read") == 0;
        digest(k, n, a->keys[a->n++].digest);
    }
    if (a->n == 0) {
        snprintf(err, errlen, "%s: no key in it (one per line; # starts a comment)", path);
        goto fail;
    }
    fclose(f);
    OPENSSL_cleanse(line, sizeof(line));
    return a;
fail:
    if (f != NULL)
        fclose(f);
    OPENSSL_cleanse(line, sizeof(line));
    ctl_auth_free(a);
    return NULL;
}

size_t ctl_auth_nkeys(const struct ctl_auth *a)
{
    return a != NULL ? a->n : 0;
}

/* The key the request carries, or NULL. Every key is compared, so the time taken does not tell
 * which one (or how much of one) matched. */
static const struct ctl_key *key_of(const struct ctl_auth *a, const char *authorization)
{
    const struct ctl_key *hit = NULL;
    unsigned char d[32];

    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *k = authorization + 7;
    while (*k == ' ')
        k++;
    digest(k, strlen(k), d);
    for (size_t i = 0; i < a->n; i++)
        if (CRYPTO_memcmp(d, a->keys[i].digest, sizeof(d)) == 0)
            hit = &a->keys[i];
    return hit;
}

static bool reads(const struct ctl_req *r)
{
    return strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
}

static void refuse(struct gy_control *ctl, struct ctl_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void refuse(struct gy_control *ctl, struct ctl_req *r, int status, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ctl->auth_refused++;
    json_t *body = json_pack("{s:{s:i,s:s}}", "error", "code", status, "message", msg);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct ctl_blob *b = text ? ctl_blob_take(text, strlen(text)) : NULL;
    /* counted in /metrics, and logged only at debug: a flood of bad requests must not fill the log */
    gy_debug("%s %s %s: refused (%d): %s", r->peer, r->method, r->path, status, msg);
    ctl_respond(r, b ? status : 500, "application/json", b,
                status == 401 ? "www-authenticate: Bearer realm=\"gyrus\"\r\n" : NULL);
    ctl_blob_unref(b);
}

static bool open_path(const char *p)
{
    return strcmp(p, "/ready") == 0 || strcmp(p, "/version") == 0 || strcmp(p, "/v1.0/version") == 0 ||
           strcmp(p, "/v1.0/ca/bundle") == 0 || strcmp(p, "/v1.0/ca/sign") == 0;
}

/* A proxy's SVID lets it poll its own view: spiffe://<td>/<zone>/<name>. */
static bool svid_allows(struct gy_control *ctl, struct ctl_req *r, const char *name, char *why, size_t whylen)
{
    const char *td = ctl_ca_trust_domain(ctl->ca), *id = r->peer_id;
    size_t tdl = strlen(td);
    char *zone = ctl_query_param(r->query, "zone");
    const char *want_zone = zone != NULL && zone[0] ? zone : "default";
    bool ok = false;

    if (strncmp(id, "spiffe://", 9) != 0 || strncmp(id + 9, td, tdl) != 0 || id[9 + tdl] != '/') {
        snprintf(why, whylen, "%s is not of this mesh's trust domain %s", id, td);
    } else {
        const char *z = id + 9 + tdl + 1, *slash = strchr(z, '/');
        if (slash == NULL || strchr(slash + 1, '/') != NULL || strcmp(slash + 1, name) != 0 ||
            strlen(want_zone) != (size_t)(slash - z) || strncmp(z, want_zone, (size_t)(slash - z)) != 0)
            snprintf(why, whylen, "the certificate of %s may poll only its own view, not proxy \"%s\" in zone \"%s\"",
                     id, name, want_zone);
        else
            ok = true;
    }
    free(zone);
    return ok;
}

bool ctl_auth_allow(struct gy_control *ctl, struct ctl_req *r, const char *xds_name)
{
    const struct ctl_auth *a = ctl->auth;
    char why[300];

    if (a == NULL || open_path(r->path))
        return true;
    const struct ctl_key *key = key_of(a, r->authorization);
    if (key != NULL && key->read_only && !reads(r)) {
        refuse(ctl, r, 403, "a read-only key may only GET");
        return false;
    }
    if (key != NULL)
        return true;
    if (r->authorization != NULL) {
        refuse(ctl, r, 401, "invalid API key");
        return false;
    }
    if (xds_name != NULL && r->peer_id != NULL) {
        if (svid_allows(ctl, r, xds_name, why, sizeof(why)))
            return true;
        refuse(ctl, r, 403, "%s", why);
        return false;
    }
    refuse(ctl, r, 401, xds_name != NULL ? "authentication required: an API key (Authorization: Bearer KEY), or the "
                                      "proxy's SVID as its HTTPS client certificate"
                                    : "authentication required: an API key (Authorization: Bearer KEY)");
    return false;
}
