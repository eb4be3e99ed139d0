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

Counting on an existing text index (WIMBD-style, no entity linking): `PhraseCounts` counts the
documents matching any alias of each entity with `match_phrase` queries.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from entity_linking.io import InputError, SkipCounter, write_json
from indexes._base import INDEX_INFO, DocumentIndex, Passage
from indexes._text import iter_corpus, iter_texts, reader_fields, split_passages

FORMAT_VERSION = 1
"""Version of the mapping this module writes (kept in the index's `_meta.ltprobe_format`)."""

MSEARCH_BATCH = 500
"""Count queries per `_msearch` request."""

BULK_CHUNK = 500
"""Documents per bulk request (as WIMBD)."""

_ANALYSIS = {"analyzer": {"ltprobe_en": {"type": "standard", "stopwords": "_english_"}}}


def _config(config: str | os.PathLike | None) -> dict[str, Any]:
    path = config or os.environ.get("LTPROBE_ES_CONFIG")
    values: dict[str, Any] = {}
    if path:
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such Elasticsearch config file")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                values = yaml.safe_load(text) or {}
            else:
                values = json.loads(text)
        except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
            raise InputError(f"{path}: not a readable config file ({type(exc).__name__})") from None
        if not isinstance(values, dict):
            raise InputError(f"{path}: expected a mapping of settings (api_key, username, ...)")
    env = os.environ
    for key, var in (("api_key", "ES_API_KEY"), ("username", "ES_USERNAME"),
                     ("password", "ES_PASSWORD"), ("ca_certs", "ES_CA_CERTS"),
                     ("verify_certs", "ES_VERIFY_CERTS")):
        if env.get(var):
            values[key] = env[var]
    if isinstance(values.get("verify_certs"), str):
        values["verify_certs"] = values["verify_certs"].strip().lower() not in ("0", "false", "no", "off")
    return values


def safe_url(url: str) -> str:
    """The URL without any user information, for messages and `index.json`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=host).geturl()


def connect(url: str, config: str | os.PathLike | None = None, *, attempts: int = 5,
            backoff: float = 0.5) -> Any:
    """An `Elasticsearch` client for `url`, checked to answer; unreachable -> retries, then one error."""
    from elasticsearch import ApiError, AuthenticationException, AuthorizationException, Elasticsearch
    from elastic_transport import TransportError

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"--es-url {url!r}: expected http(s)://HOST:PORT")
    if parts.username or parts.password:
        raise InputError("--es-url must not contain credentials; set ES_API_KEY or "
                         "ES_USERNAME/ES_PASSWORD in the environment, or use --es-config")
    settings = _config(config)
    kwargs: dict[str, Any] = {
        "request_timeout": float(settings.get("request_timeout", 60)),
        "max_retries": 3, "retry_on_timeout": True, "retry_on_status": (429, 502, 503, 504),
    }
    if settings.get("api_key"):
        kwargs["api_key"] = settings["api_key"]
    elif settings.get("username"):
        kwargs["basic_auth"] = (settings["username"], settings.get("password") or "")
    if settings.get("ca_certs"):
        kwargs["ca_certs"] = settings["ca_certs"]
    if "verify_certs" in settings:
        kwargs["verify_certs"] = bool(settings["verify_certs"])
    client = Elasticsearch(url, **kwargs)
    shown = safe_url(url)
    reason = ""
    for attempt in range(max(1, attempts)):
        try:
            client.options(max_retries=0).info()  # this loop does the retrying, with backoff
            return client
        except (AuthenticationException, AuthorizationException):
            raise InputError(f"Elasticsearch at {shown} refused the credentials; set ES_API_KEY or "
                             "ES_USERNAME/ES_PASSWORD (or --es-config)") from None
        except (TransportError, ApiError) as exc:
            reason = type(exc).__name__ + (f": {exc.message}" if getattr(exc, "message", None) else "")
        if attempt + 1 < attempts:
            time.sleep(backoff * 2 ** attempt)
    raise InputError(f"cannot reach Elasticsearch at {shown} after {attempts} attempts ({reason}); "
                     "check --es-url and that the cluster is up")


def _mapping(kind: str) -> dict[str, Any]:
    properties: dict[str, Any] = {"doc_id": {"type": "keyword"},
                                  "text": {"type": "text", "analyzer": "ltprobe_en"}}
    if kind == "documents":
        properties.update({"entities": {"type": "keyword"}, "seq": {"type": "long"}})
    else:
        properties["passage_id"] = {"type": "keyword"}
    return {"_meta": {"ltprobe_format": FORMAT_VERSION, "kind": kind}, "properties": properties}


def _check_meta(client: Any, index: str, url: str) -> dict[str, Any] | None:
    """The index's `_meta` (None for an index not written by ltprobe); refuse other versions."""
    mappings = client.indices.get_mapping(index=index)
    body = next(iter(mappings.body.values()), {}) if hasattr(mappings, "body") else next(iter(mappings.values()), {})
    meta = (body.get("mappings") or {}).get("_meta")
    if meta is None or "ltprobe_format" not in meta:
        return None
    if meta["ltprobe_format"] != FORMAT_VERSION:
        raise InputError(f"Elasticsearch index {index!r} at {url} has ltprobe format "
                         f"{meta['ltprobe_format']!r}, this version reads {FORMAT_VERSION}; "
                         "re-index into a new --es-index name")
    return meta


