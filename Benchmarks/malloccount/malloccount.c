/*
 * malloccount.so: an LD_PRELOAD library that counts allocation calls.
 *
 *   LD_PRELOAD=./malloccount.so MALLOCCOUNT_OUT=/tmp/counts PROGRAM ...
 *   kill -USR2 PID      # writes the counts so far to $MALLOCCOUNT_OUT
 *   cat /tmp/counts     # seq=1 total=... malloc=... calloc=... realloc=... ...
 *
 * It interposes malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign, bumps one
 * relaxed atomic counter per function, and forwards to glibc's own allocator (__libc_malloc and
 * friends, so there is no dlsym bootstrap problem). free is not interposed: glibc's free takes
 * these blocks as usual.
 *
 * On SIGUSR2, and at exit, it writes one line to $MALLOCCOUNT_OUT (via a temporary file and
 * rename, so a reader never sees half a line), or to stderr if that is unset:
 *
 *   seq=N total=T malloc=A calloc=B realloc=C posix_memalign=D aligned_alloc=E memalign=F
 *
 * seq counts the dumps, so a reader can wait for a fresh one. The handler only uses
 * async-signal-safe calls (open, write, rename, close). If the program installs its own SIGUSR2
 * handler, ours is gone: the exit dump still works.
 *
 * glibc only (__libc_malloc, __libc_calloc, __libc_realloc, __libc_memalign).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

enum { C_MALLOC, C_CALLOC, C_REALLOC, C_POSIX_MEMALIGN, C_ALIGNED_ALLOC, C_MEMALIGN, C_COUNT };
static const char *const names[C_COUNT] = {"malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc",
                                           "memalign"};
static _Atomic uint64_t counts[C_COUNT];
static _Atomic uint64_t dumps;
static const char *out_path; /* set once in the constructor, before any signal */
static char tmp_path[4096];

#define BUMP(i) atomic_fetch_add_explicit(&counts[i], 1, memory_order_relaxed)

void *malloc(size_t size) {
    BUMP(C_MALLOC);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    BUMP(C_CALLOC);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    BUMP(C_REALLOC);
    return __libc_realloc(p, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    BUMP(C_POSIX_MEMALIGN);
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p && size) return ENOMEM;
    *result = p;
    return 0;
}

void *aligned_alloc(size_t alignment, size_t size) {
    BUMP(C_ALIGNED_ALLOC);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    BUMP(C_MEMALIGN);
    return __libc_memalign(alignment, size);
}

/* ---- async-signal-safe formatting and dump */

static size_t put_str(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at < cap) buf[at++] = *s++;
    return at;
}

static size_t put_u64(char *buf, size_t at, size_t cap, uint64_t v) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && at < cap) buf[at++] = digits[--n];
    return at;
}

static void dump(void) {
    int saved_errno = errno;
    uint64_t seq = atomic_fetch_add(&dumps, 1) + 1;
    uint64_t values[C_COUNT], total = 0;
    for (int i = 0; i < C_COUNT; i++) {
        values[i] = atomic_load_explicit(&counts[i], memory_order_relaxed);
        total += values[i];
    }
    char line[512];
    size_t at = 0, cap = sizeof line - 1;
    at = put_str(line, at, cap, "seq=");
    at = put_u64(line, at, cap, seq);
    at = put_str(line, at, cap, " total=");
    at = put_u64(line, at, cap, total);
    for (int i = 0; i < C_COUNT; i++) {
        at = put_str(line, at, cap, " ");
        at = put_str(line, at, cap, names[i]);
        at = put_str(line, at, cap, "=");
        at = put_u64(line, at, cap, values[i]);
    }
    line[at++] = '\n';

    if (out_path) {
        int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ssize_t w = write(fd, line, at);
            close(fd);
            if (w == (ssize_t)at) rename(tmp_path, out_path);
        }
    } else {
        ssize_t w = write(2, line, at);
        (void)w;
    }
    errno = saved_errno;
}

static void on_sigusr2(int sig) {
    (void)sig;
    dump();
}

static void at_exit(void) { dump(); }

__attribute__((constructor)) static void malloccount_init(void) {
    const char *path = getenv("MALLOCCOUNT_OUT");
    if (path && *path && strlen(path) + 8 < sizeof tmp_path) {
        out_path = path;
        memcpy(tmp_path, path, strlen(path));
        memcpy(tmp_path + strlen(path), ".tmp", 5);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr2;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    atexit(at_exit);
}
