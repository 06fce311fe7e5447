"""`python -m tests.toy_cli ARGS`: the mscbayes command line with the toy model of tests/conftest.py registered
(compiles in seconds, unlike the fate model), for the kill -9 tests in tests/test_kill.py. Two test doubles:
a CSV with the toy columns is told to be a "toy" table, and "TEST: sampling" is printed to stderr when the
sampler starts, so a test can kill the process while it samples."""

import sys

import nutpie

from mscbayes import api
from mscbayes.cli import main

from . import conftest

_detect = api.detect_table_kind
_sample = nutpie.sample


def _toy_kind(source):
    try:
        return _detect(source)
    except Exception:
        return "toy"


def _announced_sample(*args, **kwargs):
    print("TEST: sampling", file=sys.stderr, flush=True)
    return _sample(*args, **kwargs)


if __name__ == "__main__":
    assert conftest.TOY_FAMILY.name == "toy"
    api.detect_table_kind = _toy_kind
    nutpie.sample = _announced_sample
    main(sys.argv[1:])
