/* test_write_is_wait_free: steno_session_write never allocates, locks or waits on the capture
 * thread — live, through a dropped connection, a server close, and into a full ring. */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "interpose.h"
#include "steno/steno.h"

/*
 * The capture thread sets a thread-local flag around each
 * steno_session_write() call only; interpose.c counts every allocation,
 * lock and potentially waiting call made while the flag is set, whether the
 * call comes from libsteno, libwebsockets or libc's exported functions.
 * Invariant 4 allows exactly one thing: the wake of the network thread,
 * lws_cancel_service(), which writes to an eventfd (or pipe) — at most once
 * per chunk the write completes. Everything else must stay at zero.
 *
 * Page faults count too: a write that first touches a page of the ring
 * makes the kernel allocate it, on the capture thread, under the process's
 * mmap lock. The test therefore makes malloc map every block of 64 KiB or
 * more afresh (M_MMAP_THRESHOLD, so the ring gets untouched pages whatever
 * malloc's history), and in builds without a sanitizer (whose shadow memory
 * faults on its own) the writes must take no minor fault at all: the ring
 * has to be resident from open (invariant 5).
 *
 * Positive controls prove the counting reaches each layer: direct calls on
 * the flagged thread, libsteno's own mallocs and mutexes (a session opened
 * with the flag set), and libwebsockets' eventfd_write (the wakes the writes
 * themselves cause). Interposition by the executable works with gcc's
 * shared sanitizer runtimes too (the wrappers forward to their
 * interceptors); if it ever cannot, a sanitizer build skips (77).
 */

#define RATE 16000u
#define CHUNK_FRAMES 1600u             /* the default 100 ms chunk */
#define STREAM_FRAMES (RATE * 9u / 2u) /* 4.5 s at real time */
#define BURST_FRAMES (RATE * 3u)       /* into a 4-chunk ring that nobody drains */

static const size_t block_sizes[] = {1, 7, 13, 97, 159, 161, 331, 479, 1021, 1601, 2399, 3203};
#define N_BLOCKS (sizeof block_sizes / sizeof block_sizes[0])

static int sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return 1;
#else
    return 0;
#endif
#else
    return 0;
#endif
}

/* ---- the witnesses ---- */

/* A loopback port with nobody listening: connections to it are refused at once. */
static int refused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    H_CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                getsockname(fd, (struct sockaddr *)&a, &alen) == 0,
            "bind: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- counting ---- */

typedef struct tally {
    uint64_t writes;
    uint64_t frames;
    uint64_t boundaries; /* chunk boundaries the writes crossed: each may publish and wake */
    uint64_t full;       /* writes that returned STENO_ERR_FULL */
    uint64_t during_outage;
    uint64_t nvcsw; /* voluntary context switches inside the writes: any blocking wait */
    uint64_t minflt;
    uint64_t calls[IP_N];
} tally;

static void tally_take(tally *t)
{
    for (int f = 0; f < IP_N; f++)
        t->calls[f] += ip_count((ip_fn)f);
    ip_reset();
}

static void thread_usage(struct rusage *ru)
{
    getrusage(RUSAGE_THREAD, ru);
}

/* One watched write; everything around the call itself is unwatched test bookkeeping. */
static steno_status watched_write(steno_session *s, const int16_t *pcm, size_t frames,
                                  uint32_t *fill, tally *t)
{
    struct rusage r0, r1;
    thread_usage(&r0);
    ip_watch(1);
    steno_status rc = steno_session_write(s, pcm, frames);
    ip_watch(0);
    thread_usage(&r1);
    t->nvcsw += (uint64_t)(r1.ru_nvcsw - r0.ru_nvcsw);
    t->minflt += (uint64_t)(r1.ru_minflt - r0.ru_minflt);
    t->writes++;
    t->frames += frames;
    uint64_t total = (uint64_t)*fill + frames;
    t->boundaries += total / CHUNK_FRAMES;
    *fill = (uint32_t)(total % CHUNK_FRAMES);
    if (rc == STENO_ERR_FULL)
        t->full++;
    return rc;
}

