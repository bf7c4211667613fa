"""The strays filter: what can be moved away whole, and what needs a person."""

from __future__ import annotations

from ansible_collections.sne.guichet.plugins.filter.strays import FilterModule, strays


def test_sorting():
    files = {
        "/opt/app/lib/Chiffrement_SNEV4.cer": {"format": "der", "certificates": 1, "matched": 1},
        "/home/g/bundle.pem": {"format": "pem", "certificates": 3, "matched": 1},
        "/home/g/v4-and-ac.pem": {"format": "pem", "certificates": 2, "matched": 2},
        "/opt/other/app.jks": {"format": "jks", "certificates": 1, "matched": 1},
        "/opt/guichet/conf/app.jks": {"format": "jks", "certificates": 5, "matched": 1},
        "/etc/guichet/certs/v4.pem": {"format": "pem", "certificates": 1, "matched": 1},
    }
    result = strays(files, ["/opt/guichet/conf/app.jks", "/etc/guichet/certs/"])
    assert result == {
        "movable": ["/home/g/v4-and-ac.pem", "/opt/app/lib/Chiffrement_SNEV4.cer"],
        "attention": ["/home/g/bundle.pem", "/opt/other/app.jks"],
    }


def test_empty_and_registration():
    assert strays({}, None) == {"movable": [], "attention": []}
    assert FilterModule().filters()["strays"] is strays


def test_stores_without():
    from ansible_collections.sne.guichet.plugins.filter.strays import stores_without

    stores = ["/etc/guichet/certs", "/opt/app.jks", "/opt/sne.pem"]
    places = ["/etc/guichet/certs/sne-v5.pem", "/opt/app.jks", "/opt/sne.pem.bak"]
    assert stores_without(stores, places) == ["/opt/sne.pem"]
    assert stores_without([], places) == []
