"""analyze_sample end to end on the committed demo samples (sample_fcs/, with truth side-cars)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from batch_data import rewrite

from mrdflow.cli import main
from mrdflow.errors import AnalysisError, FcsError, MrdflowError, PanelError
from mrdflow.panel import load_panel
from mrdflow.pipeline import analyze_sample, analyze_sample_tubes
from mrdflow.result import RESULTS_COLUMNS
from mrdflow.simulate import truth_mask

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "sample_fcs"
PANELS = REPO / "panels"


def files(sample: str) -> list[Path]:
    return [DEMO / f"{sample}_T1.fcs", DEMO / f"{sample}_T2.fcs"]


def truth(sample: str) -> dict:
    return json.loads((DEMO / f"{sample}.truth.json").read_text())


@pytest.fixture(scope="module")
def demo_panel():
    return load_panel(PANELS / "demo.yaml")


@pytest.fixture(scope="module")
def demo01(demo_panel):
    return analyze_sample_tubes(files("DEMO01"), demo_panel, plot_data=True)


def test_positive_marrow_counts_match_the_truth(demo01):
    result, tubes = demo01
    t = truth("DEMO01")
    assert result.ok and result.sample_id == "DEMO01"
    assert result.mrd_status == "POSITIVE"
    # the denominator: evaluable nucleated cells of both tubes, within 3 % of the truth
    assert abs(result.n_events_evaluable / t["n_evaluable"] - 1) < 0.03
    # the clone: within 10 % of the true aberrant-PC count, and the MRD fraction with it
    assert abs(result.n_aberrant_pc / t["n_aberrant_pc"] - 1) < 0.10
    assert abs(result.mrd_fraction / t["mrd_fraction"] - 1) < 0.10
    assert result.n_plasma_cells == result.n_normal_pc + result.n_aberrant_pc
    assert result.lod == pytest.approx(20 / result.n_events_evaluable)
    assert result.lloq == pytest.approx(50 / result.n_events_evaluable)
    # 70 000 events cannot reach 1e-5: said so
    assert not result.sensitivity_met and "low_events" in result.qc_flags


def test_clone_light_chain_and_per_event_calls(demo01):
    result, tubes = demo01
    sample_truth = json.loads((DEMO / "DEMO01_T1.truth.json").read_text())
    chain = _find(sample_truth, "clone")["light_chain"]
    assert result.clonality == chain
    for ta in tubes:
        is_ab = truth_mask(ta.file, "aberrant_pc")
        called = np.zeros(is_ab.size, dtype=bool)
        called[ta.aberrant_index] = True
        tp = np.count_nonzero(called & is_ab)
        f1 = 2 * tp / (np.count_nonzero(called) + np.count_nonzero(is_ab))
        assert f1 > 0.9, (ta.tube, f1)


def test_populations_details_and_json(demo01, tmp_path):
    result, _ = demo01
    rows = result.population_rows()
    tubes = {r["tube"] for r in rows}
    assert tubes == {"tube1", "tube2"}
    by = {(r["tube"], r["population"]): r for r in rows}
    for tube in tubes:
        ab, norm, pc = by[(tube, "aberrant_pc")], by[(tube, "normal_pc")], by[(tube, "plasma_cells")]
        assert ab["parent"] == norm["parent"] == "plasma_cells"
        assert ab["count"] + norm["count"] == pc["count"]
    # tube 2 has no CD117: the CD117 populations exist in tube 1 only
    assert ("tube1", "mast_cells") in by and ("tube2", "mast_cells") not in by
    assert ("tube2", "kappa") in by and ("tube1", "kappa") not in by
    d = result.details
    assert d["denominator"] == "combined"
    assert set(d["qc_removed_pct"]) == {"time", "margin", "doublets", "debris"}
    t1 = d["tubes"]["tube1"]
    assert t1["time_qc"]["done"] and t1["phenotype"]["clusters"]
    assert t1["phenotype"]["boundaries"]["CD19"]["negative_reference"] == "t_cell"
    assert "mast_cells" in d["tubes"]["tube2"]["dropped_populations"]
    doc = json.loads(json.dumps(result.to_json_dict(), allow_nan=False))
    assert all(col in doc for col in RESULTS_COLUMNS)


def test_plot_data(demo01):
    result, tubes = demo01
    assert [p.tube for p in result.plots] == ["tube1", "tube2"]
    for plot, ta in zip(result.plots, tubes):
        assert plot.events.dtype == np.float32 and plot.events.shape[1] == len(plot.columns)
        assert plot.events.shape[0] == plot.labels.shape[0] <= 100_000 + ta.aberrant_index.size
        ab = plot.label_names.index("aberrant_pc")
        assert np.count_nonzero(plot.labels == ab) == ta.aberrant_index.size  # every called clone event drawn
        assert "plasma_cells" in plot.gates and plot.parents["plasma_cells"] == "low_ssc"
        assert plot.time_trace["rate"]


def test_negative_marrow_is_not_called_positive(demo_panel):
    result = analyze_sample(files("DEMO03"), demo_panel)
    assert result.n_aberrant_pc < 20
    # below the LOD, but 60 000 events do not reach 1e-5: not evaluable rather than negative
    assert result.mrd_status == "NOT_EVALUABLE"
    assert result.hemodilution == "adequate"


def test_clone_split_over_both_tubes_is_called_from_the_pooled_backbone(demo_panel, tmp_path):
    """DEMO02 thinned to 4 + 16 clonal events: neither tube reaches the 20-event LOD, together they do.

    Tube 1's 4 clonal PCs are too few to form a cluster there (core ≥ 5 events), so a per-tube call finds only
    tube 2's 16 (below the LOD); pooled on the shared backbone they join tube 2's clone."""
    from mrdflow.fcs import read_fcs

    paths, is_clone = [], []
    for t, n_keep in (("T1", 4), ("T2", 16)):
        clone = truth_mask(DEMO / f"DEMO02_{t}.fcs", "aberrant_pc")
        keep = np.ones(clone.size, dtype=bool)
        keep[np.flatnonzero(clone)[n_keep:]] = False
        src = DEMO / f"DEMO02_{t}.fcs"
        paths.append(rewrite(src, tmp_path / f"THIN02_{t}.fcs", events=read_fcs(src).events[keep]))
        is_clone.append(clone[keep])
    result, tubes = analyze_sample_tubes(paths, demo_panel)
    for ta, clone in zip(tubes, is_clone):
        called = np.zeros(clone.size, dtype=bool)
        called[ta.aberrant_index] = True
        assert np.count_nonzero(called & ~clone) == 0, ta.tube  # no normal PC called
        assert ta.counts.n_aberrant_pc == np.count_nonzero(called & clone) == np.count_nonzero(clone), ta.tube
    assert result.n_aberrant_pc == 20
    assert result.mrd_status == "POSITIVE_BELOW_LLOQ"  # ≥ LOD (20) events, < LLOQ (50)


def test_stains_tagged_with_their_fluorochrome_give_the_same_result(demo_panel, demo01, tmp_path):
    """Real files often write $PnS as "CD38 FITC" or "CD138_BV421": the demo panel still finds every marker."""
    from mrdflow.fcs import read_fcs

    paths = []
    for t in ("T1", "T2"):
        src = DEMO / f"DEMO01_{t}.fcs"
        tagged = [f"{c.marker} {c.name.removesuffix('-A')}" if c.marker else None for c in read_fcs(src).channels]
        paths.append(rewrite(src, tmp_path / f"TAG01_{t}.fcs", markers=tagged))
    assert read_fcs(paths[0]).channels[6].marker.count(" ") == 1
    result = analyze_sample(paths, demo_panel, plot_data=True)
    assert {"CD38", "CD138", "CD45", "FSC-A"} <= set(result.plots[0].columns)  # the report's plots find them
    assert (result.n_aberrant_pc, result.n_events_evaluable, result.mrd_status) == \
        (demo01[0].n_aberrant_pc, demo01[0].n_events_evaluable, demo01[0].mrd_status)


@pytest.mark.parametrize("style", ["navios", "moflo"])
def test_scatter_and_time_named_the_instruments_way_give_the_same_result(demo_panel, demo01, tmp_path, style):
    """Beckman Coulter Navios names its scatter FS INT LIN / FS PEAK LIN / SS INT LIN / SS PEAK LIN and its time
    HDR-T, a MoFlo FSC LinA / FSC LinH, others SSC.ALin or SSC-Height: the template's FSC-A, FSC-H, SSC-A, SSC-H
    and the time QC find them, with the same result."""

    rename = {"navios": {"FSC-A": "FS INT LIN", "FSC-H": "FS PEAK LIN", "SSC-A": "SS INT LIN",
                         "SSC-H": "SS PEAK LIN", "Time": "HDR-T"},
              "moflo": {"FSC-A": "FSC LinA", "FSC-H": "FSC LinH", "SSC-A": "SSC.ALin", "SSC-H": "SSC-Height"}}[style]
    paths = [rewrite(DEMO / f"DEMO01_{t}.fcs", tmp_path / f"{style.upper()}01_{t}.fcs", rename=rename)
             for t in ("T1", "T2")]
    result = analyze_sample(paths, demo_panel, plot_data=True)
    base = demo01[0]
    assert (result.n_aberrant_pc, result.n_events_evaluable, result.mrd_status) == \
        (base.n_aberrant_pc, base.n_events_evaluable, base.mrd_status)
    assert "time_qc_not_done" not in result.qc_flags and result.plots[0].time_trace["rate"]
    assert {"FSC-A", "FSC-H", "SSC-A", "SSC-H"} <= set(result.plots[0].columns)  # the report's plots find them


@pytest.mark.parametrize("variant", ["dimmer_0.4", "dimmer_0.6", "brighter_3", "range_2^20", "integer_data"])
def test_another_instruments_signal_scale_gives_the_same_result(demo_panel, tmp_path, variant):
    """The thresholds come from each sample's own populations, so the same specimen read by an instrument whose
    stains are 0.4×–3× as bright (PMT voltages), whose scale tops out at 2^20 instead of 2^18 (and so reads
    every signal 4× higher), or that writes integer DATA (rounded, nothing below 0) gets the same status and
    nearly the same counts. (With CD138 gated at the shoulder of its negative cells, 0.4× let 70 monocytes into
    the plasma cells and integer DATA lost most normal PCs of DEMO03: the CD138 gate is now the first density
    gap above the negative cells.)"""
    from batch_data import _KEEP_KEYWORDS
    from mrdflow.fcs import read_fcs, write_fcs

    base = analyze_sample(files("DEMO02"), demo_panel)
    paths = []
    for t in ("T1", "T2"):
        fcs = read_fcs(DEMO / f"DEMO02_{t}.fcs")
        ev = fcs.events.astype(np.float64)
        stain = np.array([c.marker is not None for c in fcs.channels])
        not_time = np.array([c.name != "Time" for c in fcs.channels])
        ranges = np.array([c.range for c in fcs.channels], dtype=float)
        datatype = "F"
        if variant.startswith(("dimmer", "brighter")):
            ev[:, stain] *= float(variant.split("_")[1])
        elif variant == "range_2^20":
            ev[:, not_time] *= 4.0
            ranges[not_time] *= 4.0
        else:
            ev, datatype = np.clip(np.round(ev), 0, None), "I"
        ev = np.minimum(ev, ranges - 1)
        out = tmp_path / f"V02_{t}.fcs"
        write_fcs(out, ev if datatype == "I" else ev.astype(np.float32), [c.name for c in fcs.channels],
                  markers=[c.marker for c in fcs.channels], spillover=fcs.spillover, datatype=datatype,
                  keywords={k: str(fcs.keywords[k]) for k in _KEEP_KEYWORDS if k in fcs.keywords},
                  ranges=[int(r) for r in ranges])
        paths.append(out)
    result = analyze_sample(paths, demo_panel)
    assert result.status == "ok" and result.mrd_status == base.mrd_status == "POSITIVE_BELOW_LLOQ"
    assert abs(result.n_aberrant_pc - base.n_aberrant_pc) <= 3  # base: 43 of the 48 true clone cells
    assert abs(result.n_plasma_cells / base.n_plasma_cells - 1) < 0.02
    assert abs(result.n_events_evaluable / base.n_events_evaluable - 1) < 0.01
    assert result.hemodilution == base.hemodilution


def test_plasma_cells_on_the_top_of_a_detectors_scale_are_flagged(demo_panel, demo01, tmp_path):
    """A detector set so high that many plasma cells saturate (CD38/FITC at 3×: over half the PCs at $PnR − 1)
    compresses that marker's PC references and moves the count (DEMO01: 463 aberrant instead of 611): the result
    carries the pc_off_scale flag and each tube a warning naming the marker, its channel and the share."""
    from dataclasses import replace

    from batch_data import _KEEP_KEYWORDS
    from mrdflow.fcs import read_fcs, write_fcs

    paths = []
    for t in ("T1", "T2"):
        fcs = read_fcs(DEMO / f"DEMO01_{t}.fcs")
        names = [c.name for c in fcs.channels]
        ev = fcs.events.astype(np.float64)
        ev[:, names.index("FITC-A")] *= 3.0
        ranges = np.array([c.range for c in fcs.channels], dtype=float)
        ev = np.minimum(ev, ranges - 1)  # the detector saturates
        sp = fcs.spillover
        gain = np.array([3.0 if c == "FITC-A" else 1.0 for c in sp.channels])
        spill = replace(sp, matrix=np.asarray(sp.matrix) * gain[None, :] / gain[:, None])  # the same instrument
        out = tmp_path / f"SAT01_{t}.fcs"
        write_fcs(out, ev.astype(np.float32), names, markers=[c.marker for c in fcs.channels], spillover=spill,
                  keywords={k: str(fcs.keywords[k]) for k in _KEEP_KEYWORDS if k in fcs.keywords},
                  ranges=[int(r) for r in ranges])
        paths.append(out)
    result = analyze_sample(paths, demo_panel)
    assert "pc_off_scale" in result.qc_flags and "pc_off_scale" not in demo01[0].qc_flags
    for tube in ("tube1", "tube2"):
        (w,) = [w for w in result.details["tubes"][tube]["warnings"] if w.startswith("pc_off_scale")]
        assert "CD38" in w and "FITC-A" in w and " %)" in w


@pytest.mark.parametrize("factor", [0.8, 0.9])
def test_an_under_compensated_cd56_keeps_the_clone_and_is_flagged(demo_panel, demo01, tmp_path, factor):
    """The file's spillover of CD38 (FITC) into CD56 (PE) 10-20 % too low — a lab's compensation a little off:
    every very bright CD38 plasma cell gets a CD56 signal the T and NK cells (CD38 dim) do not, so all PCs lie
    above the CD56 boundary those references give. Judged against it, no PC looked normal and DEMO01 lost its
    whole clone (0 aberrant, for 611). CD56 is now judged against the PCs that are normal on every other marker
    instead: the same count, and the result is flagged pc_reference_mismatch with a warning naming CD56."""
    from dataclasses import replace

    from batch_data import _KEEP_KEYWORDS
    from mrdflow.fcs import read_fcs, write_fcs

    paths = []
    for t in ("T1", "T2"):
        fcs = read_fcs(DEMO / f"DEMO01_{t}.fcs")
        sp = fcs.spillover
        matrix = np.array(sp.matrix, dtype=float)
        matrix[list(sp.channels).index("FITC-A"), list(sp.channels).index("PE-A")] *= factor
        out = tmp_path / f"UC01_{t}.fcs"
        write_fcs(out, fcs.events, [c.name for c in fcs.channels], markers=[c.marker for c in fcs.channels],
                  spillover=replace(sp, matrix=matrix), ranges=[int(c.range) for c in fcs.channels],
                  keywords={k: str(fcs.keywords[k]) for k in _KEEP_KEYWORDS if k in fcs.keywords})
        paths.append(out)
    result = analyze_sample(paths, demo_panel)
    base = demo01[0]
    assert result.mrd_status == base.mrd_status == "POSITIVE"
    assert abs(result.n_aberrant_pc - base.n_aberrant_pc) <= 0.02 * base.n_aberrant_pc  # base 611 of 645 true
    assert result.n_plasma_cells == base.n_plasma_cells
    assert "pc_reference_mismatch" in result.qc_flags and "pc_reference_mismatch" not in base.qc_flags
    for tube in ("tube1", "tube2"):
        (w,) = [w for w in result.details["tubes"][tube]["warnings"] if w.startswith("pc_reference_mismatch")]
        assert "CD56" in w and "above its reference boundary" in w


def _noisy_demo01(tmp_path, sigma_by_tube):
    """DEMO01 with Gaussian noise of SD ``sigma`` (linear units) added to every stain of each tube: an instrument
    whose compensated negative cells spread 2-3x further than the simulator's."""
    from batch_data import _KEEP_KEYWORDS
    from mrdflow.fcs import read_fcs, write_fcs

    paths = []
    rng = np.random.default_rng(7)
    for t in ("T1", "T2"):
        fcs = read_fcs(DEMO / f"DEMO01_{t}.fcs")
        ev = fcs.events.astype(np.float64)
        stains = [j for j, c in enumerate(fcs.channels) if c.marker]
        ev[:, stains] += rng.normal(0.0, sigma_by_tube[t], (len(ev), len(stains)))
        out = tmp_path / f"NOISY01_{t}.fcs"
        write_fcs(out, ev.astype(np.float32), [c.name for c in fcs.channels], markers=[c.marker for c in fcs.channels],
                  spillover=fcs.spillover, ranges=[int(c.range) for c in fcs.channels],
                  keywords={k: str(fcs.keywords[k]) for k in _KEEP_KEYWORDS if k in fcs.keywords})
        paths.append(out)
    return paths


