/* Sizing the KV cache in two groups (DESIGN: KV cache in fixed-size blocks;
 * sliding-window layers keep only their window).
 *
 * Full-attention layers need ceil(ctx / block) blocks per sequence. Layers
 * of the sliding group (model.h) need at most sp_blocks_window_bound(window,
 * block, max_chunk) blocks per sequence (max_chunk: prefill_chunk, or the
 * longest image, since a chunk never ends inside an image), however long it gets, so they
 * get their own, smaller pool. Without --kv-memory both pools hold
 * --parallel worst-case sequences. With --kv-memory M, M is split between
 * the pools in the ratio of one full-context sequence's needs: with
 * unit = full_need * full_bytes + swa_need * swa_bytes, the full pool gets
 * floor(M * full_need / unit) blocks and the sliding pool
 * floor(M * swa_need / unit); M must hold at least one such sequence. */
#include "base/log.h"
#include "engine/engine_impl.h"

static int min_int(int a, int b) {
    return a < b ? a : b;
}

/* floor(m * n / unit) without overflowing 64 bits */
static int share(uint64_t m, uint64_t unit, int n) {
    uint64_t b = m / unit * (uint64_t)n + m % unit * (uint64_t)n / unit;
    return b > 0x7fffffff ? 0x7fffffff : (int)b;
}

sp_status sp_engine_size_kv(sp_engine *e, const sp_model_desc *d, sp_error *err) {
    ENGINE_OWNED(e);
    int bs = e->opts.block_size;
    int ctx = e->opts.ctx_size;
    if (ctx <= 0) ctx = d->max_pos > 0 ? d->max_pos : 2048;
    if (ctx > 8192 && e->opts.ctx_size <= 0) ctx = 8192;
    int per_seq = (ctx + bs - 1) / bs;
    int window = sp_model_swa_window(e->model);
    int swa_seq =
        window > 0 ? min_int(per_seq, sp_blocks_window_bound(window, bs, e->max_chunk)) : 0;
    uint64_t full_bytes = sp_kv_group_bytes_per_block(e->model, bs, 0);
    uint64_t swa_bytes = window > 0 ? sp_kv_group_bytes_per_block(e->model, bs, 1) : 0;
    int n_full, n_swa;
    if (e->opts.kv_memory > 0) {
        uint64_t unit = (uint64_t)per_seq * full_bytes + (uint64_t)swa_seq * swa_bytes;
        if (!unit) unit = 1;
        n_full = share(e->opts.kv_memory, unit, per_seq);
        n_swa = share(e->opts.kv_memory, unit, swa_seq);
        if (n_full < per_seq || n_swa < swa_seq)
            return sp_fail(err, SP_EINVAL,
                           "--kv-memory %llu bytes holds %d + %d blocks of %d tokens, fewer than "
                           "one sequence of --ctx-size %d needs (%d + %d)",
                           (unsigned long long)e->opts.kv_memory, n_full, n_swa, bs, ctx, per_seq,
                           swa_seq);
    } else {
        n_full = per_seq * e->opts.parallel;
        n_swa = swa_seq * e->opts.parallel;
    }
    SP_TRY(sp_kv_create_groups(&e->kv, e->model, n_full, n_swa, bs, err));
    e->blocks = sp_blocks_new(n_full, bs);
    if (!e->blocks) return sp_fail(err, SP_ENOMEM, "KV block manager: out of memory");
    if (window > 0) {
        e->swa_blocks = sp_blocks_new(n_swa, bs);
        if (!e->swa_blocks) return sp_fail(err, SP_ENOMEM, "KV block manager: out of memory");
    }
    if (window > 0)
        SP_INFO("KV: sliding-window layers (window %d) keep %d blocks per sequence in a pool of "
                "%d; full-attention layers %d per sequence in a pool of %d%s",
                window, swa_seq, n_swa, per_seq, n_full, full_bytes ? "" : " (no layers)");
    e->swa_window = window;
    e->swa_bound = swa_seq;
    e->full_real = full_bytes > 0;
    e->info.ctx_size = ctx;
    e->info.n_blocks = (e->full_real ? n_full : 0) + (window > 0 ? n_swa : 0);
    e->info.block_size = bs;
    e->info.swa_window = window;
    e->info.n_swa_blocks = window > 0 ? n_swa : 0;
    return SP_OK;
}
