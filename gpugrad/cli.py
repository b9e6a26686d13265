"""The `gpugrad` command: train, evaluate, info, demo, ops, bench."""

import argparse
import sys


def _cmd_info(args):
    import gpugrad as gg

    for key, value in gg.info().items():
        print(f"{key:>15}: {value}")
    return 0


def _cmd_demo(args):
    from .demo import main

    return main(out=args.out)


def _cmd_train(args):
    from .train import Config, run

    config = Config(data=args.data, hidden=args.hidden, activation=args.activation,
                    epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    optimizer=args.optimizer, device=args.device, seed=args.seed,
                    out=args.out, distributed=args.distributed, compile=args.compile,
                    cuda_graph=args.cuda_graph, overwrite=args.overwrite,
                    blas_threads=args.blas_threads)
    if args.distributed:
        from .distributed import abort_on_error

        with abort_on_error():  # a failing rank ends the whole job, naming itself
            results = run(config)
    else:
        results = run(config)
    return 130 if results["interrupted"] else 0


def _cmd_evaluate(args):
    from .train import evaluate_checkpoint

    evaluate_checkpoint(args.checkpoint, data=args.data, device=args.device)
    return 0


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _add_train(sub):
    from .nn.layers import ACTIVATIONS

    train = sub.add_parser("train", help="train an MLP classifier (default: the bundled "
                           "digits) and write a run folder")
    train.add_argument("--data", default="digits", metavar="SPEC",
                       help="digits | mnist:PATH (IDX folder or .npz) | npz:PATH "
                       "(x_train, y_train, x_test, y_test); default digits")
    train.add_argument("--hidden", type=_positive_int, nargs="+", default=[256, 128],
                       metavar="N", help="hidden layer sizes (default 256 128)")
    train.add_argument("--activation", choices=list(ACTIVATIONS), default="relu",
                       help="of the hidden layers (default relu)")
    train.add_argument("--epochs", type=_positive_int, default=20, help="default 20")
    train.add_argument("--batch-size", type=_positive_int, default=64,
                       help="samples per step (default 64; with --distributed, over all "
                       "processes)")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="learning rate (default: 1e-3 for adam/adamw, 0.05 for sgd)")
    train.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="adam",
                       help="default adam")
    train.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: "
                       "GPUGRAD_DEVICE, else a GPU when usable)")
    train.add_argument("--seed", type=_seed, default=0,
                       help="of the data split, the initial weights and the shuffling "
                       "(default 0)")
    train.add_argument("--out", metavar="DIR", default=None,
                       help="run folder (default runs/<date-time>)")
    train.add_argument("--overwrite", action="store_true",
                       help="write into an --out folder that holds a run already (else "
                       "refused: its checkpoint and metrics would be lost)")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel over the processes of `mpiexec -n N gpugrad "
                       "train --distributed` (one GPU each where there are GPUs); "
                       "--batch-size stays the global batch; needs gpugrad[distributed]")
    train.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                       help="run the training step from a compiled plan (gg.compile): "
                       "the same results, less Python per step (default; --no-compile "
                       "runs it eagerly, op by op)")
    train.add_argument("--cuda-graph", action="store_true",
                       help="replay the compiled step as a CUDA graph: one launch per step "
                       "(on a CUDA device; not with --no-compile)")
    train.add_argument("--blas-threads", type=_positive_int, default=None, metavar="N",
                       help="threads of NumPy's BLAS on a CPU (default: 1 where the "
                       "matrices are small, where more only wait for each other; else "
                       "the BLAS's own, or OMP_NUM_THREADS / OPENBLAS_NUM_THREADS where "
                       "set; split between the processes of --distributed)")
    train.set_defaults(run=_cmd_train)
    evaluate = sub.add_parser("evaluate", help="reload a checkpoint and report its test "
                              "accuracy")
    evaluate.add_argument("checkpoint", help="a run's checkpoint.npz, or its run folder")
    evaluate.add_argument("--data", default=None, help="override the run's data")
    evaluate.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: "
                          "GPUGRAD_DEVICE, else a GPU when usable)")
    evaluate.set_defaults(run=_cmd_evaluate)


