"""The errors gpugrad raises: each a subclass of the built-in a user would catch."""


class GpugradError(Exception):
    """Base class of every error gpugrad raises on purpose."""


class ShapeError(GpugradError, ValueError):
    """Shapes that do not fit an op (broadcasting, matmul, reshape, indexing)."""


class OutOfBoundsError(ShapeError, IndexError):
    """An index outside a tensor's shape."""


class DTypeError(GpugradError, TypeError):
    """A dtype an op cannot take (e.g. gradients of integer tensors)."""


class DeviceError(GpugradError, RuntimeError):
    """Tensors on different devices in one op, or a device that cannot be used."""


class GraphError(GpugradError, RuntimeError):
    """Misuse of the recorded graph: backward twice, backward of a non-scalar, ..."""


class StateDictError(GpugradError, ValueError):
    """A state dict that does not fit a module: missing, unexpected or mis-shaped keys."""


class GradcheckError(GpugradError, AssertionError):
    """Analytical gradients disagree with finite differences."""


def retyped(exc, message):
    """An error of exc's type saying `message` (the op, the user's line added to a
    kernel's or a user function's own error), so that `except ValueError` still catches
    it; exc itself where its type takes no message. An IndexError (an index array's
    value out of bounds, which only the kernel sees) becomes OutOfBoundsError, still an
    IndexError, as an int index out of bounds is."""
    if isinstance(exc, IndexError) and not isinstance(exc, OutOfBoundsError):
        return OutOfBoundsError(message)
    try:
        return type(exc)(message)
    except Exception:
        return exc
