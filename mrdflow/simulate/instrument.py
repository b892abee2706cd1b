"""The cytometer: true stain abundances → detector signals, scatter, doublets, saturation and the Time channel.

Model, per event and detector *d* (8 fluorescence detectors, one per fluorochrome):

``signal_d = Σ_f stain_f · gain_f · M[f, d] + AF · profile_d``, then photon noise with variance
``k_d · signal_d`` (Poisson-like, so spread grows with the total light in the detector — the origin of
compensation spreading error) and Gaussian electronic noise ``N(0, σ_d)``, so compensated negatives centre on
zero and spread below it. ``M`` is the normalised spillover matrix written to ``$SPILLOVER`` (rows = fluorochrome,
diagonal 1). All detectors saturate at ``$PnR − 1``.

Doublets are the sum of two events (areas add, heights do not), so their FSC-A/FSC-H ratio is raised. A
*clog* slows the event rate and dims the signals over a stretch of the acquisition.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from mrdflow.simulate import libm
from mrdflow.simulate.populations import DOUBLET
from mrdflow.simulate.specimen import Cells

#: fluorochromes of the NGF panel in detector order (DOMAIN.md §1.1)
FLUOROCHROMES: tuple[str, ...] = ("BV421", "BV510", "FITC", "PE", "PerCP-Cy5.5", "PE-Cy7", "APC", "APC-C750")
#: markers stained with each fluorochrome, per NGF tube
TUBE_MARKERS: dict[int, tuple[str, ...]] = {
    1: ("CD138", "CD27", "CD38", "CD56", "CD45", "CD19", "CD117", "CD81"),
    2: ("CD138", "CD27", "CD38", "CD56", "CD45", "CD19", "cyIgKappa", "cyIgLambda"),
}
SCATTER_CHANNELS: tuple[str, ...] = ("FSC-A", "FSC-H", "SSC-A", "SSC-H")
CHANNEL_RANGE = 262_144

# rows: spilling-from fluorochrome; columns: detector (order of FLUOROCHROMES)
_BASE_SPILLOVER = np.array([
    # BV421  BV510  FITC   PE     PerCP  PE-Cy7 APC    APC-C750
    [1.000, 0.120, 0.020, 0.005, 0.002, 0.001, 0.000, 0.000],  # BV421
    [0.020, 1.000, 0.180, 0.060, 0.020, 0.005, 0.000, 0.000],  # BV510
    [0.000, 0.030, 1.000, 0.200, 0.050, 0.008, 0.000, 0.000],  # FITC
    [0.000, 0.005, 0.012, 1.000, 0.120, 0.030, 0.002, 0.001],  # PE
    [0.000, 0.000, 0.000, 0.010, 1.000, 0.150, 0.030, 0.030],  # PerCP-Cy5.5
    [0.000, 0.000, 0.000, 0.015, 0.020, 1.000, 0.002, 0.050],  # PE-Cy7
    [0.000, 0.000, 0.000, 0.000, 0.020, 0.005, 1.000, 0.150],  # APC
    [0.000, 0.000, 0.000, 0.002, 0.005, 0.080, 0.030, 1.000],  # APC-C750
])


@dataclass
class Instrument:
    """One cytometer set-up.

    Attributes
    ----------
    name : str
        Set-up id (``canto_ii``, ``lyric``, ``fortessa``).
    cytometer : str
        ``$CYT`` value.
    detector_names : tuple of str
        ``$PnN`` of the 8 fluorescence detectors, in ``FLUOROCHROMES`` order.
    spillover : ndarray (8, 8)
        Normalised spillover (diagonal 1) of this set-up, written to ``$SPILLOVER``.
    gains : ndarray (8,)
        Brightness multiplier of each fluorochrome in its primary detector (PMT voltage, laser power).
    photon_k : ndarray (8,)
        Photon-noise variance per unit of signal in each detector.
    electronic_sd : ndarray (8,)
        Electronic noise SD per detector (units).
    af_profile : ndarray (8,)
        Autofluorescence per detector relative to the FITC detector.
    fsc_gain, ssc_gain : float
        Scatter gains.
    height_ratio : tuple (fsc, ssc)
        Pulse height / area of singlets.
    event_rate : float
        Mean events per second.
    timestep : float
        ``$TIMESTEP`` in seconds.
    """

    name: str
    cytometer: str
    detector_names: tuple[str, ...]
    spillover: np.ndarray
    gains: np.ndarray
    photon_k: np.ndarray
    electronic_sd: np.ndarray
    af_profile: np.ndarray = field(
        default_factory=lambda: np.array([0.6, 0.9, 1.0, 0.6, 0.25, 0.1, 0.05, 0.05]))
    fsc_gain: float = 1.0
    ssc_gain: float = 1.0
    height_ratio: tuple[float, float] = (0.83, 0.80)
    event_rate: float = 8_000.0
    timestep: float = 0.01

    def to_dict(self) -> dict:
        return {
            "name": self.name, "cytometer": self.cytometer, "detector_names": list(self.detector_names),
            "spillover": self.spillover.round(6).tolist(), "gains": self.gains.round(6).tolist(),
            "photon_k": self.photon_k.tolist(), "electronic_sd": self.electronic_sd.tolist(),
            "af_profile": self.af_profile.tolist(), "fsc_gain": self.fsc_gain, "ssc_gain": self.ssc_gain,
            "height_ratio": list(self.height_ratio), "event_rate": self.event_rate, "timestep": self.timestep,
        }


def _spill(row_scale: list[float]) -> np.ndarray:
    m = _BASE_SPILLOVER * np.asarray(row_scale)[:, None]
    np.fill_diagonal(m, 1.0)
    return m


#: the three reference set-ups (different naming styles, spillover and gains)
INSTRUMENTS: dict[str, Instrument] = {
    "canto_ii": Instrument(
        "canto_ii", "FACSCanto II",
        ("V450-A", "V500-A", "FITC-A", "PE-A", "PerCP-Cy5-5-A", "PE-Cy7-A", "APC-A", "APC-H7-A"),
        _spill([1.0] * 8), np.ones(8), np.array([3.0, 3.5, 2.0, 2.0, 3.0, 2.5, 2.0, 3.0]),
        np.array([40.0, 45.0, 30.0, 35.0, 50.0, 45.0, 40.0, 55.0]),
    ),
    "lyric": Instrument(
        "lyric", "BD FACSLyric",
        ("BV421-A", "BV510-A", "FITC-A", "PE-A", "PerCP-Cy5.5-A", "PE-Cy7-A", "APC-A", "APC-C750-A"),
        _spill([0.9, 1.15, 1.1, 0.85, 1.2, 0.9, 0.8, 1.2]), np.array([1.2, 0.9, 1.1, 1.3, 0.85, 1.15, 1.25, 0.9]),
        np.array([2.5, 3.0, 1.8, 1.6, 3.5, 2.2, 1.8, 2.8]), np.array([30.0, 35.0, 25.0, 30.0, 40.0, 40.0, 30.0, 45.0]),
        fsc_gain=1.15, ssc_gain=0.85, height_ratio=(0.88, 0.85), event_rate=10_000.0,
    ),
    "fortessa": Instrument(
        "fortessa", "LSRFortessa",
        ("Pacific Blue-A", "AmCyan-A", "FITC-A", "PE-A", "PerCP-Cy5-5-A", "PE-Cy7-A", "APC-A", "APC-Cy7-A"),
        _spill([1.2, 0.8, 0.9, 1.25, 0.8, 1.2, 1.3, 0.85]), np.array([0.8, 1.3, 0.9, 0.75, 1.2, 0.95, 0.8, 1.4]),
        np.array([3.5, 4.0, 2.5, 2.5, 2.5, 3.0, 2.5, 3.5]), np.array([55.0, 60.0, 40.0, 45.0, 60.0, 55.0, 50.0, 70.0]),
        fsc_gain=0.85, ssc_gain=1.2, height_ratio=(0.79, 0.78), event_rate=6_000.0,
    ),
}


def instrument_run(name: str, rng: np.random.Generator, drift: float = 0.06) -> Instrument:
    """The set-up ``name`` on one day: gains and spillover drift by a log-normal factor of SD ``drift``.

    A detector gain change by ``r_d`` rescales spillover into that detector (``M[f, d] · r_d / r_f``), so the
    written ``$SPILLOVER`` stays the exact matrix of the run.
    """
    try:
        base = INSTRUMENTS[name]
    except KeyError:
        raise ValueError(f"unknown instrument {name!r}; expected one of {sorted(INSTRUMENTS)}") from None
    if drift == 0:
        return replace(base, spillover=base.spillover.copy(), gains=base.gains.copy())
    r = libm.exp(rng.normal(0.0, drift, 8))
    spill = base.spillover * r[None, :] / r[:, None] * libm.exp(rng.normal(0.0, drift / 2, (8, 8)))
    np.fill_diagonal(spill, 1.0)
    return replace(base, spillover=spill, gains=base.gains * r,
                   fsc_gain=base.fsc_gain * libm.exp(rng.normal(0, drift / 2)),
                   ssc_gain=base.ssc_gain * libm.exp(rng.normal(0, drift / 2)),
                   event_rate=base.event_rate * libm.exp(rng.normal(0, 0.15)))


@dataclass(frozen=True)
class Clog:
    """A partial clog: from event fraction ``start`` for a fraction ``length`` of the events, the event rate
    falls to ``rate_factor`` × normal and all signals are multiplied by ``signal_factor``."""

    start: float = 0.4
    length: float = 0.08
    rate_factor: float = 0.3
    signal_factor: float = 0.7

    def event_range(self, n: int) -> tuple[int, int]:
        i0 = int(round(self.start * n))
        return i0, min(n, i0 + int(round(self.length * n)))

    def to_dict(self) -> dict:
        return {"start": self.start, "length": self.length, "rate_factor": self.rate_factor,
                "signal_factor": self.signal_factor}


@dataclass
class Acquisition:
    """One acquired tube: the event matrix plus per-event truth.

    ``events`` float32 (n, 13): FSC-A, FSC-H, SSC-A, SSC-H, 8 fluorescence detectors, Time.
    ``labels`` uint8 (``DOUBLET`` for doublets); ``light_chain`` uint8; ``time_excluded`` bool (inside a clog);
    ``doublet_index`` int64 positions of doublets and ``doublet_parts`` uint8 (n_doublets, 2) their two labels.
    """

    events: np.ndarray
    channel_names: list[str]
    labels: np.ndarray
    light_chain: np.ndarray
    time_excluded: np.ndarray
    doublet_index: np.ndarray
    doublet_parts: np.ndarray
    clog_seconds: tuple[float, float] | None
    duration_seconds: float


def _apply_spillover(stain: np.ndarray, spillover: np.ndarray, out: np.ndarray, rows: int = 65_536) -> None:
    """``out = stain @ spillover`` (float32), each value summed over the fluorochromes in order by plain ufuncs.

    Not ``np.matmul``: BLAS gives other last bits with another thread count (OpenBLAS with 1 thread vs 2 changed
    bytes of the demo files) or CPU kernel, and the simulator's files must be the same bytes for the same seed
    everywhere. Rows in chunks, so the temporaries stay small.
    """
    for start in range(0, stain.shape[0], rows):
        src = stain[start:start + rows]
        dst = out[start:start + rows]
        np.multiply(src[:, :1], spillover[0], out=dst)
        for j in range(1, spillover.shape[0]):
            dst += src[:, j:j + 1] * spillover[j]


def _heights(area: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    return area * (np.float32(ratio) * np.exp(np.float32(0.04) * rng.standard_normal(area.shape[0], dtype=np.float32)))


def acquire(
    cells: Cells,
    partners: Cells,
    doublet_mask: np.ndarray,
    instrument: Instrument,
    rng: np.random.Generator,
    clog: Clog | None = None,
) -> Acquisition:
    """Turn true cells into an acquired event matrix.

    ``cells.stain`` and ``cells.autofluorescence`` are consumed (modified in place) to avoid a second
    n × 8 float32 copy; do not reuse ``cells`` afterwards.

    Parameters
    ----------
    cells : Cells
        One true event per acquired event.
    partners : Cells
        Second cells of the doublets, one per ``True`` in ``doublet_mask`` (in order).
    doublet_mask : bool array (n,)
        Which acquired events are doublets (``cells[i]`` + the next partner).
    instrument : Instrument
    rng : numpy Generator
    clog : Clog, optional
    """
    n = len(cells)
    d_idx = np.flatnonzero(doublet_mask)
    if d_idx.shape[0] != len(partners):
        raise ValueError(f"{d_idx.shape[0]} doublets but {len(partners)} partner cells")
    labels = cells.labels.copy()
    parts = np.stack([cells.labels[d_idx], partners.labels], axis=1).astype(np.uint8)
    labels[d_idx] = DOUBLET
    light = cells.light_chain.copy()
    light[d_idx] = 0

    hr_f, hr_s = instrument.height_ratio
    fsc_a = cells.fsc * np.float32(instrument.fsc_gain)
    ssc_a = cells.ssc * np.float32(instrument.ssc_gain)
    fsc_h = _heights(fsc_a, hr_f, rng)
    ssc_h = _heights(ssc_a, hr_s, rng)
    p_fsc = partners.fsc * np.float32(instrument.fsc_gain)
    p_ssc = partners.ssc * np.float32(instrument.ssc_gain)
    # two cells in one drop: areas add; the taller pulse dominates the height, raised by however much the two
    # pulses overlap (in line: barely; side by side: a lot), so doublets spread from the singlet diagonal
    bump = rng.uniform(1.0, 1.45, d_idx.shape[0]).astype(np.float32)
    fsc_h[d_idx] = np.maximum(fsc_h[d_idx], _heights(p_fsc, hr_f, rng)) * bump
    ssc_h[d_idx] = np.maximum(ssc_h[d_idx], _heights(p_ssc, hr_s, rng)) * bump
    fsc_a[d_idx] += p_fsc
    ssc_a[d_idx] += p_ssc
    stain = cells.stain  # summed in place for doublets, then scaled by gains
    stain[d_idx] += partners.stain
    af = cells.autofluorescence
    af[d_idx] += partners.autofluorescence

    events = np.empty((n, 13), dtype=np.float32)
    events[:, 0], events[:, 1], events[:, 2], events[:, 3] = fsc_a, fsc_h, ssc_a, ssc_h
    del fsc_a, fsc_h, ssc_a, ssc_h
    stain *= instrument.gains.astype(np.float32)
    fl = events[:, 4:12]
    _apply_spillover(stain, instrument.spillover.astype(np.float32), fl)
    fl += af[:, None] * instrument.af_profile.astype(np.float32)

    excluded = np.zeros(n, dtype=bool)
    clog_range = None
    if clog is not None:
        i0, i1 = clog.event_range(n)
        excluded[i0:i1] = True
        events[i0:i1, :4] *= np.float32(np.sqrt(clog.signal_factor))
        events[i0:i1, 4:12] *= np.float32(clog.signal_factor)
        clog_range = (i0, i1)

    # photon noise (variance ∝ signal) + electronic noise, one detector at a time to bound memory
    for d in range(8):
        col = fl[:, d]
        noise = np.sqrt(np.maximum(col, 0.0) * np.float32(instrument.photon_k[d]))
        noise *= rng.standard_normal(n, dtype=np.float32)
        col += noise
        col += np.float32(instrument.electronic_sd[d]) * rng.standard_normal(n, dtype=np.float32)
    del noise
    top = np.float32(CHANNEL_RANGE - 1)
    np.minimum(events[:, :12], top, out=events[:, :12])
    np.maximum(events[:, :4], np.float32(0.0), out=events[:, :4])

    # Time: Poisson arrivals, slower inside the clog; written in $TIMESTEP ticks
    dt = rng.standard_exponential(n) / instrument.event_rate
    if clog_range is not None:
        dt[clog_range[0]:clog_range[1]] /= clog.rate_factor
    t = np.cumsum(dt)
    del dt
    events[:, 12] = np.floor(t / instrument.timestep)
    clog_seconds = None if clog_range is None else (float(t[clog_range[0]]), float(t[clog_range[1] - 1]))
    duration = float(t[-1]) if n else 0.0

    names = [*SCATTER_CHANNELS, *instrument.detector_names, "Time"]
    return Acquisition(events, names, labels, light, excluded, d_idx.astype(np.int64), parts, clog_seconds, duration)
