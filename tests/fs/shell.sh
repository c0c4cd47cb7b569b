#!/bin/bash
# shell.sh - the mount used the way shell users and scripts use files:
# echo/cat/ls/rm/mkdir/rmdir/mv (key and directory)/append/truncate/touch/
# chmod, binary values, editor-style saves, renameat2 flags, a change made
# over HTTP seen by cat, bad names and oversized values with their errno,
# and the mount still working after every error.
# usage: shell.sh path/to/kvfs
. "$(dirname "$0")/lib.sh"
skip_without_fuse

M=$TMP/mnt
start_kvfs node "$M" "$TMP/data"
URL=http://127.0.0.1:$PORT/kv

# ---- files ----
echo hello >"$M/greeting"
check_eq "test_cat_returns_what_echo_wrote" "hello" "$(cat "$M/greeting")"
check_eq "test_stat_shows_the_true_size" 6 "$(stat -c %s "$M/greeting")"
check_eq "test_owner_is_the_creating_user" "$(id -u):$(id -g)" \
	"$(stat -c %u:%g "$M/greeting")"
check_eq "test_a_file_has_one_link" 1 "$(stat -c %h "$M/greeting")"
check_eq "test_ls_lists_the_key" "greeting" "$(ls "$M")"

echo world >>"$M/greeting"
check_eq "test_append_keeps_the_old_value" "$(printf 'hello\nworld')" \
	"$(cat "$M/greeting")"
echo short >"$M/greeting"
check_eq "test_overwrite_replaces_the_whole_value" "short" "$(cat "$M/greeting")"

printf 'abcdefghij' >"$M/offsets"
python3 -c "
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b'XY', 3)
os.pwrite(fd, b'Z', 12)
os.close(fd)" "$M/offsets"
check_eq "test_pwrite_at_offsets_edits_in_place_and_fills_holes_with_zeros" \
	"616263585966676869 6a00005a" \
	"$(od -An -tx1 "$M/offsets" | tr -d ' \n' | sed 's/^\(.\{18\}\)/\1 /')"

truncate -s 4 "$M/offsets"
check_eq "test_truncate_shrinks" "abcX" "$(cat "$M/offsets")"
truncate -s 6 "$M/offsets"
check_eq "test_truncate_grows_with_zeros" "6162635800 00" \
	"$(od -An -tx1 "$M/offsets" | tr -d ' \n' | sed 's/^\(.\{10\}\)/\1 /')"
python3 -c "import os, sys; os.truncate(sys.argv[1], 2)" "$M/offsets"
check_eq "test_truncate_by_name_without_an_open_file" "ab" "$(cat "$M/offsets")"
python3 -c "
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.ftruncate(fd, 1)
os.write(fd, b'q')
os.close(fd)" "$M/offsets"
check_eq "test_ftruncate_then_write_commits_once" "q" "$(cat "$M/offsets")"
: >"$M/offsets"
check_eq "test_redirect_with_nothing_empties_the_value" 0 "$(stat -c %s "$M/offsets")"

touch "$M/touched"
check "test_touch_creates_an_empty_file" test -f "$M/touched" -a ! -s "$M/touched"
touch -d '2001-02-03 04:05:06 UTC' "$M/touched"
check_eq "test_touch_sets_mtime" 981173106 "$(stat -c %Y "$M/touched")"
chmod 640 "$M/touched"
check_eq "test_chmod_is_recorded" 640 "$(stat -c %a "$M/touched")"
echo data >>"$M/touched"
check_eq "test_a_write_keeps_the_mode" 640 "$(stat -c %a "$M/touched")"
rm "$M/touched"
check "test_rm_removes_the_key" test ! -e "$M/touched"

# ---- directories ----
mkdir "$M/empty"
check "test_mkdir_makes_a_directory" test -d "$M/empty"
check_eq "test_an_empty_directory_lists_nothing" "" "$(ls -A "$M/empty")"
check_eq "test_a_directory_has_two_links" 2 "$(stat -c %h "$M/empty")"
mkdir -p "$M/tree/sub"
echo leaf >"$M/tree/sub/leaf"
echo top >"$M/tree/top"
check_eq "test_nested_keys_appear_as_directories" "leaf" "$(ls "$M/tree/sub")"
check_eq "test_rmdir_of_a_non_empty_directory_is_ENOTEMPTY" ENOTEMPTY \
	"$(errno_of 'os.rmdir(M + "/tree")')"
rmdir "$M/empty"
check "test_rmdir_removes_an_empty_directory" test ! -e "$M/empty"
check_eq "test_mkdir_over_a_key_is_EEXIST" EEXIST \
	"$(errno_of 'os.mkdir(M + "/tree/top")')"

# ---- rename ----
mv "$M/tree/top" "$M/tree/moved"
check_eq "test_mv_of_a_key_moves_its_value" "top" "$(cat "$M/tree/moved")"
check "test_mv_leaves_nothing_behind" test ! -e "$M/tree/top"
mv "$M/tree" "$M/tree2"
check_eq "test_mv_of_a_directory_moves_every_key_under_it" "leaf top" \
	"$(cat "$M/tree2/sub/leaf") $(cat "$M/tree2/moved")"
