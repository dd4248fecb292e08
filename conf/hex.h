/* hex: hexadecimal digits and fixed-length hex strings. Pure: no allocation, no I/O.
 * One copy for every library (auth, cache, proxy and the simulator all link conf). */
#ifndef FOGATE_HEX_H
#define FOGATE_HEX_H

#include <stddef.h>

/* The value (0-15) of the hex digit `c` in either case, or -1 if it is not one. */
int hex_digit(int c);

/* Decodes exactly 2 * outlen hex digits (either case) from hex[0..len) into out.
 * Returns 0, or -1 if len is not 2 * outlen or a byte is not a hex digit (out may then
 * hold part of the result: a caller decoding a secret cleanses it). */
int hex_decode(const char *hex, size_t len, unsigned char *out, size_t outlen);

#endif
