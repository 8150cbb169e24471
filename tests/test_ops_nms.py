"""NonMaxSuppression: not supported yet -- its output shape ([num_selected, 3]) depends on
the data, and mlc compiles static shapes only.  A model using it must be refused with an
UnsupportedError naming the op and node (never a crash, never a wrong answer)."""
from __future__ import annotations

import numpy as np
import pytest

import mlc
from _nodecases import node_case_names, node_case


@pytest.mark.parametrize("name", node_case_names(r"test_nonmaxsuppression_.*"))
def test_node_cases_refused_clearly(name):
    case = node_case(name)
    with pytest.raises(mlc.UnsupportedError, match="NonMaxSuppression") as err:
        mlc.compile(case.model)
    assert any(item[0] == "NonMaxSuppression" for item in err.value.items)
