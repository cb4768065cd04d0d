/* backoff: how long to wait before the next reconnect attempt, and when to give up. */
#include "backoff.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

void steno__backoff_config_default(steno__backoff_config *cfg)
{
    if (!cfg)
        return;
    cfg->base_ms = 250;
    cfg->cap_ms = 30000;
    cfg->multiplier = 2.0;
    cfg->max_attempts = 0;
    cfg->max_outage_ms = 0;
    cfg->retry_after_cap_ms = 60000;
}

static bool config_valid(const steno__backoff_config *c)
{
    return c->base_ms > 0 && c->cap_ms >= c->base_ms && isfinite(c->multiplier) &&
           c->multiplier >= 1.0;
}

int steno__backoff_init(steno__backoff *b, const steno__backoff_config *cfg, steno__rand_fn rand,
                        void *rand_ctx)
{
    if (!b || !rand)
        return STENO_ERR_INVALID_ARG;
    steno__backoff_config c;
    if (cfg)
        c = *cfg;
    else
        steno__backoff_config_default(&c);
    if (!config_valid(&c))
        return STENO_ERR_INVALID_ARG;
    memset(b, 0, sizeof(*b));
    b->cfg = c;
    b->rand = rand;
    b->rand_ctx = rand_ctx;
    return STENO_OK;
}

void steno__backoff_reset(steno__backoff *b)
{
    if (!b)
        return;
    b->attempts = 0;
    b->jittered = 0;
    b->immediate_pending = false;
    b->in_outage = false;
    b->connected = false;
    b->gave_up = false;
    b->outage_start_ms = 0;
    b->connected_at_ms = 0;
}

void steno__backoff_on_connected(steno__backoff *b, uint64_t now_ms)
{
    if (!b)
        return;
    b->connected = true;
    b->connected_at_ms = now_ms;
}

void steno__backoff_on_disconnect(steno__backoff *b, uint64_t now_ms, bool was_healthy)
{
    if (!b)
        return;
    b->connected = false;
    if (was_healthy) {
        /* The endpoint worked: this is a new, independent outage. The
         * likeliest cause is a one-off drop (deploy, NAT rebinding), so
         * reconnect at once instead of making the user wait base_ms. */
        b->attempts = 0;
        b->jittered = 0;
        b->immediate_pending = true;
        b->gave_up = false;
        b->in_outage = true;
        b->outage_start_ms = now_ms;
    } else if (!b->in_outage) {
        b->in_outage = true;
        b->outage_start_ms = now_ms;
    }
}

/* min(cap, base * mult^n), computed in double so large n cannot overflow. */
static uint64_t ceiling_for(const steno__backoff_config *c, uint32_t n)
{
    if (n == 0 || c->multiplier == 1.0)
        return c->base_ms;
    double d = (double)c->base_ms * pow(c->multiplier, (double)n);
    /* Also catches +Inf; (double)cap_ms may round up, so d < it fits uint64_t. */
    if (!(d < (double)c->cap_ms))
        return c->cap_ms;
    uint64_t v = (uint64_t)d;
    return v < c->cap_ms ? v : c->cap_ms;
}

