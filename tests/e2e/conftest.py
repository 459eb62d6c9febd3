"""The real-server suite's Caramel stack is the ``stack`` fixture of tests/conftest.py,
shared with the .deb's install tests: one stack per test module, because the lifecycle ends
by stopping its servers; a stack starts in a few seconds once the server venv is cached,
and stops when the module ends, when a test fails, and on Ctrl-C or TERM (see
``testbed/harness.py``).
"""
