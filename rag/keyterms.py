"""The literal terms a question stands on (names, acronyms, identifiers, file formats,
versions), and which of them a set of passages never mentions.

A question about "swiglpk" or "Path.walk()" cannot be answered from passages that never
name it, whatever else they share with it. The offline answerer refuses on such terms; the
chain asks the store whether the passages' own documents name them elsewhere (a name on the
title page of the manual the passages come from is what they are about, not a sign that
they cannot answer), or for a file format, whether any document does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePosixPath
from typing import Protocol

from rag.text import (
    STOPWORDS,
    TYPO_MIN_CHARS,
    anchors,
    another_language,
    content_words,
    english,
    english_respellings,
    everyday,
    everyday_typo,
    folded,
    in_some_form,
    joined_words,
    may_be_misspelt,
    stem_words,
    typo_of,
)
from rag.types import Passage

_FILE_NAME_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+")

_ENTITY = re.compile(r"(?<!^)(?<![.?!]\s)(?<![-\w])[A-Z][a-z]+[A-Za-z0-9]*\b")
# Acronyms, plural or joined by hyphens ("GPUs", "CNF-SAT"), standing alone: not a part of
# "RESOURCE_EXHAUSTED", "CAD.asy" or "HTTP/2", which `anchors` reads as codes.
_ACRONYM = re.compile(r"(?<![-\w./])[A-Z][A-Z0-9]+(?:-[A-Z0-9]+)*s?\b(?![-./]\w)")
# Words a question puts in capitals for emphasis ("is it OK", "why is it ALWAYS zero"), which
# no document needs to spell out; stopwords ("NOT", "ALL") are left out as well.
_EMPHASIS = frozenset({"ok", "okay", "yes", "always", "never", "must", "really", "please", "help", "every",
                       "none", "still", "even", "asap"})
# Greetings and thanks around a question ("... on windows Thanks!", "Hello there, how do I"),
# capitalised where a question without its "?" runs into them: nobody's name.
_COURTESY = frozenset({"thanks", "thank", "thx", "cheers", "regards", "hi", "hello", "hey", "sorry", "please",
                       "greetings", "pls", "plz", "btw", "fyi", "idk", "imo", "imho", "lol", "tia", "afaik",
                       "afaict", "tbh", "iirc", "fwiw", "tldr", "ymmv"})
# A file format named by its extension (".xlsx", ".toml"), standing alone: not the end of a
# file name ("setup.py", which `anchors` reads as a code) nor of "data.tar.gz". An extension
# counts where the question names it as a thing ("an .xlsx spreadsheet", "my .env file",
# "can pandas read .xlsx"), not where it calls a method or names an attribute (".get()",
# "with .get when", "the .get method", "from .utils import").
_EXTENSION = re.compile(r"(?<![\w.])\.([A-Za-z][A-Za-z0-9]{1,8})\b(?!\.?\w)(?!\s*\()")
_AS_A_THING_BEFORE = re.compile(
    r"\b(?:a|an|the|my|your|our|their|this|that|these|those|to|as|into|read|open|parse|load|write|save|export|"
    r"convert|supports?|handles?|produces?|outputs?)\s+$", re.I)
_AS_A_THING_AFTER = re.compile(
    r"^\s+(?:files?|formats?|extensions?|spreadsheets?|documents?|suffix(?:es)?)\b"
    r"|^\s*\)", re.I)  # "a MATLAB live script (.mlx)": an extension in brackets after what it names
_NOT_A_FORMAT_AFTER = re.compile(r"^\s+(?:methods?|attributes?|functions?|propert(?:y|ies)|calls?|import)\b", re.I)
# Abbreviations that read as dotted names ("e.g" from "e.g.") and are nobody's key term.
_ABBREVIATIONS = frozenset({"e.g", "i.e", "a.k.a", "a.m", "p.m"})
# A word standing alone, not part of an identifier ("pycache" of "__pycache__", "dualp" of "glp_dualp").
# A part of a hyphenated word stands alone ("colsep" of "matrix-colsep"), and so does a key
# before its "=" ("headskip="); not a flag's ("fno" of "-fno-exceptions") nor a part before a
# number ("utf" of "utf-8"); nor "mightn" of "mightn't".
_LONE_WORD = re.compile(r"(?<![\w.:/=])(?<!(?<!\w)-)[a-z]{3,}(?!'t\b)(?![\w.:/])(?!=\w)(?!-\d)")
# A name of letters then digits, in any case ("lme4", "ggplot2", "sha256", "utf8", "x86",
# "ode45", "int32", "gpt4o"), also before a hyphenated word ("base64-encoded"): no
# dictionary word, and no quantity ("2cm", "60s" start with their number). Not one letter
# and one digit, which is more often a variable or a key ("x1", "F5"); not a version
# ("v7", "v18", the start of "v7.3"), nor a part of "x86-64". Possessive, since giving
# back a letter or a digit never lets a name end elsewhere: backtracking over every split
# of "ab111...1-2" took a second on a question of 8,000 characters.
_LETTERS_DIGITS = re.compile(
    r"(?<![\w.\-/\\])(?!v\d+\b)(?=[a-z]{2}|[a-z]\d\d)[a-z]++\d++[a-z\d]*+(?!\w)(?!-\d)(?!\.\d)", re.I)
# A dotted number is matched whole (atomic): a shorter one has the same digit after it in the
# same run, so giving back parts only rescanned the run, quadratic on "1.1.1...1a1".
_VERSION = re.compile(r"(?<![\w.-])((?>\d+\.\d+(?:\.\d+)*))(?![\w.]*\d)|\b([A-Z][a-z]+ \d+)\b(?![,.]\d)")


def key_terms(question: str) -> set[str]:
    """The literal terms a question stands on: names (capitalised words past its first, and
    acronyms: "GPU", "MIPLIB"), identifiers and codes ("os.path", "RESOURCE_EXHAUSTED",
    "--prune"), file formats by their extension (".xlsx" gives "xlsx") and version-like
    numbers ("1.5", "Tier 3"). If the passages never mention one, they cannot answer.
    Quantities ("2,000 tokens") are not key terms, since a question may bring its own for a
    calculation, nor are paraphrased common words, since passages word them otherwise, nor
    greetings and thanks ("... on windows Thanks!"). A question typed in capitals has no
    acronyms to tell apart; a word typed in lower case that no dictionary knows is a name
    too (`lower_case_names`). A question in another language (`rag.text.another_language`)
    has no names told by case or by English word lists, only acronyms, codes, formats and
    versions."""
    question = question.strip()
    # In another language, a capitalised or unknown word is as likely a plain word ("Schlüssel").
    entities = set() if another_language(question) else (
        {w.lower() for w in _ENTITY.findall(question)} | lower_case_names(question)) - STOPWORDS
    shouted = not re.search(r"\b[a-z]{2,}", question)  # no word in lower case: capitals say nothing
    acronyms = {a.lower() for a in _ACRONYM.findall(question)} - STOPWORDS - _EMPHASIS if not shouted else set()
    codes = ({a for a in anchors(question) if not re.search(r"\d", a) and not _either_or(a, question)}
             - _ABBREVIATIONS - flag_values(question))
    return (entities | acronyms | codes | letters_digits(question) | file_formats(question)
            | versions(question)) - _COURTESY


def letters_digits(question: str) -> set[str]:
    """The names of letters then digits a question types (`_LETTERS_DIGITS`), lowercased:
    a package ("lme4", "psycopg2"), an algorithm ("sha256"), a type ("int8"). Before, a
    question about one had no key term, and "how do I fit a mixed-effects model with lme4
    in R?" was answered from pages on other models."""
    return {m.lower() for m in _LETTERS_DIGITS.findall(question)}


