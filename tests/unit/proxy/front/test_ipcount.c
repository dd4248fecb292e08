/* test_ipcount: the per-address connection counts against a plain array model, with a
 * table small enough that clusters form and deletions must shift entries back. */
#include "check.h"
#include "ipcount.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define ADDRS 40

static void key_n(int n, struct ipcount_key *k)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(1000 + n) };

    a.sin_addr.s_addr = htonl(0x0a000000u + (unsigned)n * 7919u);
    ipcount_key_of((struct sockaddr *)&a, k);
}

static void test_model(void)
{
    struct ipcount *t = ipcount_new(ADDRS);
    unsigned model[ADDRS] = { 0 };
    unsigned seed = 12345;
    int mismatches = 0;

    CHECK(t != NULL);
    for (int step = 0; step < 200000; step++) {
        seed = seed * 1103515245u + 12345u;
        int n = (int)((seed >> 8) % ADDRS);
        struct ipcount_key k;
        key_n(n, &k);
        if ((seed >> 20) % 3 == 0 && model[n] > 0) {
            mismatches += ipcount_sub(t, &k) != --model[n];
        } else if (model[n] < 50) {
            mismatches += ipcount_add(t, &k) != ++model[n];
        }
        if (step % 997 == 0)
            for (int i = 0; i < ADDRS; i++) {
                key_n(i, &k);
                mismatches += ipcount_get(t, &k) != model[i];
            }
    }
    CHECK(mismatches == 0);
    ipcount_free(t);
}

static void test_full_and_keys(void)
{
    struct ipcount *t = ipcount_new(2);
    struct ipcount_key a, b, c, v4, mapped;
    struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(1) };
    struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(2) };

    key_n(1, &a);
    key_n(2, &b);
    key_n(3, &c);
    CHECK(ipcount_add(t, &a) == 1 && ipcount_add(t, &b) == 1);
    CHECK(ipcount_add(t, &c) == 0);            /* a third address: full */
    CHECK(ipcount_add(t, &a) == 2);            /* known ones still count */
    CHECK(ipcount_sub(t, &b) == 0 && ipcount_add(t, &c) == 1);
    CHECK(ipcount_sub(t, &b) == 0);            /* absent: stays 0 */
    CHECK(!ipcount_mark(t, &b));               /* absent: nothing to mark */
    CHECK(ipcount_mark(t, &a) && !ipcount_mark(t, &a));
    CHECK(ipcount_sub(t, &a) == 1 && !ipcount_mark(t, &a)); /* marked while present */
    CHECK(ipcount_sub(t, &a) == 0 && ipcount_add(t, &a) == 1 && ipcount_mark(t, &a));
    inet_pton(AF_INET, "192.0.2.7", &s4.sin_addr);
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &s6.sin6_addr);
    ipcount_key_of((struct sockaddr *)&s4, &v4);
    ipcount_key_of((struct sockaddr *)&s6, &mapped);
    CHECK(memcmp(&v4, &mapped, sizeof v4) == 0); /* one client, two spellings */
    ipcount_free(t);
    ipcount_free(NULL);
}

int main(void)
{
    test_model();
    test_full_and_keys();
    return check_done();
}
