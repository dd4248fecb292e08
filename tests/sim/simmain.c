/* fosim: a simulator of D365 F&O (connector and package APIs) and Entra ID for tests.
 * Usage: fosim --config FILE [--listen 127.0.0.1:0] [--data-dir DIR] [--log-level L] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <curl/curl.h>

#include "log.h"
#include "sim.h"

struct opts {
    const char *config, *listen, *data_dir, *level;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
    o->listen = "127.0.0.1:0";
    for (int i = 1; i < argc; i++) {
        const char **dst = strcmp(argv[i], "--config") == 0      ? &o->config
                           : strcmp(argv[i], "--listen") == 0    ? &o->listen
                           : strcmp(argv[i], "--data-dir") == 0  ? &o->data_dir
                           : strcmp(argv[i], "--log-level") == 0 ? &o->level
                                                                 : NULL;
        if (!dst || i + 1 >= argc)
            return -1;
        *dst = argv[++i];
    }
    return o->config ? 0 : -1;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static int split_listen(const char *listen, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= cap)
        return -1;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    *port = atoi(colon + 1);
    return *port >= 0 && *port < 65536 ? 0 : -1;
}

static int run(const struct opts *o, const char *host, int port, const char *data_dir)
{
    char err[512];
    json_error_t jerr;
    json_t *doc = json_load_file(o->config, 0, &jerr);
    if (!doc) {
        fprintf(stderr, "fosim: %s: %s (line %d)\n", o->config, jerr.text, jerr.line);
        return 2;
    }
    struct event_base *base = event_base_new();
    struct sim *s = sim_new(base, doc, host, port, data_dir, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "fosim: %s\n", err);
        event_base_free(base);
        return 2;
    }
    printf("{\"listening\":\"%s\",\"base_url\":\"%s\"}\n", s->hostport, s->base_url);
    fflush(stdout);
    log_json(LOG_LVL_INFO, "fosim started", json_pack("{s:s}", "base_url", s->base_url));
    struct event *sterm = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sint = evsignal_new(base, SIGINT, on_signal, base);
    event_add(sterm, NULL);
    event_add(sint, NULL);
    event_base_dispatch(base);
    log_msg(LOG_LVL_INFO, "fosim stopping");
    event_free(sterm);
    event_free(sint);
    sim_free(s);
    event_base_free(base);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    char host[64], tmpl[] = "/tmp/fosim-XXXXXX";
    int port;
    if (parse_opts(argc, argv, &o) != 0 || split_listen(o.listen, host, sizeof(host), &port)) {
        fprintf(stderr, "usage: fosim --config FILE [--listen HOST:PORT] [--data-dir DIR] "
                        "[--log-level debug|info|warn|error]\n");
        return 2;
    }
    enum log_level lvl;
    if (o.level && log_level_parse(o.level, &lvl) == 0)
        log_set_level(lvl);
    const char *data_dir = o.data_dir ? o.data_dir : mkdtemp(tmpl);
    if (!data_dir) {
        perror("fosim: mkdtemp");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = run(&o, host, port, data_dir);
    curl_global_cleanup();
    libevent_global_shutdown();
    return rc;
}
