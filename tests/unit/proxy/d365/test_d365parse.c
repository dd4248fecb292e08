/* test_d365parse: D365 payload parsing and building for the simple API (reference §3, §4). */
#include "check.h"
#include "d365parse.h"

#include <stdlib.h>
#include <string.h>

static void test_final(void)
{
    CHECK(d365parse_status_final("Processed"));
    CHECK(d365parse_status_final("ProcessedWithErrors"));
    CHECK(d365parse_status_final("PreProcessingError"));
    CHECK(d365parse_status_final("PostProcessingFailed"));
    CHECK(d365parse_status_final("PostProcessingError")); /* internal spelling */
    CHECK(d365parse_status_final("processed"));
    CHECK(!d365parse_status_final("Processing"));
    CHECK(!d365parse_status_final("Preprocessing"));
    CHECK(!d365parse_status_final("PreProcessing"));
    CHECK(!d365parse_status_final("Enqueued"));
    CHECK(!d365parse_status_final("Dequeued"));
    CHECK(!d365parse_status_final(""));
    CHECK(!d365parse_status_final(NULL));
}

static void test_action_body(void)
{
    char *b = d365parse_action_body("_messageId", "a\"b", NULL, 0);
    CHECK_STR(b, "{\"_messageId\":\"a\\\"b\"}");
    free(b);
    /* the plain path (no jansson) gives the same text jansson would */
    b = d365parse_action_body("messageId", "84a383c8-336d-45e4-9933-0c3e8bfb734a", NULL, 0);
    CHECK_STR(b, "{\"messageId\":\"84a383c8-336d-45e4-9933-0c3e8bfb734a\"}");
    free(b);
    b = d365parse_action_body("executionId", "caf\xc3\xa9\\x", NULL, 0);
    CHECK_STR(b, "{\"executionId\":\"caf\xc3\xa9\\\\x\"}"); /* jansson's */
    free(b);
    char buf[48];
    b = d365parse_action_body("messageId", "84a383c8-336d-45e4-9933-0c3e8bfb734a", buf,
                              sizeof buf); /* 53 bytes: does not fit, allocated */
    CHECK(b != buf);
    CHECK_STR(b, "{\"messageId\":\"84a383c8-336d-45e4-9933-0c3e8bfb734a\"}");
    free(b);
    CHECK(d365parse_action_body("id", "x", buf, sizeof buf) == buf);
    CHECK_STR(buf, "{\"id\":\"x\"}");
}

static void test_value(void)
{
    const char ok[] = "{\"@odata.context\":\"http://h/data/$metadata#Edm.String\","
                      "\"value\":\"Processed\"}";
    char *v = d365parse_value_string(ok, sizeof ok - 1);
    CHECK_STR(v, "Processed");
    free(v);
    const char null[] = "{\"value\":null}";
    v = d365parse_value_string(null, sizeof null - 1);
    CHECK_STR(v, "");
    free(v);
    const char num[] = "{\"value\":3}";
    CHECK(d365parse_value_string(num, sizeof num - 1) == NULL);
    CHECK(d365parse_value_string("nope", 4) == NULL);
    CHECK(d365parse_value_string("[]", 2) == NULL);
}

/* The flat path (d365parse.c) and jansson agree: what the flat one takes, and what it
 * leaves to jansson (escapes, duplicates, other types, trailing bytes). */
static void check_value(const char *body, const char *want)
{
    char *v = d365parse_value_string(body, strlen(body));
    if (want)
        CHECK_STR(v, want);
    else
        CHECK(v == NULL);
    free(v);
}

static void test_value_flat(void)
{
    check_value(" {\r\n \"a\" : \"x\" ,\t\"value\":\"Queued\" } \n", "Queued");
    check_value("{\"value\" : null , \"b\":null}", "");
    check_value("{}", NULL);
    check_value("{\"other\":\"Processed\"}", NULL);
    check_value("{\"value\":\"a\\\"b\"}", "a\"b");              /* escaped: jansson's */
    check_value("{\"value\":\"caf\xc3\xa9\"}", "caf\xc3\xa9");     /* UTF-8: jansson's */
    check_value("{\"value\":\"A\",\"value\":\"B\"}", NULL);      /* duplicate key */
    check_value("{\"value\":\"A\"} x", NULL);                      /* trailing bytes */
    check_value("{\"value\":nullx}", NULL);
    check_value("{\"value\":\"A\",}", NULL);
    check_value("{\"value\":\"A\"", NULL);
    check_value("{\"value\":{\"x\":\"y\"}}", NULL);
    check_value("{\"n\":1,\"value\":\"Processed\"}", "Processed");  /* a number: jansson */
}

