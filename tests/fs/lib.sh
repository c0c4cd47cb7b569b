# lib.sh - helpers for the mount's end-to-end tests (sourced, not run).
#
# Each test script starts its own kvfs on a temp dir with a temp data dir
# and an HTTP port the kernel picks (--listen=127.0.0.1:0, read back from
# the node's log), waits for the mount by polling with a deadline, and on
# exit unmounts and stops only what it started.

set -u

KVFS=${1:?usage: $0 path/to/kvfs}
TMP=$(mktemp -d /tmp/kvfs-fs-test.XXXXXX)
FAILS=0
PASSES=0
# pids and mountpoints this script started
OUR_PIDS=()
OUR_MOUNTS=()
# other filesystems this script mounted (a small tmpfs), unmounted last
OUR_TMPFS=()

skip_without_fuse() {
	if [ ! -e /dev/fuse ]; then
		echo "SKIP: /dev/fuse is absent: cannot mount"
		exit 77
	fi
	if ! command -v fusermount3 >/dev/null; then
		echo "SKIP: fusermount3 is not installed"
		exit 77
	fi
}

cleanup() {
	local m p
	for m in "${OUR_MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m" 2>/dev/null
	done
	for p in "${OUR_PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${OUR_PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	for m in "${OUR_MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && fusermount3 -uz "$m" 2>/dev/null
	done
	for m in "${OUR_TMPFS[@]}"; do
		umount "$m" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

# poll CMD... until it succeeds or SECS pass; 0 if it did.
wait_for() {
	local secs=$1
	shift
	local deadline=$((SECONDS + secs))
	while ! "$@"; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.02
	done
	return 0
}

# start_kvfs NAME MOUNTPOINT DATADIR [extra args...]: start kvfs in the
# foreground in the background, wait for its mount. Sets PID and PORT.
start_kvfs() {
	local name=$1 mnt=$2 data=$3
	shift 3
	mkdir -p "$mnt" "$data"
	local log="$TMP/$name.log"
	"$KVFS" --data="$data" --listen=127.0.0.1:0 -f "$@" "$mnt" >"$log" 2>&1 &
	PID=$!
	OUR_PIDS+=("$PID")
	OUR_MOUNTS+=("$mnt")
	if ! wait_for 20 mountpoint -q "$mnt"; then
		echo "FATAL: kvfs did not mount $mnt within 20s; its log:"
		cat "$log"
		exit 1
	fi
	PORT=$(sed -n 's/.*serving HTTP on port \([0-9]*\).*/\1/p' "$log" | head -1)
	if [ -z "$PORT" ]; then
		echo "FATAL: no HTTP port in $log"
		cat "$log"
		exit 1
	fi
}

# stop_kvfs MOUNTPOINT PID: fusermount3 -u and wait for the process to exit
# cleanly (status 0).
stop_kvfs() {
	local mnt=$1 pid=$2
	fusermount3 -u "$mnt" || return 1
	wait_for 20 bash -c "! kill -0 $pid 2>/dev/null" || return 1
	wait "$pid"
}

ok() {
	PASSES=$((PASSES + 1))
	echo "ok   - $*"
}

fail() {
	FAILS=$((FAILS + 1))
	echo "FAIL - $*"
}

# check "description" command...: passes when the command succeeds
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else fail "$desc"; fi
}

# check_eq "description" expected actual
check_eq() {
	if [ "$2" == "$3" ]; then
		ok "$1"
	else
		fail "$1: expected [$2], got [$3]"
	fi
}

finish() {
	echo "# $PASSES passed, $FAILS failed"
	[ $FAILS -eq 0 ]
}

# errno_of PYTHON-STATEMENT: prints the errno name the statement raised,
# or OK. The statement sees os, M (the mountpoint) and errno.
errno_of() {
	python3 - "$M" "$1" <<'EOF'
import errno, os, sys
M = sys.argv[1]
try:
    exec(sys.argv[2])
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
}
