"""The suite's own set-up: tests that share a module-scoped run (``pytest.mark.xdist_group``) stay on one test
worker under ``make test`` (``--dist loadgroup``), so the run is made once, not once per worker."""

import pytest


@pytest.mark.xdist_group("probe")
def test_a_grouped_test_carries_its_group_to_the_scheduler(request):
    if getattr(request.config, "workerinput", None) is None or not request.config.getvalue("loadgroup"):
        pytest.skip("not run by pytest-xdist with --dist loadgroup (make test does)")
    # xdist's scheduler groups by this suffix of the test's id; an id without it is scheduled like any other test
    assert request.node.nodeid.endswith("@probe"), request.node.nodeid
