/* pkgkey: key names and record values of shared package-import state (see pkgkey.h). */
#include "pkgkey.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "hex.h"

static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > PKGKEY_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int pkgkey_lock(const char *env, char out[PKGKEY_KEY_SIZE])
{
    if (!name_ok(env))
        return -1;
    snprintf(out, PKGKEY_KEY_SIZE, "fogate:pkg:lock:%s", env);
    return 0;
}

int pkgkey_idem(const char *scope, const char *key, size_t len, char out[PKGKEY_KEY_SIZE])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65];

    if (!name_ok(scope) || !key || len == 0 ||
        EVP_Digest(key, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return -1;
    to_hex(md, 32, hex);
    snprintf(out, PKGKEY_KEY_SIZE, "fogate:pkg:idem:%s:%s", scope, hex);
    return 0;
}

static int exec_ok(const char *s, size_t n)
{
    if (n == 0 || n >= PKGKEY_EXEC_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ' || (unsigned char)s[i] < 0x21 || s[i] == 0x7f)
            return 0;
    return 1;
}

int pkgkey_record_format(const struct pkgkey_record *rec, char out[PKGKEY_RECORD_SIZE])
{
    char hex[65];

    if (!exec_ok(rec->exec_id, strnlen(rec->exec_id, PKGKEY_EXEC_MAX)))
        return -1;
    if (rec->state == PKGKEY_RESERVED) {
        snprintf(out, PKGKEY_RECORD_SIZE, "R %s", rec->exec_id);
        return 0;
    }
    to_hex(rec->sha256, 32, hex);
    snprintf(out, PKGKEY_RECORD_SIZE, "D %s %s", hex, rec->exec_id);
    return 0;
}

int pkgkey_record_parse(const char *s, size_t len, struct pkgkey_record *out)
{
    const char *id;
    size_t idl;

    memset(out, 0, sizeof *out);
    if (len >= 2 && s[0] == 'R' && s[1] == ' ') {
        out->state = PKGKEY_RESERVED;
        id = s + 2;
    } else if (len >= 2 + 64 + 1 && s[0] == 'D' && s[1] == ' ' && s[66] == ' ' &&
               hex_decode(s + 2, 64, out->sha256, 32) == 0) {
        out->state = PKGKEY_DONE;
        id = s + 67;
    } else {
        return -1;
    }
    idl = len - (size_t)(id - s);
    if (!exec_ok(id, idl)) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    memcpy(out->exec_id, id, idl);
    return 0;
}
