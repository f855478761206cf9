/*
 * loadgen: a WebSocket load generator for 127.0.0.1 only.
 *
 *   loadgen echo    [--url ws://127.0.0.1:PORT/PATH] [--connections C] [--inflight K] [--size S]
 *                   [--text] [--warmup W] [--duration D] [--server-pid PID] [--json]
 *   loadgen connect [--url ...] [--concurrency N] [--warmup W] [--duration D] [--json]
 *   loadgen idle    [--url ...] [--connections C] [--hold H] [--server-pid PID] [--json]
 *
 * C11, one thread, epoll (edge-triggered), no dependencies beyond libc.
 * Build: cc -O2 -o loadgen loadgen.c
 *
 * Every run is bounded: at most 20000 connections, --duration <= 120 s, --hold <= 120 s,
 * --warmup <= 60 s, and a hard alarm() ends the process if a phase ever overruns.
 * The only target is 127.0.0.1: any other host in --url is refused.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ limits */

#define MAX_CONNECTIONS 20000
#define MAX_DURATION 120.0
#define MAX_HOLD 120.0
#define MAX_WARMUP 60.0
#define MAX_SIZE (16u * 1024u * 1024u)
#define MAX_INFLIGHT 1024
#define OPEN_PHASE_MAX_S 60.0  /* echo/idle: longest time allowed to open all connections */
#define RBUF_SIZE (256 * 1024) /* one read buffer shared by all connections */
#define HS_BUF 4096            /* handshake response buffer (per connection, while handshaking) */
#define MAX_EVENTS 1024

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ------------------------------------------------------------------ time */

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_seconds(struct rusage *u, double *user, double *sys) {
    getrusage(RUSAGE_SELF, u);
    double us = u->ru_utime.tv_sec + u->ru_utime.tv_usec / 1e6;
    double sy = u->ru_stime.tv_sec + u->ru_stime.tv_usec / 1e6;
    if (user) *user = us;
    if (sys) *sys = sy;
    return us + sy;
}

/* ------------------------------------------------------------------ rng */

static uint64_t rng_state;

static inline uint64_t rng64(void) { /* xorshift64* */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ------------------------------------------------------------------ sha1, base64 */

static inline uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const uint8_t *p) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t i = 0;
    for (; i + 64 <= len; i += 64) sha1_block(h, msg + i);
    uint8_t blk[128];
    size_t r = len - i;
    memcpy(blk, msg + i, r);
    blk[r++] = 0x80;
    size_t total = (r + 8 <= 64) ? 64 : 128;
    memset(blk + r, 0, total - r);
    uint64_t bits = (uint64_t)len * 8;
    for (int j = 0; j < 8; j++) blk[total - 1 - j] = (uint8_t)(bits >> (8 * j));
    sha1_block(h, blk);
    if (total == 128) sha1_block(h, blk + 64);
    for (int j = 0; j < 5; j++) {
        out[4 * j] = (uint8_t)(h[j] >> 24);
        out[4 * j + 1] = (uint8_t)(h[j] >> 16);
        out[4 * j + 2] = (uint8_t)(h[j] >> 8);
        out[4 * j + 3] = (uint8_t)h[j];
    }
}

static void base64(const uint8_t *in, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = 0;
}

/* accept = base64(sha1(key + GUID)); key is 24 chars, accept is 28 chars */
static void ws_accept_for(const char *key, char out[29]) {
    uint8_t buf[64], dig[20];
    size_t kl = strlen(key);
    memcpy(buf, key, kl);
    memcpy(buf + kl, WS_GUID, sizeof WS_GUID - 1);
    sha1(buf, kl + sizeof WS_GUID - 1, dig);
    base64(dig, 20, out);
}

/* ------------------------------------------------------------------ histogram */
/* Log-linear buckets over nanoseconds: exact below 128, then 64 sub-buckets per power of two
 * (relative error under 1.6%). */

#define H_BITS 7
#define H_SUB (1 << H_BITS)
#define H_HALF (1 << (H_BITS - 1))
#define H_BUCKETS (H_SUB + (64 - H_BITS) * H_HALF)

typedef struct {
    uint64_t b[H_BUCKETS];
    uint64_t n, max;
    double sum;
} hist;

static inline int h_index(uint64_t v) {
    if (v < H_SUB) return (int)v;
    int m = 63 - __builtin_clzll(v);
    int s = m - H_BITS + 1;
    return H_SUB + (m - H_BITS) * H_HALF + (int)((v >> s) - H_HALF);
}

static uint64_t h_low(int i, uint64_t *width) {
    if (i < H_SUB) {
        *width = 1;
        return (uint64_t)i;
    }
    int k = (i - H_SUB) / H_HALF, r = (i - H_SUB) % H_HALF;
    int s = k + 1;
    *width = 1ULL << s;
    return ((uint64_t)(r + H_HALF)) << s;
}

static inline void h_add(hist *h, int64_t v) {
    if (v < 0) v = 0;
    h->b[h_index((uint64_t)v)]++;
    h->n++;
    h->sum += (double)v;
    if ((uint64_t)v > h->max) h->max = (uint64_t)v;
}

/* value (ns) at quantile q: middle of the bucket that holds the ceil(q*n)-th sample */
static double h_quantile(const hist *h, double q) {
    if (h->n == 0) return 0;
    uint64_t target = (uint64_t)(q * (double)h->n);
    if ((double)target < q * (double)h->n) target++;
    if (target < 1) target = 1;
    uint64_t cum = 0;
    for (int i = 0; i < H_BUCKETS; i++) {
        cum += h->b[i];
        if (cum >= target) {
            uint64_t w, lo = h_low(i, &w);
            double mid = (double)lo + (double)(w - 1) / 2.0;
            return mid > (double)h->max ? (double)h->max : mid;
        }
    }
    return (double)h->max;
}

/* ------------------------------------------------------------------ options */

enum { MODE_ECHO, MODE_CONNECT, MODE_IDLE };

static struct {
    int mode;
    char path[1024];
    int port;
    int connections;
    int inflight;
    uint32_t size;
    bool text;
    double duration, warmup, hold, timeout, close_wait;
    int concurrency;
    int server_pid;
    bool json;
    bool verify_all;
} opt = {
    .mode = -1,
    .path = "/echo",
    .port = 9100,
    .connections = -1,
    .inflight = 1,
    .size = 32,
    .duration = 10,
    .warmup = 2,
    .hold = 5,
    .timeout = 5,
    .close_wait = -1,
    .concurrency = -1,
    .server_pid = 0,
};

static FILE *hout; /* human-readable output: stdout, or stderr with --json */

