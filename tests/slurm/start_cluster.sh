#!/usr/bin/env bash
# Start a private single-node Slurm cluster (slurmctld + slurmd on localhost, Debian's slurm-wlm and
# munge) whose state, logs and config all live in DIR; print the SLURM_CONF to export.
#   tests/slurm/start_cluster.sh DIR        # needs root; stop it with tests/slurm/stop_cluster.sh DIR
# It is a test stand-in for a real cluster, with two declared differences a test must not hide:
#  - the node advertises one stand-in GPU (gres backed by /dev/null) so that jobs asking for --gpus=1,
#    as the project's slurm/ profile does for its GPU rules, are scheduled; they run on the CPU;
#  - the node's CPUs and memory are declared (SlurmdParameters=config_overrides), not probed, and memory
#    is not a consumable resource, so the profile's memory requests are accepted as written.
# The controller keeps finished jobs for MinJobAge=3600 s: Snakemake's Slurm plugin then queries status
# with squeue (no accounting daemon here; with sacct and no accounting it hangs), and a test can read
# every finished job back with scontrol. jobcomp/filetxt also logs each finished job to DIR/jobcomp.txt.
# The configuration is published at Slurm's default path, /etc/slurm/slurm.conf (a symlink into DIR):
# inside a job the Slurm plugin's job step drops SLURM_* variables, SLURM_CONF included, before its
# nested `srun`, which then only finds a configuration there (as on a real cluster). The script refuses
# to replace a configuration it did not write.
set -euo pipefail
ETC=${TBCM_SLURM_ETC:-/etc/slurm}

dir=${1:?usage: start_cluster.sh DIR}
for tool in slurmctld slurmd munged sinfo; do
    command -v "$tool" >/dev/null || { echo "start_cluster: $tool not found (apt-get install -y slurm-wlm munge)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "start_cluster: must run as root (slurmd runs jobs as their submitting user)" >&2; exit 2; }
mkdir -p "$dir"/{state,spool}
dir=$(cd "$dir" && pwd)

# munge: reuse a running munged; otherwise start one and remember its PID for stop_cluster.sh.
if ! munge -n >/dev/null 2>&1; then
    [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n >/dev/null || { echo "start_cluster: munged did not start" >&2; exit 1; }
    cp /run/munge/munged.pid "$dir/munged.pid"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ctld_port=$(free_port)
slurmd_port=$(free_port)
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
cpus=$(getconf _NPROCESSORS_ONLN)  # not nproc: it follows OMP_NUM_THREADS

cat > "$dir/slurm.conf" <<CONF
ClusterName=tbcmtest
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
ReturnToService=2
MinJobAge=3600
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=localhost NodeHostname=$(hostname -s) NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=256000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
echo "NodeName=localhost Name=gpu File=/dev/null" > "$dir/gres.conf"

# /etc/slurm/slurm.conf: ours from an earlier run (a symlink to a folder marked as a test cluster whose
# controller is gone) may be replaced; anything else is left alone and the start fails.
mkdir -p "$ETC"
if [ -e "$ETC/slurm.conf" ] || [ -L "$ETC/slurm.conf" ]; then
    old=$(readlink "$ETC/slurm.conf" || true)
    olddir=$(dirname "${old:-/nonexistent/x}")
    if [ -n "$old" ] && [ ! -e "$old" ] && ! pgrep -x slurmctld >/dev/null; then
        :  # a dangling link left by a test run whose folder is gone, and no controller running
    elif [ -z "$old" ] || [ ! -f "$olddir/tbcm-test-cluster" ]; then
        echo "start_cluster: $ETC/slurm.conf exists and is not a tbcm test cluster's; not replacing it" >&2; exit 2
    fi
    if [ -f "$olddir/slurmctld.pid" ] && kill -0 "$(cat "$olddir/slurmctld.pid")" 2>/dev/null; then
        echo "start_cluster: another test cluster is running ($olddir); stop it with stop_cluster.sh $olddir" >&2; exit 2
    fi
fi
touch "$dir/tbcm-test-cluster"
ln -sfn "$dir/slurm.conf" "$ETC/slurm.conf"
ln -sfn "$dir/gres.conf" "$ETC/gres.conf"

export SLURM_CONF=$ETC/slurm.conf
slurmctld -c -i
slurmd -N localhost
state=
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ]; do
    kill -0 "$(cat "$dir/slurmctld.pid" 2>/dev/null)" 2>/dev/null || { state="down (slurmctld exited)"; break; }
    state=$(timeout 5 sinfo -h -N -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
done
if [ "$state" != idle ]; then
    echo "start_cluster: node is '${state:-unreachable}', not idle; logs in $dir" >&2
    tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
    exit 1
fi
echo "started: $(sinfo -h -o '%P %D %T') (config $ETC/slurm.conf -> $dir/slurm.conf)"
