/* test_frame.c - the length prefix: partial frames, zero length, oversize,
 * several frames in one read, and a real Request round trip. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "frame.h"
#include "tap.h"
#include "waiter.pb-c.h"

static size_t
put_frame(uint8_t *buf, const uint8_t *payload, uint32_t n)
{
	frame_put_header(buf, n);
	if (n > 0)
		memcpy(buf + FRAME_HEADER_LEN, payload, n);
	return FRAME_HEADER_LEN + n;
}

int
main(void)
{
	uint8_t buf[256], hdr[4];
	uint32_t n = 12345;
	size_t len, off;
	int frames;

	frame_put_header(hdr, 0x01020304);
	ok(hdr[0] == 1 && hdr[1] == 2 && hdr[2] == 3 && hdr[3] == 4, "header is big-endian");
	is_int(frame_get_header(hdr), 0x01020304, "header round trip");

	/* Partial frames: every prefix of a frame needs more. */
	len = put_frame(buf, (const uint8_t *)"hello", 5);
	for (size_t i = 0; i < len; i++)
		if (frame_next(buf, i, 1024, &n) != FRAME_NEED_MORE)
			break;
		else if (i == len - 1)
			ok(1, "all %zu proper prefixes need more", len);
	is_int(frame_next(buf, len, 1024, &n), FRAME_OK, "whole frame is ok");
	is_int(n, 5, "payload length 5");

	/* Zero length is a frame (an empty message). */
	put_frame(buf, NULL, 0);
	is_int(frame_next(buf, 4, 1024, &n), FRAME_OK, "zero-length frame is ok");
	is_int(n, 0, "payload length 0");

	/* Oversize is judged from the header alone. */
	frame_put_header(buf, 1025);
	is_int(frame_next(buf, 4, 1024, &n), FRAME_TOO_LARGE, "1025 > 1024 is too large");
	frame_put_header(buf, 0x80000000u);
	is_int(frame_next(buf, 4, FRAME_DEFAULT_MAX, &n), FRAME_TOO_LARGE,
	    "a 2^31 length prefix is too large at once");
	frame_put_header(buf, 1024);
	is_int(frame_next(buf, 4, 1024, &n), FRAME_NEED_MORE, "exactly the limit is allowed");

	/* Several frames in one read. */
	off = put_frame(buf, (const uint8_t *)"a", 1);
	off += put_frame(buf + off, (const uint8_t *)"bcd", 3);
	off += put_frame(buf + off, NULL, 0);
	off += put_frame(buf + off, (const uint8_t *)"ef", 2);
	len = off;
	frames = 0;
	for (off = 0; frame_next(buf + off, len - off, 1024, &n) == FRAME_OK;
	    off += FRAME_HEADER_LEN + n)
		frames++;
	is_int(frames, 4, "four frames found in one buffer");
	is_int(off, len, "and every byte consumed");

	/* A real Request survives framing. */
	{
		Waiter__V1__Request req = WAITER__V1__REQUEST__INIT, *back;
		Waiter__V1__Ping ping = WAITER__V1__PING__INIT;
		size_t sz;

		req.id = 42;
		req.op_case = WAITER__V1__REQUEST__OP_PING;
		req.ping = &ping;
		sz = waiter__v1__request__get_packed_size(&req);
		frame_put_header(buf, (uint32_t)sz);
		waiter__v1__request__pack(&req, buf + FRAME_HEADER_LEN);
		is_int(frame_next(buf, sz + 4, 1024, &n), FRAME_OK, "packed request frames");
		back = waiter__v1__request__unpack(NULL, n, buf + FRAME_HEADER_LEN);
		ok(back && back->id == 42 && back->op_case == WAITER__V1__REQUEST__OP_PING,
		    "request unpacks with id and op");
		waiter__v1__request__free_unpacked(back, NULL);
		ok(waiter__v1__request__unpack(NULL, 2, (const uint8_t *)"\xff\xff") == NULL,
		    "garbage does not unpack");
	}
	return done_testing();
}
