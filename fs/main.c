/* main.c - the kvfs program: options, daemonizing, and wiring the pieces
 * (node, HTTP listener, mount) together.
 *
 * kvfs [options] [mountpoint]. Options are parsed with libfuse's fuse_opt
 * table, so every kvfs option works as --opt=value and as -o opt=value;
 * what the table does not know (-d, -o allow_other, ...) goes to FUSE.
 * Without -f the process forks before any thread starts, and the parent
 * exits only once the node serves (or with its error). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "http.h"
#include "node.h"

struct cli {
	unsigned long id;
	char *data;
	char *listen;
	char *peers;
	char *cluster_token;
	char *join;
	unsigned long snapshot_every;
	unsigned long segment_size;
	char *subdir;
	int local_reads;
	int no_default_permissions;
	char *attr_timeout;
	int write_timeout;
	int foreground;
	int help;
	int version;
	char *mountpoint;
};

enum { KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG };

#define OPT(t, f, v)                                                           \
	{                                                                      \
		t, offsetof(struct cli, f), v                                  \
	}
static const struct fuse_opt cli_opts[] = {
    OPT("--id=%lu", id, 0),
    OPT("id=%lu", id, 0),
    OPT("--data=%s", data, 0),
    OPT("data=%s", data, 0),
    OPT("--listen=%s", listen, 0),
    OPT("listen=%s", listen, 0),
    OPT("--peers=%s", peers, 0),
    OPT("peers=%s", peers, 0),
    OPT("--cluster-token=%s", cluster_token, 0),
    OPT("cluster_token=%s", cluster_token, 0),
    OPT("--join=%s", join, 0),
    OPT("join=%s", join, 0),
    OPT("--snapshot-every=%lu", snapshot_every, 0),
    OPT("snapshot_every=%lu", snapshot_every, 0),
    OPT("--segment-size=%lu", segment_size, 0),
    OPT("segment_size=%lu", segment_size, 0),
    OPT("--subdir=%s", subdir, 0),
    OPT("subdir=%s", subdir, 0),
    OPT("--local-reads", local_reads, 1),
    OPT("local_reads", local_reads, 1),
    OPT("--no-default-permissions", no_default_permissions, 1),
    OPT("no_default_permissions", no_default_permissions, 1),
    OPT("--attr-timeout=%s", attr_timeout, 0),
    OPT("attr_timeout=%s", attr_timeout, 0),
    OPT("--write-timeout=%i", write_timeout, 0),
    OPT("write_timeout=%i", write_timeout, 0),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("-f", KEY_FOREGROUND),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_END,
};

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: kvfs [options] [mountpoint]\n"
	    "\n"
	    "A key-value store replicated with Raft, exposed as files.\n"
	    "Without a mountpoint the node serves its HTTP API only.\n"
	    "\n"
	    "options (also as -o name=value, with _ for -):\n"
	    "  --id=N                this member's id (default 1)\n"
	    "  --data=DIR            data directory (default "
	    "./kvfs-data)\n"
	    "  --listen=HOST:PORT    HTTP for clients and peers (default: "
	    "this\n"
	    "                        member's address in --peers, else "
	    "127.0.0.1:7001)\n"
	    "  --peers=1=H:P,2=H:P   the bootstrap members, this one "
	    "included, the\n"
	    "                        same list on every member (default: "
	    "alone)\n"
	    "  --join=HOST:PORT      join the cluster of that member "
	    "(instead of\n"
	    "                        --peers): added as a learner, "
	    "promoted once\n"
	    "                        caught up; --listen is the address "
	    "peers dial\n"
	    "  --cluster-token=FILE  shared secret for peer requests (first "
	    "line);\n"
	    "                        default: derived from --peers and "
	    "kept in the\n"
	    "                        data directory (local clusters "
	    "only)\n"
	    "  --snapshot-every=N    applied entries between snapshots "
	    "(default 100000)\n"
	    "  --segment-size=BYTES  log segment size (default 64 MiB)\n"
	    "  --subdir=PREFIX       mount only the keys under PREFIX\n"
	    "  --local-reads         mount reads skip ReadIndex (may be "
	    "stale)\n"
	    "  --no-default-permissions\n"
	    "                        do not have the kernel check the "
	    "stored modes\n"
	    "                        and owners (checked by default)\n"
	    "  --attr-timeout=SECS   kernel attribute cache (default "
	    "1)\n"
	    "  --write-timeout=MS    bound on waiting for a leader or a "
	    "quorum, for\n"
	    "                        writes and linearizable reads "
	    "(default 5000);\n"
	    "                        then HTTP 503, EIO on the mount\n"
	    "  -f                    stay in the foreground\n"
	    "  -d                    FUSE debug output (implies -f)\n"
	    "  -o OPT[,OPT...]       FUSE mount options\n"
	    "  -h, --help            this text\n"
	    "  -V, --version         print the version\n");
}

static int cli_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct cli *c = data;
	(void)outargs;
	switch (key) {
	case KEY_HELP:
		c->help = 1;
		return 0;
	case KEY_VERSION:
		c->version = 1;
		return 0;
	case KEY_FOREGROUND:
		c->foreground = 1;
		return 0;
	case KEY_DEBUG:
		c->foreground = 1;
		return 1; /* FUSE sees -d too */
	case FUSE_OPT_KEY_NONOPT:
		if (!c->mountpoint) {
			c->mountpoint = strdup(arg);
			return 0;
		}
		fprintf(stderr, "kvfs: unexpected argument: %s\n", arg);
		return -1;
	default:
		if (arg[0] == '-' && arg[1] == '-') {
			fprintf(stderr, "kvfs: unknown option: %s\n", arg);
			return -1;
		}
		return 1;
	}
}

