"""Data-parallel training (gpugrad.distributed), run as users run it: real mpiexec jobs of
two ranks on the CPU, started as subprocesses, beside tests of the parts that need no MPI.

The ranks' side of each job is a `rank_*` function below: mpiexec starts this very file
as a script (`python test_distributed.py SCENARIO OUT`), so the code both sides run is
here to read. Jobs get a hang-catching subprocess timeout; a job that should end by MPI
abort also gets a collective timeout far beyond it, so only the abort can end it in time.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.distributed.ddp import make_buckets, mismatches
from gpugrad.distributed.nccl import id_from_bytes, id_to_bytes
from gpugrad.distributed.sampler import DistributedSampler, shard_bounds

HERE = Path(__file__).resolve()
JOB_TIMEOUT = 240  # seconds before a job counts as hung


# --- the ranks' side ----------------------------------------------------------------------
def _problem(n=53, features=6, classes=3):
    rng = np.random.default_rng(7)
    return (rng.standard_normal((n, features)).astype(np.float32),
            rng.integers(0, classes, n))


def _optimizer(name, params):
    if name == "sgd":
        return gg.optim.SGD(params, lr=0.1, momentum=0.9)
    return gg.optim.Adam(params, lr=1e-2)


def rank_equivalence(out):
    """Train with DDP on this rank's shards; rank 0 also trains one plain model on the
    whole global batches, and writes how far apart they ended. "... compiled": the DDP
    step runs from a gg.compile plan (its averaging one op per bucket)."""
    import gpugrad.distributed as dist
    from gpugrad.nn import MLP
    from gpugrad.nn import functional as F

    ctx = dist.init()
    x, y = _problem()
    report = {}
    for name in ("sgd", "adam", "sgd compiled", "adam compiled"):
        gg.manual_seed(100 + ctx.rank)  # different starts: the broadcast must align them
        model = MLP([6, 16, 3])
        ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.0002)  # several buckets
        opt = dist.DistributedOptimizer(_optimizer(name.split()[0], model.parameters()), ddp)

        def ddp_step(xb, yb, opt=opt, ddp=ddp):
            opt.zero_grad()
            F.cross_entropy(ddp(xb), yb).backward()
            opt.step()

        if name.endswith("compiled"):
            ddp_step = gg.compile(ddp_step)
        reference = MLP([6, 16, 3])
        reference.load_state_dict(model.state_dict())  # rank 0's start, after broadcast
        start = np.concatenate([p.numpy().ravel() for p in model.parameters()])
        ref_opt = _optimizer(name.split()[0], reference.parameters())
        loader = dist.DistributedDataLoader(x, y, batch_size=16, shuffle=True, seed=3)
        ref_loader = gg.data.DataLoader(x, y, batch_size=16, shuffle=True, seed=3)
        seen, steps = [], 0
        for _ in range(3):  # 3 epochs of 4 global batches, the last of 5 samples (3 + 2)
            epoch = []
            for (xb, yb), (rx, ry) in zip(loader, ref_loader, strict=True):
                with warnings.catch_warnings():  # the short last batch traces anew
                    warnings.simplefilter("ignore", gg.CompileWarning)
                    ddp_step(xb, yb)
                ref_opt.zero_grad()
                F.cross_entropy(reference(rx), ry).backward()
                ref_opt.step()
                epoch.extend(int(v) for v in yb.numpy())
                steps += 1
            seen.append(len(epoch))
        mine = np.concatenate([p.numpy().ravel() for p in model.parameters()])
        every = ctx.mpi.allgather_bytes(mine.tobytes())
        plain = np.concatenate([p.numpy().ravel() for p in reference.parameters()])
        report[name] = {
            "steps": steps,
            "ddp_vs_single": float(np.abs(mine - plain).max()),
            "ranks_agree": all(raw == every[0] for raw in every),
            "moved": float(np.abs(plain - start).max()),
            "samples_per_epoch_on_each_rank": [json.loads(r) for r in
                                               ctx.mpi.allgather_bytes(json.dumps(seen)
                                                                       .encode())],
        }
    if ctx.is_main:
        Path(out).write_text(json.dumps(report))


def rank_raises(out):
    """Rank 1 fails in its third step; rank 0 carries on into the gradient average."""
    import gpugrad.distributed as dist
    from gpugrad.nn import MLP
    from gpugrad.nn import functional as F

    ctx = dist.init()
    x, y = _problem()
    ddp = dist.DistributedDataParallel(MLP([6, 8, 3]))
    for step, (xb, yb) in enumerate(dist.DistributedDataLoader(x, y, batch_size=8), 1):
        if ctx.rank == 1 and step == 3:
            raise ValueError("a sample that cannot be parsed")
        ddp.backward(F.cross_entropy(ddp(xb), yb))


def rank_stops(out):
    """Rank 1 gets stuck after the start (it never joins another collective); rank 0
    waits for it in an allreduce. Only rank 0's timeout and MPI abort can end the job
    before the test's own hang limit."""
    import time

    import gpugrad.distributed as dist
    from gpugrad.nn import MLP

    ctx = dist.init()
    ddp = dist.DistributedDataParallel(MLP([6, 8, 3]))
    if ctx.rank == 1:
        time.sleep(2 * JOB_TIMEOUT)
        return
    ddp.backward(ddp(gg.randn(4, 6)).sum())


