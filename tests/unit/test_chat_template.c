/* The Jinja interpreter on hand-written templates. The expected outputs of
 * the table were produced by jinja2 3.1.6 configured as transformers does
 * (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
 * json.dumps-based tojson, raise_exception); a NULL expectation means jinja2
 * raised an error there, so we must fail too. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"
#include "check.h"

typedef struct tcase {
    const char *tpl, *ctx, *want;
} tcase;

static const tcase cases[] = {
#include "test_chat_template_cases.inc"
};

/* renders; returns malloc'd output or NULL with err filled */
static char *render(const char *tpl, const char *ctx_json, sp_error *err) {
    sp_template *t = NULL;
    char *out = NULL;
    if (sp_template_parse(&t, tpl, err) != SP_OK) return NULL;
    json_t *ctx = json_loads(ctx_json, 0, NULL);
    if (sp_template_render(t, ctx, &out, err) != SP_OK) out = NULL;
    json_decref(ctx);
    sp_template_free(t);
    return out;
}

static void test_table(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sp_error err = {0};
        char *out = render(cases[i].tpl, cases[i].ctx, &err);
        if (cases[i].want) {
            CHECKF(out && !strcmp(out, cases[i].want), "case %zu %s\n  want [%s]\n  got  [%s] %s",
                   i, cases[i].tpl, cases[i].want, out ? out : "(error)", out ? "" : err.msg);
        } else {
            CHECKF(!out, "case %zu %s: expected an error, got [%s]", i, cases[i].tpl, out);
        }
        free(out);
    }
}

/* the error names what went wrong and where */
static void expect_error(const char *tpl, const char *ctx, sp_status status, const char *needle) {
    sp_error err = {0};
    sp_template *t = NULL;
    char *out = NULL;
    sp_status st = sp_template_parse(&t, tpl, &err);
    if (st == SP_OK) {
        json_t *c = json_loads(ctx, 0, NULL);
        st = sp_template_render(t, c, &out, &err);
        json_decref(c);
    }
    CHECKF(st == status, "%s: status %d, want %d (%s)", tpl, st, status, err.msg);
    CHECKF(st != SP_OK && strstr(err.msg, needle), "%s: error [%s] lacks [%s]", tpl, err.msg,
           needle);
    free(out);
    sp_template_free(t);
}

static void test_errors(void) {
    expect_error("line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}", "{}", SP_EFORMAT,
                 "syntax error: unexpected end of print statement at line 3 col 10");
    expect_error("{% for x in y %}", "{}", SP_EFORMAT, "expected 'endfor' or 'else' at line 1");
    expect_error("{{ x | nosuchfilter }}", "{}", SP_EFORMAT, "no filter named 'nosuchfilter'");
    expect_error("{% if x %}{{ x | nosuchfilter }}{% endif %}", "{\"x\": 1}", SP_EINVAL,
                 "no filter named 'nosuchfilter' at line 1 col 18");
    expect_error("{{ x is nosuchtest }}", "{}", SP_EFORMAT, "no test named 'nosuchtest'");
    expect_error("{% frobnicate %}", "{}", SP_EFORMAT, "unknown tag 'frobnicate' at line 1 col 4");
    expect_error("{{ 'abc' }", "{}", SP_EFORMAT, "unexpected '}'");
    expect_error("{# open", "{}", SP_EFORMAT, "missing end of comment tag");
    expect_error("\n\n  {{ raise_exception('Roles must alternate') }}", "{}", SP_EINVAL,
                 "template: Roles must alternate at line 3 col 6");
    expect_error("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", "{}", SP_EINVAL,
                 "recursion too deep");
    expect_error("{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}", "{}", SP_EINVAL,
                 "recursion too deep");
    expect_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                 "{}", SP_EINVAL, "loop limit exceeded");
    expect_error("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "{}", SP_EINVAL,
                 "output too large");
    expect_error("{{ range(1000000) | length }}", "{}", SP_EINVAL, "Range too big");
    expect_error("{{ undefined_thing.attr }}", "{}", SP_EINVAL, "'undefined_thing' is undefined");
    expect_error("{% set l = [] %}{{ l.append(1) }}", "{}", SP_EINVAL,
                 "access to attribute 'append' of 'list' object is unsafe");
    expect_error("{{ 1 // 0 }}", "{}", SP_EINVAL, "division or modulo by zero");
    expect_error("{{ x | tojson }}", "{}", SP_EINVAL, "not JSON serializable");
    /* deeply nested expressions are a syntax error, not a stack overflow */
    char deep[4096];
    size_t k = 0;
    k += (size_t)snprintf(deep + k, sizeof deep - k, "{{ ");
    for (int i = 0; i < 500; i++) deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 500; i++) deep[k++] = ')';
    snprintf(deep + k, sizeof deep - k, " }}");
    expect_error(deep, "{}", SP_EFORMAT, "recursion too deep");
    expect_error("\xff{{ 1 }}", "{}", SP_EFORMAT, "invalid UTF-8");
}

