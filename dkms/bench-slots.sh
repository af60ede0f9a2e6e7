#!/bin/sh
# DKMS install hook of a bench package: keeps the module being replaced in a rollback
# slot (with its srcversion and sha256) before DKMS installs the new one, and records the
# new one as active after. Every write is temp file, fsync, rename.
# Usage: bench-slots.sh pre|post KERNELVER DEST_MODULE_LOCATION MODULE
# BENCH_SLOT_ROOT (default /) prefixes every path, for tests.
set -eu
phase=$1 kver=$2 dest=$3 module=$4
root=${BENCH_SLOT_ROOT:-}
moddir="$root/lib/modules/$kver$dest"
slots="$root/var/lib/bench/slots/$module/$kver"
mkdir -p "$slots/rollback" "$slots/active"

keep() { # keep SRC SLOTDIR: copy SRC into SLOTDIR with its metadata, atomically
  src=$1 slot=$2
  # The temporary keeps the module's own name at its end (.ko, .ko.xz): modinfo reads a
  # file only by such a name.
  tmp="$slot/.tmp.$$.${src##*/}"
  cp "$src" "$tmp"
  sync "$tmp" 2>/dev/null || sync
  sum=$(sha256sum "$tmp" | cut -d' ' -f1)
  srcv=$(modinfo -F srcversion "$tmp" 2>/dev/null || true)
  if [ -z "$srcv" ]; then
    echo "bench-slots.sh: modinfo could not read the srcversion of $src (recorded as unknown)" >&2
    srcv=unknown
  fi
  printf 'sha256=%s\nsrcversion=%s\nfrom=%s\n' "$sum" "$srcv" "$src" > "$slot/.meta.tmp.$$"
  sync "$slot/.meta.tmp.$$" 2>/dev/null || sync
  mv -f "$tmp" "$slot/$module.ko"
  mv -f "$slot/.meta.tmp.$$" "$slot/meta"
}

for f in "$moddir/$module.ko" "$moddir/$module.ko.xz" "$moddir/$module.ko.zst"; do
  [ -f "$f" ] || continue
  case $phase in
    pre) keep "$f" "$slots/rollback" ;;
    post) keep "$f" "$slots/active" ;;
    *) echo "bench-slots.sh: phase must be pre or post, not $phase" >&2; exit 2 ;;
  esac
  break
done
exit 0
