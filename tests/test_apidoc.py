"""The API description: /api/openapi.json covers every API route, and /api reads well."""
from __future__ import annotations

from web.apidoc import ENDPOINTS, is_api_rule, openapi_path

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def api_routes(app) -> set[tuple[str, str]]:
    return {(openapi_path(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
            if is_api_rule(rule.rule) for method in rule.methods - IGNORED_METHODS}


def test_every_api_route_is_described(app, client):
    spec = client.get("/api/openapi.json").get_json()
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    missing = api_routes(app) - described
    assert not missing, f"add these to web/apidoc.py ENDPOINTS: {sorted(missing)}"


def test_only_served_routes_are_described(app, client):
    spec = client.get("/api/openapi.json").get_json()
    described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert described <= api_routes(app)


def test_openapi_document_shape(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["title"]
    search = spec["paths"]["/api/search"]["get"]
    names = {p["name"] for p in search["parameters"]}
    assert {"q", "prefecture", "category", "year", "page", "per_page", "sort"} <= names
    article = spec["paths"]["/api/articles/{article_id}"]["get"]
    assert article["parameters"][0]["in"] == "path" and article["parameters"][0]["required"]
    assert "text/csv" in spec["paths"]["/search.csv"]["get"]["responses"]["200"]["content"]
    for ops in spec["paths"].values():
        for op in ops.values():
            assert op["summary"] and op["responses"]


def test_endpoint_table_has_no_duplicates():
    keys = [(e.method, e.rule) for e in ENDPOINTS]
    assert len(keys) == len(set(keys))


def test_api_page_is_readable_japanese(client):
    r = client.get("/api")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "API の説明" in html and "/api/openapi.json" in html
    assert "GET /api/search" in html and "GET /api/suggest" in html and "必須" in html
    assert "curl 'http://localhost/api/search?q=" in html
