"""A compiled plan replayed as a CUDA graph: one launch for all the kernels of a step.

gg.compile(fn, cuda_graph=True) lowers the plan in graph-ready form (static.py). On a
CUDA device, its runner then:
1. runs the first call after the trace without a graph (a warm-up: every kernel is
   compiled and loaded, cuBLAS has its handle and workspace);
2. captures the body on the second call, on a stream of its own, with a memory pool of
   its own (the graph's intermediates keep their addresses for as long as the graph
   lives, and nothing else allocates there). Before the capture the body runs once
   without a graph on the same buffers, and the captured graph, launched on restored
   inputs, must give the same bits (results, updated parameters and state); if it does
   not, or the capture fails (an op that reads a value on the host, a library that
   cannot be captured), the plan runs without a graph from then on, and a
   CompileWarning says why;
3. replays it on later calls: prepare's arguments and random draws are copied into the
   graph's input buffers, its host scalars into the graph's scalar buffers (one copy
   per vector), the graph is launched, and finish stores what it computed. Results are
   copied out (a result kept by the caller is not overwritten by the next replay);
   gradients and new state live in the graph's buffers, as a tensor's array (the next
   replay writes them again, as eager training replaces them).
A tensor the graph reads that holds another array than it did at the capture (a
parameter given a new array, a .grad set from outside) is read through a new capture.
"""

import contextlib
import warnings

from .static import COPY, FIXED, SCALARS, entered, lower_static

CAPTURE_BACKENDS = ("cupy",)
MAX_CAPTURES = 3  # captures of one plan before it runs without a graph for good
STATIC_BACKENDS = ("numpy", "cupy")  # namespaces with copyto: those of a graph-ready plan


def graph_ready(program, memory, n_args, name):
    """(run, source) of a graph-ready plan, or None where the program cannot be made
    graph-ready (it runs as a plain plan, with a warning)."""
    from .compiled import CompileWarning

    backend = program.backend()
    if backend is None or backend.name not in STATIC_BACKENDS:
        where = "no device" if backend is None else f"the {backend.name} backend"
        warnings.warn(f"gg.compile({name}, cuda_graph=True): the plan runs on {where}; it "
                      "runs as a plan without a graph", CompileWarning, stacklevel=5)
        return None
    static = lower_static(program, memory, n_args, kernel_for=capture_kernel_for)
    if backend.name not in CAPTURE_BACKENDS:
        warnings.warn(f"gg.compile({name}, cuda_graph=True): the function runs on the "
                      f"{backend.name} backend; CUDA graphs need a CUDA device, so its "
                      "graph-ready plan runs without one", CompileWarning, stacklevel=5)
        return static, static.source
    runner = CudaGraphRunner(static, name)
    collective = next((n.op.name for n in program.op_nodes()
                       if getattr(n.op, "effects", False)), None)
    if collective is not None:
        # A collective (gpugrad.distributed's gradient average) waits on the host for the
        # other processes: inside a capture that wait fails, and NCCL's communicator is
        # aborted on a failed wait. So no capture is tried.
        runner._give_up(f"the function calls {collective}, which waits on the host for "
                        "other processes and cannot be captured")
    return runner, static.source


def capture_kernel_for(node, backend):
    """The kernels of a graph-ready plan: those of the eager plan, except on CuPy the
    matrix products, which go to cuBLAS directly (CuPy's own refuse to be captured)."""
    if backend.name == "cupy":
        from ..backends import cublas

        kernel = cublas.CAPTURABLE.get(node.op.name)
        if kernel is not None:
            return kernel
    return node.op.kernel_for(backend.name)


class CudaGraphs:
    """What a runner asks of the device: CUDA graphs through CuPy."""

    def to_device(self, vector):
        import cupy

        return cupy.asarray(vector)

    def write(self, buffer, vector):
        import cupy

        # One host-to-device copy, ordered on the current stream before the launch (from
        # pageable memory CUDA stages it, and may wait for the stream to do so).
        buffer.set(vector, stream=cupy.cuda.get_current_stream())

    def equal(self, a, b):
        import cupy

        return bool(cupy.array_equal(a, b, equal_nan=True))

    def capture(self, body, buffers):
        """(graph, the body's outputs, its memory pool) of body captured on a stream of
        its own, with a memory pool of its own (the graph's intermediates keep their
        addresses there, and nothing else allocates there); nothing runs until
        graph.launch()."""
        import cupy

        pool = cupy.cuda.MemoryPool()
        stream = cupy.cuda.Stream(non_blocking=True)
        with cupy.cuda.using_allocator(pool.malloc), stream:
            stream.begin_capture()
            try:
                outputs = body(*buffers)
            except BaseException:
                try:  # leave capture mode; the body's error is the one worth reporting
                    stream.end_capture()
                except Exception:  # noqa: BLE001, S110 - the capture was invalidated
                    pass
                pool.free_all_blocks()
                raise
            graph = stream.end_capture()
        return graph, list(outputs), pool

    def release(self, pool):
        """Give back a dropped graph's memory: CuPy keeps a pool's cached blocks until
        asked, even once the pool object is gone. After the graph's last launch ran."""
        import cupy

        cupy.cuda.get_current_stream().synchronize()
        pool.free_all_blocks()


