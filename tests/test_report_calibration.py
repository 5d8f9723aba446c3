"""The report's calibration section across datasets (``bayesmoe report --calibration FILE``)."""
import json
from pathlib import Path

import pytest

from bayesmoe.cli.main import main
from bayesmoe.errors import BayesMoeError
from bayesmoe.report.calibration import calibration_section, calibration_tables, read_calibration

SHIPPED = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration_results.json"


def _scores(law_cov, with_cov, err=0.01, r2=0.9):
    return {"law_only": {"coverage": law_cov, "median_abs_rel_error": err, "r2": r2},
            "with_discrepancy": {"coverage": with_cov, "median_abs_rel_error": err, "r2": r2}}


RECORDS = [
    {"case": "alpha", "law": "chinchilla", "n_train": 50, "n_heldout": 10, "heldout_distance": 1.2,
     **_scores(0.6, 0.9)},
    {"case": "beta", "law": "joint", "n_train": 40, "n_heldout": 9, "heldout_distance": 2.0, **_scores(0.89, 1.0)},
    {"case": "alpha, two steps", "law": "chinchilla", "n_train": 30,
     "by_step": {"1": {"n_runs": 8, "median_distance": 0.5, **_scores(0.5, 0.75)},
                 "2": {"n_runs": 7, "median_distance": 1.5, **_scores(0.3, 0.86)}}},
]


def test_tables_give_both_coverages_and_the_verdict_against_the_band(tmp_path):
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(RECORDS))
    one, two = calibration_tables(read_calibration(path))
    assert list(one["case (law)"]) == ["alpha (chinchilla)", "beta (joint)"]
    assert list(one["90% coverage law-only / with"]) == ["60% / 90%", "89% / 100%"]
    assert list(one["with the term vs 80-97%"]) == ["in the band", "above"]
    assert list(two["step"]) == ["1", "2"] and list(two["with the term vs 80-97%"]) == ["below", "in the band"]
    html = calibration_section(read_calibration(path), path).body
    assert "Two steps past the data" in html and "alpha (chinchilla)" in html and str(path) in html


def test_the_count_column_reads_the_joint_predictive_check_and_old_records_show_a_dash(tmp_path):
    counted = json.loads(json.dumps(RECORDS[:2]))
    counted[1]["with_discrepancy"]["count"] = {"covered": 9, "n_runs": 9, "expected": 8.1, "range": [6, 9],
                                               "p_at_least": 0.46, "p_at_most": 1.0, "p_all": 0.46,
                                               "consistent": True}
    counted[0]["with_discrepancy"]["count"] = {"covered": 10, "n_runs": 10, "expected": 9.0, "range": [8, 10],
                                               "p_at_least": 0.03, "p_at_most": 1.0, "p_all": 0.03,
                                               "consistent": False}
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(counted + RECORDS[2:]))
    one, two = calibration_tables(read_calibration(path))
    column = "covered with the term vs its joint predictive"
    assert list(one[column]) == ["10 of 10; expected 8-10, all 3% of the time: too many covered",
                                 "9 of 9; expected 6-9, all 46% of the time: consistent"]
    assert list(two[column]) == ["-", "-"]


@pytest.mark.parametrize("content, message", [
    ("not json", "not JSON"),
    ("[]", "non-empty JSON list"),
    (json.dumps([{"law": "x"}]), "without a 'case'"),
    (json.dumps([{"case": "a", "law_only": {"coverage": 1}}]), "case 'a' has no numeric 'law_only'"),
    (json.dumps([{"case": "a", "by_step": {"1": {"law_only": {}}}}]), "case 'a' step 1 has no numeric"),
])
def test_a_bad_results_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "cal.json"
    path.write_text(content)
    with pytest.raises(BayesMoeError, match=message):
        read_calibration(path)
    with pytest.raises(BayesMoeError, match="is not a file"):
        read_calibration(tmp_path / "missing.json")


def test_the_shipped_results_render_every_case():
    records = read_calibration(SHIPPED)
    one, two = calibration_tables(records)
    assert len(one) + len(two) == sum(len(r.get("by_step", {"top": 0})) for r in records)
    assert any(case.startswith("sweep_gpu ") for case in one["case (law)"])


def test_cli_bad_calibration_file_exits_2_without_writing(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("[]")
    code = main(["report", str(tmp_path / "missing.nc"), "--out", str(tmp_path / "r"),
                 "--calibration", str(tmp_path / "bad.json")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "bad.json" in err[0]
    assert not (tmp_path / "r").exists()
