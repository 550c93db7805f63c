/* HTTP plumbing: the libmicrohttpd daemon (one thread per connection, so a
 * handler may block on its request's events), body collection with the size
 * limit, auth, CORS, routing, and one log line per request. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/utf8.h"
#include "media/image.h"
#include "server/server_impl.h"

typedef struct conn {
    char *body;
    size_t len, cap;
    int too_big;
    int answered; /* a response is queued already (early 413) */
    double t0;
    uint64_t id;
} conn;

void sp_server_opts_default(sp_server_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8000;
    o->max_connections = 128;
    o->max_body = 8u << 20;
    o->model_id = "model";
    o->read_timeout_s = 10;
    o->idle_timeout_s = 600;
    o->media.remote = 1;
    o->media.timeout_s = 10;
    o->media.max_bytes = 20u << 20;
    o->media.max_pixels = SP_IMAGE_MAX_PIXELS_DEFAULT;
    o->media.max_images = 32;
}

static void add_cors(const sp_server *s, struct MHD_Response *resp) {
    if (!s->cors_origin) return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", s->cors_origin);
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, x-api-key, anthropic-version");
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
}

void reply_text(reply *r, int status, const char *content_type, const char *text) {
    r->status = status;
    r->resp = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r->resp, "Content-Type", content_type);
}

void reply_json(reply *r, int status, json_t *body) {
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) text = strdup("{}");
    r->status = status;
    r->resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r->resp, "Content-Type", "application/json");
}

/* Anthropic's error types by status (its API reference, "Errors"). */
static const char *anthropic_type(int status) {
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

/* {"error": {...}} as the OpenAI API writes errors; Anthropic's shape names
 * the JSON path inside the message, as Anthropic's own errors do. */
json_t *error_json(const api_error *e, err_style style) {
    if (style == ERR_ANTHROPIC) {
        char msg[1400];
        snprintf(msg, sizeof msg, "%s%s%s", e->param[0] ? e->param : "", e->param[0] ? ": " : "",
                 e->message);
        return json_pack("{s:s, s:{s:s, s:o}}", "type", "error", "error", "type",
                         anthropic_type(e->status), "message", json_text(msg, strlen(msg)));
    }
    json_t *err =
        json_pack("{s:o, s:s, s:o, s:o}", "message", json_text(e->message, strlen(e->message)),
                  "type", e->type ? e->type : "invalid_request_error", "param",
                  e->param[0] ? json_string(e->param) : json_null(), "code",
                  e->code ? json_string(e->code) : json_null());
    return json_pack("{s:o}", "error", err);
}

/* The Anthropic routes answer errors in Anthropic's shape. */
static err_style url_style(const char *url) {
    return strncmp(url, "/v1/messages", 12) ? ERR_OPENAI : ERR_ANTHROPIC;
}

void reply_error(reply *r, const api_error *e) {
    reply_json(r, e->status, error_json(e, r->style));
    if (e->status == 503) MHD_add_response_header(r->resp, "Retry-After", "1");
    if (e->status == 401) MHD_add_response_header(r->resp, "WWW-Authenticate", "Bearer");
}

int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        c ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD) : NULL;
    if (!ci) return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* Compares in time independent of where the strings differ. */
static int const_time_eq(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++) diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

/* Authorization: Bearer KEY, or x-api-key: KEY (Anthropic's clients). */
static int authorized(const sp_server *s, struct MHD_Connection *c) {
    if (!s->api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (h && !strncasecmp(h, "Bearer ", 7) && const_time_eq(h + 7, s->api_key)) return 1;
    const char *x = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
    return x && const_time_eq(x, s->api_key);
}

/* Parses the collected body: invalid UTF-8 and invalid JSON are 400s. */
static json_t *parse_body(const conn *cn, api_error *err) {
    long bad = sp_utf8_invalid_at(cn->body ? cn->body : "", cn->len);
    if (bad >= 0) {
        api_fail(err, 400, NULL, "the request body is not valid UTF-8 (byte %ld)", bad);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(cn->body ? cn->body : "", cn->len, 0, &je);
    if (!j)
        api_fail(err, 400, NULL, "invalid JSON at line %d column %d: %s", je.line, je.column,
                 je.text);
    return j;
}

typedef enum route_id {
    R_NONE,
    R_CHAT,
    R_COMPLETIONS,
    R_MODELS,
    R_HEALTH,
    R_METRICS,
    R_TOKENIZE,
    R_DETOKENIZE,
    R_EMBEDDINGS,
    R_MESSAGES,
    R_COUNT_TOKENS,
    R_RESPONSES
} route_id;

static const struct {
    const char *path;
    const char *method;
    route_id id;
} routes[] = {
    {"/v1/chat/completions", "POST", R_CHAT},
    {"/chat/completions", "POST", R_CHAT},
    {"/v1/completions", "POST", R_COMPLETIONS},
    {"/completions", "POST", R_COMPLETIONS},
    {"/v1/models", "GET", R_MODELS},
    {"/models", "GET", R_MODELS},
    {"/health", "GET", R_HEALTH},
    {"/metrics", "GET", R_METRICS},
    {"/tokenize", "POST", R_TOKENIZE},
    {"/detokenize", "POST", R_DETOKENIZE},
    {"/v1/embeddings", "POST", R_EMBEDDINGS},
    {"/embeddings", "POST", R_EMBEDDINGS},
    {"/v1/messages", "POST", R_MESSAGES},
    {"/v1/messages/count_tokens", "POST", R_COUNT_TOKENS},
    {"/v1/responses", "POST", R_RESPONSES},
    {"/responses", "POST", R_RESPONSES},
};

/* Finds the route; *wrong_method is set when the path exists. */
static route_id find_route(const char *url, const char *method, int *wrong_method) {
    *wrong_method = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(url, routes[i].path)) continue;
        if (!strcmp(method, routes[i].method)) return routes[i].id;
        *wrong_method = 1;
    }
    return R_NONE;
}

