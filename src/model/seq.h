/* One sequence with its own KV cache: the simplest way to drive the model
 * (CLI commands, conformance tests, benchmarks). The server's engine manages
 * shared KV blocks itself instead. */
#ifndef SP_MODEL_SEQ_H
#define SP_MODEL_SEQ_H

#include "model/model.h"

typedef struct sp_seq {
    sp_kv *kv;
    int32_t *table;
    int n_blocks;
    int len; /* tokens already in the cache */
    int capacity;
} sp_seq;

sp_status sp_seq_init(sp_seq *s, const sp_model *m, int max_tokens, sp_error *err);
/* Appends n tokens; logits receives 1 (LAST) or n (ALL) rows of vocab. */
sp_status sp_seq_feed(sp_seq *s, sp_model *m, const int32_t *tokens, int n, sp_logits_want want,
                      float *logits, sp_error *err);
/* The same, with the image soft tokens among them (positions absolute). */
sp_status sp_seq_feed_media(sp_seq *s, sp_model *m, const int32_t *tokens, int n,
                            const sp_media_span *spans, int n_spans, sp_logits_want want,
                            float *logits, sp_error *err);
void sp_seq_free(sp_seq *s);

/* Index of the largest value (lowest index on ties). */
int sp_argmax(const float *x, int n);

#endif
