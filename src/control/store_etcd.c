/*
 * The etcd v3 store, through etcd's JSON gateway (POST /v3/kv/range, /v3/kv/txn, /v3/watch),
 * with libcurl. Several control planes on one etcd share one mesh:
 *
 *   PREFIX/objects/<kind>/<key>   an object (its JSON, as served)
 *   PREFIX/meta/rev               rewritten by every batch: its mod_revision is the mesh's revision
 *
 * A batch is one txn guarded by "meta/rev has the mod_revision this process last saw", so a
 * batch validated against a stale mesh never lands: the commit answers GY_EAGAIN and the
 * control plane reloads, revalidates and retries. Changes by other replicas arrive through a
 * watch on PREFIX/ run by a thread with its own blocking libcurl handle, which posts them to
 * the loop. On the loop, an event whose revision is not above what the mesh in memory already
 * reflects (`applied_rev`, moved by loads, our own commits and applied events) is dropped, so
 * our own writes and events replayed after a reconnect or a reload are never applied twice.
 * Range and txn run on the loop thread (a local etcd answers in about a millisecond).
 */
#include <curl/curl.h>
#include <errno.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control/store.h"
#include "core/bytes.h"
#include "core/err.h"
#include "core/log.h"

#define ETCD_MAX_ANSWER ((size_t)512 << 20)
#define ETCD_TIMEOUT_MS 15000L
#define WATCH_BACKOFF_MIN_MS 250
#define WATCH_BACKOFF_MAX_MS 5000

struct gy_store {
    char **endpoints;
    size_t nendpoints, cur;
    char prefix[512];          /* "/gyrus/" */
    char objects[540];         /* "/gyrus/objects/" */
    char rev_key[540];         /* "/gyrus/meta/rev" */
    CURL *curl;                /* the loop thread's handle */
    int64_t applied_rev;       /* loop thread: the revision the mesh in memory reflects */
    _Atomic int64_t seen_rev;  /* a copy for the watch thread, which skips older events early */
    int64_t meta_mod_rev;      /* loop thread: mod_revision of rev_key as of applied_rev (0: absent) */
    /* the watch */
    struct gy_loop *loop;
    struct gy_store_watcher watcher;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    atomic_int inflight;       /* messages posted to the loop and not yet run */
    int64_t watch_from;        /* the watch thread's next revision */
    pthread_mutex_t lock;      /* state */
    char state[256];
};

/* ---- helpers ---- */

static void set_state(struct gy_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_state(struct gy_store *s, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&s->lock);
    va_start(ap, fmt);
    vsnprintf(s->state, sizeof(s->state), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&s->lock);
}

static char *b64(const char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);

    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
    return out;
}

/* Decodes base64; NUL-terminated, *len set. NULL if malformed. */
static char *unb64(const char *in, size_t *len)
{
    size_t n = strlen(in), pad = 0;
    char *out;

    if (n % 4 != 0 || (out = malloc(n / 4 * 3 + 1)) == NULL)
        return NULL;
    int d = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n) : 0;
    if (d < 0) {
        free(out);
        return NULL;
    }
    if (n >= 1 && in[n - 1] == '=')
        pad++;
    if (n >= 2 && in[n - 2] == '=')
        pad++;
    *len = (size_t)d - pad;
    out[*len] = '\0';
    return out;
}

static json_t *jb64(const char *s)
{
    char *e = b64(s, strlen(s));
    json_t *j = e ? json_string(e) : NULL;

    free(e);
    return j;
}

/* The key just after every key with this prefix (etcd's range_end for a prefix). */
static json_t *jb64_prefix_end(const char *prefix)
{
    char end[512];
    size_t n = strlen(prefix);

    snprintf(end, sizeof(end), "%s", prefix);
    end[n - 1]++;
    return jb64(end);
}

/* int64 fields come as strings from the gateway; absent means 0. */
static int64_t jint(const json_t *v)
{
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}


/* POSTs a JSON request to one of the endpoints (moving on when one cannot be reached).
 * Returns 0 with *resp, or GY_EIO with err. */
