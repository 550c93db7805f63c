/* Shared helpers for the libFuzzer targets (tests/fuzz/fuzz_*.c).
 *
 * Each target defines `int fuzz_<name>(const uint8_t *data, size_t size)`
 * and, unless FUZZ_REGRESSION is defined, the LLVMFuzzerTestOneInput that
 * calls it. tests/unit/test_fuzz_regressions.c #includes every target with
 * FUZZ_REGRESSION defined and replays the stored inputs through the same
 * functions in a normal build, so target-local helpers must carry the
 * target's name as a prefix (they share one translation unit there). */
#ifndef SP_FUZZ_COMMON_H
#define SP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer/tokenizer.h"

/* An invariant the target checks beyond "no crash". In the fuzzer a
 * violation aborts so libFuzzer keeps the input; in the regression test it
 * is counted and the replay goes on. */
#ifdef FUZZ_REGRESSION
static int fuzz_failures;
#define FUZZ_FAILED() (fuzz_failures++)
#else
#define FUZZ_FAILED() abort()
#endif

#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            FUZZ_FAILED();                                                                         \
        }                                                                                          \
    } while (0)

/* Known bugs a campaign can be told to step around (run.sh with
 * FUZZ_WORKAROUNDS=1 defines these), so the fuzzer explores past them while
 * the owner fixes them; CI and the regression test never define them.
 *   FUZZ_WORKAROUND_EMPTY_FLUSH: tokenizer/tok_stream.c emit() does
 *     memmove(NULL + 0, ...) (UBSan pointer-overflow) when a detokenizer
 *     is flushed with nothing ever buffered (no ids, or only skipped
 *     special tokens).
 *     Reproducers: regressions/detok/ubsan-flush-*,
 *     regressions/tokenizer_load/ubsan-detok-flush-empty-stream.
 *   FUZZ_WORKAROUND_DUP_VOCAB_ID: tokenizer/tok_load.c fill_vocab() frees
 *     the piece of an id seen twice in model.vocab while the piece map
 *     still points at it (ASan heap-use-after-free in tok_map_get/put).
 *     Reproducer: regressions/tokenizer_load/asan-uaf-duplicate-vocab-id. */

/* Separates the parts of a multi-part input (template source | context,
 * tokenizer.json | tokenizer_config.json). Text, so seeds stay readable. */
#define FUZZ_SEP "\n=====\n"

/* Finds the first FUZZ_SEP: part 1 is data[0, *len1), part 2 follows it
 * (NULL, 0 when there is no separator). */
static inline void fuzz_split(const uint8_t *data, size_t size, size_t *len1, const uint8_t **p2,
                              size_t *len2) {
    const size_t sl = sizeof FUZZ_SEP - 1;
    const uint8_t *s = size >= sl ? memmem(data, size, FUZZ_SEP, sl) : NULL;
    if (!s) {
        *len1 = size, *p2 = NULL, *len2 = 0;
        return;
    }
    *len1 = (size_t)(s - data);
    *p2 = s + sl;
    *len2 = size - *len1 - sl;
}

/* A NUL-terminated malloc'd copy (the parsers take C strings). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* One scratch directory per process (removed at exit); the file-based
 * parsers read from paths inside it. */
static char fuzz_dir_[256];

static inline void fuzz_dir_cleanup_(void) {
    const char *names[] = {"model.safetensors", "model.gguf", "tokenizer.json",
                           "tokenizer_config.json"};
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", fuzz_dir_, names[i]);
        unlink(p);
    }
    rmdir(fuzz_dir_);
}

static inline const char *fuzz_dir(void) {
    if (fuzz_dir_[0]) return fuzz_dir_;
    const char *base = getenv("TMPDIR");
    snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/spfuzz.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(fuzz_dir_)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_dir_cleanup_);
    return fuzz_dir_;
}

/* Writes data to DIR/name (replacing it); returns the path (static buffer). */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) {
        perror(path);
        abort();
    }
    return path;
}

static inline void fuzz_remove(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    unlink(path);
}

/* Where scripts/fetch-tokenizers.sh put the real tokenizers. */
static inline const char *fuzz_tokenizers_dir(void) {
    const char *env = getenv("SP_TOKENIZERS_DIR");
    if (env && *env) return env;
#ifdef SP_SOURCE_DIR
    return SP_SOURCE_DIR "/build/tokenizers";
#else
    return "build/tokenizers";
#endif
}

/* The real tokenizers the tokenize/detok/request targets use, loaded once
 * per process (loading takes seconds under ASan) and kept until exit. */
typedef enum fuzz_tok_id {
    FUZZ_TOK_QWEN3,
    FUZZ_TOK_GEMMA3,
    FUZZ_TOK_LLAMA3,
    FUZZ_TOK_COUNT
} fuzz_tok_id;

static const char *const fuzz_tok_names[FUZZ_TOK_COUNT] = {"qwen3", "gemma3", "llama3_1"};

/* Aborts with a message when the tokenizer is missing: run
 * scripts/fetch-tokenizers.sh first (run.sh does). */
static inline const sp_tokenizer *fuzz_real_tokenizer(fuzz_tok_id which) {
    static sp_tokenizer *toks[FUZZ_TOK_COUNT];
    if (toks[which]) return toks[which];
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", fuzz_tokenizers_dir(), fuzz_tok_names[which]);
    sp_error err = {0};
    if (sp_tokenizer_load_dir(&toks[which], dir, &err) != SP_OK) {
        fprintf(stderr,
                "fuzz: cannot load the %s tokenizer (run scripts/fetch-tokenizers.sh): %s\n",
                fuzz_tok_names[which], err.msg);
        abort();
    }
    return toks[which];
}

/* Index of the first differing byte (for messages). */
static inline size_t fuzz_first_diff(const char *a, size_t na, const char *b, size_t nb) {
    size_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

/* 1 if s[0, n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static inline int fuzz_valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n) return 0;
        uint32_t cp = c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

#endif
