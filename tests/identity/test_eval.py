"""`python -m protocol.identity_eval` on small hand-written pair files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from protocol.identity_eval import EvalError, check_targets, evaluate, load_pairs, main

SMALL = Path(__file__).parent / "data" / "eval_small.jsonl"


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def row(output: str, cls: str) -> list[str]:
    lines = [line.split() for line in output.splitlines() if line.startswith(cls + " ")]
    assert len(lines) == 1
    return lines[0]


def test_the_small_file_is_counted_per_class_and_strength() -> None:
    report = evaluate(load_pairs(SMALL))
    assert {cls: s.pairs for cls, s in report.classes.items()} == {
        "case_space": 2,
        "title_and_spelling": 1,
        "typo_deletion": 1,
        "phone_format": 1,
        "neg_same_dob": 1,
        "neg_same_name_other_dob": 1,
        "neg_one_token_differs": 1,
    }
    levels = {cls: s.levels for cls, s in report.classes.items()}
    assert levels["case_space"] == {"strong": 0, "exact": 2, "variant": 0, "none": 0}
    assert levels["title_and_spelling"]["exact"] == 1
    assert levels["typo_deletion"]["variant"] == 1
    assert levels["phone_format"]["strong"] == 1
    for negative in ("neg_same_dob", "neg_same_name_other_dob", "neg_one_token_differs"):
        assert levels[negative]["none"] == 1
    baseline = {cls: s.baseline_rate for cls, s in report.classes.items()}
    # The baseline finds plain case changes and a near-identical name, but not a title with an
    # old spelling, nor a phone number written in two forms.
    assert baseline["case_space"] == 1.0 and baseline["typo_deletion"] == 1.0
    assert baseline["title_and_spelling"] == 0.0 and baseline["phone_format"] == 0.0
    assert report.records == 16 and 0 < report.max_keys <= 32


def test_the_script_prints_both_tables_and_passes_its_targets() -> None:
    code, output = run(str(SMALL), "--check")
    assert code == 0
    #         class pairs same rate strong exact variant baseline by-doc by-name
    assert row(output, "case_space") == [
        "case_space",
        "2",
        "yes",
        "1.000",
        "0.000",
        "1.000",
        "0.000",
        "1.000",
        "0.000",
        "1.000",
    ]
    assert row(output, "phone_format")[3:5] == ["1.000", "1.000"]
    assert row(output, "neg_same_dob")[2:4] == ["no", "0.000"]
    assert "MISSED" not in output


def write(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def pair(a: str, b: str, same: bool, cls: str, dob_b: str = "1980-02-03") -> dict[str, object]:
    return {
        "a": {"full_name": a, "date_of_birth": "1980-02-03", "nationality": "ID"},
        "b": {"full_name": b, "date_of_birth": dob_b, "nationality": "ID"},
        "same": same,
        "cls": cls,
    }


def test_a_missed_target_is_reported_and_fails_the_check(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            # two people whose middle names share an initial: a variant false match
            pair("Cucu Siti Setiawan", "Cucu Sari Setiawan", False, "neg_same_dob"),
            # a dropped first letter: the baseline finds it, the keys do not
            pair("Galih Utomo", "Alih Utomo", True, "typo_deletion"),
            # a record refused as invalid is reported, not silently counted as a miss
            pair("Ahmad Utomo", "Ahmad Utomo", True, "case_space", dob_b="03/02/1980"),
        ],
    )
    code, output = run(str(path), "--check")
    assert code == 1
    assert row(output, "neg_same_dob")[3:7] == ["1.000", "0.000", "0.000", "1.000"]
    assert "[MISSED] neg_same_dob: false-match rate 1.0000 <= 0.005" in output
    assert "[ok] neg_same_dob: strong+exact false matches 0.000 == 0" in output
    assert "[MISSED] typo_deletion: recall 0.000 >= baseline 1.000" in output
    assert "[MISSED] case_space: 1 record(s) refused as invalid" in output
    # Without --check the report is printed and the exit status is 0.
    assert run(str(path))[0] == 0


def test_an_exact_key_shared_by_a_negative_pair_misses_the_strict_target(tmp_path: Path) -> None:
    path = write(tmp_path, [pair("Ahmad Utomo", "Achmad Oetomo", False, "neg_labelled_wrong")])
    results = dict(check_targets(evaluate(load_pairs(path))))
    assert results["neg_labelled_wrong: strong+exact false matches 1.000 == 0"] is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no pairs"),
        ("{not json}\n", ":1: not JSON"),
        ('{"a": {}, "b": {}, "same": "yes", "cls": "x"}\n', ":1: needs objects"),
    ],
)
def test_a_malformed_file_is_refused_with_its_line(
    tmp_path: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EvalError, match=message):
        load_pairs(path)
    assert run(str(path))[0] == 2
    assert message.strip(":1 ") in capsys.readouterr().err


def test_a_class_mixing_same_and_not_same_pairs_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, [pair("A Bc", "A Bc", True, "x"), pair("A Bc", "D Ef", False, "x")])
    with pytest.raises(EvalError, match="mixes"):
        evaluate(load_pairs(path))
