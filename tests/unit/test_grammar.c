/* The grammar compiler (chat/grammar.h): documents written by hand, valid
 * and invalid per the JSON Schema spec, must be accepted exactly when the
 * spec says they are valid and Spindle's output shape (grammar.h) allows
 * them; unsupported keywords name themselves and their path. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "chat/grammar.h"
#include "check.h"

static sp_grammar *build(const char *schema, sp_gram_error *err) {
    json_error_t je;
    json_t *s = json_loads(schema, JSON_DECODE_ANY, &je);
    if (!s) {
        fprintf(stderr, "bad test schema: %s\n", schema);
        return NULL;
    }
    sp_grammar *g = NULL;
    sp_grammar_from_schema(s, &g, err);
    json_decref(s);
    return g;
}

/* 1 if the grammar accepts doc as a complete output. */
static int accepts(const sp_grammar *g, const char *doc) {
    int32_t q = g->start, stack[256];
    int sp = 0;
    if (sp_grammar_feed(g, &q, stack, &sp, 256, doc, strlen(doc))) return 0;
    return sp_grammar_complete(g, q, stack, sp);
}

static void expect(const char *schema, const char *const *good, const char *const *bad) {
    sp_gram_error err;
    sp_grammar *g = build(schema, &err);
    CHECKF(g != NULL, "%s: %s", schema, err.msg);
    if (!g) return;
    for (; good && *good; good++) CHECKF(accepts(g, *good), "%s should accept %s", schema, *good);
    for (; bad && *bad; bad++) CHECKF(!accepts(g, *bad), "%s should refuse %s", schema, *bad);
    sp_grammar_release(g);
}

static void expect_error(const char *schema, sp_gram_status st, const char *kw, const char *path) {
    sp_gram_error err;
    sp_grammar *g = build(schema, &err);
    CHECKF(!g && err.status == st, "%s: status %d (%s)", schema, err.status, err.msg);
    if (kw) CHECKF(!strcmp(err.keyword, kw), "%s: keyword '%s'", schema, err.keyword);
    if (path) CHECKF(!strcmp(err.path, path), "%s: path '%s'", schema, err.path);
    sp_grammar_release(g);
}

#define L(...)                                                                                     \
    (const char *const[]) {                                                                        \
        __VA_ARGS__, NULL                                                                          \
    }

