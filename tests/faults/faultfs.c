/* faultfs: storage fault injection for the tests, as an LD_PRELOAD library
 * (in the spirit of SQLite's I/O-error tests).
 *
 * It wraps the calls through which LMDB and the hub put data on disk
 * (write, pwrite, writev, pwritev, fsync, fdatasync, msync,
 * posix_fallocate, ftruncate) and makes chosen ones fail with a chosen
 * errno, but only for files under one folder (the hub's data folder), so
 * the hub's log, its sockets and ZeroMQ's event descriptors are never
 * touched. A descriptor is matched by the path /proc/self/fd gives for it
 * at the time of the call: no cache, so a reused descriptor number is
 * never mistaken for an earlier file.
 *
 * Environment:
 *   HANDOVER_FAULT_DIR   the folder whose files may fail (required: without
 *                        it nothing is ever failed)
 *   HANDOVER_FAULT       rules, separated by ';' (below)
 *   HANDOVER_FAULT_CTL   a file holding rules in the same syntax, read again
 *                        whenever it changes (size or mtime), so a test can
 *                        switch faults on and off while the hub runs; it
 *                        replaces HANDOVER_FAULT, and a rewrite restarts
 *                        the rules' counters. Empty or missing: no faults.
 *
 * A rule: CALL:ERRNO[:OPTION=VALUE...]
 *   CALL    write | pwrite | writev | pwritev | fsync | fdatasync | msync |
 *           fallocate | ftruncate | wr (any of the write calls) |
 *           sync (fsync, fdatasync or msync) | any
 *   ERRNO   EIO | ENOSPC | EDQUOT | EROFS | a number
 *   after=N the first N matching calls go through (default 0)
 *   count=N then N calls fail (default 1; 0: every one from then on)
 *   every=K of those, only every Kth call fails (default 1)
 *   file=S  only files whose name contains S (e.g. data.mdb, lock.mdb)
 *   fd=sync only descriptors opened O_DSYNC or O_SYNC (LMDB's meta page
 *           writes); fd=plain only the others (its data page writes)
 *   short=1 a write call writes half its bytes for real and returns that
 *           count instead of failing (a disk filling up mid-write)
 *
 * Every injected fault is reported as one line on stderr (the hub's log in
 * the tests), so a test can count them:
 *   faultfs: injected fdatasync=EIO file=data.mdb call=21 rule=1 n=1
 * and at start-up the rules in force:
 *   faultfs: armed dir=/tmp/x/data rules="fdatasync:EIO:after=20:count=3"
 *
 * With a sanitizer build of the program, set
 * ASAN_OPTIONS=verify_asan_link_order=0 (ASan wants to be first).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

enum call {
    C_WRITE,
    C_PWRITE,
    C_WRITEV,
    C_PWRITEV,
    C_FSYNC,
    C_FDATASYNC,
    C_MSYNC,
    C_FALLOCATE,
    C_FTRUNCATE,
    C_N
};
static const char *call_names[C_N] = {"write",   "pwrite",    "writev",
                                      "pwritev", "fsync",     "fdatasync",
                                      "msync",   "fallocate", "ftruncate"};

#define CALLS_WRITE                                                            \
    ((1u << C_WRITE) | (1u << C_PWRITE) | (1u << C_WRITEV) | (1u << C_PWRITEV))
#define CALLS_SYNC ((1u << C_FSYNC) | (1u << C_FDATASYNC) | (1u << C_MSYNC))

#define MAX_RULES 8

typedef struct rule {
    unsigned calls; /* bit per enum call */
    int err;
    char errname[16];
    unsigned long after, count, every;
    char file[64];
    int fdkind; /* 0 any, 1 sync, 2 plain */
    bool shortw;
    unsigned long seen, injected;
} rule;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static rule rules[MAX_RULES];
static int nrules;
static char dir[512];
static size_t dirlen;
static const char *ctl;
static struct stat ctl_st;
static bool ctl_seen;
static unsigned long calls_total;

/* The next definition of a wrapped function (libc's, or a sanitizer's
 * interceptor in front of it). */
#define REAL(type, name)                                                       \
    static type real_##name;                                                   \
    if (real_##name == NULL)                                                   \
    real_##name = (type)dlsym(RTLD_NEXT, #name)

/* Report on stderr without going through our own write wrapper. */
static void
say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    (void)!syscall(SYS_write, 2, line, (size_t)n);
}

