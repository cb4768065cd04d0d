/* test_real_speech_wer_under_faults: three faults cost real speech no more than 2 WER points. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/*
 * Replay must be seamless for a real recogniser too, not only for the null
 * engine's exact spans: words cut by a fault are recognised again from the
 * replayed audio, and words already finalized are not repeated. The LibriVox
 * recordings shipped with pocketsphinx-testdata (joined, 0.5 s of near
 * silence between them) are streamed at real time through steno-server's
 * pocketsphinx engine twice at once: one session straight to the server,
 * fault-free; one through the chaos proxy, hit by a proxy reset, a server
 * close 1011 and a 503-refused reconnect. Both transcripts (the finals,
 * joined) are scored against the reference transcriptions shipped beside
 * the recordings; the faulted run's word error rate must be within 2 points
 * of the fault-free run's. Its connections must also each carry the written
 * audio from the first unacknowledged chunk on, and its timeline must be
 * monotonic. Skipped (77) without pocketsphinx or the recordings.
 */

#define RATE 16000u
#define CHUNK_FRAMES (RATE / 10u)
#define GAP (RATE / 2u)
#define SLACK_POINTS 2.0

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    H_CHECK(b && fread(b, 1, (size_t)n, f) == (size_t)n, "read %s", path);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* The reference for utterance id from a "<s> words </s> (id)" transcription file. */
static void append_reference(const char *trans, const char *id, char *out, size_t cap)
{
    char key[256];
    snprintf(key, sizeof key, "(%s)", id);
    const char *at = strstr(trans, key);
    H_CHECK(at, "no reference transcription for %s", id);
    const char *ls = at;
    while (ls > trans && ls[-1] != '\n')
        ls--;
    char line[2048];
    size_t n = (size_t)(at - ls) < sizeof line - 1 ? (size_t)(at - ls) : sizeof line - 1;
    memcpy(line, ls, n);
    line[n] = '\0';
    size_t len = strlen(out);
    for (char *tok = strtok(line, " \t"); tok; tok = strtok(NULL, " \t")) {
        if (!strcmp(tok, "<s>") || !strcmp(tok, "</s>") || !strcmp(tok, "<sil>"))
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s ", tok);
        H_CHECK(len < cap, "reference too long");
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The server's id for the session's current connection (by its request id). */
static int server_conn_id(const h_server *srv, h_collector *col)
{
    char rid[128] = "";
    pthread_mutex_lock(&col->mu);
    for (size_t i = 0; i < col->n; i++)
        if (col->ev[i].type == STENO_EVENT_CONNECTED || col->ev[i].type == STENO_EVENT_RECONNECTED)
            snprintf(rid, sizeof rid, "%s", col->ev[i].request_id);
    pthread_mutex_unlock(&col->mu);
    cJSON *recs = h_server_records(srv);
    const cJSON *r = h_record_by_rid(recs, rid);
    H_CHECK(r, "no server record for %s", rid);
    int id = (int)h_jnum(r, "id", -1);
    cJSON_Delete(recs);
    return id;
}

/* A session streaming the recordings, and its transcript's score. */
typedef struct scored {
    h_run run;
    char *text;
    double wer;
} scored;

static void open_scored(steno_client *cl, scored *r, const char *name, int port)
{
    h_run_init(&r->run, name, port);
    r->run.sc.ring_chunks = 400; /* recognition lags: hold the whole stream if need be */
    r->run.sc.close_timeout_ms = 60000;
    /* a recogniser may take a while to answer: no liveness verdict on a quiet decoder */
    r->run.sc.dead_after_ms = 5000;
    r->run.sc.ping_interval_ms = 1000;
    static const steno_option opts[] = {{"model", "nova-3"}, {"language", "en"}};
    r->run.sc.options = opts;
    r->run.sc.n_options = 2;
    h_run_open(&r->run, cl);
}

static int cmp_first_sample(const void *a, const void *b)
{
    const h_ev *x = *(const h_ev *const *)a, *y = *(const h_ev *const *)b;
    return x->first_sample < y->first_sample ? -1 : x->first_sample > y->first_sample;
}

/* The finals joined in timeline order: backfill finals (audio replayed on an extra connection
 * after an outage) arrive after live ones that follow them on the timeline. */
static void transcript_of(scored *r)
{
    h_collector *col = &r->run.col;
    size_t cap = 1, len = 0, n = 0;
    pthread_mutex_lock(&col->mu);
    const h_ev **fin = calloc(col->n + 1, sizeof *fin);
    H_CHECK(fin, "out of memory");
    for (size_t i = 0; i < col->n; i++)
        if (col->ev[i].type == STENO_EVENT_TRANSCRIPT && col->ev[i].is_final) {
            cap += strlen(col->ev[i].text) + 1;
            fin[n++] = &col->ev[i];
        }
    qsort(fin, n, sizeof *fin, cmp_first_sample);
    r->text = malloc(cap);
    H_CHECK(r->text, "out of memory");
    r->text[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (fin[i]->text[0])
            len += (size_t)snprintf(r->text + len, cap - len, "%s%s", len ? " " : "", fin[i]->text);
    pthread_mutex_unlock(&col->mu);
    free(fin);
}

int main(void)
{
    h_init("real_speech_wer_under_faults");
    const char *have = getenv("RES_HAVE_POCKETSPHINX");
    if (!have || strcmp(have, "1") != 0) {
        h_log("SKIP: steno-server built without pocketsphinx");
        return H_SKIP;
    }
    const char *dir = getenv("RES_LIBRIVOX");
    if (!dir)
        dir = "/usr/share/pocketsphinx/test/data/librivox";
    char path[1024];
    snprintf(path, sizeof path, "%s/transcription", dir);
    char *trans = read_file(path);
    DIR *d = opendir(dir);
    if (!trans || !d) {
        h_log("SKIP: no recordings in %s (package pocketsphinx-testdata)", dir);
        return H_SKIP;
    }
    char *names[64];
    size_t nf = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL && nf < 64;) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".wav") == 0)
            names[nf++] = strdup(de->d_name);
    }
    closedir(d);
    H_CHECK(nf > 0, "no .wav files in %s", dir);
    qsort(names, nf, sizeof names[0], cmp_str);

    /* the recordings joined, with a short pause of faint noise between them */
    size_t total = 0, cap = 0;
    int16_t *pcm = NULL;
    static char ref[16384];
    for (size_t i = 0; i < nf; i++) {
        int16_t *w;
        size_t frames;
        uint32_t rate;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        h_wav_load(path, &w, &frames, &rate);
        H_CHECK(rate == RATE, "%s: %u Hz", names[i], rate);
        if (total + frames + GAP > cap) {
            cap = (total + frames + GAP) * 2;
            pcm = realloc(pcm, cap * sizeof *pcm);
            H_CHECK(pcm, "out of memory");
        }
        memcpy(pcm + total, w, frames * sizeof *w);
        total += frames;
        for (size_t k = 0; k < GAP; k++)
            pcm[total + k] = (int16_t)(h_pattern_sample(2, total + k) % 8);
        total += GAP;
        free(w);
        names[i][strlen(names[i]) - 4] = '\0';
        append_reference(trans, names[i], ref, sizeof ref);
        free(names[i]);
    }
    free(trans);
    h_log("%zu recordings, %.1f s of speech", nf, (double)total / RATE);

    h_server srv, chaos;
    const char *args[] = {"--engine", "pocketsphinx", "--workers", "2", NULL};
    h_server_start(&srv, args);
    h_chaos_start(&chaos, srv.port);
    steno_client *cl = h_client_open(NULL);
    scored clean, faulted;
    memset(&clean, 0, sizeof clean);
    memset(&faulted, 0, sizeof faulted);
    open_scored(cl, &clean, "clean", srv.port);
    open_scored(cl, &faulted, "faulted", chaos.port);
    h_run_stream(&clean.run, pcm, total, 1.0);
    h_run_stream(&faulted.run, pcm, total, 1.0);

    /* three faults, at a quarter, half and three quarters of the stream */
    for (int k = 0; k < 3; k++) {
        size_t at = total * (size_t)(k + 1) / 4;
        H_CHECK(h_producer_wait(&faulted.run.prod, at, 120000), "producer stalled");
        size_t before = h_count(&faulted.run.col, STENO_EVENT_RECONNECTED);
        if (k == 0) {
            h_chaos_reset_all(&chaos);
        } else if (k == 1) {
            /* only the faulted session's connection */
            h_fault(&srv,
                    "{\"action\":\"close\",\"code\":1011,\"reason\":\"NET-0000\","
                    "\"connection\":%d}",
                    server_conn_id(&srv, &faulted.run.col));
        } else {
            h_fault(&srv, "{\"reject_next\":1,\"status\":503}");
            h_chaos_reset_all(&chaos);
        }
        H_CHECK(
            h_wait_type(&faulted.run.col, STENO_EVENT_RECONNECTED, before + 1, 30000 * h_slow()),
            "fault %d: no RECONNECTED", k + 1);
    }
    h_producer_join(&clean.run.prod);
    h_producer_join(&faulted.run.prod);
    h_run_close(&clean.run, 120000);
    h_run_close(&faulted.run, 120000);
    H_CHECK(h_server_wait_idle(&srv, 30000), "server connections still open");

    char **rw;
    size_t nr = h_words(ref, &rw);
    scored *runs[2] = {&clean, &faulted};
    for (int i = 0; i < 2; i++) {
        transcript_of(runs[i]);
        char **hw;
        size_t nh = h_words(runs[i]->text, &hw);
        runs[i]->wer = h_wer(rw, nr, hw, nh);
        h_words_free(hw, nh);
    }
    h_log("reference: %s", ref);
    h_log("clean (WER %.1f%%): %s", clean.wer, clean.text);
    h_log("faulted (WER %.1f%%): %s", faulted.wer, faulted.text);

    steno_session_stats st;
    steno_session_stats_get(faulted.run.s, &st);
    H_CHECK(st.reconnects == 3, "faulted: %u reconnects", st.reconnects);
    cJSON *recs = h_server_records(&srv);
    h_accounting acc;
    char err[256];
    H_CHECK(h_check_connections(&faulted.run.col, pcm, total, RATE, CHUNK_FRAMES, recs, &acc, err,
                                sizeof err),
            "faulted: %s", err);
    H_CHECK(h_check_connections(&clean.run.col, pcm, total, RATE, CHUNK_FRAMES, recs, NULL, err,
                                sizeof err),
            "clean: %s", err);
    h_log("faulted run: %zu connections, %" PRIu64 " samples replayed, %" PRIu64
          " finals suppressed",
          acc.connections, acc.replayed, st.finals_suppressed);
    cJSON_Delete(recs);
    H_CHECK(faulted.wer <= clean.wer + SLACK_POINTS,
            "faults cost %.1f WER points (%.1f%% vs %.1f%%), more than %.0f",
            faulted.wer - clean.wer, faulted.wer, clean.wer, SLACK_POINTS);
    H_CHECK(clean.wer < 50.0, "the fault-free run is implausibly bad (%.1f%%)", clean.wer);

    h_words_free(rw, nr);
    for (int i = 0; i < 2; i++) {
        h_run_free(&runs[i]->run);
        free(runs[i]->text);
    }
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
