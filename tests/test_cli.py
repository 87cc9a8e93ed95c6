"""The `kb` command through click's runner, and `kb serve` as a real gunicorn process."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kb.cli import cli


def test_index_command_builds_and_reports(runner, corpus_dir, tmp_path):
    out = tmp_path / "ix"
    result = runner.invoke(cli, ["index", str(corpus_dir), "--index", str(out), "--procs", "1"])
    assert result.exit_code == 0, result.output
    assert "indexed" in result.output and (out / "meta.json").is_file()


def test_index_command_reports_broken_files_and_goes_on(runner, corpus_dir, tmp_path):
    broken = tmp_path / "src"
    broken.mkdir()
    (broken / "bad.md").write_text("no front matter here", encoding="utf-8")
    (broken / "good.txt").write_text("良い記事\n窓口の委託について。", encoding="utf-8")
    result = runner.invoke(cli, ["index", str(broken), "--index", str(tmp_path / "ix")])
    assert result.exit_code == 0, result.output
    assert "bad.md" in result.output and "1 articles" in result.output


def test_index_command_refuses_an_empty_corpus(runner, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli, ["index", str(empty), "--index", str(tmp_path / "ix")])
    assert result.exit_code == 1
    assert "Error:" in result.output and not (tmp_path / "ix" / "meta.json").exists()


def test_search_text_and_json(runner, index_dir):
    result = runner.invoke(cli, ["search", "窓口", "--index", str(index_dir)])
    assert result.exit_code == 0 and "件" in result.output
    result = runner.invoke(cli, ["search", "窓口", "--index", str(index_dir), "--json",
                                 "--limit", "2"])
    data = json.loads(result.output)
    assert data["ok"] is True and 1 <= len(data["hits"]) <= 2


def test_search_explain_shows_the_plan(runner, index_dir):
    result = runner.invoke(cli, ["search", '"窓口業務" -秋田 year:令和5年度', "--index",
                                 str(index_dir), "--explain"])
    assert result.exit_code == 0
    assert "phrase: 窓口業務" in result.output
    assert "exclude: 秋田" in result.output and "filter year: 2023" in result.output


def test_search_missing_index_is_one_line_with_hint(runner, tmp_path):
    result = runner.invoke(cli, ["search", "窓口", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert result.output.startswith("Error:") and "hint:" in result.output
    assert "Traceback" not in result.output


def test_search_batch_contract(runner, index_dir, tmp_path):
    batch = tmp_path / "q.jsonl"
    batch.write_text("\n".join([
        json.dumps({"id": "a", "q": "窓口"}, ensure_ascii=False),
        "not json",
        json.dumps({"id": "b"}),
        json.dumps({"id": "c", "q": ""}),
        "",
        json.dumps({"id": 7, "q": "委託"}, ensure_ascii=False),
    ]) + "\n", encoding="utf-8")
    result = runner.invoke(cli, ["search", "--batch", str(batch), "--index", str(index_dir),
                                 "--limit", "3"])
    assert result.exit_code == 0
    lines = [json.loads(x) for x in result.output.splitlines()]
    assert [x["id"] for x in lines] == ["a", None, "b", "c", 7]
    assert lines[0]["hits"] and set(lines[0]["hits"][0]) == {"id", "score", "title"}
    assert len(lines[4]["hits"]) <= 3
    for bad in lines[1:4]:
        assert set(bad["error"]) == {"code", "message"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kb_serve_answers_over_http(index_dir, tmp_path):
    """`kb serve` starts gunicorn; a real HTTP client gets JSON back."""
    port = _free_port()
    kb = Path(sys.executable).with_name("kb")
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([str(kb), "serve", "--index", str(index_dir), "--port", str(port),
                             "--workers", "1"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.load(r)["ok"] is True
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("kb serve did not start: "
                                + (tmp_path / "serve.log").read_text(errors="replace"))
                time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/api/search?q=%E7%AA%93%E5%8F%A3"  # 窓口
        with urllib.request.urlopen(url, timeout=5) as r:
            data = json.load(r)
        assert data["ok"] is True and data["total"] >= 1
        assert r.headers["Server"].startswith("gunicorn")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
