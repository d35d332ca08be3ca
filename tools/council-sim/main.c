/* council-sim: the council's and the equipment service's side of the file
 * drop, for the quick start and the tests.
 *
 *   council-sim take --outbox DIR --taken DIR [--interval-ms N] [--once]
 *       Pick up complete outbox files (never *.tmp) in name order, move
 *       each to DIR/taken and print "taken event=<id> file=<name>
 *       digest=<hex>", so a test can tell a redelivery of the same content
 *       from two different files for one event. --max-per-pass N takes
 *       at most N files a pass: a slow partner, whose outbox piles up.
 *   council-sim outcome --inbox DIR --org CODE --in-reply-to ID
 *                       --status STATUS --nhs NHS [--item CODE[:QTY[:ASSET]]]
 *                       [--reason CODE] [--reason-text TEXT]
 *                       [--record-id ID] [--planned-for DATE]
 *       Write one outcomes file into the inbox as a partner must: the
 *       whole file as <name>.tmp, fsync, rename, fsync the folder.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "council.h"
#include "handover/ident.h"
#include "handover/str.h"
#include "handover/timeutil.h"

static volatile sig_atomic_t g_stop;

static void
on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int
usage(void)
{
    fprintf(stderr,
            "usage: council-sim take --outbox DIR --taken DIR "
            "[--interval-ms N] [--once] [--max-per-pass N]\n"
            "       council-sim outcome --inbox DIR --org CODE "
            "--in-reply-to ID --status STATUS --nhs NHS\n"
            "           [--item CODE[:QTY[:ASSET]]] [--reason CODE] "
            "[--reason-text TEXT] [--record-id ID] [--planned-for DATE]\n");
    return 2;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* FNV-1a 64 of the file: a redelivery overwrites the same name in taken/,
 * so the content has to be summarised when it is taken. */
static void
file_digest(const char *path, char out[17])
{
    uint64_t h = 14695981039346656037ull;
    FILE *f = fopen(path, "rb");
    int ch;
    while (f != NULL && (ch = fgetc(f)) != EOF) {
        h ^= (uint64_t)(unsigned char)ch;
        h *= 1099511628211ull;
    }
    if (f != NULL)
        fclose(f);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static int
take_once(const char *outbox, const char *taken, size_t max)
{
    DIR *d = opendir(outbox);
    if (d == NULL) {
        fprintf(stderr, "council-sim: open %s: %s\n", outbox, strerror(errno));
        return -1;
    }
    char *names[512];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 512) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 5 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        names[n] = strdup(e->d_name);
        if (names[n] != NULL)
            n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (i >= max) { /* left for a later pass */
            free(names[i]);
            continue;
        }
        char from[1200], to[1200];
        snprintf(from, sizeof from, "%s/%s", outbox, names[i]);
        snprintf(to, sizeof to, "%s/%s", taken, names[i]);
        if (rename(from, to) == 0) {
            const char *us = strrchr(names[i], '_');
            char id[37] = "";
            if (us != NULL)
                snprintf(id, sizeof id, "%.36s", us + 1);
            char dg[17];
            file_digest(to, dg);
            printf("taken event=%s file=%s digest=%s\n", id, names[i], dg);
            fflush(stdout);
        } else {
            fprintf(stderr, "council-sim: move %s: %s\n", from,
                    strerror(errno));
        }
        free(names[i]);
    }
    return (int)n;
}

