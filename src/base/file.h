/* Whole files: mapped read-only, or read into owned memory. */
#ifndef SP_BASE_FILE_H
#define SP_BASE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct sp_file {
    uint8_t *data; /* file contents (mapped or malloc'd) */
    size_t size;
    int mapped; /* 1: munmap on close, 0: free */
    char *path; /* owned copy */
} sp_file;

/* Maps the file read-only (private). An empty file maps to data == NULL, size 0. */
sp_status sp_file_map(sp_file *f, const char *path, sp_error *err);
/* Reads the whole file into malloc'd memory (+1 NUL byte past the end). */
sp_status sp_file_read(sp_file *f, const char *path, sp_error *err);
void sp_file_close(sp_file *f);

/* Convenience: read a text file into a NUL-terminated malloc'd string. */
sp_status sp_read_text(const char *path, char **out, size_t *len, sp_error *err);
int sp_path_exists(const char *path);
int sp_path_is_dir(const char *path);
/* Joins dir and name into a malloc'd path. */
char *sp_path_join(const char *dir, const char *name);

#endif
