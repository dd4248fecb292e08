/* simblob: fosim's own blob store (config "blob_store": "self"), an Azure Blob endpoint at
 * <base_url>/fosimstore/dmf/<blob>?<SAS> that GetAzureWriteUrl hands out with the SAS
 * version of "blob_sas_version" (D365's sv=2014-02-14 by default). Put Blob, Put Block,
 * Put Block List, Get Blob and Get Blob Properties, with Azure's caps for that version
 * (413 RequestBodyTooLarge), block id rules and XML errors (simblobrule).
 * Invariant: blob and block bytes live in files in the data dir, never in memory; a blob
 * exists (GET 200) only once a Put Blob or a Put Block List committed it. */
#ifndef SIMBLOB_H
#define SIMBLOB_H

#include <jansson.h>

#include "sim.h"

#define SIMBLOB_ACCOUNT "fosimstore"

struct simblob;

struct simblob *simblob_new(void);
/* Deletes every blob and block file and frees b. NULL is a no-op. */
void simblob_free(struct simblob *b);
/* Deletes every blob and block file (control API reset). */
void simblob_clear(struct simblob *b);

/* The route for a blob store request (/fosimstore/...), with an endpoint label by
 * operation: blob_put, blob_block, blob_blocklist, blob_get; NULL for other paths. */
const struct sim_route *simblob_route(const struct simhttp_req *req);

/* A SAS URL of dmf/<name> on the store, version blob_sas_version, permissions perms,
 * valid from now - before to now + after (real clock). Returns a new JSON string ("" when
 * it cannot be made). */
json_t *simblob_sas_url(struct sim *s, const char *name, const char *perms, long before,
                        long after);

/* Control API: what the store holds for `name`: {exists, size, sha256, committed_as
 * ("blob" | "blocks"), blocks, block_max, uncommitted, put_blob, put_block, put_block_list}.
 * The SHA-256 is computed from the file (bounded buffer). New reference, or NULL when the
 * store never saw the name. */
json_t *simblob_info(struct sim *s, const char *name);

#endif
