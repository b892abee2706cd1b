"""One specimen (marrow, blood or a marrow diluted with blood) and vectorised sampling of its cells.

:func:`draw_specimen` perturbs the reference composition and phenotypes (per-specimen biological variation);
:func:`sample_cells` draws the true stain abundances, scatter and labels of ``n`` single events. Both are pure
functions of a seeded :class:`numpy.random.Generator`; everything is float32 per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from mrdflow.simulate import libm
from mrdflow.simulate.populations import (
    BM_COMPOSITION,
    BM_RESTRICTED,
    BM_VARIANTS,
    KAPPA,
    LABEL_CODE,
    LABELS,
    LAMBDA,
    LIGHT_CHAIN_NONE,
    PB_COMPOSITION,
    REFERENCE_PHENOTYPES,
    Clone,
    Expr,
    Phenotype,
    clone_phenotype,
)

#: SD of log per-cell "size/brightness" factor shared by all stains and FSC of one cell
SHARED_SD = 0.12


@dataclass(frozen=True)
class Specimen:
    """Everything that defines a specimen's biology (not its acquisition).

    Attributes
    ----------
    kind : {"bm", "pb"}
        Bone marrow or peripheral blood.
    marrow, blood : dict label -> fraction
        Normal nucleated-cell composition (each sums to 1) of this patient's marrow and blood.
    phenotypes : dict label -> Phenotype
        This specimen's (perturbed) phenotypes, ``aberrant_pc`` included when there is a clone.
    clone : Clone or None
    mrd : float
        Clonal PCs as a fraction of nucleated cells in the marrow (``bm``) or blood (``pb``) before any dilution.
    hemodilution : float
        Fraction of the nucleated cells of a ``bm`` specimen that come from blood (0 = pure marrow).
    debris_fraction, doublet_fraction : float
        Debris events and doublet events as fractions of all acquired events.
    variant : str
        Marrow variant (``typical``, ``nk_rich``, ``regenerating``, ``lymphoid_rich``) or ``blood``.
    """

    kind: str
    marrow: dict[str, float]
    blood: dict[str, float]
    phenotypes: dict[str, Phenotype]
    clone: Clone | None = None
    mrd: float = 0.0
    hemodilution: float = 0.0
    debris_fraction: float = 0.05
    doublet_fraction: float = 0.03
    variant: str = "typical"
    extra: dict = field(default_factory=dict)

    def composition(self) -> dict[str, float]:
        """Fractions of nucleated cells per population as acquired (clone and dilution included)."""
        if self.kind == "pb":
            base, diluted = self.blood, 0.0
        else:
            base, diluted = self.marrow, self.hemodilution
        mrd = self.mrd if self.clone is not None else 0.0
        comp = {k: (1.0 - diluted) * (1.0 - mrd) * v for k, v in base.items()}
        if self.kind == "bm" and diluted:
            for k, v in self.blood.items():
                comp[k] = comp.get(k, 0.0) + diluted * v
        comp["aberrant_pc"] = (1.0 - diluted) * mrd
        return comp

    def expected_mrd(self) -> float:
        """Expected clonal PCs / nucleated cells in the acquired specimen."""
        return self.composition()["aberrant_pc"]

    def to_dict(self) -> dict:
        """Plain description for the truth JSON (compositions in fractions of nucleated cells)."""
        return {
            "kind": self.kind,
            "variant": self.variant,
            "mrd_in_source": self.mrd,
            "hemodilution_fraction": self.hemodilution,
            "expected_mrd_fraction": self.expected_mrd(),
            "debris_fraction": self.debris_fraction,
            "doublet_fraction": self.doublet_fraction,
            "clone": None if self.clone is None else self.clone.to_dict(),
            "marrow_composition": self.marrow,
            "blood_composition": self.blood,
            "acquired_composition": self.composition(),
            "phenotypes": {
                name: {
                    "fsc": p.fsc, "ssc": p.ssc, "autofluorescence": p.autofluorescence,
                    "kappa_fraction": p.kappa_fraction,
                    "markers": {m: [e.median, e.frac, e.low, e.sd] for m, e in p.markers.items()},
                }
                for name, p in self.phenotypes.items()
            },
            **self.extra,
        }


def _normalise(comp: dict[str, float]) -> dict[str, float]:
    total = sum(comp.values())
    return {k: v / total for k, v in comp.items()}


def _jitter_composition(rng: np.random.Generator, comp: dict[str, float], sd: float) -> dict[str, float]:
    out = {}
    for k, v in comp.items():
        s = sd * (1.6 if k in BM_RESTRICTED or k == "normal_pc" else 1.0)
        out[k] = v * libm.exp(rng.normal(0.0, s))
    return _normalise(out)


def _jitter_phenotype(rng: np.random.Generator, p: Phenotype, sd: float) -> Phenotype:
    markers = {
        m: replace(e, median=e.median * libm.exp(rng.normal(0.0, sd)),
                   low=e.low * libm.exp(rng.normal(0.0, sd)),
                   sd=e.sd * libm.exp(rng.normal(0.0, sd / 2)))
        for m, e in p.markers.items()
    }
    return replace(p, fsc=p.fsc * libm.exp(rng.normal(0, 0.05)), ssc=p.ssc * libm.exp(rng.normal(0, 0.06)),
                   autofluorescence=p.autofluorescence * libm.exp(rng.normal(0, 0.15)), markers=markers)


def draw_specimen(
    rng: np.random.Generator,
    *,
    kind: str = "bm",
    variant: str = "typical",
    clone: Clone | None = None,
    mrd: float = 0.0,
    hemodilution: float = 0.0,
    composition_sd: float = 0.3,
    phenotype_sd: float = 0.12,
    cd38_factor: float | None = None,
    anti_cd38: float | None = None,
) -> Specimen:
    """Draw one specimen with per-specimen variation of composition and phenotypes.

    Parameters
    ----------
    rng : numpy Generator
        Source of randomness (the only one).
    kind : {"bm", "pb"}
    variant : str
        Marrow variant, a key of ``BM_VARIANTS``.
    clone : Clone or None
        The myeloma clone (required when ``mrd > 0``).
    mrd : float
        Clonal PCs / nucleated cells in the source tissue (marrow for ``bm``, blood for ``pb``).
    hemodilution : float
        Fraction of nucleated cells from blood in a ``bm`` specimen, 0–1.
    composition_sd, phenotype_sd : float
        SD of the log-normal per-specimen multipliers on population fractions and marker medians.
    cd38_factor : float, optional
        CD38 of the clone relative to normal PCs when the clone has ``CD38_dim`` (random 0.15–0.45 if None).
    anti_cd38 : float, optional
        Residual CD38 staining (0–1) after therapeutic anti-CD38 antibody (daratumumab/isatuximab masks the
        epitope on every cell) — multiplies CD38 of all populations; NK cells, which the antibody depletes,
        fall to a quarter.
    """
    if kind not in ("bm", "pb"):
        raise ValueError(f"specimen kind must be 'bm' or 'pb', got {kind!r}")
    if variant not in BM_VARIANTS:
        raise ValueError(f"unknown marrow variant {variant!r}; expected one of {sorted(BM_VARIANTS)}")
    if not 0.0 <= mrd < 1.0 or not 0.0 <= hemodilution <= 1.0:
        raise ValueError(f"mrd must be in [0, 1) and hemodilution in [0, 1]; got {mrd}, {hemodilution}")
    if mrd > 0 and clone is None:
        raise ValueError("mrd > 0 needs a clone")
    if anti_cd38 is not None and not 0.0 < anti_cd38 <= 1.0:
        raise ValueError(f"anti_cd38 (residual CD38 fraction) must be in (0, 1], got {anti_cd38}")
    marrow = {k: v * BM_VARIANTS[variant].get(k, 1.0) for k, v in BM_COMPOSITION.items()}
    marrow = _jitter_composition(rng, marrow, composition_sd)
    blood = {k: v for k, v in PB_COMPOSITION.items() if v > 0}
    blood = _jitter_composition(rng, blood, composition_sd)
    phenotypes = {name: _jitter_phenotype(rng, p, phenotype_sd) for name, p in REFERENCE_PHENOTYPES.items()}
    if anti_cd38 is not None:
        phenotypes = {name: _mask_cd38(p, anti_cd38) for name, p in phenotypes.items()}
        marrow = _normalise({k: v * (0.25 if k == "nk_cell" else 1.0) for k, v in marrow.items()})
        blood = _normalise({k: v * (0.25 if k == "nk_cell" else 1.0) for k, v in blood.items()})
    pc = phenotypes["normal_pc"]
    phenotypes["normal_pc"] = replace(pc, kappa_fraction=float(rng.uniform(0.5, 0.72)))
    if clone is not None:
        phenotypes["aberrant_pc"] = clone_phenotype(phenotypes["normal_pc"], clone, rng, cd38_factor)
    return Specimen(
        kind=kind, marrow=marrow, blood=blood, phenotypes=phenotypes, clone=clone, mrd=mrd,
        hemodilution=hemodilution if kind == "bm" else 0.0,
        debris_fraction=float(rng.uniform(0.03, 0.12)), doublet_fraction=float(rng.uniform(0.015, 0.05)),
        variant=variant if kind == "bm" else "blood",
        extra={"anti_cd38_residual": anti_cd38},
    )


def _mask_cd38(p: Phenotype, residual: float) -> Phenotype:
    e = p.markers.get("CD38")
    if e is None:
        return p
    return replace(p, markers={**p.markers, "CD38": replace(e, median=e.median * residual, low=e.low * residual)})


@dataclass
class Cells:
    """True per-event properties of single events, before the instrument.

    ``stain`` (n, k) float32 primary-detector abundances of the requested markers; ``fsc``/``ssc`` float32 areas;
    ``autofluorescence`` float32; ``labels`` uint8 codes of ``LABELS``; ``light_chain`` uint8 (0 none, 1 κ, 2 λ).
    """

    labels: np.ndarray
    light_chain: np.ndarray
    stain: np.ndarray
    fsc: np.ndarray
    ssc: np.ndarray
    autofluorescence: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _tables(phenotypes: dict[str, Phenotype], markers: Sequence[str]):
    n_lab, k = len(LABELS), len(markers)
    med = np.zeros((n_lab, k), np.float32)
    low = np.zeros((n_lab, k), np.float32)
    frac = np.ones((n_lab, k), np.float32)
    sd = np.full((n_lab, k), 0.35, np.float32)
    scat = np.zeros((n_lab, 5), np.float32)  # fsc, ssc, scatter_sd, af, kappa fraction (nan = no Ig)
    scat[:, 4] = np.nan
    for name, p in phenotypes.items():
        c = LABEL_CODE[name]
        scat[c] = (p.fsc, p.ssc, p.scatter_sd, p.autofluorescence,
                   np.nan if p.kappa_fraction is None else p.kappa_fraction)
        for j, m in enumerate(markers):
            e: Expr = p.expr(m)
            med[c, j], low[c, j], frac[c, j], sd[c, j] = e.median, e.low, e.frac, e.sd
    return med, low, frac, sd, scat


def sample_cells(
    specimen: Specimen, n: int, markers: Sequence[str], rng: np.random.Generator, *, include_debris: bool = True
) -> Cells:
    """Draw ``n`` single events (nucleated cells, plus debris when ``include_debris``) of ``specimen``.

    Population membership is multinomial with the specimen's composition; expression is log-normal per
    marker with a per-cell factor shared by all stains and FSC (bigger cells bind more antibody).
    """
    comp = specimen.composition()
    names = [k for k, v in comp.items() if v > 0]
    p = np.array([comp[k] for k in names], dtype=np.float64)
    p /= p.sum()
    if include_debris:
        names.append("debris")
        p = np.append(p * (1.0 - specimen.debris_fraction), specimen.debris_fraction)
    codes = np.array([LABEL_CODE[k] for k in names], dtype=np.uint8)
    labels = codes[rng.choice(len(codes), size=n, p=p)]
    med, low, frac, sd, scat = _tables(specimen.phenotypes, markers)

    shared = rng.standard_normal(n, dtype=np.float32) * np.float32(SHARED_SD)
    kf = scat[labels, 4]
    u = rng.random(n, dtype=np.float32)
    has_ig = ~np.isnan(kf)
    light = np.where(has_ig, np.where(u < kf, KAPPA, LAMBDA), LIGHT_CHAIN_NONE).astype(np.uint8)
    del kf, u, has_ig

    stain = np.empty((n, len(markers)), dtype=np.float32)
    for j, m in enumerate(markers):
        z = rng.standard_normal(n, dtype=np.float32)
        pos = rng.random(n, dtype=np.float32) < frac[labels, j]
        centre = np.where(pos, med[labels, j], low[labels, j])
        col = stain[:, j]
        np.multiply(sd[labels, j], z, out=col)
        col += shared
        np.exp(col, out=col)
        col *= centre
        if m == "cyIgKappa":
            col[light != KAPPA] = 0.0
        elif m == "cyIgLambda":
            col[light != LAMBDA] = 0.0
    ssd = scat[labels, 2]
    fsc = scat[labels, 0] * np.exp(ssd * (0.6 * rng.standard_normal(n, dtype=np.float32)) + 1.3 * shared)
    ssc = scat[labels, 1] * np.exp(ssd * rng.standard_normal(n, dtype=np.float32))
    af = scat[labels, 3] * np.exp(np.float32(0.3) * rng.standard_normal(n, dtype=np.float32))
    return Cells(labels, light, stain, fsc.astype(np.float32), ssc.astype(np.float32), af.astype(np.float32))
