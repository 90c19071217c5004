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


def test_spread_quotes_the_range_over_seeds():
    assert lib.spread([0.1234, 0.1456, 0.1301], ".2f") == "0.12–0.15"
    assert lib.spread([12, 3, 7], "d") == "3–12"  # the order of the seeds does not matter


def test_spread_says_to_when_an_end_is_negative():
    assert lib.spread([-0.98, -0.91], ".2f") == "-0.98 to -0.91"
    assert lib.spread([-0.5, 0.25], ".2f") == "-0.50 to 0.25"


def test_spread_gives_one_number_when_the_ends_print_alike():
    assert lib.spread([0.1231, 0.1234], ".2f") == "0.12"


def test_spread_refuses_no_values():
    with pytest.raises(ValueError, match="values must hold at least one measurement"):
        lib.spread([])


def test_table_aligns_names_left_and_values_right():
    text = lib.table(
        ["optimizer", "loss", "test accuracy"], [["SGD", "0.5", "0.91"], ["Adam", "0.125", "0.9"]]
    )
    assert text.splitlines() == [
        "optimizer   loss  test accuracy",
        "---------  -----  -------------",
        "SGD          0.5           0.91",
        "Adam       0.125            0.9",
    ]


def test_table_refuses_a_row_of_another_length():
    with pytest.raises(ValueError, match="each row must have 2 cells like the header"):
        lib.table(["a", "b"], [["1", "2", "3"]])
