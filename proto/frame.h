/*
 * frame.h - length-prefixed framing shared by waiterd and libwaiter.
 *
 * Every message on the socket is a 4-byte big-endian unsigned length N,
 * then N bytes of one protobuf message (Request or ServerMessage).
 * This module owns the header arithmetic and nothing else: it never reads
 * or writes a socket, so both the daemon (evbuffers) and the client (plain
 * buffers) use it, and the unit tests can feed it anything.
 */
#ifndef WAITER_FRAME_H
#define WAITER_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Protocol version spoken in Hello. Bump me when a change is not
 * backwards compatible (renumbered fields, changed meanings). */
#define WAITER_PROTOCOL_VERSION 1

#define FRAME_HEADER_LEN 4
/* Default limit on N: large enough for any request this protocol has,
 * small enough that a hostile length costs nothing. waiterd --max-frame. */
#define FRAME_DEFAULT_MAX (1024 * 1024)
/* No frame is ever larger than this, whatever the option says. */
#define FRAME_HARD_MAX (64 * 1024 * 1024)

enum frame_status {
	FRAME_OK,        /* a whole frame is present: *payload_len is set */
	FRAME_NEED_MORE, /* not enough bytes yet */
	FRAME_TOO_LARGE  /* the header announces more than the limit */
};

/* Look at the start of buf (avail bytes) for one frame of at most max bytes. */
enum frame_status frame_next(const uint8_t *buf, size_t avail, uint32_t max,
    uint32_t *payload_len);

void frame_put_header(uint8_t out[FRAME_HEADER_LEN], uint32_t payload_len);
uint32_t frame_get_header(const uint8_t in[FRAME_HEADER_LEN]);

#endif
