"""crossconv: the cross-check harness.

- :mod:`crossconv.registry`: every op, backend and implementation, as data.
- :mod:`crossconv.strategies`: Hypothesis strategies drawing valid calls of each op.
- :mod:`crossconv.checks`: reference vs oracle / finite differences, backend vs reference.
- :mod:`crossconv.oracles`: naive loop transcriptions of SPEC.md's formulas.
- :mod:`crossconv.goldens`: fixed cases with known outputs.
- ``python -m crossconv crosscheck``: all of it as one table.
"""
