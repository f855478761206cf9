/*
 * loadgen: a WebSocket load generator for 127.0.0.1 only.
 *
 *   loadgen echo    [--url ws://127.0.0.1:PORT/PATH] [--connections C] [--inflight K] [--size S]
 *                   [--text] [--payload bytes|json] [--deflate] [--warmup W] [--duration D] [--count N]
 *                   [--server-pid PID] [--json]
 *   loadgen connect [--url ...] [--concurrency N] [--deflate] [--warmup W] [--duration D] [--json]
 *   loadgen idle    [--url ...] [--connections C] [--hold H] [--deflate] [--prime] [--server-pid PID]
 *                   [--json]
 *   loadgen soak    [--url ...] [--connections C] [--duration D] [--rate R] [--close-rate R]
 *                   [--kill-rate R] [--size MAX] [--hold H] [--server-pid PID] [--timeline FILE] [--json]
 *   loadgen fanout  [--url ...] [--connections C] [--source-addresses 127.0.0.2-127.0.0.9] [--warmup W]
 *                   [--duration D] [--grace G] [--server-pid PID] [--json]
 *
 * C11, one thread, epoll (edge-triggered), no dependencies beyond libc and zlib (permessage-deflate,
 * RFC 7692, with --deflate).
 * Build: cc -O2 -o loadgen loadgen.c -lz
 *
 * Every run is bounded: at most 20000 connections (fanout: 200000), --duration <= 120 s (soak: <= 3600 s), --hold <= 120 s,
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
#include <ctype.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------------ limits */

#define MAX_CONNECTIONS 20000
#define MAX_FANOUT_CONNECTIONS 200000 /* fanout: spread over --source-addresses (~28k ports each) */
#define MAX_SOURCE_ADDRESSES 64
#define FANOUT_OPEN_MAX_S 150.0 /* fanout: longest time allowed to open all connections */
#define BC_SLOTS 16384           /* fanout: broadcasts tracked (by sequence number modulo this) */
#define MAX_DURATION 120.0
#define MAX_SOAK_DURATION 3600.0
#define SOAK_DEFAULT_SIZE 70000u /* soak: largest message; sizes vary from 0 up to it */
#define SOAK_DEFAULT_INFLIGHT 4  /* soak: most messages in flight on one connection */
#define MAX_RATE 100000.0        /* soak: messages, closes or kills per second */
#define MAX_HOLD 120.0
#define MAX_WARMUP 60.0
#define MAX_SIZE (16u * 1024u * 1024u)
#define MAX_INFLIGHT 1024
#define OPEN_PHASE_MAX_S 60.0  /* echo/idle: longest time allowed to open all connections */
#define RBUF_SIZE (256 * 1024) /* one read buffer shared by all connections */
#define HS_BUF 4096            /* handshake response buffer (per connection, while handshaking) */
#define MAX_EVENTS 1024
#define JSON_MIN_SIZE 33       /* {"seq":"Aa","items":[],"note":""} */
#define ZBUF_SIZE (64 * 1024)  /* inflate output chunk, shared by all connections */

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

enum { MODE_ECHO, MODE_CONNECT, MODE_IDLE, MODE_SOAK, MODE_FANOUT };
enum { PAYLOAD_BYTES, PAYLOAD_JSON };

#define DEFAULT_DEFLATE_OFFER "permessage-deflate; client_max_window_bits"

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
    int payload;         /* PAYLOAD_BYTES or PAYLOAD_JSON */
    bool deflate;        /* offer permessage-deflate and require it */
    char deflate_offer[256];
    int deflate_level;   /* zlib level of our compressor */
    bool prime;          /* idle: one echoed message per connection before the hold */
    bool deflate_once;   /* compress the payload once; splice the sequence bytes in per message */
    /* soak */
    double rate;         /* echo messages per second, over all connections */
    double close_rate;   /* clean closes (1000) per second; the slot reconnects */
    double kill_rate;    /* connections dropped without a close frame per second; the slot reconnects */
    char timeline[1024]; /* CSV of the server's RSS and fds, one line a second */
    bool size_set, inflight_set, duration_set, hold_set;
    uint64_t count;      /* echo: send exactly this many messages, then stop (0: no limit) */
    /* fanout */
    struct in_addr sources[MAX_SOURCE_ADDRESSES]; /* local addresses to bind, in turn (127.x only) */
    int nsources;
    double grace;        /* seconds after the window for the window's broadcasts to arrive */
    double window_at;    /* fanout: the window starts at this wall-clock time (s since the epoch), if open by then */
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
    .payload = PAYLOAD_BYTES,
    .deflate_offer = DEFAULT_DEFLATE_OFFER,
    .deflate_level = 6,
    .rate = 500,
    .close_rate = 20,
    .kill_rate = 10,
    .grace = 10,
};

static FILE *hout; /* human-readable output: stdout, or stderr with --json */

