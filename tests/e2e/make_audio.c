/* make_audio: re-encode a WAV as FLAC, Ogg/Vorbis, Opus or MP3 with libsndfile, for the CLI's
 * format tests (an encoder the SDK does not use). Exit 77 when this libsndfile cannot write
 * the format. */
#include <stdio.h>
#include <string.h>

#include <sndfile.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: make_audio IN.wav OUT flac|ogg|opus|mp3\n");
        return 2;
    }
    int format;
    if (strcmp(argv[3], "flac") == 0)
        format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
    else if (strcmp(argv[3], "ogg") == 0)
        format = SF_FORMAT_OGG | SF_FORMAT_VORBIS;
    else if (strcmp(argv[3], "opus") == 0)
        format = SF_FORMAT_OGG | SF_FORMAT_OPUS;
#ifdef SF_FORMAT_MPEG
    else if (strcmp(argv[3], "mp3") == 0)
        format = SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III;
#endif
    else
        return 77;
    SF_INFO in_info = {0};
    SNDFILE *in = sf_open(argv[1], SFM_READ, &in_info);
    if (!in) {
        fprintf(stderr, "make_audio: %s: %s\n", argv[1], sf_strerror(NULL));
        return 1;
    }
    SF_INFO out_info = {
        .samplerate = in_info.samplerate, .channels = in_info.channels, .format = format};
    if (!sf_format_check(&out_info))
        return 77;
    SNDFILE *out = sf_open(argv[2], SFM_WRITE, &out_info);
    if (!out) {
        fprintf(stderr, "make_audio: %s: %s\n", argv[2], sf_strerror(NULL));
        return 77;
    }
    short buf[4096];
    sf_count_t n;
    while ((n = sf_readf_short(in, buf, 4096 / in_info.channels)) > 0)
        if (sf_writef_short(out, buf, n) != n)
            return 1;
    sf_close(in);
    return sf_close(out) == 0 ? 0 : 1;
}
