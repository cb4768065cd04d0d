/* main: steno-server entry point: options, start-up and shutdown. */
#include <errno.h>
#include <getopt.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "control.h"
#include "faults.h"
#include "listen.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "timers.h"
#include "usage.h"
#include "util.h"

srv_state srv_g;

static sigset_t stop_signals;

static const srv_engine_ops *const engines[] = {
    &srv_engine_null,
#ifdef STENO_SERVER_HAVE_POCKETSPHINX
    &srv_engine_pocketsphinx,
#endif
    NULL,
};

static void *signal_thread(void *arg)
{
    int sig;
    (void)arg;
    if (sigwait(&stop_signals, &sig) == 0)
        srv_loop_request_stop();
    return NULL;
}

static int parse_long(const char *opt, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "steno-server: %s: expected an integer in %ld..%ld, got '%s'\n", opt, lo,
                hi, v);
        return -1;
    }
    *out = n;
    return 0;
}

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_CONTROL_PORT,
    OPT_ENGINE,
    OPT_ENGINE_OPT,
    OPT_API_KEY,
    OPT_MAX_RATE,
    OPT_BURST_MS,
    OPT_IDLE,
    OPT_NULL_SPAN,
    OPT_WORKERS,
    OPT_MAX_CONN,
    OPT_MAX_MSG,
    OPT_HISTORY,
    OPT_FRAME_LOG,
    OPT_RECORD_HEADER,
    OPT_STRICT,
    OPT_NO_DIGESTS,
    OPT_MAX_HS_RATE,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_VERBOSE,
    OPT_PROTOCOL,
    OPT_SESSION_LIMIT,
    OPT_EVENT_LOOP,
    OPT_HELP,
};

