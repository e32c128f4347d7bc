/* Responses the proxy writes itself: errors, redirects, direct responses, 100 Continue. */
#include <stdio.h>
#include <time.h>

#include "core/err.h"
#include "proxy/proxy.h"

/* "Tue, 15 Nov 1994 08:12:31 GMT", cached per second per thread. */
const char *gy_http_date(void)
{
    static _Thread_local char buf[40];
    static _Thread_local time_t last;
    time_t now = time(NULL);

    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

int gy_write_local_response(struct gy_buf *b, int status, const char *extra_headers, const char *body,
                            size_t body_len, bool close, bool head_only)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nserver: gyrus\r\ndate: %s\r\ncontent-length: %zu\r\n%s%s%s\r\n", status,
                     gy_h1_reason(status), gy_http_date(), body_len,
                     body_len ? "content-type: text/plain; charset=utf-8\r\n" : "",
                     close ? "connection: close\r\n" : "", extra_headers ? extra_headers : "");

    if (n < 0 || (size_t)n >= sizeof(head))
        return GY_ETOOBIG;
    if (head_only)
        body_len = 0;
    if (gy_buf_room(b) < (size_t)n + body_len)
        return GY_ETOOBIG;
    gy_buf_append(b, head, (size_t)n);
    gy_buf_append(b, body, body_len);
    return 0;
}
