/*
 * Listeners: which ssl_configs make a listener TLS, and which certificate a client gets.
 *
 * A listener is TLS when it has `ssl_config`, or when one of its domains has one (Grey Matter
 * puts ssl_config on domains). Each ssl_config becomes one context serving the names in its
 * `sni` list, else its domain's name and aliases. A client without SNI, or with a name no
 * context claims, gets the default: the listener's own ssl_config, else that of the domain "*",
 * else that of the least specific domain. Domains without ssl_config are served with the
 * default certificate.
 *
 * The choice is made in the ClientHello callback rather than the servername callback: OpenSSL
 * picks the protocol version before the servername callback runs, and a domain may allow other
 * versions (and ciphers, and client certificate rules) than the default.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "core/err.h"
#include "core/log.h"
#include "tls/tls_int.h"

static const unsigned char wire_h1[] = "\x08http/1.1";
static const unsigned char wire_h2_h1[] = "\x02h2\x08http/1.1";
static const unsigned char wire_h2[] = "\x02h2";
static const struct tls_alpn alpn_h1 = { wire_h1, sizeof(wire_h1) - 1 };
static const struct tls_alpn alpn_h2_h1 = { wire_h2_h1, sizeof(wire_h2_h1) - 1 };
static const struct tls_alpn alpn_h2 = { wire_h2, sizeof(wire_h2) - 1 };

/* What a listener offers by ALPN, by its `protocol`. */
static const struct tls_alpn *listener_alpn(enum gy_listener_protocol p)
{
    switch (p) {
    case GY_PROTO_HTTP:
        return &alpn_h1;
    case GY_PROTO_HTTP2:
        return GY_TLS_OFFER_H2 ? &alpn_h2 : &alpn_h1;
    case GY_PROTO_TCP:
        return NULL;
    default:
        return GY_TLS_OFFER_H2 ? &alpn_h2_h1 : &alpn_h1;
    }
}

/* ---- the spec: which ssl_configs, for which names ---- */

static const json_t *ssl_of(const json_t *o)
{
    const json_t *s = json_object_get(o, "ssl_config");
    return json_is_object(s) ? s : NULL;
}

/* The names a domain's ssl_config serves: its sni list, else the domain's name and aliases. */
static json_t *domain_names(const json_t *d, const json_t *ssl)
{
    const json_t *sni = json_object_get(ssl, "sni"), *v;
    json_t *names = json_array();
    size_t i;

    if (names == NULL)
        return NULL;
    if (json_is_string(sni) && json_string_length(sni) > 0) {
        json_array_append(names, (json_t *)sni);
        return names;
    }
    if (json_array_size(sni) > 0) {
        json_array_extend(names, (json_t *)sni);
        return names;
    }
    if (json_is_string(json_object_get(d, "name")))
        json_array_append(names, json_object_get(d, "name"));
    json_array_foreach(json_object_get(d, "aliases"), i, v)
    {
        if (json_is_string(v))
            json_array_append(names, (json_t *)v);
    }
    return names;
}

static bool has_star(const json_t *names)
{
    const json_t *v;
    size_t i;

    json_array_foreach(names, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), "*") == 0)
            return true;
    }
    return false;
}

static int add_entry(json_t *entries, const char *kind, const char *key, const json_t *ssl, json_t *names)
{
    char what[300];

    snprintf(what, sizeof(what), "%s \"%s\"", kind, key);
    json_t *e = names != NULL ? json_pack("{s:s,s:O,s:o}", "what", what, "ssl", ssl, "names", names) : NULL;
    if (e == NULL || json_array_append_new(entries, e) != 0)
        return -1;
    return 0;
}

