#include "conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

typedef struct entry {
    char *key;
    char *val;
} entry;

struct conf {
    entry *v;
    size_t n, cap;
};

conf *
conf_new(void)
{
    return calloc(1, sizeof(conf));
}

void
conf_free(conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].key);
        free(c->v[i].val);
    }
    free(c->v);
    free(c);
}

static entry *
conf_find(const conf *c, const char *key)
{
    /* Later settings win: --set after the file. */
    for (size_t i = c->n; i-- > 0;)
        if (strcmp(c->v[i].key, key) == 0)
            return &c->v[i];
    return NULL;
}

static hov_err
conf_put(conf *c, const char *key, size_t klen, const char *val, hov_error *err)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        entry *nv = realloc(c->v, cap * sizeof *nv);
        if (nv == NULL)
            return hov_fail(err, HOV_ENOMEM, 0, "configuration");
        c->v = nv;
        c->cap = cap;
    }
    char *k = strndup(key, klen), *v = strdup(val);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return hov_fail(err, HOV_ENOMEM, 0, "configuration");
    }
    c->v[c->n++] = (entry){k, v};
    return HOV_OK;
}

hov_err
conf_set(conf *c, const char *kv, hov_error *err)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv)
        return hov_fail(err, HOV_ECONFIG, 0, "--set '%s': expected KEY=VALUE",
                        kv);
    return conf_put(c, kv, (size_t)(eq - kv), eq + 1, err);
}

/* The YAML walk: a stack of mapping keys gives the dotted prefix. */
typedef struct walk {
    conf *c;
    const char *path;
    char prefix[256];
    size_t plen[16];
    int depth;
    char seqkey[256];
    char seqval[1024];
    bool in_seq;
} walk;

static hov_err
walk_fail(walk *w, const yaml_event_t *ev, const char *what, hov_error *err)
{
    return hov_fail(err, HOV_ECONFIG, 0, "%s:%zu:%zu: %s", w->path,
                    ev->start_mark.line + 1, ev->start_mark.column + 1, what);
}

static hov_err walk_scalar_pair(walk *w, yaml_parser_t *p, const char *key,
                                size_t klen, hov_error *err);

/* Read a mapping's content (after MAPPING_START) up to MAPPING_END. */
static hov_err
walk_mapping(walk *w, yaml_parser_t *p, hov_error *err)
{
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(p, &ev))
            return hov_fail(err, HOV_ECONFIG, 0, "%s:%zu:%zu: %s", w->path,
                            p->problem_mark.line + 1,
                            p->problem_mark.column + 1,
                            p->problem ? p->problem : "YAML error");
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return HOV_OK;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            hov_err rc = walk_fail(w, &ev, "expected a key", err);
            yaml_event_delete(&ev);
            return rc;
        }
        char key[256];
        size_t base = w->depth > 0 ? w->plen[w->depth - 1] : 0;
        int n = snprintf(key, sizeof key, "%.*s%s%s", (int)base, w->prefix,
                         base ? "." : "", (const char *)ev.data.scalar.value);
        yaml_event_delete(&ev);
        if (n < 0 || (size_t)n >= sizeof key)
            return hov_fail(err, HOV_ECONFIG, 0, "%s: key too long", w->path);
        hov_err rc = walk_scalar_pair(w, p, key, (size_t)n, err);
        if (rc != HOV_OK)
            return rc;
    }
}

static hov_err
walk_scalar_pair(walk *w, yaml_parser_t *p, const char *key, size_t klen,
                 hov_error *err)
{
    yaml_event_t ev;
    if (!yaml_parser_parse(p, &ev))
        return hov_fail(err, HOV_ECONFIG, 0, "%s:%zu:%zu: %s", w->path,
                        p->problem_mark.line + 1, p->problem_mark.column + 1,
                        p->problem ? p->problem : "YAML error");
    hov_err rc = HOV_OK;
    if (ev.type == YAML_SCALAR_EVENT) {
        rc = conf_put(w->c, key, klen, (const char *)ev.data.scalar.value, err);
    } else if (ev.type == YAML_MAPPING_START_EVENT) {
        if (w->depth >= 15 || klen >= sizeof w->prefix) {
            rc = walk_fail(w, &ev, "nested too deeply", err);
        } else {
            memcpy(w->prefix, key, klen);
            w->plen[w->depth++] = klen;
            rc = walk_mapping(w, p, err);
            w->depth--;
        }
    } else if (ev.type == YAML_SEQUENCE_START_EVENT) {
        char joined[1024] = "";
        size_t jl = 0;
        for (;;) {
            yaml_event_t it;
            if (!yaml_parser_parse(p, &it)) {
                rc = hov_fail(err, HOV_ECONFIG, 0, "%s: YAML error in %.*s",
                              w->path, (int)klen, key);
                break;
            }
            if (it.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&it);
                rc = conf_put(w->c, key, klen, joined, err);
                break;
            }
            if (it.type != YAML_SCALAR_EVENT) {
                rc =
                    walk_fail(w, &it, "a list may hold only plain values", err);
                yaml_event_delete(&it);
                break;
            }
            int n = snprintf(joined + jl, sizeof joined - jl, "%s%s",
                             jl ? "," : "", (const char *)it.data.scalar.value);
            yaml_event_delete(&it);
            if (n < 0 || (size_t)n >= sizeof joined - jl) {
                rc = hov_fail(err, HOV_ECONFIG, 0, "%s: list %.*s too long",
                              w->path, (int)klen, key);
                break;
            }
            jl += (size_t)n;
        }
    } else {
        rc = walk_fail(w, &ev, "unexpected YAML node", err);
    }
    yaml_event_delete(&ev);
    return rc;
}

