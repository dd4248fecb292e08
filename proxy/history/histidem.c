/* histidem: Idempotency-Key records of enqueues (see histidem.h). */
#include "histidem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "history.h"
#include "pkgkey.h"
#include "pkgstore.h"

struct histidem_op {
    struct histidem_hold *hold;       /* owned: the key and value being taken */
    histidem_cb *cb;                  /* NULL once cancelled */
    void *arg;
};

struct histidem_hold {
    struct pkgstore *ps;              /* borrowed from the history */
    struct event_base *base;          /* borrowed from the history */
    struct event *renew;              /* owned; NULL until reserved */
    unsigned lease_ms, done_ttl_ms;
    char key[PKGKEY_KEY_SIZE];
    char val[PKGKEY_RECORD_SIZE];     /* "R <record id>" */
    char rid[HISTREC_ID_SIZE];
};

static void hold_free(struct histidem_hold *hd)
{
    if (hd && hd->renew)
        event_free(hd->renew);
    free(hd);
}

static void on_renew(evutil_socket_t fd, short what, void *arg)
{
    struct histidem_hold *hd = arg;

    (void)fd, (void)what;
    pkgstore_renew(hd->ps, hd->key, hd->val, hd->lease_ms, NULL, NULL);
}

static int start_renew(struct histidem_hold *hd, struct event_base *base)
{
    struct timeval tv = { hd->lease_ms / 3000, (hd->lease_ms / 3 % 1000) * 1000 };

    hd->renew = event_new(base, -1, EV_PERSIST, on_renew, hd);
    return hd->renew && event_add(hd->renew, &tv) == 0 ? 0 : -1;
}

static void parse_done(const struct pkgkey_record *rec, struct histidem_res *res)
{
    const char *comma = strchr(rec->exec_id, ',');

    res->verdict = HISTIDEM_DOWN;
    if (!comma || (size_t)(comma - rec->exec_id) >= sizeof res->msg_id ||
        strlen(comma + 1) != HISTREC_ID_SIZE - 1)
        return;
    memcpy(res->msg_id, rec->exec_id, (size_t)(comma - rec->exec_id));
    res->msg_id[comma - rec->exec_id] = '\0';
    memcpy(res->record_id, comma + 1, HISTREC_ID_SIZE);
    memcpy(res->sha256, rec->sha256, 32);
    res->verdict = HISTIDEM_DONE;
}

static void on_take(void *arg, enum pkgstore_result r, const char *val, size_t len)
{
    struct histidem_op *op = arg;
    struct histidem_res res = { .verdict = HISTIDEM_DOWN };
    struct pkgkey_record rec;

    if (r == PKGSTORE_OK && op->cb &&
        start_renew(op->hold, op->hold->base) == 0) {
        res.verdict = HISTIDEM_NEW;
        res.hold = op->hold;
        op->hold = NULL;
    } else if (r == PKGSTORE_OK) { /* cancelled meanwhile, or no timer: give it back */
        pkgstore_release(op->hold->ps, op->hold->key, op->hold->val, NULL, NULL);
    } else if (r == PKGSTORE_HELD && pkgkey_record_parse(val, len, &rec) == 0) {
        if (rec.state == PKGKEY_RESERVED)
            res.verdict = HISTIDEM_BUSY;
        else
            parse_done(&rec, &res);
    }
    if (op->cb)
        op->cb(op->arg, &res);
    hold_free(op->hold);
    free(op);
}

struct histidem_op *histidem_begin(struct history *h, const char *job, const char *key,
                                   size_t len, const char *rid, histidem_cb *cb, void *arg)
{
    struct histidem_op *op = h ? calloc(1, sizeof *op) : NULL;
    struct histidem_hold *hd = op ? calloc(1, sizeof *hd) : NULL;
    struct pkgkey_record rec = { .state = PKGKEY_RESERVED };

    if (!hd)
        goto fail;
    op->hold = hd;
    op->cb = cb;
    op->arg = arg;
    hd->ps = history_store(h);
    hd->base = history_base(h);
    hd->lease_ms = history_conf(h)->packages.lock_lease_ms;
    hd->done_ttl_ms = history_conf(h)->history.retention_days * 86400000u;
    snprintf(hd->rid, sizeof hd->rid, "%s", rid);
    snprintf(rec.exec_id, sizeof rec.exec_id, "%s", rid);
    if (!hd->ps || pkgkey_idem(job, key, len, hd->key) < 0 ||
        pkgkey_record_format(&rec, hd->val) < 0 ||
        pkgstore_take(hd->ps, hd->key, hd->val, hd->lease_ms, on_take, op) < 0)
        goto fail;
    return op;
fail:
    free(hd);
    free(op);
    return NULL;
}

void histidem_cancel(struct histidem_op *op)
{
    if (op)
        op->cb = NULL;
}

void histidem_done(struct histidem_hold *hd, const char *msg_id,
                   const unsigned char sha256[32])
{
    struct pkgkey_record rec = { .state = PKGKEY_DONE };
    char val[PKGKEY_RECORD_SIZE];

    if (!hd)
        return;
    snprintf(rec.exec_id, sizeof rec.exec_id, "%s,%s", msg_id, hd->rid);
    memcpy(rec.sha256, sha256, 32);
    if (pkgkey_record_format(&rec, val) == 0)
        pkgstore_swap(hd->ps, hd->key, hd->val, val, hd->done_ttl_ms, NULL, NULL);
    else
        pkgstore_release(hd->ps, hd->key, hd->val, NULL, NULL);
    hold_free(hd);
}

void histidem_drop(struct histidem_hold *hd)
{
    if (!hd)
        return;
    pkgstore_release(hd->ps, hd->key, hd->val, NULL, NULL);
    hold_free(hd);
}