static void usage(FILE *f) {
    fprintf(f,
            "usage: loadgen MODE [options]\n"
            "modes:\n"
            "  echo      C connections each keep K messages of S bytes in flight, waiting for echoes\n"
            "  connect   N concurrent loops of connect, upgrade, close(1000), wait for close + TCP close\n"
            "  idle      open C connections, hold them idle (answering pings), report server RSS\n"
            "options:\n"
            "  --url ws://127.0.0.1:PORT/PATH   target (default ws://127.0.0.1:9100/echo); only 127.0.0.1\n"
            "                                   (or 'localhost', which means 127.0.0.1) is accepted\n"
            "  --connections C     echo: default 64, idle: default 1000; max %d\n"
            "  --inflight K        echo: messages in flight per connection (default 1, max %d)\n"
            "  --size S            echo: payload bytes (default 32, max %u)\n"
            "  --text              echo: text frames with an ASCII payload (default binary)\n"
            "  --verify-all        echo: compare every payload byte (default: length, opcode, first/last)\n"
            "  --warmup W          echo/connect: seconds before counting (default 2, max %g)\n"
            "  --duration D        echo/connect: seconds counted (default 10, max %g)\n"
            "  --hold H            idle: seconds to hold the idle connections (default 5, max %g)\n"
            "  --concurrency N     connect: concurrent cycles (default 16); echo/idle: handshakes in\n"
            "                      progress at once while opening (default 100); max %d\n"
            "  --timeout T         seconds allowed for one handshake / one connect cycle (default 5)\n"
            "  --close-wait T      seconds to wait for the servers' closes at the end (default 5 + C/1000,\n"
            "                      max 30); a connection still open then counts as close_unclean\n"
            "  --server-pid PID    read VmRSS/VmHWM and CPU time of PID from /proc\n"
            "  --json              print one JSON object on stdout (human-readable lines go to stderr)\n"
            "exit status: 0 if no errors, 1 if the run counted errors, 2 on bad usage or setup failure\n",
            MAX_CONNECTIONS, MAX_INFLIGHT, MAX_SIZE, MAX_WARMUP, MAX_DURATION, MAX_HOLD, MAX_CONNECTIONS);
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static double parse_num(const char *name, const char *v, double lo, double hi) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end) die("%s: not a number: '%s'", name, v);
    if (!(d >= lo && d <= hi)) die("%s must be in [%g, %g], got %s", name, lo, hi, v);
    return d;
}

static void parse_url(const char *url) {
    const char *p = url;
    if (strncmp(p, "ws://", 5) != 0) die("--url must start with ws:// (got '%s'; wss is not supported)", url);
    p += 5;
    const char *hend = p;
    while (*hend && *hend != ':' && *hend != '/') hend++;
    size_t hl = (size_t)(hend - p);
    if (!((hl == 9 && memcmp(p, "127.0.0.1", 9) == 0) || (hl == 9 && strncasecmp(p, "localhost", 9) == 0)))
        die("refusing target host '%.*s': loadgen only targets 127.0.0.1", (int)hl, p);
    p = hend;
    opt.port = 80;
    if (*p == ':') {
        p++;
        char *end;
        long port = strtol(p, &end, 10);
        if (end == p || port < 1 || port > 65535) die("bad port in --url '%s'", url);
        opt.port = (int)port;
        p = end;
    }
    if (*p == 0) {
        strcpy(opt.path, "/");
    } else if (*p == '/') {
        if (strlen(p) >= sizeof opt.path) die("path too long");
        for (const char *q = p; *q; q++)
            if ((unsigned char)*q <= 32 || *q == 127) die("bad character in path");
        strcpy(opt.path, p);
    } else {
        die("bad --url '%s'", url);
    }
}

static void parse_args(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        exit(2);
    }
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (a[0] != '-') {
            if (opt.mode >= 0) die("unexpected argument '%s'", a);
            if (!strcmp(a, "echo")) opt.mode = MODE_ECHO;
            else if (!strcmp(a, "connect")) opt.mode = MODE_CONNECT;
            else if (!strcmp(a, "idle")) opt.mode = MODE_IDLE;
            else die("unknown mode '%s' (echo, connect, idle)", a);
            continue;
        }
        /* flags without a value */
        if (!strcmp(a, "--text")) { opt.text = true; continue; }
        if (!strcmp(a, "--binary")) { opt.text = false; continue; }
        if (!strcmp(a, "--json")) { opt.json = true; continue; }
        if (!strcmp(a, "--verify-all")) { opt.verify_all = true; continue; }
        /* --name value or --name=value */
        char name[64];
        const char *val;
        char *eq = strchr(a, '=');
        if (eq) {
            size_t nl = (size_t)(eq - a);
            if (nl >= sizeof name) die("bad option '%s'", a);
            memcpy(name, a, nl);
            name[nl] = 0;
            val = eq + 1;
        } else {
            if (strlen(a) >= sizeof name) die("bad option '%s'", a);
            strcpy(name, a);
            if (i + 1 >= argc) die("%s needs a value", a);
            val = argv[++i];
        }
        if (!strcmp(name, "--url")) parse_url(val);
        else if (!strcmp(name, "--connections")) opt.connections = (int)parse_num(name, val, 1, MAX_CONNECTIONS);
        else if (!strcmp(name, "--inflight")) opt.inflight = (int)parse_num(name, val, 1, MAX_INFLIGHT);
        else if (!strcmp(name, "--size")) opt.size = (uint32_t)parse_num(name, val, 0, MAX_SIZE);
        else if (!strcmp(name, "--duration")) opt.duration = parse_num(name, val, 0.1, MAX_DURATION);
        else if (!strcmp(name, "--warmup")) opt.warmup = parse_num(name, val, 0, MAX_WARMUP);
        else if (!strcmp(name, "--hold")) opt.hold = parse_num(name, val, 0, MAX_HOLD);
        else if (!strcmp(name, "--timeout")) opt.timeout = parse_num(name, val, 0.1, 30);
        else if (!strcmp(name, "--close-wait")) opt.close_wait = parse_num(name, val, 0, 30);
        else if (!strcmp(name, "--concurrency")) opt.concurrency = (int)parse_num(name, val, 1, MAX_CONNECTIONS);
        else if (!strcmp(name, "--server-pid")) opt.server_pid = (int)parse_num(name, val, 1, 4194304);
        else die("unknown option '%s' (see --help)", name);
    }
    if (opt.mode < 0) die("missing mode (echo, connect, idle)");
    if (opt.connections < 0) opt.connections = opt.mode == MODE_IDLE ? 1000 : 64;
    if (opt.concurrency < 0) opt.concurrency = opt.mode == MODE_CONNECT ? 16 : 100;
    if (opt.close_wait < 0) /* a slow server may close ~1000 connections/s */
        opt.close_wait = opt.mode == MODE_CONNECT ? 5 : 5 + opt.connections / 1000.0;
    if (opt.mode == MODE_ECHO && (uint64_t)opt.connections * opt.inflight * ((uint64_t)opt.size + 14) >
                                     (uint64_t)4 << 30)
        die("connections * inflight * size exceeds 4 GiB of send buffers");
}

/* ------------------------------------------------------------------ /proc of the server */

