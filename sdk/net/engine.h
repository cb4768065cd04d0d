/* engine: the client and session internals shared by the network engine's files. */
#ifndef STENO_NET_ENGINE_H
#define STENO_NET_ENGINE_H

#include <libwebsockets.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backoff.h"
#include "breaker.h"
#include "budget.h"
#include "classify.h"
#include "evloop.h"
#include "metrics.h"
#include "pacing.h"
#include "planner.h"
#include "providers/options.h"
#include "providers/provider.h"
#include "providers/strbuf.h"
#include "ring.h"
#include "steno/client.h"
#include "steno/session.h"
#include "timeline.h"
#include "timerheap.h"
#include "wakeset.h"
#include "url.h"

/*
 * Threads and ownership
 * ---------------------
 * The network thread runs lws_service() and owns everything about
 * connections: session state machines, timers (lws_sul), endpoints with
 * their breakers, the budget, the connect queue. Other threads reach it in
 * exactly two ways:
 *   - lws_cancel_service() (through steno__client_wake, with an atomic
 *     "wake pending" flag so at most one wake is outstanding), and
 *   - per-session command bits (atomic) plus small data guarded by the
 *     session lock (pending options, the event queue).
 * Every wake drains everything that is ready, for every session, because
 * wakes coalesce.
 */

/*
 * Timers: every network-thread timer goes through these two calls. They live
 * in the client's timer heap (core/timerheap: O(log n) to set, move, cancel
 * and fire), with one lws timer armed for the earliest deadline, so the cost
 * of a timer does not grow with the number of sessions as lws's sorted list
 * does. A timer is embedded in its owner, which reserves heap room for all of
 * its timers first (steno__session_adopt); the callback finds the owner with
 * lws_container_of.
 */
typedef struct steno__timer steno__timer;
typedef void (*steno__timer_cb)(steno__timer *t);
struct steno__timer {
    steno__tnode node;
    steno__timer_cb cb;
};
/* Fires cb once, ms from now (0 = as soon as possible); re-arming replaces the deadline. */
void steno__timer_schedule(steno_client *c, steno__timer *t, steno__timer_cb cb, uint64_t ms);
void steno__timer_cancel(steno__timer *t);
/* Timers a session owns besides its backfill slots', and each backfill slot's. */
#define STENO__SESSION_TIMERS 9u
#define STENO__BACKFILL_TIMERS 4u

/* Commands from application threads, as bits in steno_session.cmds. */
enum {
    STENO__CMD_CONFIGURE = 1u << 0,
    STENO__CMD_FINALIZE = 1u << 1,
    STENO__CMD_CLOSE = 1u << 2,
    STENO__CMD_DESTROY = 1u << 3,
};

/* Where the current connection is. */
typedef enum steno__conn_state {
    STENO__CONN_NONE = 0,  /* no wsi */
    STENO__CONN_HANDSHAKE, /* lws_client_connect_via_info issued */
    STENO__CONN_OPEN,      /* established */
} steno__conn_state;

/*
 * What an lws connection's opaque user data points at: the session and which
 * of its connections (bf NULL: the live one). A session owns one live
 * connection and up to max_backfill_connections backfill connections (see
 * backfill.h); lws callbacks reach the right one through the link.
 */
typedef struct steno__bf steno__bf;

/*
 * Finalize messages awaiting their answer on one connection, oldest first, for a provider
 * whose answer is the next final (STENO__FIN_ANSWER_NEXT_FINAL): for each, the provider's
 * clock (frames sent on the connection) when it went out. Each answer takes the oldest; one
 * that finds the queue full is not queued, so its answer is read as an ordinary final and
 * claims nothing it does not name.
 */
#define STENO__FIN_QUEUE_MAX 8
typedef struct steno__fin_queue {
    uint64_t at[STENO__FIN_QUEUE_MAX];
    uint32_t n;
} steno__fin_queue;

/* A finalize_before_close flush: not asked, sent and awaiting its answer, answered. */
enum { STENO__CLOSE_FIN_NONE = 0, STENO__CLOSE_FIN_SENT, STENO__CLOSE_FIN_DONE };
/* Times the flush before the close is asked again when answered with words short of the end
 * (a natural end of turn already on its way is read as the answer): each ask is answered, so
 * this bounds only a server that never answers without words. */
#define STENO__CLOSE_FIN_ASKS_MAX 16u

/* Records a finalize message sent on a lane whose connection has sent `frames` so far. */
void steno__fin_queue_push(steno__fin_queue *q, uint64_t frames);
typedef struct steno__link {
    steno_session *s;
    steno__bf *bf;
} steno__link;