def _ensure_index(client: Any, index: str, kind: str, shards: int, replicas: int, url: str) -> None:
    if client.indices.exists(index=index):
        if _check_meta(client, index, url) is None:
            raise InputError(f"Elasticsearch index {index!r} at {url} exists but was not written by "
                             "ltprobe; choose another --es-index name")
        return
    client.indices.create(index=index, mappings=_mapping(kind), settings={
        "number_of_shards": shards, "number_of_replicas": replicas, "analysis": _ANALYSIS})


class _SharedIterator:
    """An iterator several bulk workers pull from (one lock around `next`)."""

    def __init__(self, iterable: Iterable[dict[str, Any]]):
        self._it = iter(iterable)
        self._lock = threading.Lock()

    def __iter__(self) -> _SharedIterator:
        return self

    def __next__(self) -> dict[str, Any]:
        with self._lock:
            return next(self._it)


def bulk_index(client: Any, actions: Iterable[dict[str, Any]], *, workers: int = 2,
               chunk_size: int = BULK_CHUNK, max_retries: int = 3,
               on_done: Any = None) -> tuple[int, list[tuple[str, str]]]:
    """Send index actions with `workers` parallel bulk streams; rejected (429) chunks are retried
    with backoff. Returns (number indexed, [(failed id, reason)])."""
    from elasticsearch.helpers import streaming_bulk

    shared = _SharedIterator(actions)
    indexed = [0] * workers
    failed: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(slot: int) -> None:
        try:
            for ok, item in streaming_bulk(client, shared, chunk_size=chunk_size,
                                           max_retries=max_retries, initial_backoff=1,
                                           raise_on_error=False, raise_on_exception=True):
                if ok:
                    indexed[slot] += 1
                else:
                    detail = next(iter(item.values()))
                    error = detail.get("error", {})
                    reason = error.get("reason", str(error)) if isinstance(error, dict) else str(error)
                    with lock:
                        failed.append((str(detail.get("_id")), reason))
                if on_done is not None:
                    on_done(1)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        from elastic_transport import TransportError

        exc = errors[0]
        if isinstance(exc, (TransportError,)):
            raise InputError(f"Elasticsearch stopped answering during bulk ingestion ({type(exc).__name__}); "
                             "re-run the same command to complete the index (documents are keyed by id)") from None
        raise exc
    return sum(indexed), failed


