"""The `kb` command: thin over the library; one verb per job, --json on read commands."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import click

from .errors import BadRequest, KBError
from .settings import defaults, setting

_DEFAULTS = defaults()


def index_option(f):
    """The --index option every command shares (defaults to ./index or $KB_INDEX)."""
    return click.option("--index", "index_dir", default=_DEFAULTS["INDEX_DIR"],
                        show_default=True, type=click.Path(file_okay=False),
                        help=setting("INDEX_DIR").help)(f)


def _fail(exc: KBError) -> None:
    hint = f" (hint: {exc.hint})" if exc.hint else ""
    click.echo(f"Error: {exc.message}{hint}", err=True)
    sys.exit(1)


class KBGroup(click.Group):
    """A click group that turns KBError into one line and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KBError as exc:
            _fail(exc)


@click.group(cls=KBGroup)
@click.version_option(package_name="kb")
def cli():
    """Search, relate and ask a Japanese knowledge base of municipal BPO cases."""


def _dump(data) -> str:
    return json.dumps(data, ensure_ascii=False)


# --- index ----------------------------------------------------------------------------


@cli.command("index")
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@index_option
@click.option("--procs", type=click.IntRange(1, 64), default=None,
              help="tokeniser processes (default: the number of cores, at most 4)")
@click.option("--quiet", is_flag=True, help="print only the summary and problems")
def index_cmd(sources, index_dir, procs, quiet):
    """Build the index from SOURCES (files or folders, read recursively).

    Writes made meanwhile (API, `kb add`) are kept: they are applied to the new index
    under the writer lock just before it is swapped in.
    """
    from .rebuild import rebuild

    t0 = time.perf_counter()

    def report(loaded):
        for problem in loaded.problems:
            click.echo(f"skipped {problem}", err=True)

    loaded, stats, applied = rebuild(sources, index_dir, procs=procs, show_progress=not quiet,
                                     lock_timeout=max(60, _DEFAULTS["LOCK_TIMEOUT"]),
                                     on_loaded=report)
    click.echo(f"indexed {loaded.summary()} into {index_dir} in "
               f"{time.perf_counter() - t0:.2f}s (analysis and index "
               f"{stats.write_seconds:.2f}s, related model {stats.related_seconds:.2f}s)")
    if applied["changed"] or applied["removed"]:
        click.echo(f"kept {applied['changed']} changed and {applied['removed']} removed "
                   "articles written while the index was being built")


# --- add / remove -----------------------------------------------------------------------


def corpus_option(f):
    """The --corpus option of the write commands (defaults to ./corpus or $KB_CORPUS)."""
    return click.option("--corpus", "corpus_dir", default=_DEFAULTS["CORPUS_DIR"],
                        show_default=True, type=click.Path(file_okay=False),
                        help=setting("CORPUS_DIR").help)(f)


@cli.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@index_option
@corpus_option
@click.option("--json", "as_json", is_flag=True, help="print what was written as JSON")
def add_cmd(files, index_dir, corpus_dir, as_json):
    """Add or replace the articles in FILES: saved in the corpus folder, then indexed."""
    from .corpus import load_sources
    from .store import Store

    loaded = load_sources(files)
    for problem in loaded.problems:
        click.echo(f"skipped {problem}", err=True)
    if not loaded.articles:
        raise BadRequest("読み込める記事がありません。", hint="check the files and the problems above")
    results = Store(corpus_dir, index_dir, _DEFAULTS["LOCK_TIMEOUT"]).upsert(loaded.articles)
    if as_json:
        click.echo(_dump({"ok": True, "written": [r.to_dict() for r in results]}))
        return
    for r in results:
        click.echo(f"{'added' if r.action == 'created' else 'replaced'} {r.id} -> {r.path}")


