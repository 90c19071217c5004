"""lib.glue: the record MyST-NB's {glue:text} role reads, holding the formatted value."""

import IPython.display
import pytest
from IPython.core.interactiveshell import InteractiveShell

import lib
from lib.notebook import GLUE_MIME_PREFIX


def test_glue_returns_the_formatted_text_outside_ipython():
    assert lib.glue("final_loss", 0.123456, ".3f") == "0.123"
    assert lib.glue("share", 0.5, ".1%") == "50.0%"
    assert lib.glue("count", 12345, ",d") == "12,345"


def test_glue_writes_the_record_myst_nb_reads(monkeypatch):
    # a notebook kernel, imitated without starting an IPython shell (which would change
    # global state such as matplotlib's interactive mode for the tests that follow)
    shown = []
    monkeypatch.setattr(InteractiveShell, "initialized", classmethod(lambda cls: True))
    monkeypatch.setattr(
        IPython.display, "display", lambda data, raw, metadata: shown.append((data, raw, metadata))
    )
    assert lib.glue("final_loss", 0.123456, ".3f") == "0.123"
    ((data, raw, metadata),) = shown
    assert raw is True
    assert data == {f"{GLUE_MIME_PREFIX}text/plain": "'0.123'"}
    assert metadata == {"scrapbook": {"name": "final_loss", "mime_prefix": GLUE_MIME_PREFIX}}


@pytest.mark.parametrize("name", ["", "final loss", "a-b", "naïve"])
def test_glue_rejects_a_name_the_roles_cannot_cite(name):
    with pytest.raises(ValueError, match="name must be letters, digits and '_'"):
        lib.glue(name, 1.0)
