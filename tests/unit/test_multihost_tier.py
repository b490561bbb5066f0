"""A tier spanning hosts: TP inside a host, PP across hosts, on Ray; planned per stage; never a
compose service."""

from __future__ import annotations

import pytest

from rentstack.cli import main
from rentstack.commands.render import root_compose_text
from rentstack.config import load_tier
from rentstack.errors import RentstackError
from rentstack.render import build_deployment


def test_multi_host_tier_renders_tp_inside_pp_across_on_ray():
    tier = load_tier("4090x4x2")
    assert (tier.hosts, tier.gpu.count, tier.total_gpus) == (2, 4, 8)
    dep = build_deployment(tier)
    s = dep.settings
    assert (s["tensor-parallel-size"], s["pipeline-parallel-size"]) == (4, 2)
    assert s["distributed-executor-backend"] == "ray"
    assert any("pipeline parallel 2 across hosts" in n and "GbE" in n for n in dep.notes)
    # Planned per pipeline stage: two stages, each within a 4090's budget.
    stages = dep.plan.to_dict()
    assert dep.plan.fits, stages


def test_tp_across_hosts_is_refused_in_one_line():
    with pytest.raises(RentstackError) as err:
        build_deployment(load_tier("4090x4x2"), sets={"tensor-parallel-size": 8, "pipeline-parallel-size": 1})
    assert "tensor-parallel-size 4 (inside a host) and pipeline-parallel-size 2" in str(err.value)
    assert "\n" not in str(err.value)


def test_other_backend_is_refused():
    with pytest.raises(RentstackError, match="which vLLM runs on Ray"):
        build_deployment(load_tier("4090x4x2"), sets={"distributed-executor-backend": "mp"})


def test_multi_host_tier_is_not_a_compose_service():
    text = root_compose_text()
    assert "vllm-4090x4:" in text and "4090x4x2" not in text


def test_make_up_refuses_with_the_fab_command(capsys):
    assert main(["up", "--tier", "4090x4x2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fab ray --host HEAD,WORKER --tier 4090x4x2" in err[0]


def test_hosts_on_a_cpu_tier_is_refused():
    from rentstack.config.tiers import Tier
    with pytest.raises(Exception, match="only GPU tiers span hosts"):
        Tier.model_validate({"name": "x", "description": "d", "accelerator": "cpu", "model": "smollm2-135m",
                             "hosts": 2})
