/* handover-social end to end: the real hub and the real council adapter
 * as processes, real inbox and outbox folders in the test's temporary
 * folder, files written as a partner must (<name>.tmp, then rename), and
 * real hub clients on the other agencies' side. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handover.pb-c.h"
#include "handover/timeutil.h"
#include "harness.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif
#define COUNCIL HANDOVER_SHARED_DIR "/samples/council"

#define REFERRAL_FILE "referral_Z9Z9Z_20250317T090500Z_000007.json"
#define CES_FILE      "outcomes_8ZZ99_20250317T163000Z_000041.csv"
#define ASC_FILE      "outcomes_Z9Z9Z_20250317T170000Z_000112.csv"
#define MIXED_FILE    "outcomes_8ZZ99_20250318T080000Z_000042.csv"
#define HALF_FILE     "outcomes_8ZZ99_20250318T081500Z_000043.csv.tmp"
#define HEADER_FILE   "outcomes_8ZZ99_20250318T083000Z_000044.csv"
#define CUT_FILE      "referral_Z9Z9Z_20250318T091500Z_000008.json"

#define COUNCIL_REFERRAL "a52d3c69-9fb0-578c-8a16-3f27a0615b26"
#define JOAN_ORDER       "d745de58-a690-5946-975d-ed6388248d9c"
#define DEREK_ORDER      "6b2714c6-a11e-5010-9314-a3e0c972992f"
#define ALAN_REFERRAL    "bc5c22e3-bee9-5bb0-b1fa-eb92255781e0"

typedef struct rig {
    th_hub hub;
    th_proc adapter;
    char dir[256], inbox[300], outbox[300];
    char set_hub[128], set_inbox[320], set_outbox[320];
    const char *argv[16];
} rig;

static const char *const hub_extra[] = {
    "--set", "backoff_initial_ms=100", "--set", "backoff_max_ms=800",
    "--set", "max_attempts=100",       NULL,
};

static void
rig_init(rig *r)
{
    memset(r, 0, sizeof *r);
    th_hub_init(&r->hub, hub_extra);
    snprintf(r->dir, sizeof r->dir, "%s", r->hub.dir);
    snprintf(r->inbox, sizeof r->inbox, "%s/inbox", r->dir);
    snprintf(r->outbox, sizeof r->outbox, "%s/outbox", r->dir);
    snprintf(r->set_hub, sizeof r->set_hub, "hub.endpoint=%s", r->hub.endpoint);
    snprintf(r->set_inbox, sizeof r->set_inbox, "files.inbox=%s", r->inbox);
    snprintf(r->set_outbox, sizeof r->set_outbox, "files.outbox=%s", r->outbox);
    const char **a = r->argv;
    int n = 0;
    a[n++] = HANDOVER_SOCIAL_BIN;
    a[n++] = "--set";
    a[n++] = r->set_hub;
    a[n++] = "--set";
    a[n++] = r->set_inbox;
    a[n++] = "--set";
    a[n++] = r->set_outbox;
    a[n++] = "--set";
    a[n++] = "files.scan_interval_ms=300";
    a[n] = NULL;
    th_proc_init(&r->adapter, r->dir, "social", "started:", r->argv);
    th_hub_start(&r->hub);
}

static void
rig_fini(rig *r)
{
    th_proc_kill(&r->adapter, SIGKILL);
    th_hub_fini(&r->hub);
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* Copy a sample in as a partner must: all of it under <name>.tmp, then a
 * rename. as_tmp keeps the .tmp name (a half-written file). */
static void
drop(const rig *r, const char *sub, const char *name, bool as_tmp)
{
    char src[512], tmp[512], dst[512];
    snprintf(src, sizeof src, "%s/%s/%s", COUNCIL, sub, name);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", r->inbox, name);
    snprintf(dst, sizeof dst, "%s/%s", r->inbox, name);
    char *data = slurp(src);
    cr_assert_not_null(data, "sample %s", src);
    FILE *f = fopen(as_tmp ? dst : tmp, "wb");
    cr_assert_not_null(f);
    fputs(data, f);
    fclose(f);
    free(data);
    if (!as_tmp)
        cr_assert_eq(rename(tmp, dst), 0);
}

