"""Exceptions raised by saener. Messages are the ones the ``saener`` CLI prints."""


class SaenerError(Exception):
    """Base class of saener's errors (also raised for an internal error, never a crash)."""


class InputError(SaenerError, TypeError):
    """A text is not a ``str`` or an ``{"id", "text"}`` dict with a string ``text``."""


class ProfileError(SaenerError):
    """A profile that does not exist, cannot be read, or was calibrated for another model
    or SAE."""


class ModelError(SaenerError):
    """The model or SAE file is missing, corrupt, or does not fit the other."""
