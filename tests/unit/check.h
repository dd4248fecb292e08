/* check: the tiny assertion kit of the unit tests. A failed CHECK prints where and why and
 * counts; check_done() prints the closing line and returns the exit status. */
#ifndef FOGATE_CHECK_H
#define FOGATE_CHECK_H

#include <stdio.h>
#include <string.h>

/* CHECK_ASAN: defined in an AddressSanitizer build (gcc or clang), where RSS figures are
 * those of ASan's allocator and shadow memory, not of the code under test. */
#if defined(__SANITIZE_ADDRESS__)
#define CHECK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHECK_ASAN 1
#endif
#endif

static int check_failed;
static int check_passed;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (cond) {                                                                 \
            check_passed++;                                                         \
        } else {                                                                    \
            check_failed++;                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                           \
    } while (0)

#define CHECK_STR(a, b)                                                              \
    do {                                                                             \
        const char *a_ = (a), *b_ = (b);                                             \
        if (a_ && b_ && strcmp(a_, b_) == 0) {                                       \
            check_passed++;                                                          \
        } else {                                                                     \
            check_failed++;                                                          \
            fprintf(stderr, "%s:%d: CHECK_STR failed: \"%s\" != \"%s\"\n", __FILE__, \
                    __LINE__, a_ ? a_ : "(null)", b_ ? b_ : "(null)");               \
        }                                                                            \
    } while (0)

static inline int check_done(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
