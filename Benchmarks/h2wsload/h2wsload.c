/* h2wsload: WebSocket echo and idle load over HTTP/2 (RFC 8441 extended CONNECT, h2c by prior
 * knowledge) or over HTTP/1.1 (Upgrade), with the same code for both, so the two transports are
 * measured by one client.
 *
 *   h2wsload echo --port P [--h1] --connections C [--streams S] [--size 32] [--warmup 2] [--duration 10]
 *   h2wsload idle --port P [--h1] --connections C [--streams S] [--hold 5] [--server-pid PID]
 *
 * h2 (default): C connections, each a libnghttp2 client session that waits for the server's SETTINGS
 * (SETTINGS_ENABLE_CONNECT_PROTOCOL must be 1), then opens S streams `:method CONNECT`,
 * `:protocol websocket`, `:path /echo`; a stream is a WebSocket once its response HEADERS say 200.
 * WebSocket frames go in DATA frames (never END_STREAM while the run lasts).
 * --h1: C connections, each one `GET /echo` + `Upgrade: websocket` answered 101 (S must be 1).
 *
 * echo: every WebSocket keeps one masked text message of --size bytes in flight; each echo is checked
 * byte for byte against what was sent, then the next one goes. After --warmup s, echoes are counted
 * for --duration s: msg/s, round trip p50/p99 (µs), errors, the client's CPU and (--server-pid) the
 * server's CPU, as % of one core.
 * idle: reads the server's VmRSS, opens everything, holds --hold s (answering pings), reads VmRSS
 * again and counts the WebSockets still open: (after − before) / WebSockets.
 *
 * One thread, epoll, 127.0.0.1 only; every phase is bounded (--timeout for opening, ≤ 120 s for the
 * rest) and an alarm() ends the process if something overruns. Output: a text report on stderr and
 * one JSON line on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 20000
#define MAX_STREAMS 1000
#define MAX_SIZE 16384
#define HIST_US 2000000

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "h2wsload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

/* ------------------------------------------------------------------ options */

enum { MODE_ECHO, MODE_IDLE };
static struct {
    int mode, port, h1, connections, streams, size, warmup, duration, hold, timeout, server_pid;
    const char *path;
} opt = {MODE_ECHO, 0, 0, 8, 8, 32, 2, 10, 5, 60, 0, "/echo"};

