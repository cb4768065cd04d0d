/* interpose: count allocation, locking and blocking calls made by threads that asked to be
 * watched. */
#include "interpose.h"

#include <dlfcn.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

static __thread int watched;
static _Atomic uint64_t counts[IP_N];

#define MAX_FDS 16
static _Atomic int written_fds[MAX_FDS];
static _Atomic int n_written_fds;
static _Atomic int resolved_any;

static const struct {
    const char *name;
    ip_class cls;
} fn_info[IP_N] = {
    [IP_MALLOC] = {"malloc", IP_ALLOC},
    [IP_CALLOC] = {"calloc", IP_ALLOC},
    [IP_REALLOC] = {"realloc", IP_ALLOC},
    [IP_REALLOCARRAY] = {"reallocarray", IP_ALLOC},
    [IP_FREE] = {"free", IP_ALLOC},
    [IP_POSIX_MEMALIGN] = {"posix_memalign", IP_ALLOC},
    [IP_ALIGNED_ALLOC] = {"aligned_alloc", IP_ALLOC},
    [IP_MEMALIGN] = {"memalign", IP_ALLOC},
    [IP_VALLOC] = {"valloc", IP_ALLOC},
    [IP_PVALLOC] = {"pvalloc", IP_ALLOC},
    [IP_MMAP] = {"mmap", IP_ALLOC},
    [IP_MUNMAP] = {"munmap", IP_ALLOC},
    [IP_MREMAP] = {"mremap", IP_ALLOC},
    [IP_SBRK] = {"sbrk", IP_ALLOC},
    [IP_MUTEX_LOCK] = {"pthread_mutex_lock", IP_LOCK},
    [IP_MUTEX_TRYLOCK] = {"pthread_mutex_trylock", IP_LOCK},
    [IP_MUTEX_TIMEDLOCK] = {"pthread_mutex_timedlock", IP_LOCK},
    [IP_MUTEX_UNLOCK] = {"pthread_mutex_unlock", IP_LOCK},
    [IP_COND_WAIT] = {"pthread_cond_wait", IP_LOCK},
    [IP_COND_TIMEDWAIT] = {"pthread_cond_timedwait", IP_LOCK},
    [IP_COND_SIGNAL] = {"pthread_cond_signal", IP_LOCK},
    [IP_COND_BROADCAST] = {"pthread_cond_broadcast", IP_LOCK},
    [IP_RWLOCK_RDLOCK] = {"pthread_rwlock_rdlock", IP_LOCK},
    [IP_RWLOCK_WRLOCK] = {"pthread_rwlock_wrlock", IP_LOCK},
    [IP_RWLOCK_TRYRDLOCK] = {"pthread_rwlock_tryrdlock", IP_LOCK},
    [IP_RWLOCK_TRYWRLOCK] = {"pthread_rwlock_trywrlock", IP_LOCK},
    [IP_RWLOCK_TIMEDRDLOCK] = {"pthread_rwlock_timedrdlock", IP_LOCK},
    [IP_RWLOCK_TIMEDWRLOCK] = {"pthread_rwlock_timedwrlock", IP_LOCK},
    [IP_RWLOCK_UNLOCK] = {"pthread_rwlock_unlock", IP_LOCK},
    [IP_SPIN_LOCK] = {"pthread_spin_lock", IP_LOCK},
    [IP_SPIN_TRYLOCK] = {"pthread_spin_trylock", IP_LOCK},
    [IP_SEM_WAIT] = {"sem_wait", IP_LOCK},
    [IP_SEM_TRYWAIT] = {"sem_trywait", IP_LOCK},
    [IP_SEM_TIMEDWAIT] = {"sem_timedwait", IP_LOCK},
    [IP_SEM_POST] = {"sem_post", IP_LOCK},
    [IP_MTX_LOCK] = {"mtx_lock", IP_LOCK},
    [IP_MTX_TIMEDLOCK] = {"mtx_timedlock", IP_LOCK},
    [IP_CND_WAIT] = {"cnd_wait", IP_LOCK},
    [IP_CND_TIMEDWAIT] = {"cnd_timedwait", IP_LOCK},
    [IP_SYSCALL_FUTEX] = {"syscall(SYS_futex)", IP_LOCK},
    [IP_SYSCALL_OTHER] = {"syscall(other)", IP_BLOCK},
    [IP_NANOSLEEP] = {"nanosleep", IP_BLOCK},
    [IP_CLOCK_NANOSLEEP] = {"clock_nanosleep", IP_BLOCK},
    [IP_USLEEP] = {"usleep", IP_BLOCK},
    [IP_SLEEP] = {"sleep", IP_BLOCK},
    [IP_SCHED_YIELD] = {"sched_yield", IP_BLOCK},
    [IP_PTHREAD_JOIN] = {"pthread_join", IP_BLOCK},
    [IP_POLL] = {"poll", IP_BLOCK},
    [IP_PPOLL] = {"ppoll", IP_BLOCK},
    [IP_SELECT] = {"select", IP_BLOCK},
    [IP_PSELECT] = {"pselect", IP_BLOCK},
    [IP_EPOLL_WAIT] = {"epoll_wait", IP_BLOCK},
    [IP_EPOLL_PWAIT] = {"epoll_pwait", IP_BLOCK},
    [IP_READ] = {"read", IP_BLOCK},
    [IP_READV] = {"readv", IP_BLOCK},
    [IP_RECV] = {"recv", IP_BLOCK},
    [IP_RECVFROM] = {"recvfrom", IP_BLOCK},
    [IP_RECVMSG] = {"recvmsg", IP_BLOCK},
    [IP_WRITE] = {"write", IP_BLOCK},
    [IP_WRITEV] = {"writev", IP_BLOCK},
    [IP_SEND] = {"send", IP_BLOCK},
    [IP_SENDTO] = {"sendto", IP_BLOCK},
    [IP_SENDMSG] = {"sendmsg", IP_BLOCK},
    [IP_EVENTFD_READ] = {"eventfd_read", IP_BLOCK},
    [IP_EVENTFD_WRITE] = {"eventfd_write", IP_BLOCK},
    [IP_CONNECT] = {"connect", IP_BLOCK},
    [IP_ACCEPT] = {"accept", IP_BLOCK},
    [IP_FSYNC] = {"fsync", IP_BLOCK},
};

