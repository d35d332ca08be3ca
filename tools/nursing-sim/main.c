/* nursing-sim: stands in for the community nursing system in tests and in
 * the demo. Built on the adapter's own HL7 and MLLP modules, but it plays
 * the other side of the conversation.
 *
 *   nursing-sim serve [--port 7421] [--mode MODE] [--mode-file FILE]
 *                     [--log FILE]
 *       An MLLP server for Handover's outbound messages. MODE is aa, ae
 *       (AE 103), ar (AR 206 record locked: retry later), ar200 (AR 200:
 *       unsupported type), delay:MS (AA after MS milliseconds), drop
 *       (close without an answer) or silent (never answer). --mode-file
 *       is read again before every answer, so a test can change the
 *       behaviour while it runs. Every message received is appended to
 *       --log as "control_id type digest", one line each, so a test can
 *       check that a resend is the same message.
 *
 *   nursing-sim send [--host 127.0.0.1] [--port 7420] FILE...
 *       Send each file's bytes as one MLLP frame to handover-nursing and
 *       print the ACK. Exits 1 if any answer is not AA or CA.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "handover/io.h"
#include "handover/timeutil.h"
#include "hl7.h"
#include "mllp.h"

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void
copy_str(hl7_str s, char *out, size_t outsz)
{
    size_t n = s.n < outsz - 1 ? s.n : outsz - 1;
    memcpy(out, s.p, n);
    out[n] = '\0';
}

/* ---------------------------------------------------------------- serve */

typedef struct serve {
    const char *mode;
    const char *mode_file;
    FILE *log;
    int fd;
    uint64_t seq;
} serve;

static void
serve_mode(const serve *s, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s", s->mode);
    if (s->mode_file == NULL)
        return;
    FILE *f = fopen(s->mode_file, "r");
    if (f == NULL)
        return;
    if (fgets(out, (int)outsz, f) == NULL)
        snprintf(out, outsz, "%s", s->mode);
    fclose(f);
    out[strcspn(out, "\r\n ")] = '\0';
}

static int
serve_frame(void *user, const mllp_event *ev)
{
    serve *s = user;
    if (ev->kind != MLLP_FRAME)
        return 0;
    hl7_parse_opts po = {0};
    hl7_error perr;
    hl7_msg *m = NULL;
    if (hl7_parse(ev->body, ev->len, &po, &m, &perr) != 0) {
        fprintf(stderr, "nursing-sim: unreadable message: %s\n", perr.text);
    }
    char control[65] = "", type[32] = "", nhs[16] = "";
    if (m != NULL) {
        copy_str(hl7_get(m, 0, 10, 0, 0, 0), control, sizeof control);
        copy_str(hl7_get(m, 0, 9, 0, 0, 0), type, sizeof type);
        size_t pid = hl7_find(m, 0, "PID");
        if (pid != HL7_NPOS)
            copy_str(hl7_get(m, pid, 3, 0, 1, 0), nhs, sizeof nhs);
    }
    unsigned char h[16];
    crypto_generichash(h, sizeof h, ev->body, ev->len, NULL, 0);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    if (s->log != NULL) {
        fprintf(s->log, "%s %s %s\n", control, type, hex);
        fflush(s->log);
    }
    char mode[64];
    serve_mode(s, mode, sizeof mode);
    printf("nursing-sim: HL7 in  %-8s control_id=%s nhs=%s -> %s\n", type,
           control, nhs, mode);
    fflush(stdout);

    const char *code = "AA", *text = NULL;
    hl7_error e = {0};
    size_t nerr = 0;
    if (strcmp(mode, "drop") == 0) {
        hl7_msg_free(m);
        return 1; /* close the connection */
    }
    if (strcmp(mode, "silent") == 0) {
        hl7_msg_free(m);
        return 0;
    }
    if (strncmp(mode, "delay:", 6) == 0) {
        long ms = strtol(mode + 6, NULL, 10);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    } else if (strcmp(mode, "ae") == 0) {
        code = "AE";
        text = "RF1-3: service is not accepted by this system";
        e = (hl7_error){.ack = 'E', .code = 103};
        snprintf(e.text, sizeof e.text, "%s", text);
        memcpy(e.loc.seg, "RF1", 4);
        e.loc.seq = 1;
        e.loc.field = 3;
        nerr = 1;
    } else if (strcmp(mode, "ar") == 0 || strcmp(mode, "ar200") == 0) {
        bool unsupported = strcmp(mode, "ar200") == 0;
        code = "AR";
        text = unsupported ? "message type not supported"
                           : "Patient record locked by another user; "
                             "resend later";
        e = (hl7_error){.ack = 'R', .code = unsupported ? 200 : 206};
        snprintf(e.text, sizeof e.text, "%s", text);
        nerr = 1;
    }
    char id[21];
    snprintf(id, sizeof id, "SIM%017llu", (unsigned long long)++s->seq);
    hl7_ack_opts ao = {.code = code,
                       .text = text,
                       .errs = nerr ? &e : NULL,
                       .nerr = nerr,
                       .app = "CN-EPR",
                       .facility = "RZZ40",
                       .control_id = id,
                       .now_ms = hov_now_ms()};
    uint8_t *ack = NULL, *framed = NULL;
    size_t alen = 0, flen = 0;
    int rc = hl7_ack_build(m, &ao, &ack, &alen);
    hl7_msg_free(m);
    if (rc == 0 && mllp_wrap(ack, alen, &framed, &flen) == 0)
        rc = hov_write_all(s->fd, framed, flen);
    free(ack);
    free(framed);
    return rc == 0 ? 0 : 1;
}

