/* Fuzz target: JSON Schema (or, when the input is not JSON, a regular
 * expression) -> the grammar compiler (src/chat/grammar.h), then documents
 * walked out of the automaton.
 *
 * Input: schema text, optionally FUZZ_SEP and choice bytes. The choice
 * bytes (or, without them, a hash of the schema) pick, byte by byte, among
 * the bytes the automaton allows that keep the document completable within
 * its budget (the schema's shortest document plus up to 255 more bytes).
 *
 * Beyond "no crash": the compiler either refuses the schema (with a message
 * and a status) or builds an automaton whose walk always has a move or is
 * complete while the budget lasts (what `need` promises), ends complete, and
 * whose document parses (jansson) and is valid for the schema by an
 * independent reference validator (schema_ref.h). */
#include "fuzz_common.h"

#include <jansson.h>

#include "chat/grammar.h"
#include "schema_ref.h"

#define FUZZ_SCHEMA_STACK 256

static uint64_t fuzz_schema_seed(const uint8_t *d, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ d[i]) * 1099511628211ull;
    return h | 1;
}

/* Walks one document; returns its length in buf (NUL-terminated). */
static size_t fuzz_schema_walk(const sp_grammar *g, const uint8_t *ch, size_t nch, uint64_t seed,
                               char *buf, size_t cap) {
    int32_t q = g->start, stack[FUZZ_SCHEMA_STACK] = {0}, tmp[FUZZ_SCHEMA_STACK];
    int sp = 0;
    uint32_t need0 = sp_grammar_need(g, q, stack, sp);
    size_t budget = need0 + (nch ? ch[0] : seed % 256), len = 0, at = 1;
    if (budget + 1 > cap) budget = cap - 1;
    FUZZ_ASSERT(need0 < cap, "the shortest document needs %u bytes", need0);
    for (;;) {
        uint64_t pick = at < nch ? ch[at++] : (seed = seed * 6364136223846793005ull + 1) >> 33;
        int complete = sp_grammar_complete(g, q, stack, sp);
        if (complete && (pick % 8 == 0 || len == budget)) break;
        unsigned char ok[256];
        int n = 0;
        for (int b = 0; b < 256; b++) {
            int32_t q2 = q;
            int sp2 = sp;
            memcpy(tmp, stack, (size_t)sp * sizeof *stack);
            char c = (char)b;
            if (sp_grammar_feed(g, &q2, tmp, &sp2, FUZZ_SCHEMA_STACK, &c, 1)) continue;
            if (sp_grammar_need(g, q2, tmp, sp2) + len + 1 > budget) continue;
            ok[n++] = (unsigned char)b;
        }
        if (!n) {
            FUZZ_ASSERT(complete, "stuck after %zu bytes (budget %zu): %.200s", len, budget, buf);
            break;
        }
        char c = (char)ok[pick % (uint64_t)n];
        FUZZ_ASSERT(!sp_grammar_feed(g, &q, stack, &sp, FUZZ_SCHEMA_STACK, &c, 1), "feed");
        buf[len++] = c;
        buf[len] = 0;
    }
    buf[len] = 0;
    return len;
}

static void fuzz_schema_check(const json_t *schema, const sp_grammar *g, const uint8_t *ch,
                              size_t nch, uint64_t seed) {
    char buf[8192];
    buf[0] = 0;
    size_t len = fuzz_schema_walk(g, ch, nch, seed, buf, sizeof buf);
    json_error_t je;
    json_t *v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    FUZZ_ASSERT(v != NULL, "the document does not parse (%s): %.300s", je.text, buf);
    if (!v) return;
    int r = fuzz_schema_valid(v, schema, schema, 0);
    FUZZ_ASSERT(r != 0, "the document is not valid for the schema: %.300s", buf);
    json_decref(v);
}

int fuzz_schema(const uint8_t *data, size_t size) {
    size_t len1, len2;
    const uint8_t *p2;
    fuzz_split(data, size, &len1, &p2, &len2);
    if (len1 > 8192) return 0;
    char *text = fuzz_strndup(data, len1);
    json_t *schema = json_loads(text, JSON_DECODE_ANY, NULL);
    sp_grammar *g = NULL;
    sp_gram_error err;
    sp_gram_status st =
        schema ? sp_grammar_from_schema(schema, &g, &err) : sp_grammar_from_regex(text, &g, &err);
    FUZZ_ASSERT((st == SP_GRAM_OK) == (g != NULL), "status %d with grammar %p", (int)st, (void *)g);
    FUZZ_ASSERT(st == SP_GRAM_OK || err.msg[0], "status %d without a message", (int)st);
    if (g && schema) {
        uint64_t seed = fuzz_schema_seed(data, len1);
        fuzz_schema_check(schema, g, p2, len2, seed);
        if (!p2) fuzz_schema_check(schema, g, NULL, 0, seed * 31 + 7);
    }
    sp_grammar_release(g);
    json_decref(schema);
    free(text);
    return 0;
}

#ifndef FUZZ_REGRESSION
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_schema(data, size);
}
#endif
