"""Custom ops as a user writes them: one decorator, optional checked registrations, the
same registry and dispatch as the built-in ops."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.ops import REGISTRY
from gpugrad.testing import OpcheckError, opcheck


def make_swish(name, vjp=True, shape=True):
    """The DESIGN page's example: swish(x) = x sigmoid(beta x)."""

    @gg.custom_op(name, replace=True)
    def swish(x, *, beta=1.0):
        xp = gg.array_namespace(x)
        return x / (1 + xp.exp(-beta * x))

    if vjp:
        @swish.register_vjp
        def _(ctx, grad):
            (x,) = ctx.inputs
            s = (x * ctx.attrs["beta"]).sigmoid()
            return (grad * (s + x * ctx.attrs["beta"] * s * (1 - s)),)

    if shape:
        @swish.register_shape
        def _(x, *, beta=1.0):
            return x

    return swish


def numpy_swish(x, beta):
    return x / (1 + np.exp(-beta * x))


def test_a_custom_op_computes_records_a_named_node_and_differentiates():
    swish = make_swish("test_custom::swish")
    x = gg.tensor(np.linspace(-2, 2, 5), requires_grad=True)
    y = swish(x, beta=2.0)
    np.testing.assert_allclose(y.numpy(), numpy_swish(np.linspace(-2, 2, 5), 2.0))
    (node,) = [d for _, d in y.graph.nx.nodes(data=True) if d["kind"] == "op"]
    assert node["op"] == "test_custom::swish" and node["attrs"] == {"beta": "2.0"}
    assert "test_custom::swish(" in str(y.graph) and "test_custom::swish" in y.graph.to_dot()
    assert gg.gradcheck(lambda t: swish(t, beta=2.0), [x])


def test_its_vjp_is_differentiable_again():
    swish = make_swish("test_custom::swish2")
    x = gg.tensor([0.3, -1.2], dtype="float64", requires_grad=True)
    (g,) = gg.grad(swish(x).sum(), [x], create_graph=True)
    (h,) = gg.grad(g.sum(), [x])
    s = 1 / (1 + np.exp(-x.numpy()))
    expected = s * (1 - s) * (2 + x.numpy() * (1 - 2 * s))  # d2/dx2 of x sigmoid(x)
    np.testing.assert_allclose(h.numpy(), expected, rtol=1e-10)


def test_it_lives_in_the_same_registry_as_the_built_ins():
    swish = make_swish("test_custom::swish3")
    assert REGISTRY["test_custom::swish3"] is swish
    assert swish.source == "custom" and REGISTRY["gpugrad::add"].source == "built-in"


def test_it_runs_on_every_device_through_the_array_namespace():
    swish = make_swish("test_custom::swish4")
    x = gg.tensor([0.5, -0.5], device="array_api_strict", requires_grad=True)
    y = swish(x)
    assert y.device == "array_api_strict"
    y.sum().backward()
    assert x.grad.device == "array_api_strict"


def test_array_namespace_needs_arrays_of_one_library():
    array_api_strict = pytest.importorskip("array_api_strict")
    assert gg.array_namespace(np.ones(2), np.zeros(3)) is np
    with pytest.raises(TypeError, match="at least one array"):
        gg.array_namespace()
    with pytest.raises(TypeError, match="different libraries"):
        gg.array_namespace(np.ones(2), array_api_strict.ones(2))


def test_a_per_device_kernel_replaces_the_generic_forward_there():
    calls = []

    @gg.custom_op("test_custom::double", replace=True)
    def double(x):
        return x * 2

    @double.register_kernel("cpu")
    def _(x):
        calls.append("cpu kernel")
        return x + x

    assert double(gg.tensor([1.0, 2.0])).numpy().tolist() == [2.0, 4.0]
    assert calls == ["cpu kernel"]
    assert double(gg.tensor([1.0], device="array_api_strict")).numpy().tolist() == [2.0]
    assert calls == ["cpu kernel"]  # other devices keep the generic forward
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        double.register_kernel("tpu")


def test_without_a_shape_function_the_output_is_read_from_the_kernel():
    swish = make_swish("test_custom::swish5", shape=False)
    y = swish(gg.ones((2, 3)))
    assert y.shape == (2, 3) and y.dtype == np.float32


