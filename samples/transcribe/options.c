/* options: steno-transcribe's command line, its help text and exit codes. */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *to)
{
    fputs("usage: steno-transcribe [options] FILE | - | --mic\n"
          "\n"
          "Transcribes a file, raw PCM on stdin, or the microphone through one steno\n"
          "session (reconnecting and replaying through outages) and prints the\n"
          "transcript. On a terminal, interim words show live (dimmed, replaced in\n"
          "place) under the committed finals, with a status line: connection state,\n"
          "a level meter while capturing, a progress bar for files. Ctrl-C finishes\n"
          "cleanly (finalizes, drains, prints the rest); a second Ctrl-C aborts.\n"
          "\n"
          "Input:\n"
          "  FILE                 any file libsndfile reads: WAV, FLAC, Ogg/Vorbis, Opus,\n"
          "                       MP3, AIFF...; any rate, any channels (mixed to mono)\n"
          "  -                    raw signed 16-bit little-endian PCM on stdin\n"
          "  --mic                the default microphone\n"
          "  --device NAME|INDEX  this input device (implies --mic); a unique part of\n"
          "                       the name is enough\n"
          "  --list-devices       list the audio devices and exit\n"
          "  --mic-rate HZ        capture rate [the device's default]\n"
          "  --raw-rate HZ        rate of the PCM on stdin [16000]\n"
          "  --raw-channels N     channels of the PCM on stdin [1]\n"
          "  --duration SECONDS   stop capturing after this long (then finish as on Ctrl-C)\n"
          "  --speed X|max        file and stdin pace: X times real time [1] (0 < X <= 100),\n"
          "                       or max: as fast as the provider accepts, never\n"
          "                       overflowing the buffer\n"
          "\n"
          "Provider:\n"
          "  --provider NAME      deepgram, assemblyai, openai, elevenlabs or gemini\n"
          "                       [deepgram] (STENO_PROVIDER)\n"
          "  --url URL            endpoint, ws:// or wss:// (STENO_URL) [the provider's]\n"
          "  --api-key KEY        credential (STENO_API_KEY, DEEPGRAM_API_KEY)\n"
          "  --local              without --url: start a local steno-server (pocketsphinx,\n"
          "                       no key, no network) and use it\n"
          "  --option KEY=VALUE   provider option, repeatable (--option model=nova-3)\n"
          "  --max-outage MS      give up after this long without a connection [120000]\n"
          "                       (STENO_MAX_OUTAGE_MS)\n"
          "  --failover PROVIDER=URL\n"
          "                       an endpoint to move to when the one in use keeps failing,\n"
          "                       repeatable, tried in order (its key: PROVIDER_API_KEY,\n"
          "                       e.g. ASSEMBLYAI_API_KEY); the unfinalized audio is\n"
          "                       replayed there and nothing is lost\n"
          "  --failover-after MS  move after the endpoint failed this long [10000]\n"
          "  --failback-after MS  try the first endpoint again after this long on another\n"
          "                       [60000] (0: never)\n"
          "\n"
          "Output:\n"
          "  --format FMT         text, jsonl, srt or vtt [text]\n"
          "  -o, --output FILE    write the transcript to FILE [stdout]\n"
          "  --timestamps         text: prefix each final with [start-end] seconds\n"
          "  --interim            jsonl: interim results too (\"type\":\"interim\");\n"
          "                       without a terminal: interims on stderr ('~ ...')\n"
          "  --no-live            no live view, even on a terminal\n"
          "  --stats              print a summary on stderr at the end\n"
          "  --close-timeout MS   time to drain the last finals at the end [10000]\n"
          "  -v, --verbose        report every event on stderr\n"
          "  -h, --help           this text\n"
          "\n"
          "jsonl lines: {\"type\":\"final\"|\"interim\", \"start\", \"end\" (session seconds),\n"
          "\"text\", \"confidence\", \"speech_final\", \"from_finalize\", \"from_backfill\",\n"
          "\"channel\", \"words\": [{\"word\", \"start\", \"end\", \"confidence\"}]}.\n"
          "\n"
          "Every STENO_* variable of the SDK applies; options on the command line win.\n"
          "\n"
          "Exit status:\n"
          "  0  every sample was transcribed and the session closed cleanly\n"
          "  1  another error (e.g. the local server would not start)\n"
          "  2  usage: a bad option or configuration\n"
          "  3  input: a missing, unreadable or non-audio file, an unknown device\n"
          "  4  the provider refused: authentication or another fatal error\n"
          "  5  gave up reconnecting (--max-outage, retry limits)\n"
          "  6  audio lost: some audio has no transcript (dropped or not finalized)\n"
          "  130 aborted by a second Ctrl-C\n",
          to);
}

