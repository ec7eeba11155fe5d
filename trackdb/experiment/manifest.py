"""An experiment manifest (TOML): the experiment, its movies with their conditions, the stages.

```toml
[experiment]
name = "plate-1"
frames_per_task = 25              # optional: frames per import / candidates / link task

[[movie]]
name = "A01"
source = "path/to/ctc_dataset"    # a CTC dataset folder; or a TIFF stack, TIFF folder, Zarr array
seq = "01"                        # CTC sequence (CTC folders only)
masks = "gt"                      # gt: the CTC GT masks; labels: source is a label movie;
                                  # prob: source is a probability map (needs the candidates stage)
conditions = { drug = "DMSO", dose_um = 0.0, well = "A01" }

[stages]                          # in pipeline order; each takes its CLI command's parameters
link = { max_distance = 40 }
solve = { method = "joint" }
uncertainty = { method = "as", k = 10 }
```

:func:`load` checks everything that can be checked without the store or the cluster and
returns every problem, one line each; relative paths are relative to the manifest's folder.
A stage's parameters are the keyword parameters of its stage function (``run_link`` …) with
the same names as the CLI's options (``--max-distance`` → ``max_distance``), checked with the
stage's own rules (``trackdb.stages.link.check_link`` …).
"""

from __future__ import annotations

import enum
import inspect
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trackdb.errors import TrackdbError
from trackdb.io.frame_source import Content, FrameSource, ctc_masks, open_frames
from trackdb.stages import candidates, link, solve, uncertainty

DEFAULT_FRAMES_PER_TASK = 25
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # safe as a file name and a partition value


class Stage(enum.Enum):
    """The stages an experiment runs after importing its movies, in pipeline order."""

    CANDIDATES = "candidates"
    LINK = "link"
    SOLVE = "solve"
    UNCERTAINTY = "uncertainty"


ORDER = tuple(Stage)
NEEDS = {Stage.SOLVE: Stage.LINK, Stage.UNCERTAINTY: Stage.SOLVE}


class Masks(enum.Enum):
    """Where a movie's detections come from."""

    GT = "gt"  # the CTC ground-truth masks of SEQ_GT/TRA (as import-ctc --masks-only)
    LABELS = "labels"  # the source is a label movie: each object one detection
    PROB = "prob"  # the source is a probability map: the candidates stage builds forests


class ManifestError(TrackdbError):
    """A manifest with problems: ``problems`` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class MovieEntry:
    name: str
    source: Path  # absolute
    seq: str  # CTC sequence ("" for array sources)
    masks: Masks
    conditions: dict[str, str | int | float | bool]

    def frames(self) -> FrameSource:
        """The movie's detections (or probability map) as a frame source (reads headers only)."""
        if self.masks is Masks.GT:
            return ctc_masks(self.source, self.seq)
        return open_frames(self.source, Content.PROB if self.masks is Masks.PROB else Content.LABELS)

    @property
    def raw_uri(self) -> str | None:
        """The raw frames of a CTC sequence, when the folder has them."""
        raw = self.source / self.seq
        return str(raw) if self.masks is Masks.GT and raw.is_dir() else None


@dataclass(frozen=True)
class Manifest:
    name: str
    path: Path
    movies: tuple[MovieEntry, ...]
    stages: dict[Stage, dict[str, Any]]  # in pipeline order; parameters as written
    frames_per_task: int = DEFAULT_FRAMES_PER_TASK
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)  # the TOML document

    def params(self, stage: Stage) -> dict[str, Any]:
        """The stage's parameters with the stage function's defaults filled in."""
        return {**stage_defaults(stage), **self.stages.get(stage, {})}


# The stage functions whose keyword parameters a manifest may set (their CLI options), minus
# those the engine sets itself.
_STAGE_FUNCTIONS: dict[Stage, tuple[Callable[..., Any], tuple[str, ...]]] = {
    Stage.CANDIDATES: (candidates.run_candidates, ("prob", "labels", "progress")),
    Stage.LINK: (link.run_link, ()),
    Stage.SOLVE: (solve.run_solve, ("link_run_id", "resume")),
    Stage.UNCERTAINTY: (uncertainty.run_uncertainty, ("resume",)),
}


def stage_parameters(stage: Stage) -> dict[str, tuple[type, ...]]:
    """Parameter name → accepted Python types, from the stage function's signature."""
    fn, skip = _STAGE_FUNCTIONS[stage]
    hints = typing.get_type_hints(fn)
    out: dict[str, tuple[type, ...]] = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in ("store", "movie_name") or name in skip or p.kind is p.VAR_KEYWORD:
            continue
        out[name] = _accepted(hints.get(name, object))
    return out


