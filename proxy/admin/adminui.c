/* adminui: serves the embedded operator page with its security headers (adminui.h). */
#include "adminui.h"

#include <string.h>

#include "reply.h"
#include "uiassets.h"

/* connect-src 'self': the page talks to /admin/api/ on the same listener only */
#define HEADERS                                                                         \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; " \
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "         \
    "frame-ancestors 'none'\r\n"                                                        \
    "X-Content-Type-Options: nosniff\r\n"                                               \
    "Referrer-Policy: no-referrer\r\n"                                                  \
    "X-Frame-Options: DENY\r\n"                                                         \
    "Cache-Control: no-store\r\n"

const struct uiassets_file *adminui_find(const char *path, size_t len)
{
    static const char dir[] = "/ui/";
    const char *name = "index.html";
    size_t n = strlen(name);

    if (!(len == 3 && memcmp(path, "/ui", 3) == 0) && !(len == 4 && memcmp(path, dir, 4) == 0)) {
        if (len <= 4 || memcmp(path, dir, 4) != 0)
            return NULL;
        name = path + 4;
        n = len - 4;
    }
    for (unsigned i = 0; i < uiassets_count; i++)
        if (strlen(uiassets_files[i].name) == n && memcmp(uiassets_files[i].name, name, n) == 0)
            return &uiassets_files[i];
    return NULL;
}

void adminui_handle(const struct admin_deps *d, struct conn_req *req)
{
    const struct http1_head *h = conn_req_head(req);
    const struct uiassets_file *f = adminui_find(h->target, h->path_len);

    (void)d;
    if (!f) {
        reply_error(req, 404, "not_found", "no such file of the operator page");
        return;
    }
    conn_req_respond(req, 200, HEADERS, f->content_type, (const char *)f->data, f->len);
}
