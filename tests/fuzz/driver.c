/* driver: runs a fuzz target without libFuzzer: its seed corpus, then a seeded mutation loop. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"

/*
 * Usage: fuzz_<name> [-iterations=N] [-seed=S] [-max_len=N] [-dict=FILE] DIR|FILE...
 *
 * Every file of the corpus directories (sorted by name) runs once, then N
 * mutants of them. No coverage feedback, but the same input always gives the
 * same mutants (xorshift PRNG from the seed), so a failure in CI reproduces
 * with the same command. FUZZ_ITERATIONS and FUZZ_SEED override -iterations
 * and -seed. A failing input is written to fuzz-crash-<name> in the working
 * directory (or FUZZ_ARTIFACT_DIR) and, when short, printed in hex.
 */

struct buf {
    uint8_t *p;
    size_t n;
};

static struct buf *corpus;
static size_t n_corpus;
static struct buf *dict;
static size_t n_dict;
static size_t max_len = 8192;
static uint64_t rng_state;

/* The input being run, for the crash report. */
static const uint8_t *cur_data;
static size_t cur_size;
static char crash_path[4096];

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

/* ---- crash report (async-signal-safe: open/write only) ---- */

static void put(int fd, const char *s)
{
    ssize_t r = write(fd, s, strlen(s));
    (void)r;
}

static void report_crash(void)
{
    static volatile sig_atomic_t once;
    if (once || !cur_data)
        return;
    once = 1;
    int fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        ssize_t r = write(fd, cur_data, cur_size);
        (void)r;
        close(fd);
        put(2, "fuzz driver: failing input written to ");
        put(2, crash_path);
        put(2, "\n");
    }
    if (cur_size <= 1024) {
        static const char hex[] = "0123456789abcdef";
        put(2, "fuzz driver: failing input (hex): ");
        for (size_t i = 0; i < cur_size; i++) {
            char h[2] = {hex[cur_data[i] >> 4], hex[cur_data[i] & 15]};
            ssize_t r = write(2, h, 2);
            (void)r;
        }
        put(2, "\n");
    }
}

static void on_signal(int sig)
{
    report_crash();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Sanitizers end the process from their own reports without a signal: they
 * call this hook first (weak: absent in plain builds). */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

/* Undefined behaviour must fail the run, not scroll by in the log (UBSAN_OPTIONS still
 * overrides). Read by the UBSan runtime; unused in other builds. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

/* ---- corpus and dictionary ---- */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "fuzz driver: out of memory\n");
        exit(2);
    }
    return q;
}

static void add(struct buf **v, size_t *n, const uint8_t *p, size_t len)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[*n].p = xrealloc(NULL, len);
    if (len)
        memcpy((*v)[*n].p, p, len);
    (*v)[*n].n = len;
    (*n)++;
}

static int load_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz driver: %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint8_t *p = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            p = xrealloc(p, cap);
        }
        size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    add(&corpus, &n_corpus, p, n);
    free(p);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz driver: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return load_file(path);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = xrealloc(NULL, len);
        snprintf(names[n], len, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str); /* readdir order is not deterministic */
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (load_file(names[i]))
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* libFuzzer/AFL dictionary: one "token" per line (optionally name="token"), with \\ \" \xHH. */
static int load_dict(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "fuzz driver: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *q = strchr(line, '"');
        if (line[0] == '#' || !q)
            continue;
        uint8_t tok[4096];
        size_t n = 0;
        for (q++; *q && *q != '"' && n < sizeof tok; q++) {
            if (*q == '\\' && q[1] == 'x' && hexval(q[2]) >= 0 && hexval(q[3]) >= 0) {
                tok[n++] = (uint8_t)(hexval(q[2]) * 16 + hexval(q[3]));
                q += 3;
            } else if (*q == '\\' && q[1]) {
                tok[n++] = (uint8_t) * ++q;
            } else {
                tok[n++] = (uint8_t)*q;
            }
        }
        if (n)
            add(&dict, &n_dict, tok, n);
    }
    fclose(f);
    return 0;
}

