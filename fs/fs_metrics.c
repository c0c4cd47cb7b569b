/* fs_metrics.c - what the mount counts for /metrics: operations by kind
 * and how long they took, and the errors it answered by errno.
 *
 * The operations table (fs.c) calls every operation through a wrapper
 * that times it and counts it here; every operation replies before it
 * returns, so the time is the kernel's request to its answer as the
 * mount sees it. Errors are counted where they are sent: every error
 * reply goes through fs_reply_err. Counting is relaxed atomics, no lock. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "fs_int.h"

static const char *const op_names[FS_OP_N] = {
    [FS_OP_LOOKUP] = "lookup",
    [FS_OP_FORGET] = "forget",
    [FS_OP_GETATTR] = "getattr",
    [FS_OP_SETATTR] = "setattr",
    [FS_OP_READLINK] = "readlink",
    [FS_OP_MKNOD] = "mknod",
    [FS_OP_MKDIR] = "mkdir",
    [FS_OP_UNLINK] = "unlink",
    [FS_OP_RMDIR] = "rmdir",
    [FS_OP_SYMLINK] = "symlink",
    [FS_OP_RENAME] = "rename",
    [FS_OP_LINK] = "link",
    [FS_OP_OPEN] = "open",
    [FS_OP_READ] = "read",
    [FS_OP_WRITE] = "write",
    [FS_OP_FLUSH] = "flush",
    [FS_OP_RELEASE] = "release",
    [FS_OP_FSYNC] = "fsync",
    [FS_OP_OPENDIR] = "opendir",
    [FS_OP_READDIR] = "readdir",
    [FS_OP_RELEASEDIR] = "releasedir",
    [FS_OP_STATFS] = "statfs",
    [FS_OP_SETXATTR] = "setxattr",
    [FS_OP_GETXATTR] = "getxattr",
    [FS_OP_LISTXATTR] = "listxattr",
    [FS_OP_REMOVEXATTR] = "removexattr",
    [FS_OP_CREATE] = "create",
    [FS_OP_LOCK] = "lock",
};

/* The errnos the mount answers with; anything else is "other". */
static const struct {
	int value;
	const char *name;
} errnos[] = {
    {EPERM, "EPERM"},
    {ENOENT, "ENOENT"},
    {EINTR, "EINTR"},
    {EIO, "EIO"},
    {EBADF, "EBADF"},
    {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},
    {EBUSY, "EBUSY"},
    {EEXIST, "EEXIST"},
    {EXDEV, "EXDEV"},
    {ENOTDIR, "ENOTDIR"},
    {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"},
    {EFBIG, "EFBIG"},
    {ENOSPC, "ENOSPC"},
    {EROFS, "EROFS"},
    {EMLINK, "EMLINK"},
    {ERANGE, "ERANGE"},
    {EDEADLK, "EDEADLK"},
    {ENAMETOOLONG, "ENAMETOOLONG"},
    {ENOLCK, "ENOLCK"},
    {ENOSYS, "ENOSYS"},
    {ENOTEMPTY, "ENOTEMPTY"},
    {ENODATA, "ENODATA"},
    {EOPNOTSUPP, "EOPNOTSUPP"},
    {ETIMEDOUT, "ETIMEDOUT"},
    {ESTALE, "ESTALE"},
    {E2BIG, "E2BIG"},
};
#define NERRNOS (sizeof errnos / sizeof errnos[0] + 1) /* + "other" */

/* Latency by kind, not by operation: six histograms say where time goes
 * without rendering one per operation. */
enum { K_META, K_READ, K_WRITE, K_OPEN, K_CLOSE, K_CHANGE, K_N };
static const char *const kind_names[K_N] = {"meta", "read",  "write",
					    "open", "close", "change"};
static unsigned kind_of(enum fs_op op)
{
	switch (op) {
	case FS_OP_READ:
	case FS_OP_READDIR:
		return K_READ;
	case FS_OP_WRITE:
		return K_WRITE;
	case FS_OP_OPEN:
	case FS_OP_CREATE:
	case FS_OP_OPENDIR:
		return K_OPEN;
	case FS_OP_FLUSH:
	case FS_OP_RELEASE:
	case FS_OP_FSYNC:
	case FS_OP_RELEASEDIR:
		return K_CLOSE;
	case FS_OP_SETATTR:
	case FS_OP_MKNOD:
	case FS_OP_MKDIR:
	case FS_OP_UNLINK:
	case FS_OP_RMDIR:
	case FS_OP_SYMLINK:
	case FS_OP_RENAME:
	case FS_OP_LINK:
	case FS_OP_SETXATTR:
	case FS_OP_REMOVEXATTR:
		return K_CHANGE;
	default:
		return K_META;
	}
}

static char op_label_buf[FS_OP_N][24];
static const char *op_labels[FS_OP_N];
static _Atomic uint64_t op_values[FS_OP_N];
static struct kv_metric m_ops = {
    .name = "kvfs_fs_operations_total",
    .help = "Operations the kernel asked of the mount, by operation.",
    .type = KV_METRIC_COUNTER,
    .n = FS_OP_N,
    .labels = op_labels,
    .values = op_values};

static char err_label_buf[NERRNOS][32];
static const char *err_labels[NERRNOS];
static _Atomic uint64_t err_values[NERRNOS];
static struct kv_metric m_errors = {
    .name = "kvfs_fs_errors_total",
    .help = "Operations of the mount answered with an error, by errno.",
    .type = KV_METRIC_COUNTER,
    .n = NERRNOS,
    .labels = err_labels,
    .values = err_values};

static char kind_label_buf[K_N][24];
static const char *kind_labels[K_N];
static struct kv_hist kind_hists[K_N];
static struct kv_metric m_seconds = {
    .name = "kvfs_fs_operation_seconds",
    .help = "Operations of the mount, from the kernel's request to the "
	    "answer, by kind: meta (lookup, getattr, statfs, readlink, "
	    "xattr reads, forget, locks), read (read, readdir), write, open "
	    "(open, create, opendir), close (flush, release, fsync, "
	    "releasedir), change (the rest).",
    .type = KV_METRIC_HIST,
    .n = K_N,
    .labels = kind_labels,
    .hists = kind_hists};

static void labels_init(void)
{
	for (unsigned i = 0; i < FS_OP_N; i++) {
		snprintf(op_label_buf[i], sizeof op_label_buf[i], "op=\"%s\"",
			 op_names[i]);
		op_labels[i] = op_label_buf[i];
	}
	for (unsigned i = 0; i < NERRNOS; i++) {
		snprintf(err_label_buf[i], sizeof err_label_buf[i],
			 "errno=\"%s\"",
			 i + 1 < NERRNOS ? errnos[i].name : "other");
		err_labels[i] = err_label_buf[i];
	}
	for (unsigned i = 0; i < K_N; i++) {
		snprintf(kind_label_buf[i], sizeof kind_label_buf[i],
			 "kind=\"%s\"", kind_names[i]);
		kind_labels[i] = kind_label_buf[i];
	}
}

void fs_metrics_register(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, labels_init);
	kv_metric_register(&m_ops);
	kv_metric_register(&m_errors);
	kv_metric_register(&m_seconds);
}

void fs_metric_op(enum fs_op op, uint64_t t0_ns)
{
	kv_metric_add(&m_ops, op, 1);
	kv_hist_observe_ns(&kind_hists[kind_of(op)], kv_mono_ns() - t0_ns);
}

int fs_reply_err(fuse_req_t req, int err)
{
	if (err != 0) {
		unsigned i = 0;
		while (i + 1 < NERRNOS && errnos[i].value != err)
			i++;
		kv_metric_add(&m_errors, i, 1);
	}
	return fuse_reply_err(req, err);
}