static void dispatch(sp_server *s, struct MHD_Connection *c, const char *url, const char *method,
                     conn *cn, reply *r) {
    api_error err = {0};
    if (webui_route(s, c, url, method, r)) return; /* before auth: the page asks for the key */
    int wrong_method;
    route_id id = find_route(url, method, &wrong_method);
    if (id == R_NONE) {
        if (wrong_method)
            api_fail(&err, 405, NULL, "%s is not allowed on %s", method, url);
        else
            api_fail(&err, 404, NULL, "no route %s %s", method, url);
        reply_error(r, &err);
        return;
    }
    if (id != R_HEALTH && !authorized(s, c)) {
        api_fail(&err, 401, NULL,
                 "missing or invalid API key (Authorization: Bearer ... or x-api-key: ...)");
        err.code = "invalid_api_key";
        reply_error(r, &err);
        return;
    }
    json_t *body = NULL;
    if (!strcmp(method, "POST") && !(body = parse_body(cn, &err))) {
        reply_error(r, &err);
        return;
    }
    switch (id) {
    case R_CHAT:
        route_chat_or_completion(s, body, 1, r, cn->id);
        break;
    case R_COMPLETIONS:
        route_chat_or_completion(s, body, 0, r, cn->id);
        break;
    case R_MODELS:
        route_models(s, r);
        break;
    case R_HEALTH:
        route_health(s, r);
        break;
    case R_METRICS:
        route_metrics(s, r);
        break;
    case R_TOKENIZE:
        route_tokenize(s, body, r);
        break;
    case R_DETOKENIZE:
        route_detokenize(s, body, r);
        break;
    case R_EMBEDDINGS:
        route_embeddings(s, body, r);
        break;
    case R_MESSAGES:
        route_messages(s, body, r, cn->id);
        break;
    case R_COUNT_TOKENS:
        route_count_tokens(s, body, r);
        break;
    case R_RESPONSES:
        route_responses(s, body, r, cn->id);
        break;
    default:
        break;
    }
    json_decref(body);
}

static void count_status(sp_server *s, int status) {
    int k = status / 100;
    atomic_fetch_add(&s->http_status[k >= 1 && k <= 5 ? k : 0], 1);
}

static void log_request(const conn *cn, const char *method, const char *url, const reply *r) {
    if (r->streaming || !strcmp(url, "/health") || !strcmp(url, "/metrics")) return;
    SP_INFO("req %llu %s %s -> %d prompt=%d completion=%d cached=%d ttft=%.1fms "
            "total=%.1fms",
            (unsigned long long)cn->id, method, url, r->status, r->prompt_tokens,
            r->completion_tokens, r->cached_tokens, r->ttft_ms, sp_now_ms() - cn->t0);
}

/* Answers 413 while the body is still on its way: libmicrohttpd then closes
 * the connection instead of receiving (and us discarding) the rest, so a
 * 100 MB upload costs neither memory nor the time to read it. */
static enum MHD_Result reject_too_big(sp_server *s, struct MHD_Connection *c, conn *cn,
                                      const char *method, const char *url) {
    api_error err;
    api_fail(&err, 413, NULL, "the request body is larger than %zu bytes (--max-body)",
             s->opts.max_body);
    reply r = {.conn = c, .style = url_style(url)};
    reply_error(&r, &err);
    add_cors(s, r.resp);
    enum MHD_Result ret = MHD_queue_response(c, 413, r.resp);
    MHD_destroy_response(r.resp);
    if (ret == MHD_YES) {
        cn->answered = 1;
        count_status(s, 413);
        log_request(cn, method, url, &r);
    }
    return ret;
}

