/* fuzz_h1resp: libFuzzer target for proxy/upstream/h1resp.c (upstream responses read by the
 * own HTTP/1.1 client). Input: a flags byte (bit 0: the request was HEAD; bit 1: on_body
 * asks to stop after every piece, as a paused consumer), a step byte (bytes per feed; 0 =
 * all at once), then the bytes the peer sends; the connection closes after them.
 * Invariants: every feed takes at most what it was given; the outcome (state, status, body
 * bytes and their hash, keep-alive) is the same fed whole and fed in steps; a complete
 * response has a status of 100..999 from a final head; the head never holds more than its
 * cap. replay.c's main() replays seeds: accept-* must end DONE, reject-* FAILED. */
#include "h1resp.h"
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_CAP 2048

struct outcome {
    enum h1resp_state state;
    enum upstream_result fail;
    int status;
    size_t body;
    uint64_t hash;
    bool keep;
};

struct run {
    bool stop_each;
    struct outcome *o;
};

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_h1resp: invariant broken: %s\n", why);
    abort();
}

static bool on_head(void *arg, const struct uphead *head)
{
    int st = uphead_status(head);

    (void)arg;
    if (st < 100 || st > 999)
        fail("a final head without a status");
    if (uphead_bytes(head) > HEAD_CAP)
        fail("head over its cap");
    return true;
}

static bool on_body(void *arg, const char *data, size_t len)
{
    struct run *r = arg;

    if (len == 0)
        fail("an empty body piece");
    for (size_t i = 0; i < len; i++)
        r->o->hash = (r->o->hash ^ (unsigned char)data[i]) * 1099511628211ull;
    r->o->body += len;
    return !r->stop_each;
}

/* Feeds `size` bytes `step` at a time (0: at once), then the close. */
static void run_once(const uint8_t *data, size_t size, bool is_head, bool stop_each,
                     size_t step, struct outcome *o)
{
    struct uphead *head = uphead_new(HEAD_CAP);
    struct h1resp r = {0};
    struct run ctx = {.stop_each = stop_each, .o = o};
    struct h1resp_cbs cbs = {.on_head = on_head, .on_body = on_body, .arg = &ctx};
    size_t off = 0;

    if (!head)
        abort();
    memset(o, 0, sizeof *o);
    o->hash = 14695981039346656037ull;
    h1resp_start(&r, head, is_head, HEAD_CAP, &cbs);
    o->state = H1RESP_MORE;
    while (off < size && (o->state == H1RESP_MORE || o->state == H1RESP_STOPPED)) {
        size_t n = step && step < size - off ? step : size - off, used;
        o->state = h1resp_feed(&r, (const char *)data + off, n, &used);
        if (used > n)
            fail("feed took more than it was given");
        if (o->state == H1RESP_STOPPED && used == 0 && !stop_each)
            fail("stopped without a reason");
        off += used;
        if (o->state == H1RESP_MORE && used != n)
            fail("MORE without taking everything");
    }
    if (o->state == H1RESP_MORE || o->state == H1RESP_STOPPED)
        o->state = h1resp_eof(&r);
    if (o->state == H1RESP_FAILED && !r.fail_text)
        fail("a failure without a text");
    o->fail = o->state == H1RESP_FAILED ? r.fail : UPSTREAM_OK;
    o->status = o->state == H1RESP_DONE ? uphead_status(head) : 0;
    o->keep = o->state == H1RESP_DONE && h1resp_keep_alive(&r);
    if (o->state == H1RESP_DONE && (o->status < 100 || o->status > 999))
        fail("done without a final status");
    h1resp_cleanup(&r);
    uphead_free(head);
}

static void outcome_of(const uint8_t *data, size_t size, struct outcome *whole)
{
    struct outcome stepped;
    bool is_head, stop_each;
    size_t step;

    if (size < 2) {
        memset(whole, 0, sizeof *whole);
        whole->state = H1RESP_FAILED;
        return;
    }
    is_head = data[0] & 1;
    stop_each = data[0] & 2;
    step = data[1];
    run_once(data + 2, size - 2, is_head, false, 0, whole);
    run_once(data + 2, size - 2, is_head, stop_each, step ? step : 1, &stepped);
    /* the failure's kind may differ: a head both too large and malformed is found one way
     * or the other depending on where the reads split it */
    if (whole->state != stepped.state || whole->status != stepped.status || whole->body != stepped.body ||
        whole->hash != stepped.hash || whole->keep != stepped.keep)
        fail("fed in steps, the response read differently");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outcome o;

    outcome_of(data, size, &o);
    return 0;
}

int replay_check(const char *name, const uint8_t *data, size_t size)
{
    struct outcome o;

    outcome_of(data, size, &o);
    if (strncmp(name, "accept-", 7) == 0 && o.state != H1RESP_DONE) {
        fprintf(stderr, "%s: not read as a complete response\n", name);
        return -1;
    }
    if (strncmp(name, "reject-", 7) == 0 && o.state != H1RESP_FAILED) {
        fprintf(stderr, "%s: not refused\n", name);
        return -1;
    }
    return 0;
}
