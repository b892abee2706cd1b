"""Simulated FCS files: readable by every reader, truth that adds up, deterministic bytes, scenario plans."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import flowio
import numpy as np
import pytest

from mrdflow.cli import main
from mrdflow.fcs import read_fcs
from mrdflow.simulate.generate import make_specimen, simulate_sample
from mrdflow.simulate.instrument import CHANNEL_RANGE, Clog, TUBE_MARKERS
from mrdflow.simulate.populations import BM_RESTRICTED, LABELS, NUCLEATED
from mrdflow.simulate.scenarios import SCENARIOS, SamplePlan, SpecimenPlan, build_scenario

REPO = Path(__file__).resolve().parents[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """One MRD-positive two-tube marrow with a clog in tube acquisition, on the FACSLyric set-up."""
    out = tmp_path_factory.mktemp("sim")
    plan = SamplePlan("S1", SpecimenPlan("S1"), mrd=5e-3, hemodilution=0.2, instrument="lyric", events=20_000,
                      clog=Clog(0.5, 0.1, 0.25, 0.7))
    simulate_sample(plan, out, seed=7, scenario="test")
    return out, plan


def _flowio_events(path: Path) -> tuple[flowio.FlowData, np.ndarray]:
    fd = flowio.FlowData(str(path))
    return fd, np.asarray(fd.as_array(preprocess=False), dtype=np.float64)


def test_files_read_identically_with_flowio_flowkit_and_raw_bytes(sample):
    flowkit = pytest.importorskip("flowkit")
    out, plan = sample
    for tube in (1, 2):
        path = out / f"S1_T{tube}.fcs"
        fd, ev = _flowio_events(path)
        assert ev.shape == (plan.events, 13)
        begin = int(fd.text["begindata"])
        raw = np.fromfile(path, dtype="<f4", offset=begin, count=plan.events * 13).reshape(plan.events, 13)
        np.testing.assert_array_equal(ev, raw)
        s = flowkit.Sample(str(path))
        fk = s.get_events(source="raw")
        np.testing.assert_array_equal(fk[:, :12], raw[:, :12])
        # FlowKit reports Time in seconds: ticks × $TIMESTEP
        np.testing.assert_allclose(fk[:, 12], raw[:, 12] * float(fd.text["timestep"]), rtol=1e-6)
        assert s.pnn_labels == [fd.channels[i + 1]["pnn"] for i in range(13)]


def test_our_reader_matches_flowio(sample):
    out, _ = sample
    path = out / "S1_T2.fcs"
    data = read_fcs(path)
    _, ev = _flowio_events(path)
    assert data.events.dtype == np.float32
    np.testing.assert_array_equal(data.events, ev.astype(np.float32))
    assert [c.marker for c in data.channels[4:12]] == list(TUBE_MARKERS[2])
    assert data.spillover is not None and data.spillover.matrix.shape == (8, 8)


@pytest.mark.parametrize("instrument", ["canto_ii", "fortessa"])
def test_every_setup_reads_identically_with_all_three_readers(tmp_path, instrument):
    flowkit = pytest.importorskip("flowkit")
    plan = SamplePlan("I", SpecimenPlan("I", kind="pb", clone_style="pcl"), mrd=0.02, instrument=instrument,
                      events=3_000)
    for path in (p for p in simulate_sample(plan, tmp_path, seed=1) if p.suffix == ".fcs"):
        ours = read_fcs(path)
        _, ev = _flowio_events(path)
        np.testing.assert_array_equal(ours.events, ev.astype(np.float32))
        fk = flowkit.Sample(str(path)).get_events(source="raw")
        np.testing.assert_array_equal(fk[:, :12], ev[:, :12])
        assert ours.spillover is not None
        assert ours.spillover.channels == [c.name for c in ours.channels[4:12]]
        assert ours.keywords["$SRC"] == "I"


def test_sample_fcs_files_read_identically_with_our_reader_and_flowio():
    files = sorted((REPO / "sample_fcs").glob("*.fcs"))
    if not files:
        pytest.skip("sample_fcs/ has not been generated in this checkout")
    for path in files:
        ours = read_fcs(path)
        _, ev = _flowio_events(path)
        np.testing.assert_array_equal(ours.events, ev.astype(np.float32))
        labels = np.load(str(path).replace(".fcs", ".truth.npz"))["labels"]
        assert labels.shape == (ours.n_events,)


def test_keywords_markers_spillover_and_grouping(sample):
    out, _ = sample
    truth = json.loads((out / "S1_T1.truth.json").read_text())
    for tube in (1, 2):
        fd, ev = _flowio_events(out / f"S1_T{tube}.fcs")
        assert fd.text["src"] == "S1" and fd.text["tube name"] == f"NGF MM-MRD TUBE {tube}"
        assert fd.text["cyt"] == "BD FACSLyric"
        markers = [fd.channels[i + 1].get("pns") or None for i in range(13)]
        assert markers[4:12] == list(TUBE_MARKERS[tube]) and markers[:4] == [None] * 4
        names = [fd.channels[i + 1]["pnn"] for i in range(13)]
        assert names[:4] == ["FSC-A", "FSC-H", "SSC-A", "SSC-H"] and names[-1] == "Time"
        assert names[4] == "BV421-A" and names[11] == "APC-C750-A"
        parts = fd.text["spillover"].split(",")
        assert int(parts[0]) == 8 and parts[1:9] == names[4:12]
        spill = np.array(parts[9:], dtype=float).reshape(8, 8)
        np.testing.assert_allclose(spill, truth["instrument"]["spillover"], atol=1e-6)
        np.testing.assert_allclose(np.diag(spill), 1.0)
        assert 0.12 < spill[2, 3] < 0.35  # FITC -> PE
        assert 0.08 < spill[6, 7] < 0.3  # APC -> APC-C750
        assert ev[:, :12].max() <= CHANNEL_RANGE - 1  # saturation at $PnR - 1
        assert float(fd.text["timestep"]) == 0.01
        assert np.all(np.diff(ev[:, 12]) >= 0)  # Time is monotone


def test_truth_counts_add_up(sample):
    out, plan = sample
    tubes = {}
    for tube in (1, 2):
        truth = json.loads((out / f"S1_T{tube}.truth.json").read_text())
        npz = np.load(out / f"S1_T{tube}.truth.npz")
        labels, excl = npz["labels"], npz["time_excluded"]
        assert labels.dtype == np.uint8 and labels.shape == (plan.events,)
        assert list(npz["label_names"]) == list(LABELS)
        counts = np.bincount(labels, minlength=len(LABELS))
        assert truth["counts_all_events"] == {n: int(c) for n, c in zip(LABELS, counts)}
        assert sum(truth["counts_all_events"].values()) == truth["n_events"] == plan.events
        nucleated = np.isin(labels, [LABELS.index(n) for n in NUCLEATED])
        assert truth["n_evaluable"] == int((nucleated & ~excl).sum()) == sum(truth["counts_evaluable"].values())
        assert truth["n_evaluable"] == (plan.events - truth["n_debris"] - truth["n_doublets"]
                                        - int((nucleated & excl).sum()))
        assert truth["n_time_excluded"] == int(excl.sum()) == round(0.1 * plan.events)
        ab = int(((labels == LABELS.index("aberrant_pc")) & ~excl).sum())
        assert truth["n_aberrant_pc"] == ab and truth["mrd_fraction"] == ab / truth["n_evaluable"]
        assert len(npz["doublet_index"]) == truth["n_doublets"]
        assert np.all(labels[npz["doublet_index"]] == LABELS.index("doublet"))
        assert "evaluable" in truth["evaluable_definition"] and truth["seed"] == 7
        tubes[tube] = truth
    spec = json.loads((out / "S1.truth.json").read_text())
    for key in ("n_events", "n_evaluable", "n_aberrant_pc", "n_normal_pc", "n_doublets", "n_debris"):
        assert spec[key] == tubes[1][key] + tubes[2][key]
    assert spec["mrd_fraction"] == pytest.approx(spec["n_aberrant_pc"] / spec["n_evaluable"])
    # the expected MRD of a 20 % hemodiluted marrow at 5e-3 is 4e-3; the realised one is within Poisson noise
    assert spec["specimen"]["expected_mrd_fraction"] == pytest.approx(0.8 * 5e-3)
    assert abs(spec["n_aberrant_pc"] - 4e-3 * spec["n_evaluable"]) < 5 * np.sqrt(4e-3 * spec["n_evaluable"])


def test_clog_slows_the_event_rate_and_dims_signals(sample):
    out, _ = sample
    _, ev = _flowio_events(out / "S1_T1.fcs")
    excl = np.load(out / "S1_T1.truth.npz")["time_excluded"]
    t = ev[:, 12]
    idx = np.flatnonzero(excl)
    rate_clog = len(idx) / (t[idx[-1]] - t[idx[0]])
    rate_ok = (len(t) - len(idx)) / (t[-1] - t[0] - (t[idx[-1]] - t[idx[0]]))
    assert rate_clog < 0.5 * rate_ok
    assert np.median(ev[excl, 0]) < 0.92 * np.median(ev[~excl, 0])


def test_doublets_have_raised_area_to_height_ratio_and_debris_is_small(sample):
    out, _ = sample
    _, ev = _flowio_events(out / "S1_T1.fcs")
    labels = np.load(out / "S1_T1.truth.npz")["labels"]
    ratio = ev[:, 0] / np.maximum(ev[:, 1], 1.0)
    dbl = labels == LABELS.index("doublet")
    cells = np.isin(labels, [LABELS.index(n) for n in NUCLEATED])
    assert np.median(ratio[dbl]) > 1.3 * np.median(ratio[cells])
    assert np.percentile(ratio[cells], 99) < np.median(ratio[dbl])
    deb = labels == LABELS.index("debris")
    assert np.median(ev[deb, 0]) < 0.3 * np.median(ev[cells, 0])


def test_tubes_share_composition_but_not_events(sample):
    out, _ = sample
    c1 = json.loads((out / "S1_T1.truth.json").read_text())["counts_all_events"]
    c2 = json.loads((out / "S1_T2.truth.json").read_text())["counts_all_events"]
    for name in ("neutrophil", "immature_granulocyte", "t_cell", "nrbc", "monocyte"):
        a, b = c1[name], c2[name]
        assert abs(a - b) < 5 * np.sqrt(a + b), name  # same multinomial probabilities
    _, e1 = _flowio_events(out / "S1_T1.fcs")
    _, e2 = _flowio_events(out / "S1_T2.fcs")
    assert not np.array_equal(e1[:, :4], e2[:, :4])


def test_same_seed_same_bytes_different_seed_different_specimen(tmp_path):
    plan = SamplePlan("R1", SpecimenPlan("R1"), mrd=1e-3, events=3_000)
    a = simulate_sample(plan, tmp_path / "a", seed=3)
    b = simulate_sample(plan, tmp_path / "b", seed=3)
    c = simulate_sample(plan, tmp_path / "c", seed=4)
    assert [p.name for p in a] == [p.name for p in b]
    assert [_sha(p) for p in a] == [_sha(p) for p in b]
    assert _sha(a[0]) != _sha(c[0])
    comp3 = make_specimen(plan, 3).composition()
    comp4 = make_specimen(plan, 4).composition()
    assert comp3.keys() == comp4.keys() and comp3 != comp4
    assert make_specimen(plan, 3).phenotypes["normal_pc"] != make_specimen(plan, 4).phenotypes["normal_pc"]


@pytest.mark.parametrize("blas_threads", ["1", "2"])
def test_sample_fcs_is_regenerated_byte_for_byte(tmp_path, blas_threads):
    """Whatever the BLAS thread count (with OpenBLAS on 1 thread a matrix product gave other last bits: the
    spillover is now summed by plain ufuncs) and whatever the CPU (the float64 parameters come from the C library's
    exp/log, not numpy's AVX-512 loops)."""
    committed = REPO / "sample_fcs"
    if not (committed / "DEMO03_T1.fcs").exists():
        pytest.skip("sample_fcs/ has not been generated in this checkout")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": blas_threads, "OMP_NUM_THREADS": blas_threads,
           "MKL_NUM_THREADS": blas_threads}
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "make_sample_fcs.py"), "--sample", "DEMO03",
                          "--out", str(tmp_path)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "DEMO03_T1.fcs" in files and "DEMO03_T2.truth.npz" in files and "DEMO03.truth.json" in files
    for name in files:
        if name.endswith(".json"):
            # the truth file's float64 parameters to 1e-12: another C library may round exp/log differently
            assert _close(json.loads((tmp_path / name).read_text()),
                          json.loads((committed / name).read_text())), name
        else:
            assert _sha(tmp_path / name) == _sha(committed / name), name


