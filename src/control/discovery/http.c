/* libcurl helper for the HTTP discovery sources (see http.h). */
#include "control/discovery/http.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/time.h"

#define CONNECT_TIMEOUT_MS 5000L

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void gy_http_global_init(void)
{
    pthread_once(&global_once, global_init);
}

int gy_http_init(struct gy_http *h, const atomic_bool *stopping)
{
    memset(h, 0, sizeof(*h));
    h->stopping = stopping;
    if ((h->multi = curl_multi_init()) == NULL)
        return GY_ENOMEM;
    if (gy_http_add_header(h, "Accept: application/json") != 0 ||
        gy_http_add_header(h, "Content-Type: application/json") != 0) {
        gy_http_dispose(h);
        return GY_ENOMEM;
    }
    return 0;
}

void gy_http_dispose(struct gy_http *h)
{
    if (h->multi != NULL)
        curl_multi_cleanup(h->multi);
    curl_slist_free_all(h->headers);
    h->multi = NULL;
    h->headers = NULL;
}

int gy_http_add_header(struct gy_http *h, const char *line)
{
    struct curl_slist *l = curl_slist_append(h->headers, line);

    if (l == NULL)
        return GY_ENOMEM;
    h->headers = l;
    return 0;
}

void gy_http_wakeup(struct gy_http *h)
{
    if (h->multi != NULL)
        curl_multi_wakeup(h->multi);
}

/* Appends to the request's buffer, keeping it under GY_HTTP_BODY_MAX. */
static bool append(struct gy_http_req *r, const char *p, size_t n)
{
    if (r->len + n > GY_HTTP_BODY_MAX)
        return false;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 16384;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (b == NULL)
            return false;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, p, n);
    r->len += n;
    r->body[r->len] = '\0';
    return true;
}

/* Hands complete lines to on_line and keeps the unfinished one. */
static bool split_lines(struct gy_http_req *r, bool final)
{
    size_t start = 0;

    for (size_t i = 0; i < r->len; i++) {
        if (r->body[i] != '\n')
            continue;
        size_t end = i;
        if (end > start && r->body[end - 1] == '\r')
            end--;
        if (end > start && r->on_line(r->arg, r->body + start, end - start) != 0)
            return false;
        start = i + 1;
    }
    if (final && start < r->len) {
        if (r->on_line(r->arg, r->body + start, r->len - start) != 0)
            return false;
        start = r->len;
    }
    memmove(r->body, r->body + start, r->len - start);
    r->len -= start;
    return true;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    struct gy_http_req *r = arg;
    size_t n = size * nmemb;

    if (r->on_line != NULL && r->status == 0) { /* an error answer is kept whole, for the log */
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
        r->streaming = r->status >= 200 && r->status < 300;
    }
    if (!append(r, p, n) || (r->streaming && !split_lines(r, false))) {
        r->aborted = true;
        return 0;
    }
    return n;
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    struct gy_http_req *r = arg;
    size_t n = size * nmemb, nl;

    if (r->capture == NULL || n <= (nl = strlen(r->capture)) || p[nl] != ':' || strncasecmp(p, r->capture, nl) != 0)
        return n;
    size_t i = nl + 1, end = n;
    while (i < end && (p[i] == ' ' || p[i] == '\t'))
        i++;
    while (end > i && isspace((unsigned char)p[end - 1]))
        end--;
    if (end - i < sizeof(r->captured)) {
        memcpy(r->captured, p + i, end - i);
        r->captured[end - i] = '\0';
    }
    return n;
}

int gy_http_start(struct gy_http *h, struct gy_http_req *r, const char *url, const char *post_body, long timeout_ms)
{
    CURL *e;

    if (r->easy == NULL && (r->easy = curl_easy_init()) == NULL)
        return GY_ENOMEM;
    e = r->easy;
    curl_easy_reset(e);
    r->http = h;
    r->status = 0;
    r->result = CURLE_OK;
    r->error[0] = '\0';
    r->captured[0] = '\0';
    r->len = 0;
    r->aborted = false;
    r->streaming = false;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "gyrus/" GY_VERSION);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (post_body != NULL)
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, post_body);
    else
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
        return GY_ENOMEM;
    r->active = true;
    return 0;
}

void gy_http_cancel(struct gy_http_req *r)
{
    if (r->active) {
        curl_multi_remove_handle(r->http->multi, r->easy);
        r->active = false;
    }
}

void gy_http_req_dispose(struct gy_http_req *r)
{
    gy_http_cancel(r);
    if (r->easy != NULL)
        curl_easy_cleanup(r->easy);
    free(r->body);
    r->easy = NULL;
    r->body = NULL;
    r->len = r->cap = 0;
}

static struct gy_http_req *take_done(struct gy_http *h)
{
    struct gy_http_req *r = NULL;
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        r->result = m->data.result;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
        curl_multi_remove_handle(h->multi, r->easy);
        r->active = false;
        if (r->result == CURLE_OK && r->streaming && !split_lines(r, true)) {
            r->aborted = true;
            r->result = CURLE_WRITE_ERROR;
        }
        return r;
    }
    return NULL;
}

struct gy_http_req *gy_http_run(struct gy_http *h, int timeout_ms)
{
    struct gy_http_req *r;
    int running;

    if (atomic_load(h->stopping))
        return NULL;
    curl_multi_perform(h->multi, &running);
    if ((r = take_done(h)) != NULL || atomic_load(h->stopping))
        return r;
    curl_multi_poll(h->multi, NULL, 0, timeout_ms, NULL);
    if (atomic_load(h->stopping))
        return NULL;
    curl_multi_perform(h->multi, &running);
    return take_done(h);
}

bool gy_http_sleep(struct gy_http *h, unsigned ms)
{
    uint64_t deadline = gy_now_ms() + ms;

    for (;;) {
        uint64_t now = gy_now_ms();
        if (atomic_load(h->stopping))
            return false;
        if (now >= deadline)
            return true;
        curl_multi_poll(h->multi, NULL, 0, (int)(deadline - now), NULL);
    }
}

bool gy_http_ok(const struct gy_http_req *r)
{
    return r->result == CURLE_OK && r->status >= 200 && r->status < 300;
}

void gy_http_describe(const struct gy_http_req *r, char *out, size_t outlen)
{
    char excerpt[121];
    size_t n = 0;

    if (r->result != CURLE_OK) {
        if (r->aborted)
            snprintf(out, outlen, "response too big or malformed");
        else
            snprintf(out, outlen, "%s", curl_easy_strerror(r->result)); /* r->error varies per try */
        return;
    }
    for (size_t i = 0; i < r->len && n < sizeof(excerpt) - 1; i++)
        excerpt[n++] = isprint((unsigned char)r->body[i]) ? r->body[i] : ' ';
    while (n > 0 && excerpt[n - 1] == ' ')
        n--;
    excerpt[n] = '\0';
    snprintf(out, outlen, "HTTP %ld%s%s", r->status, n ? ": " : "", excerpt);
}
