/* Public entry points: parse once (immutable tree in the template's arena),
 * render many times (each render owns an arena; errors unwind with longjmp
 * to here, where that arena is freed). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "chat/template.h"
#include "chat/tpl_internal.h"

struct sp_template {
    tpl_arena arena;
    node *root;
};

sp_status sp_template_parse(sp_template **out, const char *source, sp_error *err) {
    *out = NULL;
    size_t n = strlen(source);
    long bad = sp_utf8_invalid_at(source, n);
    if (bad >= 0) return sp_fail(err, SP_EFORMAT, "template: invalid UTF-8 at byte %ld", bad);
    sp_template *t = calloc(1, sizeof *t);
    if (!t) return sp_fail(err, SP_ENOMEM, "template: out of memory");
    tpl_arena_init(&t->arena, 0);
    tpl_parse_error pe = {0};
    tok *toks;
    size_t ntok;
    if (tpl_lex(&t->arena, source, n, &toks, &ntok, &pe) ||
        tpl_parse(&t->arena, toks, ntok, &t->root, &pe)) {
        sp_template_free(t);
        return sp_fail(err, SP_EFORMAT, "template: syntax error: %s at line %d col %d", pe.msg,
                       pe.line, pe.col);
    }
    *out = t;
    return SP_OK;
}

void sp_template_free(sp_template *t) {
    if (!t) return;
    tpl_arena_free(&t->arena);
    free(t);
}

static void bind_context(rctx *r, scope *sc, const json_t *ctx) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)ctx, key, v) tpl_scope_set(r, sc, key, tpl_from_json(r, v));
}

sp_status sp_template_render(const sp_template *t, const json_t *ctx, char **out, sp_error *err) {
    *out = NULL;
    if (!t) return sp_fail(err, SP_EINVAL, "template: no template");
    if (ctx && !json_is_object(ctx))
        return sp_fail(err, SP_EINVAL, "template: context must be a JSON object");
    sp_error local;
    tpl_arena arena;
    tpl_arena_init(&arena, TPL_MAX_MEMORY);
    tbuf buf = {.heap = 1}; /* malloc'd: output growth leaves no garbage in the arena */
    rctx r = {.arena = &arena, .err = err ? err : &local, .out = &buf, .out_limit = TPL_MAX_OUTPUT};
    if (setjmp(r.jb)) {
        tpl_arena_free(&arena);
        free(buf.p);
        return r.err->status;
    }
    scope *root = tpl_scope_new(&r, NULL);
    r.root = root;
    if (ctx) bind_context(&r, root, ctx);
    tpl_exec_root(&r, t->root, root);
    tpl_arena_free(&arena);
    char *s = realloc(buf.p, buf.n + 1);
    if (!s) {
        free(buf.p);
        return sp_fail(err, SP_ENOMEM, "template: out of memory");
    }
    s[buf.n] = 0;
    *out = s;
    return SP_OK;
}
