/* Engine tests need a model directory with a tokenizer, but the fixtures
 * ship only config.json + model.safetensors: these helpers link the
 * fixture's weights into a scratch directory and write small tokenizers. */
#ifndef SP_TESTS_MODEL_DIR_H
#define SP_TESTS_MODEL_DIR_H

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* dir/config.json and dir/model.safetensors as links to fixture_dir's;
 * returns dir/tokenizer.json opened for writing, NULL on failure. */
static inline FILE *model_dir_link(const char *fixture_dir, const char *dir) {
    char src[2048], path[2048];
    mkdir(dir, 0755);
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(src, sizeof src, "%s/%s", fixture_dir, files[i]);
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
        if (symlink(src, path) != 0) return NULL;
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    return fopen(path, "w");
}

/* A byte-level BPE tokenizer over `vocab` ids: 0..255 are GPT-2's printable
 * stand-ins for the bytes, the rest fillers, no merges. */
static inline int model_dir_byte_tokenizer(const char *fixture_dir, int vocab, const char *dir) {
    FILE *f = model_dir_link(fixture_dir, dir);
    if (!f) return 0;
    fprintf(f, "{\"version\":\"1.0\",\"added_tokens\":[],\"normalizer\":null,"
               "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
               "\"trim_offsets\":true,\"use_regex\":true},\"post_processor\":null,"
               "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
               "\"trim_offsets\":true,\"use_regex\":true},"
               "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,"
               "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,"
               "\"fuse_unk\":false,\"byte_fallback\":false,\"vocab\":{");
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)extra++;
        char u[8];
        int len = cp < 0x80
                      ? (u[0] = (char)cp, 1)
                      : (u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), 2);
        u[len] = 0;
        fprintf(f, "%s\"%s%s\":%d", b ? "," : "", cp == '"' || cp == '\\' ? "\\" : "", u, b);
    }
    for (int id = 256; id < vocab; id++) fprintf(f, ",\"<filler_%d>\":%d", id, id);
    fprintf(f, "},\"merges\":[]}}\n");
    return fclose(f) == 0;
}

#endif
