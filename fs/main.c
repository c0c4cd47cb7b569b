/* main.c - the kvfs program: options, daemonizing, and wiring the pieces
 * (node, HTTP listener, mount) together.
 *
 * kvfs [options] [mountpoint]. Options are parsed with libfuse's fuse_opt
 * table, so every kvfs option works as --opt=value and as -o opt=value;
 * what the table does not know (-d, -o allow_other, ...) goes to FUSE.
 * Without -f the process forks before any thread starts, and the parent
 * exits only once the node serves (or with its error). Secrets come from
 * files only (--cluster-token, --auth, --tls-key), so ps shows none; a
 * node that would serve a non-loopback address with neither TLS nor
 * client tokens refuses to start unless --insecure says it is meant to.
 * SIGHUP rereads the token files, in HTTP-only and mount mode alike. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "fs.h"
#include "http.h"
#include "join.h"
#include "node.h"
#include "peer_tls.h"
#include "tcp.h"

/* The TLS identity the options name (none: *out NULL). 0, or -1 with
 * the reason on stderr. */
static int open_tls(const struct cli *c, struct peer_tls **out)
{
	struct peer_tls_files tf = {c->tls_cert, c->tls_key, c->tls_ca};
	char *errmsg = NULL;

	*out = NULL;
	if (c->tls_client_auth && !c->tls_cert) {
		fprintf(stderr, "kvfs: --tls-client-auth needs TLS "
				"(--tls-cert, --tls-key, --tls-ca)\n");
		return -1;
	}
	if (!c->tls_cert && !c->tls_key && !c->tls_ca)
		return 0;
	if (!c->tls_cert) {
		fprintf(stderr, "kvfs: TLS needs --tls-cert and --tls-key: a "
				"node presents its certificate to clients and "
				"peers\n");
		return -1;
	}
	if (peer_tls_new(&tf, out, &errmsg) != 0) {
		fprintf(stderr, "kvfs: cannot start: %s\n",
			errmsg ? errmsg : "TLS");
		free(errmsg);
		return -1;
	}
	return 0;
}

/* SIGHUP rereads the token files. A thread of its own waits for it, so
 * that it works the same whether the main thread waits for signals or
 * runs the FUSE loop; every thread keeps SIGHUP blocked. */
struct reloader {
	pthread_t thread;
	struct kv_node *node;
	struct http_server *http;
	atomic_bool stop;
};

static void *reload_main(void *arg)
{
	struct reloader *rl = arg;
	sigset_t hup;

	pthread_setname_np(pthread_self(), "kvfs-sighup");
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	for (;;) {
		int sig;
		char *err = NULL;
		if (sigwait(&hup, &sig) != 0 || atomic_load(&rl->stop))
			break;
		if (node_reload_tokens(rl->node, &err) != 0)
			kv_log(KV_LOG_WARN,
			       "SIGHUP: kept the cluster tokens: %s",
			       err ? err : "cannot read the file");
		else
			kv_log(KV_LOG_INFO, "SIGHUP: cluster tokens read");
		free(err);
		err = NULL;
		if (http_reload(rl->http, &err) != 0)
			kv_log(KV_LOG_WARN,
			       "SIGHUP: kept the client tokens: %s",
			       err ? err : "cannot read the file");
		free(err);
	}
	return NULL;
}

static void reloader_stop(struct reloader *rl)
{
	atomic_store(&rl->stop, true);
	pthread_kill(rl->thread, SIGHUP);
	pthread_join(rl->thread, NULL);
}

/* 0 if path can be opened to append a log to, else -1 and errno. */
static int access_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* The running pieces, started by serve_start and stopped by serve_stop
 * in reverse order. */
struct serving {
	struct peer_tls *tls;
	struct kv_node *node;
	struct http_server *http;
	struct tcp_server *tcp; /* --tcp-listen, else NULL */
	struct reloader rl;
};

static void say_cannot_start(int err, char *errmsg)
{
	fprintf(stderr, "kvfs: cannot start: %s\n",
		errmsg ? errmsg : kv_strerror(err));
	free(errmsg);
}

/* Opens the node, starts the listener and the SIGHUP thread. On failure
 * undoes what it did and returns nonzero. */
