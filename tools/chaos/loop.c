/* loop: one epoll instance, edge-triggered fd watches and per-iteration hooks. */
#include "loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define BATCH 256
#define MAX_WAIT_MS 60000

int64_t steno__loop_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

int steno__loop_init(struct loop *l)
{
    l->stop = false;
    l->hooks = NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    return l->epfd < 0 ? -1 : 0;
}

void steno__loop_fini(struct loop *l)
{
    if (l->epfd >= 0)
        close(l->epfd);
    l->epfd = -1;
}

int steno__loop_add(struct loop *l, int fd, struct watch *w)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = w};
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
}

void steno__loop_add_hook(struct loop *l, struct loop_hook *h)
{
    h->next = l->hooks;
    l->hooks = h;
}

void steno__loop_stop(struct loop *l)
{
    l->stop = true;
}

static int64_t run_hooks(struct loop *l)
{
    int64_t deadline = NEVER;
    int64_t now = steno__loop_now();
    for (struct loop_hook *h = l->hooks; h; h = h->next) {
        int64_t d = h->tick(h, now);
        if (d < deadline)
            deadline = d;
    }
    return deadline;
}

int steno__loop_run(struct loop *l)
{
    struct epoll_event evs[BATCH];
    int64_t deadline = run_hooks(l);
    while (!l->stop) {
        int timeout = -1;
        if (deadline != NEVER) {
            int64_t wait = deadline - steno__loop_now();
            /* Round up: waking a little early would only spin until the deadline. */
            int64_t ms = wait <= 0 ? 0 : (wait + NS_PER_MS - 1) / NS_PER_MS;
            timeout = ms > MAX_WAIT_MS ? MAX_WAIT_MS : (int)ms;
        }
        int n = epoll_wait(l->epfd, evs, BATCH, timeout);
        if (n < 0 && errno != EINTR)
            return -1;
        for (int i = 0; i < n; i++) {
            struct watch *w = evs[i].data.ptr;
            w->fn(w, evs[i].events);
        }
        deadline = run_hooks(l);
    }
    return 0;
}
