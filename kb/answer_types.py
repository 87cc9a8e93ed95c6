"""What a question asks for, and what kind of thing a piece of text is.

`read_question` finds the interrogative (何・いつ・どこ・誰・いくら・どれだけ・なぜ ...),
the word that narrows it (何*年*, どの*会社*, 「…の*気団*は？」) and from both the
expected answer type; `span_types` says which types a candidate answer could be
(number + unit, date incl. 令和 years, money, person, place, organisation, noun).
Both work on `kb.analysis` morphs, so Q&A sees the same words as search.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .analysis import Morph, analyze

# Expected answer types (a question asks for one) and candidate types (a span may be several).
DATE = "date"
QUANTITY = "quantity"
MONEY = "money"
PERSON = "person"
PLACE = "place"
ORGANIZATION = "organization"
NOUN = "noun"
REASON = "reason"
METHOD = "method"
ANSWER_TYPES = (DATE, QUANTITY, MONEY, PERSON, PLACE, ORGANIZATION, NOUN, REASON, METHOD)
# Types a candidate span can carry; PROPER is a proper noun Sudachi could not place.
PROPER = "proper"
NUMBER = "number"
SPAN_TYPES = (DATE, QUANTITY, MONEY, PERSON, PLACE, ORGANIZATION, PROPER, NUMBER)

# Interrogatives by their term (kb.analysis normalized form), and what each asks for.
_WH_TERMS = {
    "何": NOUN, "なに": NOUN, "なん": NOUN, "どれ": NOUN, "どちら": NOUN, "どっち": NOUN,
    "どの": NOUN, "どんな": NOUN, "どういう": NOUN, "如何": METHOD,
    "いつ": DATE, "何時": DATE,
    "どこ": PLACE, "何処": PLACE,
    "誰": PERSON, "だれ": PERSON, "どなた": PERSON, "何者": PERSON,
    "幾ら": MONEY, "いくら": MONEY,
    "幾つ": QUANTITY, "いくつ": QUANTITY,
    "何故": REASON, "なぜ": REASON, "どうして": REASON,
    "どう": METHOD, "どうやって": METHOD,
}
# Words after どれ/どの that ask "how much": どれだけ, どれくらい, どの程度 ...
_HOW_MUCH = ("だけ", "くらい", "ぐらい", "ほど", "程")
_HOW_MUCH_HEADS = {"程度", "位", "くらい", "ぐらい"}
# どこ asked of an actor (受託したのはどこ？) asks for an organisation, not a place.
_ACTOR_VERBS = {"受託", "委託", "運営", "開設", "設立", "契約", "請け負う", "担当", "落札", "受注",
                "提供", "開発", "製造", "販売", "経営", "出資", "任す", "選定", "指定", "実施",
                "支援", "協定", "締結", "採用", "発表", "買収", "参入"}
_REASON_HEADS = {"理由", "原因", "目的", "為", "きっかけ", "背景"}
_METHOD_HEADS = {"方法", "手段", "仕組み", "やり方", "手順", "形"}

DATE_UNITS = {"年", "月", "日", "世紀", "年代", "年度", "時", "曜日", "時代", "時期", "頃",
              "期", "年頃", "季節", "日付", "年月日", "時点", "時刻", "元号"}
DURATION_UNITS = {"分", "秒", "時間", "日間", "年間", "か月", "ヶ月", "カ月", "箇月", "週間",
                  "ヵ月", "ケ月", "月間", "週"}
MONEY_UNITS = {"円", "ドル", "ユーロ", "元", "ポンド", "ウォン", "万円", "億円", "銭", "両",
               "金額", "費用", "額", "価格", "値段", "予算", "料金", "料", "コスト", "税"}
PLACE_HEADS = {"県", "市", "町", "村", "区", "国", "州", "島", "地方", "地域", "都市", "場所",
               "川", "山", "湖", "海", "半島", "大陸", "国家", "都道府県", "府", "郡", "駅",
               "地区", "地点", "所", "港", "空港", "街", "都"}
ORG_HEADS = {"会社", "企業", "団体", "組織", "法人", "機関", "党", "政党", "大学", "省", "庁",
             "事業者", "業者", "社", "協会", "機構", "委員会", "組合", "財団", "チーム", "球団",
             "局", "部", "センター", "学校", "銀行", "グループ", "メーカー", "自治体", "役所",
             "国会", "議会", "政府", "事務所", "研究所", "病院", "施設", "事業所", "株式会社"}
PERSON_HEADS = {"人物", "人", "者", "氏", "選手", "監督", "作者", "著者", "作家", "王",
                "皇帝", "天皇", "首相", "大統領", "社長", "市長", "知事", "名前", "誰"}
# Legal forms that make what follows them a name (株式会社あおしおビジネスサービス).
_ORG_FORMS = ("会社", "法人", "組合", "財団", "機構", "JV", "ＪＶ")
LEGAL_FORMS = frozenset({"株式会社", "有限会社", "合同会社", "一般社団法人", "一般財団法人",
                         "公益社団法人", "公益財団法人", "社会福祉法人", "npo法人", "特定非営利活動法人",
                         "医療法人", "学校法人", "社団法人", "財団法人", "独立行政法人"})
ERAS = ("令和", "平成", "昭和", "大正", "明治", "慶応", "元治", "文久", "天保")
_SEASONS = {"春", "夏", "秋", "冬", "上旬", "中旬", "下旬", "初旬", "初頭", "末", "前半",
            "後半", "半ば", "ごろ", "頃", "以降", "以前", "明け", "末期", "初期", "中期"}
_COUNTER_SYMBOLS = {"%", "％", "km", "m", "kg", "g", "cm", "mm", "ha", "t", "l", "ml",
                    "km2", "m2", "℃", "°"}
# Counters a 何- question can end in; Sudachi tags only some of them 助数詞.
COUNTERS = {"人", "名", "回", "件", "個", "倍", "割", "番", "度", "位", "歳", "才", "条", "種",
            "種類", "冊", "本", "枚", "台", "匹", "頭", "羽", "箇国", "か国", "カ国", "万", "億",
            "点", "票", "議席", "社", "校", "店", "戸", "世帯", "軒", "階", "巻", "話", "勝", "敗",
            "段", "級", "株", "つ", "箇所", "か所", "カ所", "メートル", "キロ", "トン", "グラム",
            "センチ", "ミリ", "パーセント", "ポイント", "期", "代", "隻", "機", "両", "体", "室",
            "局", "曲", "作", "駅", "球", "打", "試合", "部", "周", "県", "州"}
_DIGITS = re.compile(r"^[0-9.,]+$")
_ERA_YEAR = re.compile(r"(令和|平成|昭和|大正|明治)\s*([0-9０-９]{1,2}|元)\s*年")
_QUESTION_END = re.compile(r"[?？]\s*$")
# Interrogatives as typed, for recognising a question in the search box.
_WH_SURFACE = re.compile(r"何|いつ|どこ|何処|誰|だれ|いくら|幾ら|いくつ|どれ|どの|どんな|どう|なぜ|何故")


@dataclass
class Question:
    """A question read for Q&A: its words, where the interrogative sits, what it asks for."""

    text: str
    units: list[Morph]  # C units (query mode), particles and symbols left out
    gaps: list[str]  # gaps[i]: the text before units[i]; gaps[-1] trails the last unit
    answer_type: str
    wh: int | None  # index in units of the interrogative (None: a 「…は？」 question)
    head: Morph | None = None  # the noun that narrows the interrogative (何年, どの会社)
    unit: str | None = None  # the counter an answer should carry (何人 -> 人)
    content: list[int] = field(default_factory=list)  # units that are not the interrogative

    @property
    def focus(self) -> int:
        """Where the answer would sit in the question (the interrogative, else the end)."""
        return self.wh if self.wh is not None else len(self.units)

    def describe(self) -> dict:
        """Plain data for --explain and the API."""
        return {"answer_type": self.answer_type,
                "interrogative": self.units[self.wh].surface if self.wh is not None else None,
                "head": self.head.surface if self.head is not None else None,
                "unit": self.unit,
                "terms": [self.units[i].text for i in self.content]}


def looks_like_question(text: str) -> bool:
    """True when typed text reads as a question: ends with ？/? or has an interrogative."""
    text = (text or "").strip()
    if not text:
        return False
    return bool(_QUESTION_END.search(text) or _WH_SURFACE.search(text))


def is_counter(m: Morph) -> bool:
    """True for a counter or unit word (件, 人, 円, ％, km ...)."""
    return ("助数詞" in m.pos[1:3] or m.pos[2] == "助数詞可能" or m.surface in COUNTERS
            or m.surface.lower() in _COUNTER_SYMBOLS)


def is_number(m: Morph) -> bool:
    """True for a number (Sudachi joins 21万7,000 into one)."""
    return m.pos[1] == "数詞" or bool(_DIGITS.match(m.text))


def _is_nominal(m: Morph) -> bool:
    return m.pos[0] in ("名詞", "接尾辞") and m.pos[1] != "数詞"


def _gaps(text: str, units: list[Morph]) -> list[str]:
    out, pos = [], 0
    for m in units:
        out.append(text[pos:m.start])
        pos = m.end
    out.append(text[pos:])
    return out


def _wh_type(units: list[Morph], gaps: list[str], i: int) -> str | None:
    """Return the answer type an interrogative at units[i] asks for, or None if it is not one."""
    m = units[i]
    term, surface = m.text, m.surface
    if term == "何" or surface in ("何", "なに", "なん"):
        return NOUN
    if surface.startswith("何") and surface not in ("何故", "何処", "何者") and len(surface) > 1:
        return QUANTITY  # 何人, 何回, 何分: one word in Sudachi; narrowed by its counter
    if term in ("どれ", "どの", "どちら") and (gaps[i + 1].startswith(_HOW_MUCH) or (
            i + 1 < len(units) and gaps[i + 1] == "" and units[i + 1].text in _HOW_MUCH_HEADS)):
        return QUANTITY
    if term in _WH_TERMS:
        return _WH_TERMS[term]
    if surface in _WH_TERMS:
        return _WH_TERMS[surface]
    if surface.startswith(("どのよう", "どのよ")):
        return METHOD
    return None


def _refine(qtype: str, head: Morph | None, units: list[Morph], wh: int | None
            ) -> tuple[str, str | None]:
    """Narrow an answer type by the head noun: 何+年 is a date, どの+会社 an organisation."""
    if head is None:
        return qtype, None
    # the surface first: Sudachi normalises 歳 to 年
    h = head.surface if head.surface in COUNTERS or head.surface in DURATION_UNITS else head.text
    if qtype not in (NOUN, QUANTITY, PLACE, PERSON):
        return qtype, None
    if h in DATE_UNITS:
        return DATE, h
    if h in DURATION_UNITS:
        return QUANTITY, h
    if h in ("円", "ドル", "ユーロ", "万円", "億円", "ポンド", "ウォン"):
        return MONEY, h
    if h in MONEY_UNITS:
        return MONEY, None
    if h in PLACE_HEADS and h != "所" or head.pos[2] == "地名":
        return PLACE, None
    if h in ORG_HEADS and h not in ("部", "局"):
        return ORGANIZATION, None
    if is_counter(head) and qtype in (QUANTITY, NOUN):
        return QUANTITY, h
    if qtype == QUANTITY and wh is not None and units[wh].surface.startswith("何"):
        qtype = NOUN  # 何色, 何語: "which", not "how many"
    if h in _REASON_HEADS:
        return REASON, None
    if h in _METHOD_HEADS:
        return METHOD, None
    if h in PERSON_HEADS:
        return PERSON, None
    return qtype, None


def read_question(text: str) -> Question:
    """Analyse a question: its units, the interrogative, the expected answer type."""
    text = unicodedata.normalize("NFC", text or "").strip()
    units = [m for m in analyze(text, "query")]
    gaps = _gaps(text, units)
    wh = None
    qtype = NOUN
    for i in range(len(units)):
        t = _wh_type(units, gaps, i)
        if t is not None:
            wh, qtype = i, t
            break
    head = None
    if wh is not None:
        w = units[wh]
        nxt = wh + 1
        if w.surface.startswith("何") and len(w.surface) > 1 and qtype == QUANTITY:
            # 何人 / 何時: the counter is inside the word
            rest = analyze(w.surface[1:], "query")
            if rest:
                r = rest[0]
                head = r._replace(start=w.start + 1 + r.start, end=w.start + 1 + r.end)
        elif (w.text in ("どの", "どんな", "どういう", "何", "どれ") and nxt < len(units)
              and units[nxt].text in ("よう", "様") and w.text == "どの"):
            qtype = METHOD
        elif (w.text in ("何", "どの", "どんな", "どういう") and nxt < len(units)
              and _is_nominal(units[nxt]) and (gaps[nxt] == "" or w.text != "何")):
            # 何年 / どの会社: the noun written right after the interrogative
            head = units[nxt]
        elif qtype in (NOUN, PLACE, PERSON) and wh > 0 and gaps[wh] in ("の", "は", "とは"):
            # 「…の何」「気団は何」: the noun before the interrogative names the kind
            prev = units[wh - 1]
            if _is_nominal(prev):
                head = prev
    else:
        # 「…気団は？」: the last noun names what is asked for
        for m in reversed(units):
            if _is_nominal(m):
                head = m
                break
    qtype, unit = _refine(qtype, head, units, wh)
    if qtype == PLACE and any(m.text in _ACTOR_VERBS for m in units):
        qtype = ORGANIZATION
    if qtype == QUANTITY and unit is None:
        # どれだけ短くなった / 何倍: take the unit from what is measured
        for m in units:
            if m.text in ("時間", "期間", "待ち", "日数"):
                unit = "時間"
                break
            if m.text in MONEY_UNITS:
                qtype = MONEY
                break
    # the interrogative and the counter written onto it (何*年*) are not content words
    skip = {wh}
    if wh is not None and head is not None and wh + 1 < len(units) and \
            units[wh + 1] is head and gaps[wh + 1] == "":
        skip.add(wh + 1)
    content = [i for i in range(len(units)) if i not in skip]
    return Question(text, units, gaps, qtype, wh, head, unit, content)


# --- candidate spans -----------------------------------------------------------------


def span_unit(units: list[Morph]) -> str | None:
    """Return the counter that follows the first number in a span (1,340件 -> 件)."""
    for k, m in enumerate(units):
        if is_number(m):
            for n in units[k + 1:k + 3]:
                if is_counter(n) or n.text in MONEY_UNITS or n.text in DURATION_UNITS:
                    return n.text
                if not is_number(n):
                    break
    return None


def span_types(units: list[Morph], text: str) -> set[str]:
    """Return the types a candidate answer span can be (empty: a plain noun phrase)."""
    out: set[str] = set()
    has_number = any(is_number(m) for m in units)
    unit = span_unit(units)
    last = units[-1]
    if has_number:
        out.add(NUMBER)
        if unit in MONEY_UNITS:
            out.add(MONEY)
        elif unit in DATE_UNITS:
            out.add(DATE)
        else:
            out.add(QUANTITY)
            if unit in DURATION_UNITS:
                out.add(DATE)  # a period answers いつ too (3か月)
    if any(m.text in ERAS or m.surface in ERAS for m in units) or _ERA_YEAR.search(text):
        out.add(DATE)
    if any(m.text in _SEASONS for m in units) and (has_number or len(units) <= 2):
        out.add(DATE)
    if any(m.pos[1:3] == ("固有名詞", "人名") for m in units):
        out.add(PERSON)
    if any(m.text.endswith(_ORG_FORMS) for m in units):
        out.update((ORGANIZATION, PROPER))  # 株式会社あおしお…: a company's own name
    elif last.text in ORG_HEADS:
        out.add(ORGANIZATION)
    elif any(m.pos[1:3] == ("固有名詞", "地名") for m in units) or (
            last.text in PLACE_HEADS and len(units) > 1):
        out.add(PLACE)
    if any(m.pos[1:3] == ("固有名詞", "一般") for m in units) and not out & {PERSON, PLACE}:
        out.add(PROPER)
    return out


def era_year(text: str) -> int | None:
    """Return the Gregorian year of the first era year in text (令和5年 -> 2023)."""
    from .years import era_to_year

    m = _ERA_YEAR.search(unicodedata.normalize("NFKC", text))
    return era_to_year(m.group(1), m.group(2)) if m and m.group(1) in ("令和", "平成", "昭和") \
        else None
