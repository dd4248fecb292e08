/* tokenhint: what a person should do about a token failure: one actionable sentence per
 * failure reason (the stable names of tokenenv_reason_name), worded for the credential
 * kind in use. Pure, static strings; none holds or names a secret value. */
#ifndef FOGATE_TOKENHINT_H
#define FOGATE_TOKENHINT_H

#include "conf.h"

/* The hint for `reason` ("wrong_secret", "assertion_expired", ...) with credential `kind`,
 * or NULL when there is nothing to do ("ok", "starting") or the reason is unknown.
 * Static storage. */
const char *tokenhint_text(const char *reason, enum conf_credential kind);

#endif
