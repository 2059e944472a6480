"""Set-up files agree with each other: pyproject.toml, environment.yml, scripts/setup_env.py."""

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
# conda package names that stand for a PyPI name
CONDA_TO_PYPI = {"pytorch-cpu": "torch", "pytorch-gpu": "torch", "pytorch": "torch"}


def _pins(requirements):
    pins = {}
    for line in requirements:
        req = Requirement(line)
        pins[req.name.lower().replace("_", "-")] = str(req.specifier)
    return pins


def pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += [r for r in extra if not r.startswith(project["name"] + "[")]
    return _pins(lines)


def environment_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    lines = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            lines += [r for r in dep["pip"] if not r.startswith("-e")]
        else:
            name = re.split(r"[<>=!]", dep, maxsplit=1)[0]
            if name in CONDA_TO_PYPI:
                lines.append(CONDA_TO_PYPI[name] + dep[len(name):])
    return _pins(lines)


def test_environment_yml_carries_the_same_pins_as_pyproject():
    assert environment_pins() == pyproject_pins()


def test_the_book_toolchain_is_pinned_as_documented():
    pins = pyproject_pins()
    assert pins["jupyter-book"] == "<2,>=1.0.4.post1"
    assert pins["sphinx-book-theme"] == "<1.4"
    assert pins["nbgrader"] == "==0.9.6"


@pytest.fixture
def setup_env(monkeypatch):
    spec = importlib.util.spec_from_file_location("setup_env", ROOT / "scripts" / "setup_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []
    monkeypatch.setattr(module, "pip", lambda *args: calls.append(args) or 0)
    monkeypatch.setattr(module.platform, "system", lambda: "Linux")
    return module, calls


def test_setup_keeps_an_installed_torch(setup_env):
    module, calls = setup_env
    module.install_torch()  # torch is importable in the test environment
    assert calls == []


def test_setup_installs_a_cpu_torch_without_a_gpu(setup_env, monkeypatch):
    module, calls = setup_env
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(module, "has_nvidia_gpu", lambda: False)
    monkeypatch.setattr(module, "local_cpu_wheel_available", lambda version: True)
    module.install_torch()
    assert calls == [(f"torch=={module.TORCH_CPU_VERSION}",)]
    calls.clear()
    monkeypatch.setattr(module, "local_cpu_wheel_available", lambda version: False)
    module.install_torch()
    assert calls == [(f"torch=={module.TORCH_CPU_VERSION}", "--index-url",
                      module.TORCH_CPU_INDEX)]


def test_setup_takes_the_default_torch_on_a_gpu_machine(setup_env, monkeypatch):
    module, calls = setup_env
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(module, "has_nvidia_gpu", lambda: True)
    module.install_torch()
    assert calls == [("torch",)]


def test_setup_reports_a_failed_torch_install(setup_env, monkeypatch):
    module, _ = setup_env
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(module, "has_nvidia_gpu", lambda: True)
    monkeypatch.setattr(module, "pip", lambda *args: 1)
    with pytest.raises(SystemExit, match="installing torch failed"):
        module.install_torch()


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci
