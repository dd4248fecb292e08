/* ctlcode: fogatectl's exit codes and pure helpers (see ctlcode.h). */
#include "ctlcode.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum ctlcode ctlcode_final(const char *status)
{
    if (strcasecmp(status, "Processed") == 0)
        return CTL_OK;
    if (strcasecmp(status, "ProcessedWithErrors") == 0)
        return CTL_WITH_ERRORS;
    if (strcasecmp(status, "PreProcessingError") == 0)
        return CTL_PRE_ERROR;
    if (strcasecmp(status, "PostProcessingFailed") == 0)
        return CTL_POST_FAILED;
    return CTL_OTHER_FINAL;
}

enum ctlcode ctlcode_http(long http)
{
    if (http >= 400 && http < 500)
        return CTL_REFUSED;
    if (http >= 500 && http < 600)
        return CTL_UNAVAILABLE;
    return CTL_UNREACHABLE;
}

void ctlcode_idem_key(const unsigned char digest[32], char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "sha256:");

    for (int i = 0; i < 32 && n + 2 < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%02x", digest[i]);
}

int ctlcode_export_name(const char *message_id, const char *suffix, char *out, size_t cap)
{
    if (strlen(message_id) != 36 ||
        strspn(message_id, "0123456789abcdefABCDEF-") != 36)
        return -1;
    int n = snprintf(out, cap, "%s%s", message_id, suffix);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}