static void usage(void) {
    fprintf(stderr,
            "usage: h2wsload echo|idle --port P [--path /echo] [--h1] [--connections C] [--streams S]\n"
            "       [--size N] [--warmup S] [--duration S] [--hold S] [--timeout S] [--server-pid PID]\n"
            "  h2c prior knowledge + RFC 8441 by default; --h1: HTTP/1.1 Upgrade, one WebSocket per connection\n");
    exit(2);
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
    p += 2;
    unsigned long long ut = 0, stt = 0;
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

static double self_cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ state */

typedef struct conn conn_t;
typedef struct {
    conn_t *c;
    int32_t id;
    int state; /* 0 pending, 1 open (WebSocket), 2 closed/failed */
    int status;
    uint8_t rbuf[MAX_SIZE + 16];
    size_t rlen;
    uint8_t sbuf[2 * (MAX_SIZE + 16)]; /* h2: bytes for the DATA provider */
    size_t slen, soff;
    uint8_t last[MAX_SIZE]; /* payload of the message in flight */
    uint64_t sent_at;
    int in_flight;
} stream_t;

struct conn {
    int fd, connected, dead, want_out, hs_done;
    nghttp2_session *s;
    stream_t *st;
    int nst, submitted;
    uint8_t *out;
    size_t olen, ooff, ocap;
    char hs[4096]; /* h1: the upgrade response so far */
    size_t hslen;
};

static conn_t *conns;
static int epfd;
static int ws_open, ws_failed, conn_failed;
static uint64_t phase_start, window_start, window_end;
static int stopping;
static uint64_t echoed_total, echoed_window, errors, mismatches, resets, closes_seen;
static uint32_t *hist;
static char errmsg[256];

static void note_error(const char *fmt, ...) {
    errors++;
    if (!errmsg[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errmsg, sizeof errmsg, fmt, ap);
        va_end(ap);
    }
}

static void out_append(conn_t *c, const uint8_t *p, size_t n) {
    if (c->ooff > 0 && c->ooff == c->olen) c->ooff = c->olen = 0;
    if (c->olen + n > c->ocap) {
        if (c->ooff > 0) {
            memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
            c->olen -= c->ooff;
            c->ooff = 0;
        }
        if (c->olen + n > c->ocap) {
            size_t cap = c->ocap ? c->ocap : 16384;
            while (cap < c->olen + n) cap *= 2;
            c->out = realloc(c->out, cap);
            if (!c->out) die("out of memory");
            c->ocap = cap;
        }
    }
    memcpy(c->out + c->olen, p, n);
    c->olen += n;
}

static void conn_fail(conn_t *c, const char *why) {
    if (c->dead) return;
    c->dead = 1;
    conn_failed++;
    if (!stopping) note_error("connection %ld: %s", (long)(c - conns), why);
    for (int i = 0; i < c->nst; i++) {
        if (c->st[i].state == 1) ws_open--;
        if (c->st[i].state == 0) ws_failed++;
        c->st[i].state = 2;
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

/* a masked client frame: FIN + opcode, length, mask, payload XOR mask */
static size_t build_frame(uint8_t *dst, int opcode, const uint8_t *payload, size_t n) {
    size_t h = 0;
    dst[h++] = 0x80 | (uint8_t)opcode;
    if (n < 126) {
        dst[h++] = 0x80 | (uint8_t)n;
    } else if (n < 65536) {
        dst[h++] = 0x80 | 126;
        dst[h++] = (uint8_t)(n >> 8);
        dst[h++] = (uint8_t)n;
    } else {
        dst[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) dst[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint32_t m = rnd32();
    uint8_t mask[4] = {(uint8_t)(m >> 24), (uint8_t)(m >> 16), (uint8_t)(m >> 8), (uint8_t)m};
    memcpy(dst + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) dst[h + i] = payload[i] ^ mask[i & 3];
    return h + n;
}

static void stream_send_frame(stream_t *st, int opcode, const uint8_t *payload, size_t n) {
    uint8_t frame[MAX_SIZE + 16];
    size_t len = build_frame(frame, opcode, payload, n);
    conn_t *c = st->c;
    if (opt.h1) {
        out_append(c, frame, len);
        return;
    }
    if (st->soff > 0 && st->soff == st->slen) st->soff = st->slen = 0;
    if (st->slen + len > sizeof st->sbuf) {
        note_error("stream send buffer full");
        return;
    }
    memcpy(st->sbuf + st->slen, frame, len);
    st->slen += len;
    nghttp2_session_resume_data(c->s, st->id);
}

static void send_next(stream_t *st) {
    static uint64_t seq;
    seq++;
    for (int i = 0; i < opt.size; i++) st->last[i] = (uint8_t)('a' + (seq + (uint64_t)i) % 26);
    if (opt.size >= 8) snprintf((char *)st->last, 9, "%08llx", (unsigned long long)(seq & 0xffffffffu)), st->last[8] = 'x';
    st->sent_at = now_ns();
    st->in_flight = 1;
    stream_send_frame(st, 1, st->last, (size_t)opt.size);
}

static void ws_opened(stream_t *st) {
    st->state = 1;
    ws_open++;
    if (opt.mode == MODE_ECHO && !stopping) send_next(st);
}

/* frames from the server (unmasked) */
static void ws_input(stream_t *st, const uint8_t *data, size_t len) {
    while (len > 0) {
        size_t take = sizeof st->rbuf - st->rlen;
        if (take > len) take = len;
        memcpy(st->rbuf + st->rlen, data, take);
        st->rlen += take;
        data += take;
        len -= take;
        for (;;) {
            if (st->rlen < 2) break;
            uint8_t b0 = st->rbuf[0], b1 = st->rbuf[1];
            size_t h = 2, n = b1 & 0x7f;
            if (n == 126) {
                if (st->rlen < 4) break;
                n = ((size_t)st->rbuf[2] << 8) | st->rbuf[3];
                h = 4;
            } else if (n == 127) {
                if (st->rlen < 10) break;
                n = 0;
                for (int i = 0; i < 8; i++) n = (n << 8) | st->rbuf[2 + i];
                h = 10;
            }
            if (b1 & 0x80) {
                note_error("masked frame from the server");
                h += 4;
            }
            if (n > MAX_SIZE) {
                note_error("frame of %zu bytes", n);
                conn_fail(st->c, "oversized frame");
                return;
            }
            if (st->rlen < h + n) break;
            const uint8_t *p = st->rbuf + h;
            int opcode = b0 & 0x0f;
            if (opcode == 9) { /* ping: pong */
                stream_send_frame(st, 10, p, n);
            } else if (opcode == 8) {
                closes_seen++;
                if (!stopping) note_error("close frame from the server (code %d)", n >= 2 ? (p[0] << 8 | p[1]) : 0);
                if (st->state == 1) ws_open--;
                st->state = 2;
            } else if (opcode == 1 || opcode == 2) {
                if (!st->in_flight || n != (size_t)opt.size || memcmp(p, st->last, n) != 0 || !(b0 & 0x80)) {
                    mismatches++;
                    note_error("echo mismatch (%zu bytes, in flight %d)", n, st->in_flight);
                } else {
                    uint64_t t = now_ns();
                    st->in_flight = 0;
                    echoed_total++;
                    if (t >= window_start && t < window_end) {
                        echoed_window++;
                        uint64_t us = (t - st->sent_at) / 1000;
                        hist[us < HIST_US ? us : HIST_US - 1]++;
                    }
                    if (!stopping) send_next(st);
                }
            }
            memmove(st->rbuf, st->rbuf + h + n, st->rlen - h - n);
            st->rlen -= h + n;
        }
    }
}

/* ------------------------------------------------------------------ nghttp2 callbacks */

static ssize_t data_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                            nghttp2_data_source *source, void *ud) {
    (void)s, (void)id, (void)flags, (void)ud;
    stream_t *st = source->ptr;
    size_t have = st->slen - st->soff;
    if (have == 0) return NGHTTP2_ERR_DEFERRED;
    if (have > length) have = length;
    memcpy(buf, st->sbuf + st->soff, have);
    st->soff += have;
    if (st->soff == st->slen) st->soff = st->slen = 0;
    return (ssize_t)have;
}

static int on_header_cb(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                        const uint8_t *value, size_t vl, uint8_t flags, void *ud) {
    (void)flags, (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    stream_t *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    (void)vl;
    if (st && nl == 7 && !memcmp(name, ":status", 7)) st->status = atoi((const char *)value); /* NUL-terminated */
    return 0;
}

static void submit_streams(conn_t *c);

static int on_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    conn_t *c = ud;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK) && !c->submitted) {
        if (nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL) != 1) {
            conn_fail(c, "the server's SETTINGS lack ENABLE_CONNECT_PROTOCOL = 1");
            return 0;
        }
        submit_streams(c);
    }
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        stream_t *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (!st || st->state != 0) return 0;
        if (st->status == 200) {
            ws_opened(st);
        } else {
            st->state = 2;
            ws_failed++;
            note_error("CONNECT answered %d", st->status);
        }
    }
    if (f->hd.type == NGHTTP2_GOAWAY && !stopping) note_error("GOAWAY from the server (error %u)", f->goaway.error_code);
    return 0;
}

