/* ops_dotkvfs.c - the FUSE operations on .kvfs/ and its files
 * (docs/mount.md, ".kvfs/"; the inodes in dotkvfs_int.h).
 *
 * fs.c asks each fs_dot_* first: it answers (true) when the request names
 * one of .kvfs's inodes, or the name .kvfs at the mount's root, and says
 * false for everything else. .kvfs is found by lookup and not listed by
 * the root's readdir (as ZFS's .zfs by default), so cp -a, rsync, tar and
 * grep -r of a mount do not read events, which never ends. Nothing in it
 * changes: a change inside it is EACCES (what its modes give a user that
 * is not root), to its attributes EPERM, a removal or rename of .kvfs
 * itself EBUSY (in use by the system), making a .kvfs at the root EEXIST.
 * status and members are what GET /status and GET /cluster/members
 * answer, taken at the open (a stat without a handle takes them anew for
 * the size); events is a stream (dotkvfs.c). The files are direct_io
 * (reads reach us whatever the kernel thinks the size is) and their
 * attributes are never cached. None of this is counted in the mount's
 * metrics or takes a read barrier, but the open of events (its start is
 * "now", as a linearizable read's). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dotkvfs_int.h"

static const char *const file_names[] = {"events", "status", "members"};

/* An open file of .kvfs (fi->fh). */
struct dot_fh {
	struct fs_dot_open link; /* first: the list's entry is the handle */
	uint64_t ino;
	struct fs_dot_stream *s; /* events */
	char *text;		 /* status, members */
	size_t len;
};

static bool is_root_dot(fuse_ino_t parent, const char *name)
{
	return parent == FUSE_ROOT_ID && strcmp(name, FS_DOT_NAME) == 0;
}

static bool is_events(uint64_t ino)
{
	return ino == FS_DOT_EVENTS_INO || ino >= FS_DOT_AT_INO;
}

/* The inode of a name in .kvfs, 0 if none: events@REV with REV a whole
 * number from 1 (no sign, no leading zero). */
static uint64_t child_ino(const char *name)
{
	for (unsigned i = 0; i < 3; i++)
		if (strcmp(name, file_names[i]) == 0)
			return FS_DOT_EVENTS_INO + i;
	if (strncmp(name, "events@", 7) != 0)
		return 0;
	const char *p = name + 7;
	uint64_t rev = 0;
	if (*p < '1' || *p > '9' || strlen(p) > 19)
		return 0;
	for (; *p; p++) {
		uint64_t dgt = (uint64_t)(*p - '0');
		if (*p < '0' || *p > '9' || rev > (FS_DOT_AT_MAX - dgt) / 10)
			return 0;
		rev = rev * 10 + dgt;
	}
	return FS_DOT_AT_INO + rev;
}

/* GET /status or GET /cluster/members, with a newline. */
static int render(struct fs *fs, uint64_t ino, char **text, size_t *len)
{
	char *json = NULL;
	int ret = ino == FS_DOT_STATUS_INO ? node_status_json(fs->node, &json)
					   : node_members_json(fs->node, &json);
	if (ret != 0)
		return ret;
	*len = strlen(json);
	char *t = realloc(json, *len + 2);
	if (!t) {
		free(json);
		return -ENOMEM;
	}
	t[(*len)++] = '\n';
	t[*len] = '\0';
	*text = t;
	return 0;
}

static void fill_attr(fuse_req_t req, uint64_t ino, struct dot_fh *h,
		      struct stat *st)
{
	struct fs *fs = fs_of(req);
	int64_t t = fs->mount_ns;
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = 4096;
	if (ino == FS_DOT_INO) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
	}
	if (is_events(ino)) {
		/* a handle's own end; without one, a size no stream's end
		 * passes (tail compares its count of bytes read with it) */
		int64_t mt;
		st->st_size = (off_t)fs_dot_total(fs, &mt);
		if (h && h->s)
			st->st_size = (off_t)fs_dot_stream_size(fs, h->s);
		t = mt;
	} else if (ino != FS_DOT_INO) {
		char *text = NULL;
		size_t len = 0;
		if (h)
			len = h->len;
		else if (render(fs, ino, &text, &len) != 0)
			len = 0;
		free(text);
		st->st_size = (off_t)len;
		t = kv_wall_ns();
	}
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_mtim.tv_sec = t / 1000000000;
	st->st_mtim.tv_nsec = t % 1000000000;
	st->st_ctim = st->st_atim = st->st_mtim;
}

static void reply_entry(fuse_req_t req, uint64_t ino)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.generation = 1;
	fill_attr(req, ino, NULL, &e.attr);
	e.attr_timeout = 0;
	e.entry_timeout = fs->timeout;
	fuse_reply_entry(req, &e);
}

