"""trial_report.html as a trial statistician reads it: results tables with n (%), KM curves drawn from the same
data the estimates came from, a legible patient table."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "study"


@pytest.fixture(scope="module")
def trial():
    from mrdflow.endpoints.study import load_study
    from mrdflow.endpoints.tables import load_tables
    from mrdflow.endpoints.trial import analyse

    study = load_study(EXAMPLE / "study.yaml")
    return analyse(study, load_tables(study.tables))


def test_km_figure_uses_the_estimated_patients(trial):
    from mrdflow.endpoints.report import _km_data, km_figure

    for key in ("pfs", "os", "dor"):
        t, e = _km_data(trial, key)
        assert t.size == trial.km[key].n and int(e.sum()) == trial.km[key].n_events
    png = base64.b64decode(km_figure(trial))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_tables_read_like_a_trial_abstract(trial):
    from mrdflow.endpoints.report import render_report

    html = render_report(trial)
    # 8 infused: neutropenia in all, grade ≥3 in all; CRS 7/8 = 88 %
    assert '<td>Neutropenia</td><td class="num">8 (100%)</td><td class="num">8 (100%)</td>' in html
    assert '<td>Cytokine release syndrome</td><td class="num">7 (88%)</td>' in html
    assert "<td>Overall response (≥PR)</td><td>7/8 (88%; 95% CI 47–100%)</td>" in html
    assert "<th>Best response</th>" in html and "<th>PFS (mo)</th>" in html  # plain headers, not column codes
    assert "<td>True</td>" not in html and "<td>yes</td>" in html
    assert "numbers at risk under each panel" in html and "@media print" in html


def test_sensitivity_written_as_a_power_of_ten(trial):
    from mrdflow.endpoints.report import _power_of_ten, results_paragraph

    assert (_power_of_ten(1e-5), _power_of_ten(2e-6), _power_of_ten(2.5e-5)) == ("10⁻⁵", "2×10⁻⁶", "2.5×10⁻⁵")
    assert "MRD negativity in bone marrow at a sensitivity of 10⁻⁵ was reached by 4/8" in results_paragraph(trial)
