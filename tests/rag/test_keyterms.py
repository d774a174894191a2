"""Key terms: what a question stands on, which of them passages miss, and which of those
the passages' documents hold elsewhere (then the answer must not say they are never mentioned)."""

from functools import partial

import pytest

from rag.bm25 import BM25Search
from rag.keyterms import (
    as_typed,
    file_formats,
    key_terms,
    mentioned_elsewhere,
    missing_terms,
    plain_words,
    versions,
)
from rag.types import Passage
from tests.fakes.tiny_corpus import Doc, build_store


def test_a_qualified_name_is_mentioned_whole_across_a_line_break_or_on_its_owners_page():
    # Extracted text breaks a name after its dot (a PDF line wrap, an HTML signature's styled parts).
    wrapped = Passage(1, "For the few smallest items call heapq.\nnsmallest(), which is faster than sorting.",
                      "manual.pdf", 12)
    assert missing_terms("does heapq.nsmallest keep equal items in order?", [wrapped]) == []
    assert missing_terms("does heapq.nbiggest keep equal items in order?", [wrapped]) == ["heapq.nbiggest"]
    # A reference page names its members without the module: the page's file name or heading is the module.
    listing = Passage(1, "nlargest()\n\nnsmallest()\n\nReturn a list with the n smallest elements.",
                      "library/heapq.html", heading="heapq — Heap queue algorithm")
    assert missing_terms("does heapq.nsmallest keep equal items in order?", [listing]) == []
    elsewhere = Passage(1, "nsmallest() returns the n smallest elements.", "library/bisect.html", heading="bisect")
    assert missing_terms("does heapq.nsmallest keep equal items in order?", [elsewhere]) == ["heapq.nsmallest"]
    # A name's parts are common words: found apart, they are not the name.
    apart = Passage(1, "Use os.walk() to visit a tree.\nPath objects stand for filesystem paths.", "library/os.html")
    assert missing_terms("How does Path.walk() order the directories?", [apart]) == ["path.walk"]
    # An owner of one letter is the asker's variable: the member is found on any owner.
    suffixes = Passage(1, "For model variables suffixes mean: .lb lower bound, .status status in the solution.",
                       "gmpl.pdf", 30)
    assert missing_terms("what does x.status = 1 mean for a variable?", [suffixes]) == []
    assert missing_terms("what does x.dual mean for a variable?", [suffixes]) == ["x.dual"]


def test_a_term_typed_without_its_accents_is_mentioned():
    """Refused as "the passages found never mention brulee" under "Desserts > Crème brûlée"."""
    dessert = Passage(1, "To make crème brûlée, bake the custard in a water bath.", "desserts.md",
                      heading="Desserts > Crème brûlée")
    assert missing_terms("how do I make creme brulee?", [dessert]) == []
    assert missing_terms("can I use mascarpone in crème brûlée?", [dessert]) == ["mascarpone"]


def test_an_acronym_is_a_key_term_that_the_passages_must_mention():
    interior = Passage(1, "The routine glp_interior implements the primal-dual interior-point method.", "glpk.pdf", 40)
    assert missing_terms("Which GPU does glpk use for the interior-point method?", [interior]) == ["gpu"]
    solver = Passage(2, "Solving on GPUs is not supported; the CNF-SAT solver runs on one CPU.", "glpk.pdf", 41)
    assert missing_terms("Which GPU does glpk use for the interior-point method?", [interior, solver]) == []
    assert missing_terms("what's CNF-SAT?", [solver]) == []  # whole, not "CN"
    # Part of a code or a file name is not an acronym; a question in capitals has none.
    assert key_terms("in CAD.asy, why does RESOURCE_EXHAUSTED appear?") == {"cad.asy", "resource_exhausted"}
    assert key_terms("HOW DO I INSTALL IT ON MY PC") == set()
    # Capitals for emphasis are not acronyms; acronyms beside lower-case words are.
    assert key_terms("Is it OK that the gap is ALWAYS zero?") == set()
    assert key_terms("GLPK vs CPLEX for MIP?") == {"glpk", "cplex", "mip"}