@pytest.mark.parametrize("noisy", ["both tubes", "tube 2 only"])
def test_noisier_negatives_get_a_wider_logicle_and_the_same_result(demo_panel, demo01, tmp_path, noisy):
    """Noise of SD 300 on every stain: at the panel's logicle W = 0.5 the negative cells pile up into a false
    peak below zero and the CD19, CD56 and CD117 gates fall on it (no B cells, mast cells or precursors: the
    marrow turned hemodilution-suspected). The tube's compensated negatives need W 0.93 (Parks), so it is
    transformed at 1.1, with the same result as the base file. When only tube 2 needs it, tube 1 keeps its width
    and its plasma cells and references are re-scaled for the pooled call."""
    sigmas = {"T1": 300.0, "T2": 300.0} if noisy == "both tubes" else {"T1": 0.0, "T2": 300.0}
    result = analyze_sample(_noisy_demo01(tmp_path, sigmas), demo_panel)
    base = demo01[0]
    assert result.mrd_status == base.mrd_status and result.hemodilution == base.hemodilution == "adequate"
    assert abs(result.n_aberrant_pc - base.n_aberrant_pc) <= 0.03 * base.n_aberrant_pc
    assert result.n_plasma_cells == pytest.approx(base.n_plasma_cells, rel=0.02)
    assert "logicle_width_widened" in result.qc_flags and "logicle_width_widened" not in base.qc_flags
    t1, t2 = (result.details["tubes"][t]["warnings"] for t in ("tube1", "tube2"))
    (w2,) = [w for w in t2 if w.startswith("logicle_width_widened")]
    assert "logicle W 1.1 instead of the panel's 0.5" in w2 and "(CD19)" in w2
    (w1,) = [w for w in t1 if w.startswith("logicle_width_widened")]
    assert ("re-scaled to logicle W 1.1" in w1) == (noisy == "tube 2 only")


