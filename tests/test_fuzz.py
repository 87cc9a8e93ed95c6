"""Bad input and hostile text, everywhere: every route of the app, fuzzed with Hypothesis.

Every answer is a clear 4xx (the one JSON error shape on the API, a Japanese page
otherwise) or a success; nothing is a 500. Every page that shows hostile article text
or a hostile query renders it inert. The routes come from the app's url_map, so
endpoints added later are fuzzed too. KB_FUZZ_SCALE multiplies the number of cases
(bench/soak.py runs thousands); KB_FUZZ_REPORT names a file that receives the count.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.rebuild import rebuild
from kb.store import Store
from web import create_app

from test_web import assert_error

SCALE = float(os.environ.get("KB_FUZZ_SCALE", "1"))
TOKEN = "fuzz-write-token-0123456789abcdef"
ALLOWED = {200, 201, 302, 308, 400, 401, 403, 404, 405, 409, 413, 415}  # 308: "//" merged
SKIP_ENDPOINTS = {"static"}
COUNTS: dict[str, int] = {}

# --- hostile text ------------------------------------------------------------------------

PAYLOADS = [
    '<script>alert("xss")</script>',
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">link</a>',
    "javascript:alert(1)",
    "</mark><kbxss>x</kbxss><mark>",
    '"><svg onload=alert(1)>',
    "'><iframe src=javascript:alert(1)>",
    "<style>body{display:none}</style>",
    "{{ 7*7 }}{% raw %}",
    "&lt;script&gt;",
    "<!--",
    "]]>",
    "<base href=//evil.example>",
    '<meta http-equiv="refresh" content="0;url=//evil.example">',
]
SYNTAX = ['"', "(", ")", ":", "*", "?", "-", "AND", "OR", "NOT", "^", "~", "[", "]", "「", "」",
          "prefecture:", "category:", "year:", "　"]
WORDS = ["窓口", "委託", "指定管理", "千葉県", "令和5年度", "BPO", "ＢＰＯ", "コールセンター"]
NUMBERS = ["0", "-1", "1", "10", "100", "101", "1000", "1001", "99999999999999999999", "1e3",
           "NaN", "inf", "0x10", " 2", "２", "", "1.5"]
RAW = ["%FF", "%FE%FF", "%ED%A0%80", "%C0%AF", "%00", "%2e%2e%2f", "..%2F", "%25", "%", "%zz",
       "%E3%81", "+", "&", "=", "#"]

text_piece = st.one_of(
    st.sampled_from(PAYLOADS), st.sampled_from(SYNTAX), st.sampled_from(WORDS),
    st.sampled_from(NUMBERS), st.text(max_size=12),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=4),
)
nasty_text = st.one_of(
    st.lists(text_piece, max_size=6).map(" ".join),
    st.lists(text_piece, max_size=6).map("".join),
    st.sampled_from(["", " ", "\u3000\t\n", "あ" * 1001, "窓口 " * 400, "x" * 100_000]),
)


def encode(text: str) -> str:
    """Percent-encode text for a URL, as a browser would."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


raw_value = st.one_of(nasty_text.map(encode), st.lists(st.sampled_from(RAW), min_size=1,
                                                       max_size=4).map("".join))
PARAMS = ["q", "page", "per_page", "sort", "prefecture", "category", "year", "limit", "text",
          "id", "next", "format", "unknown", "q[]", ""]
query_string = st.lists(st.tuples(st.sampled_from(PARAMS), raw_value), max_size=5).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


# --- the HTML must be inert ---------------------------------------------------------------


class InertCheck(HTMLParser):
    """Collect anything in a page that could run, load or mislead: never from our data."""

    DANGEROUS_TAGS = {"iframe", "object", "embed", "base", "kbxss", "style", "frame"}  # our charts are inline <svg>: fine

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.mark_depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.mark_depth:
            self.problems.append(f"<{tag}> inside <mark>")
        if tag == "script" and not (attrs.get("src") or "").startswith("/static/"):
            self.problems.append("inline or foreign <script>")
        if tag in self.DANGEROUS_TAGS:
            self.problems.append(f"<{tag}>")
        if tag == "meta" and "http-equiv" in attrs:
            self.problems.append("<meta http-equiv>")
        for name, value in attrs.items():
            if name.startswith("on"):
                self.problems.append(f"event handler {name}=")
            if name in ("href", "src", "action", "formaction", "xlink:href") and value:
                scheme = re.sub(r"[\s\x00-\x1f]", "", value).lower()
                if scheme.startswith(("javascript:", "vbscript:", "data:")):
                    self.problems.append(f"{name}={value[:40]}")
        if tag == "mark":
            self.mark_depth += 1

    def handle_endtag(self, tag):
        if tag == "mark":
            if not self.mark_depth:
                self.problems.append("</mark> without <mark>")
            self.mark_depth = max(0, self.mark_depth - 1)