static void print_tally(const char *phase, const tally *t)
{
    printf("%s: %" PRIu64 " writes, %" PRIu64 " frames, %" PRIu64 " chunk boundaries, %" PRIu64
           " FULL, %" PRIu64 " during an outage, %" PRIu64 " voluntary context switches, %" PRIu64
           " minor faults\n",
           phase, t->writes, t->frames, t->boundaries, t->full, t->during_outage, t->nvcsw,
           t->minflt);
    for (int f = 0; f < IP_N; f++)
        if (t->calls[f])
            printf("  %-26s %" PRIu64 "\n", ip_name((ip_fn)f), t->calls[f]);
}

/* Wakes are the eventfd (or pipe) writes of lws_cancel_service; nothing else may be written. */
static uint64_t wakes_of(const tally *t)
{
    return t->calls[IP_EVENTFD_WRITE] + t->calls[IP_WRITE];
}

static void check_clean(const char *phase, const tally *t)
{
    for (int f = 0; f < IP_N; f++) {
        if (f == IP_EVENTFD_WRITE || f == IP_WRITE)
            continue;
        H_CHECK(t->calls[f] == 0, "%s: the capture thread called %s %" PRIu64 " times", phase,
                ip_name((ip_fn)f), t->calls[f]);
    }
    H_CHECK(wakes_of(t) <= t->boundaries,
            "%s: %" PRIu64 " wakes for %" PRIu64 " chunks: more than one per published chunk",
            phase, wakes_of(t), t->boundaries);
    int fds[16];
    int n = ip_written_fds(fds, 16);
    for (int i = 0; i < n && i < 16; i++) {
        char path[64], target[128];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
        ssize_t len = readlink(path, target, sizeof target - 1);
        H_CHECK(len > 0, "fd %d written by the capture thread is gone", fds[i]);
        target[len] = '\0';
        H_CHECK(strstr(target, "eventfd") || strncmp(target, "pipe:", 5) == 0,
                "%s: the capture thread wrote to fd %d (%s), not the wake eventfd/pipe", phase,
                fds[i], target);
    }
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    H_CHECK(t->minflt == 0,
            "%s: %" PRIu64 " page faults inside writes: the ring's pages were first touched by "
            "the capture thread, not at open",
            phase, t->minflt);
#endif
    /* A blocking wait anywhere (even inside libc, where the wrappers cannot see) is a
     * voluntary context switch. TSan's runtime may park on its own internal mutexes while
     * it records the accesses, so there the count is reported, not asserted. */
#if !defined(__SANITIZE_THREAD__)
    H_CHECK(t->nvcsw == 0, "%s: the capture thread blocked %" PRIu64 " times inside writes", phase,
            t->nvcsw);
#endif
}

/* ---- the capture thread ---- */

typedef struct shared {
    steno_client *c;
    steno_session *stream; /* streamed at real time, faults injected meanwhile */
    steno_session *burst;  /* 4-chunk ring to a refused port: fills at once */
    steno_session_config probe_cfg;
    int16_t *audio;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t progress; /* frames written to `stream` so far */
    tally stream_t, burst_t;
} shared;

