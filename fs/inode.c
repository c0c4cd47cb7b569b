/* inode.c - the inodes the kernel knows, and their names.
 *
 * The low-level FUSE API names files by inode number; the store names
 * them by key. The table maps both ways: by number (every request) and
 * by (parent, name) (lookups), each a chained hash, and builds a key by
 * walking the parents up to the root, so a directory rename is one move
 * here whatever is below it. An inode lives while the kernel holds it
 * (its lookup count, until FORGET) or we do (refs: each child holds its
 * parent, each open handle and each running operation its inode), so a
 * file removed while open keeps its inode and its state until the last
 * close, with no name. Numbers are never reused. One mutex guards the
 * table; it is never held while waiting for anything. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

#define ITABLE_MIN_BUCKETS 1024

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	return x;
}

static uint64_t name_hash(uint64_t parent, const char *name, size_t nlen)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325) ^ mix(parent);

	for (size_t i = 0; i < nlen; i++)
		h = (h ^ (unsigned char)name[i]) * UINT64_C(0x100000001b3);
	return mix(h);
}

static size_t ino_slot(const struct fs_itable *t, uint64_t ino)
{
	return mix(ino) & (t->nbuckets - 1);
}

static size_t name_slot(const struct fs_itable *t, const struct fs_inode *dir,
			const char *name, size_t nlen)
{
	return name_hash(dir->ino, name, nlen) & (t->nbuckets - 1);
}

int fs_itable_init(struct fs_itable *t, uint32_t root_kind)
{
	memset(t, 0, sizeof(*t));
	if (pthread_mutex_init(&t->lock, NULL) != 0)
		return -ENOMEM;
	t->nbuckets = ITABLE_MIN_BUCKETS;
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_name = calloc(t->nbuckets, sizeof(*t->by_name));
	if (t->by_ino == NULL || t->by_name == NULL) {
		free(t->by_ino);
		free(t->by_name);
		pthread_mutex_destroy(&t->lock);
		return -ENOMEM;
	}
	t->root.ino = FUSE_ROOT_ID;
	t->root.kind = root_kind;
	t->root.nlookup = 1; /* the kernel's, never forgotten */
	t->next_ino = FUSE_ROOT_ID + 1;
	return 0;
}

static void free_inode(struct fs_inode *in)
{
	if (in->file != NULL) {
		fs_file_close(in->file);
		free(in->file);
	}
	free(in->name);
	free(in);
}

void fs_itable_close(struct fs_itable *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct fs_inode *in = t->by_ino[i], *next;
		for (; in != NULL; in = next) {
			next = in->ino_next;
			free_inode(in);
		}
	}
	if (t->root.file != NULL) {
		fs_file_close(t->root.file);
		free(t->root.file);
	}
	free(t->by_ino);
	free(t->by_name);
	pthread_mutex_destroy(&t->lock);
}

/* Double both tables when they hold more inodes than buckets. Without
 * memory they stay: chains get longer, lookups stay right. */
static void grow(struct fs_itable *t)
{
	size_t nb = t->nbuckets * 2;
	struct fs_inode **bi, **bn;

	if (t->n <= t->nbuckets)
		return;
	bi = calloc(nb, sizeof(*bi));
	bn = calloc(nb, sizeof(*bn));
	if (bi == NULL || bn == NULL) {
		free(bi);
		free(bn);
		return;
	}
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct fs_inode *in, *next;
		for (in = t->by_ino[i]; in != NULL; in = next) {
			size_t s = mix(in->ino) & (nb - 1);
			next = in->ino_next;
			in->ino_next = bi[s];
			bi[s] = in;
		}
		for (in = t->by_name[i]; in != NULL; in = next) {
			size_t s =
			    name_hash(in->parent->ino, in->name, in->nlen) &
			    (nb - 1);
			next = in->name_next;
			in->name_next = bn[s];
			bn[s] = in;
		}
	}
	free(t->by_ino);
	free(t->by_name);
	t->by_ino = bi;
	t->by_name = bn;
	t->nbuckets = nb;
}

static struct fs_inode *find_ino(const struct fs_itable *t, uint64_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return (struct fs_inode *)&t->root;
	for (struct fs_inode *in = t->by_ino[ino_slot(t, ino)]; in != NULL;
	     in = in->ino_next)
		if (in->ino == ino)
			return in;
	return NULL;
}