def assert_inert(html: str) -> None:
    """The page contains no markup that came from outside."""
    check = InertCheck()
    check.feed(html)
    check.close()
    assert check.problems == [], check.problems
    assert "{{ 7*7 }}" not in html or "49" not in html.split("{{ 7*7 }}")[0][-5:]


# --- fixtures ------------------------------------------------------------------------------

HOSTILE_ARTICLES = [
    {"id": "hostile-script", "title": f"窓口の記事 {PAYLOADS[0]}{PAYLOADS[1]}",
     "body": "窓口業務の委託。" + " 窓口 ".join(PAYLOADS) + "\n# 見出し " + PAYLOADS[4]
             + "\n・項目 " + PAYLOADS[2],
     "prefecture": "千葉県", "municipality": PAYLOADS[5], "categories": ["窓口業務"],
     "tags": [PAYLOADS[1], PAYLOADS[4]], "source": PAYLOADS[2], "date": "2023-05-01",
     "url": 'https://example.com/"><script>alert(1)</script>'},
    {"id": "hostile-mark", "title": "</mark>委託<mark>の<kbxss>記事",
     "body": "委託 </mark> 窓口 <mark> 委託 " + PAYLOADS[6] + " 窓口業務の委託を続けた。",
     "categories": ["窓口業務"], "tags": ["<i>tag</i>"]},
]


def _env(root: Path, corpus_dir: Path):
    shutil.copytree(corpus_dir, root / "corpus")
    rebuild([root / "corpus"], root / "index", procs=1, show_progress=False)
    store = Store(root / "corpus", root / "index")
    for article in HOSTILE_ARTICLES:
        store.create(article)
    app = create_app({"INDEX_DIR": str(root / "index"), "CORPUS_DIR": str(root / "corpus"),
                      "TESTING": True, "WRITE_TOKEN": TOKEN, "LOCK_TIMEOUT": 5})
    app.testing = False  # let the app's own error handler answer, as in production
    return app


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, corpus_dir):
    """An app over the fixture corpus plus hostile articles; reads only."""
    return _env(tmp_path_factory.mktemp("fuzz"), corpus_dir)


@pytest.fixture(scope="module")
def write_app(tmp_path_factory, corpus_dir):
    """A second app of its own, which the write fuzzing may change at will."""
    return _env(tmp_path_factory.mktemp("fuzz-write"), corpus_dir)


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    target = os.environ.get("KB_FUZZ_REPORT")
    if target:
        Path(target).write_text(json.dumps(COUNTS), encoding="utf-8")


def routes(app, methods: set[str]) -> list:
    """The app's rules that accept one of methods (static files aside)."""
    return sorted((r for r in app.url_map.iter_rules()
                   if r.endpoint not in SKIP_ENDPOINTS and r.methods & methods),
                  key=lambda r: (r.rule, r.endpoint))


def fill(rule, value: str) -> str:
    """The rule's URL with every argument replaced by value (already encoded)."""
    return re.sub(r"<[^>]+>", lambda _: value, rule.rule)


def check_answer(response, path: str) -> None:
    """A success or a clear 4xx; JSON errors have the one shape; pages are inert."""
    assert response.status_code in ALLOWED, (path, response.status_code,
                                             response.get_data(as_text=True)[:300])
    is_json = response.mimetype == "application/json"
    if response.status_code >= 400 and (path.startswith("/api/") or is_json):
        assert_error(response, response.status_code)
    if response.mimetype == "text/html":
        html = response.get_data(as_text=True)
        assert_inert(html)
        if response.status_code >= 400:
            assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", html), "a Japanese message"


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def _ex(n: int) -> int:
    return max(1, int(n * SCALE))


def unseeded_random() -> None:
    """Reseed `random` from the OS inside a Hypothesis example that writes to the index.

    Hypothesis seeds the global `random` alike for every example, and Whoosh names new
    segments with `random`: two writes would pick the same segment name and collide.
    (Outside Hypothesis `random` is seeded once per process, and again after a fork.)
    """
    random.seed(os.urandom(16))


# --- every GET route ---------------------------------------------------------------------

id_value = st.one_of(st.sampled_from(["hostile-script", "hostile-mark", "shiroi-madoguchi-itaku",
                                      "..", "../etc/passwd", "%2e%2e%2f", "a%00b", "%FF",
                                      ".hidden", "x" * 300]),
                     nasty_text.map(encode))


