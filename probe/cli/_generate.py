"""`ltprobe generate`: rule-guided long-tail test statements (LINK), with count-guided tails."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
Search head and tail values for the variables of logical rules, as LINK does (Li et al.,
2023), and write test statements from both ends of the distribution.

For each rule the generic variable becomes "PersonX"; the other variables are filled one at a
time: a knowledge model is sampled for values given the predicates that link the variable to
the filled ones (values already accepted are listed as "do not generate these"; asking stops
after --patience calls without a new accepted value); a critic model scores each value with
yes/no questions (is the filled predicate true? is the value a <datatype>?), averaged along
the beam, accepted from a threshold of 0.85 relaxed by 0.05 down to 0.65 while nothing passes;
a reranker orders the accepted values and the head beam keeps the highest, the tail beam the
lowest. Rerankers: `likelihood` (mean token log-probability of the partial statement under the
oracle model), `count` (documents of the toolkit's index mentioning the filled values, linked
with the knowledge base; needs --index and --kb) and `combined` (weighted, --count-weight).
Finally a probe model answers the statements in yes/no, true/false and entailment templates,
with negated variants, and accuracy is reported for head and tail.

Rule files: LINK's JSON (premise_map, conclusion_map, variables [name, datatype, is_generic,
nodetype], domain; e.g. ../shared/data/link_rule_example.json) or the same in YAML.

Writes OUT/statements.jsonl (rule, values, statement, statement_full, beam, loglik, count,
critic scores), OUT/probing.jsonl and OUT/generation_summary.json (per rule: head and tail
log-likelihood and counts, the head-tail gap, probing accuracy head vs tail). An existing
summary means the stage is done; --force runs it again.

examples:
  ltprobe generate --rules rules.json --model runs/demo/model --out runs/link
  ltprobe generate --rules rules.yaml --knowledge-model big/ --critic-model big/ \\
      --oracle-model small/ --probe-model small/ --index runs/demo/index --kb runs/demo/world/kb.jsonl \\
      --reranker combined --out runs/link
"""


def register(commands) -> None:
    parser = commands.add("generate", _generate,
                          help="rule-guided long-tail test statements (LINK) with count-guided tails",
                          description=_DESCRIPTION)
    parser.add_argument("--rules", required=True, metavar="FILE",
                        help="rule file: LINK JSON or its YAML equivalent (.yaml/.yml)")
    parser.add_argument("--rule", action="append", metavar="ID", dest="rule_ids",
                        help="generate only this rule (repeatable; default: every rule of the file)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    models = parser.add_argument_group("models (each role defaults to --model)")
    models.add_argument("--model", metavar="MODEL",
                        help="model folder or id for every role that is not given separately")
    models.add_argument("--knowledge-model", metavar="MODEL", help="samples values for the variables")
    models.add_argument("--critic-model", metavar="MODEL", help="yes/no checks of facts and datatypes")
    models.add_argument("--oracle-model", metavar="MODEL",
                        help="scores partial statements by mean token log-probability (likelihood reranker)")
    models.add_argument("--probe-model", metavar="MODEL", help="the model probed with the statements")
    models.add_argument("--backend", default="vllm", choices=["vllm", "openai", "transformers"],
                        help="generation backend for all models (default: vllm in this process; "
                             "openai: an OpenAI-compatible server, MODEL = served name)")
    models.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                        help="option for the backend constructor, e.g. dtype=float32, max_model_len=512, "
                             "base_url=http://127.0.0.1:8000/v1 (repeatable; values parsed as YAML)")
    counts = parser.add_argument_group("counts (the count and combined rerankers)")
    counts.add_argument("--index", metavar="INDEX_DIR", help="the toolkit's document index (ltprobe index)")
    counts.add_argument("--kb", metavar="KB", help="the knowledge base the corpus was linked with")
    search = parser.add_argument_group("search")
    search.add_argument("--beam-size", type=int, default=200, help="statements kept per beam (default 200)")
    search.add_argument("--samples-per-call", type=int, default=50,
                        help="values sampled per partial statement and call (default 50)")
    search.add_argument("--patience", type=int, default=2,
                        help="stop asking after this many calls without a new accepted value (default 2)")
    search.add_argument("--max-calls", type=int, default=10,
                        help="at most this many calls per partial statement and variable (default 10)")
    search.add_argument("--threshold", type=float, default=0.85, help="starting critic threshold (0.85)")
    search.add_argument("--min-threshold", type=float, default=0.65, help="lowest critic threshold (0.65)")
    search.add_argument("--threshold-step", type=float, default=0.05, help="relaxation step (0.05)")
    search.add_argument("--temperature", type=float, default=1.0, help="knowledge sampling temperature (1.0)")
    search.add_argument("--max-value-tokens", type=int, default=16, help="longest value in tokens (16)")
    search.add_argument("--reranker", default="likelihood", choices=["auto", "likelihood", "count", "combined"],
                        help="likelihood (default, LINK's, also with --index: the statements' counts are "
                             "then reported beside it), count, combined, or auto (combined with --index, "
                             "else likelihood)")
    search.add_argument("--count-weight", type=float, default=0.5,
                        help="weight of the count in the combined reranker (0.5)")
    search.add_argument("--order", default="auto", choices=["auto", "premise", "conclusion"],
                        help="fill order: premise-first, conclusion-first, or LINK's choice (auto: "
                             "conclusion-first when a variable is factual)")
    search.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    search.add_argument("--templates", metavar="DIR",
                        help="folder of prompt templates overriding probe/templates/link/*.yaml")
    probing = parser.add_argument_group("probing")
    probing.add_argument("--probe-templates", nargs="+", default=None, metavar="NAME",
                         choices=["yes_no", "true_false", "entailment"],
                         help="probing templates (default: yes_no true_false entailment)")
    probing.add_argument("--no-negated", action="store_true", help="skip the negated variants")
    probing.add_argument("--no-probe", action="store_true", help="do not probe a model")
    parser.add_argument("--force", action="store_true", help="run again even if OUT has a summary")

    bench = commands.add_bench("generate", _bench,
                               help="LINK critic/reranker scoring: batched per beam step vs per candidate",
                               description=_BENCH_DESCRIPTION)
    bench.add_argument("--model", metavar="MODEL", help="model folder (default: train a tiny one)")
    bench.add_argument("--backend", default="vllm", choices=["vllm", "openai", "transformers"],
                       help="generation backend (default vllm)")
    bench.add_argument("--candidates", type=int, default=100, help="candidate values to score (100)")
    bench.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                       help="backend option (default for vllm: dtype=float32, max_model_len=512)")