static int on_data_chunk_cb(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud) {
    (void)flags, (void)ud;
    stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (st && st->state == 1) ws_input(st, data, len);
    return 0;
}

static int on_stream_close_cb(nghttp2_session *s, int32_t id, uint32_t code, void *ud) {
    (void)ud;
    stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st) return 0;
    if (!stopping) {
        resets++;
        note_error("stream %d closed (error code %u, WebSocket state %d)", id, code, st->state);
    }
    if (st->state == 1) ws_open--;
    if (st->state == 0) ws_failed++;
    st->state = 2;
    return 0;
}

static nghttp2_session_callbacks *callbacks;

static void submit_streams(conn_t *c) {
    char authority[32];
    snprintf(authority, sizeof authority, "127.0.0.1:%d", opt.port);
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv nva[] = {
        NV(":method", "CONNECT"), NV(":protocol", "websocket"), NV(":scheme", "http"),
        NV(":path", opt.path),    NV(":authority", authority),  NV("sec-websocket-version", "13"),
    };
    c->submitted = 1;
    for (int i = 0; i < c->nst; i++) {
        stream_t *st = &c->st[i];
        nghttp2_data_provider prd;
        prd.source.ptr = st;
        prd.read_callback = data_read_cb;
        int32_t id = nghttp2_submit_request(c->s, NULL, nva, sizeof nva / sizeof nva[0], &prd, st);
        if (id < 0) {
            note_error("nghttp2_submit_request: %s", nghttp2_strerror(id));
            st->state = 2;
            ws_failed++;
            continue;
        }
        st->id = id;
    }
}