static bool
exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool
wait_path(const char *path, int ms)
{
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(ms);
    while (hov_mono_ms() < deadline) {
        if (exists(path))
            return true;
        usleep(20000);
    }
    return exists(path);
}

static size_t
count_suffix(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    size_t n = 0, sl = strlen(suffix);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] != '.' && l >= sl &&
            strcmp(e->d_name + l - sl, suffix) == 0)
            n++;
    }
    if (d != NULL)
        closedir(d);
    return n;
}

/* Publish a nursing-side request with the sample's fixed id, and wait
 * until the adapter has written and settled it (delivered to social). */
static void
publish_request(rig *r, hov_client *nursing, const char *type, const char *nhs,
                const char *id)
{
    hov_sample s;
    hov_sample_init(&s, type, nhs);
    snprintf(s.event_id, sizeof s.event_id, "%s", id);
    snprintf(s.correlation_id, sizeof s.correlation_id, "%s", id);
    hov_sample_set_source(&s, "RZZ40");
    if (strcmp(type, "referral") == 0)
        hov_sample_set_service(&s, "adult-social-care-assessment");
    if (strcmp(id, DEREK_ORDER) == 0) {
        s.items[0].item_code = "HOIST-MOB-180";
        s.items[1].item_code = "SLING-FB-L";
    }
    th_publish_ok(nursing, &s);
    char needle[80];
    snprintf(needle, sizeof needle, "delivered event=%s", id);
    cr_assert(th_proc_wait_log(&r->adapter, needle, 1, 15000),
              "%s was not delivered to social", id);
}

static void
settle_outcomes(hov_client *c, size_t n, const char *const *want_reply,
                size_t n_want)
{
    for (size_t i = 0; i < n; i++) {
        hov_msg m;
        Handover__Event *ev;
        th_next_delivery(c, 15000, &m, &ev);
        cr_assert_str_eq(ev->event_type, "outcome");
        bool known = false;
        for (size_t k = 0; k < n_want; k++)
            known = known || strcmp(ev->in_reply_to, want_reply[k]) == 0;
        cr_assert(known, "unexpected in_reply_to %s", ev->in_reply_to);
        hov_error err = {0};
        cr_assert_eq(
            hov_client_settle(c, m.delivery_id, HOV_SETTLE_DONE, "", &err),
            HOV_OK, "%s", err.msg);
        handover__event__free_unpacked(ev, NULL);
    }
}