_LETTERS_THEN_DIGITS = re.compile(r"([a-z]+)(\d+[a-z\d]*)")


def apart(term: str) -> tuple[str, ...]:
    """A name of letters then digits as documents also write it, its parts apart: "utf 8"
    (which `Store.mentions` also reads as "utf-8") and "utf.8" for "utf8", as "H.264" is
    written ("gpt 4o" for "gpt4o"); none for any other term."""
    parts = _LETTERS_THEN_DIGITS.fullmatch(term)
    return tuple(f"{parts.group(1)}{between}{parts.group(2)}" for between in " .") if parts else ()


_SLASHED_WORDS = re.compile(r"[a-z]+(?:/[a-z]+)+")


# A file name given to an option ("-o out.gv", "--output=report.pdf", "-f ./my.cfg"): the
# user's own, which no manual names. A file's extension (up to four letters or digits after
# a letter), not a module run by "-m" ("python -m http.server").
_FLAG_VALUE = re.compile(
    r"(?<![\w-])(?!-m\s)--?[A-Za-z][\w-]*(?:\s+|=)(?P<value>[\w./~-]*\w\.[A-Za-z][A-Za-z0-9]{0,3})(?![\w.])")


def flag_values(question: str) -> set[str]:
    """The file names a question gives to options (`_FLAG_VALUE`), as `anchors` reads them:
    "ccomps with -x and -o out.gv, what are the output files called?" was refused because
    the manual never mentions out.gv (blind set on graphviz-doc)."""
    return {m["value"].strip(".:/-").lower() for m in _FLAG_VALUE.finditer(question)}


