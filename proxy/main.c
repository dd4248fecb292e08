/* fogate: parse options, load the config, build the app, run the loop. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf.h"
#include "heaptrim.h"
#include "log.h"
#include "upstream.h"
#include "workers.h"

#ifndef FOGATE_VERSION /* the package version and commit, from CMake (deploy/debian/version.cmake) */
#define FOGATE_VERSION "unknown"
#endif
#ifndef FOGATE_COMMIT
#define FOGATE_COMMIT "unknown"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fogate -c FILE          run with the config FILE\n"
            "       fogate --check-config FILE\n"
            "                               validate FILE; exit 0 if valid, 2 if not\n"
            "       fogate --version | --help\n"
            "Secrets are never passed on the command line: the config names the files or\n"
            "environment variables that hold them. Logs are JSON lines on stderr.\n");
}

static struct conf *load(const char *path)
{
    struct conf_error err = { 0 };
    struct conf *conf = conf_load(path, &err);

    if (!conf) /* the message starts with the file, line and key path */
        fprintf(stderr, "fogate: %s\n", err.message[0] ? err.message : path);
    return conf;
}

static int check_config(const char *path)
{
    struct conf *conf = load(path);

    if (!conf)
        return 2;
    printf("fogate: %s: configuration is valid\n", path);
    conf_free(conf);
    return 0;
}

static int run(const char *path)
{
    struct conf *conf = load(path);

    if (!conf)
        return 2;
    log_set_level(conf->log_level);
    signal(SIGPIPE, SIG_IGN); /* a client that goes away is an error return, not a signal */
    heaptrim_setup();         /* before any thread: malloc's settings are process-wide */
    if (upstream_global_init() < 0) {
        conf_free(conf);
        return 1;
    }
    int rc = workers_run(conf); /* one app per worker thread */
    upstream_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", required_argument, NULL, 'k' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = NULL, *check = NULL;
    int o;

    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'k': check = optarg; break;
        case 'V': printf("fogate %s (commit %s)\n", FOGATE_VERSION, FOGATE_COMMIT); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || (!config == !check)) {
        usage(stderr);
        return 2;
    }
    return check ? check_config(check) : run(config);
}
