/* accounting: proves from a session's events, the audio it was given and the server's records
 * that every sample was transcribed exactly once, in order, or reported dropped. */
#ifndef STENO_TESTS_COMMON_ACCOUNTING_H
#define STENO_TESTS_COMMON_ACCOUNTING_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"

typedef struct h_accounting {
    uint64_t written;   /* frames the application wrote */
    uint64_t covered;   /* frames covered by exactly one final */
    uint64_t dropped;   /* frames reported by AUDIO_DROPPED */
    size_t finals;      /* non-empty finals */
    size_t connections; /* connections that received audio */
    size_t drop_events;
    uint64_t replayed;           /* frames sent more than once (sum over connections of overlap) */
    size_t backfill_connections; /* connections with no event: backfill */
    size_t backfill_finals;
} h_accounting;

/*
 * Proves invariants 1-3 for one ended session from its events, the audio it was given
 * (pcm[0..written)), the chunk size and the server's records (a h_server_records() body):
 *  - every final names (null engine) a span whose checksum matches the written audio at the
 *    session samples [first_sample, end_sample) the SDK mapped it to, and whose connection
 *    offsets agree with one base per connection;
 *  - finals and AUDIO_DROPPED ranges are disjoint and tile [0, written) exactly;
 *  - each connection's audio (server record by request id: sample count and checksum of all
 *    its bytes) is a contiguous slice of the written stream (skipping dropped ranges) that
 *    starts exactly at the first chunk not yet acknowledged when it was established;
 *  - transcript times are monotonic, agree with the sample ranges, and no interim regresses
 *    behind a final.
 * Returns true, or false with the reason in err.
 */
/* Whether the checks look for this session's backfill connections among the server's
 * records that no event names (a scan of every chunk offset per record): on by default;
 * tests with records of hundreds of sessions turn it off and count backfills from stats. */
extern bool h_accounting_scan_backfill;
/* Whether each live connection's audio is proven a slice of the stream by the server's total
 * checksum of it (on by default). A connection cut in the middle of a message leaves a partial
 * message in that total; tests whose faults do that turn this off and prove the slices from
 * the server's per-message frame log instead (h_witness_load in compound.h). */
extern bool h_accounting_check_slices;
/* Whether the session's connections may be nameless: the protocol never tells the client an id
 * for a connection (Gemini Live), so no CONNECTED/RECONNECTED request id and no METADATA names
 * its server record. Off by default. When on, each live connection the client cannot name is
 * bound to a record by content instead: taken in event order, the earliest record not yet
 * bound (records are in start order) that began no later than the client saw the connection
 * established and whose audio is exactly the written stream from the sample the accounting
 * expects that connection to start at (the first unacknowledged chunk, or its backfill seam).
 * Every check after the binding is the one a named connection gets. The binding reads the
 * record's checksum of all its audio, so it needs h_accounting_check_slices. The binding is then
 * written into the connection's CONNECTED/RECONNECTED event as its request id, so the witness
 * (compound.h) and later checks see a named connection.
 *
 * What is weaker: the binding SDK connection <-> server record rests on a 64-bit checksum of an
 * exact slice at the expected place (and the record's start), not on an id both sides share.
 * A record of another connection could only be taken for this one if it carried exactly the
 * same samples from exactly the same place, which for the test pattern means it did the same
 * job; so "this connection sent exactly this audio" still holds for some connection opened in
 * that window, and the tiling of finals proves the rest. With no id on the wire, that is the
 * strongest proof the protocol allows. */
extern bool h_accounting_nameless_conns;

/* One "span A-B fnv1a64=H" of a null-engine final's text. */
typedef struct h_span {
    uint64_t a, b, fnv;
} h_span;
/* The spans of a null-engine final's text: one, or several in a row, each starting where the
 * one before ended (a provider that commits several engine finals as one transcript, as
 * ElevenLabs does, joins their texts). Returns how many (at most max), or 0 when the text is
 * not such a run. */
size_t h_parse_spans(const char *text, h_span *out, size_t max);

bool h_check_accounting(h_collector *c, const int16_t *pcm, uint64_t written, uint32_t rate,
                        uint32_t chunk_frames, const cJSON *records, h_accounting *out, char *err,
                        size_t errlen);
/* The same for a recognising engine (finals name words, not spans): only the per-connection
 * slices, the replay start and the timeline checks; no tiling. */
bool h_check_connections(h_collector *c, const int16_t *pcm, uint64_t written, uint32_t rate,
                         uint32_t chunk_frames, const cJSON *records, h_accounting *out, char *err,
                         size_t errlen);

#endif
