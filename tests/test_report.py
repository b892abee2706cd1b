"""HTML QC reports: the MRD statement, embedded figures, self-containment and escaping of FCS strings."""

from __future__ import annotations

import base64
import re

from mrdflow.report.html import mrd_statement, render_batch_report, render_sample_report, sci
from mrdflow.report.plots import Membership, gating_plots, light_chain_plot, phenotype_plots, time_plot
from mrdflow.result import SampleResult
from tests.batch_data import plot_data, sample_result

ROLES = {"evaluable": ["cells"], "plasma_cell": ["pc"], "normal_pc": ["normal_pc"], "aberrant_pc": ["aberrant_pc"]}
EVIL = '<script>alert("x")</script>'


def _files(src: str = "P-17"):
    return [{"tube": "tube1", "name": "P17_T1.fcs", "path": "/data/P17_T1.fcs", "sha256": "ab" * 32, "size": 1234,
             "keywords": {"$SRC": src, "$CYT": "FACSCanto II"}}]


def test_mrd_statements_read_as_a_reviewer_expects():
    assert sci(20 / 10_412_530) == "1.9×10⁻⁶" and sci(float("nan")) == "—"
    assert mrd_statement(sample_result(status="NEGATIVE")) == \
        "MRD negative at a limit of detection of 1.9×10⁻⁶, 10 412 530 evaluable cells"
    pos = mrd_statement(sample_result(status="POSITIVE"))
    assert pos.startswith("MRD positive: 5.0×10⁻⁴ (0.0499 %)") and "5 200 aberrant plasma cells" in pos
    below = mrd_statement(sample_result(status="POSITIVE_BELOW_LLOQ"))
    assert "below the limit of quantification (4.8×10⁻⁶)" in below
    assert mrd_statement(SampleResult.failed("S", ["a"], "a: truncated")) == "Not analysed: a: truncated"


def test_membership_follows_the_population_tree():
    tube = plot_data()
    m = Membership(tube)
    labels = [tube.label_names[i] for i in tube.labels]
    assert m.mask("pc").sum() == sum(lab in ("pc", "normal_pc", "aberrant_pc") for lab in labels)
    assert m.mask("root").all() and m.mask("cells").sum() == sum(lab != "root" for lab in labels)


def test_figures_cover_gates_phenotype_light_chains_and_time():
    tube = plot_data()
    gating = gating_plots(tube)
    # cells (polygon), singlets (range), pc (rectangle), normal_pc (ellipse); the boolean one shares no plot
    assert len(gating) == 4
    assert all(base64.b64decode(im.png)[:8] == b"\x89PNG\r\n\x1a\n" for im in gating)
    assert [im.title for im in phenotype_plots(tube, ROLES)] == ["tube2: plasma cells, CD38 vs CD138",
                                                                 "tube2: plasma cells, CD45 vs CD19"]
    assert light_chain_plot(tube, ROLES) is not None
    assert "1 excluded stretch(es), 7.50 % of events removed" in time_plot(tube).caption
    tube.time_trace = {}
    assert time_plot(tube) is None


def test_sample_report_is_complete_and_self_contained():
    result = sample_result("S1", plots=True)
    html = render_sample_report(result, _files(), roles=ROLES, input_key="k" * 64)
    assert "MRD negative at a limit of detection of 1.9×10⁻⁶, 10 412 530 evaluable cells" in html
    for flag in result.qc_flags:
        assert flag in html
    assert html.count("data:image/png;base64,") >= 2 * 4 + 2 * 2 + 2 + 2
    assert '<meta name="mrdflow-input-key" content="' + "k" * 64 in html
    assert "ab" * 32 in html and "FACSCanto II" in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)  # nothing fetched: opens offline
    assert "Reviewed by" in html


def test_fcs_strings_are_escaped_in_both_reports():
    result = sample_result(EVIL, plots=True)
    result.error = EVIL
    html = render_sample_report(result, _files(src=EVIL), roles=ROLES)
    index = render_batch_report([result], {EVIL: "x.html"}, run_id="r1", panel_name=EVIL, started="now")
    for page in (html, index):
        assert "<script" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_script_in_src_and_sample_name_is_escaped_end_to_end(tmp_path):
    """A real run: two tube files whose $SRC (the sample name, keyword grouping) is a <script> element."""
    from mrdflow.batch import report_file_name
    from mrdflow.cli import main
    from tests.batch_data import SAMPLE_FCS, rewrite, write_panel

    fcs = tmp_path / "fcs"
    fcs.mkdir()
    for t in ("T1", "T2"):
        rewrite(SAMPLE_FCS / f"DEMO01_{t}.fcs", fcs / f"x_{t}.fcs", keywords={"$SRC": EVIL})
    panel = write_panel(tmp_path, by_keyword=True)
    out = tmp_path / "out"
    assert main(["run", str(panel), "--out", str(out), "--workers", "0"]) == 0
    name = report_file_name(EVIL)
    assert "<" not in name and "/" not in name
    for page in (out / "report" / name, out / "report" / "index.html"):
        html = page.read_text()
        assert "<script" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert f'href="{name}"' in (out / "report" / "index.html").read_text()


def test_every_flag_the_pipeline_raises_is_explained_to_the_reviewer():
    """The report shows each QC flag with its meaning: every flag a tube warning or the adequacy check can raise
    has a plain-language description."""
    from mrdflow.pipeline import WARNING_FLAGS
    from mrdflow.report.html import FLAG_DESCRIPTIONS

    adequacy = {"no_events", "low_events", "high_time_removal", "high_margin_rate", "high_doublet_rate",
                "high_debris_rate", "flow_rate_anomaly", "signal_shift", "hemodilution_suspected", "pcl_criterion_met"}
    assert (set(WARNING_FLAGS) | adequacy) - set(FLAG_DESCRIPTIONS) == set()