static int
parse_errno(const char *s)
{
    static const struct {
        const char *name;
        int v;
    } names[] = {{"EIO", EIO},       {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT},
                 {"EROFS", EROFS},   {"EBADF", EBADF},   {"EINVAL", EINVAL},
                 {"ENOMEM", ENOMEM}, {"EINTR", EINTR},   {"EAGAIN", EAGAIN}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].v;
    char *end;
    long v = strtol(s, &end, 10);
    return (*s && *end == '\0' && v > 0 && v < 4096) ? (int)v : -1;
}

static unsigned
parse_call(const char *s)
{
    if (strcmp(s, "wr") == 0)
        return CALLS_WRITE;
    if (strcmp(s, "sync") == 0)
        return CALLS_SYNC;
    if (strcmp(s, "any") == 0)
        return (1u << C_N) - 1;
    for (int i = 0; i < C_N; i++)
        if (strcmp(s, call_names[i]) == 0)
            return 1u << i;
    return 0;
}

/* Parse one rule; false (with a message) when it is not understood, so a
 * typo in a test fails loudly instead of injecting nothing. */
static bool
parse_rule(char *text, rule *r)
{
    memset(r, 0, sizeof *r);
    r->count = 1;
    r->every = 1;
    char *save = NULL;
    char *call = strtok_r(text, ":", &save);
    char *err = strtok_r(NULL, ":", &save);
    if (call == NULL || err == NULL || (r->calls = parse_call(call)) == 0 ||
        (r->err = parse_errno(err)) < 0) {
        say("faultfs: cannot read rule '%s': want CALL:ERRNO[:opt=val...]",
            call ? call : "");
        return false;
    }
    snprintf(r->errname, sizeof r->errname, "%s", err);
    for (char *o; (o = strtok_r(NULL, ":", &save)) != NULL;) {
        char *eq = strchr(o, '=');
        if (eq == NULL) {
            say("faultfs: option '%s' wants NAME=VALUE", o);
            return false;
        }
        *eq++ = '\0';
        if (strcmp(o, "after") == 0)
            r->after = strtoul(eq, NULL, 10);
        else if (strcmp(o, "count") == 0)
            r->count = strtoul(eq, NULL, 10);
        else if (strcmp(o, "every") == 0)
            r->every = strtoul(eq, NULL, 10) ? strtoul(eq, NULL, 10) : 1;
        else if (strcmp(o, "file") == 0)
            snprintf(r->file, sizeof r->file, "%s", eq);
        else if (strcmp(o, "fd") == 0 && strcmp(eq, "sync") == 0)
            r->fdkind = 1;
        else if (strcmp(o, "fd") == 0 && strcmp(eq, "plain") == 0)
            r->fdkind = 2;
        else if (strcmp(o, "short") == 0)
            r->shortw = strcmp(eq, "0") != 0;
        else {
            say("faultfs: unknown option '%s'", o);
            return false;
        }
    }
    return true;
}

/* Replace the rules (mu held). */
static void
load_rules(const char *spec)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", spec ? spec : "");
    nrules = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ";\n", &save); t && nrules < MAX_RULES;
         t = strtok_r(NULL, ";\n", &save)) {
        while (*t == ' ')
            t++;
        if (*t == '\0' || *t == '#')
            continue;
        char one[512];
        snprintf(one, sizeof one, "%s", t);
        if (parse_rule(one, &rules[nrules]))
            nrules++;
    }
    say("faultfs: armed dir=%s rules=\"%s\" (%d)", dir, spec ? spec : "",
        nrules);
}

/* Re-read the control file when it changed (mu held). */
static void
check_ctl(void)
{
    if (ctl == NULL)
        return;
    struct stat st;
    bool have = stat(ctl, &st) == 0;
    if (have && ctl_seen && st.st_size == ctl_st.st_size &&
        st.st_mtim.tv_sec == ctl_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == ctl_st.st_mtim.tv_nsec &&
        st.st_ino == ctl_st.st_ino)
        return;
    if (!have && !ctl_seen)
        return;
    char spec[2048] = "";
    if (have) {
        int fd = open(ctl, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, spec, sizeof spec - 1);
            spec[n > 0 ? n : 0] = '\0';
            close(fd);
        }
        ctl_st = st;
    }
    ctl_seen = have;
    load_rules(spec);
}

__attribute__((constructor)) static void
faultfs_init(void)
{
    const char *d = getenv("HANDOVER_FAULT_DIR");
    if (d == NULL || *d == '\0')
        return;
    /* The folder may not exist yet (the hub creates it): compare paths as
     * given, made absolute, with the trailing slash dropped. */
    if (d[0] != '/') {
        char cwd[256];
        if (getcwd(cwd, sizeof cwd) == NULL)
            return;
        snprintf(dir, sizeof dir, "%s/%s", cwd, d);
    } else {
        snprintf(dir, sizeof dir, "%s", d);
    }
    dirlen = strlen(dir);
    while (dirlen > 1 && dir[dirlen - 1] == '/')
        dir[--dirlen] = '\0';
    ctl = getenv("HANDOVER_FAULT_CTL");
    pthread_mutex_lock(&mu);
    if (ctl != NULL && *ctl != '\0')
        check_ctl();
    else {
        ctl = NULL;
        load_rules(getenv("HANDOVER_FAULT"));
    }
    pthread_mutex_unlock(&mu);
}

