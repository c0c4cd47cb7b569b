/* tcp_int.h - what the files of the byte protocol share (not public).
 *
 * tcp_proto.c is the protocol itself, pure: a request's framing parsed
 * from the bytes received so far, and the replies' framing. tcp.c is the
 * listener: one thread, a poll loop over every connection, the calls to
 * the node and their answers. docs/byte-protocol.md is the reference. */
#ifndef KV_TCP_INTERNAL_H
#define KV_TCP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

enum tcp_cmd { TCP_SET = 1, TCP_GET, TCP_DEL, TCP_ALL };

/* One request as it lies in the receive buffer (key and val point into
 * it). */
struct tcp_frame {
	enum tcp_cmd cmd;
	const unsigned char *key; /* SET, GET, DEL */
	uint32_t klen;
	const unsigned char *val; /* SET */
	uint32_t vlen;
};

/* Largest sizes a request may declare: the store's limits. */
#define TCP_MAX_KEY   KV_MAX_KEY
#define TCP_MAX_VALUE KV_MAX_VALUE

/* What tcp_parse found. */
enum tcp_parsed {
	TCP_MORE = 0,	  /* not a whole request yet */
	TCP_EBAD = -1,	  /* not the protocol (a bad command or separator) */
	TCP_EKEYBIG = -2, /* KEY_SIZE over TCP_MAX_KEY */
	TCP_EVALBIG = -3, /* VAL_SIZE over TCP_MAX_VALUE */
};

/* Parse the request at the start of buf[0..len) (blanks before it, ' ',
 * '\t', '\r', '\n', are skipped). > 0: a whole request, *f filled, and
 * the number of bytes it took (blanks included); TCP_MORE: the bytes so
 * far are the start of a request (*need: the bytes the whole request
 * takes, once its sizes are in, else 0); < 0: enum tcp_parsed's errors,
 * known as soon as the offending byte or size is in. Pure. */
long tcp_parse(const unsigned char *buf, size_t len, struct tcp_frame *f,
	       size_t *need);

/* A reply's framing (the sizes little-endian, as the requests'). */
#define TCP_TRUE "true"
/* "ERR " SIZE " " CODE ": " MESSAGE into buf (cap >= 16 + strlen of
 * both): its length. */
size_t tcp_reply_err(unsigned char *buf, size_t cap, const char *code,
		     const char *msg);
/* SIZE " " into buf[0..5): the header of a GET's or ALL's answer. */
void tcp_size_header(unsigned char buf[5], uint32_t size);
/* The 4 little-endian bytes of v. */
void tcp_put_u32(unsigned char *p, uint32_t v);
uint32_t tcp_get_u32(const unsigned char *p);

#endif
