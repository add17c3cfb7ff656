"""The variable space: the typed, optimizable variables of a program's configuration.

A variable names a configuration path (``"answer.temperature"``, ``"*.model"``) and the
values it may take. An *assignment* maps variable names to values; it is validated
against the space before it runs, sampled with a seeded generator, or mapped to Optuna.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from .errors import ConfigurationError

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

JSONScalar = str | int | float | bool | None
Demo = dict[str, Any]


class Condition(BaseModel):
    """The variable exists only while ``variable`` has one of the values ``in_``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    variable: str = Field(description="Name of the variable this one depends on.")
    in_: list[JSONScalar] = Field(
        alias="in", description="Values of that variable for which this one exists."
    )


class _Var(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Unique name of the variable.", examples=["temperature"])
    path: str = Field(
        default="",
        description="Configuration path it sets: '<stage>.<key>' or '*.<key>' for all "
        "stages. Defaults to the name.",
        examples=["answer.temperature"],
    )
    condition: Condition | None = Field(default=None, description="When the variable exists.")

    @model_serializer(mode="wrap")
    def _keep_kind(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The discriminator must survive `exclude_defaults`, or the dump cannot be read back.
        data: dict[str, Any] = handler(self)
        data["kind"] = getattr(self, "kind")  # noqa: B009 - declared by each subclass
        return data

    @property
    def target(self) -> str:
        return self.path or self.name

    def check(self, value: Any) -> str | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def sample(self, rng: random.Random) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def default(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class FloatVar(_Var):
    kind: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    step: float | None = None
    initial: float | None = Field(default=None, description="The baseline value.")

    @model_validator(mode="after")
    def _bounds(self) -> FloatVar:
        if not self.low <= self.high:
            raise ValueError(f"variable {self.name!r}: low must be <= high")
        if self.log and self.low <= 0:
            raise ValueError(f"variable {self.name!r}: a log range needs low > 0")
        return self

    def check(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {value!r}"
        if not self.low <= float(value) <= self.high or math.isnan(float(value)):
            return f"{value!r} is outside [{self.low}, {self.high}]"
        return None

    def sample(self, rng: random.Random) -> float:
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        if self.step:
            steps = round((self.high - self.low) / self.step)
            return self.low + self.step * rng.randint(0, steps)
        return rng.uniform(self.low, self.high)

    def default(self) -> float:
        return self.initial if self.initial is not None else self.low


class IntVar(_Var):
    kind: Literal["int"] = "int"
    low: int
    high: int
    step: int = 1
    initial: int | None = None

    @model_validator(mode="after")
    def _bounds(self) -> IntVar:
        if not self.low <= self.high:
            raise ValueError(f"variable {self.name!r}: low must be <= high")
        if self.step < 1:
            raise ValueError(f"variable {self.name!r}: step must be >= 1")
        return self

    def check(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, got {value!r}"
        if not self.low <= value <= self.high:
            return f"{value} is outside [{self.low}, {self.high}]"
        if (value - self.low) % self.step:
            return f"{value} is not on the grid {self.low} + k*{self.step}"
        return None

    def sample(self, rng: random.Random) -> int:
        return self.low + self.step * rng.randint(0, (self.high - self.low) // self.step)

    def default(self) -> int:
        return self.initial if self.initial is not None else self.low


class ChoiceVar(_Var):
    kind: Literal["choice"] = "choice"
    choices: list[JSONScalar] = Field(min_length=1, description="Allowed values.")
    initial: JSONScalar = None

    def check(self, value: Any) -> str | None:
        if value not in self.choices:
            return f"{value!r} is not one of {self.choices!r}"
        return None

    def sample(self, rng: random.Random) -> JSONScalar:
        return rng.choice(self.choices)

    def default(self) -> JSONScalar:
        return self.initial if self.initial is not None else self.choices[0]


class TextVar(_Var):
    """Free text (instructions) up to ``max_length``; ``candidates`` are what a search
    samples from, the first being the baseline."""

    kind: Literal["text"] = "text"
    candidates: list[str] = Field(default_factory=list)
    max_length: int = 8000

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"must be text, got {type(value).__name__}"
        if len(value) > self.max_length:
            return f"is {len(value)} characters long; the limit is {self.max_length}"
        return None

    def sample(self, rng: random.Random) -> str | None:
        return rng.choice(self.candidates) if self.candidates else None

    def default(self) -> str | None:
        return self.candidates[0] if self.candidates else None


class DemoSetVar(_Var):
    """A list of demonstrations (dicts of field values), at most ``max_demos``;
    ``candidates`` are alternative demo sets a search chooses among."""

    kind: Literal["demos"] = "demos"
    max_demos: int = Field(default=8, ge=0)
    candidates: list[list[Demo]] = Field(default_factory=list)

    def check(self, value: Any) -> str | None:
        if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
            return "must be a list of demos (objects of field values)"
        if len(value) > self.max_demos:
            return f"has {len(value)} demos; the limit is {self.max_demos}"
        return None

    def sample(self, rng: random.Random) -> list[Demo]:
        return list(rng.choice(self.candidates)) if self.candidates else []

    def default(self) -> list[Demo]:
        return list(self.candidates[0]) if self.candidates else []


Variable = Annotated[
    FloatVar | IntVar | ChoiceVar | TextVar | DemoSetVar, Field(discriminator="kind")
]


class VariableSpace(BaseModel):
    """An ordered set of variables; conditions may only refer to earlier variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variables: list[Variable] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> VariableSpace:
        seen: dict[str, _Var] = {}
        for var in self.variables:
            if var.name in seen:
                raise ValueError(f"variable {var.name!r} is declared twice")
            if var.condition and var.condition.variable not in seen:
                raise ValueError(
                    f"variable {var.name!r} depends on {var.condition.variable!r}, "
                    "which must be declared before it"
                )
            seen[var.name] = var
        return self

    def __len__(self) -> int:
        return len(self.variables)

    def get(self, name: str) -> Variable:
        for var in self.variables:
            if var.name == name:
                return var
        raise KeyError(name)

    def active(self, assignment: Mapping[str, Any]) -> list[Variable]:
        """The variables that exist under ``assignment`` (conditions hold)."""
        return [v for v in self.variables if _holds(v, assignment)]

    def validate_assignment(self, assignment: Mapping[str, Any]) -> None:
        """Raise ``ConfigurationError`` listing every problem of ``assignment``."""
        problems: list[str] = []
        names = {v.name for v in self.variables}
        for key in assignment:
            if key not in names:
                problems.append(f"{key!r} is not a variable of this program")
        for var in self.variables:
            if var.name not in assignment:
                continue
            if not _holds(var, assignment):
                cond = var.condition
                assert cond is not None
                problems.append(
                    f"{var.name!r} only exists when {cond.variable!r} is one of {cond.in_!r}"
                )
                continue
            problem = var.check(assignment[var.name])
            if problem:
                problems.append(f"{var.name!r} {problem}")
        if problems:
            raise ConfigurationError("invalid configuration: " + "; ".join(problems))

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A random assignment of every active variable, conditions respected."""
        out: dict[str, Any] = {}
        for var in self.variables:
            if _holds(var, out):
                value = var.sample(rng)
                if value is not None:
                    out[var.name] = value
        return out

    def defaults(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for var in self.variables:
            if _holds(var, out):
                value = var.default()
                if value is not None:
                    out[var.name] = value
        return out

    def to_overrides(self, assignment: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``assignment`` and map it to configuration paths."""
        self.validate_assignment(assignment)
        return {self.get(name).target: value for name, value in assignment.items()}

    # -- Optuna ---------------------------------------------------------------------------
    def optuna_distributions(self) -> dict[str, BaseDistribution]:
        """One Optuna distribution per variable; text and demo-set variables become
        categorical over candidate indices."""
        from optuna import distributions as d

        out: dict[str, BaseDistribution] = {}
        for var in self.variables:
            if isinstance(var, FloatVar):
                out[var.name] = d.FloatDistribution(var.low, var.high, log=var.log, step=var.step)
            elif isinstance(var, IntVar):
                out[var.name] = d.IntDistribution(var.low, var.high, step=var.step)
            elif isinstance(var, ChoiceVar):
                out[var.name] = d.CategoricalDistribution(var.choices)
            elif var.candidates:
                out[var.name] = d.CategoricalDistribution(list(range(len(var.candidates))))
        return out

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Ask ``trial`` for an assignment (ask-and-tell), respecting conditions."""
        out: dict[str, Any] = {}
        for var in self.variables:
            if not _holds(var, out):
                continue
            if isinstance(var, FloatVar):
                out[var.name] = trial.suggest_float(
                    var.name, var.low, var.high, log=var.log, step=var.step
                )
            elif isinstance(var, IntVar):
                out[var.name] = trial.suggest_int(var.name, var.low, var.high, step=var.step)
            elif isinstance(var, ChoiceVar):
                out[var.name] = trial.suggest_categorical(var.name, var.choices)
            elif var.candidates:
                index = trial.suggest_categorical(var.name, list(range(len(var.candidates))))
                out[var.name] = var.candidates[int(index)]
        return out


def _holds(var: _Var, assignment: Mapping[str, Any]) -> bool:
    cond = var.condition
    return cond is None or (cond.variable in assignment and assignment[cond.variable] in cond.in_)
