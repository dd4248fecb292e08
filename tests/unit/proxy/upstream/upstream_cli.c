/* upstream_cli: drives proxy/upstream.c against real peers for test_upstream*.py.
 * Runs transfers one after another on one event loop (the next one is started from the
 * previous one's on_done or abort), prints one JSON line per transfer and a summary with
 * peak RSS, open descriptors and the module's counters.
 *
 *   upstream_cli [options] get URL...     streaming GETs
 *   upstream_cli [options] put URL FILE   streaming upload of FILE (--method, --chunked)
 *   upstream_cli [options] fetch URL...   buffered fetches (--max-bytes, --body)
 * --client native|curl picks the HTTP client (upstream.client; default curl).
 * With --parallel all URLs start at once; with --bulk GETs are bulk transfers (the larger
 * receive buffer, a few at once). --method takes a comma list: URL i is sent with
 * its (i modulo its length)th method.
 *   upstream_cli -                        the same arguments, NUL-separated, on stdin, so
 *                                         that signed URLs, bodies and key headers never
 *                                         show on a command line (ps); the tests use this
 */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "upstream.h"

#define MAX_HEADERS 16

struct cli {
    struct event_base *base;
    struct upstream *up;
    const char *mode;
    char **urls;
    int n_urls;
    const char *file;
    const char *method;        /* this URL's, from methods */
    char *methods[MAX_HEADERS];
    int n_methods;
    const char *headers[MAX_HEADERS];
    size_t n_headers;
    bool chunked, print_headers;
    size_t consume_bytes, produce_bytes, max_bytes;
    unsigned consume_ms, produce_ms, abort_ms;
    uint64_t abort_after;
    int64_t body_len;          /* put: declared length instead of the file's; -1 = file's */
    const char *body;
    struct upstream_timeouts timeouts;
    struct job *jobs;          /* one per URL */
    struct event *grace;
    bool parallel;             /* start every URL at once */
    bool bulk;                 /* GETs marked bulk (upstream_req.bulk) */
    int over;                  /* jobs finished, aborted or failed to start */
    int next;
    int done_after_abort;
};

struct job {
    struct cli *cli;
    int i;
    struct upstream_xfer *x;
    EVP_MD_CTX *md;
    uint64_t bytes, since_pause;
    unsigned pauses, space_events;
    bool aborted, finished;
    struct event *resume_ev, *abort_ev, *produce_ev;
    int fd;
    char *chunk;
};

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;  /* the DIR's own descriptor */
}

static long vm_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static void print_json(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);

    printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(o);
}

