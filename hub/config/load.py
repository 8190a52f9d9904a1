"""Loading: ``hub.yaml`` (or the bundled sample) plus the environment, validated in one pass.

Secrets never sit in the file: a key ending in ``_env`` names the environment variable that
holds the secret. ``resolve_secrets`` swaps those for their values at the moment of use.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from hub.config.schema import ConfigSchema

SAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "sample.yaml"


class ConfigError(Exception):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Config:
    data: dict[str, Any]
    path: str | None = None
    document: dict[str, Any] | None = None  # as written: durations as text, defaults absent
    problems: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __repr__(self) -> str:  # never print a config wholesale: it may name secrets' values
        return f"Config(path={self.path!r})"


def flatten_errors(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested error dict as ``path.to.key: message`` lines. A mapping's entries
    are reported under their own key (marshmallow adds ``key``/``value`` levels)."""
    if isinstance(messages, dict):
        lines = []
        for key, value in messages.items():
            if key in ("_schema", "key", "value"):
                path = prefix
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            lines.extend(flatten_errors(value, path))
        return lines
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix or 'config'}: {message}" for message in messages]
    if isinstance(messages, list):
        return [line for item in messages for line in flatten_errors(item, prefix)]
    return [f"{prefix or 'config'}: {messages}"]


def config_path(path: str | os.PathLike | None = None) -> Path:
    if path:
        return Path(path)
    configured = os.environ.get("HUB_CONFIG")
    if configured:
        return Path(configured)
    local = Path("hub.yaml")
    return local if local.is_file() else SAMPLE_CONFIG


def read_document(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle) or {}
    except FileNotFoundError as exc:
        raise ConfigError([f"config: file not found: {path}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"config: not valid YAML: {exc}".replace("\n", " ")]) from exc


def load_config(path: str | os.PathLike | None = None, document: Any = None,
                environ: dict[str, str] | None = None) -> Config:
    """Load and validate; raise ``ConfigError`` listing every problem, found in one pass."""
    source = None if document is not None else config_path(path)
    if document is None:
        document = read_document(source)
    if not isinstance(document, dict):
        raise ConfigError(["config: the top level must be a mapping of keys"])
    data, problems = None, []
    try:
        data = ConfigSchema().load(document)
    except ValidationError as exc:
        problems = flatten_errors(exc.messages)
    reported = {line.partition(": ")[0] for line in problems}  # a typo'd *_env key: once
    problems += [line for line in missing_secrets(document, os.environ if environ is None else environ)
                 if line.partition(": ")[0] not in reported]
    from hub.config import checks as config_checks  # late: the checks read the provider registry

    problems += [p for p in config_checks.problems(document) if p not in problems]
    if problems:
        raise ConfigError(problems)
    return Config(data=data, path=str(source) if source else None, document=document)


def missing_secrets(data: Any, environ: dict[str, str], prefix: str = "") -> list[str]:
    """Every ``*_env`` key whose variable is unset, as ``path.key: ...`` lines."""
    problems = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(key, str) and key.endswith("_env") and value:
            if not environ.get(str(value)):
                problems.append(f"{path}: environment variable {value} is not set")
        elif isinstance(value, (dict, list)):
            problems.extend(missing_secrets(value, environ, path))
    return problems


def resolve_secrets(section: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """A copy of ``section`` where ``x_env: NAME`` becomes ``x: <value of $NAME>``."""
    environ = os.environ if environ is None else environ
    resolved = {}
    for key, value in section.items():
        if key.endswith("_env"):
            resolved[key[: -len("_env")]] = environ.get(value) if value else None
        else:
            resolved[key] = value
    return resolved