static void test_error(void)
{
    const char env[] =
        "{\"error\":{\"code\":\"\",\"message\":\"An error has occurred.\",\"innererror\":"
        "{\"message\":\"Exception occurred: The message was not found.\\r\\nline 2\","
        "\"type\":\"System.InvalidOperationException\",\"stacktrace\":\"   at Microsoft."
        "Dynamics.Platform.Integration.Services.OData.Action.ActionInvokable.Invoke()\"}}}";
    char msg[D365PARSE_MSG_MAX];
    CHECK(d365parse_error_message(env, sizeof env - 1, msg, sizeof msg) == 0);
    CHECK_STR(msg, "Exception occurred: The message was not found.  line 2");
    CHECK(!strstr(msg, "ActionInvokable"));
    CHECK(!strstr(msg, "System.InvalidOperationException"));

    const char outer[] = "{\"error\":{\"code\":\"\",\"message\":\"Number of requests exeeded\"}}";
    CHECK(d365parse_error_message(outer, sizeof outer - 1, msg, sizeof msg) == 0);
    CHECK_STR(msg, "Number of requests exeeded");

    char small[8];
    CHECK(d365parse_error_message(outer, sizeof outer - 1, small, sizeof small) == 0);
    CHECK_STR(small, "Number ");

    CHECK(d365parse_error_message("", 0, msg, sizeof msg) == -1);
    CHECK_STR(msg, "");
    const char other[] = "{\"Message\":\"Authentication failed.\",\"StackTrace\":null}";
    CHECK(d365parse_error_message(other, sizeof other - 1, msg, sizeof msg) == -1);
}

static void test_message_id(void)
{
    char id[GUID_CANON_SIZE];
    const char q[] = "\"84A383C8-336d-45e4-9933-0c3e8bfb734a\"";
    CHECK(d365parse_message_id(q, sizeof q - 1, id) == 0);
    CHECK_STR(id, "84a383c8-336d-45e4-9933-0c3e8bfb734a");
    const char bare[] = " {84a383c8-336d-45e4-9933-0c3e8bfb734a}\r\n";
    CHECK(d365parse_message_id(bare, sizeof bare - 1, id) == 0);
    CHECK_STR(id, "84a383c8-336d-45e4-9933-0c3e8bfb734a");
    CHECK(d365parse_message_id("\"\"", 2, id) == -1);
    CHECK(d365parse_message_id("\"", 1, id) == -1);
    CHECK(d365parse_message_id("", 0, id) == -1);
    CHECK(d365parse_message_id("\"84a383c8-336d-45e4-9933-0c3e8bfb734\"", 38, id) == -1);
}

static void test_errors_array(void)
{
    json_t *a = d365parse_errors_array("[{\"RecordId\":\"1\",\"Field\":\"F\",\"ErrorMessage\":\"x\"}]");
    CHECK(json_is_array(a) && json_array_size(a) == 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(a, 0), "Field")), "F");
    json_decref(a);
    a = d365parse_errors_array("[]");
    CHECK(json_is_array(a) && json_array_size(a) == 0);
    json_decref(a);
    CHECK(d365parse_errors_array("[{\"ErrorMessage\":\"un\"escaped\"}]") == NULL);
    CHECK(d365parse_errors_array("{}") == NULL);
    CHECK(d365parse_errors_array("") == NULL);
    CHECK(d365parse_errors_array(NULL) == NULL);
}