static char *hex_digest(EVP_MD_CTX *md, char out[65])
{
    unsigned char d[32];
    unsigned n = 0;

    EVP_DigestFinal_ex(md, d, &n);
    for (unsigned i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    return out;
}

static void job_over(struct cli *c);

static void job_cleanup(struct job *j)
{
    if (j->resume_ev)
        event_free(j->resume_ev);
    if (j->abort_ev)
        event_free(j->abort_ev);
    if (j->produce_ev)
        event_free(j->produce_ev);
    j->resume_ev = j->abort_ev = j->produce_ev = NULL;
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    free(j->chunk);
    j->chunk = NULL;
}

static json_t *head_json(const struct uphead *h)
{
    json_t *a = json_array();

    for (size_t i = 0; h && i < uphead_count(h); i++)
        json_array_append_new(a, json_pack("[ss]", uphead_name(h, i), uphead_value(h, i)));
    return a;
}

/* Small fetch bodies: as text when UTF-8, and always as hex. */
static void add_body(json_t *o, const char *body, size_t len)
{
    json_t *text = json_stringn(body, len);  /* NULL unless UTF-8 */
    char *hex = calloc(1, 2 * len + 1);

    for (size_t k = 0; hex && k < len; k++)
        snprintf(hex + 2 * k, 3, "%02x", (unsigned char)body[k]);
    if (text)
        json_object_set_new(o, "body", text);
    if (hex)
        json_object_set_new(o, "body_hex", json_string(hex));
    free(hex);
}

static void on_done(void *arg, const struct upstream_done *d)
{
    struct job *j = arg;
    char hex[65] = "";
    json_t *o;

    if (j->aborted || j->finished) {
        j->cli->done_after_abort++;
        return;
    }
    j->finished = true;
    j->x = NULL;
    if (d->body)
        EVP_DigestUpdate(j->md, d->body, d->body_len);
    o = json_pack("{si ss ss si sI sI sI ss si si sb sb}", "i", j->i, "result",
                  upstream_result_name(d->result), "error", d->error, "status", d->status,
                  "bytes", (json_int_t)(d->body ? d->body_len : j->bytes), "sent",
                  (json_int_t)d->bytes_sent, "connects", (json_int_t)d->connects, "sha256",
                  hex_digest(j->md, hex), "pauses", j->pauses, "space_events",
                  j->space_events, "head", d->head != NULL, "request_sent", d->request_sent);
    if (d->head && uphead_find(d->head, "Location"))
        json_object_set_new(o, "location", json_string(uphead_find(d->head, "Location")));
    if (d->body && d->body_len <= 4096)
        add_body(o, d->body, d->body_len);
    if (d->body) /* upstream.h: a fetch's body is NUL-terminated */
        json_object_set_new(o, "nul", json_boolean(d->body[d->body_len] == '\0'));
    if (j->cli->print_headers)
        json_object_set_new(o, "headers", head_json(d->head));
    print_json(o);
    job_cleanup(j);
    job_over(j->cli);
}

static void abort_job(struct job *j, const char *where)
{
    upstream_abort(j->x);
    j->x = NULL;
    j->aborted = true;
    print_json(json_pack("{si ss ss sI}", "i", j->i, "result", "ABORTED_BY_DRIVER", "where",
                         where, "bytes", (json_int_t)j->bytes));
    job_cleanup(j);
    job_over(j->cli);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;

    upstream_resume_recv(j->x);
}

static void on_abort_timer(evutil_socket_t fd, short what, void *arg)
{
    abort_job(arg, "timer");
}

static enum upstream_flow on_body(void *arg, const char *data, size_t len)
{
    struct job *j = arg;
    struct cli *c = j->cli;
    struct timeval tv = {c->consume_ms / 1000, (c->consume_ms % 1000) * 1000};

    EVP_DigestUpdate(j->md, data, len);
    j->bytes += len;
    j->since_pause += len;
    if (c->abort_after && j->bytes >= c->abort_after) {
        abort_job(j, "on_body");
        return UPSTREAM_CONTINUE;
    }
    if (!c->consume_bytes || j->since_pause < c->consume_bytes)
        return UPSTREAM_CONTINUE;
    j->since_pause = 0;
    j->pauses++;
    evtimer_add(j->resume_ev, &tv);
    return UPSTREAM_PAUSE;
}

/* Slow producer: pushes at most produce_bytes per tick; stops ticking while the send
 * buffer is full (as a proxy stops reading its client) until on_send_space. */
static void on_produce(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    struct cli *c = j->cli;
    struct timeval tv = {c->produce_ms / 1000, (c->produce_ms % 1000) * 1000};
    size_t room = upstream_send_space(j->x);
    size_t want = room < c->produce_bytes ? room : c->produce_bytes;
    ssize_t got;

    if (want == 0)
        return;  /* on_send_space restarts us */
    got = read(j->fd, j->chunk, want);
    if (got <= 0) {
        upstream_send_eof(j->x);
        return;
    }
    if (upstream_send(j->x, j->chunk, (size_t)got) != (size_t)got) {
        fprintf(stderr, "upstream_send took less than its space\n");
        exit(2);
    }
    evtimer_add(j->produce_ev, &tv);
}

static void on_send_space(void *arg)
{
    struct job *j = arg;

    j->space_events++;
    if (!evtimer_pending(j->produce_ev, NULL))
        event_active(j->produce_ev, EV_TIMEOUT, 0);
}

static struct upstream_xfer *start_put(struct job *j)
{
    struct cli *c = j->cli;
    struct stat st;
    struct upstream_cbs cbs = {.on_body = on_body, .on_send_space = on_send_space,
                               .on_done = on_done, .arg = j};
    struct upstream_req req = {.method = c->method ? c->method : "PUT", .url = c->urls[j->i],
                               .headers = c->headers, .n_headers = c->n_headers,
                               .timeouts = c->timeouts};

    j->fd = open(c->file, O_RDONLY);
    if (j->fd < 0 || fstat(j->fd, &st) != 0)
        return NULL;
    req.body_len = c->chunked ? UPSTREAM_BODY_CHUNKED : (int64_t)st.st_size;
    if (c->body_len >= 0)
        req.body_len = c->body_len;
    j->chunk = malloc(c->produce_bytes);
    j->produce_ev = evtimer_new(c->base, on_produce, j);
    if (!j->chunk || !j->produce_ev)
        return NULL;
    event_active(j->produce_ev, EV_TIMEOUT, 0);
    return upstream_start(c->up, &req, &cbs);
}

static struct upstream_xfer *start_job(struct job *j)
{
    struct cli *c = j->cli;

    c->method = c->n_methods ? c->methods[j->i % c->n_methods] : NULL;
    struct upstream_cbs cbs = {.on_body = on_body, .on_done = on_done, .arg = j};
    struct upstream_req req = {.method = c->method ? c->method : "GET", .url = c->urls[j->i],
                               .headers = c->headers, .n_headers = c->n_headers,
                               .body_len = UPSTREAM_BODY_NONE, .timeouts = c->timeouts,
                               .bulk = c->bulk};

    if (strcmp(c->mode, "put") == 0)
        return start_put(j);
    if (strcmp(c->mode, "fetch") == 0)
        return upstream_fetch(c->up, c->method ? c->method : "GET", c->urls[j->i], c->headers,
                              c->n_headers, c->body, c->body ? strlen(c->body) : 0,
                              c->max_bytes, c->timeouts, on_done, j);
    return upstream_start(c->up, &req, &cbs);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

/* Starts job c->next (one more URL). */
static void start_next(struct cli *c)
{
    struct job *j = &c->jobs[c->next++];

    j->resume_ev = evtimer_new(c->base, on_resume, j);
    j->x = start_job(j);
    if (!j->x) {
        print_json(json_pack("{si ss}", "i", j->i, "result", "START_FAILED"));
        job_cleanup(j);
        job_over(c);
        return;
    }
    if (c->abort_ms) {
        struct timeval at = {c->abort_ms / 1000, (c->abort_ms % 1000) * 1000};
        j->abort_ev = evtimer_new(c->base, on_abort_timer, j);
        evtimer_add(j->abort_ev, &at);
    }
}

/* A job ended: start the next one (sequential mode), or when all ended, let stray
 * callbacks show for 300 ms, then stop the loop. */
static void job_over(struct cli *c)
{
    struct timeval tv = {0, 300 * 1000};

    if (++c->over < c->n_urls) {
        if (!c->parallel)
            start_next(c);
        return;
    }
    c->grace = evtimer_new(c->base, on_grace, c->base);
    evtimer_add(c->grace, &tv);
}

static void split_pair(const char *s, size_t *bytes, unsigned *ms)
{
    char *end;

    *bytes = strtoull(s, &end, 10);
    *ms = *end == ':' ? (unsigned)strtoul(end + 1, NULL, 10) : 0;
}

static int parse_args(struct cli *c, int argc, char **argv, struct upstream_opts *o)
{
    static const struct option longs[] = {
        {"allow-http", 0, 0, 'h'}, {"ca", 1, 0, 'c'}, {"connect-ms", 1, 0, 'C'},
        {"total-ms", 1, 0, 'T'}, {"max-host-conns", 1, 0, 'M'}, {"header", 1, 0, 'H'},
        {"method", 1, 0, 'X'}, {"consume-pause", 1, 0, 'p'}, {"produce", 1, 0, 'P'},
        {"chunked", 0, 0, 'k'}, {"abort-after", 1, 0, 'a'}, {"abort-ms", 1, 0, 'A'},
        {"max-bytes", 1, 0, 'm'}, {"body", 1, 0, 'b'}, {"print-headers", 0, 0, 'i'},
        {"max-header-bytes", 1, 0, 'x'}, {"parallel", 0, 0, 'L'}, {"bulk", 0, 0, 'B'},
        {"body-len", 1, 0, 'l'}, {"client", 1, 0, 'N'},
        {"first-byte-ms", 1, 0, 'F'}, {"stall-ms", 1, 0, 'S'}, {"max-total-conns", 1, 0, 'O'},
        {0, 0, 0, 0}};
    int ch;

    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'h': o->allow_http = true; break;
        case 'c': o->ca_file = optarg; break;
        case 'C': c->timeouts.connect_ms = (unsigned)atoi(optarg); break;
        case 'T': c->timeouts.total_ms = (unsigned)atoi(optarg); break;
        case 'M': o->max_host_connections = atol(optarg); break;
        case 'O': o->max_total_connections = atol(optarg); break;
        case 'F': c->timeouts.first_byte_ms = (unsigned)atoi(optarg); break;
        case 'S': c->timeouts.stall_ms = (unsigned)atoi(optarg); break;
        case 'x': o->max_header_bytes = strtoull(optarg, NULL, 10); break;
        case 'H':
            if (c->n_headers == MAX_HEADERS)
                return -1;
            c->headers[c->n_headers++] = optarg;
            break;
        case 'X':
            for (char *m = strtok(optarg, ","); m && c->n_methods < MAX_HEADERS;
                 m = strtok(NULL, ","))
                c->methods[c->n_methods++] = m;
            break;
        case 'p': split_pair(optarg, &c->consume_bytes, &c->consume_ms); break;
        case 'P': split_pair(optarg, &c->produce_bytes, &c->produce_ms); break;
        case 'k': c->chunked = true; break;
        case 'a': c->abort_after = strtoull(optarg, NULL, 10); break;
        case 'A': c->abort_ms = (unsigned)atoi(optarg); break;
        case 'm': c->max_bytes = strtoull(optarg, NULL, 10); break;
        case 'b': c->body = optarg; break;
        case 'i': c->print_headers = true; break;
        case 'L': c->parallel = true; break;
        case 'B': c->bulk = true; break;
        case 'l': c->body_len = strtoll(optarg, NULL, 10); break;
        case 'N':
            if (strcmp(optarg, "native") != 0 && strcmp(optarg, "curl") != 0)
                return -1;
            o->client = strcmp(optarg, "native") == 0 ? UPSTREAM_CLIENT_NATIVE
                                                      : UPSTREAM_CLIENT_CURL;
            break;
        default: return -1;
        }
    }
    if (optind + 2 > argc)
        return -1;
    c->mode = argv[optind++];
    if (strcmp(c->mode, "put") == 0) {
        if (optind + 2 != argc)
            return -1;
        c->file = argv[optind + 1];
        argc--;
    } else if (strcmp(c->mode, "get") != 0 && strcmp(c->mode, "fetch") != 0) {
        return -1;
    }
    c->urls = argv + optind;
    c->n_urls = argc - optind;
    return 0;
}

