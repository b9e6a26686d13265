"""gpugrad's benchmark: eager per-op overhead, deep-chain cost and an MLP training step,
beside PyTorch and NumPy.

    python -m gpugrad.bench [--quick] [--max-nodes N] [--json PATH] [--device cpu|cuda]

Three measurements, printed as tables of absolute times and ratios (nothing here asserts
anything about speed; a benchmark reports, a test decides):

1. Eager per-op overhead: chains of ops on tiny tensors, forward + backward, in
   microseconds per op, for gpugrad, PyTorch (where it imports) and hand-written NumPy
   backprop. On tensors of two elements the kernels cost almost nothing, so the
   gpugrad and PyTorch columns are mostly interpreter and bookkeeping overhead, and the
   NumPy column is the floor that the same kernels set.
2. Deep chains: y = y * c over 1,000 ... 1,000,000 nodes from a 0-d float64 leaf, in
   microseconds per node for the forward (recording) and the backward (chain rule).
3. MLP training step: forward, softmax cross-entropy, backward and SGD, per step, for
   784-512-256-10 at batch 256 (the kernels dominate) and 64-64-10 at batch 32 (the
   overhead does), with nn.MLP + optim.SGD, torch.nn + torch.optim.SGD and the lecture's
   backprop in NumPy on the host. One step from the same weights is checked to agree
   first: a benchmark of wrong code is worthless.

In 1 and 2, gpugrad and PyTorch run the very same chain functions (they share the operator
API), so the comparison measures the engines, not two different benchmark programs.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time

import networkx
import numpy as np

import gpugrad as gg

TINY_OPS = 1000  # ops per tiny-tensor chain: long enough to dwarf the timer's resolution
TINY_REPEATS = 9
CHAIN_SIZES = (1_000, 10_000, 100_000, 1_000_000)
CHAIN_REPEATS = 5
CHAIN_NODE_BUDGET = 300_000  # nodes per framework and size: repeats shrink as chains grow
CHAIN_FACTOR = 1.0 + 2.0**-20  # exact in binary, and c**1e6 stays near 2.6 (no overflow)

QUICK_TINY_OPS = 200
QUICK_REPEATS = 3
QUICK_MAX_NODES = 10_000


# --- frameworks ------------------------------------------------------------------------------
class Framework:
    """What differs between gpugrad and PyTorch for these workloads: making a leaf and
    waiting for the device. Everything else is the shared operator API."""

    def __init__(self, name, leaf, sync, device):
        self.name = name
        self.leaf = leaf  # leaf(numpy_array) -> a tensor requiring grad, on the device
        self.sync = sync  # wait for queued device work, so clocks read finished work
        self.device = device


def _no_sync():
    pass


def gpugrad_framework(device):
    def leaf(array):
        return gg.tensor(array, device=device, requires_grad=True)

    sync = _no_sync
    if device.type == "cuda":
        index = device.index or 0

        def sync():
            gg.cuda.synchronize(index)

    return Framework("gpugrad", leaf, sync, str(device))


def torch_framework(want_cuda):
    """PyTorch on the matching device (CUDA when asked for and available), or None with
    the reason when it does not import."""
    try:
        import torch
    except Exception as exc:  # a broken install counts as absent, with the reason shown
        return None, f"not importable ({type(exc).__name__}: {exc})"
    device = "cuda" if want_cuda and torch.cuda.is_available() else "cpu"

    def leaf(array):
        return torch.tensor(array, device=device, requires_grad=True)

    sync = torch.cuda.synchronize if device == "cuda" else _no_sync
    return Framework("pytorch", leaf, sync, device), None


# --- tiny-tensor workloads ---------------------------------------------------------------------
# Each workload has a chain shared by gpugrad and PyTorch, and a hand-written NumPy
# forward + backward doing the same kernels, for the floor under both. A chain returns
# (loss, op_count); the op count includes the final sum, since its backward is timed too.
def _muladd_leaves(rng):
    return [rng.standard_normal(2).astype(np.float32) * s for s in (1.0, 0.5, 0.1)]


def muladd_chain(leaves, n_ops):
    y, w, x = leaves
    steps = max(1, n_ops // 2)
    for _ in range(steps):
        y = y * w + x
    return y.sum(), 2 * steps + 1


def muladd_numpy(arrays, n_ops):
    y, w, x = arrays
    steps = max(1, n_ops // 2)
    inputs = []  # what the backward needs: each step's input y (for dw)
    for _ in range(steps):
        inputs.append(y)
        y = y * w + x
    loss = y.sum()
    g = np.ones_like(y)
    gw = np.zeros_like(w)
    gx = np.zeros_like(x)
    for y_in in reversed(inputs):
        gx = gx + g
        gw = gw + g * y_in
        g = g * w
    return (loss, g, gw, gx), 2 * steps + 1


def _unary_leaves(rng):
    return [rng.standard_normal(2).astype(np.float32)]


def unary_chain(leaves, n_ops):
    # tanh -> exp -> sigmoid keeps values in a small range: no overflow, no denormals.
    (y,) = leaves
    for i in range(n_ops):
        k = i % 3
        y = y.tanh() if k == 0 else y.exp() if k == 1 else y.sigmoid()
    return y.sum(), n_ops + 1


def unary_numpy(arrays, n_ops):
    (y,) = arrays
    outputs = []  # each op's output: all three derivatives are written in terms of it
    for i in range(n_ops):
        k = i % 3
        if k == 0:
            y = np.tanh(y)
        elif k == 1:
            y = np.exp(y)
        else:
            y = 1.0 / (1.0 + np.exp(-y))
        outputs.append(y)
    loss = y.sum()
    g = np.ones_like(y)
    for i in range(n_ops - 1, -1, -1):
        out = outputs[i]
        k = i % 3
        if k == 0:
            g = g * (1.0 - out * out)
        elif k == 1:
            g = g * out
        else:
            g = g * (out * (1.0 - out))
    return (loss, g), n_ops + 1


def _matmul_leaves(rng):
    # An orthogonal W keeps the norm of y fixed however long the chain.
    w, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    return [rng.standard_normal((4, 4)).astype(np.float32), w.astype(np.float32)]


def matmul_chain(leaves, n_ops):
    y, w = leaves
    for _ in range(n_ops):
        y = y @ w
    return y.sum(), n_ops + 1


def matmul_numpy(arrays, n_ops):
    y, w = arrays
    inputs = []
    for _ in range(n_ops):
        inputs.append(y)
        y = y @ w
    loss = y.sum()
    g = np.ones_like(y)
    gw = np.zeros_like(w)
    wt = w.T
    for y_in in reversed(inputs):
        gw = gw + y_in.T @ g
        g = g @ wt
    return (loss, g, gw), n_ops + 1


TINY_WORKLOADS = (
    ("y = y*w + x  (2,)", _muladd_leaves, muladd_chain, muladd_numpy),
    ("tanh/exp/sigmoid  (2,)", _unary_leaves, unary_chain, unary_numpy),
    ("y = y @ W  (4,4)", _matmul_leaves, matmul_chain, matmul_numpy),
)


# --- timing ------------------------------------------------------------------------------------
def _fresh_memory():
    # Collect the previous run's garbage now, so that its cost is not charged to the next
    # timed region. The collector stays enabled inside timed regions: users run with it.
    gc.collect()


def time_autograd_run(fw, make_leaves, chain, n_ops, seed):
    """Seconds for one forward + backward of `chain` in framework `fw`, and its op count.
    Leaves are made fresh, outside the clock, so .grad never accumulates across runs."""
    leaves = [fw.leaf(a) for a in make_leaves(np.random.default_rng(seed))]
    _fresh_memory()
    fw.sync()
    t0 = time.perf_counter()
    loss, ops = chain(leaves, n_ops)
    loss.backward()
    fw.sync()
    elapsed = time.perf_counter() - t0
    del loss, leaves
    return elapsed, ops


def time_numpy_run(make_leaves, numpy_fn, n_ops, seed):
    arrays = make_leaves(np.random.default_rng(seed))
    _fresh_memory()
    t0 = time.perf_counter()
    _, ops = numpy_fn(arrays, n_ops)
    return time.perf_counter() - t0, ops


def tiny_runners(frameworks, make_leaves, chain, numpy_fn, n_ops):
    """{framework: a zero-argument callable timing one run}, NumPy first."""
    runners = {"numpy": lambda: time_numpy_run(make_leaves, numpy_fn, n_ops, 0)}
    for fw in frameworks:
        runners[fw.name] = (lambda fw=fw: time_autograd_run(fw, make_leaves, chain, n_ops, 0))
    return runners


def bench_tiny(frameworks, n_ops, repeats):
    """{workload: {framework: (ops, [seconds per run])}}. Frameworks take turns inside each
    repeat, so a slow drift of the machine (heat, a neighbour) hits them all alike."""
    results = {}
    for name, make_leaves, chain, numpy_fn in TINY_WORKLOADS:
        runners = tiny_runners(frameworks, make_leaves, chain, numpy_fn, n_ops)
        times = {key: [] for key in runners}
        ops = {}
        for run in runners.values():  # warm-up: caches, lazy imports, first-call paths
            run()
        for _ in range(repeats):
            for key, run in runners.items():
                seconds, ops[key] = run()
                times[key].append(seconds)
        results[name] = {key: (ops[key], times[key]) for key in runners}
    return results


def time_chain_run(fw, n):
    """(forward seconds, backward seconds) for y = y * c, n times, from a 0-d float64 leaf.
    The chain is dropped and collected before returning, so memory stays bounded."""
    x = fw.leaf(np.array(1.0, dtype=np.float64))
    _fresh_memory()
    fw.sync()
    t0 = time.perf_counter()
    y = x
    for _ in range(n):
        y = y * CHAIN_FACTOR
    fw.sync()
    t1 = time.perf_counter()
    y.backward()
    fw.sync()
    t2 = time.perf_counter()
    del x, y  # freeing a million nodes takes a while too, but outside the clock
    _fresh_memory()
    return t1 - t0, t2 - t1


def chain_sizes(max_nodes):
    """The standard sizes up to the cap, plus the cap itself when it is not one of them."""
    sizes = [n for n in CHAIN_SIZES if n <= max_nodes]
    if max_nodes not in sizes and max_nodes > 0:
        sizes.append(max_nodes)
    return sizes


def bench_chains(frameworks, sizes, repeats):
    """{n: {framework: [(forward s, backward s), ...]}}. Repeats shrink with size (the
    million-node chain runs once): the big chains are long enough to time in one go."""
    for fw in frameworks:  # warm-up
        time_chain_run(fw, 1000)
    results = {}
    for n in sizes:
        runs = max(1, min(repeats, CHAIN_NODE_BUDGET // n))
        results[n] = {fw.name: [] for fw in frameworks}
        for _ in range(runs):
            for fw in frameworks:
                results[n][fw.name].append(time_chain_run(fw, n))
    return results


# --- MLP training step -------------------------------------------------------------------------
# One step = forward, mean softmax cross-entropy over the batch (integer labels), backward,
# plain SGD. gpugrad and PyTorch run their own nn/optim APIs; NumPy runs the lecture's
# formulas by hand. All three start from the same weights and data, in float32.
# (layer sizes, batch, steps per timed run, with --quick): the small network takes more
# steps, so that a run of its NumPy step (~50 us) still lasts milliseconds.
MLP_CONFIGS = (
    ((784, 512, 256, 10), 256, 30, 5),
    ((64, 64, 10), 32, 200, 25),
)
# On a GPU also a batch big enough that the kernels, not their launches, take the time.
GPU_MLP_CONFIGS = (((784, 512, 256, 10), 4096, 30, 5),)
MLP_LR = 0.01
MLP_REPEATS = 9
MLP_RTOL = 1e-4  # float32 noise: summation order differs between BLAS, oneDNN and cuBLAS
MLP_SEED = 0
MLP_KINK_MARGIN = 1e-4  # float32 rounding of a pre-activation is ~1e-6 here: ample room
MLP_REDRAWS = 100


class Trainer:
    """One framework training one MLP. step() runs forward, loss, backward and the update
    and returns the loss as the framework holds it (reading it would force a device sync
    per step, which a training loop need not pay); loss_value(loss) makes it a float;
    weights() copies the parameters to the host as [(W, b), ...]."""

    def __init__(self, name, device, step, loss_value, weights, sync):
        self.name = name
        self.device = device
        self.step = step
        self.loss_value = loss_value
        self.weights = weights
        self.sync = sync


def mlp_problem(sizes, batch, seed):
    """(weights [(W (out, in), b)], inputs (batch, sizes[0]), labels (batch,) int64), all
    float32, from `seed`. W is Kaiming-uniform as gpugrad's Linear makes it; b is nonzero
    (PyTorch's default bound) so that the check sees the bias in the forward too."""
    rng = np.random.default_rng(seed)
    weights = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        bound = np.sqrt(6.0 / n_in)
        w = rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32)
        b = rng.uniform(-1.0, 1.0, n_out).astype(np.float32) / np.float32(np.sqrt(n_in))
        weights.append((w, b))
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    for _ in range(MLP_REDRAWS):
        near = _near_kink(weights, x)
        if not near.any():
            break
        x[near] = rng.standard_normal((int(near.sum()), sizes[0])).astype(np.float32)
    else:
        raise RuntimeError(f"no inputs clear of the ReLU kinks after {MLP_REDRAWS} draws")
    labels = rng.integers(0, sizes[-1], batch).astype(np.int64)
    return weights, x, labels


