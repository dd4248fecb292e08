/* Unit tests for AES-256-GCM sealing of cached tokens and for seal key files. */
#define _GNU_SOURCE /* memmem */
#include "check.h"
#include "seal.h"
#include "b64.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define CTX "prod|https://contoso.operations.dynamics.com"
#define TOKEN "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwcyJ9.c2ln"

static unsigned char key1[SEAL_KEY_LEN], key2[SEAL_KEY_LEN];
static char dir[] = "/tmp/fogate-test-seal-XXXXXX";

/* Opens and returns the status; checks the out-parameters agree with it. */
static enum seal_status open_blob(const unsigned char *key, const char *ctx, const void *blob,
                                  size_t len, enum seal_format fmt, const char *want)
{
    unsigned char *plain = (unsigned char *)"x";
    size_t n = 99;
    enum seal_status st = seal_open(key, ctx, blob, len, fmt, &plain, &n);
    if (st == SEAL_OK) {
        CHECK(plain != NULL && plain[n] == '\0');
        CHECK(want && n == strlen(want) && memcmp(plain, want, n) == 0);
    } else {
        CHECK(plain == NULL && n == 0);
    }
    seal_plain_free(plain, n);
    return st;
}

static void test_round_trip(void)
{
    for (int f = 0; f < 2; f++) {
        enum seal_format fmt = f ? SEAL_BASE64 : SEAL_RAW;
        unsigned char *blob = NULL, *blob2 = NULL;
        size_t len = 0, len2 = 0;
        CHECK(seal_seal(key1, CTX, TOKEN, strlen(TOKEN), fmt, &blob, &len) == SEAL_OK);
        CHECK(seal_seal(key1, CTX, TOKEN, strlen(TOKEN), fmt, &blob2, &len2) == SEAL_OK);
        size_t raw = SEAL_OVERHEAD + strlen(TOKEN);
        CHECK(len == (fmt == SEAL_RAW ? raw : (raw + 2) / 3 * 4));
        CHECK(len == len2 && memcmp(blob, blob2, len) != 0); /* fresh nonce each time */
        CHECK(fmt == SEAL_RAW ? blob[0] == SEAL_VERSION : strlen((char *)blob) == len);
        CHECK(memmem(blob, len, "eyJ0eXAi", 8) == NULL);         /* no plaintext inside */
        CHECK(open_blob(key1, CTX, blob, len, fmt, TOKEN) == SEAL_OK);
        CHECK(open_blob(key1, CTX, blob2, len2, fmt, TOKEN) == SEAL_OK);
        CHECK(open_blob(key2, CTX, blob, len, fmt, NULL) == SEAL_AUTH_FAILED);
        CHECK(open_blob(key1, "test|" CTX, blob, len, fmt, NULL) == SEAL_AUTH_FAILED);
        CHECK(open_blob(key1, "", blob, len, fmt, NULL) == SEAL_AUTH_FAILED);
        free(blob);
        free(blob2);
    }
    /* The base64 form is the raw form encoded. */
    unsigned char *b64 = NULL, *raw = NULL;
    size_t len = 0, rawlen = 0;
    CHECK(seal_seal(key1, "", "", 0, SEAL_BASE64, &b64, &len) == SEAL_OK);
    CHECK(b64_decode((char *)b64, len, B64_STD, &raw, &rawlen) == 0);
    CHECK(rawlen == SEAL_OVERHEAD && raw && raw[0] == SEAL_VERSION);
    CHECK(open_blob(key1, "", raw, rawlen, SEAL_RAW, "") == SEAL_OK);
    CHECK(open_blob(key1, "", b64, len, SEAL_BASE64, "") == SEAL_OK);
    CHECK(open_blob(key1, "", b64, len, SEAL_RAW, NULL) == SEAL_UNSUPPORTED);
    CHECK(open_blob(key1, "", raw, rawlen, SEAL_BASE64, NULL) == SEAL_MALFORMED);
    free(b64);
    free(raw);
}

