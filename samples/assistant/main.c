/* steno-assistant: a voice assistant's listening loop — turns, commands, spoken replies. */
#include <ctype.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "steno/steno.h"

/*
 * It listens all the time. A turn is the finals since the last turn, and it
 * ends when the provider says the speaker stopped (a final with speech_final,
 * or UtteranceEnd). The turn's text goes to a small command handler; while the
 * reply is being "spoken" the microphone is muted, so the assistant does not
 * hear itself (steno sends KeepAlive meanwhile, and the connection stays up).
 */

typedef struct assistant {
    steno_session *session;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char turn[4096];  /* finals of the turn in progress */
    char ready[4096]; /* a finished turn waiting for the handler */
    int has_ready;
    _Atomic int ended;
} assistant;

static void end_turn(assistant *a)
{
    if (!a->turn[0])
        return;
    snprintf(a->ready, sizeof a->ready, "%s", a->turn);
    a->turn[0] = '\0';
    a->has_ready = 1;
    pthread_cond_broadcast(&a->changed);
}

static void *events_main(void *arg)
{
    assistant *a = arg;
    steno_event ev;
    for (;;) {
        steno_status st = steno_session_next_event(a->session, &ev, UINT32_MAX);
        if (st == STENO_ERR_AGAIN)
            continue;
        if (st != STENO_OK)
            break;
        pthread_mutex_lock(&a->lock);
        switch (ev.type) {
        case STENO_EVENT_TRANSCRIPT: {
            const steno_transcript *t = &ev.u.transcript;
            if (t->is_final && t->text[0]) {
                size_t len = strlen(a->turn);
                snprintf(a->turn + len, sizeof a->turn - len, "%s%s", len ? " " : "", t->text);
            }
            if (!t->is_final && t->text[0])
                printf("\r\033[K\033[2myou: %s\033[0m", t->text);
            else if (t->is_final && t->text[0])
                printf("\r\033[Kyou: %s", a->turn);
            if (t->is_final && t->speech_final)
                end_turn(a);
            break;
        }
        case STENO_EVENT_UTTERANCE_END:
            end_turn(a);
            break;
        case STENO_EVENT_RECONNECTING:
            printf("\r\033[K(lost the connection \xe2\x80\x94 restoring it, attempt %u)\n",
                   ev.u.reconnecting.attempt);
            break;
        case STENO_EVENT_RECONNECTED:
            printf("\r\033[K(connection restored after %u ms; nothing you said was lost)\n",
                   ev.u.reconnected.downtime_ms);
            break;
        case STENO_EVENT_FAILED:
            printf("\r\033[Ksteno-assistant: %s\n", ev.u.failed.message);
            atomic_store(&a->ended, 1);
            break;
        case STENO_EVENT_CLOSED:
            atomic_store(&a->ended, 1);
            break;
        default:
            break;
        }
        if (atomic_load(&a->ended))
            pthread_cond_broadcast(&a->changed);
        fflush(stdout);
        pthread_mutex_unlock(&a->lock);
        if (atomic_load(&a->ended))
            break;
    }
    return NULL;
}

/* ---- the command handler ---- */

static int heard(const char *text, const char *phrase)
{
    return strstr(text, phrase) != NULL;
}

/* Writes the reply; returns 1 when the assistant should stop. */
static int handle(const char *said, char *reply, size_t len)
{
    char text[4096];
    size_t i = 0;
    for (; said[i] && i < sizeof text - 1; i++)
        text[i] = (char)tolower((unsigned char)said[i]);
    text[i] = '\0';
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    if (heard(text, "stop") || heard(text, "goodbye") || heard(text, "good bye")) {
        snprintf(reply, len, "Goodbye.");
        return 1;
    }
    if (heard(text, "time")) {
        strftime(reply, len, "It is %H:%M.", &tm);
    } else if (heard(text, "day") || heard(text, "date")) {
        strftime(reply, len, "Today is %A, %d %B %Y.", &tm);
    } else if (heard(text, "hello") || heard(text, "hi ")) {
        snprintf(reply, len, "Hello! Ask me the time or the date, or say stop.");
    } else {
        snprintf(reply, len, "I heard: \"%.900s\". Try \"what time is it\" or \"stop\".", said);
    }
    return 0;
}

/* "Speaks" the reply a word at a time, at about the pace of speech, muted. */
static void speak(steno_mic *mic, const char *reply)
{
    steno_mic_set_muted(mic, 1);
    printf("\r\033[Kassistant: ");
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", reply);
    char *save = NULL;
    for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        printf("%s ", w);
        fflush(stdout);
        struct timespec pause = {0, 250 * 1000000L};
        nanosleep(&pause, NULL);
    }
    printf("\n");
    fflush(stdout);
    steno_mic_set_muted(mic, 0);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"api-key", required_argument, NULL, 'k'},
        {"device", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *key = NULL, *device = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'u')
            url = optarg;
        else if (c == 'k')
            key = optarg;
        else if (c == 'd')
            device = optarg;
        else {
            fputs("usage: steno-assistant [--url URL] [--api-key KEY] [--device NAME|INDEX]\n"
                  "Listens and answers \"what time is it\", \"what day is it\", \"hello\";\n"
                  "\"stop\" ends it. STENO_* variables apply.\n",
                  c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    char err[512];
    steno_client *client = NULL;
    if (steno_client_open(NULL, &client, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-assistant: %s\n", err);
        return 1;
    }
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = url;
    sc.api_key = key;
    /* turn-taking: interim words to show, endpointing and UtteranceEnd to end a turn */
    steno_option opts[] = {{"interim_results", "true"},
                           {"endpointing", "300"},
                           {"utterance_end_ms", "1000"},
                           {"vad_events", "true"}};
    sc.options = opts;
    sc.n_options = 4;
    sc.event_queue = 1;
    if (steno_session_config_from_env(&sc, STENO_ENV_DEFAULTS, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-assistant: %s\n", err);
        steno_client_destroy(client);
        return 2;
    }
    sc.channels = 1;
    if (!sc.api_key && !sc.token_cb)
        sc.allow_no_auth = 1;
    assistant a = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};
    steno_mic_config mc;
    steno_mic_config_init(&mc);
    mc.device = device;
    mc.session_rate = sc.sample_rate;
    steno_mic *mic = NULL;
    if (steno_session_open(client, &sc, &a.session, err, sizeof err) != STENO_OK ||
        steno_mic_open(&mc, a.session, &mic, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-assistant: %s\n", err);
        steno_session_destroy(a.session);
        steno_client_destroy(client);
        return 1;
    }
    pthread_t events;
    pthread_create(&events, NULL, events_main, &a);
    steno_mic_start(mic);
    printf("steno-assistant is listening on '%s'. Say \"what time is it\", or \"stop\".\n",
           steno_mic_device_name(mic));
    fflush(stdout);

    int stop = 0;
    while (!stop) {
        char said[4096];
        pthread_mutex_lock(&a.lock);
        while (!a.has_ready && !atomic_load(&a.ended))
            pthread_cond_wait(&a.changed, &a.lock);
        if (!a.has_ready) {
            pthread_mutex_unlock(&a.lock);
            break;
        }
        snprintf(said, sizeof said, "%s", a.ready);
        a.has_ready = 0;
        pthread_mutex_unlock(&a.lock);
        printf("\n");
        char reply[1024];
        stop = handle(said, reply, sizeof reply);
        speak(mic, reply);
    }
    steno_mic_stop(mic);
    steno_session_close(a.session, 5000);
    pthread_join(events, NULL);
    steno_mic_close(mic);
    steno_session_destroy(a.session);
    steno_client_destroy(client);
    return 0;
}