static struct fs_inode *find_name(const struct fs_itable *t,
				  const struct fs_inode *dir, const char *name,
				  size_t nlen)
{
	for (struct fs_inode *in = t->by_name[name_slot(t, dir, name, nlen)];
	     in != NULL; in = in->name_next)
		if (in->parent == dir && in->nlen == nlen &&
		    memcmp(in->name, name, nlen) == 0)
			return in;
	return NULL;
}

static void name_remove(struct fs_itable *t, struct fs_inode *in)
{
	struct fs_inode **p =
	    &t->by_name[name_slot(t, in->parent, in->name, in->nlen)];

	while (*p != in)
		p = &(*p)->name_next;
	*p = in->name_next;
	in->name_next = NULL;
}

static void name_insert(struct fs_itable *t, struct fs_inode *in)
{
	size_t s = name_slot(t, in->parent, in->name, in->nlen);

	in->name_next = t->by_name[s];
	t->by_name[s] = in;
}

/* Free in if nobody holds it; its parent loses a reference then. */
static void maybe_free(struct fs_itable *t, struct fs_inode *in)
{
	while (in != &t->root && in->nlookup == 0 && in->refs == 0) {
		struct fs_inode *parent = in->parent, **p;
		if (parent != NULL) {
			name_remove(t, in);
			parent->refs--;
		}
		for (p = &t->by_ino[ino_slot(t, in->ino)]; *p != in;
		     p = &(*p)->ino_next)
			;
		*p = in->ino_next;
		t->n--;
		free_inode(in);
		if (parent == NULL)
			break;
		in = parent;
	}
}

struct fs_inode *fs_inode_get(struct fs_itable *t, uint64_t ino)
{
	pthread_mutex_lock(&t->lock);
	struct fs_inode *in = find_ino(t, ino);
	if (in != NULL)
		in->refs++;
	pthread_mutex_unlock(&t->lock);
	return in;
}