def test_a_term_the_passages_miss_is_looked_for_in_their_own_documents(settings, offline_provider):
    store = build_store(settings, offline_provider)
    vacation = Passage(1, "Employees receive 25 days of paid vacation per year.", "handbook.pdf", 2)
    question = "How many vacation days do Acme employees get?"
    assert missing_terms(question, [vacation]) == ["acme"]
    # "Welcome to Acme." is on page 1 of the same handbook.
    assert mentioned_elsewhere(question, [vacation], store.mentions) == {"acme"}
    assert missing_terms(question, [vacation], frozenset({"acme"})) == []  # what the answerer then refuses on
    # Another file's passage: the handbook is not among the passages' documents.
    badge = Passage(1, "Error code E4711 means the badge reader is offline.", "security.md", heading="Building access")
    assert mentioned_elsewhere("Does Acme's badge reader log E4711?", [badge], store.mentions) == frozenset()
    # Never written anywhere.
    assert mentioned_elsewhere("Which Helm chart runs the vacation planner?", [vacation], store.mentions) == frozenset()


def test_a_version_is_not_looked_for_elsewhere():
    """Documents name many versions: only a passage about the one asked about answers."""
    vacation = Passage(1, "Employees receive 25 days of paid vacation per year.", "handbook.pdf", 2)
    asked: list[str] = []
    found = mentioned_elsewhere("Do Acme employees get more vacation since version 2.0.1 of Gemini 1.5?", [vacation],
                                lambda term, sources: asked.append(term) or True)
    assert found == {"acme", "gemini"} and asked == ["acme", "gemini"]


def test_a_number_the_asker_brings_is_no_version():
    """A dotted number names a version after a name or "version"; after "gives" it is the
    asker's value, which no passage need repeat: "why does 1/2 give 0.5 in asymptote?" was
    refused for "0.5"."""
    division = Passage(1, "int quotient(int x, int y) returns the integer part of x/y.", "asymptote.pdf", 40)
    assert missing_terms("why does 1/2 give 0.5 in asymptote, and how do I get integer division?", [division]) == []
    assert missing_terms("round(2.675, 2) gives me 2.67, is that a bug?", [division]) == []
    assert versions("When was Asymptote 2.85 released? What changed in glpk 4.65 and in version 2.1?") == {
        "2.85", "4.65", "2.1"}
    assert versions("What are the Tier 3 limits for Gemini 2.5 Pro?") == {"tier 3", "2.5"}
    # a version typed in lower case, or after another one, is a version still
    assert versions("what's new in python 3.14, and what changed between Python 3.12 and 3.13?") == {
        "3.14", "3.12", "3.13"}
    assert missing_terms("Is 0.5 the default temperature?", [division]) == []
    assert versions("Is 3 the max? What 2 options does it take? Does Python 3 do it?") == {"python 3"}


def test_what_stands_next_to_a_number_or_a_format_is_read_there_in_a_long_question():
    """The words that make a dotted number the asker's value ("give 0.5") or an extension a
    format (".xlsx file") are read just before or after it, not through the whole question
    once per number (which took seconds at the length cap: `bench answer`). A long question
    reads them as a short one does, and a word that only ends where the looking starts
    ("this" before a number) is still not "is"."""
    preamble = "I have tried many things before asking. " * 150
    question = f"{preamble}Why does 1/2 give 0.5 in asymptote, and how do I read an .xlsx file with python 3.11?"
    assert versions(question) == {"3.11"}
    assert file_formats(question) == {"xlsx"}
    assert key_terms(question) == {"3.11", "xlsx"}
    assert versions("what does th" + "is" + " " * 198 + "1.5 do") == {"1.5"}
    assert versions("what does " + "is" + " " * 198 + "1.5 do") == set()


def test_a_file_format_named_by_its_extension_is_a_key_term():
    """A question about ".xlsx" files cannot be answered by passages about CSV that never
    name the format; the end of a file name is a code, not a format."""
    csv = Passage(1, "The csv module reads and writes tabular data in CSV format, as spreadsheets export it.",
                  "library/csv.html", heading="csv — CSV File Reading and Writing")
    assert key_terms("How do I read an .xlsx spreadsheet?") == {"xlsx"}
    assert missing_terms("How do I read an .xlsx spreadsheet?", [csv]) == ["xlsx"]
    assert missing_terms("How do I read a .csv file?", [csv]) == []  # named without its dot
    tomllib = Passage(1, "This module parses TOML files into a dict; it cannot write them.", "library/tomllib.html")
    assert missing_terms("can tomllib save a dict back out to a .toml file?", [tomllib]) == []
    assert key_terms("how do I run setup.py?") == {"setup.py"}  # a file name is a code
    assert key_terms("I have a .csv. How do I parse it?") == {"csv"}  # a sentence may end after it
    assert key_terms("Can pandas read .xlsx?") == {"xlsx"}  # the object of reading, writing, converting
    assert key_terms("how do I export a live script (.mlx) to pdf?") == {"mlx"}  # in brackets after its name
    # A method or an attribute is no format, nor is an abbreviation a name.
    for question in ("call .split() on it", "what does the .get method return?", "does .get wait when streaming?",
                     "from .utils import x fails", "is it the default, e.g. for vacation days?"):
        assert key_terms(question) == set(), question