static void positive_controls(shared *sh)
{
    /* Direct calls on this thread, through volatile pointers so the compiler keeps them. */
    void *(*volatile do_malloc)(size_t) = malloc;
    void (*volatile do_free)(void *) = free;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    int p[2];
    H_CHECK(pipe(p) == 0, "pipe");
    struct timespec ns = {0, 1};
    ip_reset();
    ip_watch(1);
    void *x = do_malloc(24);
    do_free(x);
    pthread_mutex_lock(&m);
    pthread_mutex_unlock(&m);
    nanosleep(&ns, NULL);
    poll(NULL, 0, 0);
    ssize_t w = write(p[1], "x", 1);
    ip_watch(0);
    close(p[0]);
    close(p[1]);
    H_CHECK(w == 1, "pipe write");
    static const ip_fn direct[] = {IP_MALLOC,    IP_FREE, IP_MUTEX_LOCK, IP_MUTEX_UNLOCK,
                                   IP_NANOSLEEP, IP_POLL, IP_WRITE};
    for (size_t i = 0; i < sizeof direct / sizeof direct[0]; i++)
        H_CHECK(ip_count(direct[i]) >= 1, "positive control: a direct %s was not counted",
                ip_name(direct[i]));
    printf("positive control, direct calls: malloc %" PRIu64 ", free %" PRIu64
           ", pthread_mutex_lock %" PRIu64 ", nanosleep %" PRIu64 ", poll %" PRIu64
           ", write %" PRIu64 "\n",
           ip_count(IP_MALLOC), ip_count(IP_FREE), ip_count(IP_MUTEX_LOCK), ip_count(IP_NANOSLEEP),
           ip_count(IP_POLL), ip_count(IP_WRITE));

    /* Through the library: opening a session allocates (steno__alloc -> malloc) and takes the
     * client's lock, both calls made from inside libsteno.so. */
    ip_reset();
    char err[512];
    steno_session *probe = NULL;
    ip_watch(1);
    steno_status rc = steno_session_open(sh->c, &sh->probe_cfg, &probe, err, sizeof err);
    ip_watch(0);
    H_CHECK(rc == STENO_OK, "probe session: %s", err);
    uint64_t allocs = ip_count(IP_MALLOC) + ip_count(IP_CALLOC) + ip_count(IP_REALLOC) +
                      ip_count(IP_POSIX_MEMALIGN) + ip_count(IP_ALIGNED_ALLOC);
    uint64_t locks = ip_count(IP_MUTEX_LOCK);
    printf("positive control, steno_session_open on the flagged thread: %" PRIu64
           " allocations, %" PRIu64 " mutex locks\n",
           allocs, locks);
    H_CHECK(allocs >= 1, "positive control: libsteno's allocations were not counted "
                         "(ELF interposition does not reach libsteno.so)");
    H_CHECK(locks >= 1, "positive control: libsteno's pthread_mutex_lock was not counted");
    /* Warm-up, unwatched: run every branch of the write path once (publish, wake, drop into
     * a full ring) so that first executions of its code pages are not counted as faults. */
    static int16_t warm[4 * CHUNK_FRAMES];
    for (int i = 0; i < 4; i++)
        steno_session_write(probe, warm, 4 * CHUNK_FRAMES);
    steno_session_destroy(probe);
    ip_reset();
}

