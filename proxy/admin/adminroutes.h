/* adminroutes: the admin listener's route table, path -> handler, and the handlers of
 * the status routes. To add a route, add a row to the table in adminroutes.c.
 * Invariant: a path not in the table is 404; a method not listed for it is 405. */
#ifndef FOGATE_ADMINROUTES_H
#define FOGATE_ADMINROUTES_H

#include <jansson.h>

#include "admin.h"

/* A handler answers `req` (now, or later after conn_req_set_events). */
typedef void (*adminroutes_handler)(const struct admin_deps *d, struct conn_req *req);

struct adminroutes_route {
    const char *path;           /* exact path; ending in '/' = that prefix */
    const char *methods;        /* the Allow list: "GET, HEAD" or "POST" */
    adminroutes_handler handle;
};

/* The route for a path (`len` bytes, no query), or NULL. Pure. */
const struct adminroutes_route *adminroutes_find(const char *path, size_t len);

/* True when `method` (e.g. "GET") is in route->methods. Pure. */
bool adminroutes_allows(const struct adminroutes_route *r, const char *method);

/* Answers with a JSON document (taken; NULL = 503 out of memory). */
void adminroutes_reply_json(struct conn_req *req, int status, json_t *doc);

#endif
