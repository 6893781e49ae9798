"""Loading the definitions stays light: every Dagster run process imports them, so a heavy library imported at
module level is paid by every step of a backfill, also the steps that never use it."""

from __future__ import annotations

import json
import subprocess
import sys

# The libraries only some steps use, imported inside the functions that use them: torch and lightning took
# about 3.5 s of the definitions' import, skfolio with cvxpy about 0.8 s, gymnasium 0.5 s, optuna 0.3 s;
# stable-baselines3 loads torch; matplotlib's pyplot a plotting backend. Then arch (0.5 s; it loads
# matplotlib and statsmodels), yfinance with curl_cffi, statsmodels (its adfuller loads scipy.signal),
# sklearn, hmmlearn, xgboost and lightgbm: 0.3-0.4 s each on top of the definitions, sklearn shared by the
# last three. Together these took the definitions' import from 3.2 s to 2.1 s (`python -X importtime -c
# "import quantlab_assets.definitions"`, median of 5 alternating runs each, idle 2-core machine; 3.7 s to
# 2.4 s under load). scipy.stats (with the scipy.optimize, interpolate and ndimage it loads) was another 0.4 s;
# the normal distribution's cdf and quantile are scipy.special's ndtr and ndtri, which the features use anyway.
LAZY_LIBRARIES = (
    "torch", "lightning", "stable_baselines3", "gymnasium", "matplotlib", "skfolio", "cvxpy", "optuna", "arch",
    "yfinance", "curl_cffi", "statsmodels", "scipy.signal", "sklearn", "hmmlearn", "xgboost", "lightgbm",
    "scipy.stats", "scipy.optimize",
)

PROBE = (
    "import json, sys\n"
    "import quantlab_assets.definitions\n"
    f"print(json.dumps(sorted(m for m in {LAZY_LIBRARIES!r} if m in sys.modules)))\n"
)


def test_loading_the_definitions_imports_none_of_the_libraries_only_some_steps_use() -> None:
    completed = subprocess.run([sys.executable, "-W", "ignore", "-c", PROBE], capture_output=True, text=True,
                               timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == []
