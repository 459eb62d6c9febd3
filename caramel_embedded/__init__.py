"""caramel-embedded: a one-shot Caramel certificate client for embedded devices.

One invocation makes sure the device holds a private key and a certificate signed by a
Caramel CA, never blocks, never loops, and reports the outcome as an exit status (see
``ExitStatus``). Importing the package is cheap on purpose: every invocation on a device is
a cold start, so heavy modules (cryptography, urllib3) are imported only by the code paths
that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"
