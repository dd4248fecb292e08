/* simblobrule: Azure Blob rules that fosim's own blob store applies, by storage service
 * version (the SAS `sv`): size caps, block ids, the Put Block List body, and the SAS
 * string-to-sign. Pure: no I/O, no clock, no state.
 * Invariant: every output is NUL-terminated within its cap, or the call returns -1. */
#ifndef SIMBLOBRULE_H
#define SIMBLOBRULE_H

#include <stddef.h>

#define SIMBLOBRULE_MAX_BLOCKS 50000          /* committed blocks per blob */
#define SIMBLOBRULE_MAX_UNCOMMITTED 100000    /* uncommitted blocks per blob */
#define SIMBLOBRULE_ID_MAX 64                 /* decoded block id bytes */

/* The largest single Put Blob body for service version sv ("YYYY-MM-DD"): 64 MiB before
 * 2016-05-31, 256 MiB before 2019-12-12, 5000 MiB from then on. */
long long simblobrule_put_blob_max(const char *sv);

/* The largest Put Block body for sv: 4 MiB before 2016-05-31, 100 MiB before 2019-12-12,
 * 4000 MiB from then on. */
long long simblobrule_block_max(const char *sv);

/* 1 if sv looks like a service version (YYYY-MM-DD), else 0. */
int simblobrule_version_ok(const char *sv);

/* 1 if id (already percent-decoded) is valid base64 whose decoded length is 1..64 bytes. */
int simblobrule_block_id_ok(const char *id);

/* Where a Put Block List entry may come from. */
enum simblobrule_from { SIMBLOBRULE_LATEST, SIMBLOBRULE_COMMITTED, SIMBLOBRULE_UNCOMMITTED };

/* Calls on_entry(arg, from, id) for each <Latest>/<Committed>/<Uncommitted> element of a
 * Put Block List body (xml, NUL-terminated), in order. Returns the number of entries, or
 * -1 when the body is not a <BlockList>, an element is malformed, an id is longer than
 * id_cap - 1, or on_entry returned non-zero. */
int simblobrule_block_list(const char *xml, int (*on_entry)(void *arg,
                           enum simblobrule_from from, const char *id), void *arg);

/* The string-to-sign of a blob service SAS with sr=b for version sv, in Azure's layout for
 * that version (before 2015-04-05: no "/blob" prefix, no sip/spr; before 2018-11-09: no
 * sr/snapshot; from 2020-12-06: the encryption scope line). Returns 0 or -1. */
int simblobrule_string_to_sign(char *out, size_t cap, const char *sv, const char *sp,
                               const char *st, const char *se, const char *account,
                               const char *container, const char *blob);

#endif