static void usage(FILE *f) {
    fprintf(f,
            "usage: loadgen MODE [options]\n"
            "modes:\n"
            "  echo      C connections each keep K messages of S bytes in flight, waiting for echoes\n"
            "  connect   N concurrent loops of connect, upgrade, close(1000), wait for close + TCP close\n"
            "  idle      open C connections, hold them idle (answering pings), report server RSS\n"
            "  soak      keep C connections open for D seconds with churn (clean closes and abrupt drops,\n"
            "            each followed by a reconnect) and a trickle of echoes of varied size, every byte\n"
            "            checked; then hold all C idle, then close them all\n"
            "  fanout    open C connections (from several source addresses), send nothing but pongs, and\n"
            "            receive the server's broadcasts, text messages 't=<publish ns, CLOCK_REALTIME>\n"
            "            seq=<n> ...': per-delivery latency, deliveries and fan-out time per broadcast\n"
            "options:\n"
            "  --url ws://127.0.0.1:PORT/PATH   target (default ws://127.0.0.1:9100/echo); only 127.0.0.1\n"
            "                                   (or 'localhost', which means 127.0.0.1) is accepted\n"
            "  --connections C     echo: default 64, idle: default 1000; max %d\n"
            "  --inflight K        echo: messages in flight per connection (default 1, max %d)\n"
            "  --size S            echo: payload bytes (default 32, max %u)\n"
            "  --text              echo: text frames with an ASCII payload (default binary)\n"
            "  --payload P         echo (and idle --prime): 'bytes' (default: random bytes, or an ASCII\n"
            "                      pattern with --text) or 'json' (a varied JSON text of exactly S bytes,\n"
            "                      S >= %d, beginning {\"seq\":\"Xx\", where Xx carries the sequence check)\n"
            "  --verify-all        echo: compare every payload byte (default: length, opcode, sequence bytes)\n"
            "  --deflate           offer permessage-deflate (RFC 7692) and fail the handshake if the server\n"
            "                      declines; messages are then compressed, and compressed echoes inflated\n"
            "  --deflate-offer X   the Sec-WebSocket-Extensions value to offer (implies --deflate; default\n"
            "                      '" DEFAULT_DEFLATE_OFFER "')\n"
            "  --deflate-level L   zlib level of our compressor, 0-9 (default 6)\n"
            "  --deflate-once      (implies --deflate) compress the payload once, and splice each message's\n"
            "                      two sequence bytes in as stored blocks: valid deflate that uses no\n"
            "                      context takeover, and a copy instead of a deflate per message for us\n"
            "  --prime             idle: each connection sends one message (--size, --payload) and waits for\n"
            "                      its echo before the hold, so the server holds per-connection state\n"
            "  --warmup W          echo/connect: seconds before counting (default 2, max %g)\n"
            "  --duration D        echo/connect: seconds counted (default 10, max %g)\n"
            "  --count N           echo, with --warmup 0: send exactly N messages over all connections, and end\n"
            "                      once their N echoes are in (--duration stays the limit)\n"
            "  --hold H            idle: seconds to hold the idle connections (default 5, max %g)\n"
            "  --concurrency N     connect: concurrent cycles (default 16); echo/idle: handshakes in\n"
            "                      progress at once while opening (default 100); max %d\n"
            "  --timeout T         seconds allowed for one handshake / one connect cycle (default 5)\n"
            "  --close-wait T      seconds to wait for the servers' closes at the end (default 5 + C/1000,\n"
            "                      max 30); a connection still open then counts as close_unclean\n"
            "  --server-pid PID    read VmRSS/VmHWM and CPU time of PID from /proc\n"
            "  --json              print one JSON object on stdout (human-readable lines go to stderr)\n"
            "soak options (--connections default 1000, --duration default 60, max %g, --hold default 10,\n"
            "--size is the largest message, default %u; --inflight is the most per connection, default %d):\n"
            "  --rate R            echo messages per second over all connections (default 500)\n"
            "  --close-rate R      clean closes per second: the connection waits for its echoes, sends\n"
            "                      close(1000), waits for the server's close; then the slot reconnects (default 20)\n"
            "  --kill-rate R       abrupt drops per second (default 10), six kinds in turn: RST (SO_LINGER 0);\n"
            "                      close() without a close frame (FIN); one more message, then RST; one more\n"
            "                      message, then FIN; half a frame, then FIN; RST, then a reconnect that sends\n"
            "                      half the upgrade request and resets. Echoes they lose are counted apart\n"
            "  --timeline FILE     with --server-pid: append one CSV line a second (time, phase, server RSS,\n"
            "                      server fds, open connections, messages sent/echoed, errors)\n"
            "fanout options (--connections default 1000, max %d; --warmup default 2, --duration default 10):\n"
            "  --source-addresses A[-B][,C...]  local addresses to bind, in turn (127.x.y.z only; a range\n"
            "                      varies the last byte): each has its own ~28k ports of ip_local_port_range\n"
            "  --grace G           seconds after the window for its broadcasts' deliveries (default 10, max 60)\n"
            "  --window-at T       start the window at wall-clock time T (seconds since the epoch, at most 150 s\n"
            "                      ahead) rather than --warmup s after the last connection opened, if that is\n"
            "                      later: several loadgens (one per server process) count the same seconds\n"
            "exit status: 0 if no errors, 1 if the run counted errors, 2 on bad usage or setup failure\n",
            MAX_CONNECTIONS, MAX_INFLIGHT, MAX_SIZE, JSON_MIN_SIZE, MAX_WARMUP, MAX_DURATION, MAX_HOLD,
            MAX_CONNECTIONS, MAX_SOAK_DURATION, SOAK_DEFAULT_SIZE, SOAK_DEFAULT_INFLIGHT, MAX_FANOUT_CONNECTIONS);
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

/* --source-addresses: "127.0.0.2-127.0.0.9", "127.0.0.2,127.0.0.3", or both mixed; loopback only. */
static void parse_sources(const char *v) {
    char buf[1024];
    if (strlen(v) >= sizeof buf) die("--source-addresses too long");
    strcpy(buf, v);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(item, '-');
        if (dash) *dash = 0;
        struct in_addr lo, hi;
        if (inet_pton(AF_INET, item, &lo) != 1) die("--source-addresses: bad address '%s'", item);
        hi = lo;
        if (dash && inet_pton(AF_INET, dash + 1, &hi) != 1) die("--source-addresses: bad address '%s'", dash + 1);
        uint32_t a = ntohl(lo.s_addr), b = ntohl(hi.s_addr);
        if ((a >> 24) != 127 || (b >> 24) != 127) die("--source-addresses: only loopback (127.x.y.z) addresses");
        if (b < a || (a >> 8) != (b >> 8)) die("--source-addresses: a range varies the last byte only, upwards");
        for (uint32_t x = a; x <= b; x++) {
            if (opt.nsources >= MAX_SOURCE_ADDRESSES) die("--source-addresses: at most %d", MAX_SOURCE_ADDRESSES);
            opt.sources[opt.nsources++].s_addr = htonl(x);
        }
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
            else if (!strcmp(a, "soak")) opt.mode = MODE_SOAK;
            else if (!strcmp(a, "fanout")) opt.mode = MODE_FANOUT;
            else die("unknown mode '%s' (echo, connect, idle, soak, fanout)", a);
            continue;
        }
        /* flags without a value */
        if (!strcmp(a, "--text")) { opt.text = true; continue; }
        if (!strcmp(a, "--binary")) { opt.text = false; continue; }
        if (!strcmp(a, "--json")) { opt.json = true; continue; }
        if (!strcmp(a, "--verify-all")) { opt.verify_all = true; continue; }
        if (!strcmp(a, "--deflate")) { opt.deflate = true; continue; }
        if (!strcmp(a, "--prime")) { opt.prime = true; continue; }
        if (!strcmp(a, "--deflate-once")) { opt.deflate = opt.deflate_once = true; continue; }
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
        else if (!strcmp(name, "--connections")) opt.connections = (int)parse_num(name, val, 1, MAX_FANOUT_CONNECTIONS);
        else if (!strcmp(name, "--inflight")) opt.inflight = (int)parse_num(name, val, 1, MAX_INFLIGHT), opt.inflight_set = true;
        else if (!strcmp(name, "--size")) opt.size = (uint32_t)parse_num(name, val, 0, MAX_SIZE), opt.size_set = true;
        else if (!strcmp(name, "--duration")) opt.duration = parse_num(name, val, 0.1, MAX_SOAK_DURATION), opt.duration_set = true;
        else if (!strcmp(name, "--warmup")) opt.warmup = parse_num(name, val, 0, MAX_WARMUP);
        else if (!strcmp(name, "--hold")) opt.hold = parse_num(name, val, 0, MAX_HOLD), opt.hold_set = true;
        else if (!strcmp(name, "--rate")) opt.rate = parse_num(name, val, 0, MAX_RATE);
        else if (!strcmp(name, "--count")) opt.count = (uint64_t)parse_num(name, val, 1, 1e12);
        else if (!strcmp(name, "--close-rate")) opt.close_rate = parse_num(name, val, 0, MAX_RATE);
        else if (!strcmp(name, "--kill-rate")) opt.kill_rate = parse_num(name, val, 0, MAX_RATE);
        else if (!strcmp(name, "--timeline")) {
            if (strlen(val) >= sizeof opt.timeline) die("--timeline path too long");
            strcpy(opt.timeline, val);
        }
        else if (!strcmp(name, "--source-addresses")) parse_sources(val);
        else if (!strcmp(name, "--grace")) opt.grace = parse_num(name, val, 0, 60);
        else if (!strcmp(name, "--window-at")) {
            opt.window_at = parse_num(name, val, 0, 1e11);
            double ahead = opt.window_at - (double)time(NULL);
            if (ahead < -1 || ahead > FANOUT_OPEN_MAX_S) die("--window-at must be within %g s from now", FANOUT_OPEN_MAX_S);
        }
        else if (!strcmp(name, "--timeout")) opt.timeout = parse_num(name, val, 0.1, 30);
        else if (!strcmp(name, "--close-wait")) opt.close_wait = parse_num(name, val, 0, 30);
        else if (!strcmp(name, "--concurrency")) opt.concurrency = (int)parse_num(name, val, 1, MAX_CONNECTIONS);
        else if (!strcmp(name, "--server-pid")) opt.server_pid = (int)parse_num(name, val, 1, 4194304);
        else if (!strcmp(name, "--deflate-level")) opt.deflate_level = (int)parse_num(name, val, 0, 9);
        else if (!strcmp(name, "--payload")) {
            if (!strcmp(val, "bytes")) opt.payload = PAYLOAD_BYTES;
            else if (!strcmp(val, "json")) opt.payload = PAYLOAD_JSON;
            else die("--payload must be 'bytes' or 'json', got '%s'", val);
        } else if (!strcmp(name, "--deflate-offer")) {
            if (strlen(val) >= sizeof opt.deflate_offer) die("--deflate-offer too long");
            for (const char *q = val; *q; q++)
                if ((unsigned char)*q < 32 || *q == 127) die("bad character in --deflate-offer");
            strcpy(opt.deflate_offer, val);
            opt.deflate = true;
        }
        else die("unknown option '%s' (see --help)", name);
    }
    if (opt.mode < 0) die("missing mode (echo, connect, idle, soak, fanout)");
    if (opt.mode != MODE_FANOUT && opt.connections > MAX_CONNECTIONS) die("--connections must be in [1, %d]", MAX_CONNECTIONS);
    if (opt.mode != MODE_FANOUT && opt.nsources) die("--source-addresses is for fanout mode");
    if (opt.mode == MODE_FANOUT && (opt.deflate || opt.prime || opt.count || opt.payload == PAYLOAD_JSON))
        die("fanout mode sends nothing but pongs and close frames: no --deflate, --prime, --count or --payload");
    if (opt.mode != MODE_SOAK && opt.duration > MAX_DURATION) die("--duration must be in [0.1, %g]", MAX_DURATION);
    if (opt.prime && opt.mode != MODE_IDLE) die("--prime is for idle mode");
    if (opt.count && (opt.mode != MODE_ECHO || opt.warmup != 0)) die("--count is for echo mode, with --warmup 0");
    if (opt.mode == MODE_SOAK) {
        if (opt.deflate || opt.payload == PAYLOAD_JSON || opt.text)
            die("soak mode sends text and binary messages of varied size, uncompressed: no --deflate, --payload or --text");
        if (!opt.size_set) opt.size = SOAK_DEFAULT_SIZE;
        if (!opt.inflight_set) opt.inflight = SOAK_DEFAULT_INFLIGHT;
        if (!opt.duration_set) opt.duration = 60;
        if (!opt.hold_set) opt.hold = 10;
        if (opt.connections < 0) opt.connections = 1000;
        if (opt.timeline[0] && !opt.server_pid) die("--timeline needs --server-pid");
        opt.verify_all = true; /* every byte of every echo */
    } else if (opt.timeline[0] || opt.rate != 500 || opt.close_rate != 20 || opt.kill_rate != 10) {
        die("--timeline, --rate, --close-rate and --kill-rate are for soak mode");
    }
    if (opt.payload == PAYLOAD_JSON) {
        if (opt.mode == MODE_CONNECT) die("--payload is for echo and idle --prime");
        if (opt.size < JSON_MIN_SIZE) die("--payload json needs --size >= %d", JSON_MIN_SIZE);
        opt.text = true; /* JSON goes in text frames */
    }
    if (opt.connections < 0) opt.connections = opt.mode == MODE_IDLE || opt.mode == MODE_FANOUT ? 1000 : 64;
    if (opt.concurrency < 0) opt.concurrency = opt.mode == MODE_CONNECT ? 16 : 100;
    if (opt.close_wait < 0) /* a slow server may close ~1000 connections/s */
        opt.close_wait = opt.mode == MODE_CONNECT ? 5 : 5 + opt.connections / 1000.0;
    if (opt.close_wait > 30) opt.close_wait = 30;
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
    E_DECLINED,      /* --deflate: a valid 101 that does not accept permessage-deflate */
    E_INFLATE,       /* --deflate: a compressed message that does not inflate */
    E_PRIME_TIMEOUT, /* idle --prime: no echo of the priming message in time */
    E_ECHO_TIMEOUT,  /* soak: no echo within --timeout (the connection is then dropped) */
    E_COUNT
};
static const char *err_names[E_COUNT] = {"connect",       "handshake",        "handshake_timeout", "bad_frame",
                                         "mismatch",      "closed",           "io",
                                         "close_unclean", "cycle_timeout",    "deflate_declined",
                                         "inflate",       "prime_timeout",    "echo_timeout"};

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
    uint8_t m_op, m_sa, m_sb; /* m_sa/m_sb: the bytes at seq_pa/seq_pb of the (inflated) payload */
    uint64_t m_len;
    /* permessage-deflate, as agreed in the handshake */
    bool pmd;              /* negotiated */
    bool z_cnct, z_snct;   /* client_no_context_takeover, server_no_context_takeover */
    uint8_t z_cbits, z_sbits; /* our compressor's window, the server's */
    bool m_z;              /* the message being received is compressed (RSV1) */
    bool z_end;            /* its deflate stream ended (BFINAL): ignore the rest */
    /* echo bookkeeping (fanout: seq_recv is the last broadcast's sequence number) */
    uint64_t seq_sent, seq_recv;
    /* fanout: the start of the message being received ("t=... seq=..."), NUL-terminated */
    uint8_t fbn;
    char fb[64];
    /* soak */
    bool want_close;  /* close cleanly once the echoes in flight are in; send nothing new */
    bool killing;     /* we drop this connection on purpose: its echoes in flight are lost_killed */
    int64_t t_close;  /* when we sent our close frame */
    int64_t *ts; /* ring of send times, opt.inflight entries */
    struct soak_msg *sm; /* soak: ring of the messages in flight, opt.inflight entries */
    uint8_t next_open;   /* soak: OPEN_NORMAL, or OPEN_ABORT (send half the upgrade request, reset) */
    /* times */
    int64_t t0;  /* connect() started */
    /* handshake */
    char *hs;
    uint32_t hs_len;
    char accept[29];
    /* output */
    uint8_t *ob;
    size_t ob_off, ob_len, ob_cap;
    /* zlib streams, allocated on first use, freed with the connection */
    z_stream *zd, *zi;
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
static uint64_t seq_pa, seq_pb; /* payload offsets of the two bytes that carry the sequence number */
static uint8_t zbuf[ZBUF_SIZE]; /* inflate output */
static uint8_t *zout;           /* deflate output of one message */
static size_t zout_cap;
static uint8_t rbuf[RBUF_SIZE];
static char request_prefix[1800];
static size_t request_prefix_len;

enum { P_CONNECTING, P_PRIME, P_WARMUP, P_MEASURE, P_HOLD, P_CLOSING, P_DONE, P_SOAK, P_DRAIN, P_GRACE };
static const char *phase_names[] = {"connecting", "prime", "warmup", "measure", "hold", "closing", "done", "soak", "drain",
                                    "grace"};
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
    uint64_t prime_sent, primed; /* idle --prime: priming messages sent, their echoes verified */
    /* permessage-deflate: payload bytes of compressed messages, before and after compression */
    uint64_t z_out_msgs, z_out_raw, z_out_wire, z_in_msgs, z_in_raw, z_in_wire;
    uint64_t z_in_plain;    /* echoes the server sent uncompressed although deflate was agreed */
    uint64_t z_streams;     /* zlib streams allocated (deflate + inflate) */
    /* soak */
    uint64_t s_sent, s_sent_bytes, s_echoed, s_echoed_bytes, s_text, s_binary;
    uint64_t s_lost_killed; /* in flight on a connection we dropped on purpose */
    uint64_t s_lost_other;  /* in flight on a connection that ended any other way (each such end is an error) */
    uint64_t s_closes, s_kills[6], s_reopens, s_skipped;
    uint64_t s_inflight;    /* messages in flight now */
} st;

/* soak */
struct soak_msg {
    uint64_t id;  /* the whole run's message number: the payload is a function of it */
    uint32_t len;
    uint8_t op;
};
enum { OPEN_NORMAL, OPEN_ABORT };
enum { K_RST, K_FIN, K_SEND_RST, K_SEND_FIN, K_PARTIAL, K_HS_ABORT, K_COUNT };
static const char *kill_names[K_COUNT] = {"rst", "fin", "rst_after_send", "fin_after_send", "partial_frame",
                                          "handshake_abort"};
static uint64_t soak_next_id = 1;
static uint8_t *soak_buf; /* one message's payload, opt.size bytes */
static FILE *timeline_f;
static long s_rss_start = -1, s_rss_peak = -1, s_rss_hold0 = -1, s_rss_hold1 = -1;
static long s_fds_start = -1, s_fds_peak = -1, s_fds_hold = -1;
static int s_open_hold;
static char agreed[256];    /* the first Sec-WebSocket-Extensions response, for the report */

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

/* Append one masked client frame, with RSV1 if rsv1. seq >= 0 patches the payload bytes at
 * seq_pa/seq_pb for that sequence number. */
