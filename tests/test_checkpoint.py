"""Checkpoints: gg.save / gg.load round trips without pickle, onto any device, and a
crash in the middle of a save leaves the previous checkpoint intact."""

import gc
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn


def test_a_model_and_optimiser_round_trip(tmp_path):
    gg.manual_seed(0)
    model = nn.MLP([3, 5, 2])
    opt = gg.optim.Adam(model.parameters(), lr=0.01)
    model(gg.randn(4, 3)).sum().backward()
    opt.step()
    path = tmp_path / "ck.npz"
    gg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 7,
             "history": [0.5, 0.25], "note": None}, path)

    loaded = gg.load(path)
    assert loaded["epoch"] == 7 and loaded["history"] == [0.5, 0.25] and loaded["note"] is None
    twin = nn.MLP([3, 5, 2])
    twin.load_state_dict(loaded["model"])
    for (name, a), (_, b) in zip(model.named_parameters(), twin.named_parameters(),
                                 strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), name
    twin_opt = gg.optim.Adam(twin.parameters(), lr=0.5)
    twin_opt.load_state_dict(loaded["optimizer"])
    assert twin_opt.param_groups[0]["lr"] == 0.01
    assert twin_opt.state[twin.parameters()[0]]["step"] == 1


def trained_adam(sizes):
    gg.manual_seed(0)
    model = nn.MLP(sizes)
    opt = gg.optim.Adam(model.parameters(), lr=0.01)
    model(gg.randn(4, sizes[0])).sum().backward()
    opt.step()
    return model, opt


def test_an_optimiser_state_must_fit_the_optimiser_it_is_loaded_into(tmp_path):
    """Each refusal leaves the optimiser as it was. A state of another model with
    same-shaped first layers put its moments on this model's layers; one of another kind
    of optimiser failed only at the next step, with a bare KeyError."""
    _, small_opt = trained_adam([3, 5, 2])
    path = tmp_path / "small.npz"
    gg.save(small_opt.state_dict(), path)
    saved = gg.load(path)
    model, _ = trained_adam([3, 5, 5, 2])  # 6 parameters; the first two of the same shapes
    fresh = gg.optim.Adam(model.parameters(), lr=0.5)
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: parameter group 0 of the "
                                         r"state has 4 parameter\(s\), this optimiser's 6"):
        fresh.load_state_dict(saved)
    sgd = gg.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    with pytest.raises(ValueError, match="lacks momentum, nesterov, dampening: another "
                                         "kind of optimiser than SGD saved it"):
        sgd.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == 0.5 and fresh.state == {}
    assert sgd.param_groups[0]["lr"] == 0.5 and sgd.state == {}


def test_a_momentum_state_loads_into_an_sgd_made_without_momentum():
    # The loaded group's momentum decides which state entries belong: the buffer does.
    model = nn.MLP([3, 2])
    opt = gg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(gg.randn(4, 3)).sum().backward()
    opt.step()
    twin = gg.optim.SGD(model.parameters(), lr=0.1)
    twin.load_state_dict(opt.state_dict())
    assert twin.param_groups[0]["momentum"] == 0.9
    assert "momentum_buffer" in twin.state[model.parameters()[0]]
    state = opt.state_dict()
    state["state"][0]["exp_avg"] = state["state"][0]["momentum_buffer"]
    with pytest.raises(ValueError, match="the state of parameter 0 has exp_avg, "
                                         "momentum_buffer, step; SGD keeps "
                                         "momentum_buffer, step"):
        twin.load_state_dict(state)


@pytest.mark.parametrize("make, message", [
    (lambda p: gg.optim.SGD(p, lr=0.1, momentum=-1), "SGD: momentum must be a finite "
                                                      "number >= 0, got -1"),
    (lambda p: gg.optim.SGD(p, lr=0.1, weight_decay=float("nan")), "SGD: weight_decay"),
    (lambda p: gg.optim.Adam(p, eps=-1e-8), "Adam: eps must be"),
    (lambda p: gg.optim.AdamW(p, lr=-1.0), "AdamW: lr must be"),
])
def test_a_bad_hyper_parameter_is_named(make, message):
    with pytest.raises(ValueError, match=message):
        make(nn.Linear(2, 2).parameters())