/* ---- mutation ---- */

static const int64_t interesting[] = {
    0,         1,         -1,         2,         7,         8,
    16,        32,        63,         64,        100,       127,
    128,       255,       256,        512,       1000,      1024,
    4096,      32767,     32768,      65535,     65536,     100000,
    INT32_MAX, INT32_MIN, UINT32_MAX, INT64_MAX, INT64_MIN, 0x7fffffffffffffLL,
};

/* Makes room for `len` more bytes at `at`. */
static void insert_gap(struct buf *b, size_t at, size_t len)
{
    b->p = xrealloc(b->p, b->n + len);
    memmove(b->p + at + len, b->p + at, b->n - at);
    b->n += len;
}

static void insert_bytes(struct buf *b, size_t at, const uint8_t *src, size_t len)
{
    insert_gap(b, at, len);
    memcpy(b->p + at, src, len);
}

static void mutate_once(struct buf *b)
{
    switch (rnd_below(11)) {
    case 0: /* flip a bit */
        if (b->n)
            b->p[rnd_below(b->n)] ^= (uint8_t)(1u << rnd_below(8));
        break;
    case 1: /* set a byte */
        if (b->n)
            b->p[rnd_below(b->n)] = (uint8_t)rnd();
        break;
    case 2: { /* insert random bytes */
        uint8_t r[8];
        size_t len = 1 + rnd_below(sizeof r);
        for (size_t i = 0; i < len; i++)
            r[i] = (uint8_t)rnd();
        insert_bytes(b, rnd_below(b->n + 1), r, len);
        break;
    }
    case 3: { /* delete a range */
        if (!b->n)
            break;
        size_t at = rnd_below(b->n), len = 1 + rnd_below(b->n - at < 16 ? b->n - at : 16);
        memmove(b->p + at, b->p + at + len, b->n - at - len);
        b->n -= len;
        break;
    }
    case 4: { /* copy a range of itself elsewhere (insert) */
        if (!b->n)
            break;
        size_t from = rnd_below(b->n), len = 1 + rnd_below(b->n - from);
        uint8_t *tmp = xrealloc(NULL, len);
        memcpy(tmp, b->p + from, len);
        insert_bytes(b, rnd_below(b->n + 1), tmp, len);
        free(tmp);
        break;
    }
    case 5: { /* splice: our head, another corpus entry's tail */
        const struct buf *o = &corpus[rnd_below(n_corpus)];
        size_t keep = rnd_below(b->n + 1), from = rnd_below(o->n + 1);
        b->p = xrealloc(b->p, keep + (o->n - from));
        memcpy(b->p + keep, o->p + from, o->n - from);
        b->n = keep + (o->n - from);
        break;
    }
    case 6: { /* insert a piece of another corpus entry */
        const struct buf *o = &corpus[rnd_below(n_corpus)];
        if (!o->n)
            break;
        size_t from = rnd_below(o->n), len = 1 + rnd_below(o->n - from);
        insert_bytes(b, rnd_below(b->n + 1), o->p + from, len);
        break;
    }
    case 7: { /* overwrite with an interesting integer, 1/2/4/8 bytes, either endianness */
        size_t width = (size_t)1 << rnd_below(4);
        if (b->n < width)
            break;
        uint64_t v = (uint64_t)interesting[rnd_below(sizeof interesting / sizeof interesting[0])];
        size_t at = rnd_below(b->n - width + 1);
        int be = (int)(rnd() & 1);
        for (size_t i = 0; i < width; i++)
            b->p[at + (be ? width - 1 - i : i)] = (uint8_t)(v >> (8 * i));
        break;
    }
    case 8: /* arithmetic on a byte */
        if (b->n)
            b->p[rnd_below(b->n)] += (uint8_t)(rnd_below(35) - 17);
        break;
    case 9: /* a dictionary token, inserted or overwriting */
    case 10:
        if (n_dict) {
            const struct buf *t = &dict[rnd_below(n_dict)];
            size_t at = rnd_below(b->n + 1);
            if (rnd() & 1 && at + t->n <= b->n)
                memcpy(b->p + at, t->p, t->n);
            else
                insert_bytes(b, at, t->p, t->n);
        } else if (b->n) {
            b->n = rnd_below(b->n); /* truncate */
        }
        break;
    }
    if (b->n > max_len)
        b->n = max_len;
}