static int etcd_call(struct gy_store *s, const char *path, json_t *req, json_t **resp, char *err, size_t errlen)
{
    char *body = json_dumps(req, JSON_COMPACT);
    int rc = GY_EIO;

    *resp = NULL;
    if (body == NULL) {
        snprintf(err, errlen, "etcd: out of memory");
        return GY_ENOMEM;
    }
    for (size_t attempt = 0; attempt < s->nendpoints; attempt++) {
        const char *ep = s->endpoints[s->cur];
        struct gy_bytes a = { .max = ETCD_MAX_ANSWER };
        struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
        char url[1024], cerr[CURL_ERROR_SIZE] = "";
        long status = 0;

        hdrs = curl_slist_append(hdrs, "Expect:");
        snprintf(url, sizeof(url), "%s%s", ep, path);
        curl_easy_reset(s->curl);
        curl_easy_setopt(s->curl, CURLOPT_URL, url);
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, gy_bytes_curl_write);
        curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &a);
        curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
        curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, ETCD_TIMEOUT_MS);
        CURLcode cc = curl_easy_perform(s->curl);
        curl_slist_free_all(hdrs);
        if (cc != CURLE_OK) {
            snprintf(err, errlen, "etcd %s: %s", ep, cerr[0] ? cerr : curl_easy_strerror(cc));
            free(a.p);
            s->cur = (s->cur + 1) % s->nendpoints;
            continue;
        }
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
        json_t *j = a.p ? json_loadb(a.p, a.len, 0, NULL) : NULL;
        free(a.p);
        if (status != 200) {
            const char *m = json_string_value(json_object_get(j, "message"));
            if (m == NULL)
                m = json_string_value(json_object_get(j, "error"));
            snprintf(err, errlen, "etcd %s%s: HTTP %ld: %s", ep, path, status, m ? m : "no details");
            json_decref(j);
            break;
        }
        if (j == NULL) {
            snprintf(err, errlen, "etcd %s%s: the answer is not JSON", ep, path);
            break;
        }
        *resp = j;
        rc = 0;
        break;
    }
    free(body);
    return rc;
}

/* ---- open, load, commit ---- */

static void etcd_close(struct gy_store *s);

static int parse_endpoints(struct gy_store *s, const char *list, char *err, size_t errlen)
{
    char *copy = strdup(list ? list : ""), *save = NULL;

    if (copy == NULL)
        return GY_ENOMEM;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        size_t n = strlen(tok);
        while (n > 0 && tok[n - 1] == '/')
            tok[--n] = '\0';
        if (strncmp(tok, "http://", 7) != 0 && strncmp(tok, "https://", 8) != 0) {
            snprintf(err, errlen, "--etcd-endpoints: want http://HOST:PORT, got \"%s\"", tok);
            free(copy);
            return GY_EINVAL;
        }
        char **eps = realloc(s->endpoints, (s->nendpoints + 1) * sizeof(*eps));
        if (eps == NULL || (eps[s->nendpoints] = strdup(tok)) == NULL) {
            if (eps != NULL)
                s->endpoints = eps;
            free(copy);
            return GY_ENOMEM;
        }
        s->endpoints = eps;
        s->nendpoints++;
    }
    free(copy);
    if (s->nendpoints == 0) {
        snprintf(err, errlen, "--etcd-endpoints: none given");
        return GY_EINVAL;
    }
    return 0;
}

