"""The README's "Reproduce the original study for your model", followed as written (issue 16 item 9),
and the retrieval index such a job needs (an imported map has no text).

The commands are read from the README's code block and run through the console script in one
folder, as a researcher would. Nothing comes from the hub: the downloads are stood in for by
files in the published formats generated here (an entity map keyed by DBpedia URIs and QA
entities of DBpedia Spotlight records, `tests.indexes.test_kandpal.make_fixture`), the TriviaQA
set by a `save_to_disk` folder in the hub's schema, Wikipedia by a small `save_to_disk` folder,
and the hub model by the tiny test model; only those names are swapped (`SWAPS`). vLLM is not
started (`LTPROBE_VLLM=none`: the documented fallback to transformers), which keeps the test to
seconds of evaluation; the prompts and settings are the config's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.indexes.test_kandpal import make_fixture, published
from tests.paths import REPO

SECTION = "## Reproduce the original study for your model"
DOWNLOADS = {("nkandpa2/pretraining_entities", "the_pile_entity_map.npz"),
             ("nkandpa2/qa_entities", "trivia_qa_unfiltered.nocontext_validation_entities.jsonl")}


def recipe_commands() -> list[list[str]]:
    """The commands of the README section's first bash block, continuation lines joined."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    lines = block.replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _trivia_qa(folder: Path, lines: list[dict]) -> list[dict]:
    """A TriviaQA `unfiltered.nocontext` copy in the hub's schema (DatasetDict, save_to_disk), one
    question per QA-entities line: the question names its question entities, the answer is the
    first answer entity's surface form."""
    import datasets

    rows = []
    for i, line in enumerate(lines):
        names = [e["surfaceForm"].replace("_", " ") for e in line["q_entities"]] or [f"thing {i}"]
        answer = line["a_entities"][0]["surfaceForm"].replace("_", " ") if line["a_entities"] else "nothing"
        rows.append({
            "question": f"Which entity goes with {' and '.join(names)}?", "question_id": f"tc_{i}",
            "question_source": "http://www.quizballs.com/", "entity_pages": {
                "doc_source": [], "filename": [], "title": [], "wiki_context": []},
            "search_results": {"description": [], "filename": [], "rank": [], "title": [], "url": [],
                               "search_context": []},
            "answer": {"aliases": [answer], "normalized_aliases": [answer.lower()],
                       "matched_wiki_entity_name": "", "normalized_matched_wiki_entity_name": "",
                       "normalized_value": answer.lower(), "type": "WikipediaEntity", "value": answer}})
    empty = {**rows[0], "question_id": "tc_train"}
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(rows),
                          "train": datasets.Dataset.from_list([empty])}).save_to_disk(str(folder))
    return rows


def _wikipedia(folder: Path, rows: list[dict]) -> None:
    """A Wikipedia stand-in in wikimedia/wikipedia's schema (id, url, title, text)."""
    import datasets

    articles = [{"id": str(i), "url": f"https://en.wikipedia.org/wiki/A{i}", "title": f"Article {i}",
                 "text": f"{row['question'][len('Which entity goes with '):-1]} goes with "
                         f"{row['answer']['value']}. " * 3}
                for i, row in enumerate(rows)]
    datasets.Dataset.from_list(articles).save_to_disk(str(folder))


