"""The mutant list of scripts/mutation_test.py stays well-formed and covers the whole library.

Running the mutants takes minutes per module, so it is not part of the test command; this
test only checks that every mutant still applies (its ``find`` text occurs exactly once), that
its tests exist, and that every module of ``dgm_lab`` has mutants.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mutation_test",
                                               ROOT / "scripts" / "mutation_test.py")
mutation_test = importlib.util.module_from_spec(_spec)
sys.modules["mutation_test"] = mutation_test  # its dataclass looks its module up
_spec.loader.exec_module(mutation_test)


def test_every_mutant_applies_exactly_once_and_names_existing_tests():
    mutants = mutation_test.load_mutants()
    assert not mutation_test.problems(mutants)


def test_every_module_of_the_library_has_mutants():
    mutants = mutation_test.load_mutants()
    covered = {m.file for m in mutants}
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "dgm_lab").rglob("*.py")
               if p.name != "__init__.py" or p.stat().st_size > 2000}
    missing = sorted(modules - covered)
    assert not missing, f"modules without mutants in tests/mutants/: {missing}"
    assert len(mutants) >= 40


def test_problems_flags_a_find_that_no_longer_matches(tmp_path):
    (tmp_path / "m.py").write_text("x = 1\nx = 1\n")
    m = mutation_test.Mutant("twice", "m.py", "x = 1", "x = 2", ("m.py",), "t.toml")
    gone = mutation_test.Mutant("gone", "m.py", "y = 1", "y = 2", ("m.py",), "t.toml")
    found = mutation_test.problems([m, gone], tmp_path)
    assert [p.split(":")[0] for p in found] == ["twice", "gone"]
