/* test_finals_in_flight_at_close: the flush before the close costs no words when ordinary
 * finals are still in flight as it goes out.
 *
 * AssemblyAI answers ForceEndpoint with an ordinary end-of-turn Turn: nothing tells the answer
 * from a natural end of turn the server sent just before it. At the close the SDK sends
 * ForceEndpoint and then Terminate, and must acknowledge everything it sent. If the first
 * end-of-turn to arrive after the ForceEndpoint is taken for its answer and stretched over all
 * the audio sent, the real answer that follows (the words of the last turn) finds its audio
 * already final and is lost, though the session closes with nothing unfinalized.
 *
 * steno-server --protocol assemblyai (null engine, a final per second, each ending its turn)
 * holds every result back 2.5 s (delay_results_ms), so that when the session closes after
 * 3.5 s of audio, the turns of seconds 1-2 and 2-3 are still on their way. Every sample must
 * still be final exactly once, the last half second's turn included (the null engine names each
 * final's samples and checksum: common/accounting.c). Auto-finalize is off, so that the close's
 * flush is the only one.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RATE 16000u
#define KEY "close-race-key"

int main(void)
{
    h_init("finals_in_flight_at_close");
    h_server srv;
    const char *args[] = {"--protocol", "assemblyai", "--api-key", KEY, NULL};
    h_server_start(&srv, args);
    h_fault(&srv, "{\"delay_results_ms\":2500}");
    steno_client *cl = h_client_open(NULL);

    h_run r;
    h_run_init(&r, "close", srv.port);
    snprintf(r.url, sizeof r.url, "ws://127.0.0.1:%d/v3/ws", srv.port);
    r.sc.url = r.url;
    r.sc.provider = "assemblyai";
    r.sc.allow_no_auth = 0;
    r.sc.api_key = KEY;
    r.sc.on_event = h_on_event_meta_id;
    r.sc.auto_finalize_ms = STENO_AUTO_FINALIZE_OFF;

    const size_t total = RATE * 7 / 2;
    int16_t *pcm = h_pattern_alloc(7, total);
    h_run_open(&r, cl);
    h_run_stream(&r, pcm, total, 1.0);
    size_t written = h_producer_join(&r.prod);
    h_run_close(&r, 30000 * h_slow());
    H_CHECK(h_server_wait_idle(&srv, 20000), "server connections still open");

    steno_session_stats st;
    steno_session_stats_get(r.s, &st);
    h_log("finals %" PRIu64 ", suppressed %" PRIu64, st.transcripts_final, st.finals_suppressed);
    cJSON *recs = h_server_records(&srv);
    h_accounting acc;
    h_run_check_accounting(&r, pcm, written, recs, &acc);
    H_CHECK(acc.covered == written, "covered %" PRIu64 " of %zu samples", acc.covered, written);
    H_CHECK(acc.finals >= 4, "only %zu finals with words for 3.5 s of audio", acc.finals);
    cJSON_Delete(recs);
    h_run_free(&r);
    steno_client_destroy(cl);
    free(pcm);
    return h_pass();
}