def test_a_kernel_returning_the_wrong_shape_dtype_or_device_names_the_op():
    @gg.custom_op("test_custom::liar", replace=True)
    def liar(x, *, mode):
        xp = gg.array_namespace(x)
        if mode == "shape":
            return x[:1]
        if mode == "dtype":
            return xp.astype(x, xp.float64)
        return np.ones(2, dtype=np.float32)  # a host array, whatever the device

    @liar.register_shape
    def _(x, *, mode):
        return x

    x = gg.ones(2)
    with pytest.raises(gg.ShapeError, match=r"test_custom::liar: the kernel returned shape"):
        liar(x, mode="shape")
    with pytest.raises(gg.DTypeError, match="returned dtype float64"):
        liar(x, mode="dtype")
    with pytest.raises(gg.DeviceError, match="not an array of array_api_strict"):
        liar(gg.ones(2, device="array_api_strict"), mode="device")


@pytest.mark.parametrize("dtype", ["float64", np.float64, np.dtype("float64")],
                         ids=["name", "type", "dtype"])
def test_a_shape_rule_may_give_its_dtype_as_a_name_type_or_dtype(dtype):
    @gg.custom_op("test_custom::widen", replace=True)
    def widen(x):
        return gg.array_namespace(x).astype(x, "float64")

    @widen.register_shape
    def _(x):
        return gg.Spec(x.shape, dtype, x.device)

    y = widen(gg.ones(2, requires_grad=True))
    assert y.dtype == np.dtype("float64") and isinstance(y.dtype, np.dtype)
    assert (y + 1.0).numpy().tolist() == [2.0, 2.0]  # later ops read the dtype


def test_a_kernel_returning_a_dtype_gpugrad_lacks_is_refused_at_the_op():
    @gg.custom_op("test_custom::to_complex", replace=True)
    def to_complex(x):
        return x.astype("complex64")

    with pytest.raises(gg.DTypeError, match="test_custom::to_complex: the kernel returned "
                                            "dtype complex64, which gpugrad does not support"):
        to_complex(gg.ones(2))


def test_calls_that_cannot_work_name_the_op():
    swish = make_swish("test_custom::calls")
    with pytest.raises(TypeError, match="test_custom::calls takes at least one tensor"):
        swish()
    with pytest.raises(TypeError, match="attribute beta= is a Tensor"):
        swish(gg.ones(2), beta=gg.tensor(2.0))


def test_errors_inside_the_shape_function_and_the_vjp_name_the_op_and_line():
    swish = make_swish("test_custom::buggy")
    swish.register_shape(lambda x, *, beta=1.0: x.shapee)
    with pytest.raises(AttributeError, match=r"test_custom::buggy: its shape function "
                                             r"raised AttributeError: .*shapee.*test_custom"):
        swish(gg.ones(2))
    swish = make_swish("test_custom::buggy_vjp")
    swish.register_vjp(lambda ctx, grad: (grad * ctx.inputz[0],))
    y = swish(gg.ones(2, requires_grad=True)).sum()  # the op's line, named below
    with pytest.raises(AttributeError, match=r"test_custom::buggy_vjp: its VJP raised "
                                             r"AttributeError: .*inputz.*op created at "
                                             r"test_custom_ops.py:\d+"):
        y.backward()


def test_a_vjp_returning_the_wrong_number_or_shape_of_gradients_names_the_op():
    @gg.custom_op("test_custom::badvjp", replace=True)
    def badvjp(x, y):
        return x * y

    x = gg.ones(3, requires_grad=True)
    y = gg.ones(3, requires_grad=True)

    badvjp.register_vjp(lambda ctx, g: (g,))
    with pytest.raises(gg.GraphError, match="test_custom::badvjp: the VJP returned 1 "
                                            "gradients for 2 inputs"):
        badvjp(x, y).sum().backward()
    badvjp.register_vjp(lambda ctx, g: (g, gg.ones(4)))
    with pytest.raises(gg.ShapeError, match="test_custom::badvjp"):
        badvjp(x, y).sum().backward()
    badvjp.register_vjp(lambda ctx, g: g)  # a bare Tensor: says what it should be
    with pytest.raises(gg.GraphError, match=r"test_custom::badvjp: the VJP returned a "
                                            r"Tensor, not a tuple of gradients, one per "
                                            r"input \(2 here"):
        badvjp(x, y).sum().backward()


