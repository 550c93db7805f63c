/* spindle serve: starts the engine thread (which loads the model) and the
 * HTTP server, then waits for SIGINT/SIGTERM and shuts down gracefully:
 * stop accepting, let in-flight requests finish within --grace seconds,
 * cancel the rest, exit 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "chat/toolcall.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "server/server.h"

static void usage(FILE *f) {
    fprintf(
        f, "usage: spindle serve --model PATH [options]\n"
           "  --host ADDR           bind address (default 127.0.0.1)\n"
           "  --port N              port (default 8000; 0 picks a free one)\n"
           "  --alias NAME          model id served by /v1/models (default: file/dir name)\n"
           "  --api-key KEY         require 'Authorization: Bearer KEY' or 'x-api-key: KEY'\n"
           "                        (/health stays open)\n"
           "  --parallel N          max sequences decoded together (default 4)\n"
           "  --ctx-size N          max tokens per sequence (default: the model's, <= 8192)\n"
           "  --kv-memory BYTES     KV pool size, e.g. 512M (default: parallel x ctx-size)\n"
           "  --block-size N        tokens per KV block (default 16)\n"
           "  --prefill-chunk N     prompt tokens per engine step (default 256)\n"
           "  --queue N             max waiting requests before 503 (default 64)\n"
           "  --threads N           compute threads (default: all cores)\n"
           "  --threads-http N      max concurrent HTTP connections (default 128)\n"
           "  --precision f32|fast  activation precision (default fast)\n"
           "  --mmap                serve weights from the file mapping\n"
           "  --isa LEVEL           scalar|avx2|avx512|avx512bf16 kernels, at most the CPU's\n"
           "                        (default: SPINDLE_ISA, else the best the CPU has)\n"
           "  --device D            cpu, cuda, cuda:N or auto (default: the first usable CUDA\n"
           "                        device, else the CPU)\n"
           "  --load-format dummy   random weights sized from config.json\n"
           "  --kv-type T           GPU K/V cache: f16 (fast mode's default), bf16 or f32\n"
           "  --quantize q8_0|q4_k  re-quantize safetensors weights at load\n"
           "  --chat-template FILE  Jinja chat template overriding the model's\n"
           "  --tool-parser NAME    hermes|llama3|gemma4|json|none (default: from the template)\n"
           "  --embeddings          also serve /v1/embeddings from a generative model\n"
           "  --pooling MODE        last|mean|cls for --embeddings (default last; an\n"
           "                        embedding model's modules.json sets its own)\n"
           "  --max-body BYTES      request body limit (default 8M)\n"
           "  --read-timeout S      a request must arrive within S seconds (default 10)\n"
           "  --idle-timeout S      close connections silent for S seconds (default 600)\n"
           "  --cors [ORIGIN]       send CORS headers (default origin *)\n"
           "  --no-webui            no chat page at / (the API only)\n"
           "  --grace SECONDS       shutdown grace period (default 10)\n"
           "  --watchdog SECONDS    exit (status 4) when one engine step runs longer\n"
           "                        (default 120; 0: off)\n"
           "  --log-level debug|info|warn|error\n"
           "image input (models with a vision tower; docs/api.md):\n"
           "  --image-url-timeout S        fetching one http(s) image URL (default 10)\n"
           "  --max-image-bytes BYTES      encoded size of one image (default 20M)\n"
           "  --max-image-pixels N         decoded width x height of one image (default 40000000)\n"
           "  --max-images N               images in one request (default 32)\n"
           "  --no-remote-images           refuse http(s) image URLs (data: URLs still work)\n"
           "  --allowed-local-media-path DIR  accept file:// image URLs under DIR\n");
}

static int parse_size(const char *s, unsigned long long *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    double mul = 1;
    switch (*end) {
    case 'k':
    case 'K':
        mul = 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        mul = 1024.0 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mul = 1024.0 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b') end++;
    if (*end == 'B') end++;
    if (*end) return -1;
    *out = (unsigned long long)(v * mul);
    return 0;
}

static int parse_int(const char *flag, const char *s, int lo, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > 1 << 30) {
        fprintf(stderr, "spindle serve: %s expects an integer >= %d, got '%s'\n", flag, lo, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The served model id: the last path component of the model path. */
