/* test_sas: known vectors for the blob and account SAS, percent-encoding and the key checks.
 * The expected signatures were produced independently by tests/azure/gen_sas_vectors.py
 * (Python hmac/hashlib over a hand-built string-to-sign); see that file. */
#include "sas.h"

#include <string.h>

#include "../unit/check.h"

/* 2020-06-05T07:21:33Z and +35 min: the window of the real D365 SAS in the reference. */
#define T_ST 1591341693
#define T_SE 1591343793
#define KEY3 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A="

static const struct sas_account dev = {"http://127.0.0.1:10000/devstoreaccount1",
                                       SAS_DEV_ACCOUNT, SAS_DEV_KEY};

static void test_time(void)
{
    char t[SAS_TIME_LEN];
    CHECK(sas_format_time(t, sizeof t, T_ST) == 0);
    CHECK_STR(t, "2020-06-05T07:21:33Z");
    CHECK(sas_format_time(t, 10, T_ST) == -1);
}

static void test_encode(void)
{
    char out[128];
    CHECK(sas_url_encode(out, sizeof out, "dir/a b+c&d=\xc3\xa9.zip", 1) == 0);
    CHECK_STR(out, "dir/a%20b%2Bc%26d%3D%C3%A9.zip");
    CHECK(sas_url_encode(out, sizeof out, "a/b:c", 0) == 0);
    CHECK_STR(out, "a%2Fb%3Ac");
    CHECK(sas_url_encode(out, sizeof out, "AZaz09-._~", 0) == 0);
    CHECK_STR(out, "AZaz09-._~");
    CHECK(sas_url_encode(out, sizeof out, "", 0) == 0);
    CHECK_STR(out, "");
    /* "a b" needs 5 bytes + NUL: cap 5 must fail, cap 6 must fit. */
    CHECK(sas_url_encode(out, 5, "a b", 0) == -1);
    CHECK(sas_url_encode(out, 6, "a b", 0) == 0);
    CHECK_STR(out, "a%20b");
}

static void test_sign(void)
{
    char sig[SAS_SIG_LEN];
    CHECK(sas_sign(sig, sizeof sig, KEY3, "hello\nworld") == 0);
    CHECK_STR(sig, "UW54PDhiVY2cWuC1vA351oluJBQ3vQMy+iqG3WvS8Sk=");
    CHECK(sas_sign(sig, sizeof sig, "abc", "x") == -1);   /* not a multiple of 4 */
    CHECK(sas_sign(sig, sizeof sig, "ab=c", "x") == -1);  /* '=' inside */
    CHECK(sas_sign(sig, sizeof sig, "ab!c", "x") == -1);  /* not base64 */
    CHECK(sas_sign(sig, sizeof sig, "", "x") == -1);
    CHECK(sas_sign(sig, 10, KEY3, "x") == -1);
}

static void test_string_to_sign(void)
{
    char sts[512];
    CHECK(sas_blob_string_to_sign(sts, sizeof sts, SAS_DEV_ACCOUNT, "dmf",
                                  "82332ea8-7598-427b-bfe4-daef25ccf6e1", "rw", T_ST,
                                  T_SE) == 0);
    CHECK_STR(sts, "rw\n2020-06-05T07:21:33Z\n2020-06-05T07:56:33Z\n"
                   "/blob/devstoreaccount1/dmf/82332ea8-7598-427b-bfe4-daef25ccf6e1\n"
                   "\n\n\n2018-11-09\nb\n\n\n\n\n\n");
    CHECK(sas_blob_string_to_sign(sts, 20, SAS_DEV_ACCOUNT, "dmf", "b", "rw", T_ST, T_SE) ==
          -1);
}

