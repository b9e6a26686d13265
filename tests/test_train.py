"""`gpugrad train` and `gpugrad evaluate`, run as a user runs them: every promised file,
the same accuracy after reloading, one-line errors, and a clean stop on Ctrl-C."""

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import gpugrad as gg


def gpugrad(*args, **kw):
    return subprocess.run([sys.executable, "-m", "gpugrad", *args], capture_output=True,
                          text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = gpugrad("train", "--epochs", "3", "--hidden", "64", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


def test_a_run_writes_every_file_it_promises(small_run):
    out, _ = small_run
    for name in ("metrics.json", "metrics.csv", "learning_curve.png", "confusion_matrix.png",
                 "checkpoint.npz", "graph.dot", "graph.html"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "graph.dot").read_text().startswith("digraph")
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,train_loss") and len(csv_lines) == 4


def test_the_step_graph_names_the_batch_the_labels_and_the_parameters(small_run):
    out, _ = small_run
    dot, page = (out / "graph.dot").read_text(), (out / "graph.html").read_text()
    for name in ("x", "labels", "MLP.0.weight", "MLP.2.bias"):
        assert f'[label="{name}\\n' in dot and f'"title": "{name}"' in page, name
    assert 'label="input' not in dot


def test_metrics_record_every_epoch_and_the_test_result(small_run):
    out, result = small_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert metrics["epochs"][-1]["train_loss"] < metrics["epochs"][0]["train_loss"]
    assert metrics["test_accuracy"] > 0.7  # three short epochs; the default run does more
    assert len(metrics["confusion_matrix"]) == 10
    assert sum(map(sum, metrics["confusion_matrix"])) == 359
    # The outcome on stdout (`gpugrad train > log` keeps it), the progress on stderr.
    assert f"test accuracy {metrics['test_accuracy']:.2%}" in result.stdout
    assert f"run folder: {out}" in result.stdout
    assert "epoch   3/3" in result.stderr and "test accuracy" not in result.stderr


def test_a_diverged_runs_metrics_are_strict_json_with_null_for_nan(tmp_path):
    """A learning rate far too large makes the loss NaN: metrics.json says null there
    (Python's NaN literal is refused by strict JSON readers), the CSV keeps the text."""
    result = gpugrad("train", "--epochs", "1", "--hidden", "8", "--optimizer", "sgd",
                     "--lr", "1e30", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr

    def refuse(literal):
        raise ValueError(f"{literal} in metrics.json")

    metrics = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    assert metrics["epochs"][0]["train_loss"] is None and metrics["test_loss"] is None
    assert ",nan," in (tmp_path / "metrics.csv").read_text()


def test_evaluate_reloads_the_checkpoint_and_agrees(small_run):
    out, _ = small_run
    metrics = json.loads((out / "metrics.json").read_text())
    result = gpugrad("evaluate", str(out / "checkpoint.npz"))
    assert result.returncode == 0, result.stderr
    assert f"test accuracy {metrics['test_accuracy']:.2%}" in result.stdout


@pytest.mark.parametrize("extra", [(), ("--overwrite",)])
def test_an_out_that_is_a_file_is_a_one_line_error_that_keeps_the_file(tmp_path, extra):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    result = gpugrad("train", "--epochs", "1", "--hidden", "8", "--out", str(notes), *extra)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"--out {notes} is a file, not a folder" in result.stderr
    assert notes.read_text() == "mine"


def test_a_run_folder_holding_a_run_is_not_written_over_unless_asked(small_run, tmp_path):
    out, _ = small_run
    before = (out / "metrics.json").read_text()
    result = gpugrad("train", "--epochs", "1", "--hidden", "8", "--out", str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{out} holds a run already (checkpoint.npz, metrics.json)" in result.stderr
    assert "--overwrite" in result.stderr
    assert (out / "metrics.json").read_text() == before  # nothing lost
    again = tmp_path / "again"
    shutil.copytree(out, again)
    result = gpugrad("train", "--epochs", "1", "--hidden", "8", "--out", str(again),
                     "--overwrite")
    assert result.returncode == 0, result.stderr
    assert len(json.loads((again / "metrics.json").read_text())["epochs"]) == 1


def test_progress_lines_in_a_log_end_without_padding(small_run):
    _, result = small_run
    epochs = [line for line in result.stderr.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 3 and all(line == line.rstrip() for line in epochs)


def test_the_checkpoint_holds_the_model_and_the_settings(small_run):
    out, _ = small_run
    checkpoint = gg.load(out / "checkpoint.npz")
    assert checkpoint["epoch"] == 3 and checkpoint["config"]["hidden"] == [64]
    assert checkpoint["model"]["0.weight"].shape == (64, 64)


def test_the_default_run_reaches_97_percent_on_digits(tmp_path):
    """The README's main job: the default settings, on the bundled digits."""
    result = gpugrad("train", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["test_accuracy"] >= 0.97


def test_the_metrics_are_reachable_as_gg_metrics_after_import_gpugrad_alone():
    """In a fresh interpreter, where nothing else has imported gpugrad.metrics yet."""
    code = ("import gpugrad as gg; "
            "print(gg.metrics.accuracy([0, 1, 2, 2], [0, 1, 2, 1]), "
            "gg.metrics.confusion_matrix([0, 1], [1, 1]).tolist())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0.75 [[0, 1], [0, 1]]"


def test_accuracy_of_scores_instead_of_classes_says_which_shapes_and_what_to_pass():
    logits, labels = gg.randn(359, 10), gg.tensor([i % 10 for i in range(359)])
    with pytest.raises(gg.ShapeError) as excinfo:
        gg.metrics.accuracy(logits, labels)
    message = str(excinfo.value)
    assert message.startswith("accuracy: ") and "test_train.py" in message
    assert "shape (359, 10)" in message and "shape (359,)" in message
    assert "argmax(axis=-1)" in message
    assert gg.metrics.accuracy(logits.argmax(axis=-1), labels) == pytest.approx(
        float((logits.numpy().argmax(axis=-1) == labels.numpy()).mean()))
    with pytest.raises(ValueError, match=r"shape \(3,\) for labels of shape \(4,\)"):
        gg.metrics.accuracy([0, 1, 2], [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"flatten the column of predicted classes"):
        gg.metrics.accuracy([[1], [0]], [1, 1])


def test_a_confusion_matrix_too_small_for_the_classes_says_so():
    with pytest.raises(ValueError, match="class 2 among the labels or predictions, but "
                                         "num_classes=2"):
        gg.metrics.confusion_matrix([0, 1, 2], [0, 1, 2], num_classes=2)
    assert gg.metrics.confusion_matrix([0, 1], [1, 1], num_classes=3).shape == (3, 3)


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "must be a positive integer"),
    (["--optimizer", "lbfgs"], "invalid choice"),
    (["--data", "imagenet"], "unknown data"),
    (["--data", "mnist:/no/such/folder"], "no MNIST data at"),
    (["--lr", "-1"], "must be a positive number"),
    (["--lr", "inf"], "must be a positive number"),
    (["--seed", "-1"], "must be >= 0"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, args, message):
    result = gpugrad("train", "--out", str(tmp_path / "run"), *args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(gg.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_an_unusable_device_fails_before_the_run_folder_is_made(tmp_path):
    result = gpugrad("train", "--device", "cuda", "--out", str(tmp_path / "run"))
    assert result.returncode == 1 and "is not usable" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("labels, message", [
    ([0.5, 1.7, 2.2, 0.1], "y_train must be class indices (whole numbers), got float64"),
    ([0, -1, 2, 1], "y_train must be class indices >= 0, got -1"),
    ([[0], [1], [2], [1]], "y_train must be one class index per sample, shape (4,)"),
])
def test_npz_labels_that_are_not_class_indices_are_refused_naming_the_array(
        tmp_path, labels, message):
    # Float labels were cut to ints (1.7 -> 1) and trained on without a word.
    data = tmp_path / "data.npz"
    np.savez(data, x_train=np.ones((4, 3)), y_train=np.array(labels),
             x_test=np.ones((2, 3)), y_test=np.array([0, 1]))
    result = gpugrad("train", "--data", f"npz:{data}", "--out", str(tmp_path / "run"))
    assert result.returncode == 1 and f"{data}: {message}" in result.stderr
    assert not (tmp_path / "run").exists()


def test_npz_features_with_nan_are_refused():
    from gpugrad.data.datasets import DatasetError, _as_xy

    with pytest.raises(DatasetError, match="x_train holds 1 NaN or infinite value"):
        _as_xy(np.array([[1.0, np.nan]]), np.array([0]), x_name="x_train")
    x, y = _as_xy(np.ones((2, 2)), np.array([1.0, 0.0]))  # whole floats are classes
    assert y.dtype == np.int64 and y.tolist() == [1, 0]


def test_ctrl_c_before_the_first_epoch_keeps_nothing_and_leaves_the_folder_free(
        tmp_path, monkeypatch, capsys):
    from gpugrad import train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train_epoch", interrupted)
    config = train.Config(epochs=1, hidden=[8], out=str(tmp_path))
    results = train.run(config)
    assert results["interrupted"] is True and results["epochs"] == []
    assert "interrupted: no epoch finished, nothing kept" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()
    monkeypatch.undo()
    assert train.run(train.Config(epochs=1, hidden=[8], out=str(tmp_path)))["epochs"]


def test_evaluate_takes_the_run_folder_too(small_run):
    out, trained = small_run
    result = gpugrad("evaluate", str(out))
    assert result.returncode == 0, result.stderr
    accuracy = trained.stdout.split("test accuracy ")[1].split("%")[0]
    assert f"test accuracy {accuracy}%" in result.stdout


def test_evaluate_of_a_missing_checkpoint_is_a_one_line_error(tmp_path):
    result = gpugrad("evaluate", str(tmp_path / "nope.npz"))
    assert result.returncode == 1 and "no checkpoint at" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_checkpoint_with_other_settings_or_no_mlp_is_a_one_line_error(small_run, tmp_path):
    """Settings written by another version of gpugrad (an option this one lacks), or a
    model that is not the MLP a run trains, failed with a TypeError or a KeyError."""
    out, _ = small_run
    for name, edit, message in [
            ("settings", lambda c: c["config"].update(warmup=5),
             "its run settings are not those `gpugrad train` writes (Config.__init__() "
             "got an unexpected keyword argument 'warmup')"),
            ("model", lambda c: c.update(model={"fc.weight": c["model"]["0.weight"]}),
             "its model has no first layer (0.weight): not an MLP of `gpugrad train`")]:
        checkpoint = gg.load(out / "checkpoint.npz")
        edit(checkpoint)
        gg.save(checkpoint, tmp_path / f"{name}.npz")
        result = gpugrad("evaluate", str(tmp_path / f"{name}.npz"))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr == f"gpugrad: error: {tmp_path / name}.npz: {message}\n"


def npz_data(tmp_path, features, classes):
    """A small npz of `features` features, with labels of `classes` classes."""
    rng = np.random.default_rng(0)
    data = tmp_path / f"{features}x{classes}.npz"
    sizes = {"train": 40, "test": 10}
    np.savez(data, **{f"x_{split}": rng.standard_normal((n, features)).astype("float32")
                      for split, n in sizes.items()},
             **{f"y_{split}": np.arange(n) % classes for split, n in sizes.items()})
    return data


def npz_run(tmp_path, features, classes):
    """A one-epoch run on npz_data(...): its folder and the data file."""
    data = npz_data(tmp_path, features, classes)
    out = tmp_path / f"run{features}x{classes}"
    result = gpugrad("train", "--data", f"npz:{data}", "--epochs", "1", "--hidden", "8",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, data


def test_evaluate_on_data_of_another_width_says_how_many_features_each_has(tmp_path):
    out, data = npz_run(tmp_path, features=5, classes=3)
    result = gpugrad("evaluate", str(out), "--data", "digits")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (f"the data digits has 64 features where the model takes 5 (it was trained "
            f"on npz:{data})") in result.stderr
    assert "state dict" not in result.stderr


def test_evaluate_on_data_with_labels_past_the_models_classes_says_so(tmp_path):
    out, data = npz_run(tmp_path, features=64, classes=3)
    result = gpugrad("evaluate", str(out), "--data", "digits")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("the data digits has labels up to 9 where the model tells 3 classes apart "
            "(labels 0 to 2") in result.stderr


def test_evaluate_on_data_with_fewer_classes_than_the_model_is_fine(tmp_path):
    """A test set may lack some of the classes the model knows."""
    out, _ = npz_run(tmp_path, features=64, classes=3)
    fewer = npz_data(tmp_path, features=64, classes=2)
    result = gpugrad("evaluate", str(out), "--data", f"npz:{fewer}")
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and "on 10 samples" in result.stdout


def test_ctrl_c_stops_cleanly_and_keeps_the_last_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "gpugrad", "train", "--epochs", "500",
                             "--out", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "checkpoint.npz"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert checkpoint.exists(), "no checkpoint was written"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted: keeping the checkpoint of epoch" in stderr
    assert "Traceback" not in stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["interrupted"] is True
    saved = gg.load(checkpoint)
    assert saved["epoch"] == len(metrics["epochs"]) >= 1


def test_ctrl_c_while_a_checkpoint_is_recorded_takes_effect_once_it_is():
    # Between writing checkpoint.npz and noting its epoch, an interrupt would leave the
    # file one epoch ahead of the run's metrics; inside the block it waits for its end.
    from gpugrad.train import interrupts_deferred

    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            done.append("recorded")
    assert done == ["recorded"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_same_seed_gives_the_same_run(tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = gpugrad("train", "--epochs", "2", "--hidden", "32", "--seed", "3",
                         "--out", str(out))
        assert result.returncode == 0, result.stderr
        metrics = json.loads((out / "metrics.json").read_text())
        runs.append([(e["train_loss"], e["val_loss"]) for e in metrics["epochs"]]
                    + [metrics["test_accuracy"]])
    assert runs[0] == runs[1]


def test_two_runs_started_in_one_second_get_two_folders(tmp_path, monkeypatch):
    from gpugrad.train import new_run_folder

    monkeypatch.chdir(tmp_path)
    first = new_run_folder()
    (tmp_path / first).mkdir(parents=True)
    second = new_run_folder()
    assert second.startswith(first) and second != first  # (unless the second ticked over)
