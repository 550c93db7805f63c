/* Issue 2 families against transformers' reference outputs. */
#include "conformance.h"

int main(void) {
    static const char *const names[] = {"llama",       "llama3_rope",  "llama_linear_rope",
                                        "mistral_swa", "qwen2",        "qwen3",
                                        "qwen3_yarn",  "phi3_longrope"};
    return run_fixtures("conformance_dense", names, (int)(sizeof names / sizeof names[0]));
}
