/*
 * watch_endpoint.h - endpoint watches: tcp:HOST:PORT (names resolved by a
 * worker) or unix:PATH; non-blocking connect attempts with capped
 * exponential backoff until one succeeds (ENDPOINT_READY) or the timeout
 * passes (WATCH_TIMED_OUT).
 */
#ifndef WAITERD_WATCH_ENDPOINT_H
#define WAITERD_WATCH_ENDPOINT_H

#include "waiterd.h"

op_fn watch_endpoint_op_create;
void watch_endpoint_free(void);

#endif
