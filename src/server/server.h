/* The OpenAI-compatible HTTP server (libmicrohttpd, one thread per
 * connection). HTTP threads parse, validate, render the chat template,
 * tokenize, then submit to the engine and wait on the request's events; they
 * never touch model state (DESIGN.md section 1). Routes: docs/api.md. */
#ifndef SP_SERVER_SERVER_H
#define SP_SERVER_SERVER_H

#include <stddef.h>

#include "base/status.h"
#include "engine/engine.h"

typedef struct sp_server sp_server;

/* Image inputs (docs/api.md "Images"): where image URLs may come from and
 * how big they may be. */
typedef struct sp_media_opts {
    int remote;            /* fetch http(s):// URLs (0: --no-remote-images, refused with 400) */
    int timeout_s;         /* --image-url-timeout: whole fetch, redirects included */
    size_t max_bytes;      /* --max-image-bytes: encoded size of one image, any source */
    long long max_pixels;  /* --max-image-pixels: decoded width x height */
    int max_images;        /* images in one request */
    const char *local_dir; /* --allowed-local-media-path: file:// URLs under it; NULL: refused */
} sp_media_opts;

typedef struct sp_server_opts {
    const char *host;        /* default 127.0.0.1 */
    int port;                /* default 8000; 0 picks a free port */
    int max_connections;     /* --threads-http: concurrent connections (threads) */
    const char *api_key;     /* NULL: no auth */
    size_t max_body;         /* bytes; 413 above */
    const char *cors_origin; /* NULL: no CORS headers */
    const char *model_id;    /* served id (--alias, else the file/dir name) */
    const char *tool_parser; /* hermes|llama3|gemma4|json|none; NULL: from the chat template */
    int read_timeout_s;      /* headers + body must arrive within this (default 10) */
    int idle_timeout_s;      /* a connection silent this long is closed (default 600) */
    int no_webui;            /* --no-webui: no chat page at / */
    sp_media_opts media;
} sp_server_opts;

void sp_server_opts_default(sp_server_opts *o);

/* 1 if this binary carries the chat page (webui/, bundled when it was built
 * with Node.js), served at / unless no_webui. */
int sp_server_has_webui(void);

/* Binds and starts serving (the engine may still be loading: /health says
 * 503 until it is ready). The engine must outlive the server. */
sp_status sp_server_start(sp_server **out, const sp_server_opts *opts, sp_engine *engine,
                          sp_error *err);
int sp_server_port(const sp_server *s);
/* Stops accepting new connections; open ones keep being served. */
void sp_server_quiesce(sp_server *s);
/* Closes every connection, joins the threads and frees the server. */
void sp_server_stop(sp_server *s);

#endif
