/* tool_choice enforcement in the engine (engine/constrain.h): the llama
 * fixture's random weights with a byte-level tokenizer of single characters
 * (plus a few multi-character and special tokens) must, under the
 * constraint, produce a well-formed tool call, greedy and sampled, within
 * max_tokens; read back by the real output parser (chat/toolcall.h).
 * Also: special tokens reach the text when the request keeps them, stop
 * strings or not (Gemma 4 / Llama 3 markers are special tokens). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat/toolcall.h"
#include "check.h"
#include "model_dir.h"
#include "engine/engine.h"

#define VOCAB 512 /* the llama fixture's */
enum { GEMMA_QUOTE = 503, PYTHON_TAG = 504, GEMMA_CALL = 505, EOS = 2 };

/* Byte-level JSON string of one vocabulary entry (space: U+0120, \n: U+010A). */
static void put_piece(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == ' ')
            fputs("\\u0120", f);
        else if (*s == '\n')
            fputs("\\u010a", f);
        else if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static int make_model_dir(const char *dir) {
    FILE *f = model_dir_link(SP_SHARED_DIR "/fixtures/llama", dir);
    if (!f) return 0;
    static const char *added[][2] = {{"0", "<unk>"},      {"1", "<s>"},
                                     {"2", "</s>"},       {"504", "<|python_tag|>"},
                                     {"503", "<|\\\"|>"}, {"505", "<|tool_call>"}};
    fprintf(f, "{\"version\":\"1.0\",\"added_tokens\":[");
    for (int i = 0; i < 6; i++)
        fprintf(f,
                "%s{\"id\":%s,\"content\":\"%s\",\"single_word\":false,\"lstrip\":false,"
                "\"rstrip\":false,\"normalized\":false,\"special\":true}",
                i ? "," : "", added[i][0], added[i][1]);
    fprintf(f, "],\"normalizer\":null,\"pre_tokenizer\":null,\"post_processor\":null,"
               "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":"
               "true,\"use_regex\":true},\"model\":{\"type\":\"BPE\",\"dropout\":null,"
               "\"unk_token\":null,\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,"
               "\"fuse_unk\":false,\"byte_fallback\":false,\"vocab\":{");
    static const char *multi[] = {"<tool_call>", "</tool_call>", "{\"", "\": ", "  ", "\"}"};
    for (int id = 0; id < VOCAB; id++) {
        char piece[32];
        if (id < 3 || id == PYTHON_TAG)
            snprintf(piece, sizeof piece, "%s", added[id < 3 ? id : 3][1]);
        else if (id == GEMMA_CALL)
            snprintf(piece, sizeof piece, "<|tool_call>");
        else if (id == GEMMA_QUOTE)
            snprintf(piece, sizeof piece, "<|\"|>");
        else if (id < 3 + 94)
            snprintf(piece, sizeof piece, "%c", 33 + id - 3);
        else if (id == 97)
            snprintf(piece, sizeof piece, " ");
        else if (id == 98)
            snprintf(piece, sizeof piece, "\n");
        else if (id >= 506)
            snprintf(piece, sizeof piece, "%s", multi[id - 506]);
        else
            snprintf(piece, sizeof piece, "<t%d>", id);
        fprintf(f, "%s", id ? "," : "");
        put_piece(f, piece);
        fprintf(f, ":%d", id);
    }
    fprintf(f, "},\"merges\":[]}}\n");
    return fclose(f) == 0;
}

static sp_engine *start(const char *dir) {
    sp_engine_opts o;
    sp_engine_opts_default(&o);
    o.model_path = dir;
    o.model.n_threads = 1;
    o.parallel = 2;
    o.ctx_size = 256;
    sp_engine *e = NULL;
    sp_error err = {0};
    if (sp_engine_start(&e, &o, &err) != SP_OK) {
        fprintf(stderr, "start: %s\n", err.msg);
        return NULL;
    }
    if (sp_engine_wait_loaded(e, 60000) != SP_ENGINE_READY) {
        sp_engine_get_state(e, &err);
        fprintf(stderr, "load: %s\n", err.msg);
        sp_engine_free(e);
        return NULL;
    }
    return e;
}

