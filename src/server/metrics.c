/* GET /metrics: Prometheus text exposition of the engine's counters. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_impl.h"

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void bprintf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n + 1;
        char *q = realloc(b->p, cap);
        if (!q) return;
        b->p = q;
        b->cap = cap;
    }
}

static void metric(buf *b, const char *name, const char *type, const char *help, double v) {
    bprintf(b, "# HELP spindle_%s %s\n# TYPE spindle_%s %s\nspindle_%s %.17g\n", name, help, name,
            type, name, v);
}

static void histogram(buf *b, const char *name, const char *help, const sp_hist *h) {
    bprintf(b, "# HELP spindle_%s %s\n# TYPE spindle_%s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < SP_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        bprintf(b, "spindle_%s_bucket{le=\"%g\"} %llu\n", name, sp_hist_bounds[i],
                (unsigned long long)cum);
    }
    cum += h->counts[SP_HIST_BUCKETS];
    bprintf(b, "spindle_%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    bprintf(b, "spindle_%s_sum %.9g\nspindle_%s_count %llu\n", name, h->sum, name,
            (unsigned long long)h->n);
}

void route_metrics(sp_server *s, reply *r) {
    sp_engine_stats st;
    sp_engine_get_stats(s->engine, &st);
    buf b = {malloc(4096), 0, 4096};
    if (!b.p) return;
    b.p[0] = 0;
    bprintf(&b, "# HELP spindle_http_responses_total HTTP responses by status class\n"
                "# TYPE spindle_http_responses_total counter\n");
    for (int k = 1; k <= 5; k++)
        bprintf(&b, "spindle_http_responses_total{code=\"%dxx\"} %llu\n", k,
                (unsigned long long)atomic_load(&s->http_status[k]));
    metric(&b, "http_read_timeouts_total", "counter",
           "Connections closed because a request did not arrive within the read timeout",
           (double)conn_guard_closed(s->guard));
    metric(&b, "requests_submitted_total", "counter", "Generation requests accepted",
           (double)st.requests_submitted);
    metric(&b, "requests_rejected_total", "counter", "Generation requests refused (queue full)",
           (double)st.requests_rejected);
    bprintf(&b, "# HELP spindle_requests_finished_total Finished requests by reason\n"
                "# TYPE spindle_requests_finished_total counter\n");
    for (int i = 0; i < 4; i++)
        bprintf(&b, "spindle_requests_finished_total{reason=\"%s\"} %llu\n",
                sp_finish_reason_name((sp_finish_reason)i), (unsigned long long)st.finished[i]);
    metric(&b, "prompt_tokens_total", "counter", "Prompt tokens of admitted requests",
           (double)st.prompt_tokens);
    metric(&b, "prefill_tokens_total", "counter", "Prompt tokens computed (not from the cache)",
           (double)st.prefill_tokens);
    metric(&b, "prefix_cache_hit_tokens_total", "counter",
           "Prompt tokens served from the prefix cache", (double)st.cached_tokens);
    metric(&b, "generation_tokens_total", "counter", "Tokens generated",
           (double)st.generated_tokens);
    metric(&b, "engine_steps_total", "counter", "Batched forward steps", (double)st.steps);
    metric(&b, "requests_running", "gauge", "Sequences running", st.running);
    metric(&b, "requests_waiting", "gauge", "Requests waiting in the queue", st.waiting);
    metric(&b, "kv_blocks_total", "gauge", "KV cache blocks", st.kv_blocks_total);
    metric(&b, "kv_blocks_used", "gauge", "KV blocks referenced by running sequences",
           st.kv_blocks_used);
    metric(&b, "kv_blocks_free", "gauge", "KV blocks not referenced (free or cached)",
           st.kv_blocks_free);
    metric(&b, "kv_blocks_cached", "gauge", "Unreferenced KV blocks kept for prefix reuse",
           st.kv_blocks_cached);
    /* the sliding-window group alone (also counted in kv_blocks_*) */
    metric(&b, "kv_swa_blocks_total", "gauge", "KV blocks of sliding-window layers",
           st.kv_swa_blocks_total);
    metric(&b, "kv_swa_blocks_used", "gauge",
           "Sliding-window KV blocks referenced by running sequences", st.kv_swa_blocks_used);
    metric(&b, "kv_swa_blocks_cached", "gauge",
           "Unreferenced sliding-window KV blocks kept for prefix reuse", st.kv_swa_blocks_cached);
    histogram(&b, "time_to_first_token_seconds", "Time from submit to the first token", &st.ttft);
    histogram(&b, "inter_token_latency_seconds", "Time between tokens of a sequence", &st.itl);
    r->status = 200;
    r->resp = MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r->resp, "Content-Type", "text/plain; version=0.0.4");
}
