"""rag/providers/quotable.py: where a passage's quotable units start and end, and what each is
quoted with."""


def test_an_escaped_bar_in_a_table_cell_stays_in_its_cell():
    from rag.providers.quotable import split_units

    table = "| Operation | Result |\n|---|---|\n| x \\| y | bitwise or of x and y |\n"
    assert split_units(table) == ["Operation: x | y; Result: bitwise or of x and y"]


def test_a_table_row_is_labelled_only_by_a_header_row_over_its_rule():
    """A passage starting mid-table took its first row for the header: "os.path.join():
    os.path.samefile(); PurePath.joinpath(): Path.samefile()" paired what the table does not
    (UI walkthrough). Without its header the rows are quoted as they are, the first one too."""
    from rag.providers.quotable import split_units

    rows = "| os.path.join() | PurePath.joinpath() |\n| os.path.samefile() | Path.samefile() |\n"
    assert split_units(rows) == ["os.path.join(); PurePath.joinpath()", "os.path.samefile(); Path.samefile()"]
    headed = "| os and os.path | pathlib |\n|---|---|\n" + rows
    assert split_units(headed) == ["os and os.path: os.path.join(); pathlib: PurePath.joinpath()",
                                   "os and os.path: os.path.samefile(); pathlib: Path.samefile()"]
    # a rule has a dash in each cell: a row of empty cells is none, nor quoted (review)
    assert split_units("| os.path.join() | PurePath.joinpath() |\n|  |  |\n| a() | b() |\n") == [
        "os.path.join(); PurePath.joinpath()", "a(); b()"]
    # a row with more cells than the header keeps them all
    assert split_units("| a | b |\n|---|---|\n| 1 | 2 | 3 |\n") == ["a: 1; b: 2; 3"]


def test_markdown_bold_is_quoted_bare_and_python_stars_kept():
    """Stripping a list item's "- **" left "Traffic**: questions per minute" in answers."""
    from rag.providers.quotable import split_units

    text = ("- **Traffic**: questions per minute, split by route.\n"
            "- **RPM**, requests per minute: how many calls a project may make.\n\n"
            "Call f(*args, **kwargs) to pass them on; 2**10 is 1024 and **kwargs stays.\n\n"
            "| Model | Tier |\n|---|---|\n| **Flash** | free |\n")
    assert split_units(text) == [
        "Traffic: questions per minute, split by route.",
        "RPM, requests per minute: how many calls a project may make.",
        "Call f(*args, **kwargs) to pass them on; 2**10 is 1024 and **kwargs stays.",
        "Model: Flash; Tier: free",
    ]


def test_pdf_line_wraps_are_undone_and_heading_lines_dropped():
    from rag.providers.quotable import split_units

    text = (
        "Time to live\nA cache lives for its time to live. If you do not set one, the TTL is\n"
        "1 hour (as of 2025-09)."
    )
    assert split_units(text) == [
        "A cache lives for its time to live.",
        "If you do not set one, the TTL is 1 hour (as of 2025-09).",
    ]


def test_units_carry_the_heading_line_they_stand_under_and_whether_they_are_list_items():
    """A PDF page's headings are lines of its text, not the chunk's heading path: a unit keeps
    the last one above it, a table row too; a numbered item is an item though the sentence
    splitter cuts after its "1."."""
    from rag.providers.quotable import Quotable, quotable_units

    text = (
        "Prices are per 1M tokens.\nGemini 2.5 Flash\n- Input: $0.30 per 1M tokens.\n"
        "- Output, including thinking: $2.50 per 1M tokens.\n## Gemini 2.5 Flash-Lite\n"
        "1. Input: $0.10 per 1M tokens.\n\n| Model | RPM |\n|---|---|\n| Flash-Lite | 15 |\n"
    )
    assert quotable_units(text) == [
        Quotable("Prices are per 1M tokens.", ""),
        Quotable("Input: $0.30 per 1M tokens.", "Gemini 2.5 Flash", item=True),
        Quotable("Output, including thinking: $2.50 per 1M tokens.", "Gemini 2.5 Flash", item=True),
        Quotable("Input: $0.10 per 1M tokens.", "Gemini 2.5 Flash-Lite", item=True),
        Quotable("Model: Flash-Lite; RPM: 15", "Gemini 2.5 Flash-Lite"),
    ]


def test_a_sentence_wrapped_at_inline_code_stays_one_sentence():
    """HTML extraction puts inline code on lines of its own: a short capitalised line that
    goes on in lower case is the start of a sentence, not a heading, and a blank line in the
    middle of a sentence does not end it."""
    from rag.providers.quotable import split_units

    text = (
        "Lists are slow for this.\n\nTo implement a queue, use\ncollections.deque\nwhich was designed to\n"
        "have fast appends and pops from both ends.  For example:\n\n"
        "The import statement uses this convention: if a package's\n\n__init__.py\n\n"
        "code defines a list named __all__, it is the list of module names to import.\n\n"
        "Basic usage\n\nThe function returns a deque."
    )
    assert split_units(text) == [
        "Lists are slow for this.",
        "To implement a queue, use collections.deque which was designed to have fast appends and pops from both ends.",
        "The import statement uses this convention: if a package's __init__.py code defines a list named __all__, "
        "it is the list of module names to import.",
        "The function returns a deque.",
    ]


