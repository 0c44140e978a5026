#!/usr/bin/env bash
# A real single-node Slurm on this machine (loopback only) for the grid's Slurm end-to-end test.
# Installs Debian's slurm-wlm + munge when missing (needs root), writes /etc/slurm/slurm.conf for
# this node's real CPUs and memory, starts munged, slurmctld and slurmd, and waits until the node
# accepts jobs. Idempotent: when everything is already up with the same configuration it returns
# in well under a second. Exit 0 = ready; otherwise the last line on stderr says why not.
#
# Settings known to work without systemd or cgroups (e.g. in a container): proctrack/linuxproc,
# task/none, SlurmUser=root, no cgroup.conf, select/cons_tres so array tasks share the node by CPU.
set -euo pipefail

die() { echo "slurm-setup: $*" >&2; exit 1; }
conf=/etc/slurm/slurm.conf

install_packages() {
  command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "slurm-wlm/munge are not installed and installing them needs root"
  command -v apt-get >/dev/null || die "slurm-wlm/munge are not installed and there is no apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge
  chmod 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged || die "munged did not start"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "munge does not answer"
}

# The configuration this script wants; compared with the installed one to decide on a restart.
wanted_conf() {
  local host node
  host=$(hostname -s)
  # `slurmd -C` prints the node's real CPUs, sockets, cores and memory (first line).
  node=$(slurmd -C | head -n 1) || die "slurmd -C failed"
  cat <<EOF
# Written by advrun test/grid/slurm-setup.sh: single node, loopback only.
ClusterName=advrun-test
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=60
SchedulerParameters=sched_interval=1
${node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

running() { pgrep -x "$1" >/dev/null; }

stop_daemon() {
  local pid
  [ -s "$2" ] || return 0
  pid=$(cat "$2")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "$1 (pid $pid) did not stop"
}

node_ready() {
  local state
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1) || return 1
  case "$state" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac
}

main() {
  install_packages
  start_munge
  local want
  want=$(wanted_conf)
  if [ -f "$conf" ] && [ "$(cat "$conf")" = "$want" ] && running slurmctld && running slurmd && node_ready; then
    echo "slurm-setup: already running"
    return 0
  fi
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
    printf '%s\n' "$want" >"$conf"
    # A changed configuration needs fresh daemons: stop the ones we started (their pid files).
    stop_daemon slurmd /run/slurmd.pid
    stop_daemon slurmctld /run/slurmctld.pid
  fi
  running slurmctld || slurmctld || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
  running slurmd || slurmd || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
  for i in $(seq 150); do
    node_ready && { echo "slurm-setup: ready"; return 0; }
    # A node left down/drained by an earlier session is put back into service.
    if [ $((i % 20)) = 10 ]; then scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true; fi
    sleep 0.2
  done
  die "the node did not become idle within 30s: $(sinfo -h -N -o '%T %E' 2>&1 | head -n 1)"
}

main "$@"
