"""Training on several processes: `torchrun -m nbseg train` with two gloo processes on the CPU trains one
model, written once; a distributed run resumes; replicas that drift apart are caught."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nbseg.config import Config
from nbseg.data import load_dataset, sample
from nbseg.data.sampler import PatchSampler
from nbseg.train import distributed
from nbseg.model.history import read_history

TINY = ["--patch", "64,64", "--batch-size", "2", "--steps-per-epoch", "3", "--size", "S", "--precision", "fp32",
        "--seed", "0", "--device", "cpu"]


def torchrun(project, *args, timeout=300):
    """`python -m torch.distributed.run --nproc_per_node 2 -m nbseg train` on the bundled 2D sample.

    About 12 s on two idle cores; the timeout is for busy shared machines, where starting three Python
    processes that import torch alone takes minutes.
    """
    src = sample("nuclei2d")
    # --standalone: a free port of its own, so parallel runs on one machine do not collide
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "nbseg",
               "train", "--images", str(src["images"]), "--masks", str(src["masks"]), "--project", str(project),
               *TINY, *args]
    # a session of its own: on a timeout the launcher *and* its workers are killed, none is left behind
    proc = subprocess.Popen(command, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s (a hang?):\n{out}\n{err}")
    assert proc.returncode == 0, out + err
    return out


def test_two_processes_train_one_model_written_once(tmp_path):
    project = tmp_path / "p"
    out = torchrun(project, "--epochs", "2")
    # rank 0 alone speaks; the run got through the per-epoch check that both replicas hold the same weights
    assert out.count("distributed: 2 processes (gloo)") == 1, out
    assert len(re.findall(r"^epoch\s+1 ", out, re.M)) == 1, out
    assert [p.name for p in (project / "models").iterdir()] == ["fold0.pt"]
    payload = torch.load(project / "models" / "fold0.pt", weights_only=True)
    assert payload["meta"]["epoch"] in (0, 1) and payload["state_dict"]
    assert [h["epoch"] for h in read_history(project / "history" / "fold0.csv")] == [0, 1]
    assert not list(project.rglob(".*.tmp")), "no half-written file is left"


@pytest.mark.slow  # two torchrun launches: about 40 s on two busy cores
def test_distributed_run_resumes_under_a_time_budget(tmp_path):
    project = tmp_path / "p"
    torchrun(project, "--epochs", "1")
    first = read_history(project / "history" / "fold0.csv")
    # a time budget: rank 0's clock decides for both processes when to stop (neither waits alone)
    out = torchrun(project, "--minutes", "0.08", "--resume")
    assert "resuming at epoch 2 from the last checkpoint" in out and "stopped (time budget)" in out, out
    after = read_history(project / "history" / "fold0.csv")
    assert len(after) >= 2 and after[0] == first[0]
    assert [h["epoch"] for h in after] == list(range(len(after)))


def test_each_rank_draws_its_own_patches(monkeypatch):
    samples = load_dataset(Config(data=sample("nuclei2d")).data).samples[:4]

    def first_batch(rank: str):
        monkeypatch.setenv("RANK", rank)  # what torchrun sets; read before a process group opens
        rng, generator = np.random.default_rng(7), torch.Generator().manual_seed(7)
        distributed.shard_streams(rng, generator)
        return PatchSampler(samples, (32, 32), seed=rng).batch(4)[0], torch.rand(3, generator=generator)

    (x0, g0), (x0_again, _), (x1, g1) = first_batch("0"), first_batch("0"), first_batch("1")
    plain = PatchSampler(samples, (32, 32), seed=np.random.default_rng(7)).batch(4)[0]
    assert np.array_equal(x0, plain) and np.array_equal(x0, x0_again)  # rank 0: the single-process draws
    assert not np.array_equal(x0, x1) and not torch.equal(g0, g1)


def _replica(rank: int, store: str, results: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    model[1].running_mean.fill_(float(rank))  # each process saw other batches
    said = [f"average {distributed.average(float(rank))}"]  # e.g. the epoch's training loss
    for drift in (False, True):
        if drift and rank == 1:
            with torch.no_grad():
                model[0].weight[0, 0, 0, 0] += 1e-6
        try:
            distributed.agree_on_weights(model)
            said.append(f"agreed {model[1].running_mean.tolist()}")
        except RuntimeError as err:
            said.append(f"raised {err}")
    with open(f"{results}.{rank}", "w") as handle:
        handle.write("\n".join(said))
    dist.destroy_process_group()


def test_replicas_out_of_step_are_caught(tmp_path):
    results = str(tmp_path / "result")
    workers = mp.spawn(_replica, args=(str(tmp_path / "store"), results), nprocs=2, join=False)
    deadline = time.monotonic() + 300  # a broken collective would wait forever
    while not workers.join(timeout=1):
        if time.monotonic() > deadline:
            for process in workers.processes:
                process.kill()
            pytest.fail("the two processes did not finish in 300 s (a hang?)")
    for rank in range(2):
        average, agreed, drifted = open(f"{results}.{rank}").read().split("\n")
        assert average == "average 0.5", average
        assert agreed == "agreed [0.5, 0.5, 0.5, 0.5]", agreed  # running statistics averaged: (0 + 1) / 2
        assert drifted.startswith("raised") and "ranks [1]" in drifted, drifted  # one weight off by 1e-6


def test_single_process_is_untouched():
    assert not distributed.active() and distributed.is_main() and distributed.world_size() == 1
    model = torch.nn.BatchNorm2d(2)
    assert distributed.wrap(model, torch.device("cpu")) is model and distributed.sync_batchnorm(model) is model
    assert distributed.from_main(3.5) == 3.5 == distributed.average(3.5) and distributed.run_on_main(lambda: "x") == "x"
    with distributed.session("cpu") as opened:
        assert opened is None
