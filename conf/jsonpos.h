/* jsonpos: finds the line of a JSON path ("a.b[2].c") in JSON text, so config errors found
 * after parsing can still point at a line. Pure; reads at most `len` bytes. */
#ifndef FOGATE_JSONPOS_H
#define FOGATE_JSONPOS_H

#include <stddef.h>

/* Returns the 1-based line of the key (or array element) named by `path` in `text`, or
 * of its deepest existing ancestor when the path does not exist; 0 when not even the
 * first component exists or the text is not JSON. Object keys are matched by their raw
 * bytes between the quotes. */
int jsonpos_line(const char *text, size_t len, const char *path);

#endif
