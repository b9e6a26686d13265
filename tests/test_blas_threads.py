"""How many threads NumPy's BLAS gets in a training run: one for small matrices (where
more only wait for each other on a busy CPU), the user's choice where they made one, and
the process's own count again once the run is over."""

import io

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from gpugrad import train
from gpugrad.blas_threads import (
    SMALL_PRODUCT,
    THREAD_VARIABLES,
    chosen_threads,
    largest_product,
)

NO_VARIABLES = {}


def current_threads():
    """The thread count of each BLAS loaded in this process (threadpoolctl's view)."""
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_the_largest_product_is_that_of_the_widest_layer():
    # 64 samples through 64 -> 256 -> 128 -> 10: 64 x 256 x 128 multiply-adds at most
    assert largest_product(64, [64, 256, 128, 10]) == 64 * 256 * 128


def test_small_matrices_on_a_cpu_get_one_thread():
    threads, why = chosen_threads(None, "cpu", SMALL_PRODUCT - 1, environ=NO_VARIABLES)
    assert threads == 1 and "small" in why


def test_large_matrices_keep_the_blas_threads_of_a_lone_process():
    assert chosen_threads(None, "cpu", SMALL_PRODUCT, environ=NO_VARIABLES)[0] is None


def test_processes_sharing_a_machine_split_its_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    threads, why = chosen_threads(None, "cpu", SMALL_PRODUCT, ranks_here=4,
                                  environ=NO_VARIABLES)
    assert threads == 4 and "4 processes" in why
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert chosen_threads(None, "cpu", SMALL_PRODUCT, ranks_here=4,
                          environ=NO_VARIABLES)[0] == 1


@pytest.mark.parametrize("name", THREAD_VARIABLES)
def test_a_thread_variable_in_the_environment_is_left_to_say(name):
    threads, why = chosen_threads(None, "cpu", 1, environ={name: "2"})
    assert threads is None and name in why


def test_the_users_count_wins_and_gpus_are_left_alone():
    assert chosen_threads(3, "cpu", 1, environ={"OMP_NUM_THREADS": "2"})[0] == 3
    assert chosen_threads(None, "cuda", 1, environ=NO_VARIABLES)[0] is None


class ThreadsSeen(io.StringIO):
    """A progress stream noting the BLAS's thread counts whenever the run writes to it."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def write(self, text):
        self.seen.append(current_threads())
        return super().write(text)


def test_a_digits_run_trains_on_one_thread_and_gives_the_threads_back(tmp_path,
                                                                     monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with threadpool_limits(limits=2, user_api="blas"):
        before = current_threads()
        if before != [2] * len(before) or not before:
            pytest.skip(f"this machine's BLAS cannot run 2 threads ({before})")
        stream = ThreadsSeen()
        train.run(train.Config(epochs=1, hidden=[16], out=str(tmp_path)), stream=stream,
                  results=io.StringIO())
        after = current_threads()
    assert "BLAS on 1 thread (small matrices" in stream.getvalue()
    assert stream.seen and all(seen == [1] * len(before) for seen in stream.seen)
    assert after == before


def test_a_run_under_a_thread_variable_says_it_left_the_blas_to_it(tmp_path, monkeypatch):
    # The first line says what was chosen, also where nothing was.
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    stream = io.StringIO()
    train.run(train.Config(epochs=1, hidden=[16], out=str(tmp_path), device="cpu"),
              stream=stream, results=io.StringIO())
    first = stream.getvalue().splitlines()[0]
    assert first.endswith("; BLAS threads left as they are (as OPENBLAS_NUM_THREADS says)")


def test_blas_threads_below_one_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        train.Config(blas_threads=0).check()
