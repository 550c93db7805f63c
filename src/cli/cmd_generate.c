/* spindle generate --model P --tokens 1,2,3 -n N
 * Greedy decoding; prints the new ids as a JSON array (DESIGN.md section 5).
 * --prompt TEXT tokenizes with the model's tokenizer (adding BOS as the
 * tokenizer says), stops at an end-of-sequence id and prints the generated
 * text; --chat renders the prompt as one user turn through the chat
 * template first. --image F (repeatable; or --pixels-in) gives images: with
 * --tokens, the k-th run of image soft tokens takes the k-th image; with
 * --prompt --chat, the images come before the text in the user turn. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/media.h"
#include "media/prompt.h"
#include "model/seq.h"
#include "tokenizer/tokenizer.h"

static void usage(FILE *f) {
    fprintf(
        f, "usage: spindle generate --model PATH (--tokens 1,2,3 | --prompt TEXT [--chat]) "
           "[-n N] [options]\n"
           "  -n N                  tokens to generate (default 16)\n"
           "  --prompt TEXT         tokenize TEXT and print the generated text\n"
           "  --chat                apply the model's chat template to --prompt\n"
           "  --image F             an image (repeatable): with --tokens for the k-th run of\n"
           "                        image soft tokens, with --prompt --chat before the text\n"
           "  --pixels-in F.f32     preprocessed pixel values instead of an image file\n"
           "  --positions-in F.i32  Gemma 4: the processor's image_position_ids\n" MODEL_OPTS_HELP);
}

static int is_eos(const sp_model_desc *d, int32_t id) {
    for (int i = 0; i < d->n_eos; i++)
        if (d->eos_ids[i] == id) return 1;
    return 0;
}

/* Greedy: feeds the prompt, then each chosen id, n times (*n_out of them;
 * fewer when stop_at_eos meets an end-of-sequence id). */
static sp_status greedy(sp_model *m, const int32_t *prompt, int np, const cli_media *cm, int n,
                        int stop_at_eos, int32_t *out, int *n_out, sp_error *err) {
    int V = sp_model_get_desc(m)->vocab;
    float *logits = malloc((size_t)V * sizeof(float));
    sp_seq seq;
    if (!logits) return sp_fail(err, SP_ENOMEM, "logits");
    sp_status s = sp_seq_init(&seq, m, np + n, err);
    if (s == SP_OK)
        s = sp_seq_feed_media(&seq, m, prompt, np, cm->spans, cm->n, SP_LOGITS_LAST, logits, err);
    *n_out = 0;
    for (int i = 0; s == SP_OK && i < n; i++) {
        out[i] = sp_argmax(logits, V);
        if (stop_at_eos && is_eos(sp_model_get_desc(m), out[i])) break;
        *n_out = i + 1;
        if (i + 1 < n) s = sp_seq_feed(&seq, m, &out[i], 1, SP_LOGITS_LAST, logits, err);
    }
    if (seq.kv) sp_seq_free(&seq);
    free(logits);
    return s;
}

/* The user turn's content: the text alone, or image parts then the text. */
static json_t *user_content(const char *text, int n_images) {
    if (!n_images) return json_string(text);
    json_t *parts = json_array();
    for (int i = 0; i < n_images; i++)
        json_array_append_new(parts, json_pack("{s:s}", "type", "image"));
    json_array_append_new(parts, json_pack("{s:s, s:s}", "type", "text", "text", text));
    return parts;
}

/* Renders text as a single user turn with the tokenizer's chat template. */
static sp_status render_chat(const sp_tokenizer *tok, const char *text, int n_images, char **out,
                             sp_error *err) {
    const char *src = sp_tokenizer_chat_template(tok);
    if (!src) return sp_fail(err, SP_ENOTFOUND, "--chat: the model has no chat template");
    sp_template *t;
    SP_TRY(sp_template_parse(&t, src, err));
    const char *bos = sp_tokenizer_bos_token(tok), *eos = sp_tokenizer_eos_token(tok);
    json_t *ctx = json_pack("{s:[{s:s, s:o}], s:b, s:s, s:s}", "messages", "role", "user",
                            "content", user_content(text, n_images), "add_generation_prompt", 1,
                            "bos_token", bos ? bos : "", "eos_token", eos ? eos : "");
    sp_status s = ctx ? sp_template_render(t, ctx, out, err) : sp_fail(err, SP_ENOMEM, "chat");
    json_decref(ctx);
    sp_template_free(t);
    return s;
}

/* The text the new ids add after the prompt: decoded in context, since a
 * token's leading space depends on what precedes it. */
static sp_status continuation_text(const sp_tokenizer *tok, const int32_t *prompt, size_t np,
                                   const int32_t *out, size_t n, char **text, sp_error *err) {
    int32_t *all = malloc((np + n + 1) * sizeof *all);
    char *head = NULL, *full = NULL;
    size_t hl = 0, fl = 0;
    if (!all) return sp_fail(err, SP_ENOMEM, "generate");
    memcpy(all, prompt, np * sizeof *all);
    memcpy(all + np, out, n * sizeof *all);
    sp_status s = sp_tokenizer_decode(tok, prompt, np, 1, &head, &hl, err);
    if (s == SP_OK) s = sp_tokenizer_decode(tok, all, np + n, 1, &full, &fl, err);
    if (s == SP_OK) {
        size_t skip = fl >= hl && !memcmp(full, head, hl) ? hl : 0;
        memmove(full, full + skip, fl - skip + 1);
        *text = full;
        full = NULL;
    }
    free(all);
    free(head);
    free(full);
    return s;
}

