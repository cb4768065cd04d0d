/* bench_util: what every benchmark needs — a steno-server child, its control API, clocks,
 * memory and CPU readings. */
#ifndef STENO_BENCH_UTIL_H
#define STENO_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Prints "bench: ..." on stderr, stops the server if one runs, exits 1. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A steno-server child process. */
typedef struct bench_server {
    pid_t pid;
    int port;
    int control_port;
    char url[128]; /* ws://127.0.0.1:PORT/v1/listen */
} bench_server;

/* Starts `exe` (or $STENO_SERVER when exe is NULL) with --engine null on free ports plus the
 * extra arguments (NULL-terminated, may be NULL); returns once it printed its first line.
 * Call before any SDK thread exists. */
void bench_server_start(bench_server *srv, const char *exe, const char *const *extra);
/* A throwaway self-signed certificate for 127.0.0.1 (the openssl command, EC P-256) in a fresh
 * temporary directory removed at exit: its paths into cert and key (the certificate is its own
 * CA: the client's ca_file). */
void bench_make_cert(char *cert, size_t cert_len, char *key, size_t key_len);
/* Rewrites srv->url to wss:// (the server was started with --tls-cert and --tls-key). */
void bench_server_use_tls(bench_server *srv);
/* SIGTERM and wait. Idempotent. */
void bench_server_stop(bench_server *srv);

/* One HTTP request to the control API. Returns the status; *body (when not NULL) receives
 * the malloc'd, NUL-terminated response body. */
int bench_http(const bench_server *srv, const char *method, const char *path, const char *json,
               char **body);

/* Clocks: monotonic ms and ns, wall-clock seconds since the epoch (the server's record
 * times are wall-clock). */
uint64_t bench_now_ms(void);
uint64_t bench_now_ns(void);
double bench_wall_s(void);
/* Sleeps until the monotonic clock reaches ns. */
void bench_sleep_until_ns(uint64_t ns);

/* Resident set size of this process in KiB (from /proc/self/status). */
uint64_t bench_rss_kib(void);
/* CPU seconds (user + system) of this process, or of the calling thread. */
double bench_cpu_process_s(void);
double bench_cpu_thread_s(void);
/* CPU seconds (user + system) of another process (from /proc/PID/stat, clock-tick
 * resolution), or -1 when it cannot be read. */
double bench_cpu_pid_s(int pid);

/* Raises the soft open-files limit to the hard one (for many sessions). */
void bench_raise_nofile(void);

/* Parses "1,10,100" into at most max values; returns how many. */
int bench_parse_list(const char *s, uint32_t *out, int max);

/* Sorts v and returns its median (v is reordered); 0 for n == 0. */
double bench_median(double *v, size_t n);
double bench_max(const double *v, size_t n);

/* Runs fn(arg, out) in a forked child process (so one case's memory and threads cannot touch
 * the next) and copies its `size`-byte result back into out. Fork before any SDK thread
 * exists in this process. 0 when the child delivered the whole result and exited 0. */
int bench_in_child(void (*fn)(void *arg, void *out), void *arg, void *out, size_t size);

/* Prints the command line that reproduces this run: "reproduce: ARGV..." */
void bench_print_command(int argc, char **argv);

/* Under callgrind with BENCH_CALLGRIND_WINDOWS set (tools/bench/run-callgrind-sessions):
 * counters zeroed when a streaming window begins and dumped, named, when it ends, so the
 * instructions of a window can be read apart from the connecting and the teardown around it.
 * Callgrind zeroes only the calling thread's counters, so this suits single-threaded clients (the
 * floor); steno's streaming cost comes from the difference of two runs instead. Nothing without
 * valgrind/callgrind.h or without the variable. */
#ifdef BENCH_HAVE_CALLGRIND
#include <stdlib.h>
#include <valgrind/callgrind.h>
#define BENCH_WINDOW_BEGIN()                                                                       \
    do {                                                                                           \
        if (getenv("BENCH_CALLGRIND_WINDOWS"))                                                     \
            CALLGRIND_ZERO_STATS;                                                                  \
    } while (0)
#define BENCH_WINDOW_END(name)                                                                     \
    do {                                                                                           \
        if (getenv("BENCH_CALLGRIND_WINDOWS"))                                                     \
            CALLGRIND_DUMP_STATS_AT(name);                                                         \
    } while (0)
#else
#define BENCH_WINDOW_BEGIN() ((void)0)
#define BENCH_WINDOW_END(name) ((void)(name))
#endif

#endif
