/* cli.c - kvfs's command line: the option table (libfuse's fuse_opt, so
 * every option works as --opt=value and as -o opt=value; what the table
 * does not know goes to FUSE), --help, the checks of what was given, and
 * the exposure rule (a non-loopback address needs TLS and client tokens,
 * or --insecure). main.c wires what it yields. */
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
    OPT("--tls-cert=%s", tls_cert, 0),
    OPT("tls_cert=%s", tls_cert, 0),
    OPT("--tls-key=%s", tls_key, 0),
    OPT("tls_key=%s", tls_key, 0),
    OPT("--tls-ca=%s", tls_ca, 0),
    OPT("tls_ca=%s", tls_ca, 0),
    OPT("--tls-client-auth", tls_client_auth, 1),
    OPT("tls_client_auth", tls_client_auth, 1),
    OPT("--restore=%s", restore, 0),
    OPT("restore=%s", restore, 0),
    OPT("--log-level=%s", log_level, 0),
    OPT("log_level=%s", log_level, 0),
    OPT("--log=%s", log, 0),
    OPT("log=%s", log, 0),
    OPT("--auth=%s", auth, 0),
    OPT("auth=%s", auth, 0),
    OPT("--status-public", status_public, 1),
    OPT("status_public", status_public, 1),
    OPT("--insecure", insecure, 1),
    OPT("insecure", insecure, 1),
    OPT("--tcp-listen=%s", tcp_listen, 0),
    OPT("tcp_listen=%s", tcp_listen, 0),
    OPT("--tcp-insecure", tcp_insecure, 1),
    OPT("tcp_insecure", tcp_insecure, 1),
    OPT("--tcp-max-connections=%u", tcp_max_connections, 0),
    OPT("tcp_max_connections=%u", tcp_max_connections, 0),
    OPT("--tcp-timeout=%u", tcp_timeout, 0),
    OPT("tcp_timeout=%u", tcp_timeout, 0),
    OPT("--snapshot-every=%lu", snapshot_every, 0),
    OPT("snapshot_every=%lu", snapshot_every, 0),
    OPT("--watch-history=%lu", watch_history, 0),
    OPT("watch_history=%lu", watch_history, 0),
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
	    "usage: kvfs [options] [[source] mountpoint]\n"
	    "\n"
	    "A key-value store replicated with Raft, exposed as files.\n"
	    "Without a mountpoint the node serves its HTTP API only.\n"
	    "The source, as mount -t fuse.kvfs passes it, names the mount.\n"
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
	    "  --cluster-token=FILE  the cluster's secret (kvfsctl new-token "
	    "> FILE),\n"
	    "                        the same file on every member; a "
	    "second line is\n"
	    "                        accepted too (a rotation). A member "
	    "alone keeps\n"
	    "                        a random one in DIR/cluster-token\n"
	    "  --tls-cert=FILE, --tls-key=FILE, --tls-ca=FILE\n"
	    "                        TLS (PEM) for clients and peers; "
	    "peers must\n"
	    "                        present a certificate of the CA\n"
	    "  --tls-client-auth     clients must present one too\n"
	    "  --auth=FILE           client tokens: NAME ROLE sha256:HEX "
	    "[PREFIX] a line,\n"
	    "                        ROLE read, write or admin "
	    "(reread on SIGHUP)\n"
	    "  --status-public       /status without a token (with "
	    "--auth)\n"
	    "  --insecure            serve a non-loopback address "
	    "without TLS and\n"
	    "                        without --auth (anyone who reaches "
	    "it may do\n"
	    "                        anything)\n"
	    "  --tcp-listen=HOST:PORT\n"
	    "                        also serve the byte DB's protocol (SET, "
	    "GET,\n"
	    "                        DEL, ALL) on plain TCP (default: off)\n"
	    "  --tcp-insecure        allow it on a non-loopback address or "
	    "with\n"
	    "                        --auth: it has no TLS and no tokens\n"
	    "  --tcp-max-connections=N  at once (default 64)\n"
	    "  --tcp-timeout=MS      idle limit between requests (default "
	    "30000);\n"
	    "                        a request must arrive within a third\n"
	    "  --restore=FILE        start a new cluster from a backup (GET\n"
	    "                        /snapshot, kvfsctl snapshot save) on an\n"
	    "                        empty DIR; every bootstrap member gets "
	    "it\n"
	    "  --snapshot-every=N    applied entries between snapshots "
	    "(default 100000)\n"
	    "  --watch-history=N     recent changes kept for watches "
	    "(default 100000)\n"
	    "  --segment-size=BYTES  log segment size (default 64 MiB, "
	    "at most 1 GiB)\n"
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
	    "  --log-level=LEVEL     error, warn, info (default) or debug\n"
	    "  --log=FILE            append the log to FILE (default: stderr;\n"
	    "                        in the background, syslog)\n"
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
		/* kvfs MOUNTPOINT, or kvfs SOURCE MOUNTPOINT as mount(8)
		 * and mount.fuse3 call it (mount -t fuse.kvfs, fstab) */
		if (!c->mountpoint) {
			c->mountpoint = strdup(arg);
			return 0;
		}
		if (!c->source) {
			c->source = c->mountpoint;
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

/* The address this node will listen on: --listen, else its own in
 * --peers, else the default. */
static const char *listen_address(const struct cli *c, char *buf, size_t cap)
{
	if (c->listen)
		return c->listen;
	for (const char *p = c->peers; p && *p;) {
		char *end;
		unsigned long id = strtoul(p, &end, 10);
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - end) : strlen(end);
		if (*end == '=' && id == c->id && len > 1 && len < cap) {
			memcpy(buf, end + 1, len - 1);
			buf[len - 1] = '\0';
			return buf;
		}
		p = comma ? comma + 1 : p + strlen(p);
	}
	return "127.0.0.1:7001";
}

