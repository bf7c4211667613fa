"""_retire/sort: which found files are movable strays and which need a person (the filter's logic)."""

from __future__ import annotations

from ansible_collections.sne.guichet.plugins.filter.strays import strays as filter_strays
from ansible_collections.sne.guichet.plugins.module_utils._retire.sort import inside, strays

FILES = {
    "/opt/app/lib/Chiffrement_SNEV4.cer": {"format": "der", "certificates": 1, "matched": 1},
    "/opt/app/conf/app.properties": {"format": "pem", "certificates": 1, "matched": 1},
    "/home/g/bundle.pem": {"format": "pem", "certificates": 3, "matched": 1},
    "/etc/guichet/certs/v4.pem": {"format": "pem", "certificates": 1, "matched": 1},
}


def test_the_filter_is_the_module_utils_sort():
    assert filter_strays is strays


def test_a_file_kept_in_place_needs_a_person():
    # a configuration file the run rewrites that holds nothing but a retired PEM block: moving
    # it would take the configuration away
    result = strays(FILES, ["/etc/guichet/certs"], kept=["/opt/app/conf/app.properties"])
    assert result == {"movable": ["/opt/app/lib/Chiffrement_SNEV4.cer"],
                      "attention": ["/home/g/bundle.pem", "/opt/app/conf/app.properties"]}
    assert strays(FILES, ["/etc/guichet/certs"])["movable"] == [
        "/opt/app/conf/app.properties", "/opt/app/lib/Chiffrement_SNEV4.cer"]


def test_inside():
    assert inside("/etc/guichet/certs/a.pem", "/etc/guichet/certs/")
    assert inside("/etc/guichet/certs", "/etc/guichet/certs")
    assert not inside("/etc/guichet/certs2/a.pem", "/etc/guichet/certs")
    assert inside("/anything", "/")