def _kernel_devices(op):
    """Where the op has kernels: the generic one (every device) and any overrides."""
    names = {"numpy": "cpu", "cupy": "cuda", "array_api_strict": "array_api_strict"}
    specific = sorted(names.get(k, k) for k in op.kernels)
    return "all (generic)" + (f" + {', '.join(specific)}" if specific else "")


def _cmd_ops(args):
    from .ops import REGISTRY, get, load_plugins

    load_plugins()
    if args.action == "list" and args.name:
        raise ValueError(f"`gpugrad ops list` takes no op name (got {args.name!r}); "
                         "`gpugrad ops check NAME` checks one")
    if args.action == "list":
        rows = [(name, op.source, _kernel_devices(op),
                 "yes" if op.differentiable else "no")
                for name, op in sorted(REGISTRY.items())]
        widths = [max(len(r[i]) for r in rows + [("op", "source", "kernels", "grad")])
                  for i in range(4)]
        for row in [("op", "source", "kernels", "grad")] + rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                  .rstrip())
        return 0
    from .testing import OpcheckError, default_samples, opcheck

    if not args.name:
        raise ValueError("`gpugrad ops check` needs an op name (see `gpugrad ops list`)")
    op = get(args.name)
    samples = default_samples(op)
    if samples is None:
        raise ValueError(f"{args.name} has attributes without defaults; check it from "
                         "Python with gg.testing.opcheck(op, inputs, attrs)")
    _check_samples_suit(op, samples)
    try:
        report = opcheck(op, samples)
    except OpcheckError as exc:
        print(exc, file=sys.stderr)
        return 1
    for check, result in report.items():
        print(f"{op.name}: {check}: {result}")
    return 0


def _check_samples_suit(op, samples):
    """The default samples (float64 (3, 4) arrays) run through the op once: an op that
    needs other inputs (matmul, reshape, where) is not checkable from here, which is not
    a failed check."""
    import numpy as np

    from .creation import tensor

    try:  # on the CPU, where opcheck runs them (not on the default device)
        op(*[tensor(s, dtype=np.float64, device="cpu") for s in samples])
    except Exception as exc:
        raise ValueError(
            f"{op.name} does not take the default samples ({len(samples)} float64 "
            f"array(s) of shape (3, 4)): {exc}; check it from Python with "
            "gg.testing.opcheck(op, inputs, attrs)") from None


def _import_function(spec, option):
    """The function `module:name` names, imported as `python -m` would find it: the
    console script's sys.path starts at its own folder, not at the current directory,
    where a user's module usually is."""
    import importlib
    import os

    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ValueError(f"{option} takes module:function, got {spec!r}")
    here = os.getcwd()
    if not any(entry in ("", here) for entry in sys.path):
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # the module is there; something it imports is not
            raise
        raise ValueError(f"{option} {spec}: no module named {module_name!r} in {here} "
                         "or on sys.path") from None
    if not hasattr(module, name):
        raise ValueError(f"{option} {spec}: module {module_name!r} has no {name!r}")
    return getattr(module, name)


VIZ_FORMATS = ("svg", "png", "pdf", "html", "dot")