void ip_watch(int on)
{
    watched = on;
}

int ip_is_watched(void)
{
    return watched;
}

void ip_reset(void)
{
    for (int i = 0; i < IP_N; i++)
        atomic_store_explicit(&counts[i], 0, memory_order_relaxed);
    atomic_store(&n_written_fds, 0);
}

uint64_t ip_count(ip_fn f)
{
    return atomic_load_explicit(&counts[f], memory_order_relaxed);
}

const char *ip_name(ip_fn f)
{
    return fn_info[f].name;
}

ip_class ip_class_of(ip_fn f)
{
    return fn_info[f].cls;
}

int ip_written_fds(int *fds, int max)
{
    int n = atomic_load(&n_written_fds);
    for (int i = 0; i < n && i < max; i++)
        fds[i] = atomic_load(&written_fds[i]);
    return n;
}

int ip_ready(void)
{
    return atomic_load(&resolved_any);
}

static inline void hit(ip_fn f)
{
    if (watched)
        atomic_fetch_add_explicit(&counts[f], 1, memory_order_relaxed);
}

static void note_fd(int fd)
{
    if (!watched)
        return;
    int n = atomic_load(&n_written_fds);
    for (int i = 0; i < n; i++)
        if (atomic_load(&written_fds[i]) == fd)
            return;
    if (n < MAX_FDS) {
        atomic_store(&written_fds[n], fd);
        atomic_store(&n_written_fds, n + 1);
    }
}

/* ---- finding the next definition ---- */

/*
 * dlsym() itself may allocate (its error buffer) before malloc's own next
 * definition is known: those few allocations come from a static arena and
 * are never handed to the real free(). Each block carries its size so a
 * realloc of one can move it.
 */
