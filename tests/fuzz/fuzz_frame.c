/*
 * fuzz_frame - libFuzzer target for the frame decoder (proto/frame.[ch])
 * and the protobuf decoding of what it cuts out.
 *
 * The input is: two bytes that choose the frame limit and how the stream
 * is split into reads, then the byte stream itself. The stream is decoded
 * the way waiterd does it (buffer what arrives, take whole frames, stop at
 * a frame over the limit) once in a single read and once in the chosen
 * split reads; both must yield the same frames. Each frame is unpacked as
 * a Request and as a ServerMessage (the daemon's and the clients' side),
 * and what unpacks must pack again to its packed size.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "waiter.pb-c.h"

/* Frames compared between the two decodings; more are decoded, not kept. */
#define MAX_SEEN 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct decoding {
	size_t offsets[MAX_SEEN], lens[MAX_SEEN];
	size_t n;               /* frames taken */
	int too_large;          /* stopped at a frame over the limit */
};

static void
check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_frame: %s\n", what);
		abort();
	}
}

static void
unpack_all(const uint8_t *p, size_t n)
{
	Waiter__V1__Request *req = waiter__v1__request__unpack(NULL, n, p);
	Waiter__V1__ServerMessage *sm = waiter__v1__server_message__unpack(NULL, n, p);
	uint8_t *out;
	size_t len;

	if (req != NULL) {
		len = waiter__v1__request__get_packed_size(req);
		out = malloc(len + 1);
		check(out != NULL, "malloc");
		check(waiter__v1__request__pack(req, out) == len,
		    "a Request packs to other than its packed size");
		free(out);
		waiter__v1__request__free_unpacked(req, NULL);
	}
	if (sm != NULL) {
		len = waiter__v1__server_message__get_packed_size(sm);
		out = malloc(len + 1);
		check(out != NULL, "malloc");
		check(waiter__v1__server_message__pack(sm, out) == len,
		    "a ServerMessage packs to other than its packed size");
		free(out);
		waiter__v1__server_message__free_unpacked(sm, NULL);
	}
}

/* Take the whole frames at the start of buf[*start, avail). */
static void
take_frames(const uint8_t *buf, size_t *start, size_t avail, uint32_t max,
    struct decoding *d, int unpack)
{
	uint32_t n;

	while (!d->too_large) {
		switch (frame_next(buf + *start, avail - *start, max, &n)) {
		case FRAME_NEED_MORE:
			return;
		case FRAME_TOO_LARGE:
			check(avail - *start >= FRAME_HEADER_LEN, "too large without a header");
			check(frame_get_header(buf + *start) > max, "too large within the limit");
			d->too_large = 1;
			return;
		case FRAME_OK:
			check(n <= max, "a frame over the limit was taken");
			check((size_t)n + FRAME_HEADER_LEN <= avail - *start,
			    "a frame longer than the bytes there was taken");
			check(frame_get_header(buf + *start) == n, "the length is not the header's");
			if (d->n < MAX_SEEN) {
				d->offsets[d->n] = *start;
				d->lens[d->n] = n;
			}
			d->n++;
			if (unpack)
				unpack_all(buf + *start + FRAME_HEADER_LEN, n);
			*start += FRAME_HEADER_LEN + n;
			break;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct decoding whole, split;
	uint8_t hdr[FRAME_HEADER_LEN];
	const uint8_t *stream;
	size_t len, start, avail;
	uint32_t max, state;

	if (size < 2)
		return 0;
	/* Limits from 64 bytes (waiterd's smallest --max-frame) upwards. */
	max = UINT32_C(64) << (data[0] % 24);
	state = (uint32_t)data[0] << 8 | data[1] | 1;
	stream = data + 2;
	len = size - 2;

	memset(&whole, 0, sizeof whole);
	start = 0;
	take_frames(stream, &start, len, max, &whole, 1);

	/* The same stream in reads of 1 to 64 bytes, as a socket may give it. */
	memset(&split, 0, sizeof split);
	start = 0;
	for (avail = 0; avail < len && !split.too_large;) {
		state ^= state << 13;
		state ^= state >> 17;
		state ^= state << 5;
		avail += 1 + state % 64;
		if (avail > len)
			avail = len;
		take_frames(stream, &start, avail, max, &split, 0);
	}
	check(whole.n == split.n, "split reads found another number of frames");
	check(whole.too_large == split.too_large, "split reads disagree on a frame too large");
	for (size_t i = 0; i < whole.n && i < MAX_SEEN; i++)
		check(whole.offsets[i] == split.offsets[i] && whole.lens[i] == split.lens[i],
		    "split reads cut the frames elsewhere");

	/* The header round trip, on the first four bytes there are. */
	if (len >= FRAME_HEADER_LEN) {
		frame_put_header(hdr, frame_get_header(stream));
		check(memcmp(hdr, stream, FRAME_HEADER_LEN) == 0, "header round trip");
	}
	return 0;
}
