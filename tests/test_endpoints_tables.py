"""Bad STUDY.yaml and bad tables give errors naming the file/table, the row and the column."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from mrdflow.endpoints.study import load_study
from mrdflow.endpoints.tables import load_tables
from mrdflow.errors import StudyError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "study"


@pytest.fixture()
def study_dir(tmp_path):
    dst = tmp_path / "study"
    shutil.copytree(EXAMPLE, dst)
    return dst


def _edit(path: Path, row: int, column: str, value: str) -> None:
    """Set data row ``row`` (1-based, below the header) of a CSV column to ``value``."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[row - 1, column] = value
    df.to_csv(path, index=False)


def _load(d: Path):
    s = load_study(d / "study.yaml")
    return load_tables(s.tables)


def test_example_tables_load(study_dir):
    t = _load(study_dir)
    assert len(t.patients) == 9 and t.patients["infusion_date"].notna().sum() == 8
    assert {"patients", "assessments", "mrd", "labs", "adverse_events", "crs", "icans", "cart_pk", "cga"} == t.present


@pytest.mark.parametrize("table, row, column, value, message", [
    ("assessments", 3, "patient_id", "P99", "unknown patient 'P99'"),
    ("assessments", 2, "date", "2020-01-01", "before the diagnosis date"),
    ("assessments", 4, "serum_m_g_dl", "-0.2", "expected a non-negative number, found '-0.2'"),
    ("assessments", 5, "date", "2024-13-40", "expected an ISO date YYYY-MM-DD, found '2024-13-40'"),
    ("assessments", 1, "serum_ife", "maybe", "expected one of pos, neg"),
    ("mrd", 2, "mrd_status", "NEGATIV", "expected one of NEGATIVE"),
    ("labs", 6, "anc_10e9_l", "abc", "expected a number, found 'abc'"),
    ("crs", 3, "hypoxia", "cpap", "expected one of none, low_flow"),
    ("icans", 2, "ice_score", "11", "expected a number ≤ 10"),
    ("cga", 1, "adl", "7", "expected a number ≤ 6"),
    ("adverse_events", 2, "grade", "2.5", "expected a whole number"),
    ("patients", 3, "enrollment_date", "2001-01-01", "before the diagnosis date"),
    ("patients", 2, "last_contact_date", "2024-01-01", "is before enrollment"),
    ("assessments", 32, "date", "2025-05-01", "after the death date 2025-02-23 of patient 'P04'"),
])
def test_bad_value_names_table_row_and_column(study_dir, table, row, column, value, message):
    _edit(study_dir / f"{table}.csv", row, column, value)
    with pytest.raises(StudyError) as err:
        _load(study_dir)
    text = str(err.value)
    assert f"table '{table}'" in text and f"row {row}" in text and f"column '{column}'" in text
    assert message in text
    assert f"{table}.csv" in text


def test_missing_required_column_is_named(study_dir):
    df = pd.read_csv(study_dir / "mrd.csv", dtype=str).drop(columns=["lod"])
    df.to_csv(study_dir / "mrd.csv", index=False)
    with pytest.raises(StudyError, match=r"table 'mrd'.*missing required column\(s\) 'lod'"):
        _load(study_dir)


def test_unknown_columns_are_ignored(study_dir):
    df = pd.read_csv(study_dir / "labs.csv", dtype=str)
    df["crp_mg_l"] = "12"
    df.to_csv(study_dir / "labs.csv", index=False)
    assert "crp_mg_l" not in _load(study_dir).labs.columns


def test_duplicate_patient_and_death_without_cause(study_dir):
    _edit(study_dir / "patients.csv", 2, "patient_id", "P01")
    with pytest.raises(StudyError, match=r"row 2, column 'patient_id': duplicate patient 'P01' \(first at row 1\)"):
        _load(study_dir)


def test_pk_for_a_patient_never_infused(study_dir):
    df = pd.read_csv(study_dir / "cart_pk.csv", dtype=str, keep_default_na=False)
    df.loc[0, "patient_id"] = "P09"
    df.to_csv(study_dir / "cart_pk.csv", index=False)
    with pytest.raises(StudyError, match=r"table 'cart_pk'.*row 1.*'P09' has kinetics samples but no infusion_date"):
        _load(study_dir)


@pytest.mark.parametrize("edit, message", [
    (("response_criteria: pcl2013", "response_criteria: pcl2021"), "field 'response_criteria'"),
    (("ctcae_version: \"5.0\"", "ctcae_version: \"4.03\""), "field 'ctcae_version'"),
    (("data_cutoff: 2025-12-31", "data_cutoff: someday"), "field 'data_cutoff'"),
    (("  required_sensitivity: 1.0e-5", "  required_sensitivity: 2"), "field 'mrd.required_sensitivity'"),
    (("  scale_direction: standard", "  scale_direction: upside_down"), "field 'frailty.scale_direction'"),
    (("  cga: cga.csv", "  cga: missing.csv"), "field 'tables.cga': file"),
    (("  cga: cga.csv", "  cgaa: cga.csv"), "unknown table(s) ['cgaa']"),
    (("  wbc_10e9_l: 4.0\n", ""), "field 'lln.wbc_10e9_l'"),
    (("time_origin: infusion", "time_origin: infusion\nfavourite_colour: blue"), "field 'favourite_colour'"),
])
def test_bad_study_yaml_names_file_and_field(study_dir, edit, message):
    path = study_dir / "study.yaml"
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(StudyError) as err:
        load_study(path)
    assert message in str(err.value) and "study.yaml" in str(err.value)


def test_mrd_source_can_be_a_dataframe(study_dir):
    s = load_study(study_dir / "study.yaml")
    frame = pd.DataFrame({"patient_id": ["P01"], "date": ["2024-04-14"], "tissue": ["BM"], "method": ["NGF"],
                          "mrd_fraction": [0.0], "lod": [4e-6], "mrd_status": ["NEGATIVE"]})
    t = load_tables(s.tables, overrides={"mrd": frame})
    assert len(t.mrd) == 1 and t.mrd.iloc[0]["lod"] == 4e-6
    bad = frame.assign(patient_id=["Q1"])
    with pytest.raises(StudyError, match=r"<mrd frame> \(table 'mrd'\), row 1, column 'patient_id': unknown patient"):
        load_tables(s.tables, overrides={"mrd": bad})


def test_unquoted_ctcae_version_and_defaults(study_dir):
    path = study_dir / "study.yaml"
    path.write_text(path.read_text().replace('ctcae_version: "5.0"', "ctcae_version: 6.0"))
    s = load_study(path)
    assert s.ctcae_version == "6.0" and s.mrd.required_sensitivity == 1e-5 and s.frailty.adl_max == 4
    assert all(p.is_absolute() and p.is_file() for p in s.tables.values())
