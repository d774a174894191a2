import numpy as np
import pytest

from rag.providers import get_generator
from rag.providers.offline import OfflineProvider
from rag.providers.quotable import Quotable
from rag.settings import Settings
from rag.types import AnswerTask, Passage, Prompt


def test_no_key_means_offline_provider(tmp_path):
    provider = get_generator(Settings(data_dir=tmp_path, api_key=None))
    assert isinstance(provider, OfflineProvider)
    assert provider.online is False


def test_real_minilm_embeddings_rank_paraphrase_above_unrelated(offline_provider):
    got = offline_provider.embed_documents(
        [
            "How do I retry after a rate limit error?",
            "What should I do when the API answers 429 too many requests?",
            "The cat slept on a warm windowsill all afternoon.",
        ]
    )
    v = np.array(got.vectors)
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert got.usage.prompt_tokens > 20


def test_embedding_is_independent_of_batch_padding(offline_provider):
    short = "rate limits"
    alone = np.array(offline_provider.embed_query(short).vectors[0])
    padded = np.array(offline_provider.embed_documents([short, "a much longer text " * 30]).vectors[0])
    assert float(alone @ padded) > 0.9999


def test_a_text_bringing_its_word_pieces_embeds_as_the_same_text_tokenised_here(offline_provider):
    """Ingest hands MiniLM each chunk's word pieces (`Tokenized`): the vectors and the
    counted tokens must be those of the plain text, truncation to 256 pieces included."""
    from rag.providers.minilm import MAX_TOKENS
    from rag.providers.wordpieces import Tokenized

    model = offline_provider.model
    texts = ["rate limits", "Retry after a 429 error, with backoff. " * 40, "café naïve — «quoted» 😀"]
    given = [Tokenized(t, model.word_pieces(t).ids) for t in texts]
    plain, plain_tokens = model.embed_counted(texts)
    pieces, pieces_tokens = model.embed_counted([given[0], texts[1], given[1], given[2]])
    assert np.allclose(pieces[[0, 2, 3]], plain, atol=1e-6) and np.allclose(pieces[1], plain[1], atol=1e-6)
    assert pieces_tokens - plain_tokens == min(model.count_tokens(texts[1]), MAX_TOKENS - 2)
    assert model.count_tokens(texts[1]) > MAX_TOKENS


@pytest.mark.parametrize("text", [
    "Retry on 429, then back off: 1 s, 2 s, 4 s... (capped at 30 s).",
    "naïve café — «quoted» 😀 ﬁle 東京は大きい",
    "tab\tsep\r\nnew line, NBSP\u00a0here, thin\u2009space, zero\u200bwidth",
    "vertical\x0btab and form\x0cfeed and unit\x1fseparator",
    "line\u2028separator and paragraph\u2029separator and next\x85line",
    "a" * 150 + " then words, " + "pneumonoultramicroscopicsilicovolcanoconiosis" * 2,
    "",
])
def test_word_pieces_are_the_tokenizers_own_whatever_the_spaces_and_letters(text):
    """`word_pieces` tokenises a text run by run (between spaces) and keeps each run's pieces:
    twice over, so the kept ones are read too, the ids must be the tokenizer's for the whole
    text, and every piece must start inside the run it belongs to."""
    from rag.providers.minilm import MiniLM

    model = MiniLM(workers=1)
    expected = model.loaded_tokenizer().encode(text).ids[1:-1]
    for _ in range(2):
        pieces = model.word_pieces(text)
        assert pieces.ids.tolist() == expected
        assert list(pieces.starts) == sorted(pieces.starts) and len(pieces.starts) == len(expected)
        assert all(not text[s].isspace() for s in pieces.starts)


def test_word_pieces_stay_exact_when_the_kept_runs_are_dropped(monkeypatch):
    """The kept runs are bounded (`RUNS_KEPT`): dropping them when full loses nothing but time."""
    from rag.providers import minilm

    monkeypatch.setattr(minilm, "RUNS_KEPT", 2)
    model = minilm.MiniLM(workers=1)
    text = "alpha beta gamma delta, alpha epsilon " + "x" * 150 + " beta"
    assert model.word_pieces(text).ids.tolist() == model.loaded_tokenizer().encode(text).ids[1:-1]
    assert len(model._runs) <= 2


def test_a_tokenized_text_keeps_its_ids_when_pickled_or_copied():
    import copy
    import pickle
    from array import array

    from rag.providers.wordpieces import Tokenized

    text = Tokenized("rate limits", array("H", [3446, 6537]))
    for again in (pickle.loads(pickle.dumps(text)), copy.deepcopy(text)):
        assert isinstance(again, Tokenized) and again == "rate limits" and again.ids == text.ids


def test_batches_spread_over_workers_give_the_vectors_of_one_worker_in_the_callers_order():
    """MiniLM runs a call's batches on several threads at once: each text must still get its
    own vector, in the order given, as one thread running them in turn gives."""
    from rag.providers.minilm import MiniLM

    texts = [f"Fact {i}: " + "the retry delay doubles after each 429 error " * (i % 7 + 1) for i in range(50)]
    parallel, parallel_tokens = MiniLM(workers=3).embed_counted(texts)
    serial, serial_tokens = MiniLM(workers=1).embed_counted(texts)
    assert parallel.shape == (50, 384)
    assert np.allclose(parallel, serial, atol=1e-6)
    assert parallel_tokens == serial_tokens
    assert all(float(parallel[i] @ parallel[i + 1]) < 0.9999 for i in range(0, 49, 7))  # not all alike


def test_batches_are_cut_by_padded_size_and_count_and_cover_every_text_once():
    from rag.providers.minilm import MiniLM

    model = MiniLM(workers=1)
    lengths = [12] * 70 + [200] * 9 + [700]
    parts = model.batches(lengths)
    assert sorted(i for part in parts for i in part) == list(range(len(lengths)))
    for part in parts:
        widest = max(lengths[i] for i in part)
        assert len(part) <= model.batch_size
        assert len(part) * widest <= model.batch_tokens or len(part) == 1  # one text over the budget goes alone
    assert [len(p) for p in parts] == [32, 32, 6, 5, 4, 1]  # short texts by count, long ones by size


