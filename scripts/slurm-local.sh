#!/usr/bin/env bash
# A private one-node Slurm on this machine, for CI and local tests of `weatherlens study --dispatch slurm`.
#
#   scripts/slurm-local.sh start    install what is missing (apt), write the config, start munged, slurmctld
#                                   and slurmd, wait until the node is idle; idempotent
#   scripts/slurm-local.sh stop     cancel this cluster's jobs, stop exactly the daemons `start` recorded
#                                   (by pid, never by name), wait until they are gone; fine when not started
#   scripts/slurm-local.sh status   daemons and node state; exit 0 when ready, 3 otherwise
#   scripts/slurm-local.sh env      print `export SLURM_CONF=...` (use: eval "$(scripts/slurm-local.sh env)")
#
# Everything lives under one folder, ${SLURM_LOCAL_DIR:-/tmp/weatherlens-slurm}: etc/slurm.conf, munge/ (key,
# socket, pid, log), state/ (slurmctld), spool/ (slurmd), log/ (daemon logs, jobcomp.txt), run/ (pid files).
# Nothing under /etc is written: Slurm's client commands (sbatch, squeue, scontrol, ...) find this cluster
# through SLURM_CONF, which `start` and `env` print. munged listens on a private socket, so a system munged
# (if any) is neither used nor touched. Must run as root (slurmd does).
#
# Settings (environment): SLURM_LOCAL_DIR, SLURM_LOCAL_TIMEOUT (seconds to wait for readiness, default 60),
# SLURM_LOCAL_CTLD_PORT (default 6817), SLURM_LOCAL_SLURMD_PORT (default 6818), SLURM_LOCAL_CPUS (default nproc).
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/weatherlens-slurm}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6818}
CONF=$DIR/etc/slurm.conf
MUNGE_DIR=$DIR/munge
SOCKET=$MUNGE_DIR/munge.socket.2
APT_PACKAGES=(slurmctld slurmd slurm-client munge)

log() { echo "slurm-local: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# The pid recorded for daemon $1 (munged, slurmctld, slurmd), or nothing.
pidfile() {
  case $1 in
    munged) echo "$MUNGE_DIR/munged.pid" ;;
    *) echo "$DIR/run/$1.pid" ;;
  esac
}

# Prints the recorded pid of daemon $1 if that process is alive and really is our daemon: its command line
# names the program and this cluster's folder (so a recycled pid or a system daemon never matches).
live_pid() {
  local f pid cmd
  f=$(pidfile "$1")
  [[ -s $f ]] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$1"* && $cmd == *"$DIR"* ]] || return 1
  echo "$pid"
}

install_missing() {
  local missing=0 c
  for c in munged mungekey slurmctld slurmd sbatch scontrol sinfo; do
    command -v "$c" >/dev/null 2>&1 || missing=1
  done
  ((missing)) || return 0
  command -v apt-get >/dev/null 2>&1 || die "Slurm/munge are missing and apt-get is not available"
  log "installing ${APT_PACKAGES[*]} (apt, --no-install-recommends)"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' postinst scripts from starting the system munged/slurm services: this cluster runs
  # its own daemons. A policy-rc.d already present is left alone.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local rc=0
  apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null; } ||
    rc=$?
  ((made_policy)) && rm -f "$policy"
  ((rc == 0)) || die "apt-get install ${APT_PACKAGES[*]} failed"
}

real_memory_mb() {
  local m
  m=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
  [[ -n $m ]] || m=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
  echo "$m"
}

write_config() {
  local cpus mem
  cpus=${SLURM_LOCAL_CPUS:-$(nproc)}
  mem=$(real_memory_mb)
  mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"
  : >"$DIR/etc/plugstack.conf"
  cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm-local.sh: a private one-node cluster under $DIR.
ClusterName=weatherlens
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$DIR/etc/plugstack.conf
# No cgroups (containers, CI): track job processes through /proc, no CPU binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
# Schedule every second and right after submit/finish (defaults: 60 s main loop, 30 s backfill, 3 s batch delay):
# 4 one-second array tasks + a dependent report go from ~15 s to ~6 s.
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# No slurmdbd: finished jobs stay in slurmctld's memory for a day (scontrol show job / squeue --states=all),
# and each one is appended to a text file.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MinJobAge=86400
ReturnToService=2
InactiveLimit=0
KillWait=5
Waittime=0
# Trust this file's node description over what slurmd detects (no drain for a hyperthread/memory mismatch).
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
}

start_munged() {
  if live_pid munged >/dev/null; then return 0; fi
  id munge >/dev/null 2>&1 || die "no 'munge' user (the munge package creates it)"
  mkdir -p "$MUNGE_DIR"
  chown munge:munge "$MUNGE_DIR"
  chmod 0755 "$MUNGE_DIR" # 0755: the socket must be reachable by job steps and client commands
  if [[ ! -s $MUNGE_DIR/munge.key ]]; then
    runuser -u munge -- mungekey --create --keyfile="$MUNGE_DIR/munge.key"
  fi
  chown munge:munge "$MUNGE_DIR/munge.key"
  chmod 0600 "$MUNGE_DIR/munge.key"
  rm -f "$SOCKET" "$SOCKET.lock"
  runuser -u munge -- munged --socket="$SOCKET" --key-file="$MUNGE_DIR/munge.key" \
    --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
    --seed-file="$MUNGE_DIR/munged.seed" ||
    die "munged failed to start; see $MUNGE_DIR/munged.log"
  local t=0
  until munge -n -S "$SOCKET" 2>/dev/null | unmunge -S "$SOCKET" >/dev/null 2>&1; do
    ((t++ < 10 * TIMEOUT)) || die "munged does not answer on $SOCKET; see $MUNGE_DIR/munged.log"
    sleep 0.1
  done
}

