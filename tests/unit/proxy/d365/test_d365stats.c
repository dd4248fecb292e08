/* test_d365stats: operations from D365 paths, code and status label sets, env slots. */
#include <string.h>

#include "check.h"
#include "d365stats.h"

static const char *op(const char *path)
{
    return d365stats_op_name(d365stats_op(path));
}

int main(void)
{
    CHECK_STR(op("/api/connector/enqueue/%7Babc%7D?entity=Customer%20groups"), "enqueue");
    CHECK_STR(op("/en/api/connector/dequeue/abc"), "dequeue");
    CHECK_STR(op("/api/connector/ack/abc"), "ack");
    CHECK_STR(op("/api/connector/jobstatus/abc?jobid=x"), "jobstatus");
    CHECK_STR(op("/api/connector/download/abc?x=1"), "download");
    CHECK_STR(op("/api/connector/other/abc"), "other");
    CHECK_STR(op("/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
                 "ImportFromPackageAsync"), "import_from_package");
    CHECK_STR(op("/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
                 "GetExecutionSummaryStatus"), "get_execution_status");
    CHECK_STR(op("/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
                 "GetAzureWriteUrl"), "get_azure_write_url");
    CHECK_STR(op("/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
                 "Nope"), "dmf_other");
    CHECK_STR(op("/data/CustomersV3?$top=1"), "odata");
    CHECK_STR(op("/"), "other");

    CHECK_STR(d365stats_code_name(d365stats_code_index(429)), "429");
    CHECK_STR(d365stats_code_name(d365stats_code_index(0)), "error");
    CHECK_STR(d365stats_code_name(d365stats_code_index(418)), "other");
    CHECK_STR(d365stats_final_name(d365stats_final_index("ProcessedWithErrors")),
              "ProcessedWithErrors");
    CHECK_STR(d365stats_final_name(d365stats_final_index("Whatever")), "other");

    struct d365stats *s = d365stats_new(2);
    struct d365stats_env *a = d365stats_env(s, "prod");
    CHECK(a && d365stats_env(s, "prod") == a);
    CHECK(d365stats_env(s, "test") != NULL);
    CHECK(d365stats_env(s, "third") == NULL); /* full: not counted, never a new series */
    CHECK(atomic_load(&s->n) == 2);
    d365stats_free(s);
    return check_done();
}
