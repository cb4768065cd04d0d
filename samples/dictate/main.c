/* steno-dictate: push-to-talk dictation in the terminal, building a document as you speak. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "steno/steno.h"

/*
 * The microphone runs all the time but stays muted until Enter: muted audio
 * is not sent (the session keeps the connection alive with KeepAlive), so a
 * press starts transcribing at once. Enter again mutes it and asks the
 * provider to finalize; the finals up to the answer to that Finalize are
 * this take's text, appended to the document.
 */

#define DIM "\033[2m"
#define RED "\033[31m"
#define RESET "\033[0m"

typedef struct dictation {
    steno_session *session;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char take[8192]; /* finals of the current take */
    char document[65536];
    int recording;
    int finalized;     /* the answer to this take's Finalize arrived */
    _Atomic int ended; /* the session closed or failed */
} dictation;

static void append(char *dst, size_t cap, const char *text)
{
    size_t len = strlen(dst);
    if (!*text)
        return;
    snprintf(dst + len, cap - len, "%s%s", len ? " " : "", text);
}

/* Events on their own thread; only this thread draws the line being spoken. */
static void *events_main(void *arg)
{
    dictation *d = arg;
    steno_event ev;
    for (;;) {
        steno_status st = steno_session_next_event(d->session, &ev, UINT32_MAX);
        if (st == STENO_ERR_AGAIN)
            continue;
        if (st != STENO_OK)
            break;
        pthread_mutex_lock(&d->lock);
        switch (ev.type) {
        case STENO_EVENT_TRANSCRIPT: {
            const steno_transcript *t = &ev.u.transcript;
            if (t->is_final)
                append(d->take, sizeof d->take, t->text);
            if (d->recording)
                printf("\r\033[K" RED "\xe2\x97\x8f " RESET "%s " DIM "%s" RESET, d->take,
                       t->is_final ? "" : t->text);
            if (t->from_finalize) {
                d->finalized = 1;
                pthread_cond_broadcast(&d->changed);
            }
            break;
        }
        case STENO_EVENT_RECONNECTING:
            printf("\r\033[K(connection lost, reconnecting: %s)\n", ev.u.reconnecting.message);
            break;
        case STENO_EVENT_RECONNECTED:
            printf("\r\033[K(reconnected; %u chunk(s) replayed, nothing lost)\n",
                   ev.u.reconnected.replayed_chunks);
            break;
        case STENO_EVENT_FAILED:
            printf("\r\033[Ksteno-dictate: %s\n", ev.u.failed.message);
            d->ended = 1;
            pthread_cond_broadcast(&d->changed);
            break;
        case STENO_EVENT_CLOSED:
            d->ended = 1;
            pthread_cond_broadcast(&d->changed);
            break;
        default:
            break;
        }
        fflush(stdout);
        int end = d->ended;
        pthread_mutex_unlock(&d->lock);
        if (end)
            break;
    }
    return NULL;
}

/* Ctrl-C ends the loop like 'q' (the read is interrupted), so the terminal gets its
 * settings back and the session closes in order. */
static void on_interrupt(int sig)
{
    (void)sig;
}

static int save(const dictation *d, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", d->document);
    return fclose(f);
}

