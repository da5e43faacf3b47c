"""The typed run configuration: YAML in, frozen validated objects out.

Validation happens once, at load. Every error names the file and the key path, e.g.
``config.yaml: methods.bdt.max_depth: Input should be greater than or equal to 1 (got 0)``.
"""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mva.errors import ConfigError

__all__ = ["Config", "load_config", "parse_config", "apply_overrides"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Frozen):
    """Where the events of one class (or of a regression sample) come from."""

    files: list[str] = Field(min_length=1)
    tree: str | None = None
    weight: str = ""
    cut: str = ""

    @field_validator("files", mode="before")
    @classmethod
    def _one_file(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class Data(_Frozen):
    signal: Source | None = None
    background: Source | None = None
    #: multiclass: class name -> source, in classID order
    classes: dict[str, Source] | None = None
    # regression (or a shared source): files/tree directly under `data`
    files: list[str] | None = None
    tree: str | None = None
    features: list[str] = Field(min_length=1)
    spectators: list[str] = []
    target: list[str] = []
    cut: str = ""
    weight: str = ""
    default: float = Field(
        -999.0, description="value for x[i] of a jagged branch when an event has fewer elements"
    )

    @field_validator("files", "target", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        if v is None or v == "":
            return [] if v == "" else v
        return [v] if isinstance(v, str) else v

    @field_validator("features")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted({f for f in v if v.count(f) > 1})
        if dup:
            raise ValueError(f"duplicate features: {', '.join(dup)}")
        return v


class _PerClass(BaseModel):
    """A number per class, keyed by class name (``{signal: 1000, background: 1000}``, or the
    multiclass class names); the task checks that the names are its classes."""

    model_config = ConfigDict(extra="allow", frozen=True)
    _minimum: ClassVar[float] = 0.0
    _strict: ClassVar[bool] = False  # values must be > minimum (else >=)

    @model_validator(mode="after")
    def _values(self) -> _PerClass:
        for name, v in self.items().items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{name}: must be a finite number (got {v!r})")
            bad = v <= self._minimum if self._strict else v < self._minimum
            if bad:
                op = ">" if self._strict else ">="
                raise ValueError(f"{name}: must be {op} {self._minimum:g} (got {v!r})")
        return self

    def items(self) -> dict[str, Any]:
        """The values by class name."""
        return dict(self.model_extra or {})

    def get(self, name: str, default: Any = None) -> Any:
        return self.items().get(name, default)


class TrainSize(_PerClass):
    """Training events per class."""

    @model_validator(mode="after")
    def _integers(self) -> TrainSize:
        for name, v in self.items().items():
            if isinstance(v, float):
                raise ValueError(f"{name}: must be a whole number of events (got {v!r})")
        return self


class Split(_Frozen):
    train_size: TrainSize | int | None = None
    test_fraction: float | None = Field(None, gt=0.0, lt=1.0)
    #: k-fold cross-validation: number of folds (every event is tested by the model of its fold)
    folds: int | None = Field(None, ge=2, le=1000)
    #: which fold an event is in: an integer expression (taken modulo ``folds``); without it the
    #: folds are drawn at random with ``seed``, per class
    fold_expression: str | None = None
    #: the random seed (numpy's generators take 0 .. 2**32 - 1)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    normalization: Literal["equal", "mean", "none"] = "equal"
    negative_weights: Literal["keep", "ignore"] = "keep"
    #: folds trained at the same time (worker processes); default: as many as cores and folds
    #: allow for small samples, 1 above 100k events (the methods then use the cores themselves)
    n_jobs: int | None = Field(None, ge=1, le=4096)

    @model_validator(mode="after")
    def _one_of(self) -> Split:
        if self.train_size is not None and self.test_fraction is not None:
            raise ValueError("give either train_size or test_fraction, not both")
        if self.folds is not None:
            given = [k for k in ("train_size", "test_fraction") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{given[0]} does not go with folds: with k-fold every event is "
                                 "tested once, by the model of its fold")
        elif self.fold_expression is not None:
            raise ValueError("fold_expression needs folds (e.g. folds: 5)")
        if self.fold_expression is not None and not self.fold_expression.strip():
            raise ValueError("fold_expression is empty")
        return self

    @property
    def kfold(self) -> bool:
        return self.folds is not None


class Yields(_PerClass):
    """Expected events per class after the selection (the class priors)."""

    _strict: ClassVar[bool] = True


class Evaluation(_Frozen):
    yields: Yields | None = None
    signal_fraction: float | None = Field(None, gt=0.0, lt=1.0)
    #: multiclass: expected fraction of each class (alternative to yields)
    class_fractions: Yields | None = None
    plots: bool = True
    #: working points at these signal / background efficiencies (cut, and the other efficiency)
    cuts_at_eff_sig: list[float] = Field([0.5, 0.7, 0.9], description="signal efficiencies")
    cuts_at_eff_bkg: list[float] = Field([0.01, 0.1, 0.3], description="background efficiencies")
    formats: list[Literal["png", "pdf"]] = ["png", "pdf"]
    #: compression of output.root: lz4 (fast, ROOT >= 6.12), zstd, zlib (any ROOT) or none;
    #: an optional level after a colon, e.g. zlib:4
    compression: str = Field("lz4:1", pattern=r"^(none|(lz4|zstd|zlib|lzma)(:[1-9])?)$")

    @model_validator(mode="after")
    def _one_of(self) -> Evaluation:
        given = [k for k in ("yields", "signal_fraction", "class_fractions")
                 if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give either {' or '.join(given)}, not both")
        return self

    @field_validator("cuts_at_eff_sig", "cuts_at_eff_bkg")
    @classmethod
    def _efficiencies(cls, v: list[float]) -> list[float]:
        bad = [x for x in v if not 0.0 < x <= 1.0]
        if bad:
            raise ValueError(f"efficiencies must be in (0, 1], got {bad}")
        return v

    def resolved_signal_fraction(self, default: float) -> float:
        if self.signal_fraction is not None:
            return self.signal_fraction
        if self.yields is not None:
            sig, bkg = self.yields.get("signal"), self.yields.get("background")
            return sig / (sig + bkg)
        return default


class MethodSpec(_Frozen):
    """A method as configured: its key, type, preprocessing and validated parameters."""

    name: str
    type: str
    preprocess: list[str] | None
    params: dict[str, Any]
    #: hyper-parameter tuning (:func:`mva.tuning.validate_tune`'s normalised form), or None
    tune: dict[str, Any] | None = None


class Config(_Frozen):
    #: a task of :data:`mva.tasks.TASKS`
    task: str
    data: Data
    split: Split = Split()
    methods: dict[str, MethodSpec]
    evaluation: Evaluation = Evaluation()
    source: str = "<config>"
    raw: dict[str, Any] = {}

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        from mva.tasks import TASKS

        if v not in TASKS:
            raise ValueError(f"unknown task {v!r} (known: {', '.join(TASKS)})")
        return v

    @property
    def is_classification(self) -> bool:
        """The task has classes (binary or multiclass)."""
        return self.task_.groups is not None

    @functools.cached_property
    def task_(self) -> Any:
        """The task object (:mod:`mva.tasks`) that owns what differs between tasks."""
        from mva.tasks import task_for_config

        return task_for_config(self)


def _fmt_error(source: str, prefix: tuple, exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in (*prefix, *err["loc"]) if not str(p).startswith("function-"))
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif "input" in err and not isinstance(err["input"], dict | list):
        msg += f" (got {err['input']!r})"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {loc or '<top>'}: {msg}{more}"


def _validate_method(name: str, spec: Any, task: str, source: str) -> MethodSpec:
    from mva.methods import METHODS, method_class

    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: methods.{name}: must be a mapping like {{type: bdt}}")
    spec = dict(spec)
    mtype = spec.pop("type", None)
    if mtype not in METHODS:
        raise ConfigError(
            f"{source}: methods.{name}.type: unknown method type {mtype!r} "
            f"(known: {', '.join(sorted(METHODS))})"
        )
    preprocess = spec.pop("preprocess", None)
    tune = spec.pop("tune", None)
    if isinstance(preprocess, str):
        preprocess = [preprocess] if preprocess not in ("", "none") else []
    if preprocess is not None:
        from mva.preprocessing import TRANSFORMS

        if not isinstance(preprocess, list):
            raise ConfigError(f"{source}: methods.{name}.preprocess: must be a list of names")
        for step in preprocess:
            if step not in TRANSFORMS:
                raise ConfigError(
                    f"{source}: methods.{name}.preprocess: unknown transformation {step!r} "
                    f"(known: {', '.join(sorted(TRANSFORMS))})"
                )
    cls = method_class(mtype)
    try:
        params = cls.Params(**spec)
    except ValidationError as exc:
        raise ConfigError(_fmt_error(source, ("methods", name), exc)) from None
    try:
        cls.check_task(task, params)
    except ValueError as exc:
        raise ConfigError(f"{source}: methods.{name}: {exc}") from None
    if tune is not None:
        tune = _validate_tune(tune, name, mtype, task, params, cls, source)
    return MethodSpec(name=name, type=mtype, preprocess=preprocess, params=params.model_dump(),
                      tune=tune)


def _validate_tune(raw: Any, name: str, mtype: str, task: Any, params: Any, cls: Any,
                   source: str) -> dict[str, Any]:
    """``methods.<name>.tune`` checked (:func:`mva.tuning.validate_tune`); errors name the key
    path (``methods.bdt.tune.space.max_depth: ...``)."""
    from mva.tasks import TASKS
    from mva.tuning import SpaceError, validate_tune

    if task not in TASKS:
        return None  # the unknown task is reported on its own
    try:
        return validate_tune(raw, mtype, task, params, cls.Params)
    except ValidationError as exc:
        raise ConfigError(_fmt_error(source, ("methods", name, "tune"), exc)) from None
    except SpaceError as exc:
        key = ".".join(p for p in ("methods", name, "tune", exc.key) if p)
        raise ConfigError(f"{source}: {key}: {exc}") from None


def parse_config(raw: dict[str, Any], source: str = "<config>") -> Config:
    """Validate a config mapping; raise :class:`ConfigError` naming the key path."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping")
    raw = copy.deepcopy(raw)
    methods = raw.get("methods")
    if not isinstance(methods, dict) or not methods:
        raise ConfigError(f"{source}: methods: at least one method is required, e.g. {{bdt: {{type: bdt}}}}")
    for name in methods:
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{source}: methods.{name}: method keys must be identifiers")
    task = raw.get("task")
    body = {k: v for k, v in raw.items() if k != "methods"}
    body["methods"] = {}
    try:
        cfg = Config(**body, source=source)
    except ValidationError as exc:
        raise ConfigError(_fmt_error(source, (), exc)) from None
    specs = {n: _validate_method(n, s, task, source) for n, s in methods.items()}
    cfg = cfg.model_copy(update={"methods": specs, "raw": raw})
    _check_data(cfg, source)
    _check_split(cfg, source)
    _check_method_names(cfg, source)
    return cfg


#: branches a k-fold run adds to the output trees
FOLD_BRANCHES = ("fold", "model_fold")


def _check_split(cfg: Config, source: str) -> None:
    if not cfg.split.kfold:
        return
    from mva.naming import unique_names

    for key in ("features", "spectators"):
        exprs = getattr(cfg.data, key)
        for expr, name in zip(exprs, unique_names(exprs), strict=True):
            if name in FOLD_BRANCHES:
                raise ConfigError(f"{source}: data.{key}: {expr!r} would be written as the "
                                  f"branch {name!r}, which a k-fold run writes itself; use an "
                                  "expression such as '1 * fold'")


#: branches every run writes whatever its methods (``fold``/``model_fold``: k-fold runs; they are
#: reserved always, so that a config does not break when ``split.folds`` is added)
RESERVED_BRANCHES = ("classID", "className", "weight", *FOLD_BRANCHES)


def method_branches(cfg: Config, name: str) -> list[str]:
    """Every output branch that method ``name`` may write (training and ``mva apply``).

    binary: ``<m>``, ``<m>_prob``, ``<m>_rarity``; multiclass: ``<m>_<class>`` and
    ``<m>_<class>_prob``; regression: ``<m>``, ``<m>_sigma`` (one target) or ``<m>_<j>``,
    ``<m>_<j>_sigma`` (several). Keep in step with the tasks' ``method_columns`` and
    ``apply_columns``.
    """
    from mva.naming import class_branch

    if cfg.task == "multiclass":
        classes = [str(c) for c in (cfg.data.classes or {})]
        return [class_branch(name, c, s) for c in classes for s in ("", "prob")]
    if cfg.task == "regression":
        n = len(cfg.data.target)
        stems = [name] if n == 1 else [f"{name}_{j}" for j in range(n)]
        return [b for stem in stems for b in (stem, f"{stem}_sigma")]
    return [name, f"{name}_prob", f"{name}_rarity"]


def _check_method_names(cfg: Config, source: str) -> None:
    """A method whose output branches would overwrite another column is refused."""
    from mva.naming import target_branches, unique_names

    owner: dict[str, str] = {b: "a branch every run writes" for b in RESERVED_BRANCHES}
    if cfg.task == "regression":
        owner.update({b: "a target branch" for b in target_branches(cfg.data.target)})
    for key in ("features", "spectators"):
        exprs = getattr(cfg.data, key)
        for expr, b in zip(exprs, unique_names(exprs), strict=True):
            owner.setdefault(b, f"the branch of data.{key} {expr!r}")
    # the method's own name counts too where it is no branch (multiclass): it names the
    # method's plots (`<m>_<kind>`, `<m>_<class>_<kind>`) and its models
    mine = {name: list(dict.fromkeys([name, *method_branches(cfg, name)])) for name in cfg.methods}
    for name, claimed in mine.items():
        for b in claimed:
            if b in owner:
                what = "its output branch" if b in method_branches(cfg, name) else "its name"
                raise ConfigError(f"{source}: methods.{name}: {what} {b!r} would clash with "
                                  f"{owner[b]}; rename the method")
    names = list(mine)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            clash = next((b for b in mine[first] if b in mine[second]), None)
            if clash is None:
                continue
            # blame the method that is named like the other's branch (`bdt_prob` next to
            # `bdt`), else the later one
            culprit, other = (first, second) if clash == first else (second, first)
            what = "its name" if clash == culprit else "its output branch"
            raise ConfigError(f"{source}: methods.{culprit}: {what} {clash!r} is also an output "
                              f"branch of method {other!r}; rename one of them")


def _check_data(cfg: Config, source: str) -> None:
    """What the schema cannot say alone: the keys each task needs (the task checks them)."""
    from mva.tasks import task_class

    task_class(cfg.task).check_config(cfg, source)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw config mapping."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. methods.bdt.max_depth=4")
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            nxt = node.get(p) if isinstance(node, dict) else None
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {key}: {p} is not a mapping")
            node = nxt
        node[parts[-1]] = yaml.safe_load(value) if value != "" else ""
    return raw


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (plain YAML
    keeps the last one silently: two classes of the same name would become one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            # merge keys (<<: *anchor) bring keys that explicit ones may override: only the
            # node's own scalar keys are compared
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader refuses it itself
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}, first on line {first.line + 1}",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read and validate a YAML config file. Relative data paths resolve against its folder."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}"
                          f" at offset {exc.start}); save the config as UTF-8") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    raw = apply_overrides(raw or {}, overrides or [])
    cfg = parse_config(raw, source=str(path))
    return cfg.model_copy(update={"data": _resolve_paths(cfg.data, path.parent)})


def _resolve_paths(data: Data, base: Path) -> Data:
    def fix(files: list[str] | None) -> list[str] | None:
        if files is None:
            return None
        return [f if Path(f).is_absolute() or "://" in f else str(base / f) for f in files]

    def fix_source(src: Source | None) -> Source | None:
        return None if src is None else src.model_copy(update={"files": fix(src.files)})

    update: dict[str, Any] = {"files": fix(data.files), "signal": fix_source(data.signal),
                              "background": fix_source(data.background)}
    if data.classes is not None:
        update["classes"] = {k: fix_source(v) for k, v in data.classes.items()}
    return data.model_copy(update=update)
