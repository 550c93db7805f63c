/* n > 1: one generation request becomes n engine requests ("choices"),
 * submitted with seeds seed, seed + 1, ... and read back as one stream of
 * events tagged with their choice index (routes.c collects them, stream.c
 * sends them as SSE chunks with choices[0].index = i).
 *
 * The prompt is prefilled once: the engine publishes a block to its prefix
 * index only after computing it, so n requests admitted in the same step
 * would each prefill the whole prompt. Choice 0 therefore runs alone until
 * its first event (its prompt is then computed and published); the others
 * follow and reuse every full block, computing only the last partial one. */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "server/server_impl.h"

/* How long choices_next waits on one choice while another may be ready:
 * choices of one request usually step together, so this rarely expires. */
#define CHOICE_POLL_MS 10
/* How long a collecting handler waits per event, and how often it checks
 * whether its client went away (choices_next_watched) */
#define CHOICE_WATCH_MS 200

/* Takes choice 0's first event, so that its prompt blocks are published.
 * A client leaving meanwhile cancels it (its FINISH then comes). */
static void wait_first(choices *c, struct MHD_Connection *conn) {
    double next_check = sp_now_ms() + 200;
    while (!sp_request_next(c->req[0], &c->first, 200)) {
        if (sp_now_ms() >= next_check) {
            next_check = sp_now_ms() + 200;
            if (client_gone(conn)) sp_request_cancel(c->req[0]);
        }
    }
    c->has_first = 1;
}

static sp_status submit_one(sp_server *s, const gen_req *g, choices *c, int i, sp_error *err) {
    sp_request_params p = g->params;
    if (p.has_seed) p.seed += (uint64_t)i;
    sp_status st = sp_engine_submit(s->engine, &p, &c->req[i], err);
    if (st != SP_OK) c->req[i] = NULL;
    return st;
}

sp_status choices_submit(sp_server *s, const gen_req *g, struct MHD_Connection *conn, choices *c,
                         sp_error *err) {
    memset(c, 0, sizeof *c);
    c->n = g->n > 0 ? g->n : 1;
    sp_status st = submit_one(s, g, c, 0, err);
    if (st != SP_OK) return st;
    const sp_engine_info *info = sp_engine_get_info(s->engine);
    int full_blocks = info && info->block_size > 0 ? (int)(g->n_prompt - 1) / info->block_size : 0;
    if (c->n > 1 && full_blocks > 0) {
        wait_first(c, conn);
        sp_event *f = &c->first;
        if (f->kind == SP_EV_FINISH &&
            (f->reason == SP_FINISH_CANCELLED || f->reason == SP_FINISH_ERROR)) {
            c->n = 1; /* the request failed as a whole: choice 0 reports why */
            return SP_OK;
        }
    }
    for (int i = 1; i < c->n; i++) {
        if ((st = submit_one(s, g, c, i, err)) != SP_OK) {
            choices_release(c);
            return st;
        }
    }
    return SP_OK;
}

static int take(choices *c, int i, sp_event *ev, int timeout_ms, int *which) {
    if (c->done[i] || !sp_request_next(c->req[i], ev, timeout_ms)) return 0;
    if (ev->kind == SP_EV_FINISH) c->done[i] = 1;
    *which = i;
    return 1;
}

int choices_next(choices *c, int *which, sp_event *ev, int timeout_ms) {
    if (c->has_first) {
        c->has_first = 0;
        *ev = c->first;
        memset(&c->first, 0, sizeof c->first);
        if (ev->kind == SP_EV_FINISH) c->done[0] = 1;
        *which = 0;
        return 1;
    }
    if (c->n == 1) return take(c, 0, ev, timeout_ms, which);
    /* round robin, so that no choice's events wait behind another's */
    for (int k = 0; k < c->n; k++) {
        int i = (c->rr + k) % c->n;
        if (take(c, i, ev, 0, which)) {
            c->rr = (i + 1) % c->n;
            return 1;
        }
    }
    for (int k = 0; k < c->n; k++) {
        int i = (c->rr + k) % c->n;
        if (c->done[i]) continue;
        c->rr = (i + 1) % c->n; /* a queued choice must not hold the others up */
        int wait = timeout_ms >= 0 && timeout_ms < CHOICE_POLL_MS ? timeout_ms : CHOICE_POLL_MS;
        return take(c, i, ev, wait, which);
    }
    return 0;
}

int choices_next_watched(choices *c, struct MHD_Connection *conn, double *next_check, int *which,
                         sp_event *ev) {
    int got = choices_next(c, which, ev, CHOICE_WATCH_MS);
    if (sp_now_ms() >= *next_check) { /* tokens may flow nonstop: check by time */
        *next_check = sp_now_ms() + CHOICE_WATCH_MS;
        if (client_gone(conn)) choices_cancel(c); /* FINISH follows */
    }
    return got;
}

int choices_all_done(const choices *c) {
    for (int i = 0; i < c->n; i++)
        if (!c->done[i]) return 0;
    return 1;
}

void choices_cancel(choices *c) {
    for (int i = 0; i < c->n; i++)
        if (c->req[i]) sp_request_cancel(c->req[i]);
}

void choices_release(choices *c) {
    /* releasing an unfinished request cancels it */
    for (int i = 0; i < SP_MAX_CHOICES; i++) {
        sp_request_release(c->req[i]);
        c->req[i] = NULL;
    }
    sp_event_clear(&c->first);
    c->has_first = 0;
}
