#!/bin/bash
# tools.sh - real tools on the mount: cp -a and tar round trips of a tree
# with modes, owners, times, symbolic links, a FIFO, extended attributes
# and empty directories, compared with the original (diff -r and a listing
# of every path's mode, owner, group, mtime to the nanosecond, type and
# link target); rsync -a, then rsync -a -c -n -i printing nothing; git
# clone of a local repository into the mount and git fsck; sed -i keeping
# the mode and owner.
# usage: tools.sh path/to/kvfs
. "$(dirname "$0")/lib.sh"
skip_without_fuse
for t in rsync git tar getfattr setfattr; do
	if ! command -v $t >/dev/null; then
		echo "SKIP: $t is not installed (scripts/deps installs it)"
		exit 77
	fi
done

M=$TMP/mnt
start_kvfs node "$M" "$TMP/data"
SRC=$TMP/src

# ---- a tree with a bit of everything ----
mkdir -p "$SRC/dir/sub/deeper" "$SRC/empty/nested" "$SRC/private"
printf 'hello\n' >"$SRC/file.txt"
head -c 70000 /dev/urandom >"$SRC/dir/binary"
printf '#!/bin/sh\necho hi\n' >"$SRC/dir/script"
: >"$SRC/dir/sub/empty-file"
printf 'deep\n' >"$SRC/dir/sub/deeper/leaf"
printf 'secret\n' >"$SRC/private/key"
ln -s file.txt "$SRC/link"
ln -s ../file.txt "$SRC/dir/up-link"
ln -s does/not/exist "$SRC/dangling"
mkfifo "$SRC/dir/fifo"
chmod 0755 "$SRC/dir/script"
chmod 0600 "$SRC/private/key"
chmod 0700 "$SRC/private"
chmod 0640 "$SRC/file.txt"
chmod 2775 "$SRC/dir/sub"
chown 64001:64001 "$SRC/dir/binary" "$SRC/dir/sub/deeper"
chown -h 64002:64002 "$SRC/dangling"
setfattr -n user.origin -v "the source tree" "$SRC/file.txt"
setfattr -n user.dir -v "a directory's" "$SRC/dir"
# times: some in the past, with nanoseconds, directories last
find "$SRC" -depth -print0 | while IFS= read -r -d '' p; do
	touch -h -d "2001-02-03 04:05:06.123456789 UTC" "$p"
done
touch -d "1999-12-31 23:59:59.5 UTC" "$SRC/file.txt"

# Every path's attributes, one line each, sorted: what a copy must keep.
listing() {
	(cd "$1" && find . -mindepth 1 -printf '%P %M %U %G %T@ %y %l\n' | sort)
}
xattrs_of() {
	(cd "$1" && getfattr -R -d -m '^user\.' --absolute-names . 2>/dev/null |
		grep -v '^# file' | grep -v '^$')
}
same_tree() { # same_tree A B: content, attributes and xattrs agree
	diff -r --no-dereference -x fifo "$1" "$2" && # (FIFOs: by the listing)
		diff <(listing "$1") <(listing "$2") &&
		diff <(xattrs_of "$1") <(xattrs_of "$2")
}

# ---- cp -a ----
cp -a "$SRC" "$M/cp"
check "test_cp_a_into_the_mount_keeps_contents_modes_owners_times_links_xattrs" \
	same_tree "$SRC" "$M/cp"
cp -a "$M/cp" "$TMP/cp-back"
check "test_cp_a_out_of_the_mount_round_trips" same_tree "$SRC" "$TMP/cp-back"

# ---- tar ----
mkdir "$M/tar"
tar -C "$SRC" --xattrs --xattrs-include='user.*' -cf - . |
	tar -C "$M/tar" --xattrs --xattrs-include='user.*' -xpf -
check "test_tar_x_into_the_mount_keeps_everything" same_tree "$SRC" "$M/tar"
mkdir "$TMP/tar-back"
tar -C "$M/tar" --xattrs --xattrs-include='user.*' -cf - . |
	tar -C "$TMP/tar-back" --xattrs --xattrs-include='user.*' -xpf -
check "test_tar_c_of_the_mount_round_trips" same_tree "$SRC" "$TMP/tar-back"

# ---- rsync ----
rsync -a -X "$SRC/" "$M/rs/"
check "test_rsync_a_keeps_everything" same_tree "$SRC" "$M/rs"
out=$(rsync -a -X -c -n -i "$SRC/" "$M/rs/" 2>&1)
check_eq "test_rsync_a_c_n_i_after_rsync_a_prints_nothing" "" "$out"
printf 'changed\n' >"$SRC/dir/sub/deeper/leaf"
touch -d "2001-02-03 04:05:06 UTC" "$SRC/dir/sub/deeper/leaf" "$SRC/dir/sub/deeper"
rsync -a -X "$SRC/" "$M/rs/"
out=$(rsync -a -X -c -n -i "$SRC/" "$M/rs/" 2>&1)
check_eq "test_an_rsync_update_leaves_nothing_to_do" "" "$out"

# ---- git ----
REPO=$TMP/repo
git init -q "$REPO"
(
	cd "$REPO"
	git config user.email t@example.com
	git config user.name tester
	for i in 1 2 3; do
		echo "line $i" >>file
		mkdir -p "d$i"
		echo "$i" >"d$i/n"
		git add -A
		git commit -qm "commit $i"
	done
	git tag v1
) >/dev/null
git clone -q "$REPO" "$M/clone" 2>"$TMP/git.err"
check "test_git_clone_into_the_mount" test -f "$M/clone/d3/n"
check "test_git_fsck_of_the_clone_is_clean" git -C "$M/clone" fsck --full --strict
check_eq "test_the_clone_has_the_history" "$(git -C "$REPO" rev-parse HEAD)" \
	"$(git -C "$M/clone" rev-parse HEAD 2>/dev/null)"
check_eq "test_the_clones_work_tree_is_clean" "" "$(git -C "$M/clone" status --porcelain)"
(cd "$M/clone" && echo more >>file && git -c user.email=t@e -c user.name=t \
	commit -qam "a commit in the mount" && git gc -q) >/dev/null 2>&1
check "test_a_commit_and_gc_in_the_mount_then_fsck_is_clean" \
	git -C "$M/clone" fsck --full --strict

# ---- sed -i ----
printf 'alpha\nbeta\n' >"$M/sed.txt"
chmod 0640 "$M/sed.txt"
chown 64001:64001 "$M/sed.txt"
sed -i 's/beta/gamma/' "$M/sed.txt"
check_eq "test_sed_i_edits" "$(printf 'alpha\ngamma')" "$(cat "$M/sed.txt")"
check_eq "test_sed_i_keeps_the_mode_and_owner" "640 64001:64001" \
	"$(stat -c '%a %u:%g' "$M/sed.txt")"

check "test_fusermount3_u_stops_the_node_cleanly" stop_kvfs "$M" "$PID"
finish
