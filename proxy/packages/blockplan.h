/* blockplan: how a package goes to blob storage under a D365 SAS URL: the storage service
 * version (sv) of the URL and its caps, the block size, block ids (base64, all the same
 * length) and the Put Block List body. Pure: no I/O, no clock, no state.
 * Invariant: every output is NUL-terminated within its cap, or the call returns -1. */
#ifndef FOGATE_BLOCKPLAN_H
#define FOGATE_BLOCKPLAN_H

#include <stddef.h>
#include <stdint.h>

#define BLOCKPLAN_MAX_BLOCKS 50000       /* committed blocks per blob (Azure) */
#define BLOCKPLAN_ID_QUERY_MAX 48        /* "&comp=block&blockid=" + encoded id + NUL */
#define BLOCKPLAN_OLDEST_SV "2014-02-14" /* assumed when a URL carries no sv */

/* Writes the URL's sv (YYYY-MM-DD) into out (cap >= 11), or BLOCKPLAN_OLDEST_SV when the
 * query has none or a malformed one. */
void blockplan_version(const char *sas_url, char *out, size_t cap);

/* Azure's caps for version sv: one Put Blob body (64 MiB before 2016-05-31, 256 MiB
 * before 2019-12-12, 5000 MiB after) and one Put Block body (4 MiB, 100 MiB, 4000 MiB). */
int64_t blockplan_put_blob_max(const char *sv);
int64_t blockplan_block_max(const char *sv);

/* The block size for a package of `total` bytes: `wanted` (config) lowered to the
 * version's block cap. Returns it, or 0 when `total` would need more than
 * BLOCKPLAN_MAX_BLOCKS blocks of that size. */
size_t blockplan_block_size(const char *sv, size_t wanted, int64_t total);

/* Writes "&comp=block&blockid=<id>" for block `index` (0-based; < BLOCKPLAN_MAX_BLOCKS):
 * the id is base64 of "fogate" + 6 digits (16 characters for every block), percent-
 * encoded for the query. Returns 0 or -1. */
int blockplan_id_query(unsigned index, char *out, size_t cap);

/* The Put Block List body committing blocks 0..n-1 in order (malloc'd, NUL-terminated;
 * *len set), or NULL when out of memory or n is 0 or too large. */
char *blockplan_list_xml(unsigned n, size_t *len);

#endif