static char *model_id_from_path(const char *path) {
    char *copy = strdup(path);
    size_t n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/') copy[--n] = 0;
    const char *slash = strrchr(copy, '/');
    char *id = strdup(slash ? slash + 1 : copy);
    free(copy);
    return id;
}

typedef struct serve_args {
    sp_engine_opts eng;
    sp_server_opts srv;
    int grace_s;
} serve_args;

/* The image-input flags: 1 when f was one (consuming v: *i advanced),
 * -1 on a bad value, 0 when f is another flag. */
static int parse_media_flag(const char *f, const char *v, int *i, sp_media_opts *m) {
    int n;
    unsigned long long bytes;
    if (!strcmp(f, "--no-remote-images")) {
        m->remote = 0;
        return 1;
    }
    const char *with_value[] = {"--image-url-timeout", "--max-image-bytes", "--max-image-pixels",
                                "--max-images", "--allowed-local-media-path"};
    int k = 0;
    while (k < 5 && strcmp(f, with_value[k])) k++;
    if (k == 5) return 0;
    if (!v) {
        fprintf(stderr, "spindle serve: %s needs a value\n", f);
        return -1;
    }
    (*i)++;
    switch (k) {
    case 0:
        if (parse_int(f, v, 1, &m->timeout_s)) return -1;
        return 1;
    case 1:
        if (parse_size(v, &bytes) || bytes == 0) {
            fprintf(stderr, "spindle serve: %s expects a size like 20M, got '%s'\n", f, v);
            return -1;
        }
        m->max_bytes = (size_t)bytes;
        return 1;
    case 2:
        if (parse_int(f, v, 1, &n)) return -1;
        m->max_pixels = n;
        return 1;
    case 3:
        if (parse_int(f, v, 1, &m->max_images)) return -1;
        return 1;
    default:
        m->local_dir = v;
        return 1;
    }
}

