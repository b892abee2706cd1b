"""Specimen biology: which cell populations a bone-marrow or blood specimen holds and how they stain.

A *phenotype* gives, per population, light-scatter (FSC/SSC) and the stain abundance of each of the ten NGF
markers, in *primary-detector units* at reference instrument gain (roughly what a BD FACSCanto II reports
after compensation: negative ≈ 0, dim ≈ 300–1 000, positive ≈ 2 000–8 000, bright ≈ 10 000–40 000, very bright
> 50 000). Each marker is log-normal around a median, optionally bimodal (a fraction ``frac`` at ``median``,
the rest at ``low``), which models heterogeneous expression (CD45 on normal PCs, CD19 on ~75 % of normal PCs,
CD38 on activated T cells).

Every number here is a default of a generator, drawn from DOMAIN.md §2.2, §2.4, §2.5 (mostly [U] items), and is
*perturbed per specimen* by :func:`draw_specimen` so that an analysis cannot lean on exact positions.
Nothing in the analysis code may import these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np

from mrdflow.simulate import libm

#: the ten NGF markers, in a fixed internal order (tube 1 uses the first eight)
MARKERS: tuple[str, ...] = (
    "CD138", "CD27", "CD38", "CD56", "CD45", "CD19", "CD117", "CD81", "cyIgKappa", "cyIgLambda",
)
MARKER_INDEX: dict[str, int] = {m: i for i, m in enumerate(MARKERS)}

#: truth labels written per event (uint8 codes = position in this tuple)
LABELS: tuple[str, ...] = (
    "debris",
    "doublet",
    "neutrophil",
    "immature_granulocyte",
    "eosinophil",
    "basophil",
    "monocyte",
    "t_cell",
    "nk_cell",
    "mature_b",
    "b_cell_precursor",
    "myeloid_precursor",
    "mast_cell",
    "nrbc",
    "normal_pc",
    "aberrant_pc",
)
LABEL_CODE: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
DEBRIS, DOUBLET = LABEL_CODE["debris"], LABEL_CODE["doublet"]
#: populations of nucleated single cells (the MRD denominator when acquired outside a time anomaly)
NUCLEATED: tuple[str, ...] = LABELS[2:]
#: populations normally absent from peripheral blood (hemodilution markers, DOMAIN.md §3.1)
BM_RESTRICTED: tuple[str, ...] = ("b_cell_precursor", "mast_cell", "nrbc", "myeloid_precursor")

#: light-chain codes of the per-event ``light_chain`` truth array
LIGHT_CHAIN_NONE, KAPPA, LAMBDA = 0, 1, 2


@dataclass(frozen=True)
class Expr:
    """Expression of one marker: log-normal around ``median`` for a fraction ``frac``, around ``low`` otherwise.

    ``sd`` is the standard deviation of the natural log (0.35 ≈ 36 % CV). ``low = 0`` means unstained (only
    autofluorescence and instrument noise remain).
    """

    median: float
    frac: float = 1.0
    low: float = 0.0
    sd: float = 0.35


NEG = Expr(0.0)


@dataclass(frozen=True)
class Phenotype:
    """Scatter and stain of one population.

    Attributes
    ----------
    fsc, ssc : float
        Median FSC-A / SSC-A area (linear instrument units at reference gain, range 0–262 143).
    scatter_sd : float
        SD of log scatter.
    autofluorescence : float
        Autofluorescence level (units in the FITC detector; other detectors scale by the instrument's profile).
    markers : mapping marker -> Expr
        Missing markers are unstained.
    kappa_fraction : float or None
        For immunoglobulin-producing populations the fraction of κ cells (rest λ); ``None`` = no light chains.
    """

    fsc: float
    ssc: float
    scatter_sd: float = 0.15
    autofluorescence: float = 150.0
    markers: Mapping[str, Expr] = field(default_factory=dict)
    kappa_fraction: float | None = None

    def expr(self, marker: str) -> Expr:
        return self.markers.get(marker, NEG)


def _p(fsc, ssc, af=150.0, kappa=None, sd=0.15, **markers) -> Phenotype:
    return Phenotype(fsc, ssc, sd, af, dict(markers), kappa)


#: reference phenotypes (DOMAIN.md §2.4); per-specimen jitter is applied on top
REFERENCE_PHENOTYPES: dict[str, Phenotype] = {
    "debris": _p(14_000, 9_000, af=60.0, sd=0.55, CD45=Expr(150, 0.2), CD38=Expr(200, 0.2)),
    "neutrophil": _p(95_000, 150_000, af=280.0, sd=0.13, CD45=Expr(3_000, sd=0.3), CD38=Expr(350, 0.5),
                     CD81=Expr(250, 0.4)),
    "immature_granulocyte": _p(105_000, 165_000, af=300.0, sd=0.14, CD45=Expr(1_600), CD38=Expr(900),
                               CD117=Expr(300, 0.3), CD81=Expr(300, 0.4)),
    "eosinophil": _p(98_000, 195_000, af=1_400.0, sd=0.12, CD45=Expr(7_000, sd=0.3), CD38=Expr(450)),
    "basophil": _p(62_000, 32_000, af=200.0, CD45=Expr(2_400), CD38=Expr(6_000), CD81=Expr(800)),
    "monocyte": _p(98_000, 70_000, af=300.0, CD45=Expr(11_000, sd=0.3), CD38=Expr(3_200),
                   CD56=Expr(3_000, 0.1), CD81=Expr(2_500)),
    "t_cell": _p(56_000, 20_000, af=120.0, CD45=Expr(26_000, sd=0.3), CD38=Expr(3_000, 0.2, 350),
                 CD27=Expr(5_500, 0.7), CD56=Expr(3_500, 0.06), CD81=Expr(3_000)),
    "nk_cell": _p(59_000, 26_000, af=120.0, CD45=Expr(22_000, sd=0.3), CD56=Expr(12_000, sd=0.45),
                  CD38=Expr(4_000), CD81=Expr(1_800, 0.5, 300), CD27=Expr(800, 0.2)),
    "mature_b": _p(56_000, 18_000, af=120.0, kappa=0.6, CD45=Expr(20_000, sd=0.3), CD19=Expr(8_000),
                   CD27=Expr(4_500, 0.4), CD38=Expr(600), CD81=Expr(4_500), cyIgKappa=Expr(3_500),
                   cyIgLambda=Expr(3_500)),
    "b_cell_precursor": _p(50_000, 15_000, af=110.0, CD45=Expr(3_000, sd=0.45), CD19=Expr(6_000),
                           CD38=Expr(26_000), CD81=Expr(22_000)),
    "myeloid_precursor": _p(82_000, 60_000, af=250.0, sd=0.18, CD45=Expr(2_600), CD117=Expr(4_500, sd=0.4),
                            CD38=Expr(8_000), CD81=Expr(1_500)),
    "mast_cell": _p(85_000, 85_000, af=300.0, CD45=Expr(8_000), CD117=Expr(70_000, sd=0.3), CD38=Expr(300),
                    CD81=Expr(3_000)),
    "nrbc": _p(45_000, 11_000, af=80.0, sd=0.18, CD38=Expr(2_500, 0.15, 150), CD117=Expr(1_500, 0.05),
               CD45=Expr(120, 0.3)),
    "normal_pc": _p(88_000, 38_000, af=250.0, kappa=0.62, CD138=Expr(11_000, sd=0.4), CD27=Expr(15_000),
                    CD38=Expr(85_000, sd=0.3), CD56=Expr(8_000, 0.06), CD45=Expr(6_000, 0.75, 250),
                    CD19=Expr(3_000, 0.75, 150), CD81=Expr(6_500), cyIgKappa=Expr(45_000), cyIgLambda=Expr(45_000)),
}

#: typical adult bone-marrow composition, % of nucleated cells (DOMAIN.md §2.5)
BM_COMPOSITION: dict[str, float] = {
    "neutrophil": 22.0, "immature_granulocyte": 36.0, "eosinophil": 2.5, "basophil": 0.3, "monocyte": 5.0,
    "t_cell": 9.0, "nk_cell": 1.2, "mature_b": 2.5, "b_cell_precursor": 1.0, "myeloid_precursor": 1.5,
    "mast_cell": 0.02, "nrbc": 13.0, "normal_pc": 0.4,
}
#: peripheral blood (after bulk lysis), % of nucleated cells
PB_COMPOSITION: dict[str, float] = {
    "neutrophil": 60.0, "immature_granulocyte": 0.4, "eosinophil": 3.0, "basophil": 0.7, "monocyte": 7.0,
    "t_cell": 22.0, "nk_cell": 3.5, "mature_b": 3.2, "b_cell_precursor": 0.0, "myeloid_precursor": 0.0,
    "mast_cell": 0.0, "nrbc": 0.0, "normal_pc": 0.03,
}
#: marrow variants for the ``normal`` scenario: multipliers on BM_COMPOSITION
BM_VARIANTS: dict[str, dict[str, float]] = {
    "typical": {},
    "nk_rich": {"nk_cell": 6.0, "t_cell": 1.5},
    "regenerating": {"normal_pc": 6.0, "b_cell_precursor": 4.0, "myeloid_precursor": 2.0, "mast_cell": 2.0},
    "lymphoid_rich": {"t_cell": 2.5, "mature_b": 2.0, "neutrophil": 0.7},
}

# ---------------------------------------------------------------------------------------------------------
# myeloma clone


#: aberrancy name -> (probability in myeloma, DOMAIN.md §2.2)
ABERRANCY_FREQUENCY: dict[str, float] = {
    "CD19_neg": 0.95, "CD56_pos": 0.70, "CD27_dim": 0.35, "CD81_dim": 0.55, "CD117_pos": 0.25,
    "CD45_dim": 0.75, "CD38_dim": 0.55,
}


@dataclass(frozen=True)
class Clone:
    """A plasma-cell clone: its light chain and the markers where it departs from normal PCs.

    ``strength`` in (0, 1] scales each aberrancy between the normal-PC level (0) and the full aberrant level (1).
    """

    light_chain: str = "kappa"
    aberrancies: tuple[str, ...] = ("CD19_neg", "CD56_pos", "CD45_dim")
    strength: float = 1.0
    cd45_positive: bool = False

    def to_dict(self) -> dict:
        return {"light_chain": self.light_chain, "aberrancies": list(self.aberrancies), "strength": self.strength,
                "cd45_positive": self.cd45_positive}


def draw_clone(rng: np.random.Generator, style: str = "typical") -> Clone:
    """Draw a clone phenotype.

    ``typical``: each aberrancy independently with its myeloma frequency (at least one);
    ``two_weak``: exactly two aberrancies at 45–60 % strength, CD45 not among them;
    ``cd45_pos``: typical but CD45 stays positive; ``cd38_dim``: CD38 strongly reduced (anti-CD38 therapy);
    ``pcl``: plasma-cell leukaemia (CD56 more often negative, CD19 negative, CD45 dim).
    """
    chain = "kappa" if rng.random() < 0.6 else "lambda"
    names = list(ABERRANCY_FREQUENCY)
    if style == "two_weak":
        pool = [n for n in names if n != "CD45_dim"]
        picked = tuple(sorted(rng.choice(pool, size=2, replace=False).tolist()))
        return Clone(chain, picked, float(rng.uniform(0.45, 0.6)))
    freq = dict(ABERRANCY_FREQUENCY)
    if style == "pcl":
        freq.update(CD56_pos=0.35, CD117_pos=0.1)
    while True:
        picked = tuple(n for n in names if rng.random() < freq[n])
        if style == "cd45_pos":
            picked = tuple(n for n in picked if n != "CD45_dim")
        if style == "cd38_dim" and "CD38_dim" not in picked:
            picked = picked + ("CD38_dim",)
        if picked:
            break
    return Clone(chain, picked, 1.0, cd45_positive=(style == "cd45_pos"))


def _blend(normal: Expr, aberrant: Expr, s: float) -> Expr:
    """Interpolate (in log space) between normal and aberrant expression by strength ``s``."""
    def lg(v: float) -> float:
        return libm.log(max(v, 1.0))

    return Expr(
        median=libm.exp(lg(normal.median) + s * (lg(aberrant.median) - lg(normal.median))),
        frac=normal.frac + s * (aberrant.frac - normal.frac),
        low=libm.exp(lg(normal.low) + s * (lg(aberrant.low) - lg(normal.low))) if normal.low or aberrant.low
        else 0.0,
        sd=normal.sd + s * (aberrant.sd - normal.sd),
    )


def clone_phenotype(normal_pc: Phenotype, clone: Clone, rng: np.random.Generator,
                    cd38_factor: float | None = None) -> Phenotype:
    """The aberrant-PC phenotype of ``clone``, derived from this specimen's normal-PC phenotype."""
    m = dict(normal_pc.markers)
    full: dict[str, Expr] = {
        "CD19_neg": Expr(150, 0.03, 120),
        "CD56_pos": Expr(float(rng.uniform(6_000, 25_000)), float(rng.uniform(0.8, 1.0)), 200),
        "CD27_dim": Expr(float(rng.uniform(300, 1_500)), 1.0),
        "CD81_dim": Expr(float(rng.uniform(200, 1_200)), 1.0),
        "CD117_pos": Expr(float(rng.uniform(2_500, 9_000)), float(rng.uniform(0.7, 1.0)), 200),
        "CD45_dim": Expr(float(rng.uniform(150, 800)), 1.0),
        "CD38_dim": Expr(m["CD38"].median * (cd38_factor or float(rng.uniform(0.15, 0.45))), 1.0, sd=0.4),
    }
    normal_of = {"CD19_neg": "CD19", "CD56_pos": "CD56", "CD27_dim": "CD27", "CD81_dim": "CD81",
                 "CD117_pos": "CD117", "CD45_dim": "CD45", "CD38_dim": "CD38"}
    for ab in clone.aberrancies:
        marker = normal_of[ab]
        m[marker] = _blend(m.get(marker, NEG), full[ab], clone.strength)
    if clone.cd45_positive:
        m["CD45"] = Expr(m["CD45"].median * float(rng.uniform(1.0, 2.0)), 0.97, 400)
    # a clone is monomorphic: tighter spread, one light chain
    chain = "cyIgKappa" if clone.light_chain == "kappa" else "cyIgLambda"
    other = "cyIgLambda" if chain == "cyIgKappa" else "cyIgKappa"
    m[chain] = Expr(m[chain].median * float(rng.uniform(0.7, 1.3)), 1.0, sd=0.3)
    m[other] = m[chain]
    kappa = 1.0 if clone.light_chain == "kappa" else 0.0
    m["CD138"] = replace(m["CD138"], median=m["CD138"].median * float(rng.uniform(1.0, 1.8)), sd=0.3)
    return replace(normal_pc, fsc=normal_pc.fsc * float(rng.uniform(1.0, 1.2)), markers=m, kappa_fraction=kappa,
                   scatter_sd=0.12)