Test(social, every_council_sample_gets_its_documented_result, .timeout = 240)
{
    rig r;
    rig_init(&r);
    th_proc_start(&r.adapter);
    hov_client *vol = th_client(&r.hub, "voluntary", "vol", true, 8);
    hov_client *nursing = th_client(&r.hub, "nursing", "nursing", true, 16);
    char path[2048];

    /* valid/: the council's referral reaches the voluntary organisation. */
    drop(&r, "valid", REFERRAL_FILE, false);
    hov_msg m;
    Handover__Event *ev;
    th_next_delivery(vol, 15000, &m, &ev);
    cr_assert_str_eq(ev->event_id, COUNCIL_REFERRAL);
    cr_assert_str_eq(ev->source->org->code, "Z9Z9Z");
    handover__event__free_unpacked(ev, NULL);
    hov_error err = {0};
    cr_assert_eq(
        hov_client_settle(vol, m.delivery_id, HOV_SETTLE_DONE, "", &err),
        HOV_OK);
    snprintf(path, sizeof path, "%s/processed/%s", r.inbox, REFERRAL_FILE);
    cr_assert(wait_path(path, 10000), "%s not in processed/", REFERRAL_FILE);

    /* outcomes/: the answered events first, delivered to social. */
    publish_request(&r, nursing, "equipment_order", "9993001007", JOAN_ORDER);
    publish_request(&r, nursing, "equipment_order", "9997345207", DEREK_ORDER);
    publish_request(&r, nursing, "referral", "9994127357", ALAN_REFERRAL);
    snprintf(path, sizeof path, "%s/equipment-order_%s.json", r.outbox,
             JOAN_ORDER);
    cr_assert(exists(path), "Joan's order is not in the outbox");
    drop(&r, "outcomes", CES_FILE, false);
    drop(&r, "outcomes", ASC_FILE, false);
    static const char *const answered[] = {JOAN_ORDER, DEREK_ORDER,
                                           ALAN_REFERRAL};
    settle_outcomes(nursing, 6, answered, 3);
    snprintf(path, sizeof path, "%s/processed/%s", r.inbox, CES_FILE);
    cr_assert(wait_path(path, 10000), "%s not in processed/", CES_FILE);
    snprintf(path, sizeof path, "%s/processed/%s", r.inbox, ASC_FILE);
    cr_assert(wait_path(path, 10000), "%s not in processed/", ASC_FILE);

    /* invalid/: a half-written file is never read. */
    drop(&r, "invalid", HALF_FILE, true);
    drop(&r, "invalid", MIXED_FILE, false);
    drop(&r, "invalid", HEADER_FILE, false);
    drop(&r, "invalid", CUT_FILE, false);
    settle_outcomes(nursing, 1, answered, 1); /* line 2 of the mixed file */
    snprintf(path, sizeof path, "%s/error/%s.errors.txt", r.inbox, MIXED_FILE);
    cr_assert(wait_path(path, 10000));
    char *rep = slurp(path);
    static const char *const lines[] = {
        "line 3: nhs_number: 9997345208 fails the Modulus 11 check "
        "(expected check digit 7)\n",
        "line 4: outcome: 'deliverd' is not one of",
        "line 5: has 7 fields, not 14\n",
        "line 6: occurred_at: '2025-03-18 09:10' is not an RFC 3339 time",
        "line 7: reason_code: missing",
        "line 8: in_reply_to: 'CN-ORD-88120' is not an event id",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        cr_assert_not_null(strstr(rep, lines[i]), "report lacks '%s':\n%s",
                           lines[i], rep);
    cr_assert_null(strstr(rep, "line 2:"), "line 2 was good:\n%s", rep);
    free(rep);
    snprintf(path, sizeof path, "%s/error/%s", r.inbox, MIXED_FILE);
    cr_assert(exists(path));
    snprintf(path, sizeof path, "%s/error/%s.errors.txt", r.inbox, HEADER_FILE);
    cr_assert(wait_path(path, 10000));
    rep = slurp(path);
    cr_assert_not_null(strstr(rep, "header mismatch at column 2"), "%s", rep);
    free(rep);
    snprintf(path, sizeof path, "%s/error/%s.errors.txt", r.inbox, CUT_FILE);
    cr_assert(wait_path(path, 10000));
    rep = slurp(path);
    cr_assert_not_null(strstr(rep, "line 47, column"), "%s", rep);
    free(rep);
    th_no_delivery(vol, 1000); /* the cut-off referral published nothing */
    snprintf(path, sizeof path, "%s/%s", r.inbox, HALF_FILE);
    cr_assert(exists(path), "the .tmp file was moved");
    cr_assert_eq(count_suffix(r.inbox, ".csv"), 0);
    cr_assert_eq(th_proc_log_count(&r.adapter, "043"), 0,
                 "the .tmp file was read");

    /* The same file again (same name, same bytes) publishes nothing. */
    drop(&r, "valid", REFERRAL_FILE, false);
    cr_assert(th_proc_wait_log(
        &r.adapter, "already processed file=" REFERRAL_FILE, 1, 10000));
    snprintf(path, sizeof path, "%s/%s", r.inbox, REFERRAL_FILE);
    cr_assert(!exists(path));
    th_no_delivery(vol, 1000);
    /* The same outcomes under another name: the hub absorbs them. */
    char src[600], dst[600];
    snprintf(src, sizeof src, "%s/processed/%s", r.inbox, ASC_FILE);
    snprintf(dst, sizeof dst, "%s/outcomes_Z9Z9Z_20250317T170000Z_000113.csv",
             r.inbox);
    char *data = slurp(src);
    snprintf(path, sizeof path, "%s.tmp", dst);
    FILE *f = fopen(path, "wb");
    fputs(data, f);
    fclose(f);
    free(data);
    cr_assert_eq(rename(path, dst), 0);
    cr_assert(
        th_proc_wait_log(&r.adapter, "published=0 duplicates=1", 1, 10000));
    th_no_delivery(nursing, 1000);

    th_proc_stop(&r.adapter);
    hov_client_free(vol);
    hov_client_free(nursing);
    rig_fini(&r);
}

Test(social, discharge_is_written_atomically_and_taken_by_the_council,
     .timeout = 120)
{
    rig r;
    rig_init(&r);
    th_proc_start(&r.adapter);
    hov_client *nursing = th_client(&r.hub, "nursing", "nursing", false, 0);
    hov_sample s;
    hov_sample_init(&s, "discharge", "9992468130");
    hov_sample_set_source(&s, "RZZ01");
    s.ev.clinical_details = "Clinical note the council must not see";
    th_publish_ok(nursing, &s);
    char path[2048];
    snprintf(path, sizeof path, "%s/discharge_%s.json", r.outbox,
             s.ev.event_id);
    cr_assert(wait_path(path, 15000), "no %s", path);
    char needle[80];
    snprintf(needle, sizeof needle, "delivered event=%s", s.ev.event_id);
    cr_assert(th_proc_wait_log(&r.adapter, needle, 1, 10000));
    cr_assert_eq(count_suffix(r.outbox, ".tmp"), 0);
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    cr_assert_not_null(j, "%s", je.text);
    cr_assert_str_eq(json_string_value(json_object_get(j, "event_id")),
                     s.ev.event_id);
    cr_assert_str_eq(json_string_value(json_object_get(j, "event_type")),
                     "discharge");
    json_t *d = json_object_get(j, "discharge");
    cr_assert_eq(json_integer_value(json_object_get(d, "pathway")), 1);
    /* The council view (domain 3.9): no clinical details, no diagnoses. */
    cr_assert_null(json_object_get(j, "clinical_details"));
    cr_assert_null(json_object_get(d, "diagnoses"));
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(j, "patient"), "nhs_number")),
                     "9992468130");
    json_decref(j);

    /* The council simulator takes it. */
    char taken[400];
    snprintf(taken, sizeof taken, "%s/taken", r.dir);
    const char *argv[] = {HANDOVER_COUNCIL_SIM_BIN,
                          "take",
                          "--outbox",
                          r.outbox,
                          "--taken",
                          taken,
                          "--once",
                          NULL};
    th_proc sim;
    th_proc_init(&sim, r.dir, "council-sim", "", argv);
    cr_assert_eq(th_proc_run(&sim, 10000), 0);
    snprintf(needle, sizeof needle, "taken event=%s", s.ev.event_id);
    cr_assert_eq(th_proc_log_count(&sim, needle), 1);
    cr_assert_eq(count_suffix(r.outbox, ".json"), 0);
    cr_assert_eq(count_suffix(taken, ".json"), 1);

    th_proc_stop(&r.adapter);
    hov_client_free(nursing);
    rig_fini(&r);
}

