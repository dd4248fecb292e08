/* test_adminauth: loopback peers pass as they are; others need the bearer token of
 * admin.token_file (compared as SHA-256 digests); the token file is read like a secret. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adminauth.h"
#include "check.h"

#define TOKEN "admin-token-0123456789abcdef"

static void test_loopback(void)
{
    CHECK(adminauth_loopback("127.0.0.1:5000"));
    CHECK(adminauth_loopback("127.8.9.10:1"));
    CHECK(adminauth_loopback("[::1]:443"));
    CHECK(adminauth_loopback("[::ffff:127.0.0.1]:80"));
    CHECK(!adminauth_loopback("10.0.0.1:80"));
    CHECK(!adminauth_loopback("[::ffff:10.0.0.1]:80"));
    CHECK(!adminauth_loopback("1127.0.0.1:80"));
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static void test_token(void)
{
    char dir[] = "/tmp/test_adminauth.XXXXXX", path[64], err[256];
    struct adminauth_token tok;
    const char *good = "Bearer " TOKEN, *wrong = "Bearer admin-token-0123456789abcdeX";

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/token", dir);

    CHECK(adminauth_load(NULL, &tok, err, sizeof err) == 0 && !tok.set);
    /* without a token: loopback only */
    CHECK(adminauth_check(&tok, "127.0.0.1:1", NULL, 0) == ADMINAUTH_OK);
    CHECK(adminauth_check(&tok, "10.1.2.3:1", NULL, 0) == ADMINAUTH_MISSING);
    CHECK(adminauth_check(&tok, "10.1.2.3:1", good, strlen(good)) == ADMINAUTH_WRONG);

    write_file(path, TOKEN "\n", 0644);
    CHECK(adminauth_load(path, &tok, err, sizeof err) == -1); /* readable by others */
    CHECK(strstr(err, TOKEN) == NULL);
    write_file(path, "short\n", 0600);
    CHECK(adminauth_load(path, &tok, err, sizeof err) == -1);
    CHECK(strstr(err, "short") == NULL);
    write_file(path, TOKEN "\n", 0600);
    CHECK(adminauth_load(path, &tok, err, sizeof err) == 0 && tok.set);

    CHECK(adminauth_check(&tok, "10.1.2.3:1", good, strlen(good)) == ADMINAUTH_OK);
    CHECK(adminauth_check(&tok, "10.1.2.3:1", "bearer " TOKEN, strlen(good)) == ADMINAUTH_OK);
    CHECK(adminauth_check(&tok, "10.1.2.3:1", wrong, strlen(wrong)) == ADMINAUTH_WRONG);
    CHECK(adminauth_check(&tok, "10.1.2.3:1", TOKEN, strlen(TOKEN)) == ADMINAUTH_WRONG);
    CHECK(adminauth_check(&tok, "10.1.2.3:1", good, strlen(good) - 1) == ADMINAUTH_WRONG);
    CHECK(adminauth_check(&tok, "10.1.2.3:1", "Bearer ", 7) == ADMINAUTH_WRONG);
    CHECK(adminauth_check(&tok, "[::1]:9", wrong, strlen(wrong)) == ADMINAUTH_OK);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_loopback();
    test_token();
    return check_done();
}
