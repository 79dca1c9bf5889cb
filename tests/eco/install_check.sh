#!/usr/bin/env bash
# Install the build tree into a temporary root, then use it the way a user
# would: build examples/hello_allreduce.c out of tree with
# `pkg-config --cflags --libs ringlet`, check the soname it links against,
# run it with 3 ranks through the *installed* ringlet-run over libfabric, and
# check every installed program answers --help.
#   install_check.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(realpath "$1") src=$(realpath "$2")
root=$(mktemp -d /tmp/ringlet-install.XXXXXX)
trap 'rm -rf "$root"' EXIT
fail() { echo "install_check: FAIL: $*" >&2; exit 1; }

meson install -C "$build" --no-rebuild --quiet --destdir "$root" >/dev/null
prefix=$(meson introspect "$build" --buildoptions | /usr/bin/python3 -c \
  'import json,sys; o={x["name"]:x["value"] for x in json.load(sys.stdin)}; print(o["prefix"]); print(o["libdir"]); print(o["bindir"])')
{ read -r pfx; read -r libdir; read -r bindir; } <<<"$prefix"
case "$libdir" in /*) ;; *) libdir=$pfx/$libdir ;; esac
case "$bindir" in /*) ;; *) bindir=$pfx/$bindir ;; esac

pcdir=$root$libdir/pkgconfig
[ -f "$pcdir/ringlet.pc" ] || fail "no ringlet.pc under $pcdir"
[ -f "$root$pfx/include/ringlet.h" ] || fail "ringlet.h not installed"
# The .pc names the real prefix; the sysroot maps it into the temporary root.
export PKG_CONFIG_PATH=$pcdir PKG_CONFIG_SYSROOT_DIR=$root
flags=$(pkg-config --cflags --libs ringlet)
echo "pkg-config --cflags --libs ringlet: $flags"
echo "version: $(pkg-config --modversion ringlet)"

soname=$(readelf -d "$root$libdir/libringlet.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libringlet.so.$(pkg-config --modversion ringlet | cut -d. -f1)" ] ||
  fail "soname is '$soname'"
echo "soname: $soname"

work=$root/work
mkdir -p "$work"
# shellcheck disable=SC2086  # pkg-config output is a word list
cc -std=c11 -Wall -Wextra -Werror "$src/examples/hello_allreduce.c" $flags -o "$work/hello_allreduce"
needed=$(readelf -d "$work/hello_allreduce" | sed -n 's/.*(NEEDED).*\[\(libringlet.*\)\]/\1/p')
[ "$needed" = "$soname" ] || fail "example links against '$needed', not $soname"

export LD_LIBRARY_PATH=$root$libdir
for p in ringlet-run ringlet-info plot-bench all_reduce_perf all_gather_perf reduce_kernel_perf; do
  [ -x "$root$bindir/$p" ] || fail "$p not installed in $bindir"
  help=$("$root$bindir/$p" --help) || fail "$p --help failed"
  grep -qi '^usage' <<<"$help" || fail "$p --help prints no usage line"
done

out=$("$root$bindir/ringlet-run" -n 3 --timeout 120 --env RINGLET_TRANSPORT=ofi -- "$work/hello_allreduce")
echo "$out"
[ "$(grep -c ', 0 wrong' <<<"$out")" = 3 ] || fail "not every rank reported 0 wrong"
# The installed Python package: records the prefix's library; loaded here
# through RINGLET_LIBRARY since the prefix is under a temporary root.
pydir=$(cd "$root" && find . -path '*/ringlet/_libpath.py' | head -1)
[ -n "$pydir" ] || fail "Python package not installed"
pydir=$root/${pydir#./}; pydir=${pydir%/ringlet/_libpath.py}
grep -q "LIBRARY = \"$libdir/$soname\"" "$pydir/ringlet/_libpath.py" || fail "_libpath.py: $(cat "$pydir/ringlet/_libpath.py")"
out=$(PYTHONPATH=$pydir RINGLET_LIBRARY=$root$libdir/$soname "$root$bindir/ringlet-run" -n 2 --timeout 120 -- \
  /usr/bin/python3 -c 'import numpy as np, ringlet; c = ringlet.Comm(); print("sum", c.all_reduce(np.arange(4.0) + c.rank))')
echo "$out"
[ "$(grep -c 'sum \[1. 3. 5. 7.\]' <<<"$out")" = 2 ] || fail "installed Python package"
if compgen -G "$pydir/ringlet_torch/_C*.so" >/dev/null; then  # built when torch was found
  v=$(PYTHONPATH=$pydir /usr/bin/python3 -c 'import ringlet_torch; print(ringlet_torch.version())' 2>/dev/null) ||
    fail "installed ringlet_torch does not import"
  [ "$v" = "$(pkg-config --modversion ringlet)" ] || fail "ringlet_torch reports version '$v'"
  echo "ringlet_torch installed and imports (ringlet $v)"
fi
echo "install_check: OK"
