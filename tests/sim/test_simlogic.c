/* Unit tests for fosim's pure modules: simguid, simurl, simjson, simjwt, simfault, simqueue,
 * simmemq. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/check.h"
#include "simblobrule.h"
#include "simfault.h"
#include "simguid.h"
#include "simjson.h"
#include "simjwt.h"
#include "simmemq.h"
#include "simqueue.h"
#include "simurl.h"

static void test_guid(void)
{
    char g[37];
    const char *want = "6d31e09f-0249-459f-94f0-aad9c2c47b64";
    const char *in[] = {"6D31E09F-0249-459F-94F0-AAD9C2C47B64", "{6d31e09f-0249-459f-94f0-aad9c2c47b64}",
                        "%7B6D31E09F-0249-459F-94F0-AAD9C2C47B64%7D", "%7b6d31e09f-0249-459f-94f0-aad9c2c47b64%7d"};
    for (size_t i = 0; i < 4; i++) {
        CHECK(simguid_parse(in[i], strlen(in[i]), g) == 0);
        CHECK_STR(g, want);
    }
    CHECK(simguid_parse("6d31e09f", 8, g) == -1);
    CHECK(simguid_parse("{6d31e09f-0249-459f-94f0-aad9c2c47b64", 37, g) == -1);
    CHECK(simguid_parse("zd31e09f-0249-459f-94f0-aad9c2c47b64", 36, g) == -1);
    char a[37], b[37];
    simguid_new(a);
    simguid_new(b);
    CHECK(strcmp(a, b) != 0 && simguid_parse(a, 36, g) == 0 && a[14] == '4');
}

static void test_url(void)
{
    char out[64];
    CHECK(simurl_param("entity=Customer+groups&company=usmf", "entity", 0, out, sizeof(out)) == 1);
    CHECK_STR(out, "Customer groups");
    CHECK(simurl_param("entity=Customer%20groups", "ENTITY", 1, out, sizeof(out)) == 1);
    CHECK_STR(out, "Customer groups");
    CHECK(simurl_param("a=1", "b", 0, out, sizeof(out)) == 0);
    CHECK(simurl_param("a=%2", "a", 0, out, sizeof(out)) == 1);
    CHECK_STR(out, "%2");
    CHECK(simurl_param("a=0123456789", "a", 0, out, 5) == -1);
    CHECK(simurl_decode("x%41+", 5, out, sizeof(out), 0) == 3);
    CHECK_STR(out, "xA+");
}

static void test_json(void)
{
    const char *t = "{'messageId':'abc', 'q':'say \"hi\"', 'n': 3, \"d\": \"it's\"}";
    json_t *j = simjson_lenient_load(t, strlen(t));
    CHECK(j != NULL);
    CHECK_STR(simjson_str_ci(j, "MESSAGEID"), "abc");
    CHECK_STR(simjson_str_ci(j, "q"), "say \"hi\"");
    CHECK_STR(simjson_str_ci(j, "d"), "it's");
    CHECK(json_integer_value(simjson_get_ci(j, "N")) == 3);
    json_decref(j);
    CHECK(simjson_lenient_load("{'a':", 5) == NULL);
}

static void test_jwt(void)
{
    struct simjwt_key *k = simjwt_key_new(), *other = simjwt_key_new();
    json_t *c = json_pack("{s:s, s:i}", "aud", "http://x", "exp", 123);
    char *tok = simjwt_sign(k, c);
    json_t *out = NULL;
    CHECK(tok != NULL);
    CHECK(simjwt_verify(k, tok, strlen(tok), &out) == SIMJWT_OK);
    CHECK_STR(json_string_value(json_object_get(out, "aud")), "http://x");
    json_decref(out);
    CHECK(simjwt_verify(other, tok, strlen(tok), &out) == SIMJWT_BAD_SIGNATURE && !out);
    tok[strlen(tok) - 3] ^= 1;
    CHECK(simjwt_verify(k, tok, strlen(tok), &out) != SIMJWT_OK);
    CHECK(simjwt_verify(k, "a.b", 3, &out) == SIMJWT_MALFORMED);
    free(tok);
    json_decref(c);
    simjwt_key_free(k);
    simjwt_key_free(other);
}

static void test_fault(void)
{
    struct simfault *f = simfault_new();
    struct simfault_rule r;
    char err[128];
    json_t *rule = json_pack("{s:s, s:s, s:i, s:i, s:i}", "endpoint", "connector", "kind",
                             "status", "status", 429, "count", 2, "after", 1);
    CHECK(simfault_add(f, rule, err, sizeof(err)) == 0);
    CHECK(simfault_match(f, "dequeue", 1u << SF_STATUS, &r) == 0); /* skipped by after */
    CHECK(simfault_match(f, "token", 1u << SF_STATUS, &r) == 0);   /* not in the family */
    CHECK(simfault_match(f, "ack", 1u << SF_STATUS, &r) == 1 && r.status == 429 && r.retry_after == 1);
    CHECK(strstr(r.message, "exeeded") != NULL);
    CHECK(simfault_match(f, "enqueue", 1u << SF_STATUS, &r) == 1);
    CHECK(simfault_match(f, "enqueue", 1u << SF_STATUS, &r) == 0); /* count used up */
    json_decref(rule);
    rule = json_pack("{s:s, s:s}", "endpoint", "x", "kind", "bogus");
    CHECK(simfault_add(f, rule, err, sizeof(err)) == -1);
    json_decref(rule);
    simfault_free(f);
}

