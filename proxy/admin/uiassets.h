/* uiassets: the operator page's files (proxy/admin/ui), embedded into the binary at build
 * time by ui/embed.cmake (uiassets.c is generated), so the page works with no network and
 * no files beside the binary. Immutable. */
#ifndef FOGATE_UIASSETS_H
#define FOGATE_UIASSETS_H

#include <stddef.h>

struct uiassets_file {
    const char *name;           /* "index.html", "app.js", "app.css" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
};

extern const struct uiassets_file uiassets_files[];
extern const unsigned uiassets_count;

#endif