Test(social, kill_9_mid_stream_loses_nothing, .timeout = 180)
{
    enum { N = 40 };
    rig r;
    rig_init(&r);
    hov_client *nursing = th_client(&r.hub, "nursing", "nursing", true, 64);
    char ids[N][37];
    for (int i = 0; i < N; i++) {
        hov_sample s;
        hov_sample_init(&s, "equipment_order", "9993001007");
        th_publish_ok(nursing, &s);
        snprintf(ids[i], sizeof ids[i], "%s", s.ev.event_id);
    }
    /* Inbound too: an outcome for the first order, written by the
     * simulator, waiting in the inbox when the adapter dies. */
    th_proc_start(&r.adapter);
    cr_assert(th_proc_wait_log(&r.adapter, "delivered event=", 3, 15000));
    th_proc_kill(&r.adapter, SIGKILL);
    th_proc_start(&r.adapter);
    for (int i = 0; i < N; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/equipment-order_%s.json", r.outbox,
                 ids[i]);
        cr_assert(wait_path(path, 20000), "order %d lost", i);
    }
    cr_assert_eq(count_suffix(r.outbox, ".json"), N);
    char needle[80];
    snprintf(needle, sizeof needle, "delivered event=%s", ids[N - 1]);
    cr_assert(th_proc_wait_log(&r.adapter, needle, 1, 10000));
    cr_assert_eq(count_suffix(r.outbox, ".tmp"), 0);

    /* An outcome dropped by the simulator, the adapter killed before it
     * could move the file, then restarted: published once. */
    const char *argv[] = {HANDOVER_COUNCIL_SIM_BIN,
                          "outcome",
                          "--inbox",
                          r.inbox,
                          "--org",
                          "8ZZ99",
                          "--in-reply-to",
                          ids[0],
                          "--status",
                          "delivered",
                          "--nhs",
                          "9993001007",
                          "--item",
                          "BED-PROF-01:1:FCES-BED-09999",
                          NULL};
    th_proc_kill(&r.adapter, SIGKILL);
    th_proc sim;
    th_proc_init(&sim, r.dir, "council-sim-outcome", "", argv);
    cr_assert_eq(th_proc_run(&sim, 10000), 0);
    th_proc_start(&r.adapter);
    hov_msg m;
    Handover__Event *ev;
    th_next_delivery(nursing, 15000, &m, &ev);
    cr_assert_str_eq(ev->in_reply_to, ids[0]);
    handover__event__free_unpacked(ev, NULL);
    cr_assert(th_proc_wait_log(&r.adapter, "file processed=outcomes_8ZZ99_", 1,
                               10000));
    th_no_delivery(nursing, 1000);
    th_proc_stop(&r.adapter);
    hov_client_free(nursing);
    rig_fini(&r);
}

