/* Shared by the test_toolcall_*.c tests: feeds a recorded model output to
 * the parser in many chunkings (whole, every 1- and 2-byte chunking, every
 * split into two and three pieces, random pieces) and checks that the
 * assembled events are identical each time and equal the expected content,
 * reasoning and calls (written by hand from the format's definition). */
#ifndef SP_TEST_TOOLCALL_HARNESS_H
#define SP_TEST_TOOLCALL_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "chat/toolcall.h"
#include "check.h"

#define TC_MAX_CALLS 8

typedef struct tc_case {
    const char *name;
    sp_tool_format tools;
    sp_think_format think;
    int start_in_reasoning;
    int max_calls;
    const char *text;
    const char *content;   /* NULL: no content at all */
    const char *reasoning; /* NULL: no reasoning */
    int n_calls;
    const char *call_name[TC_MAX_CALLS];
    const char *call_args[TC_MAX_CALLS];
    int malformed;
} tc_case;

typedef struct tc_result {
    char *content, *reasoning; /* NULL when no event of the kind came */
    int n_calls;
    char *names[TC_MAX_CALLS], *args[TC_MAX_CALLS];
    char ids[TC_MAX_CALLS][40];
    int malformed;
    char error[200]; /* an ordering or shape violation */
} tc_result;

static void tc_cat(char **dst, const char *s, size_t n) {
    size_t old = *dst ? strlen(*dst) : 0;
    *dst = realloc(*dst, old + n + 1);
    memcpy(*dst + old, s, n);
    (*dst)[old + n] = 0;
}

/* Applies one batch of events, checking the OpenAI stream shape: a call is
 * started once, gets arguments, is ended, and calls come in index order. */
static void tc_apply(tc_result *r, const sp_chat_evs *evs, int *open_call) {
    for (size_t i = 0; i < evs->n; i++) {
        const sp_chat_ev *e = &evs->v[i];
        switch (e->kind) {
        case SP_CHAT_CONTENT:
            tc_cat(&r->content, e->text, e->len);
            break;
        case SP_CHAT_REASONING:
            tc_cat(&r->reasoning, e->text, e->len);
            break;
        case SP_CHAT_TOOL_START:
            if (*open_call >= 0 || e->index != r->n_calls || e->index >= TC_MAX_CALLS ||
                strncmp(e->id, "call_", 5) || strlen(e->id) != 29) {
                snprintf(r->error, sizeof r->error, "bad start of call %d", e->index);
                return;
            }
            r->names[e->index] = strndup(e->text, e->len);
            r->args[e->index] = strdup("");
            memcpy(r->ids[e->index], e->id, sizeof e->id);
            *open_call = e->index;
            r->n_calls++;
            break;
        case SP_CHAT_TOOL_ARGS:
            if (e->index != *open_call) {
                snprintf(r->error, sizeof r->error, "arguments for call %d not open", e->index);
                return;
            }
            tc_cat(&r->args[e->index], e->text, e->len);
            break;
        case SP_CHAT_TOOL_END:
            if (e->index != *open_call) {
                snprintf(r->error, sizeof r->error, "end of call %d not open", e->index);
                return;
            }
            *open_call = -1;
            break;
        }
    }
}

/* Feeds text in the pieces given by cuts (ascending offsets, n_cuts of them). */
static void tc_run(const tc_case *c, const size_t *cuts, int n_cuts, tc_result *r) {
    memset(r, 0, sizeof *r);
    sp_chat_parser_opts o = {c->tools, c->think, c->start_in_reasoning, c->max_calls, 12345};
    sp_chat_parser *p = sp_chat_parser_new(&o);
    sp_chat_evs evs = {0};
    int open_call = -1;
    size_t at = 0, n = strlen(c->text);
    for (int k = 0; k <= n_cuts; k++) {
        size_t to = k < n_cuts ? cuts[k] : n;
        sp_chat_parser_feed(p, c->text + at, to - at, &evs);
        tc_apply(r, &evs, &open_call);
        sp_chat_evs_clear(&evs);
        at = to;
    }
    sp_chat_parser_finish(p, &evs);
    tc_apply(r, &evs, &open_call);
    if (open_call >= 0) snprintf(r->error, sizeof r->error, "call %d never ended", open_call);
    r->malformed = sp_chat_parser_malformed(p);
    sp_chat_evs_free(&evs);
    sp_chat_parser_free(p);
}

static void tc_result_free(tc_result *r) {
    free(r->content);
    free(r->reasoning);
    for (int i = 0; i < r->n_calls; i++) free(r->names[i]), free(r->args[i]);
}