class BulkActions:
    """The one way documents and passages become bulk index actions, with what they add up to.

    Used by the single-process ingestion and by every Ray worker (`indexes._elastic_ray`), so
    both write the same documents under the same ids (`doc_id`, `"<doc_id>#<n>"`)."""

    def __init__(self, index: str, passage_words: int):
        self.index = index
        self.passages_index = f"{index}-passages"
        self.passage_words = passage_words
        self.counts = {"n_docs": 0, "n_mentions": 0, "n_passages": 0}

    def documents(self, docs: Iterable[tuple[int, str, list[str], str]]) -> Iterator[dict[str, Any]]:
        """Actions for `(seq, doc_id, entities, text)`; `seq` is the corpus position."""
        for seq, doc_id, entities, text in docs:
            entities = list(dict.fromkeys(entities))
            self.counts["n_docs"] += 1
            self.counts["n_mentions"] += len(entities)
            yield {"_index": self.index, "_id": doc_id, "_source": {
                "doc_id": doc_id, "seq": seq, "entities": entities, "text": text}}

    def passages(self, docs: Iterable[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        """Actions for the passages of each `(doc_id, text)`."""
        for doc_id, text in docs:
            for i, passage in enumerate(split_passages(text, self.passage_words)):
                self.counts["n_passages"] += 1
                yield {"_index": self.passages_index, "_id": f"{doc_id}#{i}", "_source": {
                    "doc_id": doc_id, "passage_id": f"{doc_id}#{i}", "text": passage}}


def ingestion_source(corpus: Any, linked_dir: str | os.PathLike | None,
                     passages: Any, *, on_error: str, skips: SkipCounter, fields: dict[str, Any] | None = None
                     ) -> tuple[Iterator[tuple[int, str, list[str], str]], Iterator[tuple[str, str]]]:
    """What an ingestion reads: `(seq, doc_id, entities, text)` of the linked corpus, then
    `(doc_id, text)` to cut into passages (the corpus again, or the `passages` collection).
    Both are lazy; bad records go to `skips` once. `fields`: how to read the corpus
    (`indexes._text.reader_fields`)."""
    fields = fields or reader_fields(linked_dir)
    documents = ((seq, doc_id, entities, text) for seq, (doc_id, entities, text)
                 in enumerate(iter_corpus(corpus, linked_dir, on_error=on_error, skips=skips, fields=fields)))
    texts = (iter_texts(corpus, on_error=on_error, fields=fields) if passages is None
             else iter_texts(passages, on_error=on_error, skips=skips))
    return documents, texts


def build_elasticsearch(corpus: str | os.PathLike, linked_dir: str | os.PathLike | None,
                        out: str | os.PathLike | None, *, es_url: str, es_index: str,
                        config: str | os.PathLike | None = None, shards: int = 1,
                        replicas: int = 0, workers: int = 2, passages: str | os.PathLike | None = None,
                        passage_words: int = 100, on_error: str = "fail", executor: str = "local",
                        ray_workers: int | None = None, progress: bool = True,
                        fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Index a linked corpus into `es_index` (documents) and `es_index-passages` (passages).

    `workers`: parallel bulk streams per process. `executor="ray"` sends the bulk requests from
    `ray_workers` Ray actors instead of this process (see `indexes._elastic_ray`); the indices,
    ids and counts are the same."""
    from tqdm import tqdm

    if executor not in ("local", "ray"):
        raise ValueError(f"executor must be 'local' or 'ray', not {executor!r}")
    client = connect(es_url, config)
    url = safe_url(es_url)
    passages_index = f"{es_index}-passages"
    started = time.perf_counter()
    skips = SkipCounter()
    try:
        _ensure_index(client, es_index, "documents", shards, replicas, url)
        _ensure_index(client, passages_index, "passages", shards, replicas, url)
        if executor == "ray":
            from indexes._elastic_ray import ingest_ray

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
                with tqdm(desc=label, unit=" docs", disable=not progress) as bar:
                    _, bad = bulk_index(client, stream, workers=workers, on_done=bar.update)
                failed.extend(bad)
            counts = actions.counts
        client.indices.refresh(index=[es_index, passages_index])
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


def _answering(method: Any) -> Any:
    """Turn a cluster that stopped answering mid-way (after the client's own retries with
    backoff) into one actionable error instead of a traceback."""
    import functools

    @functools.wraps(method)
    def wrapper(self: ElasticsearchIndex, *args: Any, **kwargs: Any) -> Any:
        from elastic_transport import ConnectionError, ConnectionTimeout

        try:
            return method(self, *args, **kwargs)
        except (ConnectionError, ConnectionTimeout) as exc:
            raise InputError(f"Elasticsearch at {self.url} stopped answering ({type(exc).__name__}) "
                             "after retries; check that the cluster is up and re-run") from None

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
        if not client.indices.exists(index=index):
            client.close()
            raise InputError(f"no index {index!r} at {shown}; build it with `ltprobe index "
                             "--backend elasticsearch`")
        meta = _check_meta(client, index, shown)
        if meta is None and require_ltprobe:
            client.close()
            raise InputError(f"Elasticsearch index {index!r} at {shown} was not written by ltprobe "
                             "(no entities field); use phrase counting (--phrases) on it instead")
        return cls(client, shown, index, meta=meta)

    @_answering
    def _msearch_counts(self, queries: list[dict[str, Any]], index: str | None = None) -> list[int]:
        counts: list[int] = []
        target = index or self.index
        for start in range(0, len(queries), MSEARCH_BATCH):
            body: list[dict[str, Any]] = []
            for query in queries[start:start + MSEARCH_BATCH]:
                body.append({"index": target})
                body.append({"size": 0, "track_total_hits": True, "query": query})
            responses = self.client.msearch(searches=body)["responses"]
            for response in responses:
                if "error" in response:
                    error = response["error"]
                    reason = error.get("reason", error) if isinstance(error, dict) else error
                    raise InputError(f"Elasticsearch at {self.url} refused a count query: {reason}")
                counts.append(int(response["hits"]["total"]["value"]))
        return counts

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
        for start in range(0, len(queries), MSEARCH_BATCH):
            body: list[dict[str, Any]] = []
            for query in queries[start:start + MSEARCH_BATCH]:
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