def test_with_widening_off_noisy_negatives_are_only_warned(demo_panel, tmp_path):
    panel = demo_panel.model_copy(update={"transforms": demo_panel.transforms.model_copy(
        update={"widen_logicle": False})})
    result = analyze_sample(_noisy_demo01(tmp_path, {"T1": 300.0, "T2": 300.0}), panel)
    assert "logicle_width_narrow" in result.qc_flags and "logicle_width_widened" not in result.qc_flags
    assert result.hemodilution == "suspected"  # what the widening is for: B cells, mast cells, precursors lost
    (w,) = [w for w in result.details["tubes"]["tube1"]["warnings"] if w.startswith("logicle_width_narrow")]
    assert w.endswith("W to about 1.1")


@pytest.mark.parametrize("diagonal", [100.0, "mixed"])
def test_a_spillover_matrix_in_percent_gives_the_same_result_and_is_flagged(demo_panel, tmp_path, diagonal):
    """Spillover written as percentages (diagonal 100), or with each row on its own scale: compensating with it as
    it stands divided every compensated value by 100 and counted 418 aberrant PCs in DEMO01 for 611, silently.
    Each row is divided by its diagonal entry (a coefficient is relative to the fluorochrome's own detector),
    with a warning and the ``spillover_rescaled`` flag."""
    from dataclasses import replace

    from mrdflow.fcs import read_fcs

    base = analyze_sample(files("DEMO01"), demo_panel)
    paths = []
    for src in files("DEMO01"):
        spill = read_fcs(src).spillover
        matrix = np.asarray(spill.matrix, dtype=float)
        rows = np.full(len(matrix), 100.0) if diagonal == 100.0 else np.linspace(0.5, 20.0, len(matrix))
        paths.append(rewrite(src, tmp_path / f"PCT_{src.name}", spillover=replace(spill, matrix=matrix * rows[:, None])))
    result = analyze_sample(paths, demo_panel)
    assert (result.mrd_status, result.n_aberrant_pc, result.n_plasma_cells, result.n_events_evaluable) == \
        (base.mrd_status, base.n_aberrant_pc, base.n_plasma_cells, base.n_events_evaluable)
    assert "spillover_rescaled" in result.qc_flags and "spillover_rescaled" not in base.qc_flags
    warning = next(w for w in result.details["tubes"]["tube1"]["warnings"] if w.startswith("spillover_rescaled"))
    assert ("has 100 on its diagonal" if diagonal == 100.0 else "has 0.5 to 20 on its diagonal") in warning


