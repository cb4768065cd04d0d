/* events: hand session events to the app's callback and to the bounded pull queue. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "engine.h"

/* One queued event: the struct and, in the same allocation, every string and word it points to. */
struct steno__evnode {
    steno__evnode *next;
    steno_event ev;
    bool interim;
};

const char *steno_event_type_name(steno_event_type type)
{
    switch (type) {
    case STENO_EVENT_NONE:
        return "NONE";
    case STENO_EVENT_CONNECTING:
        return "CONNECTING";
    case STENO_EVENT_CONNECTED:
        return "CONNECTED";
    case STENO_EVENT_TRANSCRIPT:
        return "TRANSCRIPT";
    case STENO_EVENT_UTTERANCE_END:
        return "UTTERANCE_END";
    case STENO_EVENT_SPEECH_STARTED:
        return "SPEECH_STARTED";
    case STENO_EVENT_METADATA:
        return "METADATA";
    case STENO_EVENT_RECONNECTING:
        return "RECONNECTING";
    case STENO_EVENT_RECONNECTED:
        return "RECONNECTED";
    case STENO_EVENT_AUDIO_DROPPED:
        return "AUDIO_DROPPED";
    case STENO_EVENT_FAILED:
        return "FAILED";
    case STENO_EVENT_CLOSED:
        return "CLOSED";
    case STENO_EVENT_CAUGHT_UP:
        return "CAUGHT_UP";
    case STENO_EVENT_FAILOVER:
        return "FAILOVER";
    }
    return "UNKNOWN";
}

/* ---- deep copy: measure, then copy into one block ---- */

static size_t slen(const char *s)
{
    return s ? strlen(s) + 1 : 1;
}

static size_t strings_size(const steno_event *ev)
{
    size_t n = 0;
    switch (ev->type) {
    case STENO_EVENT_CONNECTED:
        n += slen(ev->u.connected.request_id);
        break;
    case STENO_EVENT_TRANSCRIPT: {
        const steno_transcript *t = &ev->u.transcript;
        n += slen(t->text);
        n += t->n_words * sizeof(steno_word) + sizeof(double); /* alignment slack */
        for (size_t i = 0; i < t->n_words; i++)
            n += slen(t->words[i].word) + slen(t->words[i].punctuated_word);
        break;
    }
    case STENO_EVENT_METADATA:
        n += slen(ev->u.metadata.request_id) + slen(ev->u.metadata.json);
        break;
    case STENO_EVENT_RECONNECTING:
        n += slen(ev->u.reconnecting.message);
        break;
    case STENO_EVENT_RECONNECTED:
        n += slen(ev->u.reconnected.request_id);
        break;
    case STENO_EVENT_FAILED:
        n += slen(ev->u.failed.message) + slen(ev->u.failed.provider_message) +
             slen(ev->u.failed.request_id);
        break;
    case STENO_EVENT_FAILOVER:
        n += slen(ev->u.failover.from_url) + slen(ev->u.failover.to_url) +
             slen(ev->u.failover.message);
        break;
    default:
        break;
    }
    return n;
}

static const char *put(char **cur, const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s) + 1;
    memcpy(*cur, s, n);
    const char *r = *cur;
    *cur += n;
    return r;
}

static steno__evnode *copy_event(const steno_allocator *a, const steno_event *ev)
{
    size_t extra = strings_size(ev);
    steno__evnode *node = steno__alloc(a, sizeof *node + extra);
    if (!node)
        return NULL;
    node->next = NULL;
    node->ev = *ev;
    node->interim = ev->type == STENO_EVENT_TRANSCRIPT && !ev->u.transcript.is_final;
    char *cur = (char *)(node + 1);
    steno_event *e = &node->ev;
    switch (ev->type) {
    case STENO_EVENT_CONNECTED:
        e->u.connected.request_id = put(&cur, ev->u.connected.request_id);
        break;
    case STENO_EVENT_TRANSCRIPT: {
        const steno_transcript *t = &ev->u.transcript;
        if (t->n_words) {
            /* words first, aligned: node + 1 is suitably aligned for a double */
            uintptr_t p = (uintptr_t)cur;
            p = (p + sizeof(double) - 1) & ~(uintptr_t)(sizeof(double) - 1);
            steno_word *w = (steno_word *)p;
            cur = (char *)(w + t->n_words);
            for (size_t i = 0; i < t->n_words; i++) {
                w[i] = t->words[i];
                w[i].word = put(&cur, t->words[i].word);
                w[i].punctuated_word = put(&cur, t->words[i].punctuated_word);
            }
            e->u.transcript.words = w;
        } else {
            e->u.transcript.words = NULL;
        }
        e->u.transcript.text = put(&cur, t->text);
        break;
    }
    case STENO_EVENT_METADATA:
        e->u.metadata.request_id = put(&cur, ev->u.metadata.request_id);
        e->u.metadata.json = put(&cur, ev->u.metadata.json);
        break;
    case STENO_EVENT_RECONNECTING:
        e->u.reconnecting.message = put(&cur, ev->u.reconnecting.message);
        break;
    case STENO_EVENT_RECONNECTED:
        e->u.reconnected.request_id = put(&cur, ev->u.reconnected.request_id);
        break;
    case STENO_EVENT_FAILED:
        e->u.failed.message = put(&cur, ev->u.failed.message);
        e->u.failed.provider_message = put(&cur, ev->u.failed.provider_message);
        e->u.failed.request_id = put(&cur, ev->u.failed.request_id);
        break;
    case STENO_EVENT_FAILOVER: /* the provider names are static */
        e->u.failover.from_url = put(&cur, ev->u.failover.from_url);
        e->u.failover.to_url = put(&cur, ev->u.failover.to_url);
        e->u.failover.message = put(&cur, ev->u.failover.message);
        break;
    default:
        break;
    }
    return node;
}