static int parse_args(int argc, char **argv, serve_args *a) {
    sp_engine_opts_default(&a->eng);
    arg_model_opts_default(&a->eng.model);
    sp_server_opts_default(&a->srv);
    int model_opt;
    a->srv.model_id = NULL;
    a->grace_s = 10;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                               \
    do {                                                                                           \
        if (!v) {                                                                                  \
            fprintf(stderr, "spindle serve: %s needs a value\n", f);                               \
            return -1;                                                                             \
        }                                                                                          \
        i++;                                                                                       \
    } while (0)
        int media = parse_media_flag(f, v, &i, &a->srv.media);
        if (media < 0) return -1;
        if (media > 0) {
            continue;
        } else if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(f, "--model") || !strcmp(f, "-m")) {
            NEED_VALUE();
            a->eng.model_path = v;
        } else if (!strcmp(f, "--host")) {
            NEED_VALUE();
            a->srv.host = v;
        } else if (!strcmp(f, "--port")) {
            NEED_VALUE();
            if (parse_int(f, v, 0, &a->srv.port) || a->srv.port > 65535) return -1;
        } else if (!strcmp(f, "--alias")) {
            NEED_VALUE();
            a->srv.model_id = v;
        } else if (!strcmp(f, "--api-key")) {
            NEED_VALUE();
            a->srv.api_key = v;
        } else if (!strcmp(f, "--parallel")) {
            NEED_VALUE();
            if (parse_int(f, v, 1, &a->eng.parallel)) return -1;
        } else if (!strcmp(f, "--ctx-size")) {
            NEED_VALUE();
            if (parse_int(f, v, 2, &a->eng.ctx_size)) return -1;
        } else if (!strcmp(f, "--block-size")) {
            NEED_VALUE();
            if (parse_int(f, v, 1, &a->eng.block_size)) return -1;
        } else if (!strcmp(f, "--prefill-chunk")) {
            NEED_VALUE();
            if (parse_int(f, v, 1, &a->eng.prefill_chunk)) return -1;
        } else if (!strcmp(f, "--queue")) {
            NEED_VALUE();
            if (parse_int(f, v, 1, &a->eng.queue_size)) return -1;
        } else if (!strcmp(f, "--threads")) {
            NEED_VALUE();
            if (parse_int(f, v, 0, &a->eng.model.n_threads)) return -1;
        } else if (!strcmp(f, "--threads-http")) {
            NEED_VALUE();
            if (parse_int(f, v, 1, &a->srv.max_connections)) return -1;
        } else if (!strcmp(f, "--read-timeout")) {
            NEED_VALUE();
            if (parse_int(f, v, 1, &a->srv.read_timeout_s)) return -1;
        } else if (!strcmp(f, "--idle-timeout")) {
            NEED_VALUE();
            if (parse_int(f, v, 1, &a->srv.idle_timeout_s)) return -1;
        } else if (!strcmp(f, "--watchdog")) {
            NEED_VALUE();
            if (parse_int(f, v, 0, &a->eng.watchdog_s)) return -1;
        } else if (!strcmp(f, "--grace")) {
            NEED_VALUE();
            if (parse_int(f, v, 0, &a->grace_s)) return -1;
        } else if (!strcmp(f, "--kv-memory") || !strcmp(f, "--max-body")) {
            NEED_VALUE();
            unsigned long long n;
            if (parse_size(v, &n)) {
                fprintf(stderr, "spindle serve: %s expects a size like 512M, got '%s'\n", f, v);
                return -1;
            }
            if (!strcmp(f, "--kv-memory"))
                a->eng.kv_memory = n;
            else
                a->srv.max_body = (size_t)n;
        } else if (!strcmp(f, "--no-webui")) {
            a->srv.no_webui = 1;
        } else if (!strcmp(f, "--isa")) {
            NEED_VALUE();
            if (!arg_isa("serve", v)) return -1;
        } else if (!strcmp(f, "--chat-template")) {
            NEED_VALUE();
            a->eng.chat_template_file = v;
        } else if (!strcmp(f, "--tool-parser")) {
            NEED_VALUE();
            sp_tool_format tf;
            if (sp_tool_format_from_name(v, &tf)) {
                fprintf(stderr, "spindle serve: --tool-parser must be hermes, llama3, gemma4, "
                                "json or none\n");
                return -1;
            }
            a->srv.tool_parser = v;
        } else if (!strcmp(f, "--cors")) {
            a->srv.cors_origin = "*";
            if (v && strncmp(v, "--", 2)) {
                a->srv.cors_origin = v;
                i++;
            }
        } else if (!strcmp(f, "--embeddings")) {
            a->eng.embeddings = 1;
        } else if (!strcmp(f, "--pooling")) {
            NEED_VALUE();
            int m = sp_pool_mode_from_name(v);
            if (m != SP_POOL_MEAN && m != SP_POOL_LAST && m != SP_POOL_CLS) {
                fprintf(stderr, "spindle serve: --pooling must be mean, last or cls\n");
                return -1;
            }
            a->eng.pooling = (unsigned)m;
        } else if (!strcmp(f, "--log-level")) {
            NEED_VALUE();
            sp_log_set_level(!strcmp(v, "debug")   ? SP_LOG_DEBUG
                             : !strcmp(v, "warn")  ? SP_LOG_WARN
                             : !strcmp(v, "error") ? SP_LOG_ERROR
                                                   : SP_LOG_INFO);
        } else if ((model_opt = arg_model_opt("serve", argc, argv, &i, &a->eng.model)) != 0) {
            if (model_opt < 0) return -1;
        } else {
            fprintf(stderr, "spindle serve: unknown option '%s'\n", f);
            usage(stderr);
            return -1;
        }
