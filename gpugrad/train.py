"""`gpugrad train` and `gpugrad evaluate`: train an MLP classifier end to end, and check a
saved one.

A run writes into its folder: metrics.json and metrics.csv (one row per epoch),
learning_curve.png and confusion_matrix.png (with matplotlib), checkpoint.npz (the model,
the optimiser, the data's standardisation and the run's settings; rewritten atomically
after every epoch, so an interrupted run keeps its last good one), and graph.dot and
graph.html (the graph a training step records: forward and loss; for Graphviz and
any browser).

With --distributed, each process that mpiexec starts trains on its share of every global
batch and the gradients are averaged across them (gpugrad.distributed): the same steps as
one process takes with the same seed and --batch-size, which stays the global batch. Rank
0 alone prints and writes the run folder.
"""

import csv
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np

import gpugrad as gg

from . import blas_threads, metrics
from .data import DataLoader, DatasetError, Standardizer, train_val_split
from .nn import MLP
from .nn import functional as F

DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}


@dataclass
class Config:
    data: str = "digits"
    hidden: list = field(default_factory=lambda: [256, 128])
    activation: str = "relu"
    epochs: int = 20
    batch_size: int = 64
    lr: float = None
    optimizer: str = "adam"
    device: str = None
    seed: int = 0
    out: str = None
    val_fraction: float = 0.1
    test_fraction: float = 0.2  # digits only: MNIST and npz bring their own test set
    distributed: bool = False  # one rank of an mpiexec job (see gpugrad.distributed)
    compile: bool = True  # run the training step from a gg.compile plan (else eagerly)
    cuda_graph: bool = False  # ... replayed as a CUDA graph (implies compile; CUDA only)
    overwrite: bool = False  # write into an --out folder that holds a run already
    blas_threads: int = None  # on a CPU (None: chosen by gpugrad.blas_threads)

    def check(self):
        if self.optimizer not in DEFAULT_LR:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; use sgd, adam or adamw")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch size must be at least 1")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive, got {self.hidden}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        if self.lr <= 0:
            raise ValueError(f"the learning rate must be positive, got {self.lr}")
        if self.blas_threads is not None and self.blas_threads < 1:
            raise ValueError(f"BLAS threads must be at least 1, got {self.blas_threads}")
        if self.cuda_graph and not self.compile:
            raise ValueError("--cuda-graph replays the compiled step: it cannot go with "
                             "--no-compile")
        return self


# --- data -----------------------------------------------------------------------------------
def load_data(spec, seed, test_fraction):
    """((x_train, y_train), (x_test, y_test)) for "digits", "mnist:PATH" or "npz:PATH"."""
    kind, _, path = spec.partition(":")
    if kind == "digits" and not path:
        x, y = gg.data.load_digits()
        return train_val_split(x, y, val_fraction=test_fraction, seed=seed)
    if kind == "mnist" and path:
        return gg.data.load_mnist(path)
    if kind == "npz" and path:
        return gg.data.load_npz(path)
    raise DatasetError(f"unknown data {spec!r}: use digits, mnist:PATH or npz:PATH")


def prepare(config):
    """Train/validation/test arrays, standardised with the training statistics."""
    (x_train, y_train), (x_test, y_test) = load_data(config.data, config.seed,
                                                     config.test_fraction)
    (x_train, y_train), (x_val, y_val) = train_val_split(
        x_train, y_train, val_fraction=config.val_fraction, seed=config.seed + 1)
    scaler = Standardizer().fit(x_train)
    return scaler, {"train": (scaler.transform(x_train), y_train),
                    "val": (scaler.transform(x_val), y_val),
                    "test": (scaler.transform(x_test), y_test)}


def num_classes(splits):
    return int(max(y.max() for _, y in splits.values())) + 1


# --- model and optimiser -----------------------------------------------------------------------
def build_model(n_in, hidden, n_out, activation, device):
    return MLP([n_in, *hidden, n_out], activation=activation, device=device)


def build_optimizer(name, params, lr):
    if name == "sgd":
        return gg.optim.SGD(params, lr=lr, momentum=0.9)
    return {"adam": gg.optim.Adam, "adamw": gg.optim.AdamW}[name](params, lr=lr)


