"""Which dask cluster to predict on: a local one, SLURM jobs (dask-jobqueue) or a running scheduler."""
from __future__ import annotations

import os
from contextlib import contextmanager

__all__ = ["ClusterError", "connect", "slurm_settings", "worker_memory"]


class ClusterError(ValueError):
    """The cluster could not be reached or a task failed for good; the message names which and why."""


@contextmanager
def connect(cluster: str, *, project=None, timeout: float = 30):
    """A dask.distributed Client for ``cluster``, closed (with any cluster it started) on exit.

    Parameters
    ----------
    cluster : str or dask.distributed.Client
        ``"local"`` or ``"local:N"`` (N worker processes on this machine, default one per CPU core),
        ``"slurm"`` (SLURM jobs as the project's ``cluster`` settings say; needs ``nbseg[cluster]``),
        or a scheduler's address ``"tcp://HOST:PORT"``.
    project : str or Path, optional
        Whose ``config.yaml`` holds the ``cluster`` settings for SLURM.
    timeout : float
        Seconds to wait for a scheduler at an address.

    Raises
    ------
    ClusterError
        For an unknown cluster, a scheduler that does not answer, or dask-jobqueue missing.
    """
    from dask.distributed import Client, LocalCluster

    if isinstance(cluster, Client):  # one the caller keeps (and closes)
        yield cluster
    elif cluster == "local" or cluster.startswith("local:"):
        n = _local_workers(cluster)
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as local, \
                Client(local) as client:
            yield client
    elif cluster.startswith("tcp://"):
        try:
            client = Client(cluster, timeout=timeout)
        except (OSError, TimeoutError) as err:
            raise ClusterError(f"No dask scheduler answered at {cluster} within {timeout:g} s ({err}). Check that "
                               "the scheduler runs (`dask scheduler`) and that this machine can reach that host "
                               "and port, or use --cluster local.") from None
        with client:
            yield client
    elif cluster == "slurm":
        with _slurm_cluster(project) as jobs, Client(jobs) as client:
            yield client
    else:
        raise ClusterError(f"cluster {cluster!r} is not one nbseg knows; give local, local:N (N worker processes), "
                           "slurm, or a scheduler's address tcp://HOST:PORT.")


def worker_memory(cluster, project=None) -> tuple[int | None, str]:
    """The memory limit of one worker of ``cluster``, where it is known before connecting, and whose it is.

    A Client's workers tell theirs (the least of them); ``local:N`` workers get an equal share of this
    machine's memory (as dask's LocalCluster gives them); SLURM workers the ``cluster.memory`` of the
    project's settings. A scheduler's address: ``(None, why)``.
    """
    from dask.distributed import Client

    if isinstance(cluster, Client):
        limits = [w.get("memory_limit") or 0 for w in cluster.scheduler_info().get("workers", {}).values()]
        if limits and min(limits) > 0:
            return int(min(limits)), "each worker of the cluster has"
        return None, "the cluster's workers have no memory limit"
    if cluster == "local" or str(cluster).startswith("local:"):
        from distributed.system import MEMORY_LIMIT

        n = _local_workers(cluster)
        return MEMORY_LIMIT // n, f"each of the {n} local workers has"
    if cluster == "slurm":
        from ..sizes import parse_size

        settings = slurm_settings(project)
        return parse_size(settings["memory"]), "each SLURM job has (cluster.memory in config.yaml)"
    return None, "a running scheduler's workers do not say before connecting"


def _local_workers(cluster: str) -> int:
    if cluster == "local":
        return os.cpu_count() or 1
    text = cluster.split(":", 1)[1]
    if not text.isdigit() or int(text) < 1:
        raise ClusterError(f"cluster {cluster!r}: after 'local:' give the number of worker processes, e.g. local:2.")
    return int(text)


def slurm_settings(project=None) -> dict:
    """dask-jobqueue ``SLURMCluster`` keywords from the project's ``cluster`` settings (defaults
    when it has none): one single-threaded worker per job, holding the job's cores for torch."""
    from ...config import ClusterConfig, Config
    from ...project import ProjectLayout

    settings = ClusterConfig()
    if project is not None and ProjectLayout(project).config.exists():
        settings = Config.load(project).cluster
    extra = [f"--gres=gpu:{settings.gpus}"] if settings.gpus else []
    return {"queue": settings.queue, "account": settings.account, "cores": 1, "processes": 1,
            "job_cpu": settings.cores, "memory": settings.memory, "walltime": settings.walltime,
            "job_extra_directives": extra, "n_workers": settings.jobs,
            "job_script_prologue": [f"export OMP_NUM_THREADS={settings.cores}"]}


def _slurm_cluster(project):
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ClusterError("--cluster slurm needs dask-jobqueue, which is not installed. Install it with: "
                           "pip install 'nbseg[cluster]'") from None
    return SLURMCluster(**slurm_settings(project))
