# Sourced by tests/run.sh: install the Debian packages the tests need, as a fresh machine needs them installed.
#   apt_install_missing PKG...   installs those not installed yet (with sudo when not root)
# Another package manager (unattended-upgrades, cloud-init, a second apt) may hold a dpkg/apt lock: apt-get
# install waits for it (DPkg::Lock::Timeout); apt-get update's list lock and dpkg's own lock are waited for
# here, retrying every LOCK_POLL seconds up to LOCK_WAIT. A dpkg run that was interrupted (power cut, killed
# apt) makes every apt-get fail until `dpkg --configure -a` finishes it: that is done first.
# tests/support/test_apt.py runs this with stand-ins for apt-get/dpkg that hold a lock or report a broken dpkg.

LOCK_WAIT="${LOCK_WAIT:-300}"
LOCK_POLL="${LOCK_POLL:-5}"
DPKG_UPDATES="${DPKG_UPDATES:-/var/lib/dpkg/updates}"  # dpkg's journal: not empty after an interrupted run

_apt_say() { echo "tests/run.sh: $*" >&2; }

# Run a package-manager command; while another process holds a dpkg/apt lock, wait and retry.
with_lock_wait() {
  local deadline=$((SECONDS + LOCK_WAIT)) err waited=""
  err="$(mktemp)"
  until "$@" 2>"$err"; do
    if grep -qiE "could not get lock|unable to (acquire|lock)|locked by another process|database is locked" "$err" \
        && [ "$SECONDS" -lt "$deadline" ]; then
      [ -n "$waited" ] || _apt_say "waiting for another package manager to release its lock: $(grep -im1 lock "$err")"
      waited=1; sleep "$LOCK_POLL"; continue
    fi
    cat "$err" >&2; rm -f "$err"; return 1
  done
  grep -v -e '^debconf: delaying package configuration' "$err" >&2 || true
  rm -f "$err"
}

apt_install_missing() {
  local p missing=() sudo=()
  for p in "$@"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  _apt_say "installing apt packages: ${missing[*]}"
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o "DPkg::Lock::Timeout=$LOCK_WAIT" -y -qq)
  if [ -n "$(ls -A "$DPKG_UPDATES" 2>/dev/null)" ] || [ -n "$(dpkg --audit 2>/dev/null)" ]; then
    _apt_say "finishing an interrupted dpkg run (dpkg --configure -a)"
    with_lock_wait "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive dpkg --configure -a --force-confdef --force-confold
  fi
  with_lock_wait "${apt[@]}" update
  with_lock_wait "${apt[@]}" install --no-install-recommends "${missing[@]}" >/dev/null
}
