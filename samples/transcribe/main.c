/* steno-transcribe: a file, stdin or the microphone through one steno session, to the terminal
 * or a transcript file. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "live.h"
#include "local_server.h"
#include "options.h"
#include "output.h"
#include "steno/steno.h"

/* ---- state shared by the threads ---- */

static sem_t wake;            /* posted by Ctrl-C, the event thread and the clock */
static atomic_int interrupts; /* Ctrl-C presses */
static local_server server;   /* --local */
static atomic_int live_on;    /* the terminal view is drawn: restore it on abort */

typedef struct run {
    const args *a;
    steno_session *session;
    output out;
    live view;
    int use_live;
    double rate;

    /* written by the capture side, read by the event thread for the status line */
    _Atomic uint64_t frames_in; /* frames written to the session */
    uint64_t total_frames;      /* file length at the session rate, 0 when unknown */
    atomic_int level_mdb;       /* mic level, millidB full scale */
    steno_mic *mic;
    struct timespec t0;

    /* kept by the event thread */
    char conn[512];
    int failed;
    steno_status fail_status;
    int dropped;
    uint64_t downtime_ms;
    uint64_t unfinalized;
    uint64_t catchup_chunks; /* after a reconnect: caught up once chunks_sent reaches it */
    uint32_t replayed;
    atomic_int done;
} run;

static void on_signal(int sig)
{
    (void)sig;
    if (atomic_fetch_add(&interrupts, 1) == 0) {
        sem_post(&wake);
        return;
    }
    /* the second Ctrl-C: no drain, but leave the terminal and the server tidy */
    static const char msg[] = "\r\033[K\nsteno-transcribe: aborted\n";
    if (atomic_load(&live_on) && write(1, "\033[0m", 4) < 0) {
    }
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    local_server_stop(&server, 0);
    _exit(EXIT_ABORTED);
}

static double since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- the status line ---- */

static void clock_text(char *buf, size_t len, double secs)
{
    unsigned s = (unsigned)secs;
    snprintf(buf, len, "%u:%02u", s / 60, s % 60);
}

static void status_line(run *r)
{
    char st[800], t1[16], t2[16], extra[160] = "";
    double audio = (double)atomic_load(&r->frames_in) / r->rate;
    double wall = since(&r->t0);
    if (r->a->input == IN_MIC) {
        /* a meter over -60..0 dBFS */
        double db = atomic_load(&r->level_mdb) / 1000.0;
        int bars = (int)((db + 60.0) / 6.0 + 0.5);
        bars = bars < 0 ? 0 : bars > 10 ? 10 : bars;
        char meter[64] = "";
        for (int i = 0; i < 10; i++)
            strcat(meter, i < bars ? "\xe2\x96\x88" : "\xc2\xb7");
        clock_text(t1, sizeof t1, audio);
        snprintf(extra, sizeof extra, "mic %s %4.0f dB  %s%s", meter, db < -99 ? -99 : db, t1,
                 r->mic && steno_mic_muted(r->mic) ? "  muted" : "");
    } else {
        clock_text(t1, sizeof t1, audio);
        double speed = wall > 0.2 ? audio / wall : 0;
        if (r->total_frames) {
            double frac = (double)atomic_load(&r->frames_in) / (double)r->total_frames;
            frac = frac > 1 ? 1 : frac;
            int fill = (int)(frac * 20 + 0.5);
            char bar[96] = "";
            for (int i = 0; i < 20; i++)
                strcat(bar, i < fill ? "\xe2\x96\x88" : "\xc2\xb7");
            clock_text(t2, sizeof t2, (double)r->total_frames / r->rate);
            snprintf(extra, sizeof extra, "%s %3.0f%%  %s / %s  %.2fx real time", bar, frac * 100,
                     t1, t2, speed);
        } else {
            snprintf(extra, sizeof extra, "%s  %.2fx real time", t1, speed);
        }
    }
    if (atomic_load(&interrupts) > 0)
        snprintf(st, sizeof st, "finishing (Ctrl-C again to abort)  %s", extra);
    else
        snprintf(st, sizeof st, "%s  %s", r->conn, extra);
    live_status(&r->view, st);
}

/* ---- events ---- */

static void note(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(run *r, const char *fmt, ...)
{
    /* With the live view the status line says it; otherwise a line on stderr. */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->conn, sizeof r->conn, "%s", msg);
    if (!r->use_live)
        fprintf(stderr, "steno: %s\n", msg);
}