def test_a_flowjo_export_with_compensated_channels_is_named_and_can_be_analysed_without_compensation(demo_panel,
                                                                                                     tmp_path):
    """A FlowJo export: channels renamed ``Comp-FITC-A`` ... (already compensated) while its SPILL keyword names
    the original channels. Compensating again would be wrong, so with the file's matrix requested the error says
    what the file is; with ``compensation: {source: none}`` the mismatched keyword no longer stops the read."""
    from mrdflow.fcs import read_fcs
    from mrdflow.panel import CompensationSpec

    paths = []
    for src in files("DEMO01"):
        spill = read_fcs(src).spillover
        paths.append(rewrite(src, tmp_path / f"FJ_{src.name}", rename={c: f"Comp-{c}" for c in spill.channels},
                             spillover=None, keywords={"SPILL": spill.to_keyword()}))
    with pytest.raises(MrdflowError, match=r"the file has 'Comp-V450-A' instead: its channels are already "
                                           r"compensated \(a FlowJo export\)"):
        analyze_sample(paths, demo_panel)
    uncompensated = demo_panel.model_copy(update={"compensation": CompensationSpec(source="none")})
    result = analyze_sample(paths, uncompensated)
    assert result.status == "ok" and result.n_plasma_cells > 0


def test_a_spillover_matrix_with_a_non_positive_diagonal_is_a_clear_error(demo_panel, tmp_path):
    from dataclasses import replace

    from mrdflow.fcs import read_fcs

    paths = []
    for src in files("DEMO01"):
        spill = read_fcs(src).spillover
        matrix = np.asarray(spill.matrix, dtype=float).copy()
        matrix[2, 2] = -1.0
        paths.append(rewrite(src, tmp_path / f"NEG_{src.name}", spillover=replace(spill, matrix=matrix)))
    channel = read_fcs(paths[0]).spillover.channels[2]
    with pytest.raises(PanelError, match=f"has -1 on its diagonal for {channel}; expected 1"):
        analyze_sample(paths, demo_panel)