static _Alignas(max_align_t) unsigned char arena[64 * 1024];
static _Atomic size_t arena_used;
/* volatile: dlsym calls back into these wrappers, which gcc does not expect of a static */
static __thread volatile int in_dlsym;

static void *arena_alloc(size_t n)
{
    size_t need = (n + sizeof(max_align_t) + 15) & ~(size_t)15;
    size_t at = atomic_fetch_add(&arena_used, need);
    if (at + need > sizeof arena)
        abort();
    unsigned char *p = arena + at;
    memcpy(p, &n, sizeof n);
    return p + sizeof(max_align_t);
}

static int in_arena(const void *p)
{
    return (const unsigned char *)p >= arena && (const unsigned char *)p < arena + sizeof arena;
}

static size_t arena_size(const void *p)
{
    size_t n;
    memcpy(&n, (const unsigned char *)p - sizeof(max_align_t), sizeof n);
    return n;
}

static void *next_def(const char *name)
{
    in_dlsym++;
    void *p = dlsym(RTLD_NEXT, name);
    in_dlsym--;
    if (!p)
        abort(); /* every wrapped function exists in glibc; a missing one is a broken setup */
    atomic_store(&resolved_any, 1);
    return p;
}

/* The next definition of `name`, looked up once. Function pointers are kept as atomics
 * because several threads may race to look them up first (with the same result). */
#define REAL(type, name)                                                                           \
    static type _Atomic real_##name;                                                               \
    type fn_##name = atomic_load_explicit(&real_##name, memory_order_relaxed);                     \
    if (!fn_##name) {                                                                              \
        fn_##name = (type)next_def(#name);                                                         \
        atomic_store_explicit(&real_##name, fn_##name, memory_order_relaxed);                      \
    }

/* ---- allocation ---- */

typedef void *(*malloc_t)(size_t);
typedef void *(*calloc_t)(size_t, size_t);
typedef void *(*realloc_t)(void *, size_t);
typedef void *(*reallocarray_t)(void *, size_t, size_t);
typedef void (*free_t)(void *);
typedef int (*posix_memalign_t)(void **, size_t, size_t);
typedef void *(*aligned_alloc_t)(size_t, size_t);
typedef void *(*memalign_t)(size_t, size_t);
typedef void *(*valloc_t)(size_t);
typedef void *(*mmap_t)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_t)(void *, size_t);
typedef void *(*mremap_t)(void *, size_t, size_t, int, ...);
typedef void *(*sbrk_t)(intptr_t);

void *malloc(size_t n)
{
    hit(IP_MALLOC);
    if (in_dlsym)
        return arena_alloc(n);
    REAL(malloc_t, malloc);
    return fn_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    hit(IP_CALLOC);
    if (in_dlsym) {
        if (size && n > SIZE_MAX / size)
            return NULL;
        return arena_alloc(n * size); /* static storage: already zero */
    }
    REAL(calloc_t, calloc);
    return fn_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    hit(IP_REALLOC);
    if (in_dlsym)
        return NULL;
    if (p && in_arena(p)) {
        void *q = malloc(n);
        if (q) {
            size_t old = arena_size(p);
            memcpy(q, p, old < n ? old : n);
        }
        return q;
    }
    REAL(realloc_t, realloc);
    return fn_realloc(p, n);
}

void *reallocarray(void *p, size_t n, size_t size)
{
    hit(IP_REALLOCARRAY);
    if (p && in_arena(p))
        return (size && n > SIZE_MAX / size) ? NULL : realloc(p, n * size);
    REAL(reallocarray_t, reallocarray);
    return fn_reallocarray(p, n, size);
}

