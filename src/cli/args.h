/* Small helpers shared by the subcommands: flag values, id lists, model
 * options. Usage errors print one line and make the command exit 2. */
#ifndef SP_CLI_ARGS_H
#define SP_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model/model.h"

/* Returns argv[*i + 1] and advances *i, or NULL (after printing a usage
 * error) when the flag has no value. */
const char *arg_value(int argc, char **argv, int *i);
/* Parses "1,2,3" into a malloc'd array; 0 on error (message printed). */
int arg_ids(const char *cmd, const char *s, int32_t **ids, size_t *n);
/* Parses a non-negative integer flag value; 0 on error. */
int arg_int(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out);
/* Checks an --isa value and sets SPINDLE_ISA to it; 0 (message printed) if
 * it names no level. */
int arg_isa(const char *cmd, const char *v);
/* Handles the model options shared by commands (--precision, --threads,
 * --mmap, --longrope-long, --quantize, --device, --kv-type, --load-format, --isa).
 * Returns 1 if argv[*i] was one of them, -1 on a bad value, 0 if not a model option. */
int arg_model_opt(const char *cmd, int argc, char **argv, int *i, sp_model_opts *o);
/* sp_model_opts_default with the command line's default device (AUTO). */
void arg_model_opts_default(sp_model_opts *o);

/* One command-line flag: a string-valued flag stores its value in *value; a
 * switch (value == NULL) sets *on = 1. */
typedef struct arg_flag {
    const char *name;
    const char **value;
    int *on;
} arg_flag;

/* Parses argv[1..] against flags (terminated by a {NULL} entry) and, when
 * model_opts is not NULL, the shared model options. Returns -1 to go on, or
 * the exit code the command should return: 0 after --help printed usage to
 * stdout, 2 after a usage error (one line plus usage on stderr). */
int arg_parse(int argc, char **argv, const arg_flag *flags, sp_model_opts *model_opts,
              void (*usage)(FILE *));

#define MODEL_OPTS_HELP                                                                            \
    "  --precision f32|fast  f32: exact reference arithmetic (default fast)\n"                     \
    "  --threads N           compute threads (default: all cores)\n"                               \
    "  --mmap                serve weights from the file mapping instead of memory\n"              \
    "  --quantize q8_0|q4_k  re-quantize safetensors weights at load\n"                            \
    "  --device D            cpu, cuda, cuda:N or auto (default: the first usable CUDA\n"          \
    "                        device, else the CPU)\n"                                              \
    "  --kv-type T           GPU K/V cache: f16 (fast mode's default), bf16 or f32\n"              \
    "  --load-format dummy   random weights sized from config.json (benchmarks of shapes\n"        \
    "                        whose files do not fit the disk)\n"                                   \
    "  --isa LEVEL           scalar|avx2|avx512|avx512bf16: kernels to use, at most the\n"         \
    "                        CPU's (default: SPINDLE_ISA, else the best the CPU has)\n"

#endif