def test_a_file_format_is_looked_for_in_the_whole_collection(settings, offline_provider):
    """A format is often the asker's own file, answered by pages on something else: only a
    collection that never names it cannot answer."""
    store = build_store(settings, offline_provider)
    vacation = Passage(1, "Employees receive 25 days of paid vacation per year.", "handbook.pdf", 2)
    # api-guide.md, not among the passages, names JSON; no document names XLSX.
    assert mentioned_elsewhere("can I get my vacation days as a .json file?", [vacation], store.mentions) == {"json"}
    assert mentioned_elsewhere("can I get my vacation days as a .xlsx file?", [vacation], store.mentions) == frozenset()
    asked: list[tuple[str, object]] = []
    mentioned_elsewhere("Do Acme employees get payslips as .xlsx files?", [vacation],
                        lambda term, sources: asked.append((term, sources)) or False)
    assert asked == [("acme", ["handbook.pdf"]), ("xlsx", None)]
    # Without passages (the File Search backend retrieves none here) nothing is looked for.
    assert mentioned_elsewhere("can I get payslips as .xlsx files?", [],
                               lambda term, sources: asked.append((term, sources)) or True) == frozenset()
    assert len(asked) == 2


def test_a_name_one_typo_away_from_a_word_of_the_passages_is_that_word():
    pricing = Passage(1, "Gemini 2.5 Flash costs $0.30 per 1M input tokens. Call glp_simplex to solve the LP; "
                      "its presolver is off by default.", "pricing.pdf", 1)
    assert missing_terms("What does Gemni 2.5 Flash cost per million input tokens?", [pricing]) == []
    assert missing_terms("is the presolver on by default in glp_smplex?", [pricing]) == []
    assert missing_terms("What does Gemnini 2.5 Flash cost?", [pricing]) == []  # a letter added
    # Not a typo: two edits away, a name of three letters (one edit from too many words), a
    # version ("1.5" is not "2.5").
    assert missing_terms("What does Gmni 2.5 Flash cost?", [pricing]) == ["gmni"]
    cpu = Passage(2, "The CNF-SAT solver runs on one CPU.", "glpk.pdf", 41)
    assert missing_terms("Which GPU does glpk use?", [cpu]) == ["gpu"]
    assert missing_terms("What does Gemini 1.5 Flash cost?", [pricing]) == ["1.5"]
    # Nor a word of the model's vocabulary: a name asked about, one letter from a word of the documents.
    stdio = Passage(3, "Asymptote reads the code from stdio when no file is given.", "asymptote.pdf", 9)
    assert missing_terms("Is there a Visual Studio extension for Asymptote?", [stdio]) == ["studio", "visual"]
    # Nor a name that differs at its start, or at a part's: another function, not a typo.
    strings = Passage(4, "str.rstrip(chars) removes trailing characters; np.vstack stacks rows.", "stdtypes.html")
    assert missing_terms("Does str.lstrip take chars? And np.hstack?", [strings]) == ["np.hstack", "str.lstrip"]


def test_a_misspelt_name_the_passages_documents_hold_is_held(settings, offline_provider):
    """A typo of a word the passages do not hold but their documents do ("Welcme", as the
    handbook's first page says "Welcome"), as for a name spelt right: the keyword index holds
    it one typo away in those files. A typo of a name only other files hold ("Cafetria"), or
    that nothing holds (Helm), is not held."""
    store = build_store(settings, offline_provider)
    vacation = Passage(1, "Employees receive 25 days of paid vacation per year.", "handbook.pdf", 2)
    misspelt = partial(BM25Search(settings).misspelt_in, store)
    assert mentioned_elsewhere("Does the Acme Welcme page cover vacation?", [vacation], store.mentions,
                               misspelt) == {"acme", "welcme"}
    assert mentioned_elsewhere("Does the Cafetria close during the vacation?", [vacation], store.mentions,
                               misspelt) == frozenset()
    assert mentioned_elsewhere("Which Helm chart runs the vacation planner?", [vacation], store.mentions,
                               misspelt) == frozenset()