int steno__backoff_next(steno__backoff *b, uint64_t now_ms, int64_t retry_after_ms,
                        uint64_t *delay_ms)
{
    if (!b || !delay_ms)
        return STENO_ERR_INVALID_ARG;
    if (b->gave_up)
        return STENO_ERR_RETRIES_EXHAUSTED;
    if (!b->in_outage) {
        b->in_outage = true;
        b->outage_start_ms = now_ms;
    }
    if (b->cfg.max_attempts && b->attempts >= b->cfg.max_attempts) {
        b->gave_up = true;
        return STENO_ERR_RETRIES_EXHAUSTED;
    }

    uint64_t d = 0;
    if (!b->immediate_pending) {
        uint64_t ceil = ceiling_for(&b->cfg, b->jittered);
        uint64_t r = b->rand(b->rand_ctx);
        /* Full jitter over [0, ceil] inclusive. The modulo bias is at most
         * ceil / 2^64: invisible at these magnitudes. */
        d = ceil == UINT64_MAX ? r : r % (ceil + 1);
    }
    if (retry_after_ms >= 0 && b->cfg.retry_after_cap_ms > 0) {
        uint64_t ra = (uint64_t)retry_after_ms;
        if (ra > b->cfg.retry_after_cap_ms)
            ra = b->cfg.retry_after_cap_ms;
        if (ra > d)
            d = ra;
    }
    if (b->cfg.max_outage_ms) {
        uint64_t elapsed = now_ms > b->outage_start_ms ? now_ms - b->outage_start_ms : 0;
        /* "Would exceed": the attempt itself must start inside the allowed
         * outage; written to avoid overflowing elapsed + d. */
        if (elapsed > b->cfg.max_outage_ms || d > b->cfg.max_outage_ms - elapsed) {
            b->gave_up = true;
            return STENO_ERR_RETRIES_EXHAUSTED;
        }
    }

    b->attempts++;
    if (b->immediate_pending)
        b->immediate_pending = false;
    else if (b->jittered < UINT32_MAX)
        b->jittered++;
    *delay_ms = d;
    return STENO_OK;
}

uint32_t steno__backoff_attempts(const steno__backoff *b)
{
    return b ? b->attempts : 0;
}