static int
listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0) {
        fprintf(stderr, "nursing-sim: listen on 127.0.0.1:%d: %s\n", port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int
cmd_serve(int argc, char **argv)
{
    serve s = {.mode = "aa"};
    int port = 7421;
    const char *log = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
            s.mode = argv[++i];
        else if (strcmp(argv[i], "--mode-file") == 0 && i + 1 < argc)
            s.mode_file = argv[++i];
        else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
            log = argv[++i];
        else {
            fprintf(stderr, "nursing-sim serve: unknown argument %s\n",
                    argv[i]);
            return 2;
        }
    }
    if (log != NULL && (s.log = fopen(log, "a")) == NULL) {
        fprintf(stderr, "nursing-sim: open %s: %s\n", log, strerror(errno));
        return 1;
    }
    int lfd = listen_on(port);
    if (lfd < 0)
        return 1;
    printf("nursing-sim: the community nursing system listens on "
           "127.0.0.1:%d (mode %s)\n",
           port, s.mode);
    fflush(stdout);
    mllp_framer *fr = mllp_framer_new(0, 0);
    while (!stop && fr != NULL) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        s.fd = fd;
        mllp_framer_reset(fr);
        uint8_t buf[65536];
        while (!stop) {
            struct pollfd q = {.fd = fd, .events = POLLIN};
            if (poll(&q, 1, 200) <= 0)
                continue;
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0)
                break;
            if (mllp_feed(fr, buf, (size_t)n, serve_frame, &s) != 0)
                break;
        }
        close(fd);
    }
    mllp_framer_free(fr);
    close(lfd);
    if (s.log != NULL)
        fclose(s.log);
    return 0;
}

/* ----------------------------------------------------------------- send */

typedef struct sent {
    bool got;
    bool ok;
} sent;

static int
send_frame(void *user, const mllp_event *ev)
{
    sent *st = user;
    if (ev->kind != MLLP_FRAME)
        return 0;
    hl7_parse_opts po = {0};
    hl7_error perr;
    hl7_msg *m = NULL;
    hl7_ack_info ai = {0};
    int rc = hl7_parse(ev->body, ev->len, &po, &m, &perr);
    if (rc == 0)
        rc = hl7_ack_read(m, &ai, &perr);
    hl7_msg_free(m);
    st->got = true;
    if (rc != 0) {
        printf("  answer unreadable: %s\n", perr.text);
        return 1;
    }
    st->ok = strcmp(ai.code, "AA") == 0 || strcmp(ai.code, "CA") == 0;
    if (ai.err_code != 0)
        printf("  <- %s %d %s\n", ai.code, ai.err_code, ai.text);
    else
        printf("  <- %s %s\n", ai.code, ai.text);
    return 1;
}

static int
cmd_send(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 7420, bad = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = (int)strtol(argv[++i], NULL, 10);
            continue;
        }
        FILE *f = fopen(argv[i], "rb");
        if (f == NULL) {
            fprintf(stderr, "nursing-sim: open %s: %s\n", argv[i],
                    strerror(errno));
            return 1;
        }
        uint8_t *body = NULL;
        size_t len = 0, cap = 0;
        for (;;) {
            if (cap - len < 65536) {
                uint8_t *nb = realloc(body, cap + 262144);
                if (nb == NULL)
                    break;
                body = nb;
                cap += 262144;
            }
            size_t r = fread(body + len, 1, cap - len, f);
            if (r == 0)
                break;
            len += r;
        }
        fclose(f);
        uint8_t *framed = NULL;
        size_t flen = 0;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, host, &a.sin_addr);
        const char *slash = strrchr(argv[i], '/');
        printf("nursing-sim: HL7 out %s\n", slash ? slash + 1 : argv[i]);
        sent st = {0};
        if (body == NULL || mllp_wrap(body, len, &framed, &flen) != 0 ||
            fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
            hov_write_all(fd, framed, flen) != 0) {
            printf("  cannot send to %s:%d: %s\n", host, port, strerror(errno));
        } else {
            mllp_framer *fr = mllp_framer_new(0, 0);
            uint8_t buf[65536];
            ssize_t n;
            while (fr != NULL && !st.got && (n = read(fd, buf, sizeof buf)) > 0)
                if (mllp_feed(fr, buf, (size_t)n, send_frame, &st) != 0)
                    break;
            if (!st.got)
                printf("  no answer\n");
            mllp_framer_free(fr);
        }
        bad += !st.ok;
        if (fd >= 0)
            close(fd);
        free(body);
        free(framed);
    }
    return bad ? 1 : 0;
}

int
main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return cmd_serve(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "send") == 0)
        return cmd_send(argc - 2, argv + 2);
    fprintf(stderr, "usage: nursing-sim serve [--port N] [--mode MODE] "
                    "[--mode-file F] [--log F]\n"
                    "       nursing-sim send [--host H] [--port N] FILE...\n");
    return 2;
}
