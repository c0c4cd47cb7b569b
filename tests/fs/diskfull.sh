#!/bin/bash
# diskfull.sh - a commit that fails for want of space: close() returns
# ENOSPC, nothing of the value is stored, and once space is freed the
# mount writes again. The data dir is a small tmpfs (needs root to mount).
# usage: diskfull.sh path/to/kvfs
. "$(dirname "$0")/lib.sh"
skip_without_fuse

D=$TMP/data
mkdir -p "$D"
if ! mount -t tmpfs -o size=8m tmpfs "$D" 2>/dev/null; then
	echo "SKIP: cannot mount a small tmpfs for the data dir (not root?)"
	exit 77
fi
OUR_TMPFS+=("$D")
M=$TMP/mnt
start_kvfs node "$M" "$D" --segment-size=1048576

out=$(python3 - "$M" <<'PY'
import errno, os, sys
m = sys.argv[1]
for i in range(200):
    f = open("%s/v%03d" % (m, i), "wb")
    f.write(os.urandom(200000))
    try:
        f.close()
    except OSError as e:
        print(errno.errorcode[e.errno], "%s/v%03d" % (m, i))
        break
else:
    print("never full")
PY
)
check_eq "test_close_returns_ENOSPC_when_the_disk_is_full" ENOSPC "${out%% *}"
FULL=${out#* }
check_eq "test_nothing_of_a_failed_commit_is_stored" 0 "$(stat -c %s "$FULL" 2>/dev/null || echo 0)"
rm -f "$M"/v0*
echo again >"$M/again"
check_eq "test_the_mount_writes_again_once_space_is_freed" again "$(cat "$M/again")"
check "test_fusermount3_u_stops_the_node_cleanly" stop_kvfs "$M" "$PID"
finish
