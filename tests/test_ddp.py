"""Training on several processes: `torchrun -m nbseg train` with two gloo processes on the CPU trains one
model, written once; a distributed run resumes; replicas that drift apart are caught."""
from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nbseg.config import Config
from nbseg.data import load_dataset, sample
from nbseg.data.sampler import PatchSampler
from nbseg.train import distributed
from nbseg.model.history import read_history
from nbseg.project import ProjectLayout

TINY = ["--patch", "64,64", "--batch-size", "2", "--steps-per-epoch", "3", "--size", "S", "--precision", "fp32",
        "--seed", "0", "--device", "cpu"]


def torchrun_command(project, *args) -> list:
    """`python -m torch.distributed.run --nproc_per_node 2 -m nbseg train` on the bundled 2D sample."""
    src = sample("nuclei2d")
    # --standalone: a free port of its own, so parallel runs on one machine do not collide
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "nbseg",
            "train", "--images", str(src["images"]), "--masks", str(src["masks"]), "--project", str(project),
            *TINY, *args]


def torchrun(project, *args, timeout=300, kill_at=None):
    """Run :func:`torchrun_command`; with ``kill_at`` (a regex), SIGKILL the launcher and its workers as
    soon as a printed line matches it, as a crash or a pre-empted job would.

    About 12 s on two idle cores; the timeout is for busy shared machines, where starting three Python
    processes that import torch alone takes minutes.
    """
    # unbuffered: a line is read as it is printed, so the kill lands where the line says the run is
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(torchrun_command(project, *args), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)],
                     daemon=True).start()
    printed, deadline = [], time.monotonic() + timeout
    try:
        while True:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if line is None:
                break
            printed.append(line)
            if kill_at and re.search(kill_at, line):
                kill_tree(proc.pid)  # no clean-up runs: what is on disk is all a resume gets
                break
    except queue.Empty:
        kill_tree(proc.pid)
        pytest.fail(f"torchrun did not finish in {timeout} s (a hang?):\n{''.join(printed)}")
    finally:
        proc.wait()
    out = "".join(printed)
    assert kill_at or proc.returncode == 0, out
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL the launcher and its workers. torchrun starts each worker in a session of its own, so
    killing the launcher's process group alone would leave them training on."""
    launcher = psutil.Process(pid)
    for process in launcher.children(recursive=True) + [launcher]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)


def _rows(history) -> list:
    return [(h["epoch"], h["train_loss"], h["val_loss"], h["val_dice"], h["lr"]) for h in history]


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """An uninterrupted two-process run of two epochs: its project and what it printed."""
    project = tmp_path_factory.mktemp("ddp") / "p"
    return project, torchrun(project, "--epochs", "2")


@pytest.mark.slow  # a torchrun launch
def test_two_processes_train_one_model_written_once(two_epochs):
    project, out = two_epochs
    # rank 0 alone speaks; the run got through the per-epoch check that both replicas hold the same weights
    assert out.count("distributed: 2 processes (gloo)") == 1, out
    assert len(re.findall(r"^epoch\s+1 ", out, re.M)) == 1, out
    assert [p.name for p in (project / "models").iterdir()] == ["fold0.pt"]
    payload = torch.load(project / "models" / "fold0.pt", weights_only=True)
    assert payload["meta"]["epoch"] in (0, 1) and payload["state_dict"]
    assert [h["epoch"] for h in read_history(project / "history" / "fold0.csv")] == [0, 1]
    assert not list(project.rglob(".*.tmp")), "no half-written file is left"


@pytest.mark.slow  # two more torchrun launches: about 40 s on two busy cores
@pytest.mark.release  # 14 s alone: make test-release (CI too) keeps make test under 10 minutes
def test_killed_distributed_run_resumes_where_it_stopped(two_epochs, tmp_path):
    """SIGKILL after the first epoch, then --resume: the second epoch goes on from the saved weights,
    optimiser and schedule.

    Not number for number: the checkpoint holds rank 0's random streams and rank 1 derives its own from
    them again, so rank 1 draws other patches than in the uninterrupted run. The optimiser's and the
    schedule's step counts are exact; the loss is compared against the gap a fresh start would leave.
    """
    whole = read_history(two_epochs[0] / "history" / "fold0.csv")
    project = tmp_path / "p"
    printed = torchrun(project, "--epochs", "2", kill_at=r"^epoch\s+1 ")
    before = read_history(project / "history" / "fold0.csv")
    assert len(before) == 1, "the run must be killed after its first epoch:\n" + printed
    out = torchrun(project, "--epochs", "2", "--resume")
    assert "resuming at epoch 2 from the last checkpoint" in out, out
    after = read_history(project / "history" / "fold0.csv")
    assert after[:1] == before and _rows(after)[0] == _rows(whole)[0]
    state = torch.load(ProjectLayout(project).checkpoint(0), weights_only=True)
    steps = 2 * int(TINY[TINY.index("--steps-per-epoch") + 1])
    assert {int(s["step"]) for s in state["optimizer"]["state"].values()} == {steps}  # Adam went on counting
    assert state["schedule"]["step_count"] == steps and after[1]["lr"] == whole[1]["lr"]
    # restored weights: the second epoch's loss is the uninterrupted run's but for rank 1's other patches
    # (0.002 apart when written), far from where a run restarted from fresh weights would be
    learnt = whole[0]["train_loss"] - whole[1]["train_loss"]
    assert learnt > 0.05 and abs(after[1]["train_loss"] - whole[1]["train_loss"]) < 0.25 * learnt, (after, whole)


@pytest.mark.slow
def test_time_budget_stops_both_processes(two_epochs, tmp_path):
    """Rank 0's clock decides for both processes when to stop (neither waits alone in an all-reduce); a
    finished run resumed under a time budget trains on from its last epoch."""
    project = tmp_path / "p"
    shutil.copytree(two_epochs[0], project)
    out = torchrun(project, "--minutes", "0.001", "--resume")
    assert "resuming at epoch 3 from the last checkpoint" in out and "stopped (time budget)" in out, out
    after = read_history(project / "history" / "fold0.csv")
    assert [h["epoch"] for h in after] == [0, 1, 2]


@pytest.mark.release  # a denoiser's training and a torchrun launch: about 40 s, over make test's budget
def test_two_processes_denoise_the_training_images_once(tmp_path):
    """`torchrun ... nbseg train --denoise DN`: the first process carries the denoiser and fills the cache of
    denoised copies, the other waits for it (both writing the same files raced), and both train on the copies."""
    from nbseg.denoise import denoise_config, train_denoiser
    from nbseg.denoise.segment import RECORD_FILE

    images = sample("nuclei2d")["images"]
    train_denoiser(denoise_config(images, train={"epochs": 1, "steps_per_epoch": 2, "batch_size": 2,
                                                 "device": "cpu", "val_tiles": 1}), tmp_path / "dn")
    project = tmp_path / "p"
    out = torchrun(project, "--epochs", "1", "--denoise", str(tmp_path / "dn"))
    assert out.count("Training on the images denoised by") == 1, out
    layout = ProjectLayout(project)
    copies = sorted(p.name for p in layout.denoised_images.iterdir() if p.name != RECORD_FILE)
    assert len(copies) == len(list(images.iterdir())), copies
    assert layout.carried_denoiser() is not None and (project / "models" / "fold0.pt").exists()
    assert not list(project.rglob(".*.tmp")), "no half-written file is left"


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


@pytest.mark.slow  # two spawned processes
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