/* several threads render one parsed template at once */
typedef struct thread_arg {
    const sp_template *t;
    const json_t *ctx;
    const char *want;
    int ok;
} thread_arg;

static void *render_many(void *p) {
    thread_arg *a = p;
    a->ok = 1;
    for (int i = 0; i < 200; i++) {
        char *out = NULL;
        sp_error err;
        if (sp_template_render(a->t, a->ctx, &out, &err) != SP_OK || strcmp(out, a->want))
            a->ok = 0;
        free(out);
    }
    return NULL;
}

static void test_threads(void) {
    const char *tpl = "{%- set ns = namespace(n=0) -%}{% for m in messages %}{% set ns.n = ns.n + "
                      "1 %}<{{ m.role }}>{{ m.content | trim }}{{ m | tojson }}{% endfor %}"
                      "{{ ns.n }}";
    const char *ctx_json =
        "{\"messages\": [{\"role\": \"user\", \"content\": \" a \"}, {\"role\": \"assistant\", "
        "\"content\": \"b\"}]}";
    const char *want = "<user>a{\"role\": \"user\", \"content\": \" a \"}<assistant>b{\"role\": "
                       "\"assistant\", \"content\": \"b\"}2";
    sp_template *t = NULL;
    sp_error err;
    CHECK(sp_template_parse(&t, tpl, &err) == SP_OK);
    json_t *ctx = json_loads(ctx_json, 0, NULL);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){t, ctx, want, 0};
        pthread_create(&th[i], NULL, render_many, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECKF(args[i].ok, "thread %d rendered a different output", i);
    }
    json_decref(ctx);
    sp_template_free(t);
}

/* the model-folder loader: chat_template.jinja wins over tokenizer_config.json */
static void test_loader(void) {
    char dir[] = "/tmp/sp_chat_loader_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECKF(0, "mkdtemp failed");
        return;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\","
          " \"model_max_length\": 1000000000000000019884624838656,"
          " \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"},"
          " {\"name\": \"default\", \"template\": \"D{{ bos_token }}\"}]}",
          f);
    fclose(f);
    char *src = NULL, *bos = NULL, *eos = NULL;
    sp_error err;
    CHECKF(sp_chat_template_load(dir, &src, &bos, &eos, &err) == SP_OK, "%s", err.msg);
    CHECK(src && !strcmp(src, "D{{ bos_token }}"));
    CHECK(bos && !strcmp(bos, "<s>"));
    CHECK(eos && !strcmp(eos, "</s>"));
    free(src);
    free(bos);
    free(eos);
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    f = fopen(path, "w");
    fputs("J", f);
    fclose(f);
    CHECK(sp_chat_template_load(dir, &src, NULL, NULL, &err) == SP_OK);
    CHECK(src && !strcmp(src, "J"));
    free(src);
    remove(path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    remove(path);
    remove(dir);
}

/* transformers' additions to the environment */
static void test_transformers_extras(void) {
    sp_error err = {0};
    char *out = render("{% generation %}gen {{ 1 }}{% endgeneration %}", "{}", &err);
    CHECKF(out && !strcmp(out, "gen 1"), "generation block: %s", out ? out : err.msg);
    free(out);
    out = render("{{ strftime_now('%Y') }}", "{}", &err);
    CHECKF(out && strlen(out) == 4 && out[0] == '2', "strftime_now: %s", out ? out : err.msg);
    free(out);
}

int main(void) {
    test_table();
    test_transformers_extras();
    test_errors();
    test_threads();
    test_loader();
    return check_summary("test_chat_template");
}