static int
cmd_take(int argc, char **argv)
{
    const char *outbox = NULL, *taken = NULL;
    long interval = 200, max = 0;
    int once = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--outbox") == 0 && i + 1 < argc)
            outbox = argv[++i];
        else if (strcmp(argv[i], "--taken") == 0 && i + 1 < argc)
            taken = argv[++i];
        else if (strcmp(argv[i], "--interval-ms") == 0 && i + 1 < argc)
            interval = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--once") == 0)
            once = 1;
        else if (strcmp(argv[i], "--max-per-pass") == 0 && i + 1 < argc)
            max = strtol(argv[++i], NULL, 10);
        else
            return usage();
    }
    if (outbox == NULL || taken == NULL || interval < 1 || max < 0)
        return usage();
    if (mkdir(taken, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "council-sim: make %s: %s\n", taken, strerror(errno));
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("council-sim watching %s\n", outbox);
    fflush(stdout);
    do {
        if (take_once(outbox, taken, max > 0 ? (size_t)max : SIZE_MAX) < 0 &&
            once)
            return 1;
        if (once)
            break;
        struct timespec ts = {interval / 1000, (interval % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    } while (!g_stop);
    return 0;
}

/* One CSV field, quoted when it needs to be (RFC 4180). */
static void
csv_field(FILE *f, const char *s, int last)
{
    if (strpbrk(s, ",\"\r\n") != NULL) {
        fputc('"', f);
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                fputc('"', f);
            fputc(*p, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
    fputs(last ? "\r\n" : ",", f);
}

static int
cmd_outcome(int argc, char **argv)
{
    const char *inbox = NULL, *org = NULL, *reply = NULL, *status = NULL,
               *nhs = NULL, *item = "", *reason = "", *reason_text = "",
               *record_id = NULL, *planned = "";
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--inbox") == 0)
            inbox = v;
        else if (strcmp(k, "--org") == 0)
            org = v;
        else if (strcmp(k, "--in-reply-to") == 0)
            reply = v;
        else if (strcmp(k, "--status") == 0)
            status = v;
        else if (strcmp(k, "--nhs") == 0)
            nhs = v;
        else if (strcmp(k, "--item") == 0)
            item = v;
        else if (strcmp(k, "--reason") == 0)
            reason = v;
        else if (strcmp(k, "--reason-text") == 0)
            reason_text = v;
        else if (strcmp(k, "--record-id") == 0)
            record_id = v;
        else if (strcmp(k, "--planned-for") == 0)
            planned = v;
        else
            return usage();
    }
    if ((argc - 2) % 2 != 0 || inbox == NULL || org == NULL || reply == NULL ||
        status == NULL || nhs == NULL)
        return usage();
    char code[64] = "", qty[8] = "", asset[64] = "";
    const char *c1 = strchr(item, ':');
    if (c1 == NULL) {
        hov_strlcpy(code, sizeof code, item);
    } else {
        snprintf(code, sizeof code, "%.*s", (int)(c1 - item), item);
        const char *c2 = strchr(c1 + 1, ':');
        if (c2 == NULL) {
            hov_strlcpy(qty, sizeof qty, c1 + 1);
        } else {
            snprintf(qty, sizeof qty, "%.*s", (int)(c2 - c1 - 1), c1 + 1);
            hov_strlcpy(asset, sizeof asset, c2 + 1);
        }
    }
    uint64_t now = hov_now_ms();
    char ts[32], stamp[20], rid[80];
    hov_rfc3339_format(now, ts);
    /* yyyymmddThhmmssZ from yyyy-mm-ddThh:mm:ss.mmmZ */
    snprintf(stamp, sizeof stamp, "%.4s%.2s%.2sT%.2s%.2s%.2sZ", ts, ts + 5,
             ts + 8, ts + 11, ts + 14, ts + 17);
    unsigned seq = (unsigned)(now % 1000000u);
    if (record_id == NULL) {
        snprintf(rid, sizeof rid, "SIM-%s-%06u", stamp, seq);
        record_id = rid;
    }
    char name[200], tmp[1320], final[1300];
    snprintf(name, sizeof name, "outcomes_%s_%s_%06u.csv", org, stamp, seq);
    snprintf(final, sizeof final, "%s/%s", inbox, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "council-sim: create %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    for (int i = 0; i < COUNCIL_CSV_COLUMNS; i++)
        csv_field(f, council_csv_header[i], i == COUNCIL_CSV_COLUMNS - 1);
    const char *row[COUNCIL_CSV_COLUMNS] = {
        record_id,   reply,       nhs,  status,
        reason,      reason_text, ts,   "Council simulator",
        "Simulator", org,         code, qty,
        asset,       planned,
    };
    for (int i = 0; i < COUNCIL_CSV_COLUMNS; i++)
        csv_field(f, row[i], i == COUNCIL_CSV_COLUMNS - 1);
    int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc != 0 || rename(tmp, final) != 0) {
        fprintf(stderr, "council-sim: write %s: %s\n", final, strerror(errno));
        unlink(tmp);
        return 1;
    }
    int dfd = open(inbox, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        if (fsync(dfd) != 0)
            fprintf(stderr, "council-sim: fsync %s: %s\n", inbox,
                    strerror(errno));
        close(dfd);
    }
    printf("dropped %s record=%s in_reply_to=%s status=%s\n", name, record_id,
           reply, status);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "take") == 0)
        return cmd_take(argc, argv);
    if (strcmp(argv[1], "outcome") == 0)
        return cmd_outcome(argc, argv);
    return usage();
}
