/* link: routes an lws connection's callbacks to the session's live connection or one of its
 * backfill connections. */
#include "backfill.h"
#include "engine.h"

int steno__link_append_headers(steno__link *l, struct lws *wsi, unsigned char **p,
                               unsigned char *end)
{
    return l->bf ? steno__backfill_append_headers(l->bf, wsi, p, end)
                 : steno__session_append_headers(l->s, wsi, p, end);
}

void steno__link_on_pre_establish(steno__link *l, struct lws *wsi)
{
    if (!l->bf)
        steno__session_on_pre_establish(l->s, wsi);
}

void steno__link_on_established(steno__link *l, struct lws *wsi)
{
    if (l->bf)
        steno__backfill_on_established(l->bf, wsi);
    else
        steno__session_on_established(l->s, wsi);
}

void steno__link_on_connect_error(steno__link *l, struct lws *wsi, const char *why)
{
    if (l->bf)
        steno__backfill_on_connect_error(l->bf, wsi, why);
    else
        steno__session_on_connect_error(l->s, wsi, why);
}

void steno__link_on_closed(steno__link *l, struct lws *wsi)
{
    if (l->bf)
        steno__backfill_on_closed(l->bf, wsi);
    else
        steno__session_on_closed(l->s, wsi);
}

void steno__link_on_peer_close(steno__link *l, const uint8_t *payload, size_t len)
{
    if (l->bf)
        steno__backfill_on_peer_close(l->bf, payload, len);
    else
        steno__session_on_peer_close(l->s, payload, len);
}

int steno__link_on_receive(steno__link *l, struct lws *wsi, const void *in, size_t len)
{
    return l->bf ? steno__backfill_on_receive(l->bf, wsi, in, len)
                 : steno__session_on_receive(l->s, wsi, in, len);
}

void steno__link_on_pong(steno__link *l)
{
    if (l->bf)
        steno__backfill_on_pong(l->bf);
    else
        steno__session_on_pong(l->s);
}

int steno__link_on_writeable(steno__link *l, struct lws *wsi)
{
    return l->bf ? steno__backfill_on_writeable(l->bf, wsi)
                 : steno__session_on_writeable(l->s, wsi);
}
