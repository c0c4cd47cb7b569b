#!/bin/bash
# tree.sh - cp -r of a generated nested tree (1,200 files, a fifth of them
# binary, some empty) into the mount and back out, diff -r clean both ways,
# then rm -r of the whole tree.
# usage: tree.sh path/to/kvfs
. "$(dirname "$0")/lib.sh"
skip_without_fuse

M=$TMP/mnt
start_kvfs node "$M" "$TMP/data"

python3 - "$TMP/src" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
n = 0
for a in range(6):
    for b in range(4):
        d = os.path.join(root, "dir%d" % a, "sub%d" % b)
        os.makedirs(d)
        for i in range(50):
            p = os.path.join(d, "file%03d" % i)
            if n % 5 == 0:
                data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 20000)))
            elif n % 37 == 0:
                data = b""
            else:
                data = ("line %d of %s\n" % (n, p)).encode() * rng.randrange(1, 40)
            with open(p, "wb") as f:
                f.write(data)
            n += 1
os.makedirs(os.path.join(root, "empty", "deeper"))
print(n)
PY
check_eq "test_the_generated_tree_has_1200_files" 1200 \
	"$(find "$TMP/src" -type f | wc -l)"

cp -r "$TMP/src" "$M/tree"
check "test_cp_r_into_the_mount_then_diff_r_is_clean" diff -r "$TMP/src" "$M/tree"
cp -r "$M/tree" "$TMP/back"
check "test_cp_r_out_of_the_mount_then_diff_r_is_clean" diff -r "$TMP/src" "$TMP/back"
check_eq "test_find_counts_every_file_in_the_mount" 1200 \
	"$(find "$M/tree" -type f | wc -l)"
check "test_empty_directories_are_copied_too" test -d "$M/tree/empty/deeper"
mv "$M/tree" "$M/renamed"
check "test_mv_of_a_1200_file_tree_keeps_every_byte" diff -r "$TMP/src" "$M/renamed"
rm -r "$M/renamed"
check_eq "test_rm_r_removes_the_tree" "" "$(ls -A "$M")"

check "test_fusermount3_u_stops_the_node_cleanly" stop_kvfs "$M" "$PID"
finish
