"""scripts/check_tolerances.py grades a lab's own solution on many seeds: it passes a lab whose
tolerances hold, and finds the seed on which lab 9's float32 coupling case failed a right
answer while its gradient was compared entry by entry (the failure CI once met)."""

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("check_tolerances",
                                              ROOT / "scripts" / "check_tolerances.py")
check_tolerances = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(check_tolerances)


def test_a_lab_whose_tolerances_hold_passes(capsys):
    assert check_tolerances.main(["lab09_flows", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "lab09_flows coupling_forward: 0 failing case(s) in 2 seeds" in out
    assert out.count("0 failing case(s)") == 5
    assert check_tolerances.main(["--only", "maf_inverse", "lab09_flows", "--seeds", "1"]) == 0
    assert capsys.readouterr().out.count("failing case(s)") == 1


def test_an_entry_by_entry_float32_gradient_tolerance_is_caught(tmp_path, capsys):
    lab = tmp_path / "lab09_flows"
    shutil.copytree(ROOT / "solutions" / "lab09_flows", lab)
    checks = lab / "hidden_checks.py"
    text = checks.read_text()
    line = (',\n                       gradient_compare=close(rtol=1e-4, atol=1e-4, '
            'relative_to="largest"))')
    assert text.count(line) == 1
    checks.write_text(text.replace(line, ")"))  # the gradient compared as the value is
    found = check_tolerances.failures(lab, [148, 149], ("coupling_forward",))
    assert list(found) == ["coupling_forward"]
    [(seed, label, message)] = found["coupling_forward"]
    assert (seed, label) == (149, "float32, D=5")
    assert "its gradient with respect to w1 differs from the reference" in message
    assert check_tolerances.failures(ROOT / "solutions" / "lab09_flows", [149]) == {
        f: [] for f in ("coupling_forward", "coupling_inverse", "actnorm_parameters",
                        "conv1x1_forward", "maf_inverse")}


@pytest.mark.parametrize("argv, word", [
    ([], "name a lab"), (["lab09_flows", "--seeds", "0"], "--seeds must be >= 1"),
    (["lab09_flows", "no_such_lab"], "no lab 'no_such_lab'"),
    (["lab09_flows", "--only", "coupling_forwards"], "--only: no exercise 'coupling_forwards'")])
def test_bad_arguments_are_refused_by_name(argv, word, capsys):
    with pytest.raises(SystemExit) as exit_info:
        check_tolerances.main(argv)
    assert exit_info.value.code == 2
    assert word in capsys.readouterr().err


def test_the_in_process_helpers_refuse_an_unknown_function_and_load_every_answer():
    from dgm_lab.grading import LabSource, judge_in_process, solution_namespace

    folder = ROOT / "solutions" / "lab09_flows"
    lab, namespace = LabSource.load(folder).lab, solution_namespace(folder)
    assert all(callable(namespace[ex.function]) for ex in lab.exercises)
    assert "torch" in namespace  # the locked imports cell ran first
    with pytest.raises(ValueError, match="function: the lab has no exercise 'coupling'"):
        judge_in_process(lab, "coupling", namespace["coupling_forward"], 0)
    wrong = judge_in_process(lab, "coupling_forward", lambda *args: (args[0], args[0][:, 0]), 0)
    assert wrong and not any(case.passed for case in wrong)  # the identity is no coupling layer