@cli.command("remove")
@click.argument("ids", nargs=-1, required=True)
@index_option
@corpus_option
def remove_cmd(ids, index_dir, corpus_dir):
    """Delete the articles with these IDS: their files first, then their index entries."""
    from .store import Store

    for r in Store(corpus_dir, index_dir, _DEFAULTS["LOCK_TIMEOUT"]).delete(ids):
        click.echo(f"removed {r.id} ({r.path})")


# --- search ----------------------------------------------------------------------------


def _batch_lines(path: str) -> Iterator[tuple[int, str]]:
    handle = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        for number, raw in enumerate(handle, 1):
            yield number, raw.decode("utf-8", errors="replace")
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def run_batch(path: str, answer: Callable[[dict], dict], required: tuple[str, ...]) -> None:
    """Read JSON lines, answer each, write one JSON line per input line, in order."""
    for number, line in _batch_lines(path):
        if not line.strip():
            continue
        item_id = None
        try:
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadRequest(f"line {number}: invalid JSON ({exc.msg})") from None
            if not isinstance(item, dict):
                raise BadRequest(f"line {number}: expected a JSON object")
            item_id = item.get("id")
            for key in required:
                if key not in item:
                    raise BadRequest(f"line {number}: missing {key!r}")
            out = {"id": item_id, **answer(item)}
        except KBError as exc:
            out = {"id": item_id, "error": {"code": exc.code, "message": exc.message}}
        click.echo(_dump(out))


