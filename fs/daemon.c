/* daemon.c - running in the background: the fork whose parent returns
 * only once the node serves (so that mount(8), scripts and fstab see a
 * working mount when kvfs returns), and the log once the terminal is gone.
 *
 * Every module logs with fprintf(stderr). In the foreground that is the
 * terminal or the journal; in the background, a file named by --log, else
 * syslog: stderr becomes a pipe, and a thread turns each line into one
 * syslog message. A detached kvfs never keeps its caller's stderr open
 * (a caller that reads it to the end, as mount(8) run from a script may,
 * would wait for ever). */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static pthread_t log_thread;
static bool log_running;

int daemon_fork(void)
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

/* One syslog message a line of what the process writes to stderr. */
static void *log_main(void *arg)
{
	FILE *in = arg;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	pthread_setname_np(pthread_self(), "kvfs-syslog");
	while ((n = getline(&line, &cap, in)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		syslog(LOG_INFO, "%s", line);
	}
	free(line);
	fclose(in);
	return NULL;
}

/* stderr to /dev/null: never the caller's once detached. */
static void stderr_to_null(void)
{
	int devnull = open("/dev/null", O_WRONLY);
	if (devnull >= 0) {
		dup2(devnull, STDERR_FILENO);
		close(devnull);
	}
}

static void stderr_to_syslog(void)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0) {
		stderr_to_null();
		return;
	}
	FILE *in = fdopen(fds[0], "r");
	if (!in) {
		close(fds[0]);
		close(fds[1]);
		stderr_to_null();
		return;
	}
	openlog("kvfs", LOG_PID, LOG_DAEMON);
	if (pthread_create(&log_thread, NULL, log_main, in) != 0) {
		fclose(in);
		close(fds[1]);
		stderr_to_null();
		return;
	}
	log_running = true;
	dup2(fds[1], STDERR_FILENO);
	close(fds[1]);
}

void daemon_ready(int *fd, char status, const char *log_file)
{
	if (*fd < 0)
		return;
	if (write(*fd, &status, 1) != 1) {
		/* the parent is gone; nothing to tell */
	}
	close(*fd);
	*fd = -1;
	/* the parent returned: detach from the caller's terminal and pipes */
	int devnull = open("/dev/null", O_RDWR);
	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		close(devnull);
	}
	if (status != 0)
		return; /* the process ends now */
	if (!log_file || daemon_log_to_file(log_file) != 0)
		stderr_to_syslog();
}

int daemon_log_to_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	int r = dup2(fd, STDERR_FILENO);
	int e = errno;
	close(fd);
	errno = e;
	return r < 0 ? -1 : 0;
}

void daemon_log_end(void)
{
	if (!log_running)
		return;
	/* the pipe's last writer goes: the thread reads to its end */
	stderr_to_null();
	pthread_join(log_thread, NULL);
	log_running = false;
}
