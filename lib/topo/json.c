/* Strict JSON reader: recursive descent over a byte buffer. See json.h. */
#include "topo/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct {
    const char *p, *end;
    int line;
    rl_json_t *doc;
    char *err;
    size_t errlen;
    int failed;
} jparser_t;

static void jfail(jparser_t *j, const char *fmt, ...)
{
    if (j->failed)
        return;
    j->failed = 1;
    int n = snprintf(j->err, j->errlen, "%s:%d: ", j->doc->file, j->line);
    if (n < 0 || (size_t)n >= j->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err + n, j->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void skip_ws(jparser_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        if (*j->p == '\n')
            j->line++;
        j->p++;
    }
}

static int new_val(jparser_t *j, rl_jtype_t t)
{
    rl_json_t *d = j->doc;
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 256;
        rl_jval_t *v = realloc(d->v, sizeof(*v) * (size_t)cap);
        if (!v) {
            jfail(j, "out of memory");
            return -1;
        }
        d->v = v;
        d->cap = cap;
    }
    rl_jval_t *v = &d->v[d->n];
    memset(v, 0, sizeof(*v));
    v->type = t;
    v->line = j->line;
    v->first = v->next = -1;
    v->koff = v->soff = -1;
    return d->n++;
}

static int put_byte(jparser_t *j, char c)
{
    rl_json_t *d = j->doc;
    if (d->slen == d->scap) {
        size_t cap = d->scap ? d->scap * 2 : 4096;
        char *s = realloc(d->strs, cap);
        if (!s) {
            jfail(j, "out of memory");
            return -1;
        }
        d->strs = s;
        d->scap = cap;
    }
    d->strs[d->slen++] = c;
    return 0;
}

static int put_utf8(jparser_t *j, uint32_t cp)
{
    char b[4];
    int n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    for (int i = 0; i < n; i++)
        if (put_byte(j, b[i]))
            return -1;
    return 0;
}

static int hex4(jparser_t *j, uint32_t *out)
{
    if (j->end - j->p < 4) {
        jfail(j, "truncated \\u escape");
        return -1;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = j->p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) {
            jfail(j, "bad hex digit in \\u escape");
            return -1;
        }
        v = v * 16 + (uint32_t)d;
    }
    j->p += 4;
    *out = v;
    return 0;
}

static int parse_escape(jparser_t *j)
{
    char c = *j->p++;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = c ? strchr(from, c) : NULL;
    if (k)
        return put_byte(j, to[k - from]);
    if (c != 'u') {
        jfail(j, "bad escape \\%c in a string", c >= 0x20 && c < 0x7f ? c : '?');
        return -1;
    }
    uint32_t cp, lo;
    if (hex4(j, &cp))
        return -1;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        jfail(j, "lone low surrogate \\u%04X", (unsigned)cp);
        return -1;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') {
            jfail(j, "high surrogate \\u%04X without its low half", (unsigned)cp);
            return -1;
        }
        j->p += 2;
        if (hex4(j, &lo))
            return -1;
        if (lo < 0xDC00 || lo > 0xDFFF) {
            jfail(j, "high surrogate followed by \\u%04X", (unsigned)lo);
            return -1;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return put_utf8(j, cp);
}

/* Decodes a string at j->p (after the opening quote) into strs; returns its offset. */
static long parse_string(jparser_t *j, size_t *len)
{
    long off = (long)j->doc->slen;
    for (;;) {
        if (j->p >= j->end) {
            jfail(j, "unterminated string");
            return -1;
        }
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            break;
        if (c < 0x20) {
            jfail(j, "control character 0x%02x inside a string", c);
            return -1;
        }
        if (c == '\\') {
            if (j->p >= j->end) {
                jfail(j, "unterminated string");
                return -1;
            }
            if (parse_escape(j))
                return -1;
        } else if (put_byte(j, (char)c)) {
            return -1;
        }
    }
    *len = j->doc->slen - (size_t)off;
    if (put_byte(j, '\0'))
        return -1;
    return off;
}

static int parse_number(jparser_t *j, int v)
{
    const char *s = j->p;
    if (s < j->end && *s == '-')
        s++;
    if (s >= j->end || !(*s >= '0' && *s <= '9')) {
        jfail(j, "bad number");
        return -1;
    }
    if (*s == '0')
        s++;
    else
        while (s < j->end && *s >= '0' && *s <= '9')
            s++;
    if (s < j->end && *s == '.') {
        s++;
        if (s >= j->end || !(*s >= '0' && *s <= '9')) {
            jfail(j, "bad number: no digit after the point");
            return -1;
        }
        while (s < j->end && *s >= '0' && *s <= '9')
            s++;
    }
    if (s < j->end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < j->end && (*s == '+' || *s == '-'))
            s++;
        if (s >= j->end || !(*s >= '0' && *s <= '9')) {
            jfail(j, "bad number: no digit in the exponent");
            return -1;
        }
        while (s < j->end && *s >= '0' && *s <= '9')
            s++;
    }
    char buf[64];
    size_t n = (size_t)(s - j->p);
    if (n >= sizeof(buf)) {
        jfail(j, "number longer than 63 characters");
        return -1;
    }
    memcpy(buf, j->p, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (!isfinite(d)) {
        jfail(j, "number out of range");
        return -1;
    }
    j->doc->v[v].num = d;
    j->p = s;
    return 0;
}

static int parse_value(jparser_t *j, int depth);

