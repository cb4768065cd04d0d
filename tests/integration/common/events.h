/* events: what a session reported — every event copied with its arrival time, and waits on them
 * (mutex + condvar, with deadlines). */
#ifndef STENO_TESTS_COMMON_EVENTS_H
#define STENO_TESTS_COMMON_EVENTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "steno/steno.h"

typedef struct h_ev {
    steno_event_type type;
    uint64_t seq;
    uint64_t t_ms; /* h_now_ms() at arrival */
    double wall;   /* h_wall_s() at arrival */
    /* TRANSCRIPT */
    int is_final, from_finalize, from_backfill;
    double start, end;
    uint64_t first_sample, end_sample;
    char *text;
    const char *provider; /* TRANSCRIPT, and FAILOVER's destination (static names) */
    uint32_t to_index;    /* FAILOVER */
    /* CONNECTING / RECONNECTING */
    uint32_t attempt, delay_ms;
    steno_status cause;
    int http_status, close_code;
    char *message;
    /* CONNECTED / RECONNECTED */
    uint32_t attempts, downtime_ms, replayed_chunks, backfill_chunks;
    char *request_id;
    /* AUDIO_DROPPED */
    uint64_t drop_first, drop_last, drop_samples;
    int producer_side;
    /* FAILED / CLOSED */
    steno_status status;
    uint64_t unfinalized;
} h_ev;

typedef struct h_collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    h_ev *ev;
    size_t n, cap;
    char name[32];
    int quiet;       /* 1: do not log state events (many sessions) */
    uint64_t acked;  /* max end_sample of finals so far */
    uint64_t finals; /* non-empty finals */
    int terminal;    /* CLOSED or FAILED seen */
    int order_error; /* seq not increasing by 1 */
    uint64_t last_seq;
} h_collector;

void h_collector_init(h_collector *c, const char *name);
void h_collector_free(h_collector *c);
/* The session's on_event callback; user = the collector. */
void h_on_event(void *user, const steno_event *ev);
/* The same, for providers that name a connection only in a message after the handshake
 * (AssemblyAI's Begin, reported as METADATA after CONNECTED/RECONNECTED): the newest
 * connection event without a request id takes the id of that METADATA, so the accounting can
 * match connections to the server's records. */
void h_on_event_meta_id(void *user, const steno_event *ev);

/* Waits (deadline in ms) until pred(c, arg) holds; pred runs with the lock held. */
bool h_wait(h_collector *c, bool (*pred)(h_collector *, void *), void *arg, uint32_t timeout_ms);
/* Waits until at least n events of type were collected; gives up early once the session
 * ended (CLOSED/FAILED) without them. */
bool h_wait_type(h_collector *c, steno_event_type type, size_t n, uint32_t timeout_ms);
/* Waits until finals acknowledged audio up to at least `frames` (or the session ended). */
bool h_wait_acked(h_collector *c, uint64_t frames, uint32_t timeout_ms);
size_t h_count(h_collector *c, steno_event_type type);
/* The finals' high-water mark, and whether the session ended (CLOSED/FAILED), read under the
 * lock. */
uint64_t h_acked(h_collector *c);
bool h_ended(h_collector *c);
/* Index of the first event of type at or after index from, or (size_t)-1 (lock held or after
 * the session ended). */
size_t h_find(const h_collector *c, steno_event_type type, size_t from);

#endif