static void test_blob_url(void)
{
    char url[SAS_URL_MAX];
    CHECK(sas_blob_url(url, sizeof url, &dev, "dmf", "82332ea8-7598-427b-bfe4-daef25ccf6e1",
                       "rw", T_ST, T_SE) == 0);
    CHECK_STR(url, "http://127.0.0.1:10000/devstoreaccount1/dmf/"
                   "82332ea8-7598-427b-bfe4-daef25ccf6e1?sv=2018-11-09&sr=b"
                   "&sig=Irfv66a%2FDo3TgLgC1HKQcXA%2BnlPTzVGK8SaGmbpmXd8%3D"
                   "&st=2020-06-05T07%3A21%3A33Z&se=2020-06-05T07%3A56%3A33Z&sp=rw");
    /* No start time, special characters in the name: signed raw, sent encoded. */
    CHECK(sas_blob_url(url, sizeof url, &dev, "dmf", "dir/a b+c&d=\xc3\xa9.zip", "r", 0,
                       T_SE) == 0);
    CHECK_STR(url, "http://127.0.0.1:10000/devstoreaccount1/dmf/dir/a%20b%2Bc%26d%3D%C3%A9.zip"
                   "?sv=2018-11-09&sr=b&sig=%2BDYfBbQlADB3fpJ8unzxTIimqAUhb1qMO5CrKJcOVzM%3D"
                   "&se=2020-06-05T07%3A56%3A33Z&sp=r");
}

static void test_blob_url_errors(void)
{
    char url[SAS_URL_MAX];
    struct sas_account bad = dev;
    bad.key_b64 = "not base64!";
    CHECK(sas_blob_url(url, sizeof url, &bad, "dmf", "x", "rw", T_ST, T_SE) == -1);
    CHECK(sas_blob_url(url, sizeof url, &dev, "dmf", "", "rw", T_ST, T_SE) == -1);
    CHECK(sas_blob_url(url, sizeof url, &dev, "", "x", "rw", T_ST, T_SE) == -1);
    CHECK(sas_blob_url(url, sizeof url, &dev, "DMF", "x", "rw", T_ST, T_SE) == -1);
    CHECK(sas_blob_url(url, sizeof url, &dev, "d/f", "x", "rw", T_ST, T_SE) == -1);
    CHECK(sas_blob_url(url, sizeof url, &dev, "dmf", "a\nb", "rw", T_ST, T_SE) == -1);
    CHECK(sas_blob_url(url, sizeof url, &dev, "dmf", "x", "rw", T_ST, T_SE) == 0);
    CHECK(sas_blob_url(url, sizeof url, &dev, "dmf", "x", "", T_ST, T_SE) == -1);
    CHECK(sas_blob_url(url, sizeof url, &dev, "dmf", "x", "r&w", T_ST, T_SE) == -1);
    CHECK(sas_blob_url(url, sizeof url, &dev, "dmf", "x", "rw", T_SE, T_ST) == -1);
    CHECK(sas_blob_url(url, 60, &dev, "dmf", "x", "rw", T_ST, T_SE) == -1);
    CHECK(sas_blob_url(url, sizeof url, NULL, "dmf", "x", "rw", T_ST, T_SE) == -1);
}

static void test_account_query(void)
{
    char q[SAS_URL_MAX];
    CHECK(sas_account_query(q, sizeof q, &dev, "c", "c", T_ST, T_SE) == 0);
    CHECK_STR(q, "sv=2018-11-09&ss=b&srt=c&sp=c&st=2020-06-05T07%3A21%3A33Z"
                 "&se=2020-06-05T07%3A56%3A33Z&sig=UIE%2BIQJySSjyrqkClnI7qm56iI7PTQAWoLM82Irc%2FT0%3D");
    CHECK(sas_account_query(q, 40, &dev, "c", "c", T_ST, T_SE) == -1);
    CHECK(sas_account_query(q, sizeof q, &dev, "", "c", T_ST, T_SE) == -1);
}

int main(void)
{
    test_time();
    test_encode();
    test_sign();
    test_string_to_sign();
    test_blob_url();
    test_blob_url_errors();
    test_account_query();
    return check_done();
}