static long proc_status_kib(int pid, const char *field) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t fl = strlen(field);
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl) && line[fl] == ':') {
            v = strtol(line + fl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* utime+stime of the whole process, in seconds; -1 if unreadable */
static double proc_cpu_s(int pid) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p += 2; /* now at field 3 (state) */
    unsigned long long ut = 0, stt = 0;
    /* fields 3..13 skipped, 14 utime, 15 stime */
    for (int field = 3; field <= 15 && *p; field++) {
        char *sp = strchr(p, ' ');
        if (field == 14) ut = strtoull(p, NULL, 10);
        if (field == 15) stt = strtoull(p, NULL, 10);
        if (!sp) break;
        p = sp + 1;
    }
    long tck = sysconf(_SC_CLK_TCK);
    return (double)(ut + stt) / (double)(tck > 0 ? tck : 100);
}

/* ------------------------------------------------------------------ connections */

enum { ST_FREE = 0, ST_CONNECTING, ST_HS, ST_OPEN, ST_DONE };

enum {
    E_CONNECT,       /* connect() failed or refused */
    E_HANDSHAKE,     /* bad or missing 101 / Sec-WebSocket-Accept */
    E_HS_TIMEOUT,    /* handshake took longer than --timeout */
    E_BAD_FRAME,     /* protocol violation in a server frame */
    E_MISMATCH,      /* echo with wrong length / opcode / content */
    E_CLOSED,        /* server closed (close frame or EOF) while we were still using the connection */
    E_IO,            /* read/write error (reset, ...) */
    E_CLOSE_UNCLEAN, /* at the end: no close frame from the server, or no TCP close in time */
    E_CYCLE_TIMEOUT, /* connect mode: a cycle took longer than --timeout */
    E_COUNT
};
static const char *err_names[E_COUNT] = {"connect",  "handshake", "handshake_timeout", "bad_frame",    "mismatch",
                                         "closed",   "io",        "close_unclean",     "cycle_timeout"};

typedef struct conn {
    int fd;
    uint32_t gen; /* bumps on every reuse of the slot: stale epoll events are ignored */
    uint8_t state;
    bool close_sent, close_rcvd;
    /* frame parser */
    bool in_frame;
    uint8_t hn, f_op, f_fin, cn;
    uint8_t hb[14];
    uint64_t f_rem;
    uint8_t cbuf[125];
    /* message being received */
    bool m_on, m_bad;
    uint8_t m_op, m_first, m_last;
    uint64_t m_len;
    /* echo bookkeeping */
    uint64_t seq_sent, seq_recv;
    int64_t *ts; /* ring of send times, opt.inflight entries */
    /* times */
    int64_t t0;  /* connect() started */
    /* handshake */
    char *hs;
    uint32_t hs_len;
    char accept[29];
    /* output */
    uint8_t *ob;
    size_t ob_off, ob_len, ob_cap;
} conn;

static int ep;
static conn *conns;
static int nconns;        /* size of conns[] */
static int *free_list;    /* connect mode: free slots */
static int nfree;
static int live;          /* connections with an fd */
static int handshaking;   /* connections in ST_CONNECTING or ST_HS */
static int opened;        /* echo/idle: how many slots were started */
static int64_t *ts_pool;
static uint8_t *payload;  /* base payload pattern, opt.size bytes (+8 slack) */
static uint8_t rbuf[RBUF_SIZE];
static char request_prefix[1400];
static size_t request_prefix_len;

enum { P_CONNECTING, P_WARMUP, P_MEASURE, P_HOLD, P_CLOSING, P_DONE };
static int phase;

static struct {
    uint64_t err[E_COUNT];
    uint64_t established;   /* handshakes completed (echo/idle) */
    uint64_t msgs;          /* echoes received in the measured window */
    uint64_t msgs_total;    /* all verified echoes */
    uint64_t pings, pongs_sent, unexpected_msgs;
    uint64_t clean_closes;
    uint64_t hs_window, cycles_window, cycles_total, hs_total;
    uint64_t connect_attempts;
} st;

static hist lat;     /* echo round trip / connect full cycle */
static hist hs_lat;  /* connect mode: connect() to verified 101 */

static inline bool dead(const conn *c) { return c->state == ST_FREE || c->state == ST_DONE; }

static inline uint8_t first_of(uint64_t seq) {
    return opt.text ? (uint8_t)('A' + seq % 26) : (uint8_t)seq;
}
static inline uint8_t last_of(uint64_t seq) {
    if (opt.size == 1) return first_of(seq);
    return opt.text ? (uint8_t)('a' + (seq / 26) % 26) : (uint8_t)((seq >> 8) ^ 0xA5);
}

static void ob_reserve(conn *c, size_t need) {
    if (c->ob_off == c->ob_len) c->ob_off = c->ob_len = 0;
    if (c->ob_cap - c->ob_len >= need) return;
    if (c->ob_off > 0) {
        memmove(c->ob, c->ob + c->ob_off, c->ob_len - c->ob_off);
        c->ob_len -= c->ob_off;
        c->ob_off = 0;
        if (c->ob_cap - c->ob_len >= need) return;
    }
    size_t cap = c->ob_cap ? c->ob_cap * 2 : 256;
    while (cap - c->ob_len < need) cap *= 2;
    uint8_t *nb = realloc(c->ob, cap);
    if (!nb) die("out of memory");
    c->ob = nb;
    c->ob_cap = cap;
}

/* Append one masked client frame. seq >= 0 patches first/last payload bytes for that sequence. */
static void queue_frame(conn *c, uint8_t op, const uint8_t *pl, size_t len, int64_t seq) {
    ob_reserve(c, len + 14);
    uint8_t *d = c->ob + c->ob_len;
    size_t h = 0;
    d[h++] = (uint8_t)(0x80 | op);
    if (len < 126) {
        d[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        d[h++] = 0x80 | 126;
        d[h++] = (uint8_t)(len >> 8);
        d[h++] = (uint8_t)len;
    } else {
        d[h++] = 0x80 | 127;
        for (int j = 7; j >= 0; j--) d[h++] = (uint8_t)((uint64_t)len >> (8 * j));
    }
    uint32_t key = (uint32_t)rng64();
    uint8_t k[4];
    memcpy(k, &key, 4);
    memcpy(d + h, k, 4);
    h += 4;
    uint8_t *o = d + h;
    uint64_t m64 = (uint64_t)key | ((uint64_t)key << 32); /* k0 k1 k2 k3 k0 k1 k2 k3 in memory */
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        uint64_t x0, x1, x2, x3;
        memcpy(&x0, pl + i, 8);
        memcpy(&x1, pl + i + 8, 8);
        memcpy(&x2, pl + i + 16, 8);
        memcpy(&x3, pl + i + 24, 8);
        x0 ^= m64;
        x1 ^= m64;
        x2 ^= m64;
        x3 ^= m64;
        memcpy(o + i, &x0, 8);
        memcpy(o + i + 8, &x1, 8);
        memcpy(o + i + 16, &x2, 8);
        memcpy(o + i + 24, &x3, 8);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, pl + i, 8);
        x ^= m64;
        memcpy(o + i, &x, 8);
    }
    for (; i < len; i++) o[i] = pl[i] ^ k[i & 3];
    if (seq >= 0 && len > 0) {
        o[0] = first_of((uint64_t)seq) ^ k[0];
        if (len > 1) o[len - 1] = last_of((uint64_t)seq) ^ k[(len - 1) & 3];
    }
    c->ob_len += h + len;
}

static void conn_end(conn *c);

static void conn_fail(conn *c, int kind) {
    st.err[kind]++;
    conn_end(c);
}

