"""Train the Q&A models on JSQuAD dev and write them to kb/qa_weights.py.

Small models over the hand-built features of kb/qa_features.py and kb/qa_spans.py:
  sentence    logistic regression: does this sentence hold the answer?
  span        logistic regression: is this span exactly the answer? (spans of the gold
              sentences, and of the best-ranked wrong ones as negatives)
  joint       gradient-boosted trees over a sentence's features and its best span's:
              which of the best sentences to answer from
  confidence  logistic regression: is the returned sentence right? Trained on the questions
              asked against their own articles (positive where right) and against a
              disjoint set of articles (always wrong), with joint scores cross-fitted so
              they look like those of unseen questions.

Usage (from the repository root):
    .venv/bin/python -m bench.qa_train [--workdir DIR] [--out kb/qa_weights.py]
The shipped model is trained on all 59 articles; bench/qa_jsquad.py reports figures
from 2-fold cross-validation over articles, never from this model.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from bench import datasets, metrics
from kb.corpus import Article
from kb.errors import KBError
from kb.index import OpenIndex, build
from kb.qa import SENTENCES, confidence_features, gather, rank_answers
from kb.qa_spans import span_candidates
from kb.qa_model import Forest, dot, sigmoid

REPO = Path(__file__).resolve().parents[1]
TARGET_FALSE_ANSWER_RATE = 0.07  # chosen on training data, leaving room below the 0.10 target
SPAN_NEGATIVE_SENTENCES = 3  # wrong sentences, best-ranked first, whose spans train as negatives
C_VALUES = {"sentence": 1.0, "span": 1.0, "confidence": 1.0}
FOREST = {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31, "min_samples_leaf": 40,
          "random_state": 0}


# --- data --------------------------------------------------------------------------------


def split_articles(paragraphs: list[dict], seed_order: bool = True) -> tuple[set[str], set[str]]:
    """Split the Wikipedia articles into two halves (alternating in file order)."""
    titles = list(dict.fromkeys(p["article_title"] for p in paragraphs))
    return set(titles[0::2]), set(titles[1::2])


def build_index(paragraphs: list[dict], path: Path) -> OpenIndex:
    """Index paragraphs as articles (reusing a compatible index already built at path)."""
    try:
        ix = OpenIndex(path)
        if ix.doc_count() == len(paragraphs):
            return ix
        ix.close()
    except KBError:
        pass
    articles = [Article(id=p["id"], title=p["title"], body=p["body"]) for p in paragraphs]
    build(articles, path, procs=1, show_progress=False)
    return OpenIndex(path)


def gathered(ix: OpenIndex, questions: list[dict], label: str = "") -> list:
    """Run retrieval and sentence features for each question."""
    t0 = time.perf_counter()
    out = [gather(ix, q["q"]) for q in questions]
    if label:
        print(f"  [{time.perf_counter() - t0:6.1f} s] gathered {len(out)} {label}", flush=True)
    return out


def left_out_runs(paragraphs: list[dict], questions: list[dict], titles: set[str],
                  workdir: Path, name: str) -> tuple[list, list[dict]]:
    """Ask each question of an index of the other articles in `titles`, its own left out.

    These are the unanswerable examples the confidence model learns from: the same
    questions, an index of about the same size as a deployment's, minus the one
    article that answers them.
    """
    ordered = [t for t in dict.fromkeys(p["article_title"] for p in paragraphs) if t in titles]
    runs, asked = [], []
    t0 = time.perf_counter()
    for n, title in enumerate(ordered):
        mine = [q for q in questions if q["article_title"] == title]
        if not mine:
            continue
        others = [p for p in paragraphs if p["article_title"] in titles and
                  p["article_title"] != title]
        ix = build_index(others, workdir / f"{name}-without-{n:02d}")
        runs += [gather(ix, q["q"]) for q in mine]
        asked += mine
        ix.close()
    print(f"  [{time.perf_counter() - t0:6.1f} s] gathered {len(asked)} questions of "
          f"{name}, each without its own article", flush=True)
    return runs, asked


def sentence_text(p, s) -> str:
    return p.body[s.start:s.end]


def holds(text: str, answers: list[str]) -> bool:
    """True when a gold answer lies inside the text (SentHit's test)."""
    return bool(metrics.answer_in_span(text, answers))


# --- fitting ------------------------------------------------------------------------------


def fit(rows: list[dict], labels: list[int], c: float) -> dict[str, float]:
    """Fit a logistic regression on sparse feature dicts; return {feature: weight}."""
    vec = DictVectorizer(sparse=True)
    x = vec.fit_transform(rows)
    y = np.asarray(labels)
    if y.min() == y.max():
        raise SystemExit("qa_train: only one class in the training labels")
    model = LogisticRegression(C=c, max_iter=3000, fit_intercept=False)
    model.fit(x, y)
    return {name: round(float(w), 6) for name, w in
            zip(vec.get_feature_names_out(), model.coef_[0]) if abs(w) > 1e-6}


def fit_forest(rows: list[dict], labels: list[int]) -> dict:
    """Fit gradient-boosted trees on feature dicts; return the spec kb.qa_model.Forest reads."""
    vec = DictVectorizer(sparse=False)
    x = vec.fit_transform(rows)
    y = np.asarray(labels)
    gb = HistGradientBoostingClassifier(**FOREST)
    gb.fit(x, y)
    names = list(vec.get_feature_names_out())
    trees = []
    for (predictor,) in gb._predictors:
        nodes = predictor.nodes
        tree = []
        for node in nodes:
            if node["is_leaf"]:
                tree.append([round(float(node["value"]), 7)])
            else:
                tree.append([int(node["feature_idx"]), float(node["num_threshold"]),
                             int(node["left"]), int(node["right"])])
        trees.append(tree)
    used = sorted({node[0] for tree in trees for node in tree if len(node) == 4})
    remap = {old: new for new, old in enumerate(used)}
    for tree in trees:
        for node in tree:
            if len(node) == 4:
                node[0] = remap[node[0]]
    spec = {"features": [names[i] for i in used],
            "baseline": float(np.ravel(gb._baseline_prediction)[0]), "trees": trees}
    # the exported trees must score exactly as scikit-learn does
    sample = slice(0, min(len(rows), 2000))
    mine = Forest(spec).decision(rows[sample])
    if not np.allclose(mine, gb.decision_function(x[sample]), atol=1e-4):
        raise SystemExit("qa_train: exported trees disagree with scikit-learn")
    return spec


def _inner_fold(q: dict) -> int:
    """Which inner half of the training articles a question belongs to (for cross-fitting)."""
    return zlib.crc32(q.get("article_title", q["id"]).encode("utf-8")) % 2


def train(pos_runs: list, pos_questions: list[dict], neg_runs: list,
          verbose: bool = True) -> dict:
    """Train all four models from gathered runs; return the weights dict kb.qa uses."""
    model: dict = {}
    # 1. sentences: every sentence of the retrieved articles
    rows, labels = [], []
    for c, q in zip(pos_runs, pos_questions):
        for p, s, _, feats in c.sentences:
            rows.append(feats)
            labels.append(int(holds(sentence_text(p, s), q["answers"])))
    model["sentence"] = fit(rows, labels, C_VALUES["sentence"])
    if verbose:
        print(f"  sentence model: {len(rows)} rows, {sum(labels)} positive", flush=True)
    # 2. spans: candidates of the sentences that hold the answer, and of the best-ranked
    # sentences that do not (so span scores compare across sentences)
    rows, labels = [], []
    for c, q in zip(pos_runs, pos_questions):
        ranked = sorted(c.sentences, key=lambda r: -dot(model["sentence"], r[3]))
        for n, (p, s, matches, _) in enumerate(ranked):
            right = holds(sentence_text(p, s), q["answers"])
            if not right and n >= SPAN_NEGATIVE_SENTENCES:
                continue
            for sp in span_candidates(c.question, c.weights, p, s, matches):
                rows.append(sp.features)
                labels.append(int(right and metrics.exact_match(sp.text, q["answers"])))
    model["span"] = fit(rows, labels, C_VALUES["span"])
    if verbose:
        print(f"  span model: {len(rows)} rows, {sum(labels)} positive", flush=True)
    # 3. joint: trees over the best sentences once their spans are scored
    model["joint"] = {"j_sent": 1.0}
    rows, labels, folds = [], [], []
    for c, q in zip(pos_runs, pos_questions):
        answers, _ = rank_answers(c, model, SENTENCES)
        for a in answers:
            rows.append(a["joint_feats"])
            labels.append(int(holds(sentence_text(a["passage"], a["sentence"]), q["answers"])))
            folds.append(_inner_fold(q))
    model["joint"] = fit_forest(rows, labels)
    if verbose:
        print(f"  joint model: {len(rows)} rows, {sum(labels)} positive, "
              f"{len(model['joint']['trees'])} trees", flush=True)
    # joint models that never saw a question's own article, so that the confidence
    # model learns from scores like those it will meet on new questions
    inner = []
    for k in (0, 1):
        keep = [i for i, f in enumerate(folds) if f != k]
        inner.append(dict(model, joint=fit_forest([rows[i] for i in keep],
                                                  [labels[i] for i in keep])))
    # 4. confidence: the winning answer, right or wrong, answerable or not
    rows, labels, answerable_flags = [], [], []
    for runs, questions, answerable in ((pos_runs, pos_questions, True),
                                        *((r, qs, False) for r, qs in neg_runs)):
        for c, q in zip(runs, questions):
            feats, right = confidence_example(c, q, inner[_inner_fold(q)], answerable)
            if feats is None:
                continue
            rows.append(feats)
            labels.append(right)
            answerable_flags.append(answerable)
    model["confidence"] = fit(rows, labels, C_VALUES["confidence"])
    conf = [sigmoid(dot(model["confidence"], r)) for r in rows]
    pos_conf = [p for p, a in zip(conf, answerable_flags) if a]
    neg_conf = [p for p, a in zip(conf, answerable_flags) if not a]
    model["threshold"] = round(choose_threshold(pos_conf, neg_conf), 4)
    if verbose:
        print(f"  confidence model: {len(pos_conf)} answerable, {len(neg_conf)} unanswerable "
              f"rows; threshold {model['threshold']}", flush=True)
    return model


def confidence_example(c, q: dict, model: dict, answerable: bool):
    """The confidence features of the answer `ask` would give, and whether it is right."""
    answers, _ = rank_answers(c, model, SENTENCES)
    if not answers:
        return None, 0
    best = answers[0]
    runner = next((a for a in answers[1:] if a["span"].text != best["span"].text), None)
    feats = confidence_features(c, best, runner)
    right = answerable and holds(sentence_text(best["passage"], best["sentence"]), q["answers"])
    return feats, int(right)


def choose_threshold(pos_conf: list[float], neg_conf: list[float],
                     target: float = TARGET_FALSE_ANSWER_RATE) -> float:
    """The lowest threshold whose false-answer rate on unanswerable questions is <= target."""
    neg = np.sort(np.asarray(neg_conf))
    if not len(neg):
        return 0.5
    k = int(np.floor(len(neg) * (1 - target)))
    k = min(max(k, 0), len(neg) - 1)
    return float(neg[k]) + 1e-6


# --- the shipped model ---------------------------------------------------------------------


def write_weights(model: dict, path: Path, note: str) -> None:
    """Write the weights as a Python module (plain literals: nothing to unpickle or locate)."""
    def literal(value) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    lines = ['"""Q&A model weights: generated by bench/qa_train.py, do not edit by hand.', "",
             note, '"""', "# fmt: off", "WEIGHTS = {"]
    for name in ("sentence", "span", "confidence"):
        lines.append(f"    {name!r}: {{")
        lines += [f"        {k!r}: {v!r}," for k, v in sorted(model[name].items())]
        lines.append("    },")
    joint = model["joint"]
    lines.append("    'joint': {")
    lines.append(f"        'features': {literal(joint['features'])},")
    lines.append(f"        'baseline': {joint['baseline']!r},")
    lines.append("        'trees': [")
    lines += [f"            {literal(tree)}," for tree in joint["trees"]]
    lines.append("        ],")
    lines.append("    },")
    lines.append(f"    'threshold': {model['threshold']!r},")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """Train on all JSQuAD dev articles and write kb/qa_weights.py."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kb-qa-bench"),
                        help="where the JSQuAD indexes are built (reused when compatible)")
    parser.add_argument("--out", type=Path, default=REPO / "kb" / "qa_weights.py")
    args = parser.parse_args(argv)
    paragraphs, questions = datasets.load_jsquad()
    titles = {p["article_title"] for p in paragraphs}
    args.workdir.mkdir(parents=True, exist_ok=True)
    full = build_index(paragraphs, args.workdir / "full")
    pos = gathered(full, questions, "answerable (all articles)")
    neg = left_out_runs(paragraphs, questions, titles, args.workdir, "all")
    model = train(pos, questions, [neg])
    note = (f"Trained {dt.date.today().isoformat()} on all {len(questions)} JSQuAD dev questions "
            "(valid-v1.3),\neach also asked without its own article.\nReported figures come "
            "from bench/qa_jsquad.py's cross-validation, never from this model.")
    write_weights(model, args.out, note)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KB, {len(model['joint']['trees'])} trees, "
          f"threshold {model['threshold']})")


if __name__ == "__main__":
    sys.exit(main())