@pytest.mark.parametrize("scale", [4, 16])
def test_an_instrument_with_a_larger_scale_gives_the_same_result(demo_panel, tmp_path, scale):
    """Every signal and $PnR 4x or 16x larger (an Attune's 1 048 576, an Aurora's 4 194 304): logicle and linear
    scaling are relative to $PnR, so the result is the base's — including the saturated events, which now pile up
    at 262 143 x scale, below the new $PnR - 1: before, the margin gate took its limit from $PnR only and kept
    them (31 more evaluable cells in DEMO01)."""
    from mrdflow.fcs import read_fcs

    base = analyze_sample(files("DEMO01"), demo_panel)
    paths = []
    for src in files("DEMO01"):
        fcs = read_fcs(src)
        factor = np.array([1 if c.name == "Time" else scale for c in fcs.channels], dtype=np.float32)
        paths.append(rewrite(src, tmp_path / f"BIG_{src.name}", events=fcs.events * factor,
                             ranges=[int(c.range * f) for c, f in zip(fcs.channels, factor)]))
    result = analyze_sample(paths, demo_panel)
    assert (result.mrd_status, result.n_aberrant_pc, result.n_plasma_cells, result.n_events_evaluable,
            result.hemodilution) == (base.mrd_status, base.n_aberrant_pc, base.n_plasma_cells,
                                     base.n_events_evaluable, base.hemodilution)