def test_the_file_holds_no_pickle(tmp_path):
    path = tmp_path / "ck.npz"
    gg.save({"w": gg.ones(2, 2), "n": 3}, path)
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            with z.open(name) as f:
                np.lib.format.read_magic(f)
                header = np.lib.format.read_array_header_1_0(f)
                assert header[2].kind != "O", name  # no object arrays anywhere
    np.load(path, allow_pickle=False).close()


def test_tensors_load_onto_the_device_asked_for(tmp_path):
    path = tmp_path / "ck.npz"
    gg.save({"w": gg.tensor([1.0, 2.0], dtype="float64")}, path)
    w = gg.load(path, device="array_api_strict")["w"]
    assert w.device == "array_api_strict" and w.dtype == np.float64


def test_what_cannot_be_saved_without_pickle_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "ck.npz"
    gg.save({"w": gg.ones(2)}, path)
    with pytest.raises(TypeError, match="without pickle"):
        gg.save({"w": gg.zeros(2), "f": object()}, path)
    assert gg.load(path)["w"].numpy().tolist() == [1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]  # no temporary left behind


def test_bad_files_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        gg.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        gg.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(ValueError, match="not a gpugrad checkpoint"):
        gg.load(tmp_path / "plain.npz")


def index_entry(text):
    return {"__gpugrad_index__": np.array(text)}


@pytest.mark.parametrize("arrays, reason", [
    (index_entry("{not json"), "JSONDecodeError"),
    (index_entry('{"format": "gpugrad-checkpoint-9", "root": {}}'),
     "unknown checkpoint format 'gpugrad-checkpoint-9'"),
    (index_entry('{"format": "gpugrad-checkpoint-1", "root": {"tensor": "gone"}}'),
     "KeyError"),
    ({**index_entry('{"format": "gpugrad-checkpoint-1", "root": {"array": "o"}}'),
      "o": np.array([{"a": 1}], dtype=object)}, "pickle"),
], ids=["index not JSON", "another format", "a missing array", "an object array"])
def test_a_damaged_or_crafted_checkpoint_is_refused_naming_the_file(tmp_path, arrays, reason):
    path = tmp_path / "crafted.npz"
    np.savez(path, **arrays)  # written without gg.save: what a damaged file may hold
    with pytest.raises(ValueError, match="crafted.npz") as info:
        gg.load(path)
    assert reason in str(info.value)


def test_a_checkpoint_with_a_damaged_member_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "ck.npz"
    gg.save({"w": gg.ones(1000)}, path)
    data = bytearray(path.read_bytes())
    middle = data.index(b"\x93NUMPY", data.index(b"\x93NUMPY") + 1) + 200  # inside w
    data[middle:middle + 8] = b"garbage!"
    path.write_bytes(bytes(data))  # a stored member: its CRC no longer matches
    with pytest.raises(ValueError, match="ck.npz is not a readable checkpoint"):
        gg.load(path)


def test_saving_into_a_missing_folder_names_the_path_asked_for(tmp_path):
    path = tmp_path / "nowhere" / "ck.npz"
    with pytest.raises(FileNotFoundError, match=f"cannot save to {path}: no folder"):
        gg.save({"w": gg.ones(2)}, path)


def test_saving_onto_a_folder_names_the_folder_and_leaves_it_as_it_was(tmp_path):
    """The rename onto a folder failed naming the temporary file (gone by then)."""
    folder = tmp_path / "ck.npz"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=f"cannot save to {folder}: it is a folder"):
        gg.save({"w": gg.ones(2)}, folder)
    assert folder.is_dir() and not list(folder.iterdir())
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


