/* The JSON prefix validator (chat/json_prefix.h) and the tool-call
 * constraint built on it (engine/constrain.h), on text: every prefix of a
 * valid object is accepted, known-bad texts are refused at the right byte,
 * and the shortest completion of every prefix completes it (checked with
 * jansson, the parser that later reads the arguments). UTF-8 inside strings
 * is not the validator's business (the engine checks decoded token texts,
 * where a partial character reads as U+FFFD), so prefixes that end inside a
 * character are not completed. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "chat/json_prefix.h"
#include "check.h"
#include "engine/constrain.h"

/* Feeds s; returns the index of the first refused byte, or -1. */
static long refused_at(const char *s) {
    sp_jp j;
    sp_jp_init(&j);
    for (size_t i = 0; s[i]; i++)
        if (sp_jp_byte(&j, (unsigned char)s[i])) return (long)i;
    return -1;
}

static int is_object(const char *s) {
    json_error_t e;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
    int ok = json_is_object(v);
    json_decref(v);
    return ok;
}

/* Every prefix of a valid object: accepted, and prefix + completion is an
 * object; the whole text is done, nothing may follow. */
static void check_valid(const char *s) {
    size_t n = strlen(s);
    CHECKF(is_object(s), "fixture is not an object: %s", s);
    for (size_t k = 0; k <= n; k++) {
        sp_jp j;
        sp_jp_init(&j);
        int bad = sp_jp_feed(&j, s, k);
        CHECKF(!bad, "prefix %zu of %s refused", k, s);
        if (bad) return;
        if (k < n && ((unsigned char)s[k] & 0xC0) == 0x80) continue; /* inside a character */
        char tail[128], whole[512];
        size_t c = sp_jp_completion(&j, tail, sizeof tail);
        CHECK(c == strlen(tail));
        snprintf(whole, sizeof whole, "%.*s%s", (int)k, s, tail);
        CHECKF(is_object(whole), "completion of '%.*s' is '%s'", (int)k, s, tail);
        CHECK(sp_jp_done(&j) == (k == n));
        if (k == n) {
            CHECK(c == 0);
            CHECK(sp_jp_byte(&j, ' ') == -1); /* the object is the whole value */
        }
    }
}

static void test_valid(void) {
    const char *ok[] = {
        "{}",
        " {\"a\": 1}",
        "{\"city\": \"Tokyo\", \"days\": 3}",
        "{\"a\":[1,-2.5e+3,0.0,1E9,-0,true,false,null,[],{}]}",
        "{\"a\":[123456789012345678,-1.5e-99,0.12345678901234567890123,9E+99]}",
        "{\"nest\": {\"deep\": [[[{\"x\": [\"y\"]}]]]}}",
        "{\"esc\": \"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t\"}",
        "{\"u\": \"\\u00e9\\u4e2D \\ud83d\\ude00\"}",
        "{\"utf8\": \"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"}",
        "{\n  \"pretty\": [\n    1,\n    2\n  ]\n}",
        "{\"\": \"\", \"k\": -0.5e-7}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) check_valid(ok[i]);
}