# --- one epoch ----------------------------------------------------------------------------------
class Progress:
    """A one-line progress bar per epoch on a terminal; one summary line elsewhere."""

    def __init__(self, total, label, stream=sys.stderr):
        self.total, self.label, self.stream = total, label, stream
        self.live = stream.isatty()
        self.start = time.perf_counter()

    def update(self, done, loss, acc, samples):
        if not self.live:
            return
        width = 24
        filled = int(width * done / self.total)
        rate = samples / max(time.perf_counter() - self.start, 1e-9)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{done}/{self.total}  loss {loss:.4f}  acc {acc:6.2%}  "
                          f"{rate:,.0f} samples/s")
        self.stream.flush()

    def close(self, summary):
        # On a terminal, spaces wipe what is left of the longer progress bar.
        self.stream.write(("\r" if self.live else "") + f"{self.label} {summary}" +
                          (" " * 8 if self.live else "") + "\n")
        self.stream.flush()


def training_step(model, optimizer):
    """One step on a batch: (mean loss, number of correct predictions), as tensors, so
    that the step can run compiled (values are read after it, on the host)."""
    def step(xb, yb):
        optimizer.zero_grad()
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        optimizer.step()
        return loss, (logits.argmax(axis=1) == yb).sum()

    return step


def graph_wanted(config, device, stream):
    """Whether to replay the compiled step as a CUDA graph: asked for, and on CUDA."""
    if config.cuda_graph and device.type != "cuda":
        print(f"--cuda-graph: the step runs on {device}, not a CUDA device: compiled, "
              "without a graph", file=stream)
        return False
    return config.cuda_graph


def compiled_step(step, cuda_graph=False):
    """gg.compile(step), quiet about the one extra trace a short last batch makes (and
    only that: a CUDA graph that could not be captured says why)."""
    compiled = gg.compile(step, cuda_graph=cuda_graph)

    def run(xb, yb):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*tracing anew", gg.CompileWarning)
            return compiled(xb, yb)

    return run


def train_epoch(model, optimizer, loader, progress, step=None):
    model.train()
    step = step or training_step(model, optimizer)
    total_loss = correct = seen = 0
    for i, (xb, yb) in enumerate(loader, 1):
        if yb.shape[0] == 0:  # distributed: this rank's share of a short last batch is
            optimizer.zero_grad()  # empty, but it still joins the step's gradient average
            optimizer.step()
            continue
        loss, hits = step(xb, yb)
        n = yb.shape[0]
        total_loss += loss.item() * n
        correct += int(hits.item())
        seen += n
        progress.update(i, total_loss / seen, correct / seen, seen)
    if not seen:  # distributed, more ranks than a global batch has samples: this rank's
        return 0.0, 0.0, 0  # shares were all empty, and the epoch's totals count it as 0
    return total_loss / seen, correct / seen, seen


def evaluate(model, x, y, device, batch_size=1024):
    """(mean loss, accuracy, predicted labels) of `model` on arrays x, y."""
    model.eval()
    total, predictions = 0.0, []
    with gg.no_grad():
        for xb, yb in DataLoader(x, y, batch_size=batch_size, device=device):
            logits = model(xb)
            total += F.cross_entropy(logits, yb, reduction="sum").item()
            predictions.append(logits.argmax(axis=1).numpy())
    predicted = np.concatenate(predictions)
    return total / len(y), metrics.accuracy(predicted, y), predicted


# --- the run --------------------------------------------------------------------------------------
def run(config, stream=None, results=None):
    """Train as `config` says; returns the results dict also written to metrics.json.
    Progress goes to `stream` (default: sys.stderr at the call), the outcome (test
    accuracy, run folder) to `results` (default: sys.stdout), so that `gpugrad train >
    log` keeps the outcome and still shows the progress. NumPy's BLAS threads are as
    before afterwards (see gpugrad.blas_threads)."""
    with ExitStack() as scope:
        return _run(config, stream, results, scope)


