/* bench_sink: the cheapest WebSocket server this machine can run, for telling a client's cost
 * apart from the server's when one small machine must host both. */
#ifndef STENO_BENCH_SINK_H
#define STENO_BENCH_SINK_H

#include "bench_util.h"

/*
 * A child process with one bare epoll loop: it accepts connections on 127.0.0.1, answers the
 * WebSocket upgrade (any path, no credentials), answers pings with pongs and a CloseStream or
 * a close frame with a close, and drops every data frame unread (binary payloads are never
 * unmasked). It sends no results, so a session's acknowledgements never advance: this is a
 * sink for measuring the sending side, nothing more.
 *
 * Fills srv as bench_server_start does (pid, port, url; control_port 0: there is no control
 * API). Call before any SDK thread exists; stop it with bench_server_stop.
 */
void bench_sink_start(bench_server *srv);

#endif