#undef NEED_VALUE
    }
    if (!a->eng.model_path) {
        fprintf(stderr, "spindle serve: --model is required\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

/* Exit status when the watchdog finds the engine thread hung. */
#define EXIT_HUNG 4

/* Waits for SIGINT/SIGTERM, watching the engine: a failed load ends the
 * process with status 1, a dead engine thread with 3, a hung one with
 * EXIT_HUNG. Returns the exit status. */
static int wait_for_signal(sp_engine *e, const sigset_t *set) {
    int announced = 0;
    for (;;) {
        struct timespec ts = {0, 200 * 1000000L};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            SP_INFO("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
            return 0;
        }
        sp_error err = {0};
        sp_engine_state st = sp_engine_get_state(e, &err);
        if (st == SP_ENGINE_FAILED) {
            fprintf(stderr, "spindle serve: %s\n", err.msg);
            return 1;
        }
        if (st == SP_ENGINE_READY && !announced) {
            announced = 1;
            SP_INFO("model ready: serving requests");
        }
        if (st == SP_ENGINE_STOPPED) {
            /* nobody asked it to stop: the engine thread died. Answer 503
             * on /health for a second so health checks see it, then exit
             * non-zero so a supervisor restarts us instead of a hang. */
            SP_ERROR("the engine thread died (%s); /health answers 503; exiting in 1 s", err.msg);
            struct timespec linger = {1, 0};
            (void)sigtimedwait(set, NULL, &linger);
            return 3;
        }
        if (st == SP_ENGINE_HUNG) {
            SP_ERROR("%s; /health answers 503; exiting in 1 s", err.msg);
            struct timespec linger = {1, 0};
            (void)sigtimedwait(set, NULL, &linger);
            return EXIT_HUNG;
        }
    }
}

int cmd_serve(int argc, char **argv) {
    serve_args a;
    if (parse_args(argc, argv, &a)) return 2;
    char *id = a.srv.model_id ? strdup(a.srv.model_id) : model_id_from_path(a.eng.model_path);
    a.srv.model_id = id;

    /* every thread started from here on inherits the blocked set: only
     * sigtimedwait below receives the signals */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    sp_error err = {0};
    sp_engine *e = NULL;
    if (sp_engine_start(&e, &a.eng, &err) != SP_OK) {
        fprintf(stderr, "spindle serve: %s\n", err.msg);
        free(id);
        return 1;
    }
    sp_server *srv = NULL;
    if (sp_server_start(&srv, &a.srv, e, &err) != SP_OK) {
        fprintf(stderr, "spindle serve: %s\n", err.msg);
        sp_engine_free(e);
        free(id);
        return 1;
    }
    SP_INFO("listening on http://%s:%d (model id '%s')", a.srv.host, sp_server_port(srv), id);
    if (a.srv.no_webui)
        SP_INFO("chat page: off (--no-webui)");
    else if (sp_server_has_webui())
        SP_INFO("chat page: http://%s:%d/", a.srv.host, sp_server_port(srv));
    else
        SP_INFO("chat page: not built in (built without Node.js, or with -DSP_WEBUI=OFF); the "
                "API works");
    int rc = wait_for_signal(e, &set);
    sp_server_quiesce(srv);
    if (rc == EXIT_HUNG) {
        /* the engine thread cannot be joined, and handlers waiting on its
         * events would keep the daemon from stopping: leave without the
         * orderly shutdown (the exit status tells a supervisor to restart) */
        fflush(NULL);
        _exit(EXIT_HUNG);
    }
    sp_engine_stop(e, a.grace_s * 1000);
    sp_server_stop(srv);
    sp_engine_free(e);
    free(id);
    SP_INFO("stopped");
    return rc;
}