/* Every bit flip, truncation and extension of a raw blob is detected. */
static void test_tamper(void)
{
    unsigned char *blob = NULL;
    size_t len = 0;
    CHECK(seal_seal(key1, CTX, "tok", 3, SEAL_RAW, &blob, &len) == SEAL_OK);
    if (!blob)
        return;
    int flips_ok = 1;
    for (size_t i = 0; i < len; i++)
        for (int b = 0; b < 8; b++) {
            blob[i] ^= (unsigned char)(1u << b);
            enum seal_status st = open_blob(key1, CTX, blob, len, SEAL_RAW, NULL);
            flips_ok &= st == (i == 0 ? SEAL_UNSUPPORTED : SEAL_AUTH_FAILED);
            blob[i] ^= (unsigned char)(1u << b);
        }
    CHECK(flips_ok);
    int cuts_ok = 1;
    for (size_t n = 0; n < len; n++) {
        enum seal_status st = open_blob(key1, CTX, blob, n, SEAL_RAW, NULL);
        cuts_ok &= st == (n < SEAL_OVERHEAD ? SEAL_MALFORMED : SEAL_AUTH_FAILED);
    }
    CHECK(cuts_ok);
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, blob, len);
    longer[len] = 0;
    CHECK(open_blob(key1, CTX, longer, len + 1, SEAL_RAW, NULL) == SEAL_AUTH_FAILED);
    CHECK(open_blob(key1, CTX, blob, len, SEAL_RAW, "tok") == SEAL_OK);
    /* A context that differs only after a NUL-free prefix, or by case. */
    CHECK(open_blob(key1, CTX "x", blob, len, SEAL_RAW, NULL) == SEAL_AUTH_FAILED);
    CHECK(open_blob(key1, "PROD|https://contoso.operations.dynamics.com", blob, len, SEAL_RAW,
                    NULL) == SEAL_AUTH_FAILED);
    free(longer);
    free(blob);

    CHECK(open_blob(key1, CTX, "!!!!", 4, SEAL_BASE64, NULL) == SEAL_MALFORMED);
    CHECK(open_blob(key1, CTX, "AQ==", 4, SEAL_BASE64, NULL) == SEAL_MALFORMED);
    CHECK(open_blob(key1, CTX, NULL, 0, SEAL_BASE64, NULL) == SEAL_MALFORMED);
    CHECK(open_blob(key1, CTX, NULL, 0, SEAL_RAW, NULL) == SEAL_MALFORMED);
}

static void test_limits(void)
{
    unsigned char *big = calloc(1, SEAL_PLAIN_MAX + 1), *blob = NULL;
    size_t len = 0;
    CHECK(seal_seal(key1, CTX, big, SEAL_PLAIN_MAX, SEAL_BASE64, &blob, &len) == SEAL_OK);
    unsigned char *plain = NULL;
    size_t n = 0;
    CHECK(seal_open(key1, CTX, blob, len, SEAL_BASE64, &plain, &n) == SEAL_OK);
    CHECK(n == SEAL_PLAIN_MAX && plain && memcmp(plain, big, n) == 0);
    seal_plain_free(plain, n);
    free(blob);
    blob = (unsigned char *)"x";
    CHECK(seal_seal(key1, CTX, big, SEAL_PLAIN_MAX + 1, SEAL_RAW, &blob, &len) == SEAL_ERROR);
    CHECK(blob == NULL && len == 0);
    /* A raw blob longer than any seal_seal output is malformed before decryption. */
    unsigned char *huge = calloc(1, SEAL_OVERHEAD + SEAL_PLAIN_MAX + 1);
    huge[0] = SEAL_VERSION;
    CHECK(open_blob(key1, CTX, huge, SEAL_OVERHEAD + SEAL_PLAIN_MAX + 1, SEAL_RAW, NULL) ==
          SEAL_MALFORMED);
    free(huge);
    free(big);
    /* Context cap and bad arguments. */
    char ctx[SEAL_CONTEXT_MAX + 2];
    memset(ctx, 'c', sizeof(ctx) - 1);
    ctx[sizeof(ctx) - 1] = '\0';
    CHECK(seal_seal(key1, ctx, "t", 1, SEAL_RAW, &blob, &len) == SEAL_ERROR);
    CHECK(seal_seal(key1, ctx + 1, "t", 1, SEAL_RAW, &blob, &len) == SEAL_OK);
    CHECK(open_blob(key1, ctx + 1, blob, len, SEAL_RAW, "t") == SEAL_OK);
    CHECK(open_blob(key1, ctx, blob, len, SEAL_RAW, NULL) == SEAL_ERROR);
    free(blob);
    CHECK(seal_seal(key1, NULL, "t", 1, SEAL_RAW, &blob, &len) == SEAL_ERROR);
    CHECK(seal_seal(NULL, CTX, "t", 1, SEAL_RAW, &blob, &len) == SEAL_ERROR);
    CHECK(seal_seal(key1, CTX, NULL, 1, SEAL_RAW, &blob, &len) == SEAL_ERROR);
    CHECK(blob == NULL);
}

