/* steno-transcribe: stream an audio file through one steno session and print the finals. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sndfile.h>

#include "steno/steno.h"

#define MAX_OPTIONS 64

struct args {
    const char *url;
    const char *api_key;
    const char *file;
    double speed; /* 1.0 = real time */
    int interim;
    int timestamps;
    int verbose;
    uint32_t close_timeout_ms;
    steno_option options[MAX_OPTIONS];
    size_t n_options;
};

struct printer {
    steno_session *session;
    const struct args *args;
    int failed;
};

static void usage(FILE *to)
{
    fputs("usage: steno-transcribe [options] FILE\n"
          "\n"
          "Streams FILE (any format libsndfile reads; multichannel is mixed to mono)\n"
          "through one steno session at real time and prints each final transcript\n"
          "on stdout as it arrives. Connection events (reconnecting, reconnected,\n"
          "audio dropped, failed) go to stderr. Exit status 0 only when the session\n"
          "closed cleanly with every sample finalized.\n"
          "\n"
          "  --url URL            endpoint, e.g. ws://127.0.0.1:8080/v1/listen\n"
          "                       [STENO_URL, else the provider's]\n"
          "  --api-key KEY        credential [STENO_API_KEY / DEEPGRAM_API_KEY]\n"
          "  -o, --option K=V     provider option (repeatable), e.g. -o model=nova-3\n"
          "  --speed X            write audio at X times real time [1] (0 < X <= 100);\n"
          "                       beyond what the provider accepts the ring fills and\n"
          "                       audio is dropped (reported), so keep X <= 1.25\n"
          "  --interim            also print interim results (prefixed '~ ') to stderr\n"
          "  --timestamps         prefix finals with [start-end] session seconds\n"
          "  --close-timeout MS   drain time for final results at the end [10000]\n"
          "  -v, --verbose        print every event to stderr\n"
          "  -h, --help           this text\n"
          "\n"
          "Every STENO_* variable of the SDK applies (see README); command-line\n"
          "options win over the environment.\n",
          to);
}

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"api-key", required_argument, NULL, 'k'},
        {"option", required_argument, NULL, 'o'},
        {"speed", required_argument, NULL, 's'},
        {"interim", no_argument, NULL, 'i'},
        {"timestamps", no_argument, NULL, 't'},
        {"close-timeout", required_argument, NULL, 'c'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->speed = 1.0;
    a->close_timeout_ms = 10000;
    int c;
    while ((c = getopt_long(argc, argv, "o:vh", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'u':
            a->url = optarg;
            break;
        case 'k':
            a->api_key = optarg;
            break;
        case 'o': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "steno-transcribe: --option wants KEY=VALUE, got '%s'\n", optarg);
                return -1;
            }
            if (a->n_options == MAX_OPTIONS) {
                fprintf(stderr, "steno-transcribe: at most %d --option\n", MAX_OPTIONS);
                return -1;
            }
            *eq = '\0';
            a->options[a->n_options].key = optarg;
            a->options[a->n_options].value = eq + 1;
            a->n_options++;
            break;
        }
        case 's':
            errno = 0;
            a->speed = strtod(optarg, &end);
            if (errno || *end || a->speed <= 0 || a->speed > 100) {
                fprintf(stderr, "steno-transcribe: --speed wants a number in (0, 100]\n");
                return -1;
            }
            break;
        case 'i':
            a->interim = 1;
            break;
        case 't':
            a->timestamps = 1;
            break;
        case 'c': {
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || *end || v == 0 || v > 3600000) {
                fprintf(stderr, "steno-transcribe: --close-timeout wants 1..3600000 ms\n");
                return -1;
            }
            a->close_timeout_ms = (uint32_t)v;
            break;
        }
        case 'v':
            a->verbose = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "steno-transcribe: exactly one audio FILE is needed\n\n");
        usage(stderr);
        return -1;
    }
    a->file = argv[optind];
    return 0;
}

