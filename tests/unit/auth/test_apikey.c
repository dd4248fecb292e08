/* Unit tests for API key matching against configured SHA-256 digests. */
#include "check.h"
#include "apikey.h"

#include <openssl/sha.h>

static void digest_of(const char *key, unsigned char out[APIKEY_DIGEST_LEN])
{
    SHA256((const unsigned char *)key, strlen(key), out);
}

static int match(const char *key, const unsigned char (*d)[APIKEY_DIGEST_LEN], size_t n)
{
    return apikey_match(key, strlen(key), d, n);
}

int main(void)
{
    const char *keys[] = {"client-one-key-0123456789", "client-two-key-abcdefghij",
                          "client-three-!#$%&'()*+,-./:;<=>?@[]^_`{|}~"};
    unsigned char d[4][APIKEY_DIGEST_LEN];
    for (int i = 0; i < 3; i++)
        digest_of(keys[i], d[i]);
    memcpy(d[3], d[1], APIKEY_DIGEST_LEN); /* a duplicate entry */

    CHECK(match(keys[0], d, 3) == 0);
    CHECK(match(keys[1], d, 3) == 1);
    CHECK(match(keys[2], d, 3) == 2);
    CHECK(match(keys[1], d, 4) == 3); /* the last of equal digests */
    CHECK(match(keys[2], d, 2) == APIKEY_NONE);
    CHECK(match(keys[0], d, 0) == APIKEY_NONE);
    CHECK(match("client-one-key-012345678", d, 3) == APIKEY_NONE);   /* prefix */
    CHECK(match("client-one-key-01234567890", d, 3) == APIKEY_NONE); /* extension */
    CHECK(match("Client-one-key-0123456789", d, 3) == APIKEY_NONE);  /* case */
    /* The presented key is hashed: presenting a configured digest itself does not match
     * (it fails either the shape check or the comparison). */
    CHECK(apikey_match((const char *)d[0], APIKEY_DIGEST_LEN, d, 3) < 0);

    /* Shape checks happen before hashing, whatever is configured. */
    char k[APIKEY_MAX_LEN + 2];
    memset(k, 'k', sizeof(k));
    unsigned char dk[2][APIKEY_DIGEST_LEN];
    SHA256((unsigned char *)k, APIKEY_MAX_LEN, dk[0]);
    SHA256((unsigned char *)k, APIKEY_MAX_LEN + 1, dk[1]);
    CHECK(apikey_match(k, APIKEY_MAX_LEN, dk, 2) == 0);
    CHECK(apikey_match(k, APIKEY_MAX_LEN + 1, dk, 2) == APIKEY_MALFORMED);
    SHA256((unsigned char *)k, APIKEY_MIN_LEN, dk[0]);
    SHA256((unsigned char *)k, APIKEY_MIN_LEN - 1, dk[1]);
    CHECK(apikey_match(k, APIKEY_MIN_LEN, dk, 2) == 0);
    CHECK(apikey_match(k, APIKEY_MIN_LEN - 1, dk, 2) == APIKEY_MALFORMED);
    CHECK(apikey_match(k, 0, dk, 2) == APIKEY_MALFORMED);
    CHECK(apikey_match(NULL, 20, dk, 2) == APIKEY_MALFORMED);

    /* Every byte outside 0x21..0x7e is refused, even if its digest is configured. */
    int refused = 0, total = 0;
    for (int c = 0; c < 256; c++) {
        if (c >= 0x21 && c <= 0x7e)
            continue;
        char bad[20];
        memset(bad, 'a', sizeof(bad));
        bad[7] = (char)c;
        unsigned char db[1][APIKEY_DIGEST_LEN];
        SHA256((unsigned char *)bad, sizeof(bad), db[0]);
        total++;
        refused += apikey_match(bad, sizeof(bad), db, 1) == APIKEY_MALFORMED;
    }
    CHECK(refused == total && total == 256 - 94);
    {   /* and the boundary characters themselves are fine */
        const char *edge = "!!!!!!!!~~~~~~~~";
        unsigned char de[1][APIKEY_DIGEST_LEN];
        digest_of(edge, de[0]);
        CHECK(match(edge, de, 1) == 0);
    }

    /* apikey_digest equals SHA-256 and refuses what apikey_match refuses. */
    unsigned char out[APIKEY_DIGEST_LEN];
    CHECK(apikey_digest(keys[2], strlen(keys[2]), out) == 0 && memcmp(out, d[2], 32) == 0);
    CHECK(apikey_digest("short", 5, out) == -1 && out[0] == 0 && out[31] == 0);
    CHECK(apikey_digest("has a space in it!", 18, out) == -1);

    /* Hex digests from configuration. */
    unsigned char p[APIKEY_DIGEST_LEN];
    CHECK(apikey_digest_parse(
              "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", p) == 0);
    unsigned char empty[APIKEY_DIGEST_LEN];
    SHA256((const unsigned char *)"", 0, empty);
    CHECK(memcmp(p, empty, 32) == 0);
    CHECK(apikey_digest_parse(
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", p) == 0);
    CHECK(memcmp(p, empty, 32) == 0);
    CHECK(apikey_digest_parse(
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", p) == -1);
    CHECK(apikey_digest_parse(
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555", p) == -1);
    CHECK(apikey_digest_parse(
              "x3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", p) == -1);
    CHECK(apikey_digest_parse(
              " 3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", p) == -1);
    CHECK(apikey_digest_parse("", p) == -1);
    CHECK(apikey_digest_parse(NULL, p) == -1);
    return check_done();
}
