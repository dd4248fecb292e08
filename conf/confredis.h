/* confredis: parses and checks the redis section of a filled conf, so no other module
 * ever re-parses the Redis URL. */
#ifndef FOGATE_CONFREDIS_H
#define FOGATE_CONFREDIS_H

#include "conf.h"

/* Parses r->url (redis://[user@]host[:port][/db], rediss://..., unix:///path[?db=N]) into
 * tls, host, port, unix_path, db and username; refuses a password in the URL; checks the
 * password source (file readable / env var set, at most one), the tls section (only with
 * rediss://, ca_file readable) and defaults server_name to the host. Returns 0, or -1 with
 * err->path and err->message set. Messages never repeat the URL. */
int confredis_check(struct conf_redis *r, struct conf_error *err);

#endif