static void print_event(struct printer *p, const steno_event *ev)
{
    switch (ev->type) {
    case STENO_EVENT_TRANSCRIPT: {
        const steno_transcript *t = &ev->u.transcript;
        if (t->is_final) {
            if (t->text[0] == '\0')
                break;
            if (p->args->timestamps)
                printf("[%.2f-%.2f] %s\n", t->start, t->end, t->text);
            else
                printf("%s\n", t->text);
            fflush(stdout);
        } else if (p->args->interim && t->text[0]) {
            fprintf(stderr, "~ %s\n", t->text);
        }
        break;
    }
    case STENO_EVENT_CONNECTING:
        if (p->args->verbose)
            fprintf(stderr, "steno: connecting (attempt %u)\n", ev->u.connecting.attempt);
        break;
    case STENO_EVENT_CONNECTED:
        if (p->args->verbose)
            fprintf(stderr, "steno: connected (request %s)\n", ev->u.connected.request_id);
        break;
    case STENO_EVENT_RECONNECTING:
        fprintf(stderr, "steno: reconnecting, attempt %u in %u ms: %s\n",
                ev->u.reconnecting.attempt, ev->u.reconnecting.delay_ms,
                ev->u.reconnecting.message);
        break;
    case STENO_EVENT_RECONNECTED:
        fprintf(stderr,
                "steno: reconnected after %u attempt(s), %u ms down, replaying %u chunk(s)\n",
                ev->u.reconnected.attempts, ev->u.reconnected.downtime_ms,
                ev->u.reconnected.replayed_chunks);
        break;
    case STENO_EVENT_AUDIO_DROPPED:
        fprintf(stderr, "steno: audio dropped: samples %llu-%llu (%llu samples, %s)\n",
                (unsigned long long)ev->u.audio_dropped.first_sample,
                (unsigned long long)ev->u.audio_dropped.last_sample,
                (unsigned long long)ev->u.audio_dropped.samples,
                ev->u.audio_dropped.producer_side ? "ring full" : "evicted during outage");
        break;
    case STENO_EVENT_FAILED:
        p->failed = 1;
        /* The message already carries the provider's own words (dg-error, close reason). */
        fprintf(stderr, "steno: failed: %s (%s)\n", ev->u.failed.message,
                steno_status_name(ev->u.failed.status));
        break;
    case STENO_EVENT_CLOSED:
        if (p->args->verbose || ev->u.closed.status != STENO_OK)
            fprintf(stderr, "steno: closed: %s, %llu samples unfinalized\n",
                    steno_strerror(ev->u.closed.status),
                    (unsigned long long)ev->u.closed.unfinalized_samples);
        break;
    default:
        if (p->args->verbose)
            fprintf(stderr, "steno: %s\n", steno_event_type_name(ev->type));
        break;
    }
}

/* Events are printed from their own thread through the pull queue: the
 * network thread's callback must not block on stdout. */
static void *printer_main(void *arg)
{
    struct printer *p = arg;
    steno_event ev;
    for (;;) {
        steno_status st = steno_session_next_event(p->session, &ev, UINT32_MAX);
        if (st == STENO_ERR_AGAIN)
            continue;
        if (st != STENO_OK)
            break;
        print_event(p, &ev);
        if (ev.type == STENO_EVENT_CLOSED || ev.type == STENO_EVENT_FAILED)
            break;
    }
    return NULL;
}

static void sleep_until(const struct timespec *t)
{
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) == EINTR) {
    }
}

static void add_ns(struct timespec *t, long long ns)
{
    long long total = t->tv_nsec + ns;
    t->tv_sec += total / 1000000000LL;
    t->tv_nsec = total % 1000000000LL;
}

