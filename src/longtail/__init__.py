"""Longtail: a nightly recommendation pipeline that reaches the long tail."""

__version__ = "0.1.0"
