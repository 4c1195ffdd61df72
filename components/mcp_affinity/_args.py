"""The base of every component's arguments, and field types shared with stack config models.

Stack config models reuse these annotated types so that a constraint (a region, a header name,
a timeout range) is written once and enforced with the config key's name in the error.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from .affinity import AffinityMode, check_header_name, parse_mode
from .regions import check_region


class Args(BaseModel):
    """Component arguments. Unknown fields are an error; values may be Pulumi inputs (Outputs)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)


Region = Annotated[str, AfterValidator(check_region)]
HeaderName = Annotated[str, AfterValidator(check_header_name)]
Mode = Annotated[AffinityMode, BeforeValidator(parse_mode)]
Prefix = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,29}$")]
TimeoutSeconds = Annotated[int, Field(ge=1, le=3600)]
Concurrency = Annotated[int, Field(ge=1, le=1000)]
Instances = Annotated[int, Field(ge=0, le=1000)]
Port = Annotated[int, Field(ge=1, le=65535)]
Memory = Annotated[str, Field(pattern=r"^\d+(Mi|Gi)$")]
UrlPath = Annotated[str, Field(pattern=r"^/")]

StrInput = Any
"""A ``pulumi.Input[str]``: a string, or an Output of one. Typed loosely so pydantic accepts Outputs."""
