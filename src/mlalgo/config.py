"""Typed, frozen configuration for pipelines/*.yaml and mlflow.yaml.

YAML only serialises these objects. Every model rejects unknown keys, so a typo fails at load time
with the file, the key path and what was expected, instead of silently running with a default.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import types
import typing
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from mlalgo.backtest.costs import CostModel
from mlalgo.features.spec import FeatureDef, FeatureSpec
from mlalgo.policy import DecisionPolicy
from mlalgo.schedule.config import ScheduleConfig

if TYPE_CHECKING:
    from mlalgo.backtest.portfolio import RiskLimits

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration problem, already phrased for the person who wrote the file."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class FetchConfig(_Frozen):
    source: Literal["sample", "file", "binance", "alpaca", "ccxt"] = "sample"
    path: Path = Path("data/sample")  # sample and file sources
    columns: dict[str, str] = {}  # file source: mlalgo name -> column name in the file
    symbols: tuple[str, ...] = Field(("AAPL", "IBM", "MSFT"), min_length=1)
    start: date | datetime | None = None
    end: date | datetime | None = None
    interval: Literal["1m", "1h", "1d"] = "1d"
    base_url: str | None = None  # network sources: the replay exchange, a testnet, production
    exchange: str = "binance"  # ccxt source: any ccxt exchange id
    store: Path = Path("data/bars")  # network sources are fetched through the bar store
    credentials: Path | None = None  # a 0600 YAML file with API keys; else the environment


class ValidateConfig(_Frozen):
    on_error: Literal["fail", "drop", "repair"] = "fail"
    calendar: Literal["NYSE", "24/7"] = "24/7"  # which sessions a gap is measured against
    jump_sigma: Annotated[float, Field(gt=0)] = 8.0  # warn on moves beyond this many robust sigmas
    strict: bool = False  # treat warnings (gaps, jumps, zero volume) as errors


class LabelConfig(_Frozen):
    kind: Literal["forward_sign", "triple_barrier"] = "forward_sign"
    horizon: PositiveInt = 1
    entry: Literal["next_open", "close"] = "next_open"
    dead_zone: Annotated[float, Field(ge=0)] = 0.0  # forward_sign: |return| <= this: no label
    profit_take: Annotated[float, Field(gt=0)] = 1.0  # triple_barrier: x volatility over horizon
    stop_loss: Annotated[float, Field(gt=0)] = 1.0
    vol_window: Annotated[int, Field(ge=2)] = 20  # bars of realised volatility for the barriers


class LogisticParams(_Frozen):
    C: Annotated[float, Field(gt=0)] = 1.0
    max_iter: PositiveInt = 1000


class HistGBParams(_Frozen):
    max_iter: PositiveInt = 200
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.05
    max_leaf_nodes: Annotated[int, Field(ge=2)] = 15
    min_samples_leaf: PositiveInt = 50
    l2_regularization: Annotated[float, Field(ge=0)] = 1.0


class TrainConfig(_Frozen):
    """The model: LightGBM (its parameters at this level) or a baseline with its own section."""

    model: Literal["lightgbm", "logistic", "hist_gbm"] = "lightgbm"
    sample_weight: Literal["none", "uniqueness"] = (
        "none"  # uniqueness: overlapping labels count less
    )
    early_stopping_rounds: PositiveInt | None = None  # on the latest part of each training window
    validation_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    n_estimators: PositiveInt = 200
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.03
    num_leaves: Annotated[int, Field(ge=2)] = 15
    max_depth: int = -1
    min_child_samples: PositiveInt = 50
    subsample: Annotated[float, Field(gt=0, le=1)] = 0.8
    subsample_freq: Annotated[int, Field(ge=0)] = 1
    colsample_bytree: Annotated[float, Field(gt=0, le=1)] = 0.8
    reg_lambda: Annotated[float, Field(ge=0)] = 1.0
    n_jobs: PositiveInt = 2
    logistic: LogisticParams = LogisticParams()
    hist_gbm: HistGBParams = HistGBParams()

    @model_validator(mode="after")
    def _early_stopping_needs_a_booster(self) -> TrainConfig:
        if self.early_stopping_rounds is not None and self.model == "logistic":
            raise ValueError("early_stopping_rounds applies to lightgbm and hist_gbm, not logistic")
        return self


class CostConfig(_Frozen):
    """Frictions of every fill (see :class:`mlalgo.backtest.costs.CostModel`)."""

    commission_bps: Annotated[float, Field(ge=0)] = 1.0
    slippage_bps: Annotated[float, Field(ge=0)] = 2.0
    commission_fixed: Annotated[float, Field(ge=0)] = 0.0  # per fill, account currency
    half_spread_bps: Annotated[float, Field(ge=0)] = 0.0
    slippage_vol: Annotated[float, Field(ge=0)] = 0.0  # x the bar's return volatility
    vol_window: Annotated[int, Field(ge=2)] = 20
    borrow_bps: Annotated[float, Field(ge=0)] = 0.0  # a year, on short value at each close

    def cost_model(self) -> CostModel:
        return CostModel(**self.model_dump())

    def scaled(self, factor: float) -> CostConfig:
        """Every friction times ``factor`` (see :meth:`CostModel.scaled`)."""
        model = self.cost_model().scaled(factor)
        return CostConfig(**{k: getattr(model, k) for k in type(self).model_fields})


Fraction = Annotated[float, Field(gt=0, lt=1)]


class RiskConfig(_Frozen):
    """Exits and account limits (see :class:`mlalgo.backtest.portfolio.RiskLimits`)."""

    stop_loss: Fraction | None = None  # of the entry price
    take_profit: PositiveFloat | None = None  # of the entry price
    trailing_stop: Fraction | None = None  # of the best price since entry
    max_drawdown: Fraction | None = None  # kill switch: flat for the rest of the run
    max_daily_loss: Fraction | None = None  # flat for the rest of the day
    max_position: PositiveFloat | None = None  # |exposure| of one instrument, x equity
    max_leverage: PositiveFloat | None = None  # gross exposure, x equity

    def limits(self) -> RiskLimits:
        from mlalgo.backtest.portfolio import RiskLimits  # the numba engine, only when used

        return RiskLimits(**self.model_dump())


class ExecutionConfig(_Frozen):
    """How decisions become fills: what a bundle carries so that every evaluation of it, and the
    live paper broker, trade it under the costs and limits it was judged with."""

    fill: Literal["next_open", "close"] = "next_open"
    costs: CostConfig = CostConfig()
    sizing: Literal["fraction", "whole", "units"] = "fraction"
    unit_size: PositiveFloat = 1.0  # units per unit of target, with sizing: units
    min_trade: Annotated[float, Field(ge=0)] = 0.0  # skip trades below this x equity
    risk: RiskConfig = RiskConfig()


class BacktestConfig(_Frozen):
    window: Literal["expanding", "rolling"] = "expanding"
    min_train_bars: Annotated[int, Field(ge=20)] = 504
    max_train_bars: PositiveInt | None = None
    retrain_every: PositiveInt = 63
    fill: Literal["next_open", "close"] = "next_open"
    initial_cash: Annotated[float, Field(gt=0)] = 100_000.0
    costs: CostConfig = CostConfig()
    policy: DecisionPolicy = DecisionPolicy()
    sizing: Literal["fraction", "whole", "units"] = "fraction"
    unit_size: PositiveFloat = 1.0  # units per unit of target, with sizing: units
    min_trade: Annotated[float, Field(ge=0)] = 0.0  # skip trades below this x equity
    risk: RiskConfig = RiskConfig()
    report_dir: Path = Path("reports")  # tearsheets, one folder per run

    def execution(self) -> ExecutionConfig:
        return ExecutionConfig(**{k: getattr(self, k) for k in ExecutionConfig.model_fields})

    def with_execution(self, execution: ExecutionConfig) -> BacktestConfig:
        """This walk-forward setup trading under another (a bundle's) execution."""
        return self.model_copy(
            update={k: getattr(execution, k) for k in ExecutionConfig.model_fields}
        )


class ExportConfig(_Frozen):
    enabled: bool = True
    dir: Path = Path("models")
    model_name: str | None = None
    # The last N bar times are kept from the exported model (with the label purge before them),
    # so a promotion gate can judge it on bars it never trained on; 0 trains on every bar.
    holdout_bars: Annotated[int, Field(ge=0)] = 0


class RegisterConfig(_Frozen):
    """Log the bundle as an MLflow pyfunc model and register it as a new version."""

    enabled: bool = False
    alias: str = "challenger"  # set on the new version


class PromoteConfig(_Frozen):
    """The champion/challenger gate (see :mod:`mlalgo.promotion`)."""

    enabled: bool = False
    metric: Literal["sharpe", "sortino", "total_return", "calmar"] = "sharpe"
    margin: Annotated[float, Field(ge=0)] = 0.0  # challenger must beat champion by more than this
    min_trades: Annotated[int, Field(ge=0)] = 5
    min_dsr: Annotated[float, Field(ge=0, le=1)] = 0.5  # P(true Sharpe > 0), deflated for 2 trials
    max_drawdown: Annotated[float, Field(gt=0, le=1)] = 0.3  # worst peak-to-trough allowed


class Stages(_Frozen):
    fetch: FetchConfig = FetchConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    features: tuple[FeatureDef, ...] = Field(min_length=1)
    label: LabelConfig = LabelConfig()
    train: TrainConfig = TrainConfig()
    backtest: BacktestConfig = BacktestConfig()
    export: ExportConfig = ExportConfig()
    register_: RegisterConfig = Field(RegisterConfig(), alias="register")
    promote: PromoteConfig = PromoteConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    @model_validator(mode="after")
    def _promote_needs_a_registered_holdout(self) -> Stages:
        if self.register_.enabled and not self.export.enabled:
            raise ValueError("register: needs export.enabled: true (the bundle is what is logged)")
        if self.promote.enabled and not self.register_.enabled:
            raise ValueError(
                "promote: needs register.enabled: true (it judges a registered version)"
            )
        if self.promote.enabled and self.export.holdout_bars == 0:
            raise ValueError(
                "promote: needs export.holdout_bars > 0, the recent bars the challenger never "
                "trains on and is judged on"
            )
        return self

    @model_validator(mode="after")
    def _bundle_needs_lightgbm(self) -> Stages:
        if self.export.enabled and self.train.model != "lightgbm":
            raise ValueError(
                f"export: the signal-model bundle holds a LightGBM model, but train.model is "
                f"{self.train.model}; set stages.export.enabled: false to evaluate a baseline"
            )
        return self


ParamValue = str | int | float | bool | None

# Tuning may not touch what defines the data (that would tune on the hold-out) or itself.
_UNTUNABLE = ("stages.fetch", "stages.validate", "tune", "name", "seed", "schedule")


class ParamRange(_Frozen):
    """One dimension of the search space, in Optuna's terms (suggest_int/float/categorical)."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None
    choices: tuple[ParamValue, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ParamRange:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical range needs choices: [a, b, ...]")
            if self.low is not None or self.high is not None or self.log or self.step:
                raise ValueError("a categorical range takes only choices (no low/high/log/step)")
            return self
        if self.choices is not None:
            raise ValueError(f"choices belong to type: categorical, not type: {self.type}")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} range needs low and high")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna samples one or the other)")
        if self.type == "int" and not all(
            float(v).is_integer() for v in (self.low, self.high, self.step or 1)
        ):
            raise ValueError("an int range needs whole-number low, high and step")
        return self

    def bounds(self) -> list[ParamValue]:
        """The values a load-time check applies: both ends, or every choice."""
        if self.type == "categorical":
            return list(self.choices or ())
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]  # type: ignore[arg-type]


class TuneConfig(_Frozen):
    """``mlalgo tune``: what is searched, how trials are scored, and what tuning never sees."""

    objective: Literal["sharpe", "log_loss"] = "sharpe"
    holdout_bars: PositiveInt | None = 504  # the last N bar times, or null with holdout_start
    holdout_start: date | datetime | None = None
    pruner: Literal["median", "hyperband", "none"] = "median"
    warmup_folds: Annotated[int, Field(ge=0)] = 8  # median pruner: never prune before this fold
    startup_trials: PositiveInt = 10  # random trials before TPE models the space
    heartbeat_seconds: PositiveInt = 30  # database storage: a worker silent 2x this is dead
    space: dict[str, ParamRange] = {}

    @model_validator(mode="after")
    def _one_holdout(self) -> TuneConfig:
        given_bars = "holdout_bars" in self.model_fields_set and self.holdout_bars is not None
        if self.holdout_start is not None and given_bars:
            raise ValueError(
                "give holdout_bars or holdout_start, not both (holdout_bars: null to use the date)"
            )
        if self.holdout_start is None and self.holdout_bars is None:
            raise ValueError("the hold-out needs holdout_bars or holdout_start")
        return self


class PipelineConfig(_Frozen):
    name: str = "train"
    seed: int = 42
    stages: Stages
    tune: TuneConfig = TuneConfig()
    schedule: ScheduleConfig = ScheduleConfig()  # when `mlalgo schedule` runs it

    @property
    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(features=self.stages.features)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @property
    def hash(self) -> str:
        """The run's identity: same config, same hash, on any machine. When it runs
        (``schedule``) is not part of what it computes, so it is left out."""
        identity = {k: v for k, v in self.to_dict().items() if k != "schedule"}
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def flat(self) -> dict[str, str]:
        """``stages.train.num_leaves -> "15"``: the form MLflow params take."""
        return {k: "" if v is None else str(v) for k, v in _flatten(self.to_dict()).items()}


class MlflowConfig(_Frozen):
    tracking_uri: str = "sqlite:///mlruns.db"
    experiment: str = "mlalgo"
    registered_model: str = "mlalgo-signal"


def load_pipeline(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Load a pipeline YAML, apply ``key.path=value`` overrides, and validate it."""
    import yaml

    path = Path(path)
    raw = _read_yaml(path)
    set_paths = []
    for item in overrides:
        key, _, value = item.partition("=")
        if not _ or not key:
            raise ConfigError(
                f"--set {item}: expected key.path=value, e.g. stages.train.num_leaves=31"
            )
        _assign(raw, key.strip().split("."), yaml.safe_load(value), item)
        set_paths.append((key.strip(), item))
    cfg = _validate(PipelineConfig, raw, str(path), set_paths)
    _check_space(cfg, str(path))
    return cfg


def with_values(cfg: PipelineConfig, values: dict[str, Any], origin: str) -> PipelineConfig:
    """``cfg`` with dotted-path values applied (a tuning trial), validated like a file."""
    raw = cfg.to_dict()
    for key, value in values.items():
        _assign(raw, key.split("."), value, f"{key}={value}")
    return _validate(PipelineConfig, raw, origin, [])


def _check_space(cfg: PipelineConfig, source: str) -> None:
    """Every search-space key must name a tunable setting that accepts both ends of its range."""
    for key, rng in cfg.tune.space.items():
        where = f"{source}: tune.space.{key}"
        if any(key == p or key.startswith(p + ".") for p in _UNTUNABLE):
            raise ConfigError(
                f"{where}: cannot be tuned (data, validation, seed and tune settings are fixed "
                "so tuning never reaches the hold-out); tune stages.features/label/train/backtest"
            )
        for value in rng.bounds():
            try:
                with_values(cfg, {key: value}, where)
            except ConfigError as exc:
                detail = str(exc).split(": ", 2)[-1]
                raise ConfigError(f"{where}: {value!r} is not a valid value ({detail})") from None


def load_mlflow_config(path: str | Path = "mlflow.yaml") -> MlflowConfig:
    """Read mlflow.yaml (defaults when absent); MLFLOW_TRACKING_URI in the environment wins."""
    path = Path(path)
    raw = _read_yaml(path) if path.exists() else {}
    cfg = _validate(MlflowConfig, raw, str(path), [])
    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    return cfg.model_copy(update={"tracking_uri": env_uri}) if env_uri else cfg


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # here, not at the top: the live executor started from flags reads no file

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys at the top, got {type(data).__name__}"
        )
    return data