static int parse_args(int argc, char **argv, srv_config *c)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"control-port", required_argument, NULL, OPT_CONTROL_PORT},
        {"engine", required_argument, NULL, OPT_ENGINE},
        {"engine-opt", required_argument, NULL, OPT_ENGINE_OPT},
        {"api-key", required_argument, NULL, OPT_API_KEY},
        {"max-rate", required_argument, NULL, OPT_MAX_RATE},
        {"burst-ms", required_argument, NULL, OPT_BURST_MS},
        {"idle-timeout-ms", required_argument, NULL, OPT_IDLE},
        {"null-span-ms", required_argument, NULL, OPT_NULL_SPAN},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"max-connections", required_argument, NULL, OPT_MAX_CONN},
        {"max-message-bytes", required_argument, NULL, OPT_MAX_MSG},
        {"history", required_argument, NULL, OPT_HISTORY},
        {"frame-log", required_argument, NULL, OPT_FRAME_LOG},
        {"record-header", required_argument, NULL, OPT_RECORD_HEADER},
        {"strict-params", no_argument, NULL, OPT_STRICT},
        {"no-digests", no_argument, NULL, OPT_NO_DIGESTS},
        {"max-handshake-rate", required_argument, NULL, OPT_MAX_HS_RATE},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"protocol", required_argument, NULL, OPT_PROTOCOL},
        {"session-limit-s", required_argument, NULL, OPT_SESSION_LIMIT},
        {"event-loop", required_argument, NULL, OPT_EVENT_LOOP},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    long n;
    int o;

    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "option";
        switch (o) {
        case OPT_HOST:
            c->host = optarg;
            break;
        case OPT_PORT:
            if (parse_long(name, optarg, 0, 65535, &n))
                return -1;
            c->port = (int)n;
            break;
        case OPT_CONTROL_PORT:
            if (parse_long(name, optarg, 0, 65535, &n))
                return -1;
            c->control_port = (int)n;
            break;
        case OPT_ENGINE:
            c->engine_name = optarg;
            break;
        case OPT_ENGINE_OPT:
            c->engine_opt = optarg;
            break;
        case OPT_API_KEY:
            c->api_key = optarg;
            break;
        case OPT_MAX_RATE: {
            char *end;
            double r = strtod(optarg, &end);
            if (end == optarg || *end || r < 0 || r > 1000) {
                fprintf(stderr, "steno-server: --max-rate: expected 0..1000, got '%s'\n", optarg);
                return -1;
            }
            c->max_rate = r;
            break;
        }
        case OPT_BURST_MS:
            if (parse_long(name, optarg, 0, 3600000, &n))
                return -1;
            c->burst_ms = (int)n;
            break;
        case OPT_IDLE:
            if (parse_long(name, optarg, 0, 86400000, &n))
                return -1;
            c->idle_timeout_ms = (int)n;
            break;
        case OPT_NULL_SPAN:
            if (parse_long(name, optarg, 1, 3600000, &n))
                return -1;
            c->null_span_ms = (int)n;
            break;
        case OPT_WORKERS:
            if (parse_long(name, optarg, 1, 256, &n))
                return -1;
            c->workers = (int)n;
            break;
        case OPT_MAX_CONN:
            if (parse_long(name, optarg, 0, 1000000, &n))
                return -1;
            c->max_connections = (int)n;
            break;
        case OPT_MAX_MSG:
            if (parse_long(name, optarg, 2, 1L << 30, &n))
                return -1;
            c->max_message_bytes = (size_t)n;
            break;
        case OPT_HISTORY:
            if (parse_long(name, optarg, 0, 10000000, &n))
                return -1;
            c->history = (size_t)n;
            break;
        case OPT_FRAME_LOG:
            if (parse_long(name, optarg, 0, 10000000, &n))
                return -1;
            c->frame_log = (size_t)n;
            break;
        case OPT_RECORD_HEADER: {
            const char **h = realloc(c->record_headers, (c->n_record_headers + 1) * sizeof(*h));
            if (!h)
                return -1;
            c->record_headers = h;
            h[c->n_record_headers++] = optarg;
            break;
        }
        case OPT_STRICT:
            c->strict_params = 1;
            break;
        case OPT_NO_DIGESTS:
            c->no_digests = 1;
            break;
        case OPT_EVENT_LOOP:
            if (strcmp(optarg, "libev") && strcmp(optarg, "poll")) {
                fprintf(stderr, "steno-server: --event-loop: expected libev or poll, got '%s'\n",
                        optarg);
                return -1;
            }
            c->event_loop = optarg;
            break;
        case OPT_MAX_HS_RATE: {
            char *end;
            double r = strtod(optarg, &end);
            if (end == optarg || *end || r < 0 || r > 1e6) {
                fprintf(stderr,
                        "steno-server: --max-handshake-rate: expected 0..1000000, got '%s'\n",
                        optarg);
                return -1;
            }
            c->max_handshake_rate = r;
            break;
        }
        case OPT_TLS_CERT:
            c->tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            c->tls_key = optarg;
            break;
        case OPT_VERBOSE:
            c->verbose = 1;
            break;
        case OPT_PROTOCOL:
            if (strcmp(optarg, "deepgram") && strcmp(optarg, "assemblyai") &&
                strcmp(optarg, "gemini") && strcmp(optarg, "openai") &&
                strcmp(optarg, "elevenlabs")) {
                fprintf(stderr,
                        "steno-server: --protocol: expected deepgram, assemblyai, gemini, "
                        "openai or elevenlabs, got '%s'\n",
                        optarg);
                return -1;
            }
            c->protocol = optarg;
            break;
        case OPT_SESSION_LIMIT:
            if (parse_long(name, optarg, 1, 86400, &n))
                return -1;
            c->session_limit_s = (int)n;
            c->session_limit_set = 1;
            break;
        case 'h':
        case OPT_HELP:
            fputs(srv_usage_text, stdout);
            exit(0);
        default:
            fputs("steno-server: try --help\n", stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "steno-server: unexpected argument '%s' (try --help)\n", argv[optind]);
        return -1;
    }
    /* AssemblyAI refuses audio faster than real time: its defaults are
     * 1.0x with a burst of one largest allowed frame (1000 ms, which the
     * limit counts as sent at the first frame's arrival) plus 500 ms for a
     * paced sender's scheduling and network jitter. */
    /* ElevenLabs documents no pace: the same real-time rule, the safe reading. */
    int aai = !strcmp(c->protocol, "assemblyai") || !strcmp(c->protocol, "elevenlabs");
    if (c->max_rate < 0)
        c->max_rate = aai ? 1.0 : 0;
    if (c->burst_ms < 0)
        c->burst_ms = aai ? 1500 : 2000;
    /* Gemini documents no pace limit (none by default) and ends a connection after about
     * 10 minutes, with a goAway first. */
    if (!strcmp(c->protocol, "gemini") && !c->session_limit_set)
        c->session_limit_s = 600;
    /* OpenAI Realtime: sessions end after 60 minutes; no pacing rule is documented. */
    if (!strcmp(c->protocol, "openai") && !c->session_limit_set)
        c->session_limit_s = 3600;
    if (!c->tls_cert != !c->tls_key) {
        fputs("steno-server: --tls-cert and --tls-key go together\n", stderr);
        return -1;
    }
    return 0;
}