void free(void *p)
{
    hit(IP_FREE);
    if (!p || in_arena(p))
        return;
    static free_t _Atomic real_free;
    free_t fn = atomic_load_explicit(&real_free, memory_order_relaxed);
    if (!fn) {
        /* dlsym frees its own error buffers: looking free up from inside dlsym would recurse
         * forever, so such a block (allocated before we could count anything) is leaked. */
        if (in_dlsym)
            return;
        fn = (free_t)next_def("free");
        atomic_store_explicit(&real_free, fn, memory_order_relaxed);
    }
    fn(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    hit(IP_POSIX_MEMALIGN);
    REAL(posix_memalign_t, posix_memalign);
    return fn_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    hit(IP_ALIGNED_ALLOC);
    REAL(aligned_alloc_t, aligned_alloc);
    return fn_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n)
{
    hit(IP_MEMALIGN);
    REAL(memalign_t, memalign);
    return fn_memalign(align, n);
}

void *valloc(size_t n)
{
    hit(IP_VALLOC);
    REAL(valloc_t, valloc);
    return fn_valloc(n);
}

void *pvalloc(size_t n)
{
    hit(IP_PVALLOC);
    REAL(valloc_t, pvalloc);
    return fn_pvalloc(n);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    hit(IP_MMAP);
    REAL(mmap_t, mmap);
    return fn_mmap(addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len)
{
    hit(IP_MUNMAP);
    REAL(munmap_t, munmap);
    return fn_munmap(addr, len);
}

void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    hit(IP_MREMAP);
    void *new_addr = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        new_addr = va_arg(ap, void *);
        va_end(ap);
    }
    REAL(mremap_t, mremap);
    return fn_mremap(old, old_len, new_len, flags, new_addr);
}

void *sbrk(intptr_t inc)
{
    hit(IP_SBRK);
    REAL(sbrk_t, sbrk);
    return fn_sbrk(inc);
}

/* ---- locks ---- */

typedef int (*mutex_t)(pthread_mutex_t *);
typedef int (*mutex_timed_t)(pthread_mutex_t *, const struct timespec *);
typedef int (*cond_wait_t)(pthread_cond_t *, pthread_mutex_t *);
typedef int (*cond_timedwait_t)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
typedef int (*cond_t)(pthread_cond_t *);
typedef int (*rwlock_t)(pthread_rwlock_t *);
typedef int (*rwlock_timed_t)(pthread_rwlock_t *, const struct timespec *);
typedef int (*spin_t)(pthread_spinlock_t *);
typedef int (*sem_t_fn)(sem_t *);
typedef int (*sem_timed_t)(sem_t *, const struct timespec *);
typedef int (*mtx_fn_t)(mtx_t *);
typedef int (*mtx_timed_t)(mtx_t *__restrict, const struct timespec *__restrict);
typedef int (*cnd_wait_t)(cnd_t *, mtx_t *);
typedef int (*cnd_timed_t)(cnd_t *__restrict, mtx_t *__restrict, const struct timespec *__restrict);

int pthread_mutex_lock(pthread_mutex_t *m)
{
    hit(IP_MUTEX_LOCK);
    REAL(mutex_t, pthread_mutex_lock);
    return fn_pthread_mutex_lock(m);
}

int pthread_mutex_trylock(pthread_mutex_t *m)
{
    hit(IP_MUTEX_TRYLOCK);
    REAL(mutex_t, pthread_mutex_trylock);
    return fn_pthread_mutex_trylock(m);
}

int pthread_mutex_timedlock(pthread_mutex_t *restrict m, const struct timespec *restrict t)
{
    hit(IP_MUTEX_TIMEDLOCK);
    REAL(mutex_timed_t, pthread_mutex_timedlock);
    return fn_pthread_mutex_timedlock(m, t);
}

int pthread_mutex_unlock(pthread_mutex_t *m)
{
    hit(IP_MUTEX_UNLOCK);
    REAL(mutex_t, pthread_mutex_unlock);
    return fn_pthread_mutex_unlock(m);
}

int pthread_cond_wait(pthread_cond_t *restrict c, pthread_mutex_t *restrict m)
{
    hit(IP_COND_WAIT);
    REAL(cond_wait_t, pthread_cond_wait);
    return fn_pthread_cond_wait(c, m);
}

