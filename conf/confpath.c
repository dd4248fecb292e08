/* confpath: ${CREDENTIALS_DIRECTORY} expansion and relative-path resolution of file paths.
 * Invariant: the result is an absolute path whenever creds_dir or basedir is. */
#include "confpath.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CREDS_REF "${" CONFPATH_CREDS_VAR "}"

static char *join(const char *dir, const char *rest)
{
    size_t n = strlen(dir) + 1 + strlen(rest) + 1;
    char *s = malloc(n);

    if (s)
        snprintf(s, n, "%s/%s", dir, rest);
    return s;
}

int confpath_expand(const char *value, const char *basedir, const char *creds_dir, char **out,
                    const char **why)
{
    size_t ref = strlen(CREDS_REF);

    *out = NULL;
    *why = NULL;
    if (strncmp(value, CREDS_REF, ref) == 0) {
        const char *rest = value + ref;
        if (rest[0] != '/' || rest[1] == '\0' || strstr(rest, "${")) {
            *why = "write ${" CONFPATH_CREDS_VAR "}/<credential name>, nothing else";
            return -1;
        }
        if (!creds_dir || !creds_dir[0] || creds_dir[0] != '/') {
            *why = "uses ${" CONFPATH_CREDS_VAR "}, but " CONFPATH_CREDS_VAR " is not set to "
                   "an absolute path (it is set by systemd for a unit with LoadCredential=)";
            return -1;
        }
        while (*rest == '/')
            rest++;
        *out = join(creds_dir, rest);
    } else if (strstr(value, "${")) {
        *why = "only ${" CONFPATH_CREDS_VAR "} is expanded, and only at the start of a path";
        return -1;
    } else if (value[0] == '/' || !basedir) {
        *out = strdup(value);
    } else {
        *out = join(basedir, value);
    }
    return *out ? 0 : -1;
}
