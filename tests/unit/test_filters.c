/* Filters gyrus.fault and gyrus.ratelimit: configs (good, and bad with their exact one-line
 * errors), then the decision on_request takes for a request with a fixed random number and time. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "filter_fixtures.h"
#include "proxy/filter.h"

extern const struct gy_filter_ops gy_filter_fault, gy_filter_ratelimit;

#define FI 0x200u

#define MAXH 8

struct req {
    struct gy_header h[MAXH];
    struct gy_filter_call c;
};

/* A request with headers "name", "value", ... (NULL-terminated), random and now fixed. */
static struct gy_filter_call *req(struct req *r, uint64_t random, uint64_t now, ...)
{
    va_list ap;
    const char *name;
    size_t n = 0;

    memset(r, 0, sizeof(*r));
    va_start(ap, now);
    while ((name = va_arg(ap, const char *)) != NULL && n < MAXH) {
        const char *value = va_arg(ap, const char *);
        r->h[n].name = gy_slice_cstr(name);
        r->h[n++].value = gy_slice_cstr(value);
    }
    va_end(ap);
    r->c.method = GY_SLICE_LIT("GET");
    r->c.path = GY_SLICE_LIT("/");
    r->c.headers = r->h;
    r->c.nheaders = n;
    r->c.peer_ip = "127.0.0.1";
    r->c.random = random;
    r->c.now_ms = now;
    r->c.reply_grpc_status = -1;
    return &r->c;
}

/* Random numbers whose abort draw (low half) and delay draw (high half) are a and d, in ppm. */
static uint64_t draws(uint32_t a, uint32_t d)
{
    return (uint64_t)d << 32 | a;
}

/* ---- gyrus.fault: configs ---- */