/* Writes all of buf to a (possibly non-blocking) socket within ~1 s. */
static int send_all(int fd, const char *buf, size_t n) {
    for (int tries = 0; n > 0 && tries < 100; tries++) {
        ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);
        if (k > 0) {
            buf += k, n -= (size_t)k;
            continue;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 10) < 0) return -1;
    }
    return n == 0 ? 0 : -1;
}

/* A body without Content-Length (chunked) went past max_body mid-upload.
 * libmicrohttpd 0.9.75 queues a response only before the body or after all
 * of it, so reading on would take the whole upload (100 MB, or forever).
 * Instead the 413 goes straight to the socket: this thread owns the
 * connection and nothing has been written on it since the headers (at most
 * "100 Continue"). Then FIN; once the peer has the answer (the send queue is
 * empty, at most 0.5 s), the caller returns MHD_NO and libmicrohttpd closes
 * the connection without reading the rest. Closing with unread data sends a
 * reset, which would drop an answer still queued: hence the wait. */
static void answer_413_now(sp_server *s, struct MHD_Connection *c, conn *cn, const char *method,
                           const char *url) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    api_error err;
    api_fail(&err, 413, NULL, "the request body is larger than %zu bytes (--max-body)",
             s->opts.max_body);
    json_t *j = error_json(&err, url_style(url));
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char cors[512] = "", head[1024];
    if (s->cors_origin)
        snprintf(cors, sizeof cors,
                 "Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Headers: "
                 "Authorization, Content-Type, x-api-key, "
                 "anthropic-version\r\nAccess-Control-Allow-Methods: GET, POST, "
                 "OPTIONS\r\n",
                 s->cors_origin);
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
                      body ? strlen(body) : 0, cors);
    if (ci && body && hl > 0 && (size_t)hl < sizeof head &&
        !send_all(ci->connect_fd, head, (size_t)hl) &&
        !send_all(ci->connect_fd, body, strlen(body))) {
        shutdown(ci->connect_fd, SHUT_WR);
        for (int i = 0; i < 50; i++) { /* until the answer is acknowledged */
            int queued = 0;
            if (ioctl(ci->connect_fd, SIOCOUTQ, &queued) || queued == 0) break;
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    free(body);
    reply r = {.conn = c, .status = 413};
    count_status(s, 413);
    log_request(cn, method, url, &r);
}

/* Appends a piece of the body. Past max_body: MHD_NO after answering 413
 * when the size was not announced (see answer_413_now). */
static enum MHD_Result take_upload(sp_server *s, struct MHD_Connection *c, conn *cn,
                                   const char *method, const char *url, const char *data,
                                   size_t n) {
    if (!cn->too_big && cn->len + n > s->opts.max_body) {
        cn->too_big = 1;
        free(cn->body); /* never used now */
        cn->body = NULL;
        cn->len = cn->cap = 0;
        answer_413_now(s, c, cn, method, url);
        return MHD_NO;
    }
    if (cn->too_big) return MHD_YES;
    if (cn->len + n + 1 > cn->cap) {
        size_t cap = (cn->len + n + 1) * 2;
        if (cap > s->opts.max_body + 1) cap = s->opts.max_body + 1;
        char *p = realloc(cn->body, cap);
        if (!p) return MHD_NO;
        cn->body = p;
        cn->cap = cap;
    }
    memcpy(cn->body + cn->len, data, n);
    cn->len += n;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls) {
    sp_server *s = cls;
    conn *cn = *con_cls;
    if (!cn) { /* the headers are in */
        cn = calloc(1, sizeof *cn);
        if (!cn) return MHD_NO;
        cn->t0 = sp_now_ms();
        cn->id = atomic_fetch_add(&s->next_id, 1);
        *con_cls = cn;
        atomic_fetch_add(&s->open_requests, 1);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->opts.max_body) {
            cn->too_big = 1;
            return reject_too_big(s, c, cn, method, url);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cn->answered) return MHD_YES; /* the rest of a rejected body */
        /* a chunked body has no Content-Length: it is caught here */
        return take_upload(s, c, cn, method, url, upload_data, n);
    }
    if (cn->answered) return MHD_YES;
    conn_guard_mark(s->guard, c, 1);
    reply r = {.conn = c, .style = url_style(url)};
    if (cn->too_big) {
        api_error err;
        api_fail(&err, 413, NULL, "the request body is larger than %zu bytes (--max-body)",
                 s->opts.max_body);
        reply_error(&r, &err);
    } else if (!strcmp(method, "OPTIONS")) {
        reply_text(&r, 204, "text/plain", "");
    } else {
        dispatch(s, c, url, method, cn, &r);
    }
    if (!r.resp) {
        api_error err;
        api_fail(&err, 500, NULL, "no response was produced (bug)");
        reply_error(&r, &err);
    }
    add_cors(s, r.resp);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r.status, r.resp);
    MHD_destroy_response(r.resp);
    count_status(s, r.status);
    log_request(cn, method, url, &r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    sp_server *s = cls;
    conn_guard_mark(s->guard, c, 0); /* a kept-alive connection waits for the next one */
    conn *cn = *con_cls;
    if (!cn) return;
    free(cn->body);
    free(cn);
    *con_cls = NULL;
    atomic_fetch_sub(&s->open_requests, 1);
}

