#!/bin/sh
# bench-slots.sh: the rollback slots of a kernel module on a board. One implementation for
# both ways a module arrives: `bench stage`, `bench rollback` and `bench target recover`
# run its functions over ssh (or locally), and the package's DKMS install hook
# (PRE_INSTALL / POST_INSTALL) runs it when the board's own DKMS installs the package.
# Needs sh, coreutils and modinfo.
#
# Layout, per module and kernel release, under STATE=ROOT/var/lib/bench/MODULE/KVER:
#   lock/holder                        who holds it (mkdir is the lock)
#   journal                            the operation in progress and its last finished step
#   staging/                           a module on its way in (MODULE.ko and meta)
#   slots/active/                      what is installed
#   slots/rollback/                    the last known good module
#   forensics/VARIANT-SRCVERSION[-N]/  modules taken out of service, never deleted
# meta: sha256, srcversion, variant, version, build, time, arrived (stage, dkms, or found:
# a module bench did not put there). Every file is written to a temporary, synced and
# renamed; a slot moves as one directory rename. The journal is written before each step's
# effects and every step is idempotent, so an interrupted operation can be completed.
#
# As a DKMS hook:
#   bench-slots.sh pre|post KERNELVER DEST_MODULE_LOCATION MODULE [VARIANT VERSION]
# As a library: BENCH_SLOTS_LIB=1, then `. bench-slots.sh` (or its text) and slots_* calls.
# BENCH_SLOT_ROOT (default: empty, i.e. /) prefixes every path; BENCH_SLOT_STATE_DIR
# (default /var/lib/bench) is the state directory under it. BENCH_FAULT_AFTER=STEP kills the hook
# right after STEP (tests: an interrupted install).

slots_sync() { sync "$@" 2>/dev/null || sync; }

# slots_write FILE: standard input into FILE, atomically.
slots_write() {
  _w_tmp="$(dirname "$1")/.$(basename "$1").tmp.$$"
  cat > "$_w_tmp"
  slots_sync "$_w_tmp"
  mv -f "$_w_tmp" "$1"
}

# slots_now: the time as bench records it (RFC 3339, UTC).
slots_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# slots_get FILE KEY: one value of a key=value file (a meta, the journal; empty when absent).
slots_get() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n 1; }

# slots_meta DIR KEY: one value of a slot's meta.
slots_meta() { slots_get "$1/meta" "$2"; }

# slots_sha FILE: its sha256 (empty when absent).
slots_sha() { if [ -f "$1" ]; then sha256sum "$1" | cut -d' ' -f1; fi; }

# slots_lock STATE HOLDER: takes the lock; prints ok, held (someone has it) or full.
slots_lock() {
  mkdir -p "$1" || exit 1
  if mkdir "$1/lock" 2>/dev/null; then
    if printf '%s\n' "$2" > "$1/lock/holder" 2>/dev/null; then echo ok; else rm -rf "$1/lock"; echo full; fi
  else
    echo held
  fi
}

# slots_unlock STATE
slots_unlock() { rm -rf "$1/lock"; }

# slots_journal STATE OP STEP [VARIANT VERSION]: the journal of a DKMS install.
slots_journal() {
  printf 'op=%s\nstep=%s\nvariant=%s\nversion=%s\n' "$2" "$3" "${4:-}" "${5:-}" | slots_write "$1/journal"
}

# slots_finish STATE: the operation is complete: no journal, no lock.
slots_finish() { rm -f "$1/journal"; slots_sync; slots_unlock "$1"; }

# slots_retire STATE DIR: the slot DIR to forensics/VARIANT-SRCVERSION under a new name.
slots_retire() {
  [ -d "$2" ] || return 0
  _r_v=$(slots_meta "$2" variant | tr -c 'A-Za-z0-9._\n-' '_')
  _r_s=$(slots_meta "$2" srcversion | tr -c 'A-Za-z0-9\n' '_')
  mkdir -p "$1/forensics"
  _r_base="$1/forensics/${_r_v:-unknown}-${_r_s:-nosrcversion}"
  _r_name=$_r_base
  _r_i=2
  while [ -e "$_r_name" ]; do _r_name=$_r_base-$_r_i; _r_i=$((_r_i + 1)); done
  mv "$2" "$_r_name"
  slots_sync
}

