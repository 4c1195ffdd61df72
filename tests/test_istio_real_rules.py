"""The staging and prod plans against the real rules of the pinned Istio version.

Every Istio and Gateway API object of a plan passes the CRD of Istio 1.30.3, CEL rules included,
as the API server checks it on create; every Helm value of an Istio release is one the chart of
that version reads (gateway: its values.schema.json too), and each release is of that version.
The checks and their sources: tests/schemas/istio_check.py and tests/schemas/istio_reference.py.
"""

from __future__ import annotations

import pytest

from conftest import plan_stack
from schemas.istio_check import check_plan


@pytest.fixture(scope="module", params=["staging", "prod"])
def checked(request):
    return check_plan(plan_stack(request.param, known=True))


def test_plan_has_istio_objects_and_releases(checked):
    _, objects, releases = checked
    assert objects > 0 and releases > 0, "nothing to check: the GKE path is missing from the plan"


def test_every_istio_object_and_chart_value_passes_the_pinned_istio(checked):
    errors, _, _ = checked
    assert errors == [], "\n" + "\n".join(errors)