class CudaGraphRunner:
    """Runs a StaticPlan: warm-up, capture (checked), then replays (module docstring).
    status: "warming up", "captured", or "not captured: <why>"; captures: how many."""

    def __init__(self, static, name, device=None):
        self.static = static
        self.name = name
        self.device = device or CudaGraphs()
        self.status = "warming up"
        self.graph = None
        self.captures = 0
        self._warmed = False
        self._buffers = self._outputs = self._kept = None

    def __call__(self, *arrays):
        with entered(self.static.context):
            return self._run(arrays)

    def _run(self, arrays):
        static = self.static
        if not self._warmed or self.status.startswith("not captured"):
            self._warmed = True
            if static.writes_args and not self.status.startswith("not captured"):
                # A graph writes into its own copies of the arguments, not the caller's.
                self._give_up("the function updates an argument in place")
            return static(*arrays)
        inputs = static.prepare(*arrays)
        if self.graph is not None and self._fixed_unchanged(inputs):
            return self._replay(inputs)
        if self.graph is not None:
            if self.captures >= MAX_CAPTURES:
                self._give_up(f"tensors the graph reads held new arrays {self.captures} "
                              "times (e.g. parameters updated outside the function by "
                              "assignment, not in place)")
                return static.finish(*static.body(*static.inputs_on_device(inputs)))
            from .compiled import CompileWarning

            warnings.warn(f"gg.compile({self.name}, cuda_graph=True): capturing anew: a "
                          "tensor the graph reads holds another array than at its capture",
                          CompileWarning, stacklevel=4)
        return self._capture(inputs)

    # --- replay ---------------------------------------------------------------------------
    def _fixed_unchanged(self, inputs):
        for value, kind, buffer in zip(inputs, self.static.slots, self._buffers, strict=True):
            if kind == FIXED and value is not buffer:
                return False
        return True

    def _replay(self, inputs):
        for value, kind, buffer in zip(inputs, self.static.slots, self._buffers, strict=True):
            if kind == COPY and value is not buffer:
                buffer[...] = value
            elif kind == SCALARS:
                self.device.write(buffer, value)
        try:
            self.graph.launch()
        except Exception as exc:  # noqa: BLE001 - whatever it is, run without the graph
            self._give_up(f"a replay failed ({type(exc).__name__}: {exc})")
            static = self.static
            return static.finish(*static.body(*static.inputs_on_device(inputs)))
        return self._finish(self._outputs)

    def _finish(self, outputs):
        n = self.static.n_results
        return self.static.finish(*[o.copy() for o in outputs[:n]], *outputs[n:])

    # --- capture --------------------------------------------------------------------------
    def _capture(self, inputs):
        """Capture the body on this call's inputs, check it, and run this call's step."""
        static = self.static
        self._drop_graph()
        self.captures += 1
        # Copies keep the arguments' memory order: reductions then add in the same order.
        buffers = [value.copy(order="K") if kind == COPY else
                   self.device.to_device(value) if kind == SCALARS else value
                   for value, kind in zip(inputs, static.slots, strict=True)]
        fixed = [b for b, kind in zip(buffers, static.slots, strict=True) if kind == FIXED]
        before = [b.copy() for b in fixed]
        reference = list(static.body(*buffers))  # this call's step, without a graph
        expected = [o.copy() for o in reference]
        after = [b.copy() for b in fixed]
        _restore(fixed, before)
        kept = None
        try:
            with _undo_disarmed(static.undo):  # the reference run was this call's step
                graph, outputs, kept = self.device.capture(static.body, buffers)
            mismatch = None
            for launch in ("first", "second"):  # a graph must relaunch, not just launch
                graph.launch()
                mismatch = self._first_difference(outputs, expected, fixed, after)
                if mismatch is not None:
                    mismatch = f"{mismatch} (its {launch} launch)"
                    break
                if launch == "first":
                    _restore(fixed, before)
        except Exception as exc:  # noqa: BLE001 - any failure means: run without a graph
            mismatch = f"the capture failed ({type(exc).__name__}: {exc}{_why_cublas()})"
        if mismatch is not None:
            if kept is not None:
                self.device.release(kept)
            _restore(fixed, after)  # the reference run's step stands
            self._give_up(mismatch)
            return self._finish(reference)
        self.graph, self._buffers, self._outputs, self._kept = graph, buffers, outputs, kept
        self.status = "captured"
        return self._finish(outputs)

    def release(self):
        """Drop the graph and give back its memory (the plan itself is being dropped)."""
        self._drop_graph()

    def _drop_graph(self):
        if self._kept is not None:
            self.device.release(self._kept)
        self.graph = self._kept = None

    def _give_up(self, why):
        """From now on the plan runs without a graph; a warning says why."""
        from .compiled import CompileWarning

        self._drop_graph()
        self.status = f"not captured: {why}"
        warnings.warn(f"gg.compile({self.name}, cuda_graph=True): {why}; the plan runs "
                      "without a CUDA graph", CompileWarning, stacklevel=6)

    def _first_difference(self, outputs, expected, fixed, after):
        """None when the graph's launch gave the reference run's bits, else what differs."""
        for i, (o, e) in enumerate(zip(outputs, expected, strict=True)):
            if not self.device.equal(o, e):
                return f"the graph's output {i} differs from the plan run without it"
        for i, (b, a) in enumerate(zip(fixed, after, strict=True)):
            if not self.device.equal(b, a):
                return f"the graph's update of input array {i} differs from the plan run " \
                       "without it"
        return None


def _why_cublas():
    """Why the products did not go to cuBLAS directly, where that is the case."""
    from ..backends import cublas

    why = cublas.unavailable()
    return f"; cuBLAS could not be called directly: {why}" if why else ""


@contextlib.contextmanager
def _undo_disarmed(undo):
    if undo is None:
        yield
        return
    undo.armed = False
    try:
        yield
    finally:
        undo.armed = True


def _restore(arrays, saved):
    for a, s in zip(arrays, saved, strict=True):
        a[...] = s
