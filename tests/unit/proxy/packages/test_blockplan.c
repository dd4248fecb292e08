/* test_blockplan: SAS version parsing, caps by version, block size, block ids (base64,
 * equal length, query-encoded) and the Put Block List body. */
#include <stdlib.h>
#include <string.h>

#include "blockplan.h"
#include "check.h"

#define MIB ((int64_t)1 << 20)

static void test_version(void)
{
    char sv[16];

    blockplan_version("https://a.blob.core.windows.net/dmf/x?sv=2014-02-14&sr=b&sig=s%3D", sv,
                      sizeof sv);
    CHECK_STR(sv, "2014-02-14");
    blockplan_version("http://h/dmf/x?sr=b&sv=2019-12-12", sv, sizeof sv);
    CHECK_STR(sv, "2019-12-12");
    blockplan_version("http://h/dmf/x?sr=b", sv, sizeof sv);
    CHECK_STR(sv, BLOCKPLAN_OLDEST_SV);
    blockplan_version("http://h/dmf/x?xsv=2019-12-12&sv=20191212", sv, sizeof sv);
    CHECK_STR(sv, BLOCKPLAN_OLDEST_SV);
}

static void test_caps(void)
{
    CHECK(blockplan_put_blob_max("2014-02-14") == 64 * MIB);
    CHECK(blockplan_put_blob_max("2018-11-09") == 256 * MIB);
    CHECK(blockplan_put_blob_max("2019-12-12") == 5000 * MIB);
    CHECK(blockplan_block_max("2015-12-11") == 4 * MIB);
    CHECK(blockplan_block_max("2016-05-31") == 100 * MIB);
    CHECK(blockplan_block_max("2020-02-10") == 4000 * MIB);
    /* the configured size, lowered to the version's block cap */
    CHECK(blockplan_block_size("2014-02-14", 8 << 20, 1 << 30) == 4 << 20);
    CHECK(blockplan_block_size("2019-12-12", 8 << 20, 1 << 30) == 8 << 20);
    CHECK(blockplan_block_size("2014-02-14", 4 << 20, 50000 * 4 * MIB) == 4 << 20);
    CHECK(blockplan_block_size("2014-02-14", 4 << 20, 50000 * 4 * MIB + 1) == 0);
}

static void test_ids(void)
{
    char q[BLOCKPLAN_ID_QUERY_MAX], q2[BLOCKPLAN_ID_QUERY_MAX];
    size_t len = 0;
    char *xml;

    CHECK(blockplan_id_query(0, q, sizeof q) == 0);
    CHECK_STR(q, "&comp=block&blockid=Zm9nYXRlMDAwMDAw"); /* base64("fogate000000") */
    CHECK(blockplan_id_query(49999, q2, sizeof q2) == 0);
    CHECK(strlen(q) == strlen(q2) && strcmp(q, q2) != 0);
    CHECK(blockplan_id_query(50000, q, sizeof q) == -1);
    CHECK(blockplan_id_query(1, q, 10) == -1);
    xml = blockplan_list_xml(2, &len);
    CHECK(xml && len == strlen(xml));
    CHECK_STR(xml, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>"
                   "<Latest>Zm9nYXRlMDAwMDAw</Latest><Latest>Zm9nYXRlMDAwMDAx</Latest>"
                   "</BlockList>");
    free(xml);
    CHECK(blockplan_list_xml(0, &len) == NULL);
    CHECK(blockplan_list_xml(50001, &len) == NULL);
}

int main(void)
{
    test_version();
    test_caps();
    test_ids();
    return check_done();
}
