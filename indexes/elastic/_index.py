"""The Elasticsearch backend: the same interface as the embedded index, on a cluster.

Two indices per corpus: `NAME` holds one document per corpus document (`doc_id` and
`entities` keywords, `seq` its corpus position, `text`), `NAME-passages` the passages for BM25
search. Counts are `bool` filters of `term` queries, sent in `_msearch` batches; documents are
keyed by their id (`_id`), so re-running an interrupted or partly failed ingestion completes it
without duplicates. Scale out with shards (and replicas for query throughput).

Credentials never travel on the command line or into logs: `ES_API_KEY`, or `ES_USERNAME` and
`ES_PASSWORD`, from the environment, or the same keys in a config file (JSON or YAML: `api_key`,
`username`, `password`, `ca_certs`, `verify_certs`, `request_timeout`) named by `--es-config` or
`LTPROBE_ES_CONFIG`. TLS: `ES_CA_CERTS` (a CA bundle) and `ES_VERIFY_CERTS=false`.

Faults: every request is retried when the connection is refused or dropped, times out
(`request_timeout`, default 60 s), or is answered 429/502/503/504, and so are bulk items and
count queries rejected with 429/503: `retries` attempts in all (default 6), after 0.5, 1, 2,
4, 8 s (`retry_backoff`, doubled). Then one line says to re-run the same command. An ingestion
ends by checking that both indices hold every document it sent (tests/faults/test_elasticsearch.py).

Counting on an existing text index (WIMBD-style, no entity linking): `PhraseCounts` counts the
documents matching any alias of each entity with `match_phrase` queries.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, SkipCounter, write_json
from indexes._base import INDEX_INFO, DocumentIndex, Passage
from indexes.elastic import _client
from indexes.elastic._client import (
    FORMAT_VERSION,
    RETRY_STATUS,
    BulkActions,
    backoff_pause,
    bulk_index,
    check_meta,
    connect,
    describe,
    ensure_index,
    ingestion_source,
    safe_url,
    transient,
)


def build_elasticsearch(corpus: str | os.PathLike, linked_dir: str | os.PathLike | None,
                        out: str | os.PathLike | None, *, es_url: str, es_index: str,
                        config: str | os.PathLike | None = None, shards: int = 1,
                        replicas: int = 0, workers: int = 2, passages: str | os.PathLike | None = None,
                        passage_words: int = 100, on_error: str = "fail", executor: str = "local",
                        ray_workers: int | None = None, progress: bool = True,
                        fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Index a linked corpus into `es_index` (documents) and `es_index-passages` (passages).

    `workers`: parallel bulk streams per process. `executor="ray"` sends the bulk requests from
    `ray_workers` Ray actors instead of this process (see `indexes.elastic._ray`); the indices,
    ids and counts are the same."""
    from entity_linking.logs import progress_bar

    if executor not in ("local", "ray"):
        raise ValueError(f"executor must be 'local' or 'ray', not {executor!r}")
    client = connect(es_url, config)
    url = safe_url(es_url)
    passages_index = f"{es_index}-passages"
    started = time.perf_counter()
    skips = SkipCounter()

    def ensure_both() -> None:
        ensure_index(client, es_index, "documents", shards, replicas, url)
        ensure_index(client, passages_index, "passages", shards, replicas, url)

    try:
        ensure_both()
        if executor == "ray":
            from indexes.elastic._ray import ingest_ray

            counts, failed, ray_workers = ingest_ray(
                corpus, linked_dir, passages, es_url=es_url, es_index=es_index, config=config,
                passage_words=passage_words, on_error=on_error, skips=skips, bulk_workers=workers,
                workers=ray_workers, progress=progress, fields=fields)
        else:
            actions = BulkActions(es_index, passage_words)
            documents, texts = ingestion_source(corpus, linked_dir, passages, on_error=on_error, skips=skips,
                                                fields=fields)
            failed = []
            for label, stream in (("index", actions.documents(documents)), ("passages", actions.passages(texts))):
                with progress_bar(desc=label, unit=" docs", enabled=progress) as bar:
                    _, bad = bulk_index(client, stream, workers=workers, on_done=bar.update,
                                        on_reconnect=ensure_both)
                failed.extend(bad)
            counts = actions.counts
        client.indices.refresh(index=[es_index, passages_index])
        if not failed:
            _check_complete(client, url, es_index, passages_index, counts)
    except Exception as exc:
        if transient(exc):
            raise InputError(f"Elasticsearch at {url} stopped answering ({describe(exc)}, {client.attempts} "
                             "attempts); re-run the same command to complete the index (documents are "
                             "keyed by id: nothing is duplicated)") from None
        raise
    finally:
        client.close()
    info = {"backend": "elasticsearch", "version": FORMAT_VERSION, "url": url, "index": es_index,
            "passages_index": passages_index, **counts, "passage_words": passage_words,
            "passages_from": str(passages) if passages is not None else "corpus",
            "shards": shards, "replicas": replicas, "skipped_records": skips.skipped,
            "failed": len(failed), "build_seconds": round(time.perf_counter() - started, 3)}
    if executor == "ray":
        info.update(executor="ray", ray_workers=ray_workers)
    if config is not None:
        info["config"] = str(config)
    if failed:
        where = ""
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            failed_path = Path(out) / "failed_ids.txt"
            failed_path.write_text("".join(f"{i}\t{r}\n" for i, r in failed), encoding="utf-8")
            where = f"; all failed ids are in {failed_path}"
        first = ", ".join(f"{i} ({r})" for i, r in failed[:3])
        raise InputError(f"{len(failed)} documents failed to index into {es_index!r} at {url}: "
                         f"{first}{where}; fix the cause and re-run the same command: documents "
                         "are keyed by id, so a re-run completes the index without duplicates")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "failed_ids.txt").unlink(missing_ok=True)
        write_json(out / INDEX_INFO, info)
    return info