/* Writes a key file with the given bytes and mode; returns its path (static buffer). */
static const char *key_file(const char *name, const void *data, size_t len, mode_t mode)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

/* Loads and returns the result; on failure checks the error names the path and the key
 * stays zeroed. */
static int load(const char *path, unsigned char key[SEAL_KEY_LEN])
{
    char err[512] = "";
    memset(key, 0xee, SEAL_KEY_LEN);
    int rc = seal_key_load(path, key, err, sizeof(err));
    if (rc != 0) {
        static const unsigned char zero[SEAL_KEY_LEN];
        CHECK(memcmp(key, zero, SEAL_KEY_LEN) == 0);
        CHECK(strstr(err, path) != NULL);
        CHECK(strstr(err, "00112233") == NULL && strstr(err, "abcd") == NULL);
    }
    return rc;
}

static void test_key_load(void)
{
    const char *hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    unsigned char want[SEAL_KEY_LEN], got[SEAL_KEY_LEN];
    for (int i = 0; i < 16; i++)
        want[i] = want[16 + i] = (unsigned char)(i * 0x11);
    CHECK(load(key_file("k1", hex, 64, 0600), got) == 0 && memcmp(got, want, 32) == 0);
    char line[80];
    snprintf(line, sizeof(line), "%s\n", hex);
    CHECK(load(key_file("k2", line, 65, 0640), got) == 0 && memcmp(got, want, 32) == 0);
    snprintf(line, sizeof(line), "%s\r\n", hex);
    CHECK(load(key_file("k3", line, 66, 0400), got) == 0 && memcmp(got, want, 32) == 0);

    CHECK(load(key_file("p1", hex, 64, 0644), got) == -1);  /* world-readable */
    CHECK(load(key_file("p2", hex, 64, 0604), got) == -1);
    CHECK(load(key_file("p3", hex, 64, 0660), got) == -1);  /* group-writable */
    CHECK(load(key_file("p4", hex, 64, 0602), got) == -1);
    CHECK(load(key_file("s1", hex, 63, 0600), got) == -1);  /* short */
    CHECK(load(key_file("s2", hex, 62, 0600), got) == -1);
    snprintf(line, sizeof(line), "%s0", hex);
    CHECK(load(key_file("s3", line, 65, 0600), got) == -1); /* 65 digits */
    snprintf(line, sizeof(line), "%s\n\n", hex);
    CHECK(load(key_file("s4", line, 66, 0600), got) == -1);
    snprintf(line, sizeof(line), " %s", hex);
    CHECK(load(key_file("s5", line, 65, 0600), got) == -1);
    CHECK(load(key_file("s6", "", 0, 0600), got) == -1);
    CHECK(load(key_file("raw", want, 32, 0600), got) == -1); /* raw bytes: not accepted */
    char bad[65];
    memcpy(bad, hex, 64);
    bad[10] = 'g';
    CHECK(load(key_file("h1", bad, 64, 0600), got) == -1);
    bad[10] = '\0';
    CHECK(load(key_file("h2", bad, 64, 0600), got) == -1);
    char big[4096];
    memset(big, 'a', sizeof(big));
    CHECK(load(key_file("big", big, sizeof(big), 0600), got) == -1);
    char path[256];
    snprintf(path, sizeof(path), "%s/missing", dir);
    CHECK(load(path, got) == -1);
    CHECK(load(dir, got) == -1); /* a directory */
    snprintf(path, sizeof(path), "%s/fifo", dir);
    CHECK(mkfifo(path, 0600) == 0);
    CHECK(load(path, got) == -1); /* refused at once, no hang waiting for a writer */
    unlink(path);
}

static void cleanup_dir(void)
{
    const char *names[] = {"k1", "k2", "k3", "p1", "p2", "p3", "p4", "s1", "s2", "s3",
                           "s4", "s5", "s6", "raw", "h1", "h2", "big"};
    char path[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    CHECK(rmdir(dir) == 0);
}

int main(void)
{
    for (int i = 0; i < SEAL_KEY_LEN; i++) {
        key1[i] = (unsigned char)i;
        key2[i] = (unsigned char)i;
    }
    key2[31] ^= 1; /* one bit apart */
    CHECK(mkdtemp(dir) != NULL);
    test_round_trip();
    test_tamper();
    test_limits();
    test_key_load();
    cleanup_dir();
    return check_done();
}
