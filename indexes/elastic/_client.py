"""Talking to an Elasticsearch cluster: credentials and connection, index mappings, and bulk ingestion
shared by the one-process build (`_index`) and the Ray executor (`_ray`)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
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


RETRIES = 6
"""Attempts per request (config key `retries`): a refused or dropped connection, a timeout, and
a 429/502/503/504 answer are retried, after 0.5, 1, 2, 4, 8 s (`retry_backoff`, doubled, capped
at `RETRY_CAP`, plus up to a quarter of jitter)."""

RETRY_BACKOFF = 0.5
RETRY_CAP = 30.0
RETRY_STATUS = (429, 502, 503, 504)


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
    for key, kind in (("request_timeout", float), ("retries", int), ("retry_backoff", float)):
        if key in values:
            try:
                values[key] = kind(values[key])
            except (TypeError, ValueError):
                raise InputError(f"{path}: {key} must be a number") from None
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


def backoff_pause(attempt: int, backoff: float) -> None:
    """Sleep before retry number `attempt + 1`: `backoff` doubled per attempt, capped, plus jitter."""
    delay = min(RETRY_CAP, backoff * 2 ** attempt)
    time.sleep(delay + random.uniform(0, delay / 4))


def transient(exc: BaseException) -> bool:
    """Whether a failed request is worth retrying: the connection refused or dropped, a timeout,
    or a 429/502/503/504 answer (not a TLS error, not a refusal of the request itself)."""
    from elastic_transport import ConnectionError, ConnectionTimeout, TlsError
    from elasticsearch import ApiError

    if isinstance(exc, TlsError):
        return False
    if isinstance(exc, (ConnectionError, ConnectionTimeout)):
        return True
    return isinstance(exc, ApiError) and exc.meta.status in RETRY_STATUS


def describe(exc: BaseException) -> str:
    """A short name for a failed request, without URLs, headers or bodies."""
    from elasticsearch import ApiError

    if isinstance(exc, ApiError):
        return f"HTTP {exc.meta.status} {exc.error}"
    return type(exc).__name__


class RetryingClient:
    """An `Elasticsearch` client whose API calls (`client.count(...)`, `client.indices.exists(...)`)
    are retried when `transient`: `attempts` in all, with exponential backoff from `backoff`
    seconds. `url` is the address without credentials; `raw` the client itself."""

    def __init__(self, raw: Any, url: str, *, attempts: int = RETRIES, backoff: float = RETRY_BACKOFF):
        self.raw = raw
        self.url = url
        self.attempts = max(1, attempts)
        self.backoff = backoff

    def call(self, request: Callable[[], Any], *, before_retry: Callable[[], Any] | None = None) -> Any:
        """`request()`, retried; `before_retry()` runs before each retry that follows a lost
        connection (its own failure counts as a failed attempt). The last error is raised."""
        reconnect = False
        for attempt in range(self.attempts):
            try:
                if reconnect and before_retry is not None:
                    before_retry()
                return request()
            except Exception as exc:  # noqa: BLE001 - only transient errors are retried
                if not transient(exc) or attempt + 1 >= self.attempts:
                    raise
                from elasticsearch import ApiError

                reconnect = not isinstance(exc, ApiError)
            backoff_pause(attempt, self.backoff)
        raise AssertionError("unreachable")

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.raw, name)
        if name in ("close", "options", "transport") or name.startswith("_"):
            return value
        if callable(value):
            def retried(*args: Any, **kwargs: Any) -> Any:
                return self.call(lambda: value(*args, **kwargs))
            return retried
        if hasattr(value, "perform_request"):  # a namespace: client.indices
            return RetryingClient(value, self.url, attempts=self.attempts, backoff=self.backoff)
        return value


def connect(url: str, config: str | os.PathLike | None = None, *, attempts: int = 5,
            backoff: float = 0.5) -> RetryingClient:
    """A client for `url`, checked to answer; unreachable -> retries, then one error. Every
    later request is retried too (`RetryingClient`; config keys `retries`, `retry_backoff`)."""
    from elasticsearch import AuthenticationException, AuthorizationException, Elasticsearch

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"--es-url {url!r}: expected http(s)://HOST:PORT")
    if parts.username or parts.password:
        raise InputError("--es-url must not contain credentials; set ES_API_KEY or "
                         "ES_USERNAME/ES_PASSWORD in the environment, or use --es-config")
    settings = _config(config)
    # No retries in the transport: RetryingClient retries every request, with backoff.
    kwargs: dict[str, Any] = {"request_timeout": float(settings.get("request_timeout", 60)), "max_retries": 0}
    if settings.get("api_key"):
        kwargs["api_key"] = settings["api_key"]
    elif settings.get("username"):
        kwargs["basic_auth"] = (settings["username"], settings.get("password") or "")
    if settings.get("ca_certs"):
        kwargs["ca_certs"] = settings["ca_certs"]
    if "verify_certs" in settings:
        kwargs["verify_certs"] = bool(settings["verify_certs"])
    shown = safe_url(url)
    client = RetryingClient(Elasticsearch(url, **kwargs), shown, attempts=settings.get("retries", RETRIES),
                            backoff=settings.get("retry_backoff", RETRY_BACKOFF))
    reason = ""
    for attempt in range(max(1, attempts)):
        try:
            client.raw.info()  # this loop does the retrying, with backoff
            return client
        except (AuthenticationException, AuthorizationException):
            client.close()
            raise InputError(f"Elasticsearch at {shown} refused the credentials; set ES_API_KEY or "
                             "ES_USERNAME/ES_PASSWORD (or --es-config)") from None
        except Exception as exc:  # noqa: BLE001 - a TLS error or another refusal is not retried
            reason = describe(exc)
            if not transient(exc):
                client.close()
                raise InputError(f"Elasticsearch at {shown} answered {reason}; check --es-url "
                                 "and the TLS settings (ES_CA_CERTS, ES_VERIFY_CERTS)") from None
        if attempt + 1 < attempts:
            time.sleep(backoff * 2 ** attempt)
    client.close()
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
    from elasticsearch import BadRequestError

    if client.indices.exists(index=index):
        if check_meta(client, index, url) is None:
            raise InputError(f"Elasticsearch index {index!r} at {url} exists but was not written by "
                             "ltprobe; choose another --es-index name")
        return
    try:
        client.indices.create(index=index, mappings=_mapping(kind), settings={
            "number_of_shards": shards, "number_of_replicas": replicas, "analysis": _ANALYSIS})
    except BadRequestError as exc:  # created meanwhile by another worker, or a retried request
        if exc.error != "resource_already_exists_exception":
            raise


def bulk_index(client: RetryingClient, actions: Iterable[dict[str, Any]], *, workers: int = 2,
               chunk_size: int | None = None, on_done: Any = None,
               on_reconnect: Callable[[], Any] | None = None) -> tuple[int, list[tuple[str, str]]]:
    """Send index actions in `chunk_size` bulk requests from `workers` parallel streams.

    A bulk request that fails transiently is sent again (`client.attempts` in all, with backoff;
    after a lost connection `on_reconnect()` runs first, e.g. to recreate an index a restarted
    cluster lost, so that the request does not create it with a guessed mapping); documents a
    bulk answer rejects with 429 or 503 are sent again the same way. Documents are keyed by id,
    so what is sent twice is stored once. Returns (number indexed, [(failed id, reason)]);
    a cluster that stops answering raises one `InputError` that says to re-run."""
    from elasticsearch import ApiError

    chunk_size = chunk_size or BULK_CHUNK
    source = iter(actions)
    lock = threading.Lock()
    stop = threading.Event()
    indexed = [0] * workers
    failed: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def send(chunk: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int, str]]:
        operations: list[dict[str, Any]] = []
        for action in chunk:
            operations.append({"index": {"_index": action["_index"], "_id": action["_id"]}})
            operations.append(action["_source"])
        answer = client.call(lambda: client.raw.bulk(operations=operations), before_retry=on_reconnect)
        results = []
        for action, item in zip(chunk, answer["items"]):
            detail = next(iter(item.values()))
            error = detail.get("error")
            reason = "" if error is None else (error.get("reason") or error.get("type") or str(error)
                                               if isinstance(error, dict) else str(error))
            results.append((action, int(detail.get("status", 500 if error else 200)), reason))
        return results

    def work(slot: int) -> None:
        try:
            while not stop.is_set():
                with lock:
                    chunk = list(islice(source, chunk_size))
                if not chunk:
                    return
                for attempt in range(client.attempts):
                    retry = []
                    for action, status, reason in send(chunk):
                        if status < 300:
                            indexed[slot] += 1
                        elif status in (429, 503) and attempt + 1 < client.attempts:
                            retry.append(action)
                            continue
                        else:
                            with lock:
                                failed.append((str(action["_id"]), " ".join(f"{status} {reason}".split())))
                        if on_done is not None:
                            on_done(1)
                    if not retry:
                        break
                    chunk = retry
                    backoff_pause(attempt, client.backoff)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            stop.set()
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        exc = errors[0]
        if transient(exc):
            raise InputError(f"Elasticsearch at {client.url} stopped answering during bulk ingestion "
                             f"({describe(exc)}, {client.attempts} attempts); re-run the same command to "
                             "complete the index (documents are keyed by id: nothing is duplicated)") from None
        if isinstance(exc, ApiError):
            raise InputError(f"Elasticsearch at {client.url} refused a bulk request ({describe(exc)}); "
                             "fix the cause and re-run the same command") from None
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