def _run(config, stream, results, scope):
    stream = sys.stderr if stream is None else stream
    results = sys.stdout if results is None else results
    config.check()
    gg.manual_seed(config.seed)
    team = start_distributed(config.device) if config.distributed else None
    device = usable(team.device if team else gg.device(config.device))
    out = config.out or new_run_folder()
    if team and not team.is_main:  # only rank 0 prints and writes files
        out, stream, results = None, team.output(stream), team.output(results)
    else:
        refuse_to_overwrite(out, config.overwrite)  # before the data's loading and checks
    scaler, splits = prepare(config)  # bad data fails here, before any folder is made
    if out:
        os.makedirs(out, exist_ok=True)
    n_classes = num_classes(splits)
    x_train, y_train = splits["train"]
    model = build_model(x_train.shape[1], config.hidden, n_classes, config.activation, device)
    optimizer = build_optimizer(config.optimizer, model.parameters(), config.lr)
    make_loader = team.loader if team else partial(DataLoader, shuffle=True)
    loader = make_loader(x_train, y_train, batch_size=config.batch_size, seed=config.seed,
                         device=device)
    if team:  # same start on every rank; gradients averaged over the ranks in step()
        model, optimizer = team.wrap(model, optimizer)
    threads, why = threads_of(config, device, team, [x_train.shape[1], *config.hidden,
                                                       n_classes])
    scope.enter_context(blas_threads.limited(threads))
    print(f"gpugrad train: {config.data} ({len(y_train)} train, {len(splits['val'][1])} val, "
          f"{len(splits['test'][1])} test, {n_classes} classes) on {device}; MLP "
          f"{[x_train.shape[1], *config.hidden, n_classes]}, {config.optimizer} "
          f"lr {config.lr}, batch {config.batch_size}"
          + (f" over {team.world_size} process{'es' if team.world_size > 1 else ''}"
             if team else "")
          + threads_note(threads, why, device), file=stream)
    write_step_graph(model, loader, out)
    step = training_step(model, optimizer)
    if config.compile:
        step = compiled_step(step, graph_wanted(config, device, stream))
    history, interrupted, saved_epoch = [], False, 0
    try:
        for epoch in range(1, config.epochs + 1):
            progress = Progress(len(loader), f"epoch {epoch:>3}/{config.epochs}", stream)
            start = time.perf_counter()
            loss, acc, seen = train_epoch(model, optimizer, loader, progress, step)
            if team:  # the whole epoch's figures, not this rank's share
                loss, acc, seen = team.epoch_totals(loss, acc, seen)
            seconds = time.perf_counter() - start
            val_loss, val_acc, _ = evaluate(model, *splits["val"], device)
            history.append({"epoch": epoch, "train_loss": loss, "train_accuracy": acc,
                            "val_loss": val_loss, "val_accuracy": val_acc,
                            "seconds": seconds, "samples_per_second": seen / seconds})
            progress.close(f"loss {loss:.4f}  acc {acc:6.2%}  val loss {val_loss:.4f}  "
                           f"val acc {val_acc:6.2%}  {seen / seconds:,.0f} samples/s")
            with interrupts_deferred():  # the checkpoint and the record of it, together
                if out:
                    save_checkpoint(out, model, optimizer, scaler, config, n_classes, epoch)
                saved_epoch = epoch
    except KeyboardInterrupt:
        interrupted = True
        # The run's results are those of the last checkpoint: an epoch cut short, or one
        # whose checkpoint was still being written, does not count.
        history = history[:saved_epoch]
        print("\ninterrupted: " + (f"keeping the checkpoint of epoch {saved_epoch}"
                                    if saved_epoch else "no epoch finished, nothing kept"),
              file=stream)
        if saved_epoch and out:  # the model may be mid-step: evaluate the last saved one
            load_into(model, gg.load(os.path.join(out, "checkpoint.npz"), device=device))
    return finish(model, splits, history, config, out, device, n_classes, interrupted, stream,
                  results)


def usable(device):
    """The device, once its backend is known to work: an unusable one (--device cuda
    without a GPU) fails here, before any run folder is made."""
    device.backend  # noqa: B018  (made on first use; raises DeviceError if it cannot be)
    return device


