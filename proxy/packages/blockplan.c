/* blockplan: blob upload planning by SAS version (see blockplan.h). The caps are those of
 * the Azure Storage REST reference (Put Blob, Put Block "Remarks"); versions compare as
 * strings since YYYY-MM-DD sorts by date. */
#include "blockplan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define MIB ((int64_t)1 << 20)
#define ID_RAW_LEN 12   /* "fogate" + 6 digits: base64 without padding, 16 characters */

static int version_ok(const char *v, size_t n)
{
    static const char shape[] = "dddd-dd-dd";

    if (n != sizeof shape - 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (shape[i] == 'd' ? (v[i] < '0' || v[i] > '9') : v[i] != '-')
            return 0;
    return 1;
}

void blockplan_version(const char *url, char *out, size_t cap)
{
    const char *q = url ? strchr(url, '?') : NULL;

    snprintf(out, cap, "%s", BLOCKPLAN_OLDEST_SV);
    while (q) {
        q++;
        size_t n = strcspn(q, "&#");
        if (strncmp(q, "sv=", 3) == 0 && version_ok(q + 3, n - 3)) {
            snprintf(out, cap, "%.*s", (int)(n - 3), q + 3);
            return;
        }
        q = q[n] == '&' ? q + n : NULL;
    }
}

int64_t blockplan_put_blob_max(const char *sv)
{
    if (strcmp(sv, "2016-05-31") < 0)
        return 64 * MIB;
    if (strcmp(sv, "2019-12-12") < 0)
        return 256 * MIB;
    return 5000 * MIB;
}

int64_t blockplan_block_max(const char *sv)
{
    if (strcmp(sv, "2016-05-31") < 0)
        return 4 * MIB;
    if (strcmp(sv, "2019-12-12") < 0)
        return 100 * MIB;
    return 4000 * MIB;
}

size_t blockplan_block_size(const char *sv, size_t wanted, int64_t total)
{
    int64_t max = blockplan_block_max(sv);
    size_t size = (int64_t)wanted > max ? (size_t)max : wanted;

    if (size == 0 || (total + (int64_t)size - 1) / (int64_t)size > BLOCKPLAN_MAX_BLOCKS)
        return 0;
    return size;
}

/* base64 of the raw id into id (17 bytes). */
static int block_id(unsigned index, char id[17])
{
    char raw[ID_RAW_LEN + 1];

    if (index >= BLOCKPLAN_MAX_BLOCKS)
        return -1;
    snprintf(raw, sizeof raw, "fogate%06u", index);
    return EVP_EncodeBlock((unsigned char *)id, (const unsigned char *)raw, ID_RAW_LEN) == 16
               ? 0 : -1;
}

int blockplan_id_query(unsigned index, char *out, size_t cap)
{
    char id[17], enc[3 * 16 + 1];
    size_t o = 0;
    int n;

    if (block_id(index, id) < 0)
        return -1;
    for (const char *p = id; *p; p++) {
        if (*p == '+' || *p == '/' || *p == '=')
            o += (size_t)snprintf(enc + o, sizeof enc - o, "%%%02X", (unsigned char)*p);
        else
            enc[o++] = *p;
    }
    enc[o] = '\0';
    n = snprintf(out, cap, "&comp=block&blockid=%s", enc);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

char *blockplan_list_xml(unsigned n, size_t *len)
{
    static const char head[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
    static const char tail[] = "</BlockList>";
    size_t cap = sizeof head + (size_t)n * (16 + 17) + sizeof tail, o;
    char *x, id[17];

    if (n == 0 || n > BLOCKPLAN_MAX_BLOCKS || !(x = malloc(cap)))
        return NULL;
    o = (size_t)snprintf(x, cap, "%s", head);
    for (unsigned i = 0; i < n; i++) {
        if (block_id(i, id) < 0) {
            free(x);
            return NULL;
        }
        o += (size_t)snprintf(x + o, cap - o, "<Latest>%s</Latest>", id);
    }
    o += (size_t)snprintf(x + o, cap - o, "%s", tail);
    *len = o;
    return x;
}