static void flush(conn *c) {
    while (c->ob_off < c->ob_len) {
        ssize_t n = send(c->fd, c->ob + c->ob_off, c->ob_len - c->ob_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->ob_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return; /* EPOLLOUT (ET) will call us */
        conn_fail(c, E_IO);
        return;
    }
    c->ob_off = c->ob_len = 0;
}

static void queue_message(conn *c, int64_t t) {
    uint64_t seq = c->seq_sent++;
    c->ts[seq % (uint64_t)opt.inflight] = t;
    queue_frame(c, opt.text ? 1 : 2, payload, opt.size, (int64_t)seq);
}

static void queue_close(conn *c, const uint8_t *body, size_t len) {
    queue_frame(c, 8, body, len, -1);
    c->close_sent = true;
}

static void queue_close_1000(conn *c) {
    static const uint8_t body[2] = {0x03, 0xE8};
    queue_close(c, body, 2);
}

static void conn_end(conn *c) {
    if (dead(c)) return;
    if (c->state == ST_CONNECTING || c->state == ST_HS) handshaking--;
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    live--;
    free(c->hs);
    c->hs = NULL;
    c->ob_off = c->ob_len = 0;
    if (opt.mode == MODE_CONNECT) {
        c->state = ST_FREE;
        free_list[nfree++] = (int)(c - conns);
    } else {
        c->state = ST_DONE;
        free(c->ob);
        c->ob = NULL;
        c->ob_cap = 0;
    }
}

static bool measuring_now(void) { return phase == P_MEASURE; }

/* a whole message arrived (final fragment done) */
static void message_done(conn *c, int64_t t) {
    if (opt.mode != MODE_ECHO) {
        st.unexpected_msgs++;
        return;
    }
    if (c->seq_recv >= c->seq_sent) {
        st.unexpected_msgs++;
        conn_fail(c, E_BAD_FRAME);
        return;
    }
    uint64_t seq = c->seq_recv++;
    bool ok = c->m_op == (opt.text ? 1 : 2) && c->m_len == opt.size && !c->m_bad &&
              (opt.size == 0 || (c->m_first == first_of(seq) && c->m_last == last_of(seq)));
    if (!ok) st.err[E_MISMATCH]++;
    st.msgs_total++;
    if (measuring_now()) {
        st.msgs++;
        h_add(&lat, t - c->ts[seq % (uint64_t)opt.inflight]);
    }
    if ((phase == P_WARMUP || phase == P_MEASURE) && !c->close_sent) queue_message(c, t);
}

static void control_frame(conn *c, uint8_t op) {
    if (op == 9) { /* ping -> pong with the same payload */
        st.pings++;
        if (!c->close_sent) {
            queue_frame(c, 10, c->cbuf, c->cn, -1);
            st.pongs_sent++;
        }
    } else if (op == 8) { /* close */
        if (c->cn == 1) {
            conn_fail(c, E_BAD_FRAME);
            return;
        }
        c->close_rcvd = true;
        if (!c->close_sent) {
            /* the server closed on us: reply with its status code, then wait for its TCP close */
            if (!(opt.mode == MODE_IDLE && phase == P_CLOSING)) st.err[E_CLOSED]++;
            queue_close(c, c->cbuf, c->cn >= 2 ? 2 : 0);
        }
    }
    /* pong: nothing to do */
}

static void frame_done(conn *c, int64_t t) {
    c->in_frame = false;
    if (c->f_op >= 8) {
        control_frame(c, c->f_op);
    } else if (c->f_fin) {
        c->m_on = false;
        message_done(c, t);
    }
}

static inline size_t hdr_need(uint8_t b0, uint8_t b1) {
    (void)b0;
    uint8_t l7 = b1 & 0x7f;
    return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
}

/* parse a complete header; false on protocol error (connection already failed) */
static bool parse_header(conn *c, const uint8_t *h) {
    uint8_t b0 = h[0], b1 = h[1];
    uint8_t fin = b0 >> 7, op = b0 & 0x0f;
    uint64_t len = b1 & 0x7f;
    if ((b0 & 0x70) || (b1 & 0x80)) goto bad; /* RSV bits without extensions; masked server frame */
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
    } else if (len == 127) {
        len = 0;
        for (int j = 0; j < 8; j++) len = len << 8 | h[2 + j];
        if (len >> 63) goto bad;
    }
    if (op >= 8) {
        if (op > 10 || !fin || len > 125) goto bad;
    } else if (op == 0) {
        if (!c->m_on) goto bad; /* continuation without a message */
    } else if (op == 1 || op == 2) {
        if (c->m_on) goto bad; /* new message inside a fragmented one */
        c->m_on = true;
        c->m_bad = false;
        c->m_op = op;
        c->m_len = 0;
    } else {
        goto bad;
    }
    c->in_frame = true;
    c->f_op = op;
    c->f_fin = fin;
    c->f_rem = len;
    c->cn = 0;
    return true;
bad:
    conn_fail(c, E_BAD_FRAME);
    return false;
}

static void feed(conn *c, const uint8_t *p, size_t n, int64_t t) {
    size_t i = 0;
    while (i < n) {
        if (!c->in_frame) {
            if (c->hn == 0 && n - i >= 2) { /* fast path: header entirely in this chunk */
                size_t need = hdr_need(p[i], p[i + 1]);
                if (n - i >= need) {
                    if (!parse_header(c, p + i)) return;
                    i += need;
                    if (c->f_rem == 0) {
                        frame_done(c, t);
                        if (dead(c)) return;
                    }
                    continue;
                }
            }
            c->hb[c->hn++] = p[i++]; /* slow path: a header split across reads */
            if (c->hn >= 2 && c->hn == hdr_need(c->hb[0], c->hb[1])) {
                c->hn = 0;
                if (!parse_header(c, c->hb)) return;
                if (c->f_rem == 0) {
                    frame_done(c, t);
                    if (dead(c)) return;
                }
            }
            continue;
        }
        size_t take = n - i;
        if (take > c->f_rem) take = (size_t)c->f_rem;
        if (c->f_op >= 8) {
            memcpy(c->cbuf + c->cn, p + i, take);
            c->cn += (uint8_t)take;
        } else if (take > 0) {
            if (c->m_len == 0) c->m_first = p[i];
            c->m_last = p[i + take - 1];
            if (opt.verify_all && opt.size >= 2) {
                uint64_t lo = c->m_len, hi = c->m_len + take;
                uint64_t a = lo < 1 ? 1 : lo, b = hi < opt.size - 1 ? hi : opt.size - 1;
                if (a < b && memcmp(p + i + (a - lo), payload + a, (size_t)(b - a)) != 0) c->m_bad = true;
            }
            c->m_len += take;
        }
        i += take;
        c->f_rem -= take;
        if (c->f_rem == 0) {
            frame_done(c, t);
            if (dead(c)) return;
        }
    }
}

/* ------------------------------------------------------------------ handshake */

