/* faults: the fault-injection state and actions behind POST /faults. */
#ifndef STENO_SERVER_FAULTS_H
#define STENO_SERVER_FAULTS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "listen.h"

/* Applies one POST /faults object. Returns 0 and adds "applied" (ids) to
 * `resp`, or -1 with a message in `err` (nothing applied). */
int srv_faults_post(const cJSON *body, cJSON *resp, char *err, size_t errlen);
cJSON *srv_faults_json(void);
/* Clears every fault and unstalls stalled connections. */
void srv_faults_clear(void);
void srv_faults_free(void);
/* A connection has now received `audio_s` seconds of audio: fire armed actions. */
void srv_faults_on_audio(srv_conn *c, double audio_s);

#endif
