/* adapters/common/conf: YAML flattened to dotted keys, --set on top. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "harness.h"

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(conf, nested_keys_lists_and_overrides)
{
    char dir[256], path[300];
    th_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/a.yaml", dir);
    write_file(path, "hub:\n"
                     "  endpoint: tcp://127.0.0.1:7999\n"
                     "partner:\n"
                     "  port: 2575\n"
                     "  tls: yes\n"
                     "hl7:\n"
                     "  processing_ids: [P, T]\n");
    conf *c = conf_new();
    hov_error err = {0};
    cr_assert_eq(conf_load(c, path, &err), HOV_OK, "%s", err.msg);
    cr_assert_eq(conf_set(c, "partner.port=2600", &err), HOV_OK);
    cr_expect_str_eq(conf_str(c, "hub.endpoint", "x"), "tcp://127.0.0.1:7999");
    cr_expect_str_eq(conf_str(c, "listen.host", "127.0.0.1"), "127.0.0.1");
    uint64_t port = 0;
    cr_assert_eq(conf_uint(c, "partner.port", 1, 1, 65535, &port, &err),
                 HOV_OK);
    cr_expect_eq(port, 2600, "--set wins over the file");
    bool tls = false;
    cr_assert_eq(conf_bool(c, "partner.tls", false, &tls, &err), HOV_OK);
    cr_expect(tls);
    char **ids = conf_list(c, "hl7.processing_ids", "P");
    cr_assert_not_null(ids);
    cr_expect_str_eq(ids[0], "P");
    cr_expect_str_eq(ids[1], "T");
    cr_expect_null(ids[2]);
    conf_list_free(ids);
    static const char *const known[] = {"hub.endpoint", "partner.port",
                                        "partner.tls", NULL};
    cr_expect_eq(conf_check_known(c, known, &err), HOV_ECONFIG);
    cr_expect(strstr(err.msg, "hl7.processing_ids") != NULL, "%s", err.msg);
    conf_free(c);
    th_rm_rf(dir);
}

Test(conf, errors_name_the_place_and_the_key)
{
    char dir[256], path[300];
    th_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bad.yaml", dir);
    write_file(path, "hub:\n  endpoint: [unclosed\n");
    conf *c = conf_new();
    hov_error err = {0};
    cr_expect_eq(conf_load(c, path, &err), HOV_ECONFIG);
    cr_expect(strstr(err.msg, "bad.yaml:") != NULL, "%s", err.msg);
    hov_error e2 = {0};
    cr_expect_eq(conf_set(c, "no-equals-sign", &e2), HOV_ECONFIG);
    hov_error e3 = {0};
    cr_assert_eq(conf_set(c, "partner.port=70000", &e3), HOV_OK);
    uint64_t port = 0;
    cr_expect_eq(conf_uint(c, "partner.port", 1, 1, 65535, &port, &e3),
                 HOV_ECONFIG);
    cr_expect(strstr(e3.msg, "partner.port") != NULL, "%s", e3.msg);
    hov_error e4 = {0};
    cr_expect_eq(conf_load(c, "/nonexistent/x.yaml", &e4), HOV_EIO);
    conf_free(c);
    th_rm_rf(dir);
}