int main(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);

    SF_INFO info = {0};
    SNDFILE *sf = sf_open(a.file, SFM_READ, &info);
    if (!sf) {
        fprintf(stderr, "steno-transcribe: cannot read '%s': %s\n", a.file, sf_strerror(NULL));
        return 2;
    }
    if (info.channels < 1 || info.channels > 64 || info.samplerate < 8000 ||
        info.samplerate > 192000) {
        fprintf(stderr,
                "steno-transcribe: '%s' has %d channel(s) at %d Hz; need 1..64 at "
                "8000..192000 Hz\n",
                a.file, info.channels, info.samplerate);
        sf_close(sf);
        return 2;
    }

    char err[512];
    steno_client_config cc;
    steno_client_config_init(&cc);
    if (steno_client_config_from_env(&cc, STENO_ENV_DEFAULTS, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-transcribe: %s\n", err);
        sf_close(sf);
        return 2;
    }
    steno_client *client = NULL;
    if (steno_client_open(&cc, &client, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-transcribe: %s\n", err);
        sf_close(sf);
        return 2;
    }

    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = a.url;
    sc.api_key = a.api_key;
    sc.sample_rate = (uint32_t)info.samplerate;
    sc.channels = 1;
    sc.options = a.options;
    sc.n_options = a.n_options;
    sc.event_queue = 1;
    if (steno_session_config_from_env(&sc, STENO_ENV_DEFAULTS, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-transcribe: %s\n", err);
        steno_client_destroy(client);
        sf_close(sf);
        return 2;
    }
    if (!sc.api_key && !sc.token_cb)
        sc.allow_no_auth = 1; /* the local server needs none */
    sc.sample_rate = (uint32_t)info.samplerate;
    sc.channels = 1;

    steno_session *session = NULL;
    if (steno_session_open(client, &sc, &session, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-transcribe: %s\n", err);
        steno_client_destroy(client);
        sf_close(sf);
        return 2;
    }

    struct printer p = {.session = session, .args = &a};
    pthread_t printer;
    if (pthread_create(&printer, NULL, printer_main, &p) != 0) {
        fprintf(stderr, "steno-transcribe: cannot start the printer thread\n");
        steno_session_destroy(session);
        steno_client_destroy(client);
        sf_close(sf);
        return 2;
    }

    /* The capture side: 20 ms blocks at the file's rate, paced on an absolute
     * clock so the stream neither drifts nor bursts. */
    const size_t block = (size_t)info.samplerate / 50;
    short *in = malloc(block * (size_t)info.channels * sizeof *in);
    int16_t *mono = malloc(block * sizeof *mono);
    int status = 0;
    if (!in || !mono) {
        fprintf(stderr, "steno-transcribe: out of memory\n");
        status = 2;
    }
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    const long long block_ns = (long long)(20e6 / a.speed);
    uint64_t written = 0;
    while (status == 0) {
        sf_count_t got = sf_readf_short(sf, in, (sf_count_t)block);
        if (got <= 0)
            break;
        for (sf_count_t i = 0; i < got; i++) {
            long sum = 0;
            for (int ch = 0; ch < info.channels; ch++)
                sum += in[i * info.channels + ch];
            mono[i] = (int16_t)(sum / info.channels);
        }
        steno_status st = steno_session_write(session, mono, (size_t)got);
        if (st == STENO_ERR_STATE) {
            /* The session ended (FAILED): the printer says why; stop reading. */
            fprintf(stderr,
                    "steno-transcribe: the session ended after %.2f s of %.2f s of audio; the "
                    "rest was not sent\n",
                    (double)written / info.samplerate, (double)info.frames / info.samplerate);
            break;
        }
        written += (uint64_t)got;
        add_ns(&next, block_ns);
        sleep_until(&next);
    }
    free(in);
    free(mono);
    sf_close(sf);

    steno_status closed = steno_session_close(session, a.close_timeout_ms);
    pthread_join(printer, NULL);
    if (status == 0 && (closed != STENO_OK || p.failed))
        status = 1;
    if (closed != STENO_OK && !p.failed)
        fprintf(stderr, "steno-transcribe: close: %s\n", steno_strerror(closed));
    steno_session_destroy(session);
    steno_client_destroy(client);
    return status;
}