def test_an_instrument_differing_in_gains_compensation_and_noise_at_once_gives_the_same_result(demo_panel,
                                                                                                 tmp_path):
    """Another lab's instrument in several ways at once: every detector 0.5-2x as bright (spillover rescaled to
    match), every spillover coefficient off by up to 10 %, and noise of SD 250 on every stain. The code of
    2026-11-21 called this DEMO02 hemodiluted (the noise's logicle artefact took its B cells, mast cells and
    precursors) and counted 47 aberrant PCs; over four random sets of this kind it called all twelve DEMO01-03
    marrows hemodiluted and lost one DEMO02 clone entirely. With the logicle widening the result is the base's."""
    from dataclasses import replace

    from mrdflow.fcs import read_fcs

    base = analyze_sample(files("DEMO02"), demo_panel)
    rng = np.random.default_rng(102)
    first = read_fcs(DEMO / "DEMO01_T1.fcs")
    gains = {c.name: float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))) for c in first.channels if c.marker}
    paths = []
    for src in files("DEMO02"):
        fcs = read_fcs(src)
        ev = fcs.events.astype(np.float64) * np.array([gains.get(c.name, 1.0) for c in fcs.channels])
        stains = [j for j, c in enumerate(fcs.channels) if c.marker]
        ev[:, stains] += rng.normal(0.0, 250.0, (len(ev), len(stains)))
        ev = np.minimum(ev, np.array([c.range for c in fcs.channels], dtype=float) - 1)
        sp = fcs.spillover
        g = np.array([gains.get(c, 1.0) for c in sp.channels])
        off = rng.uniform(0.9, 1.1, (len(g), len(g)))
        np.fill_diagonal(off, 1.0)
        paths.append(rewrite(src, tmp_path / f"OTHER_{src.name}", events=ev.astype(np.float32),
                             spillover=replace(sp, matrix=np.asarray(sp.matrix) * g[None, :] / g[:, None] * off)))
    result = analyze_sample(paths, demo_panel)
    assert result.mrd_status == base.mrd_status == "POSITIVE_BELOW_LLOQ"
    assert abs(result.n_aberrant_pc - base.n_aberrant_pc) <= 3 and result.n_plasma_cells == base.n_plasma_cells
    assert result.hemodilution == base.hemodilution == "adequate"
    assert "logicle_width_widened" in result.qc_flags


