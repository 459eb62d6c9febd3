"""Coverage-guided fuzzing of the client's parsers (``make fuzz``), kept out of the package.

Each module of ``fuzz.targets`` holds one parser's contract as ``check(data: bytes)``: it
returns when the parser kept its contract and raises ``Finding`` (or lets an undocumented
exception through) when it did not. atheris drives them (``fuzz.one``, one target per
process); ``fuzz.run`` runs every target for a while and reports; the regression tests in
tests/ run the same checks on the inputs that once failed, without atheris.
"""