/* Under s->lock: make room for one more event, preferring to lose interim transcripts. */
static bool make_room(steno_session *s, bool incoming_interim)
{
    if (s->q_len < s->queue_max)
        return true;
    if (incoming_interim)
        return false;
    steno__evnode *prev = NULL, *n = s->q_head;
    while (n && !n->interim) {
        prev = n;
        n = n->next;
    }
    if (!n) { /* nothing but important events: lose the oldest */
        prev = NULL;
        n = s->q_head;
    }
    if (prev)
        prev->next = n->next;
    else
        s->q_head = n->next;
    if (s->q_tail == n)
        s->q_tail = prev;
    s->q_len--;
    steno__free(s->a, n);
    atomic_fetch_add_explicit(&s->st.events_discarded, 1, memory_order_relaxed);
    return true;
}

void steno__emit(steno_session *s, steno_event *ev)
{
    bool terminal = ev->type == STENO_EVENT_CLOSED || ev->type == STENO_EVENT_FAILED;
    ev->seq = ++s->ev_seq;
    if (s->cfg.on_event)
        s->cfg.on_event(s->cfg.user, ev);
    pthread_mutex_lock(&s->lock);
    if (s->queue_on) {
        bool interim = ev->type == STENO_EVENT_TRANSCRIPT && !ev->u.transcript.is_final;
        if (make_room(s, interim)) {
            steno__evnode *node = copy_event(s->a, ev);
            if (node) {
                if (s->q_tail)
                    s->q_tail->next = node;
                else
                    s->q_head = node;
                s->q_tail = node;
                s->q_len++;
            } else {
                atomic_fetch_add_explicit(&s->st.events_discarded, 1, memory_order_relaxed);
            }
        } else {
            atomic_fetch_add_explicit(&s->st.events_discarded, 1, memory_order_relaxed);
        }
    }
    if (terminal) {
        s->terminal_emitted = true;
        s->terminal_status =
            ev->type == STENO_EVENT_CLOSED ? ev->u.closed.status : ev->u.failed.status;
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

bool steno__emit_hold(steno_session *s, const steno_event *ev)
{
    steno__evnode *node = copy_event(s->a, ev);
    if (!node)
        return false;
    if (s->held_tail)
        s->held_tail->next = node;
    else
        s->held_head = node;
    s->held_tail = node;
    return true;
}

void steno__emit_held(steno_session *s, bool (*ready)(steno_session *s, uint64_t first_sample))
{
    while (s->held_head && (!ready || ready(s, s->held_head->ev.u.transcript.first_sample))) {
        steno__evnode *n = s->held_head;
        s->held_head = n->next;
        if (!s->held_head)
            s->held_tail = NULL;
        steno_event ev = n->ev;
        steno__emit(s, &ev);
        steno__free(s->a, n);
    }
}

void steno__events_free_all(steno_session *s)
{
    steno__evnode *n = s->q_head;
    while (n) {
        steno__evnode *nx = n->next;
        steno__free(s->a, n);
        n = nx;
    }
    s->q_head = s->q_tail = NULL;
    s->q_len = 0;
    steno__free(s->a, s->q_current);
    s->q_current = NULL;
    for (n = s->held_head; n;) {
        steno__evnode *nx = n->next;
        steno__free(s->a, n);
        n = nx;
    }
    s->held_head = s->held_tail = NULL;
}

/* Absolute CLOCK_MONOTONIC deadline for pthread_cond_timedwait (the cond uses that clock). */
static struct timespec deadline_in(uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

steno_status steno_session_next_event(steno_session *s, steno_event *ev, uint32_t timeout_ms)
{
    if (!s || !ev)
        return STENO_ERR_INVALID_ARG;
    if (steno__on_network_thread(s->c))
        return STENO_ERR_STATE; /* would wait on ourselves */
    pthread_mutex_lock(&s->lock);
    if (!s->queue_on) {
        pthread_mutex_unlock(&s->lock);
        return STENO_ERR_STATE;
    }
    steno__free(s->a, s->q_current);
    s->q_current = NULL;
    struct timespec dl = deadline_in(timeout_ms);
    while (!s->q_head) {
        if (s->terminal_returned || timeout_ms == 0) {
            steno_status rc = s->terminal_returned ? STENO_ERR_STATE : STENO_ERR_AGAIN;
            pthread_mutex_unlock(&s->lock);
            return rc;
        }
        if (timeout_ms == UINT32_MAX) {
            pthread_cond_wait(&s->cond, &s->lock);
        } else if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) == ETIMEDOUT && !s->q_head) {
            pthread_mutex_unlock(&s->lock);
            return STENO_ERR_AGAIN;
        }
    }
    steno__evnode *n = s->q_head;
    s->q_head = n->next;
    if (!s->q_head)
        s->q_tail = NULL;
    s->q_len--;
    s->q_current = n;
    if (n->ev.type == STENO_EVENT_CLOSED || n->ev.type == STENO_EVENT_FAILED)
        s->terminal_returned = true;
    *ev = n->ev;
    pthread_mutex_unlock(&s->lock);
    return STENO_OK;
}
