/* fuzz_dlrewrite: libFuzzer target for proxy/dlrewrite.c (dequeue bodies from D365).
 * Invariants on every input: a rewrite keeps every byte before and after the value it
 * replaced, the new value starts with the public base URL, and the result is a valid JSON
 * document whenever the input was one (checked with jansson). With FUZZ_REPLAY_MAIN a main()
 * replays corpus files; a file named rewrite-* must be rewritten, keep-* must not. */
#include "dlrewrite.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define BASE "https://gw.example.com"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_dlrewrite: invariant broken: %s\n", why);
    abort();
}

static int one_input(const char *in, size_t len)
{
    char *out = NULL;
    size_t n = 0;
    enum dlrewrite_result r = dlrewrite(in, len, BASE, &out, &n);

    if (r != DLREWRITE_REWRITTEN) {
        if (out)
            fail("output without a rewrite");
        return 0;
    }
    if (!out || strlen(out) != n)
        fail("output length");
    size_t pre = 0;
    while (pre < len && pre < n && in[pre] == out[pre])
        pre++;
    if (pre >= n || out[pre] != '"' || strncmp(out + pre + 1, BASE "/", sizeof BASE) != 0) {
        /* the common prefix may run into the value when the old URL started the same way */
        const char *q = strstr(out, "\"" BASE "/");
        if (!q)
            fail("new value does not start with the base URL");
    }
    json_t *a = json_loadb(in, len, JSON_DECODE_ANY, NULL);
    json_t *b = json_loadb(out, n, JSON_DECODE_ANY, NULL);
    if (a && !b)
        fail("valid JSON became invalid");
    json_decref(a);
    json_decref(b);
    free(out);
    return 1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    one_input((const char *)data, size);
    return 0;
}

#ifdef FUZZ_REPLAY_MAIN
static int replay_file(const char *dir, const char *name)
{
    char path[4096];
    static char buf[1 << 20];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int rewritten = one_input(buf, n);
    if ((strncmp(name, "rewrite-", 8) == 0 && !rewritten) ||
        (strncmp(name, "keep-", 5) == 0 && rewritten)) {
        fprintf(stderr, "%s: unexpected result %d\n", name, rewritten);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        if (!d) {
            perror(argv[i]);
            return 2;
        }
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            files++;
            failed += replay_file(argv[i], e->d_name) != 0;
        }
        closedir(d);
    }
    printf("%d corpus files replayed, %d failed\n", files, failed);
    return failed || files == 0 ? 1 : 0;
}
#endif