def _either_or(code: str, question: str) -> bool:
    """English words joined by slashes ("on/off", "read/write", "and/or"): a way of writing
    "or", not a name the passages must repeat (a manual writes "a switch" or "true or
    false"). Not a path, which the question writes after a slash ("/dev/null")."""
    return (_SLASHED_WORDS.fullmatch(code) is not None and f"/{code}" not in question.lower()
            and all(w in STOPWORDS or english(w) for w in code.split("/")))


def plain_words(question: str) -> list[str]:
    """The question's content words of three letters or more, letters only, that read as
    English (`rag.text.english`): the words whose absence from a whole collection says
    something (`AnswerTask.unheard_of`). A name is a key term, weighed as such; a word no
    dictionary knows may be a typo ("memebership"), which says nothing."""
    if another_language(question):  # "las", "con": English words only by chance
        return []
    typed = question.replace("\u2019", "'")  # "haven’t" is "haven't", not "haven"
    return [w for w in dict.fromkeys(content_words(typed)) if len(w) >= 3 and w.isalpha() and english(w)]


def lower_case_names(question: str) -> set[str]:
    """The words typed in lower case and standing alone that do not read as English
    (`rag.text.english`) and are no slip of an everyday word (`rag.text.everyday_typo`:
    "jsut", "teh"). Such a word is a name: "jupyter" where a question is typed without
    capitals, "matplotlib", "swiglpk" or "glpsol" in any question, since many tools are
    written in lower case by their own users. Lower case gives no other sign of a name:
    before, "how do i run asymptote inside a jupyter notebook?" had no key term and was
    answered from pages about something else, and so was "How do I convert a matplotlib
    figure to Asymptote?". A question's first word is read in lower case too: its capital
    is the sentence's. A word that reads as English only as two words joined
    (`rag.text.joined_words`) is a name too: of such words in the development sets'
    questions, all 12 that no document held in any form, nor as two words, were in
    unanswerable questions ("minizinc", "libreoffice", "einsum", "tensorflow"), and every
    one an answerable question used ("dataset", "colormap", "tarball") its documents held;
    but not two everyday words run together ("thankyou", "everytime")."""
    typed = question.strip()
    lone = set(_LONE_WORD.findall(typed[:1].lower() + typed[1:])) - STOPWORDS - _COURTESY
    return {w for w in lone if (not english(w) or _joined_name(w)) and not everyday_typo(w)}


def _joined_name(word: str) -> bool:
    """Two words joined that are not two everyday words run together ("thankyou",
    "everytime", "eachother": a way of typing, not a name)."""
    parts = joined_words(word)
    return parts is not None and not all(everyday(p) for p in parts)


# A dotted number after these is a value the asker brings ("1/2 gives 0.5", "gives me 2.67",
# "a lot of 0.1 floats", "is 0.5 the default?"), or after "(", "," or an operator (an
# argument: "round(2.675, 2)"); after anything else it is a version ("Python 3.11", "python
# 3.14", "in 3.12", "3.12 and 3.14").
_VALUE_BEFORE = re.compile(
    r"(?:\b(?:gives?|gave|given|get|gets|got|returns?|returned|prints?|printed|shows?|showed|outputs?|equals?|"
    r"is|are|was|were|be|becomes?|of|by|me|us)\s+|[(,=<>*+/]\s*)$", re.I)


