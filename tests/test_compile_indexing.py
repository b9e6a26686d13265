"""Indexing by tensors inside gg.compile: a plan reads each call's index values.

An index tensor is an input of the getitem op (and of its adjoint, scatter_add), not an
attribute: attributes are constants of a plan, inputs are read on every run. So x[i]
with i an argument, nll_loss (which indexes by the targets) and the gradients through
them follow eager mode bit for bit, call after call, in a plain plan and in a
graph-ready one. A boolean mask tensor picks a number of elements only its values say,
which no plan can know ahead: gg.compile refuses it, naming the line.
"""


import numpy as np
import pytest
from conftest import compile_quietly
from test_compile import batches

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad.compiler.memory import fresh
from gpugrad.ops.shape import getitem, scatter_add

RNG = np.random.default_rng(11)
PLANS = pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])


def compiled(fn, cuda_graph):
    return compile_quietly(fn, cuda_graph=cuda_graph)


def indices(*values):
    return gg.tensor(np.array(values, dtype=np.int64))


MATRIX = gg.tensor(np.arange(20, dtype="float32").reshape(4, 5))
INDEXINGS = {
    "x[i]": (lambda x, i, j: x[i], [indices(0, 1), indices(3, 2), indices(1, 1)]),
    "x[i, j]": (lambda x, i, j: x[i, j], [indices(0, 1), indices(3, 3), indices(2, 0)]),
    "x[:, i]": (lambda x, i, j: x[:, i], [indices(4, 0), indices(1, 1), indices(2, 3)]),
    "x[i, 2]": (lambda x, i, j: x[i, 2], [indices(0, 1), indices(3, 2), indices(1, 3)]),
}


@PLANS
@pytest.mark.parametrize("name", INDEXINGS)
def test_an_index_tensor_argument_is_read_on_every_call(name, cuda_graph):
    fn, calls = INDEXINGS[name]
    step = compiled(fn, cuda_graph)
    j = indices(4, 0)
    for i in calls:
        np.testing.assert_array_equal(step(MATRIX, i, j).numpy(), fn(MATRIX, i, j).numpy())
    assert step.compiled.log == ["first call"]  # one trace: its plan read each call's i


def scatter_step():
    """(x, fn): fn(i, j, w) differentiates sum(x[i, j] * w) and returns x's gradient."""
    x = gg.tensor(np.arange(20, dtype="float32").reshape(4, 5), requires_grad=True)

    def fn(i, j, w):
        (x[i, j] * w).sum().backward()
        return x.grad

    return x, fn


@PLANS
def test_gradients_through_an_index_argument_land_at_each_calls_positions(cuda_graph):
    (x, fn), (eager_x, eager) = scatter_step(), scatter_step()
    step = compiled(fn, cuda_graph)
    w = gg.tensor(np.array([1.5, -2.0, 0.25], "float32"))
    # repeated positions add up, as eager's scatter does
    for i, j in [(indices(0, 1, 0), indices(2, 2, 2)), (indices(3, 3, 1), indices(0, 4, 4)),
                 (indices(2, 1, 0), indices(1, 1, 3))]:
        x.grad = eager_x.grad = None  # each call's gradient alone
        np.testing.assert_array_equal(step(i, j, w).numpy(), eager(i, j, w).numpy())
        positions = set(zip(i.numpy().tolist(), j.numpy().tolist(), strict=True))
        assert np.count_nonzero(x.grad.numpy()) == len(positions)
    assert step.compiled.log == ["first call"]


def one_hot_squared_error(w):
    """A loss of x @ w through a one-hot target built by item assignment at each call's
    labels; its backward into w."""
    def step(x, labels):
        target = gg.zeros((x.shape[0], 3))
        target[gg.arange(x.shape[0]), labels] = 1.0
        loss = (((x @ w) - target) ** 2).mean()
        loss.backward()
        return loss

    return step


@PLANS
def test_item_assignment_at_an_index_argument_follows_eager_on_every_call(cuda_graph):
    start = RNG.standard_normal((4, 3)).astype("float32")
    w, eager_w = (gg.tensor(start, requires_grad=True) for _ in range(2))
    step, eager = compiled(one_hot_squared_error(w), cuda_graph), one_hot_squared_error(eager_w)
    x = gg.tensor(RNG.standard_normal((5, 4)).astype("float32"))
    for labels in (indices(0, 2, 1, 1, 0), indices(2, 2, 0, 1, 1), indices(1, 0, 0, 2, 2)):
        w.grad = eager_w.grad = None
        assert step(x, labels).item() == eager(x, labels).item()
        np.testing.assert_array_equal(w.grad.numpy(), eager_w.grad.numpy())
    assert step.compiled.log == ["first call"]


def nll_model_and_optimiser():
    gg.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    return model, gg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def nll_training_step(model, opt):
    def step(x, y):
        opt.zero_grad()
        loss = F.nll_loss(F.log_softmax(model(x)), y)
        loss.backward()
        opt.step()
        return loss

    return step


