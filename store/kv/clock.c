/* clock.c - time, in the two kinds kvfs uses.
 *
 * Deadlines, timeouts and intervals use CLOCK_MONOTONIC (never steps with
 * the wall clock); only the times a user sees (mtimes, /status dates) use
 * CLOCK_REALTIME. One home for both, so that no two modules disagree on
 * which clock a timespec belongs to. */
#include <errno.h>

#include "kv.h"

uint64_t kv_mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

uint64_t kv_mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int64_t kv_wall_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

struct timespec kv_deadline(int ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	if (ms < 0)
		ms = 0;
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

bool kv_past(const struct timespec *d)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > d->tv_sec ||
	       (now.tv_sec == d->tv_sec && now.tv_nsec >= d->tv_nsec);
}

long kv_ms_left(const struct timespec *d)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (long)(d->tv_sec - now.tv_sec) * 1000 +
		  (d->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? ms : 0;
}

int kv_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;
	int ret = -pthread_condattr_init(&a);
	if (ret != 0)
		return ret;
	ret = -pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	if (ret == 0)
		ret = -pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return ret;
}