typedef struct steno__endpoint {
    struct steno__endpoint *next;
    char *key;
    steno__breaker breaker;
    steno__metric *m_state;
    uint32_t n_sessions; /* sessions on this endpoint */
    uint32_t n_failing;  /* distinct sessions failing since the last success (epoch) */
    uint64_t epoch;      /* bumped by every success */
    /* Sessions waiting for this breaker (waiting_breaker), so that a report kicks them without
     * a walk past every session: reports come with every connection's outcome, and a walk per
     * outcome made reconnecting N sessions cost N * N. */
    steno_session *waiters;
} steno__endpoint;

typedef struct steno__evnode steno__evnode;

typedef struct steno__client_metrics {
    steno__metric *attempts, *successes, *reconnects, *disconnects, *dead;
    steno__metric *fail[6]; /* by steno__verdict */
    steno__metric *reconnect_hist;
    steno__metric *buffered, *sent, *replayed, *drop_producer, *drop_evicted;
    steno__metric *frames_written, *frames_acked;
    steno__metric *bytes_sent, *bytes_received;
    steno__metric *breaker_waits, *rate_limit_waits, *pacing_waits;
    steno__metric *budget_tokens, *budget_exhausted;
    steno__metric *parse_errors, *sessions, *finals, *interims;
    steno__metric *last_msg_ts, *last_msg_age;
} steno__client_metrics;

struct steno_client {
    steno_allocator alloc;
    /* Where token_cb writes a credential (network thread only); each connection keeps an
     * exact-size copy until its handshake headers are written, not a buffer this size. */
    char cred_scratch[4200];
    steno_client_config cfg;
    char *ca_file;
    struct lws_context *ctx;
    steno__evloop evl; /* the loop under ctx: libev, libuv or lws's poll() */
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    atomic_int wake_pending;

    pthread_mutex_t lock;    /* guards incoming and all (below), and wakes' slots */
    steno_session *incoming; /* opened, not yet adopted by the network thread */
    steno_session *all;      /* every live session (app-side list, for client destroy) */
    steno__wakeset wakes;    /* which sessions asked for the network thread */

    /* network thread only */
    steno_session *sessions;
    steno__endpoint *endpoints;
    steno__budget budget;
    int budget_on;
    uint32_t active_connects;
    uint32_t backfills_active;        /* backfill connections held across sessions */
    uint32_t backfill_jobs;           /* unfinished backfill jobs across sessions */
    bool backfill_slot_freed;         /* steno__backfill_pump_all has work */
    steno_session *cq_head, *cq_tail; /* waiting for a connect slot */
    uint64_t rng;
    uint32_t last_serial;     /* lock: the serial of the newest session */
    steno__timerheap timers;  /* every session's timers */
    uint64_t timers_armed_us; /* the deadline evl's timer is armed for (monotonic us), 0: none */

    steno__metrics *metrics;
    steno__client_metrics m;
    atomic_uint_fast64_t last_msg_unix_ms;
};

/* A session's counters: written by the network thread, read anywhere. */
typedef struct steno__stats {
    atomic_uint_fast64_t samples_sent, chunks_sent, chunks_replayed, bytes_sent, bytes_received,
        messages_received, finals, interims, finals_suppressed, parse_errors, keepalives, pings,
        events_discarded, last_rx_mono_ms, last_downtime_ms;
    atomic_uint attempts, connects, reconnects, dead, configures, backfills;
    atomic_uint_fast64_t chunks_backfilled, finals_backfilled, auto_finalizes;
    atomic_uint_fast64_t live_sent_end; /* end frame of the newest audio sent live */
    atomic_int last_error;
} steno__stats;

/* An endpoint a session may use: the preferred one, then its failover list. The session's
 * own prov/url_str/api_key/opts/psess/ep fields describe the one in use; the slot of the one
 * in use is stale until the session moves away (failover.c swaps them). */
typedef struct steno__target {
    const steno__provider *prov;
    char *url_str, *api_key;
    steno__opts opts;
    void *psess;
    steno__endpoint *ep; /* resolved when first used */
} steno__target;