def test_a_vjp_returning_a_gradient_on_another_device_is_a_device_error_naming_the_op():
    pytest.importorskip("array_api_strict")

    @gg.custom_op("test_custom::elsewhere", replace=True)
    def elsewhere(x):
        return x * 2

    elsewhere.register_vjp(lambda ctx, g: (gg.ones(3, device="array_api_strict"),))
    x = gg.ones(3, requires_grad=True)
    with pytest.raises(gg.DeviceError, match="test_custom::elsewhere: the VJP returned a "
                                             "gradient on array_api_strict for an input "
                                             "on cpu .*test_custom_ops.py"):
        elsewhere(x).sum().backward()


def test_differentiating_an_op_without_a_vjp_says_how_to_fix_it():
    swish = make_swish("test_custom::novjp", vjp=False)
    x = gg.ones(2, requires_grad=True)
    with pytest.raises(gg.GraphError, match="has no VJP.*register_vjp"):
        swish(x).sum().backward()

    @gg.custom_op("test_custom::constant_ish", differentiable=False, replace=True)
    def rounded(x):
        return gg.array_namespace(x).round(x)

    assert not rounded(x).requires_grad


@pytest.mark.parametrize("name, message", [
    ("swish", "namespace::name"),
    ("mylib::", "namespace::name"),
    ("gpugrad::swish", "reserved"),
])
def test_bad_names_are_refused(name, message):
    with pytest.raises(ValueError, match=message):
        gg.custom_op(name)(lambda x: x)


@pytest.mark.parametrize("options, error, message", [
    ({"outputs": 0}, ValueError, "outputs must be a whole number >= 1, got 0"),
    ({"outputs": 1.5}, ValueError, "outputs must be a whole number >= 1, got 1.5"),
    ({"outputs": True}, ValueError, "outputs must be a whole number >= 1, got True"),
    ({"outputs": 2, "nondifferentiable_outputs": (2,)}, ValueError, "names no output"),
    ({"outputs": 2, "nondifferentiable_outputs": 1}, TypeError, "tuple of output indices"),
    ({"nondifferentiable_outputs": (0,)}, ValueError, "differentiable=False"),
], ids=["no outputs", "a fraction", "a bool", "index past the outputs", "an int",
        "the one output"])
def test_output_counts_and_indices_that_cannot_be_meant_are_refused_naming_the_op(
        options, error, message):
    """At the definition (outputs=1.5 was cut to 1, outputs=0 made a one-output op, and a
    one-output op's output 0 declared nondifferentiable still required grad)."""
    with pytest.raises(error, match=f"test_custom::counted: .*{message}"):
        gg.custom_op("test_custom::counted", replace=True, **options)(lambda x: (x, x))


def test_a_composite_op_returning_anything_but_one_tensor_names_the_op_and_line():
    pair = gg.composite_op("test_custom::pair_composite", replace=True)(
        lambda x: (x * 2, x * 3))
    with pytest.raises(TypeError, match=r"test_custom::pair_composite: .* returns one "
                                        r"Tensor, got a tuple \(at test_custom_ops.py:\d+\);"
                                        r" for several outputs"):
        pair(gg.ones(2))
    number = gg.composite_op("test_custom::number_composite", replace=True)(lambda x: 3.0)
    with pytest.raises(TypeError, match="got a float"):
        number(gg.ones(2))


def test_a_name_is_registered_once_unless_replaced():
    gg.custom_op("test_custom::once", replace=True)(lambda x: x)
    with pytest.raises(ValueError, match="already registered"):
        gg.custom_op("test_custom::once")(lambda x: x)
    gg.custom_op("test_custom::once", replace=True)(lambda x: x * 2)


def test_opcheck_passes_a_correct_op_and_reports_each_check():
    swish = make_swish("test_custom::checked")
    report = opcheck(swish, [np.linspace(-2, 2, 7)], {"beta": 1.5})
    assert report["inference"] == "ok"
    assert report["gradcheck"] == "ok" and report["gradcheck (fast)"] == "ok"
    assert report["gradgradcheck"] == "ok"
    assert report["cuda vs cpu"].startswith("ok" if gg.cuda.is_available() else "skipped")