/* The file name behind fd if it lies in the folder, else NULL. */
static const char *
fd_file(int fd, char *buf, size_t cap)
{
    if (dirlen == 0 || fd < 0)
        return NULL;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, cap - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    if ((size_t)n <= dirlen || strncmp(buf, dir, dirlen) != 0 ||
        buf[dirlen] != '/')
        return NULL;
    return buf + dirlen + 1;
}

/* Mappings of the folder's files, for msync, which names an address. */
#define MAX_MAPS 16
static struct {
    uintptr_t start, end;
    char name[64];
    int fd_sync;
} maps[MAX_MAPS];

/* Should this call fail? Returns the errno to fail with, 0 to let it
 * through; *shortw set when the rule wants a short write instead. */
static int
decide(enum call c, int fd, const char *name, bool *shortw)
{
    if (name == NULL)
        return 0;
    int fdkind = 0;
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFL);
        fdkind = fl >= 0 && (fl & (O_DSYNC | O_SYNC)) ? 1 : 2;
    }
    int out = 0;
    pthread_mutex_lock(&mu);
    check_ctl();
    calls_total++;
    for (int i = 0; i < nrules && out == 0; i++) {
        rule *r = &rules[i];
        if (!(r->calls & (1u << c)) || (r->file[0] && !strstr(name, r->file)) ||
            (r->fdkind && fdkind && r->fdkind != fdkind))
            continue;
        unsigned long n = ++r->seen;
        if (n <= r->after)
            continue;
        if ((n - r->after - 1) % r->every != 0)
            continue;
        if (r->count && r->injected >= r->count)
            continue;
        r->injected++;
        out = r->err;
        *shortw = r->shortw && (CALLS_WRITE & (1u << c));
        say("faultfs: injected %s=%s%s file=%s call=%lu rule=%d n=%lu",
            call_names[c], r->errname, *shortw ? "(short write)" : "", name, n,
            i + 1, r->injected);
    }
    pthread_mutex_unlock(&mu);
    return out;
}

static int
decide_fd(enum call c, int fd, bool *shortw)
{
    char buf[1024];
    *shortw = false;
    return decide(c, fd, fd_file(fd, buf, sizeof buf), shortw);
}

/* ------------------------------------------------------------ wrappers */

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);
typedef ssize_t (*pwritev2_fn)(int, const struct iovec *, int, off_t, int);
typedef int (*fd_fn)(int);
typedef int (*msync_fn)(void *, size_t, int);
typedef int (*fallocate_fn)(int, off_t, off_t);
typedef int (*ftruncate_fn)(int, off_t);
typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);

ssize_t
write(int fd, const void *buf, size_t n)
{
    REAL(write_fn, write);
    bool sh;
    int e = decide_fd(C_WRITE, fd, &sh);
    if (e && sh && n > 1)
        return real_write(fd, buf, n / 2);
    if (e) {
        errno = e;
        return -1;
    }
    return real_write(fd, buf, n);
}

static ssize_t
do_pwrite(pwrite_fn f, int fd, const void *buf, size_t n, off_t off)
{
    bool sh;
    int e = decide_fd(C_PWRITE, fd, &sh);
    if (e && sh && n > 1)
        return f(fd, buf, n / 2, off);
    if (e) {
        errno = e;
        return -1;
    }
    return f(fd, buf, n, off);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REAL(pwrite_fn, pwrite);
    return do_pwrite(real_pwrite, fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    REAL(pwrite_fn, pwrite64);
    return do_pwrite(real_pwrite64, fd, buf, n, off);
}

/* A short vectored write: half of the first buffer. */
static ssize_t
short_iov(int fd, const struct iovec *iov, int cnt, off_t off, bool pos)
{
    if (cnt <= 0 || iov[0].iov_len < 2) {
        errno = ENOSPC;
        return -1;
    }
    REAL(write_fn, write);
    REAL(pwrite_fn, pwrite);
    return pos ? real_pwrite(fd, iov[0].iov_base, iov[0].iov_len / 2, off)
               : real_write(fd, iov[0].iov_base, iov[0].iov_len / 2);
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
    REAL(writev_fn, writev);
    bool sh;
    int e = decide_fd(C_WRITEV, fd, &sh);
    if (e && sh)
        return short_iov(fd, iov, cnt, 0, false);
    if (e) {
        errno = e;
        return -1;
    }
    return real_writev(fd, iov, cnt);
}

static ssize_t
do_pwritev(pwritev_fn f, int fd, const struct iovec *iov, int cnt, off_t off)
{
    bool sh;
    int e = decide_fd(C_PWRITEV, fd, &sh);
    if (e && sh)
        return short_iov(fd, iov, cnt, off, true);
    if (e) {
        errno = e;
        return -1;
    }
    return f(fd, iov, cnt, off);
}

ssize_t
pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    REAL(pwritev_fn, pwritev);
    return do_pwritev(real_pwritev, fd, iov, cnt, off);
}