def _assign(raw: Any, parts: list[str], value: Any, item: str) -> None:
    node = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"--set {item}: {'.'.join(parts[: i + 1])}: expected a list index "
                    f"0..{len(node) - 1}"
                )
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--set {item}: {'.'.join(parts[:i])} is a value, not a section")


def _validate(
    model: type[M], raw: dict[str, Any], source: str, set_paths: list[tuple[str, str]]
) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(model, err, source, set_paths) for err in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def _describe(
    model: type[BaseModel], err: Any, source: str, set_paths: list[tuple[str, str]]
) -> str:
    loc, parent = _clean_loc(model, err["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    origin = next((f"--set {item}" for p, item in set_paths if key.startswith(p)), source)
    if err["type"] == "extra_forbidden":
        known = _known_keys(parent)
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        tail = f"did you mean {hint[0]}?" if hint else f"expected one of: {', '.join(known)}"
        return f"{origin}: {key}: unknown key ({tail})"
    if err["type"] == "missing":
        return f"{origin}: {key}: required key is missing"
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) else f", got {got!r}"
    if err["type"] == "value_error" and "error" in err.get("ctx", {}):
        return f"{origin}: {key}: {err['ctx']['error']}"  # our own validators' sentences
    return f"{origin}: {key}: {err['msg'][0].lower()}{err['msg'][1:]}{shown}"


def _clean_loc(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[Any], Any]:
    """Drop pydantic's union tags from an error path; return the path and the owning model."""
    out: list[Any] = []
    node: Any = model
    owner: Any = model
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            owner = node
            field = _field_by_name(node, str(part))
            out.append(part)
            node = field.annotation if field is not None else None
        elif typing.get_origin(node) in (tuple, list) and isinstance(part, int):
            out.append(part)
            node = typing.get_args(node)[0]
        elif _is_union(node):
            member = _union_member(node, part)
            if member is None:
                out.append(part)
            node = member
        else:
            out.append(part)
            node = None
    return out, owner


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    args = typing.get_args(tp) if _is_union(tp) else ()
    non_none = [a for a in args if a is not type(None)]
    return non_none[0] if len(args) == 2 and len(non_none) == 1 else tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _union_member(tp: Any, tag: Any) -> Any:
    for member in typing.get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get("feature")
            if field is not None and field.default == tag:
                return member
    return None


def _field_by_name(model: type[BaseModel], name: str) -> Any:
    for field_name, field in model.model_fields.items():
        if name in (field_name, field.alias):
            return field
    return None


def _known_keys(model: Any) -> list[str]:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out