/* The rig and outbox of full_disk_settles_retry_and_loses_nothing, for
 * its .fini: a failed assertion ends the test body early, and neither the
 * mount nor the hub and adapter it started may outlive the test. */
static rig *full_disk_rig;
static char full_disk_mount[320];

static void
full_disk_cleanup(void)
{
    rig *r = full_disk_rig;
    full_disk_rig = NULL;
    if (r != NULL) {
        /* Plain kill and waitpid: an assertion here would fail the test
         * a second time and skip the unmount. */
        pid_t pids[2] = {r->adapter.pid, r->hub.pid};
        for (int i = 0; i < 2; i++)
            if (pids[i] > 0 && kill(pids[i], SIGKILL) == 0)
                waitpid(pids[i], NULL, 0);
    }
    if (full_disk_mount[0] != '\0') {
        /* Detached, so a process still holding a file there cannot keep
         * it mounted. */
        umount2(full_disk_mount, MNT_DETACH);
        full_disk_mount[0] = '\0';
    }
    if (r != NULL)
        th_rm_rf(r->dir);
}

/* Entries in dir other than keep (dot files aside). */
static size_t
count_others(const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && strcmp(e->d_name, keep) != 0)
            n++;
    if (d != NULL)
        closedir(d);
    return n;
}

/* A write in flight holds a .tmp file for a moment before the adapter
 * unlinks it: only one that stays is left behind. */
static bool
wait_only(const char *dir, const char *keep, int ms)
{
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(ms);
    while (hov_mono_ms() < deadline) {
        if (count_others(dir, keep) == 0)
            return true;
        usleep(10000);
    }
    return count_others(dir, keep) == 0;
}

/* Fill the file system holding path until a write fails; true when it
 * failed with ENOSPC. */
static bool
fill(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return false;
    static const char block[4096];
    int e = 0;
    for (;;) {
        ssize_t w = write(fd, block, sizeof block);
        if (w < 0) {
            e = errno;
            if (e == EINTR)
                continue;
            break;
        }
    }
    close(fd);
    return e == ENOSPC;
}

