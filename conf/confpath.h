/* confpath: turns a file-path value of the config into the path fogate opens: expands a
 * leading ${CREDENTIALS_DIRECTORY} (systemd's LoadCredential=) and resolves relative paths
 * against the config file's directory. Pure: the environment is passed in. */
#ifndef FOGATE_CONFPATH_H
#define FOGATE_CONFPATH_H

#define CONFPATH_CREDS_VAR "CREDENTIALS_DIRECTORY"

/* The path for `value`:
 *   "${CREDENTIALS_DIRECTORY}/name" -> "<creds_dir>/name" (creds_dir: the variable's value,
 *                                      NULL or "" when it is not set: an error then);
 *   "/abs/path"                     -> itself;
 *   "rel/path"                      -> "<basedir>/rel/path" (itself when basedir is NULL).
 * Any other "${" is an error (only that one variable is expanded, so a typo is not taken
 * for a file name). Returns 0 with *out set (owned by the caller, free()), or -1 with *out
 * NULL and *why set to a static message (NULL = out of memory). */
int confpath_expand(const char *value, const char *basedir, const char *creds_dir, char **out,
                    const char **why);

#endif
