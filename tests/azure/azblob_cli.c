/* azblob_cli: a test driver that lets the Python tests call sas.c and azblob.c.
 *   azblob_cli ENDPOINT sas CONTAINER BLOB PERMS START_OFFSET EXPIRY_OFFSET  -> prints a URL
 *   azblob_cli ENDPOINT ensure CONTAINER
 *   azblob_cli ENDPOINT put CONTAINER BLOB PATH [BLOCK_SIZE]
 *   azblob_cli ENDPOINT head CONTAINER BLOB                                  -> prints the size
 * Offsets are seconds relative to now. The account is devstoreaccount1 with Azurite's key
 * unless AZBLOB_ACCOUNT / AZBLOB_KEY are set. Exit 0 on success, 2 for a missing blob, 1 on
 * error (message on stderr). */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "azblob.h"
#include "sas.h"

static int usage(void)
{
    fprintf(stderr, "usage: azblob_cli ENDPOINT sas|ensure|put|head ARGS...\n");
    return 1;
}

static int cmd_sas(const struct sas_account *acct, int argc, char **argv)
{
    char url[SAS_URL_MAX];
    time_t now = time(NULL);
    if (argc != 7)
        return usage();
    time_t st = now + strtol(argv[5], NULL, 10);
    time_t se = now + strtol(argv[6], NULL, 10);
    if (sas_blob_url(url, sizeof url, acct, argv[2], argv[3], argv[4], st, se) != 0) {
        fprintf(stderr, "azblob_cli: sas_blob_url failed\n");
        return 1;
    }
    printf("%s\n", url);
    return 0;
}

static int cmd_head(const struct sas_account *acct, int argc, char **argv, char *err,
                    size_t errcap)
{
    long long size = -1;
    if (argc != 4)
        return usage();
    int rc = azblob_head(acct, argv[2], argv[3], &size, err, errcap);
    if (rc == AZBLOB_NOT_FOUND)
        return 2;
    if (rc != 0)
        return 1;
    printf("%lld\n", size);
    return 0;
}

static int run(const struct sas_account *acct, int argc, char **argv)
{
    char err[512] = "";
    int rc;
    const char *cmd = argv[1];

    if (strcmp(cmd, "sas") == 0)
        return cmd_sas(acct, argc, argv);
    if (strcmp(cmd, "ensure") == 0 && argc == 3)
        rc = azblob_ensure_container(acct, argv[2], err, sizeof err) == 0 ? 0 : 1;
    else if (strcmp(cmd, "put") == 0 && argc == 5)
        rc = azblob_put_file(acct, argv[2], argv[3], argv[4], err, sizeof err) == 0 ? 0 : 1;
    else if (strcmp(cmd, "put") == 0 && argc == 6)
        rc = azblob_put_file_blocks(acct, argv[2], argv[3], argv[4],
                                    (size_t)strtoull(argv[5], NULL, 10), err, sizeof err) == 0
                 ? 0
                 : 1;
    else if (strcmp(cmd, "head") == 0)
        rc = cmd_head(acct, argc, argv, err, sizeof err);
    else
        return usage();
    if (rc == 1)
        fprintf(stderr, "%s\n", err[0] ? err : "azblob_cli: failed");
    return rc;
}

int main(int argc, char **argv)
{
    struct sas_account acct = {NULL, SAS_DEV_ACCOUNT, SAS_DEV_KEY};
    const char *name = getenv("AZBLOB_ACCOUNT");
    const char *key = getenv("AZBLOB_KEY");

    if (argc < 3)
        return usage();
    acct.endpoint = argv[1];
    if (name && *name)
        acct.name = name;
    if (key && *key)
        acct.key_b64 = key;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = run(&acct, argc - 1, argv + 1);
    curl_global_cleanup();
    return rc;
}
