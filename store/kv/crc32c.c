/* crc32c.c - CRC-32C (Castagnoli), the checksum of every log line and of
 * the hard state file.
 *
 * Software: slicing-by-8 tables built once (pthread_once). On x86-64 CPUs
 * with SSE4.2 the crc32 instruction does the same job several times faster;
 * both give identical results (tests/store/test_crc32c.c checks them against
 * known vectors and against each other). */
#include "kv.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KV_CRC32C_HW 1
#include <nmmintrin.h>
#endif

/* Reflected Castagnoli polynomial. */
#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int crc_use_hw;

static void crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc_table[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = crc_table[0][n];
		for (int k = 1; k < 8; k++) {
			c = crc_table[0][c & 0xff] ^ (c >> 8);
			crc_table[k][n] = c;
		}
	}
#ifdef KV_CRC32C_HW
	__builtin_cpu_init();
	crc_use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

/* The raw (non-inverted) table-driven update. */
static uint32_t crc_sw(uint32_t c, const unsigned char *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
		len--;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		w = __builtin_bswap64(w);
#endif
		w ^= c;
		c = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		    crc_table[5][(w >> 16) & 0xff] ^
		    crc_table[4][(w >> 24) & 0xff] ^
		    crc_table[3][(w >> 32) & 0xff] ^
		    crc_table[2][(w >> 40) & 0xff] ^
		    crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

#ifdef KV_CRC32C_HW
__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t c, const unsigned char *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8(c, *p++);
		len--;
	}
	uint64_t c64 = c;
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c64 = _mm_crc32_u64(c64, w);
		p += 8;
		len -= 8;
	}
	c = (uint32_t)c64;
	while (len--)
		c = _mm_crc32_u8(c, *p++);
	return c;
}
#endif

/* The software path alone, for tests that compare it with the hardware. */
uint32_t kv_crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t kv_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	return ~crc_sw(~crc, buf, len);
}

uint32_t kv_crc32c(uint32_t crc, const void *buf, size_t len)
{
	kv_work.crc += len;
	pthread_once(&crc_once, crc_init);
#ifdef KV_CRC32C_HW
	if (crc_use_hw)
		return ~crc_hw(~crc, buf, len);
#endif
	return ~crc_sw(~crc, buf, len);
}

/* a * b modulo the polynomial, both in the reflected order (bit 31 is
 * x^0, bit 0 is x^31) the table and the instruction use. */
static uint32_t mult_mod(uint32_t a, uint32_t b)
{
	uint32_t p = 0;
	for (uint32_t m = 1u << 31; m; m >>= 1) {
		if (a & m)
			p ^= b;
		b = b & 1 ? (b >> 1) ^ CRC32C_POLY : b >> 1; /* b * x */
	}
	return p;
}

/* With R(c, M) the register after M from c (no inversions), and S_n(c)
 * = R(c, n zero bytes) = c * x^(8n) mod P, linear in c: crc(A B) =
 * ~R(~crc(A), B) = ~(S_n(~crc(A)) ^ R(0, B)) and crc(B) = ~(S_n(~0) ^
 * R(0, B)), so crc(A B) = S_n(crc(A)) ^ crc(B). x^(8n) by squaring. */
uint32_t kv_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	uint32_t xn = 1u << 31; /* x^0 */
	uint32_t sq = 1u << 23; /* x^8: one byte */
	for (uint64_t n = len_b; n; n >>= 1) {
		if (n & 1)
			xn = mult_mod(xn, sq);
		sq = mult_mod(sq, sq);
	}
	return mult_mod(xn, crc_a) ^ crc_b;
}
