#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (Debian's slurm-wlm and munge), for the tests that submit real
# jobs (tests/test_slurm.py). Idempotent: a cluster that already answers is left as it is. Needs root.
# Exits 0 even when Slurm cannot start: those tests then skip, naming the reason.
#   .ci/slurm_cluster.sh           start (or check) the cluster
#   .ci/slurm_cluster.sh stop      stop the daemons this script started
set -uo pipefail
CONF=/etc/slurm/slurm.conf
STATE=/var/spool/slurm-local
say() { echo "slurm: $*"; }

if [ "${1:-}" = stop ]; then
    for name in slurmd slurmctld; do
        [ -f "$STATE/$name.pid" ] && kill "$(cat "$STATE/$name.pid")" 2>/dev/null
    done
    exit 0
fi
for tool in sbatch slurmctld slurmd munged; do
    command -v "$tool" >/dev/null || { say "$tool not installed (make slurm installs it): the Slurm tests will skip"; exit 0; }
done
if [ "$(id -u)" != 0 ]; then
    say "not root: cannot start a local cluster; the Slurm tests use one that answers, or skip"
    exit 0
fi
if timeout 5 sinfo -h >/dev/null 2>&1 && timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
    say "cluster answers: $(sinfo -h -o '%P %D nodes %c CPUs %t' | head -n 1)"
    exit 0
fi

if [ -f "$CONF" ] && ! grep -q "^# Written by .ci/slurm_cluster.sh" "$CONF"; then
    say "$CONF exists and is not this script's: left alone (the Slurm tests skip unless that cluster answers)"
    exit 0
fi

# munge: the authentication every Slurm daemon and client uses
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged || { say "munged did not start: the Slurm tests will skip"; exit 0; }
fi

host=$(hostname -s)
node=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=... RealMemory=...
mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm
cat > "$CONF" <<EOF
# Written by .ci/slurm_cluster.sh: a one-node cluster on localhost for tests.
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=5
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=30
SchedulerParameters=sched_interval=2,bf_interval=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld || { say "slurmctld did not start (see $STATE/slurmctld.log): the Slurm tests will skip"; exit 0; }
slurmd || { say "slurmd did not start (see $STATE/slurmd.log): the Slurm tests will skip"; exit 0; }
for _ in $(seq 1 30); do
    if sinfo -h -o '%t' 2>/dev/null | grep -q -E '^(idle|mix|alloc)'; then
        say "cluster up: $(sinfo -h -o '%P %D nodes %c CPUs %t' | head -n 1)"
        exit 0
    fi
    sleep 1
done
say "the node did not come up in 30 s (see $STATE/slurmctld.log): the Slurm tests will skip"
exit 0
