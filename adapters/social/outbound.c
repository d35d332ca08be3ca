/* Deliveries to the council and the equipment service: each event the hub
 * delivers becomes one JSON file in the outbox (domain 7.1), written to
 * <name>.tmp, fsync'd, renamed and the folder fsync'd, and only then
 * settled done: the partner sees either nothing or the whole file, and an
 * event settled is on disk. The name carries the event id, so a redelivery
 * after a crash rewrites the same file instead of adding a second one.
 * A failed write (a full disk, an I/O error) settles retry with the errno
 * text; the hub backs off and delivers it again.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "council.h"
#include "handover.pb-c.h"
#include "handover/io.h"
#include "handover/log.h"
#include "social.h"

typedef struct owrite {
    uv_work_t req;
    social *s;
    uint64_t delivery_id;
    uint32_t attempt;
    char event_id[37];
    char dir[1024];
    char name[128];
    char *body;
    size_t len;
    int failed_errno; /* 0: written */
    char why[3200];
} owrite;

struct social_outbound {
    size_t inflight;
    bool stopped;
};

static void
owrite_free(owrite *w)
{
    if (w != NULL)
        free(w->body);
    free(w);
}

static int
fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* Thread pool: the whole atomic write protocol. */
static void
owrite_work(uv_work_t *req)
{
    owrite *w = req->data;
    char tmp[1200], final[1200];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", w->dir, w->name);
    snprintf(final, sizeof final, "%s/%s", w->dir, w->name);
    const char *step = "mkdir";
    if (mkdir(w->dir, 0750) != 0 && errno != EEXIST)
        goto fail;
    step = "open";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        goto fail;
    step = "write";
    int rc = hov_write_all(fd, w->body, w->len);
    if (rc == 0) {
        step = "fsync";
        rc = fsync(fd);
    }
    int e = errno;
    if (close(fd) != 0 && rc == 0) {
        step = "close";
        rc = -1;
        e = errno;
    }
    errno = e;
    if (rc != 0)
        goto fail_unlink;
    step = "rename";
    if (rename(tmp, final) != 0)
        goto fail_unlink;
    /* Without the folder's fsync the rename may not survive a power cut,
     * and the event would be settled but gone. */
    step = "fsync folder";
    if (fsync_dir(w->dir) != 0) {
        snprintf(tmp, sizeof tmp, "%s", w->dir);
        goto fail;
    }
    w->failed_errno = 0;
    return;
fail_unlink:
    w->failed_errno = errno;
    unlink(tmp);
    snprintf(w->why, sizeof w->why, "%s outbox file %s: %s", step, tmp,
             strerror(w->failed_errno));
    return;
fail:
    w->failed_errno = errno;
    snprintf(w->why, sizeof w->why, "%s %s: %s", step,
             strcmp(step, "mkdir") == 0 ? w->dir : tmp,
             strerror(w->failed_errno));
}

static void
owrite_done(uv_work_t *req, int status)
{
    owrite *w = req->data;
    social *s = w->s;
    if (s->out != NULL)
        s->out->inflight--;
    if (status != 0 || s->stopping || s->out == NULL || s->out->stopped) {
        /* Unsettled: the hub delivers it again after the restart. */
        owrite_free(w);
        return;
    }
    char extra[200];
    snprintf(extra, sizeof extra, " file=%s", w->name);
    if (w->failed_errno == 0)
        hublink_settle_log(s->hub, w->delivery_id, w->event_id, w->attempt,
                           HOV_SETTLE_DONE, NULL, extra);
    else
        hublink_settle_log(s->hub, w->delivery_id, w->event_id, w->attempt,
                           HOV_SETTLE_RETRY, w->why, extra);
    owrite_free(w);
}

