"""Files written whole or not at all: a temporary file beside the target, renamed over it
once complete, so that a failure midway (Ctrl-C, a full disk, a program killed while it
writes) leaves whatever the target held before."""

import errno
import os


def create_temporary(folder, suffix):
    """A new file in `folder`, opened for writing: (fd, path). Created with mode 0o666
    for the kernel to apply the umask to, so that the file, once renamed into place, has
    the mode any new file gets (mkstemp's would be 0o600, whatever the umask); O_EXCL
    keeps it ours alone."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".tmp-{os.urandom(8).hex()}{suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # another writer's name, by a 1 in 2**64 chance
            continue


def target_of(path):
    """Where writing `path` lands: through a symbolic link, the file it points to (the
    link stays a link), as open() would write; a temporary file then sits beside that
    file, on its filesystem."""
    return os.path.realpath(path) if os.path.islink(path) else path


def remove_quietly(path):
    """Delete a temporary file that may or may not exist (a failed write's)."""
    if os.path.exists(path):
        os.remove(path)


def write_whole(path, write):
    """`write(tmp)` fills a temporary file beside `path`, which then replaces `path`: a
    write that fails midway (a full disk, a drawing program killed after writing part
    of its output) leaves what `path` held before, not a truncated file."""
    path = os.fspath(path)
    target = target_of(path)
    folder = os.path.dirname(os.path.abspath(target))
    # Said of the path asked for: the temporary file's name would mean nothing.
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"no folder {folder!r} to write into", path)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "a folder, not a file", path)
    fd, tmp = create_temporary(folder, os.path.splitext(target)[1])
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        remove_quietly(tmp)
        raise


def write_text(path, text, encoding=None):
    """`text` into `path`, whole or not at all (see write_whole)."""
    def write(tmp):
        with open(tmp, "w", encoding=encoding) as f:
            f.write(text)

    write_whole(path, write)