# slots_demote STATE: the active slot becomes the rollback (when the rollback is free).
slots_demote() {
  if [ -d "$1/slots/active" ] && [ ! -d "$1/slots/rollback" ]; then
    mv "$1/slots/active" "$1/slots/rollback"
    slots_sync
  fi
}

# slots_promote STATE FROM: STATE/FROM (staging, slots/rollback) becomes the active slot
# (when the active slot is free).
slots_promote() {
  if [ -d "$1/$2" ] && [ ! -d "$1/slots/active" ]; then
    mkdir -p "$1/slots"
    mv "$1/$2" "$1/slots/active"
    slots_sync
  fi
}

# slots_keep STATE FILE SLOT ARRIVED VARIANT VERSION BUILD: a copy of the module FILE, with
# its meta, becomes STATE/SLOT; a module already there goes to forensics.
slots_keep() {
  _k_new="$1/.new.$$"
  rm -rf "$_k_new"
  mkdir -p "$_k_new" "$(dirname "$1/$3")"
  # The copy keeps the module's own name (.ko, .ko.xz): modinfo reads a file only by such
  # a name.
  _k_ko="$_k_new/$(basename "$2")"
  cp "$2" "$_k_ko"
  slots_sync "$_k_ko"
  _k_srcv=$(modinfo -F srcversion "$_k_ko" 2>/dev/null || true)
  if [ -z "$_k_srcv" ]; then
    echo "bench-slots.sh: modinfo could not read the srcversion of $2 (recorded as unknown)" >&2
    _k_srcv=unknown
  fi
  # A package's modules carry its version in modinfo.
  _k_version=${6:-$(modinfo -F version "$_k_ko" 2>/dev/null || true)}
  printf 'sha256=%s\nsrcversion=%s\nvariant=%s\nversion=%s\nbuild=%s\ntime=%s\narrived=%s\n' \
    "$(slots_sha "$_k_ko")" "$_k_srcv" "${5:-unknown}" "$_k_version" "${7:-}" "$(slots_now)" "$4" |
    slots_write "$_k_new/meta"
  slots_retire "$1" "$1/$3"
  mv "$_k_new" "$1/$3"
  slots_sync
}

# slots_installed MODDIR MODULE: the installed module file (empty when none).
slots_installed() {
  for _i_f in "$1/$2.ko" "$1/$2.ko.xz" "$1/$2.ko.zst" "$1/$2.ko.gz"; do
    if [ -f "$_i_f" ]; then
      echo "$_i_f"
      return 0
    fi
  done
}

# slots_install STATE MODDIR MODULE: the active slot's module into the module directory.
slots_install() {
  mkdir -p "$2"
  _n_tmp="$2/.$3.ko.tmp.$$"
  cp "$1/slots/active/$3.ko" "$_n_tmp"
  slots_sync "$_n_tmp"
  mv -f "$_n_tmp" "$2/$3.ko"
}

# slots_dkms_recover STATE MODDIR MODULE: completes or undoes an interrupted DKMS install
# so that the active slot is what is installed; prints what it did.
slots_dkms_recover() {
  _d_variant=$(slots_get "$1/journal" variant)
  _d_version=$(slots_get "$1/journal" version)
  _d_inst=$(slots_installed "$2" "$3")
  _d_sha=$(slots_sha "$_d_inst")
  if [ -d "$1/slots/active" ]; then
    if [ -n "$_d_sha" ] && [ "$_d_sha" != "$(slots_meta "$1/slots/active" sha256)" ]; then
      slots_keep "$1" "$_d_inst" slots/active dkms "$_d_variant" "$_d_version" ""
      echo "recorded the module DKMS installed ($_d_variant $_d_version) as active"
    else
      echo "the active module is the installed one: nothing to change"
    fi
  elif [ -n "$_d_sha" ] && [ "$_d_sha" = "$(slots_meta "$1/slots/rollback" sha256)" ]; then
    slots_promote "$1" slots/rollback
    echo "DKMS had not installed $_d_variant $_d_version: the previous module is active again"
  elif [ -n "$_d_sha" ]; then
    slots_keep "$1" "$_d_inst" slots/active dkms "$_d_variant" "$_d_version" ""
    echo "completed: the module DKMS installed ($_d_variant $_d_version) is active"
  elif [ -d "$1/slots/rollback" ]; then
    slots_promote "$1" slots/rollback
    echo "nothing was installed: the previous module is active again"
  else
    echo "nothing was installed and there is no previous module"
  fi
}