def test_extractive_answer_quotes_and_cites_the_supporting_passage(offline_provider):
    passages = (
        Passage(1, "Streaming sends partial results as server-sent events. Each event is a JSON chunk.", "a.md"),
        Passage(2, "When you receive a 429 error, wait for the retry delay the server suggests, then retry "
                   "with exponential backoff. Never retry more than five times.", "b.pdf", page=3),
    )
    gen = offline_provider.generate(
        Prompt.of("x", task=AnswerTask("What should I do after a 429 error?"), passages=passages)
    )
    assert "[2]" in gen.text and "retry" in gen.text
    assert "Offline mode" in gen.text
    assert "[1]" not in gen.text


def test_extractive_answer_says_when_documents_do_not_answer(offline_provider):
    passages = (Passage(1, "Streaming sends partial results as server-sent events to the client.", "a.md"),)
    gen = offline_provider.generate(
        Prompt.of("x", task=AnswerTask("Who won the football world cup in 1954?"), passages=passages)
    )
    assert "do not seem to answer" in gen.text


def test_stream_yields_the_same_text_and_final_usage(offline_provider):
    prompt = Prompt.of("hello there")
    deltas = list(offline_provider.stream(prompt))
    assert "".join(d.text for d in deltas) == "hello there"
    assert deltas[-1].final and deltas[-1].usage.prompt_tokens > 0
    assert offline_provider.count_tokens("hello there") == 2


def test_table_rows_are_quoted_with_their_column_names(offline_provider):
    table = (
        "### Free tier limits (as of 2025-09)\n\n| Model | RPM | RPD |\n|---|---|---|\n"
        "| gemini-2.5-flash | 10 | 250 |\n| gemini-2.5-pro | 5 | 100 |\n"
    )
    passages = (Passage(1, table, "quotas.md", heading="Quotas > Free tier limits (as of 2025-09)"),)
    gen = offline_provider.generate(
        Prompt.of("x", task=AnswerTask("What are the free tier limits of gemini-2.5-pro?"), passages=passages)
    )
    assert "Model: gemini-2.5-pro; RPM: 5; RPD: 100 [1]" in gen.text


def test_a_list_item_is_quoted_under_its_heading_so_items_of_two_lists_stay_apart(offline_provider):
    """Quoted bare, "Input: $0.30 per 1M tokens" and "Input: $0.10 per 1M tokens" of two
    models' price lists read alike; the heading above each says which model it is about,
    and it also ranks the item: the question names the model, the item does not."""
    prices = Passage(1, (
        "The price list\nAll prices are list prices in US dollars.\n"
        "Gemini 2.5 Flash\n- Input (text, image, video): $0.30 per 1M tokens.\n- Output: $2.50 per 1M tokens.\n"
        "Gemini 2.5 Flash-Lite\n- Input: $0.10 per 1M tokens.\n- Output: $0.40 per 1M tokens.\n"
    ), "pricing.pdf", page=1, heading="Pricing > The price list")
    reply = ask_offline(offline_provider, "What does Gemini 2.5 Flash-Lite charge for input?", prices)
    assert "- Gemini 2.5 Flash-Lite — Input: $0.10 per 1M tokens. [1]" in reply
    prices_quoted = [line for line in reply.splitlines() if "per 1M tokens" in line]
    assert all(line.startswith(("- Gemini 2.5 Flash — ", "- Gemini 2.5 Flash-Lite — ")) for line in prices_quoted)


def test_a_reply_quotes_the_code_its_sentence_introduces(offline_provider):
    passage = Passage(1, "The WAL journaling mode is persistent: it stays after the database is closed.\n\n"
                         "One can explicitly change out of WAL mode using a pragma such as this:\n\n```\n"
                         "PRAGMA journal_mode=DELETE;\n```\n", "wal.html")
    reply = ask_offline(offline_provider, "how do I change out of WAL mode again?", passage)
    assert "such as this: `PRAGMA journal_mode=DELETE;` [1]" in reply
    assert reply.count("journal_mode=DELETE") == 1  # the code, also a unit of its own, is quoted once


def ask_offline(provider, question, *passages):
    prompt = Prompt.of("x", task=AnswerTask(question), passages=tuple(passages))
    return provider.generate(prompt).text


def test_question_kinds_and_the_units_that_fit_them():
    from rag.providers.extractive import fits_kind, question_kind

    assert question_kind("How many requests per minute does the free tier allow?") == "number"
    # asked for as a superlative, a speed or a bill: still a figure
    assert question_kind("What is the longest our client ever sleeps between two tries?") == "number"
    assert question_kind("How quickly does the local model turn passages into vectors?") == "number"
    assert question_kind("If we answer ten thousand questions a day, what is the daily bill?") == "number"
    assert question_kind("What does Flash-Lite charge per million output tokens?") == "number"
    assert question_kind("How do I reduce my bill?") == "steps"  # how to do something with it
    assert question_kind("What is the most common way to read a file?") == "other"
    assert question_kind("When was the 2.5 family released?") == "date"
    assert question_kind("how do I force callers to pass arguments by name?") == "steps"
    assert question_kind("Which model answers long prompts?") == "name"
    assert fits_kind("The limit is 250 requests per day.", "number")
    assert not fits_kind("The limit depends on the tier.", "number")
    assert fits_kind("Put a * before the first keyword-only parameter.", "steps")


def test_a_question_about_something_the_passages_never_mention_is_refused_naming_it(offline_provider):
    from rag.eval.metrics import is_refusal

    limits = Passage(1, "Gemini 2.5 Pro allows 5 requests per minute on the free tier and 150 on Tier 1.", "quotas.md")
    refused = ask_offline(offline_provider, "What is the context window of Gemini 1.5 Pro?", limits)
    assert is_refusal(refused) and "never mention 1.5" in refused
    assert "never mention Helm" in ask_offline(offline_provider, "Which Helm chart runs it on Kubernetes?", limits)
    # A question's own quantities are not key terms: the documents need not repeat them.
    answered = ask_offline(offline_provider, "How many requests can 3,000 users make on Tier 1 with 2.5 Pro?", limits)
    assert not is_refusal(answered) and "150 on Tier 1" in answered