void fs_inode_put(struct fs_itable *t, struct fs_inode *in)
{
	if (in == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	in->refs--;
	maybe_free(t, in);
	pthread_mutex_unlock(&t->lock);
}

struct fs_inode *fs_inode_child(struct fs_itable *t, struct fs_inode *dir,
				const char *name)
{
	pthread_mutex_lock(&t->lock);
	struct fs_inode *in = find_name(t, dir, name, strlen(name));
	if (in != NULL)
		in->refs++;
	pthread_mutex_unlock(&t->lock);
	return in;
}

/* Take in's name away (it stays in the number table). */
static void detach(struct fs_itable *t, struct fs_inode *in)
{
	struct fs_inode *parent = in->parent;

	name_remove(t, in);
	free(in->name);
	in->name = NULL;
	in->nlen = 0;
	in->parent = NULL;
	if (in->pending && parent->pending_kids > 0)
		parent->pending_kids--;
	in->pending = false;
	parent->refs--;
	maybe_free(t, parent);
}

struct fs_inode *fs_inode_link(struct fs_itable *t, struct fs_inode *dir,
			       const char *name, uint32_t kind)
{
	size_t nlen = strlen(name);
	struct fs_inode *in;

	pthread_mutex_lock(&t->lock);
	in = find_name(t, dir, name, nlen);
	if (in != NULL && in->kind != kind) {
		in->refs++; /* detach may not free it under us */
		detach(t, in);
		in->refs--;
		maybe_free(t, in);
		in = NULL;
	}
	if (in == NULL) {
		in = calloc(1, sizeof(*in));
		if (in == NULL || (in->name = malloc(nlen + 1)) == NULL) {
			free(in);
			pthread_mutex_unlock(&t->lock);
			return NULL;
		}
		memcpy(in->name, name, nlen + 1);
		in->nlen = nlen;
		in->ino = t->next_ino++;
		in->kind = kind;
		in->parent = dir;
		dir->refs++;
		size_t s = ino_slot(t, in->ino);
		in->ino_next = t->by_ino[s];
		t->by_ino[s] = in;
		name_insert(t, in);
		t->n++;
		grow(t);
	}
	in->nlookup++;
	in->refs++;
	pthread_mutex_unlock(&t->lock);
	return in;
}

struct fs_file *fs_inode_file(struct fs_itable *t, struct fs_inode *in)
{
	struct fs_file *f = NULL;

	pthread_mutex_lock(&t->lock);
	if (in->file == NULL && (f = malloc(sizeof(*f))) != NULL) {
		if (fs_file_init(f) == 0) {
			in->file = f;
			f = NULL;
		}
	}
	struct fs_file *ret = in->file;
	pthread_mutex_unlock(&t->lock);
	free(f);
	return ret;
}

struct fs_file *fs_inode_peek(struct fs_itable *t, struct fs_inode *in)
{
	pthread_mutex_lock(&t->lock);
	struct fs_file *f = in->file;
	pthread_mutex_unlock(&t->lock);
	return f;
}

void fs_inode_set_pending(struct fs_itable *t, struct fs_inode *in,
			  bool pending)
{
	pthread_mutex_lock(&t->lock);
	if (in->pending != pending && in->parent != NULL) {
		if (pending)
			in->parent->pending_kids++;
		else if (in->parent->pending_kids > 0)
			in->parent->pending_kids--;
	}
	in->pending = pending && in->parent != NULL;
	pthread_mutex_unlock(&t->lock);
}

void fs_inode_forget(struct fs_itable *t, uint64_t ino, uint64_t n)
{
	pthread_mutex_lock(&t->lock);
	struct fs_inode *in = find_ino(t, ino);
	if (in != NULL && in != &t->root) {
		in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
		maybe_free(t, in);
	}
	pthread_mutex_unlock(&t->lock);
}

void fs_inode_detach(struct fs_itable *t, struct fs_inode *in)
{
	pthread_mutex_lock(&t->lock);
	if (in->parent != NULL) {
		in->refs++;
		detach(t, in);
		in->refs--;
		maybe_free(t, in);
	}
	pthread_mutex_unlock(&t->lock);
}

void fs_inode_unlink(struct fs_itable *t, struct fs_inode *dir,
		     const char *name)
{
	pthread_mutex_lock(&t->lock);
	struct fs_inode *in = find_name(t, dir, name, strlen(name));
	if (in != NULL) {
		in->refs++;
		detach(t, in);
		in->refs--;
		maybe_free(t, in);
	}
	pthread_mutex_unlock(&t->lock);
}

/* Give in the name newname in newdir (its old name already removed). */
static int rename_to(struct fs_itable *t, struct fs_inode *in,
		     struct fs_inode *newdir, const char *newname)
{
	size_t nlen = strlen(newname);
	char *n = malloc(nlen + 1);

	if (n == NULL)
		return -ENOMEM;
	memcpy(n, newname, nlen + 1);
	free(in->name);
	in->name = n;
	in->nlen = nlen;
	if (in->parent != newdir) {
		newdir->refs++;
		in->parent->refs--;
		if (in->pending) {
			in->parent->pending_kids--;
			newdir->pending_kids++;
		}
		in->parent = newdir; /* the old one is freed by the caller */
	}
	name_insert(t, in);
	return 0;
}

void fs_inode_move(struct fs_itable *t, struct fs_inode *dir, const char *name,
		   struct fs_inode *newdir, const char *newname, bool exchange)
{
	pthread_mutex_lock(&t->lock);
	struct fs_inode *src = find_name(t, dir, name, strlen(name));
	struct fs_inode *dst = find_name(t, newdir, newname, strlen(newname));
	if (src != NULL)
		src->refs++;
	if (dst != NULL)
		dst->refs++;
	dir->refs++;
	newdir->refs++;
	if (dst != NULL && !exchange)
		detach(t, dst);
	if (src != NULL)
		name_remove(t, src);
	if (dst != NULL && exchange)
		name_remove(t, dst);
	/* Without memory for a name the inode is left unlinked: the kernel
	 * looks the name up again. */
	if (src != NULL && rename_to(t, src, newdir, newname) != 0) {
		src->parent->refs--;
		src->parent = NULL;
		free(src->name);
		src->name = NULL;
	}
	if (dst != NULL && exchange && rename_to(t, dst, dir, name) != 0) {
		dst->parent->refs--;
		dst->parent = NULL;
		free(dst->name);
		dst->name = NULL;
	}
	struct fs_inode *hold[4] = {src, dst, dir, newdir};
	for (int i = 0; i < 4; i++) {
		if (hold[i] == NULL)
			continue;
		hold[i]->refs--;
		maybe_free(t, hold[i]);
	}
	pthread_mutex_unlock(&t->lock);
}

/* The names from the root down to in, joined by '/', after prefix. */
static int key_locked(const struct fs_itable *t, const char *prefix,
		      size_t plen, const struct fs_inode *in, char *out,
		      size_t *klen)
{
	size_t len = 0;
	const struct fs_inode *p;

	for (p = in; p != &t->root; p = p->parent) {
		if (p->parent == NULL)
			return -ENOENT; /* unlinked */
		len += p->nlen + 1;
	}
	if (len == 0) {
		memcpy(out, prefix, plen);
		out[plen] = '\0';
		*klen = plen;
		return 0;
	}
	if (plen == 0)
		len--; /* no leading '/' */
	if (plen + len > KV_MAX_KEY)
		return -ENAMETOOLONG;
	size_t end = plen + len;
	out[end] = '\0';
	for (p = in; p != &t->root; p = p->parent) {
		end -= p->nlen;
		memcpy(out + end, p->name, p->nlen);
		if (end > 0)
			out[--end] = '/';
	}
	memcpy(out, prefix, plen);
	*klen = plen + len;
	return 0;
}

int fs_inode_key(struct fs_itable *t, const char *prefix, size_t plen,
		 struct fs_inode *in, char *out, size_t *klen)
{
	pthread_mutex_lock(&t->lock);
	int ret = key_locked(t, prefix, plen, in, out, klen);
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int fs_inode_child_key(struct fs_itable *t, const char *prefix, size_t plen,
		       struct fs_inode *dir, const char *name, char *out,
		       size_t *klen)
{
	size_t nlen = strlen(name), dlen;
	int ret = fs_inode_key(t, prefix, plen, dir, out, &dlen);

	if (ret != 0)
		return ret;
	if (nlen > KV_MAX_SEGMENT)
		return -ENAMETOOLONG;
	if (dlen + (dlen ? 1 : 0) + nlen > KV_MAX_KEY)
		return -ENAMETOOLONG;
	if (dlen > 0)
		out[dlen++] = '/';
	memcpy(out + dlen, name, nlen + 1);
	*klen = dlen + nlen;
	return kv_key_check(out, *klen);
}

struct fs_inode *fs_inode_at(struct fs_itable *t, const char *path,
			     uint64_t *parent_ino, char *name, size_t cap)
{
	struct fs_inode *in = &t->root, *up = NULL;

	pthread_mutex_lock(&t->lock);
	while (*path == '/')
		path++;
	while (*path != '\0' && in != NULL) {
		const char *slash = strchr(path, '/');
		size_t n = slash ? (size_t)(slash - path) : strlen(path);
		if (n < cap) {
			memcpy(name, path, n);
			name[n] = '\0';
		}
		up = in;
		in = n < cap ? find_name(t, in, path, n) : NULL;
		path += n;
		while (*path == '/')
			path++;
	}
	*parent_ino = up ? up->ino : 0;
	if (in != NULL)
		in->refs++;
	pthread_mutex_unlock(&t->lock);
	return in;
}

unsigned fs_inode_pending_kids(struct fs_itable *t, struct fs_inode *dir)
{
	pthread_mutex_lock(&t->lock);
	unsigned n = dir->pending_kids;
	pthread_mutex_unlock(&t->lock);
	return n;
}

bool fs_inode_is_pending(struct fs_itable *t, struct fs_inode *in)
{
	pthread_mutex_lock(&t->lock);
	bool p = in->pending;
	pthread_mutex_unlock(&t->lock);
	return p;
}

void fs_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int fs_inode_pending_names(struct fs_itable *t, struct fs_inode *dir,
			   char ***names, size_t *n)
{
	char **v = NULL;
	size_t k = 0;
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	/* Rare (a file made here and still open): a walk of the table. */
	size_t want = dir->pending_kids;
	if (want > 0 && (v = calloc(want, sizeof(*v))) == NULL)
		ret = -ENOMEM;
	for (size_t i = 0; ret == 0 && k < want && i < t->nbuckets; i++) {
		for (struct fs_inode *in = t->by_ino[i]; in != NULL && k < want;
		     in = in->ino_next) {
			if (in->parent != dir || !in->pending)
				continue;
			if ((v[k] = strdup(in->name)) == NULL) {
				ret = -ENOMEM;
				break;
			}
			k++;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (ret != 0) {
		fs_names_free(v, k);
		return ret;
	}
	*names = v;
	*n = k;
	return 0;
}

void fs_inode_each_file(struct fs_itable *t,
			void (*fn)(void *ctx, struct fs_inode *in), void *ctx)
{
	struct fs_inode **list = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct fs_inode *in = t->by_ino[i]; in != NULL;
		     in = in->ino_next) {
			if (in->file == NULL)
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct fs_inode **l =
				    realloc(list, nc * sizeof(*l));
				if (l == NULL)
					continue; /* reported by the caller */
				list = l;
				cap = nc;
			}
			in->refs++;
			list[n++] = in;
		}
	}
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < n; i++)
		fn(ctx, list[i]);
	for (size_t i = 0; i < n; i++)
		fs_inode_put(t, list[i]);
	free(list);
}