def threads_of(config, device, team, sizes):
    """(threads or None, why) of NumPy's BLAS in this run: see gpugrad.blas_threads."""
    world = team.world_size if team else 1
    product = blas_threads.largest_product(-(-config.batch_size // world), sizes)
    return blas_threads.chosen_threads(config.blas_threads, device.type, product,
                                       team.context.local_size if team else 1)


def threads_note(threads, why, device):
    """What the first line of a run says of the BLAS's threads: on a CPU, what was chosen
    and why, also where the BLAS was left as it was (a thread variable, large matrices)."""
    if threads:
        return f"; BLAS on {threads} thread{'s' if threads > 1 else ''} ({why})"
    return f"; BLAS threads left as they are ({why})" if device.type == "cpu" else ""


RUN_FILES = ("checkpoint.npz", "metrics.json")


def new_run_folder():
    """runs/<date-time>, with -2, -3, ... after it where two runs start in one second."""
    base = os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    out, n = base, 1
    while os.path.exists(out):
        n += 1
        out = f"{base}-{n}"
    return out


def refuse_to_overwrite(out, overwrite):
    """A run folder that holds a run already is not written over unless asked: its
    checkpoint and metrics would be lost."""
    if os.path.exists(out) and not os.path.isdir(out):  # (else: makedirs' "File exists")
        raise ValueError(f"--out {out} is a file, not a folder: give a folder for the run")
    found = [name for name in RUN_FILES if os.path.exists(os.path.join(out, name))]
    if found and not overwrite:
        raise ValueError(f"{out} holds a run already ({', '.join(found)}): choose another "
                         "--out, or pass --overwrite to replace it")


def finish(model, splits, history, config, out, device, n_classes, interrupted, stream,
           outcome):
    results = {"config": asdict(config), "epochs": history, "interrupted": interrupted}
    if history:
        test_loss, test_acc, predicted = evaluate(model, *splits["test"], device)
        confusion = metrics.confusion_matrix(splits["test"][1], predicted, n_classes)
        precision, recall = metrics.precision_recall(confusion)
        results.update(test_loss=test_loss, test_accuracy=test_acc,
                       confusion_matrix=confusion.tolist(), precision=precision.tolist(),
                       recall=recall.tolist())
        print(f"test accuracy {test_acc:.2%} (loss {test_loss:.4f}) on "
              f"{len(predicted)} samples", file=outcome)
        if out:
            write_plots(history, confusion, out, stream)
    if out and (history or not interrupted):  # a run stopped before its first epoch
        write_metrics(results, out)           # has no results: the folder stays free
    print(f"run folder: {out}", file=outcome)
    return results


@contextmanager
def interrupts_deferred():
    """Ctrl-C inside the block takes effect at its end. A checkpoint written just before
    an interrupt must also be the epoch the run reports: otherwise the file could hold
    epoch n+1 while the run kept n epochs of metrics. (Signals reach only the main
    thread's handler: elsewhere the block runs as it is.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            if callable(previous):
                previous(signal.SIGINT, pending[0])
            else:  # SIG_DFL or SIG_IGN set outside Python: what Ctrl-C would have done
                signal.raise_signal(signal.SIGINT)


# --- files ----------------------------------------------------------------------------------------
def save_checkpoint(out, model, optimizer, scaler, config, n_classes, epoch):
    gg.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scaler": scaler.state_dict(), "config": asdict(config),
             "num_classes": n_classes, "epoch": epoch},
            os.path.join(out, "checkpoint.npz"))


def start_distributed(device):
    """This process's place in an mpiexec job (gpugrad.distributed, which needs mpi4py)."""
    from .distributed.trainer import DistributedRun

    return DistributedRun(device)


def load_into(model, checkpoint):
    model.load_state_dict(checkpoint["model"])


def step_graph(model, x, labels):
    """The graph of a training step's forward pass and loss. Traced from a function of
    (x, labels), not read off the loss: drawings then call the batch and the labels by
    those names, where a loss's graph would show two leaves both called "input"."""
    def forward_and_loss(x, labels):
        return F.cross_entropy(model(x), labels)

    return gg.trace(forward_and_loss, x, labels)


def write_step_graph(model, loader, out):
    """The graph of one training step (forward, loss), as Graphviz DOT and as the
    self-contained HTML viewer."""
    xb, yb = next(iter(loader))
    if out is None:  # a distributed run's other ranks: the same draw from the loader's
        return       # generator (the ranks shuffle alike), nothing written
    graph = step_graph(model, xb, yb)
    with open(os.path.join(out, "graph.dot"), "w") as f:
        f.write(graph.to_dot(rankdir="LR"))
    graph.to_html(os.path.join(out, "graph.html"), title="gpugrad: one training step")
    model.zero_grad()


def write_metrics(results, out):
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(strict_json(results), f, indent=2, allow_nan=False)
    if results["epochs"]:
        with open(os.path.join(out, "metrics.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(results["epochs"][0]))
            writer.writeheader()
            writer.writerows(results["epochs"])


def strict_json(value):
    """`value` (the results: dicts and lists a few levels deep) with every NaN and
    infinity as None: Python's json writes them as NaN and Infinity, which strict JSON
    readers (a browser's JSON.parse, jq) refuse: a diverged run's loss, the precision of
    a class never predicted. The CSV keeps them as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_plots(history, confusion, out, stream):
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib is not installed: no PNG plots (pip install 'gpugrad[plot]')",
              file=stream)
        return
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train")
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(os.path.join(out, "learning_curve.png"), dpi=100)
    plt.close(fig)

    n = confusion.shape[0]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.6 + 0.55 * n))
    ax.imshow(confusion, cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title="test confusion matrix",
           xticks=range(n), yticks=range(n))
    fig.tight_layout()
    fig.savefig(os.path.join(out, "confusion_matrix.png"), dpi=100)
    plt.close(fig)


# --- evaluate ------------------------------------------------------------------------------------
def evaluate_checkpoint(path, data=None, device=None, stream=sys.stdout):
    """Reload a run's checkpoint and report its test accuracy (the same split, the same
    standardisation as in training). `path` may be the run folder."""
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.npz")
    checkpoint = gg.load(path, device=device)
    missing = {"config", "model", "scaler", "num_classes", "epoch"} - set(checkpoint)
    if missing:
        raise ValueError(f"{path} is not a checkpoint of `gpugrad train` (it has no "
                         f"{', '.join(sorted(missing))})")
    try:
        config = Config(**checkpoint["config"])
    except TypeError as exc:  # settings another version of gpugrad wrote, or none
        raise ValueError(f"{path}: its run settings are not those `gpugrad train` writes "
                         f"({exc})") from None
    if not isinstance(checkpoint["model"], dict) or "0.weight" not in checkpoint["model"]:
        raise ValueError(f"{path}: its model has no first layer (0.weight): not an MLP "
                         "of `gpugrad train`")
    trained_on = config.data
    if data is not None:
        config.data = data
    (x_train, _), (x_test, y_test) = load_data(config.data, config.seed, config.test_fraction)
    check_data_suits(checkpoint, x_test, y_test, config.data, trained_on)
    scaler = Standardizer()
    scaler.load_state_dict(checkpoint["scaler"])
    model = build_model(x_test.shape[1], config.hidden, checkpoint["num_classes"],
                        config.activation, gg.device(device))
    model.load_state_dict(checkpoint["model"])
    loss, acc, _ = evaluate(model, scaler.transform(x_test), y_test, gg.device(device))
    print(f"{path}: test accuracy {acc:.2%} (loss {loss:.4f}) on {len(y_test)} samples "
          f"(epoch {checkpoint['epoch']}, data {config.data})", file=stream)
    return {"test_accuracy": acc, "test_loss": loss}


def check_data_suits(checkpoint, x, y, data, trained_on):
    """Test data the checkpoint's model cannot take, refused in the data's terms before
    any loading: as features of another count, the model's first layer would not load
    (a state-dict shape mismatch), and labels past the model's classes would fail in the
    loss (an index out of range). Fewer classes than the model's are fine: a test set
    may lack some."""
    n_in = checkpoint["model"]["0.weight"].shape[1]  # an MLP's first Linear: (out, in)
    if x.shape[1] != n_in:
        raise DatasetError(f"the data {data} has {x.shape[1]} features where the model "
                           f"takes {n_in} (it was trained on {trained_on})")
    n_classes = int(checkpoint["num_classes"])
    if len(y) and int(y.max()) >= n_classes:
        raise DatasetError(f"the data {data} has labels up to {int(y.max())} where the "
                           f"model tells {n_classes} classes apart (labels 0 to "
                           f"{n_classes - 1}; it was trained on {trained_on})")