def versions(question: str) -> set[str]:
    """The version-like numbers a question names ("Python 3.11", "python 3.14", "Gemini 1.5
    Pro", "in 3.12", "Tier 3"), lowercased: not a dotted number the asker brings as a value
    (`_VALUE_BEFORE`), which, like a quantity ("2,000 tokens"), no passage need repeat: "why
    does 1/2 give 0.5 in asymptote?" was refused for "0.5". Nor a question word before a
    number ("Is 3 the max?", "What 2 options ...?"), which a capital at the start made a
    named version ("is 3")."""
    return {
        (dotted or named).lower() for match in _VERSION.finditer(question)
        for dotted, named in [match.groups()]
        if (named and named.split()[0].lower() not in STOPWORDS)
        or (dotted and not _just_before(_VALUE_BEFORE, question, match.start()))
    }


def file_formats(question: str) -> set[str]:
    """The file formats a question names by their extension, without the dot: ".xlsx" gives
    "xlsx", since documents name a format as often without it ("XLSX files"). Only where it
    is named as a thing (`_EXTENSION`): a method written ".get" is a common word."""
    return {
        m.group(1).lower() for m in _EXTENSION.finditer(question)
        for after in [_just_after(question, m.end())]
        if (_just_before(_AS_A_THING_BEFORE, question, m.start()) or _AS_A_THING_AFTER.match(after))
        and not _NOT_A_FORMAT_AFTER.match(after)
    }


# How far before or after a match the words that qualify it ("is 0.5", "an .xlsx file") are
# looked for: a few words. Searching the whole rest of the question, once per match, made a
# question of 8,000 characters with thousands of matches ("1.1 1.1 1.1 ...") take 2 s.
_NEAR_CHARS = 200


def _just_before(pattern: re.Pattern[str], text: str, at: int) -> bool:
    """Whether `pattern` (anchored by `$`) matches the text ending at `at`, within
    `_NEAR_CHARS` of it; a word boundary at the window's start still sees the character
    before it."""
    return pattern.search(text, max(0, at - _NEAR_CHARS), at) is not None


def _just_after(text: str, at: int) -> str:
    """The `_NEAR_CHARS` of `text` from `at`, for a pattern anchored by `^` to read."""
    return text[at : at + _NEAR_CHARS]


# A dot ending a line, a word starting the next: how extracted text breaks a qualified name.
# HTML reference pages style a signature's module apart from its name ("heapq." then
# "nsmallest" on the next line) and PDF lines wrap after a dot.
_LINE_BROKEN_NAME = re.compile(r"(?<=\w)\.[ \t]*\n\s*(?=\w)")


def missing_terms(question: str, passages: Sequence[Passage], elsewhere: frozenset[str] = frozenset()) -> list[str]:
    """Key terms of the question found in none of the passages (text, heading or file name),
    but for those their documents hold elsewhere (`elsewhere`, `mentioned_elsewhere`).
    A qualified name ("os.path.join") is found whole, its line breaks undone, or on its
    owner's own page (`documented_on_its_page`); its parts found apart are common words
    ("path", "join") that say nothing of whether the name is there. An owner of one letter
    is the asker's own variable ("x.status", "s.split"): the member is found on any owner
    (".status", "str.split"). A term one typo away from a word of the passages is that word
    (`misspells`): "Gemni" asks about Gemini. Accents do not count (`folded`): "creme
    brulee" is found in "crème brûlée"."""
    pool = _LINE_BROKEN_NAME.sub(".", folded(" ".join(f"{p.source} {p.heading} {p.text}" for p in passages)).lower())
    words = {w for pattern in (r"[\w.:/=-]+", r"[\w.]+", r"\w+", r"[a-z0-9]+") for w in re.findall(pattern, pool)}
    words |= {w.strip(".:/-=") for w in words}

    def present(term: str) -> bool:
        if in_some_form(term, words):
            return True
        if (len(term) > 4 or " " in term) and term in pool:  # "tier 3" must be there as a phrase
            return True
        letters_digits = _LETTERS_THEN_DIGITS.fullmatch(term)
        if letters_digits and re.search(r"\b{}[\s.-]?{}\b".format(*letters_digits.groups()), pool):
            return True  # "utf8" where the passages write "UTF-8", "h264" where they write "H.264"
        if " " in term:
            return False
        variable = _QUALIFIED_NAME.fullmatch(term)
        if variable is not None and len(variable.group(1)) == 1:
            return f".{variable.group(2)}" in pool
        parts = [p for p in re.split(r"[-=/:]", term) if p]  # "flash-lite" is "Flash Lite" too
        return (len(parts) > 1 and all(present(p) for p in parts)) or misspells(term, words)

    return sorted(
        t for t in key_terms(question)
        if t not in elsewhere and not (present(folded(t)) or documented_on_its_page(t, passages))
    )