/* Safe by default: serving anything but loopback needs TLS or client
 * tokens, or --insecure. true to go on. */
bool cli_exposure_ok(const struct cli *c)
{
	char buf[128], host[KV_ADDR_MAX + 1];
	const char *addr = listen_address(c, buf, sizeof(buf));

	/* an address that does not parse is node_open's to refuse, naming
	 * its option */
	if (kv_addr_parse(addr, true, host, sizeof(host), NULL, NULL) != 0 ||
	    cluster_addr_loopback(addr) || c->tls_cert || c->auth)
		return true;
	if (c->insecure) {
		fprintf(stderr,
			"kvfs: warning: serving %s without TLS and without "
			"--auth (--insecure): anyone who reaches it may read "
			"and write every key\n",
			addr);
		return true;
	}
	fprintf(stderr,
		"kvfs: refusing to serve %s, which is not a loopback "
		"address, without protection: anyone who can reach it could "
		"read and write every key, and without TLS the cluster's "
		"token and the data cross the network in clear. Give "
		"--tls-cert, --tls-key and --tls-ca (and --auth with client "
		"tokens), or --insecure if the network itself is trusted "
		"(docs/security.md)\n",
		addr);
	return false;
}

/* The byte protocol has neither TLS nor tokens: it is served on a
 * loopback address without --auth, or with --tcp-insecure. true to go
 * on. */
bool cli_tcp_exposure_ok(const struct cli *c)
{
	char host[KV_ADDR_MAX + 1];

	if (!c->tcp_listen)
		return true;
	if (kv_addr_parse(c->tcp_listen, true, host, sizeof(host), NULL,
			  NULL) != 0)
		return true; /* tcp_start refuses it, naming the option */
	bool loopback = cluster_addr_loopback(c->tcp_listen);
	if (c->tcp_insecure) {
		if (!loopback || c->auth)
			fprintf(stderr,
				"kvfs: warning: the byte protocol on %s has "
				"no TLS and no tokens (--tcp-insecure): "
				"anyone who reaches it may read and write "
				"every key%s\n",
				c->tcp_listen,
				c->auth ? ", whatever --auth allows" : "");
		return true;
	}
	if (loopback && !c->auth)
		return true;
	fprintf(stderr,
		"kvfs: refusing to serve the byte protocol on %s: it has no "
		"TLS and no tokens, so %s. Serve it on a loopback address "
		"without --auth, or give --tcp-insecure if that is meant "
		"(docs/byte-protocol.md)\n",
		c->tcp_listen,
		c->auth ? "it would let anyone past --auth's tokens"
			: "anyone who can reach it could read and write "
			  "every key");
	return false;
}

/* Frees what fuse_opt_parse allocated into c. */
void cli_free(struct cli *c)
{
	char **strs[] = {&c->data,	    &c->listen,	      &c->peers,
			 &c->cluster_token, &c->join,	      &c->tls_cert,
			 &c->tls_key,	    &c->tls_ca,	      &c->auth,
			 &c->subdir,	    &c->attr_timeout, &c->mountpoint,
			 &c->source,	    &c->log,	      &c->restore,
			 &c->log_level,	    &c->tcp_listen};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
}

/* Parses and checks the command line into c and fso. Returns -1 to go
 * on, else the exit code (0 after --help or --version). */
int cli_parse(struct fuse_args *args, struct cli *c, struct fs_options *fso)
{
	if (fuse_opt_parse(args, c, cli_opts, cli_proc) != 0) {
		fprintf(stderr, "kvfs: try --help\n");
		return 1;
	}
	if (c->help) {
		usage(stdout);
		return 0;
	}
	if (c->version) {
		printf("kvfs %s (format version %d)\n", KVFS_VERSION,
		       KV_FORMAT_VERSION);
		return 0;
	}
	if (c->id == 0) {
		fprintf(stderr, "kvfs: --id must be at least 1\n");
		return 1;
	}
	*fso = (struct fs_options){.subdir = c->subdir,
				   .local_reads = c->local_reads,
				   .no_default_permissions =
				       c->no_default_permissions,
				   .data_dir = c->data ? c->data : "kvfs-data",
				   .attr_timeout = 1.0};
	if (c->attr_timeout) {
		char *end;
		fso->attr_timeout = strtod(c->attr_timeout, &end);
		if (*end || fso->attr_timeout < 0) {
			fprintf(stderr, "kvfs: bad --attr-timeout: %s\n",
				c->attr_timeout);
			return 1;
		}
	}
	enum kv_log_level lvl = KV_LOG_INFO;
	if (c->log_level && kv_log_level_parse(c->log_level, &lvl) != 0) {
		fprintf(stderr,
			"kvfs: bad --log-level: %s (error, warn, info or "
			"debug)\n",
			c->log_level);
		return 1;
	}
	kv_log_set_level(lvl);
	if (c->source) {
		fso->fsname = c->source;
		size_t n = strlen(c->source);
		if (n == 0 || n > 255 ||
		    strspn(c->source, "abcdefghijklmnopqrstuvwxyz"
				      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				      "0123456789._:@/-") != n) {
			fprintf(stderr,
				"kvfs: bad source name %s: 1 to 255 letters, "
				"digits and ._:@/- (kvfs SOURCE MOUNTPOINT)\n",
				c->source);
			return 1;
		}
	}
	if (c->mountpoint && access(c->mountpoint, F_OK) != 0) {
		fprintf(stderr, "kvfs: mountpoint %s: %s\n", c->mountpoint,
			strerror(errno));
		return 1;
	}
	return -1;
}