static void *capture_main(void *arg)
{
    shared *sh = arg;
    positive_controls(sh);

    /* Live stream at real time, in odd blocks; the main thread injects faults meanwhile. */
    uint32_t fill = 0;
    uint64_t t0 = h_now_ms();
    size_t off = 0;
    for (size_t i = 0; off < STREAM_FRAMES; i++) {
        size_t n = block_sizes[i % N_BLOCKS];
        if (n > STREAM_FRAMES - off)
            n = STREAM_FRAMES - off;
        int down0 = steno_session_state_get(sh->stream) == STENO_STATE_RECONNECTING;
        steno_status rc = watched_write(sh->stream, sh->audio + off, n, &fill, &sh->stream_t);
        int down1 = steno_session_state_get(sh->stream) == STENO_STATE_RECONNECTING;
        tally_take(&sh->stream_t);
        H_CHECK(rc == STENO_OK, "write of %zu frames at %zu: %s", n, off, steno_status_name(rc));
        if (down0 && down1)
            sh->stream_t.during_outage++;
        off += n;
        pthread_mutex_lock(&sh->mu);
        sh->progress = off;
        pthread_cond_broadcast(&sh->cv);
        pthread_mutex_unlock(&sh->mu);
        /* pace at real time: sleep until the audio written so far is due */
        uint64_t due = t0 + (uint64_t)off * 1000u / RATE;
        uint64_t now = h_now_ms();
        if (due > now) {
            struct timespec ts = {(time_t)((due - now) / 1000u),
                                  (long)((due - now) % 1000u) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }

    /* A burst into a ring nobody drains: the producer finds it full and drops.
     * The network thread evicts on every wake, so on a loaded machine it can
     * keep pace with one burst; repeat the burst until the full path ran. */
    fill = 0;
    for (int round = 0; round < 100 && sh->burst_t.full == 0; round++) {
        off = 0;
        for (size_t i = 0; off < BURST_FRAMES; i++) {
            size_t n = block_sizes[(i * 5) % N_BLOCKS];
            if (n > BURST_FRAMES - off)
                n = BURST_FRAMES - off;
            steno_status rc = watched_write(sh->burst, sh->audio + off, n, &fill, &sh->burst_t);
            tally_take(&sh->burst_t);
            H_CHECK(rc == STENO_OK || rc == STENO_ERR_FULL, "burst write: %s",
                    steno_status_name(rc));
            off += n;
        }
    }
    return NULL;
}

/* ---- main: the application side ---- */

static void wait_progress(shared *sh, uint64_t frames)
{
    pthread_mutex_lock(&sh->mu);
    while (sh->progress < frames)
        pthread_cond_wait(&sh->cv, &sh->mu);
    pthread_mutex_unlock(&sh->mu);
}

static void wait_event(steno_session *s, steno_event_type want, uint64_t timeout_ms)
{
    uint64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = h_now_ms();
        H_CHECK(now < deadline, "no %s event within %" PRIu64 " ms", steno_event_type_name(want),
                timeout_ms);
        steno_event ev;
        steno_status rc = steno_session_next_event(s, &ev, (uint32_t)(deadline - now));
        if (rc == STENO_ERR_AGAIN)
            continue;
        H_CHECK(rc == STENO_OK, "next_event: %s", steno_status_name(rc));
        H_CHECK(ev.type != STENO_EVENT_FAILED, "session failed: %s", ev.u.failed.message);
        if (ev.type == want)
            return;
    }
}

int main(void)
{
    h_init("write_is_wait_free");

    /* Does interposition work in this build at all? */
    void *(*volatile do_malloc)(size_t) = malloc;
    void (*volatile do_free)(void *) = free;
    ip_reset();
    ip_watch(1);
    do_free(do_malloc(16));
    ip_watch(0);
    if (ip_count(IP_MALLOC) == 0 || !ip_ready()) {
        if (sanitized()) {
            printf("SKIP: this sanitizer runtime keeps the executable's malloc wrapper from "
                   "being called, so the capture thread's calls cannot be counted\n");
            return 77;
        }
        h_fail(__FILE__, __LINE__,
               "the executable's malloc wrapper is not called: "
               "interposition is broken (linked without export-dynamic?)");
    }
    ip_reset();

    /* Large blocks (the rings) in fresh, never-touched mappings; a fixed threshold also
     * stops glibc from raising it after the first free of such a block. */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);

    h_server srv;
    h_server_start(&srv, NULL); /* before any SDK thread exists: fork is then safe */

    shared sh;
    memset(&sh, 0, sizeof sh);
    pthread_mutex_init(&sh.mu, NULL);
    pthread_cond_init(&sh.cv, NULL);
    size_t audio_frames = STREAM_FRAMES > BURST_FRAMES ? STREAM_FRAMES : BURST_FRAMES;
    sh.audio = h_pattern_alloc(1, audio_frames);

    char err[512];
    H_CHECK(steno_client_open(NULL, &sh.c, err, sizeof err) == STENO_OK, "%s", err);

    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = srv.url;
    sc.allow_no_auth = 1;
    sc.sample_rate = RATE;
    sc.chunk_ms = CHUNK_FRAMES * 1000u / RATE;
    H_CHECK(steno_session_open(sh.c, &sc, &sh.stream, err, sizeof err) == STENO_OK, "%s", err);

    char burst_url[128];
    snprintf(burst_url, sizeof burst_url, "ws://127.0.0.1:%d/v1/listen", refused_port());
    steno_session_config bc = sc;
    bc.url = burst_url;
    bc.ring_chunks = 4;
    H_CHECK(steno_session_open(sh.c, &bc, &sh.burst, err, sizeof err) == STENO_OK, "%s", err);
    /* the probe: opened on the capture thread, then warms the write path into a full ring */
    sh.probe_cfg = bc;
    sh.probe_cfg.ring_chunks = 2;

    wait_event(sh.stream, STENO_EVENT_CONNECTED, 10000);
    pthread_t th;
    H_CHECK(pthread_create(&th, NULL, capture_main, &sh) == 0, "pthread_create");

    /* Fault 1: the TCP connection is dropped (RST) and the next two handshakes are refused,
     * so the outage lasts a few backoff delays while the capture thread keeps writing. */
    wait_progress(&sh, RATE * 3u / 2u);
    h_fault(&srv, "{\"action\":\"drop\",\"reject_next\":2,\"status\":503}");
    wait_event(sh.stream, STENO_EVENT_RECONNECTING, 5000);
    wait_event(sh.stream, STENO_EVENT_RECONNECTED, 10000);
    /* Fault 2: the server closes with 1011, and refuses the next handshake once. */
    wait_progress(&sh, RATE * 3u);
    h_fault(&srv, "{\"action\":\"close\",\"code\":1011,\"reason\":\"NET-0000\","
                  "\"reject_next\":1,\"status\":503}");
    wait_event(sh.stream, STENO_EVENT_RECONNECTING, 5000);
    wait_event(sh.stream, STENO_EVENT_RECONNECTED, 10000);

    H_CHECK(pthread_join(th, NULL) == 0, "pthread_join");

    print_tally("stream (live, a drop, a 1011 close)", &sh.stream_t);
    print_tally("burst (4-chunk ring, no connection)", &sh.burst_t);

    /* What was under test really happened. */
    H_CHECK(sh.stream_t.frames == STREAM_FRAMES, "stream phase wrote %" PRIu64, sh.stream_t.frames);
    H_CHECK(sh.stream_t.during_outage >= 1, "no write happened while the session was reconnecting");
    H_CHECK(sh.burst_t.full >= 1, "the burst never found the ring full");
    /* Interposition reached libwebsockets: its eventfd wakes were seen. */
    H_CHECK(wakes_of(&sh.stream_t) >= 1, "no wake was counted: lws_cancel_service's write is "
                                         "not interposed, so the counts prove nothing");

    check_clean("stream", &sh.stream_t);
    check_clean("burst", &sh.burst_t);

    steno_session_destroy(sh.burst);
    steno_status rc = steno_session_close(sh.stream, 15000);
    H_CHECK(rc == STENO_OK, "close: %s (%s)", steno_status_name(rc),
            steno_session_errmsg(sh.stream));
    steno_session_stats st;
    H_CHECK(steno_session_stats_get(sh.stream, &st) == STENO_OK, "stats");
    H_CHECK(st.samples_written == STREAM_FRAMES, "stats say %" PRIu64 " samples written",
            st.samples_written);
    H_CHECK(st.samples_dropped == 0 && st.samples_evicted == 0,
            "%" PRIu64 " dropped, %" PRIu64 " evicted", st.samples_dropped, st.samples_evicted);
    H_CHECK(st.samples_acked == STREAM_FRAMES, "%" PRIu64 " of %u samples finalized",
            st.samples_acked, STREAM_FRAMES);
    H_CHECK(st.reconnects >= 2, "%u reconnects", st.reconnects);
    steno_session_destroy(sh.stream);
    steno_client_destroy(sh.c);
    h_server_stop(&srv);
    free(sh.audio);
    printf("PASS: steno_session_write made no allocation, lock or wait on the capture thread; "
           "%" PRIu64 " wakes for %" PRIu64 " chunk boundaries\n",
           wakes_of(&sh.stream_t) + wakes_of(&sh.burst_t),
           sh.stream_t.boundaries + sh.burst_t.boundaries);
    return 0;
}
