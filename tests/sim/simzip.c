/* simzip: stored (uncompressed) ZIP writer for generated export packages. The CSV content is
 * a deterministic pattern, generated twice: once for its CRC-32, once to write it. */
#include "simzip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIECE 65536

static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* Fills buf with the CSV bytes at [off, off+n). */
static void pattern(unsigned char *buf, long long off, size_t n)
{
    static const char row[] = "USMF,FOSIM-CUST-0001,Fosim customer,10,USD\r\n";
    const size_t rl = sizeof(row) - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)row[(size_t)((off + (long long)i) % (long long)rl)];
}

static void le16(FILE *f, unsigned v)
{
    fputc((int)(v & 0xff), f);
    fputc((int)((v >> 8) & 0xff), f);
}

static void le32(FILE *f, uint32_t v)
{
    le16(f, v & 0xffff);
    le16(f, v >> 16);
}

struct entry {
    const char *name;
    uint32_t crc, size, offset;
};

static void local_header(FILE *f, struct entry *e)
{
    e->offset = (uint32_t)ftell(f);
    le32(f, 0x04034b50);
    le16(f, 10); le16(f, 0); le16(f, 0); le16(f, 0); le16(f, 0x21);
    le32(f, e->crc); le32(f, e->size); le32(f, e->size);
    le16(f, (unsigned)strlen(e->name)); le16(f, 0);
    fputs(e->name, f);
}

static void central(FILE *f, const struct entry *e)
{
    le32(f, 0x02014b50);
    le16(f, 20); le16(f, 10); le16(f, 0); le16(f, 0); le16(f, 0); le16(f, 0x21);
    le32(f, e->crc); le32(f, e->size); le32(f, e->size);
    le16(f, (unsigned)strlen(e->name)); le16(f, 0); le16(f, 0); le16(f, 0); le16(f, 0);
    le32(f, 0); le32(f, e->offset);
    fputs(e->name, f);
}

static void small(FILE *f, struct entry *e, const char *text)
{
    e->size = (uint32_t)strlen(text);
    e->crc = crc_update(0, (const unsigned char *)text, e->size);
    local_header(f, e);
    fputs(text, f);
}

int simzip_write_package(const char *path, const char *entity, long long data_bytes)
{
    char manifest[1024], csvname[256];
    unsigned char *buf = malloc(PIECE);
    FILE *f = fopen(path, "wb");
    int rc = -1;
    if (!buf || !f || data_bytes < 0 || data_bytes > 0xFFFF0000LL)
        goto out;
    snprintf(csvname, sizeof(csvname), "%s.csv", entity);
    snprintf(manifest, sizeof(manifest),
             "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<DataManagementPackageManifest>"
             "<DataProjectDefinition><EntityName>%s</EntityName></DataProjectDefinition>"
             "</DataManagementPackageManifest>\r\n", entity);
    struct entry e[3] = {{"Manifest.xml", 0, 0, 0}, {"PackageHeader.xml", 0, 0, 0}, {csvname, 0, 0, 0}};
    small(f, &e[0], manifest);
    small(f, &e[1], "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<DataManagementPackageHeader>"
                    "<PackageVersion>2</PackageVersion></DataManagementPackageHeader>\r\n");
    e[2].size = (uint32_t)data_bytes;
    for (long long off = 0; off < data_bytes; off += PIECE) {
        size_t n = (size_t)(data_bytes - off < PIECE ? data_bytes - off : PIECE);
        pattern(buf, off, n);
        e[2].crc = crc_update(e[2].crc, buf, n);
    }
    local_header(f, &e[2]);
    for (long long off = 0; off < data_bytes; off += PIECE) {
        size_t n = (size_t)(data_bytes - off < PIECE ? data_bytes - off : PIECE);
        pattern(buf, off, n);
        if (fwrite(buf, 1, n, f) != n)
            goto out;
    }
    uint32_t cd = (uint32_t)ftell(f);
    for (int i = 0; i < 3; i++)
        central(f, &e[i]);
    uint32_t cdlen = (uint32_t)ftell(f) - cd;
    le32(f, 0x06054b50);
    le16(f, 0); le16(f, 0); le16(f, 3); le16(f, 3);
    le32(f, cdlen); le32(f, cd); le16(f, 0);
    rc = ferror(f) ? -1 : 0;
out:
    if (f && fclose(f) != 0)
        rc = -1;
    free(buf);
    return rc;
}
