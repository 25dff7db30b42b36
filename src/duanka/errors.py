"""Exception types that callers can catch, each with a message a person can act on."""


class DuankaError(Exception):
    """Base class of every error duanka raises on purpose."""


class DataError(DuankaError):
    """A labeled or input file is unreadable or invalid; the message names file, rows and cause."""


class ArtifactError(DuankaError):
    """A model artifact is missing, damaged, tampered with or of an incompatible format."""


class RulesError(DuankaError):
    """A rules file or term list is invalid, or its examples do not hold."""


class ConfigError(DuankaError):
    """A training configuration file is unreadable or names unknown settings."""


class TrackingError(DuankaError):
    """The MLflow tracking server or registry cannot be reached or refused a request."""


class PolicyError(DuankaError):
    """A policy file is invalid, or a policy name is not one the model knows."""
