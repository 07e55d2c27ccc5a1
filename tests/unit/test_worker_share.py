"""How many workers one tenant may hold: all of them alone, a share of them beside others.

The behaviour under a slow helpdesk is proven in
tests/integration/test_vendor_faults.py::test_a_tenant_in_trouble_does_not_hold_up_a_healthy_one.
"""

from __future__ import annotations

import pytest

from plugin.config import ServiceSettings
from plugin.worker import tenant_worker_limit


@pytest.mark.parametrize(("concurrency", "share", "tenant_count", "limit"), [
    (4, 0.75, 1, 4),     # one tenant uses every worker
    (4, 0.75, 0, 4),
    (4, 0.75, 2, 3),     # one worker stays free for the others
    (16, 0.75, 3, 12),
    (2, 0.75, 2, 1),
    (1, 0.75, 2, 1),     # never below one
    (4, 1.0, 2, 4),      # share 1: no cap
    (10, 0.5, 5, 5),
    (100, 0.57, 2, 57),  # 100 × 0.57 is 56.99999… in floating point
    (100, 0.29, 2, 29),
])
def test_tenant_worker_limit(concurrency, share, tenant_count, limit):
    assert tenant_worker_limit(concurrency, share, tenant_count) == limit


def test_the_share_is_a_validated_setting():
    assert ServiceSettings().worker_tenant_share == 0.75
    with pytest.raises(ValueError):
        ServiceSettings(worker_tenant_share=0)
    with pytest.raises(ValueError):
        ServiceSettings(worker_tenant_share=1.5)
