/* adminui: the operator page at /ui on the admin listener: the embedded files
 * (uiassets.h) with a Content-Security-Policy that allows only this origin's own script
 * and style (no inline script or style), frame-ancestors 'none', nosniff, no referrer. */
#ifndef FOGATE_ADMINUI_H
#define FOGATE_ADMINUI_H

#include "admin.h"

/* Answers GET/HEAD /ui, /ui/ (the page) and /ui/<file>; 404 for anything else. */
void adminui_handle(const struct admin_deps *d, struct conn_req *req);

/* The file served for `path` (`len` bytes, no query), or NULL. Pure. */
const struct uiassets_file *adminui_find(const char *path, size_t len);

#endif
