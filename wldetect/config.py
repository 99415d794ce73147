"""Typed parameter files (the seed's model and training YAML), loading, overrides and validation.

Every mistake in a parameter file becomes a one-line `WLDetectError` naming the file and the key, so a
researcher never has to read a pydantic or YAML traceback to find a typo.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator

from wldetect.errors import WLDetectError
from wldetect.io import read_text

# YAML's `true` is a bool, and pydantic's lax mode would take it as 1 (`batch_size: true` trained with batch
# size 1); whole numbers in parameter files are strict: a bool, a float or a string is an error.
Int = Annotated[int, Strict()]

Pooling = Literal["logsumexp", "max", "average"]


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---------------------------------------------------------------------------------------------- models


class ModelSpec(_Strict):
    """One source model whose input embedding matrix is used, frozen.

    Safetensors sources (a hub repo or a hub-layout directory) name their embedding tensor; GGUF sources (a
    `.gguf` file, or `gguf_file` inside a directory, hub repo or Python package) default to GGUF's
    `token_embd.weight`.
    """

    name: str = Field(
        description="hub repo id, local hub-layout directory, local .gguf file, or python-package:PKG[/SUBDIR]"
    )
    type: str = Field(description="model family, e.g. gemma3 or bert; concatenated models must share it")
    hidden_dim: Int = Field(gt=0)
    embedding_layer_name: str | None = Field(default=None, description="required for safetensors sources")
    gguf_file: str | None = Field(default=None, description="the GGUF file inside `name` (directory, repo, package)")
    shard_pattern: str | None = Field(default=None, description="e.g. model-{index:05d}-of-{total:05d}.safetensors")
    revision: str | None = None

    @property
    def is_gguf(self) -> bool:
        return self.gguf_file is not None or self.name.lower().endswith(".gguf")

    @model_validator(mode="after")
    def _source_keys(self) -> ModelSpec:
        if self.is_gguf:
            if self.shard_pattern is not None:
                raise ValueError("shard_pattern is for safetensors shards; a GGUF source is one file")
            if self.gguf_file is not None and ("/" in self.gguf_file or not self.gguf_file.lower().endswith(".gguf")):
                raise ValueError(f"gguf_file {self.gguf_file!r}: expected a file name ending in .gguf")
        elif self.embedding_layer_name is None:
            raise ValueError("embedding_layer_name is required (the embedding tensor's name in the safetensors files)")
        return self


class InferenceConfig(_Strict):
    max_sequence_length: Int = Field(default=512, gt=0)
    pooling: Pooling = "logsumexp"


class ModelConfig(_Strict):
    """The seed's `configs/models/*.yaml`: which embeddings, which languages, how to pool."""

    model: ModelSpec | None = None
    models: list[ModelSpec] | None = None
    languages: dict[str, Int]
    inference: InferenceConfig = InferenceConfig()

    @model_validator(mode="after")
    def _one_model_key(self) -> ModelConfig:
        if (self.model is None) == (self.models is None):
            raise ValueError("give exactly one of 'model' (one model) or 'models' (a list to concatenate)")
        if self.models is not None and not self.models:
            raise ValueError("'models' is empty")
        return self

    @field_validator("languages")
    @classmethod
    def _dense_indices(cls, languages: dict[str, int]) -> dict[str, int]:
        if not languages:
            raise ValueError("no languages given")
        if sorted(languages.values()) != list(range(len(languages))):
            raise ValueError(f"language indices must be 0..{len(languages) - 1}, each once")
        return languages

    @property
    def model_specs(self) -> list[ModelSpec]:
        return list(self.models) if self.models is not None else [self.model]  # type: ignore[list-item]

    @property
    def hidden_dim(self) -> int:
        return sum(spec.hidden_dim for spec in self.model_specs)

    @property
    def language_codes(self) -> list[str]:
        """Codes ordered by their index: position i is output column i of the projection."""
        return sorted(self.languages, key=self.languages.__getitem__)

    @property
    def n_languages(self) -> int:
        return len(self.languages)


# -------------------------------------------------------------------------------------------- training


class DatasetConfig(_Strict):
    name: str = Field(description="HF dataset id (laurievb/OpenLID-v2), local parquet/jsonl/csv file or dir, or 'demo'")
    split: str = "train"
    text_column: str = "text"
    language_column: str = "language"
    filter_languages: bool = True
    max_samples_per_language: Int | None = Field(default=None, gt=0)
    min_samples_per_language: Int = Field(default=0, ge=0)
    balance_languages: bool = False
    shuffle_seed: Int = 42
    demo_examples_per_language: Int = Field(default=2000, gt=0, description="size of the generated demo corpus")


class ProjectionConfig(_Strict):
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)


class TrainingSection(_Strict):
    batch_size: Int = Field(default=256, gt=0)
    learning_rate: float = Field(default=1e-3, gt=0)
    epochs: Int = Field(default=1, gt=0)
    num_workers: Int = Field(default=0, ge=0, description="tokeniser threads when `wldetect train` runs step 1 first (0: counting's default)")
    save_checkpoints: bool = True
    checkpoint_interval: Int = Field(default=500, gt=0)
    token_mask_path: Path | None = None
    projection: ProjectionConfig = ProjectionConfig()
    weight_decay: float = Field(default=0.01, ge=0)
    gradient_clip: float | None = Field(default=1.0, gt=0)
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    warmup_steps: Int | None = Field(default=None, ge=0, description="overrides warmup_ratio when set")
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1, description="cosine decays to learning_rate * this")
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    scheduler: Literal["cosine", "constant"] = "cosine"
    loss: Literal["cross_entropy", "focal"] = "cross_entropy"
    focal_gamma: float = Field(default=2.0, ge=0)
    class_weights: Literal["none", "balanced"] = "none"
    seed: Int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _num_epochs_alias(cls, data: Any) -> Any:
        """The seed's configs say `num_epochs`; both spellings mean the same thing."""
        if isinstance(data, dict) and "num_epochs" in data:
            data = dict(data)
            if "epochs" in data:
                raise ValueError("give 'epochs' or 'num_epochs', not both")
            data["epochs"] = data.pop("num_epochs")
        return data