def _check_complete(client: Any, url: str, index: str, passages_index: str, counts: dict[str, int]) -> None:
    """After ingestion: both indices still ltprobe's, holding every document and passage (a
    cluster restarted without its data in the middle loses what it had acknowledged)."""
    for name, expected in ((index, counts["n_docs"]), (passages_index, counts["n_passages"])):
        held = int(client.count(index=name)["count"]) if client.indices.exists(index=name) else 0
        if held < expected or check_meta(client, name, url) is None:
            raise InputError(f"Elasticsearch index {name!r} at {url} holds {held} of the {expected} "
                             "documents sent (did the cluster restart without its data?); re-run the "
                             "same command to complete it (documents are keyed by id: nothing is duplicated)")


def _answering(method: Any) -> Any:
    """Turn a cluster that stopped answering mid-way (after the client's own retries with
    backoff) into one actionable error instead of a traceback."""
    import functools

    @functools.wraps(method)
    def wrapper(self: ElasticsearchIndex, *args: Any, **kwargs: Any) -> Any:
        from elasticsearch import NotFoundError

        try:
            return method(self, *args, **kwargs)
        except NotFoundError as exc:
            if exc.error != "index_not_found_exception":
                raise
            raise self._gone() from None
        except Exception as exc:
            if not transient(exc):
                raise
            raise InputError(f"Elasticsearch at {self.url} stopped answering ({describe(exc)}) "
                             "after retries; check that the cluster is up and re-run the same command") from None

    return wrapper