static int etcd_open(const struct gy_store_options *o, struct gy_store **out, char *err, size_t errlen)
{
    struct gy_store *s = calloc(1, sizeof(*s));
    const char *prefix = o->etcd_prefix ? o->etcd_prefix : "/gyrus";
    size_t pl = strlen(prefix);
    int rc;

    if (s == NULL)
        return GY_ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->stop, false);
    atomic_init(&s->inflight, 0);
    atomic_init(&s->seen_rev, 0);
    while (pl > 1 && prefix[pl - 1] == '/')
        pl--;
    if (pl == 0 || pl > 400) {
        snprintf(err, errlen, "--etcd-prefix: want a key prefix such as /gyrus");
        etcd_close(s);
        return GY_EINVAL;
    }
    snprintf(s->prefix, sizeof(s->prefix), "%.*s/", (int)pl, prefix);
    snprintf(s->objects, sizeof(s->objects), "%sobjects/", s->prefix);
    snprintf(s->rev_key, sizeof(s->rev_key), "%smeta/rev", s->prefix);
    if ((rc = parse_endpoints(s, o->etcd_endpoints, err, errlen)) != 0) {
        etcd_close(s);
        return rc;
    }
    if ((s->curl = curl_easy_init()) == NULL) {
        snprintf(err, errlen, "etcd: cannot initialise libcurl");
        etcd_close(s);
        return GY_ENOMEM;
    }
    snprintf(s->state, sizeof(s->state), "ok");
    *out = s;
    return 0;
}

static int etcd_load(struct gy_store *s, json_t **objects, char *err, size_t errlen)
{
    json_t *req = json_pack("{s:o,s:o}", "key", jb64(s->prefix), "range_end", jb64_prefix_end(s->prefix));
    json_t *resp = NULL, *arr = json_array(), *kv;
    int64_t meta = 0;
    size_t i, ol = strlen(s->objects);
    int rc = etcd_call(s, "/v3/kv/range", req, &resp, err, errlen);

    json_decref(req);
    if (rc != 0) {
        set_state(s, "unreachable: %.200s", err);
        json_decref(arr);
        return rc;
    }
    json_array_foreach(json_object_get(resp, "kvs"), i, kv) {
        size_t kl = 0, vl = 0;
        char *key = unb64(json_string_value(json_object_get(kv, "key")) ? json_string_value(json_object_get(kv, "key")) : "", &kl);
        const char *v64 = json_string_value(json_object_get(kv, "value"));
        char *val = unb64(v64 ? v64 : "", &vl);
        if (key != NULL && strcmp(key, s->rev_key) == 0) {
            meta = jint(json_object_get(kv, "mod_revision"));
        } else if (key != NULL && val != NULL && strncmp(key, s->objects, ol) == 0) {
            json_t *o = json_loadb(val, vl, 0, NULL);
            if (json_is_object(o))
                json_array_append(arr, o);
            else
                gy_warn("etcd: %s: not a JSON object; skipped", key);
            json_decref(o);
        }
        free(key);
        free(val);
    }
    s->applied_rev = jint(json_object_get(json_object_get(resp, "header"), "revision"));
    atomic_store(&s->seen_rev, s->applied_rev);
    s->meta_mod_rev = meta;
    json_decref(resp);
    set_state(s, "ok");
    *objects = arr;
    return 0;
}

