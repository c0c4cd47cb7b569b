/* work.c - the per-thread counts of per-byte work (kv.h, kv_work).
 *
 * Big values must be checksummed, hashed and copied on the threads that
 * receive them, not on the node thread, whose turns hold up heartbeats
 * (docs/architecture.md, "Big values"). The functions that do such work
 * add what they did to the calling thread's counts, so a test can tell
 * on which thread a 16 MiB value was read (tests/store/test_bigturn.c). */
#include "kv.h"

_Thread_local struct kv_thread_work kv_work;
