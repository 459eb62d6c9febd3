"""What went wrong with the TPM, in one line: the decisions ``tpm`` takes on its errors.

The tpm2-openssl provider puts the TSS2 response code of a failed TPM command at the head
of the OpenSSL error's data (``"2337 tpm:warn(2.0): ..."``); its own reason numbers
changed between releases, the response codes are the TPM's and the TSS's and do not.
Four causes are told apart, because a device's operator acts differently on each: no TPM
at all (the kernel has no driver, or the board no chip), a TPM that cannot be reached (a
resource manager or simulator down), a TPM in dictionary-attack lockout (wait, or clear it
with the lockout authorization), and a TPM that refused one operation.
"""

from __future__ import annotations

_LAYER_SHIFT = 16
_LAYER_TPM = 0
_LAYER_TCTI = 10  # the transmission interface: the device or the socket
_RC_LOCKOUT = 0x921  # TPM_RC_LOCKOUT, a warning of format zero
_RC_OBJECT_MEMORY = 0x902  # TPM_RC_OBJECT_MEMORY: no free slot for one more loaded object
_DEVICE = "device:"


def absent_device(tcti: str, exists: bool) -> str | None:
    """The line for a ``device:`` TCTI whose device node is not there, else None."""
    path = device_path(tcti)
    if path is None or exists:
        return None
    return f"no TPM: {path} does not exist (no TPM chip, or no driver for it in the kernel)"


def device_path(tcti: str) -> str | None:
    """The device node a ``device:`` TCTI names (the TSS's default when it names none)."""
    if not tcti.startswith(_DEVICE):
        return None
    return tcti[len(_DEVICE) :] or "/dev/tpmrm0"


def response_code(data: str) -> int | None:
    """The TSS2 response code at the head of a provider error's data, if there is one."""
    head = data.split(" ", 1)[0]
    if not head.lstrip("-").isdecimal():
        return None
    return int(head) & 0xFFFFFFFF


def describe(operation: str, tcti: str, code: int | None, detail: str) -> str:
    """One line for a failed ``operation`` ("make a key", "sign the request") on ``tcti``."""
    if code is not None:
        layer = code >> _LAYER_SHIFT & 0xFF
        if layer == _LAYER_TCTI:
            return f"TPM unreachable at {tcti} ({detail}): could not {operation}"
        if layer == _LAYER_TPM and code & 0xFFFF == _RC_LOCKOUT:
            return (
                f"TPM at {tcti} is in dictionary-attack lockout: could not {operation}; it "
                "ends after the TPM's lockout recovery time, or with its lockout authorization"
            )
        if layer == _LAYER_TPM and code & 0xFFFF == _RC_OBJECT_MEMORY:
            return (
                f"TPM at {tcti} has no free object slot: could not {operation} (another "
                "program holds its objects; a resource manager such as /dev/tpmrm0 frees them)"
            )
    return f"TPM at {tcti} refused to {operation}: {detail or 'no reason given'}"