def _near_kink(weights, x):
    """The samples with a hidden pre-activation within MLP_KINK_MARGIN of zero. Such a
    unit falls on either side of ReLU's kink depending on the summation order (BLAS,
    oneDNN and cuBLAS differ), which flips its gradient for that sample: correct code
    would then fail the agreement check (seed 0 has such a unit, flipped between NumPy's
    OpenBLAS and PyTorch's oneDNN: 5% of that layer's update). Redrawing those samples (a
    few percent of them) leaves rounding as the only difference."""
    near = np.zeros(x.shape[0], dtype=bool)
    a = x.astype(np.float64)
    for w, b in weights[:-1]:
        z = a @ w.T.astype(np.float64) + b
        near |= (np.abs(z) < MLP_KINK_MARGIN).any(axis=1)
        a = np.maximum(z, 0.0)
    return near


def _state_dict(weights):
    # Sequential numbering of Linear, ReLU, Linear, ...: the Linears are 0, 2, 4, ...
    state = {}
    for i, (w, b) in enumerate(weights):
        state[f"{2 * i}.weight"], state[f"{2 * i}.bias"] = w, b
    return state


def numpy_mlp_trainer(weights, x, labels, lr):
    """Hand-written vectorised backprop: z = a W^T + b, ReLU, softmax; dz = (softmax -
    onehot) / m, dW = dz^T a, db = sum(dz), da = dz W, ReLU mask, W -= lr dW. In-place
    where an array is dead anyway (bias add, ReLU, softmax, mask, update); the matmuls
    allocate, as the obvious code does."""
    params = [(w.copy(), b.copy()) for w, b in weights]
    rows = np.arange(x.shape[0])
    inv_m = np.float32(1.0 / x.shape[0])
    lr = np.float32(lr)
    last = len(params) - 1

    def step():
        activations = [x]  # the input of each layer, for its dW
        a = x
        for i, (w, b) in enumerate(params):
            z = a @ w.T
            z += b
            a = np.maximum(z, 0.0, out=z) if i < last else z
            activations.append(a)
        # Softmax cross-entropy, shifted by the row maximum so exp cannot overflow.
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        total = e.sum(axis=1, keepdims=True)
        loss = (np.log(total[:, 0]) - z[rows, labels]).mean()
        e /= total
        e[rows, labels] -= 1.0  # softmax - onehot, without building the onehot
        dz = e
        dz *= inv_m
        for i in range(last, -1, -1):
            w, b = params[i]
            a_prev = activations[i]
            dw = dz.T @ a_prev
            db = dz.sum(axis=0)
            if i:
                dz = dz @ w  # da, with this layer's weights from before the update
                dz *= a_prev > 0  # ReLU mask: a > 0 exactly where z > 0
            dw *= lr
            w -= dw
            db *= lr
            b -= db
        return loss

    return Trainer("numpy", "host", step, float, lambda: [(w.copy(), b.copy())
                                                         for w, b in params], _no_sync)


