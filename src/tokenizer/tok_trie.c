/* Byte trie over added-token contents. The first byte is a direct table so
 * scanning ordinary text costs one lookup per byte. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

void tok_trie_init(tok_trie *t) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < 256; i++) t->root_child[i] = -1;
}

void tok_trie_free(tok_trie *t) {
    free(t->nodes);
    tok_trie_init(t);
}

static int32_t new_node(tok_trie *t, uint8_t byte) {
    if (t->n == t->cap) {
        int32_t cap = t->cap ? t->cap * 2 : 256;
        tok_trie_node *v = realloc(t->nodes, (size_t)cap * sizeof *v);
        if (!v) return -1;
        t->nodes = v;
        t->cap = cap;
    }
    t->nodes[t->n] = (tok_trie_node){-1, -1, -1, byte};
    return t->n++;
}

static int32_t child(const tok_trie *t, int32_t node, uint8_t byte) {
    for (int32_t c = t->nodes[node].first_child; c >= 0; c = t->nodes[c].next_sibling)
        if (t->nodes[c].byte == byte) return c;
    return -1;
}

int tok_trie_add(tok_trie *t, const char *s, size_t n, int32_t added_index) {
    if (n == 0) return 0; /* empty tokens never match */
    uint8_t b0 = (uint8_t)s[0];
    int32_t node = t->root_child[b0];
    if (node < 0) {
        if ((node = new_node(t, b0)) < 0) return -1;
        t->root_child[b0] = node;
    }
    for (size_t i = 1; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = child(t, node, b);
        if (c < 0) {
            if ((c = new_node(t, b)) < 0) return -1;
            t->nodes[c].next_sibling = t->nodes[node].first_child;
            t->nodes[node].first_child = c;
        }
        node = c;
    }
    t->nodes[node].added = added_index;
    return 0;
}

int32_t tok_trie_longest(const tok_trie *t, const char *s, size_t n, size_t *len) {
    if (n == 0) return -1;
    int32_t node = t->root_child[(uint8_t)s[0]], best = -1;
    for (size_t i = 1; node >= 0; i++) {
        if (t->nodes[node].added >= 0) {
            best = t->nodes[node].added;
            *len = i;
        }
        if (i == n) break;
        node = child(t, node, (uint8_t)s[i]);
    }
    return best;
}
