"""Kubernetes resource quantities as integers, so tiers can scale them exactly.

CPU is held in millicores (``"250m"`` -> 250, ``"1"`` -> 1000), memory in MiB (``"512Mi"`` -> 512,
``"1Gi"`` -> 1024). Only the suffixes the catalog and the sizing tiers use are accepted, so a typo
fails loudly instead of becoming bytes.
"""

from __future__ import annotations

import math
import re

_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEM = re.compile(r"^(\d+)(Mi|Gi)$")


def cpu_millis(value: str | int | float) -> int:
    """``"250m"`` -> 250, ``"1"`` or ``1`` -> 1000, ``"0.5"`` -> 500."""
    m = _CPU.match(str(value))
    if not m:
        raise ValueError(f"CPU quantity {value!r} is not of the form '250m' or '2'")
    number, milli = float(m.group(1)), m.group(2)
    return int(round(number if milli else number * 1000))


def memory_mib(value: str) -> int:
    """``"512Mi"`` -> 512, ``"2Gi"`` -> 2048."""
    m = _MEM.match(str(value))
    if not m:
        raise ValueError(f"memory quantity {value!r} is not of the form '512Mi' or '2Gi'")
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


def format_cpu(millis: int) -> str:
    """250 -> ``"250m"``, 2000 -> ``"2"``."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(mib: int) -> str:
    """512 -> ``"512Mi"``, 2048 -> ``"2Gi"``."""
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def scale_cpu(value: str, factor: float) -> str:
    """Scale a CPU quantity, rounding up to whole millicores."""
    return format_cpu(math.ceil(cpu_millis(value) * factor))


def scale_memory(value: str, factor: float) -> str:
    """Scale a memory quantity, rounding up to whole MiB."""
    return format_memory(math.ceil(memory_mib(value) * factor))