static void handle(run *r, const steno_event *ev)
{
    const args *a = r->a;
    switch (ev->type) {
    case STENO_EVENT_TRANSCRIPT: {
        const steno_transcript *t = &ev->u.transcript;
        if (r->use_live) {
            /* the screen shows text; a file (-o) gets the chosen format */
            if (r->out.f != stdout)
                output_transcript(&r->out, t);
            if (!t->is_final) {
                live_interim(&r->view, t->text);
            } else if (t->text[0]) {
                char line[4096];
                if (a->timestamps)
                    snprintf(line, sizeof line, "[%.2f-%.2f] %s", t->start, t->end, t->text);
                else
                    snprintf(line, sizeof line, "%s", t->text);
                live_commit(&r->view, line);
            }
        } else {
            output_transcript(&r->out, t);
            if (!t->is_final && a->interim && a->format != OUT_JSONL && t->text[0])
                fprintf(stderr, "~ %s\n", t->text);
        }
        break;
    }
    case STENO_EVENT_CONNECTING:
        snprintf(r->conn, sizeof r->conn, "connecting%s",
                 ev->u.connecting.attempt > 1 ? " (retrying)" : "\xe2\x80\xa6");
        if (a->verbose && !r->use_live)
            fprintf(stderr, "steno: connecting (attempt %u)\n", ev->u.connecting.attempt);
        break;
    case STENO_EVENT_CONNECTED:
        snprintf(r->conn, sizeof r->conn, "connected");
        if (a->verbose && !r->use_live)
            fprintf(stderr, "steno: connected (request %s)\n", ev->u.connected.request_id);
        break;
    case STENO_EVENT_RECONNECTING:
        if (ev->u.reconnecting.attempt == 0)
            note(r, "applying new settings, reconnecting");
        else
            note(r, "connection lost, reconnecting (attempt %u in %u ms): %s",
                 ev->u.reconnecting.attempt, ev->u.reconnecting.delay_ms,
                 ev->u.reconnecting.message);
        break;
    case STENO_EVENT_RECONNECTED:
        r->downtime_ms += ev->u.reconnected.downtime_ms;
        note(r, "reconnected after %u attempt(s), %u ms down; replaying %u chunks\xe2\x80\xa6",
             ev->u.reconnected.attempts, ev->u.reconnected.downtime_ms,
             ev->u.reconnected.replayed_chunks);
        {
            /* caught up once the replayed chunks have gone out (a few live ones
             * may have gone already by now, so this errs on the late side) */
            steno_session_stats st;
            steno_session_stats_get(r->session, &st);
            r->replayed = ev->u.reconnected.replayed_chunks;
            r->catchup_chunks = st.chunks_sent + r->replayed;
        }
        break;
    case STENO_EVENT_FAILOVER:
        note(r, "moved to %s (%s): %s", ev->u.failover.to_provider, ev->u.failover.to_url,
             ev->u.failover.message);
        break;
    case STENO_EVENT_AUDIO_DROPPED:
        r->dropped = 1;
        note(r, "audio dropped: samples %llu-%llu (%llu samples, %s)",
             (unsigned long long)ev->u.audio_dropped.first_sample,
             (unsigned long long)ev->u.audio_dropped.last_sample,
             (unsigned long long)ev->u.audio_dropped.samples,
             ev->u.audio_dropped.producer_side ? "ring full" : "evicted during the outage");
        break;
    case STENO_EVENT_FAILED:
        r->failed = 1;
        r->fail_status = ev->u.failed.status;
        if (r->use_live)
            live_end(&r->view);
        r->use_live = 0;
        fprintf(stderr, "steno: failed: %s (%s)\n", ev->u.failed.message,
                steno_status_name(ev->u.failed.status));
        break;
    case STENO_EVENT_CLOSED:
        r->unfinalized = ev->u.closed.unfinalized_samples;
        if (a->verbose || ev->u.closed.status != STENO_OK)
            fprintf(stderr, "steno: closed: %s, %llu samples unfinalized\n",
                    steno_strerror(ev->u.closed.status),
                    (unsigned long long)ev->u.closed.unfinalized_samples);
        break;
    default:
        if (a->verbose && !r->use_live)
            fprintf(stderr, "steno: %s\n", steno_event_type_name(ev->type));
        break;
    }
}

static void check_caught_up(run *r)
{
    if (!r->catchup_chunks)
        return;
    steno_session_stats st;
    steno_session_stats_get(r->session, &st);
    if (st.state == STENO_STATE_STREAMING && st.chunks_sent >= r->catchup_chunks &&
        st.live_lag_samples == 0) {
        r->catchup_chunks = 0;
        note(r, "caught up, %u chunks replayed", r->replayed);
    }
}

