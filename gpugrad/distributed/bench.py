"""The scaling benchmark of data-parallel training: an MLP training step on 1, 2, ... ranks,
with the time spent averaging gradients shown apart from the rest.

    python -m gpugrad.distributed.bench [--ranks 1 2] [--quick] [--device cpu|cuda]
    gpugrad bench --distributed [--quick] [--device ...] [--json PATH]

This driver starts one mpiexec job per configuration (`--worker` is what the ranks run)
and prints a table. The model is the MLP 784-512-256-10 of `gpugrad bench`, trained with
SGD on random data through DistributedDataParallel:

- strong scaling: a global batch of 256 split over the ranks (the same work, shared);
- weak scaling: 256 samples per rank (more work, same time per step if scaling is ideal).

On the CPU each rank gets one BLAS thread, so n ranks use n cores and the 1-rank row is
the one-core baseline. "sync" is the time inside sync_gradients (packing, the allreduce,
unpacking), which includes waiting for the slowest rank; the gradients are 2.1 MB a step.
Each row is the best of 7 runs of 40 steps. Nothing here asserts anything about speed.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from ..blas_threads import THREAD_VARIABLES

SIZES = (784, 512, 256, 10)
BATCH = 256
STEPS, REPEATS, WARMUP = 40, 7, 3
QUICK_STEPS, QUICK_REPEATS = 5, 2


# --- what each rank runs ---------------------------------------------------------------------
def run_worker(args):
    import gpugrad as gg
    import gpugrad.distributed as dist
    from gpugrad.nn import MLP
    from gpugrad.nn import functional as F

    ctx = dist.init(device=args.device)
    gg.manual_seed(0)
    model = MLP(list(SIZES), device=ctx.device)
    ddp = dist.DistributedDataParallel(model)
    opt = gg.optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(ctx.rank)
    x = gg.tensor(rng.standard_normal((args.batch, SIZES[0])).astype(np.float32),
                  device=ctx.device)
    y = gg.tensor(rng.integers(0, SIZES[-1], args.batch), device=ctx.device)

    def step():
        opt.zero_grad()
        ddp.backward(F.cross_entropy(ddp(x), y))
        opt.step()

    def synchronize():
        if ctx.device.type == "cuda":
            gg.cuda.synchronize(ctx.device.index)

    for _ in range(WARMUP):
        step()
    runs = []
    for _ in range(args.repeats):
        ctx.mpi.barrier()  # every rank starts the timed steps together
        synchronize()
        ddp.comm_seconds, ddp.syncs = 0.0, 0
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        synchronize()
        runs.append([(time.perf_counter() - started) / args.steps,
                     ddp.comm_seconds / ddp.syncs])
    every = [json.loads(raw) for raw in ctx.mpi.allgather_bytes(json.dumps(runs).encode())]
    if ctx.is_main:
        grad_bytes = sum(p._data.nbytes for p in model.parameters())
        record = summarise(every, args.batch, ctx.world_size, grad_bytes, str(ctx.device),
                           ddp.comm.name)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(record, f)


def summarise(every, batch, ranks, grad_bytes, device, comm):
    """One record from every rank's [(step seconds, sync seconds) per repeat]: per repeat
    the slowest rank's step (the job moves at its pace) and the ranks' mean sync time;
    then the best repeat (on a shared machine the others measure its neighbours too)."""
    per_repeat = [(max(rank[r][0] for rank in every),
                   statistics.fmean(rank[r][1] for rank in every))
                  for r in range(len(every[0]))]
    step, sync = min(per_repeat)
    return {"ranks": ranks, "batch_per_rank": batch, "global_batch": batch * ranks,
            "step_s": step, "sync_s": sync, "samples_per_s": batch * ranks / step,
            "gradient_bytes": grad_bytes, "device": device, "comm": comm}


# --- the driver --------------------------------------------------------------------------------
def configurations(ranks):
    """(label, ranks, batch per rank): strong and weak scaling share the 1-rank row."""
    rows = [("strong", n, max(1, BATCH // n)) for n in ranks]
    rows += [("weak", n, BATCH) for n in ranks if n > 1]
    return rows


def launch(n, batch, args):
    """Run one configuration on n ranks; its record."""
    from .launch import mpiexec_command

    env = dict(os.environ)
    if args.device != "cuda":
        env.update({name: "1" for name in THREAD_VARIABLES})  # one core per rank
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "record.json")
        command = mpiexec_command(n, [sys.executable, "-m", "gpugrad.distributed.bench",
                                      "--worker", "--batch", str(batch), "--steps",
                                      str(args.steps), "--repeats", str(args.repeats),
                                      "--device", args.device, "--out", out])
        result = subprocess.run(command, env=env, capture_output=True, text=True,
                                timeout=args.timeout)
        if result.returncode != 0:
            raise RuntimeError(f"the {n}-rank benchmark failed (exit {result.returncode}):"
                               f"\n{result.stderr.strip()[-2000:]}")
        with open(out, encoding="utf-8") as f:
            return json.load(f)


def machine_facts(args):
    from mpi4py import MPI

    return {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__,
            "mpi": " ".join(MPI.Get_library_version().splitlines()[0].split()),
            "device": args.device,
            "threads": "1 BLAS thread per rank" if args.device != "cuda" else "one GPU per rank"}


def format_report(facts, rows):
    lines = [f"data-parallel training step: MLP {'-'.join(map(str, SIZES))}, SGD, float32, "
             f"on {facts['device']} ({facts['threads']}); {facts['date']}, {facts['cpus']} "
             f"CPUs, {facts['mpi']}, Python {facts['python']}, NumPy {facts['numpy']}", "",
             "| scaling | ranks | batch/rank | global batch | step ms | sync ms | sync share "
             "| samples/s | speedup |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = next(r["samples_per_s"] for label, r in rows if r["ranks"] == 1)
    for label, r in rows:
        lines.append(f"| {label} | {r['ranks']} | {r['batch_per_rank']} | {r['global_batch']} "
                     f"| {r['step_s'] * 1e3:.2f} | {r['sync_s'] * 1e3:.2f} "
                     f"| {r['sync_s'] / r['step_s']:.0%} | {r['samples_per_s']:,.0f} "
                     f"| {r['samples_per_s'] / base:.2f}x |")
    comm = rows[-1][1]["comm"]
    lines += ["", f"gradients averaged over {comm}: {rows[0][1]['gradient_bytes'] / 1e6:.1f} MB "
              "per step; sync includes waiting for the slowest rank"]
    return "\n".join(lines)


def default_ranks(device):
    if device == "cuda":
        import gpugrad as gg

        return sorted({1, max(1, gg.cuda.device_count())})
    return [1, 2]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m gpugrad.distributed.bench",
        description="Throughput of data-parallel training on 1, 2, ... ranks, with the "
                    "gradient averaging time apart.")
    parser.add_argument("--ranks", type=int, nargs="+", default=None,
                        help="rank counts to run (default: 1 2 on the CPU; 1 and every GPU "
                             "on CUDA)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer steps (for tests)")
    parser.add_argument("--json", metavar="PATH", help="also write the records as JSON")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds one configuration may take")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=BATCH, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.steps = args.steps or (QUICK_STEPS if args.quick else STEPS)
    args.repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)
    if args.ranks is not None and min(args.ranks) < 1:
        parser.error("--ranks must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    ranks = sorted(set(args.ranks or default_ranks(args.device)) | {1})
    facts = machine_facts(args)
    rows = []
    for label, n, batch in configurations(ranks):
        rows.append((label, launch(n, batch, args)))
        print(f"  {label} scaling, {n} rank(s): {rows[-1][1]['step_s'] * 1e3:.2f} ms a step",
              file=sys.stderr, flush=True)
    print(format_report(facts, rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": facts, "records": [dict(r, scaling=label)
                                                     for label, r in rows]}, f, indent=1)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
