/* spindle: an OpenAI-compatible LLM inference server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "compute/ops.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"serve", cmd_serve, "serve the OpenAI-compatible HTTP API"},
    {"generate", cmd_generate, "generate tokens (greedy unless sampling flags are given)"},
    {"logits", cmd_logits, "write the logits of every position (float32, positions x vocab)"},
    {"tokenize", cmd_tokenize, "print token ids of a text as a JSON array"},
    {"template", cmd_template, "render the chat template for a messages file"},
    {"bench", cmd_bench, "measure prompt processing and generation speed"},
    {"image", cmd_image, "preprocess an image and run the vision tower (pixels, features)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: spindle <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nrun 'spindle <command> --help' for the options of a command\n");
}

int main(int argc, char **argv) {
    const char *isa = getenv("SPINDLE_ISA");
    sp_isa level;
    if (isa && *isa && !sp_isa_parse(isa, &level)) {
        fprintf(stderr,
                "spindle: SPINDLE_ISA must be scalar, avx2, avx512 or avx512bf16, got '%s'\n", isa);
        return 2;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "spindle: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
