/* simplehist: the simple API's history routes, GET /v1/history (a page of the client's
 * jobs' records, filtered) and GET /v1/history/{id} (one record), read from proxy/history.
 * Part of the simple module (answers through simplexfer.h's simple_req_*).
 * Invariant: a client sees only records of jobs it may use; others are "not found". */
#ifndef FOGATE_SIMPLEHIST_H
#define FOGATE_SIMPLEHIST_H

#include "conf.h"
#include "simplexfer.h"

/* GET /v1/history?job=&status=&since=&until=&file=&limit=&cursor= */
void simplehist_list(struct simple_req *r, const struct conf_client *client);

/* GET /v1/history/{id} */
void simplehist_get(struct simple_req *r, const struct conf_client *client);

#endif
