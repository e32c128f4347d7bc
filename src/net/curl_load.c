/*
 * libcurl, loaded on first use. The binary does not link it: Debian's libcurl brings GnuTLS,
 * p11-kit, Kerberos, LDAP, SSH and RTMP libraries whose loading and initialisation cost every
 * process about 2.5 MiB of resident memory, although a proxy serving a static mesh never makes
 * an HTTP call of its own. The control plane, the CLI and a proxy under `--control` load it the
 * first time they call one of the functions below; the rest of the code calls libcurl as usual.
 * If it cannot be loaded, calls fail with CURLE_FAILED_INIT (or NULL) and the reason is logged.
 */
#define CURL_DISABLE_TYPECHECK 1 /* the real prototypes, not curl.h's type-checking macros */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

#include "core/log.h"

#define CURL_LIB "libcurl.so.4"

/* Every libcurl function the code calls. */
#define CURL_FUNCTIONS(X) \
    X(curl_global_init) \
    X(curl_global_cleanup) \
    X(curl_easy_init) \
    X(curl_easy_cleanup) \
    X(curl_easy_reset) \
    X(curl_easy_perform) \
    X(curl_easy_setopt) \
    X(curl_easy_getinfo) \
    X(curl_easy_strerror) \
    X(curl_easy_escape) \
    X(curl_free) \
    X(curl_slist_append) \
    X(curl_slist_free_all) \
    X(curl_url) \
    X(curl_url_cleanup) \
    X(curl_url_set) \
    X(curl_url_get) \
    X(curl_multi_init) \
    X(curl_multi_cleanup) \
    X(curl_multi_add_handle) \
    X(curl_multi_remove_handle) \
    X(curl_multi_perform) \
    X(curl_multi_poll) \
    X(curl_multi_wakeup) \
    X(curl_multi_info_read)

/* The loaded functions, typed as curl.h declares them. */
static struct {
#define FIELD(name) __typeof__(&name) name;
    CURL_FUNCTIONS(FIELD)
#undef FIELD
} fn;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded; /* 1: every pointer is set */

static void load(void)
{
    void *h = dlopen(CURL_LIB, RTLD_NOW | RTLD_LOCAL);

    if (h == NULL) {
        gy_error("cannot load %s (the HTTP client of the control plane, the CLI and --control): %s", CURL_LIB,
                 dlerror());
        return;
    }
#define LOAD(name)                                                                   \
    if ((fn.name = (__typeof__(fn.name))dlsym(h, #name)) == NULL) {                   \
        gy_error("%s has no %s: libcurl 7.80 or newer is needed", CURL_LIB, #name); \
        return;                                                                      \
    }
    CURL_FUNCTIONS(LOAD)
#undef LOAD
    loaded = 1; /* the library stays loaded for the life of the process */
}

static int ready(void)
{
    pthread_once(&once, load);
    return loaded;
}

CURLcode curl_global_init(long flags)
{
    return ready() ? fn.curl_global_init(flags) : CURLE_FAILED_INIT;
}

void curl_global_cleanup(void)
{
    if (ready())
        fn.curl_global_cleanup();
}

CURL *curl_easy_init(void)
{
    return ready() ? fn.curl_easy_init() : NULL;
}

/* The functions below take handles that only exist once libcurl is loaded. */
void curl_easy_cleanup(CURL *c)
{
    if (c != NULL && ready())
        fn.curl_easy_cleanup(c);
}

void curl_easy_reset(CURL *c)
{
    if (ready())
        fn.curl_easy_reset(c);
}

CURLcode curl_easy_perform(CURL *c)
{
    return ready() ? fn.curl_easy_perform(c) : CURLE_FAILED_INIT;
}

/* One argument after the option, of the type its number range says (curl.h's CURLOPTTYPE_*). */
CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
    va_list ap;
    CURLcode rc;

    if (!ready())
        return CURLE_FAILED_INIT;
    va_start(ap, opt);
    if (opt < CURLOPTTYPE_OBJECTPOINT)
        rc = fn.curl_easy_setopt(c, opt, va_arg(ap, long));
    else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
        rc = fn.curl_easy_setopt(c, opt, va_arg(ap, void *));
    else if (opt < CURLOPTTYPE_OFF_T)
        rc = fn.curl_easy_setopt(c, opt, va_arg(ap, void (*)(void)));
    else if (opt < CURLOPTTYPE_BLOB)
        rc = fn.curl_easy_setopt(c, opt, va_arg(ap, curl_off_t));
    else
        rc = fn.curl_easy_setopt(c, opt, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

/* Every CURLINFO_* takes one pointer. */
CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
    va_list ap;
    CURLcode rc;

    if (!ready())
        return CURLE_FAILED_INIT;
    va_start(ap, info);
    rc = fn.curl_easy_getinfo(c, info, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

const char *curl_easy_strerror(CURLcode rc)
{
    return ready() ? fn.curl_easy_strerror(rc) : "libcurl could not be loaded";
}

char *curl_easy_escape(CURL *c, const char *s, int len)
{
    return ready() ? fn.curl_easy_escape(c, s, len) : NULL;
}

void curl_free(void *p)
{
    if (p != NULL && ready())
        fn.curl_free(p);
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
    return ready() ? fn.curl_slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l)
{
    if (l != NULL && ready())
        fn.curl_slist_free_all(l);
}

CURLU *curl_url(void)
{
    return ready() ? fn.curl_url() : NULL;
}

void curl_url_cleanup(CURLU *u)
{
    if (u != NULL && ready())
        fn.curl_url_cleanup(u);
}

CURLUcode curl_url_set(CURLU *u, CURLUPart part, const char *content, unsigned int flags)
{
    return ready() ? fn.curl_url_set(u, part, content, flags) : CURLUE_OUT_OF_MEMORY;
}

CURLUcode curl_url_get(CURLU *u, CURLUPart part, char **out, unsigned int flags)
{
    return ready() ? fn.curl_url_get(u, part, out, flags) : CURLUE_OUT_OF_MEMORY;
}

CURLM *curl_multi_init(void)
{
    return ready() ? fn.curl_multi_init() : NULL;
}

CURLMcode curl_multi_cleanup(CURLM *m)
{
    return ready() ? fn.curl_multi_cleanup(m) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *c)
{
    return ready() ? fn.curl_multi_add_handle(m, c) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *c)
{
    return ready() ? fn.curl_multi_remove_handle(m, c) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_perform(CURLM *m, int *running)
{
    return ready() ? fn.curl_multi_perform(m, running) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd extra[], unsigned int n, int timeout_ms, int *ret)
{
    return ready() ? fn.curl_multi_poll(m, extra, n, timeout_ms, ret) : CURLM_INTERNAL_ERROR;
}

CURLMcode curl_multi_wakeup(CURLM *m)
{
    return ready() ? fn.curl_multi_wakeup(m) : CURLM_INTERNAL_ERROR;
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
    return ready() ? fn.curl_multi_info_read(m, left) : NULL;
}
