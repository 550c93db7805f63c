/* Replays the fuzz inputs in a normal build, through the same entry points
 * the libFuzzer targets use (tests/fuzz/fuzz_*.c are #included here with
 * FUZZ_REGRESSION defined, which drops their LLVMFuzzerTestOneInput).
 *
 * For every target: each seed in tests/fuzz/corpus/<target>/ (the harness
 * must accept valid inputs) and each stored reproducer in
 * tests/fuzz/regressions/<target>/ (an input that once crashed, leaked or
 * broke an invariant). A target's invariant violations are counted as
 * failures; memory errors and undefined behaviour crash the test under the
 * ASan+UBSan build (make asan), and leaks fail it under LeakSanitizer. In a
 * plain build only crashes and invariant violations show.
 *
 * The file about to be replayed is printed first, so a crash names it. */
#define FUZZ_REGRESSION 1

#include <dirent.h>
#include <sys/stat.h>

#include "../fuzz/fuzz_detok.c"
#include "../fuzz/fuzz_gguf.c"
#include "../fuzz/fuzz_gguf_vocab.c"
#include "../fuzz/fuzz_image.c"
#include "../fuzz/fuzz_json_config.c"
#include "../fuzz/fuzz_request.c"
#include "../fuzz/fuzz_safetensors.c"
#include "../fuzz/fuzz_schema.c"
#include "../fuzz/fuzz_safetensors_sharded.c"
#include "../fuzz/fuzz_template.c"
#include "../fuzz/fuzz_tokenize.c"
#include "../fuzz/fuzz_tokenizer_load.c"
#include "../fuzz/fuzz_toolcall.c"
#include "check.h"

typedef struct fuzz_target {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
    int needs_tokenizers;
} fuzz_target;

static const fuzz_target targets[] = {
    {"safetensors", fuzz_safetensors, 0}, {"gguf", fuzz_gguf, 0},
    {"json_config", fuzz_json_config, 0}, {"tokenizer_load", fuzz_tokenizer_load, 0},
    {"tokenize", fuzz_tokenize, 1},       {"detok", fuzz_detok, 1},
    {"template", fuzz_template, 0},       {"request", fuzz_request, 1},
    {"toolcall", fuzz_toolcall, 0},       {"safetensors_sharded", fuzz_safetensors_sharded, 0},
    {"gguf_vocab", fuzz_gguf_vocab, 0},   {"image", fuzz_image, 0},
    {"schema", fuzz_schema, 0},
};

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted regular file names in dir (NULL-terminated, malloc'd), or NULL
 * when the directory does not exist. */
static char **list_files(const char *dir, int *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, sizeof *names * (size_t)(*n + 2));
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (names) qsort(names, (size_t)*n, sizeof *names, cmp_names);
    return names;
}

static uint8_t *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, got;
    uint8_t *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *size = n;
    return buf;
}

/* Replays every file of tests/fuzz/<kind>/<target>/; returns how many. */
static int replay_dir(const fuzz_target *t, const char *kind) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/%s/%s", SP_SOURCE_DIR, kind, t->name);
    int n = 0;
    char **names = list_files(dir, &n);
    for (int i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t size = 0;
        uint8_t *data = read_all(path, &size);
        CHECKF(data != NULL, "cannot read %s", path);
        if (data) {
            fprintf(stderr, "  %s/%s/%s (%zu bytes)\n", kind, t->name, names[i], size);
            int before = fuzz_failures;
            t->fn(data, size);
            CHECKF(fuzz_failures == before, "%s/%s/%s broke an invariant (message above)", kind,
                   t->name, names[i]);
        }
        free(data);
        free(names[i]);
    }
    free(names);
    return n;
}

static int tokenizers_present(void) {
    for (int i = 0; i < FUZZ_TOK_COUNT; i++) {
        char p[1024];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s/tokenizer.json", fuzz_tokenizers_dir(), fuzz_tok_names[i]);
        if (stat(p, &sb) != 0) return 0;
    }
    return 1;
}

int main(void) {
    int have_toks = tokenizers_present();
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        const fuzz_target *t = &targets[i];
        if (t->needs_tokenizers && !have_toks) {
            CHECKF(0, "%s: the real tokenizers are missing in %s (run scripts/fetch-tokenizers.sh)",
                   t->name, fuzz_tokenizers_dir());
            continue;
        }
        fprintf(stderr, "fuzz_%s:\n", t->name);
        int seeds = replay_dir(t, "corpus");
        int regs = replay_dir(t, "regressions");
        CHECKF(seeds > 0, "%s: no seed corpus in tests/fuzz/corpus/%s", t->name, t->name);
        fprintf(stderr, "fuzz_%s: %d seeds, %d regressions replayed\n", t->name, seeds, regs);
    }
    return check_summary("test_fuzz_regressions");
}