static void test_queue(void)
{
    struct simqueue *q = simqueue_new();
    const char *job = "b0b5401e-56ca-4dc8-b566-84389a001236";
    struct simqueue_msg *m = simqueue_add(q, job, 1, "/nonexistent/fosim-test", 1, NULL, NULL, NULL, 100);
    CHECK(simqueue_dequeue(q, job, 100, 30, 0) == m && m->prev_dequeue == 0);
    char pop1[64], corr1[37];
    strcpy(pop1, m->pop);
    strcpy(corr1, m->correlation);
    CHECK(simqueue_dequeue(q, job, 129, 30, 0) == NULL);          /* still invisible */
    CHECK(simqueue_dequeue(q, job, 130, 30, 1) == m);             /* redelivered */
    CHECK(m->prev_dequeue == 100 && strcmp(m->pop, pop1) != 0 && strcmp(m->correlation, corr1) != 0);
    CHECK(simqueue_ack(q, corr1, pop1) == SQA_STALE);
    CHECK(simqueue_ack(q, m->correlation, "nope") == SQA_UNKNOWN);
    CHECK(simqueue_ack(q, corr1, m->pop) == SQA_OK);               /* old CorrelationId still known */
    CHECK(simqueue_ack(q, m->correlation, m->pop) == SQA_ALREADY);
    CHECK(simqueue_dequeue(q, job, 1000, 30, 0) == NULL);
    struct simqueue_msg *imp = simqueue_add(q, job, 0, "/nonexistent/fosim-test2", 1, NULL, NULL, NULL, 0);
    imp->has_errors = 1;
    CHECK(simqueue_import_status(imp, 0.5, 1, 1) == SQI_ENQUEUED);
    CHECK(simqueue_import_status(imp, 1.5, 1, 1) == SQI_PROCESSING);
    CHECK(simqueue_import_status(imp, 2.0, 1, 1) == SQI_ERRORS);
    CHECK(simqueue_blob_expired(imp, 604800, 604800) && !simqueue_blob_expired(imp, 604799, 604800));
    simqueue_free(q);
}

