/* HTTP/2 upstream connections (placeholder). */
#include "core/err.h"
#include "proxy/proxy.h"

void gy_h2u_event(struct gy_uconn *uc) { (void)uc; }
int gy_h2u_attach(struct gy_uconn *uc, struct gy_stream *s) { (void)uc, (void)s; return GY_EUNSUPPORTED; }
const struct gy_up_ops gy_up_h2 = { .name = "h2" };