typedef struct run_out {
    char text[4096];
    size_t len;
    int n_tokens;
    sp_finish_reason reason;
} run_out;

static void run(sp_engine *e, sp_request_params *p, run_out *o) {
    static const int32_t prompt[] = {1, 40, 41, 42, 43};
    p->prompt = prompt;
    p->n_prompt = 5;
    memset(o, 0, sizeof *o);
    o->reason = SP_FINISH_ERROR;
    sp_request *r = NULL;
    sp_error err = {0};
    CHECKF(sp_engine_submit(e, p, &r, &err) == SP_OK, "submit: %s", err.msg);
    if (!r) return;
    for (;;) {
        sp_event ev;
        if (!sp_request_next(r, &ev, 20000)) {
            CHECKF(0, "timed out");
            break;
        }
        if (ev.text_len && o->len + ev.text_len < sizeof o->text) {
            memcpy(o->text + o->len, ev.text, ev.text_len);
            o->len += ev.text_len;
        }
        int fin = ev.kind == SP_EV_FINISH;
        if (fin) {
            o->reason = ev.reason;
            o->n_tokens = ev.completion_tokens;
        }
        sp_event_clear(&ev);
        if (fin) break;
    }
    sp_request_release(r);
    if (getenv("SP_TEST_VERBOSE"))
        fprintf(stderr, "[%d tokens, finish %d] %.*s\n", o->n_tokens, o->reason, (int)o->len,
                o->text);
}

static void params(sp_request_params *p, const sp_tool_constraint *c, float temp, uint64_t seed,
                   int max_tokens) {
    memset(p, 0, sizeof *p);
    sp_sampling_default(&p->sampling);
    p->sampling.temperature = temp;
    p->seed = seed;
    p->has_seed = 1;
    p->max_tokens = max_tokens;
    p->constraint = c;
}

/* Parses the output as the server does; returns the number of calls, each
 * checked: a name from names, arguments one JSON object. */
static int check_calls(const run_out *o, sp_tool_format fmt, const char *const *names,
                       int n_names) {
    sp_chat_parser_opts po = {.tools = fmt, .id_seed = 1};
    sp_chat_parser *p = sp_chat_parser_new(&po);
    sp_chat_evs evs = {0};
    sp_chat_parser_feed(p, o->text, o->len, &evs);
    sp_chat_parser_finish(p, &evs);
    int calls = 0;
    char args[4096] = "";
    for (size_t i = 0; i < evs.n; i++) {
        const sp_chat_ev *ev = &evs.v[i];
        if (ev->kind == SP_CHAT_CONTENT)
            CHECKF(0, "content in a constrained output: '%s'", ev->text);
        if (ev->kind == SP_CHAT_TOOL_START) {
            int known = 0;
            for (int k = 0; k < n_names; k++) known |= !strcmp(ev->text, names[k]);
            CHECKF(known, "call of '%s'", ev->text);
            args[0] = 0;
        }
        if (ev->kind == SP_CHAT_TOOL_ARGS && strlen(args) + ev->len < sizeof args)
            strncat(args, ev->text, ev->len);
        if (ev->kind == SP_CHAT_TOOL_END) {
            json_t *v = json_loads(args, 0, NULL);
            CHECKF(json_is_object(v), "arguments '%s'", args);
            json_decref(v);
            calls++;
        }
    }
    CHECKF(sp_chat_parser_malformed(p) == 0, "malformed call in '%.*s'", (int)o->len, o->text);
    sp_chat_evs_free(&evs);
    sp_chat_parser_free(p);
    return calls;
}

static const char *const names[] = {"get_weather", "get_time"};

