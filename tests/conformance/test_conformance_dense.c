/* Issue 2 families against transformers' reference outputs. */
#include "conformance.h"

int main(void) {
    static const char *const names[] = {"llama", "llama3_rope", "llama_linear_rope", "mistral_swa",
                                        "qwen2", "qwen3", "qwen3_yarn", "phi3_longrope",
                                        /* other sizes, made by tests/fixtures-gen */
                                        "local/llama_odd", "local/qwen2_odd", "local/phi3_partial",
                                        "local/mistral_odd"};
    return run_fixtures("conformance_dense", names, (int)(sizeof names / sizeof names[0]));
}
