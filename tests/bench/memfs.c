/* memfs.c - a minimal in-memory FUSE filesystem, the yardstick of
 * scripts/bench-mount (a benchmark program, not a test).
 *
 * It does the least a filesystem can and still serve the benchmark's
 * small-file workload: directories and regular files in memory, with
 * libfuse3's low-level API, the multi-threaded loop and the same kernel
 * cache settings as kvfs (attributes and entries cached for a second, no
 * negative entries, pages dropped on open, no writeback cache), so the
 * difference between the two is the work kvfs does, not FUSE's. Files are
 * never freed (a benchmark runs once); one mutex guards the name table and
 * one per inode its content.
 *
 * usage: memfs MOUNTPOINT [-f] [-o opts]   (stops on SIGTERM / unmount) */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NBUCKETS (1u << 20)

struct node {
	pthread_mutex_t lock;
	struct stat st;
	char *data;
	size_t cap;
	uint64_t parent;
	char *name;
	struct node *next; /* in its name bucket */
};

static struct {
	pthread_mutex_t lock;
	struct node **nodes; /* by inode number */
	size_t n, cap;
	struct node *buckets[NBUCKETS];
} mem = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t bucket(uint64_t parent, const char *name)
{
	uint64_t h = 1469598103934665603ull ^ parent;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h & (NBUCKETS - 1);
}

static struct node *get(fuse_ino_t ino)
{
	pthread_mutex_lock(&mem.lock);
	struct node *n = ino < mem.n ? mem.nodes[ino] : NULL;
	pthread_mutex_unlock(&mem.lock);
	return n;
}

/* The child name of parent, or NULL. Caller holds mem.lock. */
static struct node *child(uint64_t parent, const char *name)
{
	for (struct node *n = mem.buckets[bucket(parent, name)]; n; n = n->next)
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static struct node *make(uint64_t parent, const char *name, mode_t mode)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	pthread_mutex_init(&n->lock, NULL);
	clock_gettime(CLOCK_REALTIME, &n->st.st_mtim);
	n->st.st_ctim = n->st.st_atim = n->st.st_mtim;
	n->st.st_mode = mode;
	n->st.st_nlink = S_ISDIR(mode) ? 2 : 1;
	n->st.st_uid = getuid();
	n->st.st_gid = getgid();
	n->parent = parent;
	n->name = strdup(name);
	if (mem.n == mem.cap) {
		size_t cap = mem.cap ? mem.cap * 2 : 1024;
		struct node **v = realloc(mem.nodes, cap * sizeof(*v));
		if (!v)
			return NULL;
		mem.nodes = v;
		mem.cap = cap;
	}
	n->st.st_ino = mem.n;
	mem.nodes[mem.n++] = n;
	if (parent) {
		size_t b = bucket(parent, name);
		n->next = mem.buckets[b];
		mem.buckets[b] = n;
	}
	return n;
}

static void reply_entry(fuse_req_t req, struct node *n)
{
	struct fuse_entry_param e = {
	    .ino = n->st.st_ino, .attr_timeout = 1.0, .entry_timeout = 1.0};
	pthread_mutex_lock(&n->lock);
	e.attr = n->st;
	pthread_mutex_unlock(&n->lock);
	fuse_reply_entry(req, &e);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	pthread_mutex_lock(&mem.lock);
	struct node *n = child(parent, name);
	pthread_mutex_unlock(&mem.lock);
	if (n)
		reply_entry(req, n);
	else
		fuse_reply_err(req, ENOENT);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct node *n = get(ino);
	(void)fi;
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	pthread_mutex_lock(&n->lock);
	struct stat st = n->st;
	pthread_mutex_unlock(&n->lock);
	fuse_reply_attr(req, &st, 1.0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct node *n = get(ino);
	(void)fi;
	pthread_mutex_lock(&n->lock);
	if (to_set & FUSE_SET_ATTR_SIZE && (size_t)attr->st_size <= n->cap)
		n->st.st_size = attr->st_size;
	if (to_set & FUSE_SET_ATTR_MODE)
		n->st.st_mode =
		    (n->st.st_mode & S_IFMT) | (attr->st_mode & 07777);
	struct stat st = n->st;
	pthread_mutex_unlock(&n->lock);
	fuse_reply_attr(req, &st, 1.0);
}

static void new_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	pthread_mutex_lock(&mem.lock);
	struct node *n = child(parent, name);
	if (!n)
		n = make(parent, name, mode);
	pthread_mutex_unlock(&mem.lock);
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (!fi) {
		reply_entry(req, n);
		return;
	}
	struct fuse_entry_param e = {.ino = n->st.st_ino,
				     .attr = n->st,
				     .attr_timeout = 1.0,
				     .entry_timeout = 1.0};
	fi->keep_cache = 0;
	fuse_reply_create(req, &e, fi);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	new_entry(req, parent, name, S_IFDIR | (mode & 07777), NULL);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	new_entry(req, parent, name, S_IFREG | (mode & 07777), fi);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = get(ino);
	if ((fi->flags & O_TRUNC) && n) {
		pthread_mutex_lock(&n->lock);
		n->st.st_size = 0;
		pthread_mutex_unlock(&n->lock);
	}
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct node *n = get(ino);
	(void)fi;
	pthread_mutex_lock(&n->lock);
	size_t len = (size_t)n->st.st_size, k = 0;
	if ((size_t)off < len)
		k = len - (size_t)off < size ? len - (size_t)off : size;
	fuse_reply_buf(req, k ? n->data + off : NULL, k);
	pthread_mutex_unlock(&n->lock);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct node *n = get(ino);
	size_t end = (size_t)off + size;
	(void)fi;
	pthread_mutex_lock(&n->lock);
	if (end > n->cap) {
		char *d = realloc(n->data, end);
		if (!d) {
			pthread_mutex_unlock(&n->lock);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		n->data = d;
		n->cap = end;
	}
	memcpy(n->data + off, buf, size);
	if ((off_t)end > n->st.st_size)
		n->st.st_size = (off_t)end;
	pthread_mutex_unlock(&n->lock);
	fuse_reply_write(req, size);
}

static void op_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)datasync;
	op_ok(req, ino, fi);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = op_lookup,
    .forget = op_forget,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mkdir = op_mkdir,
    .create = op_create,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_ok,
    .release = op_ok,
    .fsync = op_fsync,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	int ret = 1;

	if (fuse_parse_cmdline(&args, &opts) != 0 || !opts.mountpoint) {
		fprintf(stderr, "usage: memfs MOUNTPOINT [-f] [-o opts]\n");
		return 1;
	}
	pthread_mutex_lock(&mem.lock);
	make(0, "", S_IFDIR | 0755); /* 0: unused */
	make(0, "", S_IFDIR | 0755); /* 1: the root */
	pthread_mutex_unlock(&mem.lock);
	struct fuse_session *se =
	    fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (se && fuse_set_signal_handlers(se) == 0 &&
	    fuse_session_mount(se, opts.mountpoint) == 0) {
		struct fuse_loop_config cfg = {.clone_fd = 0,
					       .max_idle_threads = 10};
		ret = fuse_session_loop_mt(se, &cfg) < 0;
		fuse_session_unmount(se);
	}
	if (se) {
		fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
	}
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}
