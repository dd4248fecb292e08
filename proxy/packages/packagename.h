/* packagename: pure helpers of the package API (reference §4.5-§4.9): the company from a
 * package file name, execution ids fogate chooses, GetAzureWriteUrl's value, execution
 * statuses, and SAS URLs made safe to log.
 * Invariant: no I/O; a SAS URL's query never reaches an output meant for logs or errors. */
#ifndef FOGATE_PACKAGENAME_H
#define FOGATE_PACKAGENAME_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "d365.h"

#define PACKAGENAME_EXEC_MAX 200   /* an execution id fogate accepts, NUL included */

/* The legal entity a package file name starts with, as the Logic Apps seed reads it:
 * "USMF_Customer_001_V101.zip" -> "USMF" (directories are skipped). Writes it to out (cap
 * bytes) and returns 0, or -1 when the name has no "<1-8 letters or digits>_" prefix. */
int packagename_company(const char *file_name, char *out, size_t cap);

/* An execution id fogate chooses for an import or export: "<project>-fogate-<hex>" with
 * `rnd` (16 bytes, random) as 32 hex digits; the project is cut to 64 bytes and any byte
 * outside [A-Za-z0-9_.-] becomes '_'. out needs PACKAGENAME_EXEC_MAX bytes. */
void packagename_exec_id(const char *project, const unsigned char rnd[16],
                         char out[PACKAGENAME_EXEC_MAX]);

/* True iff `id` can be an execution id in a fogate path: 1..PACKAGENAME_EXEC_MAX-1 bytes,
 * visible ASCII without '/', '?', '#', '%', '"', '\\'. */
bool packagename_exec_ok(const char *id, size_t len);

/* Parses GetAzureWriteUrl's value (a string holding {"BlobId","BlobUrl"}). Returns the
 * BlobUrl (malloc'd; the caller frees) or NULL when the value is not that. */
char *packagename_write_url(const char *value);

/* GetExecutionSummaryStatus values that end an execution: Succeeded, PartiallySucceeded,
 * Failed, Canceled. */
bool packagename_status_final(const char *status);

/* msgwait's not_yet for executions: "NotRun" for D365's 400 "Execution details were not
 * found" (an execution that D365 has not registered yet, reference §4.9), else NULL. */
const char *packagename_not_yet(const struct d365_err *err);

/* Copies `url` without its query and fragment into out (cap bytes, NUL-terminated,
 * truncated to fit): safe for logs and error messages. */
void packagename_redact(const char *url, char *out, size_t cap);

/* The expiry (`se`, "YYYY-MM-DD[THH:MM:SSZ]", %-encoded or not) of a SAS URL into *out
 * (UTC seconds) and 0, or -1 when the URL has no readable `se`. */
int packagename_sas_expiry(const char *url, time_t *out);

/* True iff the SAS URL has an `se` at or before `now` (UTC seconds). */
bool packagename_sas_expired(const char *url, time_t now);

#endif