class ElasticsearchIndex(DocumentIndex):
    """A document index on an Elasticsearch cluster (see the module docstring)."""

    backend = "elasticsearch"

    def __init__(self, client: Any, url: str, index: str, *, passages_index: str | None = None,
                 meta: dict[str, Any] | None = None):
        self.client = client
        self.url = url
        self.index = index
        self.passages_index = passages_index or f"{index}-passages"
        self.meta = meta

    @classmethod
    def open(cls, url: str, index: str, *, config: str | os.PathLike | None = None,
             attempts: int = 5, backoff: float = 0.5, require_ltprobe: bool = True) -> ElasticsearchIndex:
        """Connect and check the index; `require_ltprobe=False` accepts any text index (for
        `PhraseCounts` on a corpus indexed by other tools)."""
        client = connect(url, config, attempts=attempts, backoff=backoff)
        shown = safe_url(url)
        try:
            exists = client.indices.exists(index=index)
            meta = check_meta(client, index, shown) if exists else None
        except Exception as exc:
            client.close()
            if not transient(exc):
                raise
            raise InputError(f"Elasticsearch at {shown} stopped answering ({describe(exc)}) after retries; "
                             "check that the cluster is up and re-run the same command") from None
        if not exists:
            client.close()
            raise InputError(f"no index {index!r} at {shown}; build it with `ltprobe index "
                             "--backend elasticsearch`")
        if meta is None and require_ltprobe:
            client.close()
            raise InputError(f"Elasticsearch index {index!r} at {shown} was not written by ltprobe "
                             "(no entities field); use phrase counting (--phrases) on it instead")
        return cls(client, shown, index, meta=meta)

    def _gone(self) -> InputError:
        return InputError(f"no index {self.index!r} at {self.url} any more (did the cluster restart without "
                          "its data?); build it again with `ltprobe index --backend elasticsearch`, then "
                          "re-run the same command")

    @_answering
    def _msearch_counts(self, queries: list[dict[str, Any]], index: str | None = None) -> list[int]:
        """Counts of `queries` in `_msearch` batches; queries the cluster rejects with 429/503
        (a full search queue) are sent again, with backoff, as whole requests are."""
        counts: list[int | None] = [None] * len(queries)
        target = index or self.index
        attempts, backoff = getattr(self.client, "attempts", 1), getattr(self.client, "backoff", 0.5)
        for start in range(0, len(queries), _client.MSEARCH_BATCH):
            pending = list(range(start, min(start + _client.MSEARCH_BATCH, len(queries))))
            for attempt in range(attempts):
                body: list[dict[str, Any]] = []
                for i in pending:
                    body.append({"index": target})
                    body.append({"size": 0, "track_total_hits": True, "query": queries[i]})
                retry = []
                for i, response in zip(pending, self.client.msearch(searches=body)["responses"]):
                    if "error" not in response:
                        counts[i] = int(response["hits"]["total"]["value"])
                        continue
                    error = response["error"]
                    kind = error.get("type") if isinstance(error, dict) else None
                    if kind == "index_not_found_exception":
                        raise self._gone()
                    if response.get("status") in RETRY_STATUS and attempt + 1 < attempts:
                        retry.append(i)
                        continue
                    reason = " ".join(str(error.get("reason", error) if isinstance(error, dict) else error).split())
                    raise InputError(f"Elasticsearch at {self.url} refused a count query "
                                     f"(HTTP {response.get('status')}: {reason}); re-run the same command")
                if not retry:
                    break
                pending = retry
                backoff_pause(attempt, backoff)
        return counts  # type: ignore[return-value]

    @staticmethod
    def _terms(entities: Iterable[str]) -> dict[str, Any]:
        return {"bool": {"filter": [{"term": {"entities": e}} for e in entities]}}

    def doc_freq(self, entity: str) -> int:
        return self.doc_freqs([entity])[0]

    def doc_freqs(self, entities: Sequence[str]) -> list[int]:
        unique = list(dict.fromkeys(entities))
        found = dict(zip(unique, self._msearch_counts([self._terms([e]) for e in unique])))
        return [found[e] for e in entities]

    def count_cooccurrence(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        unique = list(dict.fromkeys(tuple(p) for p in pairs))
        found = dict(zip(unique, self._msearch_counts([self._terms(set(p)) for p in unique])))
        return [found[tuple(p)] for p in pairs]

    @_answering
    def count(self, entities: Sequence[str]) -> int:
        """Documents linked to every entity, through `_count` (one request)."""
        return int(self.client.count(index=self.index, query=self._terms(entities))["count"])

    @_answering
    def docs_with(self, entities: Sequence[str], limit: int | None = None) -> list[str]:
        if not entities:
            raise ValueError("docs_with needs at least one entity")
        ids: list[str] = []
        after = None
        while limit is None or len(ids) < limit:
            size = 1000 if limit is None else min(1000, limit - len(ids))
            kwargs: dict[str, Any] = {"search_after": after} if after is not None else {}
            hits = self.client.search(index=self.index, query=self._terms(entities), size=size,
                                      sort=[{"seq": "asc"}], source=["doc_id"], **kwargs)["hits"]["hits"]
            ids.extend(hit["_source"]["doc_id"] for hit in hits)
            if len(hits) < size:
                break
            after = hits[-1]["sort"]
        return ids

    @_answering
    def get_text(self, doc_id: str, *, field: str = "text") -> str | None:
        from elasticsearch import NotFoundError

        try:
            return self.client.get(index=self.index, id=doc_id, source=[field])["_source"].get(field)
        except NotFoundError:
            return None

    @_answering
    def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        results: list[list[Passage]] = []
        for start in range(0, len(queries), _client.MSEARCH_BATCH):
            body: list[dict[str, Any]] = []
            for query in queries[start:start + _client.MSEARCH_BATCH]:
                body.append({"index": self.passages_index})
                body.append({"size": k, "query": {"match": {"text": query}}})
            for response in self.client.msearch(searches=body)["responses"]:
                if "error" in response:
                    raise InputError(f"Elasticsearch at {self.url} refused a search: {response['error']}")
                results.append([Passage(doc_id=h["_source"]["doc_id"],
                                        passage_id=h["_source"].get("passage_id", h["_id"]),
                                        text=h["_source"]["text"], score=float(h["_score"] or 0.0))
                                for h in response["hits"]["hits"]])
        return results

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend, "url": self.url, "index": self.index,
                "passages_index": self.passages_index}

    def close(self) -> None:
        self.client.close()


