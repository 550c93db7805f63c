#include "model/seq.h"

#include <stdlib.h>
#include <string.h>

#define SEQ_BLOCK 16

sp_status sp_seq_init(sp_seq *s, const sp_model *m, int max_tokens, sp_error *err) {
    memset(s, 0, sizeof *s);
    if (max_tokens <= 0) return sp_fail(err, SP_EINVAL, "sequence: no room for tokens");
    s->n_blocks = (max_tokens + SEQ_BLOCK - 1) / SEQ_BLOCK;
    s->capacity = s->n_blocks * SEQ_BLOCK;
    s->table = malloc((size_t)s->n_blocks * sizeof *s->table);
    if (!s->table) return sp_fail(err, SP_ENOMEM, "sequence block table");
    for (int i = 0; i < s->n_blocks; i++) s->table[i] = i;
    sp_status st = sp_kv_create(&s->kv, m, s->n_blocks, SEQ_BLOCK, err);
    if (st != SP_OK) sp_seq_free(s);
    return st;
}

sp_status sp_seq_feed(sp_seq *s, sp_model *m, const int32_t *tokens, int n, sp_logits_want want,
                      float *logits, sp_error *err) {
    return sp_seq_feed_media(s, m, tokens, n, NULL, 0, want, logits, err);
}

sp_status sp_seq_feed_media(sp_seq *s, sp_model *m, const int32_t *tokens, int n,
                            const sp_media_span *spans, int n_spans, sp_logits_want want,
                            float *logits, sp_error *err) {
    if (s->len + n > s->capacity)
        return sp_fail(err, SP_ERANGE, "sequence of %d tokens exceeds the context of %d",
                       s->len + n, s->capacity);
    sp_seq_input in = {.tokens = tokens,
                       .n_tokens = n,
                       .pos0 = s->len,
                       .block_table = s->table,
                       .n_blocks = s->n_blocks,
                       .want = want,
                       .spans = spans,
                       .n_spans = n_spans};
    SP_TRY(sp_model_forward(m, s->kv, &in, 1, logits, err));
    s->len += n;
    return SP_OK;
}

void sp_seq_free(sp_seq *s) {
    sp_kv_free(s->kv);
    free(s->table);
    memset(s, 0, sizeof *s);
}

int sp_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}