static int bad(const char *fmt, const char *arg)
{
    fputs("steno-transcribe: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (try --help)\n", stderr);
    return EXIT_USAGE;
}

static int parse_u32(const char *s, unsigned long lo, unsigned long hi, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || !*s || *end || v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

enum {
    O_MIC = 256,
    O_DEVICE,
    O_LIST,
    O_MIC_RATE,
    O_RAW_RATE,
    O_RAW_CH,
    O_DURATION,
    O_SPEED,
    O_PROVIDER,
    O_URL,
    O_KEY,
    O_LOCAL,
    O_OPTION,
    O_MAX_OUTAGE,
    O_FAILOVER,
    O_FAILOVER_AFTER,
    O_FAILBACK_AFTER,
    O_FORMAT,
    O_TIMESTAMPS,
    O_INTERIM,
    O_NO_LIVE,
    O_STATS,
    O_CLOSE_TIMEOUT,
};

int parse_args(int argc, char **argv, args *a)
{
    static const struct option longopts[] = {
        {"mic", no_argument, NULL, O_MIC},
        {"device", required_argument, NULL, O_DEVICE},
        {"list-devices", no_argument, NULL, O_LIST},
        {"mic-rate", required_argument, NULL, O_MIC_RATE},
        {"raw-rate", required_argument, NULL, O_RAW_RATE},
        {"raw-channels", required_argument, NULL, O_RAW_CH},
        {"duration", required_argument, NULL, O_DURATION},
        {"speed", required_argument, NULL, O_SPEED},
        {"provider", required_argument, NULL, O_PROVIDER},
        {"url", required_argument, NULL, O_URL},
        {"api-key", required_argument, NULL, O_KEY},
        {"local", no_argument, NULL, O_LOCAL},
        {"option", required_argument, NULL, O_OPTION},
        {"max-outage", required_argument, NULL, O_MAX_OUTAGE},
        {"failover", required_argument, NULL, O_FAILOVER},
        {"failover-after", required_argument, NULL, O_FAILOVER_AFTER},
        {"failback-after", required_argument, NULL, O_FAILBACK_AFTER},
        {"format", required_argument, NULL, O_FORMAT},
        {"output", required_argument, NULL, 'o'},
        {"timestamps", no_argument, NULL, O_TIMESTAMPS},
        {"interim", no_argument, NULL, O_INTERIM},
        {"no-live", no_argument, NULL, O_NO_LIVE},
        {"stats", no_argument, NULL, O_STATS},
        {"close-timeout", required_argument, NULL, O_CLOSE_TIMEOUT},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->speed = 1.0;
    a->raw_rate = 16000;
    a->raw_channels = 1;
    a->close_timeout_ms = 10000;
    int mic = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:vh", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case O_MIC:
            mic = 1;
            break;
        case O_DEVICE:
            a->device = optarg;
            mic = 1;
            break;
        case O_LIST:
            a->list_devices = 1;
            break;
        case O_MIC_RATE:
            if (parse_u32(optarg, 8000, 192000, &a->mic_rate))
                return bad("--mic-rate wants 8000..192000 Hz, got '%s'", optarg);
            break;
        case O_RAW_RATE:
            if (parse_u32(optarg, 8000, 192000, &a->raw_rate))
                return bad("--raw-rate wants 8000..192000 Hz, got '%s'", optarg);
            break;
        case O_RAW_CH:
            if (parse_u32(optarg, 1, 64, &a->raw_channels))
                return bad("--raw-channels wants 1..64, got '%s'", optarg);
            break;
        case O_DURATION:
            errno = 0;
            a->duration = strtod(optarg, &end);
            if (errno || *end || !(a->duration > 0) || a->duration > 86400 * 7)
                return bad("--duration wants seconds (> 0), got '%s'", optarg);
            break;
        case O_SPEED:
            if (strcmp(optarg, "max") == 0) {
                a->speed = 0;
                break;
            }
            errno = 0;
            a->speed = strtod(optarg, &end);
            if (errno || *end || !(a->speed > 0) || a->speed > 100)
                return bad("--speed wants a number in (0, 100] or 'max', got '%s'", optarg);
            break;
        case O_PROVIDER:
            a->provider = optarg;
            break;
        case O_URL:
            a->url = optarg;
            break;
        case O_KEY:
            a->api_key = optarg;
            break;
        case O_LOCAL:
            a->local = 1;
            break;
        case O_OPTION: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return bad("--option wants KEY=VALUE, got '%s'", optarg);
            if (a->n_options == MAX_OPTIONS)
                return bad("at most %s --option", "64");
            *eq = '\0';
            a->options[a->n_options].key = optarg;
            a->options[a->n_options].value = eq + 1;
            a->n_options++;
            break;
        }
        case O_MAX_OUTAGE:
            if (parse_u32(optarg, 1, UINT32_MAX - 1, &a->max_outage_ms))
                return bad("--max-outage wants milliseconds (1..4294967294), got '%s'", optarg);
            break;
        case O_FAILOVER: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || !eq[1])
                return bad("--failover wants PROVIDER=URL, got '%s'", optarg);
            if (a->n_failover == MAX_FAILOVER)
                return bad("--failover: at most %s endpoints", "8");
            *eq = '\0';
            a->failover[a->n_failover].provider = optarg;
            a->failover[a->n_failover].url = eq + 1;
            a->n_failover++;
            break;
        }
        case O_FAILOVER_AFTER:
            if (parse_u32(optarg, 100, 86400000, &a->failover_after_ms))
                return bad("--failover-after wants milliseconds (100..86400000), got '%s'", optarg);
            break;
        case O_FAILBACK_AFTER:
            if (parse_u32(optarg, 0, 86400000, &a->failback_after_ms) ||
                (a->failback_after_ms && a->failback_after_ms < 1000))
                return bad("--failback-after wants 0 or milliseconds (1000..86400000), got '%s'",
                           optarg);
            a->failback_set = 1;
            break;
        case O_FORMAT:
            if (output_parse_format(optarg, &a->format))
                return bad("--format wants text, jsonl, srt or vtt, got '%s'", optarg);
            break;
        case 'o':
            /* -o used to take provider options: say so rather than write a file
             * named "model=nova-3" */
            if (strchr(optarg, '=') && !strchr(optarg, '/') && !strchr(optarg, '.'))
                return bad("-o/--output takes a file name; provider options are --option "
                           "KEY=VALUE (got '%s')",
                           optarg);
            a->output = optarg;
            break;
        case O_TIMESTAMPS:
            a->timestamps = 1;
            break;
        case O_INTERIM:
            a->interim = 1;
            break;
        case O_NO_LIVE:
            a->no_live = 1;
            break;
        case O_STATS:
            a->stats = 1;
            break;
        case O_CLOSE_TIMEOUT:
            if (parse_u32(optarg, 1, 3600000, &a->close_timeout_ms))
                return bad("--close-timeout wants 1..3600000 ms, got '%s'", optarg);
            break;
        case 'v':
            a->verbose = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case ':':
            return bad("%s needs a value", argv[optind - 1]);
        default:
            return bad("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (a->list_devices)
        return 0;
    int rest = argc - optind;
    if (mic && rest == 0) {
        a->input = IN_MIC;
    } else if (!mic && rest == 1) {
        a->file = argv[optind];
        a->input = strcmp(a->file, "-") == 0 ? IN_STDIN : IN_FILE;
    } else {
        return bad("%s", mic ? "--mic takes no FILE" : "give one input: FILE, - (stdin) or --mic");
    }
    return 0;
}