start_slurm_daemon() { # $1 = slurmctld | slurmd
  if live_pid "$1" >/dev/null; then return 0; fi
  rm -f "$(pidfile "$1")"
  if [[ $1 == slurmd ]]; then
    slurmd -f "$CONF" -N localhost || die "slurmd failed to start; see $DIR/log/slurmd.log"
  else
    slurmctld -f "$CONF" || die "slurmctld failed to start; see $DIR/log/slurmctld.log"
  fi
  local t=0
  until live_pid "$1" >/dev/null; do
    ((t++ < 10 * TIMEOUT)) || die "$1 did not record its pid; see $DIR/log/$1.log"
    sleep 0.1
  done
}

node_state() { SLURM_CONF=$CONF sinfo -h -n localhost -o %T 2>/dev/null | head -1; }

wait_ready() {
  local deadline=$((SECONDS + TIMEOUT)) state=""
  while ((SECONDS < deadline)); do
    state=$(node_state || true)
    case $state in
      idle | mixed | allocated | completing) return 0 ;;
    esac
    for d in slurmctld slurmd; do
      live_pid "$d" >/dev/null || {
        tail -n 20 "$DIR/log/$d.log" >&2 || true
        die "$d exited; see $DIR/log/$d.log"
      }
    done
    sleep 0.2
  done
  {
    echo "--- sinfo -R"
    SLURM_CONF=$CONF sinfo -R || true
    echo "--- scontrol show node localhost"
    SLURM_CONF=$CONF scontrol show node localhost || true
    echo "--- slurmctld.log (tail)"
    tail -n 20 "$DIR/log/slurmctld.log" || true
    echo "--- slurmd.log (tail)"
    tail -n 20 "$DIR/log/slurmd.log" || true
  } >&2
  die "node 'localhost' not idle after ${TIMEOUT}s (state: '${state:-no answer}')"
}

cmd_start() {
  [[ $(id -u) -eq 0 ]] || die "start must run as root (slurmd runs as root)"
  local t0=$SECONDS
  install_missing
  mkdir -p "$DIR"
  chmod 0755 "$DIR"
  # Rewrite the config only when no Slurm daemon of this cluster runs (start twice = no change).
  if ! live_pid slurmctld >/dev/null && ! live_pid slurmd >/dev/null; then write_config; fi
  start_munged
  start_slurm_daemon slurmctld
  start_slurm_daemon slurmd
  wait_ready
  log "ready in $((SECONDS - t0)) s: munged $(live_pid munged), slurmctld $(live_pid slurmctld), slurmd $(live_pid slurmd)"
  log "use it with: export SLURM_CONF=$CONF"
}

stop_one() { # $1 = daemon; TERM, wait up to 30 s, then KILL
  local pid
  pid=$(live_pid "$1") || {
    rm -f "$(pidfile "$1")"
    return 0
  }
  kill -TERM "$pid" 2>/dev/null || true
  local t=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((t++ == 300)); then
      log "$1 ($pid) ignored SIGTERM for 30 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    ((t < 400)) || die "$1 ($pid) does not exit"
    sleep 0.1
  done
  rm -f "$(pidfile "$1")"
  log "stopped $1 ($pid)"
}

cmd_stop() {
  if live_pid slurmctld >/dev/null; then
    # Jobs of this private cluster only: their slurmstepd processes would outlive slurmd.
    local jobs
    jobs=$(SLURM_CONF=$CONF squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || true
    if [[ -n ${jobs// /} ]]; then
      log "cancelling jobs: $jobs"
      # shellcheck disable=SC2086
      SLURM_CONF=$CONF scancel $jobs 2>/dev/null || true
      local t=0
      while [[ -n $(SLURM_CONF=$CONF squeue -h -o %A 2>/dev/null) ]] && ((t++ < 150)); do sleep 0.1; done
    fi
  fi
  stop_one slurmd
  stop_one slurmctld
  stop_one munged
}

cmd_status() {
  local d pid ok=1
  for d in munged slurmctld slurmd; do
    if pid=$(live_pid "$d"); then echo "$d: running (pid $pid)"; else
      echo "$d: not running"
      ok=0
    fi
  done
  if ((ok)); then
    echo "node localhost: $(node_state || echo 'no answer')"
    echo "SLURM_CONF=$CONF"
    case $(node_state || true) in idle | mixed | allocated | completing) return 0 ;; esac
  fi
  return 3
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *)
    echo "usage: $0 start|stop|status|env   (state folder: $DIR)" >&2
    exit 2
    ;;
esac