int tls_server_spec(const struct gy_config *cfg, const struct gy_listener *l, json_t **spec, char *err, size_t errlen)
{
    const json_t *lo = tls_find_object(cfg->objects, "listener", "listener_key", l->key);
    const json_t *lssl = ssl_of(lo);
    bool secret = json_is_object(json_object_get(lo, "secret"));
    json_t *entries = json_array();
    size_t dflt = SIZE_MAX;

    *spec = NULL;
    if (entries == NULL)
        goto nomem;
    if (lssl != NULL) {
        if (add_entry(entries, "listener", l->key, lssl, domain_names(NULL, lssl)) != 0)
            goto nomem;
        dflt = 0;
    }
    for (size_t i = 0; i < l->nvhosts; i++) {
        const json_t *d = tls_find_object(cfg->objects, "domain", "domain_key", l->vhosts[i]->key);
        const json_t *dssl = ssl_of(d);
        if (dssl == NULL)
            continue;
        json_t *names = domain_names(d, dssl);
        if (dflt == SIZE_MAX && names != NULL && has_star(names))
            dflt = json_array_size(entries);
        if (add_entry(entries, "domain", l->vhosts[i]->key, dssl, names) != 0)
            goto nomem;
    }
    if (json_array_size(entries) == 0 && secret) {
        json_t *ssl = tls_secret_ssl(json_object_get(lo, "secret"), true);
        if (ssl == NULL) {
            json_decref(entries);
            snprintf(err, errlen, "listener \"%s\": secret: this proxy has no SVID (it gets one from the mesh CA "
                                  "with --control and a join token); give the listener an ssl_config with certificate "
                                  "files instead", l->key);
            return GY_ECONFIG;
        }
        int rc = add_entry(entries, "listener", l->key, ssl, json_array());
        json_decref(ssl);
        if (rc != 0)
            goto nomem;
        dflt = 0;
    } else if (secret) {
        gy_warn("listener \"%s\": the secret's identity is ignored: TLS comes from ssl_config (its "
                "forward_client_cert_details still applies)", l->key);
    }
    if (json_array_size(entries) == 0) {
        json_decref(entries);
        return 0;
    }
    if (dflt == SIZE_MAX)
        dflt = json_array_size(entries) - 1; /* domains are sorted most specific first */
    if (dflt != 0) {
        json_t *e = json_incref(json_array_get(entries, dflt));
        json_array_remove(entries, dflt);
        json_array_insert_new(entries, 0, e);
    }
    if ((*spec = json_pack("{s:i,s:o}", "protocol", (int)l->protocol, "entries", entries)) == NULL)
        goto nomem_spec;
    return 0;
nomem:
    json_decref(entries);
nomem_spec:
    snprintf(err, errlen, "listener \"%s\": out of memory", l->key);
    return GY_ENOMEM;
}

/* ---- names ---- */

