/* Tool-call constraint (see constrain.h): a byte-level state machine over
 * the literal parts of the call syntax, the allowed names and, for the
 * arguments, the JSON prefix validator. Every state knows how many bytes it
 * still needs, which is what keeps a call completable within max_tokens. */
#include "engine/constrain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chat/json_prefix.h"

/* ---- the spec, in one allocation ---- */

static size_t slen(const char *s) {
    return s ? strlen(s) + 1 : 0;
}

static const char *put(char **at, const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    memcpy(*at, s, n);
    const char *r = *at;
    *at += n;
    return r;
}

sp_tool_constraint *sp_tool_constraint_copy(const sp_tool_constraint *c) {
    if (!c || c->n_names <= 0) return NULL;
    size_t need = sizeof *c + (size_t)c->n_names * sizeof(char *);
    need += slen(c->prefix) + slen(c->open) + slen(c->mid) + slen(c->close) + slen(c->sep);
    need += slen(c->quote);
    for (int i = 0; i < c->n_names; i++) need += slen(c->names[i]);
    sp_tool_constraint *o = malloc(need);
    if (!o) return NULL;
    const char **names = (const char **)(o + 1);
    char *at = (char *)(names + c->n_names);
    *o = *c;
    o->prefix = put(&at, c->prefix ? c->prefix : "");
    o->open = put(&at, c->open ? c->open : "");
    o->mid = put(&at, c->mid ? c->mid : "");
    o->close = put(&at, c->close ? c->close : "");
    o->sep = put(&at, c->sep);
    o->quote = c->quote && *c->quote ? put(&at, c->quote) : NULL;
    for (int i = 0; i < c->n_names; i++) names[i] = put(&at, c->names[i] ? c->names[i] : "");
    o->names = names;
    return o;
}

/* ---- token texts ---- */

struct sp_cons_vocab {
    int n;
    size_t *off;
    uint32_t *len;
    unsigned char *special;
    char *bytes;
    int32_t *slots; /* hash of the texts: id, or -1 */
    size_t n_slots; /* a power of two */
    size_t max_len; /* the longest text */
};

void sp_cons_vocab_free(sp_cons_vocab *v) {
    if (!v) return;
    free(v->slots);
    free(v->off);
    free(v->len);
    free(v->special);
    free(v->bytes);
    free(v);
}

int sp_cons_vocab_size(const sp_cons_vocab *v) {
    return v->n;
}

const char *sp_cons_vocab_text(const sp_cons_vocab *v, int32_t id, size_t *len, int *special) {
    *len = v->len[id];
    if (special) *special = v->special[id];
    return v->bytes + v->off[id];
}

/* A token's text in mid-output: decoded after an anchor token and with the
 * anchor's text cut off, so decoders that treat the first token specially
 * (SentencePiece's leading space) see it as a continuation. */
static char *mid_text(const sp_tokenizer *tok, int32_t anchor, const char *base, size_t base_n,
                      int32_t id, size_t *n) {
    sp_error err;
    char *t = NULL;
    if (anchor >= 0) {
        int32_t pair[2] = {anchor, id};
        if (sp_tokenizer_decode(tok, pair, 2, 0, &t, n, &err) != SP_OK) return NULL;
        if (*n >= base_n && !memcmp(t, base, base_n)) {
            memmove(t, t + base_n, *n - base_n + 1);
            *n -= base_n;
            return t;
        }
        free(t);
    }
    if (sp_tokenizer_decode(tok, &id, 1, 0, &t, n, &err) != SP_OK) return NULL;
    return t;
}

static size_t text_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)h;
}

/* The token whose text is exactly s[0..n) (the lowest such id), or -1. */
static int32_t voc_find(const sp_cons_vocab *v, const char *s, size_t n, int special) {
    for (size_t i = text_hash(s, n) & (v->n_slots - 1);; i = (i + 1) & (v->n_slots - 1)) {
        int32_t id = v->slots[i];
        if (id < 0) return -1;
        if (v->len[id] == n && !memcmp(v->bytes + v->off[id], s, n) && (special || !v->special[id]))
            return id;
    }
}