int main(void) {
    expect("{\"type\":\"integer\"}", L("0", "-7", "123456789012345", " 42"),
           L("01", "1.5", "-", "", "1234567890123456", "\"1\"", "42 "));
    expect("{\"type\":\"integer\",\"minimum\":-12,\"maximum\":305}",
           L("-12", "-1", "0", "9", "10", "99", "100", "299", "305"),
           L("-13", "306", "310", "1000", "-0", "-20"));
    expect("{\"type\":\"integer\",\"exclusiveMinimum\":5,\"exclusiveMaximum\":8}", L("6", "7"),
           L("5", "8"));
    expect("{\"type\":\"number\",\"minimum\":0,\"maximum\":1}", L("0", "1", "0.5", "0.25"),
           L("1.5", "-0.5", "2", "0.0"));
    expect("{\"type\":\"number\"}", L("1", "-0.5", "1e10", "2.5E-3"), L("1.", ".5", "1e", "+1"));
    expect("{\"type\":\"string\"}",
           L("\"\"", "\"abc\"", "\"a\\\"b\"", "\"\\n\"", "\"caf\xc3\xa9\""),
           L("\"a", "abc", "\"\\x\"", "\"\\/\"", "\"\x01\"", "\"\xc3\""));
    expect("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}",
           L("\"ab\"", "\"abc\"", "\"\xc3\xa9\xc3\xa9\"", "\"a\\n\""), L("\"a\"", "\"abcd\""));
    expect("{\"type\":\"string\",\"pattern\":\"^[a-z]+-\\\\d{2}$\"}", L("\"ab-12\"", "\"x-00\""),
           L("\"ab-1\"", "\"AB-12\"", "\"ab-123\""));
    expect("{\"type\":\"string\",\"pattern\":\"b+\"}", L("\"abbc\"", "\"b\""), L("\"ac\""));
    expect("{\"type\":\"string\",\"pattern\":\"^\\\"q\\\\\\\\$\"}", L("\"\\\"q\\\\\""), L("\"q\""));
    expect("{\"type\":\"string\",\"format\":\"date\"}", L("\"2024-02-28\"", "\"1999-12-31\""),
           L("\"2024-02-30\"", "\"2024-13-01\"", "\"2024-04-31\""));
    expect("{\"type\":\"string\",\"format\":\"date-time\"}",
           L("\"2024-01-05T10:20:30Z\"", "\"2024-01-05T23:59:59.123+05:30\""),
           L("\"2024-01-05T24:00:00Z\"", "\"2024-01-05T10:20:30\""));
    expect("{\"type\":\"string\",\"format\":\"uuid\"}",
           L("\"123e4567-e89b-12d3-a456-426614174000\""),
           L("\"123e4567e89b12d3a456426614174000\""));
    expect("{\"type\":\"string\",\"format\":\"email\"}", L("\"a.b@c.io\"", "\"x+y@a-b.c.org\""),
           L("\"a@b\"", "\"@b.c\"", "\"a..b@c.d\""));
    expect("{\"enum\":[\"red\",1,null,{\"a\":[true]}]}",
           L("\"red\"", "1", "null", "{\"a\":[true]}"), L("\"blue\"", "2", "{\"a\": [true]}"));
    expect("{\"type\":\"string\",\"enum\":[\"a\",1]}", L("\"a\""), L("1"));
    expect("{\"const\":\"x\\ny\"}", L("\"x\\ny\""), L("\"x\\u000ay\""));
    expect("{\"type\":[\"string\",\"null\"]}", L("null", "\"s\""), L("1"));
    expect("{\"type\":\"boolean\"}", L("true", "false"), L("True", "1"));
    expect("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":"
           "\"string\"}},\"required\":[\"b\"],\"additionalProperties\":false}",
           L("{\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\"}", "{ \"a\" : 1 ,\n  \"b\": \"x\" }"),
           L("{}", "{\"a\":1}", "{\"b\":\"x\",\"a\":1}", "{\"b\":\"x\",\"c\":1}",
             "{\"a\":1,,\"b\":\"x\"}"));
    expect("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},"
           "\"additionalProperties\":{\"type\":\"boolean\"}}",
           L("{}", "{\"a\":1,\"x\":true}", "{\"x\":true,\"y\":false}", "{\"ab\":true}"),
           L("{\"x\":1}", "{\"a\":true}", "{\"a\":1,\"a\":true}"));
    expect("{\"type\":\"object\"}", L("{}", "{\"k\":[1,{\"z\":null}]}"), L("[]"));
    expect("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":2,\"maxItems\":3}",
           L("[1,2]", "[1, 2, 3]", "[ 1 ,2 ]"), L("[]", "[1]", "[1,2,3,4]", "[1,]"));
    expect("{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}", L("[]", "[1]", "[1,2,3,4,5]"),
           L("[,]", "[1 2]"));
    expect("{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"integer\"}],"
           "\"items\":false}",
           L("[]", "[\"a\"]", "[\"a\",1]"), L("[1]", "[\"a\",1,2]"));
    expect("{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\"}],\"items\":{\"type\":"
           "\"null\"},\"minItems\":2}",
           L("[\"a\",null]", "[\"a\",null,null]"), L("[\"a\"]", "[\"a\",1]"));
    expect("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\",\"maxLength\":1}]}",
           L("1", "\"a\""), L("\"ab\"", "null"));
    expect("{\"oneOf\":[{\"type\":\"string\",\"pattern\":\"^a\"},{\"type\":\"string\","
           "\"pattern\":\"b$\"}]}",
           L("\"ax\"", "\"xb\""), L("\"ab\"", "\"xx\""));
    expect("{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":"
           "\"integer\"},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},"
           "\"required\":[\"v\"]}},\"$ref\":\"#/$defs/node\"}",
           L("{\"v\":1}", "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[{\"v\":4}]}]}"),
           L("{\"v\":1,\"kids\":[{}]}", "{\"kids\":[]}"));
    expect("{\"type\":\"object\",\"properties\":{\"next\":{\"anyOf\":[{\"$ref\":\"#\"},{\"type\":"
           "\"null\"}]}},\"required\":[\"next\"],\"additionalProperties\":false}",
           L("{\"next\":null}", "{\"next\":{\"next\":{\"next\":null}}}"), L("{\"next\":{}}"));
    expect("{\"definitions\":{\"s\":{\"type\":\"string\"}},\"type\":\"array\",\"items\":{\"$ref\":"
           "\"#/definitions/s\"}}",
           L("[\"a\",\"b\"]"), L("[1]"));
    expect("true", L("1", "{\"a\":[]}", "\"x\"", "null"), L("nul", "{"));

    expect_error("{\"type\":\"object\",\"properties\":{\"a\":{\"not\":{}}}}", SP_GRAM_EUNSUPPORTED,
                 "not", "properties.a.not");
    expect_error("{\"type\":\"array\",\"uniqueItems\":true}", SP_GRAM_EUNSUPPORTED, "uniqueItems",
                 "uniqueItems");
    expect_error("{\"type\":\"string\",\"pattern\":\"(?=a)b\"}", SP_GRAM_EUNSUPPORTED, "pattern",
                 "pattern");
    expect_error("{\"type\":\"string\",\"pattern\":\"(ab\"}", SP_GRAM_EINVALID, "pattern", NULL);
    expect_error("{\"type\":\"string\",\"format\":\"uri\"}", SP_GRAM_EUNSUPPORTED, "format",
                 "format");
    expect_error("{\"type\":\"strin\"}", SP_GRAM_EINVALID, "type", "type");
    expect_error("{\"$ref\":\"#/$defs/missing\"}", SP_GRAM_EINVALID, "$ref", NULL);
    expect_error("{\"type\":\"object\",\"properties\":{\"a\":false},\"required\":[\"a\"]}",
                 SP_GRAM_EUNSAT, NULL, NULL);
    expect_error("{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", SP_GRAM_EUNSUPPORTED,
                 "oneOf", NULL);
    expect_error("[1]", SP_GRAM_EINVALID, NULL, NULL);

    sp_gram_error err;
    sp_grammar *g = NULL;
    CHECK(sp_grammar_json_object(&g, &err) == SP_GRAM_OK);
    if (g) {
        CHECK(accepts(g, "{}") && accepts(g, "{\"a\": {\"b\": [1, \"x\", null]}}"));
        CHECK(!accepts(g, "[]") && !accepts(g, "1"));
        sp_grammar_release(g);
    }
    const char *choices[] = {"yes", "no", "maybe"};
    CHECK(sp_grammar_from_choices(choices, 3, &g, &err) == SP_GRAM_OK);
    if (g) {
        CHECK(accepts(g, "yes") && accepts(g, "maybe") && !accepts(g, "ye") && !accepts(g, "y"));
        sp_grammar_release(g);
    }
    CHECK(sp_grammar_from_regex("[0-9]{3}-[a-z]+", &g, &err) == SP_GRAM_OK);
    if (g) {
        CHECK(accepts(g, "123-ab") && !accepts(g, "12-ab") && !accepts(g, "x123-ab"));
        sp_grammar_release(g);
    }
    return check_summary("test_grammar");
}
