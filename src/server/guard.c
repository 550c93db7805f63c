/* The connection guard: a request's headers and body must arrive within
 * read_timeout of the connection opening (or of the previous response on a
 * kept-alive connection). libmicrohttpd's own timeout only measures
 * inactivity, so a client dripping one header byte at a time (slowloris)
 * would hold a connection thread forever; the guard's thread shuts such a
 * socket down, which wakes the connection's thread and frees it.
 *
 * Entries are linked in on MHD_CONNECTION_NOTIFY_STARTED and out on
 * NOTIFY_CLOSED, which libmicrohttpd sends before it closes the socket: under
 * the guard's lock a listed fd is never a reused one. */
#include <stdlib.h>
#include <sys/socket.h>

#include "base/log.h"
#include "server/server_impl.h"

typedef struct guard_entry {
    struct guard_entry *prev, *next;
    int fd;
    double t0;    /* when the current request started to arrive */
    int received; /* the whole request is in: no deadline */
    int shut;     /* we shut the socket down */
} guard_entry;

struct conn_guard {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int stopping;
    double timeout_ms;
    guard_entry *head;
    atomic_uint_fast64_t closed; /* connections shut down for being too slow */
};

static void shut_late(conn_guard *g, double now) {
    for (guard_entry *e = g->head; e; e = e->next) {
        if (e->received || e->shut || now - e->t0 < g->timeout_ms) continue;
        shutdown(e->fd, SHUT_RDWR);
        e->shut = 1;
        atomic_fetch_add(&g->closed, 1);
        SP_WARN("closing a connection: its request did not arrive within %.0f s",
                g->timeout_ms / 1e3);
    }
}

static void *guard_main(void *arg) {
    conn_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L; /* deadlines are checked 4 times a second */
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        shut_late(g, sp_now_ms());
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

conn_guard *conn_guard_start(int timeout_s) {
    conn_guard *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->timeout_ms = timeout_s * 1e3;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    if (pthread_create(&g->thread, NULL, guard_main, g) != 0) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g);
        return NULL;
    }
    return g;
}

void conn_guard_stop(conn_guard *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->stopping = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    while (g->head) { /* only if the daemon was stopped without notifying */
        guard_entry *e = g->head;
        g->head = e->next;
        free(e);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

uint64_t conn_guard_closed(conn_guard *g) {
    return g ? atomic_load(&g->closed) : 0;
}

void conn_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode code) {
    conn_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        guard_entry *e = ci ? calloc(1, sizeof *e) : NULL;
        *socket_context = e;
        if (!e) return; /* unguarded: only libmicrohttpd's idle timeout applies */
        e->fd = ci->connect_fd;
        e->t0 = sp_now_ms();
        pthread_mutex_lock(&g->mu);
        e->next = g->head;
        if (g->head) g->head->prev = e;
        g->head = e;
        pthread_mutex_unlock(&g->mu);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        guard_entry *e = *socket_context;
        *socket_context = NULL;
        if (!e) return;
        pthread_mutex_lock(&g->mu);
        if (e->prev)
            e->prev->next = e->next;
        else
            g->head = e->next;
        if (e->next) e->next->prev = e->prev;
        pthread_mutex_unlock(&g->mu);
        free(e);
    }
}

/* received: 1 once the request is all in; 0 when the connection waits for
 * its next request (the deadline starts again). */
void conn_guard_mark(conn_guard *g, struct MHD_Connection *c, int received) {
    const union MHD_ConnectionInfo *ci =
        g ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
    guard_entry *e = ci ? ci->socket_context : NULL;
    if (!e) return;
    pthread_mutex_lock(&g->mu);
    e->received = received;
    if (!received) e->t0 = sp_now_ms();
    pthread_mutex_unlock(&g->mu);
}