struct steno_session {
    steno_client *c;
    uint32_t serial; /* 1, 2, ... in open order per client: names the session in log lines */
    uint32_t timers_reserved; /* room this session holds in c->timers */
    uint32_t wake_slot;       /* its bit in c->wakes (taken at open, under c->lock) */
    atomic_uint_fast64_t *wake_word;
    uint64_t wake_mask;
    const steno_allocator *a;
    const steno__provider *prov;
    steno_session *next;     /* c->sessions (network thread) */
    steno_session **pprev;   /* the pointer to it there: leaving is O(1) */
    steno_session *inc_next; /* c->incoming */
    steno_session *all_next; /* c->all */
    steno_session *cq_next;
    bool in_cq;
    bool primary_wants_slot;   /* in the connect queue for the live connection */
    bool primary_breaker_wait; /* the live connection waits for the breaker */
    uint64_t breaker_epoch;    /* ep->epoch + 1 when a failure of this outage counted */
    steno__link link;          /* the live connection's */

    /* immutable after open */
    steno_session_config cfg;        /* strings below are our copies */
    const steno__provider *app_prov; /* the preferred endpoint's: app-side validation */
    /* The endpoint in use (network thread once adopted; failover swaps them) */
    char *url_str, *api_key;
    steno__audio_params ap;
    uint32_t chunk_frames, frame_bytes, chunk_bytes;

    /* options: the app thread validates configure() against app_opts (app
     * side only), then hands a full copy over in pending_opts (lock). */
    steno__opts app_opts;
    steno__opts pending_opts; /* lock */
    bool pending_valid;       /* lock */
    steno__opts opts;         /* network thread */
    steno__url url;           /* network thread: the request URL for opts */
    steno__endpoint *ep;

    /* data plane */
    steno__ring *ring;
    steno__timeline *tl; /* the live lane's */
    steno__planner plan;
    steno__bf *bf; /* max_backfill backfill connection slots */
    uint32_t n_bf;
    bool drained;          /* close: the live connection flushed and closed; waiting for backfill */
    uint32_t jobs_counted; /* this session's share of c->backfill_jobs */
    steno__pacing pacing;
    steno__backoff bo;
    steno__retry_token tok;
    uint8_t *scratch; /* LWS_PRE + max frame */
    size_t scratch_cap;
    uint32_t prod_fill; /* producer only: frames in the open chunk */

    /* connection (network thread) */
    struct lws *wsi;
    steno__conn_state conn;
    bool holds_slot, is_probe, breaker_passed;
    /* Waits for a breaker (steno__client_breaker_wait): on bw_ep->waiters through bw_next and
     * bw_pprev until a report of that endpoint kicks it or the session ends. */
    bool waiting_breaker;
    steno__endpoint *bw_ep;
    steno_session *bw_next, **bw_pprev;
    bool ever_connected;
    uint32_t outage_attempts; /* connection attempts in this outage */
    uint64_t down_since_ms;   /* when the current outage began */
    uint64_t connected_at_ms, last_rx_ms, last_audio_tx_ms, last_ka_ms, next_ping_ms;
    uint64_t conn_rx_frames;
    uint64_t high_sent; /* highest seq ever sent + 1 */
    bool ping_pending, ka_pending, dead;
    bool awaiting_pong; /* a ping went out and its pong has not come back */
    uint64_t ping_sent_ms;
    bool auto_fin_outstanding; /* an auto-finalize awaits its from_finalize final */
    bool auto_fin_pending;     /* send one at the next writeable */
    steno__boundary *bounds;   /* ring_chunks + 2 seam candidates, for the planner */
    bool catching_up;          /* backfill jobs exist since catchup_since_ms */
    uint64_t catchup_since_ms, catchup_frames;
    bool conn_audio_sent; /* audio went out on this connection (the pacer runs from then) */
    bool evict_pending;   /* evict_range not reported yet */
    steno__range evict_range;
    uint64_t evict_since_ms;
    bool initial_pending;
    bool conn_timed_out;
    bool tls_cert_failed; /* OpenSSL rejected the server certificate on this attempt */
    char tls_reason[96];  /* and why, in OpenSSL's words ("" when unknown) */
    int http_status, close_code;
    char close_reason[128];
    char prov_err[256];
    char request_id[128];
    char retry_after[64];
    char *cred; /* this connection's credential until its handshake headers are written */
    steno__sb rx;
    bool rx_skip; /* the message being received was too large: drop its remaining parts */
    steno__sb tx; /* framed text / initial message */

