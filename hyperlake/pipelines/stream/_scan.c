/* A trades frame → its columns, in one pass over the text (the stream's hot path).
 *
 * scan_trades(frame) reads a WebSocket text frame (str or bytes) of the one shape the
 * live feed sends most, {"channel":"trades","data":[{coin, side, px, sz, time, hash,
 * tid, ...}, ...]}, and returns (coin, times, tids, px, sz, ordered, total, distinct,
 * summary) straight from the text: no trade objects, no second pass per column. It
 * returns None for anything it does not fully recognise, and the caller then parses
 * the frame the general way (msgspec), which raises for what is malformed. So this
 * scanner only ever accepts a subset of what the general path accepts, and gives the
 * very same values:
 *
 * - the whole text is checked as JSON, values the frame does not use (users, extra
 *   keys) included: strings must be plain printable ASCII (an escape, a control
 *   character or a non-ASCII byte gives None), numbers must follow JSON's grammar,
 *   nesting is bounded, nothing may follow the object;
 * - every trade must have coin, side, px, sz, time, hash and tid exactly once, all the
 *   coins the same, side "A" or "B", px and sz plain positive decimals in strings
 *   ("84143.5", no sign, exponent or superfluous leading zero, at most 40 characters),
 *   time and tid JSON integers of at most 18 digits (so they fit, and are ≥ 0);
 * - a decimal becomes the double nearest its exact value, as float(text) gives it:
 *   when its digits make an integer below 2**53 and it has at most 22 decimals, one
 *   IEEE division of two exactly represented doubles (Clinger's fast path); else
 *   CPython's own correctly rounded conversion;
 * - ``ordered`` says times never decrease; ``total`` is the plain left-to-right
 *   double sum of the sizes (trades.py's module docstring says why that is exact
 *   enough); ``distinct`` whether no tid comes twice; ``summary`` the frame's summary
 *   as bars.py's _summarise makes it (trades.Summary), for a frame in time order whose
 *   volume one rounding makes exact, else None; an empty ``data`` gives None.
 *
 * Memory safety: every read is checked against the end of the text; nothing is
 * written but the returned objects and a bounded stack. The tests
 * (tests/pipelines/stream/test_stream_scan.py) compare this scanner with the general
 * path on recorded, generated and randomly damaged frames; scripts/fuzz_scan.py runs
 * it under AddressSanitizer and UBSan.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#define MAX_DEPTH 32          /* nesting of the values skipped (users, extra keys) */
#define MAX_DECIMAL 40        /* characters of a px or sz decimal */
#define MAX_INTEGER 18        /* digits of a time or tid: below 10**18 < 2**63 */
/* trades.py's SIZE_SCALE and PLAIN_SUM_LIMIT (2**50 / 10**8, correctly rounded here as
 * there); the module exports both and a test checks they are the same. */
#define SIZE_SCALE 1e8
#define PLAIN_SUM_LIMIT (0x1p50 / 1e8)
#define EXACT_MANTISSA (1ULL << 53)
/* below this, mantissa * 10 + 9 stays below 2**53: every digit so far is exact */
#define MANTISSA_ROOM ((EXACT_MANTISSA - 9) / 10)

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} Cursor;