static int raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return 1024;
    rlim_t want = rl.rlim_max;
    if (want == RLIM_INFINITY || want > 65536)
        want = 65536;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
}

static void shutdown_tick(srv_timer *t)
{
    /* Keeps the service loop turning while connections close. */
    srv_timer_set(t, shutdown_tick, 50000);
}

static void flush_pool_wakes(void)
{
    srv_pool_flush_wakes(srv_g.pool);
}

int main(int argc, char **argv)
{
    srv_config *cfg = &srv_g.cfg;
    *cfg = (srv_config){
        .host = "127.0.0.1",
        .engine_name = "null",
        .event_loop = "libev",
        .protocol = "deepgram",
        .max_rate = -1, /* per protocol, see parse_args */
        .burst_ms = -1,
        .session_limit_s = 10800,
        .idle_timeout_ms = 10000,
        .null_span_ms = 1000,
        .workers = 2,
        .max_message_bytes = 4u << 20,
        .history = 10000,
        .frame_log = 4096,
    };
    if (parse_args(argc, argv, cfg))
        return 2;
    srv_g.proto = strcmp(cfg->protocol, "assemblyai") ? &srv_proto_deepgram : &srv_proto_assemblyai;
    if (!strcmp(cfg->protocol, "gemini"))
        srv_g.proto = &srv_proto_gemini;
    if (!strcmp(cfg->protocol, "openai"))
        srv_g.proto = &srv_proto_openai;
    if (!strcmp(cfg->protocol, "elevenlabs"))
        srv_g.proto = &srv_proto_elevenlabs;

    for (int i = 0; engines[i]; i++)
        if (!strcmp(engines[i]->name, cfg->engine_name))
            srv_g.engine_ops = engines[i];
    if (!srv_g.engine_ops) {
        fprintf(stderr,
                "steno-server: unknown or unavailable engine '%s' (built in:", cfg->engine_name);
        for (int i = 0; engines[i]; i++)
            fprintf(stderr, " %s", engines[i]->name);
        fputs(")\n", stderr);
        return 2;
    }

    /* Signals are taken by one thread with sigwait(), so no handler ever
     * runs inside lws or a worker. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (srv_loop_init(cfg->event_loop))
        return 2;
    int fd_limit = raise_fd_limit();
    srv_g.rng = srv_rng_seed();
    int lws_levels = LLL_ERR | LLL_WARN | (cfg->verbose ? LLL_NOTICE | LLL_USER : 0);
    /* For debugging lws itself: STENO_SERVER_LWS_LOG=<lws log bitmask>. */
    if (getenv("STENO_SERVER_LWS_LOG"))
        lws_levels = atoi(getenv("STENO_SERVER_LWS_LOG"));
    lws_set_log_level(lws_levels, NULL);

    char err[256] = "";
    if (srv_g.engine_ops->engine_create(&srv_g.engine, cfg->engine_opt, err, sizeof(err))) {
        fprintf(stderr, "steno-server: engine %s: %s\n", srv_g.engine_ops->name,
                err[0] ? err : "failed to start");
        return 1;
    }

    static struct lws_protocols listen_protocols[] = {
        {"steno-listen", srv_listen_callback, 0, 65536, 0, NULL, 0},
        /* Deepgram's browser authentication offers these subprotocols, with
         * the key as a second one; lws must know the names to accept them. */
        {"token", srv_listen_callback, 0, 65536, 0, NULL, 0},
        {"bearer", srv_listen_callback, 0, 65536, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    static struct lws_protocols control_protocols[] = {
        {"steno-control", srv_control_callback, 0, 16384, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    control_protocols[0].per_session_data_size = srv_control_pss_size();

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (cfg->tls_cert)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.fd_limit_per_thread = (unsigned int)fd_limit;
    info.count_threads = 1;
    info.pt_serv_buf_size = 32768;
    /* Deepgram URLs with many keyterms are long; lws's default is 4 KiB. */
    info.max_http_header_data = 32768;
    srv_loop_context_info(&info);
    srv_g.ctx = lws_create_context(&info);
    if (!srv_g.ctx) {
        fprintf(stderr, "steno-server: cannot create the lws context (event loop %s)\n",
                srv_loop_name());
        srv_g.engine_ops->engine_destroy(srv_g.engine);
        srv_loop_destroy(NULL);
        return 1;
    }
    srv_loop_attach(srv_g.ctx);

    memset(&info, 0, sizeof(info));
    info.vhost_name = "listen";
    info.port = cfg->port;
    info.iface = cfg->host;
    info.protocols = listen_protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    if (cfg->tls_cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
    }
    info.timeout_secs = 10;
    /* No lws validity timer: clients ping us, and we never ping them. lws's default policy
     * re-arms a 300 s timer per connection on every ping it answers, a sorted insertion into a
     * list as long as the number of connections (0 = no validity timer). */
    static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0,
                                               .secs_since_valid_hangup = 0};
    info.retry_and_idle_policy = &no_validity;
    srv_g.vh_listen = lws_create_vhost(srv_g.ctx, &info);

    memset(&info, 0, sizeof(info));
    info.vhost_name = "control";
    info.port = cfg->control_port;
    info.iface = "127.0.0.1";
    info.protocols = control_protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    info.timeout_secs = 10;
    info.retry_and_idle_policy = &no_validity;
    srv_g.vh_control = srv_g.vh_listen ? lws_create_vhost(srv_g.ctx, &info) : NULL;

    if (!srv_g.vh_listen || !srv_g.vh_control) {
        fprintf(stderr, "steno-server: cannot listen on %s:%d / 127.0.0.1:%d\n", cfg->host,
                cfg->port, cfg->control_port);
        srv_loop_destroy(srv_g.ctx);
        srv_g.engine_ops->engine_destroy(srv_g.engine);
        return 1;
    }
    srv_g.port = lws_get_vhost_listen_port(srv_g.vh_listen);
    srv_g.control_port = lws_get_vhost_listen_port(srv_g.vh_control);

    if (srv_pool_start(&srv_g.pool, cfg->workers, srv_g.proto, srv_g.engine_ops, srv_g.engine,
                       srv_g.ctx)) {
        fputs("steno-server: cannot start worker threads\n", stderr);
        srv_loop_destroy(srv_g.ctx);
        srv_g.engine_ops->engine_destroy(srv_g.engine);
        return 1;
    }

    if (srv_loop_on_turn_end(flush_pool_wakes) == 0)
        srv_pool_defer_wakes(srv_g.pool);

    pthread_t sig_thread;
    pthread_create(&sig_thread, NULL, signal_thread, NULL);

    printf("steno-server listening on %s:%d control 127.0.0.1:%d\n", cfg->host, srv_g.port,
           srv_g.control_port);
    fflush(stdout);
    if (cfg->verbose)
        fprintf(stderr,
                "steno-server: protocol %s, engine %s, %d workers, fd limit %d, event loop %s\n",
                srv_g.proto->name, srv_g.engine_ops->name, cfg->workers, fd_limit, srv_loop_name());

    srv_loop_run();

    /* Graceful part: tell every client, give them a moment to see it. */
    srv_g.shutting_down = 1;
    srv_listen_close_all(1001, "server shutting down");
    srv_timer tick = {0};
    if (srv_timers_reserve(1) == 0)
        shutdown_tick(&tick);
    int64_t deadline = srv_mono_us() + 2000000;
    while (srv_g.n_active && srv_mono_us() < deadline)
        if (srv_loop_turn() < 0)
            break;
    srv_timer_cancel(&tick);

    srv_pool_detach_lws(srv_g.pool);
    srv_loop_destroy(srv_g.ctx);
    srv_g.ctx = NULL;
    srv_timers_free();
    srv_pool_stop(srv_g.pool);
    srv_g.pool = NULL;
    srv_g.engine_ops->engine_destroy(srv_g.engine);
    srv_rec_free_all();
    srv_faults_free();
    free(cfg->record_headers);

    /* The signal thread has returned if a signal stopped us. */
    if (srv_loop_stop_requested())
        pthread_join(sig_thread, NULL);
    else
        pthread_cancel(sig_thread), pthread_join(sig_thread, NULL);
    return 0;
}
