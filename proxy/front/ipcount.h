/* ipcount: open connections per client address, for limits.max_connections_per_ip. Pure
 * (no I/O): a fixed-size open-addressing table sized from the connection cap, so it never
 * grows and never allocates after creation.
 * Invariant: an address is in the table exactly while its count is above zero. */
#ifndef FOGATE_IPCOUNT_H
#define FOGATE_IPCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct ipcount;

/* A client address as a table key: IPv6, or IPv4 as ::ffff:a.b.c.d (so both spellings of
 * one IPv4 client count together); the port is left out. */
struct ipcount_key {
    unsigned char b[16];
};

/* Fills *k from an AF_INET or AF_INET6 address (anything else: all zero). Pure. */
void ipcount_key_of(const struct sockaddr *sa, struct ipcount_key *k);

/* A table for at most `max_entries` distinct addresses at once (the connection cap).
 * Returns NULL on allocation failure. Free with ipcount_free (NULL is a no-op). */
struct ipcount *ipcount_new(size_t max_entries);
void ipcount_free(struct ipcount *t);

/* The address's count (0 when absent). */
unsigned ipcount_get(const struct ipcount *t, const struct ipcount_key *k);

/* Adds one to the address's count. Returns the new count, or 0 when the table is full
 * (more than max_entries addresses: the caller is over its own cap anyway). */
unsigned ipcount_add(struct ipcount *t, const struct ipcount_key *k);

/* Takes one from the address's count (removing it at zero). Returns the new count. */
unsigned ipcount_sub(struct ipcount *t, const struct ipcount_key *k);

/* Marks a present address. Returns true the first time (so a caller logs once per address
 * while it holds connections), false when already marked or absent. */
bool ipcount_mark(struct ipcount *t, const struct ipcount_key *k);

#endif
