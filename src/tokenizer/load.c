/* Picks the tokenizer source of a model path: a folder with tokenizer.json,
 * or a .gguf file's tokenizer.ggml.* metadata. */
#include <string.h>

#include "base/file.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

sp_status sp_tokenizer_load(sp_tokenizer **out, const char *path, sp_error *err) {
    *out = NULL;
    if (sp_path_is_dir(path)) return sp_tokenizer_load_dir(out, path, err);
    if (!sp_path_exists(path))
        return sp_fail(err, SP_ENOTFOUND, "%s: no such file or folder", path);
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".gguf")) return tok_load_gguf(out, path, err);
    return sp_fail(err, SP_EIO, "%s: not a model directory or .gguf file", path);
}
