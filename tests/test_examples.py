"""The training examples, run as a user runs them, with their printed numbers checked."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_example(name):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def numbers_after(label, text):
    """Every number printed right after `label` (e.g. "loss 0.1234" -> 0.1234)."""
    return [float(v) for v in re.findall(rf"{label}\s+(-?\d+(?:\.\d+)?)", text)]


def percent_after(label, text):
    return [float(v) for v in re.findall(rf"{label}\s+(\d+(?:\.\d+)?)%", text)]


def test_logistic_regression_gradient_matches_the_lecture_and_loss_falls():
    out = run_example("logistic_regression.py")
    assert "X^T(a - y)/m" in out and ": match" in out and "MISMATCH" not in out
    losses = numbers_after("loss", out)
    assert len(losses) >= 5
    assert losses[0] == pytest.approx(0.6931, abs=1e-4)  # log 2: w = 0, b = 0
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < 0.2
    assert percent_after("training accuracy", out)[0] >= 90.0


def test_xor_mlp_separates_what_a_line_cannot():
    out = run_example("xor_mlp.py")
    losses = numbers_after("loss", out)
    assert losses[-1] < losses[0] and losses[-1] < 0.05
    assert [int(p) for p in re.findall(r"predicted (\d)", out)] == [0, 1, 1, 0]
    assert percent_after("accuracy", out) == [100.0]


def check_digits_output(out):
    epochs = re.findall(r"epoch\s+\d+\s+train loss (\d+\.\d+)\s+val accuracy (\d+\.\d)%", out)
    assert len(epochs) == 10
    losses = [float(loss) for loss, _ in epochs]
    assert losses[-1] < losses[0] / 5
    assert percent_after("validation accuracy", out)[-1] >= 95.0


def test_digits_mlp_reaches_95_percent_with_a_confusion_matrix():
    out = run_example("digits_mlp.py")
    check_digits_output(out)
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    rows = [[int(n) for n in line.split()[1:]] for line in lines[start + 2:start + 12]]
    confusion = [row for row in rows if len(row) == 10]
    assert len(confusion) == 10
    n_val = int(re.search(r"and (\d+) validation images", out).group(1))
    assert sum(map(sum, confusion)) == n_val
    correct = sum(confusion[d][d] for d in range(10))
    assert correct / n_val == pytest.approx(percent_after("validation accuracy", out)[-1] / 100,
                                            abs=1e-3)


def test_digits_gpu_trains_on_the_gpu_or_says_why_not():
    import gpugrad as gg

    out = run_example("digits_gpu.py")
    first = out.splitlines()[0]
    if gg.cuda.is_available():
        assert first.startswith("training on cuda")
        assert "parameters on cuda" in out and "batches on cuda" in out
    else:
        assert first.startswith("no usable GPU, training on the CPU: ")
        assert gg.cuda.reason() in first
        assert "parameters on cpu, batches on cpu" in out
    check_digits_output(out)
