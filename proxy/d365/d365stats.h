/* d365stats: what the calls to D365 count, per environment: requests by operation and
 * status code, duration by operation, retries, 401 token refreshes, 429s and the
 * throttle gate's end. Written by the worker that owns the upcall context (statcell.h),
 * read by proxy/admin at scrape time from any thread.
 * Invariant: labels come from fixed sets (operations, codes) and the configured
 * environment names; a slot, once named, keeps its name for the life of the process. */
#ifndef FOGATE_D365STATS_H
#define FOGATE_D365STATS_H

#include <stdatomic.h>
#include <stddef.h>

#include "statcell.h"

#define D365STATS_NAME_MAX 64
#define D365STATS_CODES 19   /* the codes of d365stats_code_name; last two: other, error */
#define D365STATS_FINALS 9   /* final statuses of d365stats_final_name; last = other */
#define D365STATS_KINDS 2    /* 0: message (GetMessageStatus), 1: execution (DMF) */

enum d365stats_op {
    D365_OP_ENQUEUE, D365_OP_DEQUEUE, D365_OP_ACK, D365_OP_JOBSTATUS, D365_OP_DOWNLOAD,
    D365_OP_IMPORT_FROM_PACKAGE, D365_OP_EXPORT_TO_PACKAGE, D365_OP_GET_AZURE_WRITE_URL,
    D365_OP_GET_EXECUTION_STATUS, D365_OP_GET_EXPORTED_PACKAGE_URL, D365_OP_DMF_OTHER,
    D365_OP_ODATA, D365_OP_OTHER, D365STATS_OPS
};

struct d365stats_env {
    char name[D365STATS_NAME_MAX];  /* written once, before the slot is published */
    statcell requests[D365STATS_OPS][D365STATS_CODES];
    struct stathist duration[D365STATS_OPS];
    statcell retries;               /* attempts after the first (5xx, connection, 401, 429) */
    statcell refreshes_401;         /* D365 answered 401: token dropped and refreshed */
    statcell throttled;             /* D365 answered 429 */
    statgauge gate_until;           /* unix seconds the 429 gate stays closed until; 0 */
    statgauge last_error_at;        /* unix seconds of the last answer >= 400 or none; 0 */
    statgauge last_error_status;    /* that answer's HTTP status; 0 = no answer */
    statcell finals[D365STATS_KINDS][D365STATS_FINALS]; /* final statuses seen, once per id */
};

struct d365stats {
    _Atomic size_t n;               /* published slots (release on add, acquire on read) */
    size_t cap;
    struct d365stats_env env[];     /* cap slots */
};

/* A stats table with room for `cap` environments. NULL when out of memory. */
struct d365stats *d365stats_new(size_t cap);
void d365stats_free(struct d365stats *s);

/* The slot of environment `name`, added when new and there is room; NULL when full.
 * Owner thread only. */
struct d365stats_env *d365stats_env(struct d365stats *s, const char *name);

/* The operation a request is: by its path (`path_query`, query ignored; "/en" prefix
 * allowed). Pure. */
enum d365stats_op d365stats_op(const char *path_query);

/* Index of a status code (0 = no answer: "error"). Pure. */
unsigned d365stats_code_index(int status);

/* Index of a final job status ("ProcessedWithErrors", "Failed" ...). Pure. */
unsigned d365stats_final_index(const char *status);

/* Label values (static strings). Pure. */
const char *d365stats_final_name(unsigned i);
const char *d365stats_kind_name(unsigned kind);
const char *d365stats_op_name(unsigned op);
const char *d365stats_code_name(unsigned i);

#endif