@pytest.mark.slow
def test_the_readme_recipe_runs_as_written(tmp_path, tiny_model):
    from indexes import load_stoplist

    commands = recipe_commands()
    downloads = [c for c in commands if c[0] == "huggingface-cli"]
    ltprobe = [c for c in commands if c[0] == "ltprobe"]
    assert len(downloads) + len(ltprobe) == len(commands) and len(ltprobe) >= 3
    assert {(c[2], c[3]) for c in downloads} == DOWNLOADS
    assert all(c[1] == "download" and c[c.index("--local-dir") + 1] == "released" for c in downloads)

    work = tmp_path / "work"
    (work / "released").mkdir(parents=True)
    map_path, qa_path, emap, lines = make_fixture(work / "released", seed=3, n_qa=120)
    assert {map_path.name, qa_path.name} == {name for _, name in DOWNLOADS}
    rows = _trivia_qa(tmp_path / "trivia_qa", lines)
    _wikipedia(tmp_path / "wikipedia", rows)
    config_text = (REPO / "configs" / "kandpal_triviaqa.yaml").read_text(encoding="utf-8")
    swaps = {"EleutherAI/gpt-neo-1.3B": str(tiny_model), "trivia_qa": str(tmp_path / "trivia_qa")}
    assert "qa: trivia_qa " in config_text and "path: EleutherAI/gpt-neo-1.3B" in config_text
    config_text = config_text.replace("qa: trivia_qa ", f"qa: {swaps['trivia_qa']} ").replace(
        "path: EleutherAI/gpt-neo-1.3B", f"path: {swaps['EleutherAI/gpt-neo-1.3B']}")
    (work / "configs").mkdir()
    (work / "configs" / "kandpal_triviaqa.yaml").write_text(config_text, encoding="utf-8")

    def swapped(command: list[str]) -> list[str]:
        out = []
        for i, word in enumerate(command):
            if command[i - 1] == "--qa" and word == "trivia_qa":
                word = swaps["trivia_qa"]
            elif word == "hf:wikimedia/wikipedia:20231101.en":
                word = f"hf:{tmp_path / 'wikipedia'}"
            out.append(word)
        return out

    env = {**os.environ, "LTPROBE_VLLM": "none", "LTPROBE_PROGRESS": "0"}
    script = str(Path(sys.executable).parent / "ltprobe")
    for command in ltprobe:
        result = subprocess.run([script, *swapped(command)[1:]], cwd=work, env=env, capture_output=True,
                                check=False, text=True, timeout=1500)
        assert result.returncode == 0, f"{shlex.join(command)}\n{result.stderr[-3000:]}"

    run = work / "runs" / "pile-gpt-neo-1.3b"
    summary = json.loads((run / "summary.json").read_text())
    # The counts are the published heuristic's (countries off the question side) on every line.
    stop = load_stoplist("countries")
    counts = [json.loads(line) for line in (run / "counts.jsonl").read_text().splitlines()]
    assert [c["id"] for c in counts] == [f"tc_{i}" for i in range(len(lines))]
    for record, line in zip(counts, lines):
        expected = published(line, emap, stop)
        assert {k: record.get(k) for k in expected} == expected, record
    # What the README says to compare with: closed-book accuracy per decade bucket, and the
    # count dependence against retrieval.
    assert summary["n_questions"] > 0 and "n_unlinked" in summary
    for name in ("closed_book", "rag"):
        setting = summary["settings"][name]
        assert {"accuracy", "slope_per_decade", "slope_ci", "buckets"} <= set(setting)
        assert setting["buckets"] and all({"lo", "hi", "n", "accuracy", "ci", "flagged"} <= set(b)
                                          for b in setting["buckets"])
        assert all(b["flagged"] == (b["n"] < 500) for b in setting["buckets"])  # analysis.min_bucket
    lows = [b["lo"] for b in summary["settings"]["closed_book"]["buckets"]]
    assert lows == sorted(lows) and 10 in lows  # "about 25% at 10 relevant documents" reads this bucket
    dependence = summary["count_dependence"]
    assert {"slope_difference", "slope_difference_ci", "reduction", "reduction_ci", "note",
            "nonzero", "zero_count"} <= set(dependence)
    assert isinstance(dependence["slope_difference"], float) and len(dependence["slope_difference_ci"]) == 2
    assert dependence["note"] and "count_dependence_reduction" in summary
    assert (run / "report.html").exists() and (run / "plots" / "accuracy_vs_count.png").exists()
    # The prompts: 4 shots, the top-3 Wikipedia passages in the retrieval ones.
    predictions = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert {p["setting"] for p in predictions} == {"closed_book", "rag", "oracle"}
    rag = [p for p in predictions if p["setting"] == "rag"]
    assert max(p["n_passages"] for p in rag) == 3
    assert all(doc_id.isdigit() for p in rag for doc_id, _ in p["passage_ids"] or [])
    # TriviaQA unfiltered.nocontext has no gold passage: the oracle is a labelled pseudo-oracle
    # (the imported map has no text, so its passages come from searching Wikipedia).
    oracle = summary["settings"]["oracle"]
    assert oracle["pseudo_oracle"] is True and oracle["passage_source"] == "search"
    assert {p.get("passage_source") for p in predictions if p["setting"] == "oracle"} <= {"search", None}


def test_retrieval_on_an_imported_map_needs_a_retrieval_index(tmp_path):
    # The imported map has no text: without rag.index the job stops at retrieval, before any model
    # is loaded, saying what to give; a rag.index that is not there is named too.
    from entity_linking.io import InputError
    from probe.cli import main
    from probe.pipeline import load_config, run

    map_path, qa_path, _, lines = make_fixture(tmp_path, n_qa=20)
    assert main(["import", "kandpal", "--entity-map", str(map_path), "--qa-entities", str(qa_path),
                 "--out", str(tmp_path / "imported")]) == 0
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"id": str(i), "question": f"Question {i}?", "answers": ["x"]}) + "\n"
                          for i in range(len(lines))))
    overrides = [f"data.qa={qa}", f"data.qa_entities={tmp_path / 'imported' / 'qa_entities.jsonl'}",
                 f"index.path={tmp_path / 'imported' / 'index'}", "model.path=no-such-model",
                 "eval.settings=[closed_book, rag]", "index.stoplist=countries"]
    config = load_config(REPO / "configs" / "kandpal_triviaqa.yaml", [*overrides, "rag.index=null"])
    with pytest.raises(InputError, match=r"has no passages to search .* give it as rag.index"):
        run(config, tmp_path / "run", quiet=True)
    assert (tmp_path / "run" / "counts.jsonl").exists()  # the stages before evaluation ran
    config = load_config(REPO / "configs" / "kandpal_triviaqa.yaml", [*overrides, f"rag.index={tmp_path / 'nope'}"])
    with pytest.raises(InputError, match=r"rag.index: .*nope: no such file or folder"):
        run(config, tmp_path / "run", quiet=True)
