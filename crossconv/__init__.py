"""crossconv: the cross-check harness.

- :mod:`crossconv.registry`: every op, backend and implementation, as data.
- :mod:`crossconv.strategies`: Hypothesis strategies drawing valid calls of each op.
- :mod:`crossconv.boundary` / :mod:`crossconv.goldens`: fixed cases (edges of each op's
  definition; known outputs from the blog posts and docs/), as data.
- :mod:`crossconv.measure` / :mod:`crossconv.checks`: one implementation on one case
  against the reference (as data / as assertions); reference vs oracle / finite differences.
- :mod:`crossconv.oracles`: naive loop transcriptions of the formulas in docs/, one file per op.
- ``python -m crossconv crosscheck``: all of it as one matrix (:mod:`crossconv.crosscheck`,
  :mod:`crossconv.report`); ``verify``: your own implementation against the reference
  (:mod:`crossconv.verify`); ``bench``; ``figures``; ``list``.
"""