_BENCH_DESCRIPTION = """\
How much batching the critic and reranker scoring saves, on a real engine.

The LINK search scores every candidate value with the critic (a factual and a datatype
yes/no question) and the oracle (mean token log-probability of the partial statement). The
toolkit sends all candidates of a beam step in one call per role; the baseline makes one call
per question, as a per-candidate loop would. Both score the same prompts with the same engine;
the benchmark reports candidates per second for each, the speed-up, and the largest
difference between their scores (which should be ~0).

Without --model it trains a tiny model first (cached in the temp folder).

example: ltprobe bench generate --candidates 200
"""


def _options(pairs: list[str]) -> dict:
    import yaml

    from entity_linking.io import InputError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--backend-option {pair!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _generate(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from probe.link import SearchConfig, generate_statements

    config = SearchConfig(
        beam_size=args.beam_size, samples_per_call=args.samples_per_call, patience=args.patience,
        max_calls=args.max_calls, threshold=args.threshold, min_threshold=args.min_threshold,
        threshold_step=args.threshold_step, temperature=args.temperature,
        max_value_tokens=args.max_value_tokens, reranker=args.reranker,
        count_weight=args.count_weight, order=args.order, seed=args.seed, progress=not args.quiet)
    summary = generate_statements(
        args.rules, args.out, model=args.model, knowledge_model=args.knowledge_model,
        critic_model=args.critic_model, oracle_model=args.oracle_model, probe_model=args.probe_model,
        backend=args.backend, backend_options=_options(args.backend_option), index=args.index,
        kb=args.kb, config=config, rule_ids=args.rule_ids,
        probe_templates=[] if args.no_probe else args.probe_templates, negated=not args.no_negated,
        templates_dir=args.templates, force=args.force)
    out = Path(args.out)
    for rule_id, entry in summary["rules"].items():
        gap = entry["loglik"]["gap"]
        line = (f"{rule_id}: {entry['status']}; head {entry['n']['head']}, tail {entry['n']['tail']} "
                f"statements; log-lik gap (head - tail) {'n/a' if gap is None else f'{gap:+.3f}'}")
        if entry.get("count"):
            cg = entry["count"].get("gap_log10")
            line += f"; count gap {'n/a' if cg is None else f'{cg:+.2f}'} decades"
        probing = entry.get("probing")
        if probing and probing.get("gap") is not None:
            line += (f"; probing accuracy head {probing['head']['accuracy']:.2f} "
                     f"tail {probing['tail']['accuracy']:.2f}")
        print(line)
    logger.info(f"wrote {out / 'statements.jsonl'} and {out / 'generation_summary.json'} "
                f"({summary['n_statements']} statements)")
    failed = [r for r, e in summary["rules"].items() if e["status"] != "ok"]
    if failed and len(failed) == len(summary["rules"]):
        print(f"ltprobe: error: no rule produced statements ({failed[0]}: "
              f"{summary['rules'][failed[0]]['status']})", file=sys.stderr)
        return 1
    return 0


def _bench(args: argparse.Namespace) -> int:
    import json

    from probe.pipeline import bench_generate

    print(json.dumps(bench_generate(args.model, backend=args.backend, candidates=args.candidates,
                                    backend_options=_options(args.backend_option))))
    return 0
