/* The chat page at / (webui/ in the source tree). CMake bundles it at build
 * time into webui_assets.h (byte arrays, webui/build.mjs) and puts that
 * header's folder on this file's include path; a build without Node.js (or
 * with -DSP_WEBUI=OFF) has no such header and serves no page. The files are
 * answered from memory before the API key check: the page has no secrets
 * and asks for the key itself. */
#include <string.h>

#include "server/server_impl.h"

typedef struct webui_asset {
    const char *url;
    const char *type;
    const unsigned char *data;
    size_t size;
    const char *etag;
} webui_asset;

#if defined(__has_include)
#if __has_include("webui_assets.h")
#include "webui_assets.h"
#define SP_HAVE_WEBUI 1
#endif
#endif

#ifndef SP_HAVE_WEBUI
#define SP_HAVE_WEBUI 0
static const webui_asset webui_assets[1] = {{0}};
#endif

/* Model output is shown on this page: even if something slipped past the
 * sanitizer, no script but the page's own runs and nothing loads from
 * elsewhere (table cells carry markdown-it's text-align style attribute). */
static const char *const CSP = "default-src 'none'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

int sp_server_has_webui(void) {
    return SP_HAVE_WEBUI;
}

static const webui_asset *find_asset(const char *url) {
    if (!SP_HAVE_WEBUI) return NULL;
    if (!strcmp(url, "/index.html")) url = "/";
    for (size_t i = 0; i < sizeof webui_assets / sizeof webui_assets[0]; i++)
        if (webui_assets[i].url && !strcmp(url, webui_assets[i].url)) return &webui_assets[i];
    return NULL;
}

int webui_route(sp_server *s, struct MHD_Connection *c, const char *url, const char *method,
                reply *r) {
    if (s->opts.no_webui || (strcmp(method, "GET") && strcmp(method, "HEAD"))) return 0;
    const webui_asset *a = find_asset(url);
    if (!a) return 0;
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    int fresh = inm && !strcmp(inm, a->etag);
    r->status = fresh ? 304 : 200;
    /* the arrays are static: libmicrohttpd sends them without a copy */
    r->resp = MHD_create_response_from_buffer(fresh ? 0 : a->size, (void *)a->data,
                                              MHD_RESPMEM_PERSISTENT);
    if (!r->resp) return 0;
    MHD_add_response_header(r->resp, "Content-Type", a->type);
    MHD_add_response_header(r->resp, "ETag", a->etag);
    MHD_add_response_header(r->resp, "Cache-Control",
                            "no-cache"); /* revalidate: new build, new page */
    MHD_add_response_header(r->resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r->resp, "Referrer-Policy", "no-referrer");
    if (!strcmp(a->url, "/")) MHD_add_response_header(r->resp, "Content-Security-Policy", CSP);
    return 1;
}
