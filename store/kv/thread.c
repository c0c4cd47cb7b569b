/* thread.c - a background thread's lower CPU priority.
 *
 * The node thread sends the heartbeats; threads whose work can wait (the
 * db writer replaying big commands into its replica, the snapshot
 * senders) take CPU from it when the machine is busy. On Linux a thread
 * has a nice value of its own (setpriority with its thread id), so they
 * are made nicer than the rest of the process; where that fails nothing
 * changes. */
#include <sys/resource.h>
#include <unistd.h>

#include "kv.h"

void kv_thread_background(void)
{
	/* errors ignored: a thread at the normal priority still works */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), KV_BACKGROUND_NICE);
}
