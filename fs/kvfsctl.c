/* kvfsctl.c - the command-line client for a kvfs cluster.
 *
 * kvfsctl [--node=H:P] [--timeout=MS] [--json] COMMAND talks to one node's
 * HTTP API: status, the member list, membership changes (which only the
 * leader makes: a 421 is followed to the leader it names and a busy or
 * leaderless cluster is retried until the timeout, raft/peer/join.c),
 * leadership transfer (the same way), and a
 * key's value; new-token prints a fresh cluster token. It speaks https://
 * with --tls-ca (and --tls-cert, --tls-key) and presents tokens read from
 * files only (--cluster-token, --token), never from the command line, where
 * ps would show them. It keeps no state and prints either pretty JSON or a
 * short table. Exit codes: 0 success, 1 the request failed, 2 bad usage,
 * 3 a txn whose comparisons did not hold (its failure branch ran).
 * The endpoints are in docs/http-api.md, security in docs/security.md. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "join.h"
#include "kv.h"
#include "peer.h"
#include "peer_tls.h"

#include "kvfsctl.h"

#define DEFAULT_NODE	   "127.0.0.1:7001"
#define DEFAULT_TIMEOUT_MS 10000
#define STDIN_MAX	   (16u * 1024u * 1024u + 1u)

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: kvfsctl [--node=HOST:PORT] [--timeout=MS] [--json] "
	    "COMMAND\n"
	    "  status               the node's /status (JSON)\n"
	    "  health               healthy or not, and why (a table; exit 1 "
	    "if not)\n"
	    "  members              the members as the node knows them\n"
	    "  add ID HOST:PORT     add a member (a learner, promoted once "
	    "caught up)\n"
	    "  remove ID            remove a member (the leader too)\n"
	    "  transfer-leader [ID] hand leadership to ID, or to the most "
	    "caught-up\n"
	    "                       voter (needs what remove needs)\n"
	    "  get KEY              print KEY's value\n"
	    "  put [--ttl=SECONDS|--lease=ID] KEY VALUE|-\n"
	    "                       set KEY (- reads the value from stdin); "
	    "on a\n"
	    "                       lease of its own, or on lease ID\n"
	    "  del [-r] KEY         delete KEY (-r: a directory and all "
	    "below it)\n"
	    "  ls [-r] [DIR]        list DIR (default the top; -r: every key "
	    "below)\n"
	    "  watch PREFIX [SINCE [COUNT]]\n"
	    "                       print each change under PREFIX (\"\" all) "
	    "from\n"
	    "                       revision SINCE (default: the next), COUNT "
	    "of them\n"
	    "                       (default: until interrupted)\n"
	    "  txn [FILE|-]         a transaction: the JSON body of POST "
	    "/txn from\n"
	    "                       FILE or stdin; prints the answer (exit 3: "
	    "the\n"
	    "                       failure branch ran)\n"
	    "  txn WORDS...         the same from words: [if KEY TARGET OP "
	    "VALUE]...\n"
	    "                       [then] OPS [else OPS], OPS of get KEY, "
	    "put KEY\n"
	    "                       VALUE, del KEY, del-range DIR\n"
	    "  lease grant TTL      a new lease of TTL seconds; prints its "
	    "id\n"
	    "  lease keep-alive [--once] ID\n"
	    "                       renew lease ID every third of its TTL "
	    "until\n"
	    "                       interrupted (exit 1 once it is gone)\n"
	    "  lease revoke ID      end lease ID: its keys are deleted\n"
	    "  lease get ID | ls    a lease (TTL, seconds left, keys), every "
	    "lease\n"
	    "  snapshot save FILE   save a backup of every key (needs the "
	    "cluster\n"
	    "                       token or an admin token); kvfs "
	    "--restore=FILE\n"
	    "  export FILE|-        every key and value as JSON lines "
	    "(needs what\n"
	    "                       snapshot save needs)\n"
	    "  import FILE|-        PUT every key of an export\n"
	    "  new-token            print a new cluster token (for "
	    "--cluster-token)\n"
	    "options:\n"
	    "  --node=HOST:PORT     the node to ask (default " DEFAULT_NODE
	    ")\n"
	    "  --timeout=MS         give up after MS (default %d)\n"
	    "  --json               print JSON, not a table\n"
	    "  --tls-ca=FILE        speak https, checking the node against "
	    "this CA\n"
	    "  --tls-cert=FILE, --tls-key=FILE\n"
	    "                       present this certificate (PEM)\n"
	    "  --token=FILE         present the client token in FILE "
	    "(--auth)\n"
	    "  --cluster-token=FILE present the cluster's token (membership "
	    "changes)\n"
	    "exit: 0 success, 1 failure, 2 usage, 3 a txn's failure branch "
	    "ran\n",
	    DEFAULT_TIMEOUT_MS);
}

static int cmd_status(const struct ctl *c)
{
	long status = 0;
	char *resp = NULL;
	int rc =
	    ctl_request(c, "GET", "/status", NULL, 0, &status, &resp, NULL);

	if (rc != 0)
		return rc;
	if (status != 200) {
		ctl_print_failure("status", status, resp);
		rc = 1;
	} else {
		ctl_print_json(resp);
	}
	free(resp);
	return rc;
}

static int cmd_get(const struct ctl *c, const char *key)
{
	char *path = ctl_kv_path(key), *resp = NULL;
	size_t len = 0;
	long status = 0;
	int rc;

	if (!path)
		return 1;
	rc = ctl_request(c, "GET", path, NULL, 0, &status, &resp, &len);
	free(path);
	if (rc != 0)
		return rc;
	if (status == 200) {
		/* The value as it is, NULs and all. */
		if (fwrite(resp, 1, len, stdout) != len)
			rc = 1;
	} else {
		ctl_print_failure("get", status, resp);
		rc = 1;
	}
	free(resp);
	return rc;
}

