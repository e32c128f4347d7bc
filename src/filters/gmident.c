/*
 * Grey Matter's identity filters, on the client certificate of TLS listeners:
 *   gm.inheaders      sets USER_DN, SSL_CLIENT_S_DN and EXTERNAL_SYS_DN from the peer certificate
 *                     and X-Real-IP from the connection;
 *                     identity headers a client sends that it may not set are stripped
 *   gm.impersonation  only whitelisted servers (DNs or SPIFFE IDs) may act for another user
 *   gm.listauth       allow and deny lists on USER_DN
 * DNs are compared without regard to spaces after commas and, unless caseSensitive, to case.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "filters/fconf.h"
#include "proxy/filter.h"

#define MAX_DNS 256

struct dnlist {
    char *dns[MAX_DNS];
    size_t n;
    bool case_sensitive;
};

/* "CN=a, O=b" and "cn=a,O=B" are the same DN (case aside). */
static bool dn_eq(struct gy_slice a, const char *b, bool case_sensitive)
{
    size_t i = 0, j = 0, bl = strlen(b);

    for (;;) {
        while (i < a.len && a.ptr[i] == ' ' && i > 0 && (a.ptr[i - 1] == ',' || a.ptr[i - 1] == '='))
            i++;
        while (j < bl && b[j] == ' ' && j > 0 && (b[j - 1] == ',' || b[j - 1] == '='))
            j++;
        if (i == a.len || j == bl)
            return i == a.len && j == bl;
        char x = a.ptr[i], y = b[j];
        if (!case_sensitive) {
            x = (char)(x >= 'A' && x <= 'Z' ? x + 32 : x);
            y = (char)(y >= 'A' && y <= 'Z' ? y + 32 : y);
        }
        if (x != y)
            return false;
        i++;
        j++;
    }
}

static bool dn_in(const struct dnlist *l, struct gy_slice dn)
{
    for (size_t i = 0; dn.ptr != NULL && i < l->n; i++)
        if (dn_eq(dn, l->dns[i], l->case_sensitive))
            return true;
    return false;
}

static void dnlist_free(struct dnlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->dns[i]);
    l->n = 0;
}

/* "dn1|dn2" or a list of strings. */
static int parse_dns(struct gy_fconf *f, const json_t *v, void *dst)
{
    struct dnlist *l = dst;
    size_t i;
    const json_t *e;

    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (*s) {
            size_t n = strcspn(s, "|");
            if (n > 0) {
                if (l->n >= MAX_DNS)
                    return gy_fconf_fail(f, "at most %d names", MAX_DNS);
                l->dns[l->n++] = strndup(s, n);
            }
            s += n + (s[n] == '|');
        }
        return 0;
    }
    if (!json_is_array(v))
        return gy_fconf_fail(f, "want \"dn1|dn2\" or a list of names");
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || l->n >= MAX_DNS)
            return gy_fconf_fail(f, "want strings, at most %d", MAX_DNS);
        l->dns[l->n++] = strdup(json_string_value(e));
    }
    return 0;
}

static void destroy_list(void *compiled)
{
    struct dnlist *l = compiled;

    if (l != NULL)
        dnlist_free(l);
    free(l);
}

static const struct gy_tls_peer *verified_peer(const struct gy_filter_call *c)
{
    return c->peer != NULL && c->peer->verified ? c->peer : NULL;
}

/* ---- gm.inheaders ---- */

struct inheaders {
    bool debug;
};

static const struct gy_fopt inheaders_opts[] = {
    { .name = "debug", .type = GY_FOPT_BOOL, .off = offsetof(struct inheaders, debug) },
    GY_FOPT_END,
};

