"""Load benchmark of a served endpoint: vLLM's own serving benchmark swept over concurrency.

sweep.py  pure: the sweep's settings, the driver's input, result rows, table, predicted concurrency
driver.py runs inside the vLLM image (vLLM's client code, no rentstack import)
plot.py   the PNG (matplotlib)
run.py    the executor: `docker run` of the driver, then table, JSON and plot on disk
"""

from rentstack.bench.sweep import BenchSettings, Row, predicted_concurrency, rows_from_results, table

__all__ = ["BenchSettings", "Row", "predicted_concurrency", "rows_from_results", "table"]
