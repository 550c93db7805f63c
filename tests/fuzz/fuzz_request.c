/* Fuzz target: an HTTP request body -> the server's validation and prompt
 * building for every route that takes one: chat and completion
 * (server/params.c parse_gen_request), Anthropic Messages and its
 * count_tokens, Responses (their translation into a chat body, then
 * parse_gen_request on it) and embeddings (parse_embed_request), after the
 * same UTF-8 and JSON checks server.c's parse_body makes. The engine info
 * is built from a real tokenizer and its chat template (qwen3 for even
 * sizes, gemma3 for odd; gemma3 as an embedding model whose texts go
 * through the chat template), no model needed. Beyond "no crash": a
 * refusal is a 4xx with a message and a JSON path that is not garbage; an
 * accepted request has a non-empty in-range prompt and sampling parameters
 * within their documented ranges; accepted embedding inputs are non-empty,
 * in range and add up. */
#include "fuzz_common.h"

#include <math.h>

#include "base/utf8.h"
#include "chat/template.h"
#include "server/server_impl.h"

typedef struct fuzz_req_model {
    sp_engine_info info;
    sp_template *tmpl;
    char *bos, *eos;
    char dir[512];
} fuzz_req_model;

static const sp_engine_info *fuzz_req_info(fuzz_tok_id which) {
    static fuzz_req_model models[FUZZ_TOK_COUNT];
    fuzz_req_model *m = &models[which];
    if (m->tmpl) return &m->info;
    char *dir = m->dir;
    snprintf(m->dir, sizeof m->dir, "%s/%s", fuzz_tokenizers_dir(), fuzz_tok_names[which]);
    char *src = NULL;
    sp_error err = {0};
    if (sp_chat_template_load(dir, &src, &m->bos, &m->eos, &err) != SP_OK ||
        sp_template_parse(&m->tmpl, src, &err) != SP_OK) {
        fprintf(stderr, "fuzz: %s chat template: %s\n", dir, err.msg);
        abort();
    }
    free(src);
    m->info.tokenizer = fuzz_real_tokenizer(which);
    m->info.chat_template = m->tmpl;
    m->info.bos_token = m->bos ? m->bos : "";
    m->info.eos_token = m->eos ? m->eos : "";
    m->info.vocab = sp_tokenizer_vocab_size(m->info.tokenizer);
    m->info.ctx_size = 4096;
    m->info.n_blocks = 256;
    m->info.block_size = 16;
    m->info.parallel = 4;
    m->info.model_path = dir;
    m->info.embed_dim = 64;
    m->info.embed_input = which == FUZZ_TOK_GEMMA3 ? SP_EMBED_MESSAGE_STRUCTURED : SP_EMBED_TEXT;
    return &m->info;
}

static void fuzz_req_check_ok(const gen_req *g, const sp_engine_info *info) {
    FUZZ_ASSERT(g->n_prompt > 0 && g->prompt, "accepted with an empty prompt");
    FUZZ_ASSERT(g->params.prompt == g->prompt && g->params.n_prompt == (int)g->n_prompt,
                "params.prompt does not point at the prompt");
    for (size_t i = 0; i < g->n_prompt; i++)
        FUZZ_ASSERT(g->prompt[i] >= 0 && g->prompt[i] < info->vocab, "prompt[%zu] = %d", i,
                    (int)g->prompt[i]);
    const sp_sampling *s = &g->params.sampling;
    FUZZ_ASSERT(s->temperature >= 0 && s->temperature <= 2, "temperature %g",
                (double)s->temperature);
    FUZZ_ASSERT(s->top_p > 0 && s->top_p <= 1, "top_p %g", (double)s->top_p);
    FUZZ_ASSERT(s->min_p >= 0 && s->min_p <= 1, "min_p %g", (double)s->min_p);
    FUZZ_ASSERT(s->top_k >= 0, "top_k %d", s->top_k);
    FUZZ_ASSERT(isfinite(s->repetition_penalty) && s->repetition_penalty > 0, "rep %g",
                (double)s->repetition_penalty);
    FUZZ_ASSERT(g->params.max_tokens >= 0, "max_tokens %d", g->params.max_tokens);
    FUZZ_ASSERT(g->top_logprobs >= 0 && g->top_logprobs <= SP_MAX_TOP_LOGPROBS, "top_logprobs %d",
                g->top_logprobs);
    FUZZ_ASSERT(s->n_bias == 0 || s->bias, "bias count without an array");
    for (int i = 0; i < s->n_bias && s->bias; i++)
        FUZZ_ASSERT(s->bias[i].id >= 0 && s->bias[i].id < info->vocab && isfinite(s->bias[i].bias),
                    "logit_bias[%d] = (%d, %g)", i, (int)s->bias[i].id, (double)s->bias[i].bias);
    FUZZ_ASSERT(g->params.n_stop == g->n_stop, "n_stop");
    for (int i = 0; i < g->n_stop; i++) FUZZ_ASSERT(g->stop && g->stop[i], "stop[%d] is NULL", i);
}

