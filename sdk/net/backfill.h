/* backfill: the extra connections that replay an outage's backlog at the provider's pace while live
 * audio goes on. */
#ifndef STENO_NET_BACKFILL_H
#define STENO_NET_BACKFILL_H

#include "engine.h"

/*
 * A backfill connection carries one planner job: session audio [lo, hi)
 * buffered during an outage. It connects like any connection (connect slot,
 * circuit breaker, retry budget, fresh credential, the session's
 * configuration), replays the job's chunks from the first one not yet final,
 * paced at the provider's limit, then sends the provider's end-of-stream
 * message and collects finals until the provider closes. Its results are
 * mapped through its own timeline lane (floor: the job's final point; limit:
 * the seam, where the live connection took over) and emitted with
 * from_backfill = 1. A lost backfill connection requeues its job and retries
 * with its own backoff; what it had finalized stays final.
 *
 * Network thread only. The slots are allocated at session open.
 */
struct steno__bf {
    steno_session *s;
    steno__link link;
    uint32_t job_id; /* 0: the slot is free */
    struct lws *wsi;
    steno__conn_state conn;
    steno__timeline *tl;
    steno__pacing pacing;
    steno__backoff bo;
    steno__retry_token tok;
    bool holds_slot, wants_slot, breaker_passed, is_probe, counted, retry_wait;
    bool breaker_wait; /* retry_wait is for the breaker: a probe's report ends it early */
    bool audio_sent, closestream_sent, awaiting_pong, ping_pending, initial_pending;
    bool fin_pending, fin_outstanding; /* auto-finalize, as on the live connection */
    int close_fin;                     /* STENO__CLOSE_FIN_*: the flush before close_text */
    uint32_t close_fin_asks;           /* flushes before close_text asked again */
    steno__fin_queue fin_q;            /* finalize messages awaiting their answer (NEXT_FINAL) */
    uint64_t next_seq;                 /* next chunk to send */
    uint64_t connected_at_ms, last_rx_ms, ping_sent_ms, next_ping_ms;
    uint32_t attempts; /* in this job's current outage */
    int http_status, close_code;
    char close_reason[128];
    char prov_err[256];
    char retry_after[64];
    char *cred; /* as the session's */
    steno__sb rx;
    bool rx_skip;
    void *pconn;                  /* the adapter's state for this connection (provider conn_new) */
    bool close_self, closed_self; /* client_closes: see the live connection's */
    steno__timer sul_retry, sul_conn_to, sul_live, sul_pace;
};

/* At open: n slots (may be 0). STENO_ERR_NOMEM. */
int steno__backfill_create(steno_session *s, uint32_t n);
/* After detach. */
void steno__backfill_destroy(steno_session *s);

/* Starts queued planner jobs on free slots, as the session's and the client's
 * backfill caps allow. */
void steno__backfill_pump(steno_session *s);
/* The session moves to another endpoint: drop every backfill connection (before the move:
 * their adapter state belongs to the old provider), then restart their jobs on the new one
 * at its pace (after it). */
void steno__backfill_drop_all(steno_session *s);
void steno__backfill_restart_all(steno_session *s);
/* A client-wide backfill slot freed up since the last call: start jobs that
 * waited for it, in every session. */
void steno__backfill_pump_all(steno_client *c);
/* A connect slot freed up: retry the slots waiting for one. */
void steno__backfill_kick(steno_session *s);
/* Terminal: drop every backfill connection (jobs stay as they are). */
void steno__backfill_abandon_all(steno_session *s);
/* Backfill connections open or trying. */
uint32_t steno__backfill_busy(const steno_session *s);

int steno__backfill_append_headers(steno__bf *b, struct lws *wsi, unsigned char **p,
                                   unsigned char *end);
void steno__backfill_on_established(steno__bf *b, struct lws *wsi);
void steno__backfill_on_connect_error(steno__bf *b, struct lws *wsi, const char *why);
void steno__backfill_on_closed(steno__bf *b, struct lws *wsi);
void steno__backfill_on_peer_close(steno__bf *b, const uint8_t *payload, size_t len);
int steno__backfill_on_receive(steno__bf *b, struct lws *wsi, const void *in, size_t len);
void steno__backfill_on_pong(steno__bf *b);
int steno__backfill_on_writeable(steno__bf *b, struct lws *wsi);

#endif
