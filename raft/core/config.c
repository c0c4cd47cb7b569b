/* config.c - cluster configurations: voters and learners, and their text
 * form in RAFT_ENTRY_CONFIG entries.
 *
 * A configuration is a fixed array (at most RAFT_MAX_SERVERS) so it can be
 * copied by value into messages and snapshots. The text form is versioned
 * and line based so the node can log it as-is: "raftconf 1\n" then one
 * "id v|l addr\n" line per server. Which configuration is in effect is
 * decided in core.c (memb_conf_refresh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft.h"

const struct raft_server *raft_config_get(const struct raft_config *c,
					  uint64_t id)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->servers[i].id == id)
			return &c->servers[i];
	return NULL;
}

int raft_config_encode(const struct raft_config *c, char *buf, size_t cap)
{
	if (c->n > RAFT_MAX_SERVERS)
		return RAFT_EINVAL;
	size_t len = 0;
	int k = snprintf(buf, cap, "raftconf 1\n");
	len += (size_t)k;
	for (unsigned i = 0; i < c->n; i++) {
		const struct raft_server *s = &c->servers[i];
		if (s->id == RAFT_NONE ||
		    memchr(s->addr, '\0', RAFT_ADDR_MAX) == NULL)
			return RAFT_EINVAL;
		for (const char *p = s->addr; *p; p++)
			if (*p == ' ' || *p == '\n')
				return RAFT_EINVAL;
		k = snprintf(len < cap ? buf + len : NULL,
			     len < cap ? cap - len : 0, "%llu %c %s\n",
			     (unsigned long long)s->id,
			     s->role == RAFT_VOTER ? 'v' : 'l',
			     s->addr[0] ? s->addr : "-");
		len += (size_t)k;
	}
	return len > (size_t)0x7fffffff ? RAFT_EINVAL : (int)len;
}

int raft_config_decode(const void *buf, size_t len, struct raft_config *out)
{
	const char *p = buf, *end = p + len;
	static const char head[] = "raftconf 1\n";
	memset(out, 0, sizeof(*out));
	if (len < sizeof(head) - 1 || memcmp(p, head, sizeof(head) - 1))
		return RAFT_EINVAL;
	p += sizeof(head) - 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl || out->n == RAFT_MAX_SERVERS)
			return RAFT_EINVAL;
		char line[128];
		size_t ll = (size_t)(nl - p);
		if (ll >= sizeof(line))
			return RAFT_EINVAL;
		memcpy(line, p, ll);
		line[ll] = '\0';
		unsigned long long id;
		char role, addr[RAFT_ADDR_MAX];
		if (sscanf(line, "%llu %c %63s", &id, &role, addr) != 3 ||
		    id == 0 || (role != 'v' && role != 'l') ||
		    raft_config_get(out, id))
			return RAFT_EINVAL;
		struct raft_server *s = &out->servers[out->n++];
		s->id = id;
		s->role = role == 'v' ? RAFT_VOTER : RAFT_LEARNER;
		if (strcmp(addr, "-") != 0)
			memcpy(s->addr, addr, strlen(addr) + 1);
		p = nl + 1;
	}
	return 0;
}
