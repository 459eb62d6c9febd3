"""Real parts to run caramel-embedded against: CAs, a real Caramel server behind nginx.

Shared by the test suites (``tests/``), the demo (``make demo``) and the benchmarks
(``bench/``, ``make fleet``), so that none of them imports another's code. Never shipped:
the package that pip installs is ``caramel_embedded`` alone.
"""
