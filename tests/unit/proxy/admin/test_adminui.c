/* test_adminui: the operator page's files are found by path (and nothing else is), and an
 * action's token check (adminauth_action) wants the token from every peer and gives a
 * fingerprint, never the token. */
#define _GNU_SOURCE
#include <string.h>

#include "adminauth.h"
#include "adminui.h"
#include "check.h"
#include "uiassets.h"

#define TOKEN "admin-token-0123456789abcdef"

static const struct uiassets_file *find(const char *path)
{
    return adminui_find(path, strlen(path));
}

static void test_files(void)
{
    CHECK(find("/ui") && strcmp(find("/ui")->name, "index.html") == 0);
    CHECK(find("/ui/") == find("/ui"));
    CHECK(find("/ui/index.html") == find("/ui"));
    CHECK(find("/ui/app.js") && strncmp(find("/ui/app.js")->content_type, "text/javascript", 15) == 0);
    CHECK(find("/ui/app.css") && strncmp(find("/ui/app.css")->content_type, "text/css", 8) == 0);
    CHECK(find("/ui/../admin/status") == NULL);
    CHECK(find("/ui/app.js/x") == NULL);
    CHECK(find("/uix") == NULL);
    CHECK(find("/ui/nope") == NULL);
    CHECK(find("/ui/app") == NULL);
    /* the page loads its script and style from files, never inline */
    const struct uiassets_file *html = find("/ui");
    const char *h = (const char *)html->data;
    CHECK(memmem(h, html->len, "<script src=\"/ui/app.js\"", 24) != NULL);
    CHECK(memmem(h, html->len, "<script>", 8) == NULL);
    CHECK(memmem(h, html->len, "<style", 6) == NULL);
    CHECK(memmem(h, html->len, "style=", 6) == NULL);
    CHECK(memmem(h, html->len, "onclick", 7) == NULL && memmem(h, html->len, "onload", 6) == NULL);
}

static void test_action(void)
{
    struct adminauth_token tok = { 0 }, none = { 0 };
    char fp[13];
    const char *good = "Bearer " TOKEN;

    CHECK(apikey_digest(TOKEN, strlen(TOKEN), tok.digest) == 0);
    tok.set = true;
    CHECK(adminauth_action(&tok, good, strlen(good), fp) == ADMINAUTH_OK);
    CHECK(strlen(fp) == 12 && strspn(fp, "0123456789abcdef") == 12);
    CHECK(strstr(TOKEN, fp) == NULL);
    CHECK(adminauth_action(&tok, NULL, 0, fp) == ADMINAUTH_MISSING && fp[0] == '\0');
    CHECK(adminauth_action(&tok, "Bearer admin-token-0123456789abcdeX", 35, fp) ==
          ADMINAUTH_WRONG && fp[0] == '\0');
    CHECK(adminauth_action(&tok, "Basic xyz", 9, fp) == ADMINAUTH_WRONG);
    CHECK(adminauth_action(&none, good, strlen(good), fp) == ADMINAUTH_WRONG);
    /* loopback is no exception for actions: the check has no peer at all */
    CHECK(adminauth_check(&tok, "127.0.0.1:1", NULL, 0) == ADMINAUTH_OK);
}

int main(void)
{
    test_files();
    test_action();
    return check_done();
}
