/* Adapter configuration: a YAML file of nested mappings, flattened to
 * dotted keys ("partner.port"), with --set KEY=VALUE overrides and a
 * built-in default for every key, so an adapter runs with no file at all.
 *
 * Values are kept as text; typed getters parse them and name the key in
 * their errors. A key the adapter does not know is an error
 * (conf_check_known): a misspelt setting silently ignored is how a
 * production partner ends up on a default. A sequence of scalars is kept
 * as one value joined with commas (read it with conf_list).
 */
#ifndef HANDOVER_CONF_H
#define HANDOVER_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handover/err.h"

typedef struct conf conf;

/* An empty configuration. NULL when out of memory. */
conf *conf_new(void);
void conf_free(conf *c); /* NULL is a no-op */

/* Read path (YAML) into c. HOV_ECONFIG with the file, line and column of
 * the problem; HOV_EIO when it cannot be read. */
HOV_NODISCARD hov_err conf_load(conf *c, const char *path, hov_error *err);

/* Apply "KEY=VALUE" (copied). HOV_ECONFIG when there is no '='. */
HOV_NODISCARD hov_err conf_set(conf *c, const char *kv, hov_error *err);

/* Every key in c must be in known (NULL-terminated). HOV_ECONFIG naming
 * the first unknown key. */
HOV_NODISCARD hov_err conf_check_known(const conf *c, const char *const *known,
                                       hov_error *err);

/* The value of key, or def when unset. Borrowed from c. */
const char *conf_str(const conf *c, const char *key, const char *def);

/* A copy of conf_str(c, key, def) in *out (owned; free). HOV_ENOMEM. */
HOV_NODISCARD hov_err conf_strdup(const conf *c, const char *key,
                                  const char *def, char **out, hov_error *err);

/* An unsigned integer in [min, max], or def when unset. HOV_ECONFIG when
 * it is not a number or out of range. */
HOV_NODISCARD hov_err conf_uint(const conf *c, const char *key, uint64_t def,
                                uint64_t min, uint64_t max, uint64_t *out,
                                hov_error *err);

/* true/false/yes/no/on/off/1/0, or def when unset. */
HOV_NODISCARD hov_err conf_bool(const conf *c, const char *key, bool def,
                                bool *out, hov_error *err);

/* Split a comma-joined value into a NULL-terminated array of owned
 * strings (free with conf_list_free). def when unset (may hold commas).
 * NULL when out of memory. */
char **conf_list(const conf *c, const char *key, const char *def);
void conf_list_free(char **list);

#endif
