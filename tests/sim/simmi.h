/* simmi: Azure managed identity token endpoints: the Instance Metadata Service
 * (GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=..[&client_id=..],
 * header Metadata: true) and the App Service / Container Apps one
 * (GET /msi/token?api-version=2019-08-01&resource=..[&client_id=..], header
 * X-IDENTITY-HEADER). Tokens are v1 tokens of the environment's tenant for the identity.
 * Invariant: the identity header's value is never echoed or logged. */
#ifndef SIMMI_H
#define SIMMI_H

#include "sim.h"

/* The route for `path` if it is one of the two endpoints, else NULL. Static storage. */
const struct sim_route *simmi_route(const char *path);

#endif
