/* Fetching weights for a model: shape checks against the description, and
 * residency (DESIGN.md section 4): by default a tensor is copied out of the
 * mapping into memory the model owns, so the page cache cannot drop it; with
 * --mmap it stays a view of the mapping. Tensors never fetched (vision and
 * audio towers) are never read. */
#ifndef SP_MODEL_WEIGHTS_H
#define SP_MODEL_WEIGHTS_H

#include <stdint.h>

#include "base/status.h"
#include "compute/tensor.h"

/* One tensor as a file format presents it. */
typedef struct sp_src_tensor {
    sp_dtype dtype;
    int ndim;
    int64_t shape[SP_MAX_DIMS];
    const void *data;
    size_t nbytes;
} sp_src_tensor;

/* Looks a tensor up by name in a format's reader: SP_ENOTFOUND if absent. */
typedef sp_status (*sp_src_lookup)(void *src, const char *name, sp_src_tensor *out, sp_error *err);
/* The lookup over a safetensors reader (src: an sp_safetensors). */
sp_status sp_weights_st_lookup(void *src, const char *name, sp_src_tensor *out, sp_error *err);

typedef struct sp_weights {
    sp_src_lookup lookup;
    void *src;
    const char *file; /* for messages */
    int use_mmap;
    sp_dtype quantize;    /* SP_F32: keep file dtypes; else re-quantize 2-D weights */
    int n_kept;           /* weights --quantize left alone (rows not a block multiple) */
    int no_pack;          /* 1: keep Q4_0/Q8_0 rows in file order (no decode repack) */
    int device_upload;    /* 1: tensors stay views of the file mapping, whatever their alignment,
                             and are never packed: a device backend copies them out once */
    int dummy;            /* --load-format dummy: nothing is looked up (model/dummy.h) */
    sp_dtype dummy_dtype; /* dtype of dummy weights (bf16 or f16, from config.json) */
    int dummy_fill;       /* 1: write the dummy values into host memory (the CPU runs them) */
    void **maps;          /* dummy weights: anonymous mappings this store owns */
    size_t *map_len;
    int n_maps, cap_maps;
    void **owned; /* buffers this store allocated */
    int n_owned, cap_owned;
    uint64_t bytes; /* bytes of weights fetched */
} sp_weights;

#define SP_ANY (-1)

/* Fetches name with the given shape (SP_ANY matches any extent; ndim counts).
 * required == 0: absent gives SP_OK with out->data == NULL. */
sp_status sp_weights_get(sp_weights *w, const char *name, int required, int ndim,
                         const int64_t *shape, sp_tensor *out, sp_error *err);
/* As sp_weights_get, but never re-quantized by --quantize (MoE routers: a
 * rounded router flips expert choices, so llama.cpp keeps them too). */
sp_status sp_weights_get_exact(sp_weights *w, const char *name, int required, int ndim,
                               const int64_t *shape, sp_tensor *out, sp_error *err);
/* As sp_weights_get, converted to an owned f32 tensor (norm weights, biases,
 * scalars). add_one: store 1 + w (Gemma's (1 + w) RMSNorm, as HF computes it
 * in f32). */
sp_status sp_weights_get_f32(sp_weights *w, const char *name, int required, int ndim,
                             const int64_t *shape, int add_one, sp_tensor *out, sp_error *err);
/* --load-format dummy: the key of the value at host address p of a dummy
 * weight (model/dummy.h): the number of its mapping and the offset in it,
 * the same whichever address the mapping got. */
uint64_t sp_weights_dummy_key(const sp_weights *w, const void *p);
/* Allocation owned by the store (freed with it). */
void *sp_weights_alloc(sp_weights *w, size_t bytes);
void sp_weights_free(sp_weights *w);

#endif
