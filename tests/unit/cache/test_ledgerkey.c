/* Tests for cache/ledgerkey: message identity from real-shaped dequeue and ack bodies (the
 * onebox sample of the reference, fosim's shapes, RIS's 3-field ack, http://host:80,
 * %7B..%7D braces, null DownloadLocation), and the refusals. */
#include "check.h"
#include "ledgerkey.h"

#define ACT "b0b5401e-56ca-4dc8-b566-84389a001236"
#define ACT_BRACED "%7Bb0b5401e-56ca-4dc8-b566-84389a001236%7D"
#define CORR1 "5acd8121-d4e1-4cf8-b31f-9713de3e3627"
#define CORR2 "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
#define BLOB "c5fbcc38-4f1e-4a81-af27-e6684d9fc217"
#define POP1 "AgAAAAMAAAAAAAAA3XpSEQ0b1QE="
#define POP2 "AgAAAAMAAAAAAAAAfTbB9Q0b1QE="
#define BLOB_ID "prod:" ACT ":blob:" BLOB

/* The onebox sample of reference section 3.2, byte for byte (pretty-printed as in the doc). */
static const char onebox[] =
    "{\n"
    "  \"CorrelationId\": \"" CORR1 "\",\n"
    "  \"PopReceipt\": \"" POP1 "\",\n"
    "  \"DownloadLocation\": \"https://usnconeboxax1aos.cloud.onebox.dynamics.com/api/connector/"
    "download/" ACT_BRACED "?correlation-id=" CORR1 "&blob=" BLOB "\",\n"
    "  \"IsDownLoadFileExist\": true,\n"
    "  \"FileDownLoadErrorMessage\": \"\",\n"
    "  \"LastDequeueDateTime\": null\n"
    "}";

static enum ledgerkey_err parse(const char *body, struct ledgerkey *k)
{
    return ledgerkey_parse(body, strlen(body), "prod", ACT, k);
}

static void expect_blob(const char *body, const char *corr, const char *pop)
{
    struct ledgerkey k;

    CHECK(parse(body, &k) == LEDGERKEY_OK);
    CHECK(k.kind == LEDGERKEY_BLOB);
    CHECK_STR(k.id, BLOB_ID);
    CHECK_STR(k.blob, BLOB);
    CHECK_STR(k.scope, "prod:" ACT);
    CHECK_STR(k.correlation, corr);
    CHECK_STR(k.pop_receipt, pop);
    CHECK(ledgerkey_id_check(k.id, NULL) == LEDGERKEY_BLOB);
}

static void test_same_message_every_shape(void)
{
    expect_blob(onebox, CORR1, POP1);
    /* fosim / compact .NET: redelivered, same CorrelationId, new PopReceipt, http:80. */
    expect_blob("{\"CorrelationId\":\"" CORR1 "\",\"PopReceipt\":\"" POP2 "\","
                "\"DownloadLocation\":\"http://fo.example.com:80/api/connector/download/" ACT
                "?correlation-id=" CORR1 "&blob=" BLOB "\",\"IsDownLoadFileExist\":true,"
                "\"FileDownLoadErrorMessage\":\"\","
                "\"LastDequeueDateTime\":\"2024-05-01T10:00:00Z\"}",
                CORR1, POP2);
    /* redelivered with a NEW CorrelationId: same blob, same id. */
    expect_blob("{\"CorrelationId\":\"" CORR2 "\",\"PopReceipt\":\"" POP2 "\","
                "\"DownloadLocation\":\"https://fo.example.com/api/connector/download/" ACT_BRACED
                "?correlation-id=" CORR2 "&blob=" BLOB "\",\"IsDownLoadFileExist\":true,"
                "\"FileDownLoadErrorMessage\":\"\","
                "\"LastDequeueDateTime\":\"2024-05-01T10:30:00Z\"}",
                CORR2, POP2);
    /* RIS ack: three fields, rewritten to fogate's origin, upper-case GUIDs. */
    expect_blob("{\"CorrelationId\":\"5ACD8121-D4E1-4CF8-B31F-9713DE3E3627\",\"PopReceipt\":\"" POP1
                "\",\"DownloadLocation\":\"https://fogate.internal/api/connector/download/"
                "{B0B5401E-56CA-4DC8-B566-84389A001236}?correlation-id=" CORR1
                "&blob=C5FBCC38-4F1E-4A81-AF27-E6684D9FC217\"}",
                CORR1, POP1);
    /* Field order and name case changed, slashes escaped, braces around the blob GUID in
     * both spellings, parameter order swapped, a fragment after the query. */
    expect_blob("{\"downloadlocation\":\"https:\\/\\/h\\/api\\/connector\\/download\\/x?blob=%7B"
                BLOB "%7D&correlation-id=" CORR1 "#frag\",\"popreceipt\":\"" POP1
                "\",\"correlationid\":\"{" CORR1 "}\"}",
                CORR1, POP1);
    expect_blob("{\"CorrelationId\":\"" CORR1 "\",\"PopReceipt\":\"" POP1 "\",\"DownloadLocation\":"
                "\"https://h/d?BLOB={" BLOB "}&blob=" BLOB "\"}", CORR1, POP1);
    /* The activity in any spelling scopes the same way. */
    struct ledgerkey k;
    CHECK(ledgerkey_parse(onebox, strlen(onebox), "prod", "{B0B5401E-56CA-4DC8-B566-84389A001236}",
                          &k) == LEDGERKEY_OK);
    CHECK_STR(k.id, BLOB_ID);
    CHECK(ledgerkey_parse(onebox, strlen(onebox), "test", ACT_BRACED, &k) == LEDGERKEY_OK);
    CHECK_STR(k.id, "test:" ACT ":blob:" BLOB);
}