hov_err
conf_load(conf *c, const char *path, hov_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return hov_fail(err, HOV_EIO, errno, "open configuration %s: %s", path,
                        strerror(errno));
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        fclose(f);
        return hov_fail(err, HOV_ENOMEM, 0, "YAML parser");
    }
    yaml_parser_set_input_file(&p, f);
    walk w = {.c = c, .path = path};
    hov_err rc = HOV_OK;
    bool done = false;
    while (rc == HOV_OK && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = hov_fail(err, HOV_ECONFIG, 0, "%s:%zu:%zu: %s", path,
                          p.problem_mark.line + 1, p.problem_mark.column + 1,
                          p.problem ? p.problem : "YAML error");
            break;
        }
        switch (ev.type) {
        case YAML_MAPPING_START_EVENT:
            rc = walk_mapping(&w, &p, err);
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            rc = walk_fail(&w, &ev, "the top level must be a mapping", err);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

hov_err
conf_check_known(const conf *c, const char *const *known, hov_error *err)
{
    for (size_t i = 0; i < c->n; i++) {
        bool ok = false;
        for (const char *const *k = known; *k != NULL && !ok; k++)
            ok = strcmp(*k, c->v[i].key) == 0;
        if (!ok)
            return hov_fail(err, HOV_ECONFIG, 0,
                            "unknown setting '%s' (see --print-default-"
                            "config for the settings there are)",
                            c->v[i].key);
    }
    return HOV_OK;
}

const char *
conf_str(const conf *c, const char *key, const char *def)
{
    const entry *e = conf_find(c, key);
    return e != NULL ? e->val : def;
}

hov_err
conf_strdup(const conf *c, const char *key, const char *def, char **out,
            hov_error *err)
{
    *out = strdup(conf_str(c, key, def));
    return *out ? HOV_OK : hov_fail(err, HOV_ENOMEM, 0, "configuration");
}

hov_err
conf_uint(const conf *c, const char *key, uint64_t def, uint64_t min,
          uint64_t max, uint64_t *out, hov_error *err)
{
    const entry *e = conf_find(c, key);
    if (e == NULL) {
        *out = def;
        return HOV_OK;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(e->val, &end, 10);
    if (e->val[0] < '0' || e->val[0] > '9' || *end != '\0' || errno != 0 ||
        v < min || v > max)
        return hov_fail(err, HOV_ECONFIG, 0,
                        "setting %s = '%s': expected a whole number from "
                        "%llu to %llu",
                        key, e->val, (unsigned long long)min,
                        (unsigned long long)max);
    *out = v;
    return HOV_OK;
}

hov_err
conf_bool(const conf *c, const char *key, bool def, bool *out, hov_error *err)
{
    const entry *e = conf_find(c, key);
    if (e == NULL) {
        *out = def;
        return HOV_OK;
    }
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(e->val, yes[i]) == 0) {
            *out = true;
            return HOV_OK;
        }
        if (strcasecmp(e->val, no[i]) == 0) {
            *out = false;
            return HOV_OK;
        }
    }
    return hov_fail(err, HOV_ECONFIG, 0,
                    "setting %s = '%s': expected true or false", key, e->val);
}

char **
conf_list(const conf *c, const char *key, const char *def)
{
    const char *s = conf_str(c, key, def);
    if (s == NULL)
        s = "";
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    char **list = calloc(n + 1, sizeof *list);
    if (list == NULL)
        return NULL;
    size_t i = 0;
    const char *p = s;
    while (*p != '\0') {
        const char *q = strchr(p, ',');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len > 0) {
            list[i] = strndup(p, len);
            if (list[i] == NULL) {
                conf_list_free(list);
                return NULL;
            }
            i++;
        }
        if (q == NULL)
            break;
        p = q + 1;
    }
    return list;
}

void
conf_list_free(char **list)
{
    if (list == NULL)
        return;
    for (char **p = list; *p != NULL; p++)
        free(*p);
    free(list);
}
