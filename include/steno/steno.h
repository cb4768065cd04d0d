/* steno: dependable streaming speech-to-text client SDK — the umbrella header. */
#ifndef STENO_H
#define STENO_H

/*
 * Quick tour:
 *
 *   steno_client *c;
 *   steno_client_open(NULL, &c, err, sizeof err);        // one network thread
 *
 *   steno_session_config sc;
 *   steno_session_config_init(&sc);
 *   sc.url = "wss://api.deepgram.com/v1/listen";
 *   sc.api_key = key;
 *   sc.sample_rate = 16000;
 *   steno_option opts[] = {{"model", "nova-3"}, {"interim_results", "true"}};
 *   sc.options = opts; sc.n_options = 2;
 *   steno_session *s;
 *   steno_session_open(c, &sc, &s, err, sizeof err);     // connects in the background
 *
 *   steno_session_write(s, pcm, frames);                 // capture thread, wait-free
 *   steno_event ev;
 *   while (steno_session_next_event(s, &ev, 100) ...)    // or an on_event callback
 *
 *   steno_session_close(s, 5000);                        // flush, drain finals, CLOSED
 *   steno_session_destroy(s);
 *   steno_client_destroy(c);
 *
 * Every fallible call returns a steno_status (0 = STENO_OK, errors negative);
 * steno_strerror() explains any value, and objects keep a message saying what
 * to fix (err buffers at open, steno_session_errmsg()). steno never prints.
 */

#include "steno/status.h"
#include "steno/alloc.h"
#include "steno/event.h"
#include "steno/client.h"
#include "steno/session.h"
#include "steno/env.h"
#include "steno/audio.h"

#endif /* STENO_H */
