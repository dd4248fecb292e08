/* test_dlrewrite: DownloadLocation becomes fogate's URL; every other byte is kept. */
#include <stdlib.h>

#include "check.h"
#include "dlrewrite.h"

static const char *BASE = "https://gw.example.com";

static char *rw(const char *in, enum dlrewrite_result want)
{
    char *out = NULL;
    size_t n = 0;
    enum dlrewrite_result r = dlrewrite(in, strlen(in), BASE, &out, &n);
    CHECK(r == want);
    if (r != DLREWRITE_REWRITTEN) {
        CHECK(out == NULL);
        return NULL;
    }
    CHECK(out && strlen(out) == n);
    return out;
}

int main(void)
{
    char *o;

    o = rw("{\"CorrelationId\":\"5acd\",\"PopReceipt\":\"AgA=\",\"DownloadLocation\":"
           "\"http://host:80/api/connector/download/%7Bb0b5%7D?correlation-id=5acd&blob=c5+x%20y\","
           "\"IsDownLoadFileExist\":true,\"FileDownLoadErrorMessage\":\"\","
           "\"LastDequeueDateTime\":null}", DLREWRITE_REWRITTEN);
    CHECK_STR(o, "{\"CorrelationId\":\"5acd\",\"PopReceipt\":\"AgA=\",\"DownloadLocation\":"
                 "\"https://gw.example.com/api/connector/download/%7Bb0b5%7D?correlation-id=5acd"
                 "&blob=c5+x%20y\",\"IsDownLoadFileExist\":true,\"FileDownLoadErrorMessage\":\"\","
                 "\"LastDequeueDateTime\":null}");
    free(o);

    /* whitespace, escaped slashes, /en prefix, https with port */
    o = rw("{ \"A\" : [1, {\"DownloadLocation\":\"x\"}],\n \"DownloadLocation\" : "
           "\"https:\\/\\/h:443\\/en\\/api\\/connector\\/download\\/abc?b=1\" }\n",
           DLREWRITE_REWRITTEN);
    CHECK_STR(o, "{ \"A\" : [1, {\"DownloadLocation\":\"x\"}],\n \"DownloadLocation\" : "
                 "\"https://gw.example.com/en/api/connector/download/abc?b=1\" }\n");
    free(o);

    rw("{\"CorrelationId\":\"x\",\"DownloadLocation\":null,\"IsDownLoadFileExist\":false}",
       DLREWRITE_UNCHANGED);
    rw("{\"CorrelationId\":\"x\"}", DLREWRITE_UNCHANGED);
    rw("{}", DLREWRITE_UNCHANGED);
    rw("{\"DownloadLocation\":\"https://acct.blob.core.windows.net/dmf/x?sig=1\"}",
       DLREWRITE_UNCHANGED);
    rw("{\"DownloadLocation\":\"/api/connector/download/x\"}", DLREWRITE_UNCHANGED);
    rw("{\"DownloadLocation\":\"http://h/api/connector/download/x\"", DLREWRITE_MALFORMED);
    rw("[\"DownloadLocation\"]", DLREWRITE_MALFORMED);
    rw("", DLREWRITE_MALFORMED);
    rw("{\"a\":\"unterminated}", DLREWRITE_MALFORMED);
    rw("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
       DLREWRITE_MALFORMED);
    return check_done();
}