/* ---- Retry-After ------------------------------------------------------- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The Gregorian year containing day z (days since the epoch). */
static int64_t year_from_days(int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    return yoe + era * 400 + (m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

struct cursor {
    const char *p;
    const char *end;
};

static bool lit(struct cursor *c, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* Exactly n digits. */
static bool digits(struct cursor *c, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (c->p >= c->end || !is_digit(*c->p))
            return false;
        v = v * 10 + (*c->p++ - '0');
    }
    *out = v;
    return true;
}

static bool month(struct cursor *c, int *out)
{
    static const char *names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++) {
        if (lit(c, names[i])) {
            *out = i + 1;
            return true;
        }
    }
    return false;
}

static bool day_name(struct cursor *c, bool long_form)
{
    static const char *s[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *l[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                               "Friday", "Saturday", "Sunday"};
    for (int i = 0; i < 7; i++)
        if (lit(c, long_form ? l[i] : s[i]))
            return true;
    return false;
}

/* HH:MM:SS; 60 seconds allowed for a leap second. */
static bool time_of_day(struct cursor *c, int *h, int *mi, int *s)
{
    return digits(c, 2, h) && lit(c, ":") && digits(c, 2, mi) && lit(c, ":") && digits(c, 2, s) &&
           *h <= 23 && *mi <= 59 && *s <= 60;
}

struct civil {
    int64_t year;
    int mon, day, h, mi, s;
};

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool parse_imf(struct cursor c, struct civil *t)
{
    int y;
    if (!(day_name(&c, false) && lit(&c, ", ") && digits(&c, 2, &t->day) && lit(&c, " ") &&
          month(&c, &t->mon) && lit(&c, " ") && digits(&c, 4, &y) && lit(&c, " ") &&
          time_of_day(&c, &t->h, &t->mi, &t->s) && lit(&c, " GMT")))
        return false;
    t->year = y;
    return c.p == c.end;
}

/* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; the year is resolved by the caller. */
static bool parse_rfc850(struct cursor c, struct civil *t)
{
    int yy;
    if (!(day_name(&c, true) && lit(&c, ", ") && digits(&c, 2, &t->day) && lit(&c, "-") &&
          month(&c, &t->mon) && lit(&c, "-") && digits(&c, 2, &yy) && lit(&c, " ") &&
          time_of_day(&c, &t->h, &t->mi, &t->s) && lit(&c, " GMT")))
        return false;
    t->year = yy;
    return c.p == c.end;
}

/* asctime: "Sun Nov  6 08:49:37 1994" (day padded with a space) or "Sun Nov 16 ...". */
static bool parse_asctime(struct cursor c, struct civil *t)
{
    int y;
    if (!(day_name(&c, false) && lit(&c, " ") && month(&c, &t->mon) && lit(&c, " ")))
        return false;
    if (lit(&c, " ")) {
        if (!digits(&c, 1, &t->day))
            return false;
    } else if (!digits(&c, 2, &t->day)) {
        return false;
    }
    if (!(lit(&c, " ") && time_of_day(&c, &t->h, &t->mi, &t->s) && lit(&c, " ") &&
          digits(&c, 4, &y)))
        return false;
    t->year = y;
    return c.p == c.end;
}

/*
 * RFC 9110 5.6.7: a two-digit year that appears to be more than 50 years in
 * the future is the most recent past year with those digits. Take the
 * latest year with these last two digits that is at most now + 50.
 */
static int64_t resolve_two_digit_year(int yy, int64_t now_unix)
{
    int64_t now_year = year_from_days(now_unix / 86400 - (now_unix % 86400 < 0));
    int64_t century = now_year - ((now_year % 100) + 100) % 100;
    int64_t y = century + 100 + yy;
    while (y > now_year + 50)
        y -= 100;
    return y;
}

/* From now (now_s seconds + now_sub_ms ms, 0 <= now_sub_ms < 1000) to the whole second when_unix.
 */
static int64_t ms_until(int64_t when_unix, int64_t now_s, int64_t now_sub_ms)
{
    if (when_unix <= now_s)
        return 0; /* a date in the past means "now" */
    uint64_t diff = (uint64_t)when_unix - (uint64_t)now_s;
    if (diff > (uint64_t)(INT64_MAX / 1000))
        return INT64_MAX;
    return (int64_t)diff * 1000 - now_sub_ms;
}

static int64_t retry_after_parse(const char *value, int64_t now_unix, int64_t now_sub_ms)
{
    if (!value)
        return -1;
    const char *p = value;
    const char *end = value + strlen(value);
    while (p < end && is_ows(*p))
        p++;
    while (end > p && is_ows(end[-1]))
        end--;
    if (p == end)
        return -1;

    if (is_digit(*p)) {
        int64_t secs = 0;
        bool saturated = false;
        for (const char *q = p; q < end; q++) {
            if (!is_digit(*q))
                return -1;
            int dgt = *q - '0';
            if (secs > (INT64_MAX - dgt) / 10)
                saturated = true;
            else
                secs = secs * 10 + dgt;
        }
        if (saturated || secs > INT64_MAX / 1000)
            return INT64_MAX;
        return secs * 1000;
    }

    struct cursor c = {p, end};
    struct civil t = {0};
    if (parse_imf(c, &t) || parse_asctime(c, &t)) {
        /* year as written */
    } else if (parse_rfc850(c, &t)) {
        t.year = resolve_two_digit_year((int)t.year, now_unix);
        /* Only a clock outside years 0..9999 puts it beyond what the four-digit forms can
         * write, where its seconds since the epoch would overflow. */
        if (t.year < 0 || t.year > 9999)
            return -1;
    } else {
        return -1;
    }
    if (t.mon < 1 || t.mon > 12 || t.day < 1 || t.day > days_in_month(t.year, t.mon))
        return -1;
    int64_t when = days_from_civil(t.year, t.mon, t.day) * 86400 + t.h * 3600 + t.mi * 60 + t.s;
    return ms_until(when, now_unix, now_sub_ms);
}

int64_t steno__retry_after_parse(const char *value, int64_t now_unix)
{
    return retry_after_parse(value, now_unix, 0);
}

int64_t steno__retry_after_parse_ms(const char *value, int64_t now_unix_ms)
{
    /* floor division (without overflow at INT64_MIN), so a clock before 1970 still splits into
     * a second and 0..999 ms */
    int64_t secs = now_unix_ms / 1000, sub = now_unix_ms % 1000;
    if (sub < 0) {
        secs -= 1;
        sub += 1000;
    }
    return retry_after_parse(value, secs, sub);
}