static void start_handshake(conn *c) {
    uint8_t rnd[16];
    uint64_t r1 = rng64(), r2 = rng64();
    memcpy(rnd, &r1, 8);
    memcpy(rnd + 8, &r2, 8);
    char key[25];
    base64(rnd, 16, key);
    ws_accept_for(key, c->accept);
    ob_reserve(c, request_prefix_len + 64);
    memcpy(c->ob + c->ob_len, request_prefix, request_prefix_len);
    c->ob_len += request_prefix_len;
    int n = snprintf((char *)c->ob + c->ob_len, 64, "Sec-WebSocket-Key: %s\r\n\r\n", key);
    c->ob_len += (size_t)n;
    c->state = ST_HS;
    c->hs = malloc(HS_BUF);
    if (!c->hs) die("out of memory");
    c->hs_len = 0;
    flush(c);
}

static bool header_has_token(const char *v, size_t vl, const char *tok) {
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= vl; i++)
        if (strncasecmp(v + i, tok, tl) == 0) return true;
    return false;
}

/* check a complete response head (ending in \r\n\r\n) */
static bool check_response(conn *c, const char *h, size_t len) {
    if (len < 12 || memcmp(h, "HTTP/1.1 101", 12) != 0) return false;
    bool acc = false, upg = false, con = false;
    const char *p = memchr(h, '\n', len);
    const char *end = h + len;
    while (p && p + 1 < end) {
        const char *ls = p + 1;
        const char *le = memchr(ls, '\n', (size_t)(end - ls));
        if (!le) break;
        size_t ll = (size_t)(le - ls);
        if (ll > 0 && ls[ll - 1] == '\r') ll--;
        if (ll == 0) break;
        const char *colon = memchr(ls, ':', ll);
        if (colon) {
            size_t nl = (size_t)(colon - ls);
            const char *v = colon + 1;
            size_t vl = ll - nl - 1;
            while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
            if (nl == 20 && !strncasecmp(ls, "sec-websocket-accept", 20))
                acc = vl == 28 && memcmp(v, c->accept, 28) == 0;
            else if (nl == 7 && !strncasecmp(ls, "upgrade", 7))
                upg = vl == 9 && !strncasecmp(v, "websocket", 9);
            else if (nl == 10 && !strncasecmp(ls, "connection", 10))
                con = header_has_token(v, vl, "upgrade");
            else if (nl == 24 && !strncasecmp(ls, "sec-websocket-extensions", 24))
                return false; /* we offered none */
        }
        p = le;
    }
    return acc && upg && con;
}

static void on_open(conn *c, int64_t t) {
    handshaking--;
    c->state = ST_OPEN;
    if (opt.mode == MODE_CONNECT) {
        st.hs_total++;
        if (measuring_now()) {
            st.hs_window++;
            h_add(&hs_lat, t - c->t0);
        }
        queue_close_1000(c);
    } else {
        st.established++;
    }
}

static void handshake_data(conn *c, const uint8_t *p, size_t n, int64_t t) {
    size_t room = HS_BUF - 1 - c->hs_len;
    size_t take = n < room ? n : room;
    memcpy(c->hs + c->hs_len, p, take);
    c->hs_len += (uint32_t)take;
    char *e = memmem(c->hs, c->hs_len, "\r\n\r\n", 4);
    if (!e) {
        if (c->hs_len >= HS_BUF - 1) conn_fail(c, E_HANDSHAKE);
        return;
    }
    size_t hl = (size_t)(e + 4 - c->hs);
    if (!check_response(c, c->hs, hl)) {
        conn_fail(c, E_HANDSHAKE);
        return;
    }
    /* frames may follow the response head in the same read */
    uint8_t extra[HS_BUF];
    size_t xn = c->hs_len - hl;
    memcpy(extra, c->hs + hl, xn);
    free(c->hs);
    c->hs = NULL;
    on_open(c, t);
    if (xn) feed(c, extra, xn, t);
    if (!dead(c) && take < n) feed(c, p + take, n - take, t);
}

/* ------------------------------------------------------------------ socket events */

static struct sockaddr_in target;

/* Echo/idle keep thousands of connections to one destination open; letting connect() pick each
 * source port makes the kernel scan the ports already in use (O(n) per connect, most of the CPU
 * when opening 20000). So we hand out ports from ip_local_port_range round-robin and bind them. */
static int port_lo = 32768, port_hi = 60999, port_next;

static void init_ports(void) {
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        int lo, hi;
        if (fscanf(f, "%d %d", &lo, &hi) == 2 && lo > 0 && hi >= lo && hi < 65536) {
            port_lo = lo;
            port_hi = hi;
        }
        fclose(f);
    }
    port_next = port_lo + (int)(rng64() % (uint64_t)(port_hi - port_lo + 1));
}

static void bind_source_port(int fd) {
    struct sockaddr_in a = target;
    for (int tries = 0; tries < 256; tries++) { /* on failure, leave it to connect() */
        int p = port_next;
        port_next = p >= port_hi ? port_lo : p + 1;
        a.sin_port = htons((uint16_t)p);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0) return;
        if (errno != EADDRINUSE) return;
    }
}

static void conn_start(conn *c, int64_t t) {
    memset(&c->close_sent, 0, offsetof(conn, ts) - offsetof(conn, close_sent)); /* protocol state */
    c->gen++;
    c->t0 = t;
    c->hs = NULL;
    c->ob_off = c->ob_len = 0;
    st.connect_attempts++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        st.err[E_CONNECT]++;
        c->state = opt.mode == MODE_CONNECT ? ST_FREE : ST_DONE;
        if (opt.mode == MODE_CONNECT) free_list[nfree++] = (int)(c - conns);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.mode != MODE_CONNECT) bind_source_port(fd);
    c->fd = fd;
    c->state = ST_CONNECTING;
    live++;
    handshaking++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = (uint64_t)c->gen << 32 | (uint32_t)(c - conns)};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    int r = connect(fd, (struct sockaddr *)&target, sizeof target);
    if (r == 0) {
        start_handshake(c);
    } else if (errno != EINPROGRESS) {
        conn_fail(c, E_CONNECT);
    }
}

static void finish_connect(conn *c) {
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) err = errno;
    if (err == EINPROGRESS || err == EALREADY) return;
    if (err) {
        conn_fail(c, E_CONNECT);
        return;
    }
    /* SO_ERROR is 0 but the connect may still be in progress if this was an EPOLLIN-only edge */
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    if (getpeername(c->fd, (struct sockaddr *)&peer, &pl) < 0) {
        if (errno == ENOTCONN) return;
        conn_fail(c, E_CONNECT);
        return;
    }
    start_handshake(c);
}

static void on_eof(conn *c, int64_t t) {
    if (c->state == ST_HS) {
        conn_fail(c, E_HANDSHAKE);
        return;
    }
    if (c->close_sent && c->close_rcvd) {
        st.clean_closes++;
        if (opt.mode == MODE_CONNECT) {
            st.cycles_total++;
            if (measuring_now()) {
                st.cycles_window++;
                h_add(&lat, t - c->t0);
            }
        }
        conn_end(c);
        return;
    }
    conn_fail(c, phase == P_CLOSING && c->close_sent ? E_CLOSE_UNCLEAN : E_CLOSED);
}

