/* cli.h - kvfs's command line (cli.c), for main.c. */
#ifndef KVFS_CLI_H
#define KVFS_CLI_H

#include <stdbool.h>

struct fuse_args;
struct fs_options;

/* Every option as given (strings malloc'd by fuse_opt; cli_free). */
struct cli {
	unsigned long id;
	char *data;
	char *listen;
	char *peers;
	char *cluster_token;
	char *join;
	char *tls_cert, *tls_key, *tls_ca;
	int tls_client_auth;
	char *auth;
	char *log;
	char *log_level;
	char *restore;
	int status_public;
	int insecure;
	char *tcp_listen;
	int tcp_insecure;
	unsigned tcp_max_connections;
	unsigned tcp_timeout;
	unsigned long snapshot_every;
	unsigned long watch_history;
	unsigned long segment_size;
	char *subdir;
	int local_reads;
	int no_default_permissions;
	char *attr_timeout;
	int write_timeout;
	int foreground;
	int help;
	int version;
	char *source; /* mount(8)'s first argument: the mount's name */
	char *mountpoint;
};

/* Parses and checks the command line into c and fso. Returns -1 to go
 * on, else the exit code (0 after --help or --version). */
int cli_parse(struct fuse_args *args, struct cli *c, struct fs_options *fso);
/* A non-loopback HTTP (or --tcp-listen) address without TLS and client
 * tokens refused unless --insecure (--tcp-insecure) says it is meant;
 * false after saying why on stderr. */
bool cli_exposure_ok(const struct cli *c);
bool cli_tcp_exposure_ok(const struct cli *c);
void cli_free(struct cli *c);

#endif
