"""Talking to an Elasticsearch cluster: credentials and connection, index mappings, and bulk ingestion
shared by the one-process build (`_index`) and the Ray executor (`_ray`)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from entity_linking.io import InputError, SkipCounter
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
    from elastic_transport import TransportError
    from elasticsearch import ApiError, AuthenticationException, AuthorizationException, Elasticsearch

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


def check_meta(client: Any, index: str, url: str) -> dict[str, Any] | None:
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


def ensure_index(client: Any, index: str, kind: str, shards: int, replicas: int, url: str) -> None:
    if client.indices.exists(index=index):
        if check_meta(client, index, url) is None:
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

    Used by the single-process ingestion and by every Ray worker (`indexes.elastic._ray`), so
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