def test_thanks_and_greetings_around_a_question_are_nobodys_name():
    # A question without its "?" runs into the thanks, capitalised: refusing on "thanks" was wrong.
    assert key_terms("pick 3 random elements from a list without repeats Thanks! Cheers") == set()
    assert key_terms("Hi, quick question. Hello again, does glob skip my .env file? Thank you") == {"env"}
    assert key_terms("my csv output has an empty line between every row on windows THANKS!") == {"csv"}
    assert key_terms("pls help, btw how do i run asymptote in jupyter? tia") == {"jupyter"}


def test_a_word_typed_in_lower_case_that_no_dictionary_knows_is_a_name():
    """Without capitals, the words that do not read as English are its names: refused when the
    passages never mention them, as "Jupyter" is in a question with capitals. So are such
    words in a question with capitals: many tools are written in lower case ("matplotlib")."""
    install = Passage(1, "Asymptote runs from the command line: asy file.asy writes file.eps.", "asymptote.pdf", 7)
    assert missing_terms("how do i run asymptote inside a jupyter notebook?", [install]) == ["jupyter"]
    assert missing_terms("How do I run Asymptote inside a Jupyter notebook?", [install]) == ["jupyter"]
    assert missing_terms("can i script asymptote in lua?", [install]) == ["lua"]  # three letters are enough
    assert missing_terms("How do I convert a matplotlib figure to Asymptote?", [install]) == ["matplotlib"]
    assert missing_terms("Matplotlib figures: can Asymptote read them?", [install]) == ["matplotlib"]
    # English words are no names, in any form ("swapping", "throwaway", British "serialise"),
    # nor a part of an identifier ("pycache" of "__pycache__").
    assert key_terms("i'm swapping throwaway keys to reuse them") == set()
    assert key_terms("the asy package clutters my latex folder, can i move it?") == set()  # "asy": one slip from "any"
    # Nor a slip of an everyday word ("jsut", "teh"), nor what is left of "mightn't".
    assert key_terms("how do i jsut set teh api key? mightn't it leak?") == set()
    assert key_terms("what are those .pyc files inside __pycache__?") == {"__pycache__", "pyc"}
    assert key_terms("how do I call glpk from Python with swiglpk?") == {"python", "glpk", "swiglpk"}
    assert key_terms("How should I serialise and visualise what the tokenisers summarise?") == set()
    # A part of a hyphenated word and a key before its "=" stand alone: "colsep" is a name,
    # "headskip=" too; the English parts of "non-zero" or "pre-defined" are none.
    assert key_terms("mathtools key to set the column spacing of matrices, matrix-colsep?") == {"mathtools", "colsep"}
    assert key_terms("an option for the space before headings, something like headskip=?") == {"headskip"}
    assert key_terms("is a non-zero skip pre-defined?") == set()
    # Not a part before a number, nor a flag's first part: "utf-8" is no "utf".
    assert key_terms("how do I read a utf-8 file?") == set()
    assert key_terms("what does -fno-exceptions do?") == {"fno-exceptions"}


def test_a_name_of_letters_then_digits_is_a_key_term_found_with_its_parts_apart(settings, offline_provider):
    """A package, an algorithm or a type named with digits ("lme4", "sha256", "int32") is a
    name the passages must mention, also where they write its parts apart ("utf8" as
    "UTF-8", "python3" as "Python 3"); a quantity, a variable or a version is not one."""
    assert key_terms("how do I fit a mixed-effects model with lme4 in R?") == {"lme4"}
    assert key_terms("ode45 vs ode23: which methods and orders are they") == {"ode45", "ode23"}
    assert key_terms("int32(5) ./ int32(8) gives what?") == {"int32"}
    assert key_terms("can it read base64-encoded data or x86-64 code?") == {"base64"}
    for plain in ("set 2cm margins", "stop after 60s", "what is x1 here", "save in v7.3 format", "api v10 or v18"):
        assert key_terms(plain) == set(), plain
    text = "Files are read as UTF-8 under Python 3 on x86_64 machines; videos are encoded as H.264 by GPT-4o."
    passage = Passage(1, text, "setup.md")
    assert missing_terms("is utf8 the default with python3 on x86? and h264 by gpt4o?", [passage]) == []
    assert missing_terms("is there a pathlib method that gives me the sha256 of a file?", [passage]) == [
        "pathlib", "sha256"]
    store = build_store(settings, offline_provider, name="setup", docs=(
        Doc("setup.md", text), Doc("hashes.md", "Checksums are computed with SHA-256.")))
    elsewhere = Passage(1, "Install the package, then run the tests.", "setup.md")
    # Its own document writes it apart; another document is no reason to hold it.
    assert mentioned_elsewhere("does the install read utf8 or h264?", [elsewhere], store.mentions) == {"utf8", "h264"}
    assert mentioned_elsewhere("does the install check a sha256?", [elsewhere], store.mentions) == set()