def _close(a, b) -> bool:
    """Equal JSON trees, floats to 1e-12 relative."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    return a == b


def test_sample_fcs_demo_content_and_size():
    committed = REPO / "sample_fcs"
    if not (committed / "DEMO01.truth.json").exists():
        pytest.skip("sample_fcs/ has not been generated in this checkout")
    total = sum(p.stat().st_size for p in committed.iterdir())
    assert total <= 25e6
    truth = {s: json.loads((committed / f"{s}.truth.json").read_text()) for s in
             ("DEMO01", "DEMO02", "DEMO03", "DEMO04", "DEMO05")}
    assert truth["DEMO01"]["n_aberrant_pc"] >= 50 * 4  # well above LLOQ
    assert all(15 <= t["n_aberrant_pc"] <= 40 for t in truth["DEMO02"]["tubes"].values())  # near LOD per tube
    assert truth["DEMO03"]["n_aberrant_pc"] == 0
    assert truth["DEMO04"]["specimen"]["hemodilution_fraction"] >= 0.5
    assert truth["DEMO05"]["specimen"]["kind"] == "pb" and truth["DEMO05"]["mrd_fraction"] > 0.01


def test_blood_has_no_marrow_restricted_populations_and_hemodilution_dilutes_them():
    blood = make_specimen(SamplePlan("PB", SpecimenPlan("PB", kind="pb", clone_style="pcl"), mrd=0.05), 1)
    comp = blood.composition()
    assert all(comp.get(k, 0.0) == 0.0 for k in BM_RESTRICTED)
    assert comp["normal_pc"] < 0.001 and comp["aberrant_pc"] == pytest.approx(0.05)
    spec = SpecimenPlan("H")
    pure = make_specimen(SamplePlan("H0", spec, mrd=1e-3, hemodilution=0.0), 1).composition()
    diluted = make_specimen(SamplePlan("H9", spec, mrd=1e-3, hemodilution=0.9), 1).composition()
    for k in BM_RESTRICTED:
        assert diluted[k] == pytest.approx(0.1 * pure[k])
    assert diluted["aberrant_pc"] == pytest.approx(1e-4)
    assert diluted["t_cell"] > pure["t_cell"]


def test_scenarios_cover_the_issue():
    assert set(SCENARIOS) == {"demo", "dilution", "normal", "hemodilution", "instrument", "time_anomaly", "pb",
                              "hard"}
    dil = build_scenario("dilution", events=1000, replicates=2)
    assert sorted({p.mrd for p in dil}) == [0.0, 2e-6, 5e-6, 1e-5, 1e-4, 1e-3, 1e-2]
    assert len(dil) == 14 and len({p.specimen.key for p in dil}) == 1
    inst = build_scenario("instrument")
    assert {p.instrument for p in inst} == {"canto_ii", "lyric", "fortessa"}
    assert len({p.specimen.key for p in inst}) == 1
    pb = build_scenario("pb")
    assert {p.mrd for p in pb if p.mrd} == {0.005, 0.02, 0.04, 0.06, 0.2}
    hard = build_scenario("hard")
    assert {p.specimen.clone_style for p in hard} == {"two_weak", "cd45_pos", "cd38_dim"}
    assert any(p.specimen.anti_cd38 for p in hard)
    assert {p.specimen.variant for p in build_scenario("normal")} >= {"typical", "nk_rich", "regenerating"}
    assert any(p.clog is not None for p in build_scenario("time_anomaly"))
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        build_scenario("nope")
    with pytest.raises(ValueError, match="events per tube"):
        build_scenario("demo", events=0)


def test_cli_generates_one_sample_and_rejects_bad_input(tmp_path, capsys):
    assert main(["simulate", "demo", "--out", str(tmp_path), "--events", "2000", "--sample", "DEMO03",
                 "--seed", "5"]) == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"DEMO03_T1.fcs", "DEMO03_T2.fcs", "DEMO03.truth.json"}
    assert json.loads((tmp_path / "DEMO03_T1.truth.json").read_text())["n_events"] == 2000
    assert main(["simulate", "demo", "--out", str(tmp_path), "--sample", "NOPE"]) == 2
    assert "has no sample NOPE" in capsys.readouterr().err
    assert main(["simulate", "nope", "--out", str(tmp_path)]) == 2
    afile = tmp_path / "DEMO03_T1.fcs"
    assert main(["simulate", "demo", "--out", str(afile), "--sample", "DEMO03"]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["simulate", "dilution", "--out", str(tmp_path), "--events", "0"]) == 2


def test_anti_cd38_masks_cd38_on_every_population_and_depletes_nk():
    base = SpecimenPlan("A", clone_style="cd38_dim", cd38_factor=0.5)
    masked = SpecimenPlan("A", clone_style="cd38_dim", cd38_factor=0.5, anti_cd38=0.2)
    before = make_specimen(SamplePlan("A0", base, mrd=1e-3), 2)
    after = make_specimen(SamplePlan("A1", masked, mrd=1e-3), 2)
    for pop in ("normal_pc", "aberrant_pc", "b_cell_precursor", "nk_cell"):
        assert after.phenotypes[pop].markers["CD38"].median == pytest.approx(
            0.2 * before.phenotypes[pop].markers["CD38"].median)
    assert after.composition()["nk_cell"] < 0.3 * before.composition()["nk_cell"]
    assert after.phenotypes["normal_pc"].markers["CD19"] == before.phenotypes["normal_pc"].markers["CD19"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_generates_readable_files_with_consistent_truth(tmp_path, scenario):
    plans = build_scenario(scenario, events=600)
    plan = plans[-1]  # the last plan: e.g. the 0 level of a dilution, 95 % blood, the hardest clone
    written = simulate_sample(plan, tmp_path, seed=9, scenario=scenario)
    assert len(written) == 3 * len(plan.tubes) + 1
    spec = json.loads((tmp_path / f"{plan.sample_id}.truth.json").read_text())
    assert spec["scenario"] == scenario and spec["plan"]["sample_id"] == plan.sample_id
    for path in (p for p in written if p.suffix == ".fcs"):
        data = read_fcs(path)
        assert data.n_events == 600 and data.keywords["$SRC"] == plan.sample_id
        truth = json.loads(Path(str(path)[:-4] + ".truth.json").read_text())
        assert sum(truth["counts_all_events"].values()) == 600


def test_truth_mask_reads_the_side_car_counts_and_rejects_unknown_populations():
    """`truth_mask` is how validation code reads per-event truth: its counts equal the JSON side-car's."""
    from mrdflow.simulate import truth_mask

    fcs = Path(__file__).resolve().parents[1] / "sample_fcs" / "DEMO01_T1.fcs"
    doc = json.loads(fcs.with_name("DEMO01_T1.truth.json").read_text())
    assert int(truth_mask(fcs, "aberrant_pc").sum()) == doc["counts_all_events"]["aberrant_pc"]
    both = truth_mask(fcs, "normal_pc", "aberrant_pc")
    assert int(both.sum()) == doc["counts_all_events"]["normal_pc"] + doc["counts_all_events"]["aberrant_pc"]
    with pytest.raises(ValueError, match="unknown population"):
        truth_mask(fcs, "plasmacytoid")
