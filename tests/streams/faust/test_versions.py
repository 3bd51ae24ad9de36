"""The faust patches refuse versions they were not written for."""

from __future__ import annotations

import pytest

from streams.faust import PINNED, UnsupportedFaust, check_versions, installed_versions


def test_the_installed_versions_are_the_pinned_ones() -> None:
    assert installed_versions() == dict(PINNED)
    check_versions()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_another_version_is_refused_with_what_to_do(name: str) -> None:
    installed = {**PINNED, name: "9.9.9"}
    with pytest.raises(UnsupportedFaust) as err:
        check_versions(installed)
    message = str(err.value)
    assert f"{name} 9.9.9 (need {PINNED[name]})" in message
    assert "make install" in message


def test_a_missing_distribution_is_refused() -> None:
    with pytest.raises(UnsupportedFaust, match="aiokafka missing"):
        check_versions({**PINNED, "aiokafka": None})


def test_the_pins_match_pyproject() -> None:
    import tomllib
    from pathlib import Path

    deps = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())["project"]["dependencies"]
    for name, version in PINNED.items():
        assert f"{name}=={version}" in deps