Test(social, full_disk_settles_retry_and_loses_nothing, .timeout = 180,
     .fini = full_disk_cleanup)
{
    enum { N = 3 };
    /* Static: the .fini runs after the body's frame is gone. */
    static rig r;
    rig_init(&r);
    cr_assert_eq(mkdir(r.outbox, 0750), 0, "mkdir %s: %s", r.outbox,
                 strerror(errno));
    /* A real full file system (tmpfs, 64 KiB): the only way to see what
     * write(2) and fsync(2) really return when the disk fills. */
    if (mount("tmpfs", r.outbox, "tmpfs", 0, "size=64k,mode=0750") != 0) {
        int e = errno;
        rig_fini(&r);
        cr_skip("cannot mount a tmpfs on the outbox (%s): this test needs "
                "root with CAP_SYS_ADMIN, which the sandbox does not give",
                strerror(e));
    }
    snprintf(full_disk_mount, sizeof full_disk_mount, "%s", r.outbox);
    full_disk_rig = &r;
    char filler[400];
    snprintf(filler, sizeof filler, "%s/filler", r.outbox);
    cr_assert(fill(filler), "the tmpfs did not fill up");

    th_proc_start(&r.adapter);
    hov_client *nursing = th_client(&r.hub, "nursing", "nursing", false, 0);
    char ids[N][37];
    for (int i = 0; i < N; i++) {
        hov_sample s;
        hov_sample_init(&s, "discharge", "9992468130");
        hov_sample_set_source(&s, "RZZ01");
        th_publish_ok(nursing, &s);
        snprintf(ids[i], sizeof ids[i], "%s", s.ev.event_id);
    }
    /* The hub delivers to social in order, so the first event is the one
     * refused for the disk (the others wait behind it): settled retry with
     * the errno text, more than once, and nothing (no .tmp, no half a
     * .json) left in the outbox. */
    char needle[200];
    snprintf(needle, sizeof needle, "settled retry event=%s", ids[0]);
    cr_assert(th_proc_wait_log(&r.adapter, needle, 2, 15000),
              "no settle retry for %s", ids[0]);
    cr_assert(th_proc_log_count(&r.adapter, "No space left on device") >= 2);
    cr_assert_eq(th_proc_log_count(&r.adapter, "delivered event="), 0);
    cr_assert(wait_only(r.outbox, "filler", 2000),
              "files other than the filler in the full outbox");

    /* Space again: the hub's redeliveries write each event once. */
    cr_assert_eq(unlink(filler), 0);
    char path[2048];
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "%s/discharge_%s.json", r.outbox, ids[i]);
        cr_assert(wait_path(path, 20000), "no %s", path);
        snprintf(needle, sizeof needle, "delivered event=%s", ids[i]);
        cr_assert(th_proc_wait_log(&r.adapter, needle, 1, 10000));
    }
    usleep((useconds_t)th_ms(1500) * 1000); /* room for a second delivery */
    for (int i = 0; i < N; i++) {
        snprintf(needle, sizeof needle, "delivered event=%s", ids[i]);
        cr_assert_eq(th_proc_log_count(&r.adapter, needle), 1,
                     "%s delivered more than once", ids[i]);
        snprintf(path, sizeof path, "%s/discharge_%s.json", r.outbox, ids[i]);
        json_error_t je;
        json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
        cr_assert_not_null(j, "%s: %s", path, je.text);
        cr_assert_str_eq(json_string_value(json_object_get(j, "event_id")),
                         ids[i]);
        json_decref(j);
    }
    cr_assert_eq(count_suffix(r.outbox, ".json"), N);
    cr_assert_eq(count_suffix(r.outbox, ".tmp"), 0);

    th_proc_stop(&r.adapter);
    hov_client_free(nursing);
    full_disk_rig = NULL;
    umount2(full_disk_mount, MNT_DETACH);
    full_disk_mount[0] = '\0';
    rig_fini(&r);
}
