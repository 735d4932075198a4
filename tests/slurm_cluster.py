"""A throw-away one-node SLURM cluster (munged + slurmctld + slurmd) in one folder.

Used by the ``slurm`` tests through the ``slurm_cluster`` fixture in conftest.py; it can
also be started by hand to try a sweep against real SLURM::

    python tests/slurm_cluster.py /tmp/onenode      # prints the SLURM_CONF to export; Ctrl+C stops

Everything (munge key and socket, slurm.conf, state, spool, logs, pid files) lives in
the folder, so nothing in /etc changes. The daemons are stopped by the PIDs they wrote,
never by process name. SLURM's default ports (6817/6818) allow one such cluster per
machine at a time. Needs root and the Debian packages ``slurm-wlm munge``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PARTITION = "debug"
REQUIRED_COMMANDS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scontrol")

SLURM_CONF = """\
ClusterName=onenode
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/run/munge.socket.2,cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/slurmd-%n
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
PlugStackConfig={root}/plugstack.conf
KillWait=5
# keep finished jobs in scontrol show job for the whole test session (default 300 s)
MinJobAge=86400
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def why_unavailable() -> str | None:
    """None when a cluster can be started here, else the reason in a few words."""
    missing = [name for name in REQUIRED_COMMANDS if shutil.which(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the one-node cluster runs its daemons as root"
    return None


def _memory_mb() -> int:
    """Most of this machine's memory in MB (slurmd refuses a node that claims more than it has)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.9)
    return 1024


class OneNodeCluster:
    """munged, slurmctld and slurmd for one node named after this host, partition ``debug``.

    ``env`` is os.environ plus SLURM_CONF: pass it to every sbatch/srun/train.py call.
    """

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.cpus = os.cpu_count() or 1

    # -- start / stop --------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> OneNodeCluster:
        root = self.root
        for sub in ["munge/etc", "munge/run", "munge/log", "munge/lib", "state", "log", "run", f"spool/slurmd-{self.host}"]:
            (root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ["munge/etc", "munge/lib", "munge/log"]:
            (root / sub).chmod(0o700)
        key = root / "munge/etc/munge.key"
        if not key.exists():
            self._run(["mungekey", "-c", "-k", str(key)])
        self._run(["munged", "--force", f"--key-file={key}", f"--socket={root}/munge/run/munge.socket.2",
                   f"--pid-file={root}/munge/run/munged.pid", f"--log-file={root}/munge/log/munged.log",
                   f"--seed-file={root}/munge/lib/munged.seed"])
        (root / "plugstack.conf").write_text("")
        self.conf.write_text(SLURM_CONF.format(root=root, host=self.host, cpus=self.cpus,
                                               memory_mb=_memory_mb(), partition=PARTITION))
        self._run(["slurmctld", "-f", str(self.conf)])
        self._run(["slurmd", "-f", str(self.conf)])
        deadline = time.monotonic() + timeout
        while self.node_state() != "idle":
            if time.monotonic() > deadline:
                raise RuntimeError(f"SLURM node not idle after {timeout:.0f} s (state {self.node_state()!r}); "
                                   f"logs in {root / 'log'}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        """Cancel every job, wait until none is left, then stop the three daemons by PID."""
        try:
            if _alive(self.root / "run/slurmctld.pid"):
                self.drain()
        finally:
            pid_files = [*sorted((self.root / "run").glob("slurmd-*.pid")), self.root / "run/slurmctld.pid",
                         self.root / "munge/run/munged.pid"]
            for pid_file in pid_files:
                _terminate(pid_file)
            for pid in self.step_processes():  # only when draining failed
                _signal(pid, signal.SIGKILL)

    def drain(self, timeout: float = 60.0) -> None:
        """scancel all jobs and wait until squeue is empty and no job step process is left."""
        self.sh("scancel", "--full", "--partition", PARTITION, check=False)
        deadline = time.monotonic() + timeout
        while self.queue() or self.step_processes():
            if time.monotonic() > deadline:
                raise RuntimeError(f"SLURM queue not drained after {timeout:.0f} s: jobs {self.queue()}, "
                                   f"step processes {self.step_processes()}")
            time.sleep(0.5)

    # -- queries -------------------------------------------------------------------
    def sh(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def node_state(self) -> str:
        return self.sh("sinfo", "-h", "-o", "%T", check=False).strip()

    def queue(self) -> list[str]:
        """Job ids still in squeue (pending, running, completing)."""
        return self.sh("squeue", "-h", "-o", "%i", check=False).split()

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, RunTime, Restarts, ...); {} once it is gone."""
        out = self.sh("scontrol", "-o", "show", "job", job_id, check=False)
        return dict(item.split("=", 1) for item in out.split() if "=" in item)

    def finished_job(self, job_id: str, *, restarts: int = 0, timeout: float = 120.0) -> dict[str, str]:
        """``job(job_id)`` once it has ended (after ``restarts`` requeues); the result file a
        job writes comes a moment before SLURM marks it COMPLETED."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.job(job_id)
            ended = info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
            if ended and int(info.get("Restarts", 0)) >= restarts:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"SLURM job {job_id} not ended after {timeout:.0f} s: {info}")
            time.sleep(0.2)

    def job_summaries(self) -> list[str]:
        """``<id> <name> <state> restarts=<n>`` for every job slurmctld accepted (from its log)."""
        log_file = self.root / "log" / "slurmctld.log"
        log_text = log_file.read_text(errors="replace") if log_file.exists() else ""
        ids = sorted({int(m) for m in re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", log_text)})
        lines = []
        for job_id in ids:
            info = self.job(str(job_id))
            lines.append(f"job {job_id} {info.get('JobName', '?')} {info.get('JobState', 'gone')} "
                         f"restarts={info.get('Restarts', '?')} tasks={info.get('NumTasks', '?')}")
        return lines

    def step_processes(self) -> list[int]:
        """PIDs of this cluster's slurmstepd and srun processes still alive (not zombies);
        they carry its SLURM_CONF in their environment."""
        marker = f"SLURM_CONF={self.conf}".encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                comm = (proc / "comm").read_text().strip()
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                ours = comm in ("slurmstepd", "srun") and marker in (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if ours and state != "Z":
                pids.append(int(proc.name))
        return pids

    def _run(self, args: list[str]) -> None:
        subprocess.run(args, env=self.env, check=True, capture_output=True, timeout=30)


def _pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


def _alive(pid_file: Path) -> bool:
    pid = _pid(pid_file)
    return pid is not None and _running(pid)


def _terminate(pid_file: Path, timeout: float = 10.0) -> None:
    """SIGTERM the daemon of ``pid_file``, SIGKILL it if it is still there after ``timeout``."""
    pid = _pid(pid_file)
    if pid is None or not _running(pid):
        return
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _running(pid):
        if time.monotonic() > deadline:
            _signal(pid, signal.SIGKILL)
            return
        time.sleep(0.1)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fast-style-slurm")
    reason = why_unavailable()
    if reason:
        sys.exit(f"cannot start a one-node SLURM cluster: {reason}")
    # Ctrl+C or SIGTERM stop it (a background job started by a shell ignores SIGINT otherwise)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cluster = OneNodeCluster(folder).start()
    print(f"one-node SLURM cluster up; in another shell:\n  export SLURM_CONF={cluster.conf}\n"
          f"Ctrl+C (or kill <pid {os.getpid()}>) stops it.", flush=True)
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        cluster.stop()
