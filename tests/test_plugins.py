"""Plugins: ops from installed packages, found through the "gpugrad.ops" entry point;
`gpugrad ops list` / `gpugrad ops check`; a broken plugin warns and breaks nothing."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_EXAMPLE = importlib.util.find_spec("gpugrad_swish") is not None
needs_example = pytest.mark.skipif(not HAS_EXAMPLE, reason="the example plugin "
                                   "(examples/gpugrad-swish-plugin) is not installed")


def run(*args, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def make_dist(folder, name, module_source):
    """A minimal installed distribution on disk: a module and its entry point."""
    (folder / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[gpugrad.ops]\n{name} = {name}\n")


@needs_example
def test_an_installed_plugin_is_listed_with_its_source_and_kernels():
    result = run("-m", "gpugrad", "ops", "list")
    assert result.returncode == 0, result.stderr
    (line,) = [row for row in result.stdout.splitlines() if row.startswith("swish::swish")]
    assert "plugin swish (gpugrad-swish-plugin)" in line and "cuda" in line
    assert any(row.startswith("gpugrad::add") and "built-in" in row
               for row in result.stdout.splitlines())


@needs_example
def test_ops_check_runs_opcheck_on_a_plugin_op():
    result = run("-m", "gpugrad", "ops", "check", "swish::swish")
    assert result.returncode == 0, result.stderr
    assert "swish::swish: gradcheck: ok" in result.stdout


@needs_example
def test_plugins_load_on_first_use_of_their_name():
    code = ("import gpugrad as gg\nimport sys\nassert 'gpugrad_swish' not in sys.modules\n"
            "op = gg.ops.get('swish::swish')\nprint(op.source, op(gg.ones(2)).shape)")
    result = run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "plugin swish (gpugrad-swish-plugin) (2,)"


def test_a_broken_plugin_warns_naming_it_and_breaks_nothing(tmp_path):
    make_dist(tmp_path, "broken_ops", "raise ImportError('this plugin is broken')\n")
    make_dist(tmp_path, "fine_ops", """
        import gpugrad as gg

        @gg.custom_op("fine::double")
        def double(x):
            return x * 2
    """)
    code = ("import warnings, gpugrad as gg\nwith warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n    found = gg.ops.load_plugins()\n"
            "print([(str(m.message), m.filename) for m in w])\n"
            "print(found['fine_ops'])\n"
            "print(gg.ops.get('fine::double')(gg.ones(2)).numpy().tolist())")
    result = run("-c", code, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    warned, loaded, value = result.stdout.strip().splitlines()
    assert "plugin broken_ops" in warned and "this plugin is broken" in warned
    assert "plugin broken_ops (broken_ops)" not in warned  # the name once
    assert "'<string>')" in warned  # the user's line, not gpugrad's
    assert loaded == "['fine::double']" and value == "[2.0, 2.0]"
    listed = run("-m", "gpugrad", "ops", "list", env={"PYTHONPATH": str(tmp_path)})
    assert listed.returncode == 0 and "fine::double" in listed.stdout
    assert "broken_ops" in listed.stderr  # the warning, not a traceback


def test_an_unknown_op_is_a_one_line_error():
    result = run("-m", "gpugrad", "ops", "check", "nope::missing")
    assert result.returncode == 1
    assert "no op named 'nope::missing'" in result.stderr and "Traceback" not in result.stderr


def test_ops_check_of_a_built_in_op():
    result = run("-m", "gpugrad", "ops", "check", "gpugrad::sigmoid")
    assert result.returncode == 0, result.stderr
    assert "gpugrad::sigmoid: inference: ok" in result.stdout
    assert "gpugrad::sigmoid: gradgradcheck: ok" in result.stdout


def test_ops_check_runs_on_the_cpu_whatever_the_default_device():
    """opcheck runs on the CPU (and against CUDA where usable): an unusable default
    device is no fault of the op's."""
    result = run("-m", "gpugrad", "ops", "check", "gpugrad::tanh",
                 env={"GPUGRAD_DEVICE": "nonsense"})
    assert result.returncode == 0, result.stderr
    assert "gpugrad::tanh: gradcheck: ok" in result.stdout


@pytest.mark.parametrize("name", ["gpugrad::matmul", "gpugrad::where"])
def test_ops_check_says_when_the_default_samples_do_not_suit_the_op(name):
    # Two (3, 4) arrays cannot be multiplied, and where's condition is a bool: that is
    # not a failed check (exit 1 as any error, but no "failed opcheck").
    result = run("-m", "gpugrad", "ops", "check", name)
    assert result.returncode == 1 and "failed" not in result.stderr
    assert f"{name} does not take the default samples" in result.stderr
    assert "gg.testing.opcheck(op, inputs, attrs)" in result.stderr


def test_the_example_plugin_lists_every_folder_of_its_package_so_it_builds_quietly():
    """setuptools takes any folder inside a package for a package, .py files or not, and
    warns at every install ("Package 'gpugrad_swish.kernels' ... would be ignored") about
    one its configuration leaves out. So `packages` names kernels/ too, and its CUDA
    source is that package's data: the wheel carries it, and `make test` installs
    quietly."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    plugin = os.path.join(ROOT, "examples", "gpugrad-swish-plugin")
    with open(os.path.join(plugin, "pyproject.toml"), "rb") as f:
        setuptools_config = tomllib.load(f)["tool"]["setuptools"]
    folders = {os.path.relpath(d, plugin).replace(os.sep, ".")
               for d, _, _ in os.walk(os.path.join(plugin, "gpugrad_swish"))
               if os.path.basename(d) != "__pycache__"}
    assert folders == set(setuptools_config["packages"])
    assert setuptools_config["package-data"]["gpugrad_swish.kernels"] == ["*.cu"]