def test_opcheck_catches_a_wrong_vjp_and_a_wrong_shape_rule():
    swish = make_swish("test_custom::wrong")
    swish.register_vjp(lambda ctx, g: (g * 2,))
    with pytest.raises(OpcheckError, match="gradcheck"):
        opcheck(swish, [np.linspace(-2, 2, 7)])
    swish = make_swish("test_custom::wrong_shape")
    swish.register_shape(lambda x, beta=1.0: gg.Spec((1,), x.dtype, x.device))
    with pytest.raises(OpcheckError, match="inference"):
        opcheck(swish, [np.linspace(-2, 2, 7)])


def test_opcheck_catches_a_vjp_without_a_second_derivative():
    # Right first derivatives, computed on the host: a second derivative through it is
    # silently zero, which gradgradcheck finds.
    swish = make_swish("test_custom::host_vjp")

    @swish.register_vjp
    def _(ctx, grad):
        x = ctx.inputs[0].numpy()
        s = 1 / (1 + np.exp(-x))
        return (grad * gg.tensor(s * (1 + x * (1 - s)), dtype=grad.dtype),)

    with pytest.raises(OpcheckError, match="gradgradcheck") as excinfo:
        opcheck(swish, [np.linspace(-2, 2, 7)])
    assert "gradcheck (fast)" not in str(excinfo.value)  # the first order is right


@pytest.mark.parametrize("mistake, raised", [
    (lambda ctx, g: (g * ctx.attrs["betaa"],), "KeyError"),
    (lambda ctx, g: (g * (1 / 0),), "ZeroDivisionError"),
], ids=["attribute typo", "division by zero"])
def test_opcheck_reports_any_error_of_a_vjp_as_a_failed_check(mistake, raised):
    """Whatever a VJP raises fails the checks that run it, listed in one OpcheckError
    (not a bare KeyError out of opcheck, the other checks unreported)."""
    swish = make_swish("test_custom::raising_vjp")
    swish.register_vjp(mistake)
    with pytest.raises(OpcheckError, match=f"gradcheck: .*its VJP raised {raised}") as info:
        opcheck(swish, [np.linspace(-2, 2, 7)])
    assert "inference" not in str(info.value)  # the forward and shape rule are fine


def test_opcheck_needs_sample_inputs():
    with pytest.raises(TypeError, match="no sample inputs"):
        opcheck(make_swish("test_custom::no_samples"), [])


def test_opcheck_works_on_built_in_ops_too():
    from gpugrad.ops.elementwise import tanh

    assert opcheck(tanh, [np.linspace(-1, 1, 4)])["gradcheck"] == "ok"


def make_layer(name):
    @gg.composite_op(name, replace=True)
    def layer(x, w, *, scale=1.0):
        """softplus((x @ w) * scale), recorded as one node."""
        return gg.logaddexp(0.0, (x @ w) * scale)

    return layer


def operands():
    rng = np.random.default_rng(0)
    return (gg.tensor(rng.standard_normal((3, 4)), requires_grad=True),
            gg.tensor(rng.standard_normal((4, 2)), requires_grad=True))


def test_a_composite_op_is_one_node_whose_inside_can_be_traced():
    layer = make_layer("test_custom::layer")
    x, w = operands()
    y = layer(x, w, scale=0.5)
    assert y.graph.op_counts() == {"test_custom::layer": 1}
    np.testing.assert_allclose(y.numpy(), np.logaddexp(0, x.numpy() @ w.numpy() * 0.5))
    assert layer.trace(x, w).op_counts() == {"matmul": 1, "mul": 1, "logaddexp": 1}