/* Replaces the template's image placeholders by each image's token run. */
static sp_status expand_images(const sp_tokenizer *tok, const cli_media *cm, char **text,
                               sp_error *err) {
    const sp_vision_info *vi = sp_vision_get_info(cm->vision);
    const char *boi = sp_tokenizer_piece(tok, vi->boi_id),
               *eoi = sp_tokenizer_piece(tok, vi->eoi_id);
    const char *soft = sp_tokenizer_piece(tok, vi->image_id);
    if (!boi || !eoi || !soft)
        return sp_fail(err, SP_ENOTFOUND, "the tokenizer has no image tokens (ids %d, %d, %d)",
                       vi->boi_id, vi->image_id, vi->eoi_id);
    char *exp[CLI_MAX_IMAGES];
    sp_status s = SP_OK;
    for (int k = 0; k < cm->n; k++)
        if (!(exp[k] = sp_image_expansion(vi->proc.kind, boi, soft, eoi, cm->px[k].n_soft)))
            s = sp_fail(err, SP_ENOMEM, "prompt");
    char *out = NULL;
    if (s == SP_OK)
        s = sp_image_expand_text(*text, sp_image_placeholder(vi->proc.kind, boi, soft),
                                 (const char *const *)exp, cm->n, &out, err);
    for (int k = 0; k < cm->n; k++) free(exp[k]);
    if (s == SP_OK) {
        free(*text);
        *text = out;
    }
    return s;
}

/* --prompt: text in, text out. */
static sp_status generate_text(sp_model *m, const char *path, const char *prompt, int chat,
                               cli_media *cm, int n, sp_error *err) {
    sp_tokenizer *tok;
    SP_TRY(sp_tokenizer_load(&tok, path, err));
    char *text = NULL, *out_text = NULL;
    int32_t *ids = NULL, *out = malloc(((size_t)n + 1) * sizeof(int32_t));
    size_t nid = 0;
    int n_out = 0;
    sp_status s = out ? SP_OK : sp_fail(err, SP_ENOMEM, "generate");
    if (s == SP_OK && chat) s = render_chat(tok, prompt, cm->n, &text, err);
    if (s == SP_OK && cm->n) s = expand_images(tok, cm, &text, err);
    /* a rendered template carries its own special tokens */
    if (s == SP_OK)
        s = sp_tokenizer_encode(tok, chat ? text : prompt, strlen(chat ? text : prompt), !chat, 1,
                                &ids, &nid, err);
    if (s == SP_OK && cm->n) s = cli_media_spans(cm, ids, nid, err);
    if (s == SP_OK) s = greedy(m, ids, (int)nid, cm, n, 1, out, &n_out, err);
    if (s == SP_OK) s = continuation_text(tok, ids, nid, out, (size_t)n_out, &out_text, err);
    if (s == SP_OK) printf("%s\n", out_text);
    free(out_text);
    free(text);
    free(ids);
    free(out);
    sp_tokenizer_free(tok);
    return s;
}

static sp_status generate_ids(sp_model *m, const int32_t *ids, int np, cli_media *cm, int n,
                              sp_error *err) {
    int32_t *out = malloc(((size_t)n + 1) * sizeof(int32_t));
    int n_out = 0;
    if (!out) return sp_fail(err, SP_ENOMEM, "generate");
    sp_status s = cm->n ? cli_media_spans(cm, ids, (size_t)np, err) : SP_OK;
    if (s == SP_OK) s = greedy(m, ids, np, cm, n, 0, out, &n_out, err);
    if (s == SP_OK) {
        printf("[");
        for (int i = 0; i < n_out; i++) printf(i ? ", %d" : "%d", out[i]);
        printf("]\n");
    }
    free(out);
    return s;
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *toks = NULL, *prompt = NULL, *count = "16";
    int chat = 0;
    sp_model_opts o;
    arg_model_opts_default(&o);
    cli_images im;
    if (!cli_images_take(argv[0], &argc, argv, &im)) return 2;
    const arg_flag flags[] = {{"--model", &model, NULL},   {"--tokens", &toks, NULL},
                              {"--prompt", &prompt, NULL}, {"-n", &count, NULL},
                              {"--chat", NULL, &chat},     {NULL}};
    int rc = arg_parse(argc, argv, flags, &o, usage);
    if (rc >= 0) return rc;
    long n;
    if (!model || !toks == !prompt || (chat && !prompt) ||
        (prompt && !chat && cli_images_count(&im))) {
        fprintf(stderr, "spindle generate: --model and one of --tokens or --prompt are required "
                        "(images with --prompt need --chat)\n");
        usage(stderr);
        return 2;
    }
    if (!arg_int(argv[0], "-n", count, 0, 1 << 20, &n)) return 2;
    int32_t *ids = NULL;
    size_t np = 0;
    if (toks && !arg_ids(argv[0], toks, &ids, &np)) return 2;
    sp_error err = {0};
    sp_model *m = NULL;
    cli_media cm = {0};
    sp_status s = sp_model_load(&m, model, &o, &err);
    if (s == SP_OK && cli_images_count(&im))
        s = cli_media_load(&cm, model, &o, sp_model_pool(m), &im, &err);
    if (s == SP_OK)
        s = prompt ? generate_text(m, model, prompt, chat, &cm, (int)n, &err)
                   : generate_ids(m, ids, (int)np, &cm, (int)n, &err);
    if (s != SP_OK) fprintf(stderr, "spindle generate: %s\n", err.msg);
    cli_media_free(&cm);
    sp_model_free(m);
    free(ids);
    return s == SP_OK ? 0 : 1;
}