/* The event thread: the network thread's callback must not block on a terminal,
 * so events come through the pull queue; the timeout refreshes the status line. */
static void *events_main(void *arg)
{
    run *r = arg;
    steno_event ev;
    for (;;) {
        steno_status st = steno_session_next_event(r->session, &ev, 100);
        check_caught_up(r);
        if (st == STENO_ERR_AGAIN) {
            if (r->use_live)
                status_line(r);
            continue;
        }
        if (st != STENO_OK)
            break;
        handle(r, &ev);
        if (r->use_live)
            status_line(r);
        if (ev.type == STENO_EVENT_CLOSED || ev.type == STENO_EVENT_FAILED)
            break;
    }
    if (r->use_live)
        live_end(&r->view);
    atomic_store(&live_on, 0);
    atomic_store(&r->done, 1);
    sem_post(&wake);
    return NULL;
}

/* ---- capture ---- */

static void on_level(void *user, const steno_audio_level *lv)
{
    run *r = user;
    if (lv->frames)
        atomic_store(&r->level_mdb, (int)(lv->rms_dbfs * 1000));
    atomic_store(&r->frames_in, (uint64_t)lv->first_sample + lv->frames);
}

static int on_block(void *user, uint64_t written)
{
    run *r = user;
    atomic_store(&r->frames_in, written);
    if (r->a->duration > 0 && (double)written / r->rate >= r->a->duration)
        return 1;
    return atomic_load(&interrupts) > 0 || atomic_load(&r->done);
}

/* Waits for Ctrl-C, the end of the session or --duration. */
static void wait_mic(run *r)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    double d = r->a->duration > 0 ? r->a->duration : 86400.0 * 365;
    deadline.tv_sec += (time_t)d;
    deadline.tv_nsec += (long)((d - floor(d)) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    while (!atomic_load(&interrupts) && !atomic_load(&r->done)) {
        if (sem_timedwait(&wake, &deadline) != 0 && errno == ETIMEDOUT)
            break;
    }
}