check "test_mv_of_a_directory_leaves_no_old_directory" test ! -e "$M/tree"
echo one >"$M/ra"
echo two >"$M/rb"
cat >"$TMP/renameat2.py" <<'EOF'
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
flags = {"noreplace": 1, "exchange": 2}[sys.argv[3]]
r = libc.renameat2(AT_FDCWD, sys.argv[1].encode(), AT_FDCWD,
                   sys.argv[2].encode(), flags)
print("OK" if r == 0 else errno.errorcode[ctypes.get_errno()])
EOF
check_eq "test_rename_noreplace_refuses_an_existing_target" EEXIST \
	"$(python3 "$TMP/renameat2.py" "$M/ra" "$M/rb" noreplace)"
check_eq "test_a_refused_rename_changes_nothing" "one two" \
	"$(cat "$M/ra") $(cat "$M/rb")"
check_eq "test_rename_exchange_swaps_two_keys" OK \
	"$(python3 "$TMP/renameat2.py" "$M/ra" "$M/rb" exchange)"
check_eq "test_exchanged_values" "two one" "$(cat "$M/ra") $(cat "$M/rb")"
check_eq "test_rename_noreplace_to_a_new_name_works" OK \
	"$(python3 "$TMP/renameat2.py" "$M/ra" "$M/rc" noreplace)"
mv -f "$M/rc" "$M/rb"
check_eq "test_mv_over_an_existing_key_replaces_it" "two" "$(cat "$M/rb")"

# ---- binary values ----
head -c 1048576 /dev/urandom >"$TMP/random.bin"
printf '\0\0\377\376\n\r\0' >>"$TMP/random.bin"
cp "$TMP/random.bin" "$M/random.bin"
check "test_binary_values_round_trip_exactly" cmp "$TMP/random.bin" "$M/random.bin"
printf '\0' >"$M/nul"
check_eq "test_a_single_nul_byte_round_trips" "00" "$(od -An -tx1 "$M/nul" | tr -d ' ')"

# ---- editors ----
python3 - "$M" <<'EOF'
import os, sys
m = sys.argv[1]
with open(m + "/config", "w") as f:
    f.write("v1\n")
tmp = m + "/.config.swp"
with open(tmp, "w") as f:
    f.write("v2 saved like an editor\n")
    f.flush()
    os.fsync(f.fileno())
os.rename(tmp, m + "/config")
EOF
check_eq "test_editor_save_write_fsync_rename" "v2 saved like an editor" \
	"$(cat "$M/config")"
check "test_editor_save_leaves_no_temp_file" test ! -e "$M/.config.swp"
printf 'alpha\nbeta\n' >"$M/sed.txt"
sed -i 's/beta/gamma/' "$M/sed.txt"
check_eq "test_sed_in_place_edits" "$(printf 'alpha\ngamma')" "$(cat "$M/sed.txt")"

if command -v vim >/dev/null; then
	printf 'one\ntwo\n' >"$M/vim.txt"
	vim -u NONE -i NONE -n -es -c 'set backup writebackup backupcopy=no' \
		-c '%s/two/three/' -c 'wq' "$M/vim.txt" </dev/null
	check_eq "test_vim_saves_by_rename_with_a_backup" "$(printf 'one\nthree')" \
		"$(cat "$M/vim.txt")"
	vim -u NONE -i NONE -n -es -c 'set backupcopy=yes' -c '$put =\"four\"' \
		-c 'wq' "$M/vim.txt" </dev/null
	check_eq "test_vim_saves_in_place" "$(printf 'one\nthree\nfour')" \
		"$(cat "$M/vim.txt")"
	check_eq "test_vim_leaves_no_backup_or_swap_files" "" \
		"$(ls -A "$M" | grep -E '~$|\.swp$')"
fi

# ---- a change made over HTTP ----
cat "$M/greeting" >/dev/null # the kernel has its pages and attributes now
stat "$M/greeting" >/dev/null
curl -sf -X PUT --data-binary 'changed over http, longer than before' \
	"$URL/greeting" >/dev/null
check_eq "test_a_change_over_http_is_seen_by_stat_at_once" 37 \
	"$(stat -c %s "$M/greeting")"
check_eq "test_a_change_over_http_is_seen_by_cat_at_once" \
	"changed over http, longer than before" "$(cat "$M/greeting")"
ls -l "$M/greeting" >/dev/null
curl -sf -X PUT --data-binary 'same length as before, other bytes!!!' \
	"$URL/greeting" >/dev/null
check_eq "test_a_same_size_change_over_http_is_seen_by_cat_at_once" \
	"same length as before, other bytes!!!" "$(cat "$M/greeting")"
curl -sf -X PUT --data-binary 'new key' "$URL/fromhttp/inner" >/dev/null
check_eq "test_a_key_created_over_http_appears" "new key" \
	"$(cat "$M/fromhttp/inner")"
curl -sf -X DELETE "$URL/greeting" >/dev/null
check_eq "test_a_key_deleted_over_http_is_gone" ENOENT \
	"$(errno_of 'open(M + "/greeting").read()')"