/* ---- running ---- */

static void run_one(const uint8_t *p, size_t n)
{
    /* An exact-size heap copy, so ASan sees any read past the end. */
    uint8_t *copy = xrealloc(NULL, n);
    if (n)
        memcpy(copy, p, n);
    cur_data = copy;
    cur_size = n;
    LLVMFuzzerTestOneInput(copy, n);
    cur_data = NULL;
    free(copy);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end) {
        fprintf(stderr, "fuzz driver: %s must be a decimal number, not '%s'\n", name, v);
        exit(2);
    }
    return x;
}

int main(int argc, char **argv)
{
    uint64_t iterations = 10000, seed = 1;
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    int inputs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "-iterations=", 12) == 0) {
            iterations = strtoull(a + 12, NULL, 10);
        } else if (strncmp(a, "-seed=", 6) == 0) {
            seed = strtoull(a + 6, NULL, 10);
        } else if (strncmp(a, "-max_len=", 9) == 0) {
            max_len = strtoull(a + 9, NULL, 10);
        } else if (strncmp(a, "-dict=", 6) == 0) {
            if (load_dict(a + 6))
                return 2;
        } else if (a[0] == '-') {
            fprintf(stderr, "fuzz driver: unknown option '%s'\n", a);
            return 2;
        } else {
            if (load_path(a))
                return 2;
            inputs++;
        }
    }
    iterations = env_u64("FUZZ_ITERATIONS", iterations);
    seed = env_u64("FUZZ_SEED", seed);
    if (!inputs) {
        fprintf(stderr,
                "usage: %s [-iterations=N] [-seed=S] [-max_len=N] [-dict=FILE] DIR|FILE...\n",
                name);
        return 2;
    }

    const char *dir = getenv("FUZZ_ARTIFACT_DIR");
    snprintf(crash_path, sizeof crash_path, "%s%sfuzz-crash-%s", dir ? dir : "", dir ? "/" : "",
             name);
    signal(SIGABRT, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGFPE, on_signal);
    signal(SIGILL, on_signal);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(report_crash);

    double t0 = now_s();
    for (size_t i = 0; i < n_corpus; i++)
        run_one(corpus[i].p, corpus[i].n);
    if (!n_corpus) /* an empty corpus still gets mutants of the empty input */
        add(&corpus, &n_corpus, NULL, 0);

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    if (!rng_state)
        rng_state = 1;
    struct buf m = {NULL, 0};
    for (uint64_t it = 0; it < iterations; it++) {
        /* Half the time keep mutating the last mutant (deeper changes), else restart from a
         * corpus entry. */
        if (it % 8 == 0 || rnd() & 1) {
            const struct buf *src = &corpus[rnd_below(n_corpus)];
            m.p = xrealloc(m.p, src->n);
            if (src->n)
                memcpy(m.p, src->p, src->n);
            m.n = src->n;
        }
        size_t k = 1 + rnd_below(4);
        for (size_t j = 0; j < k; j++)
            mutate_once(&m);
        run_one(m.p, m.n);
    }
    double dt = now_s() - t0;
    uint64_t total = n_corpus + iterations;
    printf("%s: %zu corpus inputs + %llu mutants (seed %llu) in %.2f s, %.0f execs/s\n", name,
           n_corpus, (unsigned long long)iterations, (unsigned long long)seed, dt,
           dt > 0 ? (double)total / dt : 0.0);
    free(m.p);
    for (size_t i = 0; i < n_corpus; i++)
        free(corpus[i].p);
    free(corpus);
    for (size_t i = 0; i < n_dict; i++)
        free(dict[i].p);
    free(dict);
    return 0;
}
