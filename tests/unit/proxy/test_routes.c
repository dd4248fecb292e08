/* test_routes: the pure parts of routing: which methods a /data path allows (405's Allow),
 * connector paths and loopback addresses. */
#include "check.h"
#include "routes.h"

#include <string.h>

#define CRUD "GET, HEAD, POST, PATCH, PUT, DELETE"
#define ACTION "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."

static const char *allow(const char *path)
{
    return routes_data_allow(path, strlen(path));
}

static void test_data_allow(void)
{
    CHECK_STR(allow("/data"), "GET, HEAD");
    CHECK_STR(allow("/data/"), "GET, HEAD");
    CHECK_STR(allow("/data/$metadata"), "GET, HEAD");
    CHECK_STR(allow("/DATA/$METADATA#Customers"), "GET, HEAD");
    CHECK_STR(allow("/data/$batch"), "POST");
    CHECK_STR(allow(ACTION "GetMessageStatus"), "POST");
    CHECK_STR(allow(ACTION "ImportFromPackage"), "POST");
    CHECK_STR(allow("/data/a/microsoft.dynamics.dataentities.Export"), "POST");
    CHECK_STR(allow("/data/CustomersV3"), CRUD);
    CHECK_STR(allow("/data/CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')"), CRUD);
    CHECK_STR(allow("/data/CustomersV3/$count"), CRUD);
    CHECK_STR(allow("/data/$batchX"), CRUD);
}

static void test_connector(void)
{
    enum routes_op op;
    const char *id;
    size_t n;
    const char *p = "/en/api/connector/ack/abc";

    CHECK(routes_parse_connector(p, strlen(p), &op, &id, &n) == 0 && op == ROUTES_ACK && n == 3);
    p = "/api/connector/dequeue/a/b";
    CHECK(routes_parse_connector(p, strlen(p), &op, &id, &n) < 0);
    CHECK(routes_loopback("127.0.0.1:5") && routes_loopback("[::1]:5"));
    CHECK(!routes_loopback("10.0.0.1:5"));
}

int main(void)
{
    test_data_allow();
    test_connector();
    return check_done();
}
