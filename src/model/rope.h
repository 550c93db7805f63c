/* RoPE inverse-frequency tables, one function per variant (spec section 1),
 * computed once at load and finite-checked. */
#ifndef SP_MODEL_ROPE_H
#define SP_MODEL_ROPE_H

#include "base/status.h"
#include "model/desc.h"

/* Parameters of one rope dict after normalisation (spec 1.5). */
typedef struct sp_rope_params {
    sp_rope_kind kind;
    double theta;
    double partial_rotary_factor; /* 1.0 = full head */
    double factor;                /* 0 = absent */
    int max_pos;                  /* max_position_embeddings */
    int orig_max;                 /* original_max_position_embeddings (0 = absent) */
    double low_freq_factor, high_freq_factor;
    double beta_fast, beta_slow, mscale, mscale_all_dim, attention_factor; /* 0 = absent */
    int truncate;
    const double *short_factor, *long_factor; /* longrope, n_pairs values each */
    int n_short, n_long;
    int interleaved;
} sp_rope_params;

void sp_rope_params_default(sp_rope_params *p);

/* Fills r for heads of head_dim lanes. Errors name the problem (e.g. a
 * longrope factor list of the wrong length, a non-finite frequency). */
sp_status sp_rope_build(sp_rope_table *r, const sp_rope_params *p, int head_dim, sp_error *err);
void sp_rope_free(sp_rope_table *r);

/* cos/sin of every pair for one position; total_len is the sequence length
 * seen by the current forward (selects longrope factors, dynamic NTK). */
void sp_rope_angles(const sp_rope_table *r, int pos, int total_len, float *cos_out, float *sin_out);

#endif
