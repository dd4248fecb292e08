/* simguid: GUID spellings. See simguid.h. */
#include "simguid.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/rand.h>

static int strip(const char **p, size_t *len, const char *open, const char *close)
{
    size_t lo = strlen(open), lc = strlen(close);
    if (*len >= lo + lc && strncasecmp(*p, open, lo) == 0 &&
        strncasecmp(*p + *len - lc, close, lc) == 0) {
        *p += lo;
        *len -= lo + lc;
        return 1;
    }
    return 0;
}

int simguid_parse(const char *in, size_t len, char out[SIMGUID_LEN + 1])
{
    if (!strip(&in, &len, "{", "}"))
        strip(&in, &len, "%7B", "%7D");
    if (len != SIMGUID_LEN)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? in[i] != '-' : !isxdigit((unsigned char)in[i]))
            return -1;
        out[i] = (char)tolower((unsigned char)in[i]);
    }
    out[len] = '\0';
    return 0;
}

void simguid_new(char out[SIMGUID_LEN + 1])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        memset(b, 0x5a, sizeof(b)); /* unreachable in practice; keep output well formed */
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, SIMGUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

void simguid_hex32(char out[33])
{
    char g[SIMGUID_LEN + 1];
    size_t j = 0;
    simguid_new(g);
    for (size_t i = 0; i < SIMGUID_LEN; i++)
        if (g[i] != '-')
            out[j++] = (char)toupper((unsigned char)g[i]);
    out[j] = '\0';
}
