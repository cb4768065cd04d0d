/* usage: the steno-server --help text (CLI and control API reference). */
#ifndef STENO_SERVER_USAGE_H
#define STENO_SERVER_USAGE_H

extern const char srv_usage_text[];

#endif