slots_fault() {
  if [ "${BENCH_FAULT_AFTER:-}" = "$1" ]; then kill -KILL $$; fi
}

# The DKMS hook. pre: lock, journal, make the active slot describe what is installed,
# retire the rollback, demote the active. post: the installed module becomes the active
# slot, then the journal and the lock go.
slots_hook() {
  set -eu
  _h_phase=$1 _h_kver=$2 _h_dest=$3 _h_module=$4 _h_variant=${5:-unknown} _h_version=${6:-}
  _h_root=${BENCH_SLOT_ROOT:-}
  _h_state="$_h_root${BENCH_SLOT_STATE_DIR:-/var/lib/bench}/$_h_module/$_h_kver"
  _h_moddir="$_h_root/lib/modules/$_h_kver$_h_dest"
  case $_h_phase in
    pre)
      _h_holder="pid $$ on $(cat /etc/hostname 2>/dev/null || echo unknown): dkms install $_h_variant $_h_version (since $(slots_now))"
      case $(slots_lock "$_h_state" "$_h_holder") in
        ok) ;;
        held)
          echo "bench-slots.sh: $_h_state is busy: $(cat "$_h_state/lock/holder" 2>/dev/null || echo unknown); nothing was changed (run bench target recover if that operation died)" >&2
          exit 1
          ;;
        *)
          echo "bench-slots.sh: no space left under $_h_state: nothing was changed" >&2
          exit 1
          ;;
      esac
      slots_fault lock
      slots_journal "$_h_state" dkms begin "$_h_variant" "$_h_version"
      slots_fault begin
      _h_inst=$(slots_installed "$_h_moddir" "$_h_module")
      # The active slot must be the installed module: one put there by other means is
      # kept as found, the stale record goes to forensics.
      if [ -n "$_h_inst" ] && [ "$(slots_sha "$_h_inst")" != "$(slots_meta "$_h_state/slots/active" sha256)" ]; then
        slots_keep "$_h_state" "$_h_inst" slots/active found unknown "" ""
      fi
      if [ -d "$_h_state/slots/active" ]; then
        slots_retire "$_h_state" "$_h_state/slots/rollback"
      fi
      slots_journal "$_h_state" dkms rollback-displaced "$_h_variant" "$_h_version"
      slots_fault rollback-displaced
      slots_demote "$_h_state"
      slots_journal "$_h_state" dkms active-demoted "$_h_variant" "$_h_version"
      slots_fault active-demoted
      ;;
    post)
      if [ "$(slots_get "$_h_state/journal" op)" != dkms ]; then
        echo "bench-slots.sh: no DKMS install in progress under $_h_state (the pre-install hook did not run): the slots were not changed" >&2
        exit 1
      fi
      _h_inst=$(slots_installed "$_h_moddir" "$_h_module")
      if [ -z "$_h_inst" ]; then
        echo "bench-slots.sh: DKMS installed no $_h_module in $_h_moddir: run bench target recover" >&2
        exit 1
      fi
      if [ ! -d "$_h_state/slots/active" ] && [ "$(slots_sha "$_h_inst")" = "$(slots_meta "$_h_state/slots/rollback" sha256)" ]; then
        # DKMS ran this hook without installing (its version check refused): the
        # previous module is still the installed one, and stays the active slot.
        slots_promote "$_h_state" slots/rollback
        slots_finish "$_h_state"
        echo "bench-slots.sh: DKMS did not install $_h_module $_h_version: the previous module stays active" >&2
        exit 0
      fi
      slots_keep "$_h_state" "$_h_inst" slots/active dkms "$_h_variant" "$_h_version" ""
      slots_fault kept
      slots_journal "$_h_state" dkms promoted "$_h_variant" "$_h_version"
      slots_fault promoted
      slots_finish "$_h_state"
      ;;
    *)
      echo "bench-slots.sh: phase must be pre or post, not $_h_phase" >&2
      exit 2
      ;;
  esac
}

if [ -z "${BENCH_SLOTS_LIB:-}" ]; then
  if [ $# -lt 4 ]; then
    echo "usage: bench-slots.sh pre|post KERNELVER DEST_MODULE_LOCATION MODULE [VARIANT VERSION]" >&2
    exit 2
  fi
  slots_hook "$@"
  exit 0
fi
