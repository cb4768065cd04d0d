/* keep_modules: dlclose() that keeps modules mapped, preloaded into ASan test runs only. */

/*
 * PortAudio's device scan opens every PCM in the ALSA configuration, which
 * loads ALSA's plugin modules (the a52 one pulls in libavcodec and its
 * tree). They keep static allocations; when ALSA unloads them again,
 * LeakSanitizer can no longer see the static pointers and reports those
 * blocks as leaks at exit, from "<unknown module>". Keeping the modules
 * mapped keeps their statics visible, so LeakSanitizer still reports every
 * real leak (steno's own included) and only those.
 */
int dlclose(void *handle);

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
