/* The bytes behind an image URL, on the HTTP thread that handles the
 * request: data: URLs (base64), http(s):// through libcurl (size, time and
 * redirect limits; refused under --no-remote-images), file:// only under
 * --allowed-local-media-path. Every failure is a 400 naming the part. */
#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base64.h"
#include "base/file.h"
#include "server/server_impl.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;

static void curl_cleanup(void) {
    curl_global_cleanup();
}

/* Once per process; undone at exit (after the server's threads are gone), so
 * LeakSanitizer sees no TLS library state left behind. */
static void curl_init(void) {
    curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    if (curl_ok) atexit(curl_cleanup);
}

void image_fetch_init(void) {
    pthread_once(&curl_once, curl_init); /* curl_global_init is not thread-safe */
}

typedef struct sink {
    uint8_t *data;
    size_t n, cap, max;
    int too_big;
} sink;

static size_t on_data(char *p, size_t size, size_t nmemb, void *ctx) {
    sink *s = ctx;
    size_t n = size * nmemb;
    if (s->n + n > s->max) {
        s->too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (s->n + n > s->cap) {
        size_t cap = (s->n + n) * 2 > s->max ? s->max : (s->n + n) * 2;
        uint8_t *d = realloc(s->data, cap);
        if (!d) return 0;
        s->data = d, s->cap = cap;
    }
    memcpy(s->data + s->n, p, n);
    s->n += n;
    return n;
}

/* A short form of a URL for messages (URLs can be megabytes of data). */
static void short_url(char *out, size_t cap, const char *url) {
    size_t n = strlen(url);
    if (n < 80)
        snprintf(out, cap, "%s", url);
    else
        snprintf(out, cap, "%.60s...", url);
}

static int fetch_http(const char *url, const sp_media_opts *mo, sink *s, const char *path,
                      api_error *err) {
    char su[128];
    short_url(su, sizeof su, url);
    if (!mo->remote) {
        api_fail(err, 400, path,
                 "%s: remote image URLs are disabled on this server "
                 "(--no-remote-images); send the image as a data: URL",
                 path);
        return -1;
    }
    image_fetch_init();
    CURL *c = curl_ok ? curl_easy_init() : NULL;
    if (!c) {
        api_fail(err, 500, path, "%s: cannot start an HTTP client", path);
        return -1;
    }
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)mo->timeout_s);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)mo->max_bytes);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "spindle");
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (rc == CURLE_OK) return 0;
    if (s->too_big || rc == CURLE_FILESIZE_EXCEEDED)
        api_fail(err, 400, path, "%s: the image at %s is larger than the limit of %zu bytes", path,
                 su, mo->max_bytes);
    else if (rc == CURLE_HTTP_RETURNED_ERROR)
        api_fail(err, 400, path, "%s: fetching %s: HTTP status %ld", path, su, status);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        api_fail(err, 400, path, "%s: fetching %s took longer than %d s (--image-url-timeout)",
                 path, su, mo->timeout_s);
    else
        api_fail(err, 400, path, "%s: fetching %s: %s", path, su,
                 ebuf[0] ? ebuf : curl_easy_strerror(rc));
    return -1;
}

static int fetch_data(const char *url, const sp_media_opts *mo, sink *s, const char *path,
                      api_error *err) {
    const char *comma = strchr(url, ',');
    if (!comma) {
        api_fail(err, 400, path, "%s: a data: URL needs a ',' before its data", path);
        return -1;
    }
    size_t hl = (size_t)(comma - url);
    if (hl < 7 || strncmp(comma - 7, ";base64", 7) != 0) {
        api_fail(err, 400, path,
                 "%s: only base64 data: URLs are supported "
                 "(data:image/png;base64,...)",
                 path);
        return -1;
    }
    sp_error e = {0};
    if (sp_base64_decode(comma + 1, strlen(comma + 1), &s->data, &s->n, &e) != SP_OK) {
        api_fail(err, 400, path, "%s: %s", path, e.msg);
        return -1;
    }
    if (s->n > mo->max_bytes) {
        api_fail(err, 400, path, "%s: the image is %zu bytes, larger than the limit of %zu", path,
                 s->n, mo->max_bytes);
        return -1;
    }
    return 0;
}

/* file:///abs/path, only inside the allowed directory (after resolving links). */
static int fetch_file(const char *url, const sp_media_opts *mo, sink *s, const char *path,
                      api_error *err) {
    if (!mo->local_dir) {
        api_fail(err, 400, path,
                 "%s: file:// image URLs are disabled on this server "
                 "(see --allowed-local-media-path)",
                 path);
        return -1;
    }
    const char *fp = url + 7;
    char real[PATH_MAX], base[PATH_MAX];
    if (fp[0] != '/' || !realpath(fp, real) || !realpath(mo->local_dir, base)) {
        api_fail(err, 400, path, "%s: no such file: %.200s", path, fp);
        return -1;
    }
    size_t bl = strlen(base);
    if (strncmp(real, base, bl) != 0 || (real[bl] != '/' && !(bl == 1 && base[0] == '/'))) {
        api_fail(err, 400, path, "%s: %.200s is outside --allowed-local-media-path", path, fp);
        return -1;
    }
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
        api_fail(err, 400, path, "%s: %.200s is not a regular file", path, fp);
        return -1;
    }
    if ((size_t)st.st_size > mo->max_bytes) {
        api_fail(err, 400, path, "%s: the image is %lld bytes, larger than the limit of %zu", path,
                 (long long)st.st_size, mo->max_bytes);
        return -1;
    }
    sp_file f;
    sp_error e = {0};
    if (sp_file_read(&f, real, &e) != SP_OK) {
        api_fail(err, 400, path, "%s: %s", path, e.msg);
        return -1;
    }
    s->data = malloc(f.size ? f.size : 1);
    if (s->data) memcpy(s->data, f.data, f.size);
    s->n = f.size;
    sp_file_close(&f);
    return s->data ? 0 : (api_fail(err, 500, path, "%s: out of memory", path), -1);
}

int image_fetch(const char *url, const sp_media_opts *mo, uint8_t **data, size_t *n,
                const char *path, api_error *err) {
    sink s = {.max = mo->max_bytes};
    int rc;
    if (!strncmp(url, "data:", 5))
        rc = fetch_data(url, mo, &s, path, err);
    else if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
        rc = fetch_http(url, mo, &s, path, err);
    else if (!strncmp(url, "file://", 7))
        rc = fetch_file(url, mo, &s, path, err);
    else {
        api_fail(err, 400, path,
                 "%s: unsupported image URL scheme (data:, http://, https://, "
                 "file://)",
                 path);
        rc = -1;
    }
    if (rc != 0) {
        free(s.data);
        return -1;
    }
    *data = s.data;
    *n = s.n;
    return 0;
}
