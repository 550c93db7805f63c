/* Picks the tokenizer source of a model path. */
#include <string.h>

#include "base/file.h"
#include "tokenizer/tokenizer.h"

sp_status sp_tokenizer_load(sp_tokenizer **out, const char *path, sp_error *err) {
    if (sp_path_is_dir(path)) return sp_tokenizer_load_dir(out, path, err);
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".gguf"))
        return sp_fail(err, SP_EUNSUPPORTED, "%s: GGUF vocabularies are not supported yet", path);
    return sp_fail(err, SP_EIO, "%s: not a model directory or .gguf file", path);
}