static int tc_streq(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return !strcmp(a, b);
}

static int tc_same(const tc_result *a, const tc_result *b) {
    if (!tc_streq(a->content, b->content) || !tc_streq(a->reasoning, b->reasoning) ||
        a->n_calls != b->n_calls || a->malformed != b->malformed || a->error[0] || b->error[0])
        return 0;
    for (int i = 0; i < a->n_calls; i++)
        if (strcmp(a->names[i], b->names[i]) || strcmp(a->args[i], b->args[i]) ||
            strcmp(a->ids[i], b->ids[i]))
            return 0;
    return 1;
}

static const char *tc_show(const char *s) {
    return s ? s : "(null)";
}

/* The whole-text result against the hand-written expectation. */
static void tc_check_expected(const tc_case *c, const tc_result *r) {
    CHECKF(!r->error[0], "%s: %s", c->name, r->error);
    CHECKF(tc_streq(r->content, c->content), "%s: content [%s], want [%s]", c->name,
           tc_show(r->content), tc_show(c->content));
    CHECKF(tc_streq(r->reasoning, c->reasoning), "%s: reasoning [%s], want [%s]", c->name,
           tc_show(r->reasoning), tc_show(c->reasoning));
    CHECKF(r->n_calls == c->n_calls, "%s: %d calls, want %d", c->name, r->n_calls, c->n_calls);
    for (int i = 0; i < r->n_calls && i < c->n_calls; i++) {
        CHECKF(!strcmp(r->names[i], c->call_name[i]), "%s: call %d name [%s], want [%s]", c->name,
               i, r->names[i], c->call_name[i]);
        CHECKF(!strcmp(r->args[i], c->call_args[i]), "%s: call %d args [%s], want [%s]", c->name, i,
               r->args[i], c->call_args[i]);
    }
    CHECKF(r->malformed == c->malformed, "%s: %d malformed, want %d", c->name, r->malformed,
           c->malformed);
}

static unsigned tc_rand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

/* Every chunking of one case must reproduce the whole-text result. */
static void tc_check_case(const tc_case *c) {
    sp_log_set_level(SP_LOG_ERROR); /* malformed cases warn once per run */
    tc_result whole, r;
    tc_run(c, NULL, 0, &whole);
    tc_check_expected(c, &whole);
    size_t n = strlen(c->text);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    int runs = 0, bad = 0;
#define TC_TRY(ncuts, what)                                                                        \
    do {                                                                                           \
        tc_run(c, cuts, (ncuts), &r);                                                              \
        runs++;                                                                                    \
        if (!tc_same(&whole, &r) && bad++ < 3)                                                     \
            CHECKF(0, "%s: %s differs: content [%s] reasoning [%s] calls %d %s", c->name, what,    \
                   tc_show(r.content), tc_show(r.reasoning), r.n_calls, r.error);                  \
        tc_result_free(&r);                                                                        \
    } while (0)
    /* 1-byte pieces; 2-byte pieces from offset 0 and 1 */
    for (size_t i = 0; i + 1 < n; i++) cuts[i] = i + 1;
    TC_TRY((int)(n ? n - 1 : 0), "1-byte chunking");
    for (int off = 0; off < 2; off++) {
        int k = 0;
        for (size_t i = (size_t)(off ? 1 : 2); i < n; i += 2) cuts[k++] = i;
        TC_TRY(k, off ? "2-byte chunking (offset 1)" : "2-byte chunking");
    }
    /* every split into two pieces, and into three for short texts */
    for (size_t i = 1; i < n; i++) {
        cuts[0] = i;
        TC_TRY(1, "two-piece split");
    }
    if (n <= 200)
        for (size_t i = 1; i < n; i++)
            for (size_t j = i + 1; j < n; j++) {
                cuts[0] = i, cuts[1] = j;
                TC_TRY(2, "three-piece split");
            }
    unsigned seed = 7;
    for (int t = 0; t < 200; t++) {
        int k = 0;
        for (size_t i = 1 + tc_rand(&seed) % 7; i < n; i += 1 + tc_rand(&seed) % 7) cuts[k++] = i;
        TC_TRY(k, "random chunking");
    }
#undef TC_TRY
    CHECKF(bad == 0, "%s: %d of %d chunkings differ from the whole-text result", c->name, bad,
           runs);
    free(cuts);
    tc_result_free(&whole);
    sp_log_set_level(SP_LOG_INFO);
}

#endif