int pthread_cond_timedwait(pthread_cond_t *restrict c, pthread_mutex_t *restrict m,
                           const struct timespec *restrict t)
{
    hit(IP_COND_TIMEDWAIT);
    REAL(cond_timedwait_t, pthread_cond_timedwait);
    return fn_pthread_cond_timedwait(c, m, t);
}

int pthread_cond_signal(pthread_cond_t *c)
{
    hit(IP_COND_SIGNAL);
    REAL(cond_t, pthread_cond_signal);
    return fn_pthread_cond_signal(c);
}

int pthread_cond_broadcast(pthread_cond_t *c)
{
    hit(IP_COND_BROADCAST);
    REAL(cond_t, pthread_cond_broadcast);
    return fn_pthread_cond_broadcast(c);
}

int pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
    hit(IP_RWLOCK_RDLOCK);
    REAL(rwlock_t, pthread_rwlock_rdlock);
    return fn_pthread_rwlock_rdlock(l);
}

int pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
    hit(IP_RWLOCK_WRLOCK);
    REAL(rwlock_t, pthread_rwlock_wrlock);
    return fn_pthread_rwlock_wrlock(l);
}

int pthread_rwlock_tryrdlock(pthread_rwlock_t *l)
{
    hit(IP_RWLOCK_TRYRDLOCK);
    REAL(rwlock_t, pthread_rwlock_tryrdlock);
    return fn_pthread_rwlock_tryrdlock(l);
}

int pthread_rwlock_trywrlock(pthread_rwlock_t *l)
{
    hit(IP_RWLOCK_TRYWRLOCK);
    REAL(rwlock_t, pthread_rwlock_trywrlock);
    return fn_pthread_rwlock_trywrlock(l);
}

int pthread_rwlock_timedrdlock(pthread_rwlock_t *restrict l, const struct timespec *restrict t)
{
    hit(IP_RWLOCK_TIMEDRDLOCK);
    REAL(rwlock_timed_t, pthread_rwlock_timedrdlock);
    return fn_pthread_rwlock_timedrdlock(l, t);
}

int pthread_rwlock_timedwrlock(pthread_rwlock_t *restrict l, const struct timespec *restrict t)
{
    hit(IP_RWLOCK_TIMEDWRLOCK);
    REAL(rwlock_timed_t, pthread_rwlock_timedwrlock);
    return fn_pthread_rwlock_timedwrlock(l, t);
}

int pthread_rwlock_unlock(pthread_rwlock_t *l)
{
    hit(IP_RWLOCK_UNLOCK);
    REAL(rwlock_t, pthread_rwlock_unlock);
    return fn_pthread_rwlock_unlock(l);
}

int pthread_spin_lock(pthread_spinlock_t *l)
{
    hit(IP_SPIN_LOCK);
    REAL(spin_t, pthread_spin_lock);
    return fn_pthread_spin_lock(l);
}

int pthread_spin_trylock(pthread_spinlock_t *l)
{
    hit(IP_SPIN_TRYLOCK);
    REAL(spin_t, pthread_spin_trylock);
    return fn_pthread_spin_trylock(l);
}

int sem_wait(sem_t *s)
{
    hit(IP_SEM_WAIT);
    REAL(sem_t_fn, sem_wait);
    return fn_sem_wait(s);
}

int sem_trywait(sem_t *s)
{
    hit(IP_SEM_TRYWAIT);
    REAL(sem_t_fn, sem_trywait);
    return fn_sem_trywait(s);
}

int sem_timedwait(sem_t *restrict s, const struct timespec *restrict t)
{
    hit(IP_SEM_TIMEDWAIT);
    REAL(sem_timed_t, sem_timedwait);
    return fn_sem_timedwait(s, t);
}

int sem_post(sem_t *s)
{
    hit(IP_SEM_POST);
    REAL(sem_t_fn, sem_post);
    return fn_sem_post(s);
}

int mtx_lock(mtx_t *m)
{
    hit(IP_MTX_LOCK);
    REAL(mtx_fn_t, mtx_lock);
    return fn_mtx_lock(m);
}