static void fuzz_req_refused(const api_error *err) {
    FUZZ_ASSERT(err->status >= 400 && err->status < 500, "refused with status %d", err->status);
    FUZZ_ASSERT(err->message[0], "refused without a message");
    FUZZ_ASSERT(memchr(err->param, 0, sizeof err->param), "param is not NUL-terminated");
}

static void fuzz_req_one(const json_t *body, int chat, const sp_engine_info *info) {
    gen_req g;
    api_error err;
    memset(&err, 0, sizeof err);
    sp_media_opts mo = {.max_bytes = 1 << 20, .max_images = 4, .timeout_s = 1}; /* no network */
    if (parse_gen_request(body, chat, info, &mo, &g, &err))
        fuzz_req_refused(&err);
    else
        fuzz_req_check_ok(&g, info);
    gen_req_free(&g); /* as routes.c does on both paths */
}

/* /v1/messages (count_only 0), count_tokens (1) and /v1/responses (2): the
 * translated body is a chat body with messages, then validated as one. */
static void fuzz_req_translated(const json_t *body, int which, const sp_engine_info *info) {
    api_error err;
    memset(&err, 0, sizeof err);
    json_t *chat = NULL;
    int rc = which == 2 ? responses_to_chat(body, &chat, &err)
                        : anthropic_to_chat(body, which, &chat, &err);
    if (rc) {
        FUZZ_ASSERT(!chat, "a refused translation left a body");
        fuzz_req_refused(&err);
        return;
    }
    FUZZ_ASSERT(json_is_object(chat), "the translation is not an object");
    FUZZ_ASSERT(json_array_size(json_object_get(chat, "messages")) > 0, "no messages");
    FUZZ_ASSERT(!json_object_get(chat, "stream"), "stream reached the chat body");
    fuzz_req_one(chat, 1, info);
    json_decref(chat);
}

static void fuzz_req_embed(const json_t *body, const sp_engine_info *info) {
    api_error err;
    memset(&err, 0, sizeof err);
    embed_req q;
    if (parse_embed_request(body, info, &q, &err)) {
        fuzz_req_refused(&err);
    } else {
        FUZZ_ASSERT(q.n_inputs >= 1 && q.ids && q.len, "accepted with no inputs");
        size_t sum = 0;
        for (int i = 0; i < q.n_inputs; i++) {
            FUZZ_ASSERT(q.len[i] >= 1, "input %d is empty", i);
            sum += (size_t)q.len[i];
        }
        FUZZ_ASSERT(sum == q.n_ids, "inputs hold %zu tokens, ids %zu", sum, q.n_ids);
        for (size_t i = 0; i < q.n_ids; i++)
            FUZZ_ASSERT(q.ids[i] >= 0 && q.ids[i] < info->vocab, "ids[%zu] = %d", i, (int)q.ids[i]);
        FUZZ_ASSERT(q.dimensions >= 0 && q.dimensions <= info->embed_dim, "dimensions %d",
                    q.dimensions);
    }
    embed_req_free(&q);
}

int fuzz_request(const uint8_t *data, size_t size) {
    /* server.c parse_body: invalid UTF-8 and invalid JSON are 400s before
     * any handler runs */
    if (sp_utf8_invalid_at((const char *)data, size) >= 0) return 0;
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    if (!body) return 0;
    const sp_engine_info *info = fuzz_req_info(size & 1 ? FUZZ_TOK_GEMMA3 : FUZZ_TOK_QWEN3);
    fuzz_req_one(body, 1, info);
    fuzz_req_one(body, 0, info);
    for (int which = 0; which < 3; which++) fuzz_req_translated(body, which, info);
    fuzz_req_embed(body, info);
    json_decref(body);
    return 0;
}

#ifndef FUZZ_REGRESSION
/* Loads the tokenizers before fuzzing starts: seconds under ASan, which
 * must not count against the first input's -timeout. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_req_info(FUZZ_TOK_QWEN3);
    fuzz_req_info(FUZZ_TOK_GEMMA3);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_request(data, size);
}
#endif