    /* finalize / close / configure */
    bool finalize_pending, finalize_outstanding;
    uint64_t finalize_target;
    bool close_requested, closestream_sent;
    int close_fin;               /* STENO__CLOSE_FIN_*: the flush before close_text */
    uint32_t close_fin_asks;     /* flushes before close_text asked again (see deliver_results) */
    steno__fin_queue fin_q;      /* finalize messages awaiting their answer (NEXT_FINAL) */
    bool switching, switch_sent; /* seamless reconnect for a configuration change */
    bool switch_go_away;         /* ... or because the provider announced the connection's end */
    bool configure_pending;      /* a live settings change to send: cfg_tx */
    steno__sb cfg_tx;
    void *psess; /* the adapter's session state (provider session_new) */
    /* failover (network thread): targets[cur] is the endpoint in use */
    steno__target *targets;
    uint32_t n_targets, cur;
    uint64_t tgt_down_ms; /* when the endpoint in use began failing (0: it works) */
    uint32_t failback_ms; /* the wait before trying the preferred endpoint again */
    bool failback_trial;  /* connecting to the preferred endpoint, back from failback_from */
    uint32_t failback_from;
    bool switch_failback; /* switching: flushing the fallback connection to move back */
    bool close_self;      /* client_closes: close the connection at the next writeable */
    bool peer_closed;     /* the server sent its close: lws answers it, we send nothing more */
    bool write_failed;    /* a write from the wake failed: lws is ending the connection */
    bool closed_self;     /* ... done: its end is the end of the stream we asked for */
    char last_cause[300]; /* the latest failure, as RECONNECTING said it (failover messages) */
    void *pconn;          /* the adapter's state for the live connection (conn_new) */
    uint64_t close_deadline_ms;
    bool terminal;
    bool detached;

    steno__timer sul_retry, sul_conn_to, sul_live, sul_pace, sul_close, sul_evict, sul_switch,
        sul_failback, sul_goaway;

    /* cross-thread */
    atomic_int state;   /* steno_session_state */
    atomic_uint cmds;   /* STENO__CMD_* */
    atomic_int closing; /* write() refuses once set */
    atomic_uint close_timeout_ms;
    steno__stats st;
    uint64_t m_buffered_reported; /* network thread: chunks_buffered gauge contribution */
    uint64_t m_written_reported, m_acked_reported, m_dropped_reported;

    /* events and waits (lock) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool queue_on;
    uint32_t queue_max;
    steno__evnode *q_head, *q_tail;
    uint32_t q_len;
    steno__evnode *q_current;             /* returned by next_event, freed on the next call */
    steno__evnode *held_head, *held_tail; /* network thread: ordered_finals holds live finals */
    bool terminal_emitted, terminal_returned;
    steno_status terminal_status;
    uint64_t ev_seq;
    char fail_msg[512];
    char app_err[1024]; /* application thread only */
};