static int list_devices(void)
{
    steno_audio_device devs[64];
    size_t n = 0;
    char err[256];
    if (steno_audio_devices(devs, 64, &n, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-transcribe: %s\n", err);
        return EXIT_INPUT;
    }
    printf("%-5s %-40s %-6s %4s %4s %8s\n", "index", "name", "api", "in", "out", "rate");
    for (size_t i = 0; i < n && i < 64; i++)
        printf("%-5d %-40s %-6s %4d %4d %8.0f%s\n", devs[i].index, devs[i].name, devs[i].host_api,
               devs[i].max_input_channels, devs[i].max_output_channels, devs[i].default_sample_rate,
               devs[i].is_default_input ? "  (default input)" : "");
    return EXIT_OK;
}

static void print_stats(run *r, double wall)
{
    steno_session_stats s;
    if (steno_session_stats_get(r->session, &s) != STENO_OK)
        return;
    double audio = (double)s.samples_written / r->rate;
    fprintf(stderr,
            "steno-transcribe: stats\n"
            "  connections       %u\n"
            "  reconnects        %u\n"
            "  downtime          %.2f s\n"
            "  chunks replayed   %llu\n"
            "  backfills         %u\n"
            "  samples dropped   %llu\n"
            "  audio             %.2f s\n"
            "  real-time factor  %.2f (%.2f s of wall time per second of audio)\n",
            s.connects, s.reconnects, (double)r->downtime_ms / 1000.0,
            (unsigned long long)s.chunks_replayed, s.backfills,
            (unsigned long long)(s.samples_dropped + s.samples_evicted), audio,
            audio > 0 ? wall / audio : 0.0, audio > 0 ? wall / audio : 0.0);
    if (r->mic) {
        steno_mic_stats ms;
        steno_mic_stats_get(r->mic, &ms);
        fprintf(stderr, "  input overflows   %llu\n", (unsigned long long)ms.input_overflows);
    }
}

static int exit_code(const run *r, steno_status closed)
{
    if (r->failed) {
        switch (r->fail_status) {
        case STENO_ERR_RETRIES_EXHAUSTED:
        case STENO_ERR_BUDGET_EXHAUSTED:
        case STENO_ERR_BREAKER_OPEN:
        case STENO_ERR_NETWORK:
        case STENO_ERR_TIMEOUT:
        case STENO_ERR_SERVER:
        case STENO_ERR_RATE_LIMITED:
        case STENO_ERR_CLOSED:
            return EXIT_GAVE_UP;
        default:
            return EXIT_PROVIDER;
        }
    }
    if (r->dropped || r->unfinalized || closed != STENO_OK)
        return EXIT_AUDIO_LOST;
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc;
    if (a.list_devices)
        return list_devices();

    signal(SIGPIPE, SIG_IGN);
    sem_init(&wake, 0, 0);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    run r = {.a = &a};
    char err[512];
    steno_client *client = NULL;
    steno_session *session = NULL;
    steno_source *src = NULL;
    FILE *outf = stdout;
    pthread_t events;
    int events_started = 0;
    int status = EXIT_OK;

    /* the session first: its rate decides what the input is converted to */
    steno_session_config sc;
    steno_session_config_init(&sc);
    /* STENO_* variables over the library's defaults (every field is filled by now, so they
     * must override), then the command line over both */
    if (steno_session_config_from_env(&sc, STENO_ENV_OVERRIDE, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-transcribe: %s\n", err);
        return EXIT_USAGE;
    }
    if (a.provider)
        sc.provider = a.provider;
    if (a.url)
        sc.url = a.url;
    if (a.api_key)
        sc.api_key = a.api_key;
    sc.options = a.options;
    sc.n_options = a.n_options;
    sc.event_queue = 1;
    sc.ordered_finals = 1; /* srt/vtt cues and text lines in timeline order */
    if (a.max_outage_ms)
        sc.retry.max_outage_ms = a.max_outage_ms;
    /* failover endpoints: each provider's key from its conventional variable */
    char fo_keys[MAX_FAILOVER][64];
    for (size_t i = 0; i < a.n_failover; i++) {
        size_t n = 0;
        for (const char *p = a.failover[i].provider; *p && n < 40; p++)
            fo_keys[i][n++] = (char)toupper((unsigned char)*p);
        snprintf(fo_keys[i] + n, sizeof fo_keys[i] - n, "_API_KEY");
        a.failover[i].api_key = getenv(fo_keys[i]);
    }
    sc.failover = a.failover;
    sc.n_failover = a.n_failover;
    if (a.failover_after_ms)
        sc.failover_after_ms = a.failover_after_ms;
    if (a.failback_set)
        sc.failback_after_ms = a.failback_after_ms;
    sc.channels = 1;
    r.rate = sc.sample_rate;
    r.use_live = !a.no_live && isatty(1);
    /* interims are what the live view shows */
    int want_interim = r.use_live || a.interim;
    int has_interim_opt = 0;
    for (size_t i = 0; i < a.n_options; i++)
        has_interim_opt |= strcmp(a.options[i].key, "interim_results") == 0;
    steno_option opts[MAX_OPTIONS + 1];
    memcpy(opts, a.options, a.n_options * sizeof *opts);
    size_t n_opts = a.n_options;
    /* Deepgram sends interims only when asked; the other providers always do (or never) */
    int deepgram = !sc.provider || !strcmp(sc.provider, "deepgram");
    if (want_interim && !has_interim_opt && deepgram)
        opts[n_opts++] = (steno_option){"interim_results", "true"};
    sc.options = opts;
    sc.n_options = n_opts;

    /* the input, before anything connects: a bad file should not cost a handshake */
    if (a.input == IN_FILE || a.input == IN_STDIN) {
        steno_status st =
            a.input == IN_FILE
                ? steno_source_open_file(a.file, sc.sample_rate, &src, err, sizeof err)
                : steno_source_open_raw(0, a.raw_rate, a.raw_channels, sc.sample_rate, &src, err,
                                        sizeof err);
        if (st != STENO_OK) {
            fprintf(stderr, "steno-transcribe: %s\n", err);
            return st == STENO_ERR_INVALID_ARG && a.input == IN_STDIN ? EXIT_USAGE : EXIT_INPUT;
        }
        steno_source_info si;
        steno_source_info_get(src, &si);
        r.total_frames = si.frames * sc.sample_rate / si.sample_rate;
        if (a.verbose)
            fprintf(stderr, "steno-transcribe: %s: %s, %u Hz, %u channel(s)\n", a.file, si.format,
                    si.sample_rate, si.channels);
    } else {
        steno_mic_config mc;
        steno_mic_config_init(&mc);
        mc.device = a.device;
        mc.sample_rate = a.mic_rate;
        mc.session_rate = sc.sample_rate;
        mc.on_level = on_level;
        mc.level_user = &r;
        /* the device is opened first, so a bad one costs no handshake; the
         * session is attached once it exists */
        steno_status st = steno_mic_open(&mc, NULL, &r.mic, err, sizeof err);
        if (st != STENO_OK) {
            fprintf(stderr, "steno-transcribe: %s\n", err);
            return st == STENO_ERR_CONFIG || st == STENO_ERR_FORMAT ? EXIT_INPUT : EXIT_OTHER;
        }
    }

    if (a.local && !sc.url) {
        if (local_server_start(&server, argv[0], err, sizeof err) != 0) {
            fprintf(stderr, "steno-transcribe: %s\n", err);
            steno_source_close(src);
            steno_mic_close(r.mic);
            return EXIT_OTHER;
        }
        sc.url = server.url;
        if (a.verbose)
            fprintf(stderr, "steno-transcribe: local server at %s\n", server.url);
    }
    if (!sc.api_key && !sc.token_cb)
        sc.allow_no_auth = 1; /* a local endpoint needs none; a real one says 401 (exit 4) */

    steno_client_config cc;
    steno_client_config_init(&cc);
    if (steno_client_config_from_env(&cc, STENO_ENV_DEFAULTS, err, sizeof err) != STENO_OK ||
        steno_client_open(&cc, &client, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-transcribe: %s\n", err);
        status = EXIT_USAGE;
        goto out;
    }
    if (steno_session_open(client, &sc, &session, err, sizeof err) != STENO_OK) {
        fprintf(stderr, "steno-transcribe: %s\n", err);
        status = EXIT_USAGE;
        goto out;
    }
    r.session = session;

    if (a.output) {
        outf = fopen(a.output, "w");
        if (!outf) {
            fprintf(stderr, "steno-transcribe: cannot write '%s': %s\n", a.output, strerror(errno));
            outf = stdout;
            status = EXIT_USAGE;
            goto out;
        }
    }
    r.out =
        (output){.f = outf, .format = a.format, .timestamps = a.timestamps, .interim = a.interim};
    /* the live view draws on the terminal; with text on stdout it is the output too */
    if (r.use_live && a.format != OUT_TEXT && outf == stdout)
        r.use_live = 0;
    output_begin(&r.out);
    snprintf(r.conn, sizeof r.conn, "connecting\xe2\x80\xa6");
    if (r.use_live) {
        live_init(&r.view, stdout);
        atomic_store(&live_on, 1);
    }
    clock_gettime(CLOCK_MONOTONIC, &r.t0);
    if (pthread_create(&events, NULL, events_main, &r) != 0) {
        fprintf(stderr, "steno-transcribe: cannot start the event thread\n");
        status = EXIT_OTHER;
        goto out;
    }
    events_started = 1;

    if (a.input == IN_MIC) {
        steno_status st = steno_mic_attach(r.mic, session);
        if (st == STENO_OK)
            st = steno_mic_start(r.mic);
        if (st != STENO_OK) {
            fprintf(stderr, "steno-transcribe: microphone: %s\n", steno_strerror(st));
            status = EXIT_INPUT;
        } else {
            steno_mic_stats ms;
            steno_mic_stats_get(r.mic, &ms);
            if (!r.use_live)
                fprintf(stderr, "steno-transcribe: capturing from '%s' at %u Hz, %u channel(s)\n",
                        steno_mic_device_name(r.mic), ms.sample_rate, ms.channels);
            wait_mic(&r);
            steno_mic_stop(r.mic);
        }
    } else {
        steno_feed_config fc;
        steno_feed_config_init(&fc);
        fc.speed = a.speed;
        fc.on_block = on_block;
        fc.user = &r;
        uint64_t written = 0;
        steno_status st = steno_source_feed(src, session, &fc, &written);
        atomic_store(&r.frames_in, written);
        if (st == STENO_ERR_STATE)
            fprintf(stderr,
                    "steno-transcribe: the session ended after %.2f s of audio; the rest was "
                    "not sent\n",
                    (double)written / r.rate);
        else if (st != STENO_OK) {
            fprintf(stderr, "steno-transcribe: reading %s: %s\n", a.file, steno_strerror(st));
            status = EXIT_INPUT;
        }
    }

    /* Finish: the provider finalizes what it has, the last finals are printed. */
    steno_status closed = steno_session_close(session, a.close_timeout_ms);
    pthread_join(events, NULL);
    events_started = 0;
    if (status == EXIT_OK)
        status = exit_code(&r, closed);
    if (a.stats)
        print_stats(&r, since(&r.t0));

out:
    if (events_started) {
        steno_session_close(session, 1);
        pthread_join(events, NULL);
    }
    steno_mic_close(r.mic);
    steno_session_destroy(session);
    steno_client_destroy(client);
    steno_source_close(src);
    if (outf != stdout)
        fclose(outf);
    local_server_stop(&server, 1);
    return status;
}
