/* noophttp.c - the yardstick for kvfs's HTTP front end: a libmicrohttpd
 * server that stores nothing.
 *
 * It runs libmicrohttpd the way kvfs does (one internal epoll thread) and
 * answers what tests/bench/kvbench sends to kvfs: GET /kv/KEY with a
 * fixed value of --value-size bytes, PUT /kv/KEY (the body read and
 * dropped) with 204. Whatever kvfs spends beyond this server on the same
 * client is its own cost: the store, the barrier, the JSON, the checks.
 * Not a test; scripts/bench-compare starts it.
 *   noophttp --listen PORT [--value-size B]
 * It serves until SIGINT or SIGTERM. */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *value;
static size_t value_size = 100;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *data,
			      size_t *size, void **state)
{
	static int seen; /* a non-NULL mark for the request's first call */
	struct MHD_Response *resp;
	unsigned code;
	enum MHD_Result ret;

	(void)cls;
	(void)url;
	(void)version;
	(void)data;
	if (*state == NULL) {
		*state = &seen;
		return MHD_YES;
	}
	if (*size > 0) { /* a body piece: dropped */
		*size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "GET") == 0) {
		resp = MHD_create_response_from_buffer(value_size, value,
						       MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_OK;
	} else {
		resp = MHD_create_response_from_buffer(0, NULL,
						       MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_NO_CONTENT;
	}
	if (resp == NULL)
		return MHD_NO;
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned port = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--listen") == 0)
			port = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--value-size") == 0)
			value_size = strtoul(argv[i + 1], NULL, 10);
	}
	if (port == 0 || port > 65535 || (argc - 1) % 2 != 0) {
		fprintf(stderr,
			"usage: noophttp --listen PORT [--value-size B]\n");
		return 2;
	}
	value = malloc(value_size ? value_size : 1);
	if (value == NULL)
		return 1;
	memset(value, 'v', value_size);
	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_EPOLL_INTERNAL_THREAD, (uint16_t)port, NULL, NULL, answer,
	    NULL, MHD_OPTION_CONNECTION_LIMIT, 1024u,
	    MHD_OPTION_CONNECTION_TIMEOUT, 30u,
	    /* kvfs's pool size: libmicrohttpd zeroes it between requests */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "noophttp: cannot listen on port %u\n", port);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop)
		pause();
	MHD_stop_daemon(d);
	free(value);
	return 0;
}