static int voc_index(sp_cons_vocab *v) {
    v->n_slots = 1024;
    while (v->n_slots < (size_t)v->n * 2) v->n_slots *= 2;
    v->slots = malloc(v->n_slots * sizeof *v->slots);
    if (!v->slots) return -1;
    memset(v->slots, 0xff, v->n_slots * sizeof *v->slots);
    for (int32_t id = 0; id < v->n; id++) {
        if (!v->len[id]) continue;
        if (v->len[id] > v->max_len) v->max_len = v->len[id];
        size_t i = text_hash(v->bytes + v->off[id], v->len[id]) & (v->n_slots - 1);
        while (v->slots[i] >= 0) i = (i + 1) & (v->n_slots - 1);
        v->slots[i] = id;
    }
    return 0;
}

static int32_t find_anchor(const sp_tokenizer *tok, char **base, size_t *base_n) {
    int32_t *ids = NULL;
    size_t n = 0;
    sp_error err;
    int32_t a = -1;
    if (sp_tokenizer_encode(tok, "a", 1, 0, 0, &ids, &n, &err) == SP_OK && n == 1) a = ids[0];
    free(ids);
    if (a >= 0 && sp_tokenizer_decode(tok, &a, 1, 0, base, base_n, &err) != SP_OK) a = -1;
    return a;
}

sp_cons_vocab *sp_cons_vocab_new(const sp_tokenizer *tok) {
    sp_cons_vocab *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->n = sp_tokenizer_vocab_size(tok);
    v->off = calloc((size_t)v->n + 1, sizeof *v->off);
    v->len = calloc((size_t)v->n + 1, sizeof *v->len);
    v->special = calloc((size_t)v->n + 1, 1);
    char *base = NULL;
    size_t base_n = 0, used = 0, cap = (size_t)v->n * 8 + 64;
    v->bytes = malloc(cap);
    int32_t anchor = find_anchor(tok, &base, &base_n);
    int ok = v->off && v->len && v->special && v->bytes;
    for (int32_t id = 0; ok && id < v->n; id++) {
        size_t n = 0;
        char *t = mid_text(tok, anchor, base, base_n, id, &n);
        if (!t) {
            ok = 0;
            break;
        }
        if (used + n > cap) {
            char *b = realloc(v->bytes, (cap = (used + n) * 2));
            ok = b != NULL;
            if (b) v->bytes = b;
        }
        if (ok) {
            memcpy(v->bytes + used, t, n);
            v->off[id] = used;
            v->len[id] = (uint32_t)n;
            v->special[id] = (unsigned char)sp_tokenizer_is_special(tok, id);
            used += n;
        }
        free(t);
    }
    free(base);
    if (ok && voc_index(v)) ok = 0;
    if (!ok) {
        sp_cons_vocab_free(v);
        return NULL;
    }
    return v;
}

/* ---- the state machine ---- */

enum { P_PRE = 0, P_HEAD, P_ARGS, P_CLOSE, P_AFTER, P_DONE };

typedef struct cstate {
    int phase;
    int alt, pos; /* P_HEAD: which head (open + name + mid), and bytes of it read */
    int calls;    /* calls completed */
    sp_jp jp;
    int qm;   /* gemma4: bytes of the quote marker read (held back) */
    int bare; /* gemma4: inside a bare key */
} cstate;

/* The budget is counted in tokens: the literal parts' rest in the fewest
 * tokens greedy longest-match finds (rest[pos] for each position: taking
 * that token leaves rest[pos] - 1, so the count is always reachable), the
 * JSON completion at one token per byte. */
struct sp_cons {
    sp_tool_constraint *spec;
    char **heads;
    size_t *head_len;
    int **head_rest; /* per head, tokens to finish it from each position */
    int *pre_rest, *close_rest, *sep_rest, *quote_rest;
    int min_head; /* tokens of the shortest head */
    size_t prefix_len, close_len, sep_len, quote_len;
    const sp_cons_vocab *voc;
    int32_t *eos;
    int n_eos;
    int keep_special;
    cstate st;
};

void sp_cons_free(sp_cons *c) {
    if (!c) return;
    for (int i = 0; c->heads && i < c->spec->n_names; i++) free(c->heads[i]);
    for (int i = 0; c->head_rest && i < c->spec->n_names; i++) free(c->head_rest[i]);
    free(c->head_rest);
    free(c->pre_rest);
    free(c->close_rest);
    free(c->sep_rest);
    free(c->quote_rest);
    free(c->heads);
    free(c->head_len);
    free(c->eos);
    free(c->spec);
    free(c);
}

static char *join3(const char *a, const char *b, const char *d, size_t *n) {
    size_t la = strlen(a), lb = strlen(b), ld = strlen(d);
    char *s = malloc(la + lb + ld + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, d, ld + 1);
    *n = la + lb + ld;
    return s;
}

