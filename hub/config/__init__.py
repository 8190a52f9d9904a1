"""Configuration: the schema (``schema``), loading with the environment's secrets (``load``)
and the checks that look across sections (``checks``). Read by every layer."""
from hub.config.load import SAMPLE_CONFIG, Config, ConfigError, config_path, load_config, resolve_secrets
from hub.config.schema import CHANNELS, ESCALATION_ROLES, MODEL_FIELDS, ROLES, SCORE_CLASSES, Role

__all__ = ["CHANNELS", "ESCALATION_ROLES", "MODEL_FIELDS", "ROLES", "SCORE_CLASSES", "Role", "SAMPLE_CONFIG",
           "Config", "ConfigError", "config_path",
           "load_config", "resolve_secrets"]