def gpugrad_mlp_trainer(weights, x, labels, lr, fw, compiled=False, cuda_graph=False):
    """gpugrad's eager step, or (compiled=True) the same step through gg.compile (with
    cuda_graph=True: replayed as a CUDA graph from its third step on)."""
    import gpugrad.nn.functional as F

    device = gg.device(fw.device)
    sizes = [weights[0][0].shape[1]] + [w.shape[0] for w, _ in weights]
    model = gg.nn.MLP(sizes, dtype="float32", device=device)
    model.load_state_dict(_state_dict(weights))
    opt = gg.optim.SGD(model.parameters(), lr=lr)
    inputs = gg.tensor(x, device=device)
    targets = gg.tensor(labels, device=device)

    def step(inputs, targets):
        loss = F.cross_entropy(model(inputs), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    run = gg.compile(step, cuda_graph=cuda_graph) if compiled else step

    def host_weights():
        return [(m.weight.numpy(), m.bias.numpy()) for m in model
                if isinstance(m, gg.nn.Linear)]

    name = "gpugrad-graph" if cuda_graph else "gpugrad-compiled" if compiled else "gpugrad"
    return Trainer(name, fw.device,
                   lambda: run(inputs, targets), lambda t: t.item(), host_weights, fw.sync)


def torch_mlp_trainer(weights, x, labels, lr, fw):
    import torch

    layers = []
    for i, (w, _) in enumerate(weights):
        if i:
            layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.float32))
    model = torch.nn.Sequential(*layers).to(fw.device)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in _state_dict(weights).items()})
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    inputs = torch.from_numpy(x).to(fw.device)
    targets = torch.from_numpy(labels).to(fw.device)

    def step():
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    def host_weights():
        return [(m.weight.detach().cpu().numpy(), m.bias.detach().cpu().numpy())
                for m in model if isinstance(m, torch.nn.Linear)]

    return Trainer("pytorch", fw.device, step, lambda t: t.item(), host_weights, fw.sync)


