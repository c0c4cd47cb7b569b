/* test_words.c - what a word is (raft/http/http_words.c,
 * http_words_split): runs of word characters, ASCII folded, the listed
 * punctuation and symbol blocks separating, each word once with its
 * count in byte order, and the refusals (not UTF-8, a word over 255
 * bytes). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_int.h"

/* The split of text as "word:count word:count", into a static buffer. */
static const char *split(const char *text)
{
	static char out[1024];
	struct http_words w;
	size_t n = 0;

	assert_int_equal(http_words_split(text, strlen(text), &w), 0);
	out[0] = '\0';
	for (size_t i = 0; i < w.n; i++)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%.*s:%llu",
				      i ? " " : "", (int)w.adds[i].nlen,
				      w.adds[i].name,
				      (unsigned long long)w.adds[i].n);
	http_words_free(&w);
	return out;
}

static void test_words_are_folded_split_and_counted(void **state)
{
	(void)state;
	assert_string_equal(split("The quick, the LAZY; the end."),
			    "end:1 lazy:1 quick:1 the:3");
	assert_string_equal(split("don't e-mail a_b x.y 42nd"),
			    "42nd:1 a:1 b:1 don:1 e:1 mail:1 t:1 x:1 y:1");
	assert_string_equal(split(""), "");
	assert_string_equal(split(" \t\r\n!?"), "");
	/* non-ASCII letters are word characters, kept as sent */
	assert_string_equal(split("Été été straße été"),
			    "straße:1 Été:1 été:2");
	struct http_words w;
	const char *t = "Été été straße été";
	assert_int_equal(http_words_split(t, strlen(t), &w), 0);
	assert_int_equal(w.n, 3);
	assert_int_equal(w.total, 4);
	http_words_free(&w);
	/* the separating blocks: an em dash, curly quotes, NBSP, ×, an
	 * ideographic space, an emoji */
	assert_string_equal(split("a\xe2\x80\x94"
				  "b \xe2\x80\x9c"
				  "c\xe2\x80\x9d d\xc2\xa0"
				  "e\xc3\x97"
				  "f\xe3\x80\x80g\xf0\x9f\x98\x80h"),
			    "a:1 b:1 c:1 d:1 e:1 f:1 g:1 h:1");
	/* CJK characters are word characters */
	assert_string_equal(split("\xe6\x97\xa5\xe6\x9c\xac \xe6\x97\xa5"
				  "\xe6\x9c\xac"),
			    "\xe6\x97\xa5\xe6\x9c\xac:2");
}

static void test_bad_text_is_refused(void **state)
{
	struct http_words w;
	char word[300];

	(void)state;
	assert_int_equal(http_words_split("a\xff", 2, &w), -EILSEQ);
	http_words_free(&w);
	assert_int_equal(http_words_split("a\0b", 3, &w), -EILSEQ);
	http_words_free(&w);
	memset(word, 'a', sizeof(word));
	assert_int_equal(http_words_split(word, 255, &w), 0);
	assert_int_equal(w.n, 1);
	http_words_free(&w);
	assert_int_equal(http_words_split(word, 256, &w), -ENAMETOOLONG);
	http_words_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_words_are_folded_split_and_counted),
	    cmocka_unit_test(test_bad_text_is_refused),
	};
	return cmocka_run_group_tests_name("words", tests, NULL, NULL);
}
