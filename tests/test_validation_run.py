"""analyses/validation.py, the whole validation in one command: every step is a command the CLI accepts, on a
design file that its model reads, and the step list covers what issue 24 asks for (SBC of every model with a
simulator and every H0–H4, recovery on both designs, the design ranking)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import typer.main

from mscbayes import families
from mscbayes.cli import app
from mscbayes.design_rank import read_candidates

ROOT = Path(__file__).resolve().parents[1]


def _validation():
    spec = importlib.util.spec_from_file_location("validation_analysis", ROOT / "analyses" / "validation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse(argv: list[str]) -> tuple[str, dict]:
    """The (sub)command name and its parsed parameters, without running it (click's own parser)."""
    group = typer.main.get_command(app)
    cmd, args = group, list(argv)
    while hasattr(cmd, "get_command") and args:  # walk groups: 'design rank ...'
        ctx = cmd.make_context("mscbayes", [], resilient_parsing=True)
        cmd, args = cmd.get_command(ctx, args[0]), args[1:]
        assert cmd is not None, f"no command {argv[0]!r}"
    ctx = cmd.make_context(cmd.name, args)
    return cmd.name, ctx.params


def test_every_step_is_a_command_the_cli_accepts_on_a_design_its_model_reads(tmp_path):
    plan = _validation().steps(tmp_path, sbc_replicates=7, recovery_replicates=3, seed=5)
    names = set(plan)
    assert {"sbc_fate", "sbc_treg", "recovery_discriminating", "recovery_live_only", "design_ranking"} <= names
    assert {f"sbc_mechanisms_{h}" for h in ("H0", "H1", "H2", "H3", "H4")} <= names
    for name, argv in plan.items():
        command, params = _parse(argv)
        if command == "sbc":
            family = families.get(params["family"])
            family.read_design(params["design"])
            family.check_hypothesis(params["hypothesis"])
            assert params["replicates"] == 7 and params["out_dir"].parent == tmp_path
        elif command == "recovery":
            families.get(params["model"]).read_design(params["design"])
            assert params["hypotheses"] == "H0,H1,H2,H3,H4" and params["truth"] == "prior"
            assert params["replicates"] == 3
        else:
            assert command == "rank", name
            assert len(read_candidates(params["candidates"]).designs) >= 6


def test_an_unknown_step_is_refused_with_the_list_of_steps(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _validation().main(["--out", str(tmp_path), "--only", "sbc_fate,sbc_nk"])
    assert exit_info.value.code == 2
    assert "unknown step(s) sbc_nk; the steps are sbc_treg" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
