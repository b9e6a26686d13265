"""The command line and the examples, run as a user runs them."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_demo_reproduces_the_lecture_numbers(tmp_path):
    result = run("-m", "gpugrad.cli", "demo", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "MISMATCH" not in out
    assert "[0.393, -0.59]" in out and "[-0.197, -0.393, 0.197]" in out
    assert "dw from the engine == X^T(a - y)/m: ok" in out
    assert (tmp_path / "sigmoid_neuron.dot").read_text().startswith("digraph")


def test_a_demo_out_that_is_a_file_is_a_one_line_error_before_the_demo_runs(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    result = run("-m", "gpugrad.cli", "demo", "--out", str(notes))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == f"gpugrad: error: --out {notes} is a file, not a folder: " \
        "give a folder for the graph's DOT file\n"
    assert result.stdout == "" and notes.read_text() == "mine"


def test_info_says_which_backend_and_why():
    result = run("-m", "gpugrad.cli", "info")
    assert result.returncode == 0, result.stderr
    assert "default_device:" in result.stdout and "reason:" in result.stdout


def test_no_command_is_a_usage_error_that_lists_the_commands():
    result = run("-m", "gpugrad.cli")
    assert result.returncode == 2 and result.stdout == ""
    assert "COMMAND" in result.stderr and "train" in result.stderr


def test_the_benchmarks_help_names_the_command_to_type():
    result = run("-m", "gpugrad.cli", "bench", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: gpugrad bench")


def test_an_unknown_command_is_a_one_line_usage_error():
    result = run("-m", "gpugrad.cli", "frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "Traceback" not in result.stderr


def test_a_malformed_number_is_a_one_line_usage_error():
    for option, value, expected in [("--hidden", "abc", "must be a positive integer"),
                                    ("--epochs", "1.5", "must be a positive integer"),
                                    ("--lr", "fast", "must be a positive number"),
                                    ("--seed", "x", "must be an integer >= 0")]:
        result = run("-m", "gpugrad.cli", "train", option, value)
        assert result.returncode == 2, (option, result.stderr)
        assert f"{expected}, got '{value}'" in result.stderr
        assert "Traceback" not in result.stderr and "_positive" not in result.stderr


def test_version_names_the_package():
    result = run("-m", "gpugrad.cli", "--version")
    assert result.returncode == 0 and result.stdout.startswith("gpugrad ")


def test_mistakes_in_viz_and_ops_options_are_one_line_errors(tmp_path):
    out = str(tmp_path / "g.svg")
    for args, expected in [
        (["viz", "--function", "math:sqrt", "--shapes", "a,b", "--out", out],
         "--shapes a,b: a shape is sizes separated by commas"),
        (["viz", "--shapes", "3,4", "--out", out], "--shapes gives the inputs of --function"),
        (["viz", "--function", "no_such_module:fn", "--shapes", "3", "--out", out],
         "--function no_such_module:fn: no module named 'no_such_module'"),
        (["viz", "--function", "math:no_such_fn", "--shapes", "3", "--out", out],
         "--function math:no_such_fn: module 'math' has no 'no_such_fn'"),
        (["ops", "list", "extra"], "takes no op name (got 'extra')"),
    ]:
        result = run("-m", "gpugrad.cli", *args)
        assert result.returncode == 1, (args, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr


def test_ops_check_takes_a_built_in_ops_short_name_as_graphs_show_it():
    result = run("-m", "gpugrad.cli", "ops", "check", "tanh")
    assert result.returncode == 0, result.stderr
    assert "gpugrad::tanh: gradcheck: ok" in result.stdout


def test_a_cuda_graph_without_the_compiled_step_is_a_one_line_error():
    result = run("-m", "gpugrad.cli", "train", "--no-compile", "--cuda-graph")
    assert result.returncode != 0
    assert "--cuda-graph replays the compiled step" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bench_json_path_that_cannot_be_written_is_refused_before_any_benchmark(tmp_path):
    for path, problem in [(tmp_path / "missing" / "r.json", f"no folder {tmp_path}/missing"),
                          (tmp_path, "it is a folder; give a file in it")]:
        result = run("-m", "gpugrad.cli", "bench", "--quick", "--json", str(path))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert f"error: --json {path}: {problem}" in result.stderr
        assert "total wall time" not in result.stdout  # nothing was run


def test_bench_quick_runs_and_prints_ratios():
    result = run("-m", "gpugrad.cli", "bench", "--quick")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "µs" in result.stdout or "us" in result.stdout


def test_lecture_circuits_example():
    result = run(str(ROOT / "examples" / "lecture_circuits.py"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "(x+y)z = -12.0: df/dx = -4.0, df/dy = -4.0, df/dz = 3.0"
    assert "dx = [ 0.393 -0.59 ]" in lines[1] and "dw = [-0.197 -0.393  0.197]" in lines[1]
    assert "df/dx = 2.059570, df/dy = 1.592233" in lines[2]


def test_every_option_of_every_command_says_what_it_does_in_its_help():
    """`gpugrad train --help` and the others explain each option (and its default), so
    that --epochs or --seed need no trip to the README or the source."""
    import argparse

    from gpugrad.cli import build_parser

    commands = next(action for action in build_parser()._actions
                    if isinstance(action, argparse._SubParsersAction)).choices
    undocumented = [f"{name} {action.option_strings[-1]}"
                    for name, command in commands.items() if name != "bench"
                    for action in command._actions
                    if action.option_strings and action.help is None]
    assert undocumented == []
    train_help = commands["train"].format_help()
    for default in ("default 20", "default 64", "default adam", "default 0", "default relu"):
        assert default in train_help
