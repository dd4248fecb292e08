/* test_ledgerpass: the pure id helpers of the ledger wiring: the ledger id of a download
 * URL (ledgerpass), of a CorrelationId (ledgerflow) and an id's environment and activity
 * (outbox), checked against ledgerkey's own parse of a dequeue body. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "conf.h"
#include "ledgerflow.h"
#include "ledgerkey.h"
#include "ledgerpass.h"
#include "outbox.h"

#define ACT "b0b5401e-56ca-4dc8-b566-84389a001236"
#define BLOB "c5fbcc38-4f1e-4a81-af27-e6684d9fc217"
#define CORR "5acd8121-d4e1-4cf8-b31f-9713de3e3627"

static void download_ids(const struct conf_job *job)
{
    char id[LEDGERKEY_ID_SIZE], small[20];
    const char *t = "/api/connector/download/%7BB0B5401E-56CA-4DC8-B566-84389A001236%7D"
                    "?correlation-id=" CORR "&blob=%7B" "C5FBCC38-4F1E-4A81-AF27-E6684D9FC217"
                    "%7D";
    const char *body = "{\"CorrelationId\":\"" CORR "\",\"PopReceipt\":\"AgA=\","
                       "\"DownloadLocation\":\"https://d365.example.com/api/connector/"
                       "download/" ACT "?correlation-id=" CORR "&blob=" BLOB "\"}";
    struct ledgerkey k;

    CHECK(ledgerpass_download_id(job, t, strlen(t), id, sizeof id) == 0);
    CHECK_STR(id, "prod:" ACT ":blob:" BLOB);
    /* the same id the dequeue body gave the ledger */
    CHECK(ledgerkey_parse(body, strlen(body), "prod", ACT, &k) == LEDGERKEY_OK);
    CHECK_STR(k.id, id);
    CHECK(ledgerpass_download_id(job, t, strlen(t), small, sizeof small) == -1);
    t = "/api/connector/download/" ACT "?correlation-id=" CORR;
    CHECK(ledgerpass_download_id(job, t, strlen(t), id, sizeof id) == -1);
    t = "/api/connector/download/" ACT "?blob=not-a-guid";
    CHECK(ledgerpass_download_id(job, t, strlen(t), id, sizeof id) == -1);
}

static void corr_ids(void)
{
    char id[LEDGERKEY_ID_SIZE];

    CHECK(ledgerflow_corr_id("prod", ACT, CORR, id, sizeof id) == 0);
    CHECK_STR(id, "prod:" ACT ":corr:" CORR);
    CHECK(ledgerkey_id_check(id, NULL) == LEDGERKEY_CORR);
    CHECK(ledgerflow_corr_id("prod", ACT, "nope", id, sizeof id) == -1);
    CHECK(ledgerflow_corr_id("bad env!", ACT, CORR, id, sizeof id) == -1);
    CHECK(ledgerflow_corr_id("prod", ACT, CORR, id, 10) == -1);
}

static void scopes(void)
{
    char env[LEDGERKEY_ENV_MAX + 1], act[GUID_CANON_SIZE], tiny[3];

    CHECK(outbox_id_scope("prod:" ACT ":blob:" BLOB, env, sizeof env, act) == 0);
    CHECK_STR(env, "prod");
    CHECK_STR(act, ACT);
    CHECK(outbox_id_scope("a_b-c:" ACT ":corr:" CORR, env, sizeof env, act) == 0);
    CHECK_STR(env, "a_b-c");
    CHECK(outbox_id_scope("prod:" ACT ":blob:" BLOB, tiny, sizeof tiny, act) == -1);
    CHECK(outbox_id_scope(":" ACT ":blob:" BLOB, env, sizeof env, act) == -1);
    CHECK(outbox_id_scope("prod:" ACT, env, sizeof env, act) == -1);
    CHECK(outbox_id_scope("prod:short:blob:x", env, sizeof env, act) == -1);
    CHECK(outbox_id_scope("noscope", env, sizeof env, act) == -1);
    CHECK(outbox_id_scope(NULL, env, sizeof env, act) == -1);
}

int main(void)
{
    struct conf_env env = { .name = "prod" };
    struct conf_job job = { .name = "out", .env = &env };

    memcpy(job.activity_id, ACT, sizeof job.activity_id);
    download_ids(&job);
    corr_ids();
    scopes();
    return check_done();
}