def test_a_code_block_is_quoted_without_its_fences_and_apart_from_the_prose_around_it():
    from rag.providers.quotable import split_units

    text = ("To read a page, call urlopen on its address.\n```\n>>> with urlopen(url) as page:\n"
            "...     page.read()\n```\nthe page is closed when the block ends.")
    assert split_units(text) == [
        "To read a page, call urlopen on its address.",
        ">>> with urlopen(url) as page: ... page.read()",
        "the page is closed when the block ends.",
    ]


def test_a_code_block_is_one_unit_quoted_as_code_and_takes_no_sentence_after_it():
    """The Python tutorial's session was quoted as "sentences" ('File "<stdin>", line 1, in
    <module>'), its error line with the prose after it ("IndexError: string index out of range
    However, out of range slice indexes are handled gracefully"), and a "# comment" in a block
    read as a heading (new-user walkthrough, Valgrind, socat, Node.js). A block is one unit,
    quoted after the sentence introducing it (the code alone outranked "However, out of range
    slice indexes are handled gracefully"), with its lines (joined on one line, a session or a
    run of commands read as one); a long one a part at a time."""
    from rag.providers.extractive import ExtractiveAnswerer
    from rag.providers.minilm import shared_minilm
    from rag.providers.quotable import CODE_CHARS, quotable_units
    from rag.types import Passage

    session = ('>>> word[42]  # the word only has 6 characters\nTraceback (most recent call last):\n'
               '  File "<stdin>", line 1, in <module>\nIndexError: string index out of range')
    text = (f"Using an index that is too large is an error:\n\n```\n{session}\n```\n\n"
            "However, out of range slice indexes are handled gracefully when used for slicing.\n\n"
            "```\n# Build it first\nmake all\n\n" + "make check TESTS=unit\n" * (CODE_CHARS // 20) + "```\nDone.")
    units = quotable_units(text)
    joined = " ".join(session.split())
    assert [(u.text, bool(u.code)) for u in units] == [
        ("Using an index that is too large is an error:", False),
        (joined, True),
        ("However, out of range slice indexes are handled gracefully when used for slicing.", False),
        ("# Build it first make all", True),
        # a part too long for one unit: runs of whole lines
        (" ".join(["make check TESTS=unit"] * (CODE_CHARS // 22)), True),
        (" ".join(["make check TESTS=unit"] * (CODE_CHARS // 20 - CODE_CHARS // 22)), True),
    ]
    assert all(u.heading == "" for u in units)  # "# Build it" is a comment, not a heading
    assert units[1].code == session and units[3].code == "# Build it first\nmake all"
    assert units[1].lead == units[0].text and units[0].then == f"\n```\n{session}\n```"
    reply = ExtractiveAnswerer(shared_minilm()).answer(
        "what does word[42] do when the word only has 6 characters?", [Passage(1, text, "tutorial.html")])
    shown = "\n".join(f"  {line}" for line in session.splitlines())
    # with what it shows, its lines kept, the citation after the block
    assert f"- Using an index that is too large is an error:\n  ```\n{shown}\n  ```\n  [1]\n" in reply


def test_a_short_code_block_goes_with_the_sentence_that_introduces_it():
    """"change out of WAL mode using a pragma such as this:" was quoted without the pragma
    (SQLite's manual, HTML); the sentence is scored, the code quoted after it."""
    from rag.providers.quotable import THEN_CHARS, quotable_units

    text = ("One can change out of WAL mode using a pragma such as this:\n\n```\n\nPRAGMA journal_mode=DELETE;\n"
            "\n```\n\nTo turn it on, set the mmap_size to some large value.  For example:\n```\n"
            "gcc -Os -I. \\\n   shell.c sqlite3.c -o sqlite3\n```\nA long listing follows:\n```\n"
            + "x = 1\n" * (THEN_CHARS // 5) + "```\n")
    units = quotable_units(text)
    assert [(u.text, u.then) for u in units[:4]] == [
        ("One can change out of WAL mode using a pragma such as this:", "`PRAGMA journal_mode=DELETE;`"),
        ("PRAGMA journal_mode=DELETE;", ""),  # a question may match the code alone
        # a lead-in too short to quote alone ("For example:") comes with the code, lines as written
        ("To turn it on, set the mmap_size to some large value.",
         "For example:\n```\ngcc -Os -I. \\\n   shell.c sqlite3.c -o sqlite3\n```"),
        ("gcc -Os -I. shell.c sqlite3.c -o sqlite3", ""),
    ]
    assert units[4].text == "A long listing follows:" and not units[4].then  # too long to go with it
    assert units[5].text.startswith("x = 1 x = 1")


def test_a_need_a_manual_states_is_quoted_with_the_sentence_saying_how():
    """mathtools states a need ("the need for showing the equation numbers for only those
    equations actually referenced"), which matches the question, then says how ("In mathtools
    this can be done by setting the key showonlyrefs"): quoted alone, the need answered nothing."""
    from rag.providers.quotable import quotable_units

    text = ("Another problem sometimes faced is the need for showing the equation numbers for only those "
            "equations actually referenced. In mathtools this can be done by setting the key showonlyrefs to "
            "true. You may also want one equation numbered. To do this, use \\noeqref. Numbering all is "
            "possible too.")
    units = quotable_units(text)
    assert units[0].then.startswith("In mathtools this can be done by setting the key showonlyrefs")
    assert not units[1].then  # "You may also want ..." after it points back at nothing
    assert units[2].text == "You may also want one equation numbered." and units[2].then.startswith("To do this")
    assert not units[3].then  # "Numbering all ..." is no answer to what came before
    steps = quotable_units("As an example let's try to define a tag form which puts the equation number in square "
                           "brackets. First we define a brand new tag form: \\newtagform{brackets}{[}{]}")
    assert steps[0].then.startswith("First we define a brand new tag form")


def test_a_manuals_entry_is_quoted_whole_when_short():
    """parskip's option "indent": its first sentence names it and matches the question, the
    next ones say what a user asks (its value when given none). An entry the passage cuts off
    mid-sentence, or a long one, is not quoted after its first sentence."""
    from rag.providers.quotable import quotable_units

    text = ("indent With the package option indent it is possible to explicitly set the paragraph indentation.\n"
            "Using this option without a value keeps the document class indentation unchanged.\n"
            "parfill With package option parfill, the package also adjusts \\parfillskip at the end.\n"
            "If specified without a value then 30pt are assumed, if a value is given that forms the\n")
    assert [(u.text.split()[0], u.then) for u in quotable_units(text)] == [
        ("indent", "Using this option without a value keeps the document class indentation unchanged."),
        ("Using", ""),
        ("parfill", ""),  # cut off mid-sentence
        ("If", ""),
    ]
    whole = text.removesuffix(" that forms the\n") + ".\n2 Differences to the original package"
    assert quotable_units(whole)[2].then.startswith("If specified without a value then 30pt are assumed")
    long = "skip With the option skip you set the space.\n" + "The entry is long and says more than one needs. " * 8
    assert not quotable_units(long)[0].then
    middle = "the LaTeX kernel handles indentation if necessary.\nThe package fixes the spacing in lists."
    assert not quotable_units(middle)[0].then  # a chunk starting mid-sentence starts no entry
    rest = "This option takes a length. If given none, 0pt is assumed for it."
    pointing = f"indent With the option indent you set the indentation.\n{rest}"
    assert quotable_units(pointing)[0].then == rest  # the whole entry, not only the sentence pointing back


def test_a_period_inside_a_short_bracket_ends_no_sentence():
    """"(app. 5/18 ex)" cut mathtools' default rule thickness before its figure."""
    from rag.providers.quotable import split_units

    text = ("The default rule thickness is equal to that of \\underbrace (app. 5/18 ex) and can be changed. "
            "See the list (there are four. More follow in the next chapter, which is long enough) below. "
            "This block ends right here (as said.)\n\n(Then) a new block starts. "
            "The key takes a value in (0, 1]. It is read once [see Sec. 2 for when] at the start.")
    assert split_units(text) == [
        "The default rule thickness is equal to that of \\underbrace (app. 5/18 ex) and can be changed.",
        "See the list (there are four.",  # the bracket closes too far on: a sentence of its own
        "More follow in the next chapter, which is long enough) below.",
        "This block ends right here (as said.)",
        "(Then) a new block starts.",
        "The key takes a value in (0, 1].",  # a half-open interval closes its bracket
        "It is read once [see Sec. 2 for when] at the start.",
    ]


def test_an_abbreviation_ends_no_sentence_before_a_capital_or_a_figure():
    """Octave's "fontsize: scalar, def. 10 Size of the font ..." was cut after "def.", and
    the figure a user asked for began a unit of its own; "e.g. Windows" and "approx. 5 m"
    were cut alike. "etc.", a variable ("the path p."), a unit ("5 ms."), "def." before no value
    and a file's extension ("sendmail.cf.") may still end one."""
    from rag.providers.quotable import split_units

    text = ("Fontname: string, def. \"*\" Name of font used. Fontsize: scalar, def. 10 Size of the font used. "
            "Use a platform, e.g. Windows or Linux, and run it. The cable is approx. 5 meters long. "
            "See Sec. 2 and Fig. 3, as in Knuth et al. 1984. Copy the files, the folders, the links, etc. "
            "Then wait for the copy to finish, about 5 ms. It is done then, and the files are in place. "
            "This is the number of nodes in the path p. If p is cyclic, this is the same. A name is bound in the "
            "function containing the def. See the section on naming for more. Edit a file such as sendmail.cf. "
            "We complicate things later on.")
    assert split_units(text) == [
        'Fontname: string, def. "*" Name of font used.',
        "Fontsize: scalar, def. 10 Size of the font used.",
        "Use a platform, e.g. Windows or Linux, and run it.",
        "The cable is approx. 5 meters long.",
        "See Sec. 2 and Fig. 3, as in Knuth et al. 1984.",
        "Copy the files, the folders, the links, etc.",
        "Then wait for the copy to finish, about 5 ms.",
        "It is done then, and the files are in place.",
        "This is the number of nodes in the path p.",
        "If p is cyclic, this is the same.",
        "A name is bound in the function containing the def.",  # "def." before a value only
        "See the section on naming for more.",
        "Edit a file such as sendmail.cf.",  # a file's extension, not "cf."
        "We complicate things later on.",
    ]


def test_a_period_inside_a_closing_quote_or_bracket_ends_a_sentence_it_holds():
    """GLPK's "(This code may appear only if the presolver is disabled.) GLP_ENOPFS Unable to
    start the search ..." was one unit, the aside glued to the next return code. A label or a
    word in brackets or quotes ends nothing ("'^' (Caret.) Matches", a quoted '.' symbol, the
    mode "auto."), nor does "!" ("(on-screen!) 15 pixels"), nor an ellipsis closing a call's
    arguments, which runs on into the description the call heads."""
    from rag.providers.quotable import split_units

    text = ("(This code may appear only if the presolver is disabled.) GLP_ENOPFS Unable to start the search. "
            'The log says "the run is now done." Then the solver returns its code at once. It is written '
            "“all of it is done.” Then it ends at once.\n\n"
            "'^' (Caret.) Matches the start of the string. The mode is called \"auto.\" This is its default. "
            "Precision is given as a '.' (dot) followed by the digits. The turtle moves (on-screen!) 15 pixels "
            "at a time.\n\n"
            "z = and (x1, x2, . . .) Return the logical AND of all the arguments given.")
    assert split_units(text) == [
        "(This code may appear only if the presolver is disabled.)",
        "GLP_ENOPFS Unable to start the search.",
        'The log says "the run is now done."',
        "Then the solver returns its code at once.",
        "It is written “all of it is done.”",
        "Then it ends at once.",
        "'^' (Caret.) Matches the start of the string.",
        'The mode is called "auto." This is its default.',
        "Precision is given as a '.' (dot) followed by the digits.",
        "The turtle moves (on-screen!) 15 pixels at a time.",
        "z = and (x1, x2, . . .) Return the logical AND of all the arguments given.",
    ]


def test_a_short_list_is_quoted_after_the_sentence_introducing_it():
    """"directories are searched in the following order:" was quoted without the order: its
    items ("/var/tmp") are too short to be units of their own."""
    from rag.providers.quotable import quotable_units

    text = ("On unix-like systems, directories are searched in the following order:\n\n"
            "1. The SQLITE_TMPDIR environment variable\n\n2. /var/tmp\n\n3. /tmp\n\n"
            "The first of the above that is writable is used.\n\n## Windows\n\nWindows searches these folders:\n\n"
            "- the TEMP folder\n")
    units = quotable_units(text)
    assert units[0].then == "The SQLITE_TMPDIR environment variable; /var/tmp; /tmp"
    assert [u.text for u in units[1:3]] == ["The SQLITE_TMPDIR environment variable",
                                            "The first of the above that is writable is used."]
    assert units[3].text == "Windows searches these folders:" and units[3].then == "the TEMP folder"


def test_a_unit_keeps_the_dashes_of_an_option_and_loses_only_its_list_marker():
    from rag.providers.quotable import split_units

    assert split_units("- -DSQLITE_ENABLE_FTS4 turns on full-text search.\n- --skip 1 skips the first row.\n\n"
                       "-1 is returned when the key is missing.\n\n## Heading") == [
        "-DSQLITE_ENABLE_FTS4 turns on full-text search.", "--skip 1 skips the first row.",
        "-1 is returned when the key is missing.",
    ]


def test_a_man_pages_setting_entry_is_one_unit_with_its_short_default():
    """neato(1) lists attributes as "epsilon=n. Sets the cutoff for the solver. The default is
    0.1.": the setting ended a sentence of its own, glued to the end of the entry before
    ("... used as the seed. epsilon=n."), and "The default is 0.1." was too short to be
    quoted, so "what's neato's default epsilon?" was answered with twopi's "The default is
    0.75." (blind set on graphviz-doc), which is now quoted with its entry only. A line in
    brackets titles the entries after it and ends the one before."""
    from rag.providers.quotable import quotable_units

    text = ("start=val. Requests random initial placement and seeds the random number generator. If val is not\n"
            "an integer, the process ID or current time is used as the seed.\n"
            "epsilon=n. Sets the cutoff for the solver. The default is 0.1.\n"
            "(twopi-specific attributes)\n"
            "ranksep=val. Specifies the radial distance in inches between the sequence of rings. The default is 0.75.")
    assert [(u.text, u.then) for u in quotable_units(text)] == [
        ("start=val. Requests random initial placement and seeds the random number generator.",
         "If val is not an integer, the process ID or current time is used as the seed."),
        ("If val is not an integer, the process ID or current time is used as the seed.", ""),
        ("epsilon=n. Sets the cutoff for the solver. The default is 0.1.", ""),
        ("(twopi-specific attributes)", ""),
        ("ranksep=val. Specifies the radial distance in inches between the sequence of rings.",
         "The default is 0.75."),
        ("The default is 0.75.", ""),
    ]
    # quoted with its entry only: alone it names no attribute
    assert [u.text for u in quotable_units(text) if u.entry_part] == ["The default is 0.75."]
    # a short sentence joins an entry only: after prose it is still too short to quote
    prose = "The cache is kept on disk under the data dir. It is small.\nmaxsize=n. Bounds the cache. It is 10."
    assert [u.text for u in quotable_units(prose)] == [
        "The cache is kept on disk under the data dir.", "maxsize=n. Bounds the cache. It is 10."]


def test_a_reference_entry_after_a_sentence_ending_its_line_is_a_unit_of_its_own():
    """A manual's next entry ("playblocking (player)") starts a unit at the period ending the
    line before, though it opens in lower case; "e.g." at a line end ends nothing, nor does
    a qualified name's dot."""
    from rag.providers.quotable import split_units

    text = ("Given limits, begin and end playing at the samples the vector specifies.\nplayblocking (player)\n"
            "playblocking (player, start)\nPlay audio stored in the player object with blocking. Some names, E.g.\n"
            "sound (y), play at once. To measure it, call numpy.\nlinalg.norm(x) on the array.")
    assert split_units(text) == [
        "Given limits, begin and end playing at the samples the vector specifies.",
        "playblocking (player) playblocking (player, start) Play audio stored in the player object with blocking.",
        "Some names, E.g. sound (y), play at once.",
        "To measure it, call numpy. linalg.norm(x) on the array.",  # a qualified name broken at a line end
    ]
    # A key and its description, as parskip's manual lists its options, start a unit too.
    options = ("All of the package options are implemented as key/value options.\nskip With the package option skip "
               "it is possible to set the space.\nIf it is not given then .5\\baselineskip is assumed.\ntocskip By "
               "default the \\parskip is zero within \\tableofcontents, i.e.\nthe Table of contents, as in "
               "Knuth et al.\nin The TeXbook.")
    assert split_units(options) == [
        "All of the package options are implemented as key/value options.",
        "skip With the package option skip it is possible to set the space.",
        "If it is not given then .5\\baselineskip is assumed.",
        "tocskip By default the \\parskip is zero within \\tableofcontents, i.e. the Table of contents, as in "
        "Knuth et al. in The TeXbook.",  # an abbreviation, or a function word, at the line end starts nothing
    ]


def test_each_command_line_option_of_a_manuals_list_is_a_unit_of_its_own():
    """A manual's list of options ("--interior use interior point method") was quoted as one
    run of them all, since many an entry has no period; each option's line now starts a
    unit, with its aliases ("--norc" over "-f Don't read ..."), and its entry's next
    sentences quoted after it. Not a flag a wrapped sentence names ("Unless the" over
    "-globalwrite (or -nosafe) option is enabled")."""
    from rag.providers.quotable import quotable_units, split_units

    glpsol = ("--simplex use simplex method (default)\n--interior use interior point method (LP only)\n"
              "-r filename, --read filename\nread solution from filename\n--wlp filename\nwrite problem to filename")
    assert split_units(glpsol) == [
        "--simplex use simplex method (default)",
        "--interior use interior point method (LP only)",
        "-r filename, --read filename read solution from filename",  # the description's line, then the next option
        "--wlp filename write problem to filename",
    ]
    octave = ("--no-window-system\n-W Disable use of a windowing system. This forces a strictly\nterminal-only "
              "environment.\n--norc\n-f Don't read any of the initialization files at startup.")
    units = quotable_units(octave)
    assert [u.text for u in units] == [
        "--no-window-system -W Disable use of a windowing system.",
        "This forces a strictly terminal-only environment.",
        "--norc -f Don't read any of the initialization files at startup.",
    ]
    assert units[0].then == "This forces a strictly terminal-only environment."  # the rest of its entry
    wrapped = ("delete(string s) deletes the file named by the string s. Unless the\n-globalwrite (or -nosafe) "
               "option is enabled, the file must reside in the current directory.")
    assert split_units(wrapped) == [
        "delete(string s) deletes the file named by the string s.",
        "Unless the -globalwrite (or -nosafe) option is enabled, the file must reside in the current directory.",
    ]
    # Nor one a sentence wraps before without a function word: a line that ends no sentence
    # and is no option's own goes on.
    for prose in ("To build the library with optimisations turned on, compile it using gcc\n-O2 for speed.",
                  "When the result is too large to be represented, the function returns\n-inf and sets errno.",
                  "Some options make the program quieter than its default, for example,\n-q silences output."):
        assert split_units(prose) == [prose.replace("\n", " ")], prose
    # Prose whose lines happen to start with flags: a line ending in a function word goes on.
    argv = ("When the script name is given as '-', sys.argv[0] is set to '-'.  When\n-c command is used, "
            "sys.argv[0] is set to '-c'.  When\n-m module is used, sys.argv[0] is the module's full name.")
    assert split_units(argv) == ["When the script name is given as '-', sys.argv[0] is set to '-'.",
                                     "When -c command is used, sys.argv[0] is set to '-c'.",
                                     "When -m module is used, sys.argv[0] is the module's full name."]


def test_list_items_without_a_full_stop_are_units_of_their_own():
    """A "- " item was read like an option's line ("-o name"): with no full stop before the
    next item, a list's items were quoted as one run-on unit joined by " - "."""
    from rag.providers.quotable import quotable_units

    text = ("Setup\n\n- Install the package with pip install foo\n- Run the server on port 8080 by default\n"
            "- Configure the token in settings\n\nThat is all there is to it.")
    assert [u.text for u in quotable_units(text)] == [
        "Install the package with pip install foo", "Run the server on port 8080 by default",
        "Configure the token in settings", "That is all there is to it."]


def test_a_wrapped_line_of_html_or_markdown_is_no_heading_but_a_pdfs_short_line_is():
    """The Python docs wrap their paragraphs: "When using ZIP_DEFLATED integers 0 through 9 are
    accepted" over "(see zlib for more information)." read as a heading, as a PDF's short
    line is, and was cut from its sentence (85 such lines). HTML and Markdown mark their
    headings with "#" (or a setext underline), so only those are headings there."""
    from rag.filetypes import marks_headings
    from rag.providers.extractive import ExtractiveAnswerer
    from rag.providers.minilm import shared_minilm
    from rag.providers.quotable import quotable_units
    from rag.types import Passage

    text = ("## ZipFile Objects\n\nThe compresslevel parameter controls the compression level.\n"
            "When using ZIP_DEFLATED integers 0 through 9 are accepted\n(see zlib for more information).\n\n"
            "Setext Title\n============\n\nIt has no effect with ZIP_STORED.")
    whole = "When using ZIP_DEFLATED integers 0 through 9 are accepted (see zlib for more information)."
    marked = quotable_units(text, marked=True)
    assert whole in [u.text for u in marked]
    assert marked[-1].heading == "Setext Title"
    # its underline is no text of the unit after it, which starts in lower case ("============
    # httplib2 is a comprehensive HTTP client library", CLI walkthrough)
    [intro] = quotable_units("Introduction\n============\n\nhttplib2 is a comprehensive HTTP client library.\n",
                             marked=True)
    assert (intro.heading, intro.text) == ("Introduction", "httplib2 is a comprehensive HTTP client library.")
    assert whole not in [u.text for u in quotable_units(text)]  # a PDF page's text: a short line is a heading
    assert marks_headings("library/zipfile.html") and marks_headings("notes.MD") and not marks_headings("a.pdf")
    reply = ExtractiveAnswerer(shared_minilm()).answer(
        "which compression levels are accepted with ZIP_DEFLATED?", [Passage(1, text, "library/zipfile.html")])
    assert f"- {whole} [1]" in reply


def test_a_lead_in_under_a_line_read_as_its_heading_is_not_quoted_twice():
    """The Python docs' "PurePath.suffix" over "The file extension of the final component, if
    any:" (a PDF-like heading) made the code's lead-in "The file extension ...: PurePath.suffix
    The file extension ...:", the sentence twice."""
    from rag.providers.quotable import quotable_units

    text = ("PurePath.suffix\nThe file extension of the final component, if any:\n\n"
            "```\n>>> PurePosixPath('setup.py').suffix\n'.py'\n```\n")
    lead_in, code = quotable_units(text)
    assert lead_in.then == "\n```\n>>> PurePosixPath('setup.py').suffix\n'.py'\n```"
    assert code.lead == "The file extension of the final component, if any:"


def test_an_entry_quoting_a_code_block_after_its_lead_in_quotes_the_lead_in_once():
    """A manual's entry is quoted with the rest of it (`then`); a code block in it comes after
    the sentence introducing it, which is in that rest already."""
    from rag.providers.quotable import quotable_units

    text = "--trace Print each step.\nUse it like this to trace a program:\n\n```\nvalgrind --trace=yes ./prog\n```\n"
    entry = quotable_units(text)[0]
    assert entry.then == "Use it like this to trace a program: `valgrind --trace=yes ./prog`"


def test_a_question_in_an_faqs_list_of_questions_takes_no_answer_but_the_answered_one_does():
    """SQLite's FAQ lists its questions before answering them: "What datatypes does SQLite
    support?" took the next listed question, "SQLite lets me insert a string into a database
    column of type integer!", as its answer."""
    from rag.providers.quotable import quotable_units

    listed = ("How do I create an AUTOINCREMENT field?\n\nWhat datatypes does SQLite support?\n\n"
              "SQLite lets me insert a string into a database column of type integer!\n\n"
              "Is SQLite threadsafe for my application?\n\n")
    answered = ("(1) How do I create an AUTOINCREMENT field?\n\nDeclare the column INTEGER PRIMARY KEY.\n\n"
                "Longer answer: it is then one more than the largest key.\n\n"
                "(2) What datatypes does SQLite support?\n\nSQLite uses dynamic typing for every column.\n")
    units = quotable_units(listed + answered)
    assert [u.then for u in units[:4]] == ["", "", "", ""]
    assert units[4].then == "Declare the column INTEGER PRIMARY KEY."
    assert units[7].then == "SQLite uses dynamic typing for every column."


def test_a_fence_line_that_does_not_close_the_block_is_a_line_of_its_code():
    """A "~~~" block showing "```" lines, or a "```ini" line inside a "```" block, toggled the
    answerer between code and prose, so the prose after the block was quoted as code and
    disagreed with the chunker's fences (rag.sentences.code_blocks); a review's repro."""
    from rag.providers.quotable import quotable_units

    text = ("Run this example to see it work:\n\n~~~markdown\nSome text for the example.\n```\nprint('hello')\n```\n"
            "~~~\n\nAfter the block comes prose. It is a sentence.\n")
    units = quotable_units(text)
    assert [(u.text, bool(u.code)) for u in units] == [
        ("Run this example to see it work:", False),
        ("Some text for the example. ``` print('hello') ```", True),
        ("After the block comes prose.", False),
    ]


def test_quoted_code_holding_backticks_is_fenced_longer_and_a_block_alone_opens_its_item():
    """A Markdown sample's "```" lines inside quoted code closed the reply's own fence (and a
    "`" inside inline code its span); a code unit quoted without a lead-in is an item that
    opens with its block, and a block the passage cuts off says so before the mark."""
    from rag.providers.quotable import CUT_MARK, as_code, inline_code, reply_item

    assert inline_code("a `b` c") == "``a `b` c``" and inline_code("`x`") == "`` `x` ``"
    sample = "Write this:\n```\nprint(1)\n```"
    assert as_code(sample) == f"\n````\n{sample}\n````"
    assert as_code("\nls -la\n\n") == "`ls -la`"  # one line, blank lines around it aside
    assert reply_item("Say it:", "[2]") == "- Say it: [2]"
    assert reply_item(as_code("ls\npwd"), "[3]") == "- ```\n  ls\n  pwd\n  ```\n  [3]"
    cut = "Run:" + as_code("ls\n\npwd") + CUT_MARK
    assert reply_item(cut, "[1]") == "- Run:\n  ```\n  ls\n\n  pwd\n  ```\n  … [1]"


def test_a_sentence_quoted_with_the_lead_in_after_it_brings_the_lead_ins_code():
    """"... pads a numeric string on the left with zeros." was quoted with "It understands about
    plus and minus signs:" (it points back) but without the example that sentence introduces;
    a reply then quoted the lead-in a second time, above the code (Python docs, py13)."""
    from rag.providers.extractive import ExtractiveAnswerer
    from rag.providers.minilm import shared_minilm
    from rag.providers.quotable import quotable_units
    from rag.types import Passage

    code = ">>> '12'.zfill(5)\n'00012'\n>>> '-3.14'.zfill(7)\n'-003.14'"
    text = ("There is another method, str.zfill(), which pads a numeric string on the left with zeros. "
            f"It understands about plus and minus signs:\n\n```\n{code}\n```\n\nThis method is rarely needed.\n")
    first = quotable_units(text)[0]
    assert first.then == f"It understands about plus and minus signs:\n```\n{code}\n```"
    reply = ExtractiveAnswerer(shared_minilm()).answer(
        "how do I pad a number with zeros on the left?", [Passage(1, text, "inputoutput.html")])
    assert "zeros. It understands about plus and minus signs:\n  ```\n  >>> '12'.zfill(5)\n" in reply
    assert reply.count("It understands about plus and minus signs:") == 1


def test_a_subscripted_name_in_quoted_prose_is_quoted_as_code_not_read_as_a_citation():
    """"reads the first argument with sys.argv[1]" in a document's prose became "sys.argv" and
    a chip citing source 1 (a browser walkthrough); code spans and blocks are left as they are."""
    from rag.chain import cited_numbers
    from rag.providers.extractive import ExtractiveAnswerer
    from rag.providers.minilm import shared_minilm
    from rag.providers.quotable import subscripts_as_code
    from rag.types import Passage

    assert subscripts_as_code("reads sys.argv[1] and a[0][2], not `b[1]` nor x[2, 3].") == (
        "reads `sys.argv[1]` and `a[0][2]`, not `b[1]` nor `x[2, 3]`.")
    text = "The script reads the first argument with sys.argv[1] and prints a greeting with it.\n"
    reply = ExtractiveAnswerer(shared_minilm()).answer(
        "how does the script read the first argument?", [Passage(2, text, "script.md")])
    assert "with `sys.argv[1]` and prints" in reply and cited_numbers(reply, 3) == [2]


def test_an_faq_question_answered_by_a_code_block_quotes_its_lines_and_reference_marks_spare_code():
    """A review's repros: an FAQ's question took its code answer joined on one line, and a
    document's reference mark after inline code ("`x` [3]") was removed with the code."""
    from rag.providers.quotable import quotable_units, without_reference_marks

    text = ("## FAQ\n\nHow do I save my changes to the repository?\n\n```\ngit add --all .\n"
            "git commit -m 'my message'\n```\n")
    question = quotable_units(text, marked=True)[0]
    assert question.then == "\n```\ngit add --all .\ngit commit -m 'my message'\n```"
    assert without_reference_marks("use `x` [3] and y [4].") == "use `x` and y."


def test_a_web_pages_footnotes_are_dropped_and_every_subscript_is_code():
    """A review's repros: "2019[4]", "f()[1]" and "matrix[i][1]" left marks the reply read
    as citations of passages 4 and 1. After a capitalised word a mark stays, as code: a
    second review found "Items[0]" and Mathematica's "Prime[5]" lost their subscripts, and
    "{"ids":[1,2]}" its array, when read as footnotes."""
    from rag.chain import cited_numbers
    from rag.providers.quotable import subscripts_as_code, without_reference_marks

    def quoted(text: str) -> str:
        return subscripts_as_code(without_reference_marks(text))

    assert quoted("Paris[3] hosted it in 2019[4] and 3.11[2], as styles.[3] and “Vienna.”[5][6] say, up 50%[7].") == (
        "`Paris[3]` hosted it in 2019 and 3.11, as styles. and “Vienna.” say, up 50%.")
    assert quoted("In the 1990s[2] it ran at 40°C[3] or 104°F[4], turned 90°[5], not at x1990s[6].") == (
        "In the 1990s it ran at 40°C or 104°F, turned 90°, not at `x1990s[6]`.")
    assert quoted("Set Items[0] and Prime[5], and send {\"ids\":[1,2]} or x[0].") == (
        "Set `Items[0]` and `Prime[5]`, and send {\"ids\":`[1,2]`} or `x[0]`.")
    assert quoted("See [the guide][1] or [docs][2], and a[0][2].") == "See [the guide] or [docs], and `a[0][2]`."
    assert quoted("Use f()[1], matrix[i][1], obj.get(x)[0] and items[2], not `b[1]`.") == (
        "Use `f()[1]`, `matrix[i][1]`, `obj.get(x)[0]` and `items[2]`, not `b[1]`.")
    assert cited_numbers(quoted("Use f()[1] in 2019[4] and matrix[i][1].") + " [2]", 4) == [2]
    # Any other mark glued to what stands before it is the document's, quoted as code: the
    # reply puts a space before its own (a review's repros: these read as citations).
    glued = quoted("Send {\"ids\":[1,2]}, call f(x, y,[1]) or \\newcommand{\\abs}[1]; (1879–1955)[3] was.")
    assert glued == "Send {\"ids\":`[1,2]`}, call f(x, y,`[1]`) or \\newcommand{\\abs}`[1]`; (1879–1955)`[3]` was."
    assert cited_numbers(glued + " [2]", 4) == [2]


def test_a_quoted_code_block_keeps_the_language_its_fence_names():
    """"```python" was quoted as "```": the reply's block lost the highlighting the document
    gave it, offline as it showed in the UI."""
    from rag.providers.extractive import ExtractiveAnswerer
    from rag.providers.minilm import shared_minilm
    from rag.providers.quotable import quotable_units
    from rag.text import fence_language
    from rag.types import Passage

    assert [fence_language(f) for f in ("```python", "~~~ bash", "```{.ini}", "````", "```  c++ title",
                                        "```{#lst:main .python}")] == ["python", "bash", "ini", "", "c++", "python"]
    text = ("## Reading arguments\n\nRead the first argument like this:\n\n```python\nimport sys\n"
            "name = sys.argv[1]\nprint(len(name))\n```\n")
    units = quotable_units(text, marked=True)
    assert units[0].then == "\n```python\nimport sys\nname = sys.argv[1]\nprint(len(name))\n```"
    assert (units[1].code.splitlines()[0], units[1].lang) == ("import sys", "python")
    reply = ExtractiveAnswerer(shared_minilm()).answer(
        "how do I read the first argument of my script?", [Passage(1, text, "args.md")])
    assert "  ```python\n  import sys\n" in reply, reply
