/* test_smoke: one session streams 5 s to steno-server (null engine), closes, and every sample is
 * covered by exactly one final whose content hash matches what was written. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "steno/steno.h"

#define RATE 16000u
#define SECONDS 5u
#define TOTAL (RATE * SECONDS)

static int16_t audio[TOTAL];

int main(void)
{
    h_server srv;
    h_server_start(&srv, NULL);
    for (uint32_t i = 0; i < TOTAL; i++)
        audio[i] = h_sample(i);

    char err[512];
    steno_client *c;
    H_CHECK(steno_client_open(NULL, &c, err, sizeof err) == STENO_OK, "%s", err);
    steno_session_config sc;
    steno_session_config_init(&sc);
    sc.url = srv.url;
    sc.allow_no_auth = 1;
    sc.sample_rate = RATE;
    steno_option opts[] = {{"model", "nova-3"}, {"punctuate", "true"}};
    sc.options = opts;
    sc.n_options = 2;
    steno_session *s;
    H_CHECK(steno_session_open(c, &sc, &s, err, sizeof err) == STENO_OK, "%s", err);

    /* 20 ms writes, all at once: the ring holds 10 s, pacing keeps the wire at <= 1.25x */
    for (uint32_t off = 0; off < TOTAL; off += 320)
        H_CHECK(steno_session_write(s, audio + off, 320) == STENO_OK, "write at %u", off);
    uint64_t t0 = h_now_ms();
    steno_status rc = steno_session_close(s, 15000);
    H_CHECK(rc == STENO_OK, "close returned %s: %s", steno_status_name(rc),
            steno_session_errmsg(s));
    uint64_t took = h_now_ms() - t0;
    /* 2 s burst, then 3 s at 1.25x real time: never faster than the provider allows */
    H_CHECK(took >= 2000, "5 s of audio went out in %" PRIu64 " ms: faster than 1.25x", took);

    uint64_t covered = 0;
    int connected = 0, closed = 0, finals = 0;
    steno_event ev;
    while ((rc = steno_session_next_event(s, &ev, 0)) == STENO_OK) {
        switch (ev.type) {
        case STENO_EVENT_CONNECTED:
            connected++;
            H_CHECK(ev.u.connected.request_id[0], "no dg-request-id on CONNECTED");
            break;
        case STENO_EVENT_TRANSCRIPT: {
            const steno_transcript *t = &ev.u.transcript;
            if (!t->is_final)
                break;
            finals++;
            H_CHECK(t->first_sample == covered, "final starts at %" PRIu64 ", expected %" PRIu64,
                    t->first_sample, covered);
            H_CHECK(t->end_sample > t->first_sample && t->end_sample <= TOTAL, "bad span");
            unsigned long long a, b;
            char hex[17];
            H_CHECK(sscanf(t->text, "span %llu-%llu fnv1a64=%16s", &a, &b, hex) == 3,
                    "unexpected transcript '%s'", t->text);
            H_CHECK(a == t->first_sample && b == t->end_sample,
                    "one connection: provider offsets %llu-%llu must equal the session's", a, b);
            char want[17];
            snprintf(want, sizeof want, "%016" PRIx64,
                     h_fnv1a64(audio + a, (size_t)(b - a) * sizeof audio[0]));
            H_CHECK(strcmp(hex, want) == 0, "span %llu-%llu hash %s, wrote %s", a, b, hex, want);
            H_CHECK(t->start == (double)a / RATE && t->end == (double)b / RATE,
                    "times %f-%f do not match samples", t->start, t->end);
            covered = t->end_sample;
            break;
        }
        case STENO_EVENT_RECONNECTING:
        case STENO_EVENT_AUDIO_DROPPED:
        case STENO_EVENT_FAILED:
            H_CHECK(0, "unexpected %s", steno_event_type_name(ev.type));
            break;
        case STENO_EVENT_CLOSED:
            closed++;
            H_CHECK(ev.u.closed.status == STENO_OK, "CLOSED with %s",
                    steno_status_name(ev.u.closed.status));
            H_CHECK(ev.u.closed.unfinalized_samples == 0, "%" PRIu64 " samples unfinalized",
                    ev.u.closed.unfinalized_samples);
            break;
        default:
            break;
        }
    }
    H_CHECK(rc == STENO_ERR_STATE, "after CLOSED the queue says STATE, got %s",
            steno_status_name(rc));
    H_CHECK(connected == 1 && closed == 1, "connected %d closed %d", connected, closed);
    H_CHECK(covered == TOTAL, "finals cover %" PRIu64 " of %u samples", covered, TOTAL);
    H_CHECK(finals == (int)SECONDS, "%d finals for %u one-second spans", finals, SECONDS);

    steno_session_stats st;
    H_CHECK(steno_session_stats_get(s, &st) == STENO_OK, "stats");
    H_CHECK(st.samples_written == TOTAL && st.samples_acked == TOTAL && st.samples_sent == TOTAL,
            "written %" PRIu64 " sent %" PRIu64 " acked %" PRIu64, st.samples_written,
            st.samples_sent, st.samples_acked);
    H_CHECK(st.state == STENO_STATE_CLOSED && st.chunks_buffered == 0, "state %s buffered %" PRIu64,
            steno_session_state_name(st.state), st.chunks_buffered);

    /* The server saw one connection with exactly the audio, in order, and our options. */
    char body[1 << 16];
    int status = h_control(&srv, "GET", "/connections", NULL, body, sizeof body);
    H_CHECK(status == 200, "control /connections: %d", status);
    char want[64];
    snprintf(want, sizeof want, "\"audio_fnv1a64\":\"%016" PRIx64 "\"",
             h_fnv1a64(audio, sizeof audio));
    H_CHECK(strstr(body, want), "server audio digest differs: %s", body);
    H_CHECK(strstr(body, "\"audio_samples\":80000"), "server sample count: %s", body);
    H_CHECK(strstr(body, "\"CloseStream\":1"), "CloseStream not seen: %s", body);
    H_CHECK(strstr(body, "punctuate=true") && strstr(body, "model=nova-3"), "options: %s", body);

    char metrics[16384];
    size_t need = 0;
    H_CHECK(steno_client_metrics_text(c, metrics, sizeof metrics, &need) == STENO_OK,
            "metrics need %zu", need);
    H_CHECK(strstr(metrics, "steno_connect_successes_total 1"), "%s", metrics);

    char sm[8192];
    H_CHECK(steno_session_metrics_text(s, "session=\"smoke\"", sm, sizeof sm, &need) == STENO_OK,
            "session metrics need %zu", need);
    H_CHECK(strstr(sm, "steno_session_samples_acked_total{session=\"smoke\"} 80000\n"), "%s", sm);
    H_CHECK(steno_session_metrics_text(s, NULL, sm, 16, &need) == STENO_ERR_TOO_LARGE && need > 16,
            "a short buffer must say how much is needed");

    steno_session_destroy(s);
    steno_client_destroy(c);
    h_server_stop(&srv);
    printf("ok: %d finals cover %u samples exactly once (%" PRIu64 " ms)\n", finals, TOTAL, took);
    return 0;
}