def test_a_composite_op_differentiates_like_its_function():
    layer = make_layer("test_custom::layer2")
    x, w = operands()
    assert gg.gradcheck(lambda x, w: layer(x, w, scale=0.5), [x, w])
    composite = gg.grad(layer(x, w).sum(), [x, w])
    inlined = gg.grad(layer._fn(x, w).sum(), [x, w])
    for a, b in zip(composite, inlined, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


def test_a_composite_op_gives_partial_derivatives_of_dependent_inputs():
    layer = make_layer("test_custom::layer3")
    x, _ = operands()
    assert gg.gradcheck(lambda x: layer(x, (x * 2).T[:, :2]), [x])


def test_second_derivatives_go_through_a_composite_op():
    layer = make_layer("test_custom::layer4")
    x, w = operands()

    def first_derivative(x, w):
        with gg.enable_grad():
            return gg.grad((layer(x, w) ** 2).sum(), [x], create_graph=True)[0]

    assert gg.gradcheck(first_derivative, [x, w])


def make_polar(name):
    """(r, theta) of points (x, y): two outputs, one hand-written VJP for both."""

    @gg.custom_op(name, outputs=2, replace=True)
    def polar(x, y):
        xp = gg.array_namespace(x)
        return xp.sqrt(x * x + y * y), xp.atan2(y, x)

    @polar.register_vjp
    def _(ctx, grads):
        x, y = ctx.inputs
        r, _ = ctx.output
        g_r, g_theta = grads
        return (g_r * x / r - g_theta * y / (r * r), g_r * y / r + g_theta * x / (r * r))

    @polar.register_shape
    def _(x, y):
        return x, x

    return polar


def points():
    return (gg.tensor([1.0, 2.0, -0.5], dtype="float64", requires_grad=True),
            gg.tensor([0.5, -1.0, 2.0], dtype="float64", requires_grad=True))


def test_an_op_with_two_outputs_gives_two_tensors_with_a_node_each():
    polar = make_polar("test_custom::polar")
    x, y = points()
    r, theta = polar(x, y)
    np.testing.assert_allclose(r.numpy(), np.hypot(x.numpy(), y.numpy()))
    np.testing.assert_allclose(theta.numpy(), np.arctan2(y.numpy(), x.numpy()))
    g = (r + theta).graph
    assert g.op_counts() == {"test_custom::polar": 2, "add": 1}
    assert sorted(d["output_index"] for _, d in g.nx.nodes(data=True)
                  if d["op"] == "test_custom::polar") == [0, 1]
    x_id, y_id = (n for n, d in g.nx.nodes(data=True) if d["op"] == "input")
    assert f"test_custom::polar(%{x_id}, %{y_id})[1]" in str(g)  # the ids of g.nx


@pytest.mark.parametrize("use", ["both", "radius", "angle"])
def test_its_vjp_is_checked_whichever_outputs_are_used(use):
    polar = make_polar("test_custom::polar2")
    pick = {"both": lambda r, t: r * t, "radius": lambda r, t: r, "angle": lambda r, t: t}
    assert gg.gradcheck(lambda x, y: pick[use](*polar(x, y)), list(points()))


def test_anomaly_detection_and_the_profiler_see_each_output():
    polar = make_polar("test_custom::polar_watched")
    x = gg.tensor([1.0, np.nan], dtype="float64", requires_grad=True)
    y = gg.tensor([1.0, 1.0], dtype="float64", requires_grad=True)
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError,
                                            match=r"test_custom::polar_watched: its "
                                                  r"output 0 has 1 NaN"):
        polar(x, y)
    with gg.profile() as prof:
        r, theta = polar(*points())
    assert "time" in r._node.meta and "bytes" in theta._node.meta
    assert [rec["op"] for rec in prof.records] == ["test_custom::polar_watched"] * 2


def test_an_output_can_be_non_differentiable():
    @gg.custom_op("test_custom::maxpos", outputs=2, nondifferentiable_outputs=(1,),
                  replace=True)
    def maxpos(x):
        xp = gg.array_namespace(x)
        return xp.max(x, axis=-1), xp.argmax(x, axis=-1)

    @maxpos.register_vjp
    def _(ctx, grads):
        (x,) = ctx.inputs
        largest, _ = ctx.output
        return (gg.where(x == largest.reshape(-1, 1), grads[0].reshape(-1, 1), 0.0),)

    x = gg.tensor([[1.0, 3.0, 2.0], [5.0, 4.0, 0.0]], requires_grad=True)
    largest, position = maxpos(x)
    assert largest.requires_grad and not position.requires_grad
    assert position.numpy().tolist() == [1, 0]
    largest.sum().backward()
    assert x.grad.numpy().tolist() == [[0, 1, 0], [1, 0, 0]]


def test_a_kernel_must_return_as_many_outputs_as_declared():
    @gg.custom_op("test_custom::short", outputs=2, replace=True)
    def short(x):
        return x

    with pytest.raises(gg.ShapeError, match="must return 2 arrays"):
        short(gg.ones(2))


