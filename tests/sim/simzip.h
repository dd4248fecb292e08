/* simzip: writes a small D365-style data package (a stored ZIP with Manifest.xml,
 * PackageHeader.xml and one CSV of a chosen size). Streams to the file; memory is bounded.
 * Thread-safe: no shared state. */
#ifndef SIMZIP_H
#define SIMZIP_H

/* Writes the package to path; the CSV entry holds about data_bytes bytes. Returns 0 or -1. */
int simzip_write_package(const char *path, const char *entity, long long data_bytes);

#endif
