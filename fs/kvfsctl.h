/* kvfsctl.h - what the files of the kvfs command-line client share:
 * its settings and the helpers that speak to one node (kvfsctl_http.c).
 * kvfsctl.c is the program and the cluster commands, kvfsctl_data.c the
 * commands that move data in bulk (snapshot save, export, import). */
#ifndef KVFSCTL_H
#define KVFSCTL_H

#include <stdbool.h>
#include <stddef.h>

#include "join.h"

struct ctl {
	const char *node;
	int timeout_ms;
	bool json;
	struct cluster_auth auth; /* what every request presents */
};

/* One request to the node itself; 0 or 1 (the message printed). */
int ctl_request(const struct ctl *c, const char *method, const char *path,
		const char *body, size_t len, long *status, char **resp,
		size_t *resp_len);
/* Say on stderr why `what` failed: a JSON error body's "error", or the
 * body. */
void ctl_print_failure(const char *what, long status, const char *resp);
/* Print a JSON answer pretty (or as it came if it is not JSON). */
void ctl_print_json(const char *resp);
/* "/kv/" + KEY percent-encoded (slashes kept); NULL if out of memory. */
char *ctl_kv_path(const char *key);

/* kvfsctl_watch.c: changes under prefix from revision since (0: the
 * next), count of them (0: until interrupted). */
#include <stdint.h>
int ctl_watch(const struct ctl *c, const char *prefix, uint64_t since,
	      uint64_t count);

/* kvfsctl_keys.c: del KEY (-r: a directory and all below it, one entry),
 * ls [DIR] (-r: every key below, at any depth). */
int ctl_del(const struct ctl *c, const char *key, bool recursive);
int ctl_ls(const struct ctl *c, const char *dir, bool recursive);

/* kvfsctl_txn.c: the JSON body in file ("-": stdin) as POST /txn: 0 if
 * the success branch ran, CTL_EXIT_TXN_FAILED if the failure branch did,
 * 1 if the request failed. */
#define CTL_EXIT_TXN_FAILED 3
int ctl_txn(const struct ctl *c, const char *file);
/* The same from words ("if KEY TARGET OP VALUE", "then", "else", "get
 * KEY", "put KEY VALUE", "del KEY", "del-range DIR"); 2 for bad words. */
int ctl_txn_words(const struct ctl *c, int n, char **w);
/* kvfsctl_lease.c: lease grant TTL | keep-alive [--once] ID | revoke ID |
 * get ID | ls; 2 for bad usage. */
int ctl_lease(const struct ctl *c, int nargs, char **argv);

/* kvfsctl_health.c */
#define EXIT_USAGE 2 /* kvfsctl's exit status for bad usage */

/* kvfsctl_members.c: the membership commands (0, 1 failed, 2 usage). */
int ctl_members(const struct ctl *c);
int ctl_add(const struct ctl *c, const char *ids, const char *addr);
int ctl_remove(const struct ctl *c, const char *ids);
int ctl_transfer_leader(const struct ctl *c, const char *ids);
/* Is a a member address (HOST:PORT, port 1..65535)? If not, say why on
 * stderr, naming what (the option or argument it came from). */
bool ctl_addr_ok(const char *what, const char *a);
int ctl_health(const struct ctl *c);

/* kvfsctl_data.c */
int ctl_snapshot_save(const struct ctl *c, const char *path);
int ctl_export(const struct ctl *c, const char *path);
int ctl_import(const struct ctl *c, const char *path);

#endif
