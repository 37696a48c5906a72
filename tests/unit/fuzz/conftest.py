# SPDX-License-Identifier: Apache-2.0
"""Hypothesis profiles for the fuzz tests: ``ci`` (the default, bounded so the whole fuzz set
stays within ~2 minutes of ``make test``) and ``fuzz`` (``make fuzz``: many more examples).

``HYPOTHESIS_PROFILE`` picks one. The example database lives in the temp dir, never in the repo;
a failure prints its reproduction blob (``@reproduce_failure``) and its shrunk input, which then
becomes a regression test that builds that input itself.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

_DB = DirectoryBasedExampleDatabase(str(Path(tempfile.gettempdir()) / "riskguard-hypothesis"))
_COMMON = {
    "database": _DB,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
settings.register_profile("ci", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")), deadline=None, **_COMMON)
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "3000")), deadline=None, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
