/* file.c - durable files: whole writes, directory syncs, atomic replace.
 *
 * Every file kvfs keeps whole (the db, the hard state, cluster.json, a
 * snapshot transfer's sidecar) is replaced the same way: written beside
 * its name, fsynced, renamed over it, and the directory fsynced, so that a
 * crash at any point leaves the old file or the new one. This is the one
 * implementation of that dance and of the EINTR-safe write loop. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv.h"

int kv_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int err = fsync(fd) != 0 ? -errno : 0;
	close(fd);
	return err;
}

int kv_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int kv_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static void tmpfile_free(struct kv_tmpfile *t)
{
	free(t->dir);
	free(t->tmp);
	free(t->path);
	t->dir = t->tmp = t->path = NULL;
	t->fd = -1;
}

int kv_tmpfile_open(struct kv_tmpfile *t, const char *dir, const char *name,
		    unsigned mode)
{
	t->fd = -1;
	t->tmp = t->path = NULL;
	t->dir = NULL;
	if (asprintf(&t->tmp, "%s/%s.tmp", dir, name) < 0) {
		t->tmp = NULL;
		return -ENOMEM;
	}
	if (asprintf(&t->path, "%s/%s", dir, name) < 0) {
		t->path = NULL;
		tmpfile_free(t);
		return -ENOMEM;
	}
	if (asprintf(&t->dir, "%s", dir) < 0) {
		t->dir = NULL;
		tmpfile_free(t);
		return -ENOMEM;
	}
	t->fd = open(t->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		     (mode_t)mode);
	if (t->fd < 0) {
		int err = -errno;
		tmpfile_free(t);
		return err;
	}
	return 0;
}

int kv_tmpfile_commit(struct kv_tmpfile *t)
{
	int err = fsync(t->fd) != 0 ? -errno : 0;
	if (close(t->fd) != 0 && err == 0)
		err = -errno;
	t->fd = -1;
	if (err == 0 && rename(t->tmp, t->path) != 0)
		err = -errno;
	if (err != 0) {
		kv_tmpfile_abort(t);
		return err;
	}
	err = kv_sync_dir(t->dir);
	tmpfile_free(t);
	return err;
}

void kv_tmpfile_abort(struct kv_tmpfile *t)
{
	if (t->fd >= 0)
		close(t->fd);
	if (t->tmp)
		unlink(t->tmp);
	tmpfile_free(t);
}

int kv_file_replace(const char *dir, const char *name, const void *data,
		    size_t len, unsigned mode)
{
	struct kv_tmpfile t;
	int err = kv_tmpfile_open(&t, dir, name, mode);
	if (err != 0)
		return err;
	err = kv_write_all(t.fd, data, len);
	if (err != 0) {
		kv_tmpfile_abort(&t);
		return err;
	}
	return kv_tmpfile_commit(&t);
}

int kv_mkdir_p(const char *dir)
{
	char *p = strdup(dir);
	if (!p)
		return -ENOMEM;
	int ret = 0;
	for (char *s = p + 1; *s && ret == 0; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			ret = -errno;
		*s = '/';
	}
	if (ret == 0 && mkdir(p, 0755) != 0 && errno != EEXIST)
		ret = -errno;
	free(p);
	return ret;
}