/* ------------------------------------------------------------------ I/O */

static void set_events(conn_t *c, int out) {
    if (c->dead || c->want_out == out) return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

static void flush(conn_t *c) {
    for (;;) {
        if (c->dead || !c->connected) return;
        if (c->ooff < c->olen) {
            ssize_t w = write(c->fd, c->out + c->ooff, c->olen - c->ooff);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    set_events(c, 1);
                    return;
                }
                conn_fail(c, strerror(errno));
                return;
            }
            c->ooff += (size_t)w;
            if (c->ooff < c->olen) {
                set_events(c, 1);
                return;
            }
            c->ooff = c->olen = 0;
        }
        if (opt.h1 || !c->s) break;
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->s, &data);
        if (n < 0) {
            conn_fail(c, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0) break;
        out_append(c, data, (size_t)n);
    }
    set_events(c, 0);
}

static void on_connected(conn_t *c) {
    c->connected = 1;
    if (opt.h1) {
        char req[512];
        uint8_t key[16];
        for (int i = 0; i < 16; i++) key[i] = (uint8_t)rnd32();
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char k[25];
        for (int i = 0, j = 0; i < 16; i += 3) {
            uint32_t v = (uint32_t)key[i] << 16 | (i + 1 < 16 ? (uint32_t)key[i + 1] << 8 : 0) | (i + 2 < 16 ? key[i + 2] : 0);
            k[j++] = b64[v >> 18 & 63];
            k[j++] = b64[v >> 12 & 63];
            k[j++] = i + 1 < 16 ? b64[v >> 6 & 63] : '=';
            k[j++] = i + 2 < 16 ? b64[v & 63] : '=';
            k[j] = 0;
        }
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                         opt.path, opt.port, k);
        out_append(c, (uint8_t *)req, (size_t)n);
    } else {
        nghttp2_session_client_new(&c->s, callbacks, c);
        nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                       {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
        nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 2);
    }
    flush(c);
}