static void test_invalid(void) {
    struct {
        const char *s;
        long at;
    } bad[] = {
        {"[1]", 0},                             /* not an object */
        {"\"s\"", 0},                           /* nor a string */
        {"{a:1}", 1},                           /* unquoted key */
        {"{\"a\" 1}", 5},                       /* no colon */
        {"{\"a\":01}", 6},                      /* leading zero */
        {"{\"a\":-}", 6},                       /* sign alone */
        {"{\"a\":1.}", 7},                      /* no fraction digits */
        {"{\"a\":1e}", 7},                      /* no exponent digits */
        {"{\"a\":+1}", 5},                      /* plus sign */
        {"{\"a\":.5}", 5},                      /* no integer part */
        {"{\"a\":tru}", 8},                     /* broken literal */
        {"{\"a\":nul1}", 8},                    /* broken literal */
        {"{\"a\":1,}", 7},                      /* trailing comma */
        {"{\"a\":[1,]}", 8},                    /* trailing comma in an array */
        {"{\"a\":[1}", 7},                      /* mismatched closer */
        {"{\"a\":1]", 6},                       /* mismatched closer */
        {"{\"a\":\"x\ny\"}", 7},                /* raw control byte in a string */
        {"{\"a\":\"\\x\"}", 7},                 /* bad escape */
        {"{\"a\":\"\\u12g4\"}", 10},            /* bad hex */
        {"{\"a\":\"\\u0000\"}", 11},            /* NUL (jansson refuses it) */
        {"{\"a\":\"\\udc00\"}", 9},             /* lone low surrogate */
        {"{\"a\":\"\\ud83dx\"}", 12},           /* high surrogate without its low half */
        {"{\"a\":\"\\ud83d\\u0041\"}", 14},     /* high surrogate, then not a low one */
        {"{}}", 2},                             /* after the end */
        {"{\"a\":1234567890123456789}", 23},    /* 19 digits: past int64 */
        {"{\"a\":-1234567890123456789.5}", 24}, /* the same, negative */
        {"{\"a\":1e123}", 9},                   /* past a double */
        {"{} ", 2},                             /* nothing after the end, not even space */
        {"{\"a\":1\xc3\xa9}", 6},               /* non-ASCII outside a string */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        long at = refused_at(bad[i].s);
        CHECKF(at == bad[i].at, "'%s' refused at %ld, expected %ld", bad[i].s, at, bad[i].at);
    }
    /* nesting is bounded */
    char deep[SP_JP_MAX_DEPTH + 8];
    deep[0] = '{';
    memcpy(deep + 1, "\"a\":", 4);
    memset(deep + 5, '[', SP_JP_MAX_DEPTH);
    deep[5 + SP_JP_MAX_DEPTH] = 0;
    CHECK(refused_at(deep) == 5 + SP_JP_MAX_DEPTH - 1);
    /* so is whitespace padding */
    char ws[SP_JP_MAX_WS + 4] = "{";
    memset(ws + 1, ' ', SP_JP_MAX_WS + 1);
    ws[SP_JP_MAX_WS + 2] = 0;
    CHECK(refused_at(ws) == SP_JP_MAX_WS + 1);
}

/* Completions that need care: an open escape, half a surrogate pair. */
static void test_completion(void) {
    struct {
        const char *s, *tail;
    } c[] = {
        {"", "{}"},
        {"{", "}"},
        {"{\"k", "\":0}"},
        {"{\"k\"", ":0}"},
        {"{\"a\":1,", "\"\":0}"},
        {"{\"a\":[1,", "0]}"},
        {"{\"a\":[", "]}"},
        {"{\"a\":\"x\\", "n\"}"},
        {"{\"a\":\"\\u", "0001\"}"},
        {"{\"a\":\"\\ud8", "00\\udc00\"}"},
        {"{\"a\":\"\\ud83d", "\\udc00\"}"},
        {"{\"a\":\"\\ud83d\\", "udc00\"}"},
        {"{\"a\":\"\\ud83d\\ud", "c00\"}"},
        {"{\"a\":\"\\ud83d\\u", "dc00\"}"},
        {"{\"a\":fa", "lse}"},
        {"{\"a\":-", "0}"},
        {"{\"a\":1e+", "0}"},
        {"{\"a\":{\"b\":[{", "}]}}"},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        sp_jp j;
        sp_jp_init(&j);
        CHECK(sp_jp_feed(&j, c[i].s, strlen(c[i].s)) == 0);
        char tail[64];
        sp_jp_completion(&j, tail, sizeof tail);
        CHECKF(!strcmp(tail, c[i].tail), "'%s': '%s', expected '%s'", c[i].s, tail, c[i].tail);
    }
}

static int feed(sp_cons *c, const char *s) {
    return sp_cons_feed_text(c, s, strlen(s));
}

/* The constraint on text: Hermes syntax, names restricted to the set. */
static void test_constraint_text(void) {
    const char *names[] = {"get_weather", "get_time"};
    sp_tool_constraint spec = {.prefix = "</think>\n\n",
                               .open = "<tool_call>\n{\"name\": \"",
                               .names = names,
                               .n_names = 2,
                               .mid = "\", \"arguments\": ",
                               .close = "}\n</tool_call>",
                               .sep = "\n"};
    sp_cons *c = sp_cons_new(&spec, NULL, NULL, 0, 0);
    CHECK(c != NULL);
    if (!c) return;
    const char *call = "</think>\n\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": "
                       "{\"tz\": \"UTC\"}}\n</tool_call>";
    /* the need shrinks to the shortest call, then to 1 (an EOS) */
    CHECK(sp_cons_need(c) == (int)(strlen("</think>\n\n<tool_call>\n{\"name\": \"get_time\", "
                                          "\"arguments\": {}}\n</tool_call>") +
                                   1));
    CHECK(feed(c, "</think>\n\n<tool_call>\n{\"name\": \"get_") == 0);
    CHECK(feed(c, "x") == -1); /* no such name */
    CHECK(feed(c, "weather\"") == 0);
    CHECK(feed(c, ", \"arguments\": [") == -1); /* arguments: an object */
    sp_cons_free(c);
    c = sp_cons_new(&spec, NULL, NULL, 0, 0);
    CHECK(sp_cons_feed_text(c, call, strlen(call)) == 0);
    CHECK(sp_cons_need(c) == 1 && !sp_cons_finished(c));
    CHECK(feed(c, "x") == -1);
    CHECK(feed(c, "\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}") == 0);
    CHECK(feed(c, "\n</tool_call>") == 0);
    sp_cons_free(c);
    /* one call only (named, or parallel_tool_calls false): finished at the close */
    spec.sep = NULL;
    spec.prefix = "";
    spec.n_names = 1;
    c = sp_cons_new(&spec, NULL, NULL, 0, 0);
    const char *one =
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"a\": [1]}}\n</tool_call>";
    CHECK(sp_cons_feed_text(c, one, strlen(one) - 1) == 0);
    CHECK(!sp_cons_finished(c) && sp_cons_need(c) == 1);
    CHECK(feed(c, ">") == 0);
    CHECK(sp_cons_finished(c) && sp_cons_need(c) == 0);
    sp_cons_free(c);
    c = sp_cons_new(&spec, NULL, NULL, 0, 0);
    CHECK(feed(c, "<tool_call>\n{\"name\": \"get_t") == -1); /* not the named one */
    sp_cons_free(c);
}

