"""The mesh line a run prints says where parameters live, for single runs and sweeps."""

from scaling_training.sharding import make_plan


def test_single_run_line_names_the_parameter_placement():
    line = make_plan("data:1", fsdp=False, batch_size=32).describe()
    assert line.startswith("mesh data:1 (1 ") and line.endswith("params replicated over data")


def test_sweep_line_counts_members():
    plan = make_plan("data:1", fsdp=False, batch_size=32, members=8)
    line = plan.describe(members=8)
    assert "8 members all on every device" in line
    assert "each member's params replicated over data" in line
