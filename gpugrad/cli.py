"""The `gpugrad` command: info, demo, bench."""

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


def _cmd_bench(args):
    from .bench import main

    return main(args.rest)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="gpugrad", description="gpugrad: reverse-mode autodiff on a networkx graph, "
        "on the GPU (CuPy) or the CPU (NumPy).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="which backend gpugrad uses here, and why").set_defaults(
        run=_cmd_info)
    demo = sub.add_parser("demo", help="the lecture's circuits and logistic regression")
    demo.add_argument("--out", metavar="DIR", help="also write the graph as DOT into DIR")
    demo.set_defaults(run=_cmd_demo)
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
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
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

        if not isinstance(exc, GpugradError):
            raise
        print(f"gpugrad: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