static void expect_corr(const char *body, const char *pop)
{
    struct ledgerkey k;
    char alias[LEDGERKEY_ID_SIZE];

    CHECK(parse(body, &k) == LEDGERKEY_OK);
    CHECK(k.kind == LEDGERKEY_CORR);
    CHECK_STR(k.id, "prod:" ACT ":corr:" CORR1);
    CHECK_STR(k.blob, "");
    CHECK_STR(k.pop_receipt, pop);
    CHECK(ledgerkey_id_check(k.id, alias) == LEDGERKEY_CORR);
    CHECK_STR(alias, "prod:" ACT ":" CORR1);
}

static void test_fallback_to_correlation(void)
{
    /* fosim's null_location fault (RIS #71): DownloadLocation null. */
    expect_corr("{\"CorrelationId\":\"" CORR1 "\",\"PopReceipt\":\"" POP1 "\","
                "\"DownloadLocation\":null,\"IsDownLoadFileExist\":true,"
                "\"FileDownLoadErrorMessage\":\"\",\"LastDequeueDateTime\":null}", POP1);
    /* A consumer's ack with only the two matching fields. */
    expect_corr("{\"CorrelationId\":\"" CORR1 "\",\"PopReceipt\":\"" POP1 "\"}", POP1);
    /* No PopReceipt at all, or null: "" (on_dequeue refuses that, confirm does not). */
    expect_corr("{\"CorrelationId\":\"" CORR1 "\"}", "");
    expect_corr("{\"CorrelationId\":\"" CORR1 "\",\"PopReceipt\":null}", "");
    /* URLs without a usable blob GUID. */
    static const char *const urls[] = {
        "https://h/api/connector/download/" ACT, "https://h/d?correlation-id=" CORR1,
        "https://h/d?blob=", "https://h/d?blob=not-a-guid", "https://h/d?blob=" BLOB "x",
        "https://h/d?blob=" BLOB "&blob=" CORR2, "https://h/d#?blob=" BLOB,
        "https://h/d?x=1#&blob=" BLOB, "https://h/d?xblob=" BLOB, "",
    };
    char body[512];
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        snprintf(body, sizeof(body), "{\"CorrelationId\":\"%s\",\"PopReceipt\":\"%s\","
                 "\"DownloadLocation\":\"%s\"}", CORR1, POP1, urls[i]);
        expect_corr(body, POP1);
    }
    /* DownloadLocation of another type is ignored the same way. */
    expect_corr("{\"CorrelationId\":\"" CORR1 "\",\"PopReceipt\":\"" POP1 "\","
                "\"DownloadLocation\":42}", POP1);
}

