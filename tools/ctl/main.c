/* handover-ctl: the operations CLI over the hub's status socket
 * (hub/status.h describes the protocol).
 *
 * It sends one command line, prints the hub's answer and exits with a code
 * a monitoring check can use: 0 OK, 1 WARNING, 2 CRITICAL (the hub's
 * health, for `status`), 3 UNKNOWN (no answer: the hub is not running, the
 * socket is not ours to use, or the answer is garbled), 4 the command was
 * refused (bad usage, or the hub said why not). Other commands that
 * succeed exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "handover/io.h"

#define DEFAULT_DATA   "./handover-data"
#define SOCKET_NAME    "hub.sock"
#define LINE_MAX_BYTES 1024
#define ANSWER_MAX     ((size_t)64 << 20)

enum {
    EXIT_HEALTH_OK = 0,
    EXIT_HEALTH_WARNING = 1,
    EXIT_HEALTH_CRITICAL = 2,
    EXIT_UNKNOWN = 3,
    EXIT_REFUSED = 4,
};

/* Process-wide: the command, so that failures are reported where a
 * monitoring system reads them (stdout for `status`). Set once in main. */
static struct {
    const char *command;
} g;

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: handover-ctl [--data DIR | --socket PATH] [--json] "
            "COMMAND [ARGS]\n"
            "\n"
            "  status                         health: what needs attention "
            "first\n"
            "  adapters                       adapter sessions: up or down, "
            "heartbeat, credit\n"
            "  queues                         depth, in flight, oldest, "
            "rates, paused\n"
            "  dead-letters                   list dead letters\n"
            "  dead-letters show EVENT_ID     one event's dead letters and "
            "lifecycle\n"
            "  dead-letters redrive EVENT_ID|all   queue them again "
            "(audited)\n"
            "  pause AGENCY                   stop dispatch to gp, nursing, "
            "social or voluntary\n"
            "  resume AGENCY                  start it again\n"
            "  overdue                        outcomes past their deadline\n"
            "  metrics                        Prometheus text\n"
            "  keygen NAME [--dir DIR]        write a CURVE key pair: "
            "DIR/NAME.key (secret,\n"
            "                                 mode 0600) and DIR/NAME.pub; "
            "prints the public key\n"
            "\n"
            "  -d, --data DIR        the hub's data folder (socket "
            "DIR/hub.sock; default %s)\n"
            "  -s, --socket PATH     the status socket itself\n"
            "  -j, --json            one JSON object instead of text\n"
            "  -o, --operator NAME   who runs pause, resume or redrive "
            "(default: your login name); recorded in the audit log\n"
            "  -t, --timeout SECS    wait this long for the answer "
            "(default 10)\n"
            "\n"
            "exit: 0 OK, 1 WARNING, 2 CRITICAL (status), 3 UNKNOWN (no "
            "answer from the hub), 4 refused\n",
            DEFAULT_DATA);
}

