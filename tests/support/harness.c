#define _XOPEN_SOURCE 700 /* nftw */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "handover/timeutil.h"

int
th_ms(int ms)
{
    const char *m = getenv("HANDOVER_TEST_TIMEOUT_MULTIPLIER");
    long k = m ? strtol(m, NULL, 10) : 1; /* a bad value reads as 1 */
    return ms * (int)(k > 0 && k < 100 ? k : 1);
}

void
th_tmpdir(char *out, size_t cap)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, cap, "%s/handover-test-XXXXXX", base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(out), "mkdtemp %s: %s", out, strerror(errno));
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void
th_rm_rf(const char *dir)
{
    if (dir[0])
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int
th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

void
th_hub_init(th_hub *h, const char *const *extra)
{
    memset(h, 0, sizeof *h);
    char tmp[200];
    th_tmpdir(tmp, sizeof tmp);
    snprintf(h->dir, sizeof h->dir, "%s", tmp);
    h->port = th_free_port();
    snprintf(h->endpoint, sizeof h->endpoint, "tcp://127.0.0.1:%d", h->port);
    snprintf(h->log, sizeof h->log, "%s/hub.log", tmp);
    char *data = malloc(300);
    snprintf(data, 300, "%s/data", tmp);
    h->args[h->nargs++] = HANDOVER_HUB_BIN;
    h->args[h->nargs++] = "--data";
    h->args[h->nargs++] = data;
    h->args[h->nargs++] = "--endpoint";
    h->args[h->nargs++] = h->endpoint;
    h->args[h->nargs++] = "--log-level";
    h->args[h->nargs++] = "info";
    for (; extra && *extra && h->nargs < 30; extra++)
        h->args[h->nargs++] = *extra;
    h->args[h->nargs] = NULL;
}

static void
print_log_tail(const th_hub *h)
{
    FILE *f = fopen(h->log, "r");
    if (f == NULL)
        return;
    char line[1024];
    cr_log_warn("--- hub log %s ---", h->log);
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "  | %s", line);
    fclose(f);
}

static pid_t
spawn_args(const char *const *args, const char *log)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    return pid;
}

static void
spawn(th_hub *h)
{
    if (h->nenv == 0) {
        h->pid = spawn_args(h->args, h->log);
        return;
    }
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        for (int i = 0; i < h->nenv; i++)
            putenv((char *)h->env[i]);
        execv(h->args[0], (char *const *)h->args);
        _exit(127);
    }
    h->pid = pid;
}

void
th_hub_setenv(th_hub *h, const char *kv)
{
    if (kv == NULL) {
        h->nenv = 0;
        return;
    }
    cr_assert(h->nenv < 16, "too many environment variables for the hub");
    cr_assert(strchr(kv, '=') != NULL, "th_hub_setenv wants NAME=VALUE");
    h->env[h->nenv++] = kv;
}

static size_t
count_in_file(const char *log, const char *needle)
{
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return 0;
    char line[4096];
    size_t n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

static size_t
count_in_log(const th_hub *h, const char *needle)
{
    return count_in_file(h->log, needle);
}

size_t
th_log_count(const th_hub *h, const char *needle)
{
    return count_in_log(h, needle);
}

bool
th_log_contains(const th_hub *h, const char *needle)
{
    return count_in_log(h, needle) > 0;
}

void
th_hub_start(th_hub *h)
{
    size_t before = count_in_log(h, " ready endpoint=");
    spawn(h);
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(10000);
    while (hov_mono_ms() < deadline) {
        if (count_in_log(h, " ready endpoint=") > before)
            return;
        int st;
        if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
            h->pid = 0;
            print_log_tail(h);
            cr_assert_fail("handover-hub exited during start-up (status %d)",
                           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        }
        usleep(10000);
    }
    print_log_tail(h);
    cr_assert_fail("handover-hub did not become ready within 10 s");
}

int
th_hub_run_expect_exit(th_hub *h, int timeout_ms)
{
    spawn(h);
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(timeout_ms);
    while (hov_mono_ms() < deadline) {
        int st;
        if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
            h->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(10000);
    }
    th_hub_kill(h, SIGKILL);
    cr_assert_fail("handover-hub did not exit within %d ms", timeout_ms);
    return -1;
}

bool
th_hub_alive(th_hub *h)
{
    if (h->pid <= 0)
        return false;
    int st;
    if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
        h->pid = 0;
        return false;
    }
    return true;
}