static int add_name(struct tls_set *s, const char *pattern, size_t ctx)
{
    size_t n = strlen(pattern);
    const char *colon = strchr(pattern, ':');
    struct tls_name *names, *nm;

    if (colon != NULL)
        n = (size_t)(colon - pattern); /* "example.com:8443": the port does not matter here */
    if (n == 0 || (n == 1 && pattern[0] == '*'))
        return 0;                      /* "*": the default's business */
    if ((names = realloc(s->names, (s->nnames + 1) * sizeof(*names))) == NULL)
        return -1;
    s->names = names;
    nm = &names[s->nnames];
    nm->ctx = ctx;
    if (n > 1 && pattern[0] == '*') {
        nm->match = TLS_NAME_SUFFIX;
        pattern++, n--;
    } else if (n > 1 && pattern[n - 1] == '*') {
        nm->match = TLS_NAME_PREFIX;
        n--;
    } else {
        nm->match = TLS_NAME_EXACT;
    }
    if ((nm->pattern = strndup(pattern, n)) == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        nm->pattern[i] = (char)tolower((unsigned char)nm->pattern[i]);
    nm->len = n;
    s->nnames++;
    return 0;
}

static int name_cmp(const void *pa, const void *pb)
{
    const struct tls_name *a = pa, *b = pb;

    if (a->match != b->match)
        return (int)a->match - (int)b->match;
    if (a->len != b->len && a->match != TLS_NAME_EXACT)
        return a->len > b->len ? -1 : 1;
    return a->ctx < b->ctx ? -1 : a->ctx > b->ctx; /* a name claimed twice: the first ssl_config */
}

size_t tls_sni_lookup(const struct tls_set *set, const char *name, size_t len)
{
    for (size_t i = 0; i < set->nnames; i++) {
        const struct tls_name *n = &set->names[i];
        switch (n->match) {
        case TLS_NAME_EXACT:
            if (len == n->len && memcmp(name, n->pattern, len) == 0)
                return n->ctx;
            break;
        case TLS_NAME_SUFFIX:
            if (len > n->len && memcmp(name + len - n->len, n->pattern, n->len) == 0)
                return n->ctx;
            break;
        case TLS_NAME_PREFIX:
            if (len > n->len && memcmp(name, n->pattern, n->len) == 0)
                return n->ctx;
            break;
        }
    }
    return 0;
}

int tls_sni_parse(const unsigned char *p, size_t len, char *name, size_t cap)
{
    if (len < 2 || (((size_t)p[0] << 8) | p[1]) != len - 2)
        return -1;
    p += 2, len -= 2;
    while (len >= 3) {
        unsigned type = p[0];
        size_t n = ((size_t)p[1] << 8) | p[2];
        p += 3, len -= 3;
        if (n > len)
            return -1;
        if (type == 0) { /* host_name */
            if (n == 0 || n >= cap)
                return -1;
            for (size_t i = 0; i < n; i++) {
                if (p[i] <= 0x20 || p[i] >= 0x7f)
                    return -1;
                name[i] = (char)tolower(p[i]);
            }
            if (name[n - 1] == '.')
                n--;
            name[n] = '\0';
            return n > 0 ? 0 : -1;
        }
        p += n, len -= n;
    }
    return -1;
}

/* ---- the callback and the build ---- */

static bool same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int client_hello(SSL *s, int *al, void *arg)
{
    const struct tls_set *set = arg;
    const unsigned char *p;
    size_t len;
    char name[256];

    if (SSL_client_hello_get0_ext(s, TLSEXT_TYPE_server_name, &p, &len) != 1 ||
        tls_sni_parse(p, len, name, sizeof(name)) != 0)
        return SSL_CLIENT_HELLO_SUCCESS; /* no SNI (or a malformed one, which OpenSSL refuses later) */
    size_t i = tls_sni_lookup(set, name, strlen(name));
    if (i == 0)
        return SSL_CLIENT_HELLO_SUCCESS;
    const struct tls_ctx *c = &set->ctxs[i], *d = &set->ctxs[0];
    if (SSL_set_SSL_CTX(s, c->ctx) == NULL) {
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    SSL_set_verify(s, c->verify_mode, SSL_CTX_get_verify_callback(c->ctx)); /* the callback checks SPIFFE IDs */
    if ((c->min_version != d->min_version && SSL_set_min_proto_version(s, c->min_version) != 1) ||
        (c->max_version != d->max_version && SSL_set_max_proto_version(s, c->max_version) != 1) ||
        (!same_str(c->ciphers, d->ciphers) &&
         SSL_set_cipher_list(s, c->ciphers != NULL ? c->ciphers : OSSL_default_cipher_list()) != 1)) {
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

int tls_server_build(struct tls_owner *o, struct tls_set **out, char *err, size_t errlen)
{
    const json_t *entries = json_object_get(o->spec, "entries"), *e, *v;
    const struct tls_alpn *alpn = listener_alpn((enum gy_listener_protocol)json_integer_value(json_object_get(o->spec, "protocol")));
    struct tls_set *s = tls_set_new(true, o->ctr);
    size_t i, k;

    if (s == NULL || (s->ctxs = calloc(json_array_size(entries), sizeof(*s->ctxs))) == NULL)
        goto nomem;
    json_array_foreach(entries, i, e)
    {
        struct tls_build b = { json_string_value(json_object_get(e, "what")), err, errlen, s };
        if (tls_ctx_server(&b, json_object_get(e, "ssl"), alpn, &s->ctxs[i]) != 0)
            goto fail;
        s->nctxs++;
        json_array_foreach(json_object_get(e, "names"), k, v)
        {
            if (json_is_string(v) && add_name(s, json_string_value(v), i) != 0)
                goto nomem;
        }
    }
    if (s->nnames > 1)
        qsort(s->names, s->nnames, sizeof(*s->names), name_cmp);
    if (s->nctxs > 1)
        SSL_CTX_set_client_hello_cb(s->ctxs[0].ctx, client_hello, s);
    *out = s;
    return 0;
nomem:
    snprintf(err, errlen, "%s: out of memory", o->what);
fail:
    tls_set_unref(s);
    return GY_ECONFIG;
}
