#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static sp_status open_sized(const char *path, int *fd, size_t *size, sp_error *err) {
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) return sp_fail(err, SP_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(*fd);
        return sp_fail(err, SP_EIO, "%s: not a regular file", path);
    }
    *size = (size_t)st.st_size;
    return SP_OK;
}

sp_status sp_file_map(sp_file *f, const char *path, sp_error *err) {
    memset(f, 0, sizeof *f);
    int fd;
    SP_TRY(open_sized(path, &fd, &f->size, err));
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return sp_fail(err, SP_EIO, "%s: mmap failed: %s", path, strerror(errno));
        }
        f->data = p;
        f->mapped = 1;
    }
    close(fd);
    f->path = strdup(path);
    return SP_OK;
}

sp_status sp_file_read(sp_file *f, const char *path, sp_error *err) {
    memset(f, 0, sizeof *f);
    int fd;
    SP_TRY(open_sized(path, &fd, &f->size, err));
    f->data = malloc(f->size + 1);
    if (!f->data) {
        close(fd);
        return sp_fail(err, SP_ENOMEM, "%s: cannot allocate %zu bytes", path, f->size);
    }
    size_t done = 0;
    while (done < f->size) {
        ssize_t n = read(fd, f->data + done, f->size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            free(f->data);
            f->data = NULL;
            return sp_fail(err, SP_EIO, "%s: read failed at byte %zu", path, done);
        }
        done += (size_t)n;
    }
    close(fd);
    f->data[f->size] = 0;
    f->path = strdup(path);
    return SP_OK;
}

void sp_file_close(sp_file *f) {
    if (!f) return;
    if (f->mapped && f->data)
        munmap(f->data, f->size);
    else
        free(f->data);
    free(f->path);
    memset(f, 0, sizeof *f);
}

sp_status sp_read_text(const char *path, char **out, size_t *len, sp_error *err) {
    sp_file f;
    SP_TRY(sp_file_read(&f, path, err));
    *out = (char *)f.data;
    if (len) *len = f.size;
    free(f.path);
    return SP_OK;
}

int sp_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int sp_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *sp_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t n = a;
    if (a > 0 && dir[a - 1] != '/') p[n++] = '/';
    memcpy(p + n, name, b + 1);
    return p;
}
