/* A small strict JSON reader (RFC 8259) for ringlet's fabric files.
 * The whole document becomes an array of values; every value remembers its
 * line so that errors found later (a missing key, a bad number) can name
 * the file, the line and the key. No comments, no trailing commas, no
 * duplicate keys, nesting at most 64 deep. */
#ifndef RL_TOPO_JSON_H
#define RL_TOPO_JSON_H

#include <stddef.h>

#include "ringlet.h"

typedef enum { RL_JNULL, RL_JBOOL, RL_JNUM, RL_JSTR, RL_JARR, RL_JOBJ } rl_jtype_t;

typedef struct {
    rl_jtype_t type;
    int line;
    int first, next;  /* first child (arrays, objects) and next sibling: indices, -1 = none */
    int count;        /* children */
    const char *key;  /* member name when the parent is an object */
    const char *str;  /* JSTR: NUL-terminated (may hold \0 escapes, then len says) */
    size_t len;
    double num;       /* JNUM; JBOOL: 0 or 1 */
    long koff, soff;  /* parser's offsets into strs (-1 = none); key/str are set from them at the end */
} rl_jval_t;

typedef struct {
    rl_jval_t *v;     /* v[0] is the root */
    int n, cap;
    char *strs;       /* decoded strings and keys */
    size_t slen, scap;
    char file[256];
} rl_json_t;

/* Parse text (len bytes, need not be NUL-terminated). On error returns
 * RL_ERR_INVALID_ARG and writes "FILE:LINE: what" to err. */
rl_status_t rl_json_parse(const char *text, size_t len, const char *file, rl_json_t *doc, char *err, size_t errlen);
void rl_json_free(rl_json_t *doc);
/* Member of object o named key, or -1. */
int rl_json_get(const rl_json_t *doc, int o, const char *key);

#endif
