#!/bin/sh
# Stand-in for systemctl where systemd is not PID 1 (this test machine, containers): start/stop/restart/is-active
# one edge-daemon per device root, as the unit would: check-config first (ExecStartPre), then `run` in the
# background with its pid in $ROOT/run/edge-daemon.pid. Only the service-manager step is replaced; the daemon, its
# config, release and models are the real installed ones. What systemd itself applies (User=, the sandbox) is not:
# the daemon runs as the caller. Usage: supervise.sh ROOT start|stop|restart|is-active
set -eu
ROOT="$1"; VERB="$2"
PIDFILE="$ROOT/run/edge-daemon.pid"
LOG="$ROOT/var/log/edge-daemon.log"
EXE="$ROOT/opt/edge-daemon/current/bin/edge-daemon"
CONFIG="$ROOT/etc/edge-daemon/config.toml"
export CREDENTIALS_DIRECTORY="$ROOT/etc/credstore"

alive() {
  [ -f "$PIDFILE" ] || return 1
  state="$(ps -o stat= -p "$(cat "$PIDFILE")" 2>/dev/null || true)"
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}
stop() {
  if alive; then
    pid="$(cat "$PIDFILE")"
    kill -TERM "$pid" 2>/dev/null || true
    i=0
    while [ $i -lt 100 ] && alive; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}
start() {
  alive && return 0
  mkdir -p "$ROOT/run" "$ROOT/var/log"
  "$EXE" check-config --quiet "$CONFIG" >>"$LOG" 2>&1 || { echo "check-config failed, see $LOG" >&2; exit 1; }
  setsid "$EXE" run --config "$CONFIG" >>"$LOG" 2>&1 </dev/null &
  echo $! > "$PIDFILE"
}
case "$VERB" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  is-active) if alive; then echo active; else echo inactive; exit 3; fi ;;
  *) echo "usage: $0 ROOT start|stop|restart|is-active" >&2; exit 2 ;;
esac