static void usage(FILE *to)
{
    fputs("usage: steno-dictate [--url URL] [--api-key KEY] [--device NAME|INDEX] [-o FILE]\n"
          "\n"
          "Push-to-talk dictation: Enter starts talking, Enter again stops; the text of\n"
          "each take is added to a running document. 'w' saves the document to FILE\n"
          "[steno-dictation.txt], 'q' quits (and saves when -o was given).\n"
          "The endpoint comes from --url or STENO_URL (e.g. a local steno-server:\n"
          "ws://127.0.0.1:PORT/v1/listen); STENO_* variables apply.\n",
          to);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},    {"api-key", required_argument, NULL, 'k'},
        {"device", required_argument, NULL, 'd'}, {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *key = NULL, *device = NULL, *path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            url = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'd':
            device = optarg;
            break;
        case 'o':
            path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    char err[512];
    steno_client *client = NULL;
    if (steno_client_open(NULL, &client, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-dictate: %s\n", err);
        return 1;
    }
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = url;
    sc.api_key = key;
    steno_option opts[] = {{"interim_results", "true"}, {"punctuate", "true"}};
    sc.options = opts;
    sc.n_options = 2;
    sc.event_queue = 1;
    if (steno_session_config_from_env(&sc, STENO_ENV_DEFAULTS, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-dictate: %s\n", err);
        steno_client_destroy(client);
        return 2;
    }
    sc.channels = 1;
    if (!sc.api_key && !sc.token_cb)
        sc.allow_no_auth = 1;
    dictation d = {.lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};
    steno_mic_config mc;
    steno_mic_config_init(&mc);
    mc.device = device;
    mc.session_rate = sc.sample_rate;
    steno_mic *mic = NULL;
    if (steno_session_open(client, &sc, &d.session, err, sizeof err) != STENO_OK ||
        steno_mic_open(&mc, d.session, &mic, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-dictate: %s\n", err);
        steno_session_destroy(d.session);
        steno_client_destroy(client);
        return 1;
    }
    steno_mic_set_muted(mic, 1);
    steno_mic_start(mic);
    pthread_t events;
    pthread_create(&events, NULL, events_main, &d);

    struct sigaction sa = {.sa_handler = on_interrupt}; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    /* keys one at a time, without echo */
    struct termios saved, raw;
    int tty = tcgetattr(0, &saved) == 0;
    if (tty) {
        raw = saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        tcsetattr(0, TCSANOW, &raw);
    }
    printf("steno-dictate on '%s' \xe2\x80\x94 Enter: talk / stop, w: save, q: quit\n",
           steno_mic_device_name(mic));
    fflush(stdout);
    const char *save_path = path ? path : "steno-dictation.txt";
    int key_in;
    while ((key_in = getchar()) != EOF && key_in != 'q' && !d.ended) {
        if (key_in == 'w') {
            pthread_mutex_lock(&d.lock);
            int ok = save(&d, save_path) == 0;
            pthread_mutex_unlock(&d.lock);
            printf("%s %s\n", ok ? "saved to" : "cannot save to", save_path);
            fflush(stdout);
            continue;
        }
        if (key_in != '\n' && key_in != '\r')
            continue;
        pthread_mutex_lock(&d.lock);
        if (!d.recording) {
            d.recording = 1;
            d.take[0] = '\0';
            printf(RED "\xe2\x97\x8f " RESET "listening\xe2\x80\xa6");
            fflush(stdout);
            pthread_mutex_unlock(&d.lock);
            steno_mic_set_muted(mic, 0);
            continue;
        }
        d.recording = 0;
        d.finalized = 0;
        pthread_mutex_unlock(&d.lock);
        /* once muted, this thread may finalize: the callback stays out of the session */
        steno_mic_set_muted(mic, 1);
        steno_session_finalize(d.session);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        pthread_mutex_lock(&d.lock);
        while (!d.finalized && !d.ended)
            if (pthread_cond_timedwait(&d.changed, &d.lock, &until) != 0)
                break;
        append(d.document, sizeof d.document, d.take);
        printf("\r\033[K\xc2\xbb %s\n", d.take[0] ? d.take : "(nothing heard)");
        fflush(stdout);
        pthread_mutex_unlock(&d.lock);
    }
    if (tty)
        tcsetattr(0, TCSANOW, &saved);
    steno_mic_stop(mic);
    steno_session_close(d.session, 5000);
    pthread_join(events, NULL);
    printf("\ndocument:\n%s\n", d.document);
    if (path)
        printf("%s %s\n", save(&d, path) == 0 ? "saved to" : "cannot save to", path);
    steno_mic_close(mic);
    steno_session_destroy(d.session);
    steno_client_destroy(client);
    return 0;
}
