/* test_event_loop: the network thread's event loop (libev, libuv or poll() by -Devent_loop)
 * leaves the application's signal handlers as they were, through open, streaming and destroy;
 * and a client destroyed while many of its connections stream returns, and the server sees every
 * one of them end. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "steno/steno.h"

#define RATE 16000u
#define SESSIONS 200
#define BLOCK 320u /* 20 ms */

/* The signals an event library could take over for itself (libuv's own loop takes all five). */
static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGSEGV, SIGFPE};
#define NSIGS (sizeof sigs / sizeof sigs[0])

static void app_handler(int sig)
{
    (void)sig;
}

static void check_handlers(const struct sigaction *want, const char *when)
{
    for (size_t i = 0; i < NSIGS; i++) {
        struct sigaction now;
        H_CHECK(sigaction(sigs[i], NULL, &now) == 0, "sigaction(%d)", sigs[i]);
        H_CHECK(now.sa_handler == want[i].sa_handler && now.sa_flags == want[i].sa_flags,
                "%s: the handler of signal %d (%s) was replaced", when, sigs[i],
                strsignal(sigs[i]));
    }
}

static steno_session *open_session(steno_client *c, const h_server *srv)
{
    char err[512];
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = srv->url;
    sc.allow_no_auth = 1;
    sc.sample_rate = RATE;
    steno_session *s;
    H_CHECK(steno_session_open(c, &sc, &s, err, sizeof err) == STENO_OK, "%s", err);
    return s;
}

/* Waits for the session's CONNECTED event (the loop ran a whole handshake). */
static void wait_connected(steno_session *s)
{
    uint64_t deadline = h_now_ms() + 20000u * h_slow();
    steno_event ev;
    for (;;) {
        uint64_t now = h_now_ms();
        H_CHECK(now < deadline, "no CONNECTED within 20 s");
        steno_status rc = steno_session_next_event(s, &ev, (uint32_t)(deadline - now));
        if (rc == STENO_OK && ev.type == STENO_EVENT_CONNECTED)
            return;
        H_CHECK(rc == STENO_OK || rc == STENO_ERR_TIMEOUT, "next_event: %s", steno_status_name(rc));
        H_CHECK(rc != STENO_OK || ev.type != STENO_EVENT_FAILED, "session FAILED");
    }
}

static void signal_handlers_survive(const h_server *srv)
{
    struct sigaction want[NSIGS];
    for (size_t i = 0; i < NSIGS; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = app_handler;
        sigemptyset(&sa.sa_mask);
        H_CHECK(sigaction(sigs[i], &sa, NULL) == 0, "sigaction(%d)", sigs[i]);
        H_CHECK(sigaction(sigs[i], NULL, &want[i]) == 0, "sigaction(%d)", sigs[i]);
    }
    char err[512];
    steno_client *c;
    H_CHECK(steno_client_open(NULL, &c, err, sizeof err) == STENO_OK, "%s", err);
    check_handlers(want, "after steno_client_open");
    steno_session *s = open_session(c, srv);
    static int16_t block[BLOCK];
    H_CHECK(steno_session_write(s, block, BLOCK) == STENO_OK, "write");
    wait_connected(s);
    check_handlers(want, "while streaming");
    H_CHECK(steno_session_close(s, 10000) == STENO_OK, "close: %s", steno_session_errmsg(s));
    steno_session_destroy(s);
    steno_client_destroy(c);
    check_handlers(want, "after steno_client_destroy");
    for (size_t i = 0; i < NSIGS; i++)
        signal(sigs[i], SIG_DFL);
    h_log("the application's handlers of %zu signals survived open, streaming and destroy", NSIGS);
}

static void destroy_mid_stream(const h_server *srv)
{
    char err[512];
    steno_client *c;
    H_CHECK(steno_client_open(NULL, &c, err, sizeof err) == STENO_OK, "%s", err);
    static steno_session *s[SESSIONS];
    static int16_t block[BLOCK];
    for (int i = 0; i < SESSIONS; i++) {
        s[i] = open_session(c, srv);
        H_CHECK(steno_session_write(s[i], block, BLOCK) == STENO_OK, "write %d", i);
    }
    for (int i = 0; i < SESSIONS; i++)
        wait_connected(s[i]);
    /* every connection is open and mid-stream: no close, no session destroy first */
    uint64_t t0 = h_now_ms();
    steno_client_destroy(c);
    uint64_t took = h_now_ms() - t0;
    H_CHECK(h_server_wait_idle(srv, 10000u * h_slow()),
            "connections still open at the server 10 s after steno_client_destroy");
    h_log("steno_client_destroy with %d connections streaming returned in %llu ms", SESSIONS,
          (unsigned long long)took);
}

int main(void)
{
    h_init("event_loop");
    h_server srv;
    h_server_start(&srv, NULL);
    signal_handlers_survive(&srv);
    destroy_mid_stream(&srv);
    return h_pass();
}
