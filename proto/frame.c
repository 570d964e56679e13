/* frame.c - the 4-byte big-endian length prefix. */
#include "config.h"

#include "frame.h"

void
frame_put_header(uint8_t out[FRAME_HEADER_LEN], uint32_t payload_len)
{
	out[0] = (uint8_t)(payload_len >> 24);
	out[1] = (uint8_t)(payload_len >> 16);
	out[2] = (uint8_t)(payload_len >> 8);
	out[3] = (uint8_t)payload_len;
}

uint32_t
frame_get_header(const uint8_t in[FRAME_HEADER_LEN])
{
	return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 |
	    (uint32_t)in[2] << 8 | (uint32_t)in[3];
}

enum frame_status
frame_next(const uint8_t *buf, size_t avail, uint32_t max, uint32_t *payload_len)
{
	uint32_t n;

	if (avail < FRAME_HEADER_LEN)
		return FRAME_NEED_MORE;
	n = frame_get_header(buf);
	/* Judge the header before waiting for the body: a hostile length
	 * must be refused at once, not after we buffered it. */
	if (n > max)
		return FRAME_TOO_LARGE;
	if (avail - FRAME_HEADER_LEN < n)
		return FRAME_NEED_MORE;
	*payload_len = n;
	return FRAME_OK;
}