ssize_t
pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    REAL(pwritev_fn, pwritev64);
    return do_pwritev(real_pwritev64, fd, iov, cnt, off);
}

ssize_t
pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    REAL(pwritev2_fn, pwritev2);
    bool sh;
    int e = decide_fd(C_PWRITEV, fd, &sh);
    if (e && sh)
        return short_iov(fd, iov, cnt, off, off != -1);
    if (e) {
        errno = e;
        return -1;
    }
    return real_pwritev2(fd, iov, cnt, off, flags);
}

int
fsync(int fd)
{
    REAL(fd_fn, fsync);
    bool sh;
    int e = decide_fd(C_FSYNC, fd, &sh);
    if (e) {
        errno = e;
        return -1;
    }
    return real_fsync(fd);
}

int
fdatasync(int fd)
{
    REAL(fd_fn, fdatasync);
    bool sh;
    int e = decide_fd(C_FDATASYNC, fd, &sh);
    if (e) {
        errno = e;
        return -1;
    }
    return real_fdatasync(fd);
}

/* posix_fallocate reports its error as the return value, not in errno. */
static int
do_fallocate(fallocate_fn f, int fd, off_t off, off_t len)
{
    bool sh;
    int e = decide_fd(C_FALLOCATE, fd, &sh);
    return e ? e : f(fd, off, len);
}

int
posix_fallocate(int fd, off_t off, off_t len)
{
    REAL(fallocate_fn, posix_fallocate);
    return do_fallocate(real_posix_fallocate, fd, off, len);
}

int
posix_fallocate64(int fd, off_t off, off_t len)
{
    REAL(fallocate_fn, posix_fallocate64);
    return do_fallocate(real_posix_fallocate64, fd, off, len);
}

int
ftruncate(int fd, off_t len)
{
    REAL(ftruncate_fn, ftruncate);
    bool sh;
    int e = decide_fd(C_FTRUNCATE, fd, &sh);
    if (e) {
        errno = e;
        return -1;
    }
    return real_ftruncate(fd, len);
}

void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    REAL(mmap_fn, mmap);
    void *p = real_mmap(addr, len, prot, flags, fd, off);
    char buf[1024];
    const char *name;
    if (p != MAP_FAILED && fd >= 0 &&
        (name = fd_file(fd, buf, sizeof buf)) != NULL) {
        int fl = fcntl(fd, F_GETFL);
        pthread_mutex_lock(&mu);
        for (int i = 0; i < MAX_MAPS; i++) {
            if (maps[i].end == 0) {
                maps[i].start = (uintptr_t)p;
                maps[i].end = (uintptr_t)p + len;
                maps[i].fd_sync = fl >= 0 && (fl & (O_DSYNC | O_SYNC));
                snprintf(maps[i].name, sizeof maps[i].name, "%s", name);
                break;
            }
        }
        pthread_mutex_unlock(&mu);
    }
    return p;
}

int
munmap(void *addr, size_t len)
{
    REAL(munmap_fn, munmap);
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_MAPS; i++)
        if (maps[i].end && maps[i].start == (uintptr_t)addr)
            maps[i].end = 0;
    pthread_mutex_unlock(&mu);
    return real_munmap(addr, len);
}

int
msync(void *addr, size_t len, int flags)
{
    REAL(msync_fn, msync);
    char name[64] = "";
    uintptr_t a = (uintptr_t)addr;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_MAPS; i++)
        if (maps[i].end && a >= maps[i].start && a < maps[i].end)
            snprintf(name, sizeof name, "%s", maps[i].name);
    pthread_mutex_unlock(&mu);
    bool sh = false;
    int e = decide(C_MSYNC, -1, name[0] ? name : NULL, &sh);
    if (e) {
        errno = e;
        return -1;
    }
    return real_msync(addr, len, flags);
}