static void test_fault_config_good(void **state)
{
    static const char *const good[] = {
        NULL,
        "{}",
        "null",
        "{'abort':{'http_status':503}}",
        "{'abort':{'grpc_status':14,'percentage':12.5}}",
        "{'abort':{'http_status':503,'percentage':{'numerator':25}}}",
        "{'abort':{'http_status':503,'percentage':{'numerator':25,'denominator':'TEN_THOUSAND'}}}",
        "{'delay':{'fixed_delay':'1.5s','percentage':50}}",
        "{'delay':{'fixed_delay_ms':200},'abort':{'http_status':500,'percentage':0}}",
        "{'headers':[{'name':'x-fault','exact_match':''},{'name':'x-on','present_match':true},"
        "  {'name':'x-p','prefix_match':'a'},{'name':'x-s','suffix_match':'z','invert_match':true}]}",
        "{'max_active_faults':100,'header_faults':false}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        gy_filter_fault.destroy(compile_ok(&gy_filter_fault, good[i]));
}

static void test_fault_config_bad(void **state)
{
    static const char *const bad[][2] = {
        { "5", "must be an object, got 5" },
        { "{'bogus':1}", "unknown field \"bogus\"" },
        { "{'abort':{'http_status':600}}", "abort.http_status: must be between 200 and 599, got 600" },
        { "{'abort':{'http_status':'503'}}", "abort.http_status: must be an integer, got \"503\"" },
        { "{'abort':{'grpc_status':17}}", "abort.grpc_status: must be between 0 and 16, got 17" },
        { "{'abort':{'percentage':10}}", "abort: needs http_status or grpc_status" },
        { "{'abort':{'http_status':503,'grpc_status':14}}", "abort: http_status and grpc_status exclude each other" },
        { "{'abort':{'http_status':503,'percentage':101}}",
          "abort.percentage: must be a percentage between 0 and 100, got 101" },
        { "{'abort':{'http_status':503,'percentage':-0.5}}",
          "abort.percentage: must be a percentage between 0 and 100, got -0.5" },
        { "{'abort':{'http_status':503,'percentage':'10%'}}",
          "abort.percentage: must be a percentage between 0 and 100, got \"10%\"" },
        { "{'abort':{'http_status':503,'percentage':{'numerator':5,'denominator':'PERCENT'}}}",
          "abort.percentage.denominator: must be one of HUNDRED, TEN_THOUSAND, MILLION, got \"PERCENT\"" },
        { "{'abort':{'http_status':503,'percentage':{'numerator':101}}}",
          "abort.percentage.numerator: must be an integer between 0 and the denominator, got 101" },
        { "{'abort':{'http_status':503,'percentage':{'numerator':922337203685477581}}}",
          "abort.percentage.numerator: must be an integer between 0 and the denominator, got 922337203685477581" },
        { "{'abort':{'http_status':503,'percentage':{}}}", "abort.percentage.numerator: required" },
        { "{'abort':{'http_status':503,'percentage':{'num':1}}}",
          "abort.percentage: unknown field \"num\" (a percentage object has numerator and denominator)" },
        { "{'abort':503}", "abort: must be an object, got 503" },
        { "{'delay':{'fixed_delay':'soon'}}",
          "delay.fixed_delay: must be a duration such as \"250ms\", \"5s\" or \"1m30s\", got \"soon\"" },
        { "{'delay':{'fixed_delay':'0s'}}", "delay.fixed_delay: must be at least 1ms, got \"0s\"" },
        { "{'delay':{'fixed_delay':'2h'}}", "delay.fixed_delay: must be at most 3600000ms, got \"2h\"" },
        { "{'delay':{'fixed_delay_ms':0}}", "delay.fixed_delay_ms: must be between 1 and 3600000, got 0" },
        { "{'delay':{'percentage':5}}", "delay: needs fixed_delay or fixed_delay_ms" },
        { "{'delay':{'fixed_delay':'1s','fixed_delay_ms':5}}", "delay: fixed_delay and fixed_delay_ms exclude each other" },
        { "{'headers':'x-fault'}", "headers: must be a list of header matchers, got \"x-fault\"" },
        { "{'headers':[{'exact_match':'1'}]}", "headers[0].name: required" },
        { "{'headers':[{'name':'a','present_match':true},{'name':'x y'}]}",
          "headers[1].name: must be a header name, got \"x y\"" },
        { "{'headers':[{'name':''}]}", "headers[0].name: must not be empty" },
        { "{'headers':[{'name':'x','exact_match':'1','prefix_match':'a'}]}",
          "headers[0]: exact_match, prefix_match, suffix_match and present_match exclude each other" },
        { "{'headers':[{'name':'x','present_match':'yes'}]}",
          "headers[0].present_match: must be true or false, got \"yes\"" },
        { "{'headers':[{'name':'x','regex_match':'.*'}]}", "headers[0]: unknown field \"regex_match\"" },
        { "{'max_active_faults':0}", "max_active_faults: must be between 1 and 10000, got 0" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(&gy_filter_fault, bad[i][0], bad[i][1]);
}

/* ---- gyrus.fault: decisions ---- */

static void test_fault_abort_percentages(void **state)
{
    struct req r;
    void *f10 = compile_ok(&gy_filter_fault, "{'abort':{'http_status':503,'percentage':10}}");
    void *f0 = compile_ok(&gy_filter_fault, "{'abort':{'http_status':503,'percentage':0}}");
    void *f100 = compile_ok(&gy_filter_fault, "{'abort':{'http_status':502}}");
    void *fhalf = compile_ok(&gy_filter_fault, "{'abort':{'http_status':503,'percentage':0.5}}");
    void *fmil = compile_ok(&gy_filter_fault,
                            "{'abort':{'http_status':503,'percentage':{'numerator':3,'denominator':'MILLION'}}}");
    struct gy_filter_call *c;
    (void)state;

    c = req(&r, draws(99999, 0), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f10, NULL), GY_FILTER_STOP);
    assert_int_equal(c->reply_status, 503);
    assert_int_equal(c->reply_grpc_status, -1);
    assert_string_equal(c->reply_body, "fault filter abort");
    assert_int_equal(c->flags, FI);
    c = req(&r, draws(100000, 0), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f10, NULL), GY_FILTER_CONTINUE);
    assert_int_equal(c->flags, 0);
    assert_int_equal(c->reply_status, 0);
    /* the draw is the low half modulo a million */
    c = req(&r, draws(1000000 + 5, 0), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f10, NULL), GY_FILTER_STOP);

    c = req(&r, 0, 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f0, NULL), GY_FILTER_CONTINUE);
    c = req(&r, draws(999999, 999999), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f100, NULL), GY_FILTER_STOP);
    assert_int_equal(c->reply_status, 502);

    c = req(&r, draws(4999, 0), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, fhalf, NULL), GY_FILTER_STOP);
    c = req(&r, draws(5000, 0), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, fhalf, NULL), GY_FILTER_CONTINUE);
    c = req(&r, draws(2, 0), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, fmil, NULL), GY_FILTER_STOP);
    c = req(&r, draws(3, 0), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, fmil, NULL), GY_FILTER_CONTINUE);

    gy_filter_fault.destroy(f10);
    gy_filter_fault.destroy(f0);
    gy_filter_fault.destroy(f100);
    gy_filter_fault.destroy(fhalf);
    gy_filter_fault.destroy(fmil);
}