class OutputConfig(_Strict):
    artifacts_dir: Path = Path("artifacts")


class EvaluationConfig(_Strict):
    dataset: str = Field(default="demo", description="flores_plus, openlanguagedata/flores_plus, a directory, or demo")
    split: Literal["dev", "devtest"] = "dev"
    table: Literal["e3m4", "e4m3fn", "fp32"] = "e3m4"
    references: list[Literal["wordllamadetect", "fasttext", "py3langid"]] = Field(
        default_factory=list,
        description="reference detectors scored on the same sentences (<set>_references.json); [] for none",
    )

    @field_validator("references", mode="before")
    @classmethod
    def _reference_list(cls, value):
        """`fasttext,py3langid` (as on the command line), `all` or `none` read as the list they name."""
        if value is None:
            return []
        if isinstance(value, str):
            names = [item.strip() for item in value.split(",") if item.strip() and item.strip() != "none"]
            return ["wordllamadetect", "fasttext", "py3langid"] if names == ["all"] else names
        return value


class TrainingConfig(_Strict):
    """The seed's `configs/training/*.yaml`."""

    model_config_path: Path
    dataset: DatasetConfig
    training: TrainingSection = TrainingSection()
    output: OutputConfig = OutputConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    # Filled in by `load_training_config`, not read from the file.
    model: ModelConfig | None = Field(default=None, exclude=True)
    source_path: Path | None = Field(default=None, exclude=True)


# ---------------------------------------------------------------------------------------------- loading


def project_base(config_path: Path) -> Path:
    """Where relative paths inside a parameter file point from.

    A file under `X/params/...` resolves against X (the seed writes `configs/models/...` relative to the
    repository root); any other file resolves against its own directory.
    """
    config_path = config_path.resolve()
    for parent in config_path.parents:
        if parent.name == "params":
            return parent.parent
    return config_path.parent


def _resolve(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    value = Path(os.path.expanduser(str(value)))
    return value if value.is_absolute() else (base / value)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int):
        super().__init__(key, line)
        self.key, self.line = key, line


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                duplicate = False
            if duplicate:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> Any:
    """YAML text as data, strictly: invalid YAML and duplicate keys are one-line errors naming `source` and
    the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as dup:
        raise WLDetectError(f"{source}: duplicate key {dup.key!r} (line {dup.line})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise WLDetectError(f"{source}: not valid YAML{where}") from None


def read_yaml_mapping(path: str | Path, what: str = "parameter file") -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty file: {}); every problem is one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise WLDetectError(f"{path}: {what} not found")
    data = parse_yaml(read_text(path, what), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise WLDetectError(f"{path}: expected a mapping of keys at the top level, got a {type(data).__name__}")
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml_mapping(path)
    if not data:
        raise WLDetectError(f"{path}: expected a mapping of keys at the top level")
    return data


def _validation_message(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "required key is missing"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{path}: {key}: {message}{more}"


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Set dotted keys (`training.epochs=2`) on a parsed parameter mapping, as a CLI or notebook override."""
    data = copy.deepcopy(data)
    for dotted, value in (overrides or {}).items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise WLDetectError(f"override {dotted}: {part} is not a section")
        node[parts[-1]] = value
    return data


def load_model_config(path: str | Path) -> ModelConfig:
    path = Path(path)
    data = _read_yaml(path)
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as err:
        raise WLDetectError(_validation_message(path, err)) from None


def load_training_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainingConfig:
    """Read, override, validate and resolve a training parameter file together with its model config."""
    path = Path(path)
    data = apply_overrides(_read_yaml(path), overrides)
    try:
        config = TrainingConfig.model_validate(data)
    except ValidationError as err:
        raise WLDetectError(_validation_message(path, err)) from None
    base = project_base(path)
    config.model_config_path = _resolve(base, config.model_config_path)
    config.output.artifacts_dir = _resolve(base, config.output.artifacts_dir)
    config.training.token_mask_path = _resolve(base, config.training.token_mask_path)
    if not config.model_config_path.is_file():
        raise WLDetectError(f"{path}: model_config_path: file not found: {config.model_config_path}")
    if config.training.token_mask_path is not None and not config.training.token_mask_path.is_file():
        raise WLDetectError(f"{path}: training.token_mask_path: file not found: {config.training.token_mask_path}")
    if config.dataset.name != "demo":
        local = _resolve(base, Path(config.dataset.name))
        if local.exists():
            config.dataset.name = str(local)
        elif not _looks_like_hub_id(config.dataset.name):
            raise WLDetectError(f"{path}: dataset.name: no such file or directory, nor a hub id (owner/name): {local}")
    config.model = load_model_config(config.model_config_path)
    config.source_path = path.resolve()
    return config


def _looks_like_hub_id(name: str) -> bool:
    """`owner/name` with no local file of that name is treated as a Hugging Face repo id."""
    data_suffixes = (".parquet", ".jsonl", ".json", ".csv", ".txt", ".arrow")
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and not name.endswith(data_suffixes)


def cache_dir() -> Path:
    """Where extracted embeddings, demo corpora and token counts are cached ($WLDETECT_CACHE_DIR)."""
    root = os.environ.get("WLDETECT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "wldetect")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
