/* adminstats: the table of every worker's stats. */
#include "adminstats.h"

#include <stdlib.h>

struct adminstats *adminstats_new(unsigned n, const char *const *route_names,
                                  unsigned n_routes)
{
    struct adminstats *t = calloc(1, sizeof *t + n * sizeof t->w[0]);

    if (!t)
        return NULL;
    t->n = n;
    t->route_names = route_names;
    t->n_routes = n_routes < CONNSTATS_ROUTES ? n_routes : CONNSTATS_ROUTES;
    return t;
}

const char *adminstats_redis_name(unsigned i)
{
    static const char *const names[ADMINSTATS_REDIS_N] = { "tokens", "ledger", "packages" };
    return i < ADMINSTATS_REDIS_N ? names[i] : "other";
}