@settings(max_examples=_ex(250), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_get_route_answers_bad_input_clearly(fuzz_app, data):
    rule = data.draw(st.sampled_from(routes(fuzz_app, {"GET"})), label="route")
    path = fill(rule, data.draw(id_value, label="arg"))
    qs = data.draw(query_string, label="query")
    headers = data.draw(st.sampled_from([{}, {"Authorization": f"Bearer {TOKEN}"},
                                         {"Authorization": "Bearer \udcff"},
                                         {"Accept": "application/json"}]), label="headers")
    if any("\udcff" in v for v in headers.values()):
        headers = {"Authorization": "Bearer \xff\xfe"}
    response = fuzz_app.test_client().get(f"{path}?{qs}", headers=headers)
    _count("get")
    _count(f"get {response.status_code}")
    check_answer(response, path)


# --- every route that takes a body --------------------------------------------------------

json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              nasty_text, st.sampled_from(WORDS)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(
                                   ["id", "title", "body", "text", "limit", "q", "categories",
                                    "tags", "url", "date", "prefecture", "x"]), children,
                                   max_size=5)),
    max_leaves=10)
article_like = st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["fuzz-1", "fuzz-2", "shiroi-madoguchi-itaku"]),
                     nasty_text), "title": nasty_text, "body": nasty_text},
    optional={"categories": st.lists(st.sampled_from(["窓口業務", "存在しない", PAYLOADS[0]]),
                                     max_size=3),
              "tags": st.lists(nasty_text, max_size=3), "url": nasty_text,
              "date": st.sampled_from(["2023-04-01", "2023-02-30", "令和5年", ""]),
              "prefecture": st.sampled_from(["千葉県", "架空県", ""]), "text": nasty_text})
body = st.one_of(
    json_value.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8")),
    article_like.map(lambda v: json.dumps(v, ensure_ascii=bool(len(v) % 2)).encode("utf-8")),
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[" * 5000, b'{"text": "\\ud800"}', b'{"title": NaN}',
                     b"\xff\xfe\x00{", b'{"id": "a"}' + b" " * 2000]),
)
content_type = st.sampled_from(["application/json", "application/json; charset=utf-8",
                                "application/json; charset=latin-1", "text/plain",
                                "application/x-www-form-urlencoded", "multipart/form-data",
                                None])


@settings(max_examples=_ex(120), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_body_route_answers_bad_input_clearly(write_app, data):
    rule = data.draw(st.sampled_from(routes(write_app, {"POST", "PUT", "DELETE", "PATCH"})),
                     label="route")
    method = data.draw(st.sampled_from(sorted(rule.methods - {"GET", "HEAD", "OPTIONS"})),
                       label="method")
    path = fill(rule, data.draw(id_value, label="arg"))
    headers = {}
    if data.draw(st.booleans(), label="token"):
        headers["Authorization"] = f"Bearer {TOKEN}"
    ctype = data.draw(content_type, label="content type")
    if ctype:
        headers["Content-Type"] = ctype
    payload = data.draw(body, label="body")
    unseeded_random()
    client = write_app.test_client()
    response = client.open(path, method=method, data=payload, headers=headers)
    _count("body")
    _count(f"body {method} {response.status_code}")
    check_answer(response, path)


good_text = st.one_of(
    st.sampled_from(WORDS), st.sampled_from(PAYLOADS),
    st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1,
            max_size=30)).filter(str.strip)


