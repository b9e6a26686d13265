"""The README's Python examples run as written (in a fresh interpreter, in an empty
folder), so that the page a new user starts from stays true. Fragments that continue a
session get only the few lines of set-up the text around them describes."""

import pathlib
import re
import subprocess
import sys

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, re.M | re.S)


def block(starting_with):
    """The README's Python block whose text contains `starting_with` (exactly one)."""
    found = [b for b in BLOCKS if starting_with in b]
    assert len(found) == 1, f"{len(found)} README blocks contain {starting_with!r}"
    return found[0]


def run_python(source, folder):
    return subprocess.run([sys.executable, "-c", source], cwd=folder, capture_output=True,
                          text=True, timeout=600)


def test_the_training_example_trains_and_saves_the_model(tmp_path):
    source = block("gg.save(model.state_dict(), \"model.npz\")")
    source += "\nprint((model(gg.tensor(x_val)).numpy().argmax(1) == y_val).mean())\n"
    result = run_python(source, tmp_path)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split()[-1]) > 0.9  # validation accuracy of the digits MLP
    assert (tmp_path / "model.npz").exists()


def test_the_worked_circuit_gives_the_lecture_gradients(tmp_path):
    source = block("f = (x + y) * z")
    source += "\nprint(x.grad.item(), y.grad.item(), z.grad.item())\n"
    result = run_python(source, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["-4.0", "-4.0", "3.0"]
    assert (tmp_path / "f.dot").read_text().startswith("digraph")


def test_the_compile_example_runs_from_its_plan(tmp_path):
    setup = ("import gpugrad as gg, gpugrad.nn as nn, gpugrad.nn.functional as F\n"
             "loader = [(gg.randn(32, 784), gg.tensor([i % 10 for i in range(32)]))] * 3\n")
    source = setup + block("@gg.compile") + "\nprint(len(step.plans), loss.shape)\n"
    result = run_python(source, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "def run(" in result.stdout and result.stdout.split()[-2:] == ["1", "()"]
    assert (tmp_path / "step.html").exists()


def test_the_custom_op_example_passes_its_own_checks(tmp_path):
    setup = "import gpugrad as gg\nt = gg.randn(5, dtype='float64')\n"
    source = setup + block('@gg.custom_op("mylib::swish")') + "\nprint(y.shape)\n"
    result = run_python(source, tmp_path)  # opcheck raises on any disagreement
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "(5,)"
