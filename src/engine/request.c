/* Requests and their event channels: the only objects shared between the
 * engine thread and a submitting thread. A request is reference counted
 * (one reference each) and freed by whoever lets go last. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_impl.h"

sp_request *sp_request_new(const sp_request_params *p, uint64_t id) {
    sp_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->id = id;
    atomic_init(&r->refs, 2);
    atomic_init(&r->cancelled, 0);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->finish_node = calloc(1, sizeof *r->finish_node);
    r->prompt = malloc((size_t)p->n_prompt * sizeof *r->prompt);
    r->n_prompt = p->n_prompt;
    if (!r->prompt || !r->finish_node) goto fail;
    memcpy(r->prompt, p->prompt, (size_t)p->n_prompt * sizeof *r->prompt);
    r->sampling = p->sampling;
    if (p->sampling.n_bias > 0) {
        r->bias = malloc((size_t)p->sampling.n_bias * sizeof *r->bias);
        if (!r->bias) goto fail;
        memcpy(r->bias, p->sampling.bias, (size_t)p->sampling.n_bias * sizeof *r->bias);
    }
    r->sampling.bias = r->bias;
    if (p->n_stop > 0) {
        r->stop = calloc((size_t)p->n_stop, sizeof *r->stop);
        if (!r->stop) goto fail;
        r->n_stop = p->n_stop;
        for (int i = 0; i < p->n_stop; i++)
            if (!(r->stop[i] = strdup(p->stop[i]))) goto fail;
    }
    r->seed = p->seed;
    r->max_tokens = p->max_tokens;
    r->ignore_eos = p->ignore_eos;
    r->logprobs = p->logprobs;
    r->top_logprobs = p->top_logprobs;
    r->keep_special = p->keep_special;
    if (p->constraint && !(r->constraint = sp_tool_constraint_copy(p->constraint))) goto fail;
    if (p->n_images > 0) {
        r->images = calloc((size_t)p->n_images, sizeof *r->images);
        r->image_pos = malloc((size_t)p->n_images * sizeof *r->image_pos);
        if (!r->images || !r->image_pos) goto fail;
        for (int i = 0; i < p->n_images; i++, r->n_images++) {
            if (sp_pixels_copy(&r->images[i], p->images[i].pixels, NULL) != SP_OK) goto fail;
            r->image_pos[i] = p->images[i].pos;
        }
    }
    if (p->n_inputs > 0) {
        r->input_len = malloc((size_t)p->n_inputs * sizeof *r->input_len);
        if (!r->input_len) goto fail;
        memcpy(r->input_len, p->input_len, (size_t)p->n_inputs * sizeof *r->input_len);
        r->n_inputs = p->n_inputs;
    }
    r->grammar = sp_grammar_retain(p->grammar);
    if (p->think_close && strlen(p->think_close) < sizeof r->think_close)
        strcpy(r->think_close, p->think_close);
    if (p->think_open && strlen(p->think_open) < sizeof r->think_open)
        strcpy(r->think_open, p->think_open);
    r->in_think = p->in_think;
    r->t_submit = sp_now_ms();
    return r;
fail:
    atomic_store(&r->refs, 1);
    sp_request_release(r);
    return NULL;
}

static void request_free(sp_request *r) {
    for (ev_node *n = r->head, *next; n; n = next) {
        next = n->next;
        sp_event_clear(&n->ev);
        free(n);
    }
    free(r->finish_node);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->bias);
    free(r->constraint);
    free(r->input_len);
    sp_grammar_release(r->grammar);
    free(r->prompt);
    for (int i = 0; i < r->n_images; i++) sp_pixels_free(&r->images[i]);
    free(r->images);
    free(r->image_pos);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void sp_request_release(sp_request *r) {
    if (!r) return;
    /* a submitter letting go of an unfinished request no longer wants it */
    atomic_store(&r->cancelled, 1);
    if (atomic_fetch_sub(&r->refs, 1) == 1) request_free(r);
}

void sp_request_cancel(sp_request *r) {
    atomic_store(&r->cancelled, 1);
}

uint64_t sp_request_id(const sp_request *r) {
    return r->id;
}

void sp_request_push(sp_request *r, sp_event *ev) {
    /* the FINISH node was allocated with the request: it is never lost */
    ev_node *n = ev->kind == SP_EV_FINISH ? r->finish_node : calloc(1, sizeof *n);
    if (ev->kind == SP_EV_FINISH) r->finish_node = NULL;
    if (!n) { /* out of memory: drop this token's event */
        sp_event_clear(ev);
        return;
    }
    n->ev = *ev;
    memset(ev, 0, sizeof *ev);
    pthread_mutex_lock(&r->mu);
    if (r->tail)
        r->tail->next = n;
    else
        r->head = n;
    r->tail = n;
    if (n->ev.kind == SP_EV_FINISH) r->finished = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

int sp_request_next(sp_request *r, sp_event *ev, int timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ms > 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&r->mu);
    while (!r->head) {
        if (timeout_ms == 0) break;
        if (timeout_ms < 0)
            pthread_cond_wait(&r->cv, &r->mu);
        else if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
            break;
    }
    ev_node *n = r->head;
    if (n) {
        r->head = n->next;
        if (!r->head) r->tail = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (!n) return 0;
    *ev = n->ev;
    free(n);
    return 1;
}

void sp_event_clear(sp_event *ev) {
    free(ev->text);
    free(ev->embedding);
    memset(ev, 0, sizeof *ev);
}

const char *sp_finish_reason_name(sp_finish_reason r) {
    switch (r) {
    case SP_FINISH_STOP:
        return "stop";
    case SP_FINISH_LENGTH:
        return "length";
    case SP_FINISH_CANCELLED:
        return "cancelled";
    default:
        return "error";
    }
}