@pytest.mark.skipif(os.name != "posix", reason="file modes and the umask are POSIX")
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_a_checkpoint_gets_the_mode_any_new_file_gets_under_the_umask(tmp_path, umask):
    """0o666 less the umask, as open() gives, for the first save and for one over it
    (not the 0o600 of the temporary file it is written to)."""
    path = tmp_path / "ck.npz"
    previous = os.umask(umask)
    try:
        gg.save({"w": gg.ones(3)}, path)
        first = os.stat(path).st_mode & 0o777
        gg.save({"w": gg.zeros(3)}, path)
        second = os.stat(path).st_mode & 0o777
    finally:
        os.umask(previous)
    assert first == second == 0o666 & ~umask
    assert gg.load(path)["w"].numpy().tolist() == [0.0, 0.0, 0.0]
    assert os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left beside it


def test_a_crash_in_the_middle_of_a_save_keeps_the_previous_checkpoint(tmp_path):
    """A real crash: a child process is killed (SIGKILL) while it writes a large
    checkpoint over a small one."""
    path = tmp_path / "ck.npz"
    gg.save({"version": 1, "w": gg.ones(3)}, path)
    child = textwrap.dedent(f"""
        import sys, numpy as np, gpugrad as gg
        big = {{f"w{{i}}": np.ones(2_000_000) for i in range(40)}}  # 640 MB to write
        print("saving", flush=True)
        gg.save({{"version": 2, **big}}, {str(path)!r})
        print("saved", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saving"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    loaded = gg.load(path)
    assert loaded["version"] == 1 and loaded["w"].numpy().tolist() == [1.0, 1.0, 1.0]
    leftovers = [p for p in os.listdir(tmp_path) if p != "ck.npz"]
    assert all(p.startswith(".tmp-") for p in leftovers)  # only the killed writer's temp


def interrupt_once(monkeypatch, owner, name):
    """owner.name raises KeyboardInterrupt on its first call (as a Ctrl-C landing
    there would), then works as before; returns the calls seen."""
    original = getattr(owner, name)
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)
    return calls


@pytest.mark.parametrize("where", ["closing a member", "writing an array"])
def test_ctrl_c_during_a_save_is_a_keyboard_interrupt_and_keeps_the_previous_checkpoint(
        tmp_path, monkeypatch, where):
    """`gpugrad train` finishes its run on KeyboardInterrupt: an interrupt inside the
    zip write must come out as one (zipfile's cleanup would raise a ValueError over
    it), the old checkpoint must stay, and nothing must be left to complain later."""
    path = tmp_path / "ck.npz"
    gg.save({"version": 1}, path)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    if where == "closing a member":
        calls = interrupt_once(monkeypatch, zipfile._ZipWriteFile, "close")
    else:
        calls = interrupt_once(monkeypatch, np.lib.format, "write_array")
    with pytest.raises(KeyboardInterrupt):
        gg.save({"version": 2, "w": gg.ones(1000)}, path)
    gc.collect()  # an archive left open would complain when collected
    assert calls and unraisable == []
    assert gg.load(path) == {"version": 1}
    assert os.listdir(tmp_path) == ["ck.npz"]


def test_a_device_that_cannot_hold_a_dtype_is_named_not_the_file(tmp_path):
    pytest.importorskip("array_api_strict")
    path = tmp_path / "half.npz"
    gg.save({"w": gg.ones(2, dtype="float16")}, path)
    with pytest.raises(gg.DTypeError, match="a float16 tensor of the checkpoint cannot be "
                                            "put on array_api_strict"):
        gg.load(path, device="array_api_strict")
    assert gg.load(path)["w"].dtype == np.float16  # the file is fine


def test_a_file_that_only_starts_like_a_zip_is_not_a_readable_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ValueError, match="model.pt is not a readable checkpoint"):
        gg.load(path)


def test_saving_through_a_symbolic_link_writes_the_file_it_points_to(tmp_path):
    target = tmp_path / "runs" / "best.npz"
    target.parent.mkdir()
    gg.save({"epoch": 1}, target)
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    gg.save({"epoch": 2}, link)
    assert link.is_symlink() and gg.load(target)["epoch"] == 2
