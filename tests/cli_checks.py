"""How the tests check that a command failed the way the CLI promises: one ``error:`` line, exit 2."""


def assert_error_line(result, *fragments, alone: bool = True):
    """Exit 2, no traceback, no exception but SystemExit, and exactly one ``error:`` line on stderr that
    holds every fragment; ``alone``: and nothing else on stderr (no progress output before it)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and (not alone or len(lines) == 1), result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