static void queue_frame(conn *c, uint8_t op, bool rsv1, const uint8_t *pl, size_t len, int64_t seq) {
    ob_reserve(c, len + 14);
    uint8_t *d = c->ob + c->ob_len;
    size_t h = 0;
    d[h++] = (uint8_t)(0x80 | (rsv1 ? 0x40 : 0) | op);
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
        o[seq_pa] = first_of((uint64_t)seq) ^ k[seq_pa & 3];
        o[seq_pb] = last_of((uint64_t)seq) ^ k[seq_pb & 3];
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
    if (opt.mode == MODE_SOAK && c->ob_cap > 16384) { /* 20000 connections must not each keep 128 KiB */
        free(c->ob);
        c->ob = NULL;
        c->ob_cap = 0;
    }
}

/* ------------------------------------------------------------------ permessage-deflate */

static void z_free(conn *c) {
    if (c->zd) {
        deflateEnd(c->zd);
        free(c->zd);
        c->zd = NULL;
    }
    if (c->zi) {
        inflateEnd(c->zi);
        free(c->zi);
        c->zi = NULL;
    }
}

/* Deflate one message's payload into zout with this connection's stream; returns the compressed
 * length without the final 00 00 ff ff (RFC 7692 section 7.2.1). */
static size_t deflate_message(conn *c, const uint8_t *in, size_t len) {
    if (zout_cap < 64) {
        free(zout);
        zout = malloc(64);
        if (!zout) die("out of memory");
        zout_cap = 64;
    }
    if (len == 0) { /* an empty stored block without its 00 00 ff ff (RFC 7692 7.2.3.6) */
        zout[0] = 0x00;
        st.z_out_msgs++;
        st.z_out_wire++;
        return 1;
    }
    if (!c->zd) { /* first compressed message on this connection */
        c->zd = calloc(1, sizeof *c->zd);
        if (!c->zd) die("out of memory");
        if (deflateInit2(c->zd, opt.deflate_level, Z_DEFLATED, -(int)c->z_cbits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            die("deflateInit2 failed (window bits %d)", c->z_cbits);
        st.z_streams++;
    }
    z_stream *z = c->zd;
    size_t need = deflateBound(z, (uLong)len) + 64; /* + the sync-flush marker and an empty block */
    if (zout_cap < need) {
        free(zout);
        zout = malloc(need);
        if (!zout) die("out of memory");
        zout_cap = need;
    }
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)len;
    size_t out = 0;
    for (;;) {
        z->next_out = zout + out;
        z->avail_out = (uInt)(zout_cap - out);
        int r = deflate(z, Z_SYNC_FLUSH);
        if (r != Z_OK && r != Z_BUF_ERROR) die("deflate failed (%d)", r);
        out = (size_t)(z->next_out - zout);
        if (z->avail_out > 0) break; /* all input consumed and flushed */
        uint8_t *nb = realloc(zout, zout_cap * 2);
        if (!nb) die("out of memory");
        zout = nb;
        zout_cap *= 2;
    }
    if (out < 4 || memcmp(zout + out - 4, "\x00\x00\xff\xff", 4) != 0) die("deflate: no sync-flush marker");
    if (c->z_cnct) deflateReset(z); /* client_no_context_takeover: the next message starts afresh */
    st.z_out_msgs++;
    st.z_out_raw += len;
    st.z_out_wire += out - 4;
    return out - 4;
}

static void msg_bytes(conn *c, const uint8_t *d, size_t n);
static void conn_fail(conn *c, int kind);
static void note(const char *fmt, ...);

/* Inflate a piece of a compressed message and check what comes out; false if the connection failed. */
static bool inflate_feed(conn *c, const uint8_t *in, size_t n) {
    if (c->z_end) return true; /* the stream ended (BFINAL) inside this message: ignore the rest */
    z_stream *z = c->zi;
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    for (;;) {
        z->next_out = zbuf;
        z->avail_out = sizeof zbuf;
        int r = inflate(z, Z_SYNC_FLUSH);
        size_t got = sizeof zbuf - z->avail_out;
        if (got) msg_bytes(c, zbuf, got);
        if (r == Z_STREAM_END) {
            c->z_end = true;
            return true;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) {
            note("inflate failed on a compressed message: %s", z->msg ? z->msg : "zlib error");
            conn_fail(c, E_INFLATE);
            return false;
        }
        if (z->avail_in == 0 && z->avail_out > 0) return true;
        if (r == Z_BUF_ERROR && got == 0) return true; /* no progress possible */
    }
}

/* --deflate-once: the payload's fixed parts [0,a), (a,b), (b,size) compressed once each, as
 * independent streams ending in a sync flush (a, b: the sequence byte offsets); one set per window. */
static struct {
    uint8_t *seg[3];
    size_t n[3];
} once[16];

static void once_prepare(int bits) {
    uint64_t a = seq_pa < seq_pb ? seq_pa : seq_pb, b = seq_pa < seq_pb ? seq_pb : seq_pa;
    uint64_t lo[3] = {0, a + 1, b + 1}, hi[3] = {a, b, opt.size};
    for (int k = 0; k < 3; k++) {
        if (a == b && k == 1) continue;
        size_t len = hi[k] > lo[k] ? (size_t)(hi[k] - lo[k]) : 0;
        if (len == 0) continue;
        z_stream z;
        memset(&z, 0, sizeof z);
        if (deflateInit2(&z, opt.deflate_level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            die("deflateInit2 failed (window bits %d)", bits);
        size_t cap = deflateBound(&z, (uLong)len) + 64;
        uint8_t *o = malloc(cap);
        if (!o) die("out of memory");
        z.next_in = payload + lo[k];
        z.avail_in = (uInt)len;
        z.next_out = o;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_SYNC_FLUSH) != Z_OK || z.avail_out == 0 || z.avail_in != 0) die("deflate failed");
        once[bits].seg[k] = o;
        once[bits].n[k] = cap - z.avail_out;
        deflateEnd(&z);
    }
}

/* One stored block holding n (1 or 2) literal bytes, at a byte boundary. */
static size_t stored_block(uint8_t *o, const uint8_t *v, size_t n) {
    o[0] = 0x00; /* BFINAL 0, BTYPE 00, then padding to the byte boundary */
    o[1] = (uint8_t)n;
    o[2] = 0;
    o[3] = (uint8_t)~n;
    o[4] = 0xff;
    memcpy(o + 5, v, n);
    return 5 + n;
}

/* The compressed payload for sequence seq, from the parts made by once_prepare; returns its
 * length without the final 00 00 ff ff. */
static size_t deflate_once_message(conn *c, uint64_t seq) {
    int bits = c->z_cbits;
    if (!once[bits].seg[0] && !once[bits].seg[1] && !once[bits].seg[2]) once_prepare(bits);
    uint64_t a = seq_pa < seq_pb ? seq_pa : seq_pb, b = seq_pa < seq_pb ? seq_pb : seq_pa;
    uint8_t va = a == seq_pa ? first_of(seq) : last_of(seq), vb = b == seq_pb ? last_of(seq) : first_of(seq);
    size_t need = once[bits].n[0] + once[bits].n[1] + once[bits].n[2] + 32;
    if (zout_cap < need) {
        free(zout);
        zout = malloc(need);
        if (!zout) die("out of memory");
        zout_cap = need;
    }
    size_t n = 0;
    bool last_stored = false;
    if (once[bits].n[0]) memcpy(zout, once[bits].seg[0], once[bits].n[0]), n = once[bits].n[0];
    if (a == b || b == a + 1) { /* one block for both bytes */
        uint8_t v[2] = {va, vb};
        n += stored_block(zout + n, v, a == b ? 1 : 2);
        last_stored = true;
    } else {
        n += stored_block(zout + n, &va, 1);
        memcpy(zout + n, once[bits].seg[1], once[bits].n[1]);
        n += once[bits].n[1];
        n += stored_block(zout + n, &vb, 1);
        last_stored = true;
    }
    if (once[bits].n[2]) {
        memcpy(zout + n, once[bits].seg[2], once[bits].n[2]);
        n += once[bits].n[2];
        last_stored = false;
    }
    /* RFC 7692 7.2.1: end with an empty stored block (00 00 00 ff ff), then drop its last 4 octets */
    if (last_stored) zout[n++] = 0x00;
    else n -= 4; /* a sync flush already ends in 00 00 ff ff */
    st.z_out_msgs++;
    st.z_out_raw += opt.size;
    st.z_out_wire += n;
    return n;
}

static uint64_t count_sent; /* echo --count: messages sent so far */

static void queue_message(conn *c, int64_t t) {
    if (opt.count) {
        if (count_sent >= opt.count) return;
        count_sent++;
    }
    uint64_t seq = c->seq_sent++;
    c->ts[seq % (uint64_t)opt.inflight] = t;
    uint8_t op = opt.text ? 1 : 2;
    if (!c->pmd) {
        queue_frame(c, op, false, payload, opt.size, (int64_t)seq);
        return;
    }
    if (opt.deflate_once && opt.size > 0) {
        queue_frame(c, op, true, zout, deflate_once_message(c, seq), -1);
        return;
    }
    /* the sequence bytes go into the plain text before compression (the echo checks use them
     * after inflating); verify_all skips these two offsets, so patching the shared copy is fine */
    if (opt.size > 0) {
        payload[seq_pa] = first_of(seq);
        payload[seq_pb] = last_of(seq);
    }
    size_t n = deflate_message(c, payload, opt.size);
    queue_frame(c, op, true, zout, n, -1);
}

static void queue_close(conn *c, const uint8_t *body, size_t len) {
    queue_frame(c, 8, false, body, len, -1);
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
    z_free(c);
    c->ob_off = c->ob_len = 0;
    if (opt.mode == MODE_SOAK) {
        uint64_t lost = c->seq_sent - c->seq_recv; /* echoes that will never come */
        if (c->killing) st.s_lost_killed += lost;
        else st.s_lost_other += lost;
        st.s_inflight -= lost;
        c->seq_recv = c->seq_sent;
        c->state = ST_FREE; /* the slot reconnects (soak and drain phases) */
        free_list[nfree++] = (int)(c - conns);
        free(c->ob);
        c->ob = NULL;
        c->ob_cap = 0;
    } else if (opt.mode == MODE_CONNECT) {
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

/* ---- soak: messages of varied size and kind whose bytes are a function of their number */

static inline uint64_t mix64(uint64_t z) { /* splitmix64 finalizer */
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Bytes [lo, lo + n) of message id: printable ASCII for text, any byte for binary. */
static void soak_gen(uint8_t *out, uint64_t id, bool text, uint64_t lo, size_t n) {
    uint64_t k = lo >> 3, seed = id * 0xD1B54A32D192ED03ULL;
    unsigned sh = (unsigned)(lo & 7);
    uint64_t w = mix64(seed ^ k);
    for (size_t i = 0; i < n; i++) {
        if (sh == 8) {
            w = mix64(seed ^ ++k);
            sh = 0;
        }
        uint8_t b = (uint8_t)(w >> (8 * sh++));
        out[i] = text ? (uint8_t)(0x20 + b % 95) : b;
    }
}

/* 60% 0-125 bytes (7-bit length), 30% 126-4096 (16-bit), 10% 4097-max (16- or 64-bit) */
static uint32_t soak_size(void) {
    uint64_t r = rng64() % 100;
    uint32_t lo = r < 60 ? 0 : r < 90 ? 126 : 4097, hi = r < 60 ? 125 : r < 90 ? 4096 : opt.size;
    if (hi > opt.size) hi = opt.size;
    if (lo > hi) lo = 0;
    return lo + (uint32_t)(rng64() % ((uint64_t)hi - lo + 1));
}

static void soak_send(conn *c, int64_t t) {
    uint64_t i = c->seq_sent++;
    struct soak_msg *m = &c->sm[i % (uint64_t)opt.inflight];
    m->id = soak_next_id++;
    m->len = soak_size();
    m->op = (rng64() & 1) ? 1 : 2;
    c->ts[i % (uint64_t)opt.inflight] = t;
    soak_gen(soak_buf, m->id, m->op == 1, 0, m->len);
    queue_frame(c, m->op, false, soak_buf, m->len, -1);
    st.s_sent++;
    st.s_sent_bytes += m->len;
    st.s_inflight++;
    if (m->op == 1) st.s_text++;
    else st.s_binary++;
    flush(c);
}

/* Does this piece of the echo being received match its message? */
static void soak_check_bytes(conn *c, const uint8_t *d, uint64_t lo, size_t n) {
    if (c->m_bad) return;
    if (c->seq_recv >= c->seq_sent) { /* an echo nobody asked for: message_done fails the connection */
        c->m_bad = true;
        return;
    }
    const struct soak_msg *m = &c->sm[c->seq_recv % (uint64_t)opt.inflight];
    if (lo + n > m->len) {
        c->m_bad = true;
        return;
    }
    uint8_t want[4096];
    for (size_t off = 0; off < n; off += sizeof want) {
        size_t k = n - off < sizeof want ? n - off : sizeof want;
        soak_gen(want, m->id, m->op == 1, lo + off, k);
        if (memcmp(want, d + off, k) != 0) {
            c->m_bad = true;
            return;
        }
    }
}

static void soak_message_done(conn *c, int64_t t) {
    if (c->seq_recv >= c->seq_sent) {
        st.unexpected_msgs++;
        conn_fail(c, E_BAD_FRAME);
        return;
    }
    uint64_t i = c->seq_recv++;
    const struct soak_msg *m = &c->sm[i % (uint64_t)opt.inflight];
    if (c->m_op != m->op || c->m_len != m->len || c->m_bad) st.err[E_MISMATCH]++;
    st.s_echoed++;
    st.s_echoed_bytes += c->m_len;
    st.s_inflight--;
    st.msgs_total++;
    h_add(&lat, t - c->ts[i % (uint64_t)opt.inflight]);
    if (c->want_close && !c->close_sent && c->seq_recv == c->seq_sent) { /* its last echo: now close */
        queue_close_1000(c);
        c->t_close = t;
    }
}

/* A clean close: no new messages; close(1000) once the echoes in flight are in. */
static void soak_close(conn *c, int64_t t) {
    c->want_close = true;
    st.s_closes++;
    if (c->seq_recv == c->seq_sent) {
        queue_close_1000(c);
        c->t_close = t;
        flush(c);
    }
}

static void set_rst(int fd) { /* close() then sends RST instead of FIN */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

/* Drop the connection without a close frame; its echoes in flight count as lost_killed. */
static void soak_kill(conn *c, int kind, int64_t t) {
    c->killing = true;
    st.s_kills[kind]++;
    if (kind == K_SEND_RST || kind == K_SEND_FIN) { /* one more message, gone before its echo can be */
        if (c->seq_sent - c->seq_recv < (uint64_t)opt.inflight) soak_send(c, t);
        if (dead(c)) return;
    }
    if (kind == K_PARTIAL) { /* the header and the first 1000 bytes of a 4096-byte binary frame, then FIN */
        size_t start = c->ob_len;
        soak_gen(soak_buf, soak_next_id++, false, 0, 4096);
        queue_frame(c, 2, false, soak_buf, 4096, -1);
        c->ob_len = start + 2 + 2 + 4 + 1000;
        while (c->ob_off < c->ob_len) { /* best effort: errors don't matter, we drop it anyway */
            ssize_t n = send(c->fd, c->ob + c->ob_off, c->ob_len - c->ob_off, MSG_NOSIGNAL);
            if (n <= 0) break;
            c->ob_off += (size_t)n;
        }
    }
    if (kind == K_RST || kind == K_SEND_RST || kind == K_HS_ABORT) set_rst(c->fd);
    if (kind == K_HS_ABORT) c->next_open = OPEN_ABORT; /* the reconnect then resets mid-handshake */
    conn_end(c);
}

/* Pick an open connection at random (a few tries); NULL if none was found. */
static conn *soak_pick(bool to_send) {
    for (int tries = 0; tries < 64; tries++) {
        conn *c = &conns[rng64() % (uint64_t)nconns];
        if (c->state != ST_OPEN || c->close_sent || c->want_close) continue;
        if (to_send && c->seq_sent - c->seq_recv >= (uint64_t)opt.inflight) continue;
        return c;
    }
    return NULL;
}

/* ---- fanout: one record per broadcast in the window, found by sequence number */

typedef struct {
    uint64_t seq;            /* 0: free */
    int64_t t_pub;           /* the server's CLOCK_REALTIME at publish, ns */
    uint32_t count;          /* deliveries */
    int64_t first, last;     /* our CLOCK_REALTIME at the first and the last delivery */
} bcast;
static bcast *bcs;           /* BC_SLOTS records */
static int64_t rt_read;      /* CLOCK_REALTIME right after the read that brought the bytes being parsed */
static int64_t rt_window0, rt_window1; /* the measured window, in CLOCK_REALTIME */
static uint64_t bc_min_seq = UINT64_MAX, bc_max_seq; /* the window's broadcasts */
static uint64_t fan_before, fan_after, fan_in_window, fan_collisions, fan_dup, fan_gap, fan_closing;
static uint64_t last_seq_seen;    /* the highest sequence number any connection received */
static int64_t rt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void fanout_message(conn *c) {
    c->fb[c->fbn] = 0;
    long long tp = 0;
    unsigned long long seq = 0;
    if (c->m_op != 1 || sscanf(c->fb, "t=%lld seq=%llu", &tp, &seq) != 2 || seq == 0) {
        note("fanout: a message that is not 't=<ns> seq=<n> ...': '%.40s'", c->fb);
        st.err[E_MISMATCH]++;
        return;
    }
    st.msgs_total++;
    if (seq > last_seq_seen) last_seq_seen = seq;
    if (c->seq_recv) { /* each connection must see 1, 2, 3, ... from its first on: no repeat, no hole */
        if (seq <= c->seq_recv) fan_dup++, st.err[E_MISMATCH]++;
        else if (seq > c->seq_recv + 1) fan_gap += seq - c->seq_recv - 1;
    }
    c->seq_recv = seq;
    if (phase == P_CLOSING) { fan_closing++; return; }
    if (rt_window0 == 0 || (int64_t)tp < rt_window0) { fan_before++; return; }
    if (rt_window1 != 0 && (int64_t)tp >= rt_window1) { fan_after++; return; }
    bcast *b = &bcs[seq % BC_SLOTS];
    if (b->seq != seq) {
        if (b->seq != 0) { fan_collisions++; return; } /* more broadcasts in the window than slots */
        b->seq = seq;
        b->t_pub = tp;
        b->first = rt_read;
        if (seq < bc_min_seq) bc_min_seq = seq;
        if (seq > bc_max_seq) bc_max_seq = seq;
    }
    b->count++;
    b->last = rt_read;
    fan_in_window++;
    st.msgs++;
    h_add(&lat, rt_read - tp);
}

/* a whole message arrived (final fragment done) */
static void message_done(conn *c, int64_t t) {
    if (opt.mode == MODE_FANOUT) {
        fanout_message(c);
        c->fbn = 0;
        return;
    }
    if (opt.mode == MODE_SOAK) {
        soak_message_done(c, t);
        return;
    }
    bool priming = opt.mode == MODE_IDLE && opt.prime;
    if (opt.mode != MODE_ECHO && !priming) {
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
              (opt.size == 0 || (c->m_sa == first_of(seq) && c->m_sb == last_of(seq)));
    if (!ok) st.err[E_MISMATCH]++;
    st.msgs_total++;
    if (priming) { /* the connection now stays idle: drop our zlib state, keep the server's */
        st.primed++;
        z_free(c);
        return;
    }
    if (measuring_now()) {
        st.msgs++;
        h_add(&lat, t - c->ts[seq % (uint64_t)opt.inflight]);
    }
    if ((phase == P_WARMUP || phase == P_MEASURE) && !c->close_sent) queue_message(c, t);
}

static uint64_t server_closes[16]; /* close frames the server started, by code 1000-1015 */

static void control_frame(conn *c, uint8_t op) {
    if (op == 9) { /* ping -> pong with the same payload */
        st.pings++;
        if (!c->close_sent) {
            queue_frame(c, 10, false, c->cbuf, c->cn, -1);
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
            int code = c->cn >= 2 ? c->cbuf[0] << 8 | c->cbuf[1] : 1005;
            if (code >= 1000 && code < 1000 + (int)(sizeof server_closes / sizeof server_closes[0])) server_closes[code - 1000]++;
            note("the server closed a connection: code %d, reason '%.*s'", code, c->cn > 2 ? (int)c->cn - 2 : 0,
                 (const char *)c->cbuf + 2);
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
        if (c->m_z) {
            static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
            if (!inflate_feed(c, tail, 4)) return;
            st.z_in_msgs++;
            st.z_in_raw += c->m_len;
            if (c->z_snct || c->z_end) inflateReset(c->zi); /* else the next message uses this context */
        } else if (c->pmd) {
            st.z_in_plain++;
        }
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
    bool rsv1 = (b0 & 0x40) != 0; /* permessage-deflate: a compressed message */
    if ((b0 & 0x30) || (rsv1 && !c->pmd) || (b1 & 0x80)) goto bad; /* unknown RSV bits; masked server frame */
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
    } else if (len == 127) {
        len = 0;
        for (int j = 0; j < 8; j++) len = len << 8 | h[2 + j];
        if (len >> 63) goto bad;
    }
    if (op >= 8) {
        if (op > 10 || !fin || len > 125 || rsv1) goto bad;
    } else if (op == 0) {
        if (!c->m_on || rsv1) goto bad; /* continuation without a message; RSV1 only on the first frame */
    } else if (op == 1 || op == 2) {
        if (c->m_on) goto bad; /* new message inside a fragmented one */
        c->m_on = true;
        c->m_bad = false;
        c->m_op = op;
        c->m_len = 0;
        c->m_sa = c->m_sb = 0;
        c->m_z = rsv1;
        c->z_end = false;
        if (rsv1 && !c->zi) { /* first compressed message from the server on this connection */
            c->zi = calloc(1, sizeof *c->zi);
            if (!c->zi) die("out of memory");
            if (inflateInit2(c->zi, -(int)c->z_sbits) != Z_OK) die("inflateInit2 failed (window bits %d)", c->z_sbits);
            st.z_streams++;
        }
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

/* Does d, the payload bytes [lo, hi) of an echo, match what we sent? The two sequence bytes are
 * checked apart (message_done), so they are skipped here. */
static bool payload_matches(const uint8_t *d, uint64_t lo, uint64_t hi) {
    uint64_t a = seq_pa < seq_pb ? seq_pa : seq_pb, b = seq_pa < seq_pb ? seq_pb : seq_pa;
    uint64_t seg[3][2] = {{lo, a}, {a + 1, b}, {b + 1, hi}};
    for (int k = 0; k < 3; k++) {
        uint64_t s = seg[k][0] > lo ? seg[k][0] : lo, e = seg[k][1] < hi ? seg[k][1] : hi;
        if (s < e && memcmp(d + (s - lo), payload + s, (size_t)(e - s)) != 0) return false;
    }
    return true;
}

/* n more bytes of the (inflated) payload of the message being received */
static void msg_bytes(conn *c, const uint8_t *d, size_t n) {
    uint64_t lo = c->m_len, hi = lo + n;
    if (opt.mode == MODE_FANOUT) { /* keep the start of the text: "t=<ns> seq=<n> ..." */
        size_t room = sizeof c->fb - 1 - c->fbn, take = n < room ? n : room;
        memcpy(c->fb + c->fbn, d, take);
        c->fbn += (uint8_t)take;
        c->m_len = hi;
        return;
    }
    if (opt.mode == MODE_SOAK) {
        soak_check_bytes(c, d, lo, n);
        c->m_len = hi;
        return;
    }
    if (seq_pa >= lo && seq_pa < hi) c->m_sa = d[seq_pa - lo];
    if (seq_pb >= lo && seq_pb < hi) c->m_sb = d[seq_pb - lo];
    if (opt.verify_all && !c->m_bad && lo < opt.size && !payload_matches(d, lo, hi < opt.size ? hi : opt.size))
        c->m_bad = true;
    c->m_len = hi;
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
            if (c->m_z) {
                st.z_in_wire += take;
                if (!inflate_feed(c, p + i, take)) return;
            } else {
                msg_bytes(c, p + i, take);
            }
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
    if (opt.mode == MODE_SOAK && c->next_open == OPEN_ABORT) { /* half the upgrade request, then RST */
        c->next_open = OPEN_NORMAL;
        ssize_t w = send(c->fd, request_prefix, request_prefix_len / 2, MSG_NOSIGNAL);
        (void)w;
        set_rst(c->fd);
        c->killing = true;
        conn_end(c);
        return;
    }
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

/* A failure reason, printed once per distinct text (to stderr), so a refused handshake says why. */
static void note(const char *fmt, ...) {
    static char seen[8][160];
    static int nseen;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (int i = 0; i < nseen; i++)
        if (!strcmp(seen[i], msg)) return;
    if (nseen < 8) strcpy(seen[nseen++], msg);
    fprintf(stderr, "loadgen: %s\n", msg);
}

/* permessage-deflate parameters of one offer or response; window bits: -1 absent, 0 without value */
typedef struct {
    bool snct, cnct;
    int smwb, cmwb;
} pmd_params;

static pmd_params offer; /* what we offer (parsed from opt.deflate_offer) */

static void trim(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t')) (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

/* Parse "permessage-deflate; p1; p2=v" (a single extension); NULL if well-formed, else the reason. */
static const char *pmd_parse(const char *v, size_t vl, pmd_params *o) {
    o->snct = o->cnct = false;
    o->smwb = o->cmwb = -1;
    if (memchr(v, ',', vl)) return "more than one extension";
    for (size_t i = 0, idx = 0; i <= vl; idx++) {
        size_t j = i;
        while (j < vl && v[j] != ';') j++;
        const char *el = v + i;
        size_t el_n = j - i;
        i = j + 1;
        trim(&el, &el_n);
        if (idx == 0) {
            if (el_n != 18 || strncasecmp(el, "permessage-deflate", 18)) return "not permessage-deflate";
            continue;
        }
        const char *eq = memchr(el, '=', el_n);
        const char *name = el, *val = NULL;
        size_t nn = eq ? (size_t)(eq - el) : el_n, vn = 0;
        trim(&name, &nn);
        if (eq) {
            val = eq + 1;
            vn = el_n - (size_t)(eq + 1 - el);
            trim(&val, &vn);
            if (vn >= 2 && val[0] == '"' && val[vn - 1] == '"') val++, vn -= 2;
        }
        if (nn == 26 && !strncasecmp(name, "server_no_context_takeover", 26)) {
            if (val || o->snct) return "bad or repeated server_no_context_takeover";
            o->snct = true;
        } else if (nn == 26 && !strncasecmp(name, "client_no_context_takeover", 26)) {
            if (val || o->cnct) return "bad or repeated client_no_context_takeover";
            o->cnct = true;
        } else if (nn == 22 && (!strncasecmp(name, "server_max_window_bits", 22) ||
                                !strncasecmp(name, "client_max_window_bits", 22))) {
            int *w = tolower((unsigned char)name[0]) == 's' ? &o->smwb : &o->cmwb;
            if (*w != -1) return "repeated max_window_bits";
            *w = 0;
            if (val) {
                if (vn < 1 || vn > 2 || val[0] < '0' || val[0] > '9' || (vn == 2 && (val[1] < '0' || val[1] > '9')) ||
                    (vn == 2 && val[0] == '0'))
                    return "max_window_bits value is not a number";
                *w = vn == 1 ? val[0] - '0' : (val[0] - '0') * 10 + val[1] - '0';
                if (*w < 8 || *w > 15) return "max_window_bits value outside 8-15";
            }
        } else {
            return nn ? "unknown parameter" : "empty parameter";
        }
    }
    return NULL;
}

/* Check the server's Sec-WebSocket-Extensions against our offer and record the agreement in c;
 * NULL if acceptable, else the reason. */
static const char *pmd_accept(conn *c, const char *v, size_t vl) {
    pmd_params r;
    const char *why = pmd_parse(v, vl, &r);
    if (why) return why;
    if (r.smwb == 0) return "server_max_window_bits without a value";
    if (r.cmwb == 0) return "client_max_window_bits without a value";
    if (r.cmwb > 0 && offer.cmwb < 0) return "client_max_window_bits, which we did not offer";
    if (r.cmwb > 0 && offer.cmwb > 0 && r.cmwb > offer.cmwb) return "client_max_window_bits above our offer";
    if (offer.smwb > 0 && !(r.smwb > 0 && r.smwb <= offer.smwb))
        return "no server_max_window_bits within our offer";
    if (offer.snct && !r.snct) return "no server_no_context_takeover, which we asked for";
    c->pmd = true;
    c->z_snct = r.snct;
    c->z_cnct = r.cnct || offer.cnct; /* offering it promises not to use context takeover */
    c->z_sbits = (uint8_t)(r.smwb > 0 ? r.smwb : 15);
    c->z_cbits = (uint8_t)(r.cmwb > 0 ? r.cmwb : offer.cmwb > 0 ? offer.cmwb : 15);
    if (c->z_cbits == 8) return "client_max_window_bits=8, which zlib cannot compress with";
    if (!agreed[0]) snprintf(agreed, sizeof agreed, "%.*s", (int)vl, v);
    return NULL;
}

/* Check a complete response head (ending in \r\n\r\n); -1 if fine, else the error kind. */
static int check_response(conn *c, const char *h, size_t len) {
    if (len < 12 || memcmp(h, "HTTP/1.1 101", 12) != 0) {
        const char *eol = memchr(h, '\r', len);
        size_t sl = eol ? (size_t)(eol - h) : len;
        note("handshake refused: '%.*s'", (int)(sl > 100 ? 100 : sl), h);
        return E_HANDSHAKE;
    }
    bool acc = false, upg = false, con = false, ext = false;
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
            else if (nl == 24 && !strncasecmp(ls, "sec-websocket-extensions", 24)) {
                if (!opt.deflate) {
                    note("the server answered with extensions we did not offer: '%.*s'", (int)(vl > 100 ? 100 : vl), v);
                    return E_HANDSHAKE;
                }
                const char *why = ext ? "two Sec-WebSocket-Extensions headers" : pmd_accept(c, v, vl);
                if (why) {
                    note("bad permessage-deflate response '%.*s': %s", (int)(vl > 80 ? 80 : vl), v, why);
                    return E_HANDSHAKE;
                }
                ext = true;
            }
        }
        p = le;
    }
    if (!(acc && upg && con)) {
        note("bad 101: %s", !acc ? "wrong or missing Sec-WebSocket-Accept" : !upg ? "no Upgrade: websocket"
                                                                                : "no Connection: upgrade");
        return E_HANDSHAKE;
    }
    if (opt.deflate && !ext) {
        note("server declined permessage-deflate: its 101 has no Sec-WebSocket-Extensions");
        return E_DECLINED;
    }
    return -1;
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
    int kind = check_response(c, c->hs, hl);
    if (kind >= 0) {
        conn_fail(c, kind);
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

/* fanout: the connection's source address (in turn), and a port of that address's own range. */
static int src_port_next[MAX_SOURCE_ADDRESSES];

static void bind_source(int fd, int index) {
    int k = index % opt.nsources;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr = opt.sources[k]};
    for (int tries = 0; tries < 256; tries++) { /* on failure, leave it to connect() */
        int p = src_port_next[k];
        src_port_next[k] = p >= port_hi ? port_lo : p + 1;
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
        bool reuse = opt.mode == MODE_CONNECT || opt.mode == MODE_SOAK;
        c->state = reuse ? ST_FREE : ST_DONE;
        if (reuse) free_list[nfree++] = (int)(c - conns);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.mode == MODE_FANOUT && opt.nsources) bind_source(fd, (int)(c - conns));
    else if (opt.mode != MODE_CONNECT) bind_source_port(fd);
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
    conn_fail(c, (phase == P_CLOSING || opt.mode == MODE_SOAK) && c->close_sent ? E_CLOSE_UNCLEAN : E_CLOSED);
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
                if (opt.mode == MODE_FANOUT) rt_read = rt_now();
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

static int64_t t_phase_end, t_open_start, t_open_end, t_prime_end, t_measure_start, t_measure_end;
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
        else if (opt.mode == MODE_SOAK && c->state == ST_OPEN) {
            if (c->seq_recv < c->seq_sent && t - c->ts[c->seq_recv % (uint64_t)opt.inflight] > lim)
                conn_fail(c, E_ECHO_TIMEOUT);
            else if (phase != P_CLOSING && c->close_sent && t - c->t_close > lim) /* no close back in time */
                conn_fail(c, E_CLOSE_UNCLEAN);
        }
    }
}

static int live_open(void) {
    int n = 0;
    for (int i = 0; i < nconns; i++)
        if (conns[i].state == ST_OPEN && !conns[i].close_sent) n++;
    return n;
}

/* ---- soak: the server's RSS and open descriptors, once a second */

static long count_fds(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static uint64_t err_total(void);

static void soak_sample(void) {
    long rss = proc_status_kib(opt.server_pid, "VmRSS"), fds = count_fds(opt.server_pid);
    if (rss > s_rss_peak) s_rss_peak = rss;
    if (fds > s_fds_peak) s_fds_peak = fds;
    if (!timeline_f) return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    fprintf(timeline_f, "%.3f,%s,%ld,%ld,%d,%d,%llu,%llu,%llu,%llu\n", now.tv_sec + now.tv_nsec / 1e9,
            phase_names[phase], rss, fds, live_open(), handshaking, (unsigned long long)st.s_sent,
            (unsigned long long)st.s_echoed, (unsigned long long)(st.s_lost_killed + st.s_lost_other),
            (unsigned long long)err_total());
    fflush(timeline_f);
}

/* Drain: every slot open again, no echo in flight, no close under way? */
static bool soak_settled(void) {
    if (nfree > 0 || handshaking > 0 || st.s_inflight > 0) return false;
    for (int i = 0; i < nconns; i++) {
        const conn *c = &conns[i];
        if (c->state != ST_OPEN || c->close_sent || c->want_close) return false;
    }
    return true;
}

static int64_t t_soak0;
static uint64_t soak_msgs_due, soak_closes_due, soak_kills_due; /* how many of each the schedule handed out */

/* The soak schedule: messages, closes and kills due by now, each capped per call. */
static void soak_tick(int64_t t) {
    double el = (t - t_soak0) / 1e9;
    int budget = 2000;
    while (soak_msgs_due < (uint64_t)(el * opt.rate) && budget-- > 0) {
        soak_msgs_due++;
        conn *c = soak_pick(true);
        if (c) soak_send(c, t);
        else st.s_skipped++;
    }
    while (soak_closes_due < (uint64_t)(el * opt.close_rate) && budget-- > 0) {
        soak_closes_due++;
        conn *c = soak_pick(false);
        if (c) soak_close(c, t);
    }
    while (soak_kills_due < (uint64_t)(el * opt.kill_rate) && budget-- > 0) {
        conn *c = soak_pick(false);
        if (c) soak_kill(c, (int)(soak_kills_due % K_COUNT), t); /* each kind in turn */
        soak_kills_due++;
    }
}

/* fanout, in the grace phase: has every broadcast of the window reached every open connection, and
 * has a later broadcast been seen (so the window's last one is known)? */
static long f_rss_open = -1, f_rss_window0 = -1, f_rss_peak_window = -1, f_fds_open = -1;
static int64_t t_grace_end;
static int open_at_end;

static bool fanout_complete(void) {
    if (bc_max_seq == 0 || last_seq_seen <= bc_max_seq) return false;
    uint32_t want = (uint32_t)live_open();
    for (uint64_t q = bc_min_seq; q <= bc_max_seq; q++) {
        const bcast *b = &bcs[q % BC_SLOTS];
        if (b->seq != q || b->count < want) return false;
    }
    return true;
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
        t_phase_end = t + (int64_t)((opt.mode == MODE_FANOUT ? FANOUT_OPEN_MAX_S : OPEN_PHASE_MAX_S) * 1e9);
    }
    bool backoff = false;
    uint64_t seen_connect_errs = 0;
    int64_t refill_at = 0;
    int64_t next_sample = t, next_settle_check = t;
    while (phase != P_DONE) {
        t = now_ns();
        if (opt.mode == MODE_FANOUT && opt.server_pid && t >= next_sample) { /* the server's RSS, once a second */
            long rss = proc_status_kib(opt.server_pid, "VmRSS");
            if (rss > s_rss_peak) s_rss_peak = rss;
            if (phase == P_MEASURE && rss > f_rss_peak_window) f_rss_peak_window = rss;
            next_sample += 1000000000LL;
            if (next_sample < t) next_sample = t + 1000000000LL;
        }
        if (opt.mode == MODE_SOAK && opt.server_pid && t >= next_sample) {
            soak_sample();
            next_sample += 1000000000LL;
            if (next_sample < t) next_sample = t + 1000000000LL;
        }
        /* ---- phase transitions and connection starts */
        switch (phase) {
        case P_CONNECTING:
            if (opt.mode == MODE_SOAK) { /* slots start on the free list; reconnects below */
                if ((nfree == 0 && handshaking == 0) || t >= t_phase_end) {
                    t_open_end = t;
                    for (int i = 0; i < nconns; i++)
                        if (conns[i].state == ST_CONNECTING || conns[i].state == ST_HS) conn_fail(&conns[i], E_HS_TIMEOUT);
                    if (live == 0) {
                        window_start(t);
                        window_stop(t);
                        phase = P_DONE;
                        continue;
                    }
                    phase = P_SOAK;
                    t_soak0 = t;
                    t_phase_end = t + (int64_t)(opt.duration * 1e9);
                    window_start(t);
                    continue;
                }
                break;
            }
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
                if (opt.mode == MODE_FANOUT) {
                    phase = P_WARMUP; /* the server's broadcasts keep coming; count them after the warm-up */
                    t_phase_end = t + (int64_t)(opt.warmup * 1e9);
                    if (opt.window_at > 0) {
                        int64_t at = t + (int64_t)(opt.window_at * 1e9) - rt_now();
                        if (at > t_phase_end) t_phase_end = at;
                    }
                    if (opt.server_pid) {
                        f_rss_open = proc_status_kib(opt.server_pid, "VmRSS");
                        f_fds_open = count_fds(opt.server_pid);
                    }
                } else if (opt.mode == MODE_ECHO) {
                    phase = P_WARMUP;
                    t_phase_end = t + (int64_t)(opt.warmup * 1e9);
                    for (int i = 0; i < nconns; i++) {
                        conn *c = &conns[i];
                        if (c->state != ST_OPEN || c->close_sent) continue;
                        for (int k = 0; k < opt.inflight; k++) queue_message(c, t);
                        flush(c);
                    }
                } else if (opt.prime) {
                    phase = P_PRIME; /* one message each, and its echo, before the hold */
                    t_phase_end = t + (int64_t)((opt.timeout + opt.connections / 1000.0) * 1e9);
                    for (int i = 0; i < nconns; i++) {
                        conn *c = &conns[i];
                        if (c->state != ST_OPEN || c->close_sent) continue;
                        queue_message(c, t);
                        st.prime_sent++;
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
        case P_PRIME: {
            int pending = 0;
            for (int i = 0; i < nconns && (pending == 0 || t >= t_phase_end); i++) {
                conn *c = &conns[i];
                if (c->state == ST_OPEN && !c->close_sent && c->seq_recv < c->seq_sent) pending++;
            }
            if (pending == 0 || t >= t_phase_end) {
                st.err[E_PRIME_TIMEOUT] += (uint64_t)pending;
                t_prime_end = t;
                phase = P_HOLD;
                t_phase_end = t + (int64_t)(opt.hold * 1e9);
                window_start(t);
                continue;
            }
            break;
        }
        case P_WARMUP:
            if (t >= t_phase_end) {
                phase = P_MEASURE;
                window_start(t);
                t_phase_end = t + (int64_t)(opt.duration * 1e9);
                if (opt.mode == MODE_ECHO || opt.mode == MODE_FANOUT) open_at_measure = live_open();
                if (opt.mode == MODE_FANOUT) {
                    rt_window0 = rt_now();
                    if (opt.server_pid) f_rss_window0 = f_rss_peak_window = proc_status_kib(opt.server_pid, "VmRSS");
                }
                continue;
            }
            break;
        case P_MEASURE:
            if (t >= t_phase_end || (opt.count && st.msgs >= opt.count)) {
                window_stop(t);
                if (opt.server_pid) {
                    rss_after = proc_status_kib(opt.server_pid, "VmRSS");
                    hwm_after = proc_status_kib(opt.server_pid, "VmHWM");
                }
                if (opt.mode == MODE_FANOUT) { /* the window's last broadcasts may still be on their way */
                    rt_window1 = rt_now();
                    phase = P_GRACE;
                    t_phase_end = t + (int64_t)(opt.grace * 1e9);
                    continue;
                }
                begin_closing(t);
                continue;
            }
            break;
        case P_GRACE:
            if (t >= next_settle_check || t >= t_phase_end) {
                next_settle_check = t + 100000000LL;
                if (t >= t_phase_end || fanout_complete()) {
                    t_grace_end = t;
                    open_at_end = live_open();
                    begin_closing(t);
                    continue;
                }
            }
            break;
        case P_SOAK:
            if (t >= t_phase_end) {
                window_stop(t);
                phase = P_DRAIN; /* no new messages, closes or kills; wait for echoes and reconnects */
                t_phase_end = t + (int64_t)((2 * opt.timeout + 5 + opt.connections / 500.0) * 1e9);
                continue;
            }
            soak_tick(t);
            break;
        case P_DRAIN:
            if (t >= next_settle_check || t >= t_phase_end) {
                next_settle_check = t + 50000000LL;
                bool settled = soak_settled();
                if (settled || t >= t_phase_end) {
                    if (!settled)
                        note("drain: not every connection was open and quiet within %.0f s; holding anyway",
                             2 * opt.timeout + 5 + opt.connections / 500.0);
                    phase = P_HOLD;
                    t_phase_end = t + (int64_t)(opt.hold * 1e9);
                    s_rss_hold0 = opt.server_pid ? proc_status_kib(opt.server_pid, "VmRSS") : -1;
                    continue;
                }
            }
            break;
        case P_HOLD:
            if (opt.mode == MODE_SOAK && t >= t_phase_end) {
                s_open_hold = open_at_measure = live_open();
                if (opt.server_pid) {
                    s_rss_hold1 = rss_after = proc_status_kib(opt.server_pid, "VmRSS");
                    hwm_after = proc_status_kib(opt.server_pid, "VmHWM");
                    s_fds_hold = count_fds(opt.server_pid);
                }
                begin_closing(t);
                continue;
            }
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
        if ((opt.mode == MODE_CONNECT && (phase == P_WARMUP || phase == P_MEASURE)) ||
            (opt.mode == MODE_SOAK && (phase == P_CONNECTING || phase == P_SOAK || phase == P_DRAIN))) {
            /* after a failed connect (nothing listening, out of ports...) pause 10 ms: don't spin */
            if (st.err[E_CONNECT] != seen_connect_errs) {
                seen_connect_errs = st.err[E_CONNECT];
                refill_at = t + 10000000LL;
            }
            int limit = opt.mode == MODE_SOAK ? opt.concurrency : nconns; /* soak: handshakes at once */
            if (t >= refill_at) /* at most one start per free slot per pass: a failing start can't spin */
                for (int k = nfree; k > 0 && nfree > 0 && handshaking < limit; k--)
                    conn_start(&conns[free_list[--nfree]], t);
            backoff = t < refill_at;
        }
        /* ---- wait */
        int64_t until = t_phase_end - t;
        int timeout_ms = until <= 0 ? 0 : (int)((until + 999999) / 1000000);
        if (timeout_ms > 100) timeout_ms = 100;
        if (phase == P_SOAK && timeout_ms > 2) timeout_ms = 2; /* keep the schedule smooth */
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
        if (t >= next_sweep && opt.mode == MODE_FANOUT && phase != P_CONNECTING) { /* 100k slots: only handshakes time out */
            next_sweep = t + 100000000LL;
        } else if (t >= next_sweep) {
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

static void json_string(const char *v) {
    putchar('"');
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 32) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* fanout: per broadcast of the window, deliveries and the time from publish to its last delivery */
struct fanout_summary {
    int n;                 /* broadcasts in the window */
    uint64_t expected;     /* n x connections open when counting started */
    uint32_t count_min, count_median;
    int64_t fan_median, fan_max, first_median;
};

static struct fanout_summary fanout_summary(void) {
    struct fanout_summary f = {0};
    if (opt.mode != MODE_FANOUT || bc_max_seq == 0) return f;
    int cap = (int)(bc_max_seq - bc_min_seq + 1);
    int64_t *fan = calloc((size_t)cap, sizeof *fan), *first = calloc((size_t)cap, sizeof *first),
            *cnt = calloc((size_t)cap, sizeof *cnt);
    if (!fan || !first || !cnt) die("out of memory");
    for (uint64_t q = bc_min_seq; q <= bc_max_seq; q++) {
        const bcast *b = &bcs[q % BC_SLOTS];
        bool seen = b->seq == q;
        cnt[f.n] = seen ? b->count : 0; /* a broadcast no connection received counts as 0 deliveries */
        fan[f.n] = seen ? b->last - b->t_pub : 0;
        first[f.n] = seen ? b->first - b->t_pub : 0;
        f.n++;
    }
    f.expected = (uint64_t)f.n * (uint64_t)open_at_measure;
    qsort(cnt, (size_t)f.n, sizeof *cnt, cmp_i64);
    qsort(fan, (size_t)f.n, sizeof *fan, cmp_i64);
    qsort(first, (size_t)f.n, sizeof *first, cmp_i64);
    f.count_min = (uint32_t)cnt[0];
    f.count_median = (uint32_t)cnt[f.n / 2];
    f.fan_median = fan[f.n / 2];
    f.fan_max = fan[f.n - 1];
    f.first_median = first[f.n / 2];
    free(fan);
    free(first);
    free(cnt);
    return f;
}

static void report(double total_cpu, double total_wall) {
    double win = (t_measure_end - t_measure_start) / 1e9;
    if (win <= 0) win = 1e-9;
    double cpu_win = cpu_m1 - cpu_m0;
    bool have_win = t_measure_end - t_measure_start > 1000000; /* at least 1 ms */
    double cpu_pct = have_win ? 100.0 * cpu_win / win : 0;
    double srv_pct = (have_win && srv_cpu0 >= 0 && srv_cpu1 >= 0) ? 100.0 * (srv_cpu1 - srv_cpu0) / win : -1;
    const char *mname = opt.mode == MODE_ECHO      ? "echo"
                        : opt.mode == MODE_CONNECT ? "connect"
                        : opt.mode == MODE_SOAK    ? "soak"
                        : opt.mode == MODE_FANOUT  ? "fanout"
                                                   : "idle";
    struct fanout_summary fs = fanout_summary();
    uint64_t kills_total = 0;
    for (int k = 0; k < K_COUNT; k++) kills_total += st.s_kills[k];
    int64_t unaccounted = (int64_t)(st.s_sent - st.s_echoed - st.s_lost_killed - st.s_lost_other - st.s_inflight);
    uint64_t reconnects = st.connect_attempts > (uint64_t)opt.connections ? st.connect_attempts - (uint64_t)opt.connections : 0;

    fprintf(hout, "target:       ws://127.0.0.1:%d%s  mode %s\n", opt.port, opt.path, mname);
    if (opt.mode == MODE_ECHO) {
        double mps = st.msgs / win, mbps = (double)st.msgs * opt.size / win / 1e6;
        fprintf(hout, "setup:        %d connections, %d in flight each, %u-byte %s messages%s\n", opt.connections,
                opt.inflight, opt.size, opt.payload == PAYLOAD_JSON ? "JSON text" : opt.text ? "text" : "binary",
                opt.verify_all ? ", full verify" : "");
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
    } else if (opt.mode == MODE_SOAK) {
        fprintf(hout, "setup:        %d connections for %.1f s: %.0f echoes/s (0-%u B, text and binary, every byte"
                      " checked), %.1f clean closes/s, %.1f drops/s, at most %d in flight per connection\n",
                opt.connections, win, opt.rate, opt.size, opt.close_rate, opt.kill_rate, opt.inflight);
        fprintf(hout, "connected:    first %d in %.2f s; %llu handshakes completed in all, %llu connection attempts"
                      " after the first %d\n",
                opt.connections, (t_open_end - t_open_start) / 1e9, (unsigned long long)st.established,
                (unsigned long long)reconnects, opt.connections);
        fprintf(hout, "messages:     sent %llu (%.1f MB; %llu text, %llu binary), echoed %llu; lost with a connection we"
                      " dropped %llu, lost otherwise %llu, still in flight %llu, unaccounted %lld; %llu not sent (no"
                      " free connection)\n",
                (unsigned long long)st.s_sent, st.s_sent_bytes / 1e6, (unsigned long long)st.s_text,
                (unsigned long long)st.s_binary, (unsigned long long)st.s_echoed, (unsigned long long)st.s_lost_killed,
                (unsigned long long)st.s_lost_other, (unsigned long long)st.s_inflight, (long long)unaccounted,
                (unsigned long long)st.s_skipped);
        fprintf(hout, "churn:        %llu clean closes started; %llu drops:", (unsigned long long)st.s_closes,
                (unsigned long long)kills_total);
        for (int k = 0; k < K_COUNT; k++)
            fprintf(hout, "%s %llu %s", k ? "," : "", (unsigned long long)st.s_kills[k], kill_names[k]);
        fprintf(hout, "\n");
        fprintf(hout, "latency us:   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
                h_quantile(&lat, 0.5) / 1e3, h_quantile(&lat, 0.9) / 1e3, h_quantile(&lat, 0.99) / 1e3,
                h_quantile(&lat, 0.999) / 1e3, lat.max / 1e3, lat.n ? lat.sum / lat.n / 1e3 : 0.0);
        fprintf(hout, "hold:         %d/%d open and idle for %.1f s at the end", s_open_hold, opt.connections, opt.hold);
        if (opt.server_pid)
            fprintf(hout, "; server VmRSS %ld -> %ld KiB over the hold, fds %ld", s_rss_hold0, s_rss_hold1, s_fds_hold);
        fprintf(hout, "\n");
        if (opt.server_pid)
            fprintf(hout, "server:       VmRSS at our start %ld KiB, sampled peak %ld KiB; fds at our start %ld, peak %ld\n",
                    s_rss_start, s_rss_peak, s_fds_start, s_fds_peak);
    } else if (opt.mode == MODE_FANOUT) {
        fprintf(hout, "setup:        %d connections from %d source address(es), %.1f s warm-up, %.2f s window, grace %.1f s\n",
                opt.connections, opt.nsources ? opt.nsources : 1, opt.warmup, win, opt.grace);
        fprintf(hout, "connected:    %llu/%d in %.2f s (concurrency %d), %d open when counting started, %d at the end\n",
                (unsigned long long)st.established, opt.connections, (t_open_end - t_open_start) / 1e9,
                opt.concurrency, open_at_measure, open_at_end);
        fprintf(hout, "broadcasts:   %d in the window (seq %llu-%llu); deliveries %llu of %llu expected (%llu missing);"
                      " per broadcast min %u, median %u\n",
                fs.n, (unsigned long long)(fs.n ? bc_min_seq : 0), (unsigned long long)bc_max_seq,
                (unsigned long long)fan_in_window, (unsigned long long)fs.expected,
                (unsigned long long)(fs.expected > fan_in_window ? fs.expected - fan_in_window : 0), fs.count_min,
                fs.count_median);
        fprintf(hout, "latency ms:   p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  mean %.2f (delivery - publish)\n",
                h_quantile(&lat, 0.5) / 1e6, h_quantile(&lat, 0.9) / 1e6, h_quantile(&lat, 0.99) / 1e6,
                h_quantile(&lat, 0.999) / 1e6, lat.max / 1e6, lat.n ? lat.sum / lat.n / 1e6 : 0.0);
        fprintf(hout, "fan-out ms:   last delivery - publish: median %.2f, max %.2f; first delivery: median %.2f\n",
                fs.fan_median / 1e6, fs.fan_max / 1e6, fs.first_median / 1e6);
        fprintf(hout, "other:        %llu received before the window, %llu after, %llu while closing; %llu repeated or"
                      " reordered, %llu skipped by a connection; %llu slot collisions\n",
                (unsigned long long)fan_before, (unsigned long long)fan_after, (unsigned long long)fan_closing,
                (unsigned long long)fan_dup, (unsigned long long)fan_gap, (unsigned long long)fan_collisions);
        if (opt.server_pid)
            fprintf(hout, "server rss:   idle %ld KiB, all open %ld KiB, window start %ld, window peak (1/s) %ld, end %ld,"
                        " VmHWM %ld; fds with all open %ld\n",
                    rss_before, f_rss_open, f_rss_window0, f_rss_peak_window, rss_after, hwm_after, f_fds_open);
    } else {
        fprintf(hout, "connected:    %llu/%d in %.2f s (concurrency %d), held %.1f s, %d still open at the end\n",
                (unsigned long long)st.established, opt.connections, (t_open_end - t_open_start) / 1e9,
                opt.concurrency, win, open_at_measure);
        if (opt.prime)
            fprintf(hout, "primed:       %llu/%llu echoes of one %u-byte %s message each, in %.2f s, before the hold\n",
                    (unsigned long long)st.primed, (unsigned long long)st.prime_sent, opt.size,
                    opt.payload == PAYLOAD_JSON ? "JSON" : opt.text ? "text" : "binary",
                    (t_prime_end - t_open_end) / 1e9);
    }
    if (opt.deflate) {
        fprintf(hout, "deflate:      offered '%s', agreed '%s', our level %d%s\n", opt.deflate_offer, agreed,
                opt.deflate_level, opt.deflate_once ? ", payload compressed once (--deflate-once)" : "");
        if (st.z_out_msgs || st.z_in_msgs || st.z_in_plain)
            fprintf(hout, "              sent %llu messages, %.0f -> %.0f B each (%.2fx); received %llu, %.0f -> %.0f B "
                          "(%.2fx); %llu echoes uncompressed\n",
                    (unsigned long long)st.z_out_msgs, st.z_out_msgs ? (double)st.z_out_raw / st.z_out_msgs : 0.0,
                    st.z_out_msgs ? (double)st.z_out_wire / st.z_out_msgs : 0.0,
                    st.z_out_wire ? (double)st.z_out_raw / st.z_out_wire : 0.0, (unsigned long long)st.z_in_msgs,
                    st.z_in_msgs ? (double)st.z_in_wire / st.z_in_msgs : 0.0,
                    st.z_in_msgs ? (double)st.z_in_raw / st.z_in_msgs : 0.0,
                    st.z_in_wire ? (double)st.z_in_raw / st.z_in_wire : 0.0, (unsigned long long)st.z_in_plain);
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
               "\"text\":%s,\"payload\":\"%s\",\"warmup_s\":%.3f,\"count\":%llu,\"messages\":%llu,\"messages_per_s\":%.1f,"
               "\"mb_per_s\":%.3f,",
               opt.connections, (unsigned long long)st.established, open_at_measure, opt.inflight, opt.size,
               opt.text ? "true" : "false", opt.payload == PAYLOAD_JSON ? "json" : "bytes", opt.warmup,
               (unsigned long long)opt.count, (unsigned long long)st.msgs, st.msgs / win,
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
    } else if (opt.mode == MODE_IDLE) {
        printf("\"connections\":%d,\"connected\":%llu,\"open_at_end\":%d,\"hold_s\":%.3f,",
               opt.connections, (unsigned long long)st.established, open_at_measure, win);
        if (opt.prime)
            printf("\"prime\":{\"size\":%u,\"payload\":\"%s\",\"sent\":%llu,\"echoed\":%llu},", opt.size,
                   opt.payload == PAYLOAD_JSON ? "json" : "bytes", (unsigned long long)st.prime_sent,
                   (unsigned long long)st.primed);
    }
    if (opt.mode == MODE_FANOUT) {
        printf("\"connections\":%d,\"source_addresses\":%d,\"connected\":%llu,\"open_s\":%.3f,\"open_at_measure\":%d,"
               "\"open_at_end\":%d,\"warmup_s\":%.3f,\"grace_used_s\":%.3f,",
               opt.connections, opt.nsources ? opt.nsources : 1, (unsigned long long)st.established,
               (t_open_end - t_open_start) / 1e9, open_at_measure, open_at_end, opt.warmup,
               t_grace_end > t_measure_end ? (t_grace_end - t_measure_end) / 1e9 : 0.0);
        printf("\"broadcasts\":%d,\"first_seq\":%llu,\"last_seq\":%llu,\"deliveries\":%llu,\"deliveries_expected\":%llu,"
               "\"per_broadcast_min\":%u,\"per_broadcast_median\":%u,",
               fs.n, (unsigned long long)(fs.n ? bc_min_seq : 0), (unsigned long long)bc_max_seq,
               (unsigned long long)fan_in_window, (unsigned long long)fs.expected, fs.count_min, fs.count_median);
        printf("\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f},",
               h_quantile(&lat, 0.5) / 1e6, h_quantile(&lat, 0.9) / 1e6, h_quantile(&lat, 0.99) / 1e6,
               h_quantile(&lat, 0.999) / 1e6, lat.max / 1e6, lat.n ? lat.sum / lat.n / 1e6 : 0.0);
        printf("\"fanout_ms\":{\"median\":%.3f,\"max\":%.3f,\"first_delivery_median\":%.3f},", fs.fan_median / 1e6,
               fs.fan_max / 1e6, fs.first_median / 1e6);
        printf("\"received_before_window\":%llu,\"received_after_window\":%llu,\"received_while_closing\":%llu,"
               "\"repeated_or_reordered\":%llu,\"skipped\":%llu,\"slot_collisions\":%llu,\"messages_total\":%llu,",
               (unsigned long long)fan_before, (unsigned long long)fan_after, (unsigned long long)fan_closing,
               (unsigned long long)fan_dup, (unsigned long long)fan_gap, (unsigned long long)fan_collisions,
               (unsigned long long)st.msgs_total);
        if (opt.server_pid)
            printf("\"server_rss\":{\"idle_kib\":%ld,\"open_kib\":%ld,\"window_start_kib\":%ld,\"window_peak_kib\":%ld,"
                   "\"end_kib\":%ld,\"hwm_kib\":%ld,\"fds_open\":%ld},",
                   rss_before, f_rss_open, f_rss_window0, f_rss_peak_window, rss_after, hwm_after, f_fds_open);
    }
    if (opt.mode == MODE_SOAK) {
        printf("\"connections\":%d,\"duration_s\":%.3f,\"hold_s\":%.3f,\"open_at_hold\":%d,\"handshakes\":%llu,"
               "\"reconnect_attempts\":%llu,\"first_open_s\":%.3f,",
               opt.connections, win, opt.hold, s_open_hold, (unsigned long long)st.established,
               (unsigned long long)reconnects, (t_open_end - t_open_start) / 1e9);
        printf("\"soak\":{\"rate\":%.3f,\"close_rate\":%.3f,\"kill_rate\":%.3f,\"max_size\":%u,\"inflight\":%d,"
               "\"sent\":%llu,\"sent_bytes\":%llu,\"text\":%llu,\"binary\":%llu,\"echoed\":%llu,\"echoed_bytes\":%llu,"
               "\"lost_killed\":%llu,\"lost_other\":%llu,\"in_flight_at_end\":%llu,\"unaccounted\":%lld,"
               "\"not_sent\":%llu,\"clean_closes_started\":%llu,\"kills_total\":%llu,",
               opt.rate, opt.close_rate, opt.kill_rate, opt.size, opt.inflight, (unsigned long long)st.s_sent,
               (unsigned long long)st.s_sent_bytes, (unsigned long long)st.s_text, (unsigned long long)st.s_binary,
               (unsigned long long)st.s_echoed, (unsigned long long)st.s_echoed_bytes,
               (unsigned long long)st.s_lost_killed, (unsigned long long)st.s_lost_other,
               (unsigned long long)st.s_inflight, (long long)unaccounted, (unsigned long long)st.s_skipped,
               (unsigned long long)st.s_closes, (unsigned long long)kills_total);
        printf("\"kills\":{");
        for (int k = 0; k < K_COUNT; k++) printf("%s\"%s\":%llu", k ? "," : "", kill_names[k], (unsigned long long)st.s_kills[k]);
        printf("},\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f}},",
               h_quantile(&lat, 0.5) / 1e3, h_quantile(&lat, 0.9) / 1e3, h_quantile(&lat, 0.99) / 1e3,
               h_quantile(&lat, 0.999) / 1e3, lat.max / 1e3, lat.n ? lat.sum / lat.n / 1e3 : 0.0);
    }
    if (opt.deflate) {
        printf("\"deflate\":{\"offer\":");
        json_string(opt.deflate_offer);
        printf(",\"agreed\":");
        json_string(agreed);
        printf(",\"level\":%d,\"once\":%s,\"sent_messages\":%llu,\"sent_raw_bytes\":%llu,\"sent_wire_bytes\":%llu,"
               "\"received_messages\":%llu,\"received_raw_bytes\":%llu,\"received_wire_bytes\":%llu,"
               "\"received_uncompressed\":%llu},",
               opt.deflate_level, opt.deflate_once ? "true" : "false", (unsigned long long)st.z_out_msgs, (unsigned long long)st.z_out_raw,
               (unsigned long long)st.z_out_wire, (unsigned long long)st.z_in_msgs, (unsigned long long)st.z_in_raw,
               (unsigned long long)st.z_in_wire, (unsigned long long)st.z_in_plain);
    }
    if (opt.mode != MODE_CONNECT) printf("\"clean_closes\":%llu,", (unsigned long long)st.clean_closes);
    printf("\"server_close_codes\":{");
    for (int k = 0, first = 1; k < 16; k++)
        if (server_closes[k]) printf("%s\"%d\":%llu", first ? "" : ",", 1000 + k, (unsigned long long)server_closes[k]), first = 0;
    printf("},");
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
        if (opt.mode == MODE_SOAK)
            printf(",\"rss_start_kib\":%ld,\"rss_peak_sampled_kib\":%ld,\"rss_hold_start_kib\":%ld,"
                   "\"rss_hold_end_kib\":%ld,\"fds_start\":%ld,\"fds_peak\":%ld,\"fds_hold\":%ld",
                   s_rss_start, s_rss_peak, s_rss_hold0, s_rss_hold1, s_fds_start, s_fds_peak, s_fds_hold);
        printf("},");
    }
    print_errors_json();
    printf(",\"client_cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f,\"percent_of_core\":%.1f,\"run_cpu_s\":%.3f,"
           "\"run_wall_s\":%.3f}}\n",
           cpu_u1 - cpu_u0, cpu_s1 - cpu_s0, cpu_pct, total_cpu, total_wall);
}

/* ------------------------------------------------------------------ JSON payload */

/* A fixed generator, so every run (and every tool version) sends the same JSON. */
static uint64_t json_rng = 0x9E3779B97F4A7C15ULL;

static uint32_t jr(uint32_t n) {
    json_rng ^= json_rng >> 12;
    json_rng ^= json_rng << 25;
    json_rng ^= json_rng >> 27;
    return (uint32_t)(((json_rng * 0x2545F4914F6CDD1DULL) >> 32) % n);
}

#define PICK(a) a[jr((uint32_t)(sizeof a / sizeof a[0]))]

/* A JSON text of exactly size (>= JSON_MIN_SIZE) bytes, like an API's list response:
 *   {"seq":"Aa","items":[{"id":..,"name":..,"email":..,"created":..,"score":..,...},...],"note":"..."}
 * The items vary (names, ids, timestamps, floats, tags); "note" pads it to the exact size. The two
 * letters of "seq" (offsets 8 and 9) carry the message's sequence check. */
static void make_json(uint8_t *out, size_t size) {
    static const char *first[] = {"Maria", "James", "Wei",   "Fatima", "Olivia", "Liam",  "Yuki", "Ahmed",
                                  "Sofia", "Noah",  "Ana",   "Lucas",  "Emma",   "Mateo", "Chloe", "Ivan",
                                  "Aisha", "Hugo",  "Lena",  "Omar",   "Zoe",    "Pablo", "Mia",  "Arjun"};
    static const char *last[] = {"Garcia", "Smith", "Wang",  "Khan",   "Johnson", "Muller", "Tanaka",
                                 "Rossi",  "Silva", "Nguyen", "Kowalski", "Dubois", "Novak", "Haddad",
                                 "Jensen", "Moreau", "Ito",   "Costa",  "Fischer", "Patel"};
    static const char *domains[] = {"example.org", "mail.test", "corp.example", "inbox.invalid"};
    static const char *roles[] = {"admin", "editor", "viewer", "owner", "guest"};
    static const char *states[] = {"active", "pending", "suspended", "invited"};
    static const char *tags[] = {"alpha", "beta", "ops", "billing", "eu", "us", "apac", "trial", "vip", "mobile",
                                 "web", "api"};
    static const char *words[] = {"lorem", "ipsum",  "dolor",      "sit",    "amet",   "consectetur", "adipiscing",
                                  "elit",  "sed",    "do",         "eiusmod", "tempor", "incididunt", "ut",
                                  "labore", "et",    "dolore",     "magna",  "aliqua"};
    char *o = (char *)out;
    static const char head[] = "{\"seq\":\"Aa\",\"items\":[";
    const size_t tail = 12; /* ],"note":""} */
    size_t pos = sizeof head - 1;
    memcpy(o, head, pos);
    uint64_t id = 100000 + jr(900000);
    int64_t ms = 1714557600000LL + jr(3600000); /* 2024-05-01 */
    bool first_item = true;
    for (;;) {
        char item[512], when[32], email[96], tagv[64];
        id += 1 + jr(40);
        ms += jr(90000);
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        size_t wl = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + wl, sizeof when - wl, ".%03dZ", (int)(ms % 1000));
        const char *fn = PICK(first), *ln = PICK(last);
        int el = snprintf(email, sizeof email, "%s.%s%u@%s", fn, ln, jr(100), PICK(domains));
        for (int k = 0; k < el; k++) email[k] = (char)tolower((unsigned char)email[k]);
        int nt = 1 + (int)jr(3), tl = 0;
        for (int k = 0; k < nt; k++) tl += snprintf(tagv + tl, sizeof tagv - (size_t)tl, "%s\"%s\"", k ? "," : "", PICK(tags));
        int n = snprintf(item, sizeof item,
                         "{\"id\":%llu,\"name\":\"%s %s\",\"email\":\"%s\",\"created\":\"%s\",\"score\":%.3f,"
                         "\"lat\":%.5f,\"lon\":%.5f,\"active\":%s,\"role\":\"%s\",\"status\":\"%s\",\"tags\":[%s],"
                         "\"balance\":%.2f,\"visits\":%u}",
                         (unsigned long long)id, fn, ln, email, when, jr(100000) / 1000.0,
                         jr(18000000) / 100000.0 - 90.0, jr(36000000) / 100000.0 - 180.0, jr(4) ? "true" : "false",
                         PICK(roles), PICK(states), tagv, ((double)jr(2000000) - 500000.0) / 100.0, jr(5000));
        size_t need = (size_t)n + (first_item ? 0 : 1);
        if (pos + need + tail > size) break;
        if (!first_item) o[pos++] = ',';
        memcpy(o + pos, item, (size_t)n);
        pos += (size_t)n;
        first_item = false;
    }
    memcpy(o + pos, "],\"note\":\"", 10);
    pos += 10;
    size_t fill = size - pos - 2;
    for (size_t f = 0; f < fill;) {
        const char *w = PICK(words);
        for (; *w && f < fill; w++) o[pos + f++] = *w;
        if (f < fill) o[pos + f++] = ' ';
    }
    pos += fill;
    o[pos++] = '"';
    o[pos++] = '}';
    if (pos != size) die("internal error: JSON payload of %zu bytes instead of %zu", pos, size);
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
    if (opt.mode == MODE_CONNECT || opt.mode == MODE_SOAK) {
        free_list = malloc(sizeof(int) * (size_t)nconns);
        if (!free_list) die("out of memory");
        for (int i = nconns - 1; i >= 0; i--) free_list[nfree++] = i;
    }
    if (opt.mode == MODE_FANOUT) {
        bcs = calloc(BC_SLOTS, sizeof *bcs);
        if (!bcs) die("out of memory");
    }
    if (opt.mode == MODE_SOAK) {
        struct soak_msg *pool = calloc((size_t)nconns * (size_t)opt.inflight, sizeof *pool);
        soak_buf = malloc(opt.size > 4096 ? opt.size : 4096);
        if (!pool || !soak_buf) die("out of memory");
        for (int i = 0; i < nconns; i++) conns[i].sm = pool + (size_t)i * opt.inflight;
        if (opt.timeline[0]) {
            timeline_f = fopen(opt.timeline, "a");
            if (!timeline_f) die("cannot open --timeline %s: %s", opt.timeline, strerror(errno));
            if (fseek(timeline_f, 0, SEEK_END) == 0 && ftell(timeline_f) == 0)
                fprintf(timeline_f, "t_unix,phase,rss_kib,fds,open,handshaking,sent,echoed,lost,errors\n");
        }
    }
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    if (opt.payload == PAYLOAD_JSON) {
        make_json(payload, opt.size);
        seq_pa = 8; /* {"seq":"Aa", : the two letters */
        seq_pb = 9;
    } else {
        for (uint32_t i = 0; i < opt.size; i++) payload[i] = opt.text ? (uint8_t)alnum[i % 36] : (uint8_t)rng64();
        seq_pa = 0; /* the first and the last byte */
        seq_pb = opt.size ? opt.size - 1 : 0;
    }
    if (opt.size > 0) { /* the base payload holds sequence number 0 */
        payload[seq_pa] = first_of(0);
        payload[seq_pb] = last_of(0);
    }

    if (opt.deflate) {
        const char *why = pmd_parse(opt.deflate_offer, strlen(opt.deflate_offer), &offer);
        if (!why && offer.smwb == 0) why = "server_max_window_bits needs a value";
        if (why) die("bad --deflate-offer '%s': %s", opt.deflate_offer, why);
    }
    request_prefix_len = (size_t)snprintf(request_prefix, sizeof request_prefix,
                                          "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                                          "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n%s%s%s",
                                          opt.path, opt.port, opt.deflate ? "Sec-WebSocket-Extensions: " : "",
                                          opt.deflate ? opt.deflate_offer : "", opt.deflate ? "\r\n" : "");

    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)opt.port);
    inet_pton(AF_INET, "127.0.0.1", &target.sin_addr); /* the only address this tool ever connects to */
    init_ports();
    if (opt.mode == MODE_FANOUT) {
        int range = port_hi - port_lo + 1, nsrc = opt.nsources ? opt.nsources : 1;
        if ((opt.connections + nsrc - 1) / nsrc > range - 500)
            die("%d connections need more source ports than %d address(es) x %d (ip_local_port_range %d-%d, minus a"
                " margin): add --source-addresses", opt.connections, nsrc, range, port_lo, port_hi);
        for (int k = 0; k < opt.nsources; k++) src_port_next[k] = port_lo + (int)(rng64() % (uint64_t)range);
    }

    if (opt.server_pid) {
        rss_before = proc_status_kib(opt.server_pid, "VmRSS");
        if (rss_before < 0) die("cannot read /proc/%d/status", opt.server_pid);
        s_rss_start = s_rss_peak = rss_before;
        s_fds_start = s_fds_peak = count_fds(opt.server_pid);
    } else if (opt.mode == MODE_IDLE) {
        fprintf(stderr, "loadgen: note: no --server-pid, so no server RSS figures\n");
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1: %s", strerror(errno));

    double bound = (opt.mode == MODE_FANOUT ? 2 * FANOUT_OPEN_MAX_S + opt.grace : OPEN_PHASE_MAX_S) + opt.warmup + opt.duration + opt.hold + opt.close_wait + 15 +
                   (opt.prime ? opt.timeout + opt.connections / 1000.0 : 0) +
                   (opt.mode == MODE_SOAK ? 2 * opt.timeout + 5 + opt.connections / 500.0 : 0); /* drain */
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
    if (timeline_f) fclose(timeline_f);
    return err_total() ? 1 : 0;
}