bool fs_dot_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	uint64_t ino;
	if (is_root_dot(parent, name))
		reply_entry(req, FS_DOT_INO);
	else if (parent == FS_DOT_INO && (ino = child_ino(name)) != 0)
		reply_entry(req, ino);
	else if (fs_dot_ino(parent))
		fuse_reply_err(req, parent == FS_DOT_INO ? ENOENT : ENOTDIR);
	else
		return false;
	return true;
}

bool fs_dot_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!fs_dot_ino(ino))
		return false;
	struct stat st;
	fill_attr(req, ino, fi && ino != FS_DOT_INO ? (void *)fi->fh : NULL,
		  &st);
	fuse_reply_attr(req, &st, 0);
	return true;
}

bool fs_dot_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		    int to_set, struct fuse_file_info *fi)
{
	(void)attr;
	(void)fi;
	if (!fs_dot_ino(ino))
		return false;
	fuse_reply_err(req, to_set & FUSE_SET_ATTR_SIZE ? EACCES : EPERM);
	return true;
}

bool fs_dot_readlink(fuse_req_t req, fuse_ino_t ino)
{
	if (!fs_dot_ino(ino))
		return false;
	fuse_reply_err(req, EINVAL);
	return true;
}

/* Making name in parent: EACCES inside .kvfs, EEXIST for .kvfs itself. */
static bool refuse_make(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent == FS_DOT_INO)
		fuse_reply_err(req, EACCES);
	else if (fs_dot_ino(parent))
		fuse_reply_err(req, ENOTDIR);
	else if (is_root_dot(parent, name))
		fuse_reply_err(req, EEXIST);
	else
		return false;
	return true;
}

/* Removing name from parent: EACCES inside, EBUSY for .kvfs itself. */
static bool refuse_remove(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent == FS_DOT_INO)
		fuse_reply_err(req, EACCES);
	else if (fs_dot_ino(parent))
		fuse_reply_err(req, ENOTDIR);
	else if (is_root_dot(parent, name))
		fuse_reply_err(req, EBUSY);
	else
		return false;
	return true;
}

bool fs_dot_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, dev_t rdev)
{
	(void)mode;
	(void)rdev;
	return refuse_make(req, parent, name);
}

bool fs_dot_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode)
{
	(void)mode;
	return refuse_make(req, parent, name);
}

bool fs_dot_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		    const char *name)
{
	(void)link;
	return refuse_make(req, parent, name);
}

bool fs_dot_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		   mode_t mode, struct fuse_file_info *fi)
{
	(void)mode;
	(void)fi;
	return refuse_make(req, parent, name);
}

bool fs_dot_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	return refuse_remove(req, parent, name);
}

bool fs_dot_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	return refuse_remove(req, parent, name);
}

bool fs_dot_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		   fuse_ino_t newparent, const char *newname,
		   unsigned int flags)
{
	(void)flags;
	return refuse_remove(req, parent, name) ||
	       refuse_remove(req, newparent, newname);
}

bool fs_dot_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		 const char *newname)
{
	if (fs_dot_ino(ino)) {
		fuse_reply_err(req, EPERM);
		return true;
	}
	return refuse_make(req, newparent, newname);
}

/* Free h (not listed). */
static void fh_free(struct fs *fs, struct fs_dot_open *o)
{
	struct dot_fh *h = (struct dot_fh *)o;
	if (h->s)
		fs_dot_stream_close(fs, h->s);
	free(h->text);
	free(h);
}

bool fs_dot_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!fs_dot_ino(ino))
		return false;
	struct fs *fs = fs_of(req);
	if (ino == FS_DOT_INO) {
		fuse_reply_err(req, EISDIR);
		return true;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EACCES);
		return true;
	}
	struct dot_fh *h = calloc(1, sizeof(*h));
	int ret = h ? 0 : -ENOMEM;
	if (h)
		h->ino = ino;
	if (ret == 0 && is_events(ino)) {
		uint64_t from = ino - FS_DOT_AT_INO;
		if (ino == FS_DOT_EVENTS_INO) {
			/* "now": after what was committed when asked */
			ret = fs_barrier(fs);
			from = store_applied(node_store(fs->node)) + 1;
		}
		if (ret == 0 && !(h->s = fs_dot_stream_open(fs, from)))
			ret = -EIO;
	} else if (ret == 0) {
		ret = render(fs, ino, &h->text, &h->len);
	}
	if (ret != 0) {
		free(h);
		fuse_reply_err(req, -fs_errno(ret));
		return true;
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	h->link.free = fh_free;
	fs_dot_open_add(fs, &h->link);
	if (fuse_reply_open(req, fi) != 0) {
		fs_dot_open_del(fs, &h->link);
		fh_free(fs, &h->link);
	}
	return true;
}

