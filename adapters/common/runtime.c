#include "runtime.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/log.h"

static void
usage(const runtime_prog *p, FILE *f)
{
    fprintf(f,
            "usage: %s [--config FILE] [--set KEY=VALUE]... "
            "[--log-level LEVEL]\n"
            "       %s --print-default-config\n"
            "%s\n",
            p->name, p->name, p->summary);
}

static int
set_level(const runtime_prog *p, const char *lv, const char *where)
{
    int level = hov_log_level_parse(lv);
    if (level < 0) {
        fprintf(stderr, "%s: %s '%s': expected debug, info, warn or error\n",
                p->name, where, lv);
        return -1;
    }
    hov_log_set_level((hov_log_level)level);
    return 0;
}

int
runtime_args(const runtime_prog *p, int argc, char **argv, conf **out)
{
    hov_log_set_name(p->name);
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"log-level", required_argument, NULL, 'l'},
        {"print-default-config", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *level = NULL;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    size_t nsets = 0;
    if (sets == NULL) {
        fprintf(stderr, "%s: out of memory\n", p->name);
        return 1;
    }
    optind = 1;
    int opt, rc = -1;
    while (rc < 0 &&
           (opt = getopt_long(argc, argv, "c:s:l:ph", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 's':
            sets[nsets++] = optarg;
            break;
        case 'l':
            level = optarg;
            break;
        case 'p':
            fputs(p->default_config, stdout);
            rc = 0;
            break;
        case 'h':
            usage(p, stdout);
            rc = 0;
            break;
        default:
            usage(p, stderr);
            rc = 2;
            break;
        }
    }
    if (rc < 0 && optind < argc) {
        usage(p, stderr);
        rc = 2;
    }
    if (rc >= 0) {
        free(sets);
        return rc;
    }
    hov_error err = {0};
    conf *c = conf_new();
    hov_err e = c ? HOV_OK : hov_fail(&err, HOV_ENOMEM, 0, "configuration");
    if (e == HOV_OK && config != NULL)
        e = conf_load(c, config, &err);
    for (size_t i = 0; e == HOV_OK && i < nsets; i++)
        e = conf_set(c, sets[i], &err);
    if (e == HOV_OK)
        e = conf_check_known(c, p->keys, &err);
    free(sets);
    if (e != HOV_OK) {
        fprintf(stderr, "%s: configuration: %s\n", p->name, err.msg);
        conf_free(c);
        return 2;
    }
    const char *lv = level ? level : conf_str(c, "log.level", NULL);
    if (lv != NULL &&
        set_level(p, lv, level ? "--log-level" : "setting log.level") != 0) {
        conf_free(c);
        return 2;
    }
    *out = c;
    return -1;
}

static void
on_signal(uv_signal_t *s, int signum)
{
    runtime_signals *rs = s->data;
    if (rs->fired)
        return;
    rs->fired = true;
    runtime_signals_close(rs);
    rs->stop(rs->user, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void
runtime_signals_start(runtime_signals *rs, uv_loop_t *loop,
                      void (*stop)(void *user, const char *signame), void *user)
{
    signal(SIGPIPE, SIG_IGN);
    rs->stop = stop;
    rs->user = user;
    rs->fired = false;
    uv_signal_init(loop, &rs->term);
    uv_signal_init(loop, &rs->intr);
    rs->term.data = rs->intr.data = rs;
    uv_signal_start(&rs->term, on_signal, SIGTERM);
    uv_signal_start(&rs->intr, on_signal, SIGINT);
}

void
runtime_signals_close(runtime_signals *rs)
{
    if (!uv_is_closing((uv_handle_t *)&rs->term))
        uv_close((uv_handle_t *)&rs->term, NULL);
    if (!uv_is_closing((uv_handle_t *)&rs->intr))
        uv_close((uv_handle_t *)&rs->intr, NULL);
}

static void
on_stop(void *user, const char *signame)
{
    const runtime_adapter *a = user;
    hov_info("%s: shutting down; unfinished work is left unsettled and "
             "unacknowledged, so it is sent again",
             signame);
    a->stop(a->ctx, signame);
}

int
runtime_main(const runtime_adapter *a, int argc, char **argv)
{
    conf *c = NULL;
    int st = runtime_args(a->prog, argc, argv, &c);
    if (st >= 0)
        return st;
    hov_error err = {0};
    hov_err rc = a->configure(a->ctx, c, &err);
    conf_free(c);
    if (rc != HOV_OK) {
        hov_errorf("configuration: %s", err.msg);
        a->cleanup(a->ctx);
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    runtime_signals sig;
    runtime_signals_start(&sig, loop, on_stop, (void *)a);
    rc = a->start(a->ctx, loop, &err);
    if (rc != HOV_OK) {
        hov_errorf("start: %s", err.msg);
        runtime_signals_close(&sig);
        a->stop(a->ctx, "start failed");
        uv_run(loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(loop);
        a->cleanup(a->ctx);
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    int close_rc = uv_loop_close(loop);
    a->cleanup(a->ctx);
    hov_info("stopped");
    return close_rc == 0 ? 0 : 1;
}
