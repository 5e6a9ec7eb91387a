/* Fuzz target: the frame receive path of lib/net. Party 0 of an in-process
 * network (cdm_net_local: real socketpairs, the code path of TCP) writes a
 * byte stream to party 1 and hangs up; party 1 then runs up to four rounds
 * expecting messages of fuzz-chosen lengths from party 0. Input layout:
 *   byte 0      bits 0-1: rounds - 1; bit 2: raw mode
 *   bytes 1-8   four expected lengths, u16 little endian, masked to 16 KiB
 *   raw mode    the rest goes out as is (the first 32 bytes where a frame
 *               header belongs)
 *   frame mode  records [ctl u8][len u16][payload]: a frame with the real
 *               session id and sequence number, except as ctl says: bit 0
 *               bad magic, bit 1 wrong session, bit 2 seq + 1, bit 3 the
 *               length field lies (xor ctl >> 4), bit 4 nonzero flags.
 * Properties: never a crash, hang or sanitizer report; a failed round is
 * CDM_EPROTO or CDM_ENET with a message; a round that succeeds read a frame
 * whose header was right and declared the expected length, and delivered
 * exactly its payload. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "../../lib/net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LEN 16384

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }

struct sent {
	int n;
	int hdr_ok[8];          /* magic, flags, session and seq of frame k are right */
	uint64_t declared[8];   /* its length field */
	size_t len[8];          /* the payload bytes that followed it */
	const uint8_t *payload[8];
};

/* frame mode: build and send each record as one frame */
static void send_frames(cdm_net *p0, const uint8_t *d, size_t n, struct sent *s)
{
	static uint8_t buf[32 + MAX_LEN];
	struct cdm_err err = {0};
	uint64_t session = cdm_net_session(p0);
	size_t off = 0;
	while (off + 3 <= n && s->n < 8) {
		uint8_t ctl = d[off];
		size_t len = (size_t)(d[off + 1] | d[off + 2] << 8) % (MAX_LEN + 1);
		off += 3;
		if (len > n - off)
			len = n - off;
		put32(buf, (ctl & 1) ? 0x314d4444u : 0x314d4443u);
		put32(buf + 4, (ctl & 16) ? 2u : 0u);
		put64(buf + 8, (ctl & 2) ? session ^ 0x100 : session);
		put64(buf + 16, (uint64_t)s->n + ((ctl & 4) ? 1 : 0));
		put64(buf + 24, (ctl & 8) ? len ^ (uint64_t)(ctl >> 4 | 1) : len);
		memcpy(buf + 32, d + off, len);
		s->hdr_ok[s->n] = (ctl & 0x17) == 0;
		s->declared[s->n] = (ctl & 8) ? len ^ (uint64_t)(ctl >> 4 | 1) : len;
		s->len[s->n] = len;
		s->payload[s->n++] = d + off;
		off += len;
		if (cdm_net_send_raw(p0, 1, buf, 32 + len, &err) < 0)
			break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 9)
		return 0;
	cdm_net *net[CDM_PARTIES];
	struct cdm_err err = {0};
	if (cdm_net_local(net, &err) < 0)
		abort();
	cdm_net_set_timeout(net[0], 2000);
	cdm_net_set_timeout(net[1], 2000);
	int rounds = (data[0] & 3) + 1, raw = data[0] & 4;
	size_t want[4];
	for (int k = 0; k < 4; k++)
		want[k] = (size_t)(data[1 + 2 * k] | data[2 + 2 * k] << 8) % (MAX_LEN + 1);
	struct sent s = {0};
	if (raw && size - 9 >= 32 && size - 9 <= 32 + MAX_LEN)
		cdm_net_send_raw(net[0], 1, data + 9, size - 9, &err);
	else if (!raw)
		send_frames(net[0], data + 9, size - 9, &s);
	cdm_net_free(net[0]); /* hang up: party 1 sees the end of the stream */

	static uint8_t in[MAX_LEN];
	int frame = 0;
	for (int k = 0; k < rounds; k++) {
		struct cdm_xfer x = {0};
		x.recv[0] = in, x.recv_len[0] = want[k];
		memset(&err, 0, sizeof err);
		int rc = cdm_net_round(net[1], &x, &err);
		if (rc < 0) {
			if (!err.msg[0] || (rc != CDM_EPROTO && rc != CDM_ENET))
				abort();
			break;
		}
		if (!want[k] || raw || frame < 0)
			continue; /* nothing moved, or nothing to compare with */
		/* success: frame `frame` had a right header declaring this length; if
		 * its payload was as long as declared, it arrived intact (else the
		 * stream is out of step from here on and nothing more is checked) */
		if (frame >= s.n || !s.hdr_ok[frame] || s.declared[frame] != want[k])
			abort();
		if (s.len[frame] != want[k]) {
			frame = -1;
			continue;
		}
		if (memcmp(in, s.payload[frame], want[k]))
			abort();
		frame++;
	}
	cdm_net_free(net[1]);
	cdm_net_free(net[2]);
	return 0;
}
