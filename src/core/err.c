#include "core/err.h"

const char *gy_strerror(int code)
{
    switch (code) {
    case GY_OK:
        return "success";
#define GY_ERR_CASE(name, msg) \
    case GY_##name:            \
        return msg;
        GY_ERRNO_MAP(GY_ERR_CASE)
#undef GY_ERR_CASE
    default:
        return "unknown error";
    }
}
