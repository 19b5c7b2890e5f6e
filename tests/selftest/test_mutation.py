"""The mutation analysis' cheap parts: stale results, equivalent-mutant declarations.

The analysis itself (``nox -s mutation``) needs cosmic-ray and hours of CPU; these tests need
neither: they check what ``nox -s verify`` relies on and how declarations are matched."""
import json

import pytest

from grader.instructor import mutation as mut

SURVIVORS = [
    {"operator": "core/ReplaceComparisonOperator_Eq_GtE", "occurrence": 0, "line": 'if a >= "relu"'},
    {"operator": "core/NumberReplacer", "occurrence": 3, "line": "x = 2"},
]
KILLED = [{"operator": "core/AddNot", "occurrence": 1, "line": "if not a:"}]


def entry(operator, occurrence, line):
    return {"operator": operator, "occurrence": occurrence, "line": line, "reason": "because"}


@pytest.fixture
def kata(tmp_path, monkeypatch):
    for d in ("solutions", "tests/mutation"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "manifest.toml").write_text("")
    (tmp_path / "solutions" / "ex.py").write_text("x = 1\n")
    (tmp_path / "tests" / "test_ex.py").write_text("def test_x(): pass\n")
    monkeypatch.setenv("KATA_ROOT", str(tmp_path))
    return tmp_path


def test_declared_survivor_is_equivalent_the_other_is_reported():
    eq, undeclared, stale = mut.match_declarations(SURVIVORS, KILLED, [entry(*SURVIVORS[0].values())])
    assert eq == [SURVIVORS[0]] and undeclared == [SURVIVORS[1]] and stale == []


@pytest.mark.parametrize("declared, says", [
    (entry("core/NumberReplacer", 5, "x = 2"), "now occurrence 3"),                # the code moved
    (entry("core/NumberReplacer", 3, "x = 0"), "now mutates 'x = 2'"),           # another line
    (entry("core/AddNot", 1, "if not a:"), "now kills it"),                      # suite improved
    (entry("core/AddNot", 9, "gone"), "no surviving mutant"),
])
def test_an_entry_that_no_longer_matches_is_stale(declared, says):
    eq, undeclared, stale = mut.match_declarations(SURVIVORS, KILLED, [declared])
    assert eq == [] and undeclared == SURVIVORS
    assert len(stale) == 1 and says in stale[0]


def test_declarations_need_a_reason(kata):
    path = kata / "tests" / "mutation" / "ex.toml"
    path.write_text('[[equivalent]]\noperator = "core/AddNot"\noccurrence = 0\nline = "x"\nreason = " "\n')
    with pytest.raises(mut.DeclarationError, match="reason"):
        mut.load_declarations("ex")
    path.write_text('[operators]\nexclude = ["core/ReplaceBinaryOperator_.*_BitOr"]\n')
    with pytest.raises(mut.DeclarationError, match="reason"):
        mut.load_declarations("ex")


def test_stored_result_goes_stale_when_solution_or_suite_changes(kata):
    assert "no stored mutation result" in mut.stale_results(["ex"])[0]
    results = {"exercises": {"ex": {"made": 1, "sha256": mut.source_hashes("ex")}}}
    (kata / mut.RESULTS_FILE).write_text(json.dumps(results))
    assert mut.stale_results(["ex"]) == []
    (kata / "tests" / "test_ex.py").write_text("def test_x(): assert True\n")
    (line,) = mut.stale_results(["ex"])
    assert "tests/test_ex.py changed" in line and "nox -s mutation -- ex" in line


def test_checked_in_declarations_parse():
    """Every tests/mutation/<exercise>.toml of the kata is well formed, each entry with a reason."""
    from grader import manifest

    for ex in manifest.load():
        mut.load_declarations(ex.name)


def test_warm_server_runs_the_grader_like_a_new_process(tmp_path):
    """The fork server's child gives the exit status and output a cold ``python -m grader`` gives,
    and a child past its timeout is killed with its process group."""
    import os
    import subprocess
    import sys

    from grader.manifest import root

    env = {**os.environ, "KATA_LANG": "en"}
    cold = subprocess.run([sys.executable, "-m", "grader", "no_such_exercise"], cwd=root(), env=env,
                          capture_output=True, text=True)
    server = mut.WarmServer(sys.executable, env)
    try:
        code, timed_out = server.run(["no_such_exercise"], tmp_path / "log", 120)
        assert (code, timed_out) == (cold.returncode, False) == (2, False)
        assert (tmp_path / "log").read_text() == cold.stdout + cold.stderr
        # grading a whole exercise takes seconds (a sandbox starts); one second is always too short
        code, timed_out = server.run(["attention_numpy", "--target", "solutions"], tmp_path / "log2", 1.0)
        assert timed_out and code == -9
        assert server.alive()
    finally:
        server.close()


def test_a_rubric_item_in_a_marker_leaves_the_suite_hash_alone_any_other_change_does_not(kata):
    suite = kata / "tests" / "test_ex.py"
    suite.write_text('@pytest.mark.judges("f", stage=2)\ndef test_x(): pass\n')
    before = mut.source_hashes("ex")["suite"]
    suite.write_text('@pytest.mark.judges("f", stage=2, item="masking")\ndef test_x(): pass\n')
    assert mut.source_hashes("ex")["suite"] == before       # points move, verdicts do not
    suite.write_text('@pytest.mark.judges("f", stage=1, item="masking")\ndef test_x(): pass\n')
    assert mut.source_hashes("ex")["suite"] != before
