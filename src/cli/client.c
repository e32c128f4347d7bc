#include "cli/client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/log.h"
#include "mesh/mesh.h"

#define MAX_ANSWER ((size_t)256 << 20)

static const char *control_ca; /* --control-ca, for the commands that call the control plane */
static const char *api_key_file; /* --api-key-file */

/* The API key: the first line of --api-key-file that is not blank or a # comment, else
 * $GYRUS_API_KEY. "" when there is none. */
static void load_key(struct gy_client *c)
{
    char line[600] = "";
    const char *key = NULL;

    if (api_key_file != NULL) {
        FILE *f = fopen(api_key_file, "r");
        if (f == NULL)
            gy_fatal("--api-key-file: %s: %s", api_key_file, strerror(errno));
        while (key == NULL && fgets(line, sizeof(line), f) != NULL) {
            char *k = line + strspn(line, " \t");
            k[strcspn(k, "\r\n")] = '\0';
            while (*k && isspace((unsigned char)k[strlen(k) - 1]))
                k[strlen(k) - 1] = '\0';
            if (*k && *k != '#')
                key = k;
        }
        fclose(f);
        if (key == NULL)
            gy_fatal("--api-key-file: %s: no key in it", api_key_file);
    } else {
        key = getenv("GYRUS_API_KEY");
    }
    if (key == NULL || key[0] == '\0')
        return;
    for (const char *p = key; *p; p++)
        if (!isgraph((unsigned char)*p))
            gy_fatal("API key: want one word of printable characters");
    if ((size_t)snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %s", key) >= sizeof(c->auth))
        gy_fatal("API key: longer than 512 characters");
}


void gy_client_init(struct gy_client *c, const char *url)
{
    const char *env = getenv("GYRUS_CONTROL");

    memset(c, 0, sizeof(*c));
    if (url == NULL)
        url = env != NULL && env[0] != '\0' ? env : GY_CONTROL_DEFAULT;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        gy_fatal("--control: want http://HOST:PORT, got \"%s\"", url);
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    if (n >= sizeof(c->base))
        gy_fatal("--control: URL too long");
    memcpy(c->base, url, n);
    c->base[n] = '\0';
    c->timeout_ms = 60000;
    load_key(c);
    const char *ca = control_ca != NULL ? control_ca : getenv("GYRUS_CONTROL_CA");
    if (ca != NULL && ca[0] != '\0') {
        if (strncmp(c->base, "https://", 8) != 0)
            gy_fatal("--control-ca is for an https:// control plane, not %s", c->base);
        if (strlen(ca) >= sizeof(c->ca))
            gy_fatal("--control-ca: path too long");
        memcpy(c->ca, ca, strlen(ca) + 1);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (c->curl = curl_easy_init()) == NULL)
        gy_fatal("cannot initialise libcurl");
}

void gy_client_dispose(struct gy_client *c)
{
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    c->curl = NULL;
    curl_global_cleanup();
}

int gy_client_call(struct gy_client *c, const char *method, const char *path, const char *body, size_t len,
                   long *status, json_t **json, char *err, size_t errlen)
{
    CURL *h = c->curl;
    struct gy_bytes a = { .max = MAX_ANSWER };
    struct curl_slist *hdrs = NULL;
    char url[4096], cerr[CURL_ERROR_SIZE] = "";
    CURLcode rc;

    *json = NULL;
    *status = 0;
    snprintf(url, sizeof(url), "%s%s", c->base, path);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, gy_bytes_curl_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (c->ca[0] != '\0')
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < 5000 ? c->timeout_ms : 5000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "gyrus/" GY_VERSION);
    hdrs = curl_slist_append(hdrs, "Expect:");
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (c->auth[0] != '\0')
        hdrs = curl_slist_append(hdrs, c->auth);
    if (body != NULL) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    rc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "cannot reach the control plane at %s: %s", c->base,
                 a.too_big ? "answer too large" : cerr[0] ? cerr : curl_easy_strerror(rc));
        free(a.p);
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (a.len > 0)
        *json = json_loadb(a.p, a.len, 0, NULL);
    free(a.p);
    return 0;
}

const char *gy_client_error_message(const json_t *json, long status, char *buf, size_t len)
{
    const char *m = json_string_value(json_object_get(json_object_get(json, "error"), "message"));

    if (m != NULL)
        return m;
    snprintf(buf, len, "the control plane answered HTTP %ld", status);
    return buf;
}

json_t *gy_client_result(struct gy_client *c, const char *method, const char *path, const char *body, size_t len)
{
    char err[1024], buf[128];
    long status;
    json_t *j, *res;

    if (gy_client_call(c, method, path, body, len, &status, &j, err, sizeof(err)) != 0)
        gy_fatal("%s", err);
    if (status < 200 || status > 299) {
        snprintf(err, sizeof(err), "%s", gy_client_error_message(j, status, buf, sizeof(buf)));
        json_decref(j);
        gy_fatal("%s", err);
    }
    res = json_incref(json_object_get(j, "result"));
    json_decref(j);
    return res != NULL ? res : json_null();
}

char *gy_client_escape(struct gy_client *c, const char *s)
{
    char *e = curl_easy_escape(c->curl, s, 0);
    char *out = e ? strdup(e) : NULL;

    curl_free(e);
    if (out == NULL)
        gy_fatal("out of memory");
    return out;
}

bool gy_client_flag(struct gy_flags *f, const char **url)
{
    if (gy_flag_is(f, NULL, "--control-ca")) {
        control_ca = gy_flag_value(f);
        return true;
    }
    if (gy_flag_is(f, NULL, "--api-key-file")) {
        api_key_file = gy_flag_value(f);
        return true;
    }
    if (!gy_flag_is(f, NULL, "--control"))
        return false;
    *url = gy_flag_value(f);
    return true;
}

const char *gy_cli_kind(const char *arg)
{
    static const char *const aliases[][2] = {
        { "zones", "zone" },           { "proxies", "proxy" },          { "listeners", "listener" },
        { "domains", "domain" },       { "routes", "route" },           { "clusters", "cluster" },
        { "shared-rules", "shared_rules" }, { "sharedrules", "shared_rules" }, { "shared_rule", "shared_rules" },
    };

    for (size_t i = 0; i < gy_mesh_nkinds; i++)
        if (strcmp(arg, gy_mesh_kinds[i]) == 0)
            return gy_mesh_kinds[i];
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strcmp(arg, aliases[i][0]) == 0)
            return aliases[i][1];
    gy_fatal("unknown kind \"%s\" (zone, proxy, listener, domain, route, shared_rules, cluster)", arg);
}