bool fs_dot_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	if (!fs_dot_ino(ino))
		return false;
	struct dot_fh *h = (struct dot_fh *)fi->fh;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
	} else if (h->s) {
		fs_dot_stream_read(req, fs_of(req), h->s, size, (uint64_t)off,
				   (fi->flags & O_NONBLOCK) != 0);
	} else {
		size_t o = (uint64_t)off < h->len ? (size_t)off : h->len;
		size_t k = h->len - o < size ? h->len - o : size;
		fuse_reply_buf(req, h->text + o, k);
	}
	return true;
}

bool fs_dot_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		  off_t off, struct fuse_file_info *fi)
{
	(void)buf;
	(void)size;
	(void)off;
	(void)fi;
	if (!fs_dot_ino(ino))
		return false;
	fuse_reply_err(req, EACCES);
	return true;
}

bool fs_dot_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	if (!fs_dot_ino(ino))
		return false;
	fuse_reply_err(req, 0);
	return true;
}

bool fs_dot_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!fs_dot_ino(ino))
		return false;
	struct dot_fh *h = (struct dot_fh *)fi->fh;
	if (h) {
		fs_dot_open_del(fs_of(req), &h->link);
		fh_free(fs_of(req), &h->link);
	}
	fuse_reply_err(req, 0);
	return true;
}

bool fs_dot_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		  struct fuse_file_info *fi)
{
	(void)datasync;
	return fs_dot_flush(req, ino, fi);
}

bool fs_dot_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!fs_dot_ino(ino))
		return false;
	if (ino != FS_DOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return true;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
	return true;
}

/* ".", "..", then the three files; off is the index of the next. */
static void list(fuse_req_t req, size_t size, off_t off, bool plus)
{
	static const char *const names[] = {".", "..", "events", "status",
					    "members"};
	static const uint64_t inos[] = {FS_DOT_INO, FUSE_ROOT_ID,
					FS_DOT_EVENTS_INO, FS_DOT_STATUS_INO,
					FS_DOT_MEMBERS_INO};
	char buf[1024];
	size_t used = 0;
	if (size > sizeof(buf))
		size = sizeof(buf);
	for (off_t i = off < 0 ? 0 : off; i < 5; i++) {
		size_t n;
		if (plus) {
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));
			/* "." and "..": no entry (the kernel skips them) */
			if (i >= 2) {
				e.ino = inos[i];
				e.generation = 1;
				fill_attr(req, inos[i], NULL, &e.attr);
				e.entry_timeout = fs_of(req)->timeout;
			} else {
				e.attr.st_ino = inos[i];
				e.attr.st_mode = S_IFDIR;
			}
			n = fuse_add_direntry_plus(req, buf + used, size - used,
						   names[i], &e, i + 1);
		} else {
			struct stat st = {.st_ino = inos[i],
					  .st_mode = i < 2 ? S_IFDIR : S_IFREG};
			n = fuse_add_direntry(req, buf + used, size - used,
					      names[i], &st, i + 1);
		}
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

bool fs_dot_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)fi;
	if (!fs_dot_ino(ino))
		return false;
	list(req, size, off, false);
	return true;
}

bool fs_dot_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	(void)fi;
	if (!fs_dot_ino(ino))
		return false;
	list(req, size, off, true);
	return true;
}

bool fs_dot_releasedir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	return fs_dot_flush(req, ino, fi);
}

bool fs_dot_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		     const char *value, size_t size, int flags)
{
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	if (!fs_dot_ino(ino))
		return false;
	fuse_reply_err(req, EPERM);
	return true;
}

bool fs_dot_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		     size_t size)
{
	(void)name;
	(void)size;
	if (!fs_dot_ino(ino))
		return false;
	fuse_reply_err(req, ENODATA);
	return true;
}

bool fs_dot_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (!fs_dot_ino(ino))
		return false;
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
	return true;
}

bool fs_dot_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)name;
	if (!fs_dot_ino(ino))
		return false;
	fuse_reply_err(req, EPERM);
	return true;
}

bool fs_dot_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		  struct flock *lock)
{
	(void)fi;
	(void)lock;
	if (!fs_dot_ino(ino))
		return false;
	fuse_reply_err(req, ENOLCK);
	return true;
}

bool fs_dot_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		  struct flock *lock, int sleep)
{
	(void)sleep;
	return fs_dot_getlk(req, ino, fi, lock);
}

bool fs_dot_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		  int op)
{
	(void)op;
	return fs_dot_getlk(req, ino, fi, NULL);
}

void fs_dot_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		 struct fuse_pollhandle *ph)
{
	struct dot_fh *h =
	    fs_dot_ino(ino) && fi ? (struct dot_fh *)fi->fh : NULL;
	if (h && h->s) {
		fs_dot_stream_poll(req, fs_of(req), h->s, ph);
		return;
	}
	/* every other file is always ready, as a regular file is */
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM);
}