_QUALIFIED_NAME = re.compile(r"([a-z_]\w*(?:\.[a-z_]\w*)*)\.([a-z_]\w*)")


def as_typed(term: str, question: str) -> str:
    """`term` (found lowercased) as the question spells it: a refusal that says the passages
    never mention "ceo" reads as if the question had been misread; "CEO" is what was asked."""
    found = re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])", question, re.I)
    return found.group(0) if found else term


def misspells(term: str, words: Iterable[str]) -> bool:
    """Whether `term` is a typo (`rag.text.typo_of`) of one of `words` of `TYPO_MIN_CHARS`
    or more: users type fast, and one dropped letter ("Gemni", "glp_smplex", "Mathrog")
    must not turn an answer the passages hold into a refusal (scripts/typo_check.py). Only
    a term that `may_be_misspelt`."""
    if not may_be_misspelt(term):
        return False
    return any(len(w) >= TYPO_MIN_CHARS and typo_of(term, w) for w in words if abs(len(w) - len(term)) <= 1)


def documented_on_its_page(term: str, passages: Sequence[Passage]) -> bool:
    """Whether `owner.member` is named by a passage of the owner's own page: one whose file
    name or heading names the owner and whose text names the member. Reference pages write
    "nsmallest()" on the heapq page, seldom "heapq.nsmallest". Names match exactly: an
    identifier takes no plural."""
    name = _QUALIFIED_NAME.fullmatch(term)
    if name is None:
        return False
    owner, member = name.groups()
    return any(owner in _identifiers(f"{PurePosixPath(p.source).stem} {p.heading}") and member in _identifiers(p.text)
               for p in passages)


def _identifiers(text: str) -> set[str]:
    """The words and dotted names of a text, lowercased: "os.path.join()" gives os, path,
    join and os.path.join."""
    lowered = text.lower()
    return set(re.findall(r"\w+", lowered)) | {w.strip(".") for w in re.findall(r"[\w.]+", lowered)}


class Mentions(Protocol):
    """`Store.mentions`: whether `sources` (None: the whole collection) hold `term` as a word,
    or with `word_start` as the start of one."""

    def __call__(self, term: str, sources: Sequence[str] | None, *, word_start: bool = False) -> bool: ...


# Developer shorthand and the starts of the words it stands for: "deps" where a manual writes
# "dependencies", "repo" where it writes "repository". No dictionary lists them, so a
# question typing them would be refused on them as on a name; a generic "any word it
# starts" rule held "repo" by "report" and "redis" by "redirect". A plural ("deps", "args")
# is looked up without its "s".
SHORTHAND: dict[str, tuple[str, ...]] = {
    "arg": ("argument",), "attr": ("attribute",), "async": ("asynchron",), "auth": ("authenticat", "authoriz"),
    "btn": ("button",), "cfg": ("config",), "cli": ("command line", "command-line"), "cmd": ("command",),
    "config": ("configur",), "cred": ("credential",), "ctx": ("context",), "dep": ("depend",),
    "dtype": ("data type",), "env": ("environment",), "err": ("error",), "func": ("function",),
    "impl": ("implement",), "img": ("image",), "init": ("initiali",), "kwarg": ("keyword argument",),
    "lib": ("librar",), "lvl": ("level",), "msg": ("message",), "param": ("parameter",), "perf": ("performance",),
    "pkg": ("package",), "regex": ("regular expression", "regexp"), "repo": ("repositor",), "req": ("request",),
    "resp": ("respons",), "src": ("source",), "stdlib": ("standard librar",), "stdin": ("standard input",),
    "stdout": ("standard output",), "stderr": ("standard error",), "tmp": ("temporar",), "util": ("utilit",),
    "var": ("variable",),
}


