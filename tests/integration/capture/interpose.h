/* interpose: count allocation, locking and blocking calls made by threads that asked to be
 * watched. */
#ifndef STENO_TESTS_CAPTURE_INTERPOSE_H
#define STENO_TESTS_CAPTURE_INTERPOSE_H

#include <stdint.h>

/*
 * This module defines malloc, pthread_mutex_lock, write, poll, ... in the test
 * executable itself. The executable comes first in the dynamic linker's
 * lookup order, so every call libsteno, libwebsockets or libc's exported
 * entry points make to these functions lands here (ELF interposition); each
 * wrapper counts the call when the calling thread is being watched, then
 * forwards it to the next definition (dlsym(RTLD_NEXT): libc, or a
 * sanitizer's own interceptor, which itself interposes libc).
 *
 * What it cannot see: calls libc makes to its own internal aliases (stdio's
 * internal locks, __libc_* entry points) and raw system calls issued inline.
 * The test backs that blind spot with the thread's voluntary context switch
 * count, which any blocking wait raises.
 */

typedef enum ip_class {
    IP_ALLOC = 0, /* heap or address-space allocation */
    IP_LOCK = 1,  /* mutexes, condition variables, rwlocks, semaphores, futexes */
    IP_BLOCK = 2, /* calls that may wait: sleeps, polls, reads, writes, joins */
} ip_class;

typedef enum ip_fn {
    IP_MALLOC,
    IP_CALLOC,
    IP_REALLOC,
    IP_REALLOCARRAY,
    IP_FREE,
    IP_POSIX_MEMALIGN,
    IP_ALIGNED_ALLOC,
    IP_MEMALIGN,
    IP_VALLOC,
    IP_PVALLOC,
    IP_MMAP,
    IP_MUNMAP,
    IP_MREMAP,
    IP_SBRK,
    IP_MUTEX_LOCK,
    IP_MUTEX_TRYLOCK,
    IP_MUTEX_TIMEDLOCK,
    IP_MUTEX_UNLOCK,
    IP_COND_WAIT,
    IP_COND_TIMEDWAIT,
    IP_COND_SIGNAL,
    IP_COND_BROADCAST,
    IP_RWLOCK_RDLOCK,
    IP_RWLOCK_WRLOCK,
    IP_RWLOCK_TRYRDLOCK,
    IP_RWLOCK_TRYWRLOCK,
    IP_RWLOCK_TIMEDRDLOCK,
    IP_RWLOCK_TIMEDWRLOCK,
    IP_RWLOCK_UNLOCK,
    IP_SPIN_LOCK,
    IP_SPIN_TRYLOCK,
    IP_SEM_WAIT,
    IP_SEM_TRYWAIT,
    IP_SEM_TIMEDWAIT,
    IP_SEM_POST,
    IP_MTX_LOCK,
    IP_MTX_TIMEDLOCK,
    IP_CND_WAIT,
    IP_CND_TIMEDWAIT,
    IP_SYSCALL_FUTEX, /* syscall(SYS_futex, ...) */
    IP_SYSCALL_OTHER, /* any other syscall() */
    IP_NANOSLEEP,
    IP_CLOCK_NANOSLEEP,
    IP_USLEEP,
    IP_SLEEP,
    IP_SCHED_YIELD,
    IP_PTHREAD_JOIN,
    IP_POLL,
    IP_PPOLL,
    IP_SELECT,
    IP_PSELECT,
    IP_EPOLL_WAIT,
    IP_EPOLL_PWAIT,
    IP_READ,
    IP_READV,
    IP_RECV,
    IP_RECVFROM,
    IP_RECVMSG,
    IP_WRITE,
    IP_WRITEV,
    IP_SEND,
    IP_SENDTO,
    IP_SENDMSG,
    IP_EVENTFD_READ,
    IP_EVENTFD_WRITE,
    IP_CONNECT,
    IP_ACCEPT,
    IP_FSYNC,
    IP_N
} ip_fn;

/* Starts or stops counting the calling thread's calls (a thread-local flag). */
void ip_watch(int on);
/* 1 while the calling thread is watched. */
int ip_is_watched(void);
/* Zeroes every counter and forgets the recorded descriptors. */
void ip_reset(void);
/* Calls of f made while watched since the last reset. */
uint64_t ip_count(ip_fn f);
/* "malloc", "pthread_mutex_lock", ... */
const char *ip_name(ip_fn f);
ip_class ip_class_of(ip_fn f);
/* The distinct descriptors passed to watched write() and eventfd_write() calls (up to max);
 * returns how many were recorded. */
int ip_written_fds(int *fds, int max);
/* 1 once the wrappers have found the functions they forward to. */
int ip_ready(void);

#endif