int mtx_timedlock(mtx_t *__restrict m, const struct timespec *__restrict t)
{
    hit(IP_MTX_TIMEDLOCK);
    REAL(mtx_timed_t, mtx_timedlock);
    return fn_mtx_timedlock(m, t);
}

int cnd_wait(cnd_t *c, mtx_t *m)
{
    hit(IP_CND_WAIT);
    REAL(cnd_wait_t, cnd_wait);
    return fn_cnd_wait(c, m);
}

int cnd_timedwait(cnd_t *__restrict c, mtx_t *__restrict m, const struct timespec *__restrict t)
{
    hit(IP_CND_TIMEDWAIT);
    REAL(cnd_timed_t, cnd_timedwait);
    return fn_cnd_timedwait(c, m, t);
}

typedef long (*syscall_t)(long, ...);

/* Like glibc's own syscall(), passes six argument registers on whatever the caller gave. */
long syscall(long nr, ...)
{
    hit(nr == SYS_futex ? IP_SYSCALL_FUTEX : IP_SYSCALL_OTHER);
    va_list ap;
    va_start(ap, nr);
    long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
    long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
    va_end(ap);
    REAL(syscall_t, syscall);
    return fn_syscall(nr, a1, a2, a3, a4, a5, a6);
}

/* ---- calls that may wait ---- */

typedef int (*nanosleep_t)(const struct timespec *, struct timespec *);
typedef int (*clock_nanosleep_t)(clockid_t, int, const struct timespec *, struct timespec *);
typedef int (*usleep_t)(useconds_t);
typedef unsigned (*sleep_t)(unsigned);
typedef int (*sched_yield_t)(void);
typedef int (*pthread_join_t)(pthread_t, void **);
typedef int (*poll_t)(struct pollfd *, nfds_t, int);
typedef int (*ppoll_t)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
typedef int (*select_t)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
typedef int (*pselect_t)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
                         const sigset_t *);
typedef int (*epoll_wait_t)(int, struct epoll_event *, int, int);
typedef int (*epoll_pwait_t)(int, struct epoll_event *, int, int, const sigset_t *);
typedef ssize_t (*read_t)(int, void *, size_t);
typedef ssize_t (*write_t)(int, const void *, size_t);
typedef ssize_t (*iov_t)(int, const struct iovec *, int);
typedef ssize_t (*recv_t)(int, void *, size_t, int);
typedef ssize_t (*recvfrom_t)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
typedef ssize_t (*msg_t)(int, struct msghdr *, int);
typedef ssize_t (*send_t)(int, const void *, size_t, int);
typedef ssize_t (*sendto_t)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_t)(int, const struct msghdr *, int);
typedef int (*eventfd_read_t)(int, eventfd_t *);
typedef int (*eventfd_write_t)(int, eventfd_t);
typedef int (*connect_t)(int, const struct sockaddr *, socklen_t);
typedef int (*accept_t)(int, struct sockaddr *, socklen_t *);
typedef int (*fsync_t)(int);

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    hit(IP_NANOSLEEP);
    REAL(nanosleep_t, nanosleep);
    return fn_nanosleep(req, rem);
}

int clock_nanosleep(clockid_t clk, int flags, const struct timespec *req, struct timespec *rem)
{
    hit(IP_CLOCK_NANOSLEEP);
    REAL(clock_nanosleep_t, clock_nanosleep);
    return fn_clock_nanosleep(clk, flags, req, rem);
}

int usleep(useconds_t us)
{
    hit(IP_USLEEP);
    REAL(usleep_t, usleep);
    return fn_usleep(us);
}

unsigned sleep(unsigned s)
{
    hit(IP_SLEEP);
    REAL(sleep_t, sleep);
    return fn_sleep(s);
}

int sched_yield(void)
{
    hit(IP_SCHED_YIELD);
    REAL(sched_yield_t, sched_yield);
    return fn_sched_yield();
}