#define MAX_LITERAL_TOKEN 32 /* longer tokens are not looked for in the literals */

/* rest[pos]: tokens to write s[pos..n) (see struct sp_cons); bytes without
 * a vocabulary. */
static int *rest_tokens(const sp_cons_vocab *v, const char *s, int special) {
    size_t n = s ? strlen(s) : 0;
    int *r = malloc((n + 1) * sizeof *r);
    if (!r) return NULL;
    r[n] = 0;
    for (size_t pos = n; pos-- > 0;) {
        size_t take = 1;
        size_t most = v ? (v->max_len < MAX_LITERAL_TOKEN ? v->max_len : MAX_LITERAL_TOKEN) : 0;
        for (size_t l = most < n - pos ? most : n - pos; l > 1; l--)
            if (voc_find(v, s + pos, l, special) >= 0) {
                take = l;
                break;
            }
        r[pos] = 1 + r[pos + take];
    }
    return r;
}

static int literal_tables(sp_cons *c) {
    const sp_tool_constraint *sp = c->spec;
    int n = sp->n_names, sp_ok = c->keep_special;
    c->head_rest = calloc((size_t)n, sizeof *c->head_rest);
    c->pre_rest = rest_tokens(c->voc, sp->prefix, sp_ok);
    c->close_rest = rest_tokens(c->voc, sp->close, sp_ok);
    c->sep_rest = rest_tokens(c->voc, sp->sep, sp_ok);
    c->quote_rest = rest_tokens(c->voc, sp->quote, sp_ok);
    if (!c->head_rest || !c->pre_rest || !c->close_rest || !c->sep_rest || !c->quote_rest)
        return -1;
    for (int i = 0; i < n; i++) {
        if (!(c->head_rest[i] = rest_tokens(c->voc, c->heads[i], sp_ok))) return -1;
        if (i == 0 || c->head_rest[i][0] < c->min_head) c->min_head = c->head_rest[i][0];
    }
    return 0;
}

sp_cons *sp_cons_new(const sp_tool_constraint *spec, const sp_cons_vocab *voc, const int32_t *eos,
                     int n_eos, int keep_special) {
    sp_cons *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->spec = sp_tool_constraint_copy(spec);
    c->eos = malloc((size_t)(n_eos > 0 ? n_eos : 1) * sizeof *c->eos);
    if (!c->spec || !c->eos) goto fail;
    if (n_eos > 0) memcpy(c->eos, eos, (size_t)n_eos * sizeof *eos);
    c->n_eos = n_eos;
    c->voc = voc;
    c->keep_special = keep_special;
    int n = c->spec->n_names;
    c->heads = calloc((size_t)n, sizeof *c->heads);
    c->head_len = calloc((size_t)n, sizeof *c->head_len);
    if (!c->heads || !c->head_len) goto fail;
    for (int i = 0; i < n; i++) {
        c->heads[i] = join3(c->spec->open, c->spec->names[i], c->spec->mid, &c->head_len[i]);
        if (!c->heads[i]) goto fail;
    }
    if (literal_tables(c)) goto fail;
    c->prefix_len = strlen(c->spec->prefix);
    c->close_len = strlen(c->spec->close);
    c->sep_len = c->spec->sep ? strlen(c->spec->sep) : 0;
    c->quote_len = c->spec->quote ? strlen(c->spec->quote) : 0;
    c->st.phase = c->prefix_len ? P_PRE : P_HEAD;
    return c;
fail:
    sp_cons_free(c);
    return NULL;
}

static void call_closed(const sp_cons *c, cstate *s) {
    s->calls++;
    int more = c->spec->sep && (c->spec->max_calls <= 0 || s->calls < c->spec->max_calls);
    s->phase = more ? P_AFTER : P_DONE;
    s->pos = 0;
}

/* Gemma 4's heads end with the arguments' '{' (so that a name cannot end
 * where a longer one goes on): the object is then already open. */
static void args_begin(const sp_cons *c, cstate *s) {
    s->phase = P_ARGS;
    sp_jp_init(&s->jp);
    if (c->spec->quote) sp_jp_byte(&s->jp, '{');
}

/* Head bytes: stay on the current alternative, or move to another one that
 * agrees with everything read so far. */
