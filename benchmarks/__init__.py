"""Benchmark modules for ``make bench`` (``python -m crossconv bench``): one
``bench_<name>.py`` per backend, each with ``TITLE`` and ``sections(repeats)``; see
:mod:`crossconv.bench`."""