void
social_outbound_deliver(social *s, const hov_msg *msg)
{
    social_outbound *o = s->out;
    if (o == NULL || o->stopped)
        return; /* stopping: left unsettled, delivered again */
    owrite *w = calloc(1, sizeof *w);
    if (w == NULL) {
        hublink_settle_log(s->hub, msg->delivery_id, msg->event_id,
                           msg->attempt, HOV_SETTLE_RETRY,
                           "adapter out of memory", NULL);
        return;
    }
    w->s = s;
    w->delivery_id = msg->delivery_id;
    w->attempt = msg->attempt;
    snprintf(w->event_id, sizeof w->event_id, "%s", msg->event_id);
    Handover__Event *ev =
        handover__event__unpack(NULL, msg->event_len, msg->event);
    if (ev == NULL) {
        hublink_settle_log(s->hub, w->delivery_id, w->event_id, w->attempt,
                           HOV_SETTLE_REJECTED,
                           "the delivered event could not be decoded", NULL);
        owrite_free(w);
        return;
    }
    bool named = council_out_name(ev, w->name, sizeof w->name);
    w->body = named ? council_json_out(ev) : NULL;
    handover__event__free_unpacked(ev, NULL);
    if (!named || w->body == NULL) {
        hublink_settle_log(s->hub, w->delivery_id, w->event_id, w->attempt,
                           named ? HOV_SETTLE_RETRY : HOV_SETTLE_REJECTED,
                           named ? "adapter out of memory"
                                 : "the event has no file name: unknown "
                                   "event_type or malformed event_id",
                           NULL);
        owrite_free(w);
        return;
    }
    w->len = strlen(w->body);
    /* A destination code is an ODS code or "local:..." (checked by the
     * hub), so it is safe as a folder name. */
    if (s->cfg.outbox_per_org && msg->destination[0] != '\0')
        snprintf(w->dir, sizeof w->dir, "%s/%s", s->cfg.outbox,
                 msg->destination);
    else
        snprintf(w->dir, sizeof w->dir, "%s", s->cfg.outbox);
    w->req.data = w;
    int rc = uv_queue_work(s->loop, &w->req, owrite_work, owrite_done);
    if (rc != 0) {
        hublink_settle_log(s->hub, w->delivery_id, w->event_id, w->attempt,
                           HOV_SETTLE_RETRY, uv_strerror(rc), NULL);
        owrite_free(w);
        return;
    }
    o->inflight++;
}

/* Remove <name>.tmp files a killed write left behind: the partner ignores
 * them, and the redelivery writes the whole file again. */
static void
sweep_tmp(const char *dir)
{
    uv_fs_t req;
    if (uv_fs_scandir(NULL, &req, dir, 0, NULL) < 0) {
        uv_fs_req_cleanup(&req);
        return;
    }
    uv_dirent_t ent;
    while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
        size_t n = strlen(ent.name);
        if (ent.type == UV_DIRENT_FILE && n > 4 &&
            strcmp(ent.name + n - 4, ".tmp") == 0) {
            char p[1200];
            snprintf(p, sizeof p, "%s/%s", dir, ent.name);
            if (unlink(p) == 0)
                hov_info("removed an unfinished outbox file %s", ent.name);
        }
    }
    uv_fs_req_cleanup(&req);
}

hov_err
social_outbound_start(social *s, hov_error *err)
{
    /* A file-size limit is a write error to settle retry, not a reason to
     * die with the delivery half done. */
    signal(SIGXFSZ, SIG_IGN);
    if (mkdir(s->cfg.outbox, 0750) != 0 && errno != EEXIST)
        return hov_fail(err, HOV_EIO, errno, "outbox %s: %s", s->cfg.outbox,
                        strerror(errno));
    sweep_tmp(s->cfg.outbox);
    social_outbound *o = calloc(1, sizeof *o);
    if (o == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "outbound");
    s->out = o;
    return HOV_OK;
}

void
social_outbound_stop(social *s)
{
    social_outbound *o = s->out;
    if (o == NULL || o->stopped)
        return;
    o->stopped = true;
    s->out = NULL;
    free(o);
}
