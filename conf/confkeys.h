/* confkeys: the table of every config key (type, required/default, bounds, description),
 * the shape check that applies it to a parsed JSON document, and the key reference
 * generated from it. The table is the single source of truth for CONFIG.md. */
#ifndef FOGATE_CONFKEYS_H
#define FOGATE_CONFKEYS_H

#include <stdio.h>
#include <jansson.h>

#include "conf.h"

/* Checks `root` against the key table: unknown keys, wrong types, missing required keys,
 * out-of-range integers, strings that are empty, too long or hold control characters,
 * values outside a key's fixed choices, bad entry names. Inserts the default of every
 * absent optional key (and of absent optional sections), so a document that passes has
 * every defaulted key present. Returns 0, or -1 with err->path and err->message set
 * (message without file or line). `root` is borrowed and modified. */
int confkeys_check(json_t *root, struct conf_error *err);

/* Writes the Markdown key reference to `out`. Returns 0, or -1 on a write error. */
int confkeys_print_reference(FILE *out);

#endif
