"""User-facing errors: each names the file, key or value at fault and what to do.

Stage entry points catch :class:`BackdropError` and print its message without a traceback.
"""

from __future__ import annotations


class BackdropError(Exception):
    """An error whose message is complete enough to show a user as is."""


class ConfigError(BackdropError):
    """params.yaml (or an override) holds a wrong key or value."""


class MissingParamsError(ConfigError):
    """A job's pruned params file (stages.config.Params.for_job) lacks a section or entry the job
    reads: the plan left out something the job needs, not a wrong value in params.yaml."""


class DataError(BackdropError):
    """A raw or processed data file is missing, corrupt or inconsistent."""


class ChecksumError(DataError):
    """A file's checksum does not match the expected one."""
