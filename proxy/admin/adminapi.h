/* adminapi: the JSON admin API under /admin/api/ (the operator page and fogatectl): reads
 * for anyone the admin listener lets in, actions only with the admin token, each action
 * audit-logged. Routes and codes: adminapi.c's opening comment and docs/openapi.yaml. */
#ifndef FOGATE_ADMINAPI_H
#define FOGATE_ADMINAPI_H

#include "admin.h"

/* Answers one request whose path starts with /admin/api/ (now or later). */
void adminapi_handle(const struct admin_deps *d, struct conn_req *req);

#endif