def test_a_default_or_version_asked_for_and_stated_by_no_quote_is_refused_saying_so(offline_provider):
    from rag.eval.metrics import is_refusal

    setting = Passage(1, "The function max_recursion_depth sets a limit on how deeply a function may call itself. "
                         "Query or set it with max_recursion_depth (new_val).", "octave.pdf")
    refused = ask_offline(offline_provider, "what's the default value of max_recursion_depth?", setting)
    assert is_refusal(refused) and "state no default" in refused
    assert "sets a limit on how deeply a function may call itself. [1]" in refused  # what they do say, cited
    stated = Passage(2, "The function max_recursion_depth sets a limit on how deeply a function may call itself. "
                        "The default value is 256.", "octave.pdf")
    answered = ask_offline(offline_provider, "what's the default value of max_recursion_depth?", stated)
    assert not is_refusal(answered) and "The default value is 256" in answered
    # ... or stated in a passage about the subject none of whose units was quoted (CLI walkthrough:
    # the csv docs' "Dialect.quoting ... defaults to QUOTE_MINIMAL" was retrieved, the reply refused)
    writer = Passage(8, "csv.writer(csvfile, dialect='excel', **fmtparams) Return a writer object responsible for "
                        "converting the user's data into delimited strings on the given file-like object. The quoting "
                        "behaviour of csv.writer is controlled by its quoting argument, one of the QUOTE_* constants.",
                     "library/csv.html", heading="csv > Module Contents")
    dialect = Passage(9, "Dialects support the following attributes. Dialect.delimiter A one-character string used "
                         "to separate fields. It defaults to ','. Dialect.quoting Controls when quotes should be "
                         "generated by the writer and recognised by the reader. It can take on any of the QUOTE_* "
                         "constants and defaults to QUOTE_MINIMAL.", "library/csv.html", heading="csv > Dialects")
    quoting = ask_offline(offline_provider, "What is the default quoting behaviour of csv.writer?", writer, dialect)
    assert not is_refusal(quoting) and "defaults to QUOTE_MINIMAL. [9]" in quoting
    # a default stated of something else, in a passage without the question's key term, is none
    other = Passage(7, "The default depth value is Inf, which includes all descendants of the folder.", "octave.pdf")
    refused = ask_offline(offline_provider, "what's the default value of max_recursion_depth?", setting, other)
    assert is_refusal(refused) and "state no default" in refused
    # asked how to do something with a default, the quotes speak of it: answered
    restore = Passage(3, "Call defaultpen() with no argument to restore the default pen.", "asy.pdf")
    assert not is_refusal(ask_offline(offline_provider, "how do I get the default pen back?", restore))
    # a version asked for: refused without one, answered with one
    option = Passage(4, "The -lsp option starts the language server for editors that speak the protocol.", "asy.pdf")
    refused = ask_offline(offline_provider, "which asymptote version added the -lsp language server option?", option)
    assert is_refusal(refused) and "name no version or year" in refused
    added = Passage(5, "The -lsp option, added in version 2.71, starts the language server.", "asy.pdf")
    assert not is_refusal(ask_offline(offline_provider, "which asymptote version added the -lsp option?", added))
    # "how can my program find out which version ...": a how-to, answered by a function's name
    linked = Passage(6, "The routine glp_version returns the version of the GLPK library linked.", "glpk.pdf")
    assert not is_refusal(ask_offline(offline_provider, "how can my program find out which glpk version it linked?",
                                      linked))


def test_what_reads_as_a_default_or_version_asked_for_or_stated_and_what_does_not(offline_provider):
    """The review's cases: a question about "--version" or "version control" asks for no
    version; a measure ("1.5 seconds") states none; an identifier ("DefaultClient") states no
    default, "when no timeout is given" does; a date under a label of its own is no path."""
    from rag.eval.metrics import is_refusal

    option = Passage(1, "The --version option prints the program's name and release number.", "cli.md")
    assert not is_refusal(ask_offline(offline_provider, "What does the --version option print?", option))
    control = Passage(2, "Version control records the changes made to a set of files over time.", "git.md")
    assert not is_refusal(ask_offline(offline_provider, "What is version control?", control))
    retry = Passage(3, "The --retry flag of fetchall waits 1.5 seconds between tries.", "cli.md")
    assert is_refusal(ask_offline(offline_provider, "Which version of fetchall added the --retry flag?", retry))
    client = Passage(4, "DefaultClient sends each request over one pooled connection.", "api.md")
    assert is_refusal(ask_offline(offline_provider, "What is the default timeout of DefaultClient?", client))
    waits = Passage(5, "The client's timeout: it waits 30 seconds when no timeout is given.", "api.md")
    assert "30 seconds" in ask_offline(offline_provider, "What is the default timeout of the client?", waits)
    dated = Passage(6, "gemrag 2 release date: 12/05/2021", "news.md")
    assert "12/05/2021" in ask_offline(offline_provider, "When was gemrag 2 released?", dated)
    # a whole number states a version as a floor only, not as a count
    floor = Passage(7, "The bindings of graphkit need Python 3 or newer.", "install.md")
    needs = ask_offline(offline_provider, "which python version do graphkit's bindings need?", floor)
    assert "Python 3 or newer" in needs and not is_refusal(needs)
    count = Passage(8, "The bindings of graphkit need 3 files from the build.", "install.md")
    assert is_refusal(ask_offline(offline_provider, "which python version do graphkit's bindings need?", count))


def test_a_line_that_only_points_elsewhere_is_quoted_only_when_asked_for(offline_provider):
    page = Passage(1, "# pathlib — Object-oriented filesystem paths\n\nSource code: Lib/pathlib.py\n\n"
                      "This module offers classes representing filesystem paths with semantics appropriate "
                      "for different operating systems.", "library/pathlib.html")
    about = ask_offline(offline_provider, "pathlib: what does the module offer?", page)
    assert "This module offers classes" in about and "Lib/pathlib.py" not in about
    assert "Source code: Lib/pathlib.py" in ask_offline(offline_provider, "where is the source code of pathlib?", page)
    # a label of anything but a reference gives a value
    prefix = Passage(2, "Install prefix: /usr/local/octave", "install.md")
    assert "/usr/local/octave" in ask_offline(offline_provider, "which octave folder is used?", prefix)
    nginx = Passage(3, "Location: /etc/nginx/nginx.conf", "nginx.md")
    assert "/etc/nginx/nginx.conf" in ask_offline(offline_provider, "Where does nginx read its configuration from?",
                                                  nginx)