static sp_tool_constraint hermes(int n_names, const char *sep) {
    return (sp_tool_constraint){.prefix = "",
                                .open = "<tool_call>\n{\"name\": \"",
                                .names = names + 2 - n_names,
                                .n_names = n_names,
                                .mid = "\", \"arguments\": ",
                                .close = "}\n</tool_call>",
                                .sep = sep};
}

static void test_hermes(sp_engine *e, const sp_cons_vocab *voc) {
    sp_tool_constraint c = hermes(2, "\n");
    sp_request_params p;
    run_out o;
    /* greedy and sampled, with room to spare */
    for (int seed = 0; seed < 4; seed++) {
        params(&p, &c, seed ? 1.0f : 0.0f, (uint64_t)seed, 120);
        run(e, &p, &o);
        CHECKF(o.reason == SP_FINISH_STOP, "seed %d: finish %d after %d tokens: '%.*s'", seed,
               o.reason, o.n_tokens, (int)o.len, o.text);
        CHECK(o.len > 11 && !memcmp(o.text, "<tool_call>", 11));
        CHECKF(check_calls(&o, SP_TOOLS_HERMES, names, 2) >= 1, "'%.*s'", (int)o.len, o.text);
    }
    /* the tightest budget still closes the call: the shortest call in the
     * fewest tokens (<tool_call>, {" ... are single tokens here), and an EOS
     * (another call could follow) */
    const int32_t eos = EOS;
    sp_cons *cc = sp_cons_new(&c, voc, &eos, 1, 0);
    int need = cc ? sp_cons_need(cc) : 0;
    sp_cons_free(cc);
    CHECKF(need > 0 && need < 50, "need %d", need); /* the text is 62 bytes */
    for (int seed = 0; seed < 3; seed++) {
        params(&p, &c, seed ? 1.0f : 0.0f, (uint64_t)seed + 7, need);
        run(e, &p, &o);
        CHECK(o.n_tokens <= need && o.reason == SP_FINISH_STOP);
        CHECKF(check_calls(&o, SP_TOOLS_HERMES, names, 2) >= 1, "budget %d: '%.*s'", need,
               (int)o.len, o.text);
    }
    /* named (one name, one call): ends at the close, STOP */
    sp_tool_constraint one = hermes(1, NULL);
    params(&p, &one, 0.0f, 0, 120);
    run(e, &p, &o);
    CHECK(o.reason == SP_FINISH_STOP);
    CHECK(check_calls(&o, SP_TOOLS_HERMES, names + 1, 1) == 1);
    CHECK(o.len > 12 && !memcmp(o.text + o.len - 12, "</tool_call>", 12));
}

/* Llama 3 syntax after <|python_tag|> (a special token: only allowed when the
 * request keeps special tokens in its text), with a stop string active. */
static void test_llama3_special(sp_engine *e) {
    sp_tool_constraint c = {.prefix = "<|python_tag|>",
                            .open = "{\"name\": \"",
                            .names = names,
                            .n_names = 2,
                            .mid = "\", \"parameters\": ",
                            .close = "}"};
    static const char *stop[] = {"@@"};
    sp_logit_bias bias = {PYTHON_TAG, 30.0f};
    sp_request_params p;
    run_out o;
    params(&p, &c, 0.0f, 0, 120);
    p.keep_special = 1;
    p.stop = stop;
    p.n_stop = 1;
    p.sampling.bias = &bias;
    p.sampling.n_bias = 1;
    run(e, &p, &o);
    CHECK(o.reason == SP_FINISH_STOP);
    CHECKF(o.len > 14 && !memcmp(o.text, "<|python_tag|>{\"name\": \"", 24), "'%.*s'", (int)o.len,
           o.text);
    CHECK(check_calls(&o, SP_TOOLS_LLAMA3, names, 2) == 1);
}

/* Gemma 4: call:NAME{key:<|"|>text<|"|>} (the quote a special token), read
 * back by the gemma4 parser as JSON. */