static void on_event(conn *c, uint32_t ev) {
    if (c->state == ST_CONNECTING) {
        finish_connect(c);
        if (dead(c) || c->state == ST_CONNECTING) return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        for (;;) {
            ssize_t n = read(c->fd, rbuf, sizeof rbuf);
            if (n > 0) {
                int64_t t = now_ns();
                if (c->state == ST_HS) handshake_data(c, rbuf, (size_t)n, t);
                else feed(c, rbuf, (size_t)n, t);
                if (dead(c)) return;
                /* a short read drained the socket; a later arrival raises a new edge */
                if ((size_t)n < sizeof rbuf && !(ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) break;
                continue;
            }
            if (n == 0) {
                /* flush what we owe (e.g. the close reply) before the EOF handling closes the fd */
                if (c->ob_len > c->ob_off) flush(c);
                if (!dead(c)) on_eof(c, now_ns());
                return;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            conn_fail(c, c->state == ST_HS ? E_HANDSHAKE : E_IO);
            return;
        }
    }
    if (c->ob_len > c->ob_off) flush(c);
}

/* ------------------------------------------------------------------ setup helpers */

static void raise_nofile(int need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) die("getrlimit: %s", strerror(errno));
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= (rlim_t)need) return;
    if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= (rlim_t)need) {
        rl.rlim_cur = (rlim_t)need;
    } else {
        rl.rlim_cur = rl.rlim_max = (rlim_t)need; /* needs CAP_SYS_RESOURCE */
    }
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        struct rlimit cur;
        getrlimit(RLIMIT_NOFILE, &cur);
        die("cannot raise RLIMIT_NOFILE to %d (%d connections + 16): %s; the hard limit is %lld and raising it"
            " needs CAP_SYS_RESOURCE, so use at most %lld connections here",
            need, need - 16, strerror(errno), (long long)cur.rlim_max, (long long)cur.rlim_max - 16);
    }
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "loadgen: hard time limit reached, exiting\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

/* ------------------------------------------------------------------ main loop */

static int64_t t_phase_end, t_open_start, t_open_end, t_measure_start, t_measure_end;
static double cpu_m0, cpu_m1, cpu_u0, cpu_s0, cpu_u1, cpu_s1, srv_cpu0 = -1, srv_cpu1 = -1;
static long rss_before = -1, rss_after = -1, hwm_after = -1;
static int open_at_measure;

static void window_start(int64_t t) {
    struct rusage u;
    t_measure_start = t;
    cpu_m0 = cpu_seconds(&u, &cpu_u0, &cpu_s0);
    if (opt.server_pid) srv_cpu0 = proc_cpu_s(opt.server_pid);
}

static void window_stop(int64_t t) {
    struct rusage u;
    t_measure_end = t;
    cpu_m1 = cpu_seconds(&u, &cpu_u1, &cpu_s1);
    if (opt.server_pid) srv_cpu1 = proc_cpu_s(opt.server_pid);
}

static void begin_closing(int64_t t) {
    phase = P_CLOSING;
    t_phase_end = t + (int64_t)(opt.close_wait * 1e9);
    if (opt.mode == MODE_CONNECT) return; /* let running cycles finish */
    for (int i = 0; i < nconns; i++) {
        conn *c = &conns[i];
        if (dead(c)) continue;
        if (c->state != ST_OPEN) { /* still handshaking: just drop it */
            conn_end(c);
            continue;
        }
        if (!c->close_sent) queue_close_1000(c);
        flush(c);
    }
}

static void sweep_timeouts(int64_t t) {
    int64_t lim = (int64_t)(opt.timeout * 1e9);
    for (int i = 0; i < nconns; i++) {
        conn *c = &conns[i];
        if (dead(c)) continue;
        if ((c->state == ST_CONNECTING || c->state == ST_HS) && t - c->t0 > lim)
            conn_fail(c, E_HS_TIMEOUT);
        else if (opt.mode == MODE_CONNECT && c->state == ST_OPEN && t - c->t0 > lim)
            conn_fail(c, E_CYCLE_TIMEOUT);
    }
}

static int live_open(void) {
    int n = 0;
    for (int i = 0; i < nconns; i++)
        if (conns[i].state == ST_OPEN && !conns[i].close_sent) n++;
    return n;
}

static void run(void) {
    struct epoll_event evs[MAX_EVENTS];
    int64_t t = now_ns();
    int64_t next_sweep = t + 100000000LL;
    t_open_start = t;
    if (opt.mode == MODE_CONNECT) {
        if (opt.warmup > 0) {
            phase = P_WARMUP;
            t_phase_end = t + (int64_t)(opt.warmup * 1e9);
        } else {
            phase = P_MEASURE;
            window_start(t);
            t_phase_end = t + (int64_t)(opt.duration * 1e9);
        }
    } else {
        phase = P_CONNECTING;
        t_phase_end = t + (int64_t)(OPEN_PHASE_MAX_S * 1e9);
    }
    bool backoff = false;
    uint64_t seen_connect_errs = 0;
    int64_t refill_at = 0;
    while (phase != P_DONE) {
        t = now_ns();
        /* ---- phase transitions and connection starts */
        switch (phase) {
        case P_CONNECTING:
            while (opened < opt.connections && handshaking < opt.concurrency) conn_start(&conns[opened++], t);
            if ((opened == opt.connections && handshaking == 0) || t >= t_phase_end) {
                t_open_end = t;
                for (int i = 0; i < nconns; i++) /* past the open-phase limit: drop stragglers */
                    if (conns[i].state == ST_CONNECTING || conns[i].state == ST_HS) conn_fail(&conns[i], E_HS_TIMEOUT);
                if (live == 0) { /* nothing to measure: report the failures at once */
                    window_start(t);
                    window_stop(t);
                    phase = P_DONE;
                    continue;
                }
                if (opt.mode == MODE_ECHO) {
                    phase = P_WARMUP;
                    t_phase_end = t + (int64_t)(opt.warmup * 1e9);
                    for (int i = 0; i < nconns; i++) {
                        conn *c = &conns[i];
                        if (c->state != ST_OPEN || c->close_sent) continue;
                        for (int k = 0; k < opt.inflight; k++) queue_message(c, t);
                        flush(c);
                    }
                } else {
                    phase = P_HOLD;
                    t_phase_end = t + (int64_t)(opt.hold * 1e9);
                    window_start(t);
                }
                continue;
            }
            break;
        case P_WARMUP:
            if (t >= t_phase_end) {
                phase = P_MEASURE;
                window_start(t);
                t_phase_end = t + (int64_t)(opt.duration * 1e9);
                if (opt.mode == MODE_ECHO) open_at_measure = live_open();
                continue;
            }
            break;
        case P_MEASURE:
            if (t >= t_phase_end) {
                window_stop(t);
                if (opt.server_pid) {
                    rss_after = proc_status_kib(opt.server_pid, "VmRSS");
                    hwm_after = proc_status_kib(opt.server_pid, "VmHWM");
                }
                begin_closing(t);
                continue;
            }
            break;
        case P_HOLD:
            if (t >= t_phase_end) {
                window_stop(t);
                open_at_measure = live_open();
                if (opt.server_pid) {
                    rss_after = proc_status_kib(opt.server_pid, "VmRSS");
                    hwm_after = proc_status_kib(opt.server_pid, "VmHWM");
                }
                begin_closing(t);
                continue;
            }
            break;
        case P_CLOSING:
            if (live == 0 || t >= t_phase_end) {
                for (int i = 0; i < nconns; i++) {
                    conn *c = &conns[i];
                    if (dead(c)) continue;
                    if (opt.mode == MODE_CONNECT) conn_end(c); /* an unfinished cycle cut by the end */
                    else conn_fail(c, E_CLOSE_UNCLEAN);
                }
                phase = P_DONE;
                continue;
            }
            break;
        }
        if (opt.mode == MODE_CONNECT && (phase == P_WARMUP || phase == P_MEASURE)) {
            /* after a failed connect (nothing listening, out of ports...) pause 10 ms: don't spin */
            if (st.err[E_CONNECT] != seen_connect_errs) {
                seen_connect_errs = st.err[E_CONNECT];
                refill_at = t + 10000000LL;
            }
            if (t >= refill_at)
                while (nfree > 0) conn_start(&conns[free_list[--nfree]], t);
            backoff = t < refill_at;
        }
        /* ---- wait */
        int64_t until = t_phase_end - t;
        int timeout_ms = until <= 0 ? 0 : (int)((until + 999999) / 1000000);
        if (timeout_ms > 100) timeout_ms = 100;
        if (backoff) {
            int64_t b = (refill_at - t + 999999) / 1000000;
            if (b < timeout_ms) timeout_ms = (int)(b < 1 ? 1 : b);
        }
        int n = epoll_wait(ep, evs, MAX_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            uint32_t idx = (uint32_t)evs[i].data.u64;
            uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
            conn *c = &conns[idx];
            if (dead(c) || c->gen != gen) continue;
            on_event(c, evs[i].events);
        }
        t = now_ns();
        if (t >= next_sweep) {
            sweep_timeouts(t);
            next_sweep = t + 100000000LL;
        }
    }
}

