"""``ProgramSpec``: a program as data — stages (module kind + signature), a configuration
(per-stage instructions, demos, model, temperature, ...) and a variable space — with a
JSON/YAML round trip and validation that names what is wrong."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import DSPExError, ProgramError
from .modules import MODULES
from .signature import FieldSpec, Signature, parse_signature, parse_type
from .variables import ChoiceVar, VariableSpace

STAGE_KEYS = ("instructions", "demos", "model", "temperature", "max_tokens", "adapter", "module")
ADAPTERS = ("chat", "json")
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"


class FieldDecl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Field name (an identifier).", examples=["question"])
    type: str = Field(default="str", description="Type expression.", examples=["list[str]"])
    description: str = Field(default="", description="Shown to the LM.")


class SignatureDecl(BaseModel):
    """The structured form of a signature, for fields with descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: list[FieldDecl] = Field(description="Input fields, in order.")
    outputs: list[FieldDecl] = Field(min_length=1, description="Output fields, in order.")
    instructions: str = Field(default="", description="Task instructions.")

    def build(self) -> Signature:
        def spec(f: FieldDecl) -> FieldSpec:
            return FieldSpec(f.name, parse_type(f.type), f.description)

        return Signature(
            tuple(spec(f) for f in self.inputs),
            tuple(spec(f) for f in self.outputs),
            self.instructions,
        )


class StageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Stage name.")
    module: str = Field(description="Module kind.", examples=["chain_of_thought"])
    signature: str | SignatureDecl = Field(
        description="String form ('question -> answer: int') or structured form.",
        examples=["question -> answer: int"],
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Module parameters (tools, k, n, reward...)."
    )

    @field_validator("module")
    @classmethod
    def _known_module(cls, kind: str) -> str:
        if kind not in MODULES:
            raise ValueError(f"unknown module kind {kind!r}; known kinds: {sorted(MODULES)}")
        return kind

    def build_signature(self) -> Signature:
        if isinstance(self.signature, SignatureDecl):
            return self.signature.build()
        return parse_signature(self.signature)


class StageConfig(BaseModel):
    """Settings of one stage (or, under ``defaults``, of all stages)."""

    model_config = ConfigDict(extra="forbid")

    instructions: str | None = Field(default=None, max_length=20_000)
    demos: list[dict[str, Any]] | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, examples=["openai/gpt-4o-mini"])
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0, le=200_000)
    adapter: Literal["chat", "json"] | None = None
    module: str | None = Field(default=None, description="Overrides the stage's module kind.")

    @field_validator("module")
    @classmethod
    def _known_module(cls, kind: str | None) -> str | None:
        if kind is not None and kind not in MODULES:
            raise ValueError(f"unknown module kind {kind!r}; known kinds: {sorted(MODULES)}")
        return kind


class Configuration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: StageConfig = Field(default_factory=StageConfig)
    stages: dict[str, StageConfig] = Field(default_factory=dict)


class ProgramSpec(BaseModel):
    """A program as data. The minimal form is a name and a list of stages."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN, examples=["math_qa"])
    version: int = Field(default=1, ge=1)
    description: str = ""
    stages: list[StageSpec] = Field(min_length=1)
    configuration: Configuration = Field(default_factory=Configuration)
    variables: VariableSpace = Field(default_factory=VariableSpace)

    @model_validator(mode="after")
    def _coherent(self) -> ProgramSpec:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique: {names}")
        for stage in self.stages:
            try:
                stage.build_signature()
            except DSPExError as e:
                raise ValueError(f"stage {stage.name!r}: {e.message}") from e
        unknown = set(self.configuration.stages) - set(names)
        if unknown:
            raise ValueError(f"configuration names unknown stages {sorted(unknown)}")
        for var in self.variables.variables:
            where, _, key = var.target.partition(".")
            if not key or (where != "*" and where not in names) or key not in STAGE_KEYS:
                raise ValueError(
                    f"variable {var.name!r}: path {var.target!r} must be '<stage>.<key>' or "
                    f"'*.<key>' with a known stage and key in {list(STAGE_KEYS)}"
                )
            if key == "module" and isinstance(var, ChoiceVar):
                bad = [c for c in var.choices if c not in MODULES]
                if bad:
                    raise ValueError(f"variable {var.name!r}: unknown module kinds {bad}")
        return self

    # -- derived views (computed once; specs are treated as immutable) -----------------------
    @cached_property
    def signatures(self) -> dict[str, Signature]:
        return {s.name: s.build_signature() for s in self.stages}

    @cached_property
    def input_fields(self) -> tuple[str, ...]:
        """Fields the caller must provide: stage inputs no earlier stage produces."""
        produced: set[str] = set()
        needed: list[str] = []
        for stage in self.stages:
            sig = self.signatures[stage.name]
            needed += [f for f in sig.input_names if f not in produced and f not in needed]
            produced.update(sig.output_names)
        return tuple(needed)

    @cached_property
    def output_fields(self) -> tuple[str, ...]:
        return self.signatures[self.stages[-1].name].output_names

    # -- I/O -------------------------------------------------------------------------------
    @classmethod
    def from_data(cls, data: Any) -> ProgramSpec:
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ProgramError(f"invalid program: {_summarise(e)}") from e

    @classmethod
    def from_json(cls, text: str | bytes) -> ProgramSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProgramError(f"program is not valid JSON: {e}") from e
        return cls.from_data(data)

    @classmethod
    def from_yaml(cls, text: str) -> ProgramSpec:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ProgramError(f"program is not valid YAML: {e}") from e
        return cls.from_data(data)

    @classmethod
    def load(cls, path: str | Path) -> ProgramSpec:
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            return cls.from_yaml(text)
        return cls.from_json(text)

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True, by_alias=True)

    def to_json(self) -> str:
        return json.dumps(self.to_data(), indent=2, ensure_ascii=False)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_data(), sort_keys=False, allow_unicode=True)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        text = self.to_yaml() if path.suffix in (".yaml", ".yml") else self.to_json()
        path.write_text(text, encoding="utf-8")

    def with_configuration(
        self, overrides: Mapping[str, Any], *, version: int | None = None
    ) -> ProgramSpec:
        """A new spec whose configuration has ``overrides`` (paths or variable names)
        written in — how an optimized candidate becomes the next version."""
        from .config import apply_overrides

        base = self.configuration.model_dump(exclude_none=True)
        data = self.model_dump()
        data["configuration"] = apply_overrides(self, base, overrides)
        if version is not None:
            data["version"] = version
        return ProgramSpec.from_data(data)


def _summarise(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:10]:
        where = ".".join(str(p) for p in item["loc"]) or "program"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
