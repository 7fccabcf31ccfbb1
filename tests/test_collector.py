import gc

import pytest

from pipeline.collector import collector_paused


def test_the_collector_is_off_inside_and_back_after_an_error():
    gc.enable()
    with pytest.raises(KeyError):
        with collector_paused():
            assert not gc.isenabled()
            raise KeyError("a parser's bug")
    assert gc.isenabled()


def test_a_collector_already_off_stays_off():
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
