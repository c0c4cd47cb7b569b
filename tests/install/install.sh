#!/usr/bin/env bash
# install.sh BUILDDIR - what `meson install` puts in place, checked in a
# temporary DESTDIR: both programs, which run; both man pages, which
# render without a warning; the systemd unit, which systemd-analyze
# verifies (with ExecStart pointed at the staged binary) and whose
# ExecStart names the installed kvfs.
set -euo pipefail
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   - $1"; }
bad() { echo "FAIL - $1"; fails=$((fails + 1)); }

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp" >/dev/null
prefix=$(meson introspect "$build" --buildoptions |
	python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
root=$tmp$prefix

for p in kvfs kvfsctl; do
	if [ -x "$root/bin/$p" ] && "$root/bin/$p" --help >/dev/null 2>&1; then
		ok "$p is installed in bin and runs"
	else
		bad "$p is installed in bin and runs"
	fi
	page=$root/share/man/man8/$p.8
	if [ -f "$page" ]; then
		warn=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null || true)
		if [ -z "$warn" ] && MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q "^NAME"; then
			ok "$p(8) renders without a warning"
		else
			bad "$p(8) renders without a warning: $warn"
		fi
	else
		bad "$p(8) is installed"
	fi
done

unit=$(find "$tmp" -name 'kvfs@.service' | head -n 1)
if [ -z "$unit" ]; then
	bad "the systemd unit is installed"
else
	ok "the systemd unit is installed"
	if grep -q "^ExecStart=$prefix/bin/kvfs " "$unit"; then
		ok "its ExecStart is the installed kvfs"
	else
		bad "its ExecStart is the installed kvfs: $(grep ExecStart "$unit")"
	fi
	mkdir "$tmp/unit"
	sed "s|^ExecStart=$prefix/bin/kvfs|ExecStart=$root/bin/kvfs|" "$unit" \
		>"$tmp/unit/kvfs@1.service"
	if out=$(systemd-analyze verify --man=no "$tmp/unit/kvfs@1.service" 2>&1) &&
		[ -z "$out" ]; then
		ok "systemd-analyze verify finds nothing wrong with it"
	else
		bad "systemd-analyze verify: $out"
	fi
fi
echo "# $fails failed"
[ "$fails" -eq 0 ]
