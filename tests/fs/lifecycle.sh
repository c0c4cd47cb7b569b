#!/bin/bash
# lifecycle.sh - mounting and unmounting: values survive a restart,
# -o subdir=PREFIX shows only that subtree (both ways), SIGTERM unmounts,
# and a missing, busy or non-directory mountpoint gets a clear message.
# usage: lifecycle.sh path/to/kvfs
. "$(dirname "$0")/lib.sh"
skip_without_fuse

M=$TMP/mnt
D=$TMP/data
start_kvfs first "$M" "$D"
mkdir -p "$M/app/conf" "$M/other"
echo one >"$M/app/one"
echo deep >"$M/app/conf/deep"
echo two >"$M/other/two"
mkdir "$M/app/emptydir"

# A second kvfs on the same mountpoint: busy.
mkdir -p "$TMP/data2"
out=$("$KVFS" --data="$TMP/data2" --listen=127.0.0.1:0 -f "$M" 2>&1)
rc=$?
check "test_a_busy_mountpoint_fails" test $rc -ne 0
check "test_a_busy_mountpoint_says_busy" grep -q "busy" <<<"$out"
check_eq "test_the_first_mount_still_works" one "$(cat "$M/app/one")"

check "test_fusermount3_u_stops_the_node_cleanly" stop_kvfs "$M" "$PID"

start_kvfs second "$M" "$D"
check_eq "test_values_survive_a_restart" "one deep two" \
	"$(cat "$M/app/one") $(cat "$M/app/conf/deep") $(cat "$M/other/two")"
check "test_an_empty_directory_survives_a_restart" test -d "$M/app/emptydir"
kill -TERM "$PID"
check "test_sigterm_stops_the_node" wait_for 20 bash -c "! kill -0 $PID 2>/dev/null"
check "test_sigterm_unmounts" bash -c "! mountpoint -q \"$M\""

start_kvfs sub "$M" "$D" -o subdir=app
URL=http://127.0.0.1:$PORT/kv
check_eq "test_subdir_mount_shows_only_its_keys" "conf emptydir one" \
	"$(ls "$M" | tr '\n' ' ' | sed 's/ $//')"
check_eq "test_subdir_mount_reads_nested_keys" deep "$(cat "$M/conf/deep")"
echo fresh >"$M/fresh"
check_eq "test_subdir_mount_writes_under_the_prefix" fresh \
	"$(curl -sf "$URL/app/fresh")"
curl -sf -X PUT --data-binary outside "$URL/other/outside" >/dev/null
curl -sf -X PUT --data-binary inside "$URL/app/inside" >/dev/null
check_eq "test_subdir_mount_sees_http_changes_under_the_prefix" inside \
	"$(cat "$M/inside")"
check "test_subdir_mount_never_shows_keys_outside" test ! -e "$M/other"
mv "$M/fresh" "$M/conf/fresh"
check_eq "test_subdir_mount_renames_within_the_prefix" fresh \
	"$(curl -sf "$URL/app/conf/fresh")"
check "test_fusermount3_u_stops_the_subdir_mount" stop_kvfs "$M" "$PID"

start_kvfs empty "$M" "$D" -o subdir=not/yet
check_eq "test_a_subdir_with_no_keys_yet_is_an_empty_root" "" "$(ls -A "$M")"
echo first >"$M/first"
check_eq "test_writing_into_it_creates_the_prefix" first \
	"$(curl -sf "http://127.0.0.1:$PORT/kv/not/yet/first")"
check "test_fusermount3_u_stops_it" stop_kvfs "$M" "$PID"

out=$("$KVFS" --data="$TMP/data3" --listen=127.0.0.1:0 -f "$TMP/missing" 2>&1)
rc=$?
check "test_a_missing_mountpoint_fails" test $rc -ne 0
check "test_a_missing_mountpoint_is_named_in_the_message" \
	grep -q "mountpoint $TMP/missing: No such file or directory" <<<"$out"
touch "$TMP/afile"
out=$("$KVFS" --data="$TMP/data3" --listen=127.0.0.1:0 -f "$TMP/afile" 2>&1)
rc=$?
check "test_a_file_as_mountpoint_fails" test $rc -ne 0
check "test_a_file_as_mountpoint_says_not_a_directory" \
	grep -q "not a directory" <<<"$out"

finish
