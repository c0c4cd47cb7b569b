/* tnode.c - a test's node and its listener (tnode.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tnode.h"

/* A member of several needs the cluster's token (docs/security.md): a
 * test that gives none gets one written beside its data directory. */
static const char *token_file(const struct node_options *opt, char *path,
			      size_t cap)
{
	if (opt->cluster_token_file || !opt->peers || !strchr(opt->peers, ','))
		return opt->cluster_token_file;
	snprintf(path, cap, "%s/test-token", opt->data_dir);
	mkdir(opt->data_dir, 0700); /* removed with the data directory */
	FILE *f = fopen(path, "we");
	if (!f)
		return NULL;
	fprintf(f, "test-cluster-token-0123456789abcdef0123456789\n");
	fclose(f);
	return path;
}

int tnode_open(const struct node_options *given, struct tnode *t, char **err)
{
	char path[4096];
	struct node_options o = *given, *opt = &o;
	o.cluster_token_file = token_file(given, path, sizeof(path));
	memset(t, 0, sizeof(*t));
	*err = NULL;
	int ret = node_open(opt, &t->node, err);
	if (ret != 0)
		return ret;
	ret = http_start(t->node, node_listen(t->node), &t->http, err);
	if (ret != 0) {
		node_close(t->node);
		memset(t, 0, sizeof(*t));
		return ret;
	}
	t->port = http_port(t->http);
	return 0;
}

int tnode_start(const struct node_options *opt, struct tnode *t)
{
	char *err = NULL;
	int ret = tnode_open(opt, t, &err);
	if (ret != 0)
		fprintf(stderr, "tnode_open: %s\n",
			err ? err : kv_strerror(ret));
	free(err);
	return ret == 0 ? 0 : -1;
}

int tnode_start_leaderless(const char *data_dir, int write_timeout_ms,
			   struct tnode *t)
{
	char peers[128], listen[64];
	unsigned p1 = tnode_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", p1);
	snprintf(peers, sizeof(peers),
		 "1=127.0.0.1:%u,2=127.0.0.1:%u,3=127.0.0.1:%u", p1,
		 tnode_free_port(), tnode_free_port());
	struct node_options opt = {.id = 1,
				   .data_dir = data_dir,
				   .listen = listen,
				   .peers = peers,
				   .write_timeout_ms = write_timeout_ms};
	return tnode_start(&opt, t);
}

void tnode_close(struct tnode *t)
{
	if (!t->node)
		return;
	node_stop(t->node);
	http_stop(t->http);
	node_close(t->node);
	memset(t, 0, sizeof(*t));
}

unsigned tnode_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	unsigned port = 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

uint64_t tnode_wait_leader(struct kv_node *n, int ms)
{
	struct timespec deadline = kv_deadline(ms);
	uint64_t id;
	while ((id = node_leader(n, NULL, 0)) == 0 && !kv_past(&deadline))
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	return id ? id : node_leader(n, NULL, 0);
}
