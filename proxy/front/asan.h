/* asan: FOGATE_ASAN is defined in an AddressSanitizer build (gcc or clang), where malloc is
 * ASan's own: glibc's malloc tuning means nothing there, and memory fogate manages itself
 * is poisoned by hand. */
#ifndef FOGATE_ASAN_H
#define FOGATE_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define FOGATE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FOGATE_ASAN 1
#endif
#endif

#endif