/* ------------------------------------------------------------------ report */

static uint64_t err_total(void) {
    uint64_t s = 0;
    for (int i = 0; i < E_COUNT; i++) s += st.err[i];
    return s;
}

static void print_errors_human(void) {
    fprintf(hout, "errors:       %llu", (unsigned long long)err_total());
    bool first = true;
    for (int i = 0; i < E_COUNT; i++)
        if (st.err[i]) {
            fprintf(hout, "%s%s %llu", first ? " (" : ", ", err_names[i], (unsigned long long)st.err[i]);
            first = false;
        }
    fprintf(hout, "%s\n", first ? "" : ")");
}

static void print_errors_json(void) {
    printf("\"errors\":{\"total\":%llu", (unsigned long long)err_total());
    for (int i = 0; i < E_COUNT; i++) printf(",\"%s\":%llu", err_names[i], (unsigned long long)st.err[i]);
    printf("}");
}

static void report(double total_cpu, double total_wall) {
    double win = (t_measure_end - t_measure_start) / 1e9;
    if (win <= 0) win = 1e-9;
    double cpu_win = cpu_m1 - cpu_m0;
    bool have_win = t_measure_end - t_measure_start > 1000000; /* at least 1 ms */
    double cpu_pct = have_win ? 100.0 * cpu_win / win : 0;
    double srv_pct = (have_win && srv_cpu0 >= 0 && srv_cpu1 >= 0) ? 100.0 * (srv_cpu1 - srv_cpu0) / win : -1;
    const char *mname = opt.mode == MODE_ECHO ? "echo" : opt.mode == MODE_CONNECT ? "connect" : "idle";

    fprintf(hout, "target:       ws://127.0.0.1:%d%s  mode %s\n", opt.port, opt.path, mname);
    if (opt.mode == MODE_ECHO) {
        double mps = st.msgs / win, mbps = (double)st.msgs * opt.size / win / 1e6;
        fprintf(hout, "setup:        %d connections, %d in flight each, %u-byte %s messages%s\n", opt.connections,
                opt.inflight, opt.size, opt.text ? "text" : "binary", opt.verify_all ? ", full verify" : "");
        fprintf(hout, "connected:    %llu/%d in %.2f s, %d open when counting started\n",
                (unsigned long long)st.established, opt.connections, (t_open_end - t_open_start) / 1e9,
                open_at_measure);
        fprintf(hout, "window:       %.2f s after %.1f s warm-up: %llu echoes\n", win, opt.warmup,
                (unsigned long long)st.msgs);
        fprintf(hout, "throughput:   %.0f msg/s, %.2f MB/s of payload echoed\n", mps, mbps);
        fprintf(hout, "latency us:   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
                h_quantile(&lat, 0.5) / 1e3, h_quantile(&lat, 0.9) / 1e3, h_quantile(&lat, 0.99) / 1e3,
                h_quantile(&lat, 0.999) / 1e3, lat.max / 1e3, lat.n ? lat.sum / lat.n / 1e3 : 0.0);
    } else if (opt.mode == MODE_CONNECT) {
        fprintf(hout, "setup:        concurrency %d, %.1f s warm-up\n", opt.concurrency, opt.warmup);
        fprintf(hout, "window:       %.2f s: %llu handshakes, %llu full cycles (%llu attempts in all)\n", win,
                (unsigned long long)st.hs_window, (unsigned long long)st.cycles_window,
                (unsigned long long)st.connect_attempts);
        fprintf(hout, "rate:         %.0f handshakes/s, %.0f cycles/s\n", st.hs_window / win, st.cycles_window / win);
        fprintf(hout, "cycle us:     p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", h_quantile(&lat, 0.5) / 1e3,
                h_quantile(&lat, 0.9) / 1e3, h_quantile(&lat, 0.99) / 1e3, lat.max / 1e3);
        fprintf(hout, "handshake us: p50 %.1f  p99 %.1f  max %.1f\n", h_quantile(&hs_lat, 0.5) / 1e3,
                h_quantile(&hs_lat, 0.99) / 1e3, hs_lat.max / 1e3);
    } else {
        fprintf(hout, "connected:    %llu/%d in %.2f s (concurrency %d), held %.1f s, %d still open at the end\n",
                (unsigned long long)st.established, opt.connections, (t_open_end - t_open_start) / 1e9,
                opt.concurrency, win, open_at_measure);
    }
    if (opt.mode == MODE_IDLE || st.pings || st.unexpected_msgs)
        fprintf(hout, "server sent:  %llu pings (%llu pongs sent back), %llu unexpected data messages\n",
                (unsigned long long)st.pings, (unsigned long long)st.pongs_sent,
                (unsigned long long)st.unexpected_msgs);
    if (opt.server_pid) {
        fprintf(hout, "server:       pid %d", opt.server_pid);
        if (srv_pct >= 0) fprintf(hout, ", cpu %.1f%% of one core in the window", srv_pct);
        fprintf(hout, ", VmRSS %ld KiB before -> %ld KiB after (VmHWM %ld KiB)\n", rss_before, rss_after, hwm_after);
        if (opt.mode == MODE_IDLE && open_at_measure > 0 && rss_before >= 0 && rss_after >= 0)
            fprintf(hout, "per conn:     %.2f KiB of server RSS per idle connection (%d connections)\n",
                    (double)(rss_after - rss_before) / open_at_measure, open_at_measure);
    }
    print_errors_human();
    if (opt.mode != MODE_CONNECT)
        fprintf(hout, "close:        %llu closed cleanly (close frames both ways, then TCP close)\n",
                (unsigned long long)st.clean_closes);
    fprintf(hout, "client cpu:   %.2f s user + %.2f s sys in the %.2f s window = %.1f%% of one core"
                  " (whole run %.2f s cpu / %.2f s wall)\n",
            cpu_u1 - cpu_u0, cpu_s1 - cpu_s0, win, cpu_pct, total_cpu, total_wall);

    if (!opt.json) return;
    printf("{\"mode\":\"%s\",\"url\":\"ws://127.0.0.1:%d%s\",", mname, opt.port, opt.path);
    printf("\"window_s\":%.3f,", win);
    if (opt.mode == MODE_ECHO) {
        printf("\"connections\":%d,\"connected\":%llu,\"open_at_measure\":%d,\"inflight\":%d,\"size\":%u,"
               "\"text\":%s,\"warmup_s\":%.3f,\"messages\":%llu,\"messages_per_s\":%.1f,\"mb_per_s\":%.3f,",
               opt.connections, (unsigned long long)st.established, open_at_measure, opt.inflight, opt.size,
               opt.text ? "true" : "false", opt.warmup, (unsigned long long)st.msgs, st.msgs / win,
               (double)st.msgs * opt.size / win / 1e6);
        printf("\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},",
               h_quantile(&lat, 0.5) / 1e3, h_quantile(&lat, 0.9) / 1e3, h_quantile(&lat, 0.99) / 1e3,
               h_quantile(&lat, 0.999) / 1e3, lat.max / 1e3, lat.n ? lat.sum / lat.n / 1e3 : 0.0);
    } else if (opt.mode == MODE_CONNECT) {
        printf("\"concurrency\":%d,\"warmup_s\":%.3f,\"handshakes\":%llu,\"handshakes_per_s\":%.1f,"
               "\"cycles\":%llu,\"cycles_per_s\":%.1f,",
               opt.concurrency, opt.warmup, (unsigned long long)st.hs_window, st.hs_window / win,
               (unsigned long long)st.cycles_window, st.cycles_window / win);
        printf("\"cycle_latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f},",
               h_quantile(&lat, 0.5) / 1e3, h_quantile(&lat, 0.9) / 1e3, h_quantile(&lat, 0.99) / 1e3, lat.max / 1e3);
        printf("\"handshake_latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},", h_quantile(&hs_lat, 0.5) / 1e3,
               h_quantile(&hs_lat, 0.99) / 1e3, hs_lat.max / 1e3);
    } else {
        printf("\"connections\":%d,\"connected\":%llu,\"open_at_end\":%d,\"hold_s\":%.3f,",
               opt.connections, (unsigned long long)st.established, open_at_measure, win);
    }
    if (opt.mode != MODE_CONNECT) printf("\"clean_closes\":%llu,", (unsigned long long)st.clean_closes);
    printf("\"pings\":%llu,\"pongs_sent\":%llu,\"unexpected_messages\":%llu,", (unsigned long long)st.pings,
           (unsigned long long)st.pongs_sent, (unsigned long long)st.unexpected_msgs);
    if (opt.server_pid) {
        printf("\"server\":{\"pid\":%d,\"cpu_percent\":", opt.server_pid);
        if (srv_pct >= 0) printf("%.1f", srv_pct);
        else printf("null");
        printf(",\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"hwm_after_kib\":%ld", rss_before, rss_after,
               hwm_after);
        if (opt.mode == MODE_IDLE && open_at_measure > 0 && rss_before >= 0 && rss_after >= 0)
            printf(",\"kib_per_connection\":%.3f", (double)(rss_after - rss_before) / open_at_measure);
        printf("},");
    }
    print_errors_json();
    printf(",\"client_cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f,\"percent_of_core\":%.1f,\"run_cpu_s\":%.3f,"
           "\"run_wall_s\":%.3f}}\n",
           cpu_u1 - cpu_u0, cpu_s1 - cpu_s0, cpu_pct, total_cpu, total_wall);
}