/* All of stdin, malloc'd, into *out and *len. */
static int read_stdin(char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		size_t got;
		if (n == cap) {
			char *b;
			if (cap >= STDIN_MAX)
				break;
			b = realloc(buf, cap * 2);
			if (!b) {
				free(buf);
				return -ENOMEM;
			}
			buf = b;
			cap *= 2;
		}
		got = fread(buf + n, 1, cap - n, stdin);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(stdin)) {
		free(buf);
		return -EIO;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* put KEY VALUE, with query (NULL, or "?ttl=N" or "?lease=ID") after
 * the key. */
static int cmd_put(const struct ctl *c, const char *key, const char *value,
		   const char *query)
{
	char *kpath = ctl_kv_path(key), *resp = NULL, *data = NULL;
	size_t plen = kpath ? strlen(kpath) + (query ? strlen(query) : 0) : 0;
	char *path = kpath ? malloc(plen + 1) : NULL;
	if (path)
		snprintf(path, plen + 1, "%s%s", kpath, query ? query : "");
	free(kpath);
	const char *body = value;
	size_t len = strlen(value);
	long status = 0;
	int rc;

	if (!path)
		return 1;
	if (strcmp(value, "-") == 0) {
		if (read_stdin(&data, &len) != 0) {
			fprintf(stderr, "kvfsctl: put: cannot read stdin\n");
			free(path);
			return 1;
		}
		body = data;
	}
	rc = ctl_request(c, "PUT", path, body, len, &status, &resp, NULL);
	free(path);
	free(data);
	if (rc != 0)
		return rc;
	if (status == 200 || status == 201) {
		if (c->json)
			ctl_print_json(resp);
	} else {
		ctl_print_failure("put", status, resp);
		rc = 1;
	}
	free(resp);
	return rc;
}

static int cmd_new_token(void)
{
	char tok[2 * PEER_TOKEN_BYTES + 1];
	int rc = peer_token_new(tok);

	if (rc != 0) {
		fprintf(stderr, "kvfsctl: new-token: %s\n", strerror(-rc));
		return 1;
	}
	printf("%s\n", tok);
	explicit_bzero(tok, sizeof(tok));
	return 0;
}

/* The token files and the TLS identity the options named. */
struct secrets {
	const char *token_file, *cluster_file;
	struct peer_tls_files tls;
	char token[PEER_TOKENS][PEER_ID_MAX + 1];
	char cluster[PEER_TOKENS][PEER_ID_MAX + 1];
	struct peer_tls *t;
};

/* Load what s names into c->auth. 0, or 2 with the reason on stderr. */
static int secrets_load(struct secrets *s, struct ctl *c)
{
	char *err = NULL;
	size_t n;

	if (s->token_file &&
	    peer_tokens_read(s->token_file, s->token, &n, &err) != 0)
		goto fail;
	if (s->cluster_file &&
	    peer_tokens_read(s->cluster_file, s->cluster, &n, &err) != 0)
		goto fail;
	if ((s->tls.ca || s->tls.cert || s->tls.key) &&
	    peer_tls_new(&s->tls, &s->t, &err) != 0)
		goto fail;
	c->auth = (struct cluster_auth){
	    .tls = s->t,
	    .token = s->cluster_file ? s->cluster[0] : NULL,
	    .bearer = s->token_file ? s->token[0] : NULL};
	return 0;
fail:
	fprintf(stderr, "kvfsctl: %s\n", err ? err : "out of memory");
	free(err);
	return EXIT_USAGE;
}

static int run(struct ctl *c, const char *cmd, int nargs, char **argv)
{
	if (strcmp(cmd, "status") == 0 && nargs == 0)
		return cmd_status(c);
	if (strcmp(cmd, "health") == 0 && nargs == 0)
		return ctl_health(c);
	if (strcmp(cmd, "members") == 0 && nargs == 0)
		return ctl_members(c);
	if (strcmp(cmd, "add") == 0 && nargs == 2)
		return ctl_add(c, argv[0], argv[1]);
	if (strcmp(cmd, "remove") == 0 && nargs == 1)
		return ctl_remove(c, argv[0]);
	if (strcmp(cmd, "transfer-leader") == 0 && nargs <= 1)
		return ctl_transfer_leader(c, nargs ? argv[0] : NULL);
	if (strcmp(cmd, "get") == 0 && nargs == 1)
		return cmd_get(c, argv[0]);
	if (strcmp(cmd, "put") == 0 && nargs == 2)
		return cmd_put(c, argv[0], argv[1], NULL);
	if (strcmp(cmd, "put") == 0 && nargs == 3 &&
	    (strncmp(argv[0], "--ttl=", 6) == 0 ||
	     strncmp(argv[0], "--lease=", 8) == 0)) {
		char q[48];
		const char *v = strchr(argv[0], '=') + 1;
		if (strlen(v) == 0 || strlen(v) > 20 ||
		    strspn(v, "0123456789") != strlen(v)) {
			fprintf(stderr, "kvfsctl: put: %s is not a number\n",
				argv[0]);
			return EXIT_USAGE;
		}
		snprintf(q, sizeof q, "?%s=%s",
			 argv[0][2] == 't' ? "ttl" : "lease", v);
		return cmd_put(c, argv[1], argv[2], q);
	}
	if (strcmp(cmd, "lease") == 0) {
		int rc = ctl_lease(c, nargs, argv);
		if (rc == EXIT_USAGE)
			usage(stderr);
		return rc;
	}
	bool rec = nargs >= 1 && strcmp(argv[0], "-r") == 0;
	if (strcmp(cmd, "del") == 0 && nargs == 1 + rec)
		return ctl_del(c, argv[rec], rec);
	if (strcmp(cmd, "ls") == 0 && nargs <= 1 + rec)
		return ctl_ls(c, nargs > rec ? argv[rec] : "", rec);
	if (strcmp(cmd, "watch") == 0 && nargs >= 1 && nargs <= 3) {
		uint64_t n[2] = {0, 0};
		for (int i = 1; i < nargs; i++) {
			char *end;
			errno = 0;
			n[i - 1] = strtoull(argv[i], &end, 10);
			if (errno || end == argv[i] || *end ||
			    argv[i][0] == '-') {
				fprintf(stderr,
					"kvfsctl: watch: %s is not a "
					"revision or a count\n",
					argv[i]);
				return EXIT_USAGE;
			}
		}
		return ctl_watch(c, argv[0], n[0], n[1]);
	}
	if (strcmp(cmd, "txn") == 0 && nargs <= 1)
		return ctl_txn(c, nargs ? argv[0] : "-");
	if (strcmp(cmd, "txn") == 0) /* two words or more: the word form */
		return ctl_txn_words(c, nargs, argv);
	if (strcmp(cmd, "snapshot") == 0 && nargs == 2 &&
	    strcmp(argv[0], "save") == 0)
		return ctl_snapshot_save(c, argv[1]);
	if (strcmp(cmd, "export") == 0 && nargs == 1)
		return ctl_export(c, argv[0]);
	if (strcmp(cmd, "import") == 0 && nargs == 1)
		return ctl_import(c, argv[0]);
	usage(stderr);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"node", required_argument, NULL, 'n'},
	    {"timeout", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"tls-ca", required_argument, NULL, 'A'},
	    {"tls-cert", required_argument, NULL, 'C'},
	    {"tls-key", required_argument, NULL, 'K'},
	    {"token", required_argument, NULL, 'T'},
	    {"cluster-token", required_argument, NULL, 'S'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl c = {DEFAULT_NODE, DEFAULT_TIMEOUT_MS, false, {0}};
	struct secrets sec = {0};
	const char *cmd;
	int o, nargs;

	while ((o = getopt_long(argc, argv, "+n:t:jh", opts, NULL)) != -1) {
		switch (o) {
		case 'A':
			sec.tls.ca = optarg;
			break;
		case 'C':
			sec.tls.cert = optarg;
			break;
		case 'K':
			sec.tls.key = optarg;
			break;
		case 'T':
			sec.token_file = optarg;
			break;
		case 'S':
			sec.cluster_file = optarg;
			break;
		case 'n':
			c.node = optarg;
			break;
		case 't': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v <= 0 || v > 3600 * 1000) {
				fprintf(stderr, "kvfsctl: bad --timeout\n");
				return EXIT_USAGE;
			}
			c.timeout_ms = (int)v;
			break;
		}
		case 'j':
			c.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!ctl_addr_ok("--node", c.node))
		return EXIT_USAGE;
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	nargs = argc - optind - 1;
	argv += optind + 1;
	if (strcmp(cmd, "new-token") == 0 && nargs == 0)
		return cmd_new_token();
	int rc = secrets_load(&sec, &c);
	if (rc == 0)
		rc = run(&c, cmd, nargs, argv);
	explicit_bzero(sec.token, sizeof(sec.token));
	explicit_bzero(sec.cluster, sizeof(sec.cluster));
	peer_tls_free(sec.t);
	return rc;
}
