"""The CNF half of test_gradients.py (a separate file so the two run in parallel)."""

import pytest
from test_gradients import check_gradients


@pytest.mark.parametrize("name", ["cnf-exact", "cnf-hutchinson"])
def test_cnf_gradients_match_finite_differences_for_every_adjoint(x64, name):
    check_gradients(name)
