"""The API described: /api/openapi.json (OpenAPI 3.1) and a readable page at /api.

Both are generated from ENDPOINTS, one entry per route and method. Only the routes the
running app really has are described, and tests/test_apidoc.py fails when an /api
route has no entry here: a new endpoint is documented by adding one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import Blueprint, current_app, jsonify, render_template

from kb import __version__

bp = Blueprint("apidoc", __name__)


@dataclass(frozen=True)
class Param:
    """A query or path parameter."""

    name: str
    description: str
    type: str = "string"
    where: str = "query"
    required: bool = False
    repeat: bool = False
    example: object = None


@dataclass(frozen=True)
class Endpoint:
    """One route and method: what it does, what it takes and what it returns."""

    method: str
    rule: str  # as Flask writes it: /api/articles/<path:article_id>
    summary: str
    description: str = ""
    params: tuple[Param, ...] = ()
    body: dict | None = None  # JSON body: {"field": "meaning"}
    returns: str = "application/json"
    responses: dict[int, str] = field(default_factory=dict)
    auth: bool = False  # needs the write token
    tag: str = "検索"


_Q = Param("q", "検索語（空白区切り、\"語句\"、-除外、A OR B、prefecture: などの絞り込みも"
                "書けます）", required=True, example="窓口業務 委託")
_FILTERS = (
    Param("prefecture", "都道府県で絞り込み（複数指定可）", repeat=True, example="静岡県"),
    Param("category", "カテゴリで絞り込み（複数指定可）", repeat=True, example="窓口業務"),
    Param("year", "年度（4月始まり）で絞り込み。2023、2023年度、令和5年度、R5 のどれでも"
          "（複数指定可）", repeat=True, example="2023"),
)
_PAGING = (
    Param("page", "ページ番号（1〜1000）", "integer"),
    Param("per_page", "1ページの件数（1〜100）", "integer"),
    Param("sort", "並び順: relevance（関連度）または date（新しい順）"),
)
_ARTICLE_ID = Param("article_id", "記事ID", where="path", required=True,
                    example="kakegawa-castle-shitei-kanri")
_ERRORS = {400: "入力の誤り", 503: "索引がない、または開けない"}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/api/search", "記事を検索する",
             "関連度順（または新しい順）の記事、抜粋、都道府県・カテゴリ・年度ごとの件数（facets）、"
             "地図とグラフの件数（charts）を返します。",
             (_Q, *_FILTERS, *_PAGING,
              Param("explain", "1 にすると、各記事でどの語がどこに一致したか（matched）も"
                    "返します")),
             responses={200: "検索結果", **_ERRORS}),
    Endpoint("GET", "/api/articles/<path:article_id>", "記事を1件取得する",
             "記事の本文とメタデータを返します。", (_ARTICLE_ID,),
             responses={200: "記事", 404: "記事がない"}, tag="記事"),
    Endpoint("GET", "/api/suggest", "入力中の語の候補を返す",
             "最後の語を補う候補（地名・カテゴリ・タグ・よく使われる語・記事タイトル）を返します。"
             "かなで入力すると読みが一致する漢字の語も候補になります（かけ → 掛川市）。",
             (Param("q", "入力中の文字列", example="かけ"),
              Param("limit", "候補の数（1〜20、既定 8）", "integer")),
             responses={200: "候補の一覧", 400: "入力の誤り"}),
    Endpoint("GET", "/search.csv", "検索結果を CSV で保存する",
             "/search と同じパラメータの検索結果を、Excel で開ける CSV（UTF-8 BOM 付き、CRLF、"
             "日本語の見出し）で返します。件数の上限は設定 EXPORT_MAX です。",
             (_Q, *_FILTERS, Param("sort", "並び順: relevance または date")),
             returns="text/csv", responses={200: "CSV ファイル", 400: "入力の誤り"}, tag="保存"),
    Endpoint("GET", "/search.json", "検索結果を JSON で保存する",
             "/search と同じパラメータの検索結果を、上限（EXPORT_MAX）まですべて JSON で返します。",
             (_Q, *_FILTERS, Param("sort", "並び順: relevance または date")),
             responses={200: "JSON ファイル", 400: "入力の誤り"}, tag="保存"),
    Endpoint("POST", "/api/click", "検索結果のクリックを記録する",
             "検索結果ページが、開かれた記事を検索ログに記録するために送ります（同じサイトからのみ）。",
             body={"search": "検索ID（結果ページの data-search-log）", "id": "記事ID",
                   "rank": "順位（整数）"},
             responses={200: "受け付けた（recorded は記録できたかどうか）", 400: "形式の誤り"},
             tag="検索ログ"),
    Endpoint("GET", "/api/admin/insights", "検索ログの集計（編集者用）",
             "よく検索される語、0件だった語、結果がクリックされなかった語を返します。",
             (Param("days", "集計する日数（1〜3650、既定 30）", "integer"),),
             responses={200: "集計", 401: "トークンがない・違う", 403: "トークン未設定"},
             auth=True, tag="検索ログ"),
    Endpoint("GET", "/api/ask", "質問に答える",
             "文章の質問に、記事の一文を根拠として答えます。十分な答えがなければ answered: false "
             "と近い記事を返します（answer には根拠の記事と文、confidence は確からしさ）。",
             (Param("q", "質問（文章）", required=True,
                    example="白井市では来庁者の待ち時間がどれだけ短くなった？"),),
             responses={200: "回答（または回答なし）", **_ERRORS}, tag="質問"),
    Endpoint("GET", "/api/openapi.json", "この API の説明（OpenAPI 3.1）", tag="その他"),
    Endpoint("GET", "/healthz", "稼働状況", "記事数と配信中の索引の世代を返します。",
             responses={200: "稼働中", 503: "索引がない"}, tag="その他"),
    Endpoint("GET", "/api/related/<path:article_id>", "記事の関連事例",
             "内容の近い記事と、共通する語（理由）を返します。",
             (_ARTICLE_ID, Param("limit", "件数", "integer")),
             responses={200: "関連事例", 404: "記事がない"}, tag="関連事例"),
    Endpoint("POST", "/api/related", "文章から関連事例を探す",
             "貼り付けた文章に内容の近い記事を返します。",
             body={"text": "文章（20,000文字まで）", "limit": "件数（整数、省略可）"},
             responses={200: "関連事例", 400: "形式の誤り", 413: "文章が長すぎる"}, tag="関連事例"),
)

_ARTICLE_BODY = {
    "id": "記事ID（英数字・日本語・. -、128文字まで）", "title": "タイトル（必須）",
    "body": "本文（必須）", "date": "日付 YYYY-MM-DD", "prefecture": "都道府県（または 全国）",
    "municipality": "市区町村", "categories": "カテゴリの配列（categories.yml にあるもの）",
    "tags": "タグの配列", "url": "出典の URL", "source": "出典の説明",
}
_WRITE_ERRORS = {400: "記事の形式の誤り", 401: "トークンがない・違う",
                 403: "書き込みが無効（KB_WRITE_TOKEN 未設定）", 415: "JSON ではない",
                 503: "ほかの書き込みの完了待ちで時間切れ"}
WRITE_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/api/articles", "記事を追加する",
             "記事をコーパスに保存し、索引に反映してから応答します。", body=_ARTICLE_BODY,
             responses={201: "追加した（Location に記事の URL）", 409: "同じIDの記事がある",
                        **_WRITE_ERRORS}, auth=True, tag="記事の書き込み"),
    Endpoint("PUT", "/api/articles/<path:article_id>", "記事を置き換える",
             "記事の内容をまるごと置き換えます。", (_ARTICLE_ID,), body=_ARTICLE_BODY,
             responses={200: "置き換えた", 404: "記事がない", **_WRITE_ERRORS}, auth=True,
             tag="記事の書き込み"),
    Endpoint("DELETE", "/api/articles/<path:article_id>", "記事を削除する",
             "記事をコーパスと索引から削除します。", (_ARTICLE_ID,),
             responses={200: "削除した", 404: "記事がない", **_WRITE_ERRORS}, auth=True,
             tag="記事の書き込み"),
)
ENDPOINTS = ENDPOINTS + WRITE_ENDPOINTS

# Routes outside /api/ that are part of the API all the same.
API_PATHS_OUTSIDE = ("/healthz", "/search.csv", "/search.json")
_RULE_VAR = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def is_api_rule(rule: str) -> bool:
    """True for a route the API description must cover."""
    return rule.startswith("/api/") or rule in API_PATHS_OUTSIDE


def openapi_path(rule: str) -> str:
    """/api/articles/<path:article_id> -> /api/articles/{article_id}"""
    return _RULE_VAR.sub(r"{\1}", rule)


def served_endpoints() -> list[Endpoint]:
    """The entries of ENDPOINTS whose route and method the running app has."""
    served = {(r.rule, m) for r in current_app.url_map.iter_rules() for m in r.methods or ()}
    return [e for e in ENDPOINTS if (e.rule, e.method) in served]


def _schema(p: Param) -> dict:
    item = {"type": p.type}
    return {"type": "array", "items": item} if p.repeat else item


def _operation(e: Endpoint) -> dict:
    op: dict = {"summary": e.summary, "tags": [e.tag]}
    if e.description:
        op["description"] = e.description
    if e.params:
        op["parameters"] = []
        for p in e.params:
            param = {"name": p.name, "in": p.where, "required": p.required or p.where == "path",
                     "description": p.description, "schema": _schema(p)}
            if p.repeat:
                param.update(style="form", explode=True)
            if p.example is not None:
                param["example"] = p.example
            op["parameters"].append(param)
    if e.body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "type": "object",
            "properties": {k: {"description": v} for k, v in e.body.items()}}}}}
    responses = {}
    for status, text in (e.responses or {200: "成功"}).items():
        if status < 400:
            content = {e.returns: {"schema": {"type": "string"} if e.returns == "text/csv"
                                   else {"$ref": "#/components/schemas/Ok"}}}
        else:
            content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        responses[str(status)] = {"description": text, "content": content}
    op["responses"] = responses
    if e.auth:
        op["security"] = [{"writeToken": []}]
    return op


def openapi() -> dict:
    """The OpenAPI 3.1 description of the endpoints this app serves."""
    paths: dict = {}
    for e in served_endpoints():
        paths.setdefault(openapi_path(e.rule), {})[e.method.lower()] = _operation(e)
    return {
        "openapi": "3.1.0",
        "info": {"title": "事例ナレッジ検索 API", "version": __version__,
                 "description": "自治体BPO・地方創生の事例ナレッジ検索の JSON API。"
                                "成功は {\"ok\": true, ...}、エラーは {\"ok\": false, \"error\": "
                                "{\"code\", \"message\"}} の形で返します。"},
        "paths": paths,
        "components": {
            "schemas": {
                "Ok": {"type": "object", "required": ["ok"],
                       "properties": {"ok": {"const": True}}},
                "Error": {"type": "object", "required": ["ok", "error"], "properties": {
                    "ok": {"const": False},
                    "error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"},
                        "hint": {"type": "string"}}}}},
            },
            "securitySchemes": {"writeToken": {
                "type": "http", "scheme": "bearer",
                "description": "設定 WRITE_TOKEN（KB_WRITE_TOKEN）の値"}},
        },
    }


@bp.route("/api/openapi.json")
def api_openapi():
    return jsonify(openapi())


@bp.route("/api")
def api_page():
    endpoints = served_endpoints()
    tags = list(dict.fromkeys(e.tag for e in endpoints))
    return render_template("api.html", endpoints=endpoints, tags=tags,
                           openapi_path=openapi_path, query="")
