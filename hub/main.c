/* handover-hub: arguments, configuration, signals. No logic lives here. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "config.h"
#include "handover/log.h"

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: handover-hub [options]\n"
            "  -c, --config FILE        YAML configuration (default: "
            "built in)\n"
            "  -d, --data DIR           data folder (LMDB store)\n"
            "  -e, --endpoint EP        ZeroMQ endpoint to bind\n"
            "  -s, --set KEY=VALUE      override a hub setting (repeatable)\n"
            "  -l, --log-level LEVEL    debug, info, warn or error\n"
            "      --print-default-config  print the built-in "
            "configuration\n"
            "  -h, --help\n");
}

/* One hub per data folder: two would interleave their queues. */
static int
lock_data_dir(const char *dir)
{
    char path[600];
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "handover-hub: create data folder %s: %s\n", dir,
                strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/hub.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "handover-hub: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        fprintf(stderr,
                "handover-hub: another handover-hub (pid %s) is using data "
                "folder %s; stop it first or use another --data\n",
                pid[0] ? pid : "unknown", dir);
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        hov_warn("could not record pid in %s", path);
    return fd; /* held open (and locked) until exit */
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},
        {"data", required_argument, 0, 'd'},
        {"endpoint", required_argument, 0, 'e'},
        {"set", required_argument, 0, 's'},
        {"log-level", required_argument, 0, 'l'},
        {"print-default-config", no_argument, 0, 'P'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *config_path = NULL, *data = NULL, *endpoint = NULL;
    const char *sets[64];
    int nsets = 0, c;
    hov_log_set_name("handover-hub");
#ifdef __GLIBC__
    /* Under load the hub frees and allocates the same few megabytes on
     * every group commit (LMDB's page lists, ZeroMQ messages). glibc's
     * defaults hand large blocks back to the kernel each time and get them
     * again as fresh zeroed pages, which a profile showed as 5% of the
     * hub's CPU in page clearing; keeping them measured 5 to 8% more
     * confirmed events a second (docs/benchmarks.md). Resident memory
     * stays what the load needs; it is just not returned between
     * batches. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_TOP_PAD, 64 << 20);
#endif
    while ((c = getopt_long(argc, argv, "c:d:e:s:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'd':
            data = optarg;
            break;
        case 'e':
            endpoint = optarg;
            break;
        case 's':
            if (nsets == 64) {
                fprintf(stderr, "handover-hub: too many --set options\n");
                return 2;
            }
            sets[nsets++] = optarg;
            break;
        case 'l': {
            int lvl = hov_log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr, "handover-hub: unknown log level '%s'\n",
                        optarg);
                return 2;
            }
            hov_log_set_level((hov_log_level)lvl);
            break;
        }
        case 'P':
            fputs(config_default_yaml, stdout);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "handover-hub: unexpected argument '%s'\n",
                argv[optind]);
        usage(stderr);
        return 2;
    }

    config cfg;
    hov_error err = {0};
    if (config_load(&cfg, config_path, &err) != HOV_OK) {
        fprintf(stderr, "handover-hub: %s\n", err.msg);
        config_fini(&cfg);
        return 1;
    }
    for (int i = 0; i < nsets; i++) {
        char key[64];
        const char *eq = strchr(sets[i], '=');
        if (eq == NULL || (size_t)(eq - sets[i]) >= sizeof key) {
            fprintf(stderr, "handover-hub: --set wants KEY=VALUE, not '%s'\n",
                    sets[i]);
            config_fini(&cfg);
            return 2;
        }
        memcpy(key, sets[i], (size_t)(eq - sets[i]));
        key[eq - sets[i]] = '\0';
        if (config_set(&cfg, key, eq + 1, &err) != HOV_OK) {
            fprintf(stderr, "handover-hub: %s\n", err.msg);
            config_fini(&cfg);
            return 2;
        }
    }
    if ((data && config_set(&cfg, "data_dir", data, &err) != HOV_OK) ||
        (endpoint && config_set(&cfg, "endpoint", endpoint, &err) != HOV_OK)) {
        fprintf(stderr, "handover-hub: %s\n", err.msg);
        config_fini(&cfg);
        return 2;
    }

    int lockfd = lock_data_dir(cfg.data_dir);
    if (lockfd < 0) {
        config_fini(&cfg);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: zmq_poll must wake */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    broker *b = NULL;
    int status = 0;
    if (broker_new(&b, &cfg, &err) != HOV_OK ||
        broker_open(b, &err) != HOV_OK) {
        fprintf(stderr, "handover-hub: %s\n", err.msg);
        hov_errorf("cannot start: %s", err.msg);
        status = 1;
    } else if (broker_run(b, &stop_flag, &err) != HOV_OK) {
        hov_errorf("stopping: %s", err.msg);
        fprintf(stderr, "handover-hub: %s\n", err.msg);
        status = 1;
    } else {
        hov_info("stopped cleanly");
    }
    broker_free(b);
    config_fini(&cfg);
    close(lockfd);
    return status;
}
