/* ssefan: Server-Sent Events fan-out load: N clients on one feed, delivery rate and latency.
 *
 *   ssefan --port 18081 [--path /events] [--clients 1000] [--warmup 2] [--duration 10]
 *
 * Opens N connections to 127.0.0.1 (no other host), each `GET PATH` with `Accept:
 * text/event-stream`, checks `200` and the content type, then reads events. The server's events
 * carry `data: <wall-clock ns when published>`: each delivery's latency is now minus that (same
 * machine, CLOCK_REALTIME). After --warmup seconds it counts for --duration seconds and prints
 * deliveries/s, p50/p99/max latency (ms), clients connected, and errors. One thread, edge-triggered
 * epoll; bounded: at most 20000 clients, 120 s, and a hard alarm. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 20000
#define BUF 8192

typedef struct {
    int fd;
    int head_done;
    size_t len;
    char buf[BUF];
} client;

static int64_t now_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void die(const char *what) {
    fprintf(stderr, "ssefan: %s\n", what);
    exit(2);
}

int main(int argc, char **argv) {
    int port = 0, clients = 1000;
    double warmup = 2, duration = 10;
    const char *path = "/events";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--port") && v) port = atoi(argv[++i]);
        else if (!strcmp(a, "--path") && v) path = argv[++i];
        else if (!strcmp(a, "--clients") && v) clients = atoi(argv[++i]);
        else if (!strcmp(a, "--warmup") && v) warmup = atof(argv[++i]);
        else if (!strcmp(a, "--duration") && v) duration = atof(argv[++i]);
        else die("usage: ssefan --port N [--path /events] [--clients 1000] [--warmup 2] [--duration 10]");
    }
    if (port <= 0 || port > 65535) die("--port is required");
    if (clients < 1 || clients > MAX_CLIENTS) die("--clients must be in [1, 20000]");
    if (warmup < 0 || warmup > 60 || duration < 0.1 || duration > 120) die("--warmup in [0, 60], --duration in [0.1, 120]");
    alarm((unsigned)(warmup + duration + 60));  /* a hard end, whatever happens */
    signal(SIGPIPE, SIG_IGN);

    client *cs = calloc((size_t)clients, sizeof(client));
    size_t lat_cap = 1 << 20, lat_n = 0;
    int64_t *lat = malloc(lat_cap * sizeof(int64_t));
    if (!cs || !lat) die("out of memory");
    int ep = epoll_create1(0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    char request[512];
    int request_len = snprintf(request, sizeof request,
                               "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n\r\n", path, port);
    int errors = 0, connected = 0;
    for (int i = 0; i < clients; i++) {  /* blocking connects: the server accepts as fast as we open */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { errors++; if (fd >= 0) close(fd); cs[i].fd = -1; continue; }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (write(fd, request, (size_t)request_len) != request_len) { errors++; close(fd); cs[i].fd = -1; continue; }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        cs[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    int64_t start = now_ns(CLOCK_MONOTONIC);
    int64_t measure_from = start + (int64_t)(warmup * 1e9), measure_to = measure_from + (int64_t)(duration * 1e9);
    uint64_t delivered = 0;
    struct epoll_event events[256];
    for (;;) {
        int64_t now = now_ns(CLOCK_MONOTONIC);
        if (now >= measure_to) break;
        int n = epoll_wait(ep, events, 256, 50);
        for (int e = 0; e < n; e++) {
            client *c = &cs[events[e].data.u32];
            for (;;) {
                ssize_t got = read(c->fd, c->buf + c->len, BUF - 1 - c->len);
                if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                    errors++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->fd = -1;
                    break;
                }
                if (got < 0) break;
                c->len += (size_t)got;
                c->buf[c->len] = 0;
                char *p = c->buf;
                if (!c->head_done) {
                    char *end = strstr(p, "\r\n\r\n");
                    if (!end) continue;
                    if (strncmp(p, "HTTP/1.1 200", 12) != 0 || !strcasestr(p, "text/event-stream")) die("not an event stream: wrong status or content type");
                    c->head_done = 1;
                    connected++;
                    p = end + 4;
                }
                int64_t received = now_ns(CLOCK_REALTIME), mono = now_ns(CLOCK_MONOTONIC);
                char *line;
                while ((line = strchr(p, '\n'))) {  /* chunk-size lines and blank lines are skipped */
                    if (!strncmp(p, "data: ", 6)) {
                        int64_t sent = strtoll(p + 6, NULL, 10);
                        if (mono >= measure_from && mono < measure_to) {
                            delivered++;
                            if (lat_n == lat_cap) { lat_cap *= 2; lat = realloc(lat, lat_cap * sizeof(int64_t)); if (!lat) die("out of memory"); }
                            lat[lat_n++] = received - sent;
                        }
                    }
                    p = line + 1;
                }
                c->len = (size_t)(c->buf + c->len - p);
                memmove(c->buf, p, c->len);
                if (c->len >= BUF - 1) die("an event line longer than the buffer");
            }
        }
    }
    qsort(lat, lat_n, sizeof(int64_t), cmp64);
    double ms = 1e6;
    printf("clients %d connected %d errors %d\n", clients, connected, errors);
    printf("deliveries/s %.0f (expected %d: one event per 10 ms to each)\n", delivered / duration, connected * 100);
    if (lat_n) {
        printf("latency ms p50 %.2f p99 %.2f max %.2f\n", lat[lat_n / 2] / ms, lat[(size_t)(lat_n * 0.99)] / ms, lat[lat_n - 1] / ms);
    }
    return errors ? 1 : 0;
}