/* Gemma 4's syntax: bare keys, <|"|> strings (raw quotes and newlines are
 * text there), a name that is a prefix of another. */
static void test_constraint_gemma(void) {
    const char *names[] = {"get_time", "get_timezone"};
    sp_tool_constraint spec = {.prefix = "<channel|>",
                               .open = "<|tool_call>call:",
                               .names = names,
                               .n_names = 2,
                               .mid = "{",
                               .close = "<tool_call|>",
                               .quote = "<|\"|>"};
    const char *call =
        "<channel|><|tool_call>call:get_timezone{tz:<|\"|>Europe \"x\"\n<|n|> <|\"|>,"
        "<|\"|>quoted key<|\"|>:-1.5,l:[1,<|\"|>a<|\"|>,true],o:{}}<tool_call|>";
    size_t n = strlen(call);
    for (size_t k = 0; k <= n; k++) {
        sp_cons *c = sp_cons_new(&spec, NULL, NULL, 0, 1);
        CHECKF(c && sp_cons_feed_text(c, call, k) == 0, "prefix %zu refused", k);
        if (c && k == n) CHECK(sp_cons_finished(c) && sp_cons_need(c) == 0);
        if (c && k < n) CHECK(sp_cons_need(c) > 0 && !sp_cons_finished(c));
        sp_cons_free(c);
    }
    const char *bad[] = {
        "<channel|><|tool_call>call:get_timez{",           /* no such name */
        "<channel|><|tool_call>call:get_time{tz:\"x\"}",   /* JSON quotes */
        "<channel|><|tool_call>call:get_time{t<|\"|>z:1}", /* marker in a bare key */
        "<channel|><|tool_call>call:get_time{tz:<|x|>}",   /* '<' outside a string */
        "<channel|><|tool_call>call:get_time{tz:1,}",      /* trailing comma */
        "<channel|><|tool_call>call:get_time{}}",          /* after the object */
        "<channel|><|tool_call>call:get_time{tz:[1}",      /* mismatched closer */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sp_cons *c = sp_cons_new(&spec, NULL, NULL, 0, 1);
        CHECKF(c && sp_cons_feed_text(c, bad[i], strlen(bad[i])) == -1, "'%s' accepted", bad[i]);
        sp_cons_free(c);
    }
    /* the need counts a quote as the marker's bytes, a bare key's end as 0:
     * "tz" then ":0}" and the close; inside a string, the marker and "}" */
    sp_cons *c = sp_cons_new(&spec, NULL, NULL, 0, 1);
    CHECK(feed(c, "<channel|><|tool_call>call:get_time{tz") == 0);
    CHECK(sp_cons_need(c) == 3 + 12);
    CHECK(feed(c, ":<|\"|>abc") == 0);
    CHECK(sp_cons_need(c) == 5 + 1 + 12);
    CHECK(feed(c, "<|") == 0); /* maybe the marker: its rest */
    CHECK(sp_cons_need(c) == 3 + 1 + 12);
    CHECK(feed(c, "x") == 0); /* text after all */
    CHECK(sp_cons_need(c) == 5 + 1 + 12);
    sp_cons_free(c);
}

int main(void) {
    test_valid();
    test_invalid();
    test_completion();
    test_constraint_text();
    test_constraint_gemma();
    return check_summary("json_prefix");
}