def rank_mismatch(out):
    """Rank 1 builds a wider hidden layer than rank 0."""
    import gpugrad.distributed as dist
    from gpugrad.nn import MLP

    ctx = dist.init()
    dist.DistributedDataParallel(MLP([6, 8 if ctx.rank == 0 else 9, 3]))


# --- starting jobs ------------------------------------------------------------------------
def mpi_ready():
    try:
        import mpi4py  # noqa: F401

        from gpugrad.distributed import find_mpiexec

        return find_mpiexec()
    except ImportError:
        return None


needs_mpi = pytest.mark.skipif(mpi_ready() is None, reason="mpi4py or mpiexec is missing "
                               "(pip install 'gpugrad[distributed]')")


def job_env(**extra):
    env = dict(os.environ, GPUGRAD_DEVICE="cpu", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.update(extra)
    return env


def mpiexec(n, *argv, **env):
    return subprocess.run([mpi_ready(), "-n", str(n), sys.executable, *argv],
                          capture_output=True, text=True, timeout=JOB_TIMEOUT,
                          env=job_env(**env))


def single_process(*argv):
    """The same command as one plain process (the reference a distributed run meets)."""
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          timeout=JOB_TIMEOUT, env=job_env())


def scenario(name, tmp_path, **env):
    out = tmp_path / f"{name}.json"
    result = mpiexec(2, str(HERE), name, str(out), **env)
    return result, (json.loads(out.read_text()) if out.exists() else None)


# --- two ranks ----------------------------------------------------------------------------
@needs_mpi
def test_two_ranks_take_the_same_steps_as_one_process_on_the_global_batches(tmp_path):
    result, report = scenario("rank_equivalence", tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("sgd", "adam", "sgd compiled", "adam compiled"):
        run = report[name]
        assert run["steps"] == 12
        assert run["ranks_agree"], f"{name}: the ranks' parameters differ"
        assert run["ddp_vs_single"] < 1e-5, name
        assert run["moved"] > 0.05, f"{name}: training barely changed the parameters"
        # each epoch's 53 samples: 16+16+16+5 split 8/8, 8/8, 8/8, 3/2
        assert run["samples_per_epoch_on_each_rank"] == [[27, 27, 27], [26, 26, 26]]


@needs_mpi
def test_a_rank_that_raises_ends_the_job_with_its_rank_and_error(tmp_path):
    result, _ = scenario("rank_raises", tmp_path, GPUGRAD_DIST_TIMEOUT="3600")
    assert result.returncode != 0
    assert "rank 1: ValueError: a sample that cannot be parsed" in result.stderr
    assert "Traceback" in result.stderr  # and where it came from


@needs_mpi
def test_a_rank_that_stops_is_a_timeout_not_a_hang(tmp_path):
    result, _ = scenario("rank_stops", tmp_path, GPUGRAD_DIST_TIMEOUT="2")
    assert result.returncode != 0
    assert "rank 0: CollectiveTimeout: averaging gradients (bucket 1 of 1" in result.stderr
    assert "did not complete within 2 s" in result.stderr


@needs_mpi
def test_models_of_different_shapes_are_refused_at_the_start(tmp_path):
    result, _ = scenario("rank_mismatch", tmp_path)
    assert result.returncode != 0
    assert "ModelMismatchError: the ranks hold different models" in result.stderr
    assert "0.weight is (9, 6) float32 on rank 1 but (8, 6) float32 on rank 0" in \
        result.stderr


# --- the command line ---------------------------------------------------------------------
TRAIN = ["-m", "gpugrad", "train", "--epochs", "2", "--hidden", "32", "--optimizer", "sgd"]


@needs_mpi
def test_gpugrad_train_distributed_matches_a_single_process_run(tmp_path):
    distributed = mpiexec(2, *TRAIN, "--distributed", "--out", str(tmp_path / "two"))
    assert distributed.returncode == 0, distributed.stderr
    single = single_process(*TRAIN, "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr
    # rank 0 alone speaks and writes the run folder
    assert distributed.stderr.count("gpugrad train: digits") == 1
    assert "batch 64 over 2 processes" in distributed.stderr
    assert distributed.stdout.count("test accuracy") == 1
    # the launching shell set the thread variables: the BLAS is left to them, and said so
    assert "BLAS threads left as they are (as OMP_NUM_THREADS says)" in distributed.stderr
    two, one = (gg.load(tmp_path / run / "checkpoint.npz") for run in ("two", "one"))
    for key, value in one["model"].items():
        np.testing.assert_allclose(two["model"][key].numpy(), value.numpy(), atol=1e-5,
                                   err_msg=key)
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text())
               for run in ("two", "one")]
    assert metrics[0]["test_accuracy"] == pytest.approx(metrics[1]["test_accuracy"])
    assert metrics[0]["epochs"][0]["train_loss"] == pytest.approx(
        metrics[1]["epochs"][0]["train_loss"], rel=1e-5)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one").iterdir())


