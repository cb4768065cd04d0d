/* rateconv: streaming linear-interpolation rate conversion of mono 16-bit PCM. */
#include "rateconv.h"

void steno__rateconv_init(steno__rateconv *r, uint32_t in_rate, uint32_t out_rate)
{
    r->in_rate = in_rate;
    r->out_rate = out_rate;
    r->pos = 0;
    r->prev = 0;
    r->have_prev = 0;
}

size_t steno__rateconv_max_out(const steno__rateconv *r, size_t n)
{
    return (size_t)((uint64_t)n * r->out_rate / r->in_rate) + 2;
}

/* a + (b - a) * f / d, rounded half away from zero. */
static int16_t lerp(int16_t a, int16_t b, int64_t f, int64_t d)
{
    int64_t num = (int64_t)a * (d - f) + (int64_t)b * f;
    int64_t q = num >= 0 ? (2 * num + d) / (2 * d) : -((-2 * num + d) / (2 * d));
    return (int16_t)q;
}

size_t steno__rateconv_run(steno__rateconv *r, const int16_t *in, size_t n, int16_t *out)
{
    if (!n)
        return 0;
    const int64_t d = r->out_rate;
    const int64_t last = (int64_t)(n - 1) * d;
    size_t k = 0;
    while (r->pos <= last) {
        if (r->pos < 0) {
            /* between the previous chunk's last sample and this one's first */
            out[k++] = r->have_prev ? lerp(r->prev, in[0], r->pos + d, d) : in[0];
        } else {
            int64_t i = r->pos / d, f = r->pos % d;
            out[k++] = f ? lerp(in[i], in[i + 1], f, d) : in[i];
        }
        r->pos += r->in_rate;
    }
    r->pos -= (int64_t)n * d;
    r->prev = in[n - 1];
    r->have_prev = 1;
    return k;
}
