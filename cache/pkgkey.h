/* pkgkey: Redis key names and record values of package imports shared between fogate
 * instances (the per-environment import lock, Idempotency-Key records). Pure: no I/O.
 * Invariant: an Idempotency-Key value never appears in a key or a record, only its
 * SHA-256; a record holds no URL (SAS URLs are secrets). */
#ifndef FOGATE_PKGKEY_H
#define FOGATE_PKGKEY_H

#include <stddef.h>

#define PKGKEY_NAME_MAX 64      /* environment and scope names: 1..64 of [A-Za-z0-9_-] */
#define PKGKEY_KEY_SIZE 192     /* any key built here, NUL included */
#define PKGKEY_EXEC_MAX 200     /* execution id, NUL included (= PACKAGENAME_EXEC_MAX) */
#define PKGKEY_RECORD_SIZE (2 + 64 + 1 + PKGKEY_EXEC_MAX) /* a record, NUL included */

/* Writes "fogate:pkg:lock:<env>" into out[PKGKEY_KEY_SIZE]. Returns 0, or -1 for a bad
 * environment name. */
int pkgkey_lock(const char *env, char out[PKGKEY_KEY_SIZE]);

/* Writes "fogate:pkg:idem:<scope>:<hex SHA-256 of the key's len bytes>" into
 * out[PKGKEY_KEY_SIZE]. Returns 0, or -1 for a bad scope, an empty key or a hash failure. */
int pkgkey_idem(const char *scope, const char *key, size_t len, char out[PKGKEY_KEY_SIZE]);

enum pkgkey_state {
    PKGKEY_RESERVED,    /* an instance is uploading / waiting: content not final yet */
    PKGKEY_DONE,        /* ImportFromPackage was (or is being) sent for exec_id */
};

struct pkgkey_record {
    enum pkgkey_state state;
    char exec_id[PKGKEY_EXEC_MAX];
    unsigned char sha256[32];       /* the package's SHA-256; zero while reserved */
};

/* "R <exec_id>" or "D <64 hex digits> <exec_id>" into out[PKGKEY_RECORD_SIZE].
 * Returns 0, or -1 if the execution id is empty, too long or holds a space. */
int pkgkey_record_format(const struct pkgkey_record *rec, char out[PKGKEY_RECORD_SIZE]);

/* Parses `len` bytes of `s` (a record as formatted above) into *out. Returns 0, or -1
 * (out zeroed) for anything else. */
int pkgkey_record_parse(const char *s, size_t len, struct pkgkey_record *out);

#endif
