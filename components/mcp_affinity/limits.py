"""CPU, memory and environment-variable rules of Cloud Run and Kubernetes, checked before a plan.

Sources: Cloud Run CPU and memory (https://cloud.google.com/run/docs/configuring/services/cpu,
https://cloud.google.com/run/docs/configuring/services/memory-limits), Cloud Run's reserved
environment variables (https://cloud.google.com/run/docs/container-contract#env-vars), and
Kubernetes quantities (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Strict

# Cloud Run: whole CPUs from this set, or 0.08 to under 1 (then concurrency must be 1).
CLOUD_RUN_WHOLE_CPUS = {1: (128, 4096), 2: (128, 8192), 4: (2048, 16384), 6: (4096, 24576), 8: (4096, 32768)}
"""vCPUs -> (min, max) memory in MiB that Cloud Run accepts with them."""

CLOUD_RUN_RESERVED_ENV = frozenset({"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION", "CLOUD_RUN_JOB",
                                    "CLOUD_RUN_EXECUTION", "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_ATTEMPT",
                                    "CLOUD_RUN_TASK_COUNT"})
"""Names Cloud Run sets itself and refuses in a service's environment."""

PACKAGE_ENV = frozenset({"MCP_SESSION_HEADER", "MCP_SESSION_MODE", "MCP_SESSION_STORE_URL", "MCP_REDIS_CA_CERT",
                         "MCP_NOTIFICATION_BROKER_URL", "MCP_SESSION_ID_PREFIX"})
"""Names this package sets itself; a user's ``env`` may not override them."""

_MEMORY = re.compile(r"([1-9][0-9]{0,5})(Mi|Gi)")
_QUANTITY = re.compile(r"(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def memory_mib(value: str) -> int:
    """``"512Mi"`` -> 512, ``"2Gi"`` -> 2048; raises ``ValueError`` on another form."""
    match = _MEMORY.fullmatch(value)
    if not match:
        raise ValueError(f"memory {value!r}: write a whole number of Mi or Gi, e.g. 512Mi or 2Gi")
    return int(match[1]) * (1024 if match[2] == "Gi" else 1)


def cloud_run_cpu(value: str) -> Decimal:
    """Parse a Cloud Run CPU limit (``"1"``, ``"2"``, ``"0.5"``, ``"500m"``) into vCPUs."""
    try:
        cpus = Decimal(value[:-1]) / 1000 if value.endswith("m") else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"cpu {value!r}: write vCPUs such as \"1\", \"2\" or \"0.5\"") from None
    if cpus >= 1 and (cpus != cpus.to_integral_value() or int(cpus) not in CLOUD_RUN_WHOLE_CPUS):
        raise ValueError(f"cpu {value!r}: Cloud Run takes 1, 2, 4, 6 or 8 vCPUs, or 0.08 to under 1")
    if cpus < Decimal("0.08"):
        raise ValueError(f"cpu {value!r}: Cloud Run's minimum is 0.08 vCPU")
    return cpus


def check_cloud_run_resources(cpu: str, memory: str, concurrency: int) -> None:
    """Raise ``ValueError`` when Cloud Run would refuse this cpu / memory / concurrency together."""
    cpus, mib = cloud_run_cpu(cpu), memory_mib(memory)
    if cpus < 1:
        if concurrency != 1:
            raise ValueError(f"cpu {cpu} (under 1 vCPU) needs concurrency 1 on Cloud Run")
        limit = 512 if cpus < Decimal("0.5") else 1024
        if mib > limit:
            raise ValueError(f"memory {memory} needs more than {cpu} vCPU on Cloud Run (at most {limit}Mi)")
        return
    low, high = CLOUD_RUN_WHOLE_CPUS[int(cpus)]
    if not low <= mib <= high:
        raise ValueError(f"memory {memory} with {int(cpus)} vCPU: Cloud Run takes {low}Mi to {high // 1024}Gi")


def _check_quantity(value: str) -> str:
    if not _QUANTITY.fullmatch(value) or not Decimal(re.sub(r"[A-Za-z]+$", "", value) or "0") > 0:
        raise ValueError(f"{value!r} is not a positive Kubernetes quantity such as 500m, 1 or 512Mi")
    return value


def _check_memory(value: str) -> str:
    memory_mib(value)
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"environment variable name {value!r}: letters, digits and '_', not starting with a digit")
    if value in CLOUD_RUN_RESERVED_ENV or value in PACKAGE_ENV:
        raise ValueError(f"environment variable {value!r} is set by the platform or by this package")
    return value


def _number_as_text(value: object) -> object:
    """``cpu: 2`` in YAML is a number; CPU counts are written either way (booleans are not numbers here)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, "g")
    return value


CpuCount = Annotated[str, BeforeValidator(_number_as_text), Strict()]
"""Cloud Run vCPUs, as text or a number (``"2"``, ``2``, ``0.5``); checked with the memory by
:func:`check_cloud_run_resources`."""
Quantity = Annotated[str, BeforeValidator(_number_as_text), Strict(), AfterValidator(_check_quantity)]
Memory = Annotated[str, Strict(), AfterValidator(_check_memory)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
EnvValue = Annotated[str, Strict()]
Env = dict[EnvName, EnvValue]