def stage_defaults(stage: Stage) -> dict[str, Any]:
    fn, _ = _STAGE_FUNCTIONS[stage]
    names = stage_parameters(stage)
    return {
        n: p.default
        for n, p in inspect.signature(fn).parameters.items()
        if n in names and p.default is not inspect.Parameter.empty
    }


def _accepted(hint: Any) -> tuple[type, ...]:
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else ()
    kinds = [a for a in args if a is not type(None)] if args else [hint]
    out: list[type] = []
    for k in kinds:
        if k is float:
            out += [int, float]  # TOML writes 40 for 40.0
        elif isinstance(k, type) and issubclass(k, enum.Enum):
            out.append(str)
        elif isinstance(k, type):
            out.append(k)
    return tuple(dict.fromkeys(out)) or (object,)


def _type_ok(value: Any, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in accepted:
        return False
    return isinstance(value, accepted)


def check_stage(stage: Stage, params: Mapping[str, Any]) -> list[str]:
    """Problems of one stage's parameters: unknown names, wrong types, the stage's own rules."""
    known = stage_parameters(stage)
    problems = []
    for key, value in params.items():
        if key not in known:
            problems.append(f"[stages] {stage.value}: unknown parameter {key!r} (known: {', '.join(sorted(known))})")
        elif not _type_ok(value, known[key]):
            want = " or ".join(t.__name__ for t in known[key])
            problems.append(f"[stages] {stage.value}: {key} must be {want}, got {value!r}")
    defaults = stage_defaults(stage)
    problems += [
        f"[stages] {stage.value}: {name} is required" for name in known if name not in defaults and name not in params
    ]
    if problems:
        return problems
    p = {**defaults, **params}
    try:
        if stage is Stage.CANDIDATES:
            candidates.check_candidates(p["tau"], p["min_area"])
        elif stage is Stage.LINK:
            link.check_link(p["max_distance"], p["k"], p["dt"])
        elif stage is Stage.SOLVE:
            solve.check_solve(p["method"], p["window"], p["time_limit"], p["gap"], p["iterations"])
        else:
            uncertainty.parse_method(p["method"])
            uncertainty.check_k(p["k"])
            uncertainty.check_sigma("sigma-px", p["sigma_px"])
            uncertainty.check_sigma("sigma-area", p["sigma_area"])
            if p.get("calibration") is not None and p.get("temperature") is not None:
                raise TrackdbError("give calibration or temperature, not both")
    except TrackdbError as exc:
        return [f"[stages] {stage.value}: {exc}"]
    return []


def _unknown(where: str, table: Mapping[str, Any], known: tuple[str, ...]) -> list[str]:
    return [f"{where}: unknown key {k!r} (known: {', '.join(known)})" for k in table if k not in known]


def _movie(i: int, raw: Any, base: Path) -> tuple[MovieEntry | None, list[str]]:
    where = f"[[movie]] #{i + 1}"
    if not isinstance(raw, dict):
        return None, [f"{where}: must be a table"]
    name = raw.get("name")
    if isinstance(name, str):
        where = f"[[movie]] {name!r}"
    problems = _unknown(where, raw, ("name", "source", "seq", "masks", "conditions"))
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"{where}: name must be 1-100 letters, digits, '_', '.' or '-' (got {name!r})")
    masks_raw = raw.get("masks")
    try:
        masks = Masks(masks_raw)
    except ValueError:
        problems.append(f"{where}: masks must be one of {', '.join(m.value for m in Masks)} (got {masks_raw!r})")
        masks = None
    seq = raw.get("seq", "01" if masks is Masks.GT else "")
    if not isinstance(seq, str):
        problems.append(f'{where}: seq must be a string such as "01" (got {seq!r})')
        seq = ""
    if masks is not None and masks is not Masks.GT and "seq" in raw:
        problems.append(f'{where}: seq applies to CTC folders with masks = "gt" only')
    cond = raw.get("conditions", {})
    if not isinstance(cond, dict):
        problems.append(f'{where}: conditions must be a table such as {{ drug = "DMSO", dose_um = 0.5 }}')
        cond = {}
    for k, v in cond.items():
        if not isinstance(v, (str, int, float, bool)):
            problems.append(f"{where}: condition {k!r} must be a string, number or boolean (got {v!r})")
        elif len(k) > 100:
            problems.append(f"{where}: condition name {k[:20]!r}… is longer than 100 characters")
    source_raw = raw.get("source")
    if not isinstance(source_raw, str) or not source_raw:
        problems.append(f"{where}: source must be a path (a CTC dataset folder, TIFF stack or Zarr array)")
        return None, problems
    source = Path(source_raw).expanduser()
    source = (base / source if not source.is_absolute() else source).resolve()
    if not source.exists():
        problems.append(f"{where}: source {source} does not exist")
    if problems or masks is None:
        return None, problems
    entry = MovieEntry(str(name), source, seq, masks, dict(cond))
    try:
        entry.frames()  # headers only: the frames exist and have one shape
    except TrackdbError as exc:
        return None, [f"{where}: {exc}"]
    return entry, []