static void print_summary(struct cli *c, const struct upstream_stats *s, int fds[4])
{
    json_t *o;
    bool asan = false;

#if defined(__SANITIZE_ADDRESS__)
    asan = true;
#endif
    o = json_pack("{sb sb sI si si si si si sI sI sI sI sI sI sI sI sI sI sI sI sI}",
                  "summary", 1, "asan", asan, "vmhwm_kb", (json_int_t)vm_hwm_kb(), "fds_before", fds[0],
                  "fds_ready", fds[1], "fds_done", fds[2], "fds_after", fds[3],
                  "done_after_abort", c->done_after_abort, "started",
                  (json_int_t)s->transfers_started, "native_started",
                  (json_int_t)s->native_started, "done", (json_int_t)s->transfers_done,
                  "aborted", (json_int_t)s->transfers_aborted, "connects",
                  (json_int_t)s->connects, "bytes_sent", (json_int_t)s->bytes_sent,
                  "bytes_received", (json_int_t)s->bytes_received, "socket_events",
                  (json_int_t)s->socket_events, "timer_events", (json_int_t)s->timer_events,
                  "rearms", (json_int_t)s->rearms, "pauses", (json_int_t)s->pauses,
                  "bulk_buffers", (json_int_t)s->bulk_buffers, "bulk_buffers_peak",
                  (json_int_t)s->bulk_buffers_peak);
    print_json(o);
}

