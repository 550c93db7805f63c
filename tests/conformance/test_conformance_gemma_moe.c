/* Issue 3 families (Gemma 2/3/4, MoE) against transformers' outputs. */
#include "conformance.h"

int main(void) {
    static const char *const names[] = {
        "gemma2", "gemma3", "gemma4_dense", "gemma4_moe", "gemma4_ple_kvshare", "gemma4_mllm",
        "mixtral", "qwen3_moe",
        /* other sizes, expert counts, layer patterns (tests/fixtures-gen) */
        "local/qwen3_moe_odd", "local/gemma3_odd", "local/gemma4_odd_moe", "local/gemma4_ple_odd"};
    return run_fixtures("conformance_gemma_moe", names, (int)(sizeof names / sizeof names[0]));
}