static json_t *op_for(struct gy_store *s, const struct gy_store_change *c)
{
    char key[2048];
    char *body = NULL;
    json_t *op;

    snprintf(key, sizeof(key), "%s%s/%s", s->objects, c->kind, c->key);
    if (c->obj == NULL)
        return json_pack("{s:{s:o}}", "request_delete_range", "key", jb64(key));
    if ((body = json_dumps(c->obj, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
        return NULL;
    char *v = b64(body, strlen(body));
    op = v ? json_pack("{s:{s:o,s:s}}", "request_put", "key", jb64(key), "value", v) : NULL;
    free(v);
    free(body);
    return op;
}

static int etcd_commit(struct gy_store *s, const struct gy_store_change *c, size_t n, char *err, size_t errlen)
{
    json_t *success = json_array(), *resp = NULL;
    char rev[32];

    for (size_t i = 0; i < n; i++) {
        json_t *op = op_for(s, &c[i]);
        if (op == NULL || json_array_append_new(success, op) != 0) {
            json_decref(success);
            snprintf(err, errlen, "etcd: out of memory");
            return GY_ENOMEM;
        }
    }
    json_array_append_new(success, json_pack("{s:{s:o,s:s}}", "request_put", "key", jb64(s->rev_key), "value", "MQ=="));
    snprintf(rev, sizeof(rev), "%lld", (long long)s->meta_mod_rev);
    json_t *req = json_pack("{s:[{s:o,s:s,s:s,s:s}],s:o}", "compare", "key", jb64(s->rev_key), "target", "MOD",
                            "result", "EQUAL", "mod_revision", rev, "success", success);
    int rc = etcd_call(s, "/v3/kv/txn", req, &resp, err, errlen);
    json_decref(req);
    if (rc != 0) {
        set_state(s, "error: %.200s", err);
        return rc;
    }
    if (!json_is_true(json_object_get(resp, "succeeded"))) {
        json_decref(resp);
        return GY_EAGAIN; /* another replica wrote since we last looked */
    }
    int64_t r = jint(json_object_get(json_object_get(resp, "header"), "revision"));
    s->applied_rev = r;
    atomic_store(&s->seen_rev, r);
    s->meta_mod_rev = r;
    json_decref(resp);
    set_state(s, "ok");
    return 0;
}

/* ---- the watch ---- */

struct event {
    char *kind, *key;
    json_t *obj;         /* NULL: deleted */
    int64_t mod_rev;
    bool meta;           /* the rev key */
};

struct watch_msg {
    struct gy_store *s;
    bool resync;
    struct event *ev;
    size_t n;
};

static void msg_free(struct watch_msg *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->ev[i].kind);
        free(m->ev[i].key);
        json_decref(m->ev[i].obj);
    }
    free(m->ev);
    free(m);
}

/* On the loop: apply what is newer than the mesh in memory. */
static void deliver(struct gy_loop *loop, void *arg)
{
    struct watch_msg *m = arg;
    struct gy_store *s = m->s;
    struct gy_store_change *c = calloc(m->n ? m->n : 1, sizeof(*c));
    size_t nc = 0;
    int64_t top = s->applied_rev;

    (void)loop;
    if (atomic_load(&s->stop) || c == NULL) {
        free(c);
        msg_free(m);
        atomic_fetch_sub(&s->inflight, 1);
        return;
    }
    if (m->resync) {
        s->watcher.resync(s->watcher.arg);
    } else {
        for (size_t i = 0; i < m->n; i++) {
            struct event *e = &m->ev[i];
            if (e->mod_rev <= s->applied_rev)
                continue; /* already reflected (our own commit, or a load after it) */
            if (e->mod_rev > top)
                top = e->mod_rev;
            if (e->meta)
                s->meta_mod_rev = e->mod_rev;
            else
                c[nc++] = (struct gy_store_change){ e->kind, e->key, e->obj };
        }
        s->applied_rev = top;
        atomic_store(&s->seen_rev, top);
        if (nc > 0)
            s->watcher.changed(s->watcher.arg, c, nc);
    }
    bool big = m->n >= 1000;
    free(c);
    msg_free(m);
    atomic_fetch_sub(&s->inflight, 1);
    if (big)
        malloc_trim(0);
}

static void post(struct gy_store *s, struct watch_msg *m)
{
    atomic_fetch_add(&s->inflight, 1);
    if (gy_loop_post(s->loop, deliver, m) != 0) {
        atomic_fetch_sub(&s->inflight, 1);
        msg_free(m);
    }
}

struct stream {
    struct gy_store *s;
    char *buf;
    size_t len;
    size_t scanned;      /* bytes of buf already searched for a newline */
    bool reconnect;      /* abort the transfer and start again (after a resync) */
};

static bool event_from_kv(struct gy_store *s, const json_t *kv, bool deleted, struct event *e)
{
    size_t kl = 0, vl = 0, ol = strlen(s->objects);
    const char *k64 = json_string_value(json_object_get(kv, "key"));
    char *key = unb64(k64 ? k64 : "", &kl);

    memset(e, 0, sizeof(*e));
    if (key == NULL)
        return false;
    e->mod_rev = jint(json_object_get(kv, "mod_revision"));
    if (e->mod_rev <= atomic_load(&s->seen_rev)) { /* already in memory (our own write): skip early */
        free(key);
        return false;
    }
    if (strcmp(key, s->rev_key) == 0) {
        e->meta = true;
        free(key);
        return true;
    }
    const char *slash = strncmp(key, s->objects, ol) == 0 ? strchr(key + ol, '/') : NULL;
    if (slash == NULL) {
        free(key);
        return false;
    }
    e->kind = strndup(key + ol, (size_t)(slash - key - (long)ol));
    e->key = strdup(slash + 1);
    free(key);
    if (!deleted) {
        const char *v64 = json_string_value(json_object_get(kv, "value"));
        char *val = unb64(v64 ? v64 : "", &vl);
        e->obj = val ? json_loadb(val, vl, 0, NULL) : NULL;
        free(val);
        if (!json_is_object(e->obj)) {
            gy_warn("etcd: %s%s/%s: not a JSON object; skipped", s->objects, e->kind ? e->kind : "", e->key ? e->key : "");
            json_decref(e->obj);
            e->obj = NULL;
            free(e->kind);
            free(e->key);
            return false;
        }
    }
    return e->kind != NULL && e->key != NULL;
}

/* One watch response from the stream. */
static void on_message(struct stream *st, json_t *msg)
{
    struct gy_store *s = st->s;
    const json_t *res = json_object_get(msg, "result"), *events = json_object_get(res, "events"), *ev;
    size_t i;

    if (res == NULL) {
        const json_t *e = json_object_get(msg, "error");
        const char *m = json_string_value(json_object_get(e, "message"));
        set_state(s, "watch: %.200s", m ? m : "error");
        st->reconnect = true;
        return;
    }
    if (jint(json_object_get(res, "compact_revision")) > 0 || json_is_true(json_object_get(res, "canceled"))) {
        /* Our revision was compacted away: read everything again, watch from now on. */
        struct watch_msg *m = calloc(1, sizeof(*m));
        if (m != NULL) {
            m->s = s;
            m->resync = true;
            post(s, m);
        }
        s->watch_from = 0;
        st->reconnect = true;
        return;
    }
    if (json_is_true(json_object_get(res, "created")))
        set_state(s, "ok");
    if (json_array_size(events) == 0)
        return;
    struct watch_msg *m = calloc(1, sizeof(*m));
    if (m == NULL || (m->ev = calloc(json_array_size(events), sizeof(*m->ev))) == NULL) {
        free(m);
        return;
    }
    m->s = s;
    json_array_foreach(events, i, ev) {
        const char *type = json_string_value(json_object_get(ev, "type"));
        bool deleted = type != NULL && strcmp(type, "DELETE") == 0;
        int64_t rev = jint(json_object_get(json_object_get(ev, "kv"), "mod_revision"));
        if (rev >= s->watch_from)
            s->watch_from = rev + 1;
        if (event_from_kv(s, json_object_get(ev, "kv"), deleted, &m->ev[m->n]))
            m->n++;
    }
    if (m->n == 0) {
        msg_free(m);
        return;
    }
    post(s, m);
}

/* The gateway writes one JSON message per line; a message is parsed once its line is complete
 * (never re-parsed as more of a large one arrives). */
static size_t on_stream(char *ptr, size_t size, size_t n, void *arg)
{
    struct stream *st = arg;
    size_t add = size * n, off = 0;

    if (st->len + add > ETCD_MAX_ANSWER)
        return 0;
    char *nb = realloc(st->buf, st->len + add + 1);
    if (nb == NULL)
        return 0;
    st->buf = nb;
    memcpy(st->buf + st->len, ptr, add);
    st->len += add;
    while (!st->reconnect) {
        char *nl = memchr(st->buf + st->scanned, '\n', st->len - st->scanned);
        if (nl == NULL) {
            st->scanned = st->len;
            break;
        }
        size_t end = (size_t)(nl - st->buf);
        json_error_t je;
        json_t *msg = end > off ? json_loadb(st->buf + off, end - off, 0, &je) : NULL;
        if (msg != NULL) {
            on_message(st, msg);
            json_decref(msg);
            if (end - off > ((size_t)1 << 20))
                malloc_trim(0); /* a large message's memory, back to the system */
        } else if (end > off && strspn(st->buf + off, " \r") < end - off) {
            set_state(st->s, "watch: malformed answer: %.100s", je.text);
            st->reconnect = true;
        }
        off = st->scanned = end + 1;
    }
    memmove(st->buf, st->buf + off, st->len - off);
    st->len -= off;
    st->scanned -= off;
    return st->reconnect ? 0 : add;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct gy_store *s = arg;

    (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&s->stop) ? 1 : 0;
}

static void nap(struct gy_store *s, long ms)
{
    for (long t = 0; t < ms && !atomic_load(&s->stop); t += 50) {
        struct timespec ts = { 0, 50 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

static void *watch_thread(void *arg)
{
    struct gy_store *s = arg;
    CURL *h = curl_easy_init();
    long backoff = WATCH_BACKOFF_MIN_MS;
    size_t ep = s->cur;

    while (h != NULL && !atomic_load(&s->stop)) {
        struct stream st = { .s = s };
        struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
        char url[1024], from[32], cerr[CURL_ERROR_SIZE] = "";
        json_t *create = json_pack("{s:o,s:o}", "key", jb64(s->prefix), "range_end", jb64_prefix_end(s->prefix));
        if (s->watch_from > 0) {
            snprintf(from, sizeof(from), "%lld", (long long)s->watch_from);
            json_object_set_new(create, "start_revision", json_string(from));
        }
        json_t *req = json_pack("{s:o}", "create_request", create);
        char *body = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        snprintf(url, sizeof(url), "%s/v3/watch", s->endpoints[ep]);
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, s);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        CURLcode cc = curl_easy_perform(h);
        curl_slist_free_all(hdrs);
        free(body);
        free(st.buf);
        if (atomic_load(&s->stop))
            break;
        if (st.reconnect) {
            backoff = WATCH_BACKOFF_MIN_MS;
            continue;
        }
        set_state(s, "watch on %s lost: %.150s; retrying", s->endpoints[ep],
                  cc != CURLE_OK ? (cerr[0] ? cerr : curl_easy_strerror(cc)) : "stream ended");
        gy_warn("etcd: watch on %s lost (%s); retrying in %ld ms", s->endpoints[ep],
                cc != CURLE_OK ? (cerr[0] ? cerr : curl_easy_strerror(cc)) : "stream ended", backoff);
        ep = (ep + 1) % s->nendpoints;
        nap(s, backoff);
        backoff = backoff * 2 > WATCH_BACKOFF_MAX_MS ? WATCH_BACKOFF_MAX_MS : backoff * 2;
    }
    if (h != NULL)
        curl_easy_cleanup(h);
    return NULL;
}

static int etcd_watch(struct gy_store *s, struct gy_loop *loop, const struct gy_store_watcher *w, char *err,
                      size_t errlen)
{
    s->loop = loop;
    s->watcher = *w;
    s->watch_from = s->applied_rev + 1;
    if (pthread_create(&s->thread, NULL, watch_thread, s) != 0) {
        snprintf(err, errlen, "etcd: cannot start the watch thread: %s", strerror(errno));
        return GY_EIO;
    }
    s->thread_started = true;
    return 0;
}

static const char *etcd_state(struct gy_store *s)
{
    static _Thread_local char copy[256];

    pthread_mutex_lock(&s->lock);
    snprintf(copy, sizeof(copy), "%s", s->state);
    pthread_mutex_unlock(&s->lock);
    return copy;
}

static void etcd_close(struct gy_store *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stop, true);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    /* Messages the thread posted and the loop has not run yet: run them (they only free). */
    for (int i = 0; i < 200 && s->loop != NULL && atomic_load(&s->inflight) > 0; i++)
        gy_loop_run_once(s->loop, 10);
    if (s->curl != NULL)
        curl_easy_cleanup(s->curl);
    for (size_t i = 0; i < s->nendpoints; i++)
        free(s->endpoints[i]);
    free(s->endpoints);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const struct gy_store_ops gy_store_etcd_ops = {
    .name = "etcd",
    .open = etcd_open,
    .load = etcd_load,
    .commit = etcd_commit,
    .watch = etcd_watch,
    .state = etcd_state,
    .close = etcd_close,
};