def _cmd_viz(args):
    import gpugrad as gg

    out = args.out
    kind = out.rsplit(".", 1)[-1].lower()
    if kind not in VIZ_FORMATS:
        raise ValueError(f"--out {out}: the extension says the format; use one of "
                         + ", ".join(f".{f}" for f in VIZ_FORMATS))
    if args.shapes and not args.function:
        raise ValueError("--shapes gives the inputs of --function; without it, --mlp and "
                         "--batch say what to draw")
    if args.function:
        fn = _import_function(args.function, "--function")
        shapes = [_shape(s) for s in args.shapes]
        try:
            graph = gg.trace(fn, *[gg.randn(*shape) for shape in shapes])
        except TypeError as exc:  # most often: as many --shapes as the function's inputs
            raise ValueError(f"{args.function} on {len(shapes)} input(s) of --shapes "
                             f"{' '.join(args.shapes) or '(none)'}: {exc}") from None
    else:
        from .nn import MLP
        from .train import step_graph

        sizes = args.mlp
        labels = gg.tensor([i % sizes[-1] for i in range(args.batch)])
        graph = step_graph(MLP(sizes), gg.randn(args.batch, sizes[0]), labels)
    if kind == "html":
        graph.to_html(out)
    else:  # .dot too: render writes the DOT text, whole or not at all
        graph.render(out)
    print(f"{out}: {len(graph.op_nodes())} ops, {len(graph)} nodes")
    return 0


def _shape(text):
    """--shapes' D,D,... as a tuple of sizes; a mistake names the option."""
    try:
        shape = tuple(int(d) for d in text.split(",") if d.strip())
    except ValueError:
        raise ValueError(f"--shapes {text}: a shape is sizes separated by commas, e.g. "
                         "32,784") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"--shapes {text}: sizes must be >= 0")
    return shape


def _cmd_bench(args):
    from .bench import main

    return main(args.rest)


def _version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gpugrad")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "(not installed)"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="gpugrad", description="gpugrad: reverse-mode autodiff on a networkx graph, "
        "on the GPU (CuPy) or the CPU (NumPy).")
    parser.add_argument("--version", action="version", version=f"gpugrad {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="which backend gpugrad uses here, and why").set_defaults(
        run=_cmd_info)
    demo = sub.add_parser("demo", help="the lecture's circuits and logistic regression")
    demo.add_argument("--out", metavar="DIR", help="also write the graph as DOT into DIR")
    demo.set_defaults(run=_cmd_demo)
    _add_train(sub)
    viz = sub.add_parser("viz", help="draw an MLP's forward pass and loss (the graph a "
                         "training step records), or a function "
                         "of yours, to .svg/.png/.pdf/.html/.dot")
    viz.add_argument("--mlp", type=_positive_int, nargs="+", default=[784, 256, 10],
                     metavar="N", help="layer sizes of the MLP (default 784 256 10)")
    viz.add_argument("--batch", type=_positive_int, default=32,
                     help="the MLP's batch size (default 32)")
    viz.add_argument("--function", metavar="MODULE:FUNCTION",
                     help="trace this function instead, on random inputs of --shapes")
    viz.add_argument("--shapes", nargs="*", default=[], metavar="D,D",
                     help="one shape per input of --function, e.g. 32,784 784,10")
    viz.add_argument("--out", required=True, help="the file to write; its extension says "
                     "the format")
    viz.set_defaults(run=_cmd_viz)
    ops = sub.add_parser("ops", help="list the ops (built-in and plugins), or check one")
    ops.add_argument("action", choices=["list", "check"],
                     help="list: every op, where it comes from and the devices with a "
                     "kernel; check NAME: run gg.testing.opcheck on the op")
    ops.add_argument("name", nargs="?", help="the op to check, e.g. mylib::swish")
    ops.set_defaults(run=_cmd_ops)
    bench = sub.add_parser("bench", help="benchmarks against PyTorch (see --help)",
                           add_help=False)
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(run=_cmd_bench)
    return parser


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "command", None) == "bench":
        args.rest = extra + args.rest  # its own options, parsed by the benchmark
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "run", None):  # no command: a usage error, as argparse's are
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except Exception as exc:  # one line, not a traceback, for a user at a terminal
        from .errors import GpugradError

        expected = (GpugradError, ValueError, OSError, ImportError, AttributeError) \
            if args.command in ("train", "evaluate", "ops", "viz", "demo") else GpugradError
        if not isinstance(exc, expected):
            raise
        print(f"gpugrad: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