static void test_gemma4(sp_engine *e) {
    sp_tool_constraint c = {.prefix = "",
                            .open = "<|tool_call>call:",
                            .names = names,
                            .n_names = 2,
                            .mid = "{",
                            .close = "<tool_call|>",
                            .quote = "<|\"|>"};
    sp_request_params p;
    run_out o;
    for (int seed = 0; seed < 3; seed++) {
        params(&p, &c, seed ? 1.0f : 0.0f, (uint64_t)seed, 120);
        p.keep_special = 1;
        run(e, &p, &o);
        CHECK(o.reason == SP_FINISH_STOP);
        CHECKF(check_calls(&o, SP_TOOLS_GEMMA4, names, 2) == 1, "'%.*s'", (int)o.len, o.text);
    }
    /* a bias towards the quote: strings are made of it, and read back */
    sp_logit_bias bias = {GEMMA_QUOTE, 8.0f};
    params(&p, &c, 0.0f, 0, 120);
    p.keep_special = 1;
    p.sampling.bias = &bias;
    p.sampling.n_bias = 1;
    run(e, &p, &o);
    CHECK(o.reason == SP_FINISH_STOP);
    CHECKF(check_calls(&o, SP_TOOLS_GEMMA4, names, 2) == 1, "'%.*s'", (int)o.len, o.text);
}

/* The bug this guards: with stop strings the server used the engine's text,
 * which dropped special tokens, so Gemma 4 / <|python_tag|> calls were lost.
 * The request now says whether its text keeps them. */
static void test_keep_special_with_stop(sp_engine *e) {
    static const char *stop[] = {"zz"};
    const int32_t ids[] = {PYTHON_TAG, GEMMA_CALL};
    const char *text[] = {"<|python_tag|>", "<|tool_call>"};
    for (int i = 0; i < 2; i++) {
        for (int keep = 0; keep < 2; keep++) {
            sp_logit_bias bias = {ids[i], 100.0f};
            sp_request_params p;
            run_out o;
            params(&p, NULL, 0.0f, 0, 2);
            p.keep_special = keep;
            p.stop = stop;
            p.n_stop = 1;
            p.sampling.bias = &bias;
            p.sampling.n_bias = 1;
            run(e, &p, &o);
            CHECK(o.n_tokens == 2);
            if (keep)
                CHECKF(o.len == 2 * strlen(text[i]) && !memcmp(o.text, text[i], strlen(text[i])),
                       "'%.*s'", (int)o.len, o.text);
            else
                CHECKF(o.len == 0, "'%.*s'", (int)o.len, o.text);
        }
    }
    /* a stop string made of a special token's text cuts there when kept */
    static const char *stop_tag[] = {"<|tool_call>"};
    sp_logit_bias bias = {GEMMA_CALL, 100.0f};
    sp_request_params p;
    run_out o;
    params(&p, NULL, 0.0f, 0, 4);
    p.keep_special = 1;
    p.stop = stop_tag;
    p.n_stop = 1;
    p.sampling.bias = &bias;
    p.sampling.n_bias = 1;
    run(e, &p, &o);
    CHECK(o.reason == SP_FINISH_STOP && o.len == 0 && o.n_tokens == 1);
}

int main(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/sp_constrain_%d", (int)getpid());
    CHECK(make_model_dir(dir));
    sp_engine *e = start(dir);
    CHECK(e != NULL);
    sp_tokenizer *tok = NULL;
    sp_error err;
    CHECK(sp_tokenizer_load_dir(&tok, dir, &err) == SP_OK);
    sp_cons_vocab *voc = tok ? sp_cons_vocab_new(tok) : NULL;
    CHECK(voc != NULL);
    if (e && voc) {
        test_hermes(e, voc);
        test_llama3_special(e);
        test_gemma4(e);
        test_keep_special_with_stop(e);
        sp_engine_stop(e, 1000);
    }
    sp_engine_free(e);
    sp_cons_vocab_free(voc);
    sp_tokenizer_free(tok);
    char path[512];
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    return check_summary("engine_constrain");
}