static const double POW10[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static inline void skip_space(Cursor *c) {
    while (c->p < c->end &&
           (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) {
        c->p++;
    }
}

/* The next non-space byte is ``ch``: consume it. */
static inline int take(Cursor *c, unsigned char ch) {
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static inline int is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/* Non-zero iff some byte of x is zero (exact for the "any" question). */
#define ZERO_BYTE(x) (((x) - ONES) & ~(x) & HIGHS)

/* Non-zero iff one of the 8 bytes at q ends a plain string or breaks it: '"', '\\',
 * a control character (< 0x20), DEL or a non-ASCII byte (≥ 0x80). */
static inline uint64_t special8(const unsigned char *q) {
    uint64_t x;
    memcpy(&x, q, sizeof x);
    return ZERO_BYTE(x ^ (ONES * '"')) | ZERO_BYTE(x ^ (ONES * '\\')) |
           ZERO_BYTE(x ^ (ONES * 0x7F)) | ((x - ONES * 0x20) & ~x & HIGHS) | (x & HIGHS);
}

/* A string of printable ASCII without escapes: its bytes (between the quotes). Most
 * of a frame's bytes are in such strings (hash, users), so they are read eight at a
 * time: the lowest flagged byte of special8 is the first special one (the borrows of
 * ZERO_BYTE only flag bytes above a true hit), and it must be the closing quote. */
static int plain_string(Cursor *c, const unsigned char **text, Py_ssize_t *size) {
    skip_space(c);
    if (c->p >= c->end || *c->p != '"') {
        return 0;
    }
    const unsigned char *start = c->p + 1, *q = start;
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (c->end - q >= 8) {
        uint64_t hits = special8(q);
        if (hits) {
            q += __builtin_ctzll(hits) >> 3;
            if (*q != '"') {
                return 0;
            }
            *text = start;
            *size = q - start;
            c->p = q + 1;
            return 1;
        }
        q += 8;
    }
#endif
    while (q < c->end) {
        unsigned char ch = *q;
        if (ch == '"') {
            *text = start;
            *size = q - start;
            c->p = q + 1;
            return 1;
        }
        if (ch < 0x20 || ch > 0x7E || ch == '\\') {
            return 0;
        }
        q++;
    }
    return 0;
}

static inline int digits(Cursor *c) {
    const unsigned char *start = c->p;
    while (c->p < c->end && is_digit(*c->p)) {
        c->p++;
    }
    return c->p > start;
}

/* A JSON number, checked against the grammar and skipped. */
static int skip_number(Cursor *c) {
    if (c->p < c->end && *c->p == '-') {
        c->p++;
    }
    if (c->p >= c->end || !is_digit(*c->p)) {
        return 0;
    }
    if (*c->p == '0') {
        c->p++;
    } else {
        digits(c);
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!digits(c)) {
            return 0;
        }
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
            c->p++;
        }
        if (!digits(c)) {
            return 0;
        }
    }
    /* "01", "1x": what follows a number must end it */
    return c->p >= c->end || !(is_digit(*c->p) || *c->p == '.' || *c->p == 'e' ||
                               *c->p == 'E' || *c->p == '-' || *c->p == '+');
}

static int skip_literal(Cursor *c, const char *word, size_t size) {
    if ((size_t)(c->end - c->p) < size || memcmp(c->p, word, size) != 0) {
        return 0;
    }
    c->p += size;
    return 1;
}

static int skip_value(Cursor *c, int depth);

static int skip_object(Cursor *c, int depth) {
    const unsigned char *key;
    Py_ssize_t size;
    if (take(c, '}')) {
        return 1;
    }
    do {
        if (!plain_string(c, &key, &size) || !take(c, ':') || !skip_value(c, depth)) {
            return 0;
        }
    } while (take(c, ','));
    return take(c, '}');
}

static int skip_array(Cursor *c, int depth) {
    if (take(c, ']')) {
        return 1;
    }
    do {
        if (!skip_value(c, depth)) {
            return 0;
        }
    } while (take(c, ','));
    return take(c, ']');
}

/* Any JSON value, checked and skipped (strings: plain ones only). */
static int skip_value(Cursor *c, int depth) {
    const unsigned char *text;
    Py_ssize_t size;
    skip_space(c);
    if (c->p >= c->end || depth >= MAX_DEPTH) {
        return 0;
    }
    switch (*c->p) {
    case '"':
        return plain_string(c, &text, &size);
    case '{':
        c->p++;
        return skip_object(c, depth + 1);
    case '[':
        c->p++;
        return skip_array(c, depth + 1);
    case 't':
        return skip_literal(c, "true", 4);
    case 'f':
        return skip_literal(c, "false", 5);
    case 'n':
        return skip_literal(c, "null", 4);
    default:
        return skip_number(c);
    }
}

/* A JSON integer token of at most MAX_INTEGER digits (so ≥ 0 and < 2**63). */
static int natural(Cursor *c, long long *out) {
    skip_space(c);
    const unsigned char *q = c->p;
    long long value = 0;
    if (q >= c->end || !is_digit(*q)) {
        return 0;
    }
    if (*q == '0') {
        q++;
    } else {
        int count = 0;
        while (q < c->end && is_digit(*q)) {
            if (++count > MAX_INTEGER) {
                return 0;
            }
            value = value * 10 + (*q - '0');
            q++;
        }
    }
    if (q < c->end && (is_digit(*q) || *q == '.' || *q == 'e' || *q == 'E')) {
        return 0; /* "01", or a float */
    }
    c->p = q;
    *out = value;
    return 1;
}

/* A positive plain decimal in a string ("0.5", "84143", "12.000"): the double
 * nearest its value. */
static int positive_decimal(Cursor *c, double *out) {
    const unsigned char *text;
    Py_ssize_t size;
    if (!plain_string(c, &text, &size) || size == 0 || size > MAX_DECIMAL) {
        return 0;
    }
    const unsigned char *q = text, *end = text + size;
    uint64_t mantissa = 0;
    int decimals = 0, exact = 1, nonzero = 0;
    if (*q == '0' && q + 1 < end && is_digit(q[1])) {
        return 0; /* a superfluous leading zero */
    }
    for (; q < end && is_digit(*q); q++) {
        nonzero |= *q != '0';
        if (mantissa >= MANTISSA_ROOM) {
            exact = 0;
        } else {
            mantissa = mantissa * 10 + (uint64_t)(*q - '0');
        }
    }
    if (q == text) {
        return 0; /* no integer part */
    }
    if (q < end) {
        if (*q != '.' || q + 1 == end) {
            return 0;
        }
        for (q++; q < end; q++) {
            if (!is_digit(*q)) {
                return 0;
            }
            nonzero |= *q != '0';
            decimals++;
            if (mantissa >= MANTISSA_ROOM) {
                exact = 0;
            } else {
                mantissa = mantissa * 10 + (uint64_t)(*q - '0');
            }
        }
    }
    if (!nonzero) {
        return 0; /* zero is not a price or a size */
    }
    if (exact && decimals <= 22) {
        *out = (double)mantissa / POW10[decimals];
        return 1;
    }
    char buffer[MAX_DECIMAL + 1];
    memcpy(buffer, text, (size_t)size);
    buffer[size] = '\0';
    double value = PyOS_string_to_double(buffer, NULL, NULL);
    if (value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *out = value;
    return 1;
}

static inline int key_is(const unsigned char *key, Py_ssize_t size, const char *name,
                         Py_ssize_t name_size) {
    return size == name_size && memcmp(key, name, (size_t)size) == 0;
}

enum { COIN = 1, SIDE = 2, PX = 4, SZ = 8, TIME = 16, HASH = 32, TID = 64, ALL = 127,
       OTHER = 128 };

typedef struct {
    const unsigned char *coin;
    Py_ssize_t coin_size;
    double px, sz;
    long long time, tid;
} Trade;

#define MATCH(literal, code)                                                             \
    if (room >= (Py_ssize_t)sizeof(literal) - 1 &&                                      \
        memcmp(p, literal, sizeof(literal) - 1) == 0) {                                  \
        c->p += sizeof(literal) - 1;                                                     \
        return take(c, ':') ? (code) : 0;                                                \
    }

/* A trade member's key and its ':': the field's code, OTHER for a key of no field,
 * 0 when it is not a plain string. The fields' keys are matched in place, quotes
 * included (so "coins" is not "coin"), the rest read as strings. */
static int trade_key(Cursor *c) {
    const unsigned char *key;
    Py_ssize_t size;
    skip_space(c);
    const unsigned char *p = c->p;
    Py_ssize_t room = c->end - p;
    if (room >= 2 && *p == '"') {
        switch (p[1]) {
        case 'c':
            MATCH("\"coin\"", COIN);
            break;
        case 's':
            MATCH("\"side\"", SIDE);
            MATCH("\"sz\"", SZ);
            break;
        case 'p':
            MATCH("\"px\"", PX);
            break;
        case 't':
            MATCH("\"time\"", TIME);
            MATCH("\"tid\"", TID);
            break;
        case 'h':
            MATCH("\"hash\"", HASH);
            break;
        }
    }
    return plain_string(c, &key, &size) && take(c, ':') ? OTHER : 0;
}

/* One trade object (the cursor is past its '{'). */
static int trade(Cursor *c, Trade *t) {
    const unsigned char *text;
    Py_ssize_t text_size;
    int seen = 0, field, read;
    do {
        switch (field = trade_key(c)) {
        case COIN:
            read = plain_string(c, &t->coin, &t->coin_size);
            break;
        case SIDE:
            read = plain_string(c, &text, &text_size) && text_size == 1 &&
                   (text[0] == 'A' || text[0] == 'B');
            break;
        case PX:
            read = positive_decimal(c, &t->px);
            break;
        case SZ:
            read = positive_decimal(c, &t->sz);
            break;
        case TIME:
            read = natural(c, &t->time);
            break;
        case HASH:
            read = plain_string(c, &text, &text_size);
            break;
        case TID:
            read = natural(c, &t->tid);
            break;
        case OTHER:
            read = skip_value(c, 2);
            field = 0;
            break;
        default:
            return 0;
        }
        if (!read || (seen & field)) {
            return 0; /* a bad value, or a key given twice */
        }
        seen |= field;
    } while (take(c, ','));
    return take(c, '}') && seen == ALL;
}

/* The trades read so far: on the stack for the usual frame, on the heap past that. */
typedef struct {
    Trade *items;
    Py_ssize_t count, capacity;
    Trade stack[128];
} Trades;

static int push(Trades *ts, const Trade *t) {
    if (ts->count == ts->capacity) {
        Py_ssize_t capacity = ts->capacity * 2;
        Trade *items = ts->items == ts->stack ? PyMem_Malloc(capacity * sizeof(Trade))
                                              : PyMem_Realloc(ts->items, capacity * sizeof(Trade));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (ts->items == ts->stack) {
            memcpy(items, ts->stack, sizeof ts->stack);
        }
        ts->items = items;
        ts->capacity = capacity;
    }
    ts->items[ts->count++] = *t;
    return 0;
}

/* The data array (the cursor is past its '['): 1 read, 0 not this shape, -1 error. */
static int data(Cursor *c, Trades *ts) {
    Trade t;
    if (take(c, ']')) {
        return 1;
    }
    do {
        if (!take(c, '{') || !trade(c, &t)) {
            return 0;
        }
        if (ts->count > 0 && (t.coin_size != ts->items[0].coin_size ||
                              memcmp(t.coin, ts->items[0].coin, (size_t)t.coin_size) != 0)) {
            return 0; /* several coins: the general path says what is wrong */
        }
        if (push(ts, &t) < 0) {
            return -1;
        }
    } while (take(c, ','));
    return take(c, ']');
}

/* The frame: 1 read, 0 not this shape, -1 error. */
static int frame(Cursor *c, Trades *ts) {
    const unsigned char *key, *text;
    Py_ssize_t size, text_size;
    int channel = 0, seen_data = 0, read;
    if (!take(c, '{')) {
        return 0;
    }
    do {
        if (!plain_string(c, &key, &size) || !take(c, ':')) {
            return 0;
        }
        if (key_is(key, size, "channel", 7)) {
            if (channel || !plain_string(c, &text, &text_size) ||
                !key_is(text, text_size, "trades", 6)) {
                return 0;
            }
            channel = 1;
        } else if (key_is(key, size, "data", 4)) {
            if (seen_data || !take(c, '[')) {
                return 0;
            }
            if ((read = data(c, ts)) != 1) {
                return read;
            }
            seen_data = 1;
        } else if (!skip_value(c, 1)) {
            return 0;
        }
    } while (take(c, ','));
    if (!take(c, '}')) {
        return 0;
    }
    skip_space(c);
    return c->p == c->end && channel && seen_data && ts->count > 0;
}

/* A time or tid, a price or size, from its 8 bytes. */
typedef PyObject *(*Make)(uint64_t bits);

static PyObject *make_int(uint64_t bits) {
    long long value;
    memcpy(&value, &bits, sizeof value);
    return PyLong_FromLongLong(value);
}

static PyObject *make_float(uint64_t bits) {
    double value;
    memcpy(&value, &bits, sizeof value);
    return PyFloat_FromDouble(value);
}

/* One column (the field at ``offset`` of every trade) as a list: a value with the
 * same bytes as the one before shares its object (times within a block, a price
 * traded several times; doubles here are never -0.0 or NaN, so equal bytes are equal
 * values and equal values equal bytes), so the usual frame allocates fewer. */
static PyObject *column(const Trades *ts, size_t offset, Make make) {
    PyObject *list = PyList_New(ts->count), *item = NULL;
    uint64_t previous = 0;
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < ts->count; i++) {
        uint64_t bits;
        memcpy(&bits, (const char *)&ts->items[i] + offset, sizeof bits);
        if (item == NULL || bits != previous) {
            if ((item = make(bits)) == NULL) {
                Py_DECREF(list);
                return NULL;
            }
            previous = bits;
        } else {
            Py_INCREF(item);
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

/* Whether no tid comes twice: rising tids say so at once, else a small hash set.
 * 0 when unsure (no memory): the caller then checks the way it would without us. */
static int distinct_tids(const Trades *ts) {
    Py_ssize_t n = ts->count, i;
    for (i = 1; i < n && ts->items[i].tid > ts->items[i - 1].tid; i++) {
    }
    if (i >= n) {
        return 1;
    }
    long long stack[512], *table = stack;
    int bits = 1;
    while (((Py_ssize_t)1 << bits) < 2 * n) {
        bits++;
    }
    size_t size = (size_t)1 << bits, mask = size - 1;
    if (size > sizeof stack / sizeof stack[0] &&
        (table = PyMem_Malloc(size * sizeof(long long))) == NULL) {
        return 0;
    }
    memset(table, 0xFF, size * sizeof(long long)); /* -1: empty (tids are >= 0) */
    int distinct = 1;
    for (i = 0; i < n && distinct; i++) {
        long long tid = ts->items[i].tid;
        size_t slot = (size_t)(((uint64_t)tid * 0x9E3779B97F4A7C15ULL) >> (64 - bits));
        while (table[slot] != -1 && table[slot] != tid) {
            slot = (slot + 1) & mask;
        }
        distinct = table[slot] != tid;
        table[slot] = tid;
    }
    if (table != stack) {
        PyMem_Free(table);
    }
    return distinct;
}

/* The frame's summary, as bars.py's _summarise(batch, 0, n) makes it, for a frame in
 * time order whose sizes convert to units by one rounding of their plain sum
 * (trades.py's size_units, first case); None for any other. */
static PyObject *summary(const Trades *ts, double total, int ordered, PyObject *times,
                         PyObject *tids, PyObject *px) {
    const Trade *t = ts->items;
    Py_ssize_t n = ts->count, first = 0, last, high = 0, low = 0, i;
    if (!ordered || !(total * (double)(n + 2) < PLAIN_SUM_LIMIT)) {
        Py_RETURN_NONE;
    }
    /* among the trades at the first time, the lowest tid opens; at the last, the
     * highest closes (the first such, as list.index finds it) */
    for (i = 1; i < n && t[i].time == t[0].time; i++) {
        if (t[i].tid < t[first].tid) {
            first = i;
        }
    }
    for (last = n - 1; last > 0 && t[last - 1].time == t[n - 1].time; last--) {
    }
    for (i = last + 1; i < n; i++) {
        if (t[i].tid > t[last].tid) {
            last = i;
        }
    }
    for (i = 1; i < n; i++) {
        if (t[i].px > t[high].px) {
            high = i;
        }
        if (t[i].px < t[low].px) {
            low = i;
        }
    }
    long long units = (long long)nearbyint(total * SIZE_SCALE); /* round(): half-even */
    return Py_BuildValue("(OOOOOOOONn)", PyList_GET_ITEM(times, 0),
                         PyList_GET_ITEM(tids, first), PyList_GET_ITEM(px, first),
                         PyList_GET_ITEM(times, n - 1), PyList_GET_ITEM(tids, last),
                         PyList_GET_ITEM(px, last), PyList_GET_ITEM(px, high),
                         PyList_GET_ITEM(px, low), PyLong_FromLongLong(units), n);
}

/* (coin, times, tids, px, sz, ordered, total, distinct, summary) of the trades read. */
static PyObject *columns(const Trades *ts) {
    const Trade *t = ts->items;
    int ordered = 1;
    double total = 0.0;
    PyObject *coin = NULL, *times = NULL, *tids = NULL, *px = NULL, *sz = NULL,
             *whole = NULL, *result = NULL;
    for (Py_ssize_t i = 0; i < ts->count; i++) {
        ordered &= i == 0 || t[i].time >= t[i - 1].time;
        total += t[i].sz;
    }
    coin = PyUnicode_FromStringAndSize((const char *)t[0].coin, t[0].coin_size);
    if (coin != NULL) {
        PyUnicode_InternInPlace(&coin); /* a dict key everywhere downstream */
    }
    if (coin && (times = column(ts, offsetof(Trade, time), make_int)) &&
        (tids = column(ts, offsetof(Trade, tid), make_int)) &&
        (px = column(ts, offsetof(Trade, px), make_float)) &&
        (sz = column(ts, offsetof(Trade, sz), make_float)) &&
        (whole = summary(ts, total, ordered, times, tids, px))) {
        result = Py_BuildValue("(OOOOOOdOO)", coin, times, tids, px, sz,
                               ordered ? Py_True : Py_False, total,
                               distinct_tids(ts) ? Py_True : Py_False, whole);
    }
    Py_XDECREF(coin);
    Py_XDECREF(times);
    Py_XDECREF(tids);
    Py_XDECREF(px);
    Py_XDECREF(sz);
    Py_XDECREF(whole);
    return result;
}

static PyObject *scan_trades(PyObject *module, PyObject *text) {
    const char *buffer;
    Py_ssize_t size;
    (void)module;
    if (PyBytes_Check(text)) {
        buffer = PyBytes_AS_STRING(text);
        size = PyBytes_GET_SIZE(text);
    } else if (PyUnicode_Check(text)) {
        buffer = PyUnicode_AsUTF8AndSize(text, &size);
        if (buffer == NULL) { /* e.g. a lone surrogate: the general path decides */
            PyErr_Clear();
            Py_RETURN_NONE;
        }
    } else {
        Py_RETURN_NONE;
    }
    Trades ts;
    ts.items = ts.stack;
    ts.count = 0;
    ts.capacity = sizeof ts.stack / sizeof ts.stack[0];
    Cursor c = {(const unsigned char *)buffer, (const unsigned char *)buffer + size};
    PyObject *result;
    switch (frame(&c, &ts)) {
    case 1:
        result = columns(&ts);
        break;
    case 0:
        result = Py_None;
        Py_INCREF(result);
        break;
    default:
        result = NULL;
    }
    if (ts.items != ts.stack) {
        PyMem_Free(ts.items);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"scan_trades", scan_trades, METH_O,
     "scan_trades(frame, /)\n--\n\n"
     "(coin, times, tids, px, sz, ordered, total, distinct, summary) of a trades frame of the "
     "usual shape; None when the frame must be parsed the general way."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan",
    "A trades frame's columns in one pass (see _scan.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddObject(m, "SIZE_SCALE", PyFloat_FromDouble(SIZE_SCALE)) < 0 ||
                      PyModule_AddObject(m, "PLAIN_SUM_LIMIT",
                                         PyFloat_FromDouble(PLAIN_SUM_LIMIT)) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
