/* steno-chaos: command line, startup line, signals; a fault-injecting TCP proxy for tests. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "loop.h"
#include "proxy.h"
#include "toxic.h"

static const char usage_text[] =
    "usage: steno-chaos --listen HOST:PORT --upstream HOST:PORT [--control HOST:PORT]\n"
    "                   [--seed N] [--toxic SPEC]... [--verbose]\n"
    "\n"
    "A TCP proxy that forwards every client connection to the upstream and injects\n"
    "faults (\"toxics\") into it. Single-threaded, epoll, no SDK code.\n"
    "\n"
    "  --listen HOST:PORT    where clients connect (port 0: the kernel picks one)\n"
    "  --upstream HOST:PORT  where each connection is forwarded\n"
    "  --control HOST:PORT   HTTP control API (port 0: the kernel picks one)\n"
    "  --seed N              seed for the jitter generator (default: random);\n"
    "                        the same seed replays the same jitter on connection K\n"
    "  --toxic SPEC          add a toxic at start (repeatable); SPEC is key=value pairs\n"
    "                        joined by commas, same keys as the JSON API, e.g.\n"
    "                        type=latency,latency_ms=100,jitter_ms=20,direction=downstream\n"
    "  -v, --verbose         log connection events on stderr\n"
    "  -h, --help            this text\n"
    "\n"
    "The first line on stdout, flushed once everything is bound, is\n"
    "  listening HOST:PORT upstream HOST:PORT [control HOST:PORT] seed N\n"
    "SIGTERM or SIGINT: reset every connection and exit 0. SIGUSR1: reset all\n"
    "connections (like POST /reset-all).\n"
    "\n"
    "Toxics (a JSON object; unknown keys are rejected):\n"
    "  common    name        [A-Za-z0-9_.-]{1,63}, default <type>_<n>; unique\n"
    "            direction   upstream (client->server) | downstream | both (default)\n"
    "            connection  connection id (1, 2, ... in accept order) to scope the\n"
    "                        toxic to one connection, even one not yet accepted;\n"
    "                        omitted: all current and future connections\n"
    "  latency   latency_ms, jitter_ms (default 0): each read chunk is held\n"
    "            latency_ms + uniform[-jitter_ms, +jitter_ms] (never reordered);\n"
    "            latencies of several toxics add up\n"
    "  bandwidth bytes_per_s: pace writes to this rate (lowest toxic wins)\n"
    "  reset     after_bytes and/or after_ms (neither: at once): forward exactly\n"
    "            after_bytes in a direction, wait until the peer ACKed them, then RST\n"
    "            both sockets (SO_LINGER 0); after_ms: RST both that long after the\n"
    "            toxic applied (accept, or toxic creation for live connections)\n"
    "  close     after_bytes and/or after_ms (neither: at once): like reset, but a\n"
    "            clean FIN to both sides; queued data beyond after_bytes is dropped\n"
    "  blackhole mode stall (default) | discard: forward nothing either way and keep\n"
    "            both sockets open (a half-open connection). stall: stop reading, so\n"
    "            kernel buffers fill and the sender eventually blocks, and a peer's\n"
    "            FIN is not seen; discard: read and drop, so the sender never blocks.\n"
    "            Lifting it lets stalled data and FINs through. A peer's RST still\n"
    "            tears the connection down.\n"
    "  Byte counts are per direction and start when the toxic applies. Removing a\n"
    "  toxic ends its effect on every connection (bytes a latency toxic already\n"
    "  holds keep their delay). Each direction buffers at most 256 KiB, so a slow\n"
    "  or paced reader pushes back on the sender.\n"
    "\n"
    "Control API (HTTP/1.1, JSON bodies, one request per connection):\n"
    "  GET    /health                  {status, listen, upstream, seed (string),\n"
    "                                   connections, accepted, toxics, uptime_ms}\n"
    "  GET    /connections             every live connection, oldest first:\n"
    "    [{id, client (HOST:PORT), state (connecting|open|resetting|closing), age_ms,\n"
    "      bytes_up, bytes_down (forwarded to the upstream, to the client),\n"
    "      received_up, received_down (read from the client, from the upstream),\n"
    "      queued_up, queued_down (held in the proxy), toxics (names that apply),\n"
    "      delays_ms: {upstream: [..], downstream: [..]} (the first 32 latency\n"
    "      delays applied, one per read: compare them across runs with one seed)}]\n"
    "  GET    /connections/ID          one connection\n"
    "  POST   /connections/ID/reset    RST that connection now      -> {reset: 1}\n"
    "  POST   /reset-all               RST every connection now     -> {reset: n}\n"
    "  GET    /toxics                  [toxic]\n"
    "  POST   /toxics                  add the toxic in the body    -> 201 toxic\n"
    "  DELETE /toxics                  remove all                   -> {removed: n}\n"
    "  DELETE /toxics/NAME             remove one                   -> {removed: 1}\n"
    "  Errors: {error: message} with 400 (malformed request, JSON or toxic),\n"
    "  404 (no such endpoint, connection or toxic), 405 (wrong method, with Allow),\n"
    "  409 (name taken, or over 1024 toxics), 413 (body over 64 KiB).\n"
    "\n"
    "Example:\n"
    "  curl -d '{\"type\":\"reset\",\"after_bytes\":1000,\"direction\":\"downstream\"}' \\\n"
    "       http://127.0.0.1:PORT/toxics\n";

static int parse_addr(const char *arg, const char *what, struct sockaddr_storage *ss,
                      socklen_t *len)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", arg);
    char *colon = strrchr(buf, ':');
    if (!colon || colon == buf || !colon[1]) {
        fprintf(stderr, "steno-chaos: %s: expected HOST:PORT, got '%s'\n", what, arg);
        return -1;
    }
    *colon = '\0';
    char *host = buf;
    if (host[0] == '[' && colon[-1] == ']') {
        host++;
        colon[-1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc) {
        fprintf(stderr, "steno-chaos: %s '%s': %s\n", what, arg, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int parse_seed(const char *arg, uint64_t *seed)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 0);
    if (errno || end == arg || *end || arg[0] == '-')
        return -1;
    *seed = v;
    return 0;
}

struct signals {
    struct watch w;
    int fd;
    struct loop *loop;
    struct proxy *proxy;
};

static void signal_event(struct watch *w, uint32_t ev)
{
    struct signals *s = (struct signals *)(void *)w;
    struct signalfd_siginfo si;
    while (read(s->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGUSR1)
            steno__proxy_reset_all(s->proxy);
        else
            steno__loop_stop(s->loop);
    }
}

/* 1,000+ connections need 2,000+ descriptors; the usual soft limit is 1,024. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},  {"upstream", required_argument, NULL, 'u'},
        {"control", required_argument, NULL, 'c'}, {"seed", required_argument, NULL, 's'},
        {"toxic", required_argument, NULL, 't'},   {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    struct proxy_config cfg = {0};
    struct sockaddr_storage ctl_addr;
    socklen_t ctl_len = 0;
    bool have_listen = false, have_upstream = false, have_seed = false;
    const char **specs = calloc((size_t)argc, sizeof(*specs));
    size_t nspecs = 0;
    int opt;
    if (!specs)
        return 1;
    while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            if (parse_addr(optarg, "--listen", &cfg.listen_addr, &cfg.listen_len))
                goto usage;
            have_listen = true;
            break;
        case 'u':
            if (parse_addr(optarg, "--upstream", &cfg.upstream_addr, &cfg.upstream_len))
                goto usage;
            have_upstream = true;
            break;
        case 'c':
            if (parse_addr(optarg, "--control", &ctl_addr, &ctl_len))
                goto usage;
            break;
        case 's':
            if (parse_seed(optarg, &cfg.seed)) {
                fprintf(stderr, "steno-chaos: --seed: expected an unsigned integer, got '%s'\n",
                        optarg);
                goto usage;
            }
            have_seed = true;
            break;
        case 't':
            specs[nspecs++] = optarg;
            break;
        case 'v':
            cfg.verbose = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            free(specs);
            return 0;
        default:
            goto usage;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "steno-chaos: unexpected argument '%s'\n", argv[optind]);
        goto usage;
    }
    if (!have_listen || !have_upstream) {
        fprintf(stderr, "steno-chaos: --listen and --upstream are required\n");
        goto usage;
    }

    /* Parse every toxic before binding anything, so a typo fails fast. */
    struct toxic *toxics = calloc(nspecs ? nspecs : 1, sizeof(*toxics));
    if (!toxics)
        return 1;
    for (size_t i = 0; i < nspecs; i++) {
        char err[200];
        cJSON *o = steno__toxic_kv_to_json(specs[i], err, sizeof(err));
        int rc = o ? steno__toxic_from_json(o, &toxics[i], err, sizeof(err)) : -1;
        cJSON_Delete(o);
        if (rc) {
            fprintf(stderr, "steno-chaos: --toxic '%s': %s\n", specs[i], err);
            free(toxics);
            goto usage;
        }
    }
    if (!have_seed && getrandom(&cfg.seed, sizeof(cfg.seed), GRND_NONBLOCK) != sizeof(cfg.seed))
        cfg.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);

    int status = 1;
    char err[256];
    struct loop loop;
    struct proxy *proxy = NULL;
    struct control *ctl = NULL;
    struct signals sig = {.w.fn = signal_event, .fd = -1, .loop = &loop};
    if (steno__loop_init(&loop)) {
        fprintf(stderr, "steno-chaos: epoll: %s\n", strerror(errno));
        goto out;
    }
    proxy = steno__proxy_open(&loop, &cfg, err, sizeof(err));
    if (!proxy) {
        fprintf(stderr, "steno-chaos: %s\n", err);
        goto out;
    }
    sig.proxy = proxy;
    if (ctl_len &&
        !(ctl = steno__control_open(&loop, proxy, &ctl_addr, ctl_len, err, sizeof(err)))) {
        fprintf(stderr, "steno-chaos: %s\n", err);
        goto out;
    }
    sig.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sig.fd < 0 || steno__loop_add(&loop, sig.fd, &sig.w) < 0) {
        fprintf(stderr, "steno-chaos: signalfd: %s\n", strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < nspecs; i++) {
        int rc = steno__proxy_add_toxic(proxy, &toxics[i]);
        if (rc) {
            fprintf(stderr, "steno-chaos: --toxic '%s': %s\n", specs[i],
                    rc == -EEXIST ? "name given twice" : strerror(-rc));
            goto out;
        }
    }

    printf("listening %s upstream %s%s%s seed %llu\n", steno__proxy_listen_name(proxy),
           steno__proxy_upstream_name(proxy), ctl ? " control " : "",
           ctl ? steno__control_name(ctl) : "", (unsigned long long)cfg.seed);
    fflush(stdout);

    if (steno__loop_run(&loop)) {
        fprintf(stderr, "steno-chaos: epoll_wait: %s\n", strerror(errno));
        goto out;
    }
    status = 0;
out:
    steno__control_close(ctl);
    steno__proxy_close(proxy);
    if (sig.fd >= 0)
        close(sig.fd);
    steno__loop_fini(&loop);
    free(toxics);
    free(specs);
    return status;
usage:
    fprintf(stderr, "Try 'steno-chaos --help'.\n");
    free(specs);
    return 2;
}
