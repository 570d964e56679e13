/*
 * metrics.h - the Prometheus endpoint (--metrics-listen ADDRESS:PORT, off
 * by default): GET /metrics answers the Stats counters in the text
 * exposition format (clients/c/prometheus.c), served by libevent's evhttp
 * on the daemon's loop. It is unauthenticated: bind it to loopback or a
 * pod's own network (doc/metrics.md). Connections, header and body sizes
 * and idle time are bounded.
 */
#ifndef WAITERD_METRICS_H
#define WAITERD_METRICS_H

/* Limits, each with its reason. */
#define METRICS_MAX_CONNS 16            /* a scraper keeps one; a few and a curl fit */
#define METRICS_TIMEOUT_S 10            /* idle or slow connections: a scraper reconnects */
#define METRICS_MAX_HEADERS 8192        /* a scrape's headers take a few hundred bytes */
#define METRICS_MAX_BODY 1024           /* a GET has none; enough to answer 405 to a POST */
#define METRICS_BACKLOG 16
#define METRICS_RETRY_US 1000000        /* accept again this long after EMFILE */

/* At flag time: check ADDRESS:PORT (a numeric IPv4 address, or an IPv6
 * one in brackets; port 0 picks a free one). 0, or -1 with *cause. */
int metrics_configure(const char *spec, const char **cause);
/* At start-up, once the event base exists: listen if configured and log
 * the address (with the port bound). 0, or -1 with *cause. */
int metrics_listen(const char **cause);
void metrics_free(void);

#endif
