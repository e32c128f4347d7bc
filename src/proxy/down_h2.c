/* HTTP/2 downstream connections (placeholder). */
#include "core/err.h"
#include "proxy/proxy.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

bool gy_h2_preface_prefix(const char *buf, size_t len, bool *sure)
{
    size_t n = len < 24 ? len : 24;

    *sure = len >= 24 || (n > 0 && memcmp(buf, preface, n) != 0);
    return n > 0 && memcmp(buf, preface, n) == 0;
}

int gy_h2d_start(struct gy_dconn *dc, const struct gy_req_head *upgrade, const char *settings, size_t settings_len)
{
    (void)dc, (void)upgrade, (void)settings, (void)settings_len;
    return GY_EUNSUPPORTED;
}
void gy_h2d_run(struct gy_dconn *dc) { (void)dc; }
void gy_h2d_drain(struct gy_dconn *dc) { (void)dc; }
void gy_h2d_close(struct gy_dconn *dc) { (void)dc; }
void gy_h2d_timer(struct gy_dconn *dc) { (void)dc; }
const struct gy_down_ops gy_down_h2 = { .name = "h2" };
