/* copies.c - does the process closing a file still hold another writable
 * descriptor of it?
 *
 * FUSE sends a flush for every close() and cannot tell the copies of a
 * descriptor apart. The shell's "> f" opens the file, dup2()s it onto
 * fd 1 and closes the original before anything is written: that close
 * need not commit when the process still holds the copy, whose close
 * commits what is written (ops_file.c has the rule). The answer comes
 * from /proc/PID/fdinfo (flags, mnt_id, ino of each descriptor), which
 * asks nothing of this mount; when it cannot be read (another user,
 * another pid or mount namespace, an unknown mount id) the answer is
 * "no", and the close commits as it always did. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_int.h"

/* mountinfo's escapes (\040 for a space and the like) undone in place. */
static void unescape(char *s)
{
	char *o = s;
	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
}

int fs_copies_init(struct fs *fs)
{
	char real[PATH_MAX], line[2 * PATH_MAX + 256];
	fs->mnt_id = 0;
	if (!realpath(fs->mountpoint, real))
		return 0;
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	if (!mi)
		return 0;
	/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - TYPE ..."
	 * the last FUSE mount on that point is ours (it was just made) */
	while (fgets(line, sizeof(line), mi)) {
		unsigned long id;
		char mp[PATH_MAX + 1];
		const char *sep = strstr(line, " - ");
		if (!sep ||
		    sscanf(line, "%lu %*s %*s %*s %4096s", &id, mp) != 2)
			continue;
		unescape(mp);
		if (strcmp(mp, real) == 0 && strncmp(sep + 3, "fuse", 4) == 0)
			fs->mnt_id = id;
	}
	fclose(mi);
	return 0;
}

/* One descriptor's fdinfo: is it a writable one of ino on mount mnt? */
static bool fd_writes(int dirfd, const char *name, unsigned long mnt,
		      fuse_ino_t ino)
{
	char buf[512];
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	unsigned long flags = 0, m = 0, i = 0;
	const char *p;
	if (!(p = strstr(buf, "flags:")) ||
	    sscanf(p, "flags: %lo", &flags) != 1)
		return false;
	if (!(p = strstr(buf, "mnt_id:")) || sscanf(p, "mnt_id: %lu", &m) != 1)
		return false;
	if (!(p = strstr(buf, "\nino:")) || sscanf(p, "\nino: %lu", &i) != 1)
		return false;
	return m == mnt && i == ino && (flags & O_ACCMODE) != O_RDONLY;
}

bool fs_copy_held(const struct fs *fs, pid_t pid, fuse_ino_t ino)
{
	char path[64];
	if (fs->mnt_id == 0 || pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/fdinfo", (long)pid);
	DIR *d = opendir(path);
	if (!d)
		return false;
	bool held = false;
	struct dirent *e;
	while (!held && (e = readdir(d)))
		if (isdigit((unsigned char)e->d_name[0]))
			held = fd_writes(dirfd(d), e->d_name, fs->mnt_id, ino);
	closedir(d);
	return held;
}
