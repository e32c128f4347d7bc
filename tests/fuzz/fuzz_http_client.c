/*
 * libFuzzer target for the proxy's own HTTP client's answer reader (http/client.c): the bytes of
 * an answer fed in pieces (the first input byte chooses the piece size, whether the request was
 * HEAD and the body limit), then the peer's close. Invariants: the body never exceeds its limit,
 * a whole answer has a final status, and a reader that said "done" stays done.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/client.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 1)
        return 0;
    size_t piece = 1 + (data[0] & 0x3f);
    bool head = data[0] & 0x40;
    struct gy_bytes out = { .max = data[0] & 0x80 ? 16 : 65536 };
    struct gy_http_answer a;
    char why[200];
    int rc = 0;

    data++, len--;
    gy_http_answer_init(&a, head);
    for (size_t off = 0; off < len && rc == 0; off += piece) {
        bool was_done = a.done;
        size_t n = len - off < piece ? len - off : piece;
        rc = gy_http_answer_feed(&a, (const char *)data + off, n, &out, why, sizeof(why));
        CHECK(!was_done || a.done);
        CHECK(rc == 0 || rc == GY_EPARSE || rc == GY_ETOOBIG);
        CHECK(rc == 0 || why[0] != '\0');
        CHECK(out.len <= out.max);
    }
    if (rc == 0)
        rc = gy_http_answer_eof(&a, why, sizeof(why));
    if (rc == 0) {
        CHECK(a.done && a.head_done);
        CHECK(a.status >= 200 && a.status <= 999 && a.status != 101);
        CHECK(!head || out.len == 0);
    }
    CHECK(out.len <= out.max);
    gy_http_answer_free(&a);
    gy_bytes_free(&out);
    return 0;
}