def test_events_grouped_by_population_give_the_same_result_and_say_time_qc_was_not_done(demo_panel, demo01,
                                                                                          tmp_path):
    """A generator that writes a specimen's events population by population (Time still increasing) is not an
    acquisition: time QC would take every change of population for a signal shift and remove most of the file.
    The same events in that order give the same MRD result, with time_qc_not_done and the reason."""
    from batch_data import _KEEP_KEYWORDS
    from mrdflow.fcs import read_fcs, write_fcs

    paths = []
    for t in ("T1", "T2"):
        fcs = read_fcs(DEMO / f"DEMO01_{t}.fcs")
        names = [c.name for c in fcs.channels]
        labels = np.load(DEMO / f"DEMO01_{t}.truth.npz")["labels"]
        ev = fcs.events[np.argsort(labels, kind="stable")]
        ev[:, names.index("Time")] = np.sort(fcs.events[:, names.index("Time")])
        out = tmp_path / f"GRP01_{t}.fcs"
        write_fcs(out, ev, names, markers=[c.marker for c in fcs.channels], spillover=fcs.spillover,
                  keywords={k: str(fcs.keywords[k]) for k in _KEEP_KEYWORDS if k in fcs.keywords},
                  ranges=[c.range for c in fcs.channels])
        paths.append(out)
    result = analyze_sample(paths, demo_panel)
    base = demo01[0]
    assert (result.mrd_status, result.n_aberrant_pc, result.n_events_evaluable) == \
        (base.mrd_status, base.n_aberrant_pc, base.n_events_evaluable)
    assert "time_qc_not_done" in result.qc_flags and "time_qc_not_done" not in base.qc_flags
    assert any("not in acquisition order" in w for w in result.details["tubes"]["tube1"]["warnings"])


def test_files_without_height_channels_skip_the_singlet_steps_and_say_so(demo_panel, demo01, tmp_path):
    """Some exports have FSC-A/SSC-A only: the optional FSC-A/FSC-H and SSC-A/SSC-H singlet gates pass every
    event on (doublets stay in the denominator), and the result carries the step_skipped flag and why."""
    from batch_data import _KEEP_KEYWORDS
    from mrdflow.fcs import read_fcs, write_fcs

    paths = []
    for t in ("T1", "T2"):
        fcs = read_fcs(DEMO / f"DEMO01_{t}.fcs")
        keep = [j for j, c in enumerate(fcs.channels) if c.name not in ("FSC-H", "SSC-H")]
        out = tmp_path / f"NOH01_{t}.fcs"
        write_fcs(out, np.ascontiguousarray(fcs.events[:, keep]), [fcs.channels[j].name for j in keep],
                  markers=[fcs.channels[j].marker for j in keep], spillover=fcs.spillover,
                  keywords={k: str(fcs.keywords[k]) for k in _KEEP_KEYWORDS if k in fcs.keywords},
                  ranges=[fcs.channels[j].range for j in keep])
        paths.append(out)
    result = analyze_sample(paths, demo_panel)
    base = demo01[0]
    assert result.status == "ok" and "step_skipped" in result.qc_flags
    warnings = result.details["tubes"]["tube1"]["warnings"]
    assert any("'singlets'" in w and "no FSC-H" in w for w in warnings), warnings
    assert any("'singlets_ssc'" in w and "no SSC-H" in w for w in warnings), warnings
    # the doublets the singlet gates removed now count: more evaluable events, the same clone found
    assert result.n_events_evaluable > base.n_events_evaluable
    assert result.mrd_status == base.mrd_status and abs(result.n_aberrant_pc / base.n_aberrant_pc - 1) < 0.05


def test_hemodiluted_marrow_is_flagged(demo_panel):
    result = analyze_sample(files("DEMO04"), demo_panel)
    assert result.hemodilution == "suspected"
    assert "hemodilution_suspected" in result.qc_flags


