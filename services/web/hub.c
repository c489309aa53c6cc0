/* Fan-out of stream events: see web.h. One lock for the hub and every client's queue; each
 * stream's thread waits on the hub's condition variable for its next event. */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "web.h"

struct hub_client {
    hub_client_t *next;
    hub_t *hub;
    char **q; /* ring of hub->max events */
    size_t head, n;
    bool behind;
    char *cur; /* text being sent (owned), and how much of it went out */
    size_t cur_len, cur_off;
};

struct hub {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    hub_client_t *clients;
    size_t n_clients, max;
    int keepalive_ms;
    bool stopping;
};

hub_t *hub_new(size_t max_queue, int keepalive_ms)
{
    hub_t *h = calloc(1, sizeof *h);
    if (!h) abort();
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &a);
    pthread_condattr_destroy(&a);
    h->max = max_queue ? max_queue : 1;
    h->keepalive_ms = keepalive_ms;
    return h;
}

void hub_publish(hub_t *h, const char *event, const char *data)
{
    char *text;
    if (asprintf(&text, "event: %s\ndata: %s\n\n", event, data) < 0) abort();
    pthread_mutex_lock(&h->lock);
    for (hub_client_t *c = h->clients; c; c = c->next) {
        if (c->behind) continue;
        if (c->n == h->max) {
            /* a client that reads slower than events arrive would otherwise grow without
             * bound; it is cut and reconnects (getting the snapshot again) */
            c->behind = true;
            sb_warn("dropping a stream client that fell %zu events behind", c->n);
            continue;
        }
        c->q[(c->head + c->n++) % h->max] = strdup(text);
        if (!c->q[(c->head + c->n - 1) % h->max]) abort();
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    free(text);
}

void hub_stop(hub_t *h)
{
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

void hub_free(hub_t *h)
{
    if (!h) return;
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

size_t hub_clients(hub_t *h)
{
    pthread_mutex_lock(&h->lock);
    size_t n = h->n_clients;
    pthread_mutex_unlock(&h->lock);
    return n;
}

hub_client_t *hub_join(hub_t *h)
{
    hub_client_t *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->hub = h;
    c->q = calloc(h->max, sizeof *c->q);
    if (!c->q) abort();
    pthread_mutex_lock(&h->lock);
    c->next = h->clients;
    h->clients = c;
    h->n_clients++;
    pthread_mutex_unlock(&h->lock);
    return c;
}

void hub_client_first(hub_client_t *c, char *text)
{
    free(c->cur);
    c->cur = text;
    c->cur_len = text ? strlen(text) : 0;
    c->cur_off = 0;
}

ssize_t hub_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    hub_client_t *c = cls;
    hub_t *h = c->hub;
    if (c->cur && c->cur_off == c->cur_len) hub_client_first(c, NULL);
    if (!c->cur) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += h->keepalive_ms / 1000;
        deadline.tv_nsec += (long)(h->keepalive_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
        char *next = NULL;
        bool end = false, behind = false;
        pthread_mutex_lock(&h->lock);
        while (!next && !end) {
            if (h->stopping) {
                end = true;
            } else if (c->behind) {
                end = behind = true;
            } else if (c->n) {
                next = c->q[c->head];
                c->q[c->head] = NULL;
                c->head = (c->head + 1) % h->max;
                c->n--;
            } else if (pthread_cond_timedwait(&h->cond, &h->lock, &deadline) == ETIMEDOUT) {
                next = strdup(": keep-alive\n\n");
                if (!next) abort();
            }
        }
        pthread_mutex_unlock(&h->lock);
        if (end)
            return behind ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
        hub_client_first(c, next);
    }
    size_t n = c->cur_len - c->cur_off;
    if (n > max) n = max;
    memcpy(buf, c->cur + c->cur_off, n);
    c->cur_off += n;
    return (ssize_t)n;
}

void hub_leave(void *cls)
{
    hub_client_t *c = cls;
    hub_t *h = c->hub;
    pthread_mutex_lock(&h->lock);
    for (hub_client_t **p = &h->clients; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            h->n_clients--;
            break;
        }
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < c->n; i++)
        free(c->q[(c->head + i) % h->max]);
    free(c->q);
    free(c->cur);
    free(c);
}