static void on_readable(conn_t *c) {
    uint8_t buf[65536];
    for (;;) {
        if (c->dead) return;
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            conn_fail(c, strerror(errno));
            return;
        }
        if (n == 0) {
            conn_fail(c, "closed by the server");
            return;
        }
        if (opt.h1) {
            const uint8_t *p = buf;
            size_t len = (size_t)n;
            if (!c->hs_done) {
                size_t take = sizeof c->hs - 1 - c->hslen;
                if (take > len) take = len;
                memcpy(c->hs + c->hslen, p, take);
                c->hslen += take;
                c->hs[c->hslen] = 0;
                char *end = strstr(c->hs, "\r\n\r\n");
                if (!end) {
                    if (c->hslen >= sizeof c->hs - 1) conn_fail(c, "upgrade response too long");
                    continue;
                }
                if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0) {
                    conn_fail(c, "upgrade not answered 101");
                    return;
                }
                c->hs_done = 1;
                size_t used = (size_t)(end + 4 - c->hs) - (c->hslen - take);
                p += used;
                len -= used;
                ws_opened(&c->st[0]);
            }
            if (len > 0) ws_input(&c->st[0], p, len);
        } else {
            ssize_t r = nghttp2_session_mem_recv(c->s, buf, (size_t)n);
            if (r < 0) {
                conn_fail(c, nghttp2_strerror((int)r));
                return;
            }
        }
    }
    flush(c);
}

static void start_connection(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(c->fd, (struct sockaddr *)&a, sizeof a);
    if (r < 0 && errno != EINPROGRESS) die("connect: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->want_out = 1;
}

static void poll_once(int ms) {
    struct epoll_event evs[256];
    int n = epoll_wait(epfd, evs, 256, ms);
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        if (c->dead) continue;
        if (!c->connected) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err) {
                conn_fail(c, strerror(err));
                continue;
            }
            if (evs[i].events & (EPOLLOUT | EPOLLIN)) on_connected(c);
            else continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
        if (!c->dead && (evs[i].events & EPOLLOUT)) flush(c);
    }
}

static int total_ws(void) { return opt.connections * opt.streams; }

