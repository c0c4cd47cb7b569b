/* thread.c - CPU priorities of threads: lower for background work,
 * higher for the node thread.
 *
 * The node thread sends the heartbeats; threads whose work can wait (the
 * db writer replaying big commands into its replica, the snapshot
 * senders) take CPU from it when the machine is busy, and so does other
 * work on the machine. On Linux a thread has a nice value of its own
 * (setpriority with its thread id): the background ones are made nicer
 * than the rest of the process, the node thread less nice where allowed
 * (CAP_SYS_NICE); where that fails nothing changes. */
#include <sys/resource.h>
#include <unistd.h>

#include "kv.h"

void kv_thread_background(void)
{
	/* errors ignored: a thread at the normal priority still works */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), KV_BACKGROUND_NICE);
}

void kv_thread_urgent(void)
{
	/* EACCES without CAP_SYS_NICE: it keeps the normal priority */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), KV_URGENT_NICE);
}