@PLANS
def test_nll_loss_training_follows_eager_over_batches_with_different_targets(cuda_graph):
    eager_model, eager_opt = nll_model_and_optimiser()
    model, opt = nll_model_and_optimiser()
    eager = nll_training_step(eager_model, eager_opt)
    step = compiled(nll_training_step(model, opt), cuda_graph)
    data = batches(6)
    assert len({tuple(y.numpy()) for _, y in data}) == len(data)  # targets differ
    losses = []
    for x, y in data:
        loss = step(x, y).item()
        assert loss == eager(x, y).item()
        losses.append(loss)
    assert len(set(losses)) == len(losses)
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    assert step.compiled.log == ["first call"]


def test_an_index_tensor_read_from_outside_the_function_follows_its_values():
    rows = indices(0, 1)
    step = gg.compile(lambda x: x[rows].sum(axis=1))
    np.testing.assert_array_equal(step(MATRIX).numpy(), [10.0, 35.0])
    rows += 2  # in place, between calls
    np.testing.assert_array_equal(step(MATRIX).numpy(), [60.0, 85.0])
    assert step.log == ["first call"]


def test_a_list_index_inside_the_function_is_a_constant_of_the_plan():
    step = gg.compile(lambda x: x[[3, 0]] + x[[True, False, False, True]])
    for _ in range(2):
        np.testing.assert_array_equal(step(MATRIX).numpy(),
                                      MATRIX.numpy()[[3, 0]] + MATRIX.numpy()[[0, 3]])


def test_a_boolean_mask_tensor_inside_gg_compile_raises_naming_the_line():
    step = gg.compile(lambda x, mask: x[mask])
    mask = gg.tensor(np.array([True, False, True, False]))
    with pytest.raises(gg.CompileError, match="boolean mask") as caught:
        step(MATRIX, mask)
    line = test_a_boolean_mask_tensor_inside_gg_compile_raises_naming_the_line.__code__
    assert f"test_compile_indexing.py:{line.co_firstlineno + 1}" in str(caught.value)


def clamp_where(x, mask, rows):
    """(y, dy/dx): y is x with the masked elements and rows set, the rows' in x's dtype."""
    y = x * 2
    y[y.abs() > 3] = 0.0
    y[mask] = -1
    y[(rows,)] = gg.tensor(2.5, dtype="float64")
    return [y] + gg.grad((y * y).sum(), [x])


@PLANS
def test_one_value_assigned_through_a_boolean_mask_tensor_follows_each_calls_mask(
        cuda_graph):
    """x[mask] = v changes no shape: with v one value that no gradient flows into, each
    run sets the elements its own mask picks, as eager mode does (a mask of the leading
    axes too), gradients included."""
    step = compiled(clamp_where, cuda_graph)
    x = gg.tensor(RNG.standard_normal((4, 5)).astype("float32") * 2, requires_grad=True)
    for k in range(3):
        mask = gg.tensor(RNG.random((4, 5)) > 0.5)
        rows = gg.tensor(np.arange(4) == k)
        for got, want in zip(step(x, mask, rows), clamp_where(x, mask, rows), strict=True):
            np.testing.assert_array_equal(got.numpy(), want.numpy())
            assert got.dtype == want.dtype
    assert step.compiled.log == ["first call"]


def test_values_assigned_through_a_boolean_mask_that_need_a_gradient_are_refused():
    def fn(x, mask, v):
        y = x * 1
        y[mask] = v
        return y

    step = gg.compile(fn)
    mask = gg.tensor(np.array([True, False, True, False]))
    with pytest.raises(gg.CompileError, match="boolean mask"):
        step(MATRIX, mask, gg.tensor(1.0, requires_grad=True))


def test_a_boolean_mask_still_indexes_eagerly_and_checks_its_shape():
    mask = gg.tensor(np.array([True, False, True, False]))
    np.testing.assert_array_equal(MATRIX[mask].numpy(), MATRIX.numpy()[[0, 2]])
    with pytest.raises(gg.OutOfBoundsError, match="boolean mask of shape"):
        MATRIX[gg.tensor(np.array([True, False]))]


def test_index_tensors_are_inputs_of_getitem_and_its_adjoint():
    x = gg.tensor(RNG.standard_normal((4, 5)).astype("float32"), requires_grad=True)
    i, j = indices(1, 2), indices(0, 4)
    picked, sliced = x[i, j], x[2:, 1]
    assert picked.graph.nx.in_degree(picked._node.seq) == 3  # x, i and j
    assert sliced.graph.nx.in_degree(sliced._node.seq) == 1  # ints and slices: attrs only
    def fn(x, i, j):
        loss = x[i, j].sum()
        loss.backward()
        return loss, x.grad

    step = gg.compile(fn)
    step(x, i, j)
    ops = {n.op: n for n in step.plan.program.op_nodes()}
    feeds = [leaf.meta["feed"].kind for leaf in ops[scatter_add].inputs[1:]]
    assert feeds == ["arg", "arg"]  # read from each call, not constants of the plan
    assert fresh(ops[scatter_add])  # a new array: its inputs' buffers may go after it
    assert not fresh(ops[getitem])  # may be a view of x: x lives as long as it does


def test_an_index_tensor_changed_in_place_after_indexing_refuses_the_backward():
    x = gg.tensor(np.arange(5, dtype="float32"), requires_grad=True)
    i = indices(0, 1)
    y = x[i].sum()
    i += 1  # the backward would scatter to the new positions
    with pytest.raises(gg.GraphError, match="changed in place"):
        y.backward()
