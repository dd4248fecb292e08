/* azblob: a small blocking Azure Blob client (libcurl) for the D365 simulator: create the
 * container, upload a file, ask a blob's size. Every request carries its own short-lived SAS
 * made by sas.c (never an Authorization header, never a bearer token), and every request has
 * a connect timeout, a low-speed abort and an overall timeout.
 * Thread safety: no shared state; each call uses its own easy handle, so worker threads may
 * call it at once. Call curl_global_init() once at start-up before starting threads. */
#ifndef FOGATE_AZBLOB_H
#define FOGATE_AZBLOB_H

#include <stddef.h>

#include "sas.h"

/* Files up to this size go up in one Put Blob; larger ones as Put Block of this size each,
 * then Put Block List. 64 MiB is the single-shot limit of the oldest service versions
 * (D365's sv=2014-02-14), so the same client would work against such a store. */
#define AZBLOB_BLOCK_SIZE_DEFAULT ((size_t)64 << 20)

/* At most this many blocks per blob (Azure's limit for a block blob). */
#define AZBLOB_MAX_BLOCKS 50000

/* Timeouts of one HTTP request, in seconds. */
#define AZBLOB_CONNECT_TIMEOUT 5
#define AZBLOB_REQUEST_TIMEOUT 300

/* Verdict of azblob_head besides success (0) and error (-1). */
#define AZBLOB_NOT_FOUND 1

/* Creates the container (Create Container, authorised by an account SAS). An existing
 * container (409 ContainerAlreadyExists) is success too. Returns 0, or -1 with a message in
 * err (errcap bytes, may be NULL/0); the message never holds the key or a signature. */
int azblob_ensure_container(const struct sas_account *acct, const char *container, char *err,
                            size_t errcap);

/* Uploads the file at path as block blob container/blob, replacing any existing blob, with
 * AZBLOB_BLOCK_SIZE_DEFAULT as the single-shot threshold and block size. The file is streamed,
 * never loaded whole. Returns 0 or -1 with a message in err. */
int azblob_put_file(const struct sas_account *acct, const char *container, const char *blob,
                    const char *path, char *err, size_t errcap);

/* As azblob_put_file, with block_size (> 0, at most 4000 MiB) as threshold and block size:
 * tests use a small one to exercise Put Block + Put Block List. */
int azblob_put_file_blocks(const struct sas_account *acct, const char *container,
                           const char *blob, const char *path, size_t block_size, char *err,
                           size_t errcap);

/* Asks for the blob's properties (HEAD). Returns 0 and sets *size to its length in bytes,
 * AZBLOB_NOT_FOUND if the blob (or container) does not exist, or -1 with a message in err. */
int azblob_head(const struct sas_account *acct, const char *container, const char *blob,
                long long *size, char *err, size_t errcap);

#endif
