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
    import math
    import os
    import tempfile
    import time
    from pathlib import Path

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from entity_linking.io import InputError
    from probe.generation import get_generator
    from probe.link import load_templates, p_yes, parse_rule, partial_statement, sentence

    if args.candidates < 1:
        raise InputError(f"--candidates must be at least 1, not {args.candidates}")
    model = args.model
    if model is None:
        from probe.cli._eval import build_local_model

        folder = Path(tempfile.gettempdir()) / "ltprobe-bench-eval-model-v1"
        logger.info(f"training the benchmark model in {folder} (reused next time) ...")
        model = str(build_local_model(folder, hidden=128, layers=2))
    rule = parse_rule("bench", {
        "premise_map": {"is_allergic_to(P, A)": "[P] is allergic to [A]",
                        "is_one_type_of(Z, A)": "[Z] is one type of [A]"},
        "conclusion_map": {"is_not_able_to_eat(P, Z)": "[P] is not able to eat [Z]"},
        "variables": {"P": ["P", "Person", True, None], "A": ["A", "Food Allergen", False, None],
                      "Z": ["Z", "Ingredient", False, None]},
        "domain": "food"})
    step = rule.fill_order()[-1]
    templates = load_templates()
    fact_t, type_t = templates["critic_fact"], templates["critic_type"]
    answers = [fact_t["answers"]["yes"], fact_t["answers"]["no"]]
    words = ["almond", "sesame", "wheat", "shrimp", "walnut", "oat", "soy", "mustard", "celery", "lupin"]
    kinds = ["flour", "oil", "paste", "milk", "butter", "sauce", "crackers", "seeds", "broth", "bread"]
    values = [f"{words[i % 10]} {kinds[(i // 10) % 10]}" + (f" {i // 100}" if i >= 100 else "")
              for i in range(args.candidates)]
    fills = [{"P": "PersonX", "A": "nuts", "Z": v} for v in values]
    fact_prompts = [fact_t["prompt"].format(statement=sentence(p.render(f)))
                    for f in fills for p in step.predicates if "P" not in p.args]
    type_prompts = [type_t["prompt"].format(value=v, datatype=step.variable.datatype) for v in values]
    texts = [partial_statement(rule, f) for f in fills]
    options = _options(args.backend_option)
    if args.backend == "vllm":
        options = {"dtype": "float32", "max_model_len": 512, **options}
    start = time.perf_counter()
    generator = get_generator(args.backend, model, **options)
    engine_start = time.perf_counter() - start
    try:
        generator.next_token_logprobs(type_prompts[:4], answers)  # warm-up, not timed
        generator.mean_logprob(texts[:4])
        start = time.perf_counter()
        batched_critic = generator.next_token_logprobs(fact_prompts + type_prompts, answers)
        batched_oracle = generator.mean_logprob(texts)
        batched = time.perf_counter() - start
        start = time.perf_counter()
        single_critic = [generator.next_token_logprobs([p], answers)[0] for p in fact_prompts + type_prompts]
        single_oracle = [generator.mean_logprob([t])[0] for t in texts]
        single = time.perf_counter() - start
    finally:
        generator.close()
    yes, no = answers
    diff = max([abs(p_yes(a, yes, no) - p_yes(b, yes, no)) for a, b in zip(batched_critic, single_critic)]
               + [abs(a - b) for a, b in zip(batched_oracle, single_oracle) if not (math.isnan(a) or math.isnan(b))])
    n = len(values)
    calls = {"batched": 2, "per_candidate": len(fact_prompts) + len(type_prompts) + len(texts)}
    print(f"{'':34}{'batched (toolkit)':>18}{'per candidate':>16}")
    print(f"{'engine calls':34}{calls['batched']:>18d}{calls['per_candidate']:>16d}")
    print(f"{'seconds':34}{batched:>18.3f}{single:>16.3f}")
    print(f"{'candidates scored per second':34}{n / batched:>18.1f}{n / single:>16.1f}")
    print(f"speed-up {single / batched:.1f}x; largest score difference {diff:.2e}; {n} candidates, "
          f"{len(fact_prompts) + len(type_prompts)} critic questions, {len(texts)} oracle texts; "
          f"engine start {engine_start:.1f} s (not timed)")
    print(json.dumps({"candidates": n, "batched_seconds": round(batched, 4), "per_candidate_seconds": round(single, 4),
                      "batched_candidates_per_s": round(n / batched, 1),
                      "per_candidate_candidates_per_s": round(n / single, 1),
                      "speedup": round(single / batched, 2), "max_score_difference": diff,
                      "engine_calls": calls, "backend": args.backend, "model": model,
                      "engine_start_s": round(engine_start, 1)}))
    return 0