check_eq "test_what_the_mount_writes_http_reads" "two" "$(curl -sf "$URL/rb")"

# ---- bad names and values ----
LONG=$(printf 'n%.0s' $(seq 256))
check_eq "test_a_name_over_255_bytes_is_ENAMETOOLONG" ENAMETOOLONG \
	"$(errno_of "open(M + '/$LONG', 'w')")"
SEG=$(printf 's%.0s' $(seq 250))
P4K=$SEG/$SEG/$SEG/$SEG/$SEG/$SEG/$SEG/$SEG/$SEG/$SEG/$SEG/$SEG/$SEG/$SEG/$SEG/$SEG
mkdir -p "$M/$(dirname "$P4K")"
check_eq "test_a_path_of_4000_bytes_works" OK \
	"$(errno_of "open(M + '/$P4K', 'w').write('deep')")"
check_eq "test_a_path_of_4000_bytes_reads_back" deep "$(cat "$M/$P4K")"
check_eq "test_a_name_that_is_not_utf8_is_EINVAL" EINVAL \
	"$(errno_of 'open(os.fsencode(M) + b"/bad\xff\xfe", "w")')"
check_eq "test_a_write_past_the_value_limit_is_EFBIG" EFBIG \
	"$(errno_of 'f = open(M + "/big", "wb", buffering=0); f.write(b"x" * (16 << 20)); f.write(b"y")')"
check "test_an_oversized_new_file_leaves_nothing_behind" test ! -e "$M/big"
echo small >"$M/big"
check_eq "test_truncate_past_the_value_limit_is_EFBIG" EFBIG \
	"$(errno_of 'os.truncate(M + "/big", (16 << 20) + 1)')"
check_eq "test_an_oversized_write_leaves_the_old_value" EFBIG \
	"$(errno_of 'f = open(M + "/big", "wb", buffering=0); f.write(b"x" * (16 << 20)); f.write(b"y")')"
check_eq "test_the_old_value_is_still_there" small "$(cat "$M/big")"
check_eq "test_close_reports_EFBIG_after_a_refused_write" EFBIG \
	"$(errno_of '
fd = os.open(M + "/big2", os.O_WRONLY | os.O_CREAT)
os.write(fd, b"x" * (8 << 20))
try:
    os.write(fd, b"x" * (9 << 20))
except OSError:
    pass
os.close(fd)')"
check "test_nothing_of_the_refused_value_is_stored" test ! -e "$M/big2"
check_eq "test_an_oversized_exclusive_create_fails_at_close_too" EFBIG "$(errno_of '
fd = os.open(M + "/big3", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
try:
    os.write(fd, b"x" * (17 << 20))
except OSError:
    pass
os.close(fd)')"
check "test_an_oversized_exclusive_create_leaves_nothing_behind" \
	test ! -e "$M/big3"
check_eq "test_a_value_at_the_limit_is_stored" OK \
	"$(errno_of 'open(M + "/max", "wb").write(b"m" * (16 << 20))')"
check_eq "test_the_limit_value_reads_back" 16777216 "$(stat -c %s "$M/max")"
check_eq "test_create_exclusive_of_an_existing_key_is_EEXIST" EEXIST \
	"$(errno_of 'os.open(M + "/rb", os.O_CREAT | os.O_EXCL | os.O_WRONLY)')"
check_eq "test_unlink_of_a_missing_key_is_ENOENT" ENOENT \
	"$(errno_of 'os.unlink(M + "/missing")')"
check_eq "test_root_may_give_a_file_away" "OK 12345" \
	"$(errno_of 'os.chown(M + "/rb", 12345, -1)') $(stat -c %u "$M/rb")"
echo still >"$M/after-errors"
check_eq "test_the_mount_keeps_working_after_errors" "still" \
	"$(cat "$M/after-errors")"

# ---- statfs ----
check_eq "test_statfs_block_size_is_4096" 4096 \
	"$(python3 -c 'import os, sys; print(os.statvfs(sys.argv[1]).f_bsize)' "$M")"
check "test_df_works_on_the_mount" bash -c "df \"$M\" >/dev/null"

# ---- a big directory, paged ----
python3 - "$M" <<'EOF'
import os, sys
d = sys.argv[1] + "/many"
os.mkdir(d)
for i in range(2500):
    with open("%s/k%05d" % (d, i), "w") as f:
        f.write("v%d" % i)
EOF
check_eq "test_ls_of_2500_keys_lists_every_one" 2500 "$(ls "$M/many" | wc -l)"
check_eq "test_ls_l_of_2500_keys_shows_sizes" 2500 \
	"$(ls -l "$M/many" | awk 'NR > 1 && $5 >= 2' | wc -l)"
check_eq "test_listing_is_in_byte_order" "k00000 k02499" \
	"$(ls -f "$M/many" | grep -v '^\.' | sed -n '1p;$p' | tr '\n' ' ' | sed 's/ $//')"

# ---- stopping ----
check "test_fusermount3_u_stops_the_node_cleanly" stop_kvfs "$M" "$PID"

finish
