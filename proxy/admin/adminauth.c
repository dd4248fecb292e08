/* adminauth: loopback test and constant-time bearer check for the admin listener. */
#include "adminauth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "secretfile.h"

#define TOKEN_FILE_MAX 4096

int adminauth_load(const char *path, struct adminauth_token *tok, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = -1;

    memset(tok, 0, sizeof *tok);
    if (!path)
        return 0;
    if (secretfile_read(path, TOKEN_FILE_MAX, SECRETFILE_PRIVATE, &text, &len, err, errlen) < 0)
        return -1;
    size_t n = strcspn(text, "\r\n");
    if (apikey_digest(text, n, tok->digest) < 0) {
        snprintf(err, errlen, "%s: the admin token must be %d to %d visible characters on the "
                 "first line", path, APIKEY_MIN_LEN, APIKEY_MAX_LEN);
        goto out;
    }
    tok->set = true;
    rc = 0;
out:
    secretfile_free(text, len);
    return rc;
}

bool adminauth_loopback(const char *client)
{
    return strncmp(client, "127.", 4) == 0 || strncmp(client, "[::1]:", 6) == 0 ||
           strncmp(client, "[::ffff:127.", 12) == 0;
}

enum adminauth_verdict adminauth_action(const struct adminauth_token *tok,
                                        const char *authorization, size_t len, char fp[13])
{
    unsigned char digest[APIKEY_DIGEST_LEN];
    static const char bearer[] = "Bearer ";
    bool ok;

    fp[0] = '\0';
    if (!authorization)
        return ADMINAUTH_MISSING;
    if (!tok->set || len < sizeof bearer - 1 ||
        strncasecmp(authorization, bearer, sizeof bearer - 1) != 0 ||
        apikey_digest(authorization + sizeof bearer - 1, len - (sizeof bearer - 1), digest) < 0)
        return ADMINAUTH_WRONG;
    ok = CRYPTO_memcmp(digest, tok->digest, sizeof digest) == 0;
    for (int i = 0; ok && i < 6; i++)
        snprintf(fp + 2 * i, 3, "%02x", digest[i]);
    OPENSSL_cleanse(digest, sizeof digest);
    return ok ? ADMINAUTH_OK : ADMINAUTH_WRONG;
}

enum adminauth_verdict adminauth_check(const struct adminauth_token *tok, const char *client,
                                       const char *authorization, size_t len)
{
    unsigned char digest[APIKEY_DIGEST_LEN];
    static const char bearer[] = "Bearer ";

    if (adminauth_loopback(client))
        return ADMINAUTH_OK;
    if (!authorization)
        return ADMINAUTH_MISSING;
    if (!tok->set || len < sizeof bearer - 1 ||
        strncasecmp(authorization, bearer, sizeof bearer - 1) != 0)
        return ADMINAUTH_WRONG;
    if (apikey_digest(authorization + sizeof bearer - 1, len - (sizeof bearer - 1), digest) < 0)
        return ADMINAUTH_WRONG;
    bool ok = CRYPTO_memcmp(digest, tok->digest, sizeof digest) == 0;
    OPENSSL_cleanse(digest, sizeof digest);
    return ok ? ADMINAUTH_OK : ADMINAUTH_WRONG;
}