def shorthand_for(word: str) -> tuple[str, ...]:
    """The starts of the words `word` is developer shorthand for (`SHORTHAND`), if it is."""
    return SHORTHAND.get(word) or (SHORTHAND.get(word[:-1], ()) if word.endswith("s") else ())


def mentioned_elsewhere(
    question: str,
    passages: Sequence[Passage],
    mentions: Mentions,
    misspelt: Callable[[str, Sequence[str]], bool] | None = None,
) -> frozenset[str]:
    """The key terms the passages never mention that their own documents hold elsewhere (a
    name) or that any document holds (a file format): `mentions(term, sources)`,
    `Store.mentions`. A question about "MathProg" may retrieve pages of the MathProg manual
    that do not repeat its name: the documents are about it, and refusing as if they never
    named it would be wrong. A file format is looked for in the whole collection (`sources`
    None): it is often the asker's own file ("glob doesn't return my .env file"), answered
    by pages on something else (files whose name starts with a dot), so only a collection
    that never names it is sure not to answer. A version ("1.5", "Tier 3") is not looked
    for: documents name many versions, and only a passage about the one asked about answers
    a question about it. A word typed in lower case that reads as a name
    (`lower_case_names`) is looked for in the whole collection, in any form ("gzipped"
    where a manual writes "gzip"), or for shorthand, the words it stands for ("repo" where
    a manual writes "repository", `SHORTHAND`): lower case is a weak sign of a name. Such a
    word that misspells an English word the passages' own documents hold is held too
    (`rag.text.english_respellings`: "automaticaly"). A name that
    `may_be_misspelt`, held by those documents one typo
    away (`misspelt(term, sources)`: `BM25Search.misspelt_in`), is held too: "Mathrog" asks
    about MathProg. Without passages there is nothing to answer from, and nothing is looked
    for."""
    if not passages:
        return frozenset()
    sources = sorted({p.source for p in passages})
    formats, asked_versions, lower_case = file_formats(question), versions(question), lower_case_names(question)

    def held(term: str) -> bool:
        if term in formats:
            return mentions(term, None)
        if term in lower_case:  # read as a name from lower case alone: any document, any form of it
            stem = stem_words([term])[0]
            if mentions(term, None) or (stem != term and mentions(stem, None)):
                return True
            if any(mentions(full, None, word_start=True) for full in shorthand_for(term)):
                return True
            if any((parts := joined_words(w)) is not None and mentions(" ".join(parts), None)
                   for w in dict.fromkeys((term, stem))):
                return True  # "work flow" or "work-flow" where the question says "workflow"
            if any(mentions(word, sources) for word in english_respellings(term)):
                return True  # "automaticaly" where the passages' manual writes "automatically"
        elif mentions(term, sources) or any(mentions(written, sources) for written in apart(term)):
            return True
        return misspelt is not None and may_be_misspelt(term) and misspelt(term, sources)

    return frozenset(t for t in missing_terms(question, passages) if t not in asked_versions and held(t))


def file_names(source: str) -> str:
    """The words of a file's name, without its folders and extension, that are no English
    word (`rag.text.english`): "gprolog" of gprolog.pdf, "heapq" of library/heapq.html,
    "booktabs"; none of flex.pdf, functions.html or quotas.md. A user names a manual's
    subject, which its pages seldom print: GNU Prolog's manual writes "GNU Prolog", and
    "gprolog" in a question ranked the few chunks of its C interface, which include
    gprolog.h, above the page it asked about (blind set g15). Indexed with each chunk of the
    file, the name weighs little within it and tells it from other files. An English word
    of a file's name ("functions", "programming") would rank its pages for every question
    using the word: put before each chunk, the whole stem cost the Python docs nDCG@10
    0.884 -> 0.876 (EVALUATION.md). Keyword search indexes them with each chunk
    (`rag.bm25.BM25Index.build`), and the offline answerer reads them with each passage's
    sentences (`ExtractiveAnswerer.units`)."""
    return " ".join(w for w in _FILE_NAME_WORD.findall(PurePosixPath(source).stem) if not english(w.lower()))
