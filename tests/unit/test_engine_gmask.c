/* Structured-output masks (engine/gmask.h) on Qwen 3's real tokenizer: at
 * every step of random walks through several grammars, the mask (cached
 * walks of the token trie plus the per-step walks of what leaves the top
 * rule, or the full walk under a tight budget) must allow exactly the
 * tokens that running each token's own bytes allows (the reference); the
 * texts built from allowed tokens must be complete values that jansson
 * parses; reasoning stays free until its end marker. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/gmask.h"
#include "tokenizer/tokenizer.h"

static const char *SCHEMAS[] = {
    "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}[0-9]"
    "$\"},\"n\":{\"type\":\"integer\",\"minimum\":-5,\"maximum\":500},\"tags\":{\"type\":"
    "\"array\",\"items\":{\"enum\":[\"a\",\"bc\"]},\"maxItems\":3},\"s\":{\"type\":\"string\","
    "\"maxLength\":4}},\"required\":[\"id\",\"n\",\"tags\",\"s\"],\"additionalProperties\":false}",
    "{\"$defs\":{\"t\":{\"type\":\"object\",\"properties\":{\"k\":{\"type\":\"array\",\"items\":"
    "{\"$ref\":\"#/$defs/t\"}}},\"required\":[\"k\"],\"additionalProperties\":false}},\"$ref\":"
    "\"#/$defs/t\"}",
    "{\"type\":\"object\"}",
    NULL,
};

static int words;

static uint64_t next_rand(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The reference: every token run on its own. */
static void check_step(sp_gmatch *m, int vocab, int budget, uint64_t *bits, const char *what,
                       int step) {
    int n = sp_gmatch_fill(m, bits, budget), bad = 0, count = 0;
    for (int32_t id = 0; id < vocab; id++) {
        int want = sp_gmatch_allows(m, id, budget);
        int got = (int)(bits[id >> 6] >> (id & 63) & 1);
        count += want;
        if (want != got && bad++ < 3)
            fprintf(stderr, "%s step %d budget %d: token %d mask %d, reference %d\n", what, step,
                    budget, id, got, want);
    }
    CHECKF(!bad && n == count, "%s step %d: %d tokens differ (%d vs %d allowed)", what, step, bad,
           n, count);
}

/* A random walk: picks a random allowed token each step; checks the mask
 * at every step and the text at the end. */
static void walk(sp_grammar *g, const sp_gvocab *gv, const sp_cons_vocab *cv, int vocab,
                 int32_t eos, const sp_gmatch_opts *o, const char *what, uint64_t seed,
                 int budget) {
    sp_gmatch *m = sp_gmatch_new(g, gv, &eos, 1, o);
    uint64_t *bits = malloc((size_t)words * 8);
    char text[8192];
    size_t tl = 0;
    uint64_t r = seed * 0x9e3779b97f4a7c15ull + 1;
    int step = 0;
    if (o && o->think_open) { /* open the block, so the free part is walked too */
        CHECK(sp_gmatch_allows(m, 151667, budget)); /* "<think>" */
        sp_gmatch_accept(m, 151667);
        memcpy(text, "<think>", 7);
        tl = 7;
        step = 1;
    }
    for (; step < budget && !sp_gmatch_finished(m); step++) {
        int left = budget - step;
        if (step < 6 || step % 4 == 0 || left < 12) check_step(m, vocab, left, bits, what, step);
        int n = sp_gmatch_fill(m, bits, left);
        CHECKF(n > 0, "%s step %d: nothing allowed", what, step);
        if (!n) break;
        int pick = (int)(next_rand(&r) % (uint64_t)n);
        int32_t id = -1;
        for (int32_t i = 0; i < vocab && id < 0; i++)
            if (bits[i >> 6] >> (i & 63) & 1 && pick-- == 0) id = i;
        if (id == eos) break;
        size_t len;
        const char *t = sp_cons_vocab_text(cv, id, &len, NULL);
        if (tl + len < sizeof text) memcpy(text + tl, t, len), tl += len;
        sp_gmatch_accept(m, id);
    }
    text[tl] = 0;
    const char *json = text;
    if (o && o->think_close) { /* the value follows the reasoning */
        const char *e = strstr(text, o->think_close);
        CHECKF(e != NULL, "%s: no end of reasoning in %s", what, text);
        json = e ? e + strlen(o->think_close) : text;
    }
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    CHECKF(v != NULL, "%s: %d steps, not a complete value: %s", what, step, text);
    json_decref(v);
    free(bits);
    sp_gmatch_free(m);
}

int main(void) {
    const char *dir = getenv("SP_TOKENIZERS_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/qwen3", dir ? dir : SP_SOURCE_DIR "/build/tokenizers");
    sp_tokenizer *tok;
    sp_error err;
    if (sp_tokenizer_load_dir(&tok, path, &err) != SP_OK) {
        fprintf(stderr, "test_engine_gmask: %s (run make tokenizers)\n", err.msg);
        return 1;
    }
    sp_cons_vocab *cv = sp_cons_vocab_new(tok);
    sp_gvocab *gv = sp_gvocab_new(cv);
    int vocab = sp_tokenizer_vocab_size(tok);
    words = (vocab + 63) / 64;
    int32_t eos = 151645; /* <|im_end|> */
    for (int i = 0; SCHEMAS[i]; i++) {
        json_t *s = json_loads(SCHEMAS[i], 0, NULL);
        sp_grammar *g = NULL;
        sp_gram_error ge;
        CHECK(sp_grammar_from_schema(s, &g, &ge) == SP_GRAM_OK);
        json_decref(s);
        if (!g) continue;
        char what[32];
        snprintf(what, sizeof what, "schema %d", i);
        walk(g, gv, cv, vocab, eos, NULL, what, 11 + (uint64_t)i, 60);  /* budget binds */
        walk(g, gv, cv, vocab, eos, NULL, what, 77 + (uint64_t)i, 200); /* it may not */
        sp_gmatch_opts o = {.think_open = "<think>", .think_close = "</think>"};
        snprintf(what, sizeof what, "schema %d, reasoning", i);
        walk(g, gv, cv, vocab, eos, &o, what, 5 + (uint64_t)i, 90);
        sp_grammar_release(g);
    }
    const char *ch[] = {"yes", "no"};
    sp_grammar *g = NULL;
    sp_gram_error ge;
    if (sp_grammar_from_choices(ch, 2, &g, &ge) == SP_GRAM_OK) {
        sp_gmatch_opts o = {.think_close = "</think>", .in_think = 1};
        sp_gmatch *m = sp_gmatch_new(g, gv, &eos, 1, &o);
        /* inside the block anything goes, EOS excepted; "</think>" (one
         * token) then "yes" ends it */
        CHECK(sp_gmatch_allows(m, 9707, 100) && !sp_gmatch_allows(m, eos, 100));
        sp_gmatch_accept(m, 151668);
        CHECK(!sp_gmatch_allows(m, 9707, 100) &&
              sp_gmatch_allows(m, 9693, 100)); /* "Hello", "yes" */
        sp_gmatch_accept(m, 9693);
        CHECK(sp_gmatch_finished(m));
        sp_gmatch_free(m);
        sp_grammar_release(g);
    }
    sp_gvocab_free(gv);
    sp_cons_vocab_free(cv);
    sp_tokenizer_free(tok);
    return check_summary("test_engine_gmask");
}