/* Fork; the parent waits for one status byte from the child. Returns the
 * write end of the pipe in the child (-1 in the foreground). */
static int daemonize(void)
{
	int fds[2];
	if (pipe(fds) != 0) {
		perror("kvfs: pipe");
		exit(1);
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("kvfs: fork");
		exit(1);
	}
	if (pid > 0) {
		close(fds[1]);
		char status = 1;
		if (read(fds[0], &status, 1) != 1)
			status = 1;
		_exit(status);
	}
	close(fds[0]);
	setsid();
	return fds[1];
}

static void report_ready(int *fd, char status)
{
	if (*fd < 0)
		return;
	if (write(*fd, &status, 1) != 1) {
		/* the parent is gone; nothing to tell */
	}
	close(*fd);
	*fd = -1;
	/* the parent returned: detach from the terminal */
	int devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		close(devnull);
	}
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cli c = {.id = 1, .write_timeout = 0};
	int ret = 1;

	if (fuse_opt_parse(&args, &c, cli_opts, cli_proc) != 0) {
		fprintf(stderr, "kvfs: try --help\n");
		goto out_args;
	}
	if (c.help) {
		usage(stdout);
		ret = 0;
		goto out_args;
	}
	if (c.version) {
		printf("kvfs %s (format version %d)\n", KVFS_VERSION,
		       KV_FORMAT_VERSION);
		ret = 0;
		goto out_args;
	}
	if (c.id == 0) {
		fprintf(stderr, "kvfs: --id must be at least 1\n");
		goto out_args;
	}
	struct fs_options fso = {.subdir = c.subdir,
				 .local_reads = c.local_reads,
				 .no_default_permissions =
				     c.no_default_permissions,
				 .attr_timeout = 1.0};
	if (c.attr_timeout) {
		char *end;
		fso.attr_timeout = strtod(c.attr_timeout, &end);
		if (*end || fso.attr_timeout < 0) {
			fprintf(stderr, "kvfs: bad --attr-timeout: %s\n",
				c.attr_timeout);
			goto out_args;
		}
	}
	if (c.mountpoint && access(c.mountpoint, F_OK) != 0) {
		fprintf(stderr, "kvfs: mountpoint %s: %s\n", c.mountpoint,
			strerror(errno));
		goto out_args;
	}

	int ready_fd = c.foreground ? -1 : daemonize();

	/* Signals go to the main thread only: block them before any thread
	 * starts, so every thread inherits the mask. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	struct node_options no = {.id = c.id,
				  .data_dir = c.data ? c.data : "kvfs-data",
				  .listen = c.listen,
				  .peers = c.peers,
				  .cluster_token_file = c.cluster_token,
				  .join = c.join,
				  .snapshot_every = c.snapshot_every,
				  .segment_size = c.segment_size,
				  .write_timeout_ms = c.write_timeout};
	fso.data_dir = no.data_dir;
	struct kv_node *node;
	char *errmsg = NULL;
	int err = node_open(&no, &node, &errmsg);
	if (err != 0) {
		fprintf(stderr, "kvfs: cannot start: %s\n",
			errmsg ? errmsg : kv_strerror(err));
		free(errmsg);
		report_ready(&ready_fd, 1);
		goto out_args;
	}
	struct http_server *http;
	err = http_start(node, node_listen(node), &http, &errmsg);
	if (err != 0) {
		fprintf(stderr, "kvfs: cannot start: %s\n",
			errmsg ? errmsg : kv_strerror(err));
		free(errmsg);
		report_ready(&ready_fd, 1);
		node_close(node);
		goto out_args;
	}
	fprintf(stderr, "kvfs: node %lu serving HTTP on port %u, data in %s\n",
		c.id, http_port(http), no.data_dir);

	if (!c.mountpoint) {
		report_ready(&ready_fd, 0);
		int sig;
		sigwait(&sigs, &sig);
		fprintf(stderr, "kvfs: signal %d, shutting down\n", sig);
		ret = 0;
		goto out_node;
	}

	struct fs *fs;
	err = fs_mount(node, c.mountpoint, &args, &fso, &fs);
	if (err != 0) {
		report_ready(&ready_fd, 1);
		goto out_node;
	}
	report_ready(&ready_fd, 0);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	err = fs_loop(fs);
	/* The loop has ended: commit what open files hold while the node
	 * still runs, then unmount, then stop the node. */
	fs_commit_open(fs);
	fs_free(fs);
	ret = err == 0 ? 0 : 1;

out_node:
	/* the node first answers what the listener suspended, then the
	 * listener stops, then the rest of the node */
	node_stop(node);
	http_stop(http);
	node_close(node);
out_args:
	fuse_opt_free_args(&args);
	free(c.data);
	free(c.listen);
	free(c.peers);
	free(c.cluster_token);
	free(c.join);
	free(c.subdir);
	free(c.attr_timeout);
	free(c.mountpoint);
	return ret;
}
