/* test_alloc: every allocation of a client and its sessions goes through the app's allocator and
 * is given back; opening fails cleanly (with a message) at every allocation that can fail; a
 * streaming session survives allocation failures on the network thread; and a connection that
 * finds no memory for its copy of the credential is a failed attempt, retried, not the end. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "steno/steno.h"

typedef struct counting {
    atomic_long live;       /* allocations not freed yet */
    atomic_long total;      /* allocations made */
    atomic_long fail_at;    /* the allocation number that fails first (-1: never) */
    atomic_long fail_every; /* after fail_at, fail every n-th (0: only fail_at) */
    /* Of the allocations of exactly size_at bytes (0: none), let the first size_skip through
     * and fail the next size_left; size_failed counts those. */
    size_t size_at;
    atomic_int size_skip, size_left, size_failed;
} counting;

static void *c_alloc(void *o, size_t n)
{
    counting *c = o;
    long k = atomic_fetch_add(&c->total, 1);
    long at = atomic_load(&c->fail_at);
    long every = atomic_load(&c->fail_every);
    if (at >= 0 && (k == at || (every && k > at && (k - at) % every == 0)))
        return NULL;
    if (c->size_at && n == c->size_at && atomic_fetch_sub(&c->size_skip, 1) <= 0 &&
        atomic_load(&c->size_left) > 0) {
        atomic_fetch_sub(&c->size_left, 1);
        atomic_fetch_add(&c->size_failed, 1);
        return NULL;
    }
    void *p = malloc(n);
    if (p)
        atomic_fetch_add(&c->live, 1);
    return p;
}

static void c_free(void *o, void *p)
{
    counting *c = o;
    if (p) {
        atomic_fetch_sub(&c->live, 1);
        free(p);
    }
}

static void open_fails_cleanly_at_every_allocation(const char *url)
{
    int opened = 0;
    for (long n = 0; n < 500 && !opened; n++) {
        counting cnt = {0};
        atomic_store(&cnt.fail_at, n);
        steno_client_config cc;
        steno_client_config_init(&cc);
        cc.allocator = (steno_allocator){c_alloc, c_free, &cnt};
        char err[512] = "";
        steno_client *c = NULL;
        steno_status rc = steno_client_open(&cc, &c, err, sizeof err);
        if (rc != STENO_OK) {
            H_CHECK(c == NULL && err[0],
                    "client_open failed (%s) without a message or left a client",
                    steno_status_name(rc));
            H_CHECK(atomic_load(&cnt.live) == 0, "client_open failure at %ld leaked %ld", n,
                    atomic_load(&cnt.live));
            continue;
        }
        steno_session_config sc;
        steno_session_config_init(&sc);
        sc.url = url;
        sc.allow_no_auth = 1;
        steno_option o[] = {{"model", "nova-3"}, {"keyterm", "steno"}};
        sc.options = o;
        sc.n_options = 2;
        steno_session *s = NULL;
        rc = steno_session_open(c, &sc, &s, err, sizeof err);
        if (rc != STENO_OK) {
            H_CHECK(s == NULL && err[0], "session_open failed (%s) without a message",
                    steno_status_name(rc));
        } else {
            opened = 1;
            steno_session_destroy(s);
        }
        steno_client_destroy(c);
        H_CHECK(atomic_load(&cnt.live) == 0, "failure at allocation %ld leaked %ld blocks", n,
                atomic_load(&cnt.live));
    }
    H_CHECK(opened, "never opened within 500 allocations");
}

static int finals, terminal;
static void on_event(void *u, const steno_event *ev)
{
    counting *cnt = u;
    if (ev->type == STENO_EVENT_CONNECTED) {
        /* From now on every 3rd allocation fails: event copies, message buffers, words... */
        atomic_store(&cnt->fail_every, 3);
        atomic_store(&cnt->fail_at, atomic_load(&cnt->total));
    }
    if (ev->type == STENO_EVENT_TRANSCRIPT && ev->u.transcript.is_final)
        finals++;
    if (ev->type == STENO_EVENT_CLOSED || ev->type == STENO_EVENT_FAILED)
        terminal++;
}

/* A client whose every allocation goes through cnt. */
static steno_client *open_counting_client(counting *cnt)
{
    steno_client_config cc;
    steno_client_config_init(&cc);
    cc.allocator = (steno_allocator){c_alloc, c_free, cnt};
    char err[512];
    steno_client *c;
    H_CHECK(steno_client_open(&cc, &c, err, sizeof err) == STENO_OK, "%s", err);
    return c;
}

