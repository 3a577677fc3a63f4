#!/usr/bin/env bash
# Stop the cluster tests/slurm/start_cluster.sh DIR started: cancel its jobs, then end slurmd,
# slurmctld and (only if start_cluster.sh started it) munged, each by the PID in its pid file, and take
# back the /etc/slurm symlinks that point into DIR.
set -uo pipefail
ETC=${TBCM_SLURM_ETC:-/etc/slurm}
dir=${1:?usage: stop_cluster.sh DIR}
dir=$(cd "$dir" 2>/dev/null && pwd) || exit 0
export SLURM_CONF=$dir/slurm.conf
if [ -f "$dir/slurmctld.pid" ]; then
    scancel --quiet --user=root 2>/dev/null || true  # a private cluster: every job on it is this test's
    for _ in $(seq 50); do [ -z "$(squeue -h -t running,pending,completing 2>/dev/null)" ] && break; sleep 0.2; done
fi
for name in slurmd slurmctld munged; do
    pidfile=$dir/$name.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
done
for name in slurm.conf gres.conf; do
    [ "$(readlink "$ETC/$name" 2>/dev/null)" = "$dir/$name" ] && rm -f "$ETC/$name"
done
exit 0
