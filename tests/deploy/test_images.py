"""The web and bot images: slim, non-root, health-checked, installed from hashed locks without TensorFlow."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.dockerfiles import (base_images, dockerignore_includes, final_stage, parse_dockerfile,
                                      parse_lock, read_dockerignore)
from tests.deploy.manifests import REPO

DOCKER = REPO / "docker"
CLIENT_IMAGES = {"web": "clients/web/page.py", "bot": "clients/bot/__main__.py"}
"""Image -> the module its CMD runs (a package's __main__.py for `python -m package`)."""
FORBIDDEN = re.compile(r"^(tensorflow.*|tf-.*|tf-nightly.*|keras|tf-keras|tensorboard.*|jax|jaxlib|torch.*)$")
"""The heavy ML runtimes a client image must never carry."""
PINNED_TAG = re.compile(r"^[a-z0-9./-]+:[0-9]+(\.[0-9]+)+[a-z0-9.-]*(@sha256:[0-9a-f]{64})?$")


def _lock(image: str) -> Path:
    """The lock file an image installs from."""
    return REPO / "requirements" / f"client-{image}.txt"


@pytest.mark.parametrize("image", sorted(CLIENT_IMAGES))
def test_client_dockerfile_runs_non_root_with_a_health_check(image):
    """The shipped stage drops root for good and tells Docker how to tell it is healthy."""
    instructions = parse_dockerfile(DOCKER / f"Dockerfile.{image}")
    last = final_stage(instructions)
    users = [i.args for i in last if i.keyword == "USER"]
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root") and (not user.isdigit() or int(user) >= 1000)
    after_user = last[[i.keyword for i in last].index("USER") + len(users) - 1:]
    assert not any(i.keyword == "USER" and i.args.split(":")[0] in ("0", "root") for i in after_user)
    (health,) = [i.args for i in last if i.keyword == "HEALTHCHECK"]
    assert "CMD" in health and "NONE" not in health.upper().split()
    cmd = next(i.args for i in reversed(last) if i.keyword == "CMD")
    module = CLIENT_IMAGES[image]
    assert module in cmd or module.removesuffix(".py").removesuffix("/__main__").replace("/", ".") in cmd


@pytest.mark.parametrize("dockerfile", ["Dockerfile.web", "Dockerfile.bot", "Dockerfile.model"])
def test_base_images_are_pinned(dockerfile):
    """Every base image is a version tag: rebuilding next month gives the same Python and busybox."""
    for image in base_images(parse_dockerfile(DOCKER / dockerfile)):
        assert PINNED_TAG.match(image), f"{dockerfile}: base image {image!r} is not pinned to a version"
        assert ":latest" not in image


@pytest.mark.parametrize("image", sorted(CLIENT_IMAGES))
def test_client_image_installs_only_from_its_hashed_lock(image):
    """pip runs with --require-hashes on the lock file, so nothing unpinned or tampered can get in."""
    instructions = parse_dockerfile(DOCKER / f"Dockerfile.{image}")
    copies = {i.args.split()[-1]: i.args.split()[-2] for i in instructions if i.keyword == "COPY"}
    installs = [i.args for i in instructions if i.keyword == "RUN" and "pip install" in i.args]
    assert len(installs) == 1
    install = installs[0]
    assert "--require-hashes" in install and "--only-binary=:all:" in install
    target = re.search(r"-r\s+(\S+)", install).group(1)
    assert copies[target] == f"requirements/client-{image}.txt"
    assert install.count("pip install") == 1, "a second pip install would bypass the lock"


@pytest.mark.parametrize("image", sorted(CLIENT_IMAGES))
def test_lock_is_fully_pinned_hashed_and_free_of_tensorflow(image):
    """Every locked package is == pinned with sha256 hashes, and no ML runtime is among them."""
    locked = parse_lock(_lock(image))
    assert len(locked) > 5
    for req in locked:
        assert req.hashes, f"{req.name} has no --hash"
        assert not FORBIDDEN.match(req.name), f"{req.name} must not be in the {image} image"


@pytest.mark.parametrize("image", sorted(CLIENT_IMAGES))
def test_lock_matches_pyproject(image):
    """The lock holds the base dependencies and the image's extra, at versions pyproject allows (else relock)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"][image]]
    locked: dict[str, set[str]] = {}
    for req in parse_lock(_lock(image)):
        locked.setdefault(req.name, set()).add(req.version)
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in locked, f"{name} is in pyproject but not in {_lock(image).name}: run requirements/compile.sh"
        assert any(req.specifier.contains(v, prereleases=True) for v in locked[name]), \
            f"{name}{req.specifier} vs locked {locked[name]}: run requirements/compile.sh"
    for extra in ("server", "train"):
        for dep in project["optional-dependencies"].get(extra, []):
            name = canonicalize_name(Requirement(dep).name)
            assert not FORBIDDEN.match(name) or name not in locked


@pytest.mark.parametrize("image", sorted(CLIENT_IMAGES))
def test_code_in_the_image_imports_only_locked_packages(image):
    """Follow the image's entry module through clients/ and serving/: every third-party import is locked
    (so a stray `import tensorflow` fails here, not in production), and every local module is copied in."""
    locked = {req.name for req in parse_lock(_lock(image))}
    copied = _copied_paths(parse_dockerfile(DOCKER / f"Dockerfile.{image}"))
    third_party, local = _import_closure([REPO / CLIENT_IMAGES[image], DOCKER / "healthcheck.py"])
    providers = metadata.packages_distributions()
    for module in sorted(third_party):
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        assert dists, f"{module} is imported by the {image} image's code but installed nowhere"
        assert dists & locked, f"{module} (from {dists}) is imported by the {image} image but not in its lock"
        assert not any(FORBIDDEN.match(d) for d in dists & locked)
    for path in sorted(local):
        rel = path.relative_to(REPO).as_posix()
        assert any(rel == c or rel.startswith(c.rstrip("/") + "/") for c in copied), \
            f"{rel} is imported by the {image} image but its Dockerfile does not COPY it"


@pytest.mark.parametrize("dockerfile", ["Dockerfile.web", "Dockerfile.bot", "Dockerfile.model"])
def test_build_context_sends_what_the_dockerfile_copies(dockerfile):
    """.dockerignore keeps the context small (no .venv, no .git) but lets every COPY source through."""
    patterns = read_dockerignore(REPO / ".dockerignore")
    for excluded in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", ".env", "secrets/telegram_bot_token"):
        assert not dockerignore_includes(patterns, excluded), f"{excluded} would be sent to the Docker daemon"
    for source in _copied_paths(parse_dockerfile(DOCKER / dockerfile)):
        if "${" in source:
            source = source.split("${")[0].rstrip("/") + "/1/saved_model.pb"
        else:
            assert (REPO / source).exists(), f"{dockerfile} copies {source}, which does not exist"
        probe = source + ("__init__.py" if source.endswith("/") else "")
        assert dockerignore_includes(patterns, probe), f"{dockerfile}: {source} is excluded by .dockerignore"


def test_model_image_is_non_root_and_takes_the_version_as_a_build_arg():
    """The model image: busybox pinned, one model version copied in by MODEL_VERSION, never root."""
    instructions = parse_dockerfile(DOCKER / "Dockerfile.model")
    args = [i.args for i in instructions if i.keyword == "ARG"]
    assert "MODEL_VERSION" in args
    copies = [i.args for i in instructions if i.keyword == "COPY"]
    assert copies == ["saved_model/deepfake_detector/${MODEL_VERSION} /model/deepfake_detector/${MODEL_VERSION}"]
    users = [i.args for i in instructions if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert [i.args for i in instructions if i.keyword == "HEALTHCHECK"] == ["NONE"]
    assert base_images(instructions)[0].startswith("busybox:")


def _copied_paths(instructions) -> list[str]:
    """Sources of COPY instructions that come from the build context (not from another stage)."""
    out = []
    for ins in instructions:
        if ins.keyword != "COPY" or "--from=" in ins.args:
            continue
        words = [w for w in ins.args.split() if not w.startswith("--")]
        out.extend(words[:-1])
    return out


def _import_closure(entries: list[Path]) -> tuple[set[str], set[Path]]:
    """Third-party top-level modules and local files reached from the entry files (lazy imports too)."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    third_party: set[str] = set()
    seen: set[Path] = set()
    todo = list(entries)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level:
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                rel = ".".join(base.relative_to(REPO).parts)
                names = [f"{rel}.{node.module}" if node.module else rel]
                names += [f"{names[0]}.{a.name}" for a in node.names]
            for name in names:
                top = name.split(".")[0]
                if top in ("clients", "serving", "training", "docker"):
                    found = _local_file(name)
                    if found is not None:
                        todo.append(found)
                        for parent in found.relative_to(REPO).parents:
                            init = REPO / parent / "__init__.py"
                            if parent != Path(".") and init.is_file():
                                todo.append(init)
                elif top not in stdlib:
                    third_party.add(top)
    local = {p for p in seen if p.is_relative_to(REPO) and not p.is_relative_to(REPO / "docker")}
    return third_party, local


def _local_file(dotted: str) -> Path | None:
    """The repo file a dotted module name refers to (a module or a package's __init__), if any."""
    base = REPO.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None