static void test_dequeue(void)
{
    const char body[] =
        "{\"CorrelationId\":\"5acd8121-d4e1-4cf8-b31f-9713de3e3627\",\"PopReceipt\":\"AgAA=\","
        "\"DownloadLocation\":\"http://h:80/api/connector/download/%7Bb0b5%7D?correlation-id=5a"
        "&blob=c5\",\"IsDownLoadFileExist\":true,\"FileDownLoadErrorMessage\":\"\","
        "\"LastDequeueDateTime\":null}";
    struct d365parse_dequeue d;
    CHECK(d365parse_dequeue(body, sizeof body - 1, &d) == 0);
    CHECK_STR(d.correlation_id, "5acd8121-d4e1-4cf8-b31f-9713de3e3627");
    CHECK_STR(d.pop_receipt, "AgAA=");
    CHECK(d.download_location && strstr(d.download_location, "blob=c5"));
    CHECK(d.file_exists);
    CHECK(d.file_error == NULL);
    CHECK(d.last_dequeue == NULL);
    d365parse_dequeue_cleanup(&d);
    CHECK(d.correlation_id == NULL);

    const char gone[] = "{\"CorrelationId\":\"c\",\"PopReceipt\":\"p\",\"DownloadLocation\":null,"
                        "\"IsDownLoadFileExist\":false,\"FileDownLoadErrorMessage\":\"blob gone\","
                        "\"LastDequeueDateTime\":\"2024-05-01T10:00:00Z\"}";
    CHECK(d365parse_dequeue(gone, sizeof gone - 1, &d) == 0);
    CHECK(d.download_location == NULL);
    CHECK(!d.file_exists);
    CHECK_STR(d.file_error, "blob gone");
    CHECK_STR(d.last_dequeue, "2024-05-01T10:00:00Z");
    d365parse_dequeue_cleanup(&d);

    const char nopop[] = "{\"CorrelationId\":\"c\"}";
    CHECK(d365parse_dequeue(nopop, sizeof nopop - 1, &d) == -1);
    CHECK(d.correlation_id == NULL);
    CHECK(d365parse_dequeue("", 0, &d) == -1);
}

static void test_download_path(void)
{
    char *p = d365parse_download_path(
        "http://host.example:80/api/connector/download/%7BB0B5%7D?correlation-id=c&blob=b");
    CHECK_STR(p, "/api/connector/download/%7BB0B5%7D?correlation-id=c&blob=b");
    free(p);
    p = d365parse_download_path("https://h/en/api/connector/download/x?blob=b");
    CHECK_STR(p, "/en/api/connector/download/x?blob=b");
    free(p);
    CHECK(d365parse_download_path("https://h/api/connector/ack/x") == NULL);
    CHECK(d365parse_download_path("https://h/data/Foo") == NULL);
    CHECK(d365parse_download_path("ftp://h/api/connector/download/x") == NULL);
    CHECK(d365parse_download_path("/api/connector/download/x") == NULL);
    CHECK(d365parse_download_path("https://h") == NULL);
    CHECK(d365parse_download_path("https://h/api/connector/download/../../data/x") == NULL);
    CHECK(d365parse_download_path("https://h/api/connector/download/x y") == NULL);
    CHECK(d365parse_download_path("https://h/api/connector/download/x\r\nHost: evil") == NULL);
}

static void test_encode(void)
{
    char buf[32] = "";
    size_t n = 0;
    CHECK(d365parse_query_encode(buf, sizeof buf, &n, "Customer groups&x=1") == 0);
    CHECK_STR(buf, "Customer%20groups%26x%3D1");
    CHECK(n == strlen(buf));
    char tiny[5] = "";
    n = 0;
    CHECK(d365parse_query_encode(tiny, sizeof tiny, &n, "a b") == -1);
    CHECK(n == 0);

    char *p = d365parse_enqueue_path("6d31e09f-0249-459f-94f0-aad9c2c47b64", "Customer groups",
                                     "usmf");
    CHECK_STR(p, "/api/connector/enqueue/6d31e09f-0249-459f-94f0-aad9c2c47b64"
                 "?entity=Customer%20groups&company=usmf");
    free(p);
    p = d365parse_enqueue_path("a", NULL, "us mf");
    CHECK_STR(p, "/api/connector/enqueue/a?company=us%20mf");
    free(p);
    p = d365parse_enqueue_path("a", NULL, NULL);
    CHECK_STR(p, "/api/connector/enqueue/a");
    free(p);
}

int main(void)
{
    test_final();
    test_action_body();
    test_value();
    test_value_flat();
    test_error();
    test_message_id();
    test_errors_array();
    test_dequeue();
    test_download_path();
    test_encode();
    return check_done();
}