def test_quoting_stops_at_the_reading_budget_not_at_a_count_of_sentences(offline_provider):
    from rag.providers.extractive import Scored

    answerer = offline_provider.answerer
    passages = [Passage(n, "", f"{n}.md") for n in (1, 2)]

    def scored(length, scores):
        def text(i):  # distinct words: no unit is a near-duplicate of another
            return " ".join(f"w{i}n{j}" for j in range(length // 6))

        units = [Scored(passages[i % 2], Quotable(text(i)), i, s) for i, s in enumerate(scores)]
        return sorted(units, key=lambda u: u.score, reverse=True)

    short = answerer.pick(scored(40, [0.9 - 0.03 * i for i in range(12)]), passages)
    assert len(short) == answerer.max_sentences  # short sentences: the count bounds the reply
    long = answerer.pick(scored(answerer.reply_chars * 2 // 3, [0.9, 0.8, 0.7, 0.6]), passages)
    assert len(long) == 2  # two long sentences fill the budget; the second is quoted whole
    assert sum(len(s.sentence) for s in long[:1]) < answerer.reply_chars <= sum(len(s.sentence) for s in long)
    weak = answerer.pick(scored(40, [0.9, 0.8, 0.57, 0.5]), passages)
    assert sorted(s.score for s in weak) == [0.57, 0.8, 0.9]  # under 60% of the best is not quoted
    assert [(s.passage.n, s.position) for s in short] == sorted((s.passage.n, s.position) for s in short)
    assert answerer.pick(scored(40, [0.29]), passages) == []  # below the support floor: refused


def test_a_unit_saying_a_kept_one_and_a_little_more_replaces_it_a_run_of_entries_does_not(offline_provider):
    """"The default colormap is returned." kept first made "... restores the default colormap
    (the viridis map with 64 entries)." a near duplicate, and the answer was never quoted; a
    PDF's run of function entries holding a kept sentence's words still is one."""
    from rag.providers.extractive import Scored

    answerer = offline_provider.answerer
    passage = Passage(1, "", "octave.pdf", 886)
    short = Scored(passage, Quotable("The default colormap is returned."), 3, 0.75)
    more = Scored(passage, Quotable('The new colormap is returned. colormap ("default") restores the default colormap '
                                    "(the viridis map with 64 entries)."), 5, 0.70)
    assert [s.sentence for s in answerer.pick([short, more], [passage])] == [more.sentence]
    entries = "; ".join(f"map{i} (x) draws {i} lines" for i in range(9))
    run = Scored(passage, Quotable(f"The default colormap is returned; {entries}"), 7, 0.70)
    assert [s.sentence for s in answerer.pick([short, run], [passage])] == [short.sentence]
    assert [s.sentence for s in answerer.pick([more, short], [passage])] == [more.sentence]  # said already
    code = "`colormap ('default')`"
    lead_in = Scored(passage, Quotable("To reset the colormap, run this command:", then=code), 1, 0.8)
    longer = Scored(passage, Quotable("To reset the colormap of the current figure, run this command in the prompt:"),
                    9, 0.7)
    assert answerer.pick([lead_in, longer], [passage]) == [lead_in]  # the code it introduces stays quoted
    small = Scored(passage, Quotable("Colormap default returned."), 1, 0.8)
    grown = Scored(passage, Quotable("Colormap default returned, viridis map, sixty four entries."), 2, 0.75)
    huge = Scored(passage, Quotable("Colormap default returned, viridis map, sixty four entries, perceptually uniform, "
                                    "dark blue through green to yellow, replacing jet."), 3, 0.7)
    assert [s.sentence for s in answerer.pick([small, grown, huge], [passage])] == [grown.sentence]  # once
    # With the count of units full, a unit replacing a kept one still comes in; no other does.
    words = ("axes", "legend", "title", "grid", "ticks", "labels", "lights", "camera")
    others = [Scored(passage, Quotable(f"The {w} property belongs to {w} objects only."), 10 + n, 0.74)
              for n, w in enumerate(words)]
    full = answerer.pick([short, *others[: answerer.max_sentences - 1], more, others[-1]], [passage])
    assert len(full) == answerer.max_sentences and more in full and short not in full and others[-1] not in full


def test_units_are_chosen_with_their_passages_rank_but_refused_on_their_own_support(offline_provider):
    from rag.providers.extractive import Scored

    answerer = offline_provider.answerer
    question = "How many vacation days do employees get?"
    first = Passage(1, "New employees get 20 vacation days in their first year.", "policy.md")
    second = Passage(2, "Employees get 25 vacation days per year.", "handbook.md")
    support = answerer.support(question, [first, second])
    weaker, stronger = sorted(support.scored, key=lambda s: s.score)
    assert weaker.passage is first and stronger.passage is second  # the later passage's unit answers better...
    assert support.scored[0].passage is first  # ... but the first passage's comes first, by its prior
    assert (weaker.prior, stronger.prior) == (answerer.rank_prior, answerer.rank_prior / 2)
    assert support.best == stronger.score  # the refusal reads support, not the prior
    assert answerer.support(question, [second, first]).scored[0].passage is second

    # The floor reads support plus prior, the refusal support alone: a first passage's unit
    # under the support floor is quoted beside a supported one, but never alone.
    top, later = Passage(1, "", "a.md"), Passage(4, "", "b.md")
    weak = Scored(top, Quotable("vacation days left over"), 0, answerer.min_support - 0.18, answerer.rank_prior)
    fine = Scored(later, Quotable("vacation requests go to the manager"), 0, answerer.min_support + 0.02,
                  answerer.rank_prior / 4)
    assert weak.ranking > answerer.min_support
    assert answerer.pick([fine, weak], [top, later]) == [weak, fine]
    assert answerer.pick([weak], [top]) == []


def test_a_sentence_sharing_a_question_word_in_another_form_is_quoted(offline_provider):
    passage = Passage(1, "A picture is translated with shift(z). The cafeteria opens at noon.", "asymptote.pdf", 40)
    answer = ask_offline(offline_provider, "How do I translate pictures?", passage)  # "pictures", "translate"
    assert "translated with shift(z)" in answer and "cafeteria" not in answer


def test_units_sharing_no_word_with_the_question_are_never_quoted(offline_provider):
    passage = Passage(1, "Receipts are required for every expense above 25 euros. The cafeteria opens at noon.",
                      "handbook.pdf", 3)
    answer = ask_offline(offline_provider, "Which expenses need receipts?", passage)
    assert "Receipts are required" in answer and "cafeteria" not in answer


def test_the_offline_judge_scores_the_answer_its_task_carries_not_the_question(offline_provider):
    from rag.eval.judge import judge

    shown = (Passage(1, "Quotas reset daily at midnight Pacific time.", "limits.md"),)
    supported = judge(offline_provider, "When do penguins migrate?", "", "Quotas reset daily [1].", shown, "lite")
    unsupported = judge(offline_provider, "When do quotas reset?", "", "Penguins migrate in winter.", shown, "lite")
    assert supported.method == "lexical" and supported.faithfulness == 1.0
    assert unsupported.faithfulness == 0.0


def test_the_offline_rewrite_reads_the_history_its_task_carries(offline_provider):
    from rag.rewrite import standalone
    from rag.types import Message

    history = (Message("user", "How many vacation days do employees get?"), Message("model", "25 days [1]."))
    rewritten = standalone(offline_provider, "Can they be carried over?", history, "lite")
    assert rewritten.question == "Can they be carried over (many vacation days employees get)?"


def test_support_exposes_the_signals_a_refusal_reads(offline_provider):
    vacation = Passage(1, "Employees receive 25 days of paid vacation per year. Unused days carry over.",
                       "handbook.pdf", 2, score=1.0)
    other = Passage(2, "Passwords must be rotated every 90 days.", "security.md", score=0.4)
    support = offline_provider.answerer.support("How many vacation days do employees get?", [vacation, other])
    assert support.scored[0].passage is vacation and support.best == max(s.score for s in support.scored) > 0.3
    assert support.missing == () and support.margin == 0.6 and support.top_score == 1.0
    assert support.coverage == 0.6 and not support.kind_absent  # 3 of its 5 content words; "25" the number asked
    far = offline_provider.answerer.support("How many vacation days do employees get?", [other])
    assert far.best < support.best and far.similarity < support.similarity and far.coverage < 0.6


def test_a_word_no_document_holds_refuses_only_where_the_question_rests_on_it(offline_provider):
    """`unheard_of` words (the chain finds them in no document): "gym" carries the
    question and nothing in the passages means it; "canteen" has "cafeteria" beside it;
    "please" carries nothing."""
    answerer = offline_provider.answerer
    parking = [Passage(1, "Parking costs 3 euros per day, deducted from salary monthly.", "faq.html",
                       heading="Parking FAQ > How much does it cost?"),
               Passage(2, "Meals are reimbursed up to 45 euros per day.", "handbook.md", heading="Expenses")]
    gym = "How much does the gym membership cost per month?"
    assert answerer.unheard(gym, parking, frozenset({"gym", "membership"})) == ("gym",)
    assert answerer.answer(gym, parking, unheard_of=frozenset({"gym"})).startswith(
        "The documents do not seem to answer this question: none of the documents mentions gym.")
    assert "Parking costs 3 euros" in answerer.answer(gym, parking)  # the chain found nothing unheard of
    cafeteria = [Passage(1, "The cafeteria opens at 8:00 and closes at 15:00 on weekdays.", "cafeteria.md")]
    assert answerer.unheard("When does the canteen open?", cafeteria, frozenset({"canteen"})) == ()
    assert answerer.unheard("When does the cafeteria open, please?", cafeteria, frozenset({"please"})) == ()
    # The keyword index splits "Multi-factor" in two, so "multifactor" is held nowhere; the passage says it.
    staff = [Passage(1, "Multi-factor authentication is mandatory for all staff.", "security.md")]
    assert answerer.unheard("Is multifactor authentication mandatory?", staff, frozenset({"multifactor"})) == ()


def test_a_documents_own_reference_mark_is_not_quoted_as_a_citation(offline_provider):
    """BibTeX's manual: 'appear in the document “Designing BibTEX Styles” [3].' was quoted with
    its "[3]", so the reply cited passage 3 (marked cited in the sources, a chip opening it) for
    a sentence of passage 1. A code span keeps its brackets."""
    passages = (
        Passage(1, "Changes that affect style designers appear in the document “Designing BibTEX Styles” [3]. "
                   "To skip a field, write `fields [2]` in the style file.", "btxdoc.pdf", page=5),
        Passage(2, "BibTEX reads the aux file.", "btxdoc.pdf", page=1),
        Passage(3, "Volume numbers are printed in bold.", "btxdoc.pdf", page=9),
    )
    reply = ask_offline(offline_provider, "Where are changes that affect style designers described?", *passages)
    assert "“Designing BibTEX Styles”. [1]" in reply and "[3]" not in reply
    code = ask_offline(offline_provider, "How do I skip a field in the style file?", *passages)
    assert "`fields [2]`" in code, code


def test_a_quote_of_a_sentence_cut_at_the_passages_end_is_marked_so(offline_provider):
    """A PDF chunk may end at a line end mid-sentence: its last unit was quoted as if it were
    the whole sentence. A passage ending a sentence, or whose last line (a page number) is no
    end of its last unit, is quoted as is; the citation check still reads a cut quote as a quote."""
    from rag.citecheck import claims

    question = "What does the problem line give in a CNF-SAT file?"
    cut = Passage(1, "Each clause is terminated by the value 0.\nThe problem line gives the number of variables and\n"
                     "the number of clauses of the CNF-SAT problem in this", "cnfsat.pdf", page=4)
    reply = ask_offline(offline_provider, question, cut)
    assert "CNF-SAT problem in this … [1]" in reply, reply
    assert any(sentence.endswith("CNF-SAT problem in this") for sentence, _ in claims(reply))
    for whole in ("the number of clauses of the CNF-SAT problem.", "the number of clauses of the CNF-SAT problem.\n4"):
        text = f"Each clause is terminated by the value 0.\nThe problem line gives the number of variables and\n{whole}"
        passage = Passage(1, text, "cnfsat.pdf", page=4)
        reply = ask_offline(offline_provider, question, passage)
        assert "CNF-SAT problem. [1]" in reply and "…" not in reply, reply


def test_a_cut_sentence_that_starts_within_the_last_line_is_marked_too():
    """HTML runs a paragraph on one line: a passage cut after "... the child process. This
    example handles an almost" quoted the fragment as a sentence (new-user walkthrough)."""
    from rag.providers.quotable import cut_short, quotable_units

    text = ("# fork\n\nThe child process gets its own copy of the parent's memory. This example handles an almost")
    assert cut_short(text) == len(quotable_units(text)) - 1
    assert cut_short(text + " complete request.") is None


def test_a_cut_answer_quoted_after_its_question_is_marked_too():
    """An FAQ's question is quoted with the sentence after it (`Quotable.then`): when that
    sentence is the one the passage cuts off, the quote ends in "…"."""
    from rag.providers.extractive import Scored, marked_cut
    from rag.providers.quotable import cut_short, quotable_units

    text = ("Some other sentence about files here.\nWhat does the problem line give?\nThe problem line gives the "
            "number of variables and the number of clauses of the CNF-SAT problem in this")
    cut = cut_short(text)
    units = quotable_units(text)
    question = next(i for i, u in enumerate(units) if u.text.endswith("?"))
    assert units[question].then and cut == len(units) - 1
    scored = Scored(Passage(1, text, "cnfsat.pdf"), units[question], question, 0.9)
    assert marked_cut(scored, cut).endswith("problem in this …")
    assert not marked_cut(Scored(Passage(1, text, "cnfsat.pdf"), Quotable(units[0].text), 0, 0.9), cut).endswith("…")


def test_a_quote_whose_then_is_quoted_apart_is_not_marked_cut(offline_provider):
    """A unit quoted without its `then` (quoted already, on its own) ends where it ends: the
    passage cutting off that `then` is no reason for "…" (GLPK's un12 gained one)."""
    from rag.providers.extractive import ExtractiveAnswerer, Scored, marked_cut

    passage = Passage(1, "x", "glpk.pdf")
    alone = Scored(passage, Quotable("It is also allowed to specify more than one file containing the data section, "
                                     "for example: glpsol --model foo.mod --data foo1.dat"), 4, 0.9)
    before = Scored(passage, Quotable("Note that if the model file also contains the data section, that section is "
                                      "ignored.", then=alone.sentence, reach=1), 3, 0.8)
    picked = ExtractiveAnswerer(offline_provider.model).pick([alone, before], [passage])
    assert [marked_cut(s, 4) for s in picked] == [before.sentence, f"{alone.sentence} …"]


def test_a_quotes_reach_counts_the_units_its_then_quotes_and_no_others():
    """A review's repros: a list's lead quoted with its items lost its "…" when the passage
    cut the last item off; a lead-in quoted with code too short to be a unit got one for the
    sentence after the code, which it does not quote."""
    from rag.providers.extractive import Scored, marked_cut
    from rag.providers.quotable import cut_short, quotable_units

    def quoted(text: str) -> str:
        unit = quotable_units(text)[0]
        scored = Scored(Passage(1, text, "a.pdf"), unit, 0, 0.9)
        return marked_cut(scored, cut_short(text))

    listed = ("The directories are searched in the following order of preference:\n- /usr/tmp is the directory "
              "searched when the first one is\nfull and")
    assert quoted(listed).endswith("full and …")
    short = ("To list the files in the current directory, run this:\n\n```sh\nls -l\n```\n\nThe output shows each "
             "file, one per line, with its permissions, its owner, its size and")
    assert quoted(short) == "To list the files in the current directory, run this: `ls -l`"


def test_an_answer_cut_inside_the_code_it_introduces_is_marked_too(offline_provider):
    """A question's answer brings the code block it introduces (`Quotable.reach` 2): a passage
    cut inside that block ended the reply's quote with no "…", as if the script were whole."""
    text = ("# Backups\n\nHow do I copy the whole database while it is open?\n"
            "Use the backup command from the shell, like this:\n\n```\nsqlite3 main.db \".backup copy.db\"\n"
            "sqlite3 copy.db \"pragma integrity_check\" && echo checked copy")
    from rag.providers.quotable import cut_short, quotable_units

    units = quotable_units(text, marked=True)
    question = next(i for i, u in enumerate(units) if u.text.endswith("?"))
    assert units[question].reach == 2 and cut_short(text, marked=True) == question + 2
    reply = ask_offline(offline_provider, "how can I copy the whole database while it is open?",
                        Passage(1, text, "backup.md"))
    assert "checked copy\n  ```\n  … [1]" in reply, reply


def test_a_question_the_document_asks_is_quoted_with_its_answer(offline_provider):
    """An FAQ's question matches a user's best and says nothing: SQLite's "(14) How do I use a
    string literal that contains an embedded single-quote (') character?" was quoted alone."""
    from rag.providers.quotable import quotable_units

    faq = ("(14) How do I use a string literal that contains an embedded single-quote (') character?\n\n"
           "The SQL standard specifies that single-quotes in strings are escaped by putting two single quotes "
           "in a row.\n\n(15) What is an SQLITE_SCHEMA error, and why am I getting one?\n\n"
           "An SQLITE_SCHEMA error is returned when a prepared SQL statement is no longer valid.")
    units = quotable_units(faq)
    assert units[0].then.startswith("The SQL standard specifies") and units[2].then.startswith("An SQLITE_SCHEMA")
    assert not units[1].then and not units[3].then
    reply = ask_offline(offline_provider, "how do i put a single quote inside a string literal?",
                        Passage(1, faq, "faq.html"))
    assert "character? The SQL standard specifies that single-quotes in strings are escaped" in reply
    assert reply.count("two single quotes in a row") == 1


def test_a_sentence_pointing_back_is_quoted_after_the_one_before_it(offline_provider):
    """The Python docs: "round(2.675, 2) gives 2.67 instead of the expected 2.68." matches "is
    that a bug?", and "This is not a bug: ..." after it answers; only the first was quoted. So
    is an exception after the rule it qualifies ("However, out of range slice indexes ..."), a
    note, and what "it" does after the sentence naming it; a sentence opening otherwise is not."""
    from rag.providers.quotable import quotable_units

    text = ("The behavior of round() for floats can be surprising: for example, round(2.675, 2) gives 2.67 "
            "instead of the expected 2.68. This is not a bug: it's a result of the fact that most decimal "
            "fractions can't be represented exactly as a float. Rounding goes half to even in other cases.")
    units = quotable_units(text)
    assert units[0].then.startswith("This is not a bug")
    assert not units[1].then  # "Rounding goes ..." points back at nothing
    reply = offline_provider.answerer.answer("round(2.675, 2) gives me 2.67, is that a bug?",
                                             [Passage(1, text, "floatingpoint.html")])
    assert "gives 2.67 instead of the expected 2.68. This is not a bug" in reply
    going_on = [  # a sentence, then the one going on from it: excepting, noting, "it", an example
        ("Attempting to use an index that is too large will result in an error.",
         "However, out of range slice indexes are handled gracefully when used for slicing."),
        ("The parameter parm can be specified as NULL, in which case the solver uses default settings.",
         "Note that the solver is unable to solve hard instances in reasonable time."),
        ("The mkoctfile function compiles source code written in C, C++, or Fortran.",
         "It creates an oct-file that Octave loads like a function."),
        ("Cell arrays can hold values of different types and sizes.",
         "For example, c = {1, 'two', [3 4]} holds a number, a string and a vector."),
    ]
    for first, then in going_on:
        assert quotable_units(f"{first} {then}")[0].then == then


def test_minilm_gives_the_vectors_of_the_fully_optimised_onnx_graph(offline_provider):
    """The session runs with basic graph rewrites only (faster here); its vectors must stay
    those onnxruntime's every optimisation gave (first six dimensions, taken on 2026-12-05
    before the change), or a collection embedded before would no longer match its questions."""
    vectors = offline_provider.model.embed(["How do I retry after a 429 rate limit error?",
                                            "The cat slept on a warm windowsill."])
    assert np.allclose(vectors[:, :6], [
        [-0.0175131615, -0.0326331444, 0.0421063490, 0.0308170132, -0.0050920621, -0.0474732295],
        [0.0970788375, 0.0142892441, -0.0225301273, 0.1605528146, -0.0502485409, 0.0150666041],
    ], atol=1e-5)


def test_entries_of_a_reference_that_share_their_wording_are_each_quoted_for_their_own_name(offline_provider):
    """The csv module's constants differ by a word or two: "quote all non-numeric fields"
    held every word of "quote all fields", so it replaced the very entry asked about (API
    walkthrough: "What does csv.QUOTE_ALL do?" quoted every constant but QUOTE_ALL)."""
    constants = Passage(1, "The csv module defines the following constants:\n\ncsv.QUOTE_ALL\n"
                           "Instructs writer objects to quote all fields.\n\ncsv.QUOTE_NONNUMERIC\n"
                           "Instructs writer objects to quote all non-numeric fields.\n\ncsv.QUOTE_NONE\n"
                           "Instructs writer objects to never quote fields.", "library/csv.html")
    for question in ("What does csv.QUOTE_ALL do?", "How do I quote all fields when writing CSV?"):
        assert "csv.QUOTE_ALL Instructs writer objects to quote all fields." in ask_offline(
            offline_provider, question, constants), question
    # the same wording under one name is said once, the longer form kept
    said = Passage(2, "The writer quotes every field. The writer quotes every field it writes to the file.", "a.md")
    assert ask_offline(offline_provider, "what does the writer quote?", said).count("The writer quotes") == 1


def test_a_yes_no_question_on_a_word_no_passage_says_is_refused_with_the_closest_quotes(offline_provider):
    """Octave's "is containers.Map thread safe?" was answered with the passages' quotes on
    containers.Map, none of which says anything of threads: the reply now says the passages
    never mention it, then quotes them. A word they say, in another form ("keys" for
    "key"), or a question that is not yes/no, reads as before."""
    answerer = offline_provider.answerer
    passages = [
        Passage(1, "m = containers.Map() creates an empty Map object. The keys can be numeric values or "
                   "strings, and each key is mapped to a value.", "octave.pdf", page=120,
                heading="Containers > containers.Map"),
        Passage(2, "isKey(m, key) returns true if the Map holds the key. remove(m, key) deletes it.",
                "octave.pdf", page=121, heading="Containers > containers.Map"),
    ]
    asked = "is containers.Map thread safe?"
    assert answerer.never_said(asked, passages) == ("thread",)
    reply = answerer.answer(asked, passages)
    assert reply.startswith("The documents do not seem to answer this question: the passages found never mention "
                            "thread. The closest they come:")
    assert "containers.Map() creates an empty Map object" in reply
    assert answerer.never_said("can a containers.Map hold numeric keys?", passages) == ()
    assert answerer.never_said("how thread safe is containers.Map?", passages) == ()
    assert answerer.answer("can a containers.Map hold numeric keys?", passages).startswith("Based on your documents:")


def test_a_sentence_sharing_a_word_shares_its_files_name_too(offline_provider):
    """Once retrieval found gprolog.pdf's page on stacks, which never prints "gprolog", "do
    gprolog stacks grow by themselves when they fill up?" was refused with no quote at all
    for too little support (blind set g15): a sentence that shares a word with the question,
    in any form, now shares its file's name where that is a name, as keyword search reads
    it. The quotes hold the answer."""
    answerer = offline_provider.answerer
    stacks = [Passage(1, "GNU Prolog uses several stacks to execute a Prolog program. The following table presents "
                         "each stack of GNU Prolog with its default size. Each stack has a static size and cannot be "
                         "dynamically increased.", "gprolog.pdf", page=22, heading="Memory areas")]
    asked = "do gprolog stacks grow by themselves when they fill up?"
    assert [u.overlap for u in answerer.units(asked, stacks)] == [0.4, 0.2, 0.2]  # "stacks", or "stack", and "gprolog"
    assert "Each stack has a static size and cannot be dynamically increased." in answerer.answer(asked, stacks)
    elsewhere = [Passage(1, stacks[0].text, "manual.pdf", page=22, heading="Memory areas")]
    assert [u.overlap for u in answerer.units(asked, elsewhere)] == [0.2, 0.0, 0.0]


def test_a_yes_no_question_resting_on_several_words_never_said_is_refused(offline_provider):
    """The Python docs' "does json.dump write the file atomically, so a crash halfway won't
    leave a half-written file?" rests on three words no passage says, none of which weighs
    enough alone (each moves the question's vector by less than `never_said_weight`); taken
    out together they move it by more, and the reply says the passages never mention them.
    A yes/no question on what the passages do say still reads as answered."""
    answerer = offline_provider.answerer
    passages = [
        Passage(1, "json.dump(obj, fp, *, skipkeys=False, ensure_ascii=True, indent=None) Serialize obj as a JSON "
                   "formatted stream to fp (a .write()-supporting file-like object) using this conversion table. The "
                   "json module always produces str objects, not bytes objects. Therefore, fp.write() must support "
                   "str input.", "library/json.html", heading="json — JSON encoder and decoder > Basic Usage"),
        Passage(2, "Another variant of the dumps() function, called dump(), simply serializes the object to a text "
                   "file. So if f is a text file object opened for writing, we can do this: json.dump(x, f)",
                "tutorial/inputoutput.html", heading="Input and Output > Saving structured data with json"),
    ]
    asked = "does json.dump write the file atomically, so a crash halfway won't leave a half-written file?"
    never = ("atomically", "crash", "halfway")
    alone = answerer.moved(asked, *([w] for w in never))
    assert max(alone) < answerer.never_said_weight <= answerer.moved(asked, never)[0]
    assert answerer.never_said(asked, passages) == never
    assert "the passages found never mention atomically, crash or halfway. The closest they come:" in (
        answerer.answer(asked, passages))
    assert answerer.never_said("does json.dump write str or bytes objects to the file?", passages) == ()


def test_what_reads_as_a_yes_no_question_and_what_a_passage_says(offline_provider):
    """From a review of the rule: a follow-up joined to the last question ("and is it ...?")
    is a yes/no question; a request put as one ("can you summarize ...?") is not; a passage
    says a word inside a name ("isThreadSafe", "thread-safety.md"); every passage counts,
    the seventh too (with k above 6 the reply said "never mention chargers" over a quote of
    passage 7 naming them); two words never said read "X or Y"."""
    answerer = offline_provider.answerer
    maps = [Passage(1, "m = containers.Map() creates an empty Map object. The keys can be numeric values or strings.",
                    "octave.pdf", page=120, heading="Containers > containers.Map")]
    assert answerer.never_said("and is it thread safe?", maps) == ("thread",)
    assert answerer.never_said("ok, is containers.Map thread safe?", maps) == ("thread",)
    assert answerer.never_said("can you summarize what containers.Map stores?", maps) == ()
    for said in ("Call pool.isThreadSafe() before sharing the Map.", "See the notes on threads."):
        assert answerer.never_said("is containers.Map thread safe?", [*maps, Passage(2, said, "octave.pdf")]) == ()
    assert answerer.never_said("is containers.Map thread safe?",
                               [*maps, Passage(2, "Locks guard shared maps.", "docs/thread-safety.md")]) == ()
    garage = [Passage(n, f"The garage on level {n} opens at 7 and closes at 22 every day for staff cars.", "faq.md")
              for n in range(1, 7)]
    chargers = Passage(7, "The garage has chargers for electric cars on level 2.", "faq.md")
    asked = "Does the garage have chargers for electric cars?"
    assert answerer.never_said(asked, garage) == ("chargers",)
    assert answerer.never_said(asked, [*garage, chargers]) == ()
    assert "never mention chargers or showers." in answerer.answer("Does the garage have chargers or showers?", garage)


def test_a_man_pages_default_is_quoted_with_its_attribute_not_anothers(offline_provider):
    """Blind set on graphviz-doc: "what's neato's default epsilon?" was answered "The default is
    0.75.", twopi's ranksep, since neato's own "The default is 0.1." was too short to quote
    and twopi's stood alone."""
    text = ("start=val. Requests random initial placement and seeds the random number generator. If val is not\n"
            "an integer, the process ID or current time is used as the seed.\n"
            "epsilon=n. Sets the cutoff for the solver. The default is 0.1.\n"
            "(twopi-specific attributes)\n"
            "ranksep=val. Specifies the radial distance in inches between the sequence of rings. The default is 0.75.")
    passages = [Passage(1, text, "neato.1.pdf", page=4)]
    reply = offline_provider.answerer.answer("what's neato's default epsilon?", passages)
    assert "- epsilon=n. Sets the cutoff for the solver. The default is 0.1. [1]" in reply
    assert "0.75" not in reply


def test_a_man_pages_minus_signed_flags_are_quoted_as_a_shell_takes_them(offline_provider):
    """groff writes an option's dash as U+2212: "−Tpng" quoted from dot(1) was an unknown
    option when pasted into a terminal (blind set on graphviz-doc). A minus before a figure
    stays a minus sign."""
    passages = [Passage(1, "−Tformat sets the format for output. Use −Tpng for PNG images, and −o file to write "
                           "the output to a file. Margins may be −2 points.", "dot.1.pdf", page=2)]
    reply = offline_provider.answerer.answer("which option makes dot write png images?", passages)
    assert "Use -Tpng for PNG images, and -o file to write the output to a file." in reply
    assert "\u2212T" not in reply
    from rag.providers.quotable import typed_dashes

    assert typed_dashes("−−help and −2 points") == "--help and −2 points"
