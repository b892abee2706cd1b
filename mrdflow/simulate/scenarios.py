"""Named scenarios: lists of sample plans (what specimen, how much disease, which set-up, how many events).

A plan only *describes* a sample; :mod:`mrdflow.simulate.generate` turns it into files. Samples that share a
``specimen_key`` share their biology (composition, phenotypes, clone) — e.g. the levels of a dilution series
or one specimen acquired on three set-ups.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mrdflow.simulate.instrument import Clog

#: scenario name -> one-line description (shown by ``mrdflow simulate --help``)
SCENARIOS: dict[str, str] = {
    "demo": "five small two-tube samples (MRD well above LLOQ, near LOD, negative, hemodiluted, PPCL blood)",
    "dilution": "one clone diluted into one normal marrow at 1e-2 .. 2e-6 and 0, with replicates",
    "normal": "MRD-negative marrows: typical, NK-rich, regenerating-PC and lymphoid-rich",
    "hemodilution": "one MRD-positive marrow mixed with blood at 0-95 % blood",
    "instrument": "one specimen acquired on three set-ups (FACSCanto II, FACSLyric, LSRFortessa)",
    "time_anomaly": "one specimen without and with clogs of different position, length and severity",
    "pb": "peripheral blood with 0.5-20 % circulating clonal PCs, 4 and 6 % either side of the PPCL line, and none",
    "hard": "hard clones: two weak aberrancies, CD45-positive, CD38-dim, and a marrow after anti-CD38 therapy",
}

DEFAULT_EVENTS = 200_000

#: demo sample sizes (events per tube) chosen so the ten tubes stay under 25 MB together
DEMO_EVENTS = {"DEMO01": 35_000, "DEMO02": 75_000, "DEMO03": 35_000, "DEMO04": 35_000, "DEMO05": 35_000}


@dataclass(frozen=True)
class SpecimenPlan:
    """The biology to draw: ``key`` seeds it (same key and seed → same specimen)."""

    key: str
    kind: str = "bm"
    variant: str = "typical"
    clone_style: str | None = "typical"
    cd38_factor: float | None = None
    anti_cd38: float | None = None


@dataclass(frozen=True)
class SamplePlan:
    """One sample (one or two tubes) to generate."""

    sample_id: str
    specimen: SpecimenPlan
    mrd: float = 0.0
    hemodilution: float = 0.0
    instrument: str = "canto_ii"
    events: int = DEFAULT_EVENTS
    clog: Clog | None = None
    tubes: tuple[int, ...] = (1, 2)
    instrument_drift: float = 0.06
    note: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tubes"] = list(self.tubes)
        return d


def _level(x: float) -> str:
    if x == 0:
        return "0"
    mant, exp = f"{x:.0e}".split("e")
    return f"{mant}e{int(exp)}"


def build_scenario(name: str, *, events: int | None = None, replicates: int | None = None) -> list[SamplePlan]:
    """The sample plans of scenario ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`SCENARIOS`.
    events : int, optional
        Events per tube for every sample (default: per-sample sizes for ``demo``, 200 000 otherwise).
    replicates : int, optional
        Replicates per condition (default 3 for ``dilution``, 1 otherwise; ignored by ``demo``).
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}")
    if events is not None and events < 1:
        raise ValueError(f"events per tube must be ≥ 1, got {events}")
    if replicates is not None and replicates < 1:
        raise ValueError(f"replicates must be ≥ 1, got {replicates}")
    n = events or DEFAULT_EVENTS
    reps = range(1, (replicates or (3 if name == "dilution" else 1)) + 1)
    plans: list[SamplePlan] = []
    if name == "demo":
        def ev(sid: str) -> int:
            return events or DEMO_EVENTS[sid]

        plans = [
            SamplePlan("DEMO01", SpecimenPlan("DEMO01"), mrd=0.01, events=ev("DEMO01"),
                       note="MRD-positive marrow well above LLOQ"),
            SamplePlan("DEMO02", SpecimenPlan("DEMO02"), mrd=3.3e-4, events=ev("DEMO02"),
                       note="MRD-positive marrow near the LOD (~25 clonal events per tube)"),
            SamplePlan("DEMO03", SpecimenPlan("DEMO03", clone_style=None), events=ev("DEMO03"),
                       note="MRD-negative marrow"),
            SamplePlan("DEMO04", SpecimenPlan("DEMO04"), mrd=2e-3, hemodilution=0.7, instrument="lyric",
                       events=ev("DEMO04"), note="hemodiluted marrow (70 % blood), low-level MRD, FACSLyric"),
            SamplePlan("DEMO05", SpecimenPlan("DEMO05", kind="pb", clone_style="pcl"), mrd=0.08,
                       events=ev("DEMO05"), note="primary plasma-cell leukaemia blood, 8 % clonal PCs"),
        ]
    elif name == "dilution":
        spec = SpecimenPlan("DIL")
        for level in (1e-2, 1e-3, 1e-4, 1e-5, 5e-6, 2e-6, 0.0):
            for r in reps:
                plans.append(SamplePlan(f"DIL_{_level(level)}_R{r}", spec, mrd=level, events=n,
                                        note=f"clone diluted to {level:g} of nucleated cells, replicate {r}"))
    elif name == "normal":
        for variant in ("typical", "nk_rich", "regenerating", "lymphoid_rich"):
            for r in reps:
                plans.append(SamplePlan(f"NORM_{variant}_R{r}", SpecimenPlan(f"NORM_{variant}_R{r}", variant=variant,
                                                                            clone_style=None),
                                        events=n, note=f"MRD-negative {variant} marrow"))
    elif name == "hemodilution":
        for r in reps:
            spec = SpecimenPlan(f"HEMO_R{r}")
            for h in (0.0, 0.25, 0.5, 0.75, 0.9, 0.95):
                plans.append(SamplePlan(f"HEMO_h{round(h * 100):02d}_R{r}", spec, mrd=1e-3, hemodilution=h,
                                        events=n, note=f"marrow with MRD 1e-3 mixed with {h:.0%} blood"))
    elif name == "instrument":
        for r in reps:
            spec = SpecimenPlan(f"INST_R{r}")
            for inst in ("canto_ii", "lyric", "fortessa"):
                plans.append(SamplePlan(f"INST_{inst}_R{r}", spec, mrd=1e-3, instrument=inst, events=n,
                                        note=f"the same specimen acquired on {inst}"))
    elif name == "time_anomaly":
        clogs = {
            "none": None,
            "early": Clog(0.15, 0.10, 0.30, 0.75),
            "mid_severe": Clog(0.45, 0.15, 0.15, 0.55),
            "late_mild": Clog(0.80, 0.06, 0.50, 0.85),
        }
        for r in reps:
            spec = SpecimenPlan(f"TIME_R{r}")
            for label, clog in clogs.items():
                plans.append(SamplePlan(f"TIME_{label}_R{r}", spec, mrd=1e-3, clog=clog, events=n,
                                        note=f"clog: {label}"))
    elif name == "pb":
        for r in reps:
            spec = SpecimenPlan(f"PB_R{r}", kind="pb", clone_style="pcl")
            # 4 and 6 % sit either side of the 5 % PPCL line (IMWG 2021) by more than sampling and measurement
            # error; a file at exactly 5 % would be a coin toss for any method
            for level in (0.0, 0.005, 0.02, 0.04, 0.06, 0.2):
                plans.append(SamplePlan(f"PB_{_level(level)}_R{r}", spec, mrd=level, events=n,
                                        note=f"blood with {level:.1%} circulating clonal PCs"))
    elif name == "hard":
        for r in reps:
            hard = {
                "two_weak": SpecimenPlan(f"HARD_two_weak_R{r}", clone_style="two_weak"),
                "cd45_pos": SpecimenPlan(f"HARD_cd45_pos_R{r}", clone_style="cd45_pos"),
                "cd38_dim": SpecimenPlan(f"HARD_cd38_dim_R{r}", clone_style="cd38_dim", cd38_factor=0.1),
                "anti_cd38": SpecimenPlan(f"HARD_anti_cd38_R{r}", clone_style="cd38_dim", cd38_factor=0.5,
                                          anti_cd38=0.2),
            }
            notes = {"two_weak": "clone with only two weak aberrancies", "cd45_pos": "CD45-positive clone",
                     "cd38_dim": "clone with CD38 ~10 % of normal PCs",
                     "anti_cd38": "after anti-CD38 therapy: CD38 masked on all cells (20 % left), clone dimmer still"}
            for style, spec in hard.items():
                plans.append(SamplePlan(f"HARD_{style}_R{r}", spec, mrd=1e-3, events=n, note=notes[style]))
    return plans
