/* simblobrule: Azure Blob limits and formats by service version. See simblobrule.h.
 * Sources: the Put Blob / Put Block / Put Block List pages of the Azure Storage REST
 * reference ("Remarks": limits by version) and "Create a service SAS" (string-to-sign by
 * version). Versions compare as strings: YYYY-MM-DD sorts by date. */
#include "simblobrule.h"

#include <stdio.h>
#include <string.h>

#define MIB (1024LL * 1024)

long long simblobrule_put_blob_max(const char *sv)
{
    if (strcmp(sv, "2016-05-31") < 0)
        return 64 * MIB;
    if (strcmp(sv, "2019-12-12") < 0)
        return 256 * MIB;
    return 5000 * MIB;
}

long long simblobrule_block_max(const char *sv)
{
    if (strcmp(sv, "2016-05-31") < 0)
        return 4 * MIB;
    if (strcmp(sv, "2019-12-12") < 0)
        return 100 * MIB;
    return 4000 * MIB;
}

int simblobrule_version_ok(const char *sv)
{
    static const char shape[] = "dddd-dd-dd";
    if (!sv || strlen(sv) != sizeof(shape) - 1)
        return 0;
    for (size_t i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? (sv[i] < '0' || sv[i] > '9') : sv[i] != '-')
            return 0;
    return 1;
}

static int b64char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

int simblobrule_block_id_ok(const char *id)
{
    size_t n = strlen(id), pad = 0;
    if (n == 0 || n % 4 != 0)
        return 0;
    while (pad < 2 && id[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++)
        if (!b64char(id[i]))
            return 0;
    return n / 4 * 3 - pad <= SIMBLOBRULE_ID_MAX;
}

/* Matches "<name>" at p; returns the length of the tag or 0. */
static size_t open_tag(const char *p, const char *name)
{
    size_t n = strlen(name);
    return p[0] == '<' && strncmp(p + 1, name, n) == 0 && p[n + 1] == '>' ? n + 2 : 0;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

int simblobrule_block_list(const char *xml, int (*on_entry)(void *arg,
                           enum simblobrule_from from, const char *id), void *arg)
{
    static const char *const names[] = {"Latest", "Committed", "Uncommitted"};
    const char *p = skip_ws(xml);
    int count = 0;
    size_t t;
    if (strncmp(p, "<?xml", 5) == 0) {
        const char *e = strstr(p, "?>");
        if (!e)
            return -1;
        p = skip_ws(e + 2);
    }
    if (!(t = open_tag(p, "BlockList")))
        return -1;
    for (p = skip_ws(p + t); strncmp(p, "</BlockList>", 12) != 0; p = skip_ws(p)) {
        int k = -1;
        for (int i = 0; i < 3 && k < 0; i++)
            if ((t = open_tag(p, names[i])))
                k = i;
        if (k < 0)
            return -1;
        const char *v = p + t, *end = strchr(v, '<');
        char id[128], close[32];
        snprintf(close, sizeof(close), "</%s>", names[k]);
        if (!end || (size_t)(end - v) >= sizeof(id) || strncmp(end, close, strlen(close)) != 0)
            return -1;
        memcpy(id, v, (size_t)(end - v));
        id[end - v] = '\0';
        if (on_entry(arg, (enum simblobrule_from)k, id) != 0)
            return -1;
        count++;
        p = end + strlen(close);
    }
    return count;
}

int simblobrule_string_to_sign(char *out, size_t cap, const char *sv, const char *sp,
                               const char *st, const char *se, const char *account,
                               const char *container, const char *blob)
{
    int n;
    if (strcmp(sv, "2015-04-05") < 0) /* sp st se resource si sv rscc rscd rsce rscl rsct */
        n = snprintf(out, cap, "%s\n%s\n%s\n/%s/%s/%s\n\n%s\n\n\n\n\n", sp, st, se, account,
                     container, blob, sv);
    else if (strcmp(sv, "2018-11-09") < 0) /* + "/blob" prefix, sip, spr */
        n = snprintf(out, cap, "%s\n%s\n%s\n/blob/%s/%s/%s\n\n\n\n%s\n\n\n\n\n", sp, st, se,
                     account, container, blob, sv);
    else if (strcmp(sv, "2020-12-06") < 0) /* + sr, snapshot time */
        n = snprintf(out, cap, "%s\n%s\n%s\n/blob/%s/%s/%s\n\n\n\n%s\nb\n\n\n\n\n\n", sp,
                     st, se, account, container, blob, sv);
    else /* + encryption scope */
        n = snprintf(out, cap, "%s\n%s\n%s\n/blob/%s/%s/%s\n\n\n\n%s\nb\n\n\n\n\n\n\n", sp,
                     st, se, account, container, blob, sv);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}