@cli.command("search")
@click.argument("query", required=False)
@index_option
@click.option("--limit", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--page", type=click.IntRange(1, 1000), default=1, show_default=True)
@click.option("--sort", type=click.Choice(["relevance", "date"]), default="relevance")
@click.option("--prefecture", multiple=True, help="filter by prefecture (repeatable)")
@click.option("--category", multiple=True, help="filter by category (repeatable)")
@click.option("--year", multiple=True, help="filter by fiscal year: 2023, 令和5年度 ...")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--explain", is_flag=True, help="show how the query was read, then search")
@click.option("--batch", type=click.Path(allow_dash=True),
              help='JSON lines {"id":..., "q":...} in, one result line out per line')
@click.option("--synonyms", default=_DEFAULTS["SYNONYMS"], show_default=True,
              help=setting("SYNONYMS").help)
def search_cmd(query, index_dir, limit, page, sort, prefecture, category, year, as_json,
               explain, batch, synonyms):
    """Search the index for QUERY."""
    from .index import OpenIndex
    from .search import matched_label, plan_query, search
    from .synonyms import load as load_synonyms

    synonyms = load_synonyms(synonyms or None)

    filters = {"prefecture": list(prefecture), "category": list(category), "year": list(year)}
    filters = {k: v for k, v in filters.items() if v}
    if batch:
        ix = OpenIndex(index_dir)

        def answer(item):
            q = item.get("q")
            if not isinstance(q, str):
                raise BadRequest("'q' must be a string")
            res = search(ix, q, per_page=limit, snippets=False, synonyms=synonyms)
            return {"hits": [{"id": h["id"], "score": h["score"], "title": h["title"]}
                             for h in res["hits"]]}

        run_batch(batch, answer, ("q",))
        return
    if query is None:
        raise BadRequest("検索語を指定してください。", hint='kb search "窓口 委託"')
    if explain:
        plan = plan_query(query, filters, synonyms=synonyms).describe()
        click.echo(_dump(plan) if as_json else _explain_text(plan))
    ix = OpenIndex(index_dir)
    res = search(ix, query, filters=filters, page=page, per_page=limit, sort=sort,
                 explain=explain, synonyms=synonyms)
    if as_json:
        click.echo(_dump({"ok": True, **res}))
        return
    for note in ([res["relaxed"]["message"]] if res["relaxed"] else []) + [
            e["message"] for e in res["expansions"]] + [s["message"] for s in res["suggestions"]]:
        click.echo(note)
    click.echo(f"{res['total']} 件 ({res['took_ms']} ms)")
    for n, hit in enumerate(res["hits"], (page - 1) * limit + 1):
        where = " ".join(filter(None, [hit["prefecture"], hit["municipality"], hit["date"]]))
        click.echo(f"{n:>3}. {hit['title']}  [{hit['id']}] {hit['score']:.2f}")
        if where:
            click.echo(f"     {where}")
        click.echo(f"     {hit['snippet']}")
        if hit.get("matched"):
            click.echo(f"     一致: {matched_label(hit['matched'])}")


def _explain_text(plan: dict) -> str:
    lines = ["query plan:"]
    for c in plan["clauses"]:
        kind = "phrase" if c["phrase"] else "words"
        lines.append(f"  {kind}: {c['text']} -> {' '.join(c['terms'])}")
        for word in c.get("words", []):
            others = [f"{a['text']} ({a['via']})" for a in word["alternatives"][1:]]
            if others:
                lines.append(f"    {word['text']} also as: {', '.join(others)}")
    if plan.get("question"):
        lines.append("  read as a question: any word, ranked"
                     + (f"; ignored {' '.join(plan['ignored'])}" if plan.get("ignored") else ""))
    for c in plan["excluded"]:
        lines.append(f"  exclude: {c['text']} -> {' '.join(c['terms'])}")
    for name, values in plan["filters"].items():
        lines.append(f"  filter {name}: {', '.join(map(str, values))}")
    lines.append(f"  whoosh: {plan['whoosh']}")
    return "\n".join(lines)


# --- related ---------------------------------------------------------------------------


@cli.command("related")
@click.argument("article_id", required=False)
@index_option
@click.option("--text", help='free text (a draft) to find related articles for; "-" reads stdin')
@click.option("--limit", type=click.IntRange(1, 20), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--batch", type=click.Path(allow_dash=True),
              help='JSON lines {"id": ARTICLE_ID} in, one result line out per line')
def related_cmd(article_id, index_dir, text, limit, as_json, batch):
    """Show the articles related to ARTICLE_ID (or to --text), with the shared terms."""
    from .related import open_model

    if sum(x is not None for x in (article_id, text, batch)) != 1:
        raise BadRequest("記事ID、--text、--batch のどれか一つを指定してください。",
                         hint='kb related ARTICLE_ID | kb related --text "..." | '
                              "kb related --batch FILE.jsonl")
    model = open_model(index_dir)
    if batch:
        def answer(item):
            wanted = item["id"]
            if isinstance(wanted, int) and not isinstance(wanted, bool):
                wanted = str(wanted)  # ids are strings; 123 and "123" name the same article
            if not isinstance(wanted, str):
                raise BadRequest("'id' must be a string")
            found = model.for_article(wanted, limit)
            return {"related": [{"id": r["id"], "score": r["score"], "terms": r["terms"]}
                                for r in found["related"]]}

        run_batch(batch, answer, ("id",))
        return
    if text is not None:
        res = model.for_text(sys.stdin.read() if text == "-" else text, limit)
    else:
        res = model.for_article(article_id, limit)
    if as_json:
        click.echo(_dump({"ok": True, **res}))
        return
    if "title" in res:
        click.echo(f"「{res['title']}」[{res['id']}] の関連事例")
    if not res["related"]:
        click.echo("関連事例は見つかりませんでした。")
    for n, hit in enumerate(res["related"], 1):
        click.echo(f"{n:>3}. {hit['title']}  [{hit['id']}] {hit['score']:.3f}")
        if hit["terms"]:
            click.echo(f"     共通する語: {'、'.join(hit['terms'])}")
    if res["duplicates"]:
        click.echo("ほぼ同じ内容の記事（関連事例には含めていません）:")
        for hit in res["duplicates"]:
            click.echo(f"   - {hit['title']}  [{hit['id']}] {hit['score']:.3f}")


# --- ask -------------------------------------------------------------------------------


@cli.command("ask")
@click.argument("question", required=False)
@index_option
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--batch", type=click.Path(allow_dash=True),
              help='JSON lines {"id":..., "q":...} in, one answer line out per line')