static int serve_start(struct serving *sv, const struct cli *c,
		       const char *data_dir)
{
	char *errmsg = NULL;
	struct node_options no = {.id = c->id,
				  .data_dir = data_dir,
				  .listen = c->listen,
				  .peers = c->peers,
				  .cluster_token_file = c->cluster_token,
				  .join = c->join,
				  .tls = sv->tls,
				  .snapshot_every = c->snapshot_every,
				  .watch_history = c->watch_history,
				  .segment_size = c->segment_size,
				  .write_timeout_ms = c->write_timeout,
				  .restore = c->restore};
	int err = node_open(&no, &sv->node, &errmsg);
	if (err != 0) {
		say_cannot_start(err, errmsg);
		return 1;
	}
	struct http_options ho = {.listen = node_listen(sv->node),
				  .tls = sv->tls,
				  .tls_client_auth = c->tls_client_auth,
				  .auth_file = c->auth,
				  .status_public = c->status_public};
	err = http_start_with(sv->node, &ho, &sv->http, &errmsg);
	if (err != 0) {
		say_cannot_start(err, errmsg);
		node_close(sv->node);
		return 1;
	}
	if (c->tcp_listen) {
		unsigned t = c->tcp_timeout;
		struct tcp_options to = {.listen = c->tcp_listen,
					 .max_connections =
					     c->tcp_max_connections,
					 .idle_ms = t,
					 .frame_ms = t / 3,
					 .stall_ms = t};
		err = tcp_start(sv->node, &to, &sv->tcp, &errmsg);
		if (err != 0) {
			say_cannot_start(err, errmsg);
			node_stop(sv->node);
			http_stop(sv->http);
			node_close(sv->node);
			return 1;
		}
		kv_log(KV_LOG_INFO, "byte protocol on %s (port %u)",
		       c->tcp_listen, tcp_port(sv->tcp));
	}
	kv_log(KV_LOG_INFO, "node %lu serving %s on port %u, data in %s", c->id,
	       sv->tls ? "HTTPS" : "HTTP", http_port(sv->http), data_dir);
	sv->rl = (struct reloader){.node = sv->node, .http = sv->http};
	atomic_init(&sv->rl.stop, false);
	if (pthread_create(&sv->rl.thread, NULL, reload_main, &sv->rl) != 0) {
		fprintf(stderr, "kvfs: cannot start the SIGHUP thread\n");
		node_stop(sv->node);
		tcp_stop(sv->tcp);
		http_stop(sv->http);
		node_close(sv->node);
		return 1;
	}
	return 0;
}

static void serve_stop(struct serving *sv)
{
	reloader_stop(&sv->rl);
	/* a leader hands over first, so that a restart costs no election
	 * and no failed write (bounded: it stops anyway) */
	node_handover(sv->node);
	/* the node first answers what the listener suspended, then the
	 * listener stops, then the rest of the node */
	node_stop(sv->node);
	tcp_stop(sv->tcp);
	http_stop(sv->http);
	node_close(sv->node);
}

/* Serves until the end: with a mountpoint, the FUSE loop (which ends on
 * SIGINT, SIGTERM or an unmount), else a wait for SIGINT or SIGTERM.
 * sigs holds those two, blocked. Returns the exit code. */
static int serve_until_done(struct serving *sv, const struct cli *c,
			    struct fuse_args *args,
			    const struct fs_options *fso, sigset_t *sigs,
			    int *ready_fd)
{
	if (!c->mountpoint) {
		daemon_ready(ready_fd, 0, c->log);
		int sig;
		sigwait(sigs, &sig);
		kv_log(KV_LOG_INFO, "signal %d, shutting down", sig);
		return 0;
	}
	struct fs *fs;
	if (fs_mount(sv->node, c->mountpoint, args, fso, &fs) != 0) {
		daemon_ready(ready_fd, 1, c->log);
		return 1;
	}
	daemon_ready(ready_fd, 0, c->log);
	pthread_sigmask(SIG_UNBLOCK, sigs, NULL);
	int err = fs_loop(fs);
	/* The loop has ended: commit what open files hold while the node
	 * still runs, then unmount; the node stops after. */
	fs_commit_open(fs);
	fs_free(fs);
	return err == 0 ? 0 : 1;
}

/* main wires the pieces in order (options, TLS, node, listener, the
 * SIGHUP thread, the mount) and unwinds them in reverse. */
int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cli c = {.id = 1, .write_timeout = 0};
	struct fs_options fso;
	struct serving sv = {0};

	int ret = cli_parse(&args, &c, &fso);
	if (ret >= 0)
		goto out;
	ret = 1;
	if (!cli_exposure_ok(&c) || !cli_tcp_exposure_ok(&c) ||
	    open_tls(&c, &sv.tls) != 0)
		goto out;

	/* --log: in the foreground from now on; in the background once the
	 * parent has returned (until then errors reach the caller), checked
	 * here so that a bad path is told on the terminal */
	if (c.log && (c.foreground ? daemon_log_to_file(c.log)
				   : access_log(c.log)) != 0) {
		fprintf(stderr, "kvfs: --log=%s: %s\n", c.log, strerror(errno));
		goto out;
	}
	int ready_fd = c.foreground ? -1 : daemon_fork();

	/* Signals go to the main thread (and SIGHUP to the reloader) only:
	 * block them before any thread starts, so every thread inherits the
	 * mask. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if (serve_start(&sv, &c, fso.data_dir) != 0) {
		daemon_ready(&ready_fd, 1, c.log);
	} else {
		/* the main thread takes SIGINT and SIGTERM; SIGHUP is the
		 * reloader's */
		sigdelset(&sigs, SIGHUP);
		ret = serve_until_done(&sv, &c, &args, &fso, &sigs, &ready_fd);
		serve_stop(&sv);
	}
	peer_tls_free(sv.tls);
	daemon_log_end();
out:
	fuse_opt_free_args(&args);
	cli_free(&c);
	return ret;
}