static int head_byte(const sp_cons *c, cstate *s, char b) {
    size_t pos = (size_t)s->pos;
    if (pos >= c->head_len[s->alt] || c->heads[s->alt][pos] != b) {
        int j = 0;
        for (; j < c->spec->n_names; j++)
            if (c->head_len[j] > pos && c->heads[j][pos] == b &&
                !memcmp(c->heads[j], c->heads[s->alt], pos))
                break;
        if (j == c->spec->n_names) return -1;
        s->alt = j;
    }
    if ((size_t)++s->pos == c->head_len[s->alt]) args_begin(c, s);
    return 0;
}

/* ---- Gemma 4 arguments: key:<|"|>text<|"|>,n:1} read as the JSON the
 * parser turns them into ({"key":"text","n":1}) ---- */

/* Bare keys are identifiers; anything else is quoted with the marker. */
static int bare_char(unsigned char b) {
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '_' ||
           b == '-' || b == '.';
}

/* A byte that is not part of a quote marker. */
static int gemma_text(cstate *s, unsigned char b) {
    sp_jp *j = &s->jp;
    if (s->bare) { /* the validator reads a key string; ':' ends it */
        if (b != ':') return bare_char(b) ? 0 : -1;
        s->bare = 0;
        return sp_jp_byte(j, '"') || sp_jp_byte(j, ':') ? -1 : 0;
    }
    if (sp_jp_in_string(j)) return sp_jp_byte(j, 'a'); /* string text is taken as it is */
    if (b == '"' || b == '\\') return -1;
    if (sp_jp_wants_key(j) && bare_char(b)) {
        s->bare = 1;
        return sp_jp_byte(j, '"') || sp_jp_byte(j, 'a') ? -1 : 0;
    }
    return sp_jp_byte(j, b);
}

static int gemma_byte(const sp_cons *c, cstate *s, unsigned char b) {
    const char *q = c->spec->quote;
    if (s->qm == 0 && (unsigned char)q[0] != b) return gemma_text(s, b);
    if (s->bare) return -1; /* no marker inside a bare key */
    if ((unsigned char)q[s->qm] == b) {
        if ((size_t)++s->qm < c->quote_len) return 0;
        s->qm = 0;
        return sp_jp_byte(&s->jp, '"'); /* opens or closes a string */
    }
    int held = s->qm; /* not a marker after all: its bytes were text */
    s->qm = 0;
    for (int i = 0; i < held; i++)
        if (gemma_text(s, (unsigned char)q[i])) return -1;
    return gemma_byte(c, s, b);
}

/* Tokens to finish the arguments: the JSON completion with each quote
 * written as the marker (and a bare key closed by its ':'). */
static int gemma_need(const sp_cons *c, const cstate *s) {
    sp_jp j = s->jp;
    int cost = 0, bare = s->bare;
    if (s->qm > 0) { /* finish the marker: a quote */
        cost = c->quote_rest[s->qm];
        if (sp_jp_byte(&j, '"')) return 1 << 20; /* never: such bytes are refused */
    }
    char t[128];
    size_t n = sp_jp_completion(&j, t, sizeof t);
    for (size_t i = 0; i < n && i < sizeof t - 1; i++)
        cost += t[i] != '"' ? 1 : i == 0 && bare ? 0 : c->quote_rest[0];
    return cost;
}

static int cons_byte(const sp_cons *c, cstate *s, char b) {
    switch (s->phase) {
    case P_PRE:
        if (c->spec->prefix[s->pos] != b) return -1;
        if ((size_t)++s->pos == c->prefix_len) s->phase = P_HEAD, s->pos = 0, s->alt = 0;
        return 0;
    case P_HEAD:
        return head_byte(c, s, b);
    case P_ARGS:
        if (c->spec->quote ? gemma_byte(c, s, (unsigned char)b)
                           : sp_jp_byte(&s->jp, (unsigned char)b))
            return -1;
        if (sp_jp_done(&s->jp)) {
            s->phase = P_CLOSE;
            s->pos = 0;
            if (!c->close_len) call_closed(c, s);
        }
        return 0;
    case P_CLOSE:
        if (c->spec->close[s->pos] != b) return -1;
        if ((size_t)++s->pos == c->close_len) call_closed(c, s);
        return 0;
    case P_AFTER:
        if (!c->spec->sep || c->spec->sep[s->pos] != b) return -1;
        if ((size_t)++s->pos == c->sep_len) s->phase = P_HEAD, s->pos = 0, s->alt = 0;
        return 0;
    default:
        return -1;
    }
}

/* special: the text is a special token's, which may only spell the literal
 * parts (markers) and Gemma 4's quote marker, never argument text. */