/* n chunks of 100 ms of the harness's signal at 16 kHz. */
static void write_chunks(steno_session *s, uint64_t n)
{
    int16_t pcm[1600];
    for (uint64_t chunk = 0; chunk < n; chunk++) {
        for (int i = 0; i < 1600; i++)
            pcm[i] = h_sample(chunk * 1600 + (uint64_t)i);
        steno_session_write(s, pcm, 1600);
    }
}

static void streaming_survives_allocation_failures(const char *url)
{
    counting cnt = {0};
    atomic_store(&cnt.fail_at, -1);
    steno_client *c = open_counting_client(&cnt);
    char err[512];
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = url;
    sc.allow_no_auth = 1;
    sc.on_event = on_event;
    sc.user = &cnt;
    sc.event_queue = 1; /* both paths allocate on the network thread */
    steno_option o[] = {{"interim_results", "true"}};
    sc.options = o;
    sc.n_options = 1;
    steno_session *s;
    H_CHECK(steno_session_open(c, &sc, &s, err, sizeof err) == STENO_OK, "%s", err);
    write_chunks(s, 30);
    steno_status rc = steno_session_close(s, 10000);
    atomic_store(&cnt.fail_at, -1);
    H_CHECK(terminal == 1, "exactly one terminal event, got %d (close: %s)", terminal,
            steno_status_name(rc));
    steno_session_stats st;
    steno_session_stats_get(s, &st);
    printf("under allocation failures: close %s, %d finals delivered, %" PRIu64 " acked\n",
           steno_status_name(rc), finals, st.samples_acked);
    steno_event ev;
    while (steno_session_next_event(s, &ev, 0) == STENO_OK)
        ;
    steno_session_destroy(s);
    steno_client_destroy(c);
    H_CHECK(atomic_load(&cnt.live) == 0, "leaked %ld blocks", atomic_load(&cnt.live));
}

static atomic_int cred_connected, cred_failed;
static void on_cred_event(void *u, const steno_event *ev)
{
    (void)u;
    if (ev->type == STENO_EVENT_CONNECTED)
        atomic_fetch_add(&cred_connected, 1);
    if (ev->type == STENO_EVENT_FAILED)
        atomic_fetch_add(&cred_failed, 1);
}

static void no_memory_for_the_credential_is_retried(const char *url)
{
    /* 232 characters: a size (the key's length + 1) no other allocation of a session has. The
     * first is the session's own copy of the key, at open; the next two are connections' copies. */
    char key[233];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    counting f = {.size_at = sizeof key};
    atomic_store(&f.fail_at, -1);
    atomic_store(&f.size_skip, 1);
    atomic_store(&f.size_left, 2);
    steno_client *c = open_counting_client(&f);
    char err[512];
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = url;
    sc.api_key = key;
    sc.on_event = on_cred_event;
    steno_session *s;
    H_CHECK(steno_session_open(c, &sc, &s, err, sizeof err) == STENO_OK, "%s", err);
    write_chunks(s, 10);
    steno_status rc = steno_session_close(s, 10000);
    steno_session_stats st;
    steno_session_stats_get(s, &st);
    printf("credential copy failed %d times: %u attempts, connected %d, failed %d, close %s\n",
           atomic_load(&f.size_failed), st.attempts, atomic_load(&cred_connected),
           atomic_load(&cred_failed), steno_status_name(rc));
    H_CHECK(atomic_load(&f.size_failed) == 2, "the credential's copy was refused %d times, not 2",
            atomic_load(&f.size_failed));
    H_CHECK(atomic_load(&cred_failed) == 0 && atomic_load(&cred_connected) == 1,
            "no memory for the credential must be a failed attempt: connected %d, failed %d",
            atomic_load(&cred_connected), atomic_load(&cred_failed));
    H_CHECK(st.attempts == 3, "2 attempts without a credential and 1 that connected, got %u",
            st.attempts);
    H_CHECK(rc == STENO_OK, "close: %s", steno_status_name(rc));
    steno_session_destroy(s);
    steno_client_destroy(c);
    H_CHECK(atomic_load(&f.live) == 0, "leaked %ld blocks", atomic_load(&f.live));
}

int main(void)
{
    h_server srv;
    h_server_start(&srv, NULL);
    open_fails_cleanly_at_every_allocation(srv.url);
    streaming_survives_allocation_failures(srv.url);
    no_memory_for_the_credential_is_retried(srv.url);
    h_server_stop(&srv);
    printf("ok\n");
    return 0;
}
