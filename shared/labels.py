"""The V3S label space: which transformation families are enabled, with which values, and the class lists.

Paper section 3 and Tables 1 and 3. The spatial head classifies identity + spatial scale (SS) pairs (a, b) +
spatial projection (SP) head side x ratio c; the temporal head classifies temporal scale (TS) speeds s +
temporal projection (TP) patterns (s1, s2). Class indices are fixed by the order below, so a checkpoint
stores `LabelSpace.to_dict()` and evaluation rebuilds the same classes with `LabelSpace.from_dict`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

SIDES = ("left", "right", "top", "bottom")

# The paper's chosen values (section 4.2): the first SS row, the third SP row, TS {1,2,3}, the third TP row.
PAPER_SS = ((1.0, 1.15), (1.0, 1.3), (1.0, 1.45), (1.15, 1.0), (1.3, 1.0), (1.45, 1.0))
PAPER_SP = (0.8, 0.65, 0.5)
PAPER_TS = (1, 2, 3)
PAPER_TP = ((1, 2), (2, 3), (3, 4), (4, 5), (2, 1), (3, 2), (4, 3), (5, 4))


@dataclass(frozen=True)
class SpatialClass:
    """One spatial class: kind is "identity", "scale" (a, b) or "projection" (side, c)."""

    kind: str
    a: float = 1.0
    b: float = 1.0
    side: str | None = None
    c: float = 1.0

    @property
    def name(self) -> str:
        if self.kind == "scale":
            return f"SS({self.a:g},{self.b:g})"
        if self.kind == "projection":
            return f"SP({self.side},{self.c:g})"
        return "identity"


@dataclass(frozen=True)
class TemporalClass:
    """One temporal class: kind is "speed" (TS, s1 == s2 == s) or "pattern" (TP, first half at s1, second at s2)."""

    kind: str
    s1: int
    s2: int

    @property
    def name(self) -> str:
        return f"TS({self.s1})" if self.kind == "speed" else f"TP({self.s1},{self.s2})"

    def steps(self, clip_len: int = 16) -> list[int]:
        """Frame step between consecutive clip frames: clip_len - 1 values (first clip_len // 2 - 1 at s1)."""
        half = clip_len // 2
        return [self.s1 if i < half else self.s2 for i in range(1, clip_len)]

    def span(self, clip_len: int = 16) -> int:
        """Source frames covered by one clip of this class (last index - first index + 1)."""
        return 1 + sum(self.steps(clip_len))


def _pairs(values: Any, what: str, cast: type) -> tuple:
    try:
        out = tuple((cast(p[0]), cast(p[1])) for p in values)
    except (TypeError, ValueError, IndexError) as e:
        raise ValueError(f"{what} must be a list of pairs, got {values!r}") from e
    if any(len(p) != 2 for p in values):
        raise ValueError(f"{what} must be a list of pairs, got {values!r}")
    return out


@dataclass(frozen=True)
class LabelSpace:
    """Enabled V3S families and their values; an empty tuple disables a family.

    Spatial classes, in this order: identity, then one per SS pair (a, b), then one per SP (side, c) with the
    side varying slowest. Identity is always class 0, so a spatial head with no family enabled has exactly one
    class (identity) and its loss is constant. Temporal classes: one per TS speed s (s = 1 is the plain clip and
    is TS's first class, as in the paper's value sets), then one per TP pattern (s1, s2). With neither TS nor TP
    the temporal head has one class, speed 1. With TP alone there is no speed-1 class (Table 3's TP row trains
    on the 8 patterns).

    Args:
        ss: spatial scale pairs (a, b): width x a, height x b. Each factor must be >= 1 so that the 112 crop
            lies inside the enlarged frame (Table 1 only uses such values).
        sp: spatial projection ratios c in (0, 1): head-end length / frame side.
        sp_sides: head sides used by SP, subset of left/right/top/bottom.
        ts: temporal scale speeds (positive ints).
        tp: temporal projection patterns (s1, s2), positive ints with s1 != s2.
    """

    ss: tuple[tuple[float, float], ...] = PAPER_SS
    sp: tuple[float, ...] = PAPER_SP
    sp_sides: tuple[str, ...] = SIDES
    ts: tuple[int, ...] = PAPER_TS
    tp: tuple[tuple[int, int], ...] = PAPER_TP

    def __post_init__(self) -> None:
        ss = _pairs(self.ss, "ss", float)
        tp = _pairs(self.tp, "tp", int)
        sp = tuple(float(c) for c in self.sp)
        sides = tuple(str(s) for s in self.sp_sides)
        ts = tuple(int(s) for s in self.ts)
        for a, b in ss:
            if not (a >= 1 and b >= 1 and math.isfinite(a) and math.isfinite(b)) or (a, b) == (1.0, 1.0):
                raise ValueError(f"ss pair {(a, b)} invalid: need a >= 1 and b >= 1, not both 1 (identity)")
        for c in sp:
            if not 0 < c < 1:
                raise ValueError(f"sp ratio {c} invalid: need 0 < c < 1")
        for s in sides:
            if s not in SIDES:
                raise ValueError(f"sp side {s!r} invalid: choose from {SIDES}")
        if sp and not sides:
            raise ValueError("sp is enabled but sp_sides is empty")
        for s in ts:
            if s < 1:
                raise ValueError(f"ts speed {s} invalid: need a positive integer")
        for s1, s2 in tp:
            if s1 < 1 or s2 < 1 or s1 == s2:
                raise ValueError(f"tp pattern {(s1, s2)} invalid: need positive integers with s1 != s2")
        for name, vals in (("ss", ss), ("sp", sp), ("sp_sides", sides), ("ts", ts), ("tp", tp)):
            if len(set(vals)) != len(vals):
                raise ValueError(f"{name} has duplicate values: {vals}")
            object.__setattr__(self, name, vals)

    # ---- class lists -------------------------------------------------------------------------------------
    @cached_property
    def spatial_classes(self) -> tuple[SpatialClass, ...]:
        out = [SpatialClass("identity")]
        out += [SpatialClass("scale", a=a, b=b) for a, b in self.ss]
        out += [SpatialClass("projection", side=s, c=c) for s in (self.sp_sides if self.sp else ()) for c in self.sp]
        return tuple(out)

    @cached_property
    def temporal_classes(self) -> tuple[TemporalClass, ...]:
        out = [TemporalClass("speed", s, s) for s in self.ts]
        out += [TemporalClass("pattern", s1, s2) for s1, s2 in self.tp]
        return tuple(out) if out else (TemporalClass("speed", 1, 1),)

    @property
    def n_spatial(self) -> int:
        return len(self.spatial_classes)

    @property
    def n_temporal(self) -> int:
        return len(self.temporal_classes)

    def spatial_label(self, cls: SpatialClass) -> int:
        """Class index of a spatial class; ValueError if it is not in this label space."""
        try:
            return self.spatial_classes.index(cls)
        except ValueError:
            raise ValueError(f"{cls} is not a spatial class of {self}") from None

    def temporal_label(self, cls: TemporalClass) -> int:
        """Class index of a temporal class; ValueError if it is not in this label space."""
        try:
            return self.temporal_classes.index(cls)
        except ValueError:
            raise ValueError(f"{cls} is not a temporal class of {self}") from None

    def max_span(self, clip_len: int = 16) -> int:
        """The most source frames any temporal class needs for one clip of clip_len frames."""
        return max(c.span(clip_len) for c in self.temporal_classes)

    # ---- serialisation and presets ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, list]:
        """Plain lists, for a checkpoint or a JSON config."""
        return {f.name: [list(v) if isinstance(v, tuple) else v for v in getattr(self, f.name)]
                for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LabelSpace":
        """Inverse of `to_dict`; unknown keys raise ValueError. Missing keys take the paper's defaults."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown label-space keys {sorted(unknown)}; valid keys: {sorted(known)}")
        return cls(**{k: tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in vals)
                      for k, vals in d.items()})

    @classmethod
    def preset(cls, name: str) -> "LabelSpace":
        """The label space of one row of the paper's Table 1 or Table 3; see `PRESETS` for the names."""
        try:
            kwargs = PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown label-space preset {name!r}; valid presets: {', '.join(PRESETS)}") from None
        return cls(**kwargs)


_OFF = dict(ss=(), sp=(), ts=(), tp=())
_SS_B = ((1, 1.3), (1, 1.6), (1, 1.9), (1.3, 1), (1.6, 1), (1.9, 1))
_SS_C = ((1, 1.45), (1, 1.9), (1, 2.35), (1.45, 1), (1.9, 1), (2.35, 1))

# Table 3 rows, then Table 1 rows in table order (suffix -a/-b/-c for the spatial value sets, the number of
# values for the temporal ones). Rows that are also the chosen values appear under both names.
PRESETS: dict[str, dict[str, Any]] = {
    "ss": {**_OFF, "ss": PAPER_SS},
    "sp": {**_OFF, "sp": PAPER_SP},
    "ss+sp": {**_OFF, "ss": PAPER_SS, "sp": PAPER_SP},
    "ts": {**_OFF, "ts": PAPER_TS},
    "tp": {**_OFF, "tp": PAPER_TP},
    "ts+tp": {**_OFF, "ts": PAPER_TS, "tp": PAPER_TP},
    "all": {},
    "ss-a": {**_OFF, "ss": PAPER_SS},
    "ss-b": {**_OFF, "ss": _SS_B},
    "ss-c": {**_OFF, "ss": _SS_C},
    "sp-a": {**_OFF, "sp": (0.8, 0.75, 0.7)},
    "sp-b": {**_OFF, "sp": (0.8, 0.7, 0.6)},
    "sp-c": {**_OFF, "sp": PAPER_SP},
    "ts2": {**_OFF, "ts": (1, 2)},
    "ts3": {**_OFF, "ts": PAPER_TS},
    "ts4": {**_OFF, "ts": (1, 2, 3, 4)},
    "tp4": {**_OFF, "tp": ((1, 2), (2, 3), (2, 1), (3, 2))},
    "tp6": {**_OFF, "tp": ((1, 2), (2, 3), (3, 4), (2, 1), (3, 2), (4, 3))},
    "tp8": {**_OFF, "tp": PAPER_TP},
}


# --transforms family names -> (LabelSpace field, the paper's values).
FAMILIES = {"ss": ("ss", PAPER_SS), "sp": ("sp", PAPER_SP), "ts": ("ts", PAPER_TS), "tp": ("tp", PAPER_TP)}


def label_space_from(transforms: str) -> LabelSpace:
    """--transforms: a preset name (paper Tables 1 and 3 rows) or a comma list of families ss,sp,ts,tp."""
    if transforms in PRESETS:
        return LabelSpace.preset(transforms)
    names = [t.strip() for t in transforms.split(",") if t.strip()]
    bad = [t for t in names if t not in FAMILIES]
    if not names or bad:
        raise ValueError(f"--transforms {transforms!r}: {bad or 'empty'} not understood; give a preset "
                         f"({', '.join(PRESETS)}) or a comma list of {', '.join(FAMILIES)}")
    return LabelSpace(**{field: (values if name in names else ()) for name, (field, values) in FAMILIES.items()})