static int feed(const sp_cons *c, cstate *s, const char *t, size_t n, int special) {
    int quote = special && c->spec->quote && n == c->quote_len && !memcmp(t, c->spec->quote, n);
    for (size_t i = 0; i < n; i++)
        if ((special && !quote && s->phase == P_ARGS) || cons_byte(c, s, t[i])) return -1;
    return 0;
}

/* Fewest tokens to finish the head from (alt, pos), over the heads that
 * agree with what was read. */
static int head_need(const sp_cons *c, const cstate *s) {
    size_t pos = (size_t)s->pos;
    int best = -1;
    for (int j = 0; j < c->spec->n_names; j++)
        if (c->head_len[j] >= pos && !memcmp(c->heads[j], c->heads[s->alt], pos) &&
            (best < 0 || c->head_rest[j][pos] < best))
            best = c->head_rest[j][pos];
    return best;
}

/* Tokens (at most) still needed to complete the output from s. */
static int need(const sp_cons *c, const cstate *s) {
    /* after the current call: an EOS if another call could follow */
    int eos = c->spec->sep && (c->spec->max_calls <= 0 || s->calls + 1 < c->spec->max_calls);
    int call = (c->spec->quote ? 1 : 2) /* {} */ + c->close_rest[0] + eos;
    switch (s->phase) {
    case P_PRE:
        return c->pre_rest[s->pos] + c->min_head + call;
    case P_HEAD:
        return head_need(c, s) + call;
    case P_ARGS:
        return (c->spec->quote ? gemma_need(c, s) : (int)sp_jp_completion(&s->jp, NULL, 0)) +
               c->close_rest[0] + eos;
    case P_CLOSE:
        return c->close_rest[s->pos] + eos;
    case P_AFTER:
        return s->pos == 0 ? 1 : c->sep_rest[s->pos] + c->min_head + call;
    default:
        return 0;
    }
}

static int is_eos(const sp_cons *c, int32_t id) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos[i] == id) return 1;
    return 0;
}

/* need0: need(c, &c->st), computed once per step by the caller. */
static int allows(const sp_cons *c, int32_t id, int budget, int need0) {
    if (is_eos(c, id)) return c->st.phase == P_AFTER && c->st.pos == 0;
    const sp_cons_vocab *v = c->voc;
    if (id < 0 || id >= v->n || !v->len[id]) return 0;
    if (v->special[id] && !c->keep_special) return 0;
    cstate s = c->st;
    if (feed(c, &s, v->bytes + v->off[id], v->len[id], v->special[id])) return 0;
    /* keep the output completable in what is left, when it still is */
    if (need0 <= budget && need(c, &s) > budget - 1) return 0;
    return 1;
}

int sp_cons_allows(const sp_cons *c, int32_t id, int budget) {
    return allows(c, id, budget, need(c, &c->st));
}

int sp_cons_mask(const sp_cons *c, float *logits, int vocab, int budget) {
    const sp_cons_vocab *v = c->voc;
    unsigned char first_ok[256];
    for (int b = 0; b < 256; b++) {
        cstate s = c->st;
        first_ok[b] = cons_byte(c, &s, (char)b) == 0;
    }
    int n = 0, need0 = need(c, &c->st);
    for (int32_t id = 0; id < vocab; id++) {
        if (logits[id] == -INFINITY) continue;
        int ok = id < v->n && v->len[id] && first_ok[(unsigned char)v->bytes[v->off[id]]];
        if (is_eos(c, id) || ok) ok = allows(c, id, budget, need0);
        if (ok)
            n++;
        else
            logits[id] = -INFINITY;
    }
    return n;
}

void sp_cons_accept(sp_cons *c, int32_t id) {
    const sp_cons_vocab *v = c->voc;
    cstate s = c->st;
    if (is_eos(c, id) || id < 0 || id >= v->n ||
        feed(c, &s, v->bytes + v->off[id], v->len[id], v->special[id])) {
        c->st.phase = P_DONE; /* an end, or a token forced past the constraint: stop here */
        return;
    }
    c->st = s;
}

int sp_cons_finished(const sp_cons *c) {
    return c->st.phase == P_DONE;
}

int sp_cons_feed_text(sp_cons *c, const char *t, size_t n) {
    cstate s = c->st;
    if (feed(c, &s, t, n, 0)) return -1;
    c->st = s;
    return 0;
}

int sp_cons_need(const sp_cons *c) {
    return need(c, &c->st);
}