/* Messages made on demand: distinct ids, ack by the derived PopReceipt, once. */
static void test_memq(void)
{
    struct simmemq *q = simmemq_new();
    const char *job = "b0b5401e-56ca-4dc8-b566-84389a001236";
    struct simmemq_msg a, b;
    char upper[40];

    CHECK(simmemq_dequeue(q, job, &a) == -1);
    CHECK(simmemq_add(q, job, 2, 300) == 0 && simmemq_left(q) == 2);
    CHECK(simmemq_add(q, job, 1, (1 << 20) + 1) == -1);
    CHECK(simmemq_blob_size(q, "00000000-0000-4000-9000-000000000000", NULL) == -1);
    CHECK(simmemq_dequeue(q, job, &a) == 0 && simmemq_dequeue(q, job, &b) == 0);
    struct simmemq_msg c;
    CHECK(simmemq_dequeue(q, job, &c) == -1);
    CHECK(simmemq_left(q) == 0 && simmemq_handed(q) == 2);
    CHECK(strcmp(a.correlation, b.correlation) != 0 && strcmp(a.blob, b.blob) != 0);
    CHECK(strcmp(a.pop, b.pop) != 0 && strlen(a.pop) == 28 && a.size == 300);
    char canon[37];
    CHECK(simguid_parse(a.correlation, 36, canon) == 0 && strcmp(canon, a.correlation) == 0);
    CHECK(simguid_parse(a.blob, 36, canon) == 0 && strcmp(a.blob, a.correlation) != 0);
    char corr[37];
    CHECK(simmemq_blob_size(q, a.blob, corr) == 300 && strcmp(corr, a.correlation) == 0);
    CHECK(simmemq_blob_size(q, a.correlation, NULL) == -1);
    CHECK(simmemq_ack(q, a.correlation, b.pop) == SMQ_UNKNOWN);
    CHECK(simmemq_ack(q, a.blob, a.pop) == SMQ_UNKNOWN);
    snprintf(upper, sizeof upper, "{%s}", a.correlation);
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 32);
    CHECK(simmemq_ack(q, upper, a.pop) == SMQ_OK);           /* any GUID spelling */
    CHECK(simmemq_ack(q, a.correlation, a.pop) == SMQ_ALREADY);
    CHECK(simmemq_ack(q, b.correlation, b.pop) == SMQ_OK);
    simmemq_clear(q);
    CHECK(simmemq_ack(q, b.correlation, b.pop) == SMQ_UNKNOWN && simmemq_left(q) == 0);
    simmemq_free(q);
}

static int count_entry(void *arg, enum simblobrule_from from, const char *id)
{
    int *n = arg;
    (*n)++;
    return from == SIMBLOBRULE_LATEST && strcmp(id, "QUFB") == 0 ? 0 : from != SIMBLOBRULE_LATEST ? 0 : -1;
}

static void test_blobrule(void)
{
    char sts[512];
    int n = 0;
    CHECK(simblobrule_put_blob_max("2014-02-14") == 64LL << 20);
    CHECK(simblobrule_put_blob_max("2016-05-31") == 256LL << 20);
    CHECK(simblobrule_put_blob_max("2019-12-12") == 5000LL << 20);
    CHECK(simblobrule_block_max("2015-12-11") == 4LL << 20);
    CHECK(simblobrule_block_max("2019-07-07") == 100LL << 20);
    CHECK(simblobrule_block_max("2021-08-06") == 4000LL << 20);
    CHECK(simblobrule_version_ok("2014-02-14") && !simblobrule_version_ok("2014-2-14"));
    CHECK(simblobrule_block_id_ok("QUFB") && simblobrule_block_id_ok("QQ=="));
    CHECK(!simblobrule_block_id_ok("QUF") && !simblobrule_block_id_ok("Q!FB") &&
          !simblobrule_block_id_ok(""));
    CHECK(simblobrule_block_list("<?xml version=\"1.0\"?>\n<BlockList><Latest>QUFB</Latest>"
                                 "<Committed>QUFC</Committed></BlockList>", count_entry, &n) == 2);
    CHECK(n == 2);
    CHECK(simblobrule_block_list("<BlockList><Latest>QUFB</Latest>", count_entry, &n) == -1);
    CHECK(simblobrule_block_list("<BlockList><Latest>QUFB</Committed></BlockList>", count_entry,
                                 &n) == -1);
    CHECK(simblobrule_string_to_sign(sts, sizeof(sts), "2014-02-14", "rw", "a", "b", "acct",
                                     "dmf", "x.zip") == 0);
    CHECK_STR(sts, "rw\na\nb\n/acct/dmf/x.zip\n\n2014-02-14\n\n\n\n\n");
    CHECK(simblobrule_string_to_sign(sts, sizeof(sts), "2018-11-09", "rw", "a", "b", "acct",
                                     "dmf", "x.zip") == 0);
    CHECK_STR(sts, "rw\na\nb\n/blob/acct/dmf/x.zip\n\n\n\n2018-11-09\nb\n\n\n\n\n\n");
}

int main(void)
{
    test_blobrule();
    test_guid();
    test_url();
    test_json();
    test_jwt();
    test_fault();
    test_queue();
    test_memq();
    return check_done();
}