/* ------------------------------------------------------------------ main */

static void self_test(void) {
    char acc[29];
    ws_accept_for("dGhlIHNhbXBsZSBub25jZQ==", acc); /* RFC 6455 section 1.3 */
    if (strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0) die("self-test failed: Sec-WebSocket-Accept");
    for (uint64_t v = 1; v < (1ULL << 40); v = v * 3 + 1) {
        uint64_t w, lo = h_low(h_index(v), &w);
        if (v < lo || v >= lo + w) die("self-test failed: histogram bucket for %llu", (unsigned long long)v);
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    hout = opt.json ? stderr : stdout;
    self_test();
    signal(SIGPIPE, SIG_IGN);

    if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state) rng_state = (uint64_t)now_ns();
    rng_state |= 1;

    nconns = opt.mode == MODE_CONNECT ? opt.concurrency : opt.connections;
    raise_nofile(nconns + 16); /* stdio, epoll, /proc reads */

    conns = calloc((size_t)nconns, sizeof *conns);
    ts_pool = calloc((size_t)nconns * (size_t)opt.inflight, sizeof *ts_pool);
    payload = malloc((size_t)opt.size + 8);
    if (!conns || !ts_pool || !payload) die("out of memory");
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conns[i].ts = ts_pool + (size_t)i * opt.inflight;
    }
    if (opt.mode == MODE_CONNECT) {
        free_list = malloc(sizeof(int) * (size_t)nconns);
        if (!free_list) die("out of memory");
        for (int i = nconns - 1; i >= 0; i--) free_list[nfree++] = i;
    }
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (uint32_t i = 0; i < opt.size; i++) payload[i] = opt.text ? (uint8_t)alnum[i % 36] : (uint8_t)rng64();

    request_prefix_len = (size_t)snprintf(request_prefix, sizeof request_prefix,
                                          "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                                          "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
                                          opt.path, opt.port);

    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)opt.port);
    inet_pton(AF_INET, "127.0.0.1", &target.sin_addr); /* the only address this tool ever connects to */
    init_ports();

    if (opt.server_pid) {
        rss_before = proc_status_kib(opt.server_pid, "VmRSS");
        if (rss_before < 0) die("cannot read /proc/%d/status", opt.server_pid);
    } else if (opt.mode == MODE_IDLE) {
        fprintf(stderr, "loadgen: note: no --server-pid, so no server RSS figures\n");
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1: %s", strerror(errno));

    double bound = OPEN_PHASE_MAX_S + opt.warmup + opt.duration + opt.hold + opt.close_wait + 15;
    signal(SIGALRM, on_alarm);
    alarm((unsigned)bound);

    struct rusage u;
    double cpu_start = cpu_seconds(&u, NULL, NULL);
    int64_t wall_start = now_ns();
    run();
    double total_cpu = cpu_seconds(&u, NULL, NULL) - cpu_start;
    double total_wall = (now_ns() - wall_start) / 1e9;
    alarm(0);
    report(total_cpu, total_wall);
    return err_total() ? 1 : 0;
}
