/* confcheck: cross-field validation of a filled conf, and the values derived from it
 * (token audience, token endpoint, parsed Redis URL). Checks that secret files are
 * readable and secret env vars set without ever reading or printing a secret.
 * conf.c runs it as a pass of conf_load and it uses conf.h's types and lookups
 * (conf_env_find, conf_job_find): conf, confcheck and confredis are the loader split by
 * pass, with conf.h as the shared type header; nothing else calls the passes. */
#ifndef FOGATE_CONFCHECK_H
#define FOGATE_CONFCHECK_H

#include "conf.h"

/* Validates `conf` (filled from a shape-checked document, derived fields still unset)
 * and sets the derived fields: env resource/token_endpoint/canonical client_id, normalised
 * URLs, job->env and client->jobs links, redis host/port/unix_path/db/tls/username/
 * password_source/server_name. Returns 0, or -1 with err->path and err->message set
 * (message without file or line). `conf` is borrowed and modified. */
int confcheck_run(struct conf *conf, struct conf_error *err);

/* 0 if `workers` threads can run `conf`: several workers with package jobs need
 * packages.shared. Called by confcheck_run for a fixed count and by the workers once "auto"
 * is resolved; -1 with err set otherwise. */
int confcheck_workers(const struct conf *conf, unsigned workers, struct conf_error *err);

/* Fails with "<path>: cannot read <file>: <reason>" unless `file` opens for reading and is
 * a non-empty regular file. Never reads it. Returns 0 or -1. */
int confcheck_file(const char *file, const char *path, struct conf_error *err);

/* Fails unless `name` is a valid environment variable name that is set and non-empty.
 * Never prints the value. Returns 0 or -1. */
int confcheck_env_var(const char *name, const char *path, struct conf_error *err);

/* True iff the `len` bytes at `host` are a DNS name / IPv4 literal (letters, digits, '.',
 * '-', '_'), or, when `bracketed`, an IPv6 literal. */
bool confcheck_host_ok(const char *host, size_t len, bool bracketed);

#endif
