"""The CBS list and the slug function, over all 342 real names."""

from __future__ import annotations

import re

import pytest

from cgkit.conventions import tenant_namespace
from cgkit.errors import UnknownMunicipalityError
from cgkit.gemeenten import all_gemeenten, lookup, slug

RFC1123_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def test_list_has_342_municipalities_with_well_formed_codes() -> None:
    gemeenten = all_gemeenten()
    assert len(gemeenten) == 342
    assert all(re.fullmatch(r"GM\d{4}", code) for code in gemeenten)


@pytest.mark.parametrize("gemeente", list(all_gemeenten().values()), ids=lambda g: g.code)
def test_every_name_slugs_to_a_valid_label(gemeente) -> None:
    assert RFC1123_LABEL.match(slug(gemeente.name))


def test_names_that_stress_a_slug() -> None:
    assert slug("'s-Gravenhage") == "s-gravenhage"
    assert slug("Súdwest-Fryslân") == "sudwest-fryslan"
    assert slug("Nuenen, Gerwen en Nederwetten") == "nuenen-gerwen-en-nederwetten"
    assert slug("Bergen (NH.)") == "bergen-nh"
    assert slug("Bergen (L.)") == "bergen-l"


def test_namespaces_come_from_codes_and_never_collide() -> None:
    namespaces = {tenant_namespace(code) for code in all_gemeenten()}
    assert len(namespaces) == 342
    assert tenant_namespace("GM0373") != tenant_namespace("GM0893")
    assert all(RFC1123_LABEL.match(ns) for ns in namespaces)


def test_lookup_is_case_insensitive_and_refuses_unknown_codes() -> None:
    assert lookup("gm0344").name == "Utrecht"
    with pytest.raises(UnknownMunicipalityError):
        lookup("GM9999")
    with pytest.raises(UnknownMunicipalityError):
        lookup("Utrecht")


def test_slug_refuses_a_name_without_letters() -> None:
    with pytest.raises(ValueError):
        slug("()")