#define STDIN_ARGS_MAX 256          /* arguments */
#define STDIN_ARGS_BYTES (1 << 20)  /* their total size */

/* Reads NUL-separated arguments from stdin into *buf (owned by the caller) and a new
 * argv *out (owned; prog first, then pointers into *buf). Returns the count, or -1. */
static int stdin_args(char *prog, char **buf, char ***out)
{
    size_t len = 0;
    ssize_t n;
    int argc = 0;

    *buf = malloc(STDIN_ARGS_BYTES + 1);
    *out = calloc(STDIN_ARGS_MAX + 2, sizeof(**out));
    if (!*buf || !*out)
        return -1;
    while (len < STDIN_ARGS_BYTES && (n = read(0, *buf + len, STDIN_ARGS_BYTES - len)) > 0)
        len += (size_t)n;
    if (len == STDIN_ARGS_BYTES)
        return -1;
    (*buf)[len] = '\0';
    (*out)[argc++] = prog;
    for (size_t i = 0; i < len; i += strlen(*buf + i) + 1) {
        if (argc > STDIN_ARGS_MAX)
            return -1;
        (*out)[argc++] = *buf + i;
    }
    return argc;
}

int main(int argc, char **argv)
{
    struct cli c = {0};
    struct upstream_opts o = {0};
    struct upstream_stats stats;
    int fds[4];
    char *sbuf = NULL, **sargv = NULL;

    if (argc == 2 && strcmp(argv[1], "-") == 0) {
        if ((argc = stdin_args(argv[0], &sbuf, &sargv)) < 0) {
            fprintf(stderr, "upstream_cli: bad arguments on stdin\n");
            return 2;
        }
        argv = sargv;
    }

    c.produce_bytes = 256 * 1024;
    c.max_bytes = 1 << 20;
    c.body_len = -1;
    if (parse_args(&c, argc, argv, &o) != 0 || c.produce_bytes == 0) {
        fprintf(stderr, "usage: see the top of upstream_cli.c\n");
        return 2;
    }
    fds[0] = count_fds();
    if (upstream_global_init() != 0)
        return 1;
    c.base = event_base_new();
    c.up = c.base ? upstream_new(c.base, &o) : NULL;
    c.jobs = calloc((size_t)c.n_urls, sizeof(*c.jobs));
    if (!c.up || !c.jobs)
        return 1;
    for (int i = 0; i < c.n_urls; i++) {
        c.jobs[i] = (struct job){.cli = &c, .i = i, .fd = -1, .md = EVP_MD_CTX_new()};
        EVP_DigestInit_ex(c.jobs[i].md, EVP_sha256(), NULL);
    }
    fds[1] = count_fds();
    do
        start_next(&c);
    while (c.parallel && c.next < c.n_urls);
    event_base_dispatch(c.base);
    fds[2] = count_fds();
    upstream_stats(c.up, &stats);
    upstream_free(c.up);
    for (int i = 0; i < c.n_urls; i++) {
        job_cleanup(&c.jobs[i]);
        EVP_MD_CTX_free(c.jobs[i].md);
    }
    free(c.jobs);
    if (c.grace)
        event_free(c.grace);
    event_base_free(c.base);
    upstream_global_cleanup();
    fds[3] = count_fds();
    print_summary(&c, &stats, fds);
    free(sargv);
    free(sbuf);
    return 0;
}