@settings(max_examples=_ex(40), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(article=article_like, n=st.integers(0, 5), title=good_text, text=good_text,
       replace=st.booleans())
def test_writes_with_the_token_are_stored_exactly_or_refused_clearly(write_app, article, n,
                                                                     title, text, replace):
    unseeded_random()
    client = write_app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    if n % 2:  # half the cases: a well-formed article with hostile or odd text
        article = {"id": f"fuzz-ok-{n}", "title": title, "body": f"{text}\n{title}",
                   "tags": [text[:50]]}
    response = None
    if replace and isinstance(article.get("id"), str):
        response = client.put(f"/api/articles/{encode(article['id'])}", json=article,
                              headers=auth)
    if response is None or response.status_code == 404:
        response = client.post("/api/articles", json=article, headers=auth)
    _count("write")
    _count(f"write {response.status_code}")
    check_answer(response, "/api/articles")
    if response.status_code in (200, 201):
        sent = response.get_json()["article"]
        stored = client.get(f"/api/articles/{encode(sent['id'])}").get_json()["article"]
        for key in ("title", "body", "tags", "categories", "url", "date", "prefecture"):
            assert stored.get(key) == sent[key] or not (stored.get(key) or sent[key]), key


@settings(max_examples=_ex(40), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.dictionaries(st.sampled_from(["text", "token", "csrf_token", "id", "title",
                                             "body", "next", "q"]), nasty_text, max_size=4))
def test_form_posts_answer_bad_input_clearly(fuzz_app, form):
    client = fuzz_app.test_client()
    for rule in routes(fuzz_app, {"POST"}):
        if rule.rule.startswith("/api/"):
            continue
        path = fill(rule, "hostile-script")
        response = client.post(path, data=form)
        _count("form")
        check_answer(response, path)


# --- hostile text on every page -----------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/", "/search?q=窓口", "/search?q=委託&per_page=2", "/search?q=窓口&category=窓口業務",
    "/search?q=窓口&prefecture=千葉県&sort=date", "/articles/hostile-script",
    "/articles/hostile-mark", "/related", "/admin",
])
def test_pages_render_hostile_articles_inert(fuzz_app, path):
    response = fuzz_app.test_client().get(path)
    assert response.status_code == 200, path
    html = response.get_data(as_text=True)
    assert_inert(html)
    if "hostile" in path:
        assert "&lt;script&gt;" in html or "&lt;/mark&gt;" in html  # shown, as text


def test_every_get_page_renders_hostile_articles_inert(fuzz_app):
    """Pages added by others (charts, exports, related blocks) over the hostile articles."""
    client = fuzz_app.test_client()
    for rule in routes(fuzz_app, {"GET"}):
        for arg in ("hostile-script", "hostile-mark"):
            path = fill(rule, arg)
            for qs in ("q=窓口", "q=委託&category=窓口業務", f"q={encode(PAYLOADS[0])}"):
                check_answer(client.get(f"{path}?{qs}"), path)


def test_admin_edit_form_shows_hostile_text_inert(fuzz_app):
    client = fuzz_app.test_client()
    html = client.get("/admin").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    client.post("/admin/login", data={"token": TOKEN, "csrf_token": csrf})
    for article in HOSTILE_ARTICLES:
        response = client.get(f"/admin/articles/{article['id']}")
        assert response.status_code == 200
        assert_inert(response.get_data(as_text=True))


def test_related_text_with_hostile_html_is_inert(fuzz_app):
    if "related.related_page" not in fuzz_app.view_functions:
        pytest.skip("no /related page in this app")
    response = fuzz_app.test_client().post("/related", data={"text": "窓口業務の委託 " + PAYLOADS[0]
                                                             + PAYLOADS[4]})
    assert response.status_code in (200, 400)
    assert_inert(response.get_data(as_text=True))


@settings(max_examples=_ex(60), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.lists(st.one_of(st.sampled_from(PAYLOADS), st.sampled_from(WORDS)), min_size=1,
                  max_size=5).map(" ".join))
def test_hostile_queries_render_inert(fuzz_app, q):
    client = fuzz_app.test_client()
    for path in ("/search", "/api/search"):
        response = client.get(path, query_string={"q": q})
        _count("hostile")
        check_answer(response, path)
        if path == "/api/search" and response.status_code == 200:
            for hit in response.get_json()["hits"]:
                assert_inert(f"<p>{hit['snippet_html']}</p>")


def test_the_inert_check_catches_what_it_should():
    for bad in [p for p in PAYLOADS[:8] if p.startswith(("<", '"', "'"))]:
        check = InertCheck()
        check.feed(f"<p>{bad}</p>")
        assert check.problems, bad
    check = InertCheck()
    check.feed("<p>&lt;script&gt; <mark>窓口</mark></p><script src=\"/static/app.js\"></script>")
    assert check.problems == []


@pytest.mark.parametrize("qs", ["q=窓口&prefecture=架空県", "q=窓口&category=存在しない分類",
                                "prefecture=<script>", "q=窓口&year=3000", "q=窓口&page=1001",
                                "q=窓口&per_page=0", "q=窓口&sort=random"])
def test_unknown_filters_and_absurd_paging_are_a_clear_400(fuzz_app, qs):
    client = fuzz_app.test_client()
    assert_error(client.get(f"/api/search?{qs}"), 400, "bad_query")
    page = client.get(f"/search?{qs}")
    assert page.status_code == 400 and "入力を確認してください" in page.get_data(as_text=True)


def test_known_filters_still_work(fuzz_app):
    client = fuzz_app.test_client()
    for qs in ("q=窓口&prefecture=千葉県", "q=窓口&category=窓口業務", "q=窓口&prefecture=全国"):
        assert client.get(f"/api/search?{qs}").status_code == 200
