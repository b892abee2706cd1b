"""Synthetic bone marrow and blood FCS files with per-event ground truth.

Modules: :mod:`~mrdflow.simulate.populations` (phenotypes, compositions, clones), :mod:`~mrdflow.simulate.specimen`
(per-specimen variation, vectorised cell sampling), :mod:`~mrdflow.simulate.instrument` (spillover, noise,
doublets, saturation, time, clogs), :mod:`~mrdflow.simulate.scenarios` (named sample plans),
:mod:`~mrdflow.simulate.truth` (side-car files), :mod:`~mrdflow.simulate.generate` (writes it all) and
:mod:`~mrdflow.simulate.libm` (exp/log of parameters, the same on every CPU).
"""

from mrdflow.simulate.generate import make_specimen, simulate_plans, simulate_sample
from mrdflow.simulate.instrument import INSTRUMENTS, TUBE_MARKERS, Clog, acquire, instrument_run
from mrdflow.simulate.populations import LABELS, Clone, draw_clone
from mrdflow.simulate.scenarios import SCENARIOS, SamplePlan, SpecimenPlan, build_scenario
from mrdflow.simulate.specimen import Specimen, draw_specimen, sample_cells
from mrdflow.simulate.truth import EVALUABLE_DEFINITION, truth_mask, truth_path

__all__ = [
    "EVALUABLE_DEFINITION", "INSTRUMENTS", "LABELS", "SCENARIOS", "TUBE_MARKERS",
    "Clog", "Clone", "SamplePlan", "Specimen", "SpecimenPlan",
    "acquire", "build_scenario", "draw_clone", "draw_specimen", "instrument_run", "make_specimen",
    "sample_cells", "simulate_plans", "simulate_sample", "truth_mask", "truth_path",
]