def test_blood_panel_reports_circulating_plasma_cells_and_pcl():
    result = analyze_sample(files("DEMO05"), PANELS / "pb_ppcl.yaml")
    t = truth("DEMO05")
    true_pct = 100 * t["n_plasma_cells"] / t["n_evaluable"]
    assert abs(result.details["pct_circulating_pc"] / true_pct - 1) < 0.10
    assert result.details["ppcl"] is True and "pcl_criterion_met" in result.qc_flags
    assert result.hemodilution == "not_assessed"
    # no CD117+ precursors or mast cells in blood: what the gates find there (the CD117-dim edge of the
    # granulocytes) is a sliver, and not taken as a CD117-positive reference: CD117 is not judged (said so)
    rows = {(p.tube, p.population): p.count for p in result.populations}
    n_eval = result.details["tubes"]["tube1"]["n_events_evaluable"]
    assert rows[("tube1", "mast_cells")] + rows[("tube1", "myeloid_precursors")] < 0.002 * n_eval
    assert any(w.startswith("CD117: no reference") for w in result.details["tubes"]["tube1"]["warnings"])
    assert "CD117" not in result.details["tubes"]["tube1"]["phenotype"]["boundaries"]


def test_sample_id_override(demo_panel):
    assert analyze_sample(files("DEMO03"), demo_panel, sample_id="P7").sample_id == "P7"


def test_bad_inputs_raise_specific_errors(demo_panel, tmp_path):
    broken = tmp_path / "DEMO03_T1.fcs"
    broken.write_bytes((DEMO / "DEMO03_T1.fcs").read_bytes()[:5000])
    with pytest.raises(FcsError, match=str(broken)):
        analyze_sample([broken, DEMO / "DEMO03_T2.fcs"], demo_panel)
    with pytest.raises(AnalysisError, match="2 samples"):
        analyze_sample([DEMO / "DEMO01_T1.fcs", DEMO / "DEMO03_T2.fcs"], demo_panel)
    odd = tmp_path / "DEMO03_T9.fcs"
    shutil.copy(DEMO / "DEMO03_T1.fcs", odd)
    with pytest.raises(PanelError):
        analyze_sample([odd], demo_panel)
    with pytest.raises(AnalysisError, match="no files"):
        analyze_sample([], demo_panel)


def test_analyze_command_writes_result_json(tmp_path, capsys):
    code = main(["analyze", *map(str, files("DEMO02")), "--panel", str(PANELS / "demo.yaml"), "--out",
                 str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "sample DEMO02:" in out and "wrote" in out
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["sample_id"] == "DEMO02" and doc["status"] == "ok"
    assert doc["mrd_status"] in ("POSITIVE", "POSITIVE_BELOW_LLOQ")
    assert doc["populations"] and doc["details"]["tubes"]["tube2"]["n_plasma_cells"] > 0
    assert not list(tmp_path.glob(".result.*"))  # atomic write leaves no temporary file


def test_analyze_command_failed_sample_exit_1(tmp_path, capsys):
    broken = tmp_path / "X_T1.fcs"
    broken.write_bytes(b"FCS3.1    garbage")
    code = main(["analyze", str(broken), "--panel", str(PANELS / "demo.yaml")])
    assert code == 1
    assert "X_T1.fcs" in capsys.readouterr().out


def _find(obj, key):
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find(v, key)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = _find(v, key)
            if found is not None:
                return found
    return None


def test_panel_thresholds_reach_the_status(tmp_path):
    """The panel's MRD settings drive the call: with a required sensitivity the small demo reaches, a sample
    below the LOD is NEGATIVE; with lod_events above the clone it is not positive."""
    import yaml

    doc = yaml.safe_load((PANELS / "demo.yaml").read_text())
    doc["files"] = str(DEMO / "*.fcs")
    doc["template"] = str(REPO / "gating_templates" / "euroflow_ngf.yaml")
    doc["mrd"]["required_sensitivity"] = 1e-3
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    negative = analyze_sample(files("DEMO03"), tmp_path / "p.yaml")
    assert negative.sensitivity_met and negative.mrd_status == "NEGATIVE"
    doc["mrd"].update(lod_events=100_000, lloq_events=100_000)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    high = analyze_sample(files("DEMO02"), tmp_path / "p.yaml")
    assert high.n_aberrant_pc > 0 and high.mrd_status == "NOT_EVALUABLE"
    assert high.lod == pytest.approx(100_000 / high.n_events_evaluable)