@needs_mpi
def test_a_compiled_distributed_run_takes_the_eager_runs_steps(tmp_path):
    # The plan averages the gradients between its backward and its update (one op per
    # bucket, whose kernel is the allreduce); a short last batch makes a second plan.
    runs = {}
    for name, flags in (("eager", ["--no-compile"]), ("compiled", [])):
        job = mpiexec(2, *TRAIN, "--distributed", *flags, "--out", str(tmp_path / name))
        assert job.returncode == 0, job.stderr
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    eager, compiled = runs["eager"], runs["compiled"]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert [e[key] for e in compiled["epochs"]] == [e[key] for e in eager["epochs"]]
    assert compiled["test_loss"] == eager["test_loss"]


@needs_mpi
def test_gpugrad_train_distributed_ends_the_job_when_one_rank_fails(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # only rank 0 makes the run folder, so only rank 0 fails; rank 1 goes on to wait for it
    result = mpiexec(2, *TRAIN, "--distributed", "--out", str(blocker / "run"),
                     GPUGRAD_DIST_TIMEOUT="3600")
    assert result.returncode != 0
    assert "rank 0: NotADirectoryError" in result.stderr or \
        "rank 0: FileExistsError" in result.stderr, result.stderr
    assert "rank 1:" not in result.stderr


@needs_mpi
def test_bench_distributed_shows_throughput_and_communication_on_1_and_2_ranks(tmp_path):
    result = single_process("-m", "gpugrad", "bench", "--distributed", "--quick", "--json",
                            str(tmp_path / "scaling.json"))
    assert result.returncode == 0, result.stderr
    assert "| sync ms |" in result.stdout and "| samples/s |" in result.stdout
    records = json.loads((tmp_path / "scaling.json").read_text())["records"]
    assert [(r["scaling"], r["ranks"], r["global_batch"]) for r in records] == \
        [("strong", 1, 256), ("strong", 2, 256), ("weak", 2, 512)]
    assert all(0 < r["sync_s"] < r["step_s"] for r in records)


# --- without MPI --------------------------------------------------------------------------
def test_importing_gpugrad_and_its_distributed_package_needs_no_mpi():
    code = ("import sys, gpugrad, gpugrad.distributed; "
            "print('mpi4py' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_without_mpi4py_init_names_the_extra_to_install():
    code = ("import sys; sys.modules['mpi4py'] = None\n"  # as if it were not installed
            "import gpugrad.distributed as dist\n"
            "try:\n    dist.init()\n"
            "except ImportError as exc:\n    print(type(exc).__name__, exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert "MPIUnavailableError" in result.stdout, result.stderr
    assert "pip install 'gpugrad[distributed]'" in result.stdout


@pytest.mark.parametrize("n, batch, world", [(53, 16, 2), (10, 4, 3), (7, 8, 4), (5, 2, 5),
                                             (64, 64, 2), (3, 1, 4)])
def test_the_shards_of_an_epoch_cover_every_sample_once(n, batch, world):
    samplers = [DistributedSampler(n, batch, seed=11, rank=r, world_size=world)
                for r in range(world)]
    for _ in range(2):  # a new order each epoch, the same on every rank
        shards = [list(s) for s in samplers]
        assert len({len(steps) for steps in shards}) == 1  # the same number of steps
        everything = np.concatenate([i for steps in shards for i in steps])
        assert sorted(everything.tolist()) == list(range(n))


def test_the_global_batches_are_those_of_a_single_process_dataloader():
    x, y = _problem(n=21)
    loader = gg.data.DataLoader(x, y, batch_size=8, shuffle=True, seed=5)
    samplers = [DistributedSampler(21, 8, seed=5, rank=r, world_size=2) for r in range(2)]
    for _ in range(2):
        batches = [yb.numpy().tolist() for _, yb in loader]
        shards = zip(*[list(s) for s in samplers], strict=True)
        assert batches == [y[np.concatenate(pieces)].tolist() for pieces in shards]


def test_shares_of_a_batch_differ_by_at_most_one_sample():
    for length in range(0, 12):
        sizes = [b - a for a, b in (shard_bounds(length, r, 4) for r in range(4))]
        assert sum(sizes) == length and max(sizes) - min(sizes) <= 1
        assert sizes == sorted(sizes, reverse=True)  # the larger shares first


def test_buckets_respect_the_cap_and_keep_one_dtype_each():
    params = [gg.zeros((100,), dtype="float32", requires_grad=True) for _ in range(5)] + \
        [gg.zeros((10,), dtype="float64", requires_grad=True)]
    buckets = make_buckets(params, cap_bytes=800)  # two float32 parameters a bucket
    assert [len(b.params) for b in buckets] == [2, 2, 1, 1]
    assert [str(b.flat.dtype) for b in buckets] == ["float32"] * 3 + ["float64"]
    assert make_buckets(params[:1], cap_bytes=1)[0].params == params[:1]  # too big: alone


def test_a_model_mismatch_names_the_rank_and_the_parameter():
    rank0 = [["w", [8, 6], "float32"], ["b", [8], "float32"]]
    assert mismatches([rank0, rank0]) == []
    assert mismatches([rank0, [["w", [9, 6], "float32"], ["b", [8], "float32"]]]) == \
        ["w is (9, 6) float32 on rank 1 but (8, 6) float32 on rank 0"]
    assert mismatches([rank0, rank0[:1]]) == ["rank 1 has no parameter b"]


def test_the_nccl_id_travels_as_bytes_in_both_of_cupys_forms():
    raw = bytes(range(100, 228))  # values above 127: signed chars in the tuple form
    assert id_from_bytes(id_to_bytes(raw)) == raw
    as_chars = tuple(b - 256 if b > 127 else b for b in raw)
    assert id_from_bytes(id_to_bytes(as_chars)) == as_chars


@pytest.mark.gpu
@needs_mpi
def test_ddp_on_the_gpu_matches_one_process(tmp_path):
    # every GPU a rank (NCCL needs one each), at least one
    n = max(1, min(2, gg.cuda.device_count()))
    result = mpiexec(n, str(HERE), "rank_equivalence", str(tmp_path / "gpu.json"),
                     GPUGRAD_DEVICE="cuda")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "gpu.json").read_text())
    for name in ("sgd", "adam"):
        assert report[name]["ranks_agree"] and report[name]["ddp_vs_single"] < 1e-5


if __name__ == "__main__":  # a rank of a job started by the tests above
    globals()[sys.argv[1]](sys.argv[2])


@needs_mpi
def test_more_ranks_than_a_global_batch_has_samples_trains_as_one_process(tmp_path):
    # --batch-size 2 over 3 ranks: rank 2's share of every global batch is empty, so its
    # epoch saw no sample at all; it still joins every step, and the epoch's figures are
    # the other ranks'.
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, x_train=rng.normal(size=(24, 5)), y_train=rng.integers(0, 3, 24),
             x_test=rng.normal(size=(8, 5)), y_test=rng.integers(0, 3, 8))
    tiny = ["-m", "gpugrad", "train", "--data", f"npz:{data}", "--epochs", "1",
            "--hidden", "4", "--optimizer", "sgd", "--batch-size", "2", "--no-compile"]
    three = mpiexec(3, *tiny, "--distributed", "--out", str(tmp_path / "three"))
    assert three.returncode == 0, three.stderr
    single = single_process(*tiny, "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr
    runs = [json.loads((tmp_path / run / "metrics.json").read_text())["epochs"][0]
            for run in ("three", "one")]
    assert runs[0]["train_loss"] == pytest.approx(runs[1]["train_loss"], rel=1e-5)
    three, one = (gg.load(tmp_path / run / "checkpoint.npz") for run in ("three", "one"))
    for key, value in one["model"].items():
        np.testing.assert_allclose(three["model"][key].numpy(), value.numpy(), atol=1e-5)