static void test_refusals(void)
{
    struct ledgerkey k;
    static const struct { const char *body; enum ledgerkey_err err; } bad[] = {
        { "", LEDGERKEY_NOT_JSON },
        { "not json", LEDGERKEY_NOT_JSON },
        { "[\"" CORR1 "\"]", LEDGERKEY_NOT_JSON },
        { "{\"CorrelationId\":\"" CORR1 "\"} {}", LEDGERKEY_NOT_JSON },
        { "{\"CorrelationId\":\"" CORR1 "\",\"CorrelationId\":\"" CORR2 "\"}", LEDGERKEY_NOT_JSON },
        { "{\"CorrelationId\":\"" CORR1 "\",\"correlationId\":\"" CORR1 "\"}", LEDGERKEY_NOT_JSON },
        { "{\"PopReceipt\":\"" POP1 "\",\"DownloadLocation\":\"https://h/d?blob=" BLOB "\"}",
          LEDGERKEY_BAD_CORRELATION },
        { "{\"CorrelationId\":null}", LEDGERKEY_BAD_CORRELATION },
        { "{\"CorrelationId\":42}", LEDGERKEY_BAD_CORRELATION },
        { "{\"CorrelationId\":\"message-1\"}", LEDGERKEY_BAD_CORRELATION },
        { "{\"CorrelationId\":\"" CORR1 "\",\"PopReceipt\":7}", LEDGERKEY_BAD_POP },
        { "{\"CorrelationId\":\"" CORR1 "\",\"PopReceipt\":\"a\\nb\"}", LEDGERKEY_BAD_POP },
        { "{\"CorrelationId\":\"" CORR1 "\",\"PopReceipt\":\"a\\u0000b\"}", LEDGERKEY_NOT_JSON },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum ledgerkey_err e = parse(bad[i].body, &k);
        if (e != bad[i].err)
            fprintf(stderr, "case %zu: %s\n", i, ledgerkey_err_str(e));
        CHECK(e == bad[i].err && k.id[0] == '\0' && k.correlation[0] == '\0');
    }
    /* Size caps. */
    char big[LEDGERKEY_BODY_MAX + 2];
    int n = snprintf(big, sizeof(big), "{\"CorrelationId\":\"%s\",\"x\":\"", CORR1);
    memset(big + n, 'a', sizeof(big) - (size_t)n);
    CHECK(ledgerkey_parse(big, LEDGERKEY_BODY_MAX + 1, "prod", ACT, &k) == LEDGERKEY_TOO_BIG);
    char pop[LEDGERKEY_POP_MAX + 100];
    memset(pop, 'P', sizeof(pop));
    pop[LEDGERKEY_POP_MAX + 1] = '\0';
    snprintf(big, sizeof(big), "{\"CorrelationId\":\"%s\",\"PopReceipt\":\"%s\"}", CORR1, pop);
    CHECK(parse(big, &k) == LEDGERKEY_BAD_POP);
    pop[LEDGERKEY_POP_MAX] = '\0'; /* exactly the max is kept */
    snprintf(big, sizeof(big), "{\"CorrelationId\":\"%s\",\"PopReceipt\":\"%s\"}", CORR1, pop);
    CHECK(parse(big, &k) == LEDGERKEY_OK && strlen(k.pop_receipt) == LEDGERKEY_POP_MAX);
    /* Arguments: env names as conf allows them, activity a GUID. */
    CHECK(ledgerkey_parse(onebox, strlen(onebox), "pr:od", ACT, &k) == LEDGERKEY_BAD_ARGS);
    CHECK(ledgerkey_parse(onebox, strlen(onebox), "", ACT, &k) == LEDGERKEY_BAD_ARGS);
    CHECK(ledgerkey_parse(onebox, strlen(onebox), "prod", "activity", &k) == LEDGERKEY_BAD_ARGS);
    CHECK(ledgerkey_parse(onebox, strlen(onebox), NULL, ACT, &k) == LEDGERKEY_BAD_ARGS);
    CHECK(ledgerkey_parse(NULL, 0, "prod", ACT, &k) == LEDGERKEY_BAD_ARGS);
    CHECK(ledgerkey_parse(onebox, strlen(onebox), "prod", ACT, NULL) == LEDGERKEY_BAD_ARGS);
    char env[LEDGERKEY_ENV_MAX + 2];
    memset(env, 'e', sizeof(env));
    env[LEDGERKEY_ENV_MAX] = '\0';
    CHECK(ledgerkey_parse(onebox, strlen(onebox), env, ACT, &k) == LEDGERKEY_OK);
    CHECK(strlen(k.id) == LEDGERKEY_ID_SIZE - 1);
    CHECK(ledgerkey_id_check(k.id, NULL) == LEDGERKEY_BLOB);
    env[LEDGERKEY_ENV_MAX] = 'e';
    env[LEDGERKEY_ENV_MAX + 1] = '\0';
    CHECK(ledgerkey_parse(onebox, strlen(onebox), env, ACT, &k) == LEDGERKEY_BAD_ARGS);
}

static void test_id_check(void)
{
    static const char *const bad[] = {
        NULL, "", "prod", ":" ACT ":blob:" BLOB, "prod:" ACT ":blob:" BLOB "x",
        "prod:" ACT ":blob:C5FBCC38-4F1E-4A81-AF27-E6684D9FC217",
        "prod:B0B5401E-56CA-4DC8-B566-84389A001236:blob:" BLOB, "prod:" ACT ":blub:" BLOB,
        "pr od:" ACT ":blob:" BLOB, "prod:" ACT ":blob:{" BLOB "}", "prod:" ACT "-blob-" BLOB,
        "a:b:" ACT ":blob:" BLOB,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(ledgerkey_id_check(bad[i], NULL) == -1);
    CHECK(ledgerkey_id_check("prod:" ACT ":blob:" BLOB, NULL) == LEDGERKEY_BLOB);
    CHECK(ledgerkey_id_check("p_1-x:" ACT ":corr:" CORR2, NULL) == LEDGERKEY_CORR);
    CHECK_STR(ledgerkey_err_str(LEDGERKEY_BAD_POP), "bad_pop");
    CHECK_STR(ledgerkey_err_str(LEDGERKEY_OK), "ok");
}

static void test_blob_from_url(void)
{
    char out[GUID_CANON_SIZE];
    const char *u = "http://h:80/api/connector/download/x?correlation-id=a&Blob=%7b" BLOB "%7d";

    CHECK(ledgerkey_blob_from_url(u, strlen(u), out) == 0);
    CHECK_STR(out, BLOB);
    /* Only `len` bytes are read: the blob GUID cut short is not one. */
    CHECK(ledgerkey_blob_from_url(u, strlen(u) - 4, out) == -1 && out[0] == '\0');
    CHECK(ledgerkey_blob_from_url(NULL, 0, out) == -1);
}

int main(void)
{
    test_same_message_every_shape();
    test_fallback_to_correlation();
    test_refusals();
    test_id_check();
    test_blob_from_url();
    return check_done();
}