static int literal(jparser_t *j, const char *word, rl_jtype_t t, double num)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n)) {
        jfail(j, "unexpected '%c'", *j->p >= 0x20 && *j->p < 0x7f ? *j->p : '?');
        return -1;
    }
    j->p += n;
    int v = new_val(j, t);
    if (v >= 0)
        j->doc->v[v].num = num;
    return v;
}

/* Appends child c to parent v (children keep their order). */
static void add_child(jparser_t *j, int v, int *last, int c)
{
    rl_jval_t *d = j->doc->v;
    if (*last < 0)
        d[v].first = c;
    else
        d[*last].next = c;
    *last = c;
    d[v].count++;
}

static int parse_array(jparser_t *j, int depth)
{
    int v = new_val(j, RL_JARR), last = -1;
    if (v < 0)
        return -1;
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return v;
    }
    for (;;) {
        int c = parse_value(j, depth + 1);
        if (c < 0)
            return -1;
        add_child(j, v, &last, c);
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return v;
        }
        jfail(j, "expected ',' or ']' in an array");
        return -1;
    }
}

static int dup_key(const rl_json_t *d, int v, long koff)
{
    for (int c = d->v[v].first; c >= 0; c = d->v[c].next)
        if (!strcmp(d->strs + d->v[c].koff, d->strs + koff))
            return 1;
    return 0;
}

static int parse_object(jparser_t *j, int depth)
{
    int v = new_val(j, RL_JOBJ), last = -1;
    if (v < 0)
        return -1;
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return v;
    }
    for (;;) {
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"') {
            jfail(j, "expected a quoted key in an object");
            return -1;
        }
        j->p++;
        size_t klen;
        long koff = parse_string(j, &klen);
        if (koff < 0)
            return -1;
        if (strlen(j->doc->strs + koff) != klen) {
            jfail(j, "key holds a \\u0000");
            return -1;
        }
        if (dup_key(j->doc, v, koff)) {
            jfail(j, "duplicate key \"%.64s\"", j->doc->strs + koff);
            return -1;
        }
        skip_ws(j);
        if (j->p >= j->end || *j->p != ':') {
            jfail(j, "expected ':' after key \"%.64s\"", j->doc->strs + koff);
            return -1;
        }
        j->p++;
        int c = parse_value(j, depth + 1);
        if (c < 0)
            return -1;
        j->doc->v[c].koff = koff;
        add_child(j, v, &last, c);
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return v;
        }
        jfail(j, "expected ',' or '}' in an object");
        return -1;
    }
}

static int parse_value(jparser_t *j, int depth)
{
    if (depth > JSON_MAX_DEPTH) {
        jfail(j, "nested deeper than %d", JSON_MAX_DEPTH);
        return -1;
    }
    skip_ws(j);
    if (j->p >= j->end) {
        jfail(j, "unexpected end of input");
        return -1;
    }
    switch (*j->p) {
    case '{':
        return parse_object(j, depth);
    case '[':
        return parse_array(j, depth);
    case '"': {
        int v = new_val(j, RL_JSTR);
        if (v < 0)
            return -1;
        j->p++;
        size_t len;
        long off = parse_string(j, &len);
        if (off < 0)
            return -1;
        j->doc->v[v].soff = off;
        j->doc->v[v].len = len;
        return v;
    }
    case 't':
        return literal(j, "true", RL_JBOOL, 1);
    case 'f':
        return literal(j, "false", RL_JBOOL, 0);
    case 'n':
        return literal(j, "null", RL_JNULL, 0);
    default: {
        if (*j->p != '-' && !(*j->p >= '0' && *j->p <= '9')) {
            jfail(j, "unexpected '%c'", *j->p >= 0x20 && *j->p < 0x7f ? *j->p : '?');
            return -1;
        }
        int v = new_val(j, RL_JNUM);
        if (v < 0 || parse_number(j, v))
            return -1;
        return v;
    }
    }
}

rl_status_t rl_json_parse(const char *text, size_t len, const char *file, rl_json_t *doc, char *err, size_t errlen)
{
    memset(doc, 0, sizeof(*doc));
    snprintf(doc->file, sizeof(doc->file), "%s", file ? file : "<json>");
    jparser_t j = {.p = text, .end = text + len, .line = 1, .doc = doc, .err = err, .errlen = errlen};
    int root = parse_value(&j, 0);
    if (root >= 0) {
        skip_ws(&j);
        if (j.p != j.end)
            jfail(&j, "text after the end of the document");
    }
    if (j.failed || root < 0) {
        if (!j.failed)
            jfail(&j, "invalid document");
        rl_json_free(doc);
        return RL_ERR_INVALID_ARG;
    }
    for (int i = 0; i < doc->n; i++) {
        doc->v[i].key = doc->v[i].koff >= 0 ? doc->strs + doc->v[i].koff : NULL;
        doc->v[i].str = doc->v[i].soff >= 0 ? doc->strs + doc->v[i].soff : NULL;
    }
    return RL_OK;
}

void rl_json_free(rl_json_t *doc)
{
    free(doc->v);
    free(doc->strs);
    doc->v = NULL;
    doc->strs = NULL;
    doc->n = doc->cap = 0;
}

int rl_json_get(const rl_json_t *doc, int o, const char *key)
{
    if (o < 0 || doc->v[o].type != RL_JOBJ)
        return -1;
    for (int c = doc->v[o].first; c >= 0; c = doc->v[c].next)
        if (!strcmp(doc->v[c].key, key))
            return c;
    return -1;
}