static void test_fault_grpc_abort(void **state)
{
    struct req r;
    void *f = compile_ok(&gy_filter_fault, "{'abort':{'grpc_status':14}}");
    struct gy_filter_call *c = req(&r, 0, 0, NULL);
    (void)state;

    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_STOP);
    assert_int_equal(c->reply_status, 200);
    assert_int_equal(c->reply_grpc_status, 14);
    assert_string_equal(c->reply_body, "fault filter abort");
    assert_int_equal(c->flags, FI);
    gy_filter_fault.destroy(f);
}

static void test_fault_delay(void **state)
{
    struct req r;
    void *f = compile_ok(&gy_filter_fault, "{'delay':{'fixed_delay':'1.5s','percentage':50}}");
    void *fms = compile_ok(&gy_filter_fault, "{'delay':{'fixed_delay_ms':200}}");
    void *both = compile_ok(&gy_filter_fault,
                            "{'delay':{'fixed_delay_ms':200},'abort':{'http_status':500,'percentage':50}}");
    struct gy_filter_call *c;
    (void)state;

    c = req(&r, draws(0, 499999), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_PAUSE);
    assert_int_equal(c->delay_ms, 1500);
    assert_int_equal(c->flags, FI);
    assert_int_equal(c->reply_status, 0);
    c = req(&r, draws(0, 500000), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    assert_int_equal(c->delay_ms, 0);
    c = req(&r, draws(123, 999999), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, fms, NULL), GY_FILTER_PAUSE);
    assert_int_equal(c->delay_ms, 200);

    /* both hit: the abort wins, without a delay; abort misses: the delay */
    c = req(&r, draws(0, 0), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, both, NULL), GY_FILTER_STOP);
    assert_int_equal(c->reply_status, 500);
    assert_int_equal(c->delay_ms, 0);
    c = req(&r, draws(600000, 0), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, both, NULL), GY_FILTER_PAUSE);
    assert_int_equal(c->delay_ms, 200);

    gy_filter_fault.destroy(f);
    gy_filter_fault.destroy(fms);
    gy_filter_fault.destroy(both);
}