static int unknown(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A failure to reach the hub: UNKNOWN, where a check reads it. */
static int
unknown(const char *fmt, ...)
{
    FILE *f = strcmp(g.command, "status") == 0 ? stdout : stderr;
    va_list ap;
    va_start(ap, fmt);
    fprintf(f, "HANDOVER UNKNOWN - ");
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    va_end(ap);
    return EXIT_UNKNOWN;
}

static int
refused(const char *msg)
{
    fprintf(stderr, "handover-ctl: %s\n", msg);
    return EXIT_REFUSED;
}

/* ------------------------------------------------------------- keygen */

/* The key pair is libzmq's own (zmq_curve_keypair), so it is exactly what
 * the sockets expect. */

static bool
keygen_name_ok(const char *name)
{
    if (name[0] == '\0' || name[0] == '.' || strlen(name) > 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            return false;
    return true;
}

/* Write text to a new file with mode; never over an existing key. */
static int
keygen_write(const char *path, mode_t mode, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf(stderr, "handover-ctl: keygen: create %s: %s%s\n", path,
                strerror(errno),
                errno == EEXIST ? " (keys are never overwritten: move the "
                                  "old pair away first)"
                                : "");
        return -1;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "handover-ctl: keygen: write %s: %s\n", path,
                    strerror(errno));
            close(fd);
            unlink(path);
            return -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fprintf(stderr, "handover-ctl: keygen: sync %s: %s\n", path,
                strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

static int
keygen(int nargs, char *const *args, const char *dir)
{
    if (nargs != 1 || !keygen_name_ok(args[0]))
        return refused("keygen wants one NAME of letters, digits, '-', '_' "
                       "or '.' (e.g. hub, nursing, gp)");
    const char *name = args[0];
    if (dir == NULL)
        dir = ".";
    char pub[41], sec[41];
    if (zmq_curve_keypair(pub, sec) != 0)
        return refused("keygen: libzmq has no CURVE (built without "
                       "libsodium)");
    char keypath[1024], pubpath[1024];
    if (snprintf(keypath, sizeof keypath, "%s/%s.key", dir, name) >=
            (int)sizeof keypath ||
        snprintf(pubpath, sizeof pubpath, "%s/%s.pub", dir, name) >=
            (int)sizeof pubpath)
        return refused("keygen: --dir is too long");
    /* The CZMQ certificate layout, so zcert tools read these files too. */
    char text[512];
    snprintf(text, sizeof text,
             "#   Handover CURVE key pair \"%s\" (handover-ctl keygen).\n"
             "#   SECRET: keep this file mode 0600; give others NAME.pub.\n"
             "metadata\n"
             "    name = \"%s\"\n"
             "curve\n"
             "    public-key = \"%s\"\n"
             "    secret-key = \"%s\"\n",
             name, name, pub, sec);
    int rc = keygen_write(keypath, 0600, text);
    explicit_bzero(sec, sizeof sec); /* not optimised away, unlike memset */
    explicit_bzero(text, sizeof text);
    if (rc != 0)
        return EXIT_REFUSED;
    snprintf(text, sizeof text,
             "#   Handover CURVE public key \"%s\" (handover-ctl keygen).\n"
             "metadata\n"
             "    name = \"%s\"\n"
             "curve\n"
             "    public-key = \"%s\"\n",
             name, name, pub);
    if (keygen_write(pubpath, 0644, text) != 0) {
        unlink(keypath); /* half a pair is no use */
        return EXIT_REFUSED;
    }
    printf("%s\n", pub);
    return 0;
}

/* Who is at the keyboard, for the audit log: the login name, else $USER,
 * else the name of the effective uid. */
static const char *
login_name(void)
{
    const char *n = getlogin();
    if (n && *n)
        return n;
    n = getenv("USER");
    if (n && *n)
        return n;
    struct passwd *pw = getpwuid(geteuid());
    return pw && pw->pw_name && *pw->pw_name ? pw->pw_name : NULL;
}

static bool
is_agency(const char *s)
{
    return strcmp(s, "gp") == 0 || strcmp(s, "nursing") == 0 ||
           strcmp(s, "social") == 0 || strcmp(s, "voluntary") == 0;
}

/* A word that is safe to put on the one-line protocol. */
static bool
is_word(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* Connect to path. Returns the socket, or -1 after printing why in words
 * an engineer can act on. */
static int
connect_hub(const char *path)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a.sun_path) {
        unknown("status socket path %s is too long for a Unix socket", path);
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        unknown("cannot create a socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    int e = errno;
    close(fd);
    switch (e) {
    case ENOENT:
        unknown("cannot reach the hub: no status socket at %s: the hub is "
                "not running, or runs with another data folder (give "
                "--data DIR or --socket PATH)",
                path);
        break;
    case ECONNREFUSED:
        unknown("cannot reach the hub: %s exists but nobody listens: the "
                "hub is not running (it stopped without removing its "
                "socket)",
                path);
        break;
    case EACCES:
    case EPERM:
        unknown("cannot reach the hub: permission denied on %s: the status "
                "socket is for the hub's user and group only (mode 0660); "
                "run as that user or join its group",
                path);
        break;
    default:
        unknown("cannot reach the hub at %s: %s", path, strerror(e));
        break;
    }
    return -1;
}

static long
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read until the hub closes, for at most timeout_ms. Returns a malloc'd,
 * NUL-terminated answer (the caller frees it), or NULL with *why set. */
static char *
read_all(int fd, long timeout_ms, size_t *len, const char **why)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        *why = "out of memory";
        return NULL;
    }
    long deadline = mono_ms() + timeout_ms;
    for (;;) {
        long left = deadline - mono_ms();
        if (left <= 0) {
            *why = "timed out";
            free(buf);
            return NULL;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue; /* the deadline check above ends it */
        if (n + 1 >= cap) {
            if (cap >= ANSWER_MAX) {
                *why = "the answer is too large";
                free(buf);
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                *why = "out of memory";
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            *why = strerror(errno);
            free(buf);
            return NULL;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},
        {"socket", required_argument, 0, 's'},
        {"json", no_argument, 0, 'j'},
        {"operator", required_argument, 0, 'o'},
        {"timeout", required_argument, 0, 't'},
        {"dir", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *data = NULL, *sock = NULL, *op = NULL, *keydir = NULL;
    bool json = false;
    long timeout_ms = 10000;
    int c;
    g.command = "";
    while ((c = getopt_long(argc, argv, "d:s:jo:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'D':
            keydir = optarg;
            break;
        case 'd':
            data = optarg;
            break;
        case 's':
            sock = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'o':
            op = optarg;
            break;
        case 't': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || v < 1 || v > 3600) {
                fprintf(stderr, "handover-ctl: --timeout wants whole "
                                "seconds from 1 to 3600\n");
                return EXIT_REFUSED;
            }
            timeout_ms = v * 1000;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_REFUSED;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_REFUSED;
    }
    if (data && sock)
        return refused("give --data or --socket, not both");
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char *const *args = argv + optind + 1;
    g.command = cmd;
    if (strcmp(cmd, "keygen") == 0)
        return keygen(nargs, args, keydir);

    /* The hub checks everything again; checking here gives the usage
     * message without a round trip and keeps the line well formed. */
    char line[LINE_MAX_BYTES];
    bool write = false;
    int n = -1;
    if ((strcmp(cmd, "status") == 0 || strcmp(cmd, "adapters") == 0 ||
         strcmp(cmd, "queues") == 0 || strcmp(cmd, "overdue") == 0 ||
         strcmp(cmd, "metrics") == 0) &&
        nargs == 0) {
        n = snprintf(line, sizeof line, "%s", cmd);
    } else if (strcmp(cmd, "dead-letters") == 0 &&
               (nargs == 0 || (nargs == 1 && strcmp(args[0], "list") == 0))) {
        n = snprintf(line, sizeof line, "dead-letters");
    } else if (strcmp(cmd, "dead-letters") == 0 && nargs == 2 &&
               strcmp(args[0], "show") == 0 && is_word(args[1])) {
        n = snprintf(line, sizeof line, "dead-letters show %s", args[1]);
    } else if (((strcmp(cmd, "dead-letters") == 0 && nargs == 2 &&
                 strcmp(args[0], "redrive") == 0) ||
                (strcmp(cmd, "redrive") == 0 && nargs == 1)) &&
               is_word(args[nargs - 1])) {
        n = snprintf(line, sizeof line, "redrive %s", args[nargs - 1]);
        write = true;
    } else if ((strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0) &&
               nargs == 1) {
        if (!is_agency(args[0]))
            return refused("the agency is gp, nursing, social or voluntary");
        n = snprintf(line, sizeof line, "%s %s", cmd, args[0]);
        write = true;
    } else {
        usage(stderr);
        return EXIT_REFUSED;
    }
    if (write) {
        if (op == NULL)
            op = login_name();
        if (op == NULL)
            return refused("cannot tell who you are: give --operator NAME "
                           "(it is recorded in the audit log)");
        if (!is_word(op))
            return refused("--operator wants one word (letters, digits, "
                           ". _ - @ +)");
        n += snprintf(line + n, sizeof line - (size_t)n, " --operator %s", op);
    }
    if (json)
        n += snprintf(line + n, sizeof line - (size_t)n, " --json");
    if (n < 0 || (size_t)n + 2 > sizeof line)
        return refused("the command is too long");
    line[n++] = '\n';

    char path[512];
    if (sock)
        snprintf(path, sizeof path, "%s", sock);
    else
        snprintf(path, sizeof path, "%s/%s", data ? data : DEFAULT_DATA,
                 SOCKET_NAME);
    int fd = connect_hub(path);
    if (fd < 0)
        return EXIT_UNKNOWN;
    if (hov_write_all(fd, line, (size_t)n) != 0) {
        int e = errno;
        close(fd);
        return unknown("cannot send to the hub at %s: %s", path, strerror(e));
    }
    size_t len = 0;
    const char *why = "";
    char *answer = read_all(fd, timeout_ms, &len, &why);
    close(fd);
    if (answer == NULL)
        return unknown("no answer from the hub at %s: %s", path, why);

    /* The first line is the result; the rest is for the person or the
     * program that asked. */
    char *body = strchr(answer, '\n');
    if (body == NULL) {
        free(answer);
        return unknown("the hub at %s closed without an answer", path);
    }
    *body++ = '\0';
    int rc;
    if (strcmp(answer, "OK") == 0)
        rc = EXIT_HEALTH_OK;
    else if (strcmp(answer, "WARNING") == 0)
        rc = EXIT_HEALTH_WARNING;
    else if (strcmp(answer, "CRITICAL") == 0)
        rc = EXIT_HEALTH_CRITICAL;
    else if (strcmp(answer, "ERROR") == 0)
        rc = EXIT_REFUSED;
    else
        rc = -1;
    if (rc < 0) {
        free(answer);
        return unknown("the answer from %s is not understood (is it a "
                       "Handover hub?)",
                       path);
    }
    size_t blen = len - (size_t)(body - answer);
    fwrite(body, 1, blen, rc == EXIT_REFUSED ? stderr : stdout);
    free(answer);
    if (fflush(stdout) != 0)
        return EXIT_UNKNOWN;
    if (rc == EXIT_REFUSED)
        return rc;
    return strcmp(cmd, "status") == 0 ? rc : EXIT_HEALTH_OK;
}
