/*
 * watch_endpoint.h - endpoint watches: tcp:HOST:PORT (names resolved by a
 * worker) or unix:PATH; non-blocking connect attempts with capped
 * exponential backoff until one succeeds (ENDPOINT_READY) or the timeout
 * passes (WATCH_TIMED_OUT).
 */
#ifndef WAITERD_WATCH_ENDPOINT_H
#define WAITERD_WATCH_ENDPOINT_H

#include "state.h"
#include "waiterd.h"

op_fn watch_endpoint_op_create;
/* At start-up: put back an endpoint watch of the state file (state.c);
 * probing resumes, and a timeout passed meanwhile ends it at once. */
void watch_endpoint_restore(uint64_t id, const Waiter__State__V1__StoredObject *so);
void watch_endpoint_free(void);

#endif