def test_a_lower_case_name_is_looked_for_in_any_document_in_any_form(settings, offline_provider):
    """Lower case is a weak sign of a name: "gzipped" is held by a manual that writes "gzip",
    in any file, and shorthand by the words it stands for ("repo" by "repository", "deps" by
    "dependencies"); "kubernetes", written nowhere, is not, nor a name by a word it happens
    to start ("redis" by "redirect", "lua" by "lualatex")."""
    docs = (Doc("ops.md", "Backups are compressed with gzip every night. Figures are typeset with lualatex."),
            Doc("dev.md", "Clone the repository, pin its dependencies, then ask for authentication."),
            Doc("handbook.pdf", "Employees receive 25 days of paid vacation per year.", 2))
    store = build_store(settings, offline_provider, name="ops", docs=docs)
    vacation = Passage(1, "Employees receive 25 days of paid vacation per year.", "handbook.pdf", 2)
    assert missing_terms("are the vacation records gzipped?", [vacation]) == ["gzipped"]
    assert mentioned_elsewhere("are the vacation records gzipped?", [vacation], store.mentions) == {"gzipped"}
    assert mentioned_elsewhere("are the vacation records kept in kubernetes?", [vacation], store.mentions) == set()
    assert mentioned_elsewhere("Is my vacation auth kept in the repo?", [vacation], store.mentions) == {"repo", "auth"}
    assert mentioned_elsewhere("Which deps does the vacation planner pin?", [vacation], store.mentions) == {"deps"}
    assert mentioned_elsewhere("Can I plan my vacation in lua?", [vacation], store.mentions) == set()
    web = build_store(settings, offline_provider, name="web",
                      docs=(Doc("web.md", "The proxy sends a redirect to the report page."),))
    assert mentioned_elsewhere("Is the vacation repo cached in redis?", [vacation], web.mentions) == set()
    # Chat shorthand is nobody's name, in a question with capitals too.
    assert key_terms("Afaik Gemini has a free tier, tbh how many RPM does it allow?") == {"gemini", "rpm"}


def test_a_word_english_only_as_two_words_joined_is_a_name_held_as_one_or_as_two(settings, offline_provider):
    """"minizinc" ("mini" and "zinc") or "einsum" reads as English only as two words joined:
    a name, refused where no document holds it; "workflow" is held by documents that write
    "work flow" (a line end between the words, too), "checkboxes" by "check boxes", and
    "dataset" by one that writes it. Two everyday words run together are no name."""
    assert key_terms("how do i write a minizinc model and solve it with glpk?") == {"minizinc", "glpk"}
    assert key_terms("can i use numpy einsum for this?") == {"numpy", "einsum"}
    assert key_terms("i'm swapping throwaway keys to reuse them") == set()  # dictionary words
    assert key_terms("thankyou, how many vacation days do i get everytime?") == set()  # everyday words run together
    docs = (Doc("ops.md", "Each team documents its work\nflow. The nightly dataset is archived, as check boxes say."),
            Doc("handbook.pdf", "Employees receive 25 days of paid vacation per year.", 2))
    store = build_store(settings, offline_provider, name="flows", docs=docs)
    vacation = Passage(1, "Employees receive 25 days of paid vacation per year.", "handbook.pdf", 2)
    assert missing_terms("what's the vacation workflow for a dataset?", [vacation]) == ["dataset", "workflow"]
    assert mentioned_elsewhere("what's the vacation workflow for a dataset?", [vacation], store.mentions) == {
        "workflow", "dataset"}
    assert mentioned_elsewhere("can i book my vacation in libreoffice?", [vacation], store.mentions) == set()
    assert mentioned_elsewhere("are vacation checkboxes kept?", [vacation], store.mentions) == {"checkboxes"}


