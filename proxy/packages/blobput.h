/* blobput: one package to blob storage under a SAS URL, streamed with bounded memory: Put
 * Block of blockplan_block_size() bytes each (ids of equal length), each block retried on
 * 5xx, 408, 429 and transport failures (blocks are idempotent), then one Put Block List;
 * a package of at most one block goes as one Put Blob. No bearer token ever goes there.
 * Invariant: memory is at most two blocks (one filling, one in flight) plus the copy
 * libcurl sends from, whatever the package size; on_done runs exactly once unless aborted. */
#ifndef FOGATE_BLOBPUT_H
#define FOGATE_BLOBPUT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "upstream.h"

struct blobput;

struct blobput_result {
    bool ok;                      /* committed: the blob exists with every byte */
    int status;                   /* blob storage's last status, 0 without an answer */
    enum upstream_result transport; /* UPSTREAM_OK unless no answer came */
    const char *step;             /* "Put Blob", "Put Block", "Put Block List" (static) */
    unsigned blocks;              /* blocks committed (0 for a Put Blob) */
    unsigned retries;             /* requests sent again after a failure */
    const char *error;            /* "" or a short text without the URL's query */
};

struct blobput_cbs {
    void (*on_space)(void *arg);  /* room again after blobput_space() was 0 */
    void (*on_done)(void *arg, const struct blobput_result *r);
    void *arg;
};

/* Starts the upload of `total` bytes (> 0) to `url` (copied; a secret: never logged) on
 * `base`/`up` (borrowed), with blocks of at most `block_bytes`. NULL when the package
 * would need more than 50,000 blocks of the version's largest block, or out of memory. */
struct blobput *blobput_start(struct event_base *base, struct upstream *up, const char *url,
                              int64_t total, size_t block_bytes, const struct blobput_cbs *cbs);

/* Room for more package bytes now (0: wait for on_space). */
size_t blobput_space(const struct blobput *b);

/* Takes up to `len` bytes (at most blobput_space()); returns how many. May start a block
 * upload, never calls back before it returns. */
size_t blobput_offer(struct blobput *b, const void *data, size_t len);

/* Every byte was offered (exactly `total`; fewer fails the upload). */
void blobput_eof(struct blobput *b);

/* The block size in use. */
size_t blobput_block_size(const struct blobput *b);

/* Stops everything; no callback afterwards. NULL is a no-op. Not from inside on_done. */
void blobput_abort(struct blobput *b);

#endif