def mlp_trainers(frameworks, weights, x, labels):
    """NumPy first (the reference of the check and the denominator of the ratios)."""
    trainers = [numpy_mlp_trainer(weights, x, labels, MLP_LR)]
    for fw in frameworks:
        if fw.name == "gpugrad":
            trainers.append(gpugrad_mlp_trainer(weights, x, labels, MLP_LR, fw))
            trainers.append(gpugrad_mlp_trainer(weights, x, labels, MLP_LR, fw, compiled=True))
            if fw.device.startswith("cuda"):
                trainers.append(gpugrad_mlp_trainer(weights, x, labels, MLP_LR, fw,
                                                    compiled=True, cuda_graph=True))
        else:
            trainers.append(torch_mlp_trainer(weights, x, labels, MLP_LR, fw))
    return trainers


def _max_rel(a, b):
    """max |a - b| over max |b|: relative to the array's scale, since elementwise relative
    errors of entries near zero say nothing."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), np.finfo(np.float64).tiny))


def check_mlp_agreement(trainers, label):
    """One step of every trainer from the same weights: the losses, the updated weights
    and the updates themselves (new - old, which is lr * dW: a wrong gradient can hide in
    the weights' last digits, not here) must match NumPy's. Returns the largest relative
    difference of each kind; raises AssertionError listing every one beyond tolerance."""
    old = trainers[0].weights()
    after = {}
    for t in trainers:
        loss = t.loss_value(t.step())
        after[t.name] = (loss, t.weights())
    ref_loss, ref_weights = after["numpy"]
    worst = {"loss": 0.0, "weights": 0.0, "updates": 0.0}
    problems = []
    for name, (loss, weights) in after.items():
        if name == "numpy":
            continue
        diffs = {"loss": [("loss", abs(loss - ref_loss) / abs(ref_loss), MLP_RTOL)]}
        diffs["weights"], diffs["updates"] = [], []
        for layer, (pair, ref_pair, old_pair) in enumerate(zip(weights, ref_weights, old,
                                                              strict=True)):
            for kind, new, ref, before in zip("Wb", pair, ref_pair, old_pair, strict=True):
                where = f"{kind}{layer + 1}"
                diffs["weights"].append((where, _max_rel(new, ref), MLP_RTOL))
                # The update is a difference of two float32 numbers near |W|: it carries
                # their rounding (an ulp of W) on top of the gradient's own float noise.
                before = before.astype(np.float64)
                step = ref.astype(np.float64) - before
                ulp = float(np.spacing(np.float32(np.max(np.abs(before)))))
                tol = MLP_RTOL + 2 * ulp / max(float(np.max(np.abs(step))), ulp)
                diffs["updates"].append((where, _max_rel(new - before, step), tol))
        for kind, entries in diffs.items():
            for where, diff, tol in entries:
                worst[kind] = max(worst[kind], diff)
                if not diff <= tol:  # NaN fails too
                    problems.append(f"{name} {kind} {where}: {diff:.2e} > {tol:.2e}")
    if problems:
        raise AssertionError(f"MLP {label}: the frameworks disagree with NumPy after one "
                             "step, so timing them would compare different computations: "
                             + "; ".join(problems))
    return worst


def time_trainer(trainer, steps):
    """Seconds per step over `steps` consecutive steps, the device drained at both ends."""
    _fresh_memory()
    trainer.sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    trainer.sync()
    return (time.perf_counter() - t0) / steps


def bench_mlp(frameworks, configs, repeats):
    """{label: {"steps": n, "check": {...}, "times": {framework: (device, [s/step])}}}.
    The check's step doubles as the first warm-up; trainers take turns in each repeat.
    Training goes on across repeats (as it would in a loop): only the first step needs
    the same weights everywhere, and the kernels cost the same whatever the values."""
    results = {}
    for sizes, batch, steps in configs:  # steps per timed run
        label = f"{'-'.join(map(str, sizes))}, batch {batch}"
        trainers = mlp_trainers(frameworks, *mlp_problem(sizes, batch, MLP_SEED))
        check = check_mlp_agreement(trainers, label)
        for t in trainers:  # warm-up: allocator pools, lazy imports, first-call paths
            time_trainer(t, max(1, steps // 4))
        times = {t.name: (t.device, []) for t in trainers}
        # torch.optim's first use imports ~300,000 objects: a full collection between runs
        # would take ~0.15 s each. Frozen, the heap so far (modules, models, data) is left
        # out of every collection, which then costs what the runs' own garbage costs.
        gc.collect()
        gc.freeze()
        try:
            for _ in range(repeats):
                for t in trainers:
                    times[t.name][1].append(time_trainer(t, steps))
        finally:
            gc.unfreeze()
        results[label] = {"steps": steps, "check": check, "times": times}
        del trainers
    return results


# --- compiled plans: per-op overhead, compile scale, peak memory -------------------------------
def _compiled_chain(n_ops):
    """gg.compile of the muladd chain's forward and backward (gradients of all leaves)."""
    def step(y, w, x):
        loss, _ = muladd_chain([y, w, x], n_ops)
        return [loss] + gg.grad(loss, [y, w, x])

    return gg.compile(step)


def bench_compiled_overhead(device, n_ops, repeats, torch_fw=None):
    """{"eager"|"compiled"|"numpy"|"pytorch": (ops, [seconds per run])} for the muladd
    chain (pytorch where torch_fw is given)."""
    arrays = _muladd_leaves(np.random.default_rng(0))
    leaves = [gg.tensor(a, device=device, requires_grad=True) for a in arrays]
    compiled = _compiled_chain(n_ops)
    compiled(*leaves)
    fw = gpugrad_framework(device)

    def timed(fn):
        _fresh_memory()
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    runners = {
        "eager": lambda: time_autograd_run(fw, _muladd_leaves, muladd_chain, n_ops, 0)[0],
        "compiled": lambda: timed(lambda: compiled(*leaves)),
        "numpy": lambda: time_numpy_run(_muladd_leaves, muladd_numpy, n_ops, 0)[0],
    }
    if torch_fw is not None:
        runners["pytorch"] = lambda: time_autograd_run(torch_fw, _muladd_leaves, muladd_chain,
                                                       n_ops, 0)[0]
    times = {k: [] for k in runners}
    for run in runners.values():
        run()
    for _ in range(repeats):
        for key, run in runners.items():
            times[key].append(run())
    ops = 2 * max(1, n_ops // 2) + 1
    return {key: (ops, t) for key, t in times.items()}


def bench_compile_scale(device, sizes):
    """{n nodes: (trace + compile seconds, seconds per run of the plan, eager seconds)}
    for the muladd chain's forward and backward: compile time should grow linearly."""
    from .compiler.compiled import trace_and_compile

    arrays = _muladd_leaves(np.random.default_rng(0))
    leaves = [gg.tensor(a, device=device, requires_grad=True) for a in arrays]
    results = {}
    for n in sizes:
        n_ops = 2 * max(1, n // 6)  # forward ops; the traced graph has about 3x as many

        def step(y, w, x, n_ops=n_ops):
            loss, _ = muladd_chain([y, w, x], n_ops)
            return [loss] + gg.grad(loss, [y, w, x])

        _fresh_memory()
        _, plan = trace_and_compile(step, leaves)
        nodes = len(plan.traced.nodes)
        _fresh_memory()
        t0 = time.perf_counter()
        plan([t._data for t in leaves])
        run = time.perf_counter() - t0
        _fresh_memory()
        t0 = time.perf_counter()
        step(*leaves)
        eager = time.perf_counter() - t0
        results[nodes] = (plan.compile_seconds, run, eager)
        del plan
    return results


def bench_step_memory(device, sizes, batch):
    """Peak bytes allocated on the host during one training step (tracemalloc, which
    NumPy reports to), for the hand-written NumPy step, gpugrad eager and compiled."""
    import tracemalloc

    frameworks = [gpugrad_framework(device)]
    trainers = mlp_trainers(frameworks, *mlp_problem(sizes, batch, MLP_SEED))
    peaks = {}
    for t in trainers:
        if t.device not in ("host", "cpu"):
            continue
        t.step()  # the compiled step traces here; the next one runs the plan
        _fresh_memory()
        tracemalloc.start()
        t.step()
        peaks[t.name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peaks


def report_compiled(overhead, scale, memory, records, label):
    ops = overhead["numpy"][0]
    best = {k: _us(min(t)) / ops for k, (_, t) in overhead.items()}
    for key, value in best.items():
        records.append(_record("compiled muladd", key, "per_op_best", value, "us/op"))
    lines = ["4. Compiled plans (gg.compile)", "",
             f"   per-op overhead, muladd chain of {ops} ops, forward + backward, us per op "
             "(best):",
             _overhead_table(best), "",
             "   scale: trace + compile once, then one run of the plan, per traced node:"]
    rows = []
    for nodes, (compile_s, run_s, eager_s) in scale.items():
        rows.append([f"{nodes:,}", _fmt(_us(compile_s) / nodes), _fmt(_us(run_s) / nodes),
                     _fmt(_us(eager_s) / nodes)])
        records.append(_record(f"compile {nodes} nodes", "gpugrad", "compile_per_node",
                               _us(compile_s) / nodes, "us/node"))
        records.append(_record(f"compile {nodes} nodes", "gpugrad", "plan_run_per_node",
                               _us(run_s) / nodes, "us/node"))
    lines.append(format_table(["nodes", "compile", "plan run", "eager run"], rows))
    if memory:
        base = memory.get("numpy")
        lines += ["", f"   peak host memory of one training step ({label}), tracemalloc:"]
        rows = []
        for name, peak in memory.items():
            rows.append([name, f"{peak / 2**20:.2f} MiB", _fmt_ratio(_ratio(peak, base))])
            records.append(_record(f"memory {label}", name, "step_peak_bytes", peak, "B"))
        lines.append(format_table(["step", "peak", "vs numpy"], rows))
    return "\n".join(lines)


def _overhead_table(best):
    headers = ["eager", "compiled", "numpy", "compiled - numpy", "eager/compiled"]
    row = [_fmt(best["eager"]), _fmt(best["compiled"]), _fmt(best["numpy"]),
           _fmt(best["compiled"] - best["numpy"]),
           _fmt_ratio(_ratio(best["eager"], best["compiled"]))]
    if "pytorch" in best:
        headers += ["pytorch", "compiled/pytorch"]
        row += [_fmt(best["pytorch"]), _fmt_ratio(_ratio(best["compiled"], best["pytorch"]))]
    return format_table(headers, [row], align_left=0)


# --- reporting ---------------------------------------------------------------------------------
def _us(seconds):
    return seconds * 1e6


def _fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def _fmt_ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def format_table(headers, rows, align_left=1):
    """A plain-text table: the first `align_left` columns left-aligned, the rest right."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.ljust(w) if i < align_left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def numpy_blas():
    """NumPy's BLAS and its threads (where threadpoolctl can tell): section 3's large
    step is mostly sgemm, so this sets the NumPy column (and gpugrad's on the CPU)."""
    try:
        name = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # the layout of the build information is not a stable API
        name = "unknown"
    try:
        from threadpoolctl import threadpool_info

        threads = [str(p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"]
    except Exception:  # an optional helper; absent, the count stays unknown
        threads = []
    return f"{name} ({', '.join(threads) or 'unknown'} threads)"


def machine_facts(device, torch_fw, torch_note):
    info = gg.info()
    try:
        import torch

        torch_version = torch.__version__
        torch_threads = str(torch.get_num_threads())
    except Exception:
        torch_version, torch_threads = torch_note or "not importable", "n/a"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        usable = os.cpu_count()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numpy blas": numpy_blas(),
        "networkx": networkx.__version__,
        "torch": torch_version,
        "torch threads": torch_threads,
        "cpu count": f"{os.cpu_count()} ({usable} usable by this process)",
        "gpugrad": info["gpugrad"],
        "gg default device": f"{info['default_device']} (backend {info['backend']})",
        "benchmarked device": f"gpugrad on {device}, pytorch on "
                              f"{torch_fw.device if torch_fw else 'n/a'}, numpy on host",
        "garbage collector": "enabled during timing (as users run); collected between runs",
    }


def report_header(facts):
    width = max(len(k) for k in facts)
    return "\n".join(["gpugrad benchmark", "=" * 17] +
                     [f"{k.ljust(width)} : {v}" for k, v in facts.items()])


def report_tiny(results, records):
    headers = ["workload (shape)", "ops", "gpugrad best", "median", "pytorch best", "median",
               "numpy best", "median", "gg/torch", "gg/numpy"]
    rows = []
    for name, by_fw in results.items():
        best, med = {}, {}
        ops = by_fw["gpugrad"][0]
        for fw in ("gpugrad", "pytorch", "numpy"):
            if fw not in by_fw:
                best[fw] = med[fw] = None
                continue
            fw_ops, times = by_fw[fw]
            best[fw] = _us(min(times)) / fw_ops
            med[fw] = _us(statistics.median(times)) / fw_ops
            records.append(_record(name, fw, "per_op_best", best[fw], "us/op"))
            records.append(_record(name, fw, "per_op_median", med[fw], "us/op"))
        vs_torch = _ratio(best["gpugrad"], best["pytorch"])
        vs_numpy = _ratio(best["gpugrad"], best["numpy"])
        if vs_torch is not None:
            records.append(_record(name, "gpugrad/pytorch", "per_op_best_ratio", vs_torch, "x"))
        records.append(_record(name, "gpugrad/numpy", "per_op_best_ratio", vs_numpy, "x"))
        rows.append([name, ops, _fmt(best["gpugrad"]), _fmt(med["gpugrad"]),
                     _fmt(best["pytorch"]), _fmt(med["pytorch"]), _fmt(best["numpy"]),
                     _fmt(med["numpy"]), _fmt_ratio(vs_torch), _fmt_ratio(vs_numpy)])
    title = ("1. Eager per-op overhead on tiny tensors: forward + backward of the whole "
             "chain / ops, in us per op\n   numpy = hand-written forward and backward with "
             "the same kernels, the floor without\n   any autodiff engine; ratios are of the "
             "best times")
    return title + "\n\n" + format_table(headers, rows)


def report_chains(results, records):
    headers = ["nodes", "framework", "runs", "forward", "backward", "total",
               "total median"]
    rows = []
    for n, by_fw in results.items():
        best = {}
        for fw, runs in by_fw.items():
            fwd = min(r[0] for r in runs) / n
            bwd = min(r[1] for r in runs) / n
            total = min(r[0] + r[1] for r in runs) / n
            median = statistics.median(r[0] + r[1] for r in runs) / n
            best[fw] = (fwd, bwd, total)
            for metric, value in (("forward_per_node", fwd), ("backward_per_node", bwd),
                                  ("total_per_node", total),
                                  ("total_per_node_median", median)):
                records.append(_record(f"chain {n}", fw, metric, _us(value), "us/node"))
            rows.append([f"{n:,}", fw, len(runs), _fmt(_us(fwd)), _fmt(_us(bwd)),
                         _fmt(_us(total)), _fmt(_us(median))])
        if "pytorch" in best:
            ratios = [_ratio(a, b) for a, b in zip(best["gpugrad"], best["pytorch"], strict=True)]
            for metric, value in zip(("forward_ratio", "backward_ratio", "total_ratio"),
                                     ratios, strict=True):
                records.append(_record(f"chain {n}", "gpugrad/pytorch", metric, value, "x"))
            rows.append(["", "gpugrad/pytorch", "", *map(_fmt_ratio, ratios), ""])
        else:
            rows.append(["", "pytorch", "", "n/a", "n/a", "n/a", "n/a"])
    title = ("2. Deep chains y = y * c from a 0-d float64 leaf: us per node (best of runs; "
             "the\n   forward records the graph, the backward runs the chain rule; freeing "
             "the graph is not timed)")
    return title + "\n\n" + format_table(headers, rows, align_left=2)


def _fmt_time(seconds):
    """ms from a millisecond up, else us: the two configurations differ 1000-fold."""
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def report_mlp(results, records):
    headers = ["configuration", "framework", "device", "steps x runs", "best", "median",
               "best/numpy", "median/numpy", "paired/numpy"]
    rows, notes = [], []
    for label, result in results.items():
        times = result["times"]
        best = {fw: min(t) for fw, (_, t) in times.items()}
        median = {fw: statistics.median(t) for fw, (_, t) in times.items()}
        for fw, (device, t) in times.items():
            records.append(_record(f"mlp {label}", fw, "step_best", _us(best[fw]), "us/step"))
            records.append(_record(f"mlp {label}", fw, "step_median", _us(median[fw]),
                                   "us/step"))
            vs_best = _ratio(best[fw], best["numpy"])
            vs_median = _ratio(median[fw], median["numpy"])
            paired = _paired_ratio(t, times["numpy"][1])
            if fw != "numpy":
                for metric, value in (("step_best_ratio", vs_best),
                                      ("step_median_ratio", vs_median),
                                      ("step_paired_ratio", paired)):
                    records.append(_record(f"mlp {label}", f"{fw}/numpy", metric, value, "x"))
            rows.append([label if fw == "numpy" else "", fw, device,
                         f"{result['steps']} x {len(t)}", _fmt_time(best[fw]),
                         _fmt_time(median[fw]), _fmt_ratio(vs_best), _fmt_ratio(vs_median),
                         _fmt_ratio(paired)])
        if "pytorch" not in times:
            rows.append(["", "pytorch", "n/a", "", "n/a", "n/a", "n/a", "n/a", "n/a"])
        check = result["check"]
        for kind, value in check.items():
            records.append(_record(f"mlp {label}", "max_vs_numpy", f"check_{kind}", value,
                                   "relative"))
        notes.append(f"   {label}: " + ", ".join(f"{k} {v:.1e}" for k, v in check.items()))
    title = ("3. MLP training step: forward, mean softmax cross-entropy, backward, SGD (lr "
             f"{MLP_LR}), float32;\n   per step, best and median of runs; numpy = the "
             "lecture's backprop written by hand,\n   on the host; paired = the median of "
             "each round's ratio (a round's runs are back\n   to back: the machine's speed "
             "changing between rounds cancels out)")
    check = ("   checked first: one step from the same weights agrees with numpy (largest "
             f"relative\n   differences below; tolerance {MLP_RTOL:.0e}, updates plus an ulp "
             "of the weights):\n" + "\n".join(notes))
    return title + "\n\n" + format_table(headers, rows, align_left=3) + "\n\n" + check


def _paired_ratio(times, numpy_times):
    """The median over rounds of times[r] / numpy_times[r]: the frameworks take turns in
    each round, so this ratio compares runs made a few milliseconds apart, where a ratio
    of two bests may pair a fast minute of one with a slow minute of the other."""
    return statistics.median(a / b for a, b in zip(times, numpy_times, strict=True))


def _record(workload, framework, metric, value, unit):
    return {"workload": workload, "framework": framework, "metric": metric, "value": value,
            "unit": unit}


# --- the command -------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="gpugrad bench",
        description="gpugrad's eager overhead, deep-chain cost and MLP training step beside "
                    "PyTorch and NumPy.")
    parser.add_argument("--quick", action="store_true",
                        help=f"fewer ops, steps and repeats, chains up to {QUICK_MAX_NODES:,} "
                             "nodes (for tests)")
    parser.add_argument("--max-nodes", type=int, default=None,
                        help=f"the longest chain (default {CHAIN_SIZES[-1]:,}, "
                             f"{QUICK_MAX_NODES:,} with --quick)")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the results as a JSON list of records")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:N (default: gpugrad's default device)")
    parser.add_argument("--distributed", action="store_true",
                        help="instead: data-parallel scaling on 1 and 2 ranks (every GPU "
                             "with --device cuda), communication time apart; needs "
                             "gpugrad[distributed]")
    args = parser.parse_args(argv)
    if args.max_nodes is None:
        args.max_nodes = QUICK_MAX_NODES if args.quick else CHAIN_SIZES[-1]
    if args.max_nodes < 1:
        parser.error("--max-nodes must be at least 1")
    if args.json:  # said now, not after minutes of benchmarks whose records it would lose
        problem = json_path_problem(args.json)
        if problem:
            parser.error(f"--json {args.json}: {problem}")
    return args


def json_path_problem(path):
    """Why `path` cannot take the results file, or None."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"no folder {folder}"
    if os.path.isdir(path):
        return "it is a folder; give a file in it"
    return None


def bench_distributed(args):
    """`--distributed`: the scaling benchmark of gpugrad.distributed.bench, which starts
    its own mpiexec jobs."""
    from .distributed.bench import main as scaling_main

    device = "cuda" if (args.device or "cpu").startswith("cuda") else "cpu"
    return scaling_main(["--device", device] + (["--quick"] if args.quick else [])
                        + (["--json", args.json] if args.json else []))


def main(argv=None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    if args.distributed:
        return bench_distributed(args)
    device = gg.device(args.device)
    _ = device.backend  # an unusable device fails here, with gpugrad's reason, before timing
    torch_fw, torch_note = torch_framework(device.type == "cuda")
    frameworks = [gpugrad_framework(device)] + ([torch_fw] if torch_fw else [])

    facts = machine_facts(device, torch_fw, torch_note)
    records = [_record("machine", "-", key, value, "") for key, value in facts.items()]
    print(report_header(facts), end="\n\n", flush=True)

    n_ops = QUICK_TINY_OPS if args.quick else TINY_OPS
    repeats = QUICK_REPEATS if args.quick else TINY_REPEATS
    tiny = bench_tiny(frameworks, n_ops, repeats)
    print(report_tiny(tiny, records), end="\n\n", flush=True)

    sizes = chain_sizes(args.max_nodes)
    chains = bench_chains(frameworks, sizes, QUICK_REPEATS if args.quick else CHAIN_REPEATS)
    print(report_chains(chains, records), end="\n\n", flush=True)

    on_gpu = GPU_MLP_CONFIGS if device.type == "cuda" else ()
    configs = [(sizes, batch, quick_steps if args.quick else steps)
               for sizes, batch, steps, quick_steps in MLP_CONFIGS + on_gpu]
    mlp = bench_mlp(frameworks, configs, QUICK_REPEATS if args.quick else MLP_REPEATS)
    print(report_mlp(mlp, records), end="\n\n")

    overhead = bench_compiled_overhead(device, n_ops, repeats, torch_fw)
    scale = bench_compile_scale(device, [1000, 10000] if args.quick else
                                [1000, 10000, 100000])
    memory_sizes, memory_batch = MLP_CONFIGS[0][:2]
    memory = bench_step_memory(device, memory_sizes, memory_batch)
    label = f"{'-'.join(map(str, memory_sizes))}, batch {memory_batch}"
    print(report_compiled(overhead, scale, memory, records, label), end="\n\n")

    wall = time.perf_counter() - started
    records.append(_record("run", "-", "wall_time", wall, "s"))
    print(f"total wall time: {wall:.1f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(records, f, indent=1)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