def ask_cmd(question, index_dir, as_json, batch):
    """Answer QUESTION from the articles, with its sentence and source, or say none is found."""
    from .index import OpenIndex
    from .qa import ask, batch_answer

    if (question is None) == (batch is None):
        raise BadRequest("質問か --batch のどちらか一つを指定してください。",
                         hint='kb ask "白井市では来庁者の待ち時間がどれだけ短くなった？"')
    ix = OpenIndex(index_dir)
    if batch:
        run_batch(batch, lambda item: batch_answer(ix, item["q"]), ("q",))
        return
    res = ask(ix, question)
    if as_json:
        click.echo(_dump({"ok": True, **res}))
        return
    if not res["answered"]:
        click.echo(f"該当する回答が見つかりませんでした（確からしさ {res['confidence']:.2f}）。")
        for n, hit in enumerate(res["hits"][:3], 1):
            click.echo(f"{n:>3}. {hit['title']}  [{hit['id']}]")
        return
    a = res["answer"]
    click.echo(f"回答: {a['text']}  （確からしさ {res['confidence']:.2f}）")
    click.echo(f"根拠: {a['sentence']}")
    click.echo(f"出典: {a['title']}  [{a['article_id']}] {a['start']}-{a['end']}文字目")


# --- serve ----------------------------------------------------------------------------


@cli.command("serve")
@index_option
@click.option("--host", default=_DEFAULTS["HOST"], show_default=True, help=setting("HOST").help)
@click.option("--port", type=click.IntRange(1, 65535), default=_DEFAULTS["PORT"],
              show_default=True, help=setting("PORT").help)
@click.option("--workers", type=click.IntRange(1, 64), default=_DEFAULTS["WORKERS"],
              show_default=True, help=setting("WORKERS").help)
def serve_cmd(index_dir, host, port, workers):
    """Serve the web UI and JSON API with gunicorn (a production WSGI server)."""
    from .index import OpenIndex
    from web.server import serve

    OpenIndex(index_dir).close()  # fail now, with a hint, if the index is missing
    from .errors import Busy
    from .store import Store

    try:
        finished = Store(_DEFAULTS["CORPUS_DIR"], index_dir, _DEFAULTS["LOCK_TIMEOUT"]).recover()
    except Busy:  # a writer is at work; the next write finishes any interrupted one
        finished = []
    except OSError as exc:  # a read-only copy (kb publish): no writer runs here
        click.echo(f"read-only index folder ({exc.strerror}): serving without write "
                   "recovery", err=True)
        finished = []
    if finished:  # a writer was killed mid-write: its files and the index agree again
        click.echo(f"recovered an interrupted write of {', '.join(finished)}", err=True)
    click.echo(f"serving {Path(index_dir).resolve()} on http://{host}:{port}/", err=True)
    serve(index_dir, host, port, workers)


# --- publish --------------------------------------------------------------------------


@cli.command("publish")
@click.argument("src_index", type=click.Path(file_okay=False))
@click.argument("dest_index", type=click.Path(file_okay=False))
@click.option("--quiet", is_flag=True, help="print only the summary and problems")
def publish_cmd(src_index, dest_index, quiet):
    """Copy SRC_INDEX's current generation into DEST_INDEX and swap it in atomically.

    Servers reading DEST_INDEX switch to it on their next request; the generation they
    served before is kept for requests still running on it. Build once, publish to the
    folder of every server (see "Serving from several machines" in README.md).
    """
    from .publish import publish

    result = publish(src_index, dest_index, lock_timeout=max(60, _DEFAULTS["LOCK_TIMEOUT"]),
                     show_progress=not quiet)
    click.echo(result.summary())


def main() -> None:
    """Entry point of the `kb` console script."""
    cli(prog_name="kb")


if __name__ == "__main__":
    main()
