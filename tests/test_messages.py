"""What the command line prints while it works: one plain progress line per long step, no third-party noise."""

import logging
import warnings

import pymc as pm

from mscbayes import cli, inference


def test_cli_messages_show_progress_and_drop_third_party_noise(capsys):
    cli._setup_messages()
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("PyTensor could not link to a BLAS installation. Operations ...", UserWarning)
        warnings.warn("an unrelated warning stays visible", UserWarning)
    assert [str(w.message) for w in caught] == ["an unrelated warning stays visible"]
    assert logging.getLogger("pymc").getEffectiveLevel() >= logging.WARNING  # no "Sampling: [...]" lines
    logging.getLogger("mscbayes.inference").info("compiling the model")
    logging.getLogger("mscbayes.inference").warning("saved UNTRUSTWORTHY fit")
    printed = capsys.readouterr().err.splitlines()
    assert "compiling the model" in printed and "warning: saved UNTRUSTWORTHY fit" in printed
    cli._setup_messages(verbose=False)  # run --quiet: warnings only
    logging.getLogger("mscbayes.inference").info("compiling the model")
    assert capsys.readouterr().err == ""
    cli._setup_messages()
    assert sum(isinstance(h, cli._ProgressHandler) for h in logging.getLogger("mscbayes").handlers) == 1


def test_a_new_compile_is_announced_and_timed(caplog):
    with pm.Model() as model:
        pm.Normal("x_never_compiled_before", 0.0, 1.0)
    with caplog.at_level(logging.INFO, logger="mscbayes.inference"):
        inference.compiled_nutpie_model(model)
        inference.compiled_nutpie_model(model)  # the second call reuses the compile: no new lines
    lines = [r.getMessage() for r in caplog.records if r.name == "mscbayes.inference"]
    assert len(lines) == 2 and lines[0].startswith("compiling the model") and lines[1].startswith("compiled in ")