def test_a_misspelt_english_word_is_held_by_the_passages_documents_that_spell_it(settings, offline_provider):
    """"automaticaly" is no name where the passages' handbook writes "automatically", nor
    "seperately" where it writes "separately"; another file's word holds nothing, and a name
    one letter from a word is no misspelling of it ("systemd" of "systems", "redis")."""
    vacation = Passage(1, "Employees receive 25 days of paid vacation per year.", "handbook.pdf", 2)
    docs = (Doc("handbook.pdf", vacation.text, 2),
            Doc("handbook.pdf", "Unused days carry over automatically. Overtime is paid separately. "
                                "Operating systems are patched monthly, the hosts redid in May.", 3),
            Doc("notes.md", "Leave requests are approved automatically."))
    store = build_store(settings, offline_provider, name="slips", docs=docs)
    question = "do vacation days carry over automaticaly?"
    assert missing_terms(question, [vacation]) == ["automaticaly"]
    assert mentioned_elsewhere(question, [vacation], store.mentions) == {"automaticaly"}
    assert mentioned_elsewhere("is vacation paid seperately?", [vacation], store.mentions) == {"seperately"}
    assert mentioned_elsewhere("is the vacation tally kept in redis?", [vacation], store.mentions) == set()
    assert mentioned_elsewhere("does systemd restart the vacation planner?", [vacation], store.mentions) == set()
    notes = Passage(1, "Leave requests go to your manager.", "notes.md")
    other = build_store(settings, offline_provider, name="noslips",
                        docs=(Doc("notes.md", notes.text), docs[0], docs[1]))
    assert mentioned_elsewhere("are leave requests approved automaticaly?", [notes], other.mentions) == set()


def test_english_words_joined_by_a_slash_are_no_name():
    """"on/off" and "read/write" say "or"; a path (of English words too) or a MIME type with
    a name in it is a term."""
    assert key_terms("simple on/off switch without newif") == {"newif"}
    assert key_terms("does the share have read/write access?") == set()
    assert key_terms("why do my logs end up in /dev/null?") == {"dev/null"}
    assert key_terms("where is /home/user kept?") == {"home/user"}
    assert key_terms("is it installed in usr/local?") == {"usr/local"}
    assert key_terms("which server sends application/json?") == {"application/json"}


def test_plain_words_are_the_english_words_a_collection_may_lack():
    """A name is a key term; a word no dictionary knows may be a typo: neither says that the
    documents lack what the question asks about."""
    assert plain_words("How much does the gym membership cost per month?") == [
        "much", "gym", "membership", "cost", "per", "month"]
    assert plain_words("can I run it in jupyter, or won't my memebership allow it?") == ["run", "allow"]
    assert plain_words("Haven\u2019t been paid?") == plain_words("Haven't been paid?") == ["paid"]  # not "haven"


def test_a_question_in_another_language_has_no_names_to_miss():
    """"¿Con qué frecuencia se deben rotar las claves de API?" was refused for "claves, con,
    deben, frecuencia": ordinary Spanish words read as names no passage holds."""
    spanish = "¿Con qué frecuencia se deben rotar las claves de API?"
    assert key_terms(spanish) == {"api"} and plain_words(spanish) == []
    keys = Passage(1, "Rotate every API key every 90 days.", "security.md")
    assert missing_terms(spanish, [keys]) == []
    assert key_terms("Wie oft sollten API-Schlüssel gewechselt werden?") <= {"api", "api-schlüssel"}


@pytest.mark.parametrize(("term", "question", "typed"), [
    ("ceo", "What is the name of the CEO's cat?", "CEO"),
    ("tier 3", "What does Tier 3 cost?", "Tier 3"),
    ("xlsx", "can pandas read .XLSX files?", "XLSX"),
    ("os.path.join", "how does os.path.join work", "os.path.join"),
    ("path", "how does os.path.join work?", "path"),  # not a part of a longer name
])
def test_a_term_is_named_as_the_question_spells_it(term: str, question: str, typed: str) -> None:
    """A refusal said the passages never mention "ceo": it read as if the question were misread."""
    assert as_typed(term, question) == typed


def test_a_file_name_given_to_an_option_is_the_users_own_not_a_key_term():
    """Blind set on graphviz-doc: "ccomps with -x and -o out.gv — what are the output files
    called?" was refused, the manual never mentioning out.gv. A file the question asks
    about by itself ("what is in out.gv?", "setup.py") still is a key term."""
    from rag.keyterms import key_terms

    assert key_terms("ccomps with -x and -o out.gv — what are the output files called?") == {"ccomps"}
    assert "report.pdf" not in key_terms("what does glpsol --output=report.pdf write?")
    assert "out.gv" in key_terms("what is in out.gv?")
    assert "setup.py" in key_terms("how do I read setup.py?")
    assert "http.server" in key_terms("Which port does python -m http.server listen on?")  # a module, run by -m
