/* daemon.h - the kvfs program running in the background: the fork that
 * waits for the child to serve, and where its log goes once detached
 * (a file given with --log, else syslog). Used by fs/main.c only. */
#ifndef KVFS_DAEMON_H
#define KVFS_DAEMON_H

/* Fork before any thread starts; the parent waits for daemon_ready's
 * status byte and exits with it. Returns the child's end of that pipe. */
int daemon_fork(void);
/* Tell the parent status (0: serving) and detach stdin and stdout; then
 * (status 0) stderr goes to log_file, or if it is NULL or cannot be
 * opened to syslog, a line a message, through a thread started here.
 * No-op if *fd < 0 (the foreground). */
void daemon_ready(int *fd, char status, const char *log_file);
/* Append stderr to path (made 0640 if missing). 0, or -1 with errno. */
int daemon_log_to_file(const char *path);
/* At exit: the last lines reach syslog before the process ends. */
void daemon_log_end(void);

#endif