/* ---- client.c ---- */
uint64_t steno__now_ms(void);
/* Wall clock, ms since the epoch (for HTTP-date Retry-After and metrics timestamps). */
uint64_t steno__now_unix_ms(void);
void steno__client_wake(steno_client *c);
/* Any thread: this session needs the network thread (new audio, a command); wait-free. */
void steno__client_wake_session(steno_session *s);
bool steno__on_network_thread(const steno_client *c);
void steno__log(steno_client *c, steno_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* steno__log for one session: the line starts "session N: " so that an app
 * running many sessions can tell whose reconnect it is reading. */
void steno__slog(const steno_session *s, steno_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t steno__client_rand(void *ctx);
steno__endpoint *steno__client_endpoint(steno_client *c, const char *key);
/* The breaker of ep changed or saw an outcome: kick the sessions waiting for it. */
void steno__client_breaker_report(steno_client *c, steno__endpoint *ep);
/* s waits for its endpoint's breaker / no longer does. */
void steno__client_breaker_wait(steno_session *s);
void steno__client_breaker_unwait(steno_session *s);
/* Heap room for n more timers (a session's, at adoption): STENO_OK or STENO_ERR_NOMEM. */
int steno__client_reserve_timers(steno_client *c, uint32_t n);
void steno__client_release_slot(steno_client *c);
void steno__client_cq_remove(steno_client *c, steno_session *s);
void steno__client_cq_push(steno_client *c, steno_session *s);
void steno__client_session_gone(steno_client *c, steno_session *s);
void steno__client_note_rx(steno_client *c); /* a frame arrived: for last-message metrics */

static inline void steno__set_state(steno_session *s, steno_session_state st)
{
    atomic_store_explicit(&s->state, (int)st, memory_order_release);
}

static inline steno_session_state steno__get_state(const steno_session *s)
{
    return (steno_session_state)atomic_load_explicit(&s->state, memory_order_acquire);
}

/* ---- link.c: lws callbacks to the live or a backfill connection ---- */
int steno__link_append_headers(steno__link *l, struct lws *wsi, unsigned char **p,
                               unsigned char *end);
void steno__link_on_pre_establish(steno__link *l, struct lws *wsi);
void steno__link_on_established(steno__link *l, struct lws *wsi);
void steno__link_on_connect_error(steno__link *l, struct lws *wsi, const char *why);
void steno__link_on_closed(steno__link *l, struct lws *wsi);
void steno__link_on_peer_close(steno__link *l, const uint8_t *payload, size_t len);
int steno__link_on_receive(steno__link *l, struct lws *wsi, const void *in, size_t len);
void steno__link_on_pong(steno__link *l);
int steno__link_on_writeable(steno__link *l, struct lws *wsi);

/* ---- session.c (network thread unless noted) ---- */
int steno__session_rebuild_url(steno_session *s, char *err, size_t errlen); /* URL for s->opts */
void steno__session_adopt(steno_session *s);
void steno__session_kick(steno_session *s);    /* try to connect again now */
void steno__session_service(steno_session *s); /* after a wake: commands, drops, sending */
void steno__session_on_pre_establish(steno_session *s, struct lws *wsi);
void steno__session_on_established(steno_session *s, struct lws *wsi);
void steno__session_on_connect_error(steno_session *s, struct lws *wsi, const char *why);
void steno__session_on_closed(steno_session *s, struct lws *wsi);
void steno__session_on_peer_close(steno_session *s, const uint8_t *payload, size_t len);
int steno__session_on_receive(steno_session *s, struct lws *wsi, const void *in, size_t len);
void steno__session_on_pong(steno_session *s);
int steno__session_on_writeable(steno_session *s, struct lws *wsi);
int steno__session_append_headers(steno_session *s, struct lws *wsi, unsigned char **p,
                                  unsigned char *end);
void steno__session_free(steno_session *s); /* app thread, after detach */

/* failover.c: the endpoints of a session. */
/* At open: the failover endpoints of cfg, validated (provider, chunk limits, options, URL). */
int steno__targets_open(steno_session *s, const steno_session_config *cfg, char *err,
                        size_t errlen);
void steno__targets_free(steno_session *s);
/* Network thread: makes targets[k] the endpoint in use (the backfill connections are dropped
 * first and restarted on it; the live connection must be gone). */
int steno__targets_switch(steno_session *s, uint32_t k);
/* Maps a RESULTS message from a connection whose lane is tl onto the session
 * timeline, emits it (bf: from that backfill connection, else live) and moves
 * the ring's ack point. */
void steno__session_deliver_results(steno_session *s, steno__timeline *tl, steno__bf *bf,
                                    const steno__msg *m_in);
/* Releases what the ring may release now (the planner's ack point), emits
 * held ordered finals that became deliverable, and CAUGHT_UP when the last
 * backfill job finished. */
void steno__session_ack(steno_session *s);
/* Fails the session (fatal error seen on any of its connections). */
void steno__session_fail(steno_session *s, steno_status status, int http_status, int close_code,
                         const char *message, const char *provider_message);
/* A free connect slot, if any: true and the slot is held. Else the session is
 * queued and kicked when one frees up. */
bool steno__session_take_slot(steno_session *s);
/* A connection attempt that passed the breaker failed / succeeded (see session.c). */
void steno__session_breaker_failure(steno_session *s, bool probe, uint64_t now);
void steno__session_breaker_success(steno_session *s, uint64_t now);
/* A fresh credential for a new connection (token callback or key) into *out, a heap copy of
 * exactly its size; the one *out held before is wiped and freed first. */
steno_status steno__session_credential(steno_session *s, char **out, char *msg, size_t msglen);
/* The level (see steno__planner_boundary_level) at the start of chunk seq. */
uint32_t steno__session_boundary_level(steno_session *s, uint64_t seq);

/* ---- events.c ---- */
void steno__emit(steno_session *s, steno_event *ev); /* network thread */
void steno__events_free_all(steno_session *s);       /* after detach */
/* ordered_finals: keep a copy of ev to emit later (false: out of memory, emit it now). */
bool steno__emit_hold(steno_session *s, const steno_event *ev);
/* Emits held events, oldest first, while ready(s, first_sample) says so. */
void steno__emit_held(steno_session *s, bool (*ready)(steno_session *s, uint64_t first_sample));

extern const struct lws_protocols steno__protocols[];

#endif
