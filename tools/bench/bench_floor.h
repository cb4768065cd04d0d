/* bench_floor: the cost floor of streaming N real-time sessions — a bare epoll client with no
 * SDK, sending the same WebSocket frames as steno to the same server. */
#ifndef STENO_BENCH_FLOOR_H
#define STENO_BENCH_FLOOR_H

#include <stdint.h>

typedef struct bench_floor_result {
    double cpu_s;         /* whole process, streaming window */
    double seconds;       /* audio per connection */
    uint64_t frames_sent; /* binary frames, all connections */
    uint64_t bytes_rx;    /* bytes the server sent back (finals), all connections */
    uint32_t late_ticks;  /* 20 ms ticks that started more than one tick late */
} bench_floor_result;

/*
 * Opens n WebSockets to ws://127.0.0.1:port/v1/listen?encoding=linear16&sample_rate=16000 (one
 * thread, non-blocking sockets, epoll), waits for every 101, then for `seconds`: every 20 ms
 * copies 20 ms of 16 kHz mono into each connection's chunk buffer (what an application hands
 * steno), and every ticks_per_chunk ticks (5: 100 ms, steno's default chunk) sends the chunk as
 * one masked binary frame; whatever the server sends
 * is read and dropped. No timers per connection, no allocation while streaming: the least any
 * client can do to deliver the same bytes. With ca_file (not NULL) it speaks wss:// instead,
 * through mbedTLS, verifying the server against that CA: the floor for TLS on that library.
 * Exits the process through bench_die on any failure.
 */
#define BENCH_FLOOR_MAX_TICKS_PER_CHUNK 50u /* 1 s: the frame's 16-bit length still holds it */
void bench_floor_run(int port, uint32_t n, double seconds, uint32_t ticks_per_chunk,
                     const char *ca_file, bench_floor_result *r);

#endif
