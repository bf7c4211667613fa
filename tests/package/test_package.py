"""The collection as users get it: the tarball `ansible-galaxy collection build` makes from this
repository, installed into an empty collections path (scripts/test.sh stage ``package``).

What ships (no test, no benchmark, no dev script, no private key), what the installed copy
offers (every module in `ansible-doc -l`, module_defaults groups, the editors' kit files), the
metadata that must agree (galaxy.yml, meta/runtime.yml, requirements.txt, the changelog), and
the execution environment's build context from `ansible-builder create`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, List

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
# Top-level entries of the repository that must never ship.
NOT_SHIPPED = ("tests", "benchmarks", "scripts", ".ci", ".build", ".venv", ".git", ".ansible",
               "requirements-test.txt", "ruff.toml", "pytest.ini", "changelogs/fragments")


def lines(path: Path) -> List[str]:
    """The entries of a requirements-like file (comments and blank lines dropped)."""
    entries = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return [entry for entry in entries if entry]


def run(*argv: str, env: Dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=cwd, check=False)
    assert proc.returncode == 0, "%s failed (%d):\n%s\n%s" % (argv, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="session")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT))
    (path,) = out.glob("sne-guichet-*.tar.gz")
    assert path.name == "sne-guichet-%s.tar.gz" % GALAXY["version"]
    return path


@pytest.fixture(scope="session")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("collections")
    assert not any(path.iterdir())  # an empty collections path
    run(str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(path), str(tarball))
    return path


def only(installed: Path) -> Dict[str, str]:
    """An environment where the installed copy is the only sne.guichet Ansible can find."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               HOME=str(installed.parent / "home"))
    env.pop("ANSIBLE_CONFIG", None)
    return env


# -------------------------------------------------------------------------------- the tarball
def test_the_tarball_ships_no_test_file_and_no_private_key(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        members = archive.getmembers()
        names = [m.name for m in members]
        shipped_keys = [m.name for m in members if m.isfile()
                        and b"PRIVATE KEY" in archive.extractfile(m).read()]  # type: ignore[union-attr]
    assert shipped_keys == []
    assert [n for n in names if n.split("/")[0] in NOT_SHIPPED or n.startswith(NOT_SHIPPED)] == []
    assert [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".tar.gz"))] == []
    # ... and it ships what users run: every module, playbook and role, the editors' kit.
    playbooks = ("rotate", "audit", "rollback", "verify_bundle", "simulate")
    roles = ("deploy", "retire", "async_check", "report", "simulate")
    for name in (["plugins/modules/%s.py" % m for m in MODULES]
                 + ["playbooks/%s.yml" % p for p in playbooks]
                 + ["roles/%s/tasks/main.yml" % r for r in roles]
                 + ["roles/simulate/files/make_pki.py", "roles/simulate/files/sne_simulator/__main__.py",
                    "meta/runtime.yml", "meta/execution-environment.yml", "requirements.txt", "bindep.txt",
                    "execution-environment.yml", "CHANGELOG.rst", "changelogs/changelog.yaml",
                    "docs/editors-ci.md", "README.md"]):
        assert name in names, name


def test_galaxy_metadata_names_no_placeholder() -> None:
    assert "example.invalid" not in (ROOT / "galaxy.yml").read_text()
    for key in ("repository", "documentation", "issues", "homepage"):
        assert GALAXY.get(key) in (None, "") or GALAXY[key].startswith("https://"), key


def test_requires_ansible_is_the_range_of_requirements_txt() -> None:
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    pinned = [Requirement(r) for r in lines(ROOT / "requirements.txt") if r.startswith("ansible-core")]
    assert len(pinned) == 1
    assert SpecifierSet(runtime["requires_ansible"]) == SpecifierSet(
        ",".join(str(s) + (".0" if str(s).count(".") == 1 else "") for s in pinned[0].specifier))


def test_every_module_is_in_the_all_action_group() -> None:
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    assert sorted(runtime["action_groups"]["all"]) == MODULES


def test_the_version_is_released_in_the_changelog() -> None:
    changes = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text())
    assert GALAXY["version"] in changes["releases"]
    assert "v%s" % GALAXY["version"] in (ROOT / "CHANGELOG.rst").read_text()


# ------------------------------------------------------------------------ the installed copy
def test_ansible_doc_lists_every_module_of_the_installed_copy(installed: Path) -> None:
    listed = json.loads(run(str(BIN / "ansible-doc"), "-l", "sne.guichet", "-j", env=only(installed)))
    assert sorted(name.split(".")[-1] for name in listed) == MODULES
    where = run(str(BIN / "ansible-galaxy"), "collection", "list", "sne.guichet", "--format", "json",
                env=only(installed))
    assert list(json.loads(where)) == [str(installed / "ansible_collections")]
    for module in MODULES:  # every page renders from the installed copy
        page = json.loads(run(str(BIN / "ansible-doc"), "-j", "sne.guichet." + module, env=only(installed)))
        assert page["sne.guichet." + module]["doc"]["module"] == module


def test_the_execution_environment_context_installs_our_requirements(installed: Path, tarball: Path,
                                                                     tmp_path: Path) -> None:
    work = tmp_path / "ee"
    work.mkdir()
    (work / "execution-environment.yml").write_text((ROOT / "execution-environment.yml").read_text())
    (work / tarball.name).write_bytes(tarball.read_bytes())
    run(str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "context",
        "--output-filename", "Containerfile", cwd=work)
    context = work / "context"
    containerfile = (context / "Containerfile").read_text()
    assert (context / "_build" / "collections" / tarball.name).read_bytes() == tarball.read_bytes()
    requested = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    assert requested == [{"name": "collections/" + tarball.name, "type": "file"}]
    assert "ansible-galaxy collection install" in containerfile and "introspect" in containerfile
    ansible_core = [r for r in lines(ROOT / "requirements.txt") if r.startswith("ansible-core")]
    assert ansible_core[0] in containerfile
    # What the image's introspect step will install, run here on the installed copy: the
    # controller requirements of requirements.txt (ansible-core aside) and bindep.txt.
    found = yaml.safe_load(run(sys.executable, str(context / "_build" / "scripts" / "introspect.py"),
                               "introspect", str(installed)))
    ours = [r for r in lines(ROOT / "requirements.txt") if not r.startswith("ansible-core")]
    assert sorted(r.split("#")[0].strip() for r in found["python"]) == sorted(ours)
    assert sorted(r.split("#")[0].strip() for r in found["system"]) == sorted(lines(ROOT / "bindep.txt"))