void
th_hub_kill(th_hub *h, int sig)
{
    if (h->pid <= 0)
        return;
    kill(h->pid, sig);
    int st;
    waitpid(h->pid, &st, 0);
    h->pid = 0;
}

void
th_hub_stop(th_hub *h)
{
    cr_assert(th_hub_alive(h), "the hub died before the test stopped it");
    kill(h->pid, SIGTERM);
    int st = 0;
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(10000);
    pid_t r = 0;
    while (hov_mono_ms() < deadline && (r = waitpid(h->pid, &st, WNOHANG)) == 0)
        usleep(10000);
    if (r != h->pid) {
        th_hub_kill(h, SIGKILL);
        cr_assert_fail("the hub did not stop within 10 s of SIGTERM");
    }
    h->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        print_log_tail(h);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "the hub did not exit cleanly on SIGTERM");
    cr_assert(th_log_contains(h, "stopped cleanly"));
}

void
th_hub_fini(th_hub *h)
{
    if (h->pid > 0)
        th_hub_kill(h, SIGKILL);
    free((void *)h->args[2]);
    h->args[2] = NULL;
    if (getenv("HANDOVER_TEST_KEEP")) /* keep logs and stores to debug */
        cr_log_warn("kept %s", h->dir);
    else
        th_rm_rf(h->dir);
}

hov_client *
th_client(const th_hub *h, const char *agency, const char *name, bool consume,
          unsigned credit)
{
    hov_client_opts o = {0};
    o.agency = agency;
    o.name = name;
    o.consume = consume;
    o.credit = credit;
    hov_client *c = NULL;
    hov_error err = {0};
    cr_assert(hov_client_new(&c, &o, &err) == HOV_OK, "client: %s", err.msg);
    cr_assert(hov_client_connect(c, h->endpoint, &err) == HOV_OK, "connect: %s",
              err.msg);
    return c;
}

void
th_publish(hov_client *c, const hov_sample *s, hov_msg *out)
{
    size_t len;
    uint8_t *buf = hov_sample_pack(s, &len);
    cr_assert_not_null(buf);
    hov_error err = {0};
    hov_err e = hov_client_publish_wait(c, buf, len, th_ms(10000), out, &err);
    free(buf);
    cr_assert(e == HOV_OK, "publish: %s", err.msg);
}

void
th_publish_ok(hov_client *c, const hov_sample *s)
{
    hov_msg m;
    th_publish(c, s, &m);
    cr_assert(m.kind == HOV_MSG_ACK, "expected an Ack, got a Nak: %s: %s",
              hov_errname(m.code), m.reason);
}

const char *
th_publish_nak(hov_client *c, const hov_sample *s, int code)
{
    static char reason[512];
    hov_msg m;
    th_publish(c, s, &m);
    cr_assert(m.kind == HOV_MSG_NAK, "expected a Nak %s, got an Ack",
              hov_errname((hov_err)code));
    cr_assert(m.code == (hov_err)code, "expected Nak %s, got %s: %s",
              hov_errname((hov_err)code), hov_errname(m.code), m.reason);
    cr_assert(m.reason[0] != '\0', "a Nak must carry a reason");
    snprintf(reason, sizeof reason, "%s", m.reason);
    return reason;
}

void
th_next_delivery(hov_client *c, int timeout_ms, hov_msg *out,
                 Handover__Event **ev)
{
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(timeout_ms);
    hov_error err = {0};
    for (;;) {
        uint64_t now = hov_mono_ms();
        cr_assert(now < deadline, "no delivery within %d ms", timeout_ms);
        cr_assert(hov_client_next(c, (int)(deadline - now), out, &err) ==
                      HOV_OK,
                  "next: %s", err.msg);
        if (out->kind == HOV_MSG_DELIVER)
            break;
    }
    if (ev) {
        *ev = handover__event__unpack(NULL, out->event_len, out->event);
        cr_assert_not_null(*ev, "delivered bytes are not an Event");
    }
}

void
th_no_delivery(hov_client *c, int ms)
{
    uint64_t deadline = hov_mono_ms() + (uint64_t)ms;
    hov_error err = {0};
    hov_msg m;
    for (;;) {
        uint64_t now = hov_mono_ms();
        if (now >= deadline)
            return;
        cr_assert(hov_client_next(c, (int)(deadline - now), &m, &err) ==
                  HOV_OK);
        cr_assert(m.kind != HOV_MSG_DELIVER,
                  "unexpected delivery of event %s to %s", m.event_id,
                  m.destination);
    }
}

/* ------------------------------------------------------------ processes */

void
th_proc_init(th_proc *p, const char *dir, const char *name, const char *ready,
             const char *const *argv)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    p->ready = ready;
    snprintf(p->log, sizeof p->log, "%s/%s.log", dir, name);
    for (; argv && *argv && p->nargs < 46; argv++)
        p->args[p->nargs++] = *argv;
    p->args[p->nargs] = NULL;
}

static void
proc_print_log(const th_proc *p)
{
    FILE *f = fopen(p->log, "r");
    if (f == NULL)
        return;
    char line[1024];
    cr_log_warn("--- %s log %s ---", p->name, p->log);
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "  | %s", line);
    fclose(f);
}

void
th_proc_start(th_proc *p)
{
    size_t before = count_in_file(p->log, p->ready);
    p->pid = spawn_args(p->args, p->log);
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(10000);
    while (hov_mono_ms() < deadline) {
        if (count_in_file(p->log, p->ready) > before)
            return;
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            proc_print_log(p);
            cr_assert_fail("%s exited during start-up (status %d)", p->name,
                           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        }
        usleep(10000);
    }
    proc_print_log(p);
    cr_assert_fail("%s did not log '%s' within 10 s", p->name, p->ready);
}

int
th_proc_run(th_proc *p, int timeout_ms)
{
    p->pid = spawn_args(p->args, p->log);
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(timeout_ms);
    while (hov_mono_ms() < deadline) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(10000);
    }
    th_proc_kill(p, SIGKILL);
    proc_print_log(p);
    cr_assert_fail("%s did not exit within %d ms", p->name, timeout_ms);
    return -1;
}

void
th_proc_kill(th_proc *p, int sig)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, sig);
    int st;
    waitpid(p->pid, &st, 0);
    p->pid = 0;
}

void
th_proc_stop(th_proc *p)
{
    cr_assert(p->pid > 0, "%s is not running", p->name);
    kill(p->pid, SIGTERM);
    int st = 0;
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(10000);
    pid_t r = 0;
    while (hov_mono_ms() < deadline && (r = waitpid(p->pid, &st, WNOHANG)) == 0)
        usleep(10000);
    if (r != p->pid) {
        th_proc_kill(p, SIGKILL);
        proc_print_log(p);
        cr_assert_fail("%s did not stop within 10 s of SIGTERM", p->name);
    }
    p->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        proc_print_log(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "%s did not exit cleanly on SIGTERM", p->name);
}

size_t
th_proc_log_count(const th_proc *p, const char *needle)
{
    return count_in_file(p->log, needle);
}

bool
th_proc_wait_log(const th_proc *p, const char *needle, size_t count,
                 int timeout_ms)
{
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(timeout_ms);
    while (hov_mono_ms() < deadline) {
        if (count_in_file(p->log, needle) >= count)
            return true;
        usleep(20000);
    }
    proc_print_log(p);
    return false;
}