static void test_fault_header_gate(void **state)
{
    struct req r;
    void *f = compile_ok(&gy_filter_fault,
                         "{'abort':{'http_status':503},"
                         " 'headers':[{'name':'x-fault','exact_match':'1'},{'name':'x-user','prefix_match':'test-'},"
                         "            {'name':'x-env','suffix_match':'-prod','invert_match':true},"
                         "            {'name':'x-skip','present_match':false}]}");
    void *present = compile_ok(&gy_filter_fault, "{'abort':{'http_status':503},'headers':[{'name':'x-on'}]}");
    struct gy_filter_call *c;
    (void)state;

    c = req(&r, 0, 0, "X-Fault", "1", "x-user", "test-7", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_STOP);
    c = req(&r, 0, 0, "x-fault", "1", "x-user", "test-7", "x-env", "eu-dev", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_STOP);
    c = req(&r, 0, 0, "x-fault", "1", "x-user", "test-7", "x-env", "eu-prod", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    c = req(&r, 0, 0, "x-fault", "1", "x-user", "test-7", "x-skip", "", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    c = req(&r, 0, 0, "x-fault", "2", "x-user", "test-7", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    c = req(&r, 0, 0, "x-fault", "1", "x-user", "prod-7", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    c = req(&r, 0, 0, "x-user", "test-7", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    assert_int_equal(c->flags, 0);

    c = req(&r, 0, 0, "x-on", "", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, present, NULL), GY_FILTER_STOP);
    c = req(&r, 0, 0, "x-off", "", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, present, NULL), GY_FILTER_CONTINUE);
    /* the gate applies to header-controlled faults too */
    c = req(&r, 0, 0, "x-envoy-fault-abort-request", "418", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, present, NULL), GY_FILTER_CONTINUE);

    gy_filter_fault.destroy(f);
    gy_filter_fault.destroy(present);
}

static void test_fault_envoy_headers(void **state)
{
    struct req r;
    void *f = compile_ok(&gy_filter_fault, NULL);
    void *conf = compile_ok(&gy_filter_fault, "{'abort':{'http_status':503,'percentage':0}}");
    void *off = compile_ok(&gy_filter_fault, "{'header_faults':false}");
    struct gy_filter_call *c;
    (void)state;

    c = req(&r, draws(999999, 999999), 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    c = req(&r, draws(999999, 0), 0, "x-envoy-fault-abort-request", "418", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_STOP);
    assert_int_equal(c->reply_status, 418);
    assert_int_equal(c->flags, FI);
    /* the header replaces the configured abort, percentage and all */
    c = req(&r, draws(999999, 0), 0, "x-envoy-fault-abort-request", "504", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, conf, NULL), GY_FILTER_STOP);
    assert_int_equal(c->reply_status, 504);
    c = req(&r, 0, 0, "x-envoy-fault-abort-request", "5O3", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    c = req(&r, 0, 0, "x-envoy-fault-abort-request", "700", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);

    c = req(&r, draws(249999, 0), 0, "x-envoy-fault-abort-request", "503", "x-envoy-fault-abort-request-percentage",
            "25", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_STOP);
    c = req(&r, draws(250000, 0), 0, "x-envoy-fault-abort-request", "503", "x-envoy-fault-abort-request-percentage",
            "25", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    c = req(&r, draws(1249, 0), 0, "x-envoy-fault-abort-request", "503", "x-envoy-fault-abort-request-percentage",
            "0.125", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_STOP);
    c = req(&r, draws(1250, 0), 0, "x-envoy-fault-abort-request", "503", "x-envoy-fault-abort-request-percentage",
            "0.125", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    c = req(&r, draws(0, 0), 0, "x-envoy-fault-abort-request", "503", "x-envoy-fault-abort-request-percentage", "0",
            NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    /* a bad percentage counts as absent: 100 */
    c = req(&r, draws(999999, 0), 0, "x-envoy-fault-abort-request", "503", "x-envoy-fault-abort-request-percentage",
            "lots", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_STOP);

    c = req(&r, 0, 0, "x-envoy-fault-abort-grpc-request", "14", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_STOP);
    assert_int_equal(c->reply_status, 200);
    assert_int_equal(c->reply_grpc_status, 14);

    c = req(&r, draws(0, 999999), 0, "x-envoy-fault-delay-request", "200", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_PAUSE);
    assert_int_equal(c->delay_ms, 200);
    c = req(&r, draws(0, 500000), 0, "x-envoy-fault-delay-request", "200", "x-envoy-fault-delay-request-percentage",
            "50", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    c = req(&r, 0, 0, "x-envoy-fault-delay-request", "0", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);

    c = req(&r, 0, 0, "x-envoy-fault-abort-request", "503", "x-envoy-fault-delay-request", "100", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, off, NULL), GY_FILTER_CONTINUE);

    gy_filter_fault.destroy(f);
    gy_filter_fault.destroy(conf);
    gy_filter_fault.destroy(off);
}

static void test_fault_route_override(void **state)
{
    struct req r;
    void *l = compile_ok(&gy_filter_fault, "{'abort':{'http_status':503}}");
    void *rt = compile_ok(&gy_filter_fault, "{'abort':{'http_status':500}}");
    void *none = compile_ok(&gy_filter_fault, "{}");
    struct gy_filter_call *c;
    (void)state;

    c = req(&r, 0, 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, l, rt), GY_FILTER_STOP);
    assert_int_equal(c->reply_status, 500);
    c = req(&r, 0, 0, NULL);
    assert_int_equal(gy_filter_fault.on_request(c, l, none), GY_FILTER_CONTINUE);
    gy_filter_fault.destroy(l);
    gy_filter_fault.destroy(rt);
    gy_filter_fault.destroy(none);
}

static void test_fault_max_active(void **state)
{
    struct req r;
    void *f = compile_ok(&gy_filter_fault, "{'max_active_faults':2}");
    struct gy_filter_call *c;
    (void)state;

    c = req(&r, 0, 1000, "x-envoy-fault-delay-request", "1000", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_PAUSE);
    c = req(&r, 12345, 1200, "x-envoy-fault-delay-request", "300", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_PAUSE);
    /* both slots held: no fault, not even an abort */
    c = req(&r, 777, 1400, "x-envoy-fault-delay-request", "10", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    assert_int_equal(c->flags, 0);
    c = req(&r, 0, 1400, "x-envoy-fault-abort-request", "503", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    /* the 300 ms delay ended at 1500 */
    c = req(&r, 0, 1500, "x-envoy-fault-abort-request", "503", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_STOP);
    c = req(&r, 0, 1500, "x-envoy-fault-delay-request", "100", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_PAUSE);
    c = req(&r, 0, 1599, "x-envoy-fault-delay-request", "100", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_CONTINUE);
    c = req(&r, 0, 2000, "x-envoy-fault-delay-request", "100", NULL);
    assert_int_equal(gy_filter_fault.on_request(c, f, NULL), GY_FILTER_PAUSE);
    gy_filter_fault.destroy(f);
}

/* ---- gyrus.ratelimit: configs ---- */

static void test_ratelimit_config_good(void **state)
{
    static const char *const good[] = {
        "{'max_tokens':10,'fill_interval':'1s'}",
        "{'max_tokens':1,'tokens_per_fill':1,'fill_interval':1,'key':'route','status':503}",
        "{'max_tokens':10,'fill_interval':'250ms','key':'source_ip'}",
        "{'max_tokens':10,'fill_interval':'1m','key':'header:x-api-key'}",
        "{'stat_prefix':'http_local_rate_limiter','token_bucket':{'max_tokens':5,'tokens_per_fill':5,'fill_interval':'1s'}}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        gy_filter_ratelimit.destroy(compile_ok(&gy_filter_ratelimit, good[i]));
}

static void test_ratelimit_config_bad(void **state)
{
    static const char *const bad[][2] = {
        { NULL, "needs a config: max_tokens and fill_interval are required" },
        { "[]", "must be an object, got a list" },
        { "{}", "max_tokens: required" },
        { "{'max_tokens':5}", "fill_interval: required" },
        { "{'fill_interval':'1s'}", "max_tokens: required" },
        { "{'max_tokens':0,'fill_interval':'1s'}", "max_tokens: must be between 1 and 1000000000, got 0" },
        { "{'max_tokens':5.5,'fill_interval':'1s'}", "max_tokens: must be an integer, got 5.5" },
        { "{'max_tokens':5,'tokens_per_fill':0,'fill_interval':'1s'}",
          "tokens_per_fill: must be between 1 and 1000000000, got 0" },
        { "{'max_tokens':5,'fill_interval':'0s'}", "fill_interval: must be at least 1ms, got \"0s\"" },
        { "{'max_tokens':5,'fill_interval':'soon'}",
          "fill_interval: must be a duration such as \"250ms\", \"5s\" or \"1m30s\", got \"soon\"" },
        { "{'max_tokens':5,'fill_interval':-1}",
          "fill_interval: must be a duration such as \"250ms\", \"5s\" or \"1m30s\", got -1" },
        { "{'max_tokens':5,'fill_interval':'1s','key':'cookie:x'}",
          "key: must be route, source_ip, identity or header:NAME, got \"cookie:x\"" },
        { "{'max_tokens':5,'fill_interval':'1s','key':'header:'}",
          "key: must be route, source_ip, identity or header:NAME, got \"header:\"" },
        { "{'max_tokens':5,'fill_interval':'1s','key':''}", "key: must not be empty" },
        { "{'max_tokens':5,'fill_interval':'1s','status':200}", "status: must be between 400 and 599, got 200" },
        { "{'max_tokens':5,'fill_interval':'1s','burst':5}", "unknown field \"burst\"" },
        { "{'token_bucket':{'max_tokens':5,'fill_interval':'1x'}}",
          "token_bucket.fill_interval: must be a duration such as \"250ms\", \"5s\" or \"1m30s\", got \"1x\"" },
        { "{'token_bucket':{'max_tokens':5}}", "fill_interval: required" },
        { "{'max_tokens':5,'token_bucket':{'max_tokens':5,'fill_interval':'1s'}}",
          "token_bucket: excludes max_tokens, tokens_per_fill and fill_interval beside it" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(&gy_filter_ratelimit, bad[i][0], bad[i][1]);
}

/* ---- gyrus.ratelimit: decisions ---- */

static enum gy_filter_result rl(void *conf, void *route_conf, uint64_t now, struct req *r, const char *hname,
                                const char *hvalue)
{
    struct gy_filter_call *c = req(r, 0, now, hname, hvalue, NULL);
    return gy_filter_ratelimit.on_request(c, conf, route_conf);
}

static int count_allowed(void *conf, void *route_conf, uint64_t now, int n, const char *hname, const char *hvalue)
{
    struct req r;
    int ok = 0;

    for (int i = 0; i < n; i++)
        ok += rl(conf, route_conf, now, &r, hname, hvalue) == GY_FILTER_CONTINUE;
    return ok;
}

static void test_ratelimit_burst_and_refill(void **state)
{
    struct req r;
    void *b = compile_ok(&gy_filter_ratelimit, "{'max_tokens':5,'fill_interval':'10s'}");
    (void)state;

    assert_int_equal(count_allowed(b, NULL, 1000, 5, NULL, NULL), 5);
    assert_int_equal(rl(b, NULL, 1000, &r, NULL, NULL), GY_FILTER_STOP);
    assert_int_equal(r.c.reply_status, 429);
    assert_int_equal(r.c.reply_grpc_status, -1);
    assert_string_equal(r.c.reply_extra, "retry-after: 10\r\nx-gyrus-ratelimited: true\r\n");
    assert_string_equal(r.c.reply_body, "local_rate_limited");
    assert_int_equal(r.c.flags, FI);
    assert_int_equal(rl(b, NULL, 3500, &r, NULL, NULL), GY_FILTER_STOP);
    assert_string_equal(r.c.reply_extra, "retry-after: 8\r\nx-gyrus-ratelimited: true\r\n");
    assert_int_equal(rl(b, NULL, 10999, &r, NULL, NULL), GY_FILTER_STOP);
    assert_string_equal(r.c.reply_extra, "retry-after: 1\r\nx-gyrus-ratelimited: true\r\n");
    assert_int_equal(count_allowed(b, NULL, 11000, 20, NULL, NULL), 5);
    /* many intervals later: full, never more */
    assert_int_equal(count_allowed(b, NULL, 1000000, 20, NULL, NULL), 5);
    gy_filter_ratelimit.destroy(b);
}

static void test_ratelimit_tokens_per_fill(void **state)
{
    void *b = compile_ok(&gy_filter_ratelimit, "{'max_tokens':5,'tokens_per_fill':2,'fill_interval':'100ms','status':503}");
    struct req r;
    (void)state;

    assert_int_equal(count_allowed(b, NULL, 0, 10, NULL, NULL), 5);
    assert_int_equal(count_allowed(b, NULL, 99, 10, NULL, NULL), 0);
    assert_int_equal(count_allowed(b, NULL, 100, 10, NULL, NULL), 2);
    assert_int_equal(count_allowed(b, NULL, 250, 10, NULL, NULL), 2);
    assert_int_equal(count_allowed(b, NULL, 299, 10, NULL, NULL), 0);
    assert_int_equal(count_allowed(b, NULL, 450, 10, NULL, NULL), 4); /* fills at 300 and 400 */
    assert_int_equal(rl(b, NULL, 450, &r, NULL, NULL), GY_FILTER_STOP);
    assert_int_equal(r.c.reply_status, 503);
    assert_string_equal(r.c.reply_extra, "retry-after: 1\r\nx-gyrus-ratelimited: true\r\n");
    gy_filter_ratelimit.destroy(b);
}

static void test_ratelimit_keys(void **state)
{
    void *h = compile_ok(&gy_filter_ratelimit, "{'max_tokens':2,'fill_interval':'1s','key':'header:x-api-key'}");
    void *ip = compile_ok(&gy_filter_ratelimit, "{'max_tokens':3,'fill_interval':'1s','key':'source_ip'}");
    struct req r;
    struct gy_filter_call *c;
    (void)state;

    assert_int_equal(count_allowed(h, NULL, 0, 5, "x-api-key", "alice"), 2);
    assert_int_equal(count_allowed(h, NULL, 0, 5, "X-API-Key", "bob"), 2);
    assert_int_equal(count_allowed(h, NULL, 0, 5, "x-api-key", "alice"), 0);
    /* without the header, requests share one bucket */
    assert_int_equal(count_allowed(h, NULL, 0, 5, "x-other", "1"), 2);
    assert_int_equal(count_allowed(h, NULL, 0, 5, NULL, NULL), 0);
    assert_int_equal(count_allowed(h, NULL, 1000, 5, "x-api-key", "bob"), 2);

    for (int i = 0; i < 5; i++) {
        c = req(&r, 0, 0, NULL);
        c->peer_ip = i < 4 ? "10.0.0.1" : "10.0.0.2";
        assert_int_equal(gy_filter_ratelimit.on_request(c, ip, NULL), i < 3 || i == 4 ? GY_FILTER_CONTINUE : GY_FILTER_STOP);
    }
    gy_filter_ratelimit.destroy(h);
    gy_filter_ratelimit.destroy(ip);
}

/* key identity: one bucket per verified certificate identity, else per address */
static void test_ratelimit_identity_key(void **state)
{
    void *id = compile_ok(&gy_filter_ratelimit, "{'max_tokens':2,'fill_interval':'1h','key':'identity'}");
    static const struct gy_tls_peer web = { true, "CN=web", "spiffe://td/z/web" }, dn = { true, "CN=batch", NULL };
    static const struct gy_tls_peer forged = { false, "CN=web", "spiffe://td/z/web" };
    static const struct {
        const struct gy_tls_peer *peer;
        const char *ip;
        bool allowed;
    } seq[] = {
        { &web, "10.0.0.1", true },  { &web, "10.0.0.2", true },    { &web, "10.0.0.3", false }, /* same ID */
        { &dn, "10.0.0.1", true },   { &dn, "10.0.0.1", true },     { &dn, "10.0.0.9", false },  /* same DN */
        { NULL, "10.0.0.1", true },  { &forged, "10.0.0.1", true }, { NULL, "10.0.0.1", false }, /* by address */
    };
    struct req r;
    (void)state;

    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        struct gy_filter_call *c = req(&r, 0, 0, NULL);
        c->peer = seq[i].peer;
        c->peer_ip = seq[i].ip;
        if (gy_filter_ratelimit.on_request(c, id, NULL) != (seq[i].allowed ? GY_FILTER_CONTINUE : GY_FILTER_STOP))
            fail_msg("request %zu: expected %s", i, seq[i].allowed ? "allowed" : "limited");
    }
    gy_filter_ratelimit.destroy(id);
}

static void test_ratelimit_long_values_and_eviction(void **state)
{
    void *h = compile_ok(&gy_filter_ratelimit, "{'max_tokens':1,'fill_interval':'1h','key':'header:k'}");
    char a[300], b[300], v[32];
    (void)state;

    /* values longer than what is kept of them, differing only at the end */
    memset(a, 'x', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(a));
    b[sizeof(b) - 2] = 'y';
    assert_int_equal(count_allowed(h, NULL, 0, 3, "k", a), 1);
    assert_int_equal(count_allowed(h, NULL, 0, 3, "k", b), 1);

    /* 20,000 more values: "first" is evicted and comes back with a full bucket */
    assert_int_equal(count_allowed(h, NULL, 0, 3, "k", "first"), 1);
    for (int i = 0; i < 20000; i++) {
        snprintf(v, sizeof(v), "v%d", i);
        assert_int_equal(count_allowed(h, NULL, 0, 1, "k", v), 1);
    }
    assert_int_equal(count_allowed(h, NULL, 0, 3, "k", "first"), 1);
    /* the most recent values are still there, and empty */
    assert_int_equal(count_allowed(h, NULL, 0, 1, "k", "v19999"), 0);
    gy_filter_ratelimit.destroy(h);
}

static void test_ratelimit_grpc_and_route_override(void **state)
{
    void *l = compile_ok(&gy_filter_ratelimit, "{'max_tokens':2,'fill_interval':'1s'}");
    void *rt = compile_ok(&gy_filter_ratelimit, "{'max_tokens':3,'fill_interval':'1s'}");
    struct req r;
    struct gy_filter_call *c;
    (void)state;

    assert_int_equal(count_allowed(l, NULL, 0, 5, NULL, NULL), 2);
    assert_int_equal(count_allowed(l, rt, 0, 5, NULL, NULL), 3);
    c = req(&r, 0, 0, "content-type", "application/grpc", NULL);
    c->grpc = true;
    assert_int_equal(gy_filter_ratelimit.on_request(c, l, NULL), GY_FILTER_STOP);
    assert_int_equal(c->reply_status, 200);
    assert_int_equal(c->reply_grpc_status, 8);
    assert_int_equal(c->flags, FI);
    gy_filter_ratelimit.destroy(l);
    gy_filter_ratelimit.destroy(rt);
}

struct hammer {
    void *conf;
    const char *key;
    int allowed;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    struct req r;

    for (int i = 0; i < 5000; i++) {
        struct gy_filter_call *c = req(&r, 0, 5, "x-k", h->key, NULL);
        h->allowed += gy_filter_ratelimit.on_request(c, h->conf, NULL) == GY_FILTER_CONTINUE;
    }
    return NULL;
}

/* Workers share buckets: 8 threads × 5,000 requests at one instant get exactly max_tokens. */
static void test_ratelimit_shared_by_threads(void **state)
{
    void *one = compile_ok(&gy_filter_ratelimit, "{'max_tokens':1000,'fill_interval':'1h'}");
    void *keyed = compile_ok(&gy_filter_ratelimit, "{'max_tokens':700,'fill_interval':'1h','key':'header:x-k'}");
    struct hammer h[8];
    pthread_t t[8];
    int total = 0, total_a = 0, total_b = 0;
    (void)state;

    for (int i = 0; i < 8; i++) {
        h[i] = (struct hammer){ .conf = one, .key = "" };
        assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += h[i].allowed;
    }
    assert_int_equal(total, 1000);
    for (int i = 0; i < 8; i++) {
        h[i] = (struct hammer){ .conf = keyed, .key = i % 2 ? "a" : "b" };
        assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        *(i % 2 ? &total_a : &total_b) += h[i].allowed;
    }
    assert_int_equal(total_a, 700);
    assert_int_equal(total_b, 700);
    gy_filter_ratelimit.destroy(one);
    gy_filter_ratelimit.destroy(keyed);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(gy_filter_fault.name, "gyrus.fault");
    assert_string_equal(gy_filter_fault.aliases[0], "envoy.fault");
    assert_string_equal(gy_filter_fault.aliases[1], "envoy.filters.http.fault");
    assert_null(gy_filter_fault.aliases[2]);
    assert_string_equal(gy_filter_ratelimit.name, "gyrus.ratelimit");
    assert_string_equal(gy_filter_ratelimit.aliases[0], "envoy.filters.http.local_ratelimit");
    assert_string_equal(gy_filter_ratelimit.aliases[1], "envoy.local_rate_limit");
    assert_null(gy_filter_ratelimit.aliases[2]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_fault_config_good),
        cmocka_unit_test(test_fault_config_bad),
        cmocka_unit_test(test_fault_abort_percentages),
        cmocka_unit_test(test_fault_grpc_abort),
        cmocka_unit_test(test_fault_delay),
        cmocka_unit_test(test_fault_header_gate),
        cmocka_unit_test(test_fault_envoy_headers),
        cmocka_unit_test(test_fault_route_override),
        cmocka_unit_test(test_fault_max_active),
        cmocka_unit_test(test_ratelimit_config_good),
        cmocka_unit_test(test_ratelimit_config_bad),
        cmocka_unit_test(test_ratelimit_burst_and_refill),
        cmocka_unit_test(test_ratelimit_tokens_per_fill),
        cmocka_unit_test(test_ratelimit_keys),
        cmocka_unit_test(test_ratelimit_identity_key),
        cmocka_unit_test(test_ratelimit_long_values_and_eviction),
        cmocka_unit_test(test_ratelimit_grpc_and_route_override),
        cmocka_unit_test(test_ratelimit_shared_by_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