class PhraseCounts(DocumentIndex):
    """Counts on an existing text index without entity links (as WIMBD counts over corpora).

    An "entity" is looked up in `aliases` (entity id -> names); a document contains it when
    any alias occurs in `field` as a phrase (`match_phrase`). `count_qa` works on this view
    unchanged. An entity without aliases counts 0. On a field analyzed by the `standard`
    analyzer (the default of a `text` field) this is the phrase definition of
    `indexes._phrases`, which the embedded and infini-gram backends share; a field with a
    stop-word filter (ltprobe's own `ltprobe_en`) lets a stop word in a name match any word.
    """

    backend = "elasticsearch-phrases"

    def __init__(self, index: ElasticsearchIndex, aliases: dict[str, list[str]], *, field: str = "text"):
        self._index = index
        self._aliases = aliases
        self.field = field

    def _any_alias(self, entity: str) -> dict[str, Any] | None:
        names = [a for a in self._aliases.get(entity, []) if a.strip()]
        if not names:
            return None
        return {"bool": {"should": [{"match_phrase": {self.field: a}} for a in names],
                         "minimum_should_match": 1}}

    def _counts(self, groups: list[tuple[str, ...]]) -> list[int]:
        queries, positions = [], []
        for i, group in enumerate(groups):
            clauses = [self._any_alias(e) for e in group]
            if all(c is not None for c in clauses):
                queries.append({"bool": {"filter": clauses}})
                positions.append(i)
        counts = [0] * len(groups)
        for i, n in zip(positions, self._index._msearch_counts(queries)):
            counts[i] = n
        return counts

    def doc_freq(self, entity: str) -> int:
        return self._counts([(entity,)])[0]

    def doc_freqs(self, entities: Sequence[str]) -> list[int]:
        return self._counts([(e,) for e in entities])

    def count_cooccurrence(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        return self._counts([tuple(dict.fromkeys(p)) for p in pairs])

    def docs_with(self, entities: Sequence[str], limit: int | None = None) -> list[str]:
        clauses = [self._any_alias(e) for e in entities]
        if not entities or any(c is None for c in clauses):
            return []
        hits = self._index.client.search(index=self._index.index, size=limit or 100,
                                         query={"bool": {"filter": clauses}})["hits"]["hits"]
        return [h["_id"] for h in hits]

    def get_text(self, doc_id: str) -> str | None:
        return self._index.get_text(doc_id, field=self.field)

    def search_many(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        return self._index.search_many(queries, k)

    def close(self) -> None:
        self._index.close()
