"""The runs table: validation errors name column, rows and fix; derived columns are filled."""
import numpy as np
import pandas as pd
import pytest

from bayesmoe.errors import BayesMoeError
from bayesmoe.runs import data_hash, load_runs, select_runs, split_top_compute, validate_runs


def table(**overrides):
    base = {"run_id": ["a", "b", "c"], "n_active": [1e7, 1e8, 1e9], "tokens": [1e9, 2e9, 4e9], "loss": [3.0, 2.8, 2.5]}
    base.update(overrides)
    return pd.DataFrame(base)


def test_derived_columns_for_dense_runs():
    runs = validate_runs(table())
    assert runs["n_total"].tolist() == [1e7, 1e8, 1e9]
    assert runs["n_embedding"].tolist() == [0, 0, 0]
    np.testing.assert_allclose(runs["compute"], 6 * np.array([1e7 * 1e9, 1e8 * 2e9, 1e9 * 4e9]))


def test_compute_uses_flops_per_token_where_known():
    runs = validate_runs(table(flops_per_token=[1e8, np.nan, 1e10]))
    np.testing.assert_allclose(runs["compute"], [1e8 * 1e9, 6 * 1e8 * 2e9, 1e10 * 4e9])


def test_n_active_filled_from_n_total_for_dense_only():
    frame = table().drop(columns="n_active").assign(n_total=[1e7, 1e8, 1e9], n_experts=[1, 1, 8])
    runs = validate_runs(frame)
    assert runs["n_active"].iloc[:2].tolist() == [1e7, 1e8]
    assert np.isnan(runs["n_active"].iloc[2])


def test_run_ids_generated_when_absent():
    assert validate_runs(table().drop(columns="run_id"))["run_id"].tolist() == ["run0", "run1", "run2"]


@pytest.mark.parametrize(
    "frame, words",
    [
        (table(loss=[3.0, -1.0, 2.5]), ["'loss'", "row 1", "run_id b", "> 0"]),
        (table(tokens=[1e9, np.inf, 1e9]), ["'tokens'", "infinite", "row 1"]),
        (table(n_active=["1e7", "many", "1e9"]), ["'n_active'", "non-numeric", "'many'", "row 1"]),
        (table(n_total=[1e7, 1e7, 1e9]), ["n_total < n_active", "row 1"]),
        (table(run_id=["a", "a", "c"]), ["'run_id'", "duplicate", "rows 0, 1"]),
        (table(n_experts=[1, 2.5, 8], n_total=[1e7, 1e9, 1e10]), ["'n_experts'", "integer"]),
        (table(shared_ratio=[0.0, 1.0, 0.5]), ["'shared_ratio'", "[0, 1)", "row 1"]),
        (table().drop(columns="loss"), ["missing column 'loss'"]),
        (table(loss=[3.0, np.nan, 2.5]), ["'loss'", "empty", "row 1"]),
        (table().iloc[:0], ["no rows"]),
    ],
)
def test_bad_tables_name_the_problem(frame, words):
    with pytest.raises(BayesMoeError) as err:
        validate_runs(frame)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_law_requirement_names_the_law():
    with pytest.raises(BayesMoeError, match="missing column 'n_experts' \\(needed by law 'x'\\)"):
        validate_runs(table(), required=["n_experts"], law="x")


def test_file_errors(tmp_path):
    with pytest.raises(BayesMoeError, match="does not exist"):
        validate_runs(tmp_path / "nope.csv")
    with pytest.raises(BayesMoeError, match="is a directory"):
        validate_runs(tmp_path)
    binary = tmp_path / "bad.parquet"
    binary.write_bytes(b"\x00\x01not parquet")
    with pytest.raises(BayesMoeError, match="cannot read runs table"):
        validate_runs(binary)


def test_csv_and_parquet_round_trip(tmp_path):
    table().to_csv(tmp_path / "r.csv", index=False)
    table().to_parquet(tmp_path / "r.parquet")
    a, b = validate_runs(tmp_path / "r.csv"), validate_runs(tmp_path / "r.parquet")
    assert data_hash(a) == data_hash(b)


def test_where_and_exclusions():
    runs = validate_runs(table())
    assert select_runs(runs, where="n_active > 5e7")["run_id"].tolist() == ["b", "c"]
    assert select_runs(runs, exclude_top_loss=1)["run_id"].tolist() == ["b", "c"]
    with pytest.raises(BayesMoeError, match="invalid --where expression"):
        select_runs(runs, where="n_active >> ")
    with pytest.raises(BayesMoeError, match="not a true/false condition"):
        select_runs(runs, where="n_active + 1")
    with pytest.raises(BayesMoeError, match="keeps no runs"):
        select_runs(runs, where="loss > 100")
    with pytest.raises(BayesMoeError, match="--exclude-top-loss 3"):
        select_runs(runs, exclude_top_loss=3)


def test_split_top_compute():
    train, held = split_top_compute(validate_runs(table()), 1)
    assert held["run_id"].tolist() == ["c"] and train["run_id"].tolist() == ["a", "b"]


def test_epoch_layout_is_read_as_spec_columns():
    raw = pd.DataFrame({"Model Size": [1e8, 1e9], "Training FLOP": [6e17, 6e19], "loss": [3.0, 2.5], "x": [0, 1]})
    runs = load_runs(raw)
    np.testing.assert_allclose(runs["tokens"], [1e9, 1e10])
    np.testing.assert_allclose(runs["compute"], [6e17, 6e19])


def test_group_spec_joins_columns_and_names_a_missing_one():
    from bayesmoe.errors import BayesMoeError
    from bayesmoe.runs import group_labels

    frame = pd.DataFrame({"group": ["S-Base", "Hash", "Dense"], "routing_frequency": [0.5, 1 / 12, 0.5],
                          "top_k": [1, 2, 1]})
    assert list(group_labels(frame, "group")) == ["S-Base", "Hash", "Dense"]
    assert list(group_labels(frame, "group+routing_frequency+top_k")) == ["S-Base/0.5/1", "Hash/0.0833333/2",
                                                                           "Dense/0.5/1"]
    with pytest.raises(BayesMoeError, match="--group column 'k' is not in the runs table"):
        group_labels(frame, "group+k")
