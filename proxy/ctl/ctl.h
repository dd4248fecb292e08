/* ctl: what fogatectl's commands share: the options of one run and the secrets read for
 * it (API key, admin token: from a file or the environment, never from argv). */
#ifndef FOGATE_CTL_H
#define FOGATE_CTL_H

#include <stdbool.h>

#define CTL_SECRET_MAX 512

struct ctlopts {
    const char *url;          /* client API base: --url, FOGATE_URL */
    const char *admin_url;    /* admin listener base: --admin-url, FOGATE_ADMIN_URL */
    const char *key_file;     /* --key-file, FOGATE_API_KEY_FILE (else FOGATE_API_KEY) */
    const char *token_file;   /* --token-file, FOGATE_ADMIN_TOKEN_FILE (else FOGATE_ADMIN_TOKEN) */
    const char *job;          /* --job */
    const char *status, *file, *since, *until, *limit; /* history filters */
    const char *name;         /* send: X-File-Name (default: the file's base name) */
    const char *suffix;       /* next: appended to the message id (default "") */
    long wait_s;              /* send: how long to wait for a final status */
    bool json;                /* print fogate's JSON as it came */
    bool no_wait;             /* send: stop after the 202 */
    const char *arg;          /* the command's argument (FILE, DIR, JOB, ID) */
};

/* Reads the secret for `file_opt` (a path) or else the environment variable `env_value`
 * into out (CTL_SECRET_MAX): the first line, trimmed. Returns 0, 1 when neither is given,
 * or -1 after printing why (never the contents). */
int ctl_secret(const char *file_opt, const char *env_value, char out[CTL_SECRET_MAX]);

/* send FILE and next DIR (ctlxfer.c); return an exit code (ctlcode.h). */
int ctlxfer_send(const struct ctlopts *o);
int ctlxfer_next(const struct ctlopts *o);

#endif