/* libmicrohttpd's messages, as log lines. "Application reported internal
 * error" follows every early 413 of a chunked body (answer_413_now returns
 * MHD_NO on purpose, and that request is logged already): debug level. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    if (!strncmp(msg, "Application reported internal error", 35))
        SP_DEBUG("libmicrohttpd: %s", msg);
    else
        SP_WARN("libmicrohttpd: %s", msg);
}

static sp_status bind_addr(const char *host, int port, struct sockaddr_in *sa, sp_error *err) {
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    const char *h = !strcmp(host, "localhost") ? "127.0.0.1" : host;
    if (inet_pton(AF_INET, h, &sa->sin_addr) != 1)
        return sp_fail(err, SP_EINVAL, "--host %s: not an IPv4 address", host);
    return SP_OK;
}

sp_status sp_server_start(sp_server **out, const sp_server_opts *opts, sp_engine *engine,
                          sp_error *err) {
    struct sockaddr_in sa;
    SP_TRY(bind_addr(opts->host ? opts->host : "127.0.0.1", opts->port, &sa, err));
    sp_server *s = calloc(1, sizeof *s);
    if (!s) return sp_fail(err, SP_ENOMEM, "server: out of memory");
    s->opts = *opts;
    s->engine = engine;
    s->host = strdup(opts->host ? opts->host : "127.0.0.1");
    s->api_key = opts->api_key && *opts->api_key ? strdup(opts->api_key) : NULL;
    s->cors_origin = opts->cors_origin ? strdup(opts->cors_origin) : NULL;
    s->model_id = strdup(opts->model_id ? opts->model_id : "model");
    s->created = (long)time(NULL);
    atomic_init(&s->next_id, 1);
    if (s->opts.max_body == 0) s->opts.max_body = 8u << 20;
    if (s->opts.read_timeout_s <= 0) s->opts.read_timeout_s = 10;
    if (s->opts.idle_timeout_s <= 0) s->opts.idle_timeout_s = 600;
    if (opts->media.local_dir)
        s->opts.media.local_dir = s->media_dir = strdup(opts->media.local_dir);
    if (s->opts.media.max_images <= 0) s->opts.media.max_images = 32;
    image_fetch_init(); /* before any handler thread can fetch */
    s->guard = conn_guard_start(s->opts.read_timeout_s);
    if (!s->guard) {
        sp_server_stop(s);
        return sp_fail(err, SP_ENOMEM, "server: cannot start the connection guard");
    }
    /* thread per connection: a handler may block on its request's events.
     * libmicrohttpd's timeout closes a connection silent for idle_timeout_s;
     * it counts the time a stream's reader blocks waiting for its first
     * token too (a stream queued longer than that is cut), so it stays long
     * and the guard handles slow clients (docs/errors.md) */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    s->daemon =
        MHD_start_daemon(flags, (uint16_t)opts->port, NULL, NULL, on_request, s,
                         /* first, so libmicrohttpd's own messages go to our log from the start */
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                         MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)(opts->max_connections > 0 ? opts->max_connections : 128),
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->opts.idle_timeout_s,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
                         conn_guard_notify, s->guard, MHD_OPTION_END);
    if (!s->daemon) {
        sp_fail(err, SP_EIO, "cannot listen on %s:%d (in use, or not allowed)", s->host,
                opts->port);
        sp_server_stop(s);
        return err ? err->status : SP_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : opts->port;
    *out = s;
    return SP_OK;
}

int sp_server_port(const sp_server *s) {
    return s->port;
}

void sp_server_quiesce(sp_server *s) {
    if (s && s->daemon) {
        MHD_socket fd = MHD_quiesce_daemon(s->daemon);
        if (fd != MHD_INVALID_SOCKET) close(fd);
    }
}

void sp_server_stop(sp_server *s) {
    if (!s) return;
    /* Answers of requests the engine has just finished or cancelled may still
     * be on their way out; stopping the daemon now would reset those
     * connections. Wait for them (bounded: a client that stopped reading
     * must not hold the exit). */
    for (int i = 0; i < 300 && atomic_load(&s->open_requests) > 0; i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (s->daemon) MHD_stop_daemon(s->daemon); /* closes (and unlists) every connection */
    conn_guard_stop(s->guard);
    free(s->host);
    free(s->api_key);
    free(s->cors_origin);
    free(s->model_id);
    free(s->media_dir);
    free(s);
}
