/* simodata: OData actions bound to DataManagementDefinitionGroups (reference §4):
 * POST /data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.<Action>.
 * Handles the envelope, lenient bodies and errors; the message-status actions live here, the
 * package actions in simpkg. Invariant: every reply is the §4.1 envelope or the §4.2 error. */
#ifndef SIMODATA_H
#define SIMODATA_H

#include <jansson.h>
#include "sim.h"

/* The route for `path` if it is an action this simulator knows, else NULL. */
const struct sim_route *simodata_route(const char *path);

/* Replies 200 {"@odata.context": "<base>/data/$metadata#<edm>", "value": value}.
 * value's reference is stolen. */
void simodata_reply_value(struct sim *s, struct simhttp_req *req, const char *edm, json_t *value);

/* Replies with the §4.2 error envelope; the inner message is "Exception occurred while
 * executing action <action> on Entity DataManagementDefinitionGroup: <msg>". */
void simodata_reply_error(struct simhttp_req *req, int status, const char *action, const char *msg);

/* The action name of a request routed here ("GetMessageStatus"). */
const char *simodata_action(const struct simhttp_req *req);

#endif
