from __future__ import annotations

import json

from llmos.apps.catalog import load_catalog
from llmos.apps.tools import default_tools


def test_the_bundled_catalog_is_complete() -> None:
    catalog = load_catalog()
    assert len(catalog) >= 50
    for item in catalog:
        assert item.id and item.title and item.author and item.genre and item.description
        assert item.price > 0 and item.currency == "EUR"
    assert len({i.id for i in catalog}) == len(catalog)


def test_find_title_matches_contained_and_close_titles_only() -> None:
    catalog = load_catalog()
    found = catalog.find_title("I'd like to order Dracula please")
    assert found is not None and found.title == "Dracula"
    close = catalog.find_title("the count of monte cristo")
    assert close is not None and close.title == "The Count of Monte Cristo"
    typo = catalog.find_title("Pride and Prejudise")
    assert typo is not None and typo.title == "Pride and Prejudice"
    assert catalog.find_title("I want to order a novel") is None
    assert catalog.find_title("The Night Circus") is None


def test_search_ranks_title_and_author_words_first() -> None:
    catalog = load_catalog()
    assert catalog.search("Jules Verne", limit=2)[0].author == "Jules Verne"
    assert all(i.genre == "fantasy" for i in catalog.search("dragon", genre="fantasy"))


def test_tools_validate_arguments_and_report_errors_to_the_model() -> None:
    tools = default_tools()
    assert {s["function"]["name"] for s in tools.specs()} == {"get_weather", "calculator", "search_catalog"}
    weather = tools.call("get_weather", json.dumps({"city": "PARIS"}))
    assert weather["result"]["city"] == "Paris" and "temperature_c" in weather["result"]
    assert tools.call("get_weather", {"city": "New  York"})["result"]["city"] == "New York"
    assert "no weather data" in tools.call("get_weather", {"city": "Atlantis"})["error"]
    assert tools.call("calculator", {"expression": "(2 + 3) * 4"})["result"]["value"] == "20"
    assert "division by zero" in tools.call("calculator", {"expression": "1/0"})["error"]
    hits = tools.call("search_catalog", {"query": "Sherlock Holmes hound", "max_results": 1})["result"]
    assert hits[0]["title"] == "The Hound of the Baskervilles" and hits[0]["price"].endswith("EUR")
    assert "invalid arguments" in tools.call("calculator", {"expr": "1"})["error"]
    assert "invalid arguments" in tools.call("search_catalog", {"query": "x", "max_results": 99})["error"]
    assert "not JSON" in tools.call("calculator", "{oops")["error"]
    assert "unknown tool" in tools.call("rm_rf", {})["error"]