int pthread_join(pthread_t t, void **ret)
{
    hit(IP_PTHREAD_JOIN);
    REAL(pthread_join_t, pthread_join);
    return fn_pthread_join(t, ret);
}

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    hit(IP_POLL);
    REAL(poll_t, poll);
    return fn_poll(fds, n, timeout);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *sig)
{
    hit(IP_PPOLL);
    REAL(ppoll_t, ppoll);
    return fn_ppoll(fds, n, t, sig);
}

int select(int n, fd_set *restrict r, fd_set *restrict w, fd_set *restrict e,
           struct timeval *restrict t)
{
    hit(IP_SELECT);
    REAL(select_t, select);
    return fn_select(n, r, w, e, t);
}

int pselect(int n, fd_set *restrict r, fd_set *restrict w, fd_set *restrict e,
            const struct timespec *restrict t, const sigset_t *restrict sig)
{
    hit(IP_PSELECT);
    REAL(pselect_t, pselect);
    return fn_pselect(n, r, w, e, t, sig);
}

int epoll_wait(int ep, struct epoll_event *ev, int max, int timeout)
{
    hit(IP_EPOLL_WAIT);
    REAL(epoll_wait_t, epoll_wait);
    return fn_epoll_wait(ep, ev, max, timeout);
}

int epoll_pwait(int ep, struct epoll_event *ev, int max, int timeout, const sigset_t *sig)
{
    hit(IP_EPOLL_PWAIT);
    REAL(epoll_pwait_t, epoll_pwait);
    return fn_epoll_pwait(ep, ev, max, timeout, sig);
}

ssize_t read(int fd, void *buf, size_t n)
{
    hit(IP_READ);
    REAL(read_t, read);
    return fn_read(fd, buf, n);
}

ssize_t readv(int fd, const struct iovec *iov, int n)
{
    hit(IP_READV);
    REAL(iov_t, readv);
    return fn_readv(fd, iov, n);
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    hit(IP_RECV);
    REAL(recv_t, recv);
    return fn_recv(fd, buf, n, flags);
}

ssize_t recvfrom(int fd, void *restrict buf, size_t n, int flags, struct sockaddr *restrict a,
                 socklen_t *restrict alen)
{
    hit(IP_RECVFROM);
    REAL(recvfrom_t, recvfrom);
    return fn_recvfrom(fd, buf, n, flags, a, alen);
}

ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
    hit(IP_RECVMSG);
    REAL(msg_t, recvmsg);
    return fn_recvmsg(fd, m, flags);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    hit(IP_WRITE);
    note_fd(fd);
    REAL(write_t, write);
    return fn_write(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    hit(IP_WRITEV);
    REAL(iov_t, writev);
    return fn_writev(fd, iov, n);
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    hit(IP_SEND);
    REAL(send_t, send);
    return fn_send(fd, buf, n, flags);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a,
               socklen_t alen)
{
    hit(IP_SENDTO);
    REAL(sendto_t, sendto);
    return fn_sendto(fd, buf, n, flags, a, alen);
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    hit(IP_SENDMSG);
    REAL(sendmsg_t, sendmsg);
    return fn_sendmsg(fd, m, flags);
}

int eventfd_read(int fd, eventfd_t *v)
{
    hit(IP_EVENTFD_READ);
    REAL(eventfd_read_t, eventfd_read);
    return fn_eventfd_read(fd, v);
}

int eventfd_write(int fd, eventfd_t v)
{
    hit(IP_EVENTFD_WRITE);
    note_fd(fd);
    REAL(eventfd_write_t, eventfd_write);
    return fn_eventfd_write(fd, v);
}

int connect(int fd, const struct sockaddr *a, socklen_t alen)
{
    hit(IP_CONNECT);
    REAL(connect_t, connect);
    return fn_connect(fd, a, alen);
}

int accept(int fd, struct sockaddr *restrict a, socklen_t *restrict alen)
{
    hit(IP_ACCEPT);
    REAL(accept_t, accept);
    return fn_accept(fd, a, alen);
}

int fsync(int fd)
{
    hit(IP_FSYNC);
    REAL(fsync_t, fsync);
    return fn_fsync(fd);
}