static void *inheaders_compile(const json_t *config, char *err, size_t errlen)
{
    struct gy_fconf f;
    struct inheaders *h = calloc(1, sizeof(*h));

    gy_fconf_init(&f, err, errlen);
    if (h != NULL && config != NULL && gy_fconf_read(&f, config, inheaders_opts, h, NULL) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

static enum gy_filter_result inheaders_request(struct gy_filter_call *c, void *compiled, void *route_compiled)
{
    const struct gy_tls_peer *p = verified_peer(c);
    struct gy_slice user = gy_filter_header_get(c, "user_dn");
    const struct inheaders *h = compiled;
    int rc = 0;

    (void)route_compiled;
    /* Fails closed: a request whose claimed identity cannot be replaced does not go on. */
    rc |= gy_filter_header_remove(c, "ssl_client_s_dn");
    rc |= gy_filter_header_remove(c, "external_sys_dn");
    if (c->peer_ip != NULL)
        rc |= gy_filter_header_set(c, "x-real-ip", gy_slice_cstr(c->peer_ip));
    if (p == NULL || p->subject == NULL) {
        rc |= gy_filter_header_remove(c, "user_dn"); /* no certificate, no identity to claim */
    } else {
        struct gy_slice dn = gy_slice_cstr(p->subject);
        rc |= gy_filter_header_set(c, "ssl_client_s_dn", dn);
        /* USER_DN sent along: acting for that user, which gm.impersonation decides */
        rc |= gy_filter_header_set(c, user.ptr != NULL ? "external_sys_dn" : "user_dn", dn);
    }
    if (rc != 0)
        return gy_filter_reply(c, 500, NULL, "identity headers could not be set");
    if (h->debug && p != NULL && p->subject != NULL)
        gy_info("inheaders: USER_DN: %.*s | SSL_CLIENT_S_DN: %s", (int)(user.ptr ? user.len : strlen(p->subject)),
                user.ptr ? user.ptr : p->subject, p->subject);
    return GY_FILTER_CONTINUE;
}

static void inheaders_destroy(void *compiled)
{
    free(compiled);
}

static const char *const inheaders_aliases[] = { "gyrus.inheaders", NULL };

const struct gy_filter_ops gy_filter_inheaders = {
    .name = "gm.inheaders",
    .aliases = inheaders_aliases,
    .compile = inheaders_compile,
    .destroy = inheaders_destroy,
    .on_request = inheaders_request,
};

/* ---- gm.impersonation ---- */

static const struct gy_fopt impersonation_opts[] = {
    { .name = "servers", .type = GY_FOPT_CUSTOM, .parse = parse_dns },
    { .name = "caseSensitive", .type = GY_FOPT_BOOL, .off = offsetof(struct dnlist, case_sensitive) },
    GY_FOPT_END,
};

static void *impersonation_compile(const json_t *config, char *err, size_t errlen)
{
    struct gy_fconf f;
    struct dnlist *l = calloc(1, sizeof(*l));

    gy_fconf_init(&f, err, errlen);
    if (l == NULL || config == NULL || gy_fconf_read(&f, config, impersonation_opts, l, NULL) != 0) {
        if (l != NULL && config == NULL)
            gy_fconf_fail(&f, "needs a config: servers is required");
        destroy_list(l);
        return NULL;
    }
    return l;
}

static enum gy_filter_result impersonation_request(struct gy_filter_call *c, void *compiled, void *route_compiled)
{
    const struct dnlist *servers = compiled;
    const struct gy_tls_peer *p = verified_peer(c);
    struct gy_slice user = gy_filter_header_get(c, "user_dn"), ext = gy_filter_header_get(c, "external_sys_dn");

    (void)route_compiled;
    /* Acting for someone else: the system named in EXTERNAL_SYS_DN and the certificate of the
     * connection must both be whitelisted servers, or the connection's SPIFFE ID must be. The
     * certificate is what the TLS handshake proved, never a header the client sent. */
    const char *subject = p != NULL ? p->subject : NULL;
    bool acting = ext.ptr != NULL || (user.ptr != NULL && !(subject != NULL && dn_eq(user, subject, false)));
    if (!acting)
        return GY_FILTER_CONTINUE;
    bool by_spiffe = p != NULL && p->spiffe_id != NULL && dn_in(servers, gy_slice_cstr(p->spiffe_id));
    bool by_dn = subject != NULL && dn_in(servers, gy_slice_cstr(subject)) && (ext.ptr == NULL || dn_in(servers, ext));
    if (by_spiffe || by_dn) {
        gy_info("Impersonation Successful -> USER_DN: %.*s | EXTERNAL_SYS_DN: %.*s | SSL_CLIENT_S_DN: %s",
                (int)user.len, user.ptr ? user.ptr : "", (int)ext.len, ext.ptr ? ext.ptr : "",
                subject ? subject : "");
        return GY_FILTER_CONTINUE;
    }
    gy_warn("impersonation refused: USER_DN %.*s requested by %s (request %.*s)", (int)user.len,
            user.ptr ? user.ptr : "", p && p->subject ? p->subject : "an unauthenticated client",
            GY_SLICE_ARG(c->request_id));
    return gy_filter_reply(c, 403, NULL, "impersonation not allowed");
}

const struct gy_filter_ops gy_filter_impersonation = {
    .name = "gm.impersonation",
    .aliases = NULL,
    .compile = impersonation_compile,
    .destroy = destroy_list,
    .on_request = impersonation_request,
};

/* ---- gm.listauth ---- */

struct listauth {
    struct dnlist allow, deny;
};

static const struct gy_fopt listauth_opts[] = {
    { .name = "whitelist", .type = GY_FOPT_CUSTOM, .off = offsetof(struct listauth, allow), .parse = parse_dns },
    { .name = "allowlist", .type = GY_FOPT_CUSTOM, .off = offsetof(struct listauth, allow), .parse = parse_dns },
    { .name = "blacklist", .type = GY_FOPT_CUSTOM, .off = offsetof(struct listauth, deny), .parse = parse_dns },
    { .name = "denylist", .type = GY_FOPT_CUSTOM, .off = offsetof(struct listauth, deny), .parse = parse_dns },
    GY_FOPT_END,
};

static void listauth_destroy(void *compiled)
{
    struct listauth *l = compiled;

    if (l != NULL) {
        dnlist_free(&l->allow);
        dnlist_free(&l->deny);
    }
    free(l);
}

static void *listauth_compile(const json_t *config, char *err, size_t errlen)
{
    struct gy_fconf f;
    struct listauth *l = calloc(1, sizeof(*l));

    gy_fconf_init(&f, err, errlen);
    if (l != NULL && config != NULL && gy_fconf_read(&f, config, listauth_opts, l, NULL) != 0) {
        listauth_destroy(l);
        return NULL;
    }
    return l;
}

static enum gy_filter_result listauth_request(struct gy_filter_call *c, void *compiled, void *route_compiled)
{
    const struct listauth *l = route_compiled ? route_compiled : compiled;
    struct gy_slice user = gy_filter_header_get(c, "user_dn");

    /* The allow list lets everyone in until it has names; the deny list refuses no one until then. */
    if ((l->allow.n > 0 && !dn_in(&l->allow, user)) || dn_in(&l->deny, user)) {
        gy_info("listauth: refused USER_DN %.*s (request %.*s)", (int)user.len, user.ptr ? user.ptr : "(none)",
                GY_SLICE_ARG(c->request_id));
        return gy_filter_reply(c, 403, NULL, "access denied");
    }
    return GY_FILTER_CONTINUE;
}

const struct gy_filter_ops gy_filter_listauth = {
    .name = "gm.listauth",
    .aliases = NULL,
    .compile = listauth_compile,
    .destroy = listauth_destroy,
    .on_request = listauth_request,
};
