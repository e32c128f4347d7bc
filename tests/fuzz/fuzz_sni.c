/*
 * libFuzzer target for the TLS server_name extension parser (tls/sni.c) and the SNI lookup:
 * a parsed name is NUL-terminated inside the buffer, lower-case printable ASCII, non-empty, and
 * the lookup over a fixed table never reads out of bounds.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls_int.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    static struct tls_name names[] = {
        { "a.example.com", 13, TLS_NAME_EXACT, 1 },
        { ".example.com", 12, TLS_NAME_SUFFIX, 2 },
        { "api.", 4, TLS_NAME_PREFIX, 3 },
    };
    struct tls_set set = { .names = names, .nnames = 3 };
    char name[256];

    memset(name, 0x55, sizeof(name));
    if (tls_sni_parse(data, len, name, sizeof(name)) != 0)
        return 0;
    size_t n = strnlen(name, sizeof(name));
    CHECK(n > 0 && n < sizeof(name));
    for (size_t i = 0; i < n; i++)
        CHECK(name[i] > 0x20 && name[i] < 0x7f && !isupper((unsigned char)name[i]));
    CHECK(tls_sni_lookup(&set, name, n) <= 3);
    return 0;
}
