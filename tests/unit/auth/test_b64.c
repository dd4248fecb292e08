/* Unit tests for the strict base64 / base64url codec. */
#include "check.h"
#include "b64.h"

#include <stdlib.h>

static void check_enc(const char *in, enum b64_alphabet a, const char *want)
{
    size_t n = 0;
    char *got = b64_encode(in, strlen(in), a, &n);
    CHECK_STR(got, want);
    CHECK(got && n == strlen(want));
    free(got);
}

/* Decodes s; returns the bytes (owned) or NULL if rejected. */
static unsigned char *dec(const char *s, enum b64_alphabet a, size_t *n)
{
    unsigned char *out = (unsigned char *)"x";
    int rc = b64_decode(s, strlen(s), a, &out, n);
    CHECK((rc == 0) == (out != NULL));
    return out;
}

static void check_dec(const char *s, enum b64_alphabet a, const char *want)
{
    size_t n = 99;
    unsigned char *got = dec(s, a, &n);
    CHECK_STR((char *)got, want);
    CHECK(got && n == strlen(want));
    free(got);
}

static void check_bad(const char *s, enum b64_alphabet a)
{
    size_t n = 0;
    unsigned char *got = dec(s, a, &n);
    if (got)
        fprintf(stderr, "accepted bad input \"%s\"\n", s);
    CHECK(got == NULL);
    free(got);
}

int main(void)
{
    /* RFC 4648 §10 vectors. */
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        check_enc(plain[i], B64_STD, std[i]);
        check_enc(plain[i], B64_URL, url[i]);
        check_dec(std[i], B64_STD, plain[i]);
        check_dec(url[i], B64_URL, plain[i]);
    }
    /* The alphabets differ in 62/63. */
    unsigned char hi[] = {0xfb, 0xff, 0xbf};
    char *e = b64_encode(hi, 3, B64_STD, NULL);
    CHECK_STR(e, "+/+/");
    free(e);
    e = b64_encode(hi, 3, B64_URL, NULL);
    CHECK_STR(e, "-_-_");
    free(e);
    check_bad("-_-_", B64_STD);
    check_bad("+/+/", B64_URL);

    /* Round trip of every byte value. */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (int a = 0; a < 2; a++) {
        size_t n = 0, m = 0;
        char *s = b64_encode(all, sizeof(all), (enum b64_alphabet)a, &n);
        unsigned char *back = NULL;
        CHECK(s && b64_decode(s, n, (enum b64_alphabet)a, &back, &m) == 0);
        CHECK(back && m == 256 && memcmp(back, all, 256) == 0);
        free(s);
        free(back);
    }

    /* Non-canonical or broken input. */
    check_bad("Zg", B64_STD);         /* missing padding */
    check_bad("Zg=", B64_STD);        /* short padding */
    check_bad("Zg===", B64_STD);      /* too much */
    check_bad("Z===", B64_STD);
    check_bad("Zh==", B64_STD);       /* non-zero trailing bits */
    check_bad("Zm9=", B64_STD);
    check_bad("Zg==", B64_URL);       /* url is never padded */
    check_bad("Zh", B64_URL);
    check_bad("Z", B64_URL);          /* impossible length */
    check_bad("Zm9vY", B64_URL);
    check_bad("Zm 9v", B64_STD);      /* whitespace */
    check_bad("Zm9v\n", B64_STD);
    check_bad("Zm9v\n", B64_URL);
    check_bad("Zm=v", B64_STD);       /* padding inside */
    check_bad("=Zm9", B64_STD);
    check_bad("Zm9*", B64_STD);
    {   /* embedded NUL */
        unsigned char *out = NULL;
        size_t n = 0;
        CHECK(b64_decode("Zm\0v", 4, B64_STD, &out, &n) == -1 && out == NULL);
    }
    /* Size cap. */
    CHECK(b64_encode("", B64_MAX_INPUT + 1, B64_STD, NULL) == NULL);
    return check_done();
}
