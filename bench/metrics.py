"""The benchmark's metrics: ``longtail.evaluation``'s, under the names the benchmark imports.

The definitions live in ``longtail.evaluation.ranking`` (metrics) and ``longtail.evaluation.split``
(the head/tail split, re-exported by ``ranking``); the nightly quality stage and the ranker's
validation use the same ones.
"""

from __future__ import annotations

from longtail.evaluation.ranking import *  # noqa: F403
from longtail.evaluation.ranking import __all__  # noqa: F401
