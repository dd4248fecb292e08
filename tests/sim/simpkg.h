/* simpkg: the data-management package API (reference §4.5-§4.10): write URLs, import and
 * export executions, their status, exported packages and error files in Azurite.
 * Invariant: all blob I/O runs in worker threads that touch only their own job object; the
 * loop thread owns every execution and applies job results in the completion callback. */
#ifndef SIMPKG_H
#define SIMPKG_H

#include <jansson.h>
#include "sim.h"

struct simpkg;

/* Creates the package state for `s` (borrowed; must outlive it). NULL on failure. */
struct simpkg *simpkg_new(struct sim *s);
/* Waits for running workers, then frees everything (pending replies are dropped). */
void simpkg_free(struct simpkg *p);
/* Forgets all executions (running workers finish; their results are ignored). */
void simpkg_clear(struct simpkg *p);

/* GetExecutionErrors for a package execution: a malloc'd string holding a JSON array
 * ("[]" when none), or NULL if `exec` is not a package execution. */
char *simpkg_execution_errors(struct sim *s, const char *exec, double now);

/* OData action handlers: params is the parsed body (borrowed). Each replies exactly once. */
void simpkg_get_azure_write_url(struct sim *s, struct simhttp_req *req, const json_t *params);
void simpkg_import_from_package(struct sim *s, struct simhttp_req *req, const json_t *params);
void simpkg_import_from_package_async(struct sim *s, struct simhttp_req *req, const json_t *params);
void simpkg_export_to_package(struct sim *s, struct simhttp_req *req, const json_t *params);
void simpkg_get_execution_summary_status(struct sim *s, struct simhttp_req *req, const json_t *params);
void simpkg_get_exported_package_url(struct sim *s, struct simhttp_req *req, const json_t *params);
void simpkg_generate_error_keys_file(struct sim *s, struct simhttp_req *req, const json_t *params);
void simpkg_get_error_keys_file_url(struct sim *s, struct simhttp_req *req, const json_t *params);
void simpkg_get_staging_error_file_url(struct sim *s, struct simhttp_req *req, const json_t *params);
void simpkg_get_execution_summary_page_url(struct sim *s, struct simhttp_req *req, const json_t *params);

#endif