def parse(path: Path) -> tuple[Manifest | None, list[str]]:
    """The manifest and every problem found without the store (each one line, naming the key)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return None, [f"manifest {path} does not exist"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"cannot read manifest {path}: {exc}"]
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{path}: not valid TOML: {exc}"]
    problems = _unknown("manifest", doc, ("experiment", "movie", "stages"))
    exp = doc.get("experiment")
    if not isinstance(exp, dict):
        problems.append("manifest: an [experiment] table with a name is required")
        exp = {}
    problems += _unknown("[experiment]", exp, ("name", "frames_per_task", "description"))
    name = exp.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"[experiment]: name must be 1-100 letters, digits, '_', '.' or '-' (got {name!r})")
    chunk = exp.get("frames_per_task", DEFAULT_FRAMES_PER_TASK)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        problems.append(f"[experiment]: frames_per_task must be an integer >= 1 (got {chunk!r})")
        chunk = DEFAULT_FRAMES_PER_TASK
    description = exp.get("description", "")
    if not isinstance(description, str):
        problems.append("[experiment]: description must be a string")
        description = ""

    raw_movies = doc.get("movie", [])
    if not isinstance(raw_movies, list) or not raw_movies:
        problems.append("manifest: at least one [[movie]] is required")
        raw_movies = []
    movies: list[MovieEntry] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_movies):
        nm = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(nm, str):
            if nm in seen:
                problems.append(f"[[movie]] {nm!r}: duplicate movie name (movie #{i + 1})")
                continue
            seen.add(nm)
        entry, found = _movie(i, raw, path.parent)
        problems += found
        if entry is not None:
            movies.append(entry)

    stages: dict[Stage, dict[str, Any]] = {}
    raw_stages = doc.get("stages")
    if not isinstance(raw_stages, dict) or not raw_stages:
        problems.append("manifest: a [stages] table with at least one stage is required (e.g. link = {})")
        raw_stages = {}
    last = -1
    for key, params in raw_stages.items():
        try:
            stage = Stage(key)
        except ValueError:
            problems.append(f"[stages]: unknown stage {key!r} (known, in order: {', '.join(s.value for s in ORDER)})")
            continue
        if ORDER.index(stage) < last:
            problems.append(f"[stages]: stage {key!r} is out of order: stages run {' → '.join(s.value for s in ORDER)}")
        last = max(last, ORDER.index(stage))
        if not isinstance(params, dict):
            problems.append(f"[stages] {key}: parameters must be a table, e.g. {key} = {{}}")
            continue
        problems += check_stage(stage, params)
        stages[stage] = dict(params)
    for stage, need in NEEDS.items():
        if stage in stages and need not in stages:
            problems.append(f"[stages]: stage {stage.value!r} needs stage {need.value!r} before it")
    prob_movies = [m.name for m in movies if m.masks is Masks.PROB]
    if prob_movies and Stage.CANDIDATES not in stages:
        problems.append(
            f'[stages]: movies with masks = "prob" ({", ".join(prob_movies[:3])}) need the candidates stage'
        )
    ordered = {s: stages[s] for s in ORDER if s in stages}
    if not isinstance(name, str):
        return None, problems
    manifest = Manifest(name, path.resolve(), tuple(movies), ordered, chunk, description, doc)
    return manifest, problems


def load(path: Path) -> Manifest:
    """The manifest, or :class:`ManifestError` with every problem :func:`parse` found."""
    manifest, problems = parse(path)
    if problems or manifest is None:
        raise ManifestError(problems or [f"{path}: no experiment"])
    return manifest


__all__ = [
    "DEFAULT_FRAMES_PER_TASK",
    "Manifest",
    "ManifestError",
    "Masks",
    "MovieEntry",
    "ORDER",
    "Stage",
    "check_stage",
    "load",
    "parse",
    "stage_defaults",
    "stage_parameters",
]