def test_gradcheck_and_opcheck_check_only_the_outputs_gradients_flow_through():
    """A float output declared nondifferentiable (a statistic, say) has no gradient to
    compare with its finite differences: a correct op passes, as PyTorch's gradcheck
    passes a function with a detached output; a wrong VJP is still caught; and with no
    differentiable output at all, the finite differences must be zero."""
    @gg.custom_op("test_custom::with_statistic", outputs=2, nondifferentiable_outputs=(1,),
                  replace=True)
    def with_statistic(x):
        return x * 2, x * 3

    with_statistic.register_vjp(lambda ctx, grads: (grads[0] * 2,))
    x = gg.tensor(np.linspace(-1, 1, 4), requires_grad=True)
    assert gg.gradcheck(with_statistic, [x]) and gg.gradcheck(with_statistic, [x], fast=True)
    assert opcheck(with_statistic, [x])["gradcheck"] == "ok"
    assert gg.gradcheck(lambda t: (t * 2, (t * 3).detach()), [x])
    with_statistic.register_vjp(lambda ctx, grads: (grads[0] * 2.5,))
    with pytest.raises(gg.GradcheckError):
        gg.gradcheck(with_statistic, [x])
    with pytest.raises(gg.GradcheckError, match="numerical"):
        gg.gradcheck(lambda t: (t * 3).detach(), [x])


def test_defvjp_computes_residuals_once_in_the_forward_and_frees_them_after_backward():
    calls = []

    @gg.custom_op("test_custom::softplus", replace=True)
    def softplus(x):
        return gg.array_namespace(x).logaddexp(0.0, x)

    def forward(x):
        xp = gg.array_namespace(x)
        calls.append("forward")
        return xp.logaddexp(0.0, x), (1 / (1 + xp.exp(-x)),)  # the sigmoid, kept

    def backward(residuals, grad):
        (sigmoid,) = residuals
        return (grad * sigmoid,)

    softplus.defvjp(forward, backward)
    x = gg.tensor(np.linspace(-3, 3, 7), requires_grad=True)
    y = softplus(x).sum()
    assert calls == ["forward"]
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 / (1 + np.exp(-np.linspace(-3, 3, 7))))
    assert calls == ["forward"]  # the backward used the residual, not a second forward
    assert all(y.graph.node(n).saved == ("<freed>",) for n in y.graph.op_nodes())
    assert gg.gradcheck(softplus, [x])


@pytest.mark.parametrize("residuals, error, says", [
    (lambda x: x * 2, TypeError, "residuals a tuple of arrays .* of type ndarray"),
    (lambda x: None, TypeError, "residuals a tuple of arrays .* of type NoneType"),
    (lambda x: ([1.0, 2.0],), gg.DeviceError, "residual 0, a builtins.list, not an array"),
    (lambda x: (x, 2.0), gg.DeviceError, "residual 1, a builtins.float, not an array"),
    (lambda x: (x.astype(np.complex64),), gg.DTypeError, "residual 0, dtype complex64"),
], ids=["one-array", "none", "list", "float", "complex"])
def test_defvjp_residuals_that_are_not_a_tuple_of_arrays_are_refused_naming_the_op(
        residuals, error, says):
    """One array is not split into its rows, and what bwd could not compute with fails
    at the call that made it, naming the op and the line (not in the backward, as an
    AttributeError naming neither)."""
    @gg.custom_op("test_custom::double_res", replace=True)
    def double(x):
        return x * 2

    double.defvjp(lambda x: (double(x), residuals(x)), lambda res, grad: (grad * 2,))
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(error, match=f"test_custom::double_res: .*{says}.*test_custom_ops.py"):
        double(x)


def test_defvjp_fwd_may_call_the_op_itself_as_in_jax():
    # JAX's idiom: fwd = lambda x: (f(x), residuals). On the arrays fwd gets, the op runs
    # its forward (no node, no recursion into fwd again).
    @gg.custom_op("test_custom::softplus_jax", replace=True)
    def softplus(x):
        return gg.array_namespace(x).logaddexp(0.0, x)

    def backward(residuals, grad):
        (x,) = residuals
        return (grad * x.sigmoid(),)

    softplus.defvjp(lambda x: (softplus(x), (x,)), backward)
    x = gg.tensor(np.linspace(-3, 3, 7), requires_grad=True)
    softplus(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 / (1 + np.exp(-np.linspace(-3, 3, 7))))
    assert gg.gradcheck(softplus, [x])