int main(int argc, char **argv) {
    if (argc < 2) usage();
    if (!strcmp(argv[1], "echo")) opt.mode = MODE_ECHO;
    else if (!strcmp(argv[1], "idle")) opt.mode = MODE_IDLE;
    else usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define INTOPT(name, field)                  \
    if (!strcmp(a, name)) {                  \
        if (!v) usage();                     \
        opt.field = atoi(v);                 \
        i++;                                 \
        continue;                            \
    }
        INTOPT("--port", port) INTOPT("--connections", connections) INTOPT("--streams", streams)
        INTOPT("--size", size) INTOPT("--warmup", warmup) INTOPT("--duration", duration) INTOPT("--hold", hold)
        INTOPT("--timeout", timeout) INTOPT("--server-pid", server_pid)
        if (!strcmp(a, "--h1")) { opt.h1 = 1; continue; }
        if (!strcmp(a, "--path") && v) { opt.path = v; i++; continue; }
        usage();
    }
    if (opt.h1 && opt.streams != 1) {
        if (opt.streams == 8) opt.streams = 1; /* the default */
        else die("--h1 carries one WebSocket per connection: --streams 1");
    }
    if (opt.port <= 0 || opt.port > 65535) die("--port required");
    if (opt.connections < 1 || opt.connections > MAX_CONNECTIONS) die("--connections 1...%d", MAX_CONNECTIONS);
    if (opt.streams < 1 || opt.streams > MAX_STREAMS) die("--streams 1...%d", MAX_STREAMS);
    if (opt.size < 1 || opt.size > MAX_SIZE) die("--size 1...%d", MAX_SIZE);
    if (opt.warmup < 0 || opt.warmup > 60 || opt.duration < 1 || opt.duration > 120 || opt.hold < 0 || opt.hold > 120 ||
        opt.timeout < 1 || opt.timeout > 120)
        die("--warmup ≤ 60, --duration 1...120, --hold ≤ 120, --timeout 1...120");
    alarm((unsigned)(opt.timeout + opt.warmup + opt.duration + opt.hold + 30));
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)opt.connections + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    hist = calloc(HIST_US, sizeof *hist);
    conns = calloc((size_t)opt.connections, sizeof *conns);
    if (!hist || !conns) die("out of memory");
    rng_state ^= (uint64_t)now_ns() | 1;

    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close_cb);

    epfd = epoll_create1(0);
    long rss_before = opt.server_pid ? proc_status_kib(opt.server_pid, "VmRSS") : -1;
    double srv0 = -1, srv1 = -1, me0 = 0, me1 = 0;

    /* open: connections at most 64 in their handshake at once (h1), all at once (h2: few) */
    phase_start = now_ns();
    window_start = window_end = UINT64_MAX;
    int started = 0;
    for (int i = 0; i < opt.connections; i++) {
        conns[i].nst = opt.streams;
        conns[i].st = calloc((size_t)opt.streams, sizeof(stream_t));
        if (!conns[i].st) die("out of memory");
        for (int j = 0; j < opt.streams; j++) conns[i].st[j].c = &conns[i];
    }
    uint64_t deadline = phase_start + (uint64_t)opt.timeout * 1000000000ull;
    while (now_ns() < deadline) {
        int in_progress = 0;
        for (int i = 0; i < started; i++)
            if (!conns[i].dead && (!conns[i].connected || (opt.h1 && !conns[i].hs_done))) in_progress++;
        while (started < opt.connections && (!opt.h1 || in_progress < 64)) {
            start_connection(&conns[started++]);
            in_progress++;
        }
        if (ws_open + ws_failed >= total_ws() && started == opt.connections) break;
        poll_once(10);
    }
    double open_s = (double)(now_ns() - phase_start) / 1e9;
    int opened = ws_open;
    fprintf(stderr, "opened %d of %d WebSockets (%s, %d connections x %d) in %.2f s\n", opened, total_ws(),
            opt.h1 ? "HTTP/1.1" : "h2c RFC 8441", opt.connections, opt.streams, open_s);

    long rss_after = -1, hwm_after = -1;
    int open_at_end = 0;
    if (opt.mode == MODE_ECHO) {
        uint64_t t0 = now_ns();
        window_start = t0 + (uint64_t)opt.warmup * 1000000000ull;
        window_end = window_start + (uint64_t)opt.duration * 1000000000ull;
        int in_window = 0;
        while (now_ns() < window_end) {
            if (!in_window && now_ns() >= window_start) {
                in_window = 1;
                me0 = self_cpu_s();
                if (opt.server_pid) srv0 = proc_cpu_s(opt.server_pid);
            }
            poll_once(5);
        }
        me1 = self_cpu_s();
        if (opt.server_pid) srv1 = proc_cpu_s(opt.server_pid);
        open_at_end = ws_open;
        stopping = 1;
        /* let the messages in flight come back (bounded) */
        uint64_t drain_end = now_ns() + 1000000000ull;
        while (now_ns() < drain_end) {
            int pending = 0;
            for (int i = 0; i < opt.connections && !pending; i++)
                for (int j = 0; j < conns[i].nst; j++)
                    if (conns[i].st[j].state == 1 && conns[i].st[j].in_flight) { pending = 1; break; }
            if (!pending) break;
            poll_once(5);
        }
    } else {
        uint64_t hold_end = now_ns() + (uint64_t)opt.hold * 1000000000ull;
        while (now_ns() < hold_end) poll_once(50);
        open_at_end = ws_open;
        if (opt.server_pid) {
            rss_after = proc_status_kib(opt.server_pid, "VmRSS");
            hwm_after = proc_status_kib(opt.server_pid, "VmHWM");
        }
        stopping = 1;
    }
    /* close: RST the TCP connections (no close handshake: the numbers are taken) */
    for (int i = 0; i < opt.connections; i++)
        if (!conns[i].dead && conns[i].fd > 0) {
            struct linger lg = {1, 0};
            setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(conns[i].fd);
            conns[i].dead = 1;
        }

    double secs = (double)opt.duration;
    uint64_t p50 = 0, p99 = 0, maxus = 0, acc = 0;
    for (uint64_t us = 0; us < HIST_US; us++) {
        if (!hist[us]) continue;
        acc += hist[us];
        if (!p50 && acc * 2 >= echoed_window) p50 = us;
        if (!p99 && acc * 100 >= echoed_window * 99) p99 = us;
        maxus = us;
    }
    const char *transport = opt.h1 ? "h1" : "h2";
    if (opt.mode == MODE_ECHO) {
        double cpu = 100.0 * (me1 - me0) / secs, scpu = srv0 >= 0 && srv1 >= 0 ? 100.0 * (srv1 - srv0) / secs : -1;
        fprintf(stderr,
                "echo %s: %d connections x %d WebSockets, %d B text, one in flight each; %d s warm-up, %d s counted\n"
                "msg/s:        %.0f\nround trip:   p50 %llu us, p99 %llu us, max %llu us\n"
                "open at end:  %d of %d\nerrors:       %llu (mismatches %llu, stream resets %llu, closes %llu)%s%s\n"
                "cpu:          client %.0f%%, server %.0f%% of one core\n",
                transport, opt.connections, opt.streams, opt.size, opt.warmup, opt.duration, echoed_window / secs,
                (unsigned long long)p50, (unsigned long long)p99, (unsigned long long)maxus, open_at_end, total_ws(),
                (unsigned long long)errors, (unsigned long long)mismatches, (unsigned long long)resets,
                (unsigned long long)closes_seen, errmsg[0] ? "; first: " : "", errmsg, cpu, scpu);
        printf("{\"mode\":\"echo\",\"transport\":\"%s\",\"connections\":%d,\"streams\":%d,\"size\":%d,\"warmup\":%d,"
               "\"duration\":%d,\"opened\":%d,\"open_at_end\":%d,\"msgs_per_s\":%.1f,\"echoed\":%llu,\"p50_us\":%llu,"
               "\"p99_us\":%llu,\"max_us\":%llu,\"errors\":%llu,\"mismatches\":%llu,\"resets\":%llu,"
               "\"client_cpu_pct\":%.1f,\"server_cpu_pct\":%.1f,\"first_error\":\"%s\"}\n",
               transport, opt.connections, opt.streams, opt.size, opt.warmup, opt.duration, opened, open_at_end,
               echoed_window / secs, (unsigned long long)echoed_window, (unsigned long long)p50,
               (unsigned long long)p99, (unsigned long long)maxus, (unsigned long long)errors,
               (unsigned long long)mismatches, (unsigned long long)resets, cpu, scpu, errmsg);
    } else {
        double per = open_at_end > 0 && rss_before >= 0 && rss_after >= 0 ? (double)(rss_after - rss_before) / open_at_end : -1;
        fprintf(stderr,
                "idle %s: %d connections x %d WebSockets held %d s; open at the end %d\n"
                "server VmRSS: %ld KiB before -> %ld KiB after (VmHWM %ld KiB)\nper WebSocket: %.2f KiB\n"
                "errors:       %llu%s%s\n",
                transport, opt.connections, opt.streams, opt.hold, open_at_end, rss_before, rss_after, hwm_after, per,
                (unsigned long long)errors, errmsg[0] ? "; first: " : "", errmsg);
        printf("{\"mode\":\"idle\",\"transport\":\"%s\",\"connections\":%d,\"streams\":%d,\"hold\":%d,\"opened\":%d,"
               "\"open_at_end\":%d,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"hwm_after_kib\":%ld,"
               "\"kib_per_websocket\":%.3f,\"errors\":%llu,\"first_error\":\"%s\"}\n",
               transport, opt.connections, opt.streams, opt.hold, opened, open_at_end, rss_before, rss_after,
               hwm_after, per, (unsigned long long)errors, errmsg);
    }
    return errors || open_at_end < total_ws() ? 1 : 0;
}
