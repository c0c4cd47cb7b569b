/* test_crc32c.c - CRC-32C against published vectors (RFC 3720 appendix
 * B.4 and the usual "123456789" check value), chaining, and the software
 * path against the hardware path at every alignment and length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kv.h"

uint32_t kv_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* Bit-at-a-time reference, the definition itself. */
static uint32_t crc_ref(const unsigned char *p, size_t len)
{
	uint32_t c = 0xffffffffu;
	while (len--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

static void test_crc32c_matches_known_vectors(void **state)
{
	(void)state;
	unsigned char buf[32];
	assert_int_equal(kv_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(kv_crc32c_sw(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(kv_crc32c(0, "", 0), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(kv_crc32c(0, buf, 32), 0x8A9136AAu);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(kv_crc32c(0, buf, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)i;
	assert_int_equal(kv_crc32c(0, buf, 32), 0x46DD794Eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)(31 - i);
	assert_int_equal(kv_crc32c(0, buf, 32), 0x113FDB5Cu);
}

static void test_crc32c_chains_across_calls(void **state)
{
	(void)state;
	uint32_t c = kv_crc32c(0, "1234", 4);
	c = kv_crc32c(c, "56789", 5);
	assert_int_equal(c, 0xE3069283u);
}

static void test_crc32c_software_and_hardware_agree(void **state)
{
	(void)state;
	static unsigned char buf[1100];
	uint32_t x = 12345;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)(x >> 16);
	}
	for (size_t off = 0; off < 9; off++) {
		for (size_t len = 0; len < 1000; len += 1 + len / 7) {
			uint32_t want = crc_ref(buf + off, len);
			assert_int_equal(kv_crc32c(0, buf + off, len), want);
			assert_int_equal(kv_crc32c_sw(0, buf + off, len), want);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c_matches_known_vectors),
	    cmocka_unit_test(test_crc32c_chains_across_calls),
	    cmocka_unit_test(test_crc32c_software_and_hardware_agree),
	};
	return cmocka_run_group_tests_name("crc32c", tests, NULL, NULL);
}
